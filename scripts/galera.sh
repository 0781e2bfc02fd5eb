#!/usr/bin/env bash
# A throwaway 3-node MariaDB Galera cluster on free loopback ports, for the test suite.
#
#   scripts/galera.sh start DIR         create DIR, start 3 nodes, wait until all are Synced,
#                                       write DIR/env (and print it): export OWNID_TEST_GALERA_URLS=...
#                                       and OWNID_TEST_GALERA_DIR=DIR (absolute)
#   scripts/galera.sh kill DIR N        SIGKILL node N (a crash, no shutdown)
#   scripts/galera.sh start-node DIR N  restart node N on its data dir; wait until it is Synced
#   scripts/galera.sh stop DIR          stop every node (SIGTERM, SIGKILL after 10 s); idempotent
#   scripts/galera.sh status DIR        print each node's cluster size and state
#
# Layout: DIR/ports (the ports, sourced by later commands), DIR/nodeN/{my.cnf,data,error.log,
# server.pid}, DIR/bin (the SST wrappers, see write_rsync_wrapper). State transfer uses rsync (the
# package is installed when missing and we are root); a killed node rejoins by IST.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

NODES=(1 2 3)
START_TIMEOUT=120 # seconds, for the whole of start, and for start-node
STOP_TIMEOUT=10   # seconds between SIGTERM and SIGKILL

die() {
  echo "galera.sh: $*" >&2
  exit 1
}


galera_provider() {
  local so
  for so in /usr/lib/galera/libgalera_smm.so /usr/lib/libgalera_smm.so; do
    [[ -f $so ]] && { echo "$so"; return 0; }
  done
  so=$(dpkg -L galera-4 2>/dev/null | grep -m 1 'libgalera_smm\.so$') && [[ -f $so ]] \
    && { echo "$so"; return 0; }
  return 1
}

apt_install() { # the SST method needs a package that a plain mariadb-server setup lacks
  [[ $(id -u) == 0 ]] || die "$1 is missing and only root may install it (apt-get install $*)"
  echo "galera.sh: installing $*" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >&2 \
    || { DEBIAN_FRONTEND=noninteractive apt-get update -q >&2 \
      && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >&2; } \
    || die "could not install $*"
}

# wsrep_sst_rsync needs rsync and a tool to see its daemon listen (ss from iproute2, or lsof).
ensure_sst_tools() {
  command -v rsync >/dev/null 2>&1 || apt_install rsync
  command -v ss >/dev/null 2>&1 || command -v lsof >/dev/null 2>&1 || apt_install iproute2
  command -v wsrep_sst_rsync >/dev/null 2>&1 || die "wsrep_sst_rsync is missing (mariadb-server)"
}

load_ports() { # sets SQL_PORT, GCOMM_PORT, IST_PORT, SST_PORT (arrays indexed by node)
  [[ -f $DIR/ports ]] || die "$DIR/ports is missing: was '$0 start $DIR' run?"
  # shellcheck source=/dev/null
  source "$DIR/ports"
}

node_pid() { # prints the pid of node $1 when it is a live mariadbd
  local pid state
  pid=$(head -n 1 "$DIR/node$1/server.pid" 2>/dev/null) && [[ $pid =~ ^[0-9]+$ ]] || return 1
  [[ $(cat "/proc/$pid/comm" 2>/dev/null) == mariadbd ]] || return 1
  state=$(sed -n 's/^State:[[:space:]]*\([A-Z]\).*/\1/p' "/proc/$pid/status" 2>/dev/null) || return 1
  [[ -n $state && $state != Z ]] && echo "$pid"
}

gone() { ! kill -0 "$1" 2>/dev/null || [[ $(sed -n 's/^State:[[:space:]]*\([A-Z]\).*/\1/p' "/proc/$1/status" 2>/dev/null) == Z ]]; }

port_closed() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

sql() { # node, statement: tab-separated rows, no header
  "$MARIADB" --no-defaults --protocol=tcp -h 127.0.0.1 -P "${SQL_PORT[$1]}" -u root \
    --connect-timeout=2 -N -B -e "$2" 2>/dev/null
}

