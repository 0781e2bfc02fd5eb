#!/usr/bin/env bash
# ownid-bridge side by side with a minimal hand-written Rust server (bench/peer: axum,
# deadpool-postgres, the HMAC check, one prepared statement per operation) and OwnID's own Express
# templates (bench/seed-express), on one throwaway PostgreSQL with PEERS_USERS users: wrk with
# PEERS_THREADS threads and PEERS_CONNECTIONS connections, PEERS_SECONDS measured after a second
# of warm-up, PEERS_ROUNDS rounds in which the servers take turns going first. ownid-bridge's
# replay guard is off there, so that wrk can replay pre-signed requests (the peer has none). Right
# after each of its runs, a second ownid-bridge with its default replay guard (memory) takes fresh
# requests that are each sent once (wrk.lua's `once` mode; more than the run can send), for the
# guard's cost against the guard-off figures of the same minute.
#
#   scripts/bench.sh peers
#
# Prints a table per run and the medians with their ratios; writes everything to PEERS_OUT
# (default target/bench/peers-<UTC time>): results.tsv (one line per run), summary.md.
#
# Environment: PEERS_ROUNDS (3), PEERS_SECONDS (5), PEERS_CONNECTIONS (32), PEERS_THREADS (2),
# PEERS_USERS (10000), PEERS_OPS ("get set session"), PEERS_POOL (32: every server's pool),
# BENCH_BIN=DIR (ownid-bridge, ownid-bench and ownid-peer from DIR instead of building them).
set -euo pipefail
cd "$(dirname "$0")/.."

source scripts/lib.sh

rounds=${PEERS_ROUNDS:-3}
seconds=${PEERS_SECONDS:-5}
connections=${PEERS_CONNECTIONS:-32}
threads=${PEERS_THREADS:-2}
users=${PEERS_USERS:-10000}
ops=${PEERS_OPS:-get set session}
pool=${PEERS_POOL:-32}

