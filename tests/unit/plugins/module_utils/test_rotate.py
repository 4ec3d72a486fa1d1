# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgops.postgresql contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for backup_rotate's policy: ages per kind, min_keep, GFS buckets (time zones, DST, mixed offsets),
failed runs, the newest verified backup, locks, temporary files and orphans, and deletion on real files."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import datetime
import errno
import fcntl
import json
import os
import subprocess
import sys
import time
from contextlib import contextmanager

import pytest

from ansible_collections.pgops.postgresql.plugins.module_utils import _catalog as catalog
from ansible_collections.pgops.postgresql.plugins.module_utils import _rotate as retention
from ansible_collections.pgops.postgresql.plugins.module_utils._catalog import dump_suffix, lock_name, make_id, stem
from ansible_collections.pgops.postgresql.plugins.module_utils._fsutil import PgOpsError
from ansible_collections.pgops.postgresql.plugins.module_utils._rotate import (
    DEFAULT_MAX_AGE_DAYS, Rotation, local_buckets, lock_held, make_policy, plan_database, plan_rotation,
    rollback_plan,
)

UTC = datetime.timezone.utc
CET = datetime.timezone(datetime.timedelta(hours=1))
CEST = datetime.timezone(datetime.timedelta(hours=2))
NOW = datetime.datetime(2026, 11, 28, 12, 0, 0, tzinfo=CET)
DAY = datetime.timedelta(days=1)


@contextmanager
def local_tz(name):
    """Run with the process's local time zone set to ``name`` (TZ + tzset), restored afterwards."""
    old = os.environ.get('TZ')
    os.environ['TZ'] = name
    time.tzset()
    try:
        yield
    finally:
        if old is None:
            del os.environ['TZ']
        else:
            os.environ['TZ'] = old
        time.tzset()


@pytest.fixture(autouse=True)
def brussels():
    """Every test runs in Europe/Brussels unless it says otherwise (buckets are local-time)."""
    with local_tz('Europe/Brussels'):
        yield


def rec(started, database='pim', kind='full', status='success', verified=None, started_at=None, directory='/b'):
    """A metadata record as load_catalog returns it; ``started`` is an aware datetime."""
    backup_id = make_id(started.astimezone())
    entry_stem = stem(database, kind, None, backup_id)
    meta = {'id': backup_id, 'database': database, 'kind': kind, 'status': status, 'label': None,
            'file': entry_stem + dump_suffix('plain', 'zstd') if status == 'success' else None,
            'started_at': started_at or started.isoformat(), 'verifications': [],
            'meta_path': os.path.join(directory, entry_stem + '.meta.json')}
    for result in verified or []:
        meta['verifications'].append({'result': result, 'mode': 'test'})
    if meta['file']:
        meta['path'] = os.path.join(directory, meta['file'])
    return meta


def policy(**kw):
    kw.setdefault('min_keep', 1)
    return make_policy(**kw)


def decide(entries, pol, now=NOW, **kw):
    """{id: (action, reason)} for one database's records."""
    return dict((m['id'], (action, reason)) for m, action, reason in plan_database(entries, now, pol, **kw))


# -- options -------------------------------------------------------------------------------------------------
def test_defaults_are_the_plans():
    p = make_policy()
    assert p['max_age_days'] == {'full': 30, 'pre_deploy': 7, 'snapshot': 3, 'pre_restore': 7, 'manual': 7}
    assert DEFAULT_MAX_AGE_DAYS == p['max_age_days'] and p['min_keep'] == 3 and p['older_than_days'] is None
    assert make_policy(max_age_days={'full': '60', 'snapshot': 0.5})['max_age_days']['snapshot'] == 0.5


@pytest.mark.parametrize('kw, message', [
    (dict(max_age_days={'weekly': 3}), "max_age_days has an unknown kind 'weekly'"),
    (dict(max_age_days={'full': 'ten'}), 'max_age_days.full must be a number'),
    (dict(max_age_days={'full': -1}), 'max_age_days.full must be at least 0'),
    (dict(older_than_days=-2), 'older_than_days must be at least 0'),
    (dict(min_keep=0), 'min_keep must be at least 1'),
    (dict(keep_daily=-1), 'keep_daily must be at least 0'),
    (dict(keep_weekly=1.5), 'keep_weekly must be a whole number'),
    (dict(orphan_age_hours=0), 'orphan_age_hours must be above 0'),
    (dict(rollback_retention_days=-1), 'rollback_retention_days must be at least 0'),
])
def test_bad_options_name_the_option(kw, message):
    with pytest.raises(PgOpsError) as e:
        make_policy(**kw)
    assert message in e.value.msg and e.value.step == 'options'


