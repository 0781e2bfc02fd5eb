#!/usr/bin/env bash
# The whole test suite, as CI runs it: formatting, lints, then every test of the workspace, with
# a throwaway PostgreSQL, MariaDB and MongoDB-compatible server (jongodb) for the backend tests.
#
# The servers live in one temporary directory, listen on free ports on 127.0.0.1 only (never the
# machine's own 5432 or 3306) and are stopped and removed when the script exits, however it exits.
# Missing server packages are installed with apt-get when run as root (Debian 12); jongodb comes
# from npm into .cache/jongodb (gitignored).
#
# Environment:
#   OWNID_TEST_POSTGRES_URL  use this PostgreSQL instead of starting one,
#                            e.g. postgres://user:pass@db.local:5432/postgres
#   OWNID_TEST_MYSQL_URL     use this MySQL/MariaDB instead of starting one (the tests create their
#                            own databases), e.g. mysql://root:pass@127.0.0.1:3307/
#   OWNID_TEST_MONGODB_URL   use this MongoDB instead of starting jongodb,
#                            e.g. mongodb://127.0.0.1:27017
#   OWNID_TEST_PG_REPLICA_URL (with OWNID_TEST_PG_REPLICA_CTL and _DIR, see scripts/pg-replica.sh)
#                            use this primary and synchronous standby for the failover test
#                            instead of starting a pair
#   OWNID_TEST_GALERA_URLS   use these three MariaDB Galera nodes (space-separated
#                            mysql://root@host:port/ URLs) instead of starting a cluster
#   OWNID_TEST_PGBOUNCER_URL use this PgBouncer (pool_mode = transaction, in front of the
#                            PostgreSQL above, forwarding every database name) instead of
#                            starting one
#   OWNID_TEST_ONLY_SERVERS=1  start the servers, print their URLs, check that each one answers,
#                            then stop them; cargo is not run.
#   OWNID_TEST_SERVERS_RUN=CMD start the servers, run CMD (bash -c) with their URLs exported, then
#                            stop them; the suite is not run (scripts/bench.sh uses this).
#   OWNID_TEST_DB_CACHE_MB=N   PostgreSQL's shared_buffers and MariaDB's InnoDB buffer pool, in MB
#                            (default 32 and 64: small, for the tests' small tables;
#                            scripts/bench.sh gives them room for its 1,000,000-user tables).
#
# For each server it starts itself, the script also exports OWNID_TEST_POSTGRES_CTL,
# OWNID_TEST_MYSQL_CTL or OWNID_TEST_MONGODB_CTL: a control script (`kill` or `start`, see "Each
# server's start and kill" below) with which tests/faults.rs crashes that database under load. A
# server given by URL cannot be killed, so tests/faults.rs fails then: it is never skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

JONGODB_PACKAGE=@jongodb/memory-server-bin-linux-x64-gnu
JONGODB_VERSION=0.1.6
JONGODB_PREFIX=.cache/jongodb
JONGODB_DIR=$JONGODB_PREFIX/node_modules/$JONGODB_PACKAGE
START_TIMEOUT=60 # seconds each server gets to accept connections

[[ ${OWNID_TEST_DB_CACHE_MB:-64} =~ ^[1-9][0-9]*$ ]] || {
  echo "test.sh: OWNID_TEST_DB_CACHE_MB must be a number of MB" >&2
  exit 1
}
only_servers=${OWNID_TEST_ONLY_SERVERS:-}
[[ $only_servers == 0 ]] && only_servers=
servers_run=${OWNID_TEST_SERVERS_RUN:-}
[[ -n $servers_run ]] && only_servers=1
is_root=
[[ $(id -u) == 0 ]] && is_root=1

die() {
  echo "test.sh: $*" >&2
  exit 1
}

# Which servers this run starts: those whose URL is not already given.
start_pg='' start_my='' start_mongo='' start_pgb=''
[[ -z ${OWNID_TEST_POSTGRES_URL:-} ]] && start_pg=1
[[ -z ${OWNID_TEST_PGBOUNCER_URL:-} ]] && start_pgb=1
[[ -z ${OWNID_TEST_MYSQL_URL:-} ]] && start_my=1
[[ -z ${OWNID_TEST_MONGODB_URL:-} ]] && start_mongo=1

# ---------------------------------------------------------------------------------------------
# Tools

pg_bindir() {
  local d
  for d in $(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V -r); do
    if [[ -x $d/initdb && -x $d/pg_ctl ]]; then
      echo "$d"
      return 0
    fi
  done
  if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
    dirname "$(command -v pg_ctl)"
    return 0
  fi
  return 1
}


