#!/usr/bin/env bash
# Contract tests of a running ownid-bridge from Python: OpenAPI validation, the client
# openapi-python-client generates, and schemathesis.
#
# Called by scripts/test.sh after it has started the server. Environment (all required):
#   OWNID_BRIDGE_URL     the server's root URL, e.g. http://127.0.0.1:43121 (operations are under
#                        /ownid, the served spec at /openapi.json)
#   OWNID_SHARED_SECRET  the base64 shared secret the server verifies signatures with
#   OWNID_TEST_OUT       a directory for the reports (created if missing)
#   OWNID_APPS_URL       a second server's root URL, configured with several applications (apps:)
# Optional: PYTHON (default python3) builds the virtualenv; OWNID_PYTHON_CLIENT_USER (default
# python-client@example.com) is the existing user generated_client.py writes to.
#
# Steps:
#   0. The virtualenv .cache/python-venv, (re)built only when requirements.txt or the Python
#      version changed (a hash stamp inside the venv records what it was built from).
#   1. openapi-spec-validator on the committed openapi/openapi.yaml and openapi/openapi.json, and
#      on the document the server with several applications serves; openapi-python-client
#      generates a client from the latter without a warning, with three operations per
#      application.
#   2. preflight.py: the served /openapi.json is byte-identical to openapi/openapi.json (and the
#      YAML is the same document); the signer passes SPEC §2's test vector; a request signed by
#      the hooks' signer gets 404 for an unknown login id, unsigned and wrongly signed ones 401.
#   3. openapi-python-client generates a client from openapi/openapi.json into
#      $OWNID_TEST_OUT/generated (never committed); the step fails on any warning or when one of
#      the three operation modules is missing. generated_client.py then calls the three
#      operations through it against the server, signed by an httpx event hook on the generated
#      client's httpx.Client (the user python-client@example.com must exist).
#   4. schemathesis against $OWNID_BRIDGE_URL/ownid with the committed spec, every request signed
#      by hooks.py, all checks, 50 examples per operation, fixed seed, one worker.
#   5. summarize.py: status counts; fails when more than 20% of the responses were 401 or any
#      correctly signed request was answered 401.
# Exits non-zero when any step fails; steps 3, 4 and 5 all run even if an earlier one of them fails.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cd "$root"

: "${OWNID_BRIDGE_URL:?OWNID_BRIDGE_URL must be set, e.g. http://127.0.0.1:43121}"
: "${OWNID_SHARED_SECRET:?OWNID_SHARED_SECRET must be set to the base64 shared secret of the server}"
: "${OWNID_TEST_OUT:?OWNID_TEST_OUT must be set to a directory for the reports}"
: "${OWNID_APPS_URL:?OWNID_APPS_URL must be set to a server with several applications}"
export OWNID_BRIDGE_URL="${OWNID_BRIDGE_URL%/}" OWNID_SHARED_SECRET
mkdir -p "$OWNID_TEST_OUT"
out=$(cd "$OWNID_TEST_OUT" && pwd)
export OWNID_TEST_OUT="$out"
export PYTHONDONTWRITEBYTECODE=1 # no __pycache__ next to the sources

python=${PYTHON:-python3}
venv=$root/.cache/python-venv
stamp=$venv/.ownid-requirements.sha256

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f s", b - a }'; }
step() { echo "== run.sh: $*"; }

# ---------------------------------------------------------------------------------------------
# 0. Virtualenv
t=$(now)
want=$( { sha256sum "$here/requirements.txt" | cut -d' ' -f1; "$python" --version 2>&1; } | sha256sum | cut -d' ' -f1)
if [[ ! -x $venv/bin/python || ! -f $stamp || $(cat "$stamp") != "$want" ]]; then
  step "building $venv from clients/python/requirements.txt"
  rm -rf "$venv"
  "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
    -r "$here/requirements.txt"
  echo "$want" >"$stamp"
else
  step "reusing $venv (requirements.txt unchanged)"
fi
echo "   ($(elapsed "$t"))"
bin=$venv/bin

# ---------------------------------------------------------------------------------------------
# 1. The committed OpenAPI documents are valid OpenAPI.
t=$(now)
step "openapi-spec-validator"
"$bin/openapi-spec-validator" openapi/openapi.yaml openapi/openapi.json
apps_document=$out/apps-openapi.json
"$bin/python" -c 'import sys, urllib.request; open(sys.argv[2], "wb").write(urllib.request.urlopen(sys.argv[1]).read())' \
  "${OWNID_APPS_URL%/}/openapi.json" "$apps_document"
"$bin/openapi-spec-validator" "$apps_document"
apps_generated=$out/apps-generated
apps_log=$out/apps-openapi-python-client.txt
rm -rf "$apps_generated"
mkdir -p "$apps_generated"
PATH="$bin:$PATH" "$bin/openapi-python-client" generate --path "$apps_document" --meta none \
  --output-path "$apps_generated/apps_client" --fail-on-warning >"$apps_log" 2>&1 \
  || { sed 's/^/   /' "$apps_log"; echo "== run.sh: openapi-python-client failed on $apps_document" >&2; exit 1; }
