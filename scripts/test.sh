#!/usr/bin/env bash
# creditgate's test command: every Rust test (unit, property, end-to-end over
# real mTLS on loopback), then the standard-client tests (pyarrow + ADBC Flight
# SQL) against a running `creditgate demo --serve`. Installs what it needs.
set -euo pipefail
cd "$(dirname "$0")/.."

# The same target directory as `cargo run -- demo` (./target), unless CI points elsewhere.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
VENV="${CREDITGATE_VENV:-$HOME/.cache/creditgate-venv}"

echo "== HAProxy (gateway/tests/haproxy.rs: replicas behind a balancer)"
# Installed when missing (as root, Debian's package); without it that test is
# skipped with a notice, except with CI set, where its absence is a failure.
if ! bash scripts/haproxy.sh; then
  if [ -n "${CI:-}" ]; then
    echo "CI needs HAProxy: run scripts/haproxy.sh as root (apt-get install haproxy)" >&2
    exit 1
  fi
  echo "continuing without HAProxy: gateway/tests/haproxy.rs will skip"
fi

echo "== cargo test (workspace)"
cargo test --workspace --locked --no-fail-fast

echo "== building the creditgate binary (same profile as the tests)"
cargo build --locked -p creditgate-gateway --bin creditgate

echo "== python clients (pyarrow, ADBC Flight SQL)"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r tests/python/requirements.txt
CREDITGATE_BIN="$CARGO_TARGET_DIR/debug/creditgate" "$VENV/bin/python" -m pytest -q tests/python
