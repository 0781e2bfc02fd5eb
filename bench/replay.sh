#!/usr/bin/env bash
# What the shared replay guard costs (`ownid.replay_protection: storage`, two single-row writes per
# signed request) against the per-instance one (`memory`, no database work), on one instance per
# backend. For docs/scaling.md. Runs inside scripts/servers/with.sh, which starts PostgreSQL, MariaDB and
# the MongoDB-compatible server. From the repository root, after
# `cargo build --release -p ownid-bridge -p ownid-bridge-bench`:
#
#   scripts/servers/with.sh bench/replay.sh
#
# Every pre-signed request is distinct (ownid-bench requests stamps each with its own timestamp)
# and each is sent at most once: a run of N seconds must stay under REPLAY_REQUESTS requests, and
# a request refused as a replay counts as an error in the last column, which must stay 0.
#
# Environment: REPLAY_BIN (default target/release), REPLAY_SECONDS (5), REPLAY_CONCURRENCY (32),
# REPLAY_ROUNDS (3; the two modes alternate which runs first), REPLAY_BACKENDS ("sqlite postgres
# mysql"; mongodb works too, but jongodb, the test suite's MongoDB-compatible server, answers a
# few hundred requests a second on 10,000 users, which measures jongodb), REPLAY_OPS ("get set"),
# REPLAY_REQUESTS (300000). Prints one tab-separated line per run: round, backend, mode,
# operation, req/s, p99 ms, errors.
set -euo pipefail

bin=${REPLAY_BIN:-target/release}
seconds=${REPLAY_SECONDS:-5}
concurrency=${REPLAY_CONCURRENCY:-32}
rounds=${REPLAY_ROUNDS:-3}
backends=${REPLAY_BACKENDS:-sqlite postgres mysql}
ops=${REPLAY_OPS:-get set}
count=${REPLAY_REQUESTS:-300000}
users=10000
[[ -x $bin/ownid-bridge && -x $bin/ownid-bench ]] || { echo "no release binaries in $bin" >&2; exit 1; }
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/ownid-replay.XXXXXX")
server_pid=''
stop_server() {
  if [[ -n $server_pid ]]; then
    kill -TERM "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=''
  fi
}
trap 'stop_server; rm -rf "$work"' EXIT

# shellcheck source=bench/lib.sh
source bench/lib.sh

secret=$("$bin/ownid-bridge" config secret)
jwt_secret=$("$bin/ownid-bridge" config secret)

url_of() { # backend -> a database of its own on the test server
  case $1 in
    sqlite) echo "sqlite://$work/replay.db" ;;
    postgres) echo "$OWNID_TEST_POSTGRES_URL" ;;
    mysql)
      local client
      client=$(command -v mariadb || command -v mysql)
      local hostport=${OWNID_TEST_MYSQL_URL#mysql://root@}
      hostport=${hostport%/}
      "$client" --no-defaults -h "${hostport%:*}" -P "${hostport##*:}" -u root \
        -e "CREATE DATABASE IF NOT EXISTS replay_bench"
      echo "${OWNID_TEST_MYSQL_URL%/}/replay_bench"
      ;;
    mongodb) echo "${OWNID_TEST_MONGODB_URL%/}/replay_bench" ;;
  esac
}

run() { # round backend mode
  local round=$1 backend=$2 mode=$3 url port config op result
  url=$(url_of "$backend")
  port=$(free_port)
  config=$work/server.yaml
  REPLAY_PROTECTION=$mode server_config "$port" "$secret" "$jwt_secret" "$backend" "$url" 32 >"$config"
  # The users table (seeded) and, for storage, the replay table.
  "$bin/ownid-bridge" --config "$config" schema >/dev/null
  "$bin/ownid-bridge" --config "$config" serve >/dev/null 2>"$work/server.log" &
  server_pid=$!
  local deadline=$((SECONDS + 60))
  until curl -fs -o /dev/null "http://127.0.0.1:$port/readyz"; do
    ((SECONDS < deadline)) || { cat "$work/server.log" >&2; exit 1; }
    sleep 0.1
  done
  for op in $ops; do
    # Fresh requests for every run: a signature the guard has seen is refused.
    "$bin/ownid-bench" requests --url "http://127.0.0.1:$port/ownid" --secret "$secret" \
      --op "$op" --users "$users" --count "$count" --out "$work/requests.tsv"
    result=$(wrk -t1 -c"$concurrency" -d"${seconds}s" --timeout 10s -s bench/wrk.lua \
      "http://127.0.0.1:$port" -- "$work/requests.tsv" | sed -n 's/^BENCH //p')
    python3 -c 'import json, sys; r = json.loads(sys.argv[1]); print("\t".join(sys.argv[2:] + ["%.0f" % r["rps"], "%.2f" % r["p99_ms"], str(r["errors"])]))' \
      "$result" "$round" "$backend" "$mode" "$op"
  done
  stop_server
}

printf 'round\tbackend\tmode\top\treq/s\tp99 ms\terrors\n'
for backend in $backends; do
  "$bin/ownid-bench" seed --backend "$backend" --url "$(url_of "$backend")" --users "$users" >/dev/null
done
for ((round = 1; round <= rounds; round++)); do
  for backend in $backends; do
    if ((round % 2)); then order="memory storage"; else order="storage memory"; fi
    for mode in $order; do run "$round" "$backend" "$mode"; done
  done
done
