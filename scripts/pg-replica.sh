#!/usr/bin/env bash
# A throwaway PostgreSQL primary with a synchronous streaming-replication standby, for the
# failover tests: both listen on free ports of 127.0.0.1 only (never the machine's own 5432) and
# keep everything (data, sockets, logs) in one directory given by the caller.
#
#   scripts/pg-replica.sh start DIR         initdb a primary, clone a standby from it with
#                                           pg_basebackup, start both, wait until the standby
#                                           streams as the synchronous standby, then write DIR/env
#                                           (OWNID_TEST_PG_* exports) and print it
#   scripts/pg-replica.sh kill-primary DIR  SIGKILL the primary's postmaster and all its children
#                                           at once (a crash, no shutdown), wait until its port is
#                                           closed
#   scripts/pg-replica.sh promote DIR       promote the standby, wait until it accepts writes
#   scripts/pg-replica.sh stop DIR          stop both servers (immediate), kill whatever is left;
#                                           safe to repeat and after a failed start
#   scripts/pg-replica.sh status DIR        for each server: up or down, and pg_is_in_recovery()
#
# DIR/env, for a client with libpq-style failover (the URL names both servers; the client takes
# the one that accepts writes):
#   OWNID_TEST_PG_PRIMARY_PORT, OWNID_TEST_PG_STANDBY_PORT
#   OWNID_TEST_PG_REPLICA_URL   postgres://postgres@127.0.0.1:P1,127.0.0.1:P2/postgres
#                                 ?target_session_attrs=read-write  (one line)
#   OWNID_TEST_PG_REPLICA_CTL   this script, to run kill-primary / promote / stop / status
#   OWNID_TEST_PG_REPLICA_DIR   DIR
#
# The primary has synchronous_standby_names = 'FIRST 1 (standby1)': a commit returns only once the
# standby has flushed its WAL, so nothing acknowledged is lost when the primary is killed and the
# standby promoted. The standby has synchronous_standby_names = '' of its own: once promoted it has
# no standby, and its commits must not wait for one.
#
# PostgreSQL refuses to run as root: as root, the servers and their tools run as the user postgres.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

START_TIMEOUT=60 # seconds a server gets to start, and the standby to catch up
SCRIPT=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)/$(basename "${BASH_SOURCE[0]}")

is_root=
[[ $(id -u) == 0 ]] && is_root=1

die() {
  echo "pg-replica.sh: $*" >&2
  exit 1
}

usage() {
  die "usage: $0 start|kill-primary|promote|stop|status DIR"
}

# ---------------------------------------------------------------------------------------------
# Helpers

pg_bin_dir() { # the newest installed PostgreSQL's bin directory (Debian: /usr/lib/postgresql/N/bin)
  local d best='' best_version=-1 version
  for d in /usr/lib/postgresql/*/bin; do
    [[ -x $d/initdb ]] || continue
    version=${d#/usr/lib/postgresql/}
    version=${version%/bin}
    [[ $version =~ ^[0-9]+$ ]] || continue
    if ((version > best_version)); then
      best=$d best_version=$version
    fi
  done
  [[ -n $best ]] || die "no PostgreSQL server found in /usr/lib/postgresql/*/bin"
  echo "$best"
}


