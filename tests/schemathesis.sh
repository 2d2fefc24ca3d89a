#!/bin/sh
# Runs schemathesis against the admin API's checked-in OpenAPI document (docs/openapi.json, served
# at /openapi.json) on a server this script starts (crates/server/examples/admin_api.rs: loopback
# plain HTTP over a throwaway SQLite store, one all-domains token, one hosted domain).
#
# Checks: no server error (5xx), status codes, content types, headers and bodies all as the
# document says. Schemathesis is pip-installed into a throwaway virtualenv (needs PyPI).
#
#   tests/schemathesis.sh [MAX_EXAMPLES]      (default 50 per operation)
set -eu
cd "$(dirname "$0")/.."
max="${1:-50}"
work="$(mktemp -d)"
cleanup() {
    [ -n "${server_pid:-}" ] && kill "$server_pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT INT TERM

CARGO_INCREMENTAL=0 cargo build -q -p mtasts-server --example admin_api
python3 -m venv "$work/venv"
"$work/venv/bin/pip" install -q schemathesis

mkfifo "$work/stdin"
target/debug/examples/admin_api "sqlite:$work/store.db" <"$work/stdin" >"$work/out" &
server_pid=$!
exec 3>"$work/stdin" # the server runs until this closes
for _ in $(seq 1 100); do [ -s "$work/out" ] && break; sleep 0.1; done
read -r addr token <"$work/out"
echo "admin API on $addr"

cd "$work" # schemathesis writes its .schemathesis/ cache in the current directory
"$work/venv/bin/st" run "http://$addr/openapi.json" \
    --header "Authorization: Bearer $token" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance \
    --max-examples "$max" \
    --seed 1