if grep -v -e '^Generating ' -e '^[[:space:]]*$' "$apps_log" >/dev/null; then
  sed 's/^/   /' "$apps_log"
  echo "== run.sh: openapi-python-client warned on $apps_document" >&2
  exit 1
fi
apps_operations=$(find "$apps_generated/apps_client/api" -name '*_by_login_id.py' | wc -l)
apps_count=$("$bin/python" -c 'import json, sys; print(len(json.load(open(sys.argv[1]))["tags"]))' "$apps_document")
if ((apps_operations != 3 * apps_count || apps_count < 2)); then
  echo "== run.sh: the client of $apps_document has $apps_operations operations for $apps_count applications" >&2
  exit 1
fi
echo "   several applications: valid, and a client with $apps_operations operations for $apps_count applications"
echo "   ($(elapsed "$t"))"

# ---------------------------------------------------------------------------------------------
# 2. The served document and the signing, checked before fuzzing.
t=$(now)
step "preflight"
"$bin/python" "$here/preflight.py" openapi/openapi.json openapi/openapi.yaml
echo "   ($(elapsed "$t"))"

# ---------------------------------------------------------------------------------------------
# 3. The client openapi-python-client generates: no warning, all three operations, and it works
#    against the server with the signing done by an httpx event hook. The generator runs ruff on
#    its output (its post hooks find ruff on PATH; without it they warn "ruff is not in PATH").
#    A clean run prints exactly one line, "Generating <path>"; anything else (its "Warning(s)
#    encountered while generating", "WARNING parsing POST /... Endpoint will not be generated",
#    "Unable to process schema ...") fails the step, and so does --fail-on-warning's exit code.
t=$(now)
step "openapi-python-client (generated client)"
gen_status=0
generated=$out/generated
generator_log=$out/openapi-python-client.txt
rm -rf "$generated"
mkdir -p "$generated"
PATH="$bin:$PATH" "$bin/openapi-python-client" generate --path openapi/openapi.json --meta none \
  --output-path "$generated/ownid_bridge_client" --fail-on-warning >"$generator_log" 2>&1 \
  || gen_status=$?
sed 's/^/   /' "$generator_log"
if ((gen_status != 0)); then
  echo "== run.sh: openapi-python-client exited $gen_status" >&2
elif grep -v -e '^Generating ' -e '^[[:space:]]*$' "$generator_log" >/dev/null; then
  echo "== run.sh: openapi-python-client printed more than its 'Generating' line (a warning)" >&2
  gen_status=1
fi
for operation in set_own_id_data_by_login_id get_own_id_data_by_login_id get_session_by_login_id; do
  if [[ ! -f $generated/ownid_bridge_client/api/own_id/$operation.py ]]; then
    echo "== run.sh: the generated client lacks api/own_id/$operation.py" >&2
    gen_status=1
  fi
done
if ((gen_status == 0)); then
  "$bin/python" "$here/generated_client.py" "$generated" || gen_status=$?
fi
echo "   ($(elapsed "$t"))"

# ---------------------------------------------------------------------------------------------
# 4. Schemathesis. All of its checks are enabled, none is excluded: with the requests signed,
#    every one applies (the 401s it provokes itself are expected by the checks that provoke them:
#    `ignored_auth` re-sends successful requests unsigned, and negative tests of the security
#    headers go unsigned, see hooks.py). The custom check `signed_requests_accepted` from hooks.py
#    runs too. --output-sanitize false: the reports show the real values sent (schemathesis
#    otherwise masks e.g. every `sessionType` value as "[Filtered]"); nothing secret is in them,
#    the shared secret is never sent, only per-request signatures.
t=$(now)
step "schemathesis"
responses=$out/schemathesis-responses.jsonl
rm -f "$responses"
st_status=0
SCHEMATHESIS_HOOKS="$here/hooks.py" "$bin/st" --config-file "$here/schemathesis.toml" run \
  openapi/openapi.json \
  --url "$OWNID_BRIDGE_URL/ownid" \
  --checks all \
  --max-examples 50 \
  --seed 20261125 \
  --workers 1 \
  --continue-on-failure \
  --generation-database none \
  --request-timeout 10 \
  --output-sanitize false \
  --no-color \
  --report junit,ndjson \
  --report-junit-path "$out/schemathesis-junit.xml" \
  --report-ndjson-path "$out/schemathesis.ndjson" \
  2>&1 | tee "$out/schemathesis.txt" || st_status=$?
echo "   ($(elapsed "$t"))"

# ---------------------------------------------------------------------------------------------
# 5. Was the run meaningful (signed requests accepted, few 401s)?
step "summary"
summary_status=0
"$bin/python" "$here/summarize.py" "$responses" "$out/schemathesis-summary.json" || summary_status=$?

echo "== run.sh: reports in $out"
if ((gen_status != 0 || st_status != 0 || summary_status != 0)); then
  echo "== run.sh: FAILED (generated client $gen_status, schemathesis exit $st_status, summary exit $summary_status)" >&2
  exit 1
fi
echo "== run.sh: passed"
