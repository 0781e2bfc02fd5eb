#!/usr/bin/env bash
# Instructions per request of two builds under callgrind: unlike req/s on this shared virtual
# machine, the count repeats from run to run. Runs inside scripts/servers/with.sh, for its throwaway
# PostgreSQL, from the repository root:
#
#   CG_OUT=/tmp/cg CG_BINS="old=/path/to/release new=target/release" CG_BACKENDS="postgres sqlite" \
#     CG_OPS="get set" CG_SECONDS=15 scripts/servers/with.sh bench/callgrind-ab.sh
#
# Each directory in CG_BINS holds ownid-bridge and ownid-bench. Per backend, operation and build:
# seed 10,000 users, start the server under callgrind, warm up 3 s with wrk at 4 connections, zero
# the counters, run CG_SECONDS of wrk, dump. Prints (and appends to $CG_OUT/results.tsv):
# round, backend, operation, build, requests, instructions, instructions per request, errors.
# REPLAY_PROTECTION (bench/lib.sh) sets the replay guard; the warm-up sends requests of its own,
# so that with a guard on no measured request is a replay of one.
set -euo pipefail
out=${CG_OUT:?}; mkdir -p "$out"
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
# shellcheck source=bench/lib.sh
source bench/lib.sh
users=10000
for round in ${CG_ROUNDS:-1}; do
for backend in ${CG_BACKENDS:-sqlite postgres}; do
  for op in ${CG_OPS:-get set}; do
    for pair in ${CG_BINS:?}; do
      name=${pair%%=*}; bin=${pair#*=}
      case $backend in
        sqlite) url="sqlite://$work/cg.db" ;;
        postgres) url=$OWNID_TEST_POSTGRES_URL ;;
      esac
      "$bin/ownid-bench" seed --backend "$backend" --url "$url" --users $users >/dev/null 2>&1
      port=$(free_port); secret=$("$bin/ownid-bridge" config secret)
      server_config "$port" "$secret" "$("$bin/ownid-bridge" config secret)" "$backend" "$url" 32 \
        >"$work/c.yaml"
      case $op in get) ep=getOwnIDDataByLoginId ;; set) ep=setOwnIDDataByLoginId ;; session) ep=getSessionByLoginId ;; esac
      "$bin/ownid-bench" requests --url "http://127.0.0.1:$port/ownid" --secret "$secret" --op "$op" --users $users --count 20000 --out "$work/warm.tsv"
      "$bin/ownid-bench" requests --url "http://127.0.0.1:$port/ownid" --secret "$secret" --op "$op" --users $users --count 20000 --out "$work/req.tsv"
      cgout="$out/cg.$round.$backend.$op.$name"
      valgrind --tool=callgrind --callgrind-out-file="$cgout" \
        "$bin/ownid-bridge" --config "$work/c.yaml" serve >"$work/srv.out" 2>"$work/srv.log" &
      pid=$!
      for _ in $(seq 600); do curl -fs -o /dev/null "http://127.0.0.1:$port/readyz" && break; sleep 0.2; done
      wrk -t1 -c4 -d3s --timeout 20s -s bench/wrk.lua "http://127.0.0.1:$port" -- "$work/warm.tsv" >/dev/null
      sleep 1
      before=$(completed "$port")
      callgrind_control -z $pid >/dev/null
      wrk -t1 -c4 -d"${CG_SECONDS:-20}s" --timeout 20s -s bench/wrk.lua "http://127.0.0.1:$port" -- "$work/req.tsv" > "$work/wrk.out"
      sleep 2
      after=$(completed "$port")
      callgrind_control -d $pid >/dev/null
      kill -TERM $pid; wait $pid || true
      part=$(ls -t "$cgout"* | grep -v "^$cgout$" | head -1); ir=$(callgrind_annotate "$part" 2>/dev/null | awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1; exit }')
      n=$((after - before))
      errors=$(sed -n 's/^BENCH //p' "$work/wrk.out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["errors"])')
      echo -e "$round\t$backend\t$op\t$name\t$n\t$ir\t$((ir / n))\t$errors" | tee -a "$out/results.tsv"
    done
  done
done
done
