# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgops.postgresql contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for the backup catalog: names, ids, labels, metadata listing, filters and statistics."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import datetime
import json
import os

import pytest

from ansible_collections.pgops.postgresql.plugins.module_utils._catalog import (
    GLOBALS, LABEL_MAX, CatalogError, age_seconds, backup_time, catalog_stats, data_time, database_stats,
    dump_suffix, filter_entries, ids_for, load_catalog, lock_name, make_id, meta_path, parse_id, parse_time, slug, stem, validate_label,
)
from ansible_collections.pgops.postgresql.plugins.module_utils._fsutil import write_json_atomic

UTC = datetime.timezone.utc
CET = datetime.timezone(datetime.timedelta(hours=1))
DAY = datetime.timedelta(days=1)
# the newest backup of the statistics tests: 2026-11-28 02:00 in +01:00 (01:00 UTC)
T0 = datetime.datetime(2026, 11, 28, 2, 0, 0, tzinfo=CET)


def record(started, database='pim_dev', kind='full', status='success', size=1000, database_size=5000000,
           fmt='plain', compression='zstd', label=None, started_at=None):
    """A metadata record as pg_backup writes it; ``started`` is an aware datetime."""
    backup_id = make_id(started)
    entry_stem = stem(database, kind, label, backup_id)
    return {
        'id': backup_id, 'database': database, 'kind': kind, 'label': label, 'status': status,
        'file': entry_stem + dump_suffix(fmt, compression) if status == 'success' else None,
        'format': fmt, 'compression': compression, 'size': size if status == 'success' else None,
        'started_at': started_at or started.isoformat(),
        'finished_at': (started + datetime.timedelta(seconds=5)).isoformat(),
        'database_size': database_size,
    }


def write_record(directory, meta):
    path = meta_path(directory, stem(meta['database'], meta['kind'], meta.get('label'), meta['id']))
    write_json_atomic(path, meta)
    return path


# -- labels -----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize('label', ['pre-deployment', u'Übergabe 2.3_final', 'x' * LABEL_MAX])
def test_validate_label_accepts_and_never_rewrites(label):
    assert validate_label(label) is label


def test_validate_label_none_means_no_label():
    assert validate_label(None) is None


@pytest.mark.parametrize('label, reason', [
    ('', 'empty'),
    ('   ', 'blank'),
    ('a/b', 'path separator'),
    ('a\\b', 'path separator'),
    ('..', r'"\.\."'),
    ('a\x00b', 'control'),
    ('a\x1b[31m', 'control'),
    ('a\x7f', 'control'),
    ('.hidden', 'start with'),
    ('-rf', 'start with'),
    ('x' * (LABEL_MAX + 1), 'at most 64'),
])
def test_validate_label_refuses(label, reason):
    with pytest.raises(CatalogError, match=reason):
        validate_label(label)


def test_every_accepted_label_gives_a_writable_metadata_file(tmp_path):
    # A label validate_label accepts must become a file name: %-escaping turns each non-ASCII character into
    # 6 to 12 characters, and a file name stops at 255 bytes. Refusing a label is fine; crashing later is not.
    for label in ['x' * LABEL_MAX, u'é' * LABEL_MAX, u'日本語ラベル' * 10, u'\U0001f418' * LABEL_MAX]:
        try:
            validate_label(label[:LABEL_MAX])
        except CatalogError:
            continue
        path = write_record(str(tmp_path), record(T0, kind='pre_restore', label=label[:LABEL_MAX]))
        assert os.path.isfile(path)


# -- slugs, stems, ids ------------------------------------------------------------------------------------------

@pytest.mark.parametrize('name, expected', [
    ('Release-2.3_final', 'Release-2.3_final'),
    ('my db', 'my%20db'),
    ('it\'s "quoted"', 'it%27s%20%22quoted%22'),
    ('a/b', 'a%2Fb'),
    (u'café', 'caf%C3%A9'),
    ('100%', '100%25'),
    ('', ''),
])
def test_slug(name, expected):
    assert slug(name) == expected


