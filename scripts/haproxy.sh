#!/usr/bin/env bash
# Makes sure HAProxy (Debian's package) is installed, for `creditgate demo
# --serve --replicas N`, gateway/tests/haproxy.rs and
# scripts/replicas-walkthrough.sh; prints its path.
#
# Installs it with apt-get when `haproxy` is missing (root only; as anyone
# else it says what to run and fails). Nothing else is downloaded.
set -euo pipefail

find_haproxy() {
  # Debian puts it in /usr/sbin, outside a normal user's PATH (creditgate looks there too).
  command -v haproxy 2>/dev/null || { for p in /usr/sbin/haproxy /usr/local/sbin/haproxy; do
    [ -x "$p" ] && { echo "$p"; return 0; }; done; return 1; }
}

if ! find_haproxy >/dev/null; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "haproxy is missing; install it (apt-get install haproxy) or run scripts/haproxy.sh as root" >&2
    exit 1
  fi
  echo "installing haproxy (apt-get)" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq haproxy >/dev/null
  # The package may start a system service on its own config; the demo and
  # the tests run haproxy processes of their own, so leave that one stopped.
  if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet haproxy 2>/dev/null; then
    systemctl stop haproxy || true
  fi
fi
find_haproxy || { echo "haproxy is still missing after apt-get install haproxy" >&2; exit 1; }
