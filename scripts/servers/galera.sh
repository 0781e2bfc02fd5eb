#!/usr/bin/env bash
# A throwaway 3-node MariaDB Galera cluster (galera-4) in DIR/node{1,2,3}, each node a
# scripts/servers/mariadb.sh server with a Galera my.cnf, all on free ports of 127.0.0.1:
#
#   galera.sh start DIR         start the 3 nodes, wait until all are Synced; prints the URLs
#   galera.sh kill DIR N        SIGKILL node N (a crash)
#   galera.sh start-node DIR N  start node N again on its data; wait until the cluster is Synced
#   galera.sh stop DIR          stop every node; idempotent
#
# State transfer is rsync (installed when missing and we are root); a killed node rejoins by IST.
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
mariadb=$(dirname "$0")/mariadb.sh

(($# >= 2)) || die "usage: $0 start|stop DIR | kill|start-node DIR N"
command=$1 dir=$2 node=${3:-}
[[ $command == stop && ! -d $dir/node1 ]] && exit 0
mkdir -p "$dir"
dir=$(cd "$dir" && pwd -P)
# mariadbd runs the SST script (and, as root, the rsync wrapper below) from PATH.
export PATH=$dir/bin:$PATH

sql() { # node statement
  "$(find_tool mariadb)" --no-defaults -h 127.0.0.1 -P "$(sed -n 's/^port=//p' "$dir/node$1/my.cnf")" \
    -u root --connect-timeout=2 -N -B -e "$2" 2>/dev/null
}
size_and_state() { # node: "3 Synced" when it is a synced member of the whole cluster
  sql "$1" "SHOW GLOBAL STATUS WHERE Variable_name IN ('wsrep_cluster_size', 'wsrep_local_state_comment')" \
    | awk '{ v[$1] = $2 } END { print v["wsrep_cluster_size"], v["wsrep_local_state_comment"] }'
}
synced() { local n; for n in 1 2 3; do [[ $(size_and_state "$n") == "3 Synced" ]] || return 1; done; }

configure() { # the ports of the three nodes (sql gcomm ist sst, four each), then node
  local ports=("${@:1:12}") n=${13} peers
  local p=$(((n - 1) * 4))
  peers=127.0.0.1:${ports[1]},127.0.0.1:${ports[5]},127.0.0.1:${ports[9]}
  mkdir -p "$dir/node$n/tmp"
  # A config file rather than options: the SST scripts read the server's settings from it. The evs
  # timeouts are shorter than the defaults (5 s/15 s), so that writes on the survivors stall for
  # less time after a kill, yet long enough for a machine busy compiling.
  cat >"$dir/node$n/my.cnf" <<EOF
[mysqld]
datadir=$dir/node$n/data
tmpdir=$dir/node$n/tmp
socket=$dir/node$n/mysqld.sock
log-error=$dir/node$n/error.log
port=${ports[p]}
bind-address=127.0.0.1
skip-name-resolve
skip-log-bin
performance-schema=off
max-connections=500
character-set-server=utf8mb4
collation-server=utf8mb4_general_ci
innodb-buffer-pool-size=64M
innodb-log-file-size=32M
innodb-flush-log-at-trx-commit=2
innodb-autoinc-lock-mode=2
binlog-format=ROW
wsrep-on=ON
wsrep-provider=$provider
wsrep-cluster-name=ownid-test
wsrep-cluster-address=gcomm://$peers
wsrep-node-name=node$n
wsrep-node-address=127.0.0.1:${ports[p + 1]}
wsrep-node-incoming-address=127.0.0.1:${ports[p]}
wsrep-sst-method=$sst
wsrep-sst-receive-address=127.0.0.1:${ports[p + 3]}
wsrep-provider-options=gmcast.listen_addr=tcp://127.0.0.1:${ports[p + 1]};ist.recv_addr=127.0.0.1:${ports[p + 2]};gcache.size=64M;evs.suspect_timeout=PT3S;evs.inactive_timeout=PT6S;evs.install_timeout=PT3S
EOF
}

# As root, wsrep_sst_rsync's `rsync --daemon` would switch to the user nobody, who may not enter a
# private temp dir nor write root's data dir ("cannot stat destination"). So as root the SST method
# is "ownid_rsync", a script in DIR/bin that runs the stock wsrep_sst_rsync with DIR/bin first on
# its PATH, where an rsync adds "uid = root" to the daemon's config (mariadbd puts /usr/bin first
# on the SST's own PATH, so a plain rsync wrapper is not enough).
rsync_as_root() {
  mkdir -p "$dir/bin"
  cat >"$dir/bin/rsync" <<EOF
#!/bin/sh
conf=''; prev=''; daemon=''
for arg in "\$@"; do
  case \$arg in --daemon) daemon=1 ;; --config=*) conf=\${arg#--config=} ;; esac
  case \$prev in --config) conf=\$arg ;; esac
  prev=\$arg
done
[ -n "\$daemon" ] && [ -f "\$conf" ] && ! grep -q '^uid *=' "\$conf" && sed -i '1i uid = root\ngid = root' "\$conf"
exec $(command -v rsync) "\$@"
EOF
  printf '#!/bin/sh\nPATH=%s:$PATH exec bash %s "$@"\n' "$dir/bin" "$(command -v wsrep_sst_rsync)" \
    >"$dir/bin/wsrep_sst_ownid_rsync"
  chmod +x "$dir/bin/rsync" "$dir/bin/wsrep_sst_ownid_rsync"
}