if [[ -z $only_servers ]]; then
  command -v cargo >/dev/null 2>&1 || die "cargo is not installed (https://rustup.rs)"
  if ! { cargo fmt --version && cargo clippy --version; } >/dev/null 2>&1; then
    # Offline this may fail; cargo fmt or cargo clippy then says what is missing.
    rustup component add rustfmt clippy || true
  fi
fi
if [[ -n $start_mongo && $(uname -sm) != "Linux x86_64" ]]; then
  die "jongodb is only installed for Linux x86_64 here; set OWNID_TEST_MONGODB_URL to a MongoDB"
fi

missing=()
if [[ -n $start_pg ]] && ! pg_bindir >/dev/null; then
  missing+=(postgresql)
fi
if [[ -n $start_pgb ]]; then
  [[ -n $start_pg ]] || die "OWNID_TEST_POSTGRES_URL is set: set OWNID_TEST_PGBOUNCER_URL too" \
    "(a PgBouncer in transaction mode in front of it), or leave both unset"
  find_tool pgbouncer >/dev/null || missing+=(pgbouncer)
fi
if [[ -z $only_servers && -z ${OWNID_TEST_GALERA_URLS:-} ]] \
  && ! dpkg -L galera-4 2>/dev/null | grep -q 'libgalera_smm\.so$'; then
  missing+=(galera-4)
fi
if [[ -z $only_servers ]] && ! find_tool haproxy >/dev/null; then
  missing+=(haproxy) # in front of the instances in tests/killed.rs
fi
if [[ -n $start_my ]] && ! { find_tool mariadb-install-db >/dev/null && find_tool mariadbd >/dev/null; }; then
  missing+=(mariadb-server)
fi
if [[ -n $start_mongo ]] && ! { command -v node >/dev/null && command -v npm >/dev/null; }; then
  missing+=(nodejs npm)
fi
if [[ -z $only_servers ]] && ! command -v java >/dev/null; then
  missing+=(default-jre-headless) # OpenAPI Generator (clients/openapi-generator)
fi
if [[ -n $start_pg$start_my$start_mongo ]] && ! command -v python3 >/dev/null && ! command -v node >/dev/null \
  && [[ -z $start_mongo ]]; then
  missing+=(python3) # to pick free ports
