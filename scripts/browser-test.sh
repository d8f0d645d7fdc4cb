#!/usr/bin/env bash
# Browser tests of the privacy-officer console (/console) and the public credit window (/, /embed): drives them in
# headless Debian Chromium through playwright-core, with client certificates,
# against a `creditgate demo --serve` it starts itself (tests/browser/).
#
# Installs what is missing: Debian's chromium (and a CJK font, as the demo's
# organisation names are partly Chinese) with apt-get, and playwright-core
# from tests/browser/package-lock.json with npm ci. Playwright's own browser
# downloads are never used. Builds the creditgate binary unless
# CREDITGATE_BIN points at one.
set -euo pipefail
cd "$(dirname "$0")/.."

# The same target directory as `cargo run -- demo` (./target), unless CI points elsewhere.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
CHROMIUM_BIN="${CHROMIUM_BIN:-/usr/bin/chromium}"
export CHROMIUM_BIN

echo "== browser test: prerequisites"
apt_packages=()
if [ ! -x "$CHROMIUM_BIN" ]; then
  apt_packages+=(chromium fonts-wqy-zenhei)
elif command -v fc-list >/dev/null 2>&1 && [ -z "$(fc-list :lang=zh 2>/dev/null)" ]; then
  apt_packages+=(fonts-wqy-zenhei)
fi
if [ "${#apt_packages[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "missing ${apt_packages[*]}; install them (apt-get install ${apt_packages[*]}) or run as root" >&2
    exit 1
  fi
  echo "installing ${apt_packages[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${apt_packages[@]}" >/dev/null
fi
[ -x "$CHROMIUM_BIN" ] || { echo "$CHROMIUM_BIN is still missing" >&2; exit 1; }
command -v node >/dev/null || { echo "node is required (v20 or later)" >&2; exit 1; }

locked=$(node -p 'require("./tests/browser/package-lock.json").packages["node_modules/playwright-core"].version')
installed=$(node -p 'try { require("./tests/browser/node_modules/playwright-core/package.json").version } catch { "" }')
if [ "$installed" != "$locked" ]; then
  echo "installing playwright-core $locked (npm ci)"
  (cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)
fi

if [ -z "${CREDITGATE_BIN:-}" ]; then
  echo "== building the creditgate binary"
  cargo build --locked -p creditgate-gateway --bin creditgate
  CREDITGATE_BIN="$CARGO_TARGET_DIR/debug/creditgate"
fi
export CREDITGATE_BIN
[ -x "$CREDITGATE_BIN" ] || { echo "CREDITGATE_BIN=$CREDITGATE_BIN is not an executable" >&2; exit 1; }

echo "== browser test: console and public window ($("$CHROMIUM_BIN" --version 2>/dev/null | head -n1))"
# every tests/browser/*.test.mjs (a glob, so Node 20 and 22 read it alike)
node --test tests/browser/*.test.mjs