# -- age per kind, older_than_days ------------------------------------------------------------------------------
@pytest.mark.parametrize('kind, age_days, action, reason', [
    ('full', 29.9, 'keep', 'age 29.9d <= full max 30d'),
    ('full', 30.0, 'keep', 'age 30.0d <= full max 30d'),        # equal to the limit is not older than it
    ('full', 31.2, 'delete', 'age 31.2d > full max 30d'),
    ('snapshot', 3.1, 'delete', 'age 3.1d > snapshot max 3d'),
    ('snapshot', 2.9, 'keep', 'age 2.9d <= snapshot max 3d'),
    ('pre_deploy', 7.5, 'delete', 'age 7.5d > pre_deploy max 7d'),
    ('pre_restore', 6.0, 'keep', 'age 6.0d <= pre_restore max 7d'),
    ('manual', 8.0, 'delete', 'age 8.0d > manual max 7d'),
])
def test_age_limit_per_kind(kind, age_days, action, reason):
    newest = rec(NOW - datetime.timedelta(hours=1))
    old = rec(NOW - datetime.timedelta(days=age_days), kind=kind)
    got = decide([old, newest], policy())
    assert got[old['id']] == (action, reason)
    assert got[newest['id']] == ('keep', 'min_keep 1')


@pytest.mark.parametrize('kw, kind, age_days, action, reason', [
    (dict(older_than_days=10), 'full', 12, 'delete', 'age 12.0d > older_than_days 10d'),
    (dict(older_than_days=10), 'snapshot', 5, 'keep', 'age 5.0d <= older_than_days 10d'),
    (dict(older_than_days=10, max_age_days={'full': 5}), 'full', 8, 'keep', 'age 8.0d <= older_than_days 10d'),
    (dict(max_age_days={'full': 60}), 'full', 45, 'keep', 'age 45.0d <= full max 60d'),
    (dict(max_age_days={'snapshot': 0.5}), 'snapshot', 0.6, 'delete', 'age 0.6d > snapshot max 0.5d'),
])
def test_older_than_days_overrides_and_max_age_days_merges(kw, kind, age_days, action, reason):
    newest = rec(NOW - datetime.timedelta(minutes=5))
    old = rec(NOW - datetime.timedelta(days=age_days), kind=kind)
    assert decide([newest, old], policy(**kw))[old['id']] == (action, reason)


# -- min_keep and failed runs ------------------------------------------------------------------------------------
@pytest.mark.parametrize('min_keep, kept', [(1, 1), (3, 3), (5, 5), (9, 6)])
def test_min_keep_keeps_the_newest_successful(min_keep, kept):
    entries = [rec(NOW - (40 + i) * DAY) for i in range(6)]      # all older than full's 30 days
    got = decide(entries, make_policy(min_keep=min_keep))
    actions = [got[m['id']][0] for m in entries]
    assert actions == ['keep'] * kept + ['delete'] * (6 - kept)
    assert got[entries[0]['id']][1] == 'min_keep %d (over age: age 40.0d > full max 30d)' % min_keep


@pytest.mark.parametrize('failures', [1, 5, 50])
def test_a_run_of_failures_never_rotates_the_good_backups_away(failures):
    """Only failures for weeks: the last min_keep good backups stay, failed records count for nothing."""
    fails = [rec(NOW - datetime.timedelta(hours=6 * i + 1), status='failed') for i in range(failures)]
    good = [rec(NOW - (40 + i) * DAY) for i in range(4)]
    got = decide(fails + good, make_policy(min_keep=2, keep_daily=2))
    assert [got[m['id']][0] for m in good] == ['keep', 'keep', 'delete', 'delete']
    assert got[good[0]['id']][1].startswith('min_keep 2; gfs daily ')
    for m in fails:
        action, reason = got[m['id']]
        assert reason.startswith('failed run; age ') and 'gfs' not in reason and 'min_keep' not in reason
        assert action == ('delete' if (NOW - catalog.backup_time(m)).total_seconds() > 30 * 86400 else 'keep')