fi
if ((${#missing[@]})); then
  if [[ -z $is_root ]]; then
    die "missing ${missing[*]} (Debian packages); install them, run as root, or set the" \
      "OWNID_TEST_*_URL variables to existing servers"
  fi
  echo "== apt-get install ${missing[*]}"
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# ---------------------------------------------------------------------------------------------
# Helpers


tcp_open() { # host port
  (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null
}

wait_for() { # pid seconds command...: until the command succeeds, the pid dies or time runs out
  local pid=$1 deadline=$((SECONDS + $2))
  shift 2
  until "$@"; do
    if [[ -n $pid ]] && ! kill -0 "$pid" 2>/dev/null; then
      return 1
    fi
    ((SECONDS < deadline)) || return 1
    sleep 0.1
  done
}

fail_with_log() { # name logfile...
  local log
  echo "test.sh: $1 did not start; the last lines of its log:" >&2
  for log in "${@:2}"; do
    [[ -s $log ]] && tail -n 40 "$log" >&2
  done
  exit 1
}

redact() { # hides the password of a URL
  sed -E 's#(://[^:/@]*):[^@/]*@#\1:***@#' <<<"$1"
}

# ---------------------------------------------------------------------------------------------
# Servers and teardown

tmp=
pg_data='' pg_bin=''
bridge_pid='' apps_pid=''
# MariaDB and jongodb write their pid here at every start (the first one and a control script's
# `start`) and a kill removes it, so the teardown stops whichever process runs at the end.
my_pidfile='' mongo_pidfile='' pgb_pidfile=''

# A command that a signal can interrupt never has its output redirected on a function or a builtin:
# bash would run the teardown with that redirection still in place.
pg_cmd() { # logfile command...: a PostgreSQL server command, as the postgres user when we are root
  local log=$1
  shift
  if [[ -n $is_root ]]; then
    runuser -u postgres -- env -C "$tmp/pg" "$@" >"$log" 2>&1
  else
    "$@" >"$log" 2>&1
  fi
}



reaped() { ! kill -0 "$1" 2>/dev/null; }
port_closed() { ! tcp_open 127.0.0.1 "$1"; }

stop_pid() { # pid: SIGTERM, then SIGKILL after 10 s
  local pid=$1 i
  kill -TERM "$pid" 2>/dev/null || return 0
  for ((i = 0; i < 100; i++)); do
    alive "$pid" || break
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

cleaned=
cleanup() {
  local rc=$?
  [[ -n $cleaned ]] && return
  cleaned=1
  trap '' INT TERM
  set +e
  [[ -n $bridge_pid ]] && stop_pid "$bridge_pid"
  [[ -n $apps_pid ]] && stop_pid "$apps_pid"
  if [[ -n $tmp ]]; then
    echo "== stopping test servers"
    local pid pidfile
    # A postmaster.pid left by a kill without a restart names no running postgres: nothing to stop.
    if [[ -n $pg_data ]] && pid=$(pg_postmaster); then
      pg_cmd /dev/null "$pg_bin/pg_ctl" stop -D "$pg_data" -m immediate -w -t 30 \
        || kill -KILL "$pid" 2>/dev/null
    fi
    [[ -d $tmp/pg-replica ]] && scripts/pg-replica.sh stop "$tmp/pg-replica" >/dev/null 2>&1
    [[ -d $tmp/galera ]] && scripts/galera.sh stop "$tmp/galera" >/dev/null 2>&1
    for pidfile in "$my_pidfile" "$mongo_pidfile" "$pgb_pidfile"; do
      [[ -n $pidfile && -f $pidfile ]] && stop_pid "$(<"$pidfile")"
    done
    rm -rf "$tmp"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------------------------------------
# Each server's start and kill
#
# The first start below and a control script's `start` run the same function: write_ctl writes
# $tmp/ctl/<backend> from this script's own definitions (declare -f, declare -p), so each command
# line exists once. tests/faults.rs crashes a database under load with them:
#   $tmp/ctl/<backend> kill    SIGKILL the server (no shutdown request: a crash), then wait until
#                              its port is closed and the process is gone
#   $tmp/ctl/<backend> start   start it again with the same data directory, port and options, and
#                              wait until it accepts connections (PostgreSQL and MariaDB run crash
#                              recovery first; jongodb keeps its data in memory and comes back empty)
#
# Durability across such a kill. A killed process loses what it had not yet handed to the kernel;
# what a write() put in the page cache survives, because the OS itself does not crash. So:
# - PostgreSQL `fsync = off` is safe here: it only skips the flush from the page cache to the
#   disk, which matters for an OS crash or a power loss, never for a killed server.
# - `synchronous_commit` must stay on (the default): with off, COMMIT returns while its WAL record
#   may still sit in WAL buffers in shared memory, and the kill loses it (measured with this
#   configuration: 10 to 60 acknowledged commits lost per kill; none with on).
# - `full_page_writes` stays on (the default): a kill can stop the kernel's copy of an 8 KB page
#   write between its 4 KB pages, and only the full-page image in the WAL lets recovery repair
#   that torn page. For the same reason MariaDB keeps its doublewrite buffer.
# - MariaDB `innodb-flush-log-at-trx-commit=2` writes the redo log to the OS at every commit and
#   only defers the fsync, so a killed mariadbd loses no acknowledged transaction (measured: none
#   lost; the one statement in flight may be committed without having been acknowledged).

pg_ready() { "$pg_isready" -q -h 127.0.0.1 -p "$pg_port" -d postgres -U postgres >/dev/null 2>&1; }

pg_start() {
  pg_cmd "$tmp/pg/pg_ctl.log" "$pg_bin/pg_ctl" start -D "$pg_data" -l "$tmp/pg/server.log" -w \
    -t "$START_TIMEOUT" || fail_with_log PostgreSQL "$tmp/pg/server.log" "$tmp/pg/pg_ctl.log"
  wait_for "" "$START_TIMEOUT" pg_ready || fail_with_log PostgreSQL "$tmp/pg/server.log"
}

pg_postmaster() { # prints the pid of the running postmaster of $pg_data
  local pid
  pid=$(head -n 1 "$pg_data/postmaster.pid" 2>/dev/null) && [[ $pid =~ ^[0-9]+$ ]] \
    && [[ $(<"/proc/$pid/comm") == postgres ]] 2>/dev/null && alive "$pid" && echo "$pid"
}

pg_kill() {
  local postmaster pid stat fields processes
  postmaster=$(pg_postmaster) || die "PostgreSQL is not running"
  # The postmaster and all its children at once. Each child runs in a session of its own (no
  # process group to signal), so: stop the postmaster (it forks no more), list its children, kill.
  kill -STOP "$postmaster"
  wait_for "" 10 stopped "$postmaster" || die "postmaster $postmaster did not stop"
  processes=("$postmaster")
  for pid in /proc/[0-9]*; do
    read -r stat 2>/dev/null <"$pid/stat" || continue
    read -r -a fields <<<"${stat##*) }" # as in proc_stat, without a subshell per process
    [[ ${fields[1]} == "$postmaster" ]] && processes+=("${pid#/proc/}")
  done
  kill -KILL "${processes[@]}" 2>/dev/null || true
  wait_for "" 30 port_closed "$pg_port" || die "PostgreSQL's port $pg_port is still open"
  for pid in "${processes[@]}"; do
    wait_for "" 30 exited "$pid" || die "PostgreSQL process $pid survived SIGKILL"
  done
  # A postmaster refuses to start while the pid in postmaster.pid answers kill -0, as a zombie does.
  # Its parent is init (pg_ctl has exited), which reaps it; the lock file of a dead server may go.
  wait_for "" 10 reaped "$postmaster" || rm -f "$pg_data/postmaster.pid"
}

my_ping() { "$my_admin" --no-defaults -h 127.0.0.1 -P "$my_port" -u root ping >/dev/null 2>&1; }

my_start() {
  local pid
  "$mariadbd" --no-defaults --datadir="$my_dir/data" --port="$my_port" --bind-address=127.0.0.1 \
    --socket="$my_dir/mysqld.sock" --pid-file="$my_dir/mysqld.pid" --log-error="$my_dir/server.log" \
    --tmpdir="$my_dir" "${my_user[@]}" "${my_opts[@]}" --max-connections=500 --skip-log-bin \
    --skip-name-resolve --performance-schema=off >>"$my_dir/server.log" 2>&1 </dev/null &
  pid=$!
  disown "$pid" # a kill is expected: no "Killed" job report
  echo "$pid" >"$my_pidfile"
  wait_for "$pid" "$START_TIMEOUT" my_ping || fail_with_log MariaDB "$my_dir/server.log"
}

my_kill() { kill_server "$my_pidfile" "$my_port" MariaDB; }

mongo_start() {
  local pid
  "$JONGODB_DIR/bin/jongodb" -Xmx256m --host=127.0.0.1 --port="$mongo_port" \
    >>"$tmp/mongo/server.log" 2>&1 </dev/null &
  pid=$!
  disown "$pid" # a kill is expected: no "Killed" job report
  echo "$pid" >"$mongo_pidfile"
  wait_for "$pid" "$START_TIMEOUT" tcp_open 127.0.0.1 "$mongo_port" \
    || fail_with_log jongodb "$tmp/mongo/server.log"
}

mongo_kill() { kill_server "$mongo_pidfile" "$mongo_port" jongodb; }

kill_server() { # pidfile port name: SIGKILL a one-process server, wait for its port and its end
  local pid
  { pid=$(<"$1") && alive "$pid"; } 2>/dev/null || die "$3 is not running"
  kill -KILL "$pid"
  wait_for "" 30 port_closed "$2" || die "$3's port $2 is still open"
  wait_for "" 30 exited "$pid" || die "$3 (pid $pid) survived SIGKILL"
  rm -f "$1"
}

write_ctl() { # backend prefix name...: writes $tmp/ctl/<backend> with these variables and functions
  local backend=$1 prefix=$2 name script
  shift 2
  script="#!/usr/bin/env bash
# $tmp/ctl/$backend kill|start: written by scripts/test.sh from its own definitions.
set -euo pipefail
cd $(printf %q "$PWD")
"
  for name in tmp is_root START_TIMEOUT die wait_for tcp_open proc_stat alive exited stopped \
    reaped port_closed fail_with_log kill_server "${prefix}_start" "${prefix}_kill" "$@"; do
    if declare -F "$name" >/dev/null; then
      script+=$(declare -f "$name")$'\n'
    else
      script+=$(declare -p "$name")$'\n'
    fi
  done
  script+="case \${1:-} in
  kill) ${prefix}_kill ;;
  start) ${prefix}_start ;;
  *)
    echo \"usage: \$0 kill|start\" >&2
    exit 2
    ;;
esac
"
  mkdir -p "$tmp/ctl"
  printf '%s' "$script" >"$tmp/ctl/$backend"
  chmod +x "$tmp/ctl/$backend"
}

started_at=$SECONDS
tmp=$(mktemp -d "${TMPDIR:-/tmp}/ownid-test.XXXXXX")
chmod 711 "$tmp" # the postgres user has to reach $tmp/pg
mapfile -t ports < <(free_ports 5)
((${#ports[@]} == 5)) || die "could not pick free ports"

if [[ -n $start_pg ]]; then
  echo "== starting PostgreSQL"
  pg_bin=$(pg_bindir)
  pg_port=${ports[0]}
  pg_data=$tmp/pg/data
  mkdir -p "$tmp/pg"
  if [[ -n $is_root ]]; then
    id postgres >/dev/null 2>&1 || die "PostgreSQL refuses to run as root and there is no postgres user"
    chown postgres: "$tmp/pg"
  fi
  pg_cmd "$tmp/pg/initdb.log" "$pg_bin/initdb" -D "$pg_data" -U postgres -A trust -E UTF8 \
    --locale=C --no-sync || fail_with_log "PostgreSQL initdb" "$tmp/pg/initdb.log"
  # fsync = off only: synchronous_commit and full_page_writes keep their defaults (see above).
  cat >>"$pg_data/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $pg_port
unix_socket_directories = '$tmp/pg'
shared_buffers = ${OWNID_TEST_DB_CACHE_MB:-32}MB
max_connections = 200
fsync = off
EOF
  pg_isready=$(find_tool "$pg_bin/pg_isready" pg_isready) || die "pg_isready is not installed"
  pg_start
  write_ctl postgres pg pg_bin pg_data pg_port pg_isready pg_cmd pg_ready pg_postmaster
  export OWNID_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:$pg_port/postgres"
  export OWNID_TEST_POSTGRES_CTL=$tmp/ctl/postgres
fi

if [[ -n $start_pgb ]]; then
  # PgBouncer in transaction mode, configured as a company would run it: its defaults, no
  # ignore_startup_parameters. Every database name is forwarded to the PostgreSQL above (the
  # tests give each case a database of its own). It refuses to run as root.
  echo "== starting PgBouncer (pool_mode = transaction)"
  pgb_port=${ports[4]}
  pgb_dir=$tmp/pgbouncer
  mkdir -p "$pgb_dir"
  echo '"postgres" ""' >"$pgb_dir/users.txt"
  cat >"$pgb_dir/pgbouncer.ini" <<EOF
[databases]
* = host=127.0.0.1 port=$pg_port
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $pgb_port
unix_socket_dir =
auth_type = trust
auth_file = $pgb_dir/users.txt
pool_mode = transaction
max_client_conn = 1000
default_pool_size = 20
# Each conformance case has a database (a pool) of its own: idle server connections go soon, so
# that they do not add up on the throwaway PostgreSQL (max_connections 200).
server_idle_timeout = 10
logfile = $pgb_dir/pgbouncer.log
pidfile = $pgb_dir/pgbouncer.pid
EOF
  [[ -n $is_root ]] && chown -R postgres: "$pgb_dir"
  pgb_pidfile=$pgb_dir/pgbouncer.pid
  pg_cmd "$pgb_dir/start.log" "$(find_tool pgbouncer)" -d "$pgb_dir/pgbouncer.ini" \
    || fail_with_log PgBouncer "$pgb_dir/start.log" "$pgb_dir/pgbouncer.log"
  wait_for "" "$START_TIMEOUT" tcp_open 127.0.0.1 "$pgb_port" \
    || fail_with_log PgBouncer "$pgb_dir/pgbouncer.log"
  export OWNID_TEST_PGBOUNCER_URL="postgres://postgres@127.0.0.1:$pgb_port/postgres"
fi

if [[ -z $only_servers && -z ${OWNID_TEST_PG_REPLICA_URL:-} ]]; then
  # A primary with a synchronous standby of its own (tests/failover.rs kills the primary and
  # promotes the standby, so the shared server above is not used).
  echo "== starting a PostgreSQL primary with a synchronous standby (scripts/pg-replica.sh)"
  scripts/pg-replica.sh start "$tmp/pg-replica" >"$tmp/pg-replica.log" 2>&1 \
    || fail_with_log "PostgreSQL primary and standby" "$tmp/pg-replica.log"
  # shellcheck source=/dev/null
  source "$tmp/pg-replica/env"
fi

if [[ -z $only_servers && -z ${OWNID_TEST_GALERA_URLS:-} ]]; then
  # Three MariaDB Galera nodes (galera-4) for the multi-instance tests (tests/galera.rs).
  echo "== starting a 3-node MariaDB Galera cluster (scripts/galera.sh)"
  scripts/galera.sh start "$tmp/galera" >"$tmp/galera.log" 2>&1 \
    || fail_with_log "MariaDB Galera" "$tmp/galera.log"
  # shellcheck source=/dev/null
  source "$tmp/galera/env"
fi

if [[ -n $start_my ]]; then
  echo "== starting MariaDB"
  my_port=${ports[1]}
  my_dir=$tmp/mysql
  mkdir -p "$my_dir"
  mariadbd=$(find_tool mariadbd)
  my_user=()
  [[ -n $is_root ]] && my_user=(--user=root)
  # The doublewrite buffer stays on (see above).
  my_opts=(--innodb-buffer-pool-size=${OWNID_TEST_DB_CACHE_MB:-64}M --innodb-log-file-size=32M --innodb-flush-log-at-trx-commit=2
    --character-set-server=utf8mb4 --collation-server=utf8mb4_general_ci)
  "$(find_tool mariadb-install-db)" --no-defaults --datadir="$my_dir/data" "${my_user[@]}" \
    --auth-root-authentication-method=normal --skip-test-db "${my_opts[@]}" \
    >"$my_dir/install.log" 2>&1 || fail_with_log "mariadb-install-db" "$my_dir/install.log"
  my_admin=$(find_tool mariadb-admin mysqladmin) || die "mariadb-admin is not installed"
  my_pidfile=$my_dir/server.pid
  my_start
  write_ctl mysql my my_dir my_port my_pidfile mariadbd my_user my_opts my_admin my_ping
  export OWNID_TEST_MYSQL_URL="mysql://root@127.0.0.1:$my_port/"
  export OWNID_TEST_MYSQL_CTL=$tmp/ctl/mysql
fi

if [[ -n $start_mongo ]]; then
  echo "== starting jongodb"
  if [[ $(sed -n 's/^ *"version": *"\(.*\)",*$/\1/p' "$JONGODB_DIR/package.json" 2>/dev/null) != "$JONGODB_VERSION" \
    || ! -x $JONGODB_DIR/bin/jongodb ]]; then
    echo "   npm install $JONGODB_PACKAGE@$JONGODB_VERSION into $JONGODB_PREFIX"
    npm install --prefix "$JONGODB_PREFIX" --no-audit --no-fund --no-update-notifier --loglevel=error \
      "$JONGODB_PACKAGE@$JONGODB_VERSION" >/dev/null
  fi
  mongo_port=${ports[2]}
  mkdir -p "$tmp/mongo"
  mongo_pidfile=$tmp/mongo/server.pid
  mongo_start
  write_ctl mongodb mongo JONGODB_DIR mongo_port mongo_pidfile
  export OWNID_TEST_MONGODB_URL="mongodb://127.0.0.1:$mongo_port"
  export OWNID_TEST_MONGODB_CTL=$tmp/ctl/mongodb
fi

# ---------------------------------------------------------------------------------------------
# What each backend runs against

url_decode() { printf '%b' "${1//%/\\x}"; }

pg_version() {
  local psql
  psql=$(find_tool "${pg_bin:-/nonexistent}/psql" psql) || return 1
  "$psql" "$OWNID_TEST_POSTGRES_URL" -X -At -c "select split_part(version(), ' on ', 1)" 2>&1
}

my_version() { # mysql://[user[:password]@]host[:port][/db]
  local client re='^mysql://(([^:@/]*)(:([^@/]*))?@)?([^:/?]+)(:([0-9]+))?'
  client=$(find_tool mariadb mysql) || return 1
  [[ $OWNID_TEST_MYSQL_URL =~ $re ]] || return 1
  MYSQL_PWD=$(url_decode "${BASH_REMATCH[4]}") "$client" --no-defaults -h "${BASH_REMATCH[5]}" \
    -P "${BASH_REMATCH[7]:-3306}" -u "$(url_decode "${BASH_REMATCH[2]:-root}")" \
    -N -B -e 'select version()' 2>&1
}

mongo_check() {
  local re='^mongodb://([^@/]*@)?(\[[^]]*\]|[^:/,?]+)(:([0-9]+))?'
  if [[ -n $start_mongo ]]; then
    tcp_open 127.0.0.1 "$mongo_port" || return 1
    echo "jongodb $JONGODB_VERSION (npm $JONGODB_PACKAGE)"
  elif [[ $OWNID_TEST_MONGODB_URL =~ $re ]]; then
    set -- "${BASH_REMATCH[2]}" "${BASH_REMATCH[4]:-27017}"
    if ! tcp_open "$1" "$2"; then
      echo "TCP connect to $1:$2 failed"
      return 1
    fi
    echo "TCP port open"
  else
    echo "(not checked: only mongodb://host[:port] URLs are)"
  fi
}

pgb_version() { # the PostgreSQL behind it, through it
  local psql
  psql=$(find_tool "${pg_bin:-/nonexistent}/psql" psql) || return 1
  "$psql" "$OWNID_TEST_PGBOUNCER_URL" -X -At -c "select 'through PgBouncer: ' || split_part(version(), ' on ', 1)" 2>&1
}

describe() { # backend url origin version-function
  local out
  if out=$($4); then
    printf '   %-9s %s (%s): %s\n' "$1" "$(redact "$2")" "$3" "$out"
  elif [[ -n $only_servers ]]; then
    printf '   %-9s %s (%s): NOT REACHABLE %s\n' "$1" "$(redact "$2")" "$3" "$out" >&2
    return 1
  else # the tests will say what is wrong
    printf '   %-9s %s (%s)\n' "$1" "$(redact "$2")" "$3"
  fi
}

origin() { if [[ -n $1 ]]; then echo "started here"; else echo "given"; fi; }
echo "== test servers (ready after $((SECONDS - started_at)) s)"
reachable=1
describe postgres "$OWNID_TEST_POSTGRES_URL" "$(origin "$start_pg")" pg_version || reachable=
describe mysql "$OWNID_TEST_MYSQL_URL" "$(origin "$start_my")" my_version || reachable=
describe mongodb "$OWNID_TEST_MONGODB_URL" "$(origin "$start_mongo")" mongo_check || reachable=
describe pgbouncer "$OWNID_TEST_PGBOUNCER_URL" "$(origin "$start_pgb")" pgb_version || reachable=

if [[ -n $only_servers ]]; then
  [[ -n $reachable ]] || die "a test server is not reachable"
  if [[ -n $servers_run ]]; then
    echo "== running: $servers_run"
    bash -c "$servers_run"
    exit $?
  fi
  echo "== OWNID_TEST_ONLY_SERVERS is set: not running cargo"
  exit 0
fi

# ---------------------------------------------------------------------------------------------
# The suite

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --locked --workspace --all-targets -- -D warnings
echo "== cargo test"
cargo test --locked --workspace

# ---------------------------------------------------------------------------------------------
# The spec as a product: clients generated from the committed spec by mainstream generators, the
# Swagger UI in a real browser, a validator and spec-driven fuzzing, all against the real binary
# (the debug build cargo test just made) on a throwaway SQLite database.

echo "== the OpenAPI document against the running server"
bridge=target/debug/ownid-bridge
bridge_port=${ports[3]}
bridge_secret=$("$bridge" config secret)
bridge_env=(
  env
  -u OWNID_BRIDGE_CONFIG
  OWNID_BRIDGE__OWNID__SHARED_SECRET="$bridge_secret"
  OWNID_BRIDGE__SESSION__SECRET="$("$bridge" config secret)"
  OWNID_BRIDGE__SERVER__LISTEN="127.0.0.1:$bridge_port"
  OWNID_BRIDGE__STORAGE__URL="sqlite://$tmp/bridge.db"
)
"${bridge_env[@]}" "$bridge" users add typescript-client@example.com python-client@example.com hey-api-client@example.com user@example.com \
  openapi-generator-ts@example.com openapi-generator-py@example.com
"${bridge_env[@]}" "$bridge" >"$tmp/bridge.out" 2>"$tmp/bridge.log" &
bridge_pid=$!
wait_for "$bridge_pid" "$START_TIMEOUT" tcp_open 127.0.0.1 "$bridge_port" \
  || fail_with_log ownid-bridge "$tmp/bridge.out" "$tmp/bridge.log"
# A second server with two OwnID applications (apps:), on a port of its own choosing (read from
# its first line), for Swagger UI's application selector.
apps_customer_secret=$("$bridge" config secret)
apps_admin_secret=$("$bridge" config secret)
cat >"$tmp/apps.yaml" <<EOF
server: { listen: "127.0.0.1:0" }
storage: { url: "sqlite://$tmp/apps.db" }
apps:
  - name: customer
    base_path: /ownid/customer
    ownid: { shared_secret: "\${APPS_CUSTOMER_SECRET}" }
    session: { secret: "\${APPS_JWT_SECRET}" }
  - name: admin
    base_path: /ownid/admin
    ownid: { shared_secret: "\${APPS_ADMIN_SECRET}" }
    session: { secret: "\${APPS_JWT_SECRET}" }
    users: { table: admins }
EOF
apps_env=(
  env
  -u OWNID_BRIDGE_CONFIG
  APPS_CUSTOMER_SECRET="$apps_customer_secret"
  APPS_ADMIN_SECRET="$apps_admin_secret"
  APPS_JWT_SECRET="$("$bridge" config secret)"
  "$bridge"
  --config "$tmp/apps.yaml"
)
for app in customer admin; do
  "${apps_env[@]}" --app "$app" users add user@example.com >/dev/null
done
"${apps_env[@]}" >"$tmp/apps.out" 2>"$tmp/apps.log" &
apps_pid=$!
wait_for "$apps_pid" "$START_TIMEOUT" grep -q "listening on http://" "$tmp/apps.out" \
  || fail_with_log "ownid-bridge (apps)" "$tmp/apps.out" "$tmp/apps.log"
apps_url=$(sed -n 's/.* listening on \(http:[^ ]*\).*/\1/p' "$tmp/apps.out")
out=target/spec-checks
rm -rf "$out"
mkdir -p "$out"
client_env=(
  env
  OWNID_BRIDGE_URL="http://127.0.0.1:$bridge_port"
  OWNID_SHARED_SECRET="$bridge_secret"
  OWNID_APPS_URL="$apps_url"
  OWNID_APPS_CUSTOMER_SECRET="$apps_customer_secret"
  OWNID_APPS_ADMIN_SECRET="$apps_admin_secret"
)
echo "== TypeScript clients (openapi-typescript + openapi-fetch, @hey-api/openapi-ts) and Swagger UI in Chromium"
"${client_env[@]}" OWNID_TEST_USER=typescript-client@example.com OWNID_TEST_OUT="$PWD/$out/typescript" \
  clients/typescript/run.sh
echo "== openapi-spec-validator, the openapi-python-client client and schemathesis"
"${client_env[@]}" OWNID_TEST_OUT="$PWD/$out/python" clients/python/run.sh
echo "== OpenAPI Generator's typescript-fetch and python clients"
"${client_env[@]}" OWNID_TEST_OUT="$PWD/$out/openapi-generator" clients/openapi-generator/run.sh

# ---------------------------------------------------------------------------------------------
# The packages: the Debian package installed and serving, the container image's runtime stage
# built and run from its exported filesystem, the compose file's configuration.

scripts/packages.sh "$bridge"

# ---------------------------------------------------------------------------------------------
# Supply chain: cargo-deny (from crates.io, built once into ~/.cargo/bin) with deny.toml's policy.

CARGO_DENY_VERSION=0.20.2
if [[ $(cargo deny --version 2>/dev/null) != "cargo-deny $CARGO_DENY_VERSION" ]]; then
  echo "== cargo install cargo-deny $CARGO_DENY_VERSION (once; a few minutes)"
  cargo install --locked --quiet cargo-deny --version "$CARGO_DENY_VERSION"
fi
echo "== cargo deny: licenses, bans, sources (offline, after fetching every target's crates)"
cargo fetch --locked --quiet
cargo deny --offline check licenses bans sources
# The advisory check needs the RustSec database. OWNID_ADVISORY_DB may name a directory in
# cargo-deny's layout (a copy of ~/.cargo/advisory-dbs from a machine that ran `cargo deny fetch`);
# otherwise the database is fetched, and where that fails the check is reported as NOT RUN.
if [[ -n ${OWNID_ADVISORY_DB:-} ]]; then
  echo "== cargo deny: advisories, from $OWNID_ADVISORY_DB"
  sed "s#^\[advisories\]#[advisories]\ndb-path = \"$OWNID_ADVISORY_DB\"#" deny.toml >"$tmp/deny.toml"
  cargo deny --offline check --config "$tmp/deny.toml" --disable-fetch advisories
elif cargo deny fetch db >"$tmp/deny-fetch.log" 2>&1; then
  echo "== cargo deny: advisories (database fetched)"
  cargo deny check --disable-fetch advisories
else
  echo "== cargo deny: advisories NOT CHECKED: the RustSec database could not be fetched"
  echo "   ($(tail -n 1 "$tmp/deny-fetch.log")); set OWNID_ADVISORY_DB or run where it is reachable"
fi
echo "== all checks passed"
