#!/usr/bin/env bash
# Generates the TypeScript client types from openapi/openapi.json and runs the client and
# Swagger UI tests against a running ownid-bridge.
#
# Required environment (scripts/test.sh sets it after starting the server):
#   OWNID_BRIDGE_URL     the server's origin, e.g. http://127.0.0.1:43121
#   OWNID_SHARED_SECRET  the base64 shared secret the server verifies with
#   OWNID_TEST_USER      a login id that exists and has no ownIdData yet (it gets some)
#   OWNID_TEST_OUT       a directory for artifacts (swagger-ui.png)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

for name in OWNID_BRIDGE_URL OWNID_SHARED_SECRET OWNID_TEST_USER OWNID_TEST_OUT; do
  if [ -z "${!name:-}" ]; then
    echo "clients/typescript/run.sh: $name is not set" >&2
    exit 2
  fi
done

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "clients/typescript/run.sh: node and npm are required (Debian: apt-get install -y nodejs npm)" >&2
  exit 1
fi

# The browser is Debian's Chromium; playwright-core never downloads one.
if [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" -eq 0 ]; then
    echo "clients/typescript/run.sh: installing Debian's chromium" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "clients/typescript/run.sh: /usr/bin/chromium is missing; as root run: apt-get install -y chromium" >&2
    exit 1
  fi
fi

# npm ci only when node_modules is missing or package.json / package-lock.json changed since.
stamp=node_modules/.ownid-bridge-lock.sha256
want=$(cat package.json package-lock.json | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  npm ci --no-audit --no-fund
  echo "$want" >"$stamp"
fi

mkdir -p "$OWNID_TEST_OUT"
node_modules/.bin/openapi-typescript ../../openapi/openapi.json --output generated/ownid-bridge.d.ts
node_modules/.bin/tsc --noEmit -p .
node --test --test-reporter=spec test/*.test.mjs
