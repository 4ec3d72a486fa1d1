# -*- coding: utf-8 -*-
"""backup_info's integrity check against real backups made by pg_backup, damaged the ways disks and people do:
deleted, truncated, a flipped byte, a file gone from a directory dump; and a backup damaged after a verified
restore proved it. backup_info stays read-only throughout."""
from __future__ import absolute_import, division, print_function

import json
import os

import pytest


def snapshot(dest):
    """Every file in dest with its bytes and mtime: backup_info must change none of them."""
    out = {}
    for root, dummy, names in os.walk(dest):
        for name in names:
            path = os.path.join(root, name)
            with open(path, 'rb') as f:
                out[path] = (f.read(), os.stat(path).st_mtime_ns)
    return out


def flip_byte(path, offset=None):
    size = os.path.getsize(path)
    with open(path, 'r+b') as f:
        f.seek(size // 2 if offset is None else offset)
        byte = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([byte[0] ^ 0xff]))
    assert os.path.getsize(path) == size


def by_id(info):
    return dict((b['id'], b) for b in info['backups'])


@pytest.fixture
def catalog(postgres, dest, run_module):
    """Five successful backups of info_db (plain, plain, custom, directory, directory) and one failed run."""
    postgres.create_db('info_db')
    made = {}
    for key, fmt in (('deleted', 'plain'), ('truncated', 'plain'), ('flipped', 'custom'), ('dir_gone', 'directory'),
                     ('dir_flipped', 'directory')):
        res = run_module('pg_backup', dict(postgres.conn(), databases=['info_db'], globals=False, dest=dest,
                                           format=fmt))
        assert not res.get('failed'), res
        made[key] = res
    failed = run_module('pg_backup', dict(postgres.conn(), databases=['info_db'], globals=False, dest=dest,
                                          free_space_ratio=1e9))
    assert failed['failed'], failed
    made['failed'] = failed
    return made


def test_intact_backups_are_ok_and_checksums_pass(dest, run_module, catalog):
    before = snapshot(dest)
    info = run_module('backup_info', dict(path=dest))
    assert not info.get('failed'), info
    states = dict((b['id'], b['integrity']) for b in info['backups'])
    assert states[catalog['failed']['id']] == 'unchecked'
    assert [s for i, s in states.items() if i != catalog['failed']['id']] == ['ok'] * 5
    assert all(b['checksum'] is None and b['damaged_after_verification'] is False for b in info['backups'])
    assert info['stats']['integrity'] == dict(ok=5, missing=0, size_mismatch=0, checksum_mismatch=0, unreadable=0,
                                              unchecked=1, damaged_after_verification=0, checksums_verified=0)
    assert not [a for a in info['stats']['alerts'] if 'damaged' in a]

    full = run_module('backup_info', dict(path=dest, verify_checksums=True))
    assert [b['checksum'] for b in full['backups'] if b['status'] == 'success'] == ['passed'] * 5
    assert full['stats']['integrity']['checksums_verified'] == 5 and full['stats']['integrity']['ok'] == 5
    assert snapshot(dest) == before