@pytest.mark.parametrize('kind, age_days, action', [
    ('full', 31, 'delete'), ('full', 29, 'keep'), ('snapshot', 4, 'delete'), ('snapshot', 2, 'keep'),
])
def test_failed_records_are_removed_by_their_kinds_age(kind, age_days, action):
    good = rec(NOW - DAY)
    failed = rec(NOW - age_days * DAY, kind=kind, status='failed')
    action_got, reason = decide([good, failed], policy())[failed['id']]
    assert action_got == action and reason.startswith('failed run; age %d.0d' % age_days)


def test_successful_backups_whose_dump_is_gone_count_for_nothing():
    present_dump, missing_dump = rec(NOW - 40 * DAY), rec(NOW - 2 * DAY)
    present = {present_dump['file']}
    got = decide([missing_dump, present_dump], make_policy(min_keep=1), present=present)
    assert got[present_dump['id']] == ('keep', 'min_keep 1 (over age: age 40.0d > full max 30d)')
    assert got[missing_dump['id']] == ('keep', 'dump missing; age 2.0d <= full max 30d')
    old_missing = rec(NOW - 35 * DAY)
    assert decide([old_missing, present_dump], policy(), present=present)[old_missing['id']] == \
        ('delete', 'dump missing; age 35.0d > full max 30d')


# -- newest verified --------------------------------------------------------------------------------------------
@pytest.mark.parametrize('verifications, protected', [
    ([['passed'], [], ['passed']], 0),                 # the newer of two verified backups
    ([[], ['failed'], ['passed']], 2),                # a failed drill does not count
    ([[], ['passed', 'failed'], ['failed', 'passed']], 2),   # the LAST verification decides
    ([[], [], []], None),
])
def test_the_newest_verified_backup_is_never_deleted(verifications, protected):
    newest = rec(NOW - DAY)
    old = [rec(NOW - (50 + 10 * i) * DAY, verified=v) for i, v in enumerate(verifications)]
    got = decide([newest] + old, policy())
    for i, m in enumerate(old):
        action, reason = got[m['id']]
        if i == protected:
            assert (action, reason.split(' (')[0]) == ('keep', 'newest verified')
        else:
            assert action == 'delete'


def test_a_failed_record_is_never_the_newest_verified():
    failed = rec(NOW - 40 * DAY, status='failed', verified=['passed'])
    verified = rec(NOW - 45 * DAY, verified=['passed'])
    got = decide([rec(NOW), failed, verified], policy())
    assert got[failed['id']][0] == 'delete' and got[verified['id']][1].startswith('newest verified')


# -- grandfather-father-son, time zones, DST -------------------------------------------------------------------
@pytest.mark.parametrize('tz, value, day, week, month', [
    # the same instant is a different day in different zones
    ('UTC', '2026-11-27T23:30:00+00:00', '2026-11-27', '2026-W48', '2026-11'),
    ('Europe/Brussels', '2026-11-27T23:30:00+00:00', '2026-11-28', '2026-W48', '2026-11'),
    ('America/New_York', '2026-11-28T03:30:00+00:00', '2026-11-27', '2026-W48', '2026-11'),
    # DST ends in Brussels on 2026-10-25 (03:00 CEST -> 02:00 CET): both are the 25th locally, the 24th in UTC
    ('Europe/Brussels', '2026-10-24T22:30:00Z', '2026-10-25', '2026-W43', '2026-10'),
    ('Europe/Brussels', '2026-10-25T02:30:00+01:00', '2026-10-25', '2026-W43', '2026-10'),
    ('UTC', '2026-10-24T22:30:00Z', '2026-10-24', '2026-W43', '2026-10'),
    # DST starts on 2026-03-29 (02:00 CET -> 03:00 CEST)
    ('Europe/Brussels', '2026-03-28T23:30:00+00:00', '2026-03-29', '2026-W13', '2026-03'),
    # month and ISO week boundaries (2026 has 53 ISO weeks: 2027-01-01 is in 2026-W53)
    ('Europe/Brussels', '2026-10-31T22:59:59Z', '2026-10-31', '2026-W44', '2026-10'),
    ('Europe/Brussels', '2026-10-31T23:00:00Z', '2026-11-01', '2026-W44', '2026-11'),
    ('Europe/Brussels', '2026-11-29T22:59:59Z', '2026-11-29', '2026-W48', '2026-11'),
    ('Europe/Brussels', '2026-11-29T23:00:00Z', '2026-11-30', '2026-W49', '2026-11'),
    ('Europe/Brussels', '2027-01-03T12:00:00+01:00', '2027-01-03', '2026-W53', '2027-01'),
    ('Europe/Brussels', '2027-01-04T00:00:00+01:00', '2027-01-04', '2027-W01', '2027-01'),
])
def test_buckets_are_local_calendar(tz, value, day, week, month):
    with local_tz(tz):
        assert local_buckets(catalog.parse_time(value)) == {'daily': day, 'weekly': week, 'monthly': month}


