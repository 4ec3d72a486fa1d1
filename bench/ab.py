#!/usr/bin/env python
# -*- coding: utf-8 -*-
"""A/B: this checkout's pg_backup and pg_restore_verified against another revision's, on one database.

Absolute times on a shared machine move by 20-40 % between runs; a change's cost is measured here instead: the
same database, the two revisions' modules run alternately (old, new, new, old, ...), medians reported. The other
revision is checked out with ``git worktree`` into a temporary directory and removed afterwards.

usage: bench/ab.py --rev 82bfed5 [--size-mb 300] [--rounds 3] [--kind prose|catalogue]
"""
from __future__ import absolute_import, division, print_function

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run import REPO, Cluster, generate, median  # noqa: E402  pylint: disable=wrong-import-position


def collection_root(repo, work, name):
    base = os.path.join(work, 'coll-' + name)
    os.makedirs(os.path.join(base, 'ansible_collections', 'pgops'))
    os.symlink(repo, os.path.join(base, 'ansible_collections', 'pgops', 'postgresql'))
    return base


def run_module(repo, root, name, args):
    fd, path = tempfile.mkstemp(suffix='.json')
    with os.fdopen(fd, 'w') as f:
        json.dump({'ANSIBLE_MODULE_ARGS': dict(args, _ansible_tmpdir=tempfile.gettempdir())}, f)
    t = time.time()
    out = subprocess.run([sys.executable, os.path.join(repo, 'plugins', 'modules', name + '.py'), path],
                         stdout=subprocess.PIPE, env=dict(os.environ, PYTHONPATH=root), check=False).stdout
    seconds = time.time() - t
    os.unlink(path)
    res = json.loads(out[out.index(b'{'):])
    if res.get('failed'):
        raise SystemExit('%s (%s) failed: %s' % (name, repo, res.get('msg')))
    return res, seconds


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n', maxsplit=1)[0])
    ap.add_argument('--rev', required=True, help='the git revision to compare this checkout with')
    ap.add_argument('--size-mb', type=float, default=300)
    ap.add_argument('--rounds', type=int, default=3)
    ap.add_argument('--kind', choices=['prose', 'catalogue'], default='prose')
    opts = ap.parse_args()
    work = tempfile.mkdtemp(prefix='pgops-ab-')
    os.chmod(work, 0o755)
    old = os.path.join(work, 'old')
    subprocess.run(['git', '-C', REPO, 'worktree', 'add', '--detach', '-q', old, opts.rev], check=True)
    cluster = Cluster(os.path.join(work, 'pg'))
    os.makedirs(cluster.base)
    try:
        cluster.start()
        generate(cluster, 'benchdb', opts.size_mb, opts.kind)
        repos = dict(old=old, new=REPO)
        roots = dict((k, collection_root(v, work, k)) for k, v in repos.items())
        base = dict(login_host='127.0.0.1', port=cluster.port, login_user='postgres', free_space_ratio=0)
        times = dict((k, dict(backup=[], restore=[])) for k in repos)
        for rnd in range(opts.rounds):
            for k in (('old', 'new') if rnd % 2 == 0 else ('new', 'old')):
                dest = os.path.join(work, 'backups-%s-%d' % (k, rnd))
                dummy, secs = run_module(repos[k], roots[k], 'pg_backup',
                                         dict(base, databases=['benchdb'], dest=dest, format='plain'))
                times[k]['backup'].append(round(secs, 3))
                res, secs = run_module(repos[k], roots[k], 'pg_restore_verified',
                                       dict(base, path=dest, database='benchdb', mode='test',
                                            server_free_space_ratio=0))
                times[k]['restore'].append(round(secs, 3))
                print('%s round %d: backup %.2f s, drill %.2f s, phases %s'
                      % (k, rnd, times[k]['backup'][-1], times[k]['restore'][-1], res.get('phases')), flush=True)
    finally:
        cluster.stop()
        subprocess.run(['git', '-C', REPO, 'worktree', 'remove', '--force', old], check=False)
        shutil.rmtree(work, ignore_errors=True)
    summary = dict((k, dict((m, median(v)) for m, v in t.items())) for k, t in times.items())
    summary['new_vs_old'] = dict((m, round(summary['new'][m] / summary['old'][m], 3)) for m in ('backup', 'restore'))
    print(json.dumps(dict(rev=opts.rev, medians=summary, times=times), indent=2))
    return 0


if __name__ == '__main__':
    sys.exit(main())
