#!/usr/bin/env bash
# A cold build of a fresh copy of HEAD, as a new user's first `cargo run --release` makes it:
# wall time, the binary's size, and its size with the debug sections compressed or stripped.
#
#   bench/build-time.sh OUT NAME [cargo build arguments...]
#
# OUT/NAME/src is `git archive HEAD`, OUT/NAME/target a fresh CARGO_TARGET_DIR; the registry in
# CARGO_HOME is used as it is (run `cargo fetch --locked` first, so that no download is timed).
# Profile variants come from the environment, e.g. CARGO_PROFILE_RELEASE_LTO=thin
# CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16. Prints one tab-separated line (also appended to
# OUT/results.tsv): name, wall seconds, CPU seconds (user + system, of cargo and every compiler
# it ran: unlike wall time, it does not grow when other work shares the cores), load average at
# the start and at the end, binary bytes, bytes with compressed debug sections, bytes without
# debug sections, the profile settings.
# The binary stays in OUT/NAME/bin for bench/callgrind-ab.sh and scripts/bench.sh (BENCH_BIN).
set -euo pipefail
out=${1:?usage: bench/build-time.sh OUT NAME [cargo build arguments...]}
name=${2:?usage: bench/build-time.sh OUT NAME [cargo build arguments...]}
shift 2
root=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$out"
out=$(cd "$out" && pwd)
dir=$out/$name
rm -rf "$dir"
mkdir -p "$dir/src" "$dir/bin"
git -C "$root" archive HEAD | tar -x -C "$dir/src"
args=("$@")
((${#args[@]})) || args=(--release -p ownid-bridge)
load() { cut -d' ' -f1 /proc/loadavg; }
load_before=$(load)
TIMEFORMAT='%R %U %S'
{ time (cd "$dir/src" && CARGO_TARGET_DIR=$dir/target cargo build --locked --offline "${args[@]}" \
  >"$dir/build.log" 2>&1); } 2>"$dir/time" || { tail -n 30 "$dir/build.log" >&2; exit 1; }
read -r real user system <"$dir/time"
seconds=$(awk -v r="$real" 'BEGIN { printf "%.0f", r }')
cpu=$(awk -v u="$user" -v s="$system" 'BEGIN { printf "%.0f", u + s }')
load_after=$(load)
profile=release
for ((i = 0; i < ${#args[@]}; i++)); do
  [[ ${args[i]} == --profile ]] && profile=${args[i + 1]}
done
binary=$dir/target/$profile/ownid-bridge
cp "$binary" "$dir/bin/"
[[ -x $dir/target/$profile/ownid-bench ]] && cp "$dir/target/$profile/ownid-bench" "$dir/bin/"
objcopy --compress-debug-sections=zlib "$binary" "$dir/compressed"
objcopy --strip-debug "$binary" "$dir/stripped"
settings=$(env | grep '^CARGO_PROFILE_' | sort | tr '\n' ' ')
line=$(printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s' "$name" "$seconds" "$cpu" "$load_before" "$load_after" \
  "$(stat -c %s "$binary")" "$(stat -c %s "$dir/compressed")" "$(stat -c %s "$dir/stripped")" \
  "${settings:-(Cargo.toml as it is)} ${args[*]}")
echo "$line" | tee -a "$out/results.tsv"
# A cold release build's target directory takes gigabytes: only the binaries (and --timings's
# report, when asked for) stay.
[[ -d $dir/target/cargo-timings ]] && mv "$dir/target/cargo-timings" "$dir/"
rm -rf "$dir/target" "$dir/src" "$dir/compressed" "$dir/stripped"
