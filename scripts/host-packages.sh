#!/usr/bin/env bash
# Install the Debian packages the demo and the tests use on the host, only those whose command is missing:
# docker.io, debootstrap (test images), python3-venv, zstd/lz4/pigz (compression), podman (disaster recovery
# with container_runtime podman), PostgreSQL client and server binaries (the functional tests start a
# throwaway cluster with initdb + pg_ctl), age (encrypted backups, docs/encryption.md), and gcc, make and
# dpkg-dev (scripts/regression-db.sh builds PostgreSQL's regression database from Debian's source package),
# pgbackrest (physical backups and point-in-time recovery, docs/pitr.md: tested natively on the host's
# PostgreSQL) and stunnel4 (the TLS terminator the S3 tests put in front of the plain-HTTP object store).
# usage: scripts/host-packages.sh
set -euo pipefail
declare -A PKG=([dockerd]=docker.io [debootstrap]=debootstrap [zstd]=zstd [lz4]=lz4 [pigz]=pigz
                [ip]=iproute2 [pgrep]=procps [psql]=postgresql-client [podman]=podman
                [gcc]=gcc [make]=make [dpkg-source]=dpkg-dev [ssh-keygen]=openssh-client [age]=age
                [pgbackrest]=pgbackrest [stunnel4]=stunnel4)
missing=()
for cmd in "${!PKG[@]}"; do command -v "$cmd" >/dev/null 2>&1 || missing+=("${PKG[$cmd]}"); done
python3 -c 'import ensurepip' 2>/dev/null || missing+=(python3-venv)
command -v pg_ctl >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || missing+=(postgresql)
[ ${#missing[@]} -eq 0 ] && exit 0
[ "$(id -u)" = 0 ] || { echo "host-packages: missing ${missing[*]}; run as root to install them" >&2; exit 1; }
echo "host-packages: installing ${missing[*]}"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Debian's postgresql package starts a cluster of its own; the tests need none
if printf '%s\n' "${missing[@]}" | grep -qx postgresql && command -v pg_ctlcluster >/dev/null; then
  versions=(/etc/postgresql/*)
  systemctl stop postgresql 2>/dev/null || pg_ctlcluster --force "$(basename "${versions[0]}")" main stop 2>/dev/null || true
fi
