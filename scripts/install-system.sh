#!/usr/bin/env bash
# System packages the tests (and a wall display) need, from Debian's archive:
#   chromium + chromium-driver   headless browser for end-to-end tests and benchmarks
#   postgresql-15-postgis-3      PostGIS for the postgis adapter tests
#   fonts-noto-cjk               Chinese glyphs (the UI speaks zh-CN)
# Installs only what is missing; needs root (or sudo) when something is.
set -euo pipefail
want=()
command -v chromium >/dev/null 2>&1 || want+=(chromium chromium-driver)
pg_major=$(ls /etc/postgresql 2>/dev/null | sort -n | tail -1 || true)
if [ -n "$pg_major" ] && [ ! -f "/usr/share/postgresql/$pg_major/extension/postgis.control" ]; then
    want+=("postgresql-$pg_major-postgis-3")
fi
fc-list 2>/dev/null | grep -qi "Noto Sans CJK" || want+=(fonts-noto-cjk)
if [ ${#want[@]} -eq 0 ]; then
    exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "installing system packages: ${want[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${want[@]}" >/dev/null
