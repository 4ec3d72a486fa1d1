#!/usr/bin/env bash
# Build a Debian + PostgreSQL test image without any registry: debootstrap a minbase rootfs, trim it,
# `docker import` it. Skipped when TAG exists with the same build hash (this script + the entrypoint +
# args); FORCE=1 rebuilds. Honours MIRROR and DOCKER_HOST.
# usage: scripts/build-image.sh SUITE PGMAJOR TAG     e.g. scripts/build-image.sh bookworm 15 pgops/postgres:15
set -euo pipefail

[ $# -eq 3 ] || { echo "usage: $0 SUITE PGMAJOR TAG" >&2; exit 2; }
SUITE=$1 PGMAJOR=$2 TAG=$3
MIRROR=${MIRROR:-http://deb.debian.org/debian}
HERE=$(cd "$(dirname "$0")" && pwd)
ENTRYPOINT=$HERE/image/pgops-entrypoint.sh
die() { echo "build-image: $*" >&2; exit 1; }

HASH=$( { cat "$0" "$ENTRYPOINT"; echo "$SUITE $PGMAJOR"; } | sha256sum | cut -c1-16)
if [ "${FORCE:-0}" != 1 ] &&
   [ "$(docker image inspect -f '{{index .Config.Labels "pgops.build-hash"}}' "$TAG" 2>/dev/null)" = "$HASH" ]; then
  exit 0
fi
command -v debootstrap >/dev/null || die "debootstrap missing (run scripts/ensure-docker.sh)"

ROOTFS=$(mktemp -d "${TMPDIR:-/tmp}/pgops-rootfs-$SUITE.XXXX")
LOG=$ROOTFS.log
trap 'rm -rf "$ROOTFS"; rm -f "$LOG"' EXIT
t0=$(date +%s)
# python3 (+psycopg2, requests): Ansible, community.postgresql and community.docker modules; sudo: become_user postgres;
# iproute2 (ss) + procps: testinfra; util-linux: setpriv for the entrypoint; zstd/lz4/gzip: dump compression.
# postgresql-contrib-N is provided by postgresql-N on bookworm and trixie (no separate package).
# C.UTF-8 is built into libc, so no locales package.
# pgbackrest: physical backups + WAL archive (docs/pitr.md); the distribution's package (bookworm 2.45: PG <= 15).
debootstrap --variant=minbase \
  --include="python3,python3-psycopg2,python3-requests,sudo,iproute2,procps,util-linux,zstd,lz4,gzip,postgresql-$PGMAJOR,postgresql-client-$PGMAJOR,pgbackrest" \
  "$SUITE" "$ROOTFS" "$MIRROR" >"$LOG" 2>&1 || { tail -n 20 "$LOG" >&2; die "debootstrap $SUITE failed (above)"; }
t1=$(date +%s)

R=$ROOTFS
[ -x "$R/usr/lib/postgresql/$PGMAJOR/bin/postgres" ] || die "postgresql-$PGMAJOR not installed in rootfs"
[ -f "$R/usr/share/postgresql/$PGMAJOR/extension/pg_stat_statements.control" ] || die "contrib extensions missing"
grep -q '^postgres:' "$R/etc/passwd" || die "user postgres missing in rootfs"
[ -x "$R/usr/bin/pgbackrest" ] || die "pgbackrest not installed in rootfs"
# the Debian default cluster: we run initdb ourselves (entrypoint), not pg_ctlcluster
rm -rf "$R/var/lib/postgresql/$PGMAJOR" "$R/etc/postgresql"
# slim: apt caches/lists, docs, man pages, translations, logs, LLVM JIT (~150 MB; JIT is then simply off)
rm -rf "$R"/var/cache/apt/archives/*.deb "$R"/var/cache/apt/*.bin "$R"/var/lib/apt/lists/* \
       "$R"/usr/share/doc/* "$R"/usr/share/man/* "$R"/usr/share/info/* "$R"/usr/share/locale/* \
       "$R"/var/log/*.log "$R"/var/log/apt/* \
       "$R"/usr/lib/x86_64-linux-gnu/libLLVM* "$R"/usr/lib/x86_64-linux-gnu/libz3.so* "$R"/usr/lib/llvm-* \
       "$R"/usr/lib/postgresql/*/lib/llvmjit* "$R"/usr/lib/postgresql/*/lib/bitcode
install -m 0755 "$ENTRYPOINT" "$R/usr/local/bin/pgops-entrypoint.sh"
install -d -o "$(stat -c %u "$R/var/lib/postgresql")" -g "$(stat -c %g "$R/var/lib/postgresql")" -m 0700 \
  "$R/var/lib/postgresql/data"
# pgBackRest's log, repository (local repo1-path default), spool (archive-async) and config directories, all
# writable by postgres (archive_command runs as postgres; the pgbackrest role copies its config into /etc/pgbackrest)
install -d -o "$(stat -c %u "$R/var/lib/postgresql")" -g "$(stat -c %g "$R/var/lib/postgresql")" -m 0750 \
  "$R/var/log/pgbackrest" "$R/var/lib/pgbackrest" "$R/var/spool/pgbackrest" "$R/etc/pgbackrest"

tar --numeric-owner -C "$R" -c . | docker import \
  --change 'ENV LANG=C.UTF-8' \
  --change "ENV PATH=/usr/lib/postgresql/$PGMAJOR/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
  --change 'ENV PGDATA=/var/lib/postgresql/data' \
  --change "LABEL pgops.build-hash=$HASH pgops.suite=$SUITE pgops.pgmajor=$PGMAJOR" \
  --change 'ENTRYPOINT ["/usr/local/bin/pgops-entrypoint.sh"]' \
  --change 'CMD ["sleep","infinity"]' \
  - "$TAG" >/dev/null || die "docker import $TAG failed"
t2=$(date +%s)
echo "$TAG: debootstrap $((t1-t0))s, import $((t2-t1))s, $(docker image inspect -f '{{.Size}}' "$TAG" | awk '{printf "%d MB", $1/1e6}')"