@pytest.mark.parametrize('tz, kept_days', [
    ('Europe/Brussels', ['2026-10-26', '2026-10-25']),
    ('UTC', ['2026-10-25', '2026-10-24']),
])
def test_gfs_daily_across_the_dst_change_with_mixed_offsets(tz, kept_days):
    """Four backups around the night DST ended, written with different offsets; keep_daily=2 keeps the newest of
    each of the last two LOCAL days."""
    values = ['2026-10-25T23:30:00+00:00',      # Brussels: 26th 00:30 CET;  UTC: 25th
              '2026-10-25T12:00:00+01:00',      # 25th in both
              '2026-10-25T00:30:00+02:00',      # Brussels: 25th 00:30 CEST; UTC: 24th 22:30
              '2026-10-24T21:00:00Z']           # 24th 23:00 CEST / 24th UTC
    entries = [rec(catalog.parse_time(v), started_at=v) for v in values]
    now = datetime.datetime(2026, 11, 10, 12, tzinfo=UTC)
    with local_tz(tz):
        got = decide(entries, make_policy(min_keep=1, keep_daily=2, older_than_days=1), now=now)
        kept = [(m['started_at'], got[m['id']][1]) for m in entries if got[m['id']][0] == 'keep']
        assert [r.split(' (')[0].split('gfs daily ')[1] for dummy, r in kept] == kept_days
    if tz == 'UTC':
        assert [v for v, dummy in kept] == [values[0], values[2]]
    else:
        assert [v for v, dummy in kept] == [values[0], values[1]]


def test_age_is_measured_between_instants_across_dst():
    """2026-10-20 12:00 CEST to 2026-10-27 11:00 CET is exactly 7 days (wall clocks say 6d23h)."""
    now = datetime.datetime(2026, 10, 27, 11, 0, 0, tzinfo=CET)
    exact = rec(datetime.datetime(2026, 10, 20, 12, 0, 0, tzinfo=CEST), kind='pre_deploy')
    older = rec(datetime.datetime(2026, 10, 20, 11, 59, 0, tzinfo=CEST), kind='pre_deploy')
    newest = rec(now)
    got = decide([newest, exact, older], policy(), now=now)
    assert got[exact['id']] == ('keep', 'age 7.0d <= pre_deploy max 7d')
    assert got[older['id']] == ('delete', 'age 7.0d > pre_deploy max 7d')


def test_mixed_offsets_are_ordered_by_instant_not_by_text():
    a = rec(datetime.datetime(2026, 11, 28, 9, 0, tzinfo=datetime.timezone(datetime.timedelta(hours=9))))  # 00:00Z
    b = rec(datetime.datetime(2026, 11, 27, 20, 0, tzinfo=datetime.timezone(datetime.timedelta(hours=-5))))  # 01:00Z
    c = rec(datetime.datetime(2026, 11, 28, 0, 30, tzinfo=UTC), started_at='2026-11-28T00:30:00Z')
    got = decide([a, b, c], make_policy(min_keep=2, older_than_days=0))
    assert got[b['id']][0] == got[c['id']][0] == 'keep' and got[a['id']][0] == 'delete'


