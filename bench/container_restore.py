#!/usr/bin/env python
# -*- coding: utf-8 -*-
"""How a verified restore into PostgreSQL in a container reads a custom archive: the alternatives, measured.

PostgreSQL 16 and newer compress inside the custom format with zstd, which makes ``format: auto`` choose custom
there (issue 13) so that a restore can run ``pg_restore -j``. ``-j`` needs a seekable file; a container sees the
host's backup file only if its directory is mounted. This script generates the bench's catalogue-like database in
a container of the test image (PostgreSQL 17 by default), backs it up through pg_backup (plain + zstd, and custom
with zstd inside), and times, through pg_restore_verified (mode test) and by hand:

- plain SQL through psql (what older servers get);
- custom, one job reading stdin (the container does not see the file);
- custom, ``pg_restore -j 2`` on the file through the container's bind mount (what pgops does when it finds one);
- custom, ``docker cp`` of the file into the container, then ``pg_restore -j 2`` (the extra copy avoided);
- the seed's own pipelines for the ratios of issue 13: ``pg_dump | gzip`` and ``gunzip | psql`` (unverified).

Numbers are ratios of one run on this machine; with --rounds N the restores run N interleaved rounds and the
ratios are of their medians. usage: bench/container_restore.py [--size-mb 300] [--image TAG] [--rounds 3]
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
from run import KINDS, REPO, ServerPhases, median, run_module  # noqa: E402  pylint: disable=wrong-import-position


def docker(*args, **kw):
    return subprocess.run(['docker'] + list(args), check=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, **kw)


def timed_pipefail(cmd):
    """Seconds of a shell pipeline run as the seed runs it (bash, pipefail); fails when any part fails."""
    t = time.time()
    subprocess.run(['bash', '-o', 'pipefail', '-c', cmd], check=True)
    return time.time() - t


def free_port():
    import socket
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
    s.close()
    return port


class ContainerCluster(object):
    """The bench's cluster interface (psql) on PostgreSQL in a container."""

    def __init__(self, name):
        self.name = name

    def psql(self, db, sql):
        return docker('exec', '-i', self.name, 'psql', '-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-U',
                      'postgres', '-d', db, input=sql).stdout.strip()


def generate(cluster, db, size_mb, kind='catalogue'):
    k = KINDS[kind]
    cluster.psql('postgres', 'CREATE DATABASE %s' % db)
    cluster.psql(db, k['generator'])
    rows = max(1000, int(size_mb * k['rows_per_mb']))
    step = 200000
    for lo in range(1, rows + 1, step):
        seed = '%.6f' % (lo % 1000003 / 1000003.0)
        cluster.psql(db, k['batch'].replace(':LO', str(lo)).replace(':HI', str(min(rows, lo + step - 1)))
                     .replace(':SEED', seed))
    cluster.psql(db, k['indexes'])
    return int(cluster.psql(db, 'SELECT pg_database_size(current_database())'))


