#!/usr/bin/env bash
# Entrypoint of the pgops/postgres images: follows the official `postgres` image contract closely enough
# that pgops/postgres:N and postgres:N are interchangeable for "PostgreSQL in a container" tests.
#   env: POSTGRES_USER (postgres), POSTGRES_PASSWORD (required unless POSTGRES_HOST_AUTH_METHOD=trust),
#        POSTGRES_DB (= POSTGRES_USER), PGDATA (/var/lib/postgresql/data), PGPORT (5432),
#        PGOPS_LISTEN (listen_addresses, default 127.0.0.1), POSTGRES_INITDB_ARGS (extra initdb args).
#   `postgres [opts]` (or just `-opts`): init PGDATA if empty, then exec the server as user postgres.
#   anything else (`sleep infinity`, molecule's command): exec'd as is.
set -euo pipefail

die() { echo "pgops-entrypoint: $*" >&2; exit 1; }

# options only -> server (same as the official image)
if [ $# -eq 0 ] || [ "${1:0:1}" = - ]; then set -- postgres "$@"; fi
[ "$1" = postgres ] || exec "$@"

export POSTGRES_USER=${POSTGRES_USER:-postgres}
export POSTGRES_DB=${POSTGRES_DB:-$POSTGRES_USER}
export PGDATA=${PGDATA:-/var/lib/postgresql/data}
export PGPORT=${PGPORT:-5432}
LISTEN=${PGOPS_LISTEN:-127.0.0.1}
AUTH=${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}
SOCKDIR=/var/run/postgresql

# PG binaries: from PATH (set by the image), else the newest installed major
if ! command -v initdb >/dev/null 2>&1; then
  bindir=$(printf '%s\n' /usr/lib/postgresql/*/bin | grep -v '\*' | sort -V | tail -n 1)
  [ -n "$bindir" ] || die "no PostgreSQL binaries found"
  PATH=$bindir:$PATH
fi

# run as postgres; setpriv (util-linux, in minbase) execs directly, so postgres gets the signals
if [ "$(id -u)" = 0 ]; then
  as_pg() { setpriv --reuid=postgres --regid=postgres --init-groups "$@"; }
  mkdir -p "$SOCKDIR" "$PGDATA"
  chown postgres:postgres "$SOCKDIR"; chmod 2775 "$SOCKDIR"
  chown postgres:postgres "$PGDATA"; chmod 0700 "$PGDATA"
else
  as_pg() { "$@"; }
  mkdir -p "$PGDATA"; chmod 0700 "$PGDATA"
fi

if [ ! -s "$PGDATA/PG_VERSION" ]; then
  [ -n "${POSTGRES_PASSWORD:-}" ] || [ "$AUTH" = trust ] \
    || die "PGDATA is empty and POSTGRES_PASSWORD is not set (or set POSTGRES_HOST_AUTH_METHOD=trust)"
  pwfile=$(mktemp)
  trap 'rm -f "$pwfile"' EXIT
  printf '%s\n' "${POSTGRES_PASSWORD:-}" > "$pwfile"
  [ "$(id -u)" != 0 ] || chown postgres "$pwfile"
  pwopt=(); [ -z "${POSTGRES_PASSWORD:-}" ] || pwopt=(--pwfile="$pwfile")
  # shellcheck disable=SC2086
  as_pg initdb -D "$PGDATA" -U "$POSTGRES_USER" "${pwopt[@]}" \
    --auth-local=trust --auth-host="$AUTH" --encoding=UTF8 --locale=C.UTF-8 \
    ${POSTGRES_INITDB_ARGS:-} >/dev/null || die "initdb failed"
  rm -f "$pwfile"
  {
    echo "# pgops-entrypoint"
    echo "listen_addresses = '$LISTEN'"
    echo "port = $PGPORT"
    echo "unix_socket_directories = '$SOCKDIR'"
  } >> "$PGDATA/postgresql.conf"
  echo "host all all all $AUTH" >> "$PGDATA/pg_hba.conf"

  if [ "$POSTGRES_DB" != postgres ]; then   # like the official image: initdb only makes "postgres"
    # the temporary server listens only on a private socket: nobody sees it as "ready" before the database exists
    initsock=$(mktemp -d); chown postgres: "$initsock"
    as_pg pg_ctl -D "$PGDATA" -o "-c listen_addresses='' -c unix_socket_directories=$initsock" -w -s start \
      >/dev/null || die "temporary server failed"
    # shellcheck disable=SC2016
    printf 'CREATE DATABASE :"db";\n' | as_pg psql -q -v ON_ERROR_STOP=1 -X -U "$POSTGRES_USER" -d postgres \
      -p "$PGPORT" -h "$initsock" --set db="$POSTGRES_DB" || die "CREATE DATABASE $POSTGRES_DB failed"
    as_pg pg_ctl -D "$PGDATA" -m fast -w -s stop || die "stopping the temporary server failed"
    rm -rf "$initsock"
  fi
  echo "pgops-entrypoint: initialised $PGDATA (user $POSTGRES_USER, db $POSTGRES_DB, port $PGPORT)"
fi

shift
exec_as=(); [ "$(id -u)" != 0 ] || exec_as=(setpriv --reuid=postgres --regid=postgres --init-groups)
exec "${exec_as[@]}" postgres -D "$PGDATA" "$@"
