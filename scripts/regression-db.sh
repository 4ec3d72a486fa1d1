#!/usr/bin/env bash
# Build PostgreSQL's own regression database: run the server's regression suite (pg_regress, parallel schedule)
# against a running server, and keep the database that it leaves behind. That database holds nearly every kind
# of object PostgreSQL has (partitioned tables and indexes, inheritance, every index access method, types, domains,
# rules, policies, C and SQL functions, large objects, ...): the hardest input for a dump, restore and verify.
#
# usage: scripts/regression-db.sh [-h HOST] [-p PORT] [-U USER] [-d DBNAME] [--cache DIR]
#   -h/-p/-U  the server (default 127.0.0.1, 5432, postgres); the user must be a superuser. A password is taken
#             from PGPASSWORD or ~/.pgpass as psql takes it.
#   -d        the database to create (default regression). An existing one of that name is DROPPED first.
#   --cache   where the source and the built libraries are kept between runs (default $REGRESSION_DB_CACHE,
#             else <repo>/.cache/pg-regress)
#
# The server must run on this machine: it reads the suite's data files, writes COPY output into a work directory
# and loads regress.so, refint.so and autoinc.so. Their paths are stored in the database's C functions, so the
# libraries stay in the cache (or in /var/tmp/pgops-pg-regress when the server cannot read the cache) for as long
# as the database is restored anywhere on this machine.
#
# Needs: psql and pg_regress of the server's major version (Debian: postgresql-client-N), gcc, make, perl, tar, and
# Debian's source packages (apt-get source postgresql-N, through a private apt configuration built from the host's
# own sources: nothing in /etc/apt is changed). The first run downloads the source (about 23 MB), configures it
# once (headers only, about 20 s) and builds the three libraries; later runs only run the suite (about 40 s).
# Some tests of the suite may fail on a given host (they compare output); the database is complete all the same.
# The summary and regression.diffs of the last run are kept in the cache.
set -euo pipefail

HOST=127.0.0.1 PORT=5432 DBUSER=postgres DBNAME=regression
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${REGRESSION_DB_CACHE:-$REPO/.cache/pg-regress}
while [ $# -gt 0 ]; do
  case "$1" in
    -h) HOST=$2; shift 2 ;;
    -p) PORT=$2; shift 2 ;;
    -U) DBUSER=$2; shift 2 ;;
    -d) DBNAME=$2; shift 2 ;;
    --cache) CACHE=$2; shift 2 ;;
    --help) sed -n '2,24p' "$0"; exit 0 ;;
    *) echo "regression-db: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

say() { echo "regression-db: $*" >&2; }
die() { say "$*"; exit 1; }
t0=$SECONDS

