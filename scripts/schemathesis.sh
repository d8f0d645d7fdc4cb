#!/usr/bin/env bash
# Schemathesis against the committed OpenAPI document (gateway/server/openapi.json):
# starts `creditgate demo --serve` in a temporary directory, then generates
# requests for every documented operation, on the mTLS listener (with a
# demo caller's client certificate) and on the public listener (server TLS
# only), and fails on any 5xx (`not_a_server_error`). Bounded: a fixed
# number of examples per operation, a fixed seed, and a time cap per pass.
#
# Environment:
#   CREDITGATE_VENV      Python venv to use/create (default ~/.cache/creditgate-venv)
#   CREDITGATE_BIN       creditgate binary (default $CARGO_TARGET_DIR/debug/creditgate,
#                        built if missing)
#   SCHEMATHESIS_EXAMPLES  examples per operation (default 30)
#   SCHEMATHESIS_SEED      generation seed (default 20250630)
#   SCHEMATHESIS_PASS_SECONDS  time cap of each pass (default 50)
#   SCHEMATHESIS_REPORT_DIR    keep JUnit reports and failure reproductions here
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

# The same target directory as `cargo run -- demo` (./target), unless CI points elsewhere.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
VENV="${CREDITGATE_VENV:-$HOME/.cache/creditgate-venv}"
EXAMPLES="${SCHEMATHESIS_EXAMPLES:-30}"
SEED="${SCHEMATHESIS_SEED:-20250630}"
PASS_SECONDS="${SCHEMATHESIS_PASS_SECONDS:-50}"
DEMO_START_SECONDS=180

echo "== schemathesis: prerequisites"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r tests/schemathesis/requirements.txt

if [ -z "${CREDITGATE_BIN:-}" ]; then
  CREDITGATE_BIN="$CARGO_TARGET_DIR/debug/creditgate"
  if [ ! -x "$CREDITGATE_BIN" ]; then
    cargo build --locked -p creditgate-gateway --bin creditgate
  fi
fi
[ -x "$CREDITGATE_BIN" ] || { echo "no creditgate binary at $CREDITGATE_BIN" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/creditgate-schemathesis.XXXXXX")
demo_pid=""
cleanup() {
  if [ -n "$demo_pid" ] && kill -0 "$demo_pid" 2>/dev/null; then
    kill -TERM "$demo_pid" 2>/dev/null || true
    for _ in $(seq 1 100); do
      kill -0 "$demo_pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$demo_pid" 2>/dev/null || true
    wait "$demo_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "== starting creditgate demo --serve in $work/demo"
"$CREDITGATE_BIN" demo --serve --dir "$work/demo" >"$work/demo.log" 2>&1 &
demo_pid=$!
endpoints="$work/demo/endpoints.json"
for _ in $(seq 1 $((DEMO_START_SECONDS * 5))); do
  [ -s "$endpoints" ] && break
  if ! kill -0 "$demo_pid" 2>/dev/null; then
    echo "the demo exited before serving:" >&2
    tail -n 40 "$work/demo.log" >&2
    exit 1
  fi
  sleep 0.2
done
if [ ! -s "$endpoints" ]; then
  echo "no $endpoints after ${DEMO_START_SECONDS} s:" >&2
  tail -n 40 "$work/demo.log" >&2
  exit 1
fi
sleep 0.5 # endpoints.json is written in one go, but give the writer a moment
eval "$("$VENV/bin/python" tests/schemathesis/endpoints.py "$endpoints")"
echo "mTLS listener $HTTP_URL, public listener ${PUBLIC_URL:-off}"

reports="${SCHEMATHESIS_REPORT_DIR:-$work/reports}"
mkdir -p "$reports"
failed=()

# One bounded schemathesis pass; extra arguments select operations and identity.
run_pass() {
  local name="$1" url="$2"
  shift 2
  echo "== schemathesis: $name ($url)"
  local status=0
  (
    cd "$work" # hypothesis keeps nothing in the repository
    CI=true timeout --signal=INT --kill-after=10 "$PASS_SECONDS" \
      "$VENV/bin/st" run "$root/gateway/server/openapi.json" \
      --url "$url" \
      --tls-verify "$CA_FILE" \
      --checks not_a_server_error \
      --max-examples "$EXAMPLES" \
      --seed "$SEED" \
      --generation-database none \
      --workers 1 \
      --request-timeout 30 \
      --no-color \
      --report junit,pytest \
      --report-junit-path "$reports/$name.xml" \
      --report-pytest-path "$reports/${name}_failures.py" \
      "$@"
  ) || status=$?
  case "$status" in
    0) echo "-- $name: no server error" ;;
    124 | 130 | 137) echo "-- $name: over the ${PASS_SECONDS} s cap" >&2; failed+=("$name (time cap)") ;;
    *) echo "-- $name: schemathesis exited $status" >&2; failed+=("$name") ;;
  esac
}

# A demo caller with a purpose (samr: supervision) on everything but the
# privacy officer's endpoints and the public window.
run_pass mtls_samr "$HTTP_URL" \
  --request-cert "$SAMR_CERT" --request-cert-key "$SAMR_KEY" \
  -H "x-creditgate-purpose: supervision" \
  --rate-limit 40/s \
  --exclude-path-regex '^/(public/|v1/audit/|console)'

# The privacy officer (purpose audit) on the audit API and console.
run_pass mtls_privacy_officer "$HTTP_URL" \
  --request-cert "$OFFICER_CERT" --request-cert-key "$OFFICER_KEY" \
  -H "x-creditgate-purpose: audit" \
  --include-path-regex '^/(v1/audit/|console)'

# The public disclosure window: no client certificate; the demo allows 10 requests/s per client address.
if [ -n "${PUBLIC_URL:-}" ]; then
  run_pass public "$PUBLIC_URL" \
    --rate-limit 8/s \
    --include-path-regex '^/(public/|healthz$|openapi\.json$)'
fi

if kill -0 "$demo_pid" 2>/dev/null; then
  echo "== the demo is still serving"
else
  echo "the demo died during the run:" >&2
  tail -n 40 "$work/demo.log" >&2
  failed+=("demo exited")
fi
if grep -q "panicked" "$work/demo.log"; then
  echo "the gateway logged a panic:" >&2
  grep -n -A5 "panicked" "$work/demo.log" >&2
  failed+=("panic")
fi

if [ "${#failed[@]}" -gt 0 ]; then
  echo "schemathesis FAILED: ${failed[*]}" >&2
  if [ -z "${SCHEMATHESIS_REPORT_DIR:-}" ]; then
    kept="${TMPDIR:-/tmp}/creditgate-schemathesis-reports.$$"
    cp -r "$reports" "$kept"
    reports="$kept"
  fi
  echo "JUnit reports and failure reproductions: $reports" >&2
  exit 1
fi
echo "== schemathesis: no 5xx on any operation"
