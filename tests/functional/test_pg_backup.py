# -*- coding: utf-8 -*-
"""pg_backup and backup_info against a real PostgreSQL, with real files: formats, metadata, faults."""
from __future__ import absolute_import, division, print_function

import glob
import gzip
import hashlib
import json
import os
import signal
import stat
import subprocess
import time

import pytest

from conftest import argv_while_running, pg_bin, wait_for


def sha256(path):
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            h.update(chunk)
    return h.hexdigest()


def visible(dest):
    """Everything in dest that could be taken for a backup (no hidden temp or lock files)."""
    return sorted(n for n in os.listdir(dest) if not n.startswith('.')) if os.path.isdir(dest) else []


def restore(postgres, meta, target_db):
    """Restore a dump with the stock tools into a scratch database; return its row counts."""
    postgres.create_db(target_db, seed=False)
    conn = ['-h', '127.0.0.1', '-p', str(postgres.port), '-U', 'postgres']
    path = os.path.join(os.path.dirname(meta['meta_path']), meta['file'])
    if meta['format'] == 'plain':
        decompress = {'zstd': ['zstd', '-dc', path], 'gzip': ['gzip', '-dc', path], 'lz4': ['lz4', '-dc', path],
                      'none': ['cat', path]}[meta['compression']]
        dec = subprocess.Popen(decompress, stdout=subprocess.PIPE)
        psql = subprocess.run([pg_bin('psql'), '-X', '-q', '-v', 'ON_ERROR_STOP=1'] + conn + ['-d', target_db],
                              stdin=dec.stdout, stdout=subprocess.DEVNULL, check=False)
        dec.stdout.close()
        assert dec.wait() == 0 and psql.returncode == 0
    else:
        subprocess.run([pg_bin('pg_restore'), '--exit-on-error', '-j', '2'] + conn + ['-d', target_db, path],
                       check=True)
    return postgres.row_counts(target_db)


@pytest.fixture(scope='module')
def pim(postgres):
    postgres.create_db('pim_dev')
    return 'pim_dev'


@pytest.mark.parametrize('fmt,compression', [
    ('plain', 'zstd'), ('plain', 'gzip'), ('plain', 'lz4'), ('plain', 'none'),
    ('custom', 'gzip'), ('custom', 'zstd'), ('directory', 'gzip'),
])
def test_backup_formats_restore_with_identical_counts(postgres, pim, dest, run_module, fmt, compression):
    args = dict(postgres.conn(), databases=[pim], dest=dest, format=fmt, compression=compression,
                jobs=2 if fmt == 'directory' else 1)
    res = run_module('pg_backup', args)
    assert not res.get('failed'), res
    assert res['changed'] is True
    [entry] = res['backups']
    assert entry['status'] == 'success'
    meta_files = glob.glob(os.path.join(dest, '*.meta.json'))
    assert len(meta_files) == 1
    with open(meta_files[0]) as f:
        meta = json.load(f)
    meta['meta_path'] = meta_files[0]
    assert meta['id'] == res['id'] and meta['sha256'] == res['sha256']
    path = os.path.join(dest, meta['file'])
    if fmt == 'directory':
        assert os.path.isdir(path) and meta['files']
        for rel, digest in meta['files'].items():
            assert sha256(os.path.join(path, rel)) == digest
    else:
        assert sha256(path) == meta['sha256']
        assert os.path.getsize(path) == meta['size']
    source = postgres.row_counts(pim)
    assert dict(('%s.%s' % (t['schema'], t['name']), t['rows']) for t in meta['tables']) == source
    assert meta['rows_total'] == sum(source.values()) > 5000
    assert meta['objects']['views'] == 1 and meta['objects']['functions'] == 1
    assert 'public.products_id_seq' in meta['object_names']['sequences']
    assert restore(postgres, meta, 'scratch_%s_%s' % (fmt, compression)) == source
    assert stat.S_IMODE(os.stat(dest).st_mode) == 0o750
    assert stat.S_IMODE(os.stat(meta_files[0]).st_mode) == 0o640
    if fmt != 'directory':
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o640


def test_check_mode_touches_nothing(postgres, pim, dest, run_module):
    res = run_module('pg_backup', dict(postgres.conn(), databases=[pim], dest=dest), check_mode=True)
    assert res['changed'] is True and not res.get('failed'), res
    assert res['backups'][0]['status'] == 'planned'
    assert res['backups'][0]['path'].startswith(dest + '/pim_dev_full_')
    assert not os.path.exists(dest)


