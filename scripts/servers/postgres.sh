#!/usr/bin/env bash
# One throwaway PostgreSQL in DIR, on a free port of 127.0.0.1 (never the machine's own 5432):
#
#   postgres.sh start DIR             initdb on first use, start, wait until it accepts
#                                     connections; prints its URL. Started again after a kill, it
#                                     runs crash recovery on the same data and port.
#   postgres.sh standby DIR PRIMARY   a synchronous streaming standby ("standby1") of the server in
#                                     PRIMARY: pg_basebackup, start, wait until it streams in sync
#   postgres.sh kill DIR              SIGKILL the postmaster and all its children at once (a crash)
#   postgres.sh promote DIR           promote a standby; wait until it accepts writes
#   postgres.sh stop DIR              stop (immediate); idempotent
#
# Durability across a kill: fsync = off only skips flushing the page cache to the disk, which a
# killed process (not a crashed OS) never needs; synchronous_commit and full_page_writes keep their
# defaults (with synchronous_commit off a kill lost 10 to 60 acknowledged commits). A primary
# (OWNID_TEST_PG_SYNC_STANDBY=standby1) waits for its standby's flush at every commit.
# PostgreSQL refuses to run as root: as root, it runs as the user postgres.
set -euo pipefail
source "$(dirname "$0")/../lib.sh"

(($# >= 2)) || die "usage: $0 start|standby|kill|promote|stop DIR [PRIMARY]"
command=$1 dir=$2
[[ $command == stop && ! -d $dir/data ]] && exit 0
mkdir -p "$dir"
dir=$(cd "$dir" && pwd -P)
bin=$(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
[[ -x $bin/initdb ]] || die "no PostgreSQL server in /usr/lib/postgresql/*/bin"

as_pg() { # log command...: as postgres when root, from DIR (root's cwd may be closed to postgres)
  local log=$1
  shift
  if [[ $(id -u) == 0 ]]; then runuser -u postgres -- env -C "$dir" "$@" >"$log" 2>&1
  else env -C "$dir" "$@" >"$log" 2>&1; fi
}

sql() { "$bin/psql" -X -At -h 127.0.0.1 -p "$1" -U postgres -d postgres -c "$2" 2>/dev/null; }
ready() { "$bin/pg_isready" -q -h 127.0.0.1 -p "$1" -U postgres -d postgres >/dev/null 2>&1; }
postmaster() { local pid; pid=$(head -n 1 "$dir/data/postmaster.pid" 2>/dev/null) && alive "$pid" && echo "$pid"; }

configure() { # port: the settings both kinds of server take, in postgresql.auto.conf (read last)
  cat >>"$dir/data/postgresql.auto.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $1
unix_socket_directories = ''
shared_buffers = ${OWNID_TEST_DB_CACHE_MB:-32}MB
max_connections = 200
fsync = off
max_wal_senders = 10
synchronous_standby_names = '${OWNID_TEST_PG_SYNC_STANDBY:-}'
EOF
  echo "$1" >"$dir/port"
}

start() {
  local port
  port=$(<"$dir/port")
  as_pg "$dir/pg_ctl.log" "$bin/pg_ctl" start -D "$dir/data" -l "$dir/server.log" -w -t 60 \
    && wait_for 60 ready "$port" || fail_with_log PostgreSQL "$dir/server.log" "$dir/pg_ctl.log"
  echo "postgres://postgres@127.0.0.1:$port/postgres"
}

# Each child of the postmaster runs in a session of its own (no group to signal): stop the
# postmaster (it forks no more), list its children, kill them all in one kill(1).
kill_all() {
  local pid children
  pid=$(postmaster) || return 0
  kill -STOP "$pid"
  mapfile -t children < <(ps -o pid= --ppid "$pid")
  kill -KILL "$pid" "${children[@]}" 2>/dev/null || true
  for pid in "$pid" "${children[@]}"; do wait_for 30 exited "$pid" || die "$pid survived SIGKILL"; done
  wait_for 30 port_closed "$(<"$dir/port")" || die "port $(<"$dir/port") is still open"
  rm -f "$dir/data/postmaster.pid" # a zombie postmaster (awaiting init) would block a restart
}

if [[ $(id -u) == 0 ]]; then # postgres must reach DIR: add the search bit where an ancestor lacks it
  for d in "$dir" $(d=$dir; while [[ $d != / ]]; do d=$(dirname "$d"); echo "$d"; done); do
    runuser -u postgres -- test -x "$d" || chmod o+x "$d"
  done
  chown postgres: "$dir"
fi
case $command in
  start)
    if [[ ! -d $dir/data ]]; then
      as_pg "$dir/initdb.log" "$bin/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 \
        --locale=C --no-sync || fail_with_log initdb "$dir/initdb.log"
      echo "host replication all 127.0.0.1/32 trust" >>"$dir/data/pg_hba.conf"
      configure "$(free_ports 1)"
    fi
    start
    ;;
  standby)
    primary=$(cd "${3:?the DIR of the primary}" && pwd -P)
    conninfo="host=127.0.0.1 port=$(<"$primary/port") user=postgres application_name=standby1"
    # A replication slot: the primary keeps every WAL segment the standby has not received.
    as_pg "$dir/basebackup.log" "$bin/pg_basebackup" -D "$dir/data" -R -C -S standby1 -c fast \
      -X stream -d "$conninfo" || fail_with_log pg_basebackup "$dir/basebackup.log"
    echo "primary_conninfo = '$conninfo'" >>"$dir/data/postgresql.auto.conf"
    # Once promoted it has no standby of its own: its commits must not wait for one.
    OWNID_TEST_PG_SYNC_STANDBY='' configure "$(free_ports 1)"
    start
    in_sync() { [[ $(sql "$(<"$primary/port")" "SELECT sync_state FROM pg_stat_replication WHERE application_name = 'standby1'") == sync ]]; }
    wait_for 60 in_sync || die "the standby does not stream in sync"
    ;;
  kill) kill_all ;;
  promote)
    as_pg "$dir/promote.log" "$bin/pg_ctl" promote -D "$dir/data" -w -t 60 || fail_with_log promote "$dir/promote.log"
    writable() { [[ $(sql "$(<"$dir/port")" "SELECT pg_is_in_recovery()") == f ]]; }
    wait_for 60 writable || die "the standby is still in recovery"
    ;;
  stop)
    if postmaster >/dev/null; then as_pg /dev/null "$bin/pg_ctl" stop -D "$dir/data" -m immediate -w -t 30 || kill_all; fi
    ;;
  *) die "unknown command $command" ;;
esac