def test_slug_never_yields_a_path_separator_or_control_character():
    for name in [u'../../etc/passwd', u'a\\b', u'\x00\x1b\x7f', u'\u202eevil', u'日本']:
        out = slug(name)
        assert '/' not in out and '\\' not in out
        assert all(0x20 < ord(c) < 0x7f for c in out)


def test_stem_names():
    assert stem('pim_dev', 'pre_deploy', 'pre-deployment', '20241219_143022') == \
        'pim_dev_pre_deploy_pre-deployment_20241219_143022'
    assert stem('pim_dev', 'full', None, '20241219_143022') == 'pim_dev_full_20241219_143022'
    assert stem('my db', 'manual', 'a b', '20241219_143022') == 'my%20db_manual_a%20b_20241219_143022'
    assert stem(GLOBALS, 'full', None, '20241219_143022') == '_globals_full_20241219_143022'
    assert lock_name('pim_dev') == '.pim_dev.lock'
    assert lock_name(GLOBALS) == '._globals.lock'
    assert meta_path('/b', 'x_full_20241219_143022') == '/b/x_full_20241219_143022.meta.json'


def test_database_with_a_leading_dot_is_listed(tmp_path):
    # ".hidden" is a legal PostgreSQL database name; its backup must not become a hidden, never-listed file.
    write_record(str(tmp_path), record(T0, database='.hidden'))
    entries, warnings = load_catalog(str(tmp_path))
    assert [m['database'] for m in entries] == ['.hidden']
    assert warnings == []


def test_dump_suffix():
    assert [dump_suffix('plain', c) for c in ('zstd', 'gzip', 'lz4', 'none')] == [
        '.sql.zst', '.sql.gz', '.sql.lz4', '.sql']
    assert dump_suffix('custom', 'zstd') == '.dump'
    assert dump_suffix('directory', 'gzip') == '.dir'


def test_make_and_parse_id():
    when = datetime.datetime(2024, 12, 19, 14, 30, 22)
    assert make_id(when) == '20241219_143022'
    assert parse_id('20241219_143022') == when
    for bad in ['', None, '2024-12-19', '20241219_1430', '20241219_143022x', ' 20241219_143022']:
        with pytest.raises(CatalogError):
            parse_id(bad)


# -- time stamps ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize('text', [
    '2026-11-28T02:00:00+01:00',
    '2026-11-28T01:00:00Z',
    '2026-11-27T20:00:00-05:00',
    '2026-11-28T01:00:00.654321+00:00',
])
def test_parse_time_offsets_name_the_same_instant(text):
    parsed = parse_time(text)
    assert parsed.tzinfo is not None
    assert parsed.replace(microsecond=0) == datetime.datetime(2026, 11, 28, 1, 0, 0, tzinfo=UTC)


def test_parse_time_keeps_the_offset_and_empty_is_none():
    assert parse_time('2026-11-27T20:00:00-05:00').utcoffset() == datetime.timedelta(hours=-5)
    assert parse_time(None) is None
    assert parse_time('') is None


# -- load_catalog -----------------------------------------------------------------------------------------------

def test_load_catalog_missing_directory_is_empty(tmp_path):
    assert load_catalog(str(tmp_path / 'nope')) == ([], [])


