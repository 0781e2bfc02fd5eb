#!/usr/bin/env bash
# PgBouncer in transaction mode in DIR, on a free port of 127.0.0.1, in front of the PostgreSQL
# listening on PG_PORT, configured as a company would run it: its defaults, no
# ignore_startup_parameters, every database name forwarded (the tests give each case a database).
# It refuses to run as root: as root, it runs as the user postgres.
#
#   pgbouncer.sh start DIR PG_PORT | stop DIR
set -euo pipefail
source "$(dirname "$0")/../lib.sh"

(($# >= 2)) || die "usage: $0 start DIR PG_PORT | stop DIR"
command=$1 dir=$2
[[ $command == stop && ! -f $dir/pgbouncer.ini ]] && exit 0
mkdir -p "$dir"
dir=$(cd "$dir" && pwd -P)
case $command in
  start)
    port=$(free_ports 1)
    echo '"postgres" ""' >"$dir/users.txt"
    # Idle server connections go soon: each test's database is a pool of its own, and they would
    # add up on the throwaway PostgreSQL (max_connections 200).
    cat >"$dir/pgbouncer.ini" <<INI
[databases]
* = host=127.0.0.1 port=${3:?PG_PORT}
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $port
unix_socket_dir =
auth_type = trust
auth_file = $dir/users.txt
pool_mode = transaction
max_client_conn = 1000
default_pool_size = 20
server_idle_timeout = 10
INI
    as=()
    [[ $(id -u) == 0 ]] && { chown -R postgres: "$dir"; as=(runuser -u postgres --); }
    echo "$port" >"$dir/port"
    launch "$dir/server.pid" "$dir/pgbouncer.log" "${as[@]}" "$(find_tool pgbouncer)" "$dir/pgbouncer.ini"
    wait_for 60 tcp_open "$port" || fail_with_log PgBouncer "$dir/pgbouncer.log"
    echo "postgres://postgres@127.0.0.1:$port/postgres"
    ;;
  stop) end_session TERM "$dir/server.pid" "$(<"$dir/port")" ;;
  *) die "unknown command $command" ;;
esac