def test_gfs_daily_weekly_monthly_over_ninety_days():
    """Four backups a day for 90 days; full backups expire after 1 day; GFS 7/4/3 keeps exactly these."""
    entries = []
    for d in range(90):
        for h in (1, 7, 13, 19):
            when = datetime.datetime(2026, 11, 28, h, 0) - d * DAY     # local wall time, CEST before Oct 25
            entries.append(rec(when.astimezone()))
    now = datetime.datetime(2026, 11, 28, 20, 0, tzinfo=CET)
    got = decide(entries, make_policy(min_keep=1, keep_daily=7, keep_weekly=4, keep_monthly=3,
                                      max_age_days={'full': 1}), now=now)
    kept = dict((m['id'], got[m['id']][1]) for m in entries if got[m['id']][0] == 'keep')
    daily = ['202611%02d_190000' % d for d in range(22, 29)]
    weekly = ['20261128_190000', '20261122_190000', '20261115_190000', '20261108_190000']   # Sundays end weeks
    monthly = ['20261128_190000', '20261031_190000', '20260930_190000']
    # the other backups of the last day are younger than 1 day: kept by age; everything else by GFS only
    by_age = ['20261128_130000', '20261128_070000', '20261128_010000']
    assert sorted(kept) == sorted(set(daily + weekly + monthly + by_age))
    assert kept['20261031_190000'] == 'gfs monthly 2026-10 (over age: age 28.0d > full max 1d)'
    assert kept['20261108_190000'] == 'gfs weekly 2026-W45 (over age: age 20.0d > full max 1d)'
    assert kept['20261128_190000'] == 'min_keep 1; gfs daily 2026-11-28; gfs weekly 2026-W48; gfs monthly 2026-11'
    assert kept['20261128_130000'] == 'age 0.3d <= full max 1d'


def test_gfs_picks_the_newest_successful_of_a_day():
    day_failed = rec(datetime.datetime(2026, 11, 20, 23, 0, tzinfo=CET), status='failed')
    day_ok = rec(datetime.datetime(2026, 11, 20, 18, 0, tzinfo=CET))
    day_older = rec(datetime.datetime(2026, 11, 20, 2, 0, tzinfo=CET))
    got = decide([day_failed, day_ok, day_older], make_policy(min_keep=1, keep_daily=5, older_than_days=1))
    assert got[day_ok['id']][1].startswith('min_keep 1; gfs daily 2026-11-20')
    assert got[day_older['id']][0] == 'delete' and got[day_failed['id']][0] == 'delete'


def test_databases_are_planned_separately():
    entries = [rec(NOW - (40 + i) * DAY, database=db) for i in range(3) for db in ('a', 'b c', '@globals')]
    plan = plan_rotation(entries, NOW, make_policy(min_keep=2))
    assert [m for m, dummy, dummy2 in plan] == entries
    for db in ('a', 'b c', '@globals'):
        assert [a for m, a, dummy in plan if m['database'] == db] == ['keep', 'keep', 'delete']


@pytest.mark.parametrize('started_at', [None, '', 'yesterday'])
def test_records_without_a_valid_time_are_kept(started_at):
    odd = rec(NOW - 90 * DAY)
    odd['started_at'] = started_at
    assert decide([rec(NOW), odd], policy())[odd['id']] == ('keep', 'started_at missing or invalid: age unknown')


@pytest.mark.parametrize('name', ['../outside.sql.zst', '/etc/passwd', 'sub/dir.sql', '.hidden.sql'])
def test_dump_names_leaving_the_directory_are_never_touched(name):
    odd = rec(NOW - 90 * DAY)
    odd['file'] = name
    action, reason = decide([rec(NOW), odd], policy())[odd['id']]
    assert action == 'keep' and 'is not a plain name in the directory' in reason


