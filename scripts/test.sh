#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run): installs what is missing, then, with the
# throwaway servers of scripts/servers/with.sh (PostgreSQL, PgBouncer, MariaDB, jongodb, a
# PostgreSQL primary with a synchronous standby, a 3-node MariaDB Galera cluster):
#   cargo fmt --check; cargo clippy -D warnings; cargo test with every server-backed test
#   (--all-features turns on `server-tests`: a test whose server is missing fails, never skips);
#   scripts/checks/clients.sh (generated clients, Swagger UI in Chromium, spec validator,
#   schemathesis); packaging/check.sh (the Debian package installed and serving, the container
#   image's runtime stage built and run from its filesystem); scripts/checks/deny.sh (cargo-deny).
# Every server is stopped and removed at the end, also on failure. The OWNID_TEST_*_URL variables
# of scripts/servers/with.sh point the suite at existing servers instead.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

command -v cargo >/dev/null || die "cargo is not installed (https://rustup.rs)"
{ cargo fmt --version && cargo clippy --version; } >/dev/null 2>&1 || rustup component add rustfmt clippy

# Debian packages of the servers and tools the suite runs, installed when missing (as root).
missing=()
need() { # package tool...: the package, unless one of the tools is there
  find_tool "${@:2}" >/dev/null || missing+=("$1")
}
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || missing+=(postgresql)
need pgbouncer pgbouncer
need mariadb-server mariadbd
dpkg -L galera-4 2>/dev/null | grep -q 'libgalera_smm\.so$' || missing+=(galera-4)
need haproxy haproxy
need rsync rsync
need nodejs node
need npm npm
need python3 python3
need default-jre-headless java # OpenAPI Generator (clients/openapi-generator)
if ((${#missing[@]})); then
  [[ $(id -u) == 0 ]] || die "missing Debian packages: ${missing[*]}; install them or run as root"
  echo "== apt-get install ${missing[*]}"
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

suite() {
  set -euo pipefail # a function run by `bash -c` does not inherit the options
  echo "== cargo fmt --check"
  cargo fmt --all -- --check
  echo "== cargo clippy"
  cargo clippy --locked --workspace --all-targets --all-features -- -D warnings
  echo "== cargo test"
  cargo test --locked --workspace --all-features
  scripts/checks/clients.sh
  packaging/check.sh target/debug/ownid-bridge
  scripts/checks/deny.sh
  echo "== all checks passed"
}
export -f suite
scripts/servers/with.sh --clusters bash -c suite
