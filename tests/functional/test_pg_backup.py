# -*- coding: utf-8 -*-
"""pg_backup and backup_info against a real PostgreSQL, with real files: formats, metadata, faults."""
from __future__ import absolute_import, division, print_function

import glob
import gzip
import json
import os
import shutil
import signal
import stat
import subprocess
import time

import pytest

from conftest import argv_while_running, pg_bin, run_playbook, sha256, wait_for


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
    args = dict(postgres.conn(), databases=[pim], globals=False, dest=dest, format=fmt, compression=compression,
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
    phases = meta['phases']
    assert phases == entry['phases'] and phases['dump'] > 0 and phases['count'] > 0, phases
    if fmt == 'plain' and compression != 'none':
        # pg_dump and the compressor ran at once, each its own CPU
        cpu = phases['cpu_seconds']
        assert len(cpu) == 2 and cpu['pg_dump'] > 0, phases    # the compressor is named by its tool (pigz for gzip)
        assert min(cpu.values()) >= 0 and set(cpu) - set(['pg_dump']) <= set(['zstd', 'gzip', 'pigz', 'lz4']), phases
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
        res = run_module('pg_backup', dict(postgres.conn(), databases=[pim], globals=False, dest=dest, kind=kind,
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
    ok = run_module('pg_backup', dict(postgres.conn(), databases=[pim], globals=False, dest=dest, log_file=log))
    bad = run_module('pg_backup', dict(postgres.conn(), databases=['no_such_db'], globals=False, dest=dest, log_file=log))
    assert bad['failed'] and 'no_such_db' in bad['msg']
    with open(log) as f:
        lines = f.read().splitlines()
    assert len(lines) == 2
    assert lines[0].endswith('completed successfully: %s, %d bytes, %.1fs' % (
        ok['backup_path'], ok['size'], ok['duration_seconds'])) or 'completed successfully' in lines[0]
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
    first = run_module('pg_backup', dict(postgres.conn(), databases=['big_db'], globals=False, dest=dest,
                                         compression='none'))
    assert not first.get('failed')
    before = {n: sha256(os.path.join(dest, n)) for n in visible(dest)}
    proc = run_module.popen('pg_backup', dict(postgres.conn(), databases=['big_db'], globals=False, dest=dest,
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
        res = run_module('pg_backup', dict(postgres.conn(), databases=['fill_db'], globals=False, dest=mnt, compression='none',
                                           free_space_ratio=0))
        assert res['failed'] and 'No space left on device' in res['msg'], res
        names = os.listdir(mnt)
        assert not [n for n in names if '.tmp-' in n]
        assert not [n for n in names if n.endswith('.sql') and n != 'earlier.sql']
        with open(os.path.join(mnt, 'earlier.sql')) as f:
            assert f.read() == '-- an earlier backup\n'
        # the preflight refuses before writing when the estimate does not fit
        res = run_module('pg_backup', dict(postgres.conn(), databases=['fill_db'], globals=False, dest=mnt, free_space_ratio=5))
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
        assert 2 <= time.time() - t0 < 10      # the failure's record tries the lock once more, never waits twice
        # the lock is still held: no id can be taken safely, so the failure is not recorded, and says so
        assert 'the failed backup of pim_dev is not recorded in %s: another run still holds the lock' % dest \
            in json.dumps(res['warnings']), res
        assert records(dest, pim) == []
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
    # each run took its own globals dump too, under the globals' lock: distinct ids as well
    assert len([n for n in metas if n.startswith('_globals_')]) == len([n for n in metas if n.startswith(pim)]) == 3
    for r in results:
        assert sha256(r['backup_path']) == r['sha256']


# -- failures are recorded, under the database's lock ----------------------------------------------------------

def records(dest, database):
    """The metadata records of ``database`` in dest, oldest id first."""
    out = []
    for name in visible(dest):
        if name.endswith('.meta.json'):
            with open(os.path.join(dest, name)) as f:
                meta = json.load(f)
            if meta['database'] == database:
                out.append(meta)
    return sorted(out, key=lambda m: m['id'])


def test_a_failed_run_racing_a_successful_one_keeps_both_records(postgres, dest, run_module):
    postgres.create_db('race_db', seed=False)
    postgres.psql('race_db', "CREATE TABLE t AS SELECT g AS id, md5(g::text) || repeat('y', 100) AS payload "
                             "FROM generate_series(1, 300000) g")
    conn = dict(postgres.conn(), databases=['race_db'], dest=dest)
    os.makedirs(dest)
    lock = os.path.join(dest, '.race_db.lock')
    time.sleep(1.0 - time.time() % 1)   # start at the beginning of a second
    ok = run_module.popen('pg_backup', dict(conn, compression='gzip', compression_level=9))

    def ok_holds_the_lock():
        try:
            with open(lock) as f:
                return f.read().strip() == str(ok.pid)
        except IOError:
            return False

    wait_for(ok_holds_the_lock, timeout=10, interval=0.01)
    # the same second as the id ok took: refused by the free-space preflight, before any lock of its own
    bad = run_module.popen('pg_backup', dict(conn, free_space_ratio=1e9))
    bad_res, ok_res = run_module.result(bad), run_module.result(ok)
    assert not ok_res.get('failed'), ok_res
    assert bad_res['failed'] and 'not enough free space' in bad_res['msg'], bad_res
    warned = json.dumps(bad_res.get('warnings', []))
    assert 'not recorded' not in warned and 'could not record' not in warned, bad_res
    found = records(dest, 'race_db')
    assert sorted(m['status'] for m in found) == ['failed', 'success'], found
    assert len(set(m['id'] for m in found)) == 2
    [failed] = [m for m in found if m['status'] == 'failed']
    assert failed['failed_step'] == 'preflight' and failed['file'] is None
    assert bad_res['backups'][0]['id'] == failed['id'] != ok_res['id']
    info = run_module('backup_info', dict(path=dest, database='race_db'))
    assert info['stats']['success_rate'] == 50.0 and info['stats']['failed'] == 1


def test_unreachable_server_records_a_failed_run_per_database(postgres, pim, dest, run_module):
    from conftest import free_port
    res = run_module('pg_backup', dict(postgres.conn(), port=free_port(), databases=[pim, 'other db'], globals=False, dest=dest))
    assert res['failed'] and res['changed'] is True, res
    assert [b['status'] for b in res['backups']] == ['failed', 'failed']
    for database in (pim, 'other db'):
        [meta] = records(dest, database)
        assert meta['status'] == 'failed' and meta['failed_step'] == 'connect' and meta['file'] is None
        assert 'cannot connect to database %s' % database in meta['error']
    assert visible(dest) == sorted(n for n in visible(dest) if n.endswith('.meta.json'))


def test_free_space_preflight_failure_is_recorded(postgres, pim, dest, run_module):
    res = run_module('pg_backup', dict(postgres.conn(), databases=[pim], globals=False, dest=dest, free_space_ratio=1e9))
    assert res['failed'] and 'not enough free space' in res['msg'] and 'free_space_ratio' in res['msg'], res
    [meta] = records(dest, pim)
    assert meta['status'] == 'failed' and meta['failed_step'] == 'preflight' and meta['id'] == res['id']
    assert visible(dest) == [os.path.basename(n) for n in glob.glob(os.path.join(dest, '*.meta.json'))]


@pytest.mark.skipif(not shutil.which('docker'), reason='the container check needs the docker command line')
def test_backup_role_records_the_failure_when_the_container_is_missing(dest, collection_root):
    name = 'pgops-no-such-container-%d' % os.getpid()
    rc, out = run_playbook(collection_root, 'backup.yml', dict(
        backup_dest=dest, backup_databases=['pim_dev', 'pim_prod'], pgops_container=name, backup_log_file='',
        backup_summary=False, metrics_enabled=False), os.path.dirname(dest))
    assert rc != 0, out
    assert 'container %s not found' % name in out, out
    for database in ('pim_dev', 'pim_prod'):
        [meta] = records(dest, database)
        assert meta['status'] == 'failed' and meta['failed_step'] == 'preflight' and meta['container'] == name


# -- dest ------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize('shape', ['file', 'under_a_file'])
@pytest.mark.parametrize('check_mode', [False, True])
def test_dest_that_is_no_directory_fails_naming_dest(postgres, pim, tmp_path, run_module, shape, check_mode):
    blocker = tmp_path / 'a-file'
    blocker.write_bytes(b'not a directory\n')
    target = str(blocker) if shape == 'file' else str(blocker / 'backups')
    res = run_module('pg_backup', dict(postgres.conn(), databases=[pim], dest=target), check_mode=check_mode)
    assert res['failed'] and res['msg'].startswith('dest: '), res
    assert str(blocker) in res['msg'] and 'not a directory' in res['msg']
    assert 'exception' not in res and 'Traceback' not in res['msg']
    assert blocker.read_bytes() == b'not a directory\n' and sorted(os.listdir(str(tmp_path))) == ['a-file']


@pytest.mark.skipif(os.geteuid() != 0, reason='mounting a tmpfs needs root')
def test_read_only_dest_fails_naming_dest(postgres, pim, tmp_path, run_module):
    mnt = str(tmp_path / 'ro')
    os.makedirs(mnt)
    subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=1m,mode=0750', 'tmpfs', mnt], check=True)
    try:
        subprocess.run(['mount', '-o', 'remount,ro', mnt], check=True)
        for target in (mnt, os.path.join(mnt, 'backups')):
            res = run_module('pg_backup', dict(postgres.conn(), databases=[pim], dest=target))
            assert res['failed'] and res['msg'].startswith('dest: '), res
            assert 'read-only file system' in res['msg'] and 'exception' not in res, res
        assert os.listdir(mnt) == []
    finally:
        subprocess.run(['umount', mnt], check=True)


def test_empty_dest_is_refused(postgres, pim, tmp_path, run_module, monkeypatch):
    monkeypatch.chdir(str(tmp_path))     # the module runs here: an empty dest must not mean this directory
    os.chmod(str(tmp_path), 0o755)
    res = run_module('pg_backup', dict(postgres.conn(), databases=[pim], dest=''))
    assert res['failed'] and res['msg'].startswith('dest must not be empty'), res
    assert os.listdir(str(tmp_path)) == [] and stat.S_IMODE(os.stat(str(tmp_path)).st_mode) == 0o755


# -- what pg_backup returns ------------------------------------------------------------------------------------

def test_directory_format_returns_the_size_of_the_dump(postgres, pim, dest, run_module):
    res = run_module('pg_backup', dict(postgres.conn(), databases=[pim], dest=dest, format='directory', jobs=2))
    assert not res.get('failed'), res
    [meta] = records(dest, pim)
    on_disk = sum(os.path.getsize(os.path.join(root, n)) for root, dummy, names in os.walk(res['backup_path'])
                  for n in names)
    assert res['size'] == meta['size'] == res['backups'][0]['size'] == on_disk > 4096
    assert os.path.isdir(res['backup_path']) and res['backup_path'] == os.path.join(dest, meta['file'])
    assert res['backup_dir'] == dest and res['id'] == meta['id'] and res['sha256'] == meta['sha256']
    # Ansible's stat of a top-level path or dest would add these (and overwrite size)
    assert not set(res) & set(['path', 'dest', 'mode', 'owner', 'state', 'uid'])


def test_two_databases_return_no_stat_of_the_backup_directory(postgres, pim, dest, run_module):
    postgres.create_db('second_db', seed=False)
    res = run_module('pg_backup', dict(postgres.conn(), databases=[pim, 'second_db'], globals=False, dest=dest))
    assert not res.get('failed'), res
    assert not set(res) & set(['path', 'dest', 'size', 'mode', 'owner', 'state', 'uid', 'backup_path'])
    assert res['backup_dir'] == dest and len(res['backups']) == 2


# -- connection options ----------------------------------------------------------------------------------------

@pytest.mark.parametrize('module', ['pg_backup', 'pg_maintenance_info', 'pg_maintenance'])
@pytest.mark.parametrize('option, value, expected', [
    ('port', 0, 'login_port (port) must be between 1 and 65535 (got 0)'),
    ('port', 65536, 'login_port (port) must be between 1 and 65535 (got 65536)'),
    ('port', -5432, 'login_port (port) must be between 1 and 65535'),
    ('connect_timeout', -1, 'connect_timeout must be 1 second or more (got -1)'),
    ('connect_timeout', 0, 'connect_timeout must be 1 second or more (got 0)'),
    ('databases', ['pim_dev', 'x', 'pim_dev'], "databases names 'pim_dev' more than once"),
])
def test_connection_options_out_of_range_are_refused(postgres, pim, dest, run_module, module, option, value, expected):
    args = dict(postgres.conn(), databases=[pim])
    args[option] = value
    if module == 'pg_backup':
        args['dest'] = dest
    else:
        args['history_dir'] = dest
    res = run_module(module, args)
    assert res.get('failed') and expected in res['msg'], res
    assert not os.path.exists(dest)


@pytest.mark.parametrize('option, value, expected', [
    ('lock_timeout', -1, 'lock_timeout must be 0 or more (got -1)'),
    ('free_space_ratio', -0.5, 'free_space_ratio must be 0 or more (got -0.5)'),
    ('jobs', 0, 'jobs must be 1 or more (got 0)'),
])
def test_negative_timeouts_and_ratios_are_refused(postgres, pim, dest, run_module, option, value, expected):
    args = dict(postgres.conn(), databases=[pim], dest=dest)
    args[option] = value
    res = run_module('pg_backup', args)
    assert res.get('failed') and expected in res['msg'], res
    assert not os.path.exists(dest)


# -- a killed module -------------------------------------------------------------------------------------------

def dead_pid():
    proc = subprocess.Popen(['true'])
    proc.wait()
    return proc.pid


def test_killed_module_leaves_a_temp_file_that_the_next_run_of_the_database_removes(postgres, dest, run_module):
    postgres.create_db('killed_db', seed=False)
    postgres.psql('killed_db', "CREATE TABLE big AS SELECT g AS id, md5(g::text) || repeat('x', 200) AS payload "
                               "FROM generate_series(1, 400000) g")
    args = dict(postgres.conn(), databases=['killed_db'], globals=False, dest=dest)
    proc = run_module.popen('pg_backup', dict(args, compression='gzip', compression_level=9))

    def temp_file_growing():
        return [n for n in os.listdir(dest) if n.startswith('.killed_db_full_') and '.tmp-' in n and
                os.path.getsize(os.path.join(dest, n)) > 0] if os.path.isdir(dest) else []

    [left] = wait_for(temp_file_growing)
    assert left.endswith('.sql.gz.tmp-%d' % proc.pid)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate()
    os.unlink(proc.args_path)
    assert os.path.exists(os.path.join(dest, left))      # nothing else removes it
    assert records(dest, 'killed_db') == []             # a killed run records nothing

    dead = dead_pid()
    old_dir = '.killed_db_snapshot_20200101_000000.dir.tmp-%d' % dead     # a killed format=directory run
    os.makedirs(os.path.join(dest, old_dir, 'sub'))
    with open(os.path.join(dest, old_dir, 'sub', '3001.dat.gz'), 'wb') as f:
        f.write(b'partial')
    keep = [
        '.killed_db_full_20200101_000000.sql.zst.tmp-%d' % os.getpid(),   # its writer still runs
        '.other_db_full_20200101_000000.sql.zst.tmp-%d' % dead,           # another database's
        '.killed_db2_full_20200101_000000.sql.zst.tmp-%d' % dead,         # another database's, same prefix
        '.killed_db.lock',
    ]
    for name in keep[:-1]:
        with open(os.path.join(dest, name), 'wb') as f:
            f.write(b'x')

    res = run_module('pg_backup', dict(args, compression='none'))
    assert not res.get('failed'), res
    assert sorted(res['removed_temp_files']) == sorted(os.path.join(dest, n) for n in (left, old_dir))
    hidden = sorted(n for n in os.listdir(dest) if n.startswith('.'))
    assert hidden == sorted(keep)
    assert [m['status'] for m in records(dest, 'killed_db')] == ['success']
