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
# The databases are scripts/test.sh's throwaway servers: this script re-invokes itself inside
# `OWNID_TEST_SERVERS_RUN=... scripts/test.sh`, which starts them and tears them down.
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

die() {
  echo "bench.sh: $*" >&2
  exit 1
}

quick=${BENCH_QUICK:-}
[[ $quick == 0 ]] && quick=

# ---------------------------------------------------------------------------------------------
# Outer: tools, build, databases, report.

if [[ -z ${OWNID_BENCH_INNER:-} ]]; then
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
  {
    printf 'date\t%s\n' "$(date -u '+%Y-%m-%d %H:%M UTC')"
    printf 'cores\t%s\n' "$(nproc)"
    printf 'cpu\t%s\n' "$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)"
    printf 'memory\t%s\n' "$(awk '/^MemTotal:/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)"
    printf 'kernel\t%s\n' "$(uname -srm)"
    printf 'os\t%s\n' "$(. /etc/os-release 2>/dev/null && echo "${PRETTY_NAME:-unknown}")"
    printf 'rustc\t%s\n' "$(rustc --version)"
    printf 'wrk\t%s\n' "$(wrk -v 2>&1 | head -n 1 | sed 's/ Copyright.*//')"
    printf 'quick\t%s\n' "${quick:-0}"
    printf 'invocation\t%s\n' "$(env | grep -E '^BENCH_' | sort | tr '\n' ' ')scripts/bench.sh"
  } >"$out/meta.tsv"

  echo "== results in $out"
  # The machine is shared with other virtual machines and its speed moves from hour to hour:
  # bench/probe.py times a CPU-bound loop and a wake-up round trip between two processes, before
  # and after the run, for the report.
  probe() { # start|end
    local figures
    figures=$(python3 bench/probe.py) || die "bench/probe.py failed"
    printf 'cpu_probe_%s_ms\t%s\nwake_probe_%s_us\t%s\n' "$1" "${figures%%$'\t'*}" "$1" \
      "${figures#*$'\t'}" >>"$out/meta.tsv"
  }
  probe start
  started=$SECONDS
  # Database caches that hold the 1,000,000-user tables (~1.2 GB each), as a production database
  # would be sized for its working set: with the tests' 32 MB, nearly every lookup at that size
  # missed PostgreSQL's buffers and measured its reads from the OS file cache, not the server.
  db_cache_mb=${BENCH_DB_CACHE_MB:-2048}
  printf 'db_cache_mb\t%s\n' "$db_cache_mb" >>"$out/meta.tsv"
  OWNID_TEST_DB_CACHE_MB=$db_cache_mb OWNID_BENCH_INNER=1 BENCH_OUT=$out \
    OWNID_TEST_SERVERS_RUN=scripts/bench.sh scripts/test.sh
  printf 'elapsed\t%s\n' "$((SECONDS - started))" >>"$out/meta.tsv"
  probe end

  docs=${BENCH_DOCS:-}
  [[ -z $docs ]] && { if [[ -n $quick ]]; then docs=0; else docs=1; fi; }
  report=(python3 bench/report.py "$out" --md "$out/benchmarks.md" --svg "$out/benchmarks.svg")
  [[ $docs == 1 ]] && report=(python3 bench/report.py "$out" --md docs/benchmarks.md --svg docs/benchmarks.svg)
  echo "== ${report[*]}"
  "${report[@]}"
  exit 0
fi

# ---------------------------------------------------------------------------------------------
# Inner: runs inside scripts/test.sh, with OWNID_TEST_*_URL exported.

out=${BENCH_OUT:?}
run_seconds=${BENCH_SECONDS:-$([[ -n $quick ]] && echo 2 || echo 5)}
warmup=${BENCH_WARMUP:-1}
concurrency=${BENCH_CONCURRENCY:-1 32 256}
backends=${BENCH_BACKENDS:-sqlite postgres mysql mongodb}
sql_users=${BENCH_SQL_USERS:-$([[ -n $quick ]] && echo 10000 || echo "10000 1000000")}
mongo_users=${BENCH_MONGO_USERS:-1000}
pool=${BENCH_POOL:-32}
wrk_threads=${BENCH_WRK_THREADS:-1}
request_count=${BENCH_REQUESTS:-100000}
printf 'seconds\t%s\nwarmup\t%s\npool\t%s\nwrk_threads\t%s\nrequests\t%s\n' \
  "$run_seconds" "$warmup" "$pool" "$wrk_threads" "$request_count" >>"$out/meta.tsv"