# -- rollback databases ----------------------------------------------------------------------------------------
def test_rollback_databases_by_the_time_in_their_name():
    now = datetime.datetime(2026, 11, 28, 12, 0, tzinfo=CET)
    names = ['shop', 'shop__rollback_20261120_115900', 'shop__rollback_20261121_120100', 'shop__restore_20261101_000000',
             'x~1a2b3c__rollback_20261001_000000', 'shop__rollback_20261399_000000', 'shop__rollback_2026112_120000',
             'postgres']
    plan = rollback_plan(names, now, 7)
    assert plan == [
        ('shop__rollback_20261120_115900', 'drop', 'age 8.0d > rollback_retention_days 7d'),
        ('shop__rollback_20261121_120100', 'keep', 'age 7.0d <= rollback_retention_days 7d'),
        ('x~1a2b3c__rollback_20261001_000000', 'drop', 'age 58.5d > rollback_retention_days 7d'),
    ]


def test_rollback_names_are_local_time_across_dst():
    """Named 2026-10-20 12:00 local (CEST); a week later in CET the 7 days are over at 11:00, not 12:00."""
    plan = rollback_plan(['db__rollback_20261020_120000'], datetime.datetime(2026, 10, 27, 11, 0, 30, tzinfo=CET), 7)
    assert plan[0][1] == 'drop'


# -- real files: locks, temporary files, orphans, deletion -----------------------------------------------------
def write_backup(directory, started, database='pim', kind='full', status='success', verified=None, size=100,
                 fmt='plain'):
    backup_id = make_id(started.astimezone())
    entry_stem = stem(database, kind, None, backup_id)
    name = entry_stem + dump_suffix(fmt, 'zstd') if status == 'success' else None
    meta = {'format_version': 1, 'id': backup_id, 'database': database, 'kind': kind, 'label': None,
            'status': status, 'file': name, 'format': fmt, 'compression': 'zstd', 'size': size,
            'started_at': started.isoformat(), 'finished_at': started.isoformat(),
            'verifications': [{'result': r} for r in verified or []]}
    if name and fmt == 'directory':
        os.makedirs(os.path.join(directory, name))
        with open(os.path.join(directory, name, 'toc.dat'), 'wb') as f:
            f.write(b'x' * size)
    elif name:
        with open(os.path.join(directory, name), 'wb') as f:
            f.write(b'x' * size)
    with open(os.path.join(directory, entry_stem + '.meta.json'), 'w') as f:
        json.dump(meta, f)
    return dict(meta, path=os.path.join(directory, name) if name else None,
                meta_path=os.path.join(directory, entry_stem + '.meta.json'))


def hold(path):
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o640)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return fd


def dead_pid():
    proc = subprocess.Popen([sys.executable, '-c', 'pass'])
    proc.wait()
    return proc.pid


def age_file(path, hours):
    t = time.time() - hours * 3600
    for root, dirs, files in os.walk(path):
        for n in dirs + files:
            os.utime(os.path.join(root, n), (t, t), follow_symlinks=False)
    os.utime(path, (t, t), follow_symlinks=False)


@pytest.fixture
def bdir(tmp_path):
    d = tmp_path / 'backups'
    d.mkdir()
    return str(d)


def test_lock_held_tests_without_waiting(bdir):
    path = os.path.join(bdir, '.pim.lock')
    assert lock_held(path) is False and not os.path.exists(path)    # a missing lock file is free, not created
    fd = hold(path)
    try:
        assert lock_held(path) is True
    finally:
        os.close(fd)
    assert lock_held(path) is False


def test_a_locked_database_is_left_alone(bdir):
    now = datetime.datetime.now().astimezone()
    old_pim = [write_backup(bdir, now - (40 + i) * DAY) for i in range(3)]
    old_crm = [write_backup(bdir, now - (40 + i) * DAY, database='crm') for i in range(3)]
    fd = hold(os.path.join(bdir, lock_name('pim')))
    try:
        rot = Rotation(bdir, make_policy(min_keep=1)).plan()
        assert all(d['reason'] == 'in progress (locked)' for d in rot.kept if d['database'] == 'pim')
        assert sorted(d['id'] for d in rot.deleted) == sorted(m['id'] for m in old_crm[1:])
        rot.act()
    finally:
        os.close(fd)
    assert all(os.path.exists(m['path']) for m in old_pim)
    assert os.path.exists(old_crm[0]['path']) and not any(os.path.exists(m['meta_path']) for m in old_crm[1:])