if [[ -z ${PEERS_INNER:-} ]]; then
  for tool in wrk node npm python3 curl; do
    command -v "$tool" >/dev/null || die "$tool is not installed"
  done
  bin=target/release
  if [[ -n ${BENCH_BIN:-} ]]; then
    bin=$BENCH_BIN
  else
    cargo build --release -p ownid-bridge -p ownid-bridge-bench -p ownid-bench-peer
  fi
  for name in ownid-bridge ownid-bench ownid-peer; do
    [[ -x $bin/$name ]] || die "no $name in $bin"
  done
  (cd bench/seed-express && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
  out=${PEERS_OUT:-target/bench/peers-$(date -u +%Y%m%dT%H%M%SZ)}
  mkdir -p "$out/bin"
  out=$(cd "$out" && pwd)
  cp "$bin/ownid-bridge" "$bin/ownid-bench" "$bin/ownid-peer" "$out/bin/"
  echo "== results in $out"
  PEERS_INNER=1 PEERS_OUT=$out OWNID_TEST_DB_CACHE_MB=256 scripts/servers/with.sh bench/peers.sh
  exit 0
fi

# Inside scripts/servers/with.sh: OWNID_TEST_POSTGRES_URL names the throwaway PostgreSQL.
out=${PEERS_OUT:?}
bin=$out/bin
url=${OWNID_TEST_POSTGRES_URL:?}
while read -r name; do unset "$name"; done < <(compgen -e | grep -E '^OWNID_BRIDGE' || true)
work=$(mktemp -d "${TMPDIR:-/tmp}/ownid-peers.XXXXXX")
pids=()
cleanup() {
  local pid
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

source bench/lib.sh

wait_ready() { # pid url log
  local deadline=$((SECONDS + 60))
  until curl -s -o /dev/null -X POST "$2"; do
    kill -0 "$1" 2>/dev/null || { cat "$3" >&2; die "a server did not start"; }
    ((SECONDS < deadline)) || die "a server did not answer within 60 s"
    sleep 0.1
  done
}

secret=$("$bin/ownid-bridge" config secret)
jwt_secret=$("$bin/ownid-bridge" config secret)
"$bin/ownid-bench" seed --backend postgres --url "$url" --users "$users" >/dev/null

declare -A port
start_bridge() { # name replay-mode: ownid-bridge on a port of its own
  port[$1]=$(free_port)
  REPLAY_PROTECTION=$2 server_config "${port[$1]}" "$secret" "$jwt_secret" postgres "$url" \
    "$pool" >"$work/$1.yaml"
  "$bin/ownid-bridge" --config "$work/$1.yaml" serve >/dev/null 2>"$work/$1.log" &
  pids+=($!)
  wait_ready "$!" "http://127.0.0.1:${port[$1]}/readyz" "$work/$1.log"
}
start_bridge bridge off
start_bridge guard memory
port[peer]=$(free_port)
"$bin/ownid-peer" --listen "127.0.0.1:${port[peer]}" --url "$url" --secret "$secret" \
  --jwt-secret "$jwt_secret" --pool "$pool" >/dev/null 2>"$work/peer.log" &
pids+=($!)
wait_ready "$!" "http://127.0.0.1:${port[peer]}/ownid/getOwnIDDataByLoginId" "$work/peer.log"
port[express]=$(free_port)
DATABASE_URL=$url PORT=${port[express]} POOL=$pool node bench/seed-express/server.js \
  >/dev/null 2>"$work/express.log" &
pids+=($!)
wait_ready "$!" "http://127.0.0.1:${port[express]}/ownid/getOwnIDDataByLoginId" "$work/express.log"

requests() { # op count file: requests signed now, each with a timestamp (so a signature) of its own
  "$bin/ownid-bench" requests --url "http://127.0.0.1:${port[bridge]}/ownid" --secret "$secret" \
    --op "$1" --users "$users" --count "$2" --out "$3"
}
for op in $ops; do
  count=100000
  [[ $op == set ]] && count=30000 # 1 KB each
  requests "$op" "$count" "$work/$op.tsv"
done

wrk_run() { # port seconds file [once:THREADS]: wrk's BENCH JSON
  wrk -t"$threads" -c"$connections" -d"${2}s" --timeout 10s -s bench/wrk.lua \
    "http://127.0.0.1:$1" -- "$3" ${4:+"$4"} | sed -n 's/^BENCH //p'
}

record() { # round server op replay-mode wrk-json: a line of results.tsv, also printed
  python3 - "$@" >>"$out/results.tsv" <<'PY'
import json, sys
round_, server, op, mode, result = sys.argv[1:]
r = json.loads(result)
print("\t".join([round_, server, op, mode, "%.0f" % r["rps"], "%.3f" % r["p50_ms"],
                 "%.3f" % r["p99_ms"], str(r["errors"]), str(r["requests"])]))
PY
  tail -n 1 "$out/results.tsv"
}

printf 'round\tserver\top\treplay\trps\tp50_ms\tp99_ms\terrors\trequests\n' | tee "$out/results.tsv"
servers=(bridge peer express)
for ((round = 1; round <= rounds; round++)); do
  for op in $ops; do
    # Each round starts with the next server: none always runs first (or last) on a machine
    # whose speed drifts.
    for ((i = 0; i < ${#servers[@]}; i++)); do
      server=${servers[(i + round - 1) % ${#servers[@]}]}
      wrk_run "${port[$server]}" 1 "$work/$op.tsv" >/dev/null
      line=$(record "$round" "$server" "$op" off "$(wrk_run "${port[$server]}" "$seconds" "$work/$op.tsv")")
      echo "$line"
      [[ $server == bridge ]] || continue
      # Right after it, the same server with its default replay guard (memory): every request
      # new and sent once, two and a half times what the run sends at the guard-off rate.
      rps=$(cut -f5 <<<"$line")
      requests "$op" 20000 "$work/warm.tsv"
      requests "$op" $((rps * (seconds + 1) * 5 / 2 + 20000)) "$work/once.tsv"
      wrk_run "${port[guard]}" 1 "$work/warm.tsv" "once:$threads" >/dev/null
      record "$round" bridge "$op" memory \
        "$(wrk_run "${port[guard]}" "$seconds" "$work/once.tsv" "once:$threads")"
    done
  done
done

python3 - "$out/results.tsv" "$connections" "$threads" "$seconds" "$rounds" "$users" >"$out/summary.md" <<'EOF'
import csv, statistics, sys
path, connections, threads, seconds, rounds, users = sys.argv[1:]
rows = list(csv.DictReader(open(path), delimiter="\t"))
def median(server, op, mode, key):
    values = [float(r[key]) for r in rows if (r["server"], r["op"], r["replay"]) == (server, op, mode)]
    return statistics.median(values) if values else None
ops = [op for op in ("get", "set", "session") if any(r["op"] == op for r in rows)]
print(f"PostgreSQL, {users} users, wrk {threads} threads, {connections} connections, {seconds} s "
      f"after 1 s of warm-up, median of {rounds} rounds (replay guard off unless named).\n")
print("| operation | ownid-bridge req/s | peer req/s | seed Express req/s | bridge/peer | bridge/Express "
      "| bridge p99 ms | peer p99 ms | Express p99 ms | p99 bridge/peer | bridge, guard memory req/s | guard cost |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for op in ops:
    b, p, e = (median(s, op, "off", "rps") for s in ("bridge", "peer", "express"))
    b99, p99, e99 = (median(s, op, "off", "p99_ms") for s in ("bridge", "peer", "express"))
    g = median("bridge", op, "memory", "rps")
    ratio = lambda x, y: f"{x / y:.2f}" if x and y else "-"
    cost = f"{(g / b - 1) * 100:+.1f} %" if g and b else "-"
    print(f"| {op} | {b:,.0f} | {p:,.0f} | {e:,.0f} | {ratio(b, p)} | {ratio(b, e)} | {b99:.2f} | "
          f"{p99:.2f} | {e99:.2f} | {ratio(b99, p99)} | {g:,.0f} | {cost} |")
errors = [r for r in rows if r["errors"] != "0"]
if errors:
    print("\nRuns with errors (the table is not valid):")
    for r in errors:
        print("  " + " ".join(f"{k}={v}" for k, v in r.items()))
EOF
echo
cat "$out/summary.md"
