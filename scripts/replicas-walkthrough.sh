#!/usr/bin/env bash
# Runs README.md's "Running several replicas" literally: every ```sh block of
# that section in order as one bash script, from a clean directory that holds
# only what a clone has (the binary where the README says it is, and
# scripts/haproxy.sh). The demo it starts uses ephemeral loopback ports only.
#
# Needs PostgreSQL on 127.0.0.1:5432 (user postgres, database test, trust
# auth, as on the project's machines) and HAProxy (installed by the steps
# themselves when missing, as root). The shared state goes into a scratch
# schema of this run, dropped at the end whatever happens; every process the
# steps start is stopped. Bounded to 3 minutes.
#
# Environment: CREDITGATE_BIN (default ./target/debug/creditgate),
# WALKTHROUGH_KEEP=1 keeps the directory (the schema is dropped anyway).
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
bin="${CREDITGATE_BIN:-$repo/target/debug/creditgate}"
[ -x "$bin" ] || { echo "replicas walkthrough: no creditgate binary at $bin (cargo build first, or set CREDITGATE_BIN)" >&2; exit 1; }
command -v psql >/dev/null || { echo "replicas walkthrough: psql is required (apt-get install postgresql-client)" >&2; exit 1; }
psql -h 127.0.0.1 -U postgres test -Atqc 'SELECT 1' >/dev/null \
  || { echo "replicas walkthrough: PostgreSQL is not reachable on 127.0.0.1:5432 as postgres/test" >&2; exit 1; }

work="$(mktemp -d "${TMPDIR:-/tmp}/creditgate-replicas.XXXXXX")"
export SCHEMA="cg_walkthrough_$$_$(date +%s)"
cleanup() {
  psql -h 127.0.0.1 -U postgres test -Atqc "DROP SCHEMA IF EXISTS $SCHEMA CASCADE" >/dev/null 2>&1 \
    || echo "replicas walkthrough: could not drop schema $SCHEMA" >&2
  if [ "${WALKTHROUGH_KEEP:-}" = 1 ]; then echo "replicas walkthrough: keeping $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

mkdir -p "$work/scripts" "$work/target/debug"
cp "$repo/scripts/haproxy.sh" "$work/scripts/"
ln -s "$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")" "$work/target/debug/creditgate"

# The section's blocks, in order, as one script.
script="$work/replicas-steps.sh"
awk '
  /^## / { in_section = ($0 == "## Running several replicas"); next }
  !in_section { next }
  /^```sh$/ { block = 1; n++; print "echo \"== README replicas walkthrough, block " n "\""; next }
  /^```/ { block = 0; next }
  block { print }
' "$repo/README.md" > "$script.body"
blocks=$(grep -c '^echo "== README replicas walkthrough' "$script.body" || true)
[ "$blocks" -ge 3 ] || { echo "replicas walkthrough: found only $blocks blocks in README.md's section" >&2; exit 1; }
{
  echo 'set -euo pipefail'
  # Whatever happens, no process of the walkthrough outlives it: the demo
  # stops HAProxy and its replicas on SIGTERM.
  echo 'trap '"'"'kill $(jobs -p) 2>/dev/null || true; wait'"'"' EXIT'
  cat "$script.body"
} > "$script"

echo "replicas walkthrough: $blocks blocks, schema $SCHEMA"
set +e
(cd "$work" && timeout --kill-after=10 180 bash "$script")
status=$?
set -e
if [ "$status" -ne 0 ]; then
  echo "replicas walkthrough failed (exit $status); logs:" >&2
  tail -n 20 "$work"/demo-replicas.log "$work"/demo/logs/*.log >&2 2>/dev/null || true
  exit "$status"
fi
echo "replicas walkthrough: every step of README.md's 'Running several replicas' ran"