def test_load_catalog_lists_metadata_only_and_warns_about_unreadable(tmp_path):
    d = str(tmp_path)
    ok = record(T0)
    failed = record(T0 - DAY, status='failed')
    ok_path = write_record(d, ok)
    failed_path = write_record(d, failed)
    (tmp_path / ok['file']).write_bytes(b'dump')
    # never listed: a dump without metadata, hidden and temporary names, other files
    (tmp_path / 'pim_dev_full_20261101_020000.sql.zst').write_bytes(b'orphan')
    (tmp_path / ('.' + os.path.basename(ok_path) + '.tmp-4242')).write_text(json.dumps(ok))
    (tmp_path / '.old_full_20261101_020000.meta.json').write_text(json.dumps(ok))
    (tmp_path / '.pim_dev.lock').write_text('123\n')
    # listed as warnings
    (tmp_path / 'broken.meta.json').write_text('{"id": ')
    (tmp_path / 'list.meta.json').write_text('[1, 2]')
    (tmp_path / 'noid.meta.json').write_text('{"database": "x"}')
    (tmp_path / 'latin1.meta.json').write_bytes(b'{"id": "\xe9"}')

    entries, warnings = load_catalog(d)

    assert [(m['id'], m['status']) for m in entries] == [(ok['id'], 'success'), (failed['id'], 'failed')]
    assert entries[0]['meta_path'] == ok_path
    assert entries[0]['path'] == os.path.join(d, ok['file'])
    assert entries[1]['meta_path'] == failed_path
    assert 'path' not in entries[1]
    assert sorted(os.path.basename(w.split(':')[0]) for w in warnings) == [
        'broken.meta.json', 'latin1.meta.json', 'list.meta.json', 'noid.meta.json']
    assert ids_for(entries, 'pim_dev') == set([ok['id'], failed['id']])
    assert ids_for(entries, 'other') == set()


@pytest.mark.parametrize('older_started, newer_started', [
    # the hour repeated when daylight saving time ends (Europe/Paris, 2026-10-25): 00:30 UTC, then 01:10 UTC
    ('2026-10-25T02:30:00+02:00', '2026-10-25T02:10:00+01:00'),
    # two hosts writing to one directory: 01:00 UTC, then 02:00 UTC
    ('2026-11-28T02:00:00+01:00', '2026-11-27T21:00:00-05:00'),
])
def test_load_catalog_orders_newest_first_by_instant_not_by_text(tmp_path, older_started, newer_started):
    d = str(tmp_path)
    for started in (older_started, newer_started):
        write_record(d, record(parse_time(started), started_at=started))
    entries, dummy = load_catalog(d)
    assert [m['started_at'] for m in entries] == [newer_started, older_started]
    now = parse_time(newer_started) + DAY
    assert database_stats(entries, now)['newest_id'] == make_id(parse_time(newer_started))


# -- filter_entries ---------------------------------------------------------------------------------------------

def _filter_fixture():
    return [
        record(T0, kind='full'),
        record(T0 - DAY, kind='manual', label='before-upgrade'),
        record(T0 - 2 * DAY, kind='pre_deploy', status='failed'),
        record(T0 - 3 * DAY, database='crm', kind='full'),
    ]


@pytest.mark.parametrize('kwargs, expected', [
    ({}, ['pim_dev/full', 'pim_dev/manual', 'pim_dev/pre_deploy', 'crm/full']),
    ({'kind': ['manual', 'pre_deploy']}, ['pim_dev/manual', 'pim_dev/pre_deploy']),
    ({'label': 'before-upgrade', 'kind': 'manual'}, ['pim_dev/manual']),
    ({'status': 'success', 'database': 'pim_dev'}, ['pim_dev/full', 'pim_dev/manual']),
    ({'status': 'any', 'kind': 'pre_deploy'}, ['pim_dev/pre_deploy']),
])
def test_filter_entries(kwargs, expected):
    out = filter_entries(_filter_fixture(), **kwargs)
    assert ['%s/%s' % (m['database'], m['kind']) for m in out] == expected