def test_weird_database_name_and_mixed_case_table(postgres, dest, run_module):
    name = u'Ünïcode "db" o\'name = x'
    postgres.create_db(name, seed=False)
    postgres.psql(name, 'CREATE TABLE "MixedCase Table" (id int); INSERT INTO "MixedCase Table" '
                        'SELECT generate_series(1, 42); CREATE TABLE "Quote""d" (x text); '
                        'INSERT INTO "Quote""d" VALUES (\'a\'), (\'b\')')
    res = run_module('pg_backup', dict(postgres.conn(), databases=[name], dest=dest, kind='manual',
                                       label=u'before schema change ü'))
    assert not res.get('failed'), res
    entry = res['backups'][0]
    assert entry['database'] == name
    counts = dict(('%s.%s' % (t['schema'], t['name']), t['rows']) for t in entry['tables'])
    assert counts == {'public.MixedCase Table': 42, 'public.Quote"d': 2}
    assert os.path.isfile(entry['path'])
    assert '/' not in os.path.basename(entry['path'])
    entry['meta_path'] = entry['path'].rsplit('.sql', 1)[0] + '.meta.json'
    assert os.path.isfile(entry['meta_path'])
    assert restore(postgres, entry, 'weird_restored') == postgres.row_counts(name)


@pytest.mark.parametrize('label', ['../etc', 'a/b', 'bad\nline', 'tab\there', '', '.hidden'])
def test_bad_label_is_refused_and_nothing_written(postgres, pim, dest, run_module, label):
    res = run_module('pg_backup', dict(postgres.conn(), databases=[pim], dest=dest, label=label))
    assert res.get('failed') and res['msg'].startswith('label:'), res
    assert not os.path.exists(dest)


def test_ids_are_unique_per_database_and_backup_info_lists_newest_first(postgres, pim, dest, run_module):
    ids = []
    for kind in ('full', 'snapshot', 'manual'):
        res = run_module('pg_backup', dict(postgres.conn(), databases=[pim], dest=dest, kind=kind,
                                           format='custom' if kind == 'snapshot' else 'plain'))
        assert not res.get('failed'), res
        ids.append(res['id'])
    assert len(set(ids)) == 3
    info = run_module('backup_info', dict(path=dest))
    assert [b['id'] for b in info['backups']] == list(reversed(ids))
    assert info['stats']['count'] == 3 and info['stats']['success_rate'] == 100.0
    assert info['stats']['by_kind']['snapshot']['count'] == 1
    only = run_module('backup_info', dict(path=dest, kind=['snapshot'], stats=False))
    assert [b['kind'] for b in only['backups']] == ['snapshot'] and 'stats' not in only


def test_log_file_lines(postgres, pim, dest, run_module, tmp_path):
    log = str(tmp_path / 'logs' / 'db-backup.log')
    ok = run_module('pg_backup', dict(postgres.conn(), databases=[pim], dest=dest, log_file=log))
    bad = run_module('pg_backup', dict(postgres.conn(), databases=['no_such_db'], dest=dest, log_file=log))
    assert bad['failed'] and 'no_such_db' in bad['msg']
    with open(log) as f:
        lines = f.read().splitlines()
    assert len(lines) == 2
    assert lines[0].endswith('completed successfully: %s, %d bytes, %.1fs' % (
        ok['path'], ok['size'], ok['duration_seconds'])) or 'completed successfully' in lines[0]
    assert 'pim_dev' in lines[0] and ok['id'] in lines[0]
    assert 'no_such_db' in lines[1] and 'FAILED:' in lines[1]
    info = run_module('backup_info', dict(path=dest, database='no_such_db'))
    assert info['stats']['failed'] == 1 and info['stats']['success_rate'] == 0.0
    assert info['backups'][0]['status'] == 'failed' and not info['backups'][0].get('file')


def test_password_never_in_argv_metadata_or_output(postgres, dest, run_module, tmp_path):
    secret = 'S3cret-pw-%d' % os.getpid()
    postgres.create_db('pw_db', seed=False)
    postgres.psql('postgres', "DROP ROLE IF EXISTS pw_user; CREATE ROLE pw_user LOGIN PASSWORD '%s'; "
                              "GRANT ALL ON DATABASE pw_db TO pw_user" % secret)
    postgres.psql('pw_db', 'ALTER SCHEMA public OWNER TO pw_user')
    proc = run_module.popen('pg_backup', dict(login_host='127.0.0.1', port=postgres.port, login_user='pw_user',
                                              login_password=secret, databases=['pw_db'], dest=dest))
    seen = argv_while_running(proc)
    res = run_module.result(proc)
    assert not res.get('failed'), res
    assert any(b'pg_dump' in c for c in seen)
    assert not any(secret.encode() in c for c in seen)
    assert secret not in json.dumps(res)
    for name in os.listdir(dest):
        with open(os.path.join(dest, name), 'rb') as f:
            data = f.read()
        if name.endswith('.zst'):
            data = subprocess.run(['zstd', '-dc'], input=data, stdout=subprocess.PIPE, check=True).stdout
        assert secret.encode() not in data


