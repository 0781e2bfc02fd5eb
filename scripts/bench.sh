#!/usr/bin/env bash
# Throughput and latency of the release server on every backend, next to what the database allows
# through the same driver without HTTP (see docs/benchmarks.md for a run's results).
#
# For each backend (sqlite, postgres, mysql = MariaDB, mongodb = jongodb) and each size, it:
#   1. seeds users with `ownid-bench seed` (the demo table from the server's own schema code,
#      user{i}@bench.example with ~1 KB of ownIdData each);
#   2. starts the release ownid-bridge (pool of BENCH_POOL connections, log level warn,
#      max_clock_skew 1h);
#   3. for each concurrency and each of get, set and session: runs `ownid-bench raw` (the
#      server's own statements through the same driver and pool, pool of min(C, BENCH_POOL)
#      connections, SQLite readers capped at 2 per CPU as in the server, no HTTP), then drives
#      getOwnIDDataByLoginId, setOwnIDDataByLoginId or getSessionByLoginId with wrk
#      (bench/wrk.lua), replaying requests pre-signed by `ownid-bench requests` for random users;
#   4. records the server's peak RSS (VmHWM, reset through /proc/PID/clear_refs before each measured
#      run) with every run, and stops it.
# Then bench/report.py prints a markdown table per backend and endpoint and writes the report and
# the chart: docs/benchmarks.md and docs/benchmarks.svg for a full run, the run directory only for
# a quick one.
#
# The databases are the test suite's throwaway servers (scripts/servers/with.sh starts them and
# tears them down); the measurements are bench/run.sh.
#
# Environment:
#   BENCH_QUICK=1          10,000 users everywhere and 2 s runs (a smoke test of the whole thing)
#   BENCH_SECONDS=N        measured seconds per wrk or raw run (default 5; quick: 2)
#   BENCH_WARMUP=N         unmeasured seconds before each of them (default 1)
#   BENCH_CONCURRENCY="1 32 256"   connections (wrk) and tasks (raw)
#   BENCH_BACKENDS="sqlite postgres mysql mongodb"
#   BENCH_SQL_USERS="10000 1000000"  sizes for the SQL backends (quick: 10000)
#   BENCH_MONGO_USERS=1000 size for the MongoDB backend. jongodb, the MongoDB-compatible test
#                          server, slows down with the square of the collection's size (an update
#                          takes 13 ms at 1,000 documents, 330 ms at 5,000, 1.35 s at 10,000), so
#                          the default stays small; against a real MongoDB
#                          (OWNID_TEST_MONGODB_URL=mongodb://... for scripts/test.sh) use 100000.
#   BENCH_POOL=32          the server's storage.pool.max_connections, and raw's largest pool
#   BENCH_WRK_THREADS=1    wrk threads (the machine's cores are shared with server and database)
#   BENCH_REQUESTS=100000  pre-signed requests per endpoint (set: at most 30000, they are 1 KB)
#   BENCH_OUT=DIR          where results go (default target/bench/<UTC time>)
#   BENCH_DOCS=0|1         write docs/benchmarks.{md,svg} (default: 1 unless BENCH_QUICK)
#   BENCH_DB_CACHE_MB=2048 PostgreSQL's shared_buffers and MariaDB's InnoDB buffer pool (MB)
#   BENCH_BIN=DIR          take ownid-bridge and ownid-bench from DIR instead of building them (to
#                          compare two builds on the same machine, one run after the other)
#
# `scripts/bench.sh peers` runs bench/peers.sh instead: ownid-bridge side by side with a minimal
# hand-written server (bench/peer) and OwnID's Express templates (bench/seed-express) on
# PostgreSQL, with the ratios between them.
set -euo pipefail
cd "$(dirname "$0")/.."
[[ ${1:-} == peers ]] && exec bench/peers.sh

source scripts/lib.sh

quick=${BENCH_QUICK:-}
[[ $quick == 0 ]] && quick=

if ! command -v wrk >/dev/null 2>&1; then
  [[ $(id -u) == 0 ]] || die "wrk is not installed (Debian: apt-get install wrk)"
  echo "== apt-get install wrk"
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends wrk
fi
command -v python3 >/dev/null 2>&1 || die "python3 is needed (free ports, the report)"
command -v curl >/dev/null 2>&1 || die "curl is needed (server readiness)"

bin=target/release
if [[ -n ${BENCH_BIN:-} ]]; then
  bin=$BENCH_BIN
  [[ -x $bin/ownid-bridge && -x $bin/ownid-bench ]] || die "no ownid-bridge and ownid-bench in $bin"
  echo "== binaries from $bin (not built)"
else
  echo "== cargo build --release -p ownid-bridge -p ownid-bridge-bench"
  cargo build --release -p ownid-bridge -p ownid-bridge-bench
fi

out=${BENCH_OUT:-target/bench/$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$out/bin"
out=$(cd "$out" && pwd)
# A copy of the binaries just built, so that another build into target/ during the run cannot
# swap them.
cp "$bin/ownid-bridge" "$bin/ownid-bench" "$out/bin/"
: >"$out/results.jsonl"
: >"$out/commands.txt"
: >"$out/versions.tsv"
: >"$out/meta.tsv"

echo "== results in $out"
started=$SECONDS
# Database caches that hold the 1,000,000-user tables (~1.2 GB each), as a production database
# would be sized for its working set: with the tests' 32 MB, nearly every lookup at that size
# missed PostgreSQL's buffers and measured its reads from the OS file cache, not the server.
db_cache_mb=${BENCH_DB_CACHE_MB:-2048}
printf 'db_cache_mb\t%s\n' "$db_cache_mb" >>"$out/meta.tsv"
OWNID_TEST_DB_CACHE_MB=$db_cache_mb BENCH_OUT=$out scripts/servers/with.sh bench/run.sh
printf 'elapsed\t%s\n' "$((SECONDS - started))" >>"$out/meta.tsv"

docs=${BENCH_DOCS:-}
[[ -z $docs ]] && { if [[ -n $quick ]]; then docs=0; else docs=1; fi; }
report=(python3 bench/report.py "$out" --md "$out/benchmarks.md" --svg "$out/benchmarks.svg")
[[ $docs == 1 ]] && report=(python3 bench/report.py "$out" --md docs/benchmarks.md --svg docs/benchmarks.svg)
echo "== ${report[*]}"
"${report[@]}"
