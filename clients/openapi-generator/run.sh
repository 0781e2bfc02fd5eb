#!/usr/bin/env bash
# Clients generated from the committed openapi/openapi.json by OpenAPI Generator (the PyPI
# package openapi-generator-cli, its jar run by the installed Java), in two of its mainstream
# languages, each called against a running ownid-bridge with signed requests:
#
#   typescript-fetch  compiled with tsc (strict), then test/typescript-fetch.test.mjs (node --test):
#                     signs in a fetch middleware
#   python            python_client.py: signs in a wrapper around the generated client's urllib3
#                     pool, over the exact body bytes it sends
#
# A generator's WARN line fails the step, with one exception: the python generator logs
# "ModelUtils - Failed to get the schema name: null" for every document that has an object
# schema (a one-object document does it too): that is the generator's own, not the document's.
#
# Required environment (scripts/test.sh sets it after starting the server):
#   OWNID_BRIDGE_URL     the server's root URL, e.g. http://127.0.0.1:43121
#   OWNID_SHARED_SECRET  the base64 shared secret the server verifies with
#   OWNID_TEST_OUT       a directory for the generated code and the generators' logs
# Users openapi-generator-ts@example.com and openapi-generator-py@example.com must exist without
# ownIdData (they get some).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)

for name in OWNID_BRIDGE_URL OWNID_SHARED_SECRET OWNID_TEST_OUT; do
  if [ -z "${!name:-}" ]; then
    echo "clients/openapi-generator/run.sh: $name is not set" >&2
    exit 2
  fi
done
command -v java >/dev/null || { echo "clients/openapi-generator/run.sh: java is required (Debian: apt-get install -y default-jre-headless)" >&2; exit 1; }
command -v node >/dev/null && command -v npm >/dev/null \
  || { echo "clients/openapi-generator/run.sh: node and npm are required" >&2; exit 1; }
mkdir -p "$OWNID_TEST_OUT"
out=$(cd "$OWNID_TEST_OUT" && pwd)
export PYTHONDONTWRITEBYTECODE=1

# The venv, rebuilt only when requirements.txt or the Python version changed.
python=${PYTHON:-python3}
venv=$root/.cache/openapi-generator-venv
stamp=$venv/.ownid-requirements.sha256
want=$( { sha256sum "$here/requirements.txt" | cut -d' ' -f1; "$python" --version 2>&1; } | sha256sum | cut -d' ' -f1)
if [[ ! -x $venv/bin/python || ! -f $stamp || $(cat "$stamp") != "$want" ]]; then
  echo "== run.sh: building $venv from clients/openapi-generator/requirements.txt"
  rm -rf "$venv"
  "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input -r "$here/requirements.txt"
  echo "$want" >"$stamp"
fi
# tsc, only when package.json or the lock changed.
cd "$here"
npm_stamp=node_modules/.ownid-bridge-lock.sha256
npm_want=$(cat package.json package-lock.json | sha256sum | cut -d' ' -f1)
if [ ! -f "$npm_stamp" ] || [ "$(cat "$npm_stamp")" != "$npm_want" ]; then
  npm ci --no-audit --no-fund >/dev/null
  echo "$npm_want" >"$npm_stamp"
fi

generate() { # generator output-directory extra-arguments...
  local generator=$1 dir=$2 log=$out/$1.log
  shift 2
  rm -rf "$dir"
  "$venv/bin/openapi-generator-cli" generate -i "$root/openapi/openapi.json" -g "$generator" \
    -o "$dir" "$@" >"$log" 2>&1 || { cat "$log" >&2; echo "== run.sh: $generator failed" >&2; exit 1; }
  if grep -E '^\[[^]]*\] (WARN|ERROR)' "$log" \
    | grep -v -F 'o.o.codegen.utils.ModelUtils - Failed to get the schema name: null' >&2; then
    echo "== run.sh: OpenAPI Generator's $generator generator warned (above; the whole log: $log)" >&2
    exit 1
  fi
  echo "   $generator: $(grep -c 'writing file' "$log") files, no warning about the document"
}

echo "== run.sh: OpenAPI Generator $("$venv/bin/openapi-generator-cli" version)"
generate typescript-fetch "$out/typescript-fetch"
# Node runs JavaScript: tsc (strict, which also type-checks the client) compiles it to CommonJS,
# which the generated extensionless imports need.
node_modules/.bin/tsc "$out/typescript-fetch/index.ts" --outDir "$out/typescript-fetch-js" \
  --strict --target es2022 --module commonjs --moduleResolution node --lib es2022,dom \
  --types node --skipLibCheck
echo '{"type": "commonjs"}' >"$out/typescript-fetch-js/package.json"
OWNID_GENERATED_TS="$out/typescript-fetch-js/index.js" OWNID_TEST_USER=openapi-generator-ts@example.com \
  node --test --test-reporter=spec test/typescript-fetch.test.mjs

generate python "$out/python" --package-name ownid_bridge_generated
"$venv/bin/python" "$here/python_client.py" "$out/python"
echo "== run.sh: passed"