def test_a_lock_taken_after_the_plan_keeps_that_database(bdir):
    now = datetime.datetime.now().astimezone()
    old = [write_backup(bdir, now - (40 + i) * DAY) for i in range(3)]
    rot = Rotation(bdir, make_policy(min_keep=1)).plan()
    assert len(rot.deleted) == 2
    fd = hold(os.path.join(bdir, lock_name('pim')))     # a backup starts between plan and act
    try:
        rot.act()
    finally:
        os.close(fd)
    assert rot.deleted == [] and rot.bytes_freed == 0 and all(os.path.exists(m['path']) for m in old)
    assert 'another run holds the lock' in rot.warnings[0] and 'kept this time' in rot.warnings[0]


def test_a_temporary_sibling_marks_a_backup_in_progress(bdir):
    now = datetime.datetime.now().astimezone()
    newest = write_backup(bdir, now)
    old = write_backup(bdir, now - 40 * DAY)
    tmp = os.path.join(bdir, '.%s.tmp-%d' % (os.path.basename(old['meta_path']), os.getpid()))
    with open(tmp, 'w') as f:
        f.write('{}')
    rot = Rotation(bdir, make_policy(min_keep=1)).plan()
    assert [(d['id'], d['reason']) for d in rot.kept] == [(newest['id'], 'min_keep 1'),
                                                          (old['id'], 'in progress (temporary file)')]
    assert rot.deleted == [] and rot.orphans == []


@pytest.mark.parametrize('hours, pid, held_open, is_dir, removed', [
    (30, 'dead', False, False, True),
    (30, 'dead', False, True, True),
    (10, 'dead', False, False, False),        # younger than orphan_age_hours
    (30, 'self', False, False, False),        # its writer is alive
    (30, 'dead', True, False, False),         # a process has it open
    (30, 'none', False, False, True),         # no pid in the name
])
def test_orphaned_temporary_files(bdir, hours, pid, held_open, is_dir, removed):
    now = datetime.datetime.now().astimezone()
    write_backup(bdir, now)
    suffix = {'dead': str(dead_pid()), 'self': str(os.getpid()), 'none': 'x'}[pid]
    path = os.path.join(bdir, '.pim_full_20261127_020000.sql.zst.tmp-' + suffix)
    if is_dir:
        os.makedirs(os.path.join(path, 'sub'))
        with open(os.path.join(path, 'sub', '1.dat'), 'wb') as f:
            f.write(b'x')
        os.symlink('/etc', os.path.join(path, 'link'))
    else:
        with open(path, 'wb') as f:
            f.write(b'x')
    age_file(path, hours)
    f = open(path if not is_dir else os.path.join(path, 'sub', '1.dat'), 'rb') if held_open else None
    try:
        rot = Rotation(bdir, make_policy()).plan()
        assert (rot.orphans == [os.path.basename(path)]) is removed
        rot.act()
    finally:
        if f:
            f.close()
    assert os.path.lexists(path) is not removed
    assert os.path.isdir('/etc')


def test_deletion_removes_the_dump_before_its_metadata(bdir, monkeypatch):
    now = datetime.datetime.now().astimezone()
    write_backup(bdir, now)
    old = write_backup(bdir, now - 40 * DAY, fmt='directory', size=5000)
    seen = []
    real = retention.remove_tree

    def remove_tree(path):
        seen.append((path, os.path.exists(old['meta_path'])))
        real(path)
    monkeypatch.setattr(retention, 'remove_tree', remove_tree)
    rot = Rotation(bdir, make_policy(min_keep=1)).plan()
    assert rot.bytes_freed == 5000 + os.path.getsize(old['meta_path'])
    rot.act()
    assert seen[0] == (old['path'], True)          # the dump (then, recursively, its contents) first
    assert not os.path.exists(old['path']) and not os.path.exists(old['meta_path'])


def test_a_failed_dump_removal_keeps_the_metadata_and_reports(bdir, monkeypatch):
    now = datetime.datetime.now().astimezone()
    write_backup(bdir, now)
    old = write_backup(bdir, now - 40 * DAY)

    def broken(path):
        raise OSError(errno.EIO, 'I/O error')
    monkeypatch.setattr(retention, 'remove_tree', broken)
    rot = Rotation(bdir, make_policy(min_keep=1)).plan()
    rot.act()
    assert os.path.exists(old['meta_path']) and os.path.exists(old['path'])
    assert rot.errors and old['id'] in rot.errors[0] and 'I/O error' in rot.errors[0]