def test_damaged_backups_are_reported_and_alerted(dest, run_module, catalog):
    os.unlink(catalog['deleted']['backup_path'])
    truncated = catalog['truncated']['backup_path']
    with open(truncated, 'r+b') as f:
        f.truncate(catalog['truncated']['size'] // 2)
    flip_byte(catalog['flipped']['backup_path'])
    with open(os.path.join(dest, [n for n in os.listdir(dest) if n.endswith(catalog['dir_gone']['id'] + '.meta.json')][0])) as f:
        dir_meta = json.load(f)
    gone = sorted(n for n in dir_meta['files'] if n != 'toc.dat')[0]
    os.unlink(os.path.join(catalog['dir_gone']['backup_path'], gone))
    flip_byte(os.path.join(catalog['dir_flipped']['backup_path'], 'toc.dat'), offset=0)
    before = snapshot(dest)

    cheap = by_id(run_module('backup_info', dict(path=dest)))
    assert cheap[catalog['deleted']['id']]['integrity'] == 'missing'
    assert catalog['deleted']['backup_path'] + ' is missing' in cheap[catalog['deleted']['id']]['integrity_detail']
    t = cheap[catalog['truncated']['id']]
    assert t['integrity'] == 'size_mismatch'
    assert '%d bytes, the metadata says %d' % (catalog['truncated']['size'] // 2, catalog['truncated']['size']) \
        in t['integrity_detail']
    assert cheap[catalog['dir_gone']['id']]['integrity'] == 'missing'
    assert gone in cheap[catalog['dir_gone']['id']]['integrity_detail']
    # same size: only a checksum finds these
    assert cheap[catalog['flipped']['id']]['integrity'] == 'ok'
    assert cheap[catalog['dir_flipped']['id']]['integrity'] == 'ok'

    info = run_module('backup_info', dict(path=dest, verify_checksums=True))
    full = by_id(info)
    assert full[catalog['flipped']['id']]['integrity'] == 'checksum_mismatch'
    assert full[catalog['flipped']['id']]['checksum'] == 'failed'
    d = full[catalog['dir_flipped']['id']]
    assert d['integrity'] == 'checksum_mismatch' and '1 file(s) differ: toc.dat' in d['integrity_detail']
    counts = info['stats']['integrity']
    assert counts['missing'] == 2 and counts['size_mismatch'] == 1 and counts['checksum_mismatch'] == 2
    assert counts['ok'] == 0 and counts['unchecked'] == 1 and counts['damaged_after_verification'] == 0
    damaged = [a for a in info['stats']['alerts'] if 'is damaged' in a]
    assert len(damaged) == 5
    assert any(a.startswith('info_db: backup %s is damaged (missing)' % catalog['deleted']['id']) for a in damaged)
    assert snapshot(dest) == before        # read-only: no metadata written, nothing removed


def test_limit_checksums_only_the_listed_backups(dest, run_module, catalog):
    flip_byte(catalog['flipped']['backup_path'])
    info = run_module('backup_info', dict(path=dest, status='success', limit=1, verify_checksums=True))
    [newest] = info['backups']
    assert newest['id'] == catalog['dir_flipped']['id'] and newest['checksum'] == 'passed'
    # the stats still count every matching backup (checked by size), and name none as damaged
    assert info['stats']['integrity']['ok'] == 5 and info['stats']['integrity']['checksums_verified'] == 1


def test_a_backup_damaged_after_its_verified_restore_is_flagged(postgres, dest, run_module, catalog):
    drill = run_module('pg_restore_verified', dict(postgres.conn(), path=dest, database='info_db',
                                                   backup_id=catalog['flipped']['id'], mode='test'))
    assert not drill.get('failed') and drill['result'] == 'passed', drill
    drill = run_module('pg_restore_verified', dict(postgres.conn(), path=dest, database='info_db',
                                                   backup_id=catalog['truncated']['id'], mode='test'))
    assert not drill.get('failed') and drill['result'] == 'passed', drill
    flip_byte(catalog['flipped']['backup_path'])
    with open(catalog['truncated']['backup_path'], 'r+b') as f:
        f.truncate(10)

    cheap = run_module('backup_info', dict(path=dest, status='success'))
    b = by_id(cheap)
    assert b[catalog['truncated']['id']]['verified'] is True
    assert b[catalog['truncated']['id']]['damaged_after_verification'] is True
    assert b[catalog['flipped']['id']]['damaged_after_verification'] is False     # same size: not seen yet
    assert cheap['stats']['integrity']['damaged_after_verification'] == 1

    info = run_module('backup_info', dict(path=dest, status='success', verify_checksums=True))
    b = by_id(info)
    assert b[catalog['flipped']['id']]['damaged_after_verification'] is True
    assert b[catalog['flipped']['id']]['integrity'] == 'checksum_mismatch'
    assert info['stats']['integrity']['damaged_after_verification'] == 2
    alerts = [a for a in info['stats']['alerts'] if 'passed a verified restore' in a]
    assert len(alerts) == 2
    assert any(('backup %s passed a verified restore on' % catalog['flipped']['id']) in a and
               'now damaged (checksum_mismatch)' in a for a in alerts)
    # an intact verified backup is not flagged
    other = [x for x in info['backups'] if x['id'] not in (catalog['flipped']['id'], catalog['truncated']['id'])]
    assert all(x['damaged_after_verification'] is False and x['integrity'] == 'ok' for x in other)


def test_empty_path_is_refused(run_module, tmp_path, monkeypatch):
    monkeypatch.chdir(str(tmp_path))
    res = run_module('backup_info', dict(path=''))
    assert res['failed'] and res['msg'].startswith('path must not be empty'), res


@pytest.mark.parametrize('option, value, expected', [
    ('limit', -1, 'limit must be 0 or more (got -1)'),
    ('max_age_days', -0.5, 'max_age_days must be 0 or more (got -0.5)'),
    ('window_days', 0, 'window_days must be 1 or more (got 0)'),
    ('growth_days', -7, 'growth_days must be 1 or more (got -7)'),
    ('size_change_threshold', -50, 'size_change_threshold must be 0 or more (got -50'),
    ('growth_threshold', -1, 'growth_threshold must be 0 or more (got -1'),
])
def test_negative_windows_and_thresholds_are_refused(run_module, tmp_path, option, value, expected):
    res = run_module('backup_info', {'path': str(tmp_path), option: value})
    assert res['failed'] and res['msg'].startswith(expected), res


def test_backups_that_silently_stopped_are_alerted(postgres, dest, run_module):
    """The plan's daily backup, seen from outside: a database whose newest successful backup is older than
    no_success_hours, or that the caller names and the catalog has never seen, raises an alert."""
    postgres.create_db('quiet_db')
    made = run_module('pg_backup', dict(postgres.conn(), databases=['quiet_db'], globals=False, dest=dest))
    assert not made.get('failed'), made
    fresh = run_module('backup_info', dict(path=dest, databases=['quiet_db', 'never_backed_up']))
    assert [a for a in fresh['stats']['alerts'] if 'no successful backup' in a] == [
        'never_backed_up: no successful backup in the catalog']
    # expected without filtering the list
    listed = run_module('backup_info', dict(path=dest, expected_databases=['quiet_db', 'never_backed_up']))
    assert [b['database'] for b in listed['backups']] == ['quiet_db']
    assert 'never_backed_up: no successful backup in the catalog' in listed['stats']['alerts']
    # the same backup, as if it were made two days ago (its start is the recovery point)
    meta_path = os.path.join(dest, [n for n in os.listdir(dest) if n.endswith('.meta.json')][0])
    with open(meta_path) as f:
        meta = json.load(f)
    meta['started_at'] = '2020-01-01T02:00:00+00:00'
    with open(meta_path, 'w') as f:
        json.dump(meta, f)
    stale = run_module('backup_info', dict(path=dest))
    [alert] = [a for a in stale['stats']['alerts'] if 'no successful backup' in a]
    assert alert.startswith('quiet_db: no successful backup for ') and alert.endswith('h (threshold 26.0 h)'), alert
    assert not [a for a in run_module('backup_info', dict(path=dest, no_success_hours=0))['stats']['alerts']
                if 'no successful backup' in a]
    # backup_metrics says it in the same words
    metrics = run_module('backup_metrics', dict(path=dest, dest=os.path.join(os.path.dirname(dest), 'x.prom'),
                                                databases=['quiet_db']))
    assert alert in json.dumps(metrics), metrics


def test_limit_per_database_lists_the_newest_of_each(postgres, dest, run_module):
    for db in ('many_a', 'many_b'):
        postgres.create_db(db)
    for db in ('many_a', 'many_a', 'many_a', 'many_b'):
        assert not run_module('pg_backup', dict(postgres.conn(), databases=[db], globals=False, dest=dest)).get('failed')
    across = run_module('backup_info', dict(path=dest, limit=1, stats=False))
    assert len(across['backups']) == 1                    # the newest of all (one database only)
    each = run_module('backup_info', dict(path=dest, limit=1, limit_per_database=True, stats=False))
    assert sorted(b['database'] for b in each['backups']) == ['many_a', 'many_b']
    newest_a = run_module('backup_info', dict(path=dest, database='many_a', stats=False))['backups'][0]['id']
    assert [b['id'] for b in each['backups'] if b['database'] == 'many_a'] == [newest_a]