def test_pg_dump_killed_midway_leaves_nothing(postgres, dest, run_module):
    postgres.create_db('big_db', seed=False)
    postgres.psql('big_db', "CREATE TABLE big AS SELECT g AS id, md5(g::text) || repeat('x', 200) AS payload "
                            "FROM generate_series(1, 400000) g")
    first = run_module('pg_backup', dict(postgres.conn(), databases=['big_db'], dest=dest, compression='none'))
    assert not first.get('failed')
    before = {n: sha256(os.path.join(dest, n)) for n in visible(dest)}
    proc = run_module.popen('pg_backup', dict(postgres.conn(), databases=['big_db'], dest=dest,
                                              compression='gzip', compression_level=9))

    def dump_pid():
        out = subprocess.run(['pgrep', '-f', 'pg_dump.*--snapshot'], stdout=subprocess.PIPE,
                             universal_newlines=True, check=False).stdout.split()
        return out[0] if out else None

    def temp_file_growing():
        return [n for n in os.listdir(dest) if n.startswith('.') and '.tmp-' in n and
                os.path.getsize(os.path.join(dest, n)) > 0]

    pid = wait_for(dump_pid)
    wait_for(temp_file_growing)
    os.kill(int(pid), signal.SIGKILL)
    res = run_module.result(proc)
    assert res['failed'] and 'pg_dump killed by signal SIGKILL' in res['msg'], res
    assert not [n for n in os.listdir(dest) if '.tmp-' in n]
    after = visible(dest)
    new = [n for n in after if n not in before]
    assert len(new) == 1 and new[0].endswith('.meta.json')  # the failure is recorded, no dump left
    with open(os.path.join(dest, new[0])) as f:
        assert json.load(f)['status'] == 'failed'
    assert {n: sha256(os.path.join(dest, n)) for n in before} == before


@pytest.mark.skipif(os.geteuid() != 0, reason='mounting a tmpfs needs root')
def test_destination_full_leaves_nothing(postgres, tmp_path, run_module):
    postgres.create_db('fill_db', seed=False)
    postgres.psql('fill_db', "CREATE TABLE t AS SELECT g, md5(g::text) AS h FROM generate_series(1, 200000) g")
    mnt = str(tmp_path / 'small')
    os.makedirs(mnt)
    subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=2m', 'tmpfs', mnt], check=True)
    try:
        with open(os.path.join(mnt, 'earlier.sql'), 'w') as f:
            f.write('-- an earlier backup\n')
        res = run_module('pg_backup', dict(postgres.conn(), databases=['fill_db'], dest=mnt, compression='none',
                                           free_space_ratio=0))
        assert res['failed'] and 'No space left on device' in res['msg'], res
        names = os.listdir(mnt)
        assert not [n for n in names if '.tmp-' in n]
        assert not [n for n in names if n.endswith('.sql') and n != 'earlier.sql']
        with open(os.path.join(mnt, 'earlier.sql')) as f:
            assert f.read() == '-- an earlier backup\n'
        # the preflight refuses before writing when the estimate does not fit
        res = run_module('pg_backup', dict(postgres.conn(), databases=['fill_db'], dest=mnt, free_space_ratio=5))
        assert res['failed'] and 'not enough free space' in res['msg'] and 'free_space_ratio' in res['msg']
    finally:
        subprocess.run(['umount', mnt], check=True)


def test_lock_makes_second_backup_wait_then_fail(postgres, pim, dest, run_module):
    import fcntl
    os.makedirs(dest)
    lock = open(os.path.join(dest, '.pim_dev.lock'), 'w')
    fcntl.flock(lock, fcntl.LOCK_EX)
    try:
        t0 = time.time()
        res = run_module('pg_backup', dict(postgres.conn(), databases=[pim], dest=dest, lock_timeout=2))
        assert res['failed'] and 'lock_timeout' in res['msg'], res
        assert time.time() - t0 >= 2
    finally:
        lock.close()
    res = run_module('pg_backup', dict(postgres.conn(), databases=[pim], dest=dest, lock_timeout=2))
    assert not res.get('failed'), res


def test_globals_without_role_passwords(postgres, pim, dest, run_module):
    res = run_module('pg_backup', dict(postgres.conn(), databases=[pim], dest=dest, globals=True,
                                       compression='gzip'))
    assert not res.get('failed'), res
    [glob_entry] = [b for b in res['backups'] if b['scope'] == 'globals']
    with gzip.open(glob_entry['path'], 'rt') as f:
        sql = f.read()
    assert 'CREATE ROLE postgres' in sql and 'PASSWORD' not in sql


def test_concurrent_backups_of_one_database_get_distinct_ids(postgres, pim, dest, run_module):
    procs = [run_module.popen('pg_backup', dict(postgres.conn(), databases=[pim], dest=dest)) for dummy in range(3)]
    results = [run_module.result(p) for p in procs]
    assert all(not r.get('failed') for r in results), results
    ids = [r['id'] for r in results]
    assert len(set(ids)) == 3
    metas = sorted(n for n in visible(dest) if n.endswith('.meta.json'))
    assert len(metas) == 3
    for r in results:
        assert sha256(r['path']) == r['sha256']