# After a crash grastate.dat says seqno -1 and the node would ask for a full SST (under a lock that
# stalls the donor's writes). As systemd's galera_recovery does, read the last committed position
# from InnoDB with --wsrep-recover, so that the node asks for an IST of what it missed.
start_position() { # node
  local d=$dir/node$1 position
  grep -Eq '^seqno:[[:space:]]+-1' "$d/data/grastate.dat" 2>/dev/null || return 0
  timeout 120 "$(find_tool mariadbd)" --defaults-file="$d/my.cnf" --wsrep-recover \
    $([[ $(id -u) == 0 ]] && echo --user=root) --log-error="$d/recover.log" >/dev/null 2>&1 </dev/null \
    || return 0
  position=$(sed -n 's/.*WSREP: Recovered position: \([0-9a-f-]*:[0-9][0-9]*\).*/\1/p' "$d/recover.log" | tail -n 1)
  [[ -n $position ]] && echo "--wsrep-start-position=$position"
  return 0
}

case $command in
  start)
    [[ -d $dir/node1 ]] && die "$dir already holds a cluster"
    provider=$(dpkg -L galera-4 2>/dev/null | grep -m 1 'libgalera_smm\.so$') \
      || die "the Galera provider is missing (package galera-4)"
    for tool in rsync ss; do
      command -v $tool >/dev/null || { [[ $(id -u) == 0 ]] && apt-get install -y -q rsync iproute2 >&2; } \
        || die "$tool is missing (apt-get install rsync iproute2)"
    done
    sst=rsync
    [[ $(id -u) == 0 ]] && { sst=ownid_rsync; rsync_as_root; }
    mapfile -t ports < <(free_ports 12)
    for n in 1 2 3; do configure "${ports[@]}" "$n"; done
    # One install; the other nodes receive their data by SST anyway, a copy only lets them start.
    "$mariadb" install "$dir/node1"
    cp -a "$dir/node1/data" "$dir/node2/data"
    cp -a "$dir/node1/data" "$dir/node3/data"
    # Any failure from here on stops what did start: the caller gets no half cluster.
    trap 'rc=$?; ((rc)) && for n in 1 2 3; do "$mariadb" stop "$dir/node$n"; done; exit $rc' EXIT
    "$mariadb" start "$dir/node1" --wsrep-new-cluster >/dev/null
    for n in 2 3; do "$mariadb" start "$dir/node$n" >/dev/null; done
    wait_for 120 synced || die "the cluster did not form within 120 s (logs: $dir/node*/error.log)"
    trap - EXIT
    for n in 1 2 3; do echo "mysql://root@127.0.0.1:${ports[(n - 1) * 4]}/"; done
    ;;
  kill) "$mariadb" kill "$dir/node${node:?N}" ;;
  start-node)
    "$mariadb" start "$dir/node${node:?N}" $(start_position "$node") >/dev/null
    wait_for 120 synced || die "node $node did not rejoin within 120 s (log: $dir/node$node/error.log)"
    ;;
  stop) for n in 1 2 3; do "$mariadb" stop "$dir/node$n"; done ;;
  *) die "unknown command $command" ;;
esac
