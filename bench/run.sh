#!/usr/bin/env bash
# The measurements of scripts/bench.sh, run by it inside scripts/servers/with.sh (OWNID_TEST_*_URL
# exported) with the binaries in $BENCH_OUT/bin: for each backend and size, seed, start the
# release server, then for each concurrency and operation a raw run and a wrk run (see
# scripts/bench.sh for the whole and the environment).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

out=${BENCH_OUT:?}
quick=${BENCH_QUICK:-}
[[ $quick == 0 ]] && quick=
run_seconds=${BENCH_SECONDS:-$([[ -n $quick ]] && echo 2 || echo 5)}
warmup=${BENCH_WARMUP:-1}
concurrency=${BENCH_CONCURRENCY:-1 32 256}
backends=${BENCH_BACKENDS:-sqlite postgres mysql mongodb}
sql_users=${BENCH_SQL_USERS:-$([[ -n $quick ]] && echo 10000 || echo "10000 1000000")}
mongo_users=${BENCH_MONGO_USERS:-1000}
pool=${BENCH_POOL:-32}
wrk_threads=${BENCH_WRK_THREADS:-1}
request_count=${BENCH_REQUESTS:-100000}
# The machine, for the report.
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
} >>"$out/meta.tsv"
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
# The databases' settings as the servers report them, for the report.
pg() { psql "$OWNID_TEST_POSTGRES_URL" -XAtc "SHOW $1"; }
my() { mariadb_at "$OWNID_TEST_MYSQL_URL" -NBe "SELECT @@$1"; }
printf 'db_settings\tPostgreSQL shared_buffers %s, max_connections %s, fsync %s, synchronous_commit %s, full_page_writes %s; MariaDB innodb_buffer_pool_size %s MB, innodb_flush_log_at_trx_commit %s\n' \
  "$(pg shared_buffers)" "$(pg max_connections)" "$(pg fsync)" "$(pg synchronous_commit)" \
  "$(pg full_page_writes)" "$(($(my innodb_buffer_pool_size) / 1048576))" \
  "$(my innodb_flush_log_at_trx_commit)" >>"$out/meta.tsv"
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
probe end