def image_for(major):
    path = os.path.join(REPO, '.cache', 'images.txt')
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                parts = line.split()
                if parts and parts[0] == str(major):
                    return parts[1]
    return 'pgops/postgres:%s' % major


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n', maxsplit=1)[0])
    ap.add_argument('--size-mb', type=float, default=300)
    ap.add_argument('--major', type=int, default=17)
    ap.add_argument('--image')
    ap.add_argument('--json')
    ap.add_argument('--rounds', type=int, default=1,
                    help='interleaved rounds of the restores (seed, plain, stdin, -j 2): ratios of the medians')
    opts = ap.parse_args()
    image = opts.image or image_for(opts.major)
    work = tempfile.mkdtemp(prefix='pgops-ctbench-')
    backups = os.path.join(work, 'backups')
    os.makedirs(backups)
    root = os.path.join(work, 'coll')
    os.makedirs(os.path.join(root, 'ansible_collections', 'pgops'))
    os.symlink(REPO, os.path.join(root, 'ansible_collections', 'pgops', 'postgresql'))
    name = 'pgops-ctbench-%d' % os.getpid()
    port = free_port()
    rows = []

    def add(label, seconds, note=''):
        rows.append(dict(name=label, seconds=round(seconds, 3), note=note))
        print('%-62s %8.2f s  %s' % (label, seconds, note), flush=True)

    try:
        docker('run', '-d', '--name', name, '--network', 'host', '-e', 'POSTGRES_HOST_AUTH_METHOD=trust',
               '-e', 'PGPORT=%d' % port, '-v', '%s:/backups' % backups, image, 'postgres',
               '-c', 'shared_buffers=256MB', '-c', 'max_wal_size=4GB')
        deadline = time.time() + 60
        while subprocess.run(['docker', 'exec', name, 'pg_isready', '-q', '-U', 'postgres'],
                             check=False).returncode != 0:
            if time.time() > deadline:
                raise SystemExit('the container did not become ready')
            time.sleep(0.3)
        cluster = ContainerCluster(name)
        t = time.time()
        size = generate(cluster, 'catalogdb', opts.size_mb)
        version = cluster.psql('postgres', 'SHOW server_version')
        print('catalogdb: %.0f MiB in PostgreSQL %s (%s), generated in %.0f s'
              % (size / 2 ** 20, version, image, time.time() - t), flush=True)
        # the team's own pipelines (the seed): pg_dump | gzip, and gunzip | psql, unverified
        seed = os.path.join(work, 'seed.sql.gz')
        seed_backup = timed_pipefail('docker exec %s pg_dump -U postgres catalogdb | gzip > %s' % (name, seed))
        add('seed: docker exec pg_dump | gzip', seed_backup, '%.1f MiB' % (os.path.getsize(seed) / 2.0 ** 20))
        base = dict(container=name, login_user='postgres', free_space_ratio=0)
        ids = {}
        backup_secs = {}
        for fmt in ('plain', 'auto'):
            args = dict(base, databases=['catalogdb'], dest=backups, format=fmt)
            res, secs, dummy = run_module(root, 'pg_backup', args)
            meta = res['backups'][0]
            ids[fmt] = (res['id'], meta)
            backup_secs[fmt] = secs
            add('pg_backup format=%s -> %s %s' % (fmt, meta['format'], meta['compression']), secs,
                '%.1f MiB' % (meta['size'] / 2.0 ** 20))
        watch = ['docker', 'exec', '-i', name, 'psql', '-U', 'postgres', '-d', 'postgres']
        restore = dict(base, path=backups, database='catalogdb', mode='test', server_free_space_ratio=0)
        results = {}
        drills = (('plain SQL through psql', 'plain', 2), ('custom, one job reading stdin', 'auto', 1),
                  ('custom, pg_restore -j 2 through the bind mount', 'auto', 2))
        seed_restores = []
        for rnd in range(opts.rounds):
            suffix = ' (round %d)' % (rnd + 1) if opts.rounds > 1 else ''
            cluster.psql('postgres', 'CREATE DATABASE seed_restore')
            with ServerPhases(watch, 'seed_restore') as sp:
                seed_restores.append(timed_pipefail(
                    'gunzip -c %s | docker exec -i %s psql -X -q -v ON_ERROR_STOP=1 -U postgres -d seed_restore '
                    '> /dev/null' % (seed, name)))
            add('seed: gunzip | docker exec psql (unverified)' + suffix, seed_restores[-1], sp.note())
            cluster.psql('postgres', 'DROP DATABASE seed_restore')
            for label, backup, jobs in drills:
                with ServerPhases(watch, 'catalogdb%') as sp:
                    res, secs, dummy = run_module(root, 'pg_restore_verified', dict(
                        restore, backup_id=ids[backup][0], jobs=jobs))
                results.setdefault(label, []).append(secs)
                note = '%s; phases %s; %s' % (res['checks'].get('restore_method'), res['phases'], sp.note())
                add('pg_restore_verified test: ' + label + suffix, secs, note)
        seed_restore = median(seed_restores)
        results = dict((k, median(v)) for k, v in results.items())
        # the alternative pgops does not take: copy the dump into the container, then pg_restore -j 2
        meta = ids['auto'][1]
        t = time.time()
        docker('cp', meta['backup_path'] if 'backup_path' in meta else os.path.join(backups, meta['file']),
               '%s:/tmp/copied.dump' % name)
        copy_secs = time.time() - t
        cluster.psql('postgres', 'CREATE DATABASE copied')
        t = time.time()
        docker('exec', name, 'pg_restore', '-U', 'postgres', '-j', '2', '--exit-on-error', '-d', 'copied',
               '/tmp/copied.dump')
        restore_secs = time.time() - t
        add('docker cp into the container (extra copy)', copy_secs)
        add('pg_restore -j 2 of the copy (unverified, no file check)', restore_secs)
        docker('exec', name, 'rm', '-f', '/tmp/copied.dump')
        stdin = results['custom, one job reading stdin']
        mounted = results['custom, pg_restore -j 2 through the bind mount']
        plain = results['plain SQL through psql']
        ratios = dict(mounted_j2_vs_stdin_one_job=round(mounted / stdin, 3),
                      mounted_j2_vs_plain_psql=round(mounted / plain, 3),
                      copy_then_j2_vs_mounted_j2=round((copy_secs + restore_secs) / mounted, 3),
                      # the issue 13 goals, on a server where the defaults restore in parallel
                      default_backup_vs_seed_backup=round(backup_secs['auto'] / seed_backup, 3),
                      verified_restore_vs_seed_restore=round(mounted / seed_restore, 3))
        print(json.dumps(ratios, indent=2))
        if opts.json:
            with open(opts.json, 'w') as f:
                json.dump(dict(image=image, server_version=version, database_size=size, rows=rows, ratios=ratios),
                          f, indent=2)
    finally:
        subprocess.run(['docker', 'rm', '-f', name], check=False, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
