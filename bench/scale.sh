#!/usr/bin/env bash
# Throughput of 1, 2 and 3 server instances behind HAProxy (round robin, health check on
# /readyz), over a 3-node MariaDB Galera cluster (one instance per node) and over PostgreSQL
# behind PgBouncer in transaction mode; with single-instance comparisons: Galera without the
# causality wait (storage.galera_sync_wait: false) and PostgreSQL direct (no pooler). For
# docs/scaling.md. Runs inside scripts/servers/with.sh --clusters, which starts PostgreSQL,
# PgBouncer and a 3-node Galera cluster. From the repository root, after
# `cargo build --release -p ownid-bridge -p ownid-bridge-bench`:
#
#   scripts/servers/with.sh --clusters bench/scale.sh
#
# Environment: SCALE_BIN (default target/release), SCALE_SECONDS (5), SCALE_CONCURRENCY (32),
# SCALE_OPS ("get set"). Prints one tab-separated line per run: setup, instances, operation,
# req/s, p99 ms, errors.
set -euo pipefail

bin=${SCALE_BIN:-target/release}
seconds=${SCALE_SECONDS:-5}
concurrency=${SCALE_CONCURRENCY:-32}
ops=${SCALE_OPS:-get set}
users=10000
[[ -x $bin/ownid-bridge && -x $bin/ownid-bench ]] || { echo "no release binaries in $bin" >&2; exit 1; }
command -v haproxy >/dev/null || command -v /usr/sbin/haproxy >/dev/null || {
  echo "haproxy is not installed (apt-get install haproxy)" >&2
  exit 1
}
haproxy=$(command -v haproxy || echo /usr/sbin/haproxy)

work=$(mktemp -d "${TMPDIR:-/tmp}/ownid-scale.XXXXXX")
instance_pids=()
haproxy_pid=''
stop_instances() {
  local pid
  for pid in "${instance_pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${instance_pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  instance_pids=()
  if [[ -n $haproxy_pid ]]; then
    kill -TERM "$haproxy_pid" 2>/dev/null || true
    haproxy_pid=''
  fi
}
cleanup() {
  stop_instances
  rm -rf "$work"
}
trap cleanup EXIT

# shellcheck source=bench/lib.sh
source bench/lib.sh

secret=$("$bin/ownid-bridge" config secret)
jwt_secret=$("$bin/ownid-bridge" config secret)

start_instance() { # backend url extra-yaml -> appends the port to $ports
  local backend=$1 url=$2 extra=$3 port config
  port=$(free_port)
  config=$work/instance-$port.yaml
  server_config "$port" "$secret" "$jwt_secret" "$backend" "$url" 16 "$extra" >"$config"
  "$bin/ownid-bridge" --config "$config" serve >"$work/instance-$port.out" 2>"$work/instance-$port.log" &
  instance_pids+=("$!")
  local deadline=$((SECONDS + 60))
  until curl -fs -o /dev/null "http://127.0.0.1:$port/readyz"; do
    ((SECONDS < deadline)) || { cat "$work/instance-$port.log" >&2; exit 1; }
    sleep 0.1
  done
  ports+=("$port")
}

start_haproxy() { # -> lb_port
  lb_port=$(free_port)
  local config=$work/haproxy.cfg i=0 port
  {
    echo "global"
    echo "  maxconn 4096"
    echo "defaults"
    echo "  mode http"
    echo "  timeout connect 2s"
    echo "  timeout client 30s"
    echo "  timeout server 30s"
    echo "frontend lb"
    echo "  bind 127.0.0.1:$lb_port"
    echo "  default_backend bridges"
    echo "backend bridges"
    echo "  balance roundrobin"
    echo "  option httpchk GET /readyz"
    for port in "${ports[@]}"; do
      i=$((i + 1))
      echo "  server bridge$i 127.0.0.1:$port check inter 1s"
    done
  } >"$config"
  "$haproxy" -f "$config" -D -p "$work/haproxy.pid"
  haproxy_pid=$(<"$work/haproxy.pid")
  local deadline=$((SECONDS + 30))
  until curl -fs -o /dev/null "http://127.0.0.1:$lb_port/readyz"; do
    ((SECONDS < deadline)) || { echo "HAProxy did not come up" >&2; exit 1; }
    sleep 0.1
  done
}

run_setup() { # label backend seed-url extra-yaml url...: one instance per url
  local label=$1 backend=$2 seed_url=$3 extra=$4 op
  shift 4
  "$bin/ownid-bench" seed --backend "$backend" --url "$seed_url" --users "$users" >/dev/null
  ports=()
  local url
  for url in "$@"; do start_instance "$backend" "$url" "$extra"; done
  start_haproxy
  for op in $ops; do
    "$bin/ownid-bench" requests --url "http://127.0.0.1:$lb_port/ownid" --secret "$secret" \
      --op "$op" --users "$users" --count 100000 --out "$work/requests.tsv"
    wrk -t1 -c"$concurrency" -d1s --timeout 10s -s bench/wrk.lua "http://127.0.0.1:$lb_port" \
      -- "$work/requests.tsv" >/dev/null
    local result
    result=$(wrk -t1 -c"$concurrency" -d"${seconds}s" --timeout 10s -s bench/wrk.lua \
      "http://127.0.0.1:$lb_port" -- "$work/requests.tsv" | sed -n 's/^BENCH //p')
    python3 -c 'import json, sys; r = json.loads(sys.argv[1]); print("\t".join(sys.argv[2:] + ["%.0f" % r["rps"], "%.2f" % r["p99_ms"], str(r["errors"])]))' \
      "$result" "$label" "$#" "$op"
  done
  stop_instances
}

# MariaDB Galera, one instance per node.
read -r -a nodes <<<"${OWNID_TEST_GALERA_URLS:?run inside scripts/servers/with.sh --clusters}"
mysql_client=$(command -v mariadb || command -v mysql)
node1=${nodes[0]#mysql://root@}
node1=${node1%/}
"$mysql_client" --no-defaults -h "${node1%:*}" -P "${node1##*:}" -u root -e "CREATE DATABASE IF NOT EXISTS scale"
db() { echo "${1%/}/scale"; }
printf 'setup\tinstances\top\treq/s\tp99 ms\terrors\n'
run_setup "galera" mysql "$(db "${nodes[0]}")" "" "$(db "${nodes[0]}")"
run_setup "galera" mysql "$(db "${nodes[0]}")" "" "$(db "${nodes[0]}")" "$(db "${nodes[1]}")"
run_setup "galera" mysql "$(db "${nodes[0]}")" "" "$(db "${nodes[0]}")" "$(db "${nodes[1]}")" "$(db "${nodes[2]}")"
run_setup "galera, galera_sync_wait: false" mysql "$(db "${nodes[0]}")" "  galera_sync_wait: false" \
  "$(db "${nodes[0]}")" "$(db "${nodes[1]}")" "$(db "${nodes[2]}")"

# PostgreSQL direct, and through PgBouncer in transaction mode.
run_setup "postgres direct" postgres "$OWNID_TEST_POSTGRES_URL" "" "$OWNID_TEST_POSTGRES_URL"
for n in 1 2 3; do
  urls=()
  for ((i = 0; i < n; i++)); do urls+=("$OWNID_TEST_PGBOUNCER_URL"); done
  run_setup "pgbouncer (transaction)" postgres "$OWNID_TEST_POSTGRES_URL" "  pooler: transaction" "${urls[@]}"
done
