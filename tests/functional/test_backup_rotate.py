# -*- coding: utf-8 -*-
"""backup_rotate as Ansible runs it, on real backups made by pg_backup and realistic metadata files: check mode
deletes nothing and lists exactly what the real run then deletes; locks are respected; rollback databases are
dropped from a real PostgreSQL."""
from __future__ import absolute_import, division, print_function

import datetime
import fcntl
import json
import os
import subprocess
import sys
import time

from conftest import pg_bin

DAY = datetime.timedelta(days=1)


def now():
    return datetime.datetime.now().astimezone().replace(microsecond=0)


def snapshot(directory):
    """Every name under the directory with its size and mtime: proves that nothing was touched."""
    out = {}
    for root, dirs, files in os.walk(directory):
        for n in dirs + files:
            p = os.path.join(root, n)
            st = os.lstat(p)
            out[os.path.relpath(p, directory)] = (st.st_size, st.st_mtime_ns)
    return out


def age_backup(meta_path, started):
    """Move a real backup back in time: its started_at/finished_at, as if it had been made then."""
    with open(meta_path) as f:
        meta = json.load(f)
    meta['started_at'] = started.isoformat()
    meta['finished_at'] = (started + datetime.timedelta(seconds=4)).isoformat()
    with open(meta_path, 'w') as f:
        json.dump(meta, f, indent=2, sort_keys=True)
    return meta


def fake_backup(directory, database, started, kind='full', status='success', verified=False, offset=None):
    """A metadata record as pg_backup writes it (abridged) and a dummy dump, started at ``started``."""
    if offset is not None:
        started = started.astimezone(datetime.timezone(datetime.timedelta(hours=offset)))
    backup_id = started.astimezone().strftime('%Y%m%d_%H%M%S')
    entry_stem = '%s_%s_%s' % (database, kind, backup_id)
    name = entry_stem + '.sql.zst' if status == 'success' else None
    meta = {'format_version': 1, 'id': backup_id, 'scope': 'database', 'database': database, 'kind': kind,
            'label': None, 'status': status, 'file': name, 'format': 'plain', 'compression': 'zstd',
            'compression_level': 3, 'compressed_by': 'external', 'size': 2048 if name else None,
            'started_at': started.isoformat(), 'finished_at': (started + datetime.timedelta(seconds=2)).isoformat(),
            'host': 'test', 'container': None, 'collection_version': '0.1.0', 'tables': [], 'rows_total': 0,
            'verifications': [{'result': 'passed', 'mode': 'test'}] if verified else []}
    if status == 'failed':
        meta.update(error='pg_dump exited with 1: connection refused', failed_step='connect')
    if name:
        with open(os.path.join(directory, name), 'wb') as f:
            f.write(os.urandom(2048))
    with open(os.path.join(directory, entry_stem + '.meta.json'), 'w') as f:
        json.dump(meta, f, indent=2, sort_keys=True)
    return backup_id


def dead_pid():
    proc = subprocess.Popen([sys.executable, '-c', 'pass'])
    proc.wait()
    return proc.pid


def ids(items):
    return sorted((d['database'], d['id']) for d in items)


