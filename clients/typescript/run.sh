#!/usr/bin/env bash
# Generates the TypeScript client types (openapi-typescript) and SDK (@hey-api/openapi-ts) from
# openapi/openapi.json and runs the client and Swagger UI tests against a running ownid-bridge.
#
# Required environment (scripts/test.sh sets it after starting the server):
#   OWNID_BRIDGE_URL     the server's origin, e.g. http://127.0.0.1:43121
#   OWNID_SHARED_SECRET  the base64 shared secret the server verifies with
#   OWNID_TEST_USER      a login id that exists and has no ownIdData yet (it gets some)
#   OWNID_TEST_OUT       a directory for artifacts (swagger-ui.png, openapi-ts.txt)
#   OWNID_APPS_URL, OWNID_APPS_CUSTOMER_SECRET, OWNID_APPS_ADMIN_SECRET
#                        a second server with two applications (customer under /ownid/customer,
#                        admin under /ownid/admin, the user user@example.com in both), for the
#                        Swagger UI test's application selector
# test/hey-api.test.mjs also needs the user hey-api-client@example.com (or OWNID_HEY_API_TEST_USER).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

for name in OWNID_BRIDGE_URL OWNID_SHARED_SECRET OWNID_TEST_USER OWNID_TEST_OUT \
  OWNID_APPS_URL OWNID_APPS_CUSTOMER_SECRET OWNID_APPS_ADMIN_SECRET; do
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

# The @hey-api/openapi-ts SDK (fetch client, bundled into the output) in generated/hey-api. A clean
# run prints only its banner, "Generating from 1 input:", the input's path and "Done!"; any other
# line (its warnings start with ⚠️/❗️/🚨/⚙️/🔌, errors with ❌) or anything on stderr fails the step.
# Node 20 cannot run .ts files, so tsc compiles the SDK (strict, which also type-checks it) into
# generated/hey-api-js, which test/hey-api.test.mjs imports.
rm -rf generated/hey-api generated/hey-api-js
hey_api_log=$OWNID_TEST_OUT/openapi-ts.txt
hey_api_status=0
# (It colours its output whatever the terminal; the colour codes are removed from the log.)
node_modules/.bin/openapi-ts --input ../../openapi/openapi.json --output generated/hey-api \
  --client @hey-api/client-fetch --no-log-file 2>"$hey_api_log.stderr" \
  | sed 's/\x1b\[[0-9;]*m//g' >"$hey_api_log" || hey_api_status=$?
cat "$hey_api_log" "$hey_api_log.stderr"
if [ "$hey_api_status" -ne 0 ] || [ -s "$hey_api_log.stderr" ] || grep -v -E \
  -e '^@hey-api/openapi-ts v[0-9.]+$' \
  -e '^\[Job 1\] ⏳ Generating from 1 input:$' \
  -e '^\[Job 1\] +\[1\] \.\./\.\./openapi/openapi\.json$' \
  -e '^\[Job 1\] ✅ Done! Your output is in ' \
  -e '^[[:space:]]*$' "$hey_api_log" >&2; then
  echo "clients/typescript/run.sh: @hey-api/openapi-ts printed a warning or an error (above)" >&2
  exit 1
fi
for operation in setOwnIdDataByLoginId getOwnIdDataByLoginId getSessionByLoginId; do
  if ! grep -q "^export const $operation = " generated/hey-api/sdk.gen.ts; then
    echo "clients/typescript/run.sh: the @hey-api/openapi-ts SDK lacks $operation" >&2
    exit 1
  fi
done
node_modules/.bin/tsc generated/hey-api/index.ts --rootDir generated/hey-api --outDir generated/hey-api-js \
  --declaration --strict --noUncheckedIndexedAccess --target es2022 --module nodenext \
  --moduleResolution nodenext --types node --skipLibCheck

node_modules/.bin/tsc --noEmit -p .
node --test --test-reporter=spec test/*.test.mjs