# Prints "size ready state" of node $1, or fails when it does not answer.
wsrep_state() {
  local rows
  rows=$(sql "$1" "SHOW GLOBAL STATUS WHERE Variable_name IN
    ('wsrep_cluster_size', 'wsrep_ready', 'wsrep_local_state_comment')") || return 1
  awk '{v[$1] = $2} END {print v["wsrep_cluster_size"], v["wsrep_ready"], v["wsrep_local_state_comment"]}' <<<"$rows"
}

node_synced() { [[ $(wsrep_state "$1" 2>/dev/null) == "3 ON Synced" ]]; }

cluster_synced() {
  local n
  for n in "${NODES[@]}"; do node_synced "$n" || return 1; done
}

show_logs() {
  local n
  for n in "${NODES[@]}"; do
    echo "---- node $n: tail of $DIR/node$n/error.log" >&2
    tail -n 40 "$DIR/node$n/error.log" >&2 2>/dev/null || echo "(no log)" >&2
  done
}

# Waits up to $1 seconds for the command; fails early when node $2 (if not empty) has died.
wait_for() {
  local timeout=$1 node=$2 deadline
  shift 2
  deadline=$((SECONDS + timeout))
  until "$@"; do
    if [[ -n $node ]] && ! node_pid "$node" >/dev/null; then
      echo "galera.sh: node $node exited" >&2
      return 1
    fi
    ((SECONDS < deadline)) || return 1
    sleep 0.5
  done
}

write_config() { # node
  local n=$1 d=$DIR/node$1 addrs=() m
  for m in "${NODES[@]}"; do addrs+=("127.0.0.1:${GCOMM_PORT[$m]}"); done
  # A config file rather than options: the SST scripts read the server's settings from it.
  # The evs timeouts are shorter than the defaults (5 s/15 s) so that writes on the survivors
  # stall for less time after a kill, yet long enough for a machine busy compiling.
  cat >"$d/my.cnf" <<EOF
[mysqld]
datadir=$d/data
tmpdir=$d/tmp
socket=$d/mysqld.sock
pid-file=$d/mariadbd.pid
log-error=$d/error.log
port=${SQL_PORT[$n]}
bind-address=127.0.0.1
skip-name-resolve
skip-log-bin
performance-schema=off
max-connections=500
character-set-server=utf8mb4
collation-server=utf8mb4_general_ci
default-storage-engine=InnoDB
innodb-buffer-pool-size=64M
innodb-log-file-size=32M
innodb-flush-log-at-trx-commit=2
innodb-autoinc-lock-mode=2
binlog-format=ROW
$([[ $(id -u) == 0 ]] && echo "user=root")

wsrep-on=ON
wsrep-provider=$PROVIDER
wsrep-cluster-name=ownid-test
wsrep-cluster-address=gcomm://$(IFS=,; echo "${addrs[*]}")
wsrep-node-name=node$n
wsrep-node-address=127.0.0.1:${GCOMM_PORT[$n]}
wsrep-node-incoming-address=127.0.0.1:${SQL_PORT[$n]}
wsrep-sst-method=$([[ $(id -u) == 0 ]] && echo ownid_rsync || echo rsync)
wsrep-sst-receive-address=127.0.0.1:${SST_PORT[$n]}
wsrep-provider-options=gmcast.listen_addr=tcp://127.0.0.1:${GCOMM_PORT[$n]};ist.recv_addr=127.0.0.1:${IST_PORT[$n]};gcache.size=64M;evs.suspect_timeout=PT3S;evs.inactive_timeout=PT6S;evs.install_timeout=PT3S
EOF
}

# wsrep_sst_rsync starts `rsync --daemon` with a config file of its own, and an rsync daemon
# started by root switches to user nobody unless that file says otherwise: nobody may not enter
# the caller's private temp dir nor write root's data dir (SST fails with "cannot stat
# destination"). So as root the SST method is "ownid_rsync": mariadbd runs the script
# wsrep_sst_ownid_rsync from DIR/bin, which runs the stock wsrep_sst_rsync with DIR/bin first on
# its PATH, where an rsync adds "uid = root" to the daemon's config file. (A plain PATH wrapper
# for rsync is not enough: mariadbd puts its own bin dir, /usr/bin, first on the SST's PATH.)
write_rsync_wrapper() {
  local real
  real=$(command -v rsync)
  mkdir -p "$DIR/bin"
  cat >"$DIR/bin/rsync" <<'EOF'
#!/bin/sh
conf='' prev='' daemon=''
for arg in "$@"; do
  case $arg in --daemon) daemon=1 ;; --config=*) conf=${arg#--config=} ;; esac
  case $prev in --config) conf=$arg ;; esac
  prev=$arg
done
if [ -n "$daemon" ] && [ -f "$conf" ] && ! grep -q '^uid *=' "$conf"; then
  sed -i '1i uid = root\ngid = root' "$conf"
fi
EOF
  echo "exec '$real' \"\$@\"" >>"$DIR/bin/rsync"
  printf '#!/bin/sh\nPATH=%s:$PATH exec bash %s "$@"\n' "$DIR/bin" "$(command -v wsrep_sst_rsync)" \
    >"$DIR/bin/wsrep_sst_ownid_rsync"
  chmod +x "$DIR/bin/rsync" "$DIR/bin/wsrep_sst_ownid_rsync"
}