def test_check_mode_lists_exactly_what_the_real_run_deletes(postgres, dest, run_module):
    postgres.create_db('rot')
    made = []
    for dummy in range(3):
        res = run_module('pg_backup', dict(postgres.conn(), databases=['rot'], globals=False, dest=dest))
        assert not res.get('failed'), res
        made.append(res)
        time.sleep(1.0)
    t = now()
    # real backups moved back: 45 and 40 days (older than full's 30), the newest stays fresh
    for res, days in zip(made, (45, 40)):
        age_backup(os.path.join(dest, os.path.basename(res['backup_path']).split('.sql')[0] + '.meta.json'), t - days * DAY)
    # realistic records of another database: old snapshots, a verified old full, failed runs, mixed offsets
    shop = {
        'fresh': fake_backup(dest, 'shop', t - datetime.timedelta(hours=2)),
        'snap_old': fake_backup(dest, 'shop', t - 4 * DAY, kind='snapshot', offset=-5),
        'snap_new': fake_backup(dest, 'shop', t - 1 * DAY, kind='snapshot', offset=9),
        'verified': fake_backup(dest, 'shop', t - 60 * DAY, verified=True),
        'full_old': fake_backup(dest, 'shop', t - 50 * DAY),
        'failed_old': fake_backup(dest, 'shop', t - 40 * DAY - datetime.timedelta(hours=3), status='failed'),
        'failed_new': fake_backup(dest, 'shop', t - 3 * DAY, status='failed'),
    }
    orphan = os.path.join(dest, '.shop_full_20200101_000000.sql.zst.tmp-%d' % dead_pid())
    with open(orphan, 'wb') as f:
        f.write(b'partial')
    old = time.time() - 30 * 3600
    os.utime(orphan, (old, old))
    args = dict(path=dest, min_keep=2, _ansible_diff=True)

    before = snapshot(dest)
    plan = run_module('backup_rotate', args, check_mode=True)
    assert not plan.get('failed'), plan
    assert plan['changed'] is True
    assert snapshot(dest) == before                                  # check mode touched nothing
    deleted = dict(((d['database'], d['id']), d['reason']) for d in plan['deleted'])
    assert deleted == {
        ('rot', made[0]['id']): 'age 45.0d > full max 30d',
        ('shop', shop['snap_old']): 'age 4.0d > snapshot max 3d',
        ('shop', shop['full_old']): 'age 50.0d > full max 30d',
        ('shop', shop['failed_old']): 'failed run; age 40.1d > full max 30d',
    }
    kept = dict(((d['database'], d['id']), d['reason']) for d in plan['kept'])
    assert kept[('rot', made[1]['id'])] == 'min_keep 2 (over age: age 40.0d > full max 30d)'
    assert kept[('shop', shop['verified'])] == 'newest verified (over age: age 60.0d > full max 30d)'
    assert kept[('shop', shop['failed_new'])] == 'failed run; age 3.0d <= full max 30d'
    assert kept[('shop', shop['snap_new'])] == 'min_keep 2'
    assert plan['orphans_removed'] == [orphan]
    assert plan['bytes_freed'] == sum(d['bytes'] for d in plan['deleted']) > made[0]['size']
    assert plan['summary']['deleted'] == 4 and plan['summary']['failed_records_deleted'] == 1
    assert plan['summary']['databases']['rot'] == {'kept': 2, 'deleted': 1}
    assert os.path.basename(made[0]['backup_path']) + '\n' in plan['diff']['before']
    assert os.path.basename(made[0]['backup_path']) not in plan['diff']['after']
    assert plan['rollback_databases_dropped'] == []

    res = run_module('backup_rotate', args)
    assert not res.get('failed'), res
    assert res['changed'] is True
    assert res['deleted'] == plan['deleted'] and res['kept'] == plan['kept']
    assert res['bytes_freed'] == plan['bytes_freed'] and res['orphans_removed'] == plan['orphans_removed']
    gone = set(os.path.basename(p) for d in plan['deleted'] for p in (d['path'], d['meta_path']) if p)
    gone.add(os.path.basename(orphan))
    after = snapshot(dest)
    assert set(before) - set(after) == gone
    assert set(after) - set(before) <= {'.shop.lock', '.rot.lock'}   # locks taken while deleting
    for d in plan['kept']:
        assert os.path.exists(d['meta_path']) and (d['path'] is None or os.path.exists(d['path']))

    again = run_module('backup_rotate', args)
    assert not again.get('failed') and again['changed'] is False and again['deleted'] == []
    # what is left still restores: the catalog lists the kept backups and a drill of the newest passes
    info = run_module('backup_info', dict(path=dest, database='rot'))
    assert [b['id'] for b in info['backups']] == [made[2]['id'], made[1]['id']]
    drill = run_module('pg_restore_verified', dict(postgres.conn(), path=dest, database='rot', mode='test'))
    assert not drill.get('failed'), drill


