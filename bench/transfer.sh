#!/usr/bin/env bash
# export and import at scale: 1,000,000 users (TRANSFER_USERS) seeded on SQLite by ownid-bench
# (about 1 KB of ownIdData each), exported to JSON Lines, imported into an empty PostgreSQL
# table with --create-missing-users (the SQLite-to-PostgreSQL move), then imported again (every
# line unchanged: what resuming costs). Each step runs under /usr/bin/time -v for the elapsed
# time and the peak memory. For docs/benchmarks.md. Runs inside scripts/servers/with.sh, which starts
# PostgreSQL. From the repository root, after `cargo build --release -p ownid-bridge -p
# ownid-bridge-bench`:
#
#   scripts/servers/with.sh bench/transfer.sh
#
# Environment: TRANSFER_BIN (default target/release), TRANSFER_USERS (1000000). Prints one
# tab-separated line per step: step, users, seconds, users/s, peak RSS MB, the command's report.
set -euo pipefail

bin=${TRANSFER_BIN:-target/release}
users=${TRANSFER_USERS:-1000000}
[[ -x $bin/ownid-bridge && -x $bin/ownid-bench ]] || { echo "no release binaries in $bin" >&2; exit 1; }
: "${OWNID_TEST_POSTGRES_URL:?run inside scripts/servers/with.sh}"

work=$(mktemp -d "${TMPDIR:-/tmp}/ownid-transfer.XXXXXX")
trap 'rm -rf "$work"' EXIT
sqlite_url="sqlite://$work/source.db"
table="transfer_$(date +%s)"

"$bin/ownid-bench" seed --backend sqlite --url "$sqlite_url" --users "$users" >/dev/null 2>&1

# step NAME ENV... -- ARGS...: runs ownid-bridge ARGS with the ENV settings under time -v.
step() {
  local name=$1 env=() report seconds rss
  shift
  while [[ $1 != -- ]]; do env+=("$1"); shift; done
  shift
  env -u OWNID_BRIDGE_CONFIG "${env[@]}" /usr/bin/time -v -o "$work/time" \
    "$bin/ownid-bridge" "$@" >"$work/out" 2>"$work/err"
  report=$(cat "$work/out" "$work/err" | grep -v '^$' | tail -n 1)
  seconds=$(awk -F': ' '/Elapsed \(wall clock\)/ { n = split($2, t, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + t[i]; print s }' "$work/time")
  rss=$(awk -F': ' '/Maximum resident set size/ { printf "%.1f", $2 / 1024 }' "$work/time")
  printf '%s\t%s\t%.1f\t%.0f\t%s\t%s\n' "$name" "$users" "$seconds" "$(echo "$users / $seconds" | bc -l)" "$rss" "$report"
}

sqlite_env=(OWNID_BRIDGE__STORAGE__BACKEND=sqlite OWNID_BRIDGE__STORAGE__URL="$sqlite_url")
pg_env=(OWNID_BRIDGE__STORAGE__BACKEND=postgres OWNID_BRIDGE__STORAGE__URL="$OWNID_TEST_POSTGRES_URL"
  OWNID_BRIDGE__STORAGE__USERS__TABLE="$table")

printf 'step\tusers\tseconds\tusers/s\tpeak RSS MB\treport\n'
step "export from SQLite" "${sqlite_env[@]}" -- export --output "$work/users.jsonl"
echo "# export file: $(du -m "$work/users.jsonl" | cut -f1) MB, $(wc -l <"$work/users.jsonl") lines"
env -u OWNID_BRIDGE_CONFIG "${pg_env[@]}" "$bin/ownid-bridge" schema >/dev/null
step "import into PostgreSQL" "${pg_env[@]}" -- import --create-missing-users --input "$work/users.jsonl"
step "import again (unchanged)" "${pg_env[@]}" -- import --create-missing-users --input "$work/users.jsonl"
step "export from PostgreSQL" "${pg_env[@]}" -- export --output "$work/again.jsonl"
if cmp -s <(sort "$work/users.jsonl") <(sort "$work/again.jsonl"); then
  echo "# the PostgreSQL export holds exactly the SQLite export's lines"
else
  echo "# the PostgreSQL export differs from the SQLite export" >&2
  exit 1
fi
