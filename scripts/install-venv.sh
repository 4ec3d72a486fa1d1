#!/usr/bin/env bash
# Create the test venv: requirements/dev.txt from PyPI, plus the collections of requirements/collections.txt
# (community.docker, containers.podman, ...) unzipped from the `ansible` wheel (no Galaxy), each checked against the
# version pinned there, plus an offline stand-in for the get-pip download of
# `ansible-test --venv`. Skipped when the venv's stamp matches requirements/*.txt + this script.
# usage: scripts/install-venv.sh [VENV]        (default .venv; run from the repo root or anywhere)
set -euo pipefail

ANSIBLE=12.3.0                       # community package whose wheel carries the collections
ROOT=$(cd "$(dirname "$0")/.." && pwd)
VENV=${1:-.venv}
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/pgops
GETPIP_CACHE=$HOME/.ansible/test/cache   # where ansible-test looks for get_pip_<ver>.py
die() { echo "install-venv: $*" >&2; exit 1; }

STAMP_WANT=$(cat "$ROOT"/requirements/*.txt "$0" | sha256sum | cut -d' ' -f1)
STAMP=$VENV/.pgops-stamp
if [ -f "$STAMP" ] && [ "$(head -n1 "$STAMP")" = "$STAMP_WANT" ] && [ -x "$VENV/bin/python" ] &&
   [ -f "$(sed -n 2p "$STAMP")" ]; then
  exit 0
fi

LOG=$(mktemp "${TMPDIR:-/tmp}/pgops-install-venv.XXXX.log")
run() { "$@" >>"$LOG" 2>&1 || { tail -n 30 "$LOG" >&2; die "failed: $* (log: $LOG)"; }; }

rm -f "$STAMP"
run python3 -m venv "$VENV"
PY=$VENV/bin/python
run "$PY" -m pip install --no-cache-dir -r "$ROOT/requirements/dev.txt"

# collections from the ansible wheel (downloaded once)
mkdir -p "$CACHE"
WHL=$CACHE/ansible-$ANSIBLE-py3-none-any.whl
[ -f "$WHL" ] || run "$PY" -m pip download --no-cache-dir --no-deps --only-binary=:all: -d "$CACHE" "ansible==$ANSIBLE"
SP=$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
"$PY" - "$WHL" "$SP" "$ROOT/requirements/collections.txt" <<'PY' || die "collection extraction failed"
import json, shutil, sys, zipfile, os
whl, dest, reqfile = sys.argv[1:]
want = {}
for line in open(reqfile):
    line = line.split('#', 1)[0].strip()
    if line:
        name, _, ver = line.partition('==')
        want[name] = ver
with zipfile.ZipFile(whl) as z:
    for name, ver in want.items():
        prefix = 'ansible_collections/%s/' % name.replace('.', '/')
        try:
            found = json.loads(z.read(prefix + 'MANIFEST.json'))['collection_info']['version']
        except KeyError:
            sys.exit('install-venv: %s (requirements/collections.txt) is not in %s' % (name, os.path.basename(whl)))
        if ver and found != ver:
            sys.exit('install-venv: %s is %s in %s, requirements/collections.txt wants %s' % (name, found, os.path.basename(whl), ver))
        shutil.rmtree(os.path.join(dest, prefix), ignore_errors=True)
        z.extractall(dest, [n for n in z.namelist() if n.startswith(prefix)])
PY

# ansible-test --venv fetches get-pip-<ver>.py from ci-files.testing.ansible.com (unreachable):
# put pip's wheel + a small runner where ansible-test caches that file.
PIPV=$("$PY" -c 'import types; from ansible_test._internal.python_requirements import get_venv_packages as g; print(g(types.SimpleNamespace(version="3.11"))["pip"])') \
  || die "cannot determine the pip version ansible-test wants"
GETPIP=$GETPIP_CACHE/get_pip_${PIPV//./_}.py
mkdir -p "$GETPIP_CACHE"
[ -f "$GETPIP_CACHE/pip-$PIPV-py3-none-any.whl" ] ||
  run "$PY" -m pip download --no-cache-dir --no-deps --only-binary=:all: -d "$GETPIP_CACHE" "pip==$PIPV"
cat > "$GETPIP.tmp" <<PYEOF
# Offline stand-in for get-pip.py $PIPV (written by pgops scripts/install-venv.sh): runs pip from its wheel.
import os, runpy, sys
whl = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'pip-$PIPV-py3-none-any.whl')
args = [a for a in sys.argv[1:] if a not in ('--no-setuptools', '--no-wheel')]
sys.path.insert(0, whl)
sys.argv = ['pip', 'install', '--upgrade', '--force-reinstall'] + args
runpy.run_module('pip', run_name='__main__', alter_sys=True)
PYEOF
mv "$GETPIP.tmp" "$GETPIP"

run "$PY" -m pip check
printf '%s\n%s\n' "$STAMP_WANT" "$GETPIP" > "$STAMP"
rm -f "$LOG"
