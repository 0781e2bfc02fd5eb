#!/usr/bin/env bash
# The pydantic models datamodel-code-generator (PyPI, pinned in requirements.txt) generates from the
# committed openapi/openapi.json, used against a running ownid-bridge with signed requests:
#
#   1. generated into $OWNID_TEST_OUT/models.py with the generator's dated preset for Python 3.11
#      (pydantic v2, snake_case fields with the document's names as aliases). The step fails on
#      a non-zero exit or on any output: the generator prints nothing on success and reports
#      what it does not understand as Python warnings on stderr (for example "format of
#      'uint64' not understood for 'integer' - using default").
#   2. models_client.py builds every request body from the models (an unset sessionType goes out
#      as null), validates every answer with them and signs each request: get 204, set 204,
#      get 200 (OwnIdData), session 200 (SessionToken), unknown 404, unsigned 401 (ErrorBody).
#
# Required environment (scripts/checks/clients.sh sets it after starting the server):
#   OWNID_BRIDGE_URL     the server's root URL, e.g. http://127.0.0.1:43121
#   OWNID_SHARED_SECRET  the base64 shared secret the server verifies with
#   OWNID_TEST_OUT       a directory for the generated models
# Optional: PYTHON (default python3) builds the virtualenv. The user
# datamodel-code-generator@example.com must exist without ownIdData (it gets some).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)

for name in OWNID_BRIDGE_URL OWNID_SHARED_SECRET OWNID_TEST_OUT; do
  if [ -z "${!name:-}" ]; then
    echo "clients/datamodel-code-generator/run.sh: $name is not set" >&2
    exit 2
  fi
done
mkdir -p "$OWNID_TEST_OUT"
out=$(cd "$OWNID_TEST_OUT" && pwd)
export PYTHONDONTWRITEBYTECODE=1

# The venv, rebuilt only when requirements.txt or the Python version changed.
python=${PYTHON:-python3}
venv=$root/.cache/datamodel-code-generator-venv
stamp=$venv/.ownid-requirements.sha256
want=$( { sha256sum "$here/requirements.txt" | cut -d' ' -f1; "$python" --version 2>&1; } | sha256sum | cut -d' ' -f1)
if [[ ! -x $venv/bin/python || ! -f $stamp || $(cat "$stamp") != "$want" ]]; then
  echo "== run.sh: building $venv from clients/datamodel-code-generator/requirements.txt"
  rm -rf "$venv"
  "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input -r "$here/requirements.txt"
  echo "$want" >"$stamp"
fi

echo "== run.sh: $("$venv/bin/datamodel-codegen" --version)"
models=$out/models.py
log=$out/datamodel-codegen.log
rm -f "$models"
status=0
"$venv/bin/datamodel-codegen" --input "$root/openapi/openapi.json" --input-file-type openapi \
  --preset standard-py311-20261027 --output "$models" >"$log" 2>&1 || status=$?
if ((status != 0)) || [ -s "$log" ]; then
  sed 's/^/   /' "$log" >&2
  echo "== run.sh: datamodel-codegen exited $status or warned (above; the log: $log)" >&2
  exit 1
fi
for model in ErrorBody GetOwnIdDataRequest SetOwnIdDataRequest OwnIdData SessionTypeParam SessionToken GetSessionRequest; do
  grep -q "^class $model(" "$models" || { echo "== run.sh: the models lack $model" >&2; exit 1; }
done
echo "   $(grep -c '^class ' "$models") models, no warning"

"$venv/bin/python" "$here/models_client.py" "$models"
echo "== run.sh: passed"
