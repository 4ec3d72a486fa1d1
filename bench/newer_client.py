#!/usr/bin/env python
# -*- coding: utf-8 -*-
"""PostgreSQL 15 with a newer client: what pg_dump/pg_restore 17 give against a 15 server (issue 13).

pg_dump dumps older servers, and from 16 on it compresses inside a custom archive with zstd, which pg_restore -j
restores in parallel. Debian 12 has no PostgreSQL 16+ client packages; the test image pgops/postgres:17 has them, so
its client is run here with the host network against the host's PostgreSQL 15 (the bench's catalogue-like data).
Compared, one run: pg_backup's default on 15 (plain SQL through zstd) and its verified drill, against pg_dump 17
custom zstd:1 and pg_restore 17 -j 2 into the same 15 server (neither verified nor checked: the raw tools).

usage: bench/newer_client.py [--size-mb 300] [--image pgops/postgres:17]
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
from run import REPO, Cluster, generate, run_module  # noqa: E402  pylint: disable=wrong-import-position


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n', maxsplit=1)[0])
    ap.add_argument('--size-mb', type=float, default=300)
    ap.add_argument('--image', default='pgops/postgres:17')
    opts = ap.parse_args()
    work = tempfile.mkdtemp(prefix='pgops-newer-')
    os.chmod(work, 0o755)
    root = os.path.join(work, 'coll')
    os.makedirs(os.path.join(root, 'ansible_collections', 'pgops'))
    os.symlink(REPO, os.path.join(root, 'ansible_collections', 'pgops', 'postgresql'))
    dumps = os.path.join(work, 'dumps')
    os.makedirs(dumps)
    cluster = Cluster(os.path.join(work, 'pg'))
    os.makedirs(cluster.base)
    out = {}

    def client(*argv):
        t = time.time()
        proc = subprocess.run(['docker', 'run', '--rm', '--network', 'host', '-v', '%s:/dumps' % dumps, opts.image]
                              + list(argv), check=False, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              universal_newlines=True)
        return time.time() - t, proc.returncode, proc.stderr.strip()[-600:]

    try:
        cluster.start()
        size = generate(cluster, 'catalogdb', opts.size_mb, 'catalogue')
        print('catalogdb: %.0f MiB on PostgreSQL %s' % (size / 2 ** 20, cluster.psql('postgres', 'SHOW server_version')))
        base = dict(login_host='127.0.0.1', port=cluster.port, login_user='postgres', free_space_ratio=0)
        dest = os.path.join(work, 'backups')
        res, out['pg_backup_15'], dummy = run_module(root, 'pg_backup', dict(base, databases=['catalogdb'], dest=dest))
        res, out['drill_15'], dummy = run_module(root, 'pg_restore_verified', dict(
            base, path=dest, database='catalogdb', mode='test', server_free_space_ratio=0))
        out['drill_15_restore_phase'] = res['phases']['restore']
        conn = ['-h', '127.0.0.1', '-p', str(cluster.port), '-U', 'postgres']
        client('true')   # the image is there and a container starts: not counted
        dump = ['pg_dump'] + conn + ['-Fc', '-Z', 'zstd:1', '-f', '/dumps/c.dump', 'catalogdb']
        out['pg_dump_17_custom_zstd'], rc, err = client(*dump)
        assert rc == 0, err
        out['dump_size'] = os.path.getsize(os.path.join(dumps, 'c.dump'))
        # as the verified restore runs it: any error stops it
        cluster.psql('postgres', 'CREATE DATABASE restored')
        restore = ['pg_restore'] + conn + ['-j', '2', '--exit-on-error', '-d', 'restored', '/dumps/c.dump']
        secs, out['pg_restore_17_exit_on_error_rc'], out['pg_restore_17_exit_on_error_stderr'] = client(*restore)
        # and without --exit-on-error (errors counted, not stopped at): what the time would be
        cluster.psql('postgres', 'DROP DATABASE restored')
        cluster.psql('postgres', 'CREATE DATABASE restored')
        out['pg_restore_17_j2'], out['pg_restore_17_j2_rc'], out['pg_restore_17_j2_stderr'] = client(
            *(['pg_restore'] + conn + ['-j', '2', '-d', 'restored', '/dumps/c.dump']))
        out['restored_rows_equal'] = (cluster.psql('restored', 'SELECT count(*) FROM items')
                                      == cluster.psql('catalogdb', 'SELECT count(*) FROM items'))
    finally:
        cluster.stop()
        shutil.rmtree(work, ignore_errors=True)
    out['ratios'] = dict(
        dump_17_vs_pg_backup_15=round(out['pg_dump_17_custom_zstd'] / out['pg_backup_15'], 3),
        restore_17_j2_vs_drill_15_restore_phase=round(out['pg_restore_17_j2'] / out['drill_15_restore_phase'], 3))
    print(json.dumps(out, indent=2))
    return 0


if __name__ == '__main__':
    sys.exit(main())
