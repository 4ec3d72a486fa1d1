#!/usr/bin/env bash
# Install Debian's chromium (headless browser for tests/browser) and fonts for a readable screenshot, only when
# missing. usage: scripts/browser-packages.sh
set -euo pipefail
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
fc-list 2>/dev/null | grep -qi 'dejavu' || missing+=(fonts-dejavu-core)
[ ${#missing[@]} -eq 0 ] && exit 0
[ "$(id -u)" = 0 ] || { echo "browser-packages: missing ${missing[*]}; run as root to install them" >&2; exit 1; }
echo "browser-packages: installing ${missing[*]}"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
