#!/usr/bin/env bash
# Throughput of two or more builds, paired: rounds in which every build serves the same wrk run
# in turn (SQLite, 10,000 users, pre-signed requests, log level warn), so that a slow minute of
# this shared machine falls on all of them. From the repository root:
#
#   WRK_OUT=/tmp/wrk WRK_BINS="fat=/path/a thin=/path/b" WRK_OPS="get set" WRK_ROUNDS=5 \
#     WRK_SECONDS=10 WRK_CONNECTIONS=32 bench/wrk-ab.sh
#
# Each directory in WRK_BINS holds ownid-bridge and ownid-bench. Per round, operation and build:
# a fresh seeded database, the server started, 2 s of warm-up, then WRK_SECONDS of wrk. Prints
# (and appends to $WRK_OUT/results.tsv): round, operation, build, requests per second, errors.
set -euo pipefail
out=${WRK_OUT:?}; mkdir -p "$out"
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
# shellcheck source=bench/lib.sh
source bench/lib.sh
users=10000
connections=${WRK_CONNECTIONS:-32}
for round in $(seq "${WRK_ROUNDS:-5}"); do
  for op in ${WRK_OPS:-get set}; do
    for pair in ${WRK_BINS:?}; do
      name=${pair%%=*}; bin=${pair#*=}
      rm -f "$work"/wrk.db*
      url="sqlite://$work/wrk.db"
      "$bin/ownid-bench" seed --backend sqlite --url "$url" --users $users >/dev/null 2>&1
      port=$(free_port); secret=$("$bin/ownid-bridge" config secret)
      server_config "$port" "$secret" "$("$bin/ownid-bridge" config secret)" sqlite "$url" 32 \
        >"$work/c.yaml"
      "$bin/ownid-bench" requests --url "http://127.0.0.1:$port/ownid" --secret "$secret" --op "$op" \
        --users $users --count 20000 --out "$work/req.tsv"
      "$bin/ownid-bridge" --config "$work/c.yaml" serve >"$work/srv.out" 2>"$work/srv.log" &
      pid=$!
      for _ in $(seq 300); do curl -fs -o /dev/null "http://127.0.0.1:$port/readyz" && break; sleep 0.1; done
      wrk -t1 -c"$connections" -d2s --timeout 20s -s bench/wrk.lua "http://127.0.0.1:$port" -- "$work/req.tsv" >/dev/null
      wrk -t1 -c"$connections" -d"${WRK_SECONDS:-10}s" --timeout 20s -s bench/wrk.lua \
        "http://127.0.0.1:$port" -- "$work/req.tsv" >"$work/wrk.out"
      kill -TERM $pid; wait $pid || true
      read -r rps errors < <(sed -n 's/^BENCH //p' "$work/wrk.out" \
        | python3 -c 'import json,sys; r = json.load(sys.stdin); print(round(r["rps"]), r["errors"])')
      echo -e "$round\t$op\t$name\t$rps\t$errors" | tee -a "$out/results.tsv"
    done
  done
done