tcp_open() { # host port
  (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null
}

port_closed() { ! tcp_open 127.0.0.1 "$1"; }

wait_for() { # seconds command...: until the command succeeds or time runs out
  local deadline=$((SECONDS + $1))
  shift
  until "$@"; do
    ((SECONDS < deadline)) || return 1
    sleep 0.1
  done
}




# A server command, as the postgres user when we are root, from DIR (root's cwd may be closed to
# postgres), its output into a log file. The redirection is on the command, never on this function:
# bash would run the EXIT trap of an interrupted start with a function's redirection still in place.
as_pg() { # logfile command...
  local log=$1
  shift
  if [[ -n $is_root ]]; then
    runuser -u postgres -- env -C "$dir" "$@" >"$log" 2>&1
  else
    env -C "$dir" "$@" >"$log" 2>&1
  fi
}

sql() { # port sql: one value, unaligned, no header
  "$pg_bin/psql" -X -q -At -h 127.0.0.1 -p "$1" -U postgres -d postgres -v ON_ERROR_STOP=1 \
    -c "$2" 2>/dev/null
}

ready() { "$pg_bin/pg_isready" -q -h 127.0.0.1 -p "$1" -d postgres -U postgres >/dev/null 2>&1; }

postmaster_of() { # data dir: prints the pid of its running postmaster
  local pid comm
  pid=$(head -n 1 "$1/postmaster.pid" 2>/dev/null) && [[ $pid =~ ^[0-9]+$ ]] || return 1
  comm=$(cat "/proc/$pid/comm" 2>/dev/null) && [[ $comm == postgres ]] && alive "$pid" \
    && echo "$pid"
}

processes_in() { # data dir: pids of every live postgres process whose cwd is it (every server
  # process chdirs into its data directory, so this finds orphaned children of a killed postmaster)
  local p
  for p in /proc/[0-9]*; do
    # -ef: same inode, with no readlink process per /proc entry.
    [[ $p/cwd -ef $1 ]] 2>/dev/null && alive "${p#/proc/}" && echo "${p#/proc/}"
  done
  return 0
}

kill_tree() { # data dir: SIGKILL its postmaster and every child at once, as a crash would
  local data=$1 postmaster pid stat fields processes
  postmaster=$(postmaster_of "$data") || return 0
  # Each child runs in a session of its own (no process group to signal), so: stop the postmaster
  # (it forks no more), list its children, then kill them all in one kill(1).
  kill -STOP "$postmaster" 2>/dev/null || return 0
  wait_for 10 stopped "$postmaster" || die "postmaster $postmaster did not stop"
  processes=("$postmaster")
  for pid in /proc/[0-9]*; do
    read -r stat 2>/dev/null <"$pid/stat" || continue
    read -r -a fields <<<"${stat##*) }"
    [[ ${fields[1]} == "$postmaster" ]] && processes+=("${pid#/proc/}")
  done
  kill -KILL "${processes[@]}" 2>/dev/null || true
  for pid in "${processes[@]}"; do
    wait_for 30 exited "$pid" || die "PostgreSQL process $pid survived SIGKILL"
  done
}

load_ports() { # sets primary_port and standby_port from DIR/ports (written first thing by start)
  [[ -f $dir/ports ]] || return 1
  # shellcheck disable=SC1091
  source "$dir/ports"
}

tail_logs() { # after a failed start: the end of each server's log
  local log
  echo "pg-replica.sh: start failed; stopping what did start. The last lines of the logs:" >&2
  for log in "$dir"/{primary,standby}/{server,pg_ctl,basebackup}.log; do
    [[ -s $log ]] || continue
    echo "--- $log" >&2
    tail -n 20 "$log" >&2
  done
}

# ---------------------------------------------------------------------------------------------
# Commands

start_server() { # name: pg_ctl start, then wait until it accepts connections
  local name=$1 port=$2
  as_pg "$dir/$name/pg_ctl.log" "$pg_bin/pg_ctl" start -D "$dir/$name/data" \
    -l "$dir/$name/server.log" -w -t "$START_TIMEOUT" || die "$name did not start"
  wait_for "$START_TIMEOUT" ready "$port" || die "$name does not accept connections on port $port"
}

streaming_sync() {
  [[ $(sql "$primary_port" "SELECT state || ' ' || sync_state FROM pg_stat_replication
    WHERE application_name = 'standby1'") == "streaming sync" ]]
}

cmd_start() {
  local socket_dir started=''
  [[ -e $dir/primary || -e $dir/standby ]] \
    && die "$dir already holds servers (stop them, use another DIR)"
  # postgres must be able to reach DIR: add the search bit wherever a (root-only) ancestor lacks it.
  if [[ -n $is_root ]]; then
    local d=$dir
    while [[ $d != / ]]; do
      runuser -u postgres -- test -x "$d" || chmod o+x "$d"
      d=$(dirname "$d")
    done
  fi

  local ports
  mapfile -t ports < <(free_ports 2)
  primary_port=${ports[0]} standby_port=${ports[1]}
  [[ $primary_port =~ ^[0-9]+$ && $standby_port =~ ^[0-9]+$ ]] || die "no free ports"
  # First, so that stop finds the ports even after a start that failed halfway.
  printf 'primary_port=%s\nstandby_port=%s\n' "$primary_port" "$standby_port" >"$dir/ports"

  # On any failure below, stop what did start and show the logs: no server outlives a failed start.
  trap 'rc=$?; [[ $rc == 0 || -n $started ]] || { tail_logs; cmd_stop >/dev/null 2>&1; }' EXIT
  trap 'exit 130' INT # the EXIT trap runs on exit only, not on a fatal signal
  trap 'exit 143' TERM

  mkdir -m 700 "$dir/primary" "$dir/standby"
  [[ -n $is_root ]] && chown postgres: "$dir/primary" "$dir/standby"

  # A unix socket path is limited to 107 bytes; a deep DIR gets TCP only (which is all we use).
  socket_path() { if ((${#1} < 80)); then echo "$1"; else echo ''; fi; }

  # --- primary
  as_pg "$dir/primary/initdb.log" "$pg_bin/initdb" -D "$dir/primary/data" -U postgres -A trust \
    -E UTF8 --locale=C -N || die "initdb failed (see $dir/primary/initdb.log)"
  # Trust from 127.0.0.1 and the sockets only, replication connections included.
  # (root writes into the files initdb made: they stay owned by postgres)
  cat >"$dir/primary/data/pg_hba.conf" <<'EOF'
local all         all                trust
local replication all                trust
host  all         all   127.0.0.1/32 trust
host  replication all   127.0.0.1/32 trust
EOF
  socket_dir=$(socket_path "$dir/primary")
  # fsync = off only skips flushing the page cache to disk; a killed process (not a crashed OS)
  # loses nothing by it. synchronous_commit stays on: that is what makes the standby synchronous.
  cat >>"$dir/primary/data/postgresql.conf" <<EOF

# pg-replica.sh
listen_addresses = '127.0.0.1'
port = $primary_port
unix_socket_directories = '$socket_dir'
shared_buffers = 32MB
max_connections = 200
fsync = off
synchronous_commit = on
wal_level = replica
max_wal_senders = 10
max_replication_slots = 10
hot_standby = on
synchronous_standby_names = 'FIRST 1 (standby1)'
logging_collector = off
EOF
  start_server primary "$primary_port"

  # --- standby: a base backup with a replication slot (the primary keeps every WAL segment the
  # standby has not received, so it can never fall behind for good) and standby.signal (-R).
  as_pg "$dir/standby/basebackup.log" "$pg_bin/pg_basebackup" -D "$dir/standby/data" -R \
    -C -S standby1 -c fast -X stream \
    -d "host=127.0.0.1 port=$primary_port user=postgres application_name=standby1" \
    || die "pg_basebackup failed (see $dir/standby/basebackup.log)"
  socket_dir=$(socket_path "$dir/standby")
  # postgresql.auto.conf is read last: these override the primary's settings copied by the backup.
  # primary_conninfo is set again in full, so that application_name=standby1 does not depend on
  # what pg_basebackup -R chooses to copy from its connection.
  cat >>"$dir/standby/data/postgresql.auto.conf" <<EOF
# pg-replica.sh
port = $standby_port
unix_socket_directories = '$socket_dir'
primary_conninfo = 'host=127.0.0.1 port=$primary_port user=postgres application_name=standby1'
primary_slot_name = 'standby1'
hot_standby = on
synchronous_standby_names = ''
EOF
  start_server standby "$standby_port"

  wait_for "$START_TIMEOUT" streaming_sync \
    || die "the standby is not streaming as the synchronous standby of the primary"

  local url="postgres://postgres@127.0.0.1:$primary_port,127.0.0.1:$standby_port/postgres"
  url+="?target_session_attrs=read-write"
  # Double quotes, readable for a shell and for a human; a path with " $ ` or \ is refused.
  [[ $SCRIPT$dir != *[\"\$\`\\]* ]] \
    || die "a path holds a character that needs quoting: $SCRIPT $dir"
  {
    echo "export OWNID_TEST_PG_PRIMARY_PORT=$primary_port"
    echo "export OWNID_TEST_PG_STANDBY_PORT=$standby_port"
    echo "export OWNID_TEST_PG_REPLICA_URL=\"$url\""
    echo "export OWNID_TEST_PG_REPLICA_CTL=\"$SCRIPT\""
    echo "export OWNID_TEST_PG_REPLICA_DIR=\"$dir\""
  } >"$dir/env"
  started=1
  cat "$dir/env"
}

cmd_kill_primary() {
  load_ports || die "$dir holds no servers"
  postmaster_of "$dir/primary/data" >/dev/null || die "the primary is not running"
  kill_tree "$dir/primary/data"
  wait_for 30 port_closed "$primary_port" || die "the primary's port $primary_port is still open"
}

cmd_promote() {
  load_ports || die "$dir holds no servers"
  ready "$standby_port" || die "the standby is not running"
  as_pg "$dir/standby/promote.log" "$pg_bin/pg_ctl" promote -D "$dir/standby/data" -w \
    -t "$START_TIMEOUT" || die "pg_ctl promote failed (see $dir/standby/promote.log)"
  # pg_ctl -w waits for the end of recovery in postmaster.pid; check what clients will see.
  wait_for "$START_TIMEOUT" not_in_recovery "$standby_port" \
    || die "the standby is still in recovery"
}

not_in_recovery() { [[ $(sql "$1" "SELECT pg_is_in_recovery()") == f ]]; }

cmd_stop() {
  local name data pid
  for name in primary standby; do
    data=$dir/$name/data
    [[ -d $data ]] || continue
    if postmaster_of "$data" >/dev/null; then
      as_pg /dev/null "$pg_bin/pg_ctl" stop -D "$data" -m immediate -w -t 30 || kill_tree "$data"
    fi
    # Whatever is left (say, children of a postmaster killed on its own): SIGKILL.
    for pid in $(processes_in "$data"); do
      kill -KILL "$pid" 2>/dev/null || true
    done
    for pid in $(processes_in "$data"); do
      wait_for 30 exited "$pid" || die "PostgreSQL process $pid of $data survived SIGKILL"
    done
  done
}

cmd_status() {
  local name port recovery
  load_ports || die "$dir holds no servers"
  for name in primary standby; do
    port=${name}_port
    port=${!port}
    if ready "$port"; then
      recovery=$(sql "$port" "SELECT pg_is_in_recovery()") || recovery='?'
      echo "$name 127.0.0.1:$port up pg_is_in_recovery=$recovery"
    else
      echo "$name 127.0.0.1:$port down"
    fi
  done
}

# ---------------------------------------------------------------------------------------------

(($# == 2)) || usage
command=$1
[[ -n $2 ]] || usage
if [[ $command == start ]]; then
  mkdir -p "$2"
elif [[ $command == stop && ! -d $2 ]]; then
  exit 0 # nothing was started there
fi
[[ -d $2 ]] || die "no directory $2"
dir=$(cd "$2" && pwd -P)
pg_bin=$(pg_bin_dir)
primary_port='' standby_port=''

case $command in
  start) cmd_start ;;
  kill-primary) cmd_kill_primary ;;
  promote) cmd_promote ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  *) usage ;;
esac