# Starts node $1 in a session of its own (a Ctrl-C of the caller does not reach it) with its
# output in its log and no tie to the caller's stdout (a $(...) caller would wait for it).
launch() { # node, extra options
  local n=$1 pid
  shift
  mkdir -p "$DIR/node$n/tmp"
  PATH=$DIR/bin:$PATH setsid "$MARIADBD" --defaults-file="$DIR/node$n/my.cnf" "$@" \
    >>"$DIR/node$n/error.log" 2>&1 </dev/null &
  pid=$!
  disown "$pid" # a kill is expected: no "Killed" job report
  echo "$pid" >"$DIR/node$n/server.pid"
  # setsid execs mariadbd in the same process; until it has, node_pid (which checks the command
  # name) would take the node for dead. Wait for the exec, up to 10 s on a loaded machine.
  local tries=0
  until [[ $(cat "/proc/$pid/comm" 2>/dev/null) == mariadbd ]] || gone "$pid" || ((tries++ >= 100)); do
    sleep 0.1
  done
}

stop_nodes() {
  local n pid pids=() deadline
  for n in "${NODES[@]}"; do
    pid=$(node_pid "$n") && pids+=("$pid")
  done
  ((${#pids[@]})) && kill -TERM "${pids[@]}" 2>/dev/null || true
  deadline=$((SECONDS + STOP_TIMEOUT))
  for pid in "${pids[@]}"; do
    while ! gone "$pid" && ((SECONDS < deadline)); do sleep 0.2; done
    gone "$pid" || kill -KILL -- "-$pid" "$pid" 2>/dev/null || true
  done
  for pid in "${pids[@]}"; do
    wait_for 30 "" gone "$pid" || echo "galera.sh: pid $pid survived SIGKILL" >&2
  done
  sweep "${NODES[@]}"
}

# Whatever is left of the nodes' sessions (an SST script or its rsync daemon), by session id:
# each node was started as the leader of a session of its own.
sweep() { # node...
  local n sids=() p stat fields
  for n in "$@"; do
    sids+=(" $(head -n 1 "$DIR/node$n/server.pid" 2>/dev/null || true) ")
  done
  for p in /proc/[0-9]*; do
    read -r stat 2>/dev/null <"$p/stat" || continue
    read -r -a fields <<<"${stat##*) }" # state ppid pgrp session ...
    [[ " ${sids[*]} " == *" ${fields[3]} "* ]] && kill -KILL "${p#/proc/}" 2>/dev/null || true
  done
}

cmd_start() {
  local ports n i
  [[ -e $DIR && -n $(ls -A "$DIR" 2>/dev/null) ]] && die "$DIR exists and is not empty"
  MARIADB_INSTALL_DB=$(find_tool mariadb-install-db mysql_install_db) || die "mariadb-install-db is missing"
  ensure_sst_tools
  mkdir -p "$DIR"
  DIR=$(cd "$DIR" && pwd) # absolute: it goes into the config files

  mapfile -t ports < <(free_ports 12)
  ((${#ports[@]} == 12)) || die "could not pick free ports"
  {
    i=0
    for n in "${NODES[@]}"; do
      echo "SQL_PORT[$n]=${ports[i]} GCOMM_PORT[$n]=${ports[i + 1]} IST_PORT[$n]=${ports[i + 2]} SST_PORT[$n]=${ports[i + 3]}"
      i=$((i + 4))
    done
  } >"$DIR/ports"
  load_ports
  [[ $(id -u) != 0 ]] || write_rsync_wrapper
  for n in "${NODES[@]}"; do
    mkdir -p "$DIR/node$n/tmp"
    write_config "$n"
  done

  # One install; the other nodes receive their data by SST anyway, a copy only lets them start.
  local user=()
  [[ $(id -u) == 0 ]] && user=(--user=root)
  "$MARIADB_INSTALL_DB" --defaults-file="$DIR/node1/my.cnf" --wsrep-on=OFF "${user[@]}" \
    --auth-root-authentication-method=normal --skip-test-db >"$DIR/install.log" 2>&1 \
    || { tail -n 20 "$DIR/install.log" "$DIR/node1/error.log" >&2; die "mariadb-install-db failed"; }
  cp -a "$DIR/node1/data" "$DIR/node2/data"
  cp -a "$DIR/node1/data" "$DIR/node3/data"

  # Any failure from here on (or a signal) stops what did start: the caller gets no half cluster.
  trap 'status=$?; ((status)) && stop_nodes; exit $status' EXIT
  trap 'exit 1' INT TERM HUP

  local deadline=$((SECONDS + START_TIMEOUT))
  launch 1 --wsrep-new-cluster
  wait_for "$START_TIMEOUT" 1 primary 1 || { show_logs; die "node 1 did not bootstrap"; }
  # Both joiners at once: the donor serves one SST at a time, the other joiner retries each second.
  launch 2
  launch 3
  wait_for $((deadline - SECONDS)) "" cluster_synced_or_dead \
    || { show_logs; die "the cluster did not form in $START_TIMEOUT s"; }
  cluster_synced || { show_logs; die "a node exited while joining"; }
  trap - EXIT

  local urls=()
  for n in "${NODES[@]}"; do urls+=("mysql://root@127.0.0.1:${SQL_PORT[$n]}/"); done
  { echo "export OWNID_TEST_GALERA_URLS=\"${urls[*]}\""; echo "export OWNID_TEST_GALERA_DIR=\"$DIR\""; } | tee "$DIR/env"
}

primary() { [[ $(wsrep_state "$1" 2>/dev/null) == "1 ON Synced" ]]; }

cluster_synced_or_dead() {
  local n
  for n in "${NODES[@]}"; do node_pid "$n" >/dev/null || return 0; done
  cluster_synced
}

node_arg() {
  [[ ${1:-} =~ ^[123]$ ]] || die "node must be 1, 2 or 3, not '${1:-}'"
}

cmd_kill() {
  local n=$1 pid
  load_ports
  pid=$(node_pid "$n") || die "node $n is not running"
  # The whole session: mariadbd and any SST helper it runs, as a crash would end them.
  kill -KILL -- "-$pid" "$pid" 2>/dev/null || true
  wait_for 30 "" gone "$pid" || die "node $n (pid $pid) survived SIGKILL"
  wait_for 30 "" port_closed "${SQL_PORT[$n]}" || die "node $n's port ${SQL_PORT[$n]} is still open"
}

# After a crash grastate.dat says seqno -1 and the node would ask for a full SST (rsync under a
# FLUSH TABLES WITH READ LOCK on the donor, which stalls the donor's writes). As systemd's
# galera_recovery does, read the last committed position from InnoDB with --wsrep-recover first,
# so that the node asks for an IST of what it missed. Prints uuid:seqno, or nothing.
recover_position() { # node
  local n=$1 d=$DIR/node$1 pos
  grep -Eq '^seqno:[[:space:]]+-1' "$d/data/grastate.dat" 2>/dev/null || return 0
  rm -f "$d/recover.log"
  timeout 120 "$MARIADBD" --defaults-file="$d/my.cnf" --wsrep-recover --log-error="$d/recover.log" \
    >/dev/null 2>&1 </dev/null || { echo "galera.sh: --wsrep-recover of node $n failed" >&2; return 0; }
  pos=$(sed -n 's/.*WSREP: Recovered position: \([0-9a-f-]*:-\{0,1\}[0-9]*\).*/\1/p' "$d/recover.log" | tail -n 1)
  [[ -n $pos && $pos != *:-1 ]] && echo "$pos"
  return 0
}

cmd_start_node() {
  local n=$1
  load_ports
  node_pid "$n" >/dev/null && die "node $n is already running"
  sweep "$n" # a killed node's SST helpers would hold its SST port
  local pos
  pos=$(recover_position "$n")
  launch "$n" ${pos:+--wsrep-start-position="$pos"}
  wait_for "$START_TIMEOUT" "$n" cluster_synced || { show_logs; die "node $n did not rejoin"; }
}

cmd_stop() {
  [[ -d $DIR ]] || return 0
  stop_nodes
}

cmd_status() {
  local n state
  load_ports
  for n in "${NODES[@]}"; do
    if state=$(wsrep_state "$n"); then
      read -r size _ready comment <<<"$state"
      echo "node$n 127.0.0.1:${SQL_PORT[$n]} wsrep_cluster_size=$size wsrep_local_state_comment=$comment"
    else
      echo "node$n 127.0.0.1:${SQL_PORT[$n]} down"
    fi
  done
}

main() {
  local cmd=${1:-}
  [[ $# -ge 2 && -n $2 ]] || die "usage: $0 start|stop|status DIR | kill|start-node DIR N"
  DIR=$2
  [[ $DIR == /* ]] || DIR=$PWD/$DIR
  DIR=${DIR%/}
  declare -g -a SQL_PORT=() GCOMM_PORT=() IST_PORT=() SST_PORT=()
  MARIADBD=$(find_tool mariadbd mysqld) || die "mariadbd is missing"
  MARIADB=$(find_tool mariadb mysql) || die "the mariadb client is missing"
  case $cmd in
  start)
    PROVIDER=$(galera_provider) || die "the Galera provider is missing (package galera-4)"
    cmd_start
    ;;
  kill) node_arg "${3:-}" && cmd_kill "$3" ;;
  start-node) node_arg "${3:-}" && cmd_start_node "$3" ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  *) die "unknown command '$cmd'" ;;
  esac
}

main "$@"
