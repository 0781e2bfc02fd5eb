#!/usr/bin/env bash
# Supply chain: cargo-deny (from crates.io, built once into ~/.cargo/bin) with deny.toml's policy.
# licenses, bans and sources need only Cargo.lock; advisories needs the RustSec database, from
# OWNID_ADVISORY_DB (a directory in cargo-deny's layout, a copy of ~/.cargo/advisory-dbs) or
# fetched; where neither works the check is reported as NOT CHECKED, never passed.
set -euo pipefail
cd "$(dirname "$0")/../.."

version=0.20.2
if [[ $(cargo deny --version 2>/dev/null) != "cargo-deny $version" ]]; then
  echo "== cargo install cargo-deny $version (once; a few minutes)"
  cargo install --locked --quiet cargo-deny --version "$version"
fi
echo "== cargo deny: licenses, bans, sources"
cargo fetch --locked --quiet
cargo deny --offline check licenses bans sources
if [[ -n ${OWNID_ADVISORY_DB:-} ]]; then
  echo "== cargo deny: advisories, from $OWNID_ADVISORY_DB"
  config=$(mktemp)
  trap 'rm -f "$config"' EXIT
  sed "s#^\[advisories\]#[advisories]\ndb-path = \"$OWNID_ADVISORY_DB\"#" deny.toml >"$config"
  cargo deny --offline check --config "$config" --disable-fetch advisories
elif fetched=$(cargo deny fetch db 2>&1); then
  echo "== cargo deny: advisories (database fetched)"
  cargo deny check --disable-fetch advisories
else
  echo "== cargo deny: advisories NOT CHECKED: the RustSec database could not be fetched"
  echo "   ($(tail -n 1 <<<"$fetched")); set OWNID_ADVISORY_DB or run where it is reachable"
fi