bridge=$out/bin/ownid-bridge
bench=$out/bin/ownid-bench
[[ -x $bridge && -x $bench ]] || die "no binaries in $out/bin"
# Nothing from the caller's environment may change the server's configuration.
while read -r name; do unset "$name"; done < <(compgen -e | grep -E '^OWNID_BRIDGE' || true)

work=$(mktemp -d "${TMPDIR:-/tmp}/ownid-bench.XXXXXX")
printf 'out\t%s\nwork\t%s\n' "$out" "$work" >>"$out/meta.tsv"
server_pid=''
cleanup() {
  if [[ -n $server_pid ]]; then
    kill -TERM "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

log_command() { # the command as it runs, for the report's "exact commands"
  local line
  printf -v line '%q ' "$@"
  echo "${line% }" >>"$out/commands.txt"
}

run() { # command...: logged, then run
  log_command "$@"
  "$@"
}

# free_port, server_config, completed
# shellcheck source=bench/lib.sh
source bench/lib.sh

record() { # prefix json: appends {prefix fields..., json fields...} to results.jsonl
  local json=$2
  [[ $json == \{* ]] || die "not a JSON object: $json"
  echo "{$1,${json#\{}" >>"$out/results.jsonl"
}

backend_url() {
  case $1 in
    sqlite) echo "sqlite://$work/bench.db" ;;
    postgres) echo "${OWNID_TEST_POSTGRES_URL:?}" ;;
    mysql) echo "${OWNID_TEST_MYSQL_URL%/}/ownid_bench" ;;
    mongodb) echo "${OWNID_TEST_MONGODB_URL%/}/ownid_bench" ;;
    *) die "unknown backend $1" ;;
  esac
}

op_endpoint() {
  case $1 in
    get) echo getOwnIDDataByLoginId ;;
    set) echo setOwnIDDataByLoginId ;;
    session) echo getSessionByLoginId ;;
  esac
}

start_server() { # backend url users -> server_pid, port
  local backend=$1 url=$2 users=$3 config
  port=$(free_port)
  secret=$("$bridge" config secret)
  config=$work/bridge-$backend.yaml
  server_config "$port" "$secret" "$("$bridge" config secret)" "$backend" "$url" "$pool" >"$config"
  # For the report, without the run's secrets.
  sed -E 's/^(  (shared_secret|secret): ).*/\1"<generated for the run>"/' "$config" \
    >"$out/config-$backend-$users.yaml"
  log_command "$bridge" --config "$config" serve
  "$bridge" --config "$config" serve >"$out/server-$backend-$users.out" 2>"$out/server-$backend-$users.log" &
  server_pid=$!
  local deadline=$((SECONDS + 60))
  until curl -fs -o /dev/null "http://127.0.0.1:$port/readyz"; do
    kill -0 "$server_pid" 2>/dev/null || {
      cat "$out/server-$backend-$users.log" >&2
      die "ownid-bridge did not start"
    }
    ((SECONDS < deadline)) || die "ownid-bridge did not become ready"
    sleep 0.1
  done
}

drain() { # waits until the server has finished what wrk left in flight: the count stops moving
  local before after deadline=$((SECONDS + 120))
  after=$(completed "$port") || { sleep 1; return; }
  while :; do
    sleep 0.5
    before=$after
    after=$(completed "$port") || return 0
    [[ $before == "$after" ]] && return 0
    ((SECONDS < deadline)) || { echo "   (the server was still busy after 120 s)" >&2; return 0; }
  done
}

max_rss_kb=0 # the highest per-run peak of the current server

reset_peak_rss() { # the kernel's peak RSS of the server (VmHWM) starts again from its RSS now
  echo 5 >"/proc/$server_pid/clear_refs" || die "cannot reset the server's peak RSS (/proc/PID/clear_refs)"
}

