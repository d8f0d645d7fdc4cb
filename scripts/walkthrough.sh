#!/usr/bin/env bash
# Runs README.md's "Running a federation for real" literally: every ```sh block
# of that section in order as one bash script (```python blocks with the test
# venv's Python), from a clean directory that holds only what a clone has.
#
# The example configs listen on fixed ports, so the run happens in a network
# namespace of its own (`unshare -n`, loopback only) when the system allows
# it: it cannot collide with anything else on the machine, and nothing leaves
# loopback. Without namespaces the ports must be free.
#
# Environment: CREDITGATE_BIN (default ./target/debug/creditgate),
# CREDITGATE_VENV (default ~/.cache/creditgate-venv, made by scripts/test.sh),
# WALKTHROUGH_KEEP=1 keeps the directory.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
bin="${CREDITGATE_BIN:-$repo/target/debug/creditgate}"
venv="${CREDITGATE_VENV:-$HOME/.cache/creditgate-venv}"
[ -x "$bin" ] || { echo "walkthrough: no creditgate binary at $bin (cargo build first, or set CREDITGATE_BIN)" >&2; exit 1; }
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$repo/tests/python/requirements.txt"
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/creditgate-walkthrough.XXXXXX")"
if [ "${WALKTHROUGH_KEEP:-}" = 1 ]; then
  echo "walkthrough: keeping $work"
else
  trap 'rm -rf "$work"' EXIT
fi

# What the steps read from the clone, and the binary where the README says it is.
mkdir -p "$work/gateway" "$work/connectors/server" "$work/policy/core" "$work/policy/grade" "$work/target/debug"
cp -r "$repo/gateway/examples" "$work/gateway/"
cp -r "$repo/connectors/server/examples" "$work/connectors/server/"
cp -r "$repo/policy/core/examples" "$work/policy/core/"
cp -r "$repo/policy/grade/examples" "$work/policy/grade/"
ln -s "$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")" "$work/target/debug/creditgate"

# The section's blocks, in order, as one script.
script="$work/walkthrough-steps.sh"
awk -v py="$venv/bin/python" '
  /^## / { in_section = ($0 == "## Running a federation for real") ; next }
  !in_section { next }
  /^```sh$/ { block = "sh"; n++; print "echo \"== README walkthrough, block " n "\""; next }
  /^```python$/ { block = "py"; n++; print "echo \"== README walkthrough, block " n " (python)\""; print "\"" py "\" - <<'"'"'PYTHON'"'"'"; next }
  /^```/ && block == "py" { print "PYTHON"; block = ""; next }
  /^```/ { block = ""; next }
  block != "" { print }
' "$repo/README.md" > "$script.body"
blocks=$(grep -c '^echo "== README walkthrough' "$script.body" || true)
[ "$blocks" -ge 8 ] || { echo "walkthrough: found only $blocks blocks in README.md's section" >&2; exit 1; }
{
  echo 'set -euo pipefail'
  # Whatever happens, no process of the walkthrough outlives it.
  echo 'trap '"'"'kill $(jobs -p) 2>/dev/null || true'"'"' EXIT'
  cat "$script.body"
} > "$script"

set +e
if unshare -n true 2>/dev/null; then
  echo "walkthrough: $blocks blocks, in a private network namespace"
  (cd "$work" && timeout 600 unshare -n bash -c 'ip link set lo up 2>/dev/null || true; exec bash "$0"' "$script")
else
  echo "walkthrough: $blocks blocks (no network namespace here: ports 7000, 7080, 7443, 7101, 7102 must be free)"
  (cd "$work" && timeout 600 bash "$script")
fi
status=$?
set -e
if [ "$status" -ne 0 ]; then
  echo "walkthrough failed (exit $status); logs:" >&2
  tail -n 20 "$work"/fed/logs/*.log >&2 || true
  exit "$status"
fi
echo "walkthrough: every step of README.md's 'Running a federation for real' ran"