def test_filter_entries_max_age_compares_instants_across_offsets():
    entries = [
        record(T0, started_at='2026-11-28T02:00:00+01:00'),
        record(T0 - DAY, started_at='2026-11-27T01:00:00Z'),
        record(T0 - 2 * DAY, started_at='2026-11-25T20:00:00-05:00'),
        {'id': '20261101_000000', 'database': 'pim_dev', 'status': 'failed'},  # no time stamps: never "recent"
    ]
    for m in entries[:3]:
        m['finished_at'] = m['started_at']
    now = datetime.datetime(2026, 11, 28, 1, 0, 0, tzinfo=UTC)
    assert [m['started_at'] for m in filter_entries(entries, max_age_days=1, now=now)] == [
        '2026-11-28T02:00:00+01:00', '2026-11-27T01:00:00Z']  # exactly one day old is kept
    assert len(filter_entries(entries, max_age_days=2, now=now)) == 3
    assert len(filter_entries(entries, max_age_days=2, now=now - datetime.timedelta(seconds=1))) == 3
    assert len(filter_entries(entries, max_age_days=2, now=now + datetime.timedelta(seconds=1))) == 2


# -- statistics -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize('old, new, pct, flagged', [
    (1000, 1500, 50.0, False),   # exactly the threshold: not flagged
    (1000, 1501, 50.1, True),
    (1000, 500, -50.0, False),
    (1000, 499, -50.1, True),
    (1000, 1000, 0.0, False),
    (0, 1000, None, False),      # no previous size to compare with
])
def test_size_change_flag(old, new, pct, flagged):
    entries = [record(T0, size=new), record(T0 - DAY, size=old)]
    s = database_stats(entries, T0 + DAY)
    assert s['size_change_pct'] == pct
    assert s['size_change_flag'] is flagged


def test_size_change_compares_with_the_previous_backup_made_the_same_way():
    entries = [
        record(T0, size=1000),
        record(T0 - DAY, status='failed'),
        record(T0 - 2 * DAY, size=10, fmt='custom', compression='zstd'),
        record(T0 - 3 * DAY, size=2000, fmt='plain', compression='gzip'),
        record(T0 - 4 * DAY, size=900),
    ]
    s = database_stats(entries, T0 + DAY)
    assert s['size_change_pct'] == 11.1
    assert s['size_change_flag'] is False


@pytest.mark.parametrize('older_started, new_db_size, growth, flagged', [
    ('2026-11-21T02:00:00+01:00', 1200, 20.0, False),  # exactly 7 days, exactly the threshold
    ('2026-11-21T01:00:00Z', 1201, 20.1, True),        # exactly 7 days, written in UTC
    ('2026-11-20T20:00:00-05:00', 1300, 30.0, True),   # exactly 7 days, written in -05:00
    ('2026-11-21T02:00:00Z', 1300, None, False),       # 6 days 23 hours (the same text in another zone)
    ('2026-11-21T02:00:01+01:00', 1300, None, False),  # one second short
    ('2026-11-14T02:00:00+01:00', 800, -20.0, False),  # shrinking is not growth
])
def test_growth_over_seven_days(older_started, new_db_size, growth, flagged):
    older = parse_time(older_started)
    entries = [record(T0, database_size=new_db_size),
               record(older, database_size=1000, started_at=older_started)]
    s = database_stats(entries, T0 + DAY)
    assert s['growth_pct'] == growth
    assert s['growth_flag'] is flagged


def test_growth_needs_seven_days_of_history_and_uses_the_newest_old_enough_backup():
    short = [record(T0 - n * DAY, database_size=1000 + n) for n in range(7)]  # 0 .. 6 days old
    assert database_stats(short, T0)['growth_pct'] is None
    entries = [record(T0, database_size=1500), record(T0 - 3 * DAY, database_size=100),
               record(T0 - 8 * DAY, database_size=1000), record(T0 - 14 * DAY, database_size=10)]
    s = database_stats(entries, T0)
    assert s['growth_pct'] == 50.0
    assert s['growth_flag'] is True


