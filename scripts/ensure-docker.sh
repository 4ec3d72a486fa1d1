#!/usr/bin/env bash
# Make sure a Docker daemon answers. Reuses a live daemon; otherwise installs missing apt packages and
# starts dockerd with no bridge and no iptables/forwarding (containers use network "host" or "none").
# Never start a second --bridge=none daemon beside a running one: it would delete the other's docker0.
# usage: scripts/ensure-docker.sh
set -euo pipefail

LOG=/var/log/pgops-dockerd.log
PIDFILE=/var/run/pgops-dockerd.pid

docker version >/dev/null 2>&1 && exit 0

die() { echo "ensure-docker: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "must run as root to install packages / start dockerd"

# command -> package; install only what is missing
declare -A PKG=([dockerd]=docker.io [docker]=docker.io [debootstrap]=debootstrap [pigz]=pigz
                [zstd]=zstd [lz4]=lz4 [ip]=iproute2)
missing=()
for cmd in "${!PKG[@]}"; do command -v "$cmd" >/dev/null 2>&1 || missing+=("${PKG[$cmd]}"); done
python3 -c 'import ensurepip, venv' 2>/dev/null || missing+=(python3-venv)
[ -e /etc/ssl/certs/ca-certificates.crt ] || missing+=(ca-certificates)
if [ ${#missing[@]} -gt 0 ]; then
  mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
  apt-get update -qq || die "apt-get update failed"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
    || die "apt-get install ${missing[*]} failed"
fi

# a stale pidfile from a dead daemon would make dockerd refuse to start
if [ -f "$PIDFILE" ] && ! kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then rm -f "$PIDFILE"; fi

dockerd --pidfile "$PIDFILE" \
  --bridge=none --iptables=false --ip6tables=false --ip-forward=false --ip-masq=false \
  >>"$LOG" 2>&1 &

for _ in $(seq 1 60); do
  docker version >/dev/null 2>&1 && { echo "dockerd ready"; exit 0; }
  kill -0 $! 2>/dev/null || break
  sleep 0.5
done
tail -n 20 "$LOG" >&2
die "dockerd did not answer within 30 s (log: $LOG)"
