#!/usr/bin/env bash
# The TypeScript client swagger-typescript-api (npm, pinned in package.json) generates from the
# committed openapi/openapi.json (fetch client, routes grouped by their tag: `api.ownId.*`), called
# against a running ownid-bridge with signed requests:
#
#   1. generated into generated/ownid-bridge.ts; the step fails on any line of the generator's
#      output other than its known progress lines (a warning), or on anything on stderr.
#   2. tsc (strict, noUncheckedIndexedAccess) compiles the client together with
#      test/client.test.ts into generated/js. The generator marks its file `// @ts-nocheck`; that
#      line is removed first, so the strict check covers the generated code too.
#   3. node --test runs the compiled test: set 204 as a success, get 204 / 200 (OwnIdData) / 404,
#      session 200 with a token, an unsigned request 401 with the ErrorBody; the answers' types
#      are checked by tsc in step 2.
#
# Required environment (scripts/checks/clients.sh sets it after starting the server):
#   OWNID_BRIDGE_URL     the server's root URL, e.g. http://127.0.0.1:43121
#   OWNID_SHARED_SECRET  the base64 shared secret the server verifies with
#   OWNID_TEST_OUT       a directory for the generator's log
# The user swagger-typescript-api@example.com must exist without ownIdData (it gets some).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)

for name in OWNID_BRIDGE_URL OWNID_SHARED_SECRET OWNID_TEST_OUT; do
  if [ -z "${!name:-}" ]; then
    echo "clients/swagger-typescript-api/run.sh: $name is not set" >&2
    exit 2
  fi
done
command -v node >/dev/null && command -v npm >/dev/null \
  || { echo "clients/swagger-typescript-api/run.sh: node and npm are required (Debian: apt-get install -y nodejs npm)" >&2; exit 1; }
mkdir -p "$OWNID_TEST_OUT"
out=$(cd "$OWNID_TEST_OUT" && pwd)

# npm ci only when node_modules is missing or package.json / package-lock.json changed since.
cd "$here"
stamp=node_modules/.ownid-bridge-lock.sha256
want=$(cat package.json package-lock.json | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  npm ci --no-audit --no-fund >/dev/null
  echo "$want" >"$stamp"
fi

# 1. A clean run prints exactly these lines (its info and success lines start with ℹ and ✔ on a
#    terminal, with [info] and [success] elsewhere, as under CI);
#    its warnings (⚠ ...) and errors, or a line this list does not know, fail the step.
rm -rf generated
log=$out/swagger-typescript-api.log
literal() { printf '%s' "$1" | sed 's/[][\.*^$+?(){}|]/\\&/g'; } # a path as an extended regex
info='(ℹ|\[info\])' success='(✔|\[success\])'
status=0
node_modules/.bin/swagger-typescript-api generate --path "$root/openapi/openapi.json" \
  --output "$here/generated" --name ownid-bridge.ts --module-name-first-tag >"$log" 2>"$log.stderr" || status=$?
sed 's/^/   /' "$log" "$log.stderr"
if ((status != 0)) || [ -s "$log.stderr" ] || grep -v -x -E \
  -e "$info"' Code generator will use the default template for "(api|routetypes)"' \
  -e "$info try to get swagger by path \"$(literal "$root/openapi/openapi.json")\"" \
  -e "$info start generating your typescript api" \
  -e "$success api file \"ownid-bridge\.ts\" created in $(literal "$here/generated")" \
  -e '[[:space:]]*' "$log" >&2; then
  echo "== run.sh: swagger-typescript-api exited $status, warned or printed an error (above; the log: $log)" >&2
  exit 1
fi
for operation in setOwnIdDataByLoginId getOwnIdDataByLoginId getSessionByLoginId; do
  grep -q "^    $operation: (" generated/ownid-bridge.ts \
    || { echo "== run.sh: the generated client lacks $operation" >&2; exit 1; }
done

# 2. Strict compilation of the client (without its @ts-nocheck) and the test.
sed -i '/^\/\/ @ts-nocheck$/d' generated/ownid-bridge.ts
node_modules/.bin/tsc -p tsconfig.json

# 3. Against the server.
OWNID_TEST_USER=swagger-typescript-api@example.com \
  node --test --test-reporter=spec generated/js/test/client.test.js
echo "== run.sh: passed"
