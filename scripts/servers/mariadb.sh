#!/usr/bin/env bash
# One throwaway MariaDB in DIR, on a free port of 127.0.0.1 (never the machine's own 3306):
#
#   mariadb.sh start DIR [OPTION...]  install on first use, start mariadbd with DIR/my.cnf (written
#                                     on first use unless the caller wrote it: a Galera node) and
#                                     OPTIONs, wait until it answers; prints its URL. Started again
#                                     after a kill, it runs crash recovery on the same data and port.
#   mariadb.sh install DIR            only the install (scripts/servers/galera.sh copies it)
#   mariadb.sh kill DIR               SIGKILL its session (mariadbd and any helper it ran: a crash)
#   mariadb.sh stop DIR               SIGTERM, SIGKILL after 10 s; idempotent
#
# Durability across a kill: innodb-flush-log-at-trx-commit=2 writes the redo log to the OS at every
# commit and only defers the fsync, so a killed mariadbd loses no acknowledged transaction
# (measured); the doublewrite buffer stays on, against pages torn by the kill.
set -euo pipefail
source "$(dirname "$0")/../lib.sh"

(($# >= 2)) || die "usage: $0 start|install|kill|stop DIR [OPTION...]"
command=$1 dir=$2
shift 2
[[ $command == stop && ! -f $dir/my.cnf ]] && exit 0
mkdir -p "$dir/tmp"
dir=$(cd "$dir" && pwd -P)
root=()
[[ $(id -u) == 0 ]] && root=(--user=root)
[[ -f $dir/my.cnf ]] || cat >"$dir/my.cnf" <<EOF
[mysqld]
datadir=$dir/data
tmpdir=$dir/tmp
socket=$dir/mysqld.sock
log-error=$dir/error.log
port=$(free_ports 1)
bind-address=127.0.0.1
skip-name-resolve
skip-log-bin
performance-schema=off
max-connections=500
character-set-server=utf8mb4
collation-server=utf8mb4_general_ci
innodb-buffer-pool-size=${OWNID_TEST_DB_CACHE_MB:-64}M
innodb-log-file-size=32M
innodb-flush-log-at-trx-commit=2
EOF
port=$(sed -n 's/^port=//p' "$dir/my.cnf")

install() {
  [[ -d $dir/data ]] && return
  "$(find_tool mariadb-install-db)" --defaults-file="$dir/my.cnf" --wsrep-on=OFF "${root[@]}" \
    --auth-root-authentication-method=normal --skip-test-db >"$dir/install.log" 2>&1 \
    || fail_with_log mariadb-install-db "$dir/install.log"
}

answers() { "$(find_tool mariadb-admin)" --no-defaults -h 127.0.0.1 -P "$port" -u root ping >/dev/null 2>&1; }

case $command in
  install) install ;;
  start)
    install
    launch "$dir/server.pid" "$dir/error.log" "$(find_tool mariadbd)" --defaults-file="$dir/my.cnf" \
      "${root[@]}" "$@"
    up() { answers || { exited "$(<"$dir/server.pid")" && fail_with_log MariaDB "$dir/error.log"; }; }
    wait_for 120 up || fail_with_log MariaDB "$dir/error.log"
    echo "mysql://root@127.0.0.1:$port/"
    ;;
  kill) end_session KILL "$dir/server.pid" "$port" ;;
  stop) end_session TERM "$dir/server.pid" "$port" ;;
  *) die "unknown command $command" ;;
esac