# -- the server's major version, and that version's client tools ------------------------------------------------
PSQL=$(command -v psql || true)
if [ -z "$PSQL" ]; then
  for p in /usr/lib/postgresql/*/bin/psql; do if [ -x "$p" ]; then PSQL=$p; fi; done   # the glob sorts; newest last
fi
[ -n "$PSQL" ] || die "psql not found: install postgresql-client"
num=$("$PSQL" -X -At -h "$HOST" -p "$PORT" -U "$DBUSER" -d postgres -c 'SHOW server_version_num') \
  || die "cannot connect to $HOST:$PORT as $DBUSER"
MAJOR=$((num / 10000))
[ "$MAJOR" -ge 15 ] || die "PostgreSQL $MAJOR: only 15 and newer are supported (the suite's input files changed in 15)"
super=$("$PSQL" -X -At -h "$HOST" -p "$PORT" -U "$DBUSER" -d postgres -c \
  'SELECT rolsuper FROM pg_roles WHERE rolname = current_user')
[ "$super" = t ] || die "$DBUSER is not a superuser; the regression suite needs one"
BINDIR=/usr/lib/postgresql/$MAJOR/bin
[ -x "$BINDIR/psql" ] || BINDIR=$(dirname "$PSQL")
PG_CONFIG=$BINDIR/pg_config
[ -x "$PG_CONFIG" ] || PG_CONFIG=$(command -v pg_config || true)

# -- the source: Debian's postgresql-N source package, the installed server's version when it can be had -------
PKG=postgresql-$MAJOR
VERSION=$(dpkg-query -W -f '${Version}' "$PKG" 2>/dev/null || true)
APT=$CACHE/apt
mkdir -p "$CACHE"
fetch_source() {
  command -v apt-get >/dev/null || die "apt-get not found: fetch the PostgreSQL $MAJOR source into $CACHE yourself"
  rm -rf "$APT" && mkdir -p "$APT/lists/partial" "$APT/cache/archives/partial" "$APT/sources.list.d" "$APT/download"
  # deb-src twins of the host's own deb sources (one-line and deb822 formats)
  : > "$APT/sources.list"
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    if [ -f "$f" ]; then sed -n 's/^[[:space:]]*deb[[:space:]]/deb-src /p' "$f" >> "$APT/sources.list"; fi
  done
  for f in /etc/apt/sources.list.d/*.sources; do
    if [ -f "$f" ]; then sed -E 's/^Types:.*/Types: deb-src/' "$f" > "$APT/sources.list.d/$(basename "$f")"; fi
  done
  local opts=(-o "Dir::Etc::SourceList=$APT/sources.list" -o "Dir::Etc::SourceParts=$APT/sources.list.d"
              -o "Dir::State::Lists=$APT/lists" -o "Dir::Cache=$APT/cache" -o Debug::NoLocking=1
              -o APT::Sandbox::User="$(id -un)" -qq)
  apt-get "${opts[@]}" update >/dev/null || die "apt-get update (deb-src) failed"
  (cd "$APT/download" && { apt-get "${opts[@]}" source --download-only "$PKG=$VERSION" >/dev/null 2>&1 \
      || apt-get "${opts[@]}" source --download-only "$PKG" >/dev/null; }) \
    || die "apt-get source $PKG failed"
  local orig
  local orig=
  for f in "$APT/download/${PKG}"_*.orig.tar.*; do if [ -f "$f" ]; then orig=$f; fi; done
  [ -n "$orig" ] || die "apt-get source $PKG brought no .orig tarball"
  GOT=$(basename "$orig" | sed -E "s/^${PKG}_(.*)\.orig\.tar\..*/\1/")
  rm -rf "${CACHE:?}/${GOT:?}" "$CACHE/$GOT.tmp" && mkdir -p "$CACHE/$GOT.tmp"
  tar -xf "$orig" -C "$CACHE/$GOT.tmp" --strip-components=1
  mv "$CACHE/$GOT.tmp" "$CACHE/$GOT"
  rm -rf "$APT"
}
# the installed server's upstream version (15.18 of 15.18-0+deb12u1), else the newest already in the cache
WANT=${VERSION%%-*}
WANT=${WANT#*:}
if [ -z "$WANT" ]; then
  for d in "$CACHE/$MAJOR".*/configure; do if [ -f "$d" ]; then WANT=$(basename "$(dirname "$d")"); fi; done
fi
if [ -z "$WANT" ] || [ ! -f "$CACHE/$WANT/configure" ]; then
  say "downloading the $PKG source"
  GOT=
  fetch_source
  # that exact version may be gone from the mirror: remember which one stands in for it
  [ -z "$WANT" ] || [ "$WANT" = "$GOT" ] || ln -sfn "$GOT" "$CACHE/$WANT"
  WANT=${WANT:-$GOT}
fi
UPSTREAM=$WANT
SRC=$CACHE/$UPSTREAM
REGRESS=$SRC/src/test/regress
t_src=$SECONDS

# -- headers once (configure + generated headers), then regress.so, refint.so and autoinc.so ---------------------
LIB=$CACHE/lib-$UPSTREAM
if [ ! -f "$LIB/regress.so" ]; then
  if [ ! -f "$SRC/.pgops-headers" ]; then
    say "configuring $UPSTREAM for its headers"
    (cd "$SRC" && ./configure --without-readline --without-zlib --without-icu --without-llvm \
        > "$CACHE/configure.log" 2>&1 && make -C src/backend generated-headers >> "$CACHE/configure.log" 2>&1) \
      || die "configure failed: see $CACHE/configure.log"
    touch "$SRC/.pgops-headers"
  fi
  mkdir -p "$LIB.tmp"
  # flags as in their Makefiles (contrib/spi builds refint with REFINT_VERBOSE: the suite expects its notices)
  for c in src/test/regress/regress.c contrib/spi/refint.c contrib/spi/autoinc.c; do
    so=$(basename "$c" .c).so
    extra=()
    if [ "$so" = refint.so ]; then extra=(-DREFINT_VERBOSE); fi
    gcc -O2 -fPIC -shared -D_GNU_SOURCE "${extra[@]}" -I"$SRC/src/include" -o "$LIB.tmp/$so" "$SRC/$c" \
      || die "compiling $c failed"
  done
  chmod 755 "$LIB.tmp" "$LIB.tmp"/*.so
  rm -rf "$LIB" && mv "$LIB.tmp" "$LIB"
fi
t_build=$SECONDS

# -- pg_regress of the server's major version: the client package's, else built from the source ---------------
PG_REGRESS=
if [ -n "$PG_CONFIG" ]; then
  PG_REGRESS=$(dirname "$(dirname "$("$PG_CONFIG" --pgxs)")")/test/regress/pg_regress
fi
if [ ! -x "$PG_REGRESS" ]; then
  PG_REGRESS=$REGRESS/pg_regress
  [ -x "$PG_REGRESS" ] || make -C "$REGRESS" pg_regress > "$CACHE/pg_regress-build.log" 2>&1 \
    || die "building pg_regress failed: see $CACHE/pg_regress-build.log"
fi

# -- where the server reads the inputs and loads the libraries from: the cache if it can, else /var/tmp ------------
readable() {
  "$PSQL" -X -At -h "$HOST" -p "$PORT" -U "$DBUSER" -d postgres \
    -c "SELECT (pg_stat_file('${1//\'/\'\'}')).size > 0" >/dev/null 2>&1
}
INPUT=$REGRESS DLPATH=$LIB
if ! readable "$REGRESS/data/onek.data" || ! readable "$LIB/regress.so"; then
  STAGE=/var/tmp/pgops-pg-regress/$UPSTREAM
  say "the server cannot read $CACHE: staging the suite and the libraries in $STAGE"
  mkdir -p "$STAGE" && chmod 755 /var/tmp/pgops-pg-regress "$STAGE"
  cp -a "$REGRESS/." "$STAGE/regress" && cp -a "$LIB/." "$STAGE/lib"
  chmod -R a+rX "$STAGE"
  INPUT=$STAGE/regress DLPATH=$STAGE/lib
  readable "$INPUT/data/onek.data" || die "the server cannot read $INPUT either"
fi

# -- run the suite: pg_regress drops and creates the database, then runs the parallel schedule -----------------
OUT=$(mktemp -d /tmp/pgops-pg-regress.XXXXXX)
trap 'rm -rf "$OUT"' EXIT
chmod 755 "$OUT" && mkdir -m 777 "$OUT/results"   # the server writes COPY TO files there
say "running the regression suite of $UPSTREAM against $HOST:$PORT (database $DBNAME)"
rc=0
"$PG_REGRESS" --host="$HOST" --port="$PORT" --user="$DBUSER" --dbname="$DBNAME" --bindir="$BINDIR" \
  --inputdir="$INPUT" --outputdir="$OUT" --dlpath="$DLPATH" --max-connections=20 \
  --schedule="$INPUT/parallel_schedule" > "$OUT/run.log" 2>&1 || rc=$?
cp "$OUT/run.log" "$CACHE/last-run.log"
rm -f "$CACHE/last-run.diffs"
[ ! -f "$OUT/regression.diffs" ] || cp "$OUT/regression.diffs" "$CACHE/last-run.diffs"
summary=$(grep -oE "(All [0-9]+ tests passed|[0-9]+ of [0-9]+ tests failed)" "$OUT/run.log" | head -1 || true)
if [ "$rc" -gt 1 ] || [ -z "$summary" ]; then
  tail -20 "$OUT/run.log" >&2
  die "pg_regress could not run (exit $rc): see $CACHE/last-run.log"
fi
tables=$("$PSQL" -X -At -h "$HOST" -p "$PORT" -U "$DBUSER" -d "$DBNAME" -c \
  "SELECT count(*) FROM pg_class WHERE relkind = 'r' AND relnamespace = 'public'::regnamespace")
say "database $DBNAME built ($summary); $tables tables in public; source ${t_src}s," \
    "build $((t_build - t_src))s, suite $((SECONDS - t_build))s, total $((SECONDS - t0))s"