peak_rss_kb() { # VmHWM of the server in KiB
  awk '/^VmHWM:/ { print $2 }' "/proc/$server_pid/status"
}

stop_server() {
  kill -TERM "$server_pid"
  wait "$server_pid" || true
  server_pid=''
}

wrk_run() { # op concurrency duration requests-file log(0|1): prints wrk's BENCH JSON
  local op=$1 c=$2 duration=$3 file=$4 log=$5 threads=$wrk_threads
  ((threads > c)) && threads=$c
  local cmd=(wrk -t"$threads" -c"$c" -d"${duration}s" --timeout 10s -s bench/wrk.lua
    "http://127.0.0.1:$port" -- "$file")
  if [[ $log == 1 ]]; then log_command "${cmd[@]}"; fi
  "${cmd[@]}" >"$work/wrk.out" 2>&1 || {
    cat "$work/wrk.out" >&2
    die "wrk failed"
  }
  sed -n 's/^BENCH //p' "$work/wrk.out"
}

for backend in $backends; do
  url=$(backend_url "$backend")
  echo "== $backend"
  sizes=$sql_users
  [[ $backend == mongodb ]] && sizes=$mongo_users
  for users in $sizes; do
    tag="\"backend\":\"$backend\",\"users\":$users"
    echo "-- $backend, $users users: seed"
    record "\"kind\":\"seed\"" "$(run "$bench" seed --backend "$backend" --url "$url" --users "$users" 2>/dev/null)"
    grep -q "^$backend"$'\t' "$out/versions.tsv" \
      || printf '%s\t%s\n' "$backend" "$("$bench" server-version --backend "$backend" --url "$url")" \
        >>"$out/versions.tsv"

    start_server "$backend" "$url" "$users"
    for op in get set session; do
      count=$request_count
      [[ $op == set ]] && ((count > 30000)) && count=30000
      run "$bench" requests --url "http://127.0.0.1:$port/ownid" --secret "$secret" --op "$op" \
        --users "$users" --count "$count" --out "$work/$op.tsv"
    done
    # Concurrency outside, endpoint inside: a run's peak memory then never includes what a run at
    # a higher concurrency left allocated. Each row's raw run comes right before its wrk run (the
    # server idle meanwhile), so that the two are measured in the same minute of a machine whose
    # speed drifts.
    for c in $concurrency; do
      for op in get set session; do
        raw_pool=$((c < pool ? c : pool))
        json=$(run "$bench" raw --backend "$backend" --url "$url" --users "$users" --op "$op" \
          --concurrency "$c" --pool "$raw_pool" --seconds "$run_seconds" --warmup "$warmup")
        echo "   raw $op c=$c pool=$raw_pool: $json"
        sleep 0.5 # what raw abandoned at its deadline finishes in the database
        record "\"kind\":\"raw\",$tag,\"op\":\"$op\",\"concurrency\":$c,\"pool\":$raw_pool" "$json"

        wrk_run "$op" "$c" "$warmup" "$work/$op.tsv" 0 >/dev/null
        drain
        reset_peak_rss
        json=$(wrk_run "$op" "$c" "$run_seconds" "$work/$op.tsv" 1)
        drain
        [[ -n $json ]] || die "wrk printed no result"
        rss_kb=$(peak_rss_kb)
        ((rss_kb > max_rss_kb)) && max_rss_kb=$rss_kb
        json="${json%\}},\"rss_kb\":$rss_kb}"
        echo "   http $(op_endpoint "$op") c=$c: $json"
        record "\"kind\":\"http\",$tag,\"op\":\"$op\",\"concurrency\":$c" "$json"
      done
    done
    hwm=$(awk '/^VmHWM:/ { print $2 }' "/proc/$server_pid/status")
    echo "   server peak RSS (VmHWM) since the last reset: $((hwm / 1024)) MiB; highest of the runs: $((max_rss_kb / 1024)) MiB"
    record "\"kind\":\"rss\",$tag" "{\"vmhwm_kb\":$max_rss_kb}"
    max_rss_kb=0
    stop_server
  done
  if [[ $backend == sqlite ]]; then rm -f "$work"/bench.db*; fi
done
echo "== bench done"