def test_a_backup_in_progress_is_never_touched(dest, run_module):
    os.makedirs(dest)
    t = now()
    fake_backup(dest, 'busy', t)
    old = [fake_backup(dest, 'busy', t - (40 + i) * DAY) for i in range(2)]
    lock = os.path.join(dest, '.busy.lock')
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o640)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)      # as pg_backup holds it while dumping
    try:
        before = snapshot(dest)
        res = run_module('backup_rotate', dict(path=dest, min_keep=1))
        assert not res.get('failed'), res
        assert res['changed'] is False and res['deleted'] == []
        assert set(d['reason'] for d in res['kept']) == {'in progress (locked)'}
        assert snapshot(dest) == before
    finally:
        os.close(fd)
    res = run_module('backup_rotate', dict(path=dest, min_keep=1))
    assert sorted(d['id'] for d in res['deleted']) == sorted(old)


def test_options_are_validated_with_the_option_named(dest, run_module):
    res = run_module('backup_rotate', dict(path=dest, max_age_days={'weekly': 3}))
    assert res['failed'] and 'max_age_days.weekly' in res['msg'] and 'pre_deploy, pre_restore' in res['msg'], res
    res = run_module('backup_rotate', dict(path=dest, min_keep=0))
    assert res['failed'] and 'min_keep must be at least 1' in res['msg']
    # an empty path is not "the current directory"
    here = os.getcwd()
    os.makedirs(dest)
    open(os.path.join(dest, 'keep-me.meta.json'), 'w').close()
    try:
        os.chdir(dest)
        res = run_module('backup_rotate', dict(path='', older_than_days=0.0001))
    finally:
        os.chdir(here)
    assert res['failed'] and 'path must name the backup directory' in res['msg'], res
    assert os.listdir(dest) == ['keep-me.meta.json']


def test_old_rollback_databases_are_dropped(postgres, dest, run_module):
    t = datetime.datetime.now()          # rollback names carry the host's local time
    old_name = 'rot db__rollback_%s' % (t - 10 * DAY).strftime('%Y%m%d_%H%M%S')
    new_name = 'rot db__rollback_%s' % (t - 2 * DAY).strftime('%Y%m%d_%H%M%S')
    scratch = 'rot db__restore_%s' % (t - 30 * DAY).strftime('%Y%m%d_%H%M%S')
    for name in (old_name, new_name, scratch):
        postgres.create_db(name, seed=False)
    session = subprocess.Popen([pg_bin('psql'), '-X', '-h', '127.0.0.1', '-p', str(postgres.port), '-U', 'postgres',
                                '-d', old_name], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    session.stdin.write(b'SELECT 1;\n')
    session.stdin.flush()
    session.stdout.readline()
    args = dict(postgres.conn(), path=dest, drop_rollback_databases=True, rollback_retention_days=7)
    try:
        plan = run_module('backup_rotate', args, check_mode=True)
        assert not plan.get('failed'), plan
        assert plan['changed'] is True
        assert plan['rollback_databases_dropped'] == [{'name': old_name,
                                                       'reason': 'age 10.0d > rollback_retention_days 7d'}]
        dbs = postgres.psql('postgres', 'SELECT datname FROM pg_database').splitlines()
        assert old_name in dbs and not os.path.exists(dest)        # check mode dropped and created nothing
        res = run_module('backup_rotate', args)
        assert not res.get('failed'), res
        assert res['changed'] is True and res['rollback_databases_dropped'] == plan['rollback_databases_dropped']
        assert 'does not exist: nothing to rotate' in json.dumps(res.get('warnings'))
    finally:
        session.stdin.close()
        session.wait()
    dbs = postgres.psql('postgres', 'SELECT datname FROM pg_database').splitlines()
    assert old_name not in dbs and new_name in dbs and scratch in dbs
    again = run_module('backup_rotate', args)
    assert again['changed'] is False and again['rollback_databases_dropped'] == []
    for name in (new_name, scratch):
        postgres.psql('postgres', 'DROP DATABASE "%s"' % name)
