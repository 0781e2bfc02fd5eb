#!/usr/bin/env bash
# The OpenAPI document as a product, against the real binary (the debug build `cargo test` made)
# on throwaway SQLite databases: clients generated from the committed document by mainstream
# generators and called with signing (openapi-typescript, @hey-api/openapi-ts,
# openapi-python-client, OpenAPI Generator's typescript-fetch and python, swagger-typescript-api,
# datamodel-code-generator's pydantic models), Swagger UI's "Try it out" in headless Chromium
# (one server, and a second with two OwnID applications for its application selector),
# openapi-spec-validator and schemathesis (clients/*/run.sh).
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/lib.sh

bridge=target/debug/ownid-bridge
[[ -x $bridge ]] || die "$bridge is missing: run cargo test (or cargo build) first"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/ownid-clients.XXXXXX")
pids=()
trap 'for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; done; rm -rf "$tmp"' EXIT

serve() { # name env...: starts the server with that environment, waits for its banner
  env -u OWNID_BRIDGE_CONFIG "${@:2}" "$bridge" >"$tmp/$1.out" 2>"$tmp/$1.log" &
  pids+=($!)
  banner() { grep -q "listening on http://" "$tmp/$1.out" || { exited "$2" && fail_with_log "$1" "$tmp/$1.log"; }; }
  wait_for 60 banner "$1" "$!" || fail_with_log "$1" "$tmp/$1.log"
}
url_of() { sed -n 's/.* listening on \(http:[^ ]*\).*/\1/p' "$tmp/$1.out"; }

secret=$("$bridge" config secret)
single=(OWNID_BRIDGE__OWNID__SHARED_SECRET="$secret" OWNID_BRIDGE__SESSION__SECRET="$("$bridge" config secret)"
  OWNID_BRIDGE__SERVER__LISTEN=127.0.0.1:0 OWNID_BRIDGE__STORAGE__URL="sqlite://$tmp/bridge.db")
env -u OWNID_BRIDGE_CONFIG "${single[@]}" "$bridge" users add typescript-client@example.com \
  python-client@example.com hey-api-client@example.com user@example.com alice@example.com \
  openapi-generator-ts@example.com openapi-generator-py@example.com \
  swagger-typescript-api@example.com datamodel-code-generator@example.com
serve bridge "${single[@]}"

customer=$("$bridge" config secret) admin=$("$bridge" config secret)
cat >"$tmp/apps.yaml" <<YAML
server: { listen: "127.0.0.1:0" }
storage: { url: "sqlite://$tmp/apps.db" }
apps:
  - name: customer
    base_path: /ownid/customer
    ownid: { shared_secret: "\${APPS_CUSTOMER_SECRET}" }
    session: { secret: "\${APPS_JWT_SECRET}" }
  - name: admin
    base_path: /ownid/admin
    ownid: { shared_secret: "\${APPS_ADMIN_SECRET}" }
    session: { secret: "\${APPS_JWT_SECRET}" }
    users: { table: admins }
YAML
apps=(APPS_CUSTOMER_SECRET="$customer" APPS_ADMIN_SECRET="$admin" APPS_JWT_SECRET="$("$bridge" config secret)"
  OWNID_BRIDGE_CONFIG="$tmp/apps.yaml")
for app in customer admin; do
  env "${apps[@]}" "$bridge" --app "$app" users add user@example.com >/dev/null
done
serve apps "${apps[@]}"

out=target/spec-checks
rm -rf "$out"
mkdir -p "$out"
export OWNID_BRIDGE_URL=$(url_of bridge) OWNID_SHARED_SECRET=$secret OWNID_APPS_URL=$(url_of apps) \
  OWNID_APPS_CUSTOMER_SECRET=$customer OWNID_APPS_ADMIN_SECRET=$admin
echo "== TypeScript clients (openapi-typescript + openapi-fetch, @hey-api/openapi-ts) and Swagger UI in Chromium"
OWNID_TEST_USER=typescript-client@example.com OWNID_TEST_OUT=$PWD/$out/typescript clients/typescript/run.sh
echo "== openapi-spec-validator, the openapi-python-client client and schemathesis"
OWNID_TEST_OUT=$PWD/$out/python clients/python/run.sh
echo "== OpenAPI Generator's typescript-fetch and python clients"
OWNID_TEST_OUT=$PWD/$out/openapi-generator clients/openapi-generator/run.sh
echo "== swagger-typescript-api's TypeScript client"
OWNID_TEST_OUT=$PWD/$out/swagger-typescript-api clients/swagger-typescript-api/run.sh
echo "== datamodel-code-generator's pydantic models"
OWNID_TEST_OUT=$PWD/$out/datamodel-code-generator clients/datamodel-code-generator/run.sh