def test_success_rate_over_the_window():
    now = T0  # the newest started exactly now: ages count from started_at (the recovery point), not finished_at
    entries = [
        record(T0),
        record(T0 - DAY, status='failed'),
        record(T0 - 2 * DAY),
        record(T0 - 30 * DAY, status='failed'),             # started exactly 30 days ago: inside
        record(T0 - 30 * DAY - datetime.timedelta(seconds=1), status='failed'),  # outside
        record(T0 - 40 * DAY, status='failed'),
    ]
    s = database_stats(entries, now, window_days=30)
    assert s['success_rate'] == 50.0
    assert (s['count'], s['failed']) == (2, 4)
    assert database_stats(entries, now, window_days=2)['success_rate'] == 66.7
    assert database_stats(entries, now + 100 * DAY, window_days=30)['success_rate'] is None
    assert database_stats([], now)['success_rate'] is None


def test_database_stats_figures():
    entries = [
        record(T0, size=300, database_size=7000),
        record(T0 - DAY, kind='manual', size=200),
        record(T0 - 2 * DAY, status='failed'),
        record(T0 - 3 * DAY, size=100),
    ]
    s = database_stats(entries, T0 + datetime.timedelta(hours=1))
    assert s['count'] == 3 and s['failed'] == 1 and s['size'] == 600
    assert s['newest_id'] == '20261128_020000'
    assert s['newest_age_seconds'] == 3600
    assert s['newest_size'] == 300
    assert s['database_size'] == 7000
    assert s['by_kind'] == {'full': {'count': 2, 'size': 400}, 'manual': {'count': 1, 'size': 200}}


def test_database_stats_with_only_failures():
    s = database_stats([record(T0, status='failed')], T0 + DAY)
    assert s['count'] == 0 and s['failed'] == 1 and s['success_rate'] == 0.0
    assert s['newest_id'] is None and s['newest_age_seconds'] is None and s['growth_pct'] is None


def test_catalog_stats_totals_and_alerts():
    entries = [
        record(T0, size=3000, database_size=1300),
        record(T0 - 7 * DAY, size=1000, database_size=1000),
        record(T0 - DAY + datetime.timedelta(hours=1), database='crm', size=50),
        record(T0 - 2 * DAY, database='crm', status='failed'),
        record(T0 - DAY, database=GLOBALS, kind='full', size=7),
    ]
    s = catalog_stats(entries, T0)
    assert s['count'] == 4 and s['failed'] == 1 and s['total_size'] == 4057
    assert s['by_kind'] == {'full': {'count': 4, 'size': 4057}}
    assert s['success_rate'] == 80.0
    assert s['newest_age_seconds'] == 0
    assert sorted(s['databases']) == [GLOBALS, 'crm', 'pim_dev']
    assert s['databases']['crm']['success_rate'] == 50.0
    assert sorted(s['alerts']) == [
        'crm: backup success rate 50.0% over 30 days',
        'pim_dev: backup size changed +200.0% against the previous one (threshold 50.0%)',
        'pim_dev: database grew 30.0% in 7 days (threshold 20.0%)',
    ]
    json.dumps(s)  # plain JSON for AWX


def test_catalog_stats_empty():
    s = catalog_stats([], T0)
    assert (s['count'], s['failed'], s['total_size'], s['success_rate']) == (0, 0, 0, None)
    assert s['newest_age_seconds'] is None and s['databases'] == {} and s['alerts'] == []


def test_a_backup_happened_when_it_started():
    """One notion of when a backup happened, everywhere: its started_at (the dump's snapshot, the recovery point),
    so backup_info's ages and backup_rotate's agree whatever the dump's duration."""
    m = record(T0)
    m['finished_at'] = (T0 + datetime.timedelta(hours=2)).isoformat()   # a long dump
    assert backup_time(m) == T0 == data_time(m)
    assert age_seconds(m, T0 + DAY) == 86400
    m.pop('started_at')     # an old or hand-made record: finished_at is all there is
    assert backup_time(m) == T0 + datetime.timedelta(hours=2)
    m['finished_at'] = 'not a time'
    assert backup_time(m) is None and age_seconds(m, T0) is None
