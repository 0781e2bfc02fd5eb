#!/usr/bin/env bash
# Runs a command with the test suite's throwaway servers, then stops them, however it ends:
#
#   scripts/servers/with.sh [--clusters] COMMAND...
#
# Starts PostgreSQL, PgBouncer in front of it, MariaDB and jongodb (the MongoDB-compatible server)
# in one temporary directory on free ports of 127.0.0.1, and with --clusters also a PostgreSQL
# primary with a synchronous standby and a 3-node MariaDB Galera cluster; exports their URLs and
# directories (OWNID_TEST_*_URL, OWNID_TEST_*_DIR: the tests kill and start a server with
# `scripts/servers/<server>.sh kill|start DIR`) and runs COMMAND. A URL already set in the
# environment is used instead of starting that server (a server given by URL cannot be killed:
# the tests that kill it then fail, never skip):
#   OWNID_TEST_POSTGRES_URL   postgres://user:pass@host:5432/postgres (with OWNID_TEST_PGBOUNCER_URL:
#                             a PgBouncer in transaction mode forwarding every database name to it)
#   OWNID_TEST_MYSQL_URL      mysql://root:pass@host:3306/ (the tests create their own databases)
#   OWNID_TEST_MONGODB_URL    mongodb://host:27017 (a real MongoDB instead of jongodb)
#   OWNID_TEST_DB_CACHE_MB    PostgreSQL's shared_buffers and MariaDB's InnoDB buffer pool (MB;
#                             default 32 and 64, for the tests' small tables)
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/lib.sh

clusters=
[[ ${1:-} == --clusters ]] && { clusters=1; shift; }
(($#)) || die "usage: $0 [--clusters] COMMAND..."
tmp=$(mktemp -d "${TMPDIR:-/tmp}/ownid-servers.XXXXXX")
chmod 711 "$tmp" # the user postgres enters it
started=()
stop_all() {
  local i
  for ((i = ${#started[@]} - 1; i >= 0; i--)); do scripts/servers/${started[i]} >/dev/null 2>&1 || true; done
  rm -rf "$tmp"
}
trap 'rc=$?; trap "" INT TERM; echo "== stopping the test servers"; stop_all; exit $rc' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

start() { # variable script [command] dir [args...]: runs `script start dir args` (or the
  # command given), exports the URL it prints
  local variable=$1 script=$2 command=start
  [[ $3 == /* ]] || { command=$3; shift; }
  started+=("$script stop $3")
  export "$variable=$(scripts/servers/"$script" "$command" "$3" "${@:4}")"
}

echo "== starting the test servers in $tmp"
if [[ -z ${OWNID_TEST_POSTGRES_URL:-} ]]; then
  start OWNID_TEST_POSTGRES_URL postgres.sh "$tmp/postgres"
  export OWNID_TEST_POSTGRES_DIR=$tmp/postgres
  [[ -n ${OWNID_TEST_PGBOUNCER_URL:-} ]] \
    || start OWNID_TEST_PGBOUNCER_URL pgbouncer.sh "$tmp/pgbouncer" "$(<"$tmp/postgres/port")"
fi
[[ -n ${OWNID_TEST_PGBOUNCER_URL:-} ]] \
  || die "OWNID_TEST_POSTGRES_URL is given: give OWNID_TEST_PGBOUNCER_URL too (PgBouncer in transaction mode in front of it)"
if [[ -z ${OWNID_TEST_MYSQL_URL:-} ]]; then
  start OWNID_TEST_MYSQL_URL mariadb.sh "$tmp/mariadb"
  export OWNID_TEST_MYSQL_DIR=$tmp/mariadb
fi
if [[ -z ${OWNID_TEST_MONGODB_URL:-} ]]; then
  start OWNID_TEST_MONGODB_URL jongodb.sh "$tmp/jongodb"
  export OWNID_TEST_MONGODB_DIR=$tmp/jongodb
fi
if [[ -n $clusters ]]; then
  OWNID_TEST_PG_SYNC_STANDBY=standby1 start OWNID_TEST_PG_PRIMARY_URL postgres.sh "$tmp/primary"
  start OWNID_TEST_PG_STANDBY_URL postgres.sh standby "$tmp/standby" "$tmp/primary"
  # libpq-style failover: the client takes whichever of the two accepts writes.
  export OWNID_TEST_PG_REPLICA_URL="postgres://postgres@127.0.0.1:$(<"$tmp/primary/port"),127.0.0.1:$(<"$tmp/standby/port")/postgres?target_session_attrs=read-write"
  export OWNID_TEST_PG_PRIMARY_DIR=$tmp/primary OWNID_TEST_PG_STANDBY_DIR=$tmp/standby
  start OWNID_TEST_GALERA_URLS galera.sh "$tmp/galera"
  OWNID_TEST_GALERA_URLS=$(echo $OWNID_TEST_GALERA_URLS) # one line
  export OWNID_TEST_GALERA_DIR=$tmp/galera
fi

# What each backend runs against, for the log (the password of a given URL hidden).
version() { # variable command...
  printf '   %-24s %s: %s\n' "$1" "$(sed -E 's#(://[^:/@]*):[^@/]*@#\1:***@#' <<<"${!1}")" \
    "$("${@:2}" 2>&1 | head -n 1 || true)"
}
version OWNID_TEST_POSTGRES_URL psql "$OWNID_TEST_POSTGRES_URL" -XAtc "select split_part(version(), ' on ', 1)"
version OWNID_TEST_PGBOUNCER_URL psql "$OWNID_TEST_PGBOUNCER_URL" -XAtc "select 'through PgBouncer: ' || split_part(version(), ' on ', 1)"
version OWNID_TEST_MYSQL_URL mariadb_at "$OWNID_TEST_MYSQL_URL" -NBe "select version()"
if [[ -n ${OWNID_TEST_MONGODB_DIR:-} ]]; then
  version OWNID_TEST_MONGODB_URL echo "jongodb (npm @jongodb/memory-server-bin-linux-x64-gnu)"
else
  version OWNID_TEST_MONGODB_URL echo "given"
fi
"$@"