def test_symbolic_links_are_removed_never_followed(bdir, tmp_path):
    outside = tmp_path / 'outside'
    outside.mkdir()
    (outside / 'precious').write_bytes(b'keep me')
    now = datetime.datetime.now().astimezone()
    write_backup(bdir, now)
    as_link = write_backup(bdir, now - 40 * DAY)
    os.unlink(as_link['path'])
    os.symlink(str(outside / 'precious'), as_link['path'])
    as_dir = write_backup(bdir, now - 41 * DAY, fmt='directory')
    os.symlink(str(outside), os.path.join(as_dir['path'], 'escape'))
    rot = Rotation(bdir, make_policy(min_keep=1)).plan()
    assert sorted(d['id'] for d in rot.deleted) == sorted([as_link['id'], as_dir['id']])
    rot.act()
    assert not os.path.lexists(as_link['path']) and not os.path.lexists(as_dir['path'])
    assert (outside / 'precious').read_bytes() == b'keep me'


def test_plan_then_act_deletes_exactly_the_plan(bdir):
    now = datetime.datetime.now().astimezone()
    made = [write_backup(bdir, now - i * 2.5 * DAY, kind=k, status=s)
            for i, (k, s) in enumerate([('full', 'success'), ('snapshot', 'success'), ('snapshot', 'failed'),
                                        ('full', 'failed'), ('pre_deploy', 'success'), ('full', 'success')] * 3)]
    before = set(os.listdir(bdir))
    plan = Rotation(bdir, make_policy(min_keep=2, keep_weekly=2)).plan()
    assert set(os.listdir(bdir)) == before                      # planning touches nothing
    rot = Rotation(bdir, make_policy(min_keep=2, keep_weekly=2)).plan()
    assert rot.deleted == plan.deleted and rot.kept == plan.kept and rot.deleted
    rot.act()
    gone = set(os.path.basename(p) for d in plan.deleted for p in (d['path'], d['meta_path']) if p)
    assert before - set(os.listdir(bdir)) == gone
    assert len(made) == len(plan.deleted) + len(plan.kept)
    again = Rotation(bdir, make_policy(min_keep=2, keep_weekly=2)).plan()
    assert again.deleted == [] and not again.changed
    diff = plan.diff()
    assert diff['before'].count('\n') == len(made) and diff['after'].count('\n') == len(plan.kept)
    s = plan.summary()
    assert (s['records'], s['deleted'], s['kept']) == (len(made), len(plan.deleted), len(plan.kept))
    assert s['failed_records_deleted'] == len([d for d in plan.deleted if d['status'] == 'failed'])


def test_a_globals_dump_stays_while_a_kept_backup_links_it():
    old_globals = rec(NOW - datetime.timedelta(days=40), database=catalog.GLOBALS)
    new_globals = rec(NOW - datetime.timedelta(days=35), database=catalog.GLOBALS)
    unlinked = rec(NOW - datetime.timedelta(days=50), database=catalog.GLOBALS)
    kept = rec(NOW - datetime.timedelta(days=40, seconds=-1))
    kept['globals'] = dict(id=old_globals['id'], file=old_globals['file'])
    gone = rec(NOW - datetime.timedelta(days=60))
    gone['globals'] = dict(id=unlinked['id'], file=unlinked['file'])
    entries = [new_globals, old_globals, unlinked, kept, gone]
    out = dict((m['id'] + m['database'], (action, reason))
               for m, action, reason in plan_rotation(entries, NOW, policy(min_keep=1)))
    assert out[kept['id'] + 'pim'][0] == 'keep'                        # min_keep
    assert out[gone['id'] + 'pim'][0] == 'delete'
    action, reason = out[old_globals['id'] + catalog.GLOBALS]
    assert action == 'keep' and reason.startswith('the globals of kept backup pim %s (' % kept['id']), reason
    assert out[unlinked['id'] + catalog.GLOBALS][0] == 'delete'         # its backup goes too
    assert out[new_globals['id'] + catalog.GLOBALS][0] == 'keep'        # min_keep of @globals
