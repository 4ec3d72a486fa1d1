# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgops.postgresql contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for the maintenance logic (_maintenance): the statements pg_maintenance plans (quoting, which
VACUUM/ANALYZE/REINDEX, refusals before acting), the SQL parameters, the table facts (dead tuples, the bloat
estimate), every alert rule and its threshold, history records and names on real files, the size and backup
series and the options' shapes. Split names, expected tables from backups and the alert order are in
test_report.py; the queries themselves run on a real PostgreSQL in tests/functional/test_maintenance.py."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import datetime
import json
import os

import pytest

from ansible_collections.pgops.postgresql.plugins.module_utils import _maintenance as maint
from ansible_collections.pgops.postgresql.plugins.module_utils._errors import PgOpsError
from ansible_collections.pgops.postgresql.plugins.module_utils._steps import OPTIONS

NOW = datetime.datetime(2026, 12, 7, 3, 0, tzinfo=datetime.timezone.utc)


class Session(object):
    """Stands in for a psql session in one database: the relations it holds as {(schema, name): relkind}, and
    every statement sent (plan_actions only asks RELATIONS_SQL, through query_json)."""

    def __init__(self, relations):
        self.relations = relations
        self.sent = []

    def query_json(self, sql):
        self.sent.append(sql)
        assert sql.strip().startswith('SELECT coalesce(jsonb_agg(jsonb_build_array(n.nspname, c.relname, c.relkind))')
        return [[s, n, k] for (s, n), k in sorted(self.relations.items()) if self._asked(sql, s, n)]

    @staticmethod
    def _asked(sql, schema, name):
        return '(%s, %s)' % (maint.quote_literal(schema), maint.quote_literal(name)) in sql


RELATIONS = {('public', 'orders'): 'r', ('public', 'orders_pkey'): 'i', ('Sales', 'Order"s'): 'r',
             ('public', 'totals'): 'm', ('public', 'events'): 'p', ('public', 'events_idx'): 'I',
             ('public', 'v_orders'): 'v'}


def params(**kw):
    p = dict(vacuum=False, vacuum_tables=[], analyze=False, analyze_tables=[], reindex_indexes=[],
             reindex_tables=[])
    p.update(kw)
    return p


def plan(major=16, **kw):
    s = Session(RELATIONS)
    return [(a.kind, a.sql, a.target) for a in maint.plan_actions(params(**kw), s, 'shop', major)], s


# -- the plan -------------------------------------------------------------------------------------------------

def test_nothing_asked_nothing_planned_nothing_queried():
    actions, s = plan()
    assert actions == [] and s.sent == []


def test_whole_database_vacuum_analyze_makes_a_separate_analyze_redundant():
    actions, s = plan(vacuum=True, analyze=True)
    assert actions == [('vacuum_analyze', 'VACUUM (ANALYZE)', '(all tables)')]
    assert s.sent == []                                     # no table named: nothing to check


def test_analyze_alone_is_one_whole_database_analyze():
    assert plan(analyze=True)[0] == [('analyze', 'ANALYZE', '(all tables)')]


def test_named_tables_are_quoted_identifiers_and_checked_first():
    actions, s = plan(vacuum=True, vacuum_tables=['orders', 'Sales.Order"s'], analyze=True,
                      analyze_tables=['public.totals'])
    assert actions == [
        ('vacuum_analyze', 'VACUUM (ANALYZE) "public"."orders"', 'public.orders'),
        ('vacuum_analyze', 'VACUUM (ANALYZE) "Sales"."Order""s"', 'Sales.Order"s'),
        ('analyze', 'ANALYZE "public"."totals"', 'public.totals'),
    ]
    assert len(s.sent) == 2
    assert "('Sales', 'Order\"s')" in s.sent[0] and "('public', 'orders')" in s.sent[0]


def test_vacuum_of_some_tables_still_analyzes_the_whole_database_when_asked():
    actions, dummy = plan(vacuum=True, vacuum_tables=['orders'], analyze=True)
    assert [a[1] for a in actions] == ['VACUUM (ANALYZE) "public"."orders"', 'ANALYZE']


def test_reindex_is_concurrent_tables_then_indexes():
    actions, dummy = plan(reindex_tables=['events'], reindex_indexes=['orders_pkey', 'public.events_idx'])
    assert actions == [
        ('reindex', 'REINDEX TABLE CONCURRENTLY "public"."events"', 'public.events'),
        ('reindex', 'REINDEX INDEX CONCURRENTLY "public"."orders_pkey"', 'public.orders_pkey'),
        ('reindex', 'REINDEX INDEX CONCURRENTLY "public"."events_idx"', 'public.events_idx'),
    ]


def test_reindex_needs_postgresql_12():
    with pytest.raises(PgOpsError) as e:
        plan(major=11, reindex_indexes=['orders_pkey'])
    assert e.value.step == OPTIONS
    assert e.value.msg.startswith('REINDEX CONCURRENTLY needs PostgreSQL 12 or newer (server 11)')
    assert plan(major=12, reindex_indexes=['orders_pkey'])[0][0][0] == 'reindex'


@pytest.mark.parametrize('option, names, words', [
    ('vacuum_tables', ['missing_table'], 'public.missing_table (not found)'),
    ('vacuum_tables', ['v_orders'], 'public.v_orders (relkind v)'),              # a view cannot be vacuumed
    ('analyze_tables', ['orders', 'orders_pkey'], 'public.orders_pkey (relkind i)'),
    ('reindex_tables', ['orders_pkey'], 'public.orders_pkey (relkind i)'),
    ('reindex_indexes', ['orders'], 'public.orders (relkind r)'),
    ('reindex_indexes', ['Sales.nope', 'x.y'], 'Sales.nope (not found), x.y (not found)'),
])
def test_a_wrong_object_is_refused_before_any_action(option, names, words):
    kw = {option: names}
    if option == 'vacuum_tables':
        kw['vacuum'] = True
    if option == 'analyze_tables':
        kw['analyze'] = True
    with pytest.raises(PgOpsError) as e:
        plan(**kw)
    assert e.value.step == OPTIONS
    assert e.value.msg == '%s: %s in database shop; give existing objects as schema.name' % (option, words)


def test_a_listed_table_is_ignored_when_its_action_is_off():
    actions, s = plan(vacuum=False, vacuum_tables=['missing_table'], analyze=False, analyze_tables=['nope'])
    assert actions == [] and s.sent == []


def test_action_as_dict():
    [a] = maint.plan_actions(params(analyze=True), Session({}), 'shop', 16)
    assert a.as_dict('planned') == dict(database='shop', action='analyze', target='(all tables)', sql='ANALYZE',
                                        status='planned', duration_seconds=None)
    assert a.as_dict('done', 0.25)['duration_seconds'] == 0.25


# -- SQL text -------------------------------------------------------------------------------------------------

def test_sessions_sql_takes_the_thresholds_as_whole_seconds():
    sql = maint.SESSIONS_SQL % dict(long=300, idle=60)
    assert 'make_interval(secs => 300)' in sql and 'make_interval(secs => 60)' in sql
    assert "state LIKE 'idle in transaction%'" in sql                # %% became one %
    assert 'pid <> pg_backend_pid()' in sql                           # never the collecting session itself


def test_unused_indexes_leave_out_those_that_enforce_rules():
    where = maint.UNUSED_INDEXES_SQL.split('WHERE', 1)[1]
    assert 's.idx_scan = 0' in where
    for rule in ('NOT i.indisunique', 'NOT i.indisprimary', 'NOT i.indisexclusion'):
        assert rule in where


def test_names_reach_the_sql_only_quoted():
    s = Session({('public', "O'Brien"): 'r'})
    [a] = maint.plan_actions(params(vacuum=True, vacuum_tables=["O'Brien"]), s, 'shop', 16)
    assert "IN (('public', 'O''Brien'))" in s.sent[0]                  # a literal, its quote doubled
    assert a.sql == 'VACUUM (ANALYZE) "public"."O\'Brien"'
    assert maint.qualified('my "s"', 'T') == '"my ""s"""."T"'


def test_tables_sql_reads_the_fillfactor_with_one_backslash():
    assert r"substring(o FROM 'fillfactor=(\d+)')" in maint.TABLES_SQL


# -- table facts ----------------------------------------------------------------------------------------------

def table(**kw):
    t = dict(schema='public', name='orders', live_tuples=900, dead_tuples=100, relpages=1000, expected_pages=400,
             block_size=8192)
    t.update(kw)
    return t


def test_table_facts_dead_share_and_bloat_estimate():
    [t] = maint._table_facts([table()])
    assert t['dead_pct'] == 10.0
    assert t['bloat_bytes'] == 600 * 8192 and t['bloat_pct'] == 60.0


@pytest.mark.parametrize('kw, dead_pct, bloat', [
    (dict(expected_pages=1200), 10.0, (0, 0.0)),                 # fewer pages than the rows need: no bloat
    (dict(expected_pages=None), 10.0, (None, None)),             # never analyzed: no estimate
    (dict(relpages=0), 10.0, (None, None)),                      # empty
    (dict(live_tuples=0, dead_tuples=0), None, (600 * 8192, 60.0)),
    (dict(dead_tuples=None), None, (600 * 8192, 60.0)),
])
def test_table_facts_edges(kw, dead_pct, bloat):
    [t] = maint._table_facts([table(**kw)])
    assert t['dead_pct'] == dead_pct
    assert (t['bloat_bytes'], t['bloat_pct']) == bloat


# -- alert rules ------------------------------------------------------------------------------------------------

def record(server=None, **db):
    base = dict(name='shop')
    base.update(db)
    return dict(server=dict(max_connections=100, **(server or {})), databases=[base], backups=None)


def checks(rec, **th):
    return [(a['level'], a['check'], a['database']) for a in maint.judge(rec, dict(maint.THRESHOLDS, **th))]


@pytest.mark.parametrize('pct, fires', [(79.9, False), (80.0, True), (None, False)])
def test_connections_at_the_threshold_are_critical(pct, fires):
    rec = record(server=dict(connections=dict(total=80, pct=pct)))
    assert checks(rec) == ([('critical', 'connections', None)] if fires else [])
    if fires:
        assert maint.judge(rec, maint.THRESHOLDS)[0]['message'] == (
            '80 of 100 connections in use (80.0%, threshold 80.0%)')


def test_long_running_and_idle_in_transaction_sessions():
    s = dict(pid=42, user='app', database='shop', seconds=700, query='SELECT pg_sleep(1000)')
    rec = record(server=dict(long_running=[s], idle_in_transaction=[dict(s, pid=43, seconds=90)]))
    alerts = maint.judge(rec, maint.THRESHOLDS)
    assert [(a['check'], a['database'], a['message']) for a in alerts] == [
        ('long_running', 'shop', 'session 42 (app@shop) active for 700 s: SELECT pg_sleep(1000)'),
        ('idle_in_transaction', 'shop', 'session 43 (app@shop) idle in transaction for 90 s')]


@pytest.mark.parametrize('cache, fires', [
    (dict(hit_pct=85.0, blocks=5000), True),
    (dict(hit_pct=85.0, blocks=999), False),          # too few blocks read to judge
    (dict(hit_pct=90.0, blocks=5000), False),         # at the threshold: fine
    (dict(hit_pct=None, blocks=0), False),
])
def test_cache_hit_ratio_needs_enough_blocks(cache, fires):
    assert checks(record(cache=cache)) == ([('warning', 'cache_hit', 'shop')] if fires else [])


@pytest.mark.parametrize('t, found', [
    (dict(dead_pct=25.0, dead_tuples=5000), ['dead_tuples']),
    (dict(dead_pct=25.0, dead_tuples=999), []),                                    # too few to matter
    (dict(dead_pct=19.9, dead_tuples=5000), []),
    (dict(bloat_pct=60.0, bloat_bytes=16 << 20), ['bloat']),
    (dict(bloat_pct=60.0, bloat_bytes=1 << 20), []),                               # under bloat_min_bytes
    (dict(bloat_pct=None, bloat_bytes=None, dead_pct=None), []),
    (dict(dead_pct=50.0, dead_tuples=10 ** 6, bloat_pct=50.0, bloat_bytes=1 << 30), ['dead_tuples', 'bloat']),
])
def test_dead_tuples_and_bloat_need_both_a_share_and_a_size(t, found):
    row = dict(schema='public', name='orders', dead_pct=None, dead_tuples=0, bloat_pct=None, bloat_bytes=0)
    row.update(t)
    assert [c for dummy, c, dummy2 in checks(record(tables_all=[row]))] == found


def test_bloat_and_dead_tuple_messages():
    row = dict(schema='public', name='orders', dead_pct=50.0, dead_tuples=1234, bloat_pct=75.5, bloat_bytes=32 << 20)
    msgs = [a['message'] for a in maint.judge(record(tables_all=[row]), maint.THRESHOLDS)]
    assert msgs == ['public.orders has 1234 dead tuples (50.0%): VACUUM it',
                    'public.orders is an estimated 75.5% bloat (32.0 MiB)']


def test_thresholds_given_replace_the_defaults():
    row = dict(schema='public', name='orders', dead_pct=5.0, dead_tuples=10, bloat_pct=None, bloat_bytes=None)
    assert checks(record(tables_all=[row])) == []
    assert checks(record(tables_all=[row]), dead_tuples_pct=5.0, dead_tuples_min=10) == [
        ('warning', 'dead_tuples', 'shop')]


def test_unused_index_growth_expected_tables_and_backup_alerts():
    rec = record(unused_indexes=[dict(schema='public', name='orders_old_idx', table='orders', size_bytes=16384)],
                 growth=dict(pct=25.0, flag=True, days=7.5),
                 expected_tables=dict(source='verified_backup', missing=['public.orders', 'public.items'],
                                      note='tables of the newest verified backup 20261206_020000'))
    rec['backups'] = dict(alerts=['shop: no successful backup for 30.0 h (threshold 26 h)'])
    alerts = maint.judge(rec, maint.THRESHOLDS)
    assert [(a['level'], a['check'], a['database'], a['message']) for a in alerts] == [
        ('critical', 'expected_tables', 'shop', 'missing public.orders, public.items (expected from tables of the '
                                                'newest verified backup 20261206_020000)'),
        ('warning', 'growth', 'shop', 'database grew 25.0% in 7.5 days (threshold 20.0% in 7 days)'),
        ('warning', 'backups', 'shop', 'shop: no successful backup for 30.0 h (threshold 26 h)'),
        ('info', 'unused_index', 'shop', 'index public.orders_old_idx on orders has never been scanned (16.0 KiB)'),
    ]


def test_expected_tables_from_the_option_say_so_and_none_missing_is_no_alert():
    rec = record(expected_tables=dict(source='option', missing=['public.orders'], note='the expected_tables option'))
    assert maint.judge(rec, maint.THRESHOLDS)[0]['message'] == 'missing public.orders (expected from expected_tables)'
    assert checks(record(expected_tables=dict(source='option', missing=[], note=''))) == []


# -- history on disk --------------------------------------------------------------------------------------------

def write(directory, name, content):
    with open(os.path.join(str(directory), name), 'w') as f:
        f.write(content if isinstance(content, str) else json.dumps(content))


def test_load_history_reads_its_records_oldest_first_and_warns_of_bad_ones(tmp_path):
    write(tmp_path, 'maintenance_20261207_030000.json', dict(collected_at='2026-12-07T03:00:00+00:00', n=3))
    write(tmp_path, 'maintenance_20261201_030000.json', dict(collected_at='2026-12-01T03:00:00+00:00', n=1))
    write(tmp_path, 'maintenance_20261201_030000_2.json', dict(collected_at='2026-12-01T02:00:00+01:00', n=0))
    write(tmp_path, 'maintenance_20261202_030000.json', '{"collected_at": ')              # cut short
    write(tmp_path, 'maintenance_20261203_030000.json', dict(other='record'))              # not ours
    write(tmp_path, 'maintenance_20261204_030000.json', dict(collected_at='yesterday'))    # not a time
    write(tmp_path, 'maintenance_20261205_030000.json', '[1, 2]')
    write(tmp_path, 'latest.html', '<html>')                                              # not a record name
    write(tmp_path, 'maintenance_20261206_030000.html', '<html>')
    records, warnings = maint.load_history(str(tmp_path))
    assert [r['n'] for r in records] == [0, 1, 3]          # by the instant, not by the name
    assert sorted(os.path.basename(w.split(':')[0]) for w in warnings) == [
        'maintenance_20261202_030000.json', 'maintenance_20261203_030000.json', 'maintenance_20261204_030000.json',
        'maintenance_20261205_030000.json']


def test_load_history_without_a_directory_is_empty(tmp_path):
    assert maint.load_history(None) == ([], [])
    assert maint.load_history(str(tmp_path / 'none')) == ([], [])


def test_history_paths_never_reuse_a_name(tmp_path):
    first = maint.history_paths(str(tmp_path), NOW)
    assert first == (str(tmp_path / 'maintenance_20261207_030000.json'),
                     str(tmp_path / 'maintenance_20261207_030000.html'))
    write(tmp_path, os.path.basename(first[0]), {})
    second = maint.history_paths(str(tmp_path), NOW)
    assert second[0] == str(tmp_path / 'maintenance_20261207_030000_2.json')
    write(tmp_path, os.path.basename(second[0]), {})
    assert maint.history_paths(str(tmp_path), NOW)[0].endswith('maintenance_20261207_030000_3.json')
    for path in (first[0], second[0]):
        assert maint.HISTORY_RE.match(os.path.basename(path))        # what load_history reads back


# -- series ---------------------------------------------------------------------------------------------------

def backup(hours, size, database_size=None, status='success', database='shop'):
    when = NOW - datetime.timedelta(hours=hours)
    return dict(id=when.strftime('%Y%m%d_%H%M%S'), database=database, status=status, started_at=when.isoformat(),
                size=size, database_size=database_size)


def test_size_series_merges_history_backups_and_this_run_oldest_first():
    history = [dict(collected_at='2026-11-30T03:00:00+00:00', databases=[dict(name='shop', size_bytes=100),
                                                                         dict(name='crm', size_bytes=7)]),
               dict(collected_at='2026-12-03T03:00:00+00:00', databases=[dict(name='shop', size_bytes=None)])]
    entries = [backup(24, 50, database_size=150), backup(48, 40, status='failed', database_size=999),
               backup(72, 40, database_size=None), backup(96, 40, database_size=140, database='crm')]
    series = maint.size_series('shop', history, entries, NOW, 160)
    assert series == [['2026-11-30T03:00:00+00:00', 100, 'maintenance'],
                      ['2026-12-06T03:00:00+00:00', 150, 'backup'],
                      ['2026-12-07T03:00:00+00:00', 160, 'maintenance']]
    assert maint.size_series('shop', history, entries) == series[:2]       # without this run's size


def test_backup_series_is_successful_backups_oldest_first():
    entries = [backup(1, 30), backup(2, 0, status='failed'), backup(25, 20), backup(3, 99, database='crm')]
    assert maint.backup_series('shop', entries) == [
        [entries[2]['started_at'], 20, entries[2]['id']], [entries[0]['started_at'], 30, entries[0]['id']]]


def test_growth_reports_its_reference():
    series = [['2026-11-29T03:00:00+00:00', 200, 'backup'], ['2026-12-07T03:00:00+00:00', 260, 'maintenance']]
    g = maint.growth(series, NOW, 7, 20.0)
    assert g == dict(pct=30.0, flag=True, since='2026-11-29T03:00:00+00:00', reference_bytes=200, bytes=260,
                     days=8.0, note='+30.0% since 2026-11-29')
    assert maint.growth(series, NOW, 7, 30.0)['flag'] is False            # at the threshold: not above it


def test_growth_without_a_usable_reference():
    assert maint.growth([], NOW, 7, 20.0) == dict(pct=None, flag=False, note='no size known')
    zero = [['2026-11-29T03:00:00+00:00', 0, 'backup'], ['2026-12-07T03:00:00+00:00', 10, 'maintenance']]
    assert maint.growth(zero, NOW, 7, 20.0) == dict(pct=None, flag=False, note='reference size is 0')
    short = [['2026-12-04T15:00:00+00:00', 10, 'backup'], ['2026-12-07T03:00:00+00:00', 10, 'maintenance']]
    assert maint.growth(short, NOW, 7, 20.0)['note'] == 'not enough history: the oldest size is 2.5 days old, 7 needed'


def test_verifications_newest_first_conclusive_only_and_limited():
    def verified(hours, result, **kw):
        m = backup(hours, 10)
        m.update(kind='full', verifications=[dict(verified_at=(NOW - datetime.timedelta(hours=hours - 1)).isoformat(),
                                                  result=result, mode='test', rto_seconds=hours, **kw)])
        return m
    entries = [verified(5, 'passed'), verified(2, 'failed', error='row counts differ'), verified(9, 'inconclusive'),
               backup(1, 10)]
    out = maint.verifications(entries)
    assert [(v['backup_id'], v['result'], v['rto_seconds']) for v in out] == [
        (entries[1]['id'], 'failed', 2), (entries[0]['id'], 'passed', 5)]
    assert out[0]['error'] == 'row counts differ' and out[0]['database'] == 'shop' and out[0]['kind'] == 'full'
    many = [verified(h, 'passed') for h in range(2, 20)]
    assert len(maint.verifications(many)) == 10 and len(maint.verifications(many, limit=3)) == 3


# -- options and the collector's settings ------------------------------------------------------------------------

def test_thresholds_spec_types_follow_the_defaults():
    spec = maint.thresholds_spec()
    assert spec['type'] == 'dict' and spec['default'] == {}
    assert set(spec['options']) == set(maint.THRESHOLDS)
    for name, default in maint.THRESHOLDS.items():
        assert spec['options'][name] == dict(type='float' if isinstance(default, float) else 'int', default=default)
    assert spec['options']['connections_pct']['type'] == 'float'
    assert spec['options']['long_running_seconds']['type'] == 'int'


def test_info_argument_spec_gather_choices():
    spec = maint.info_argument_spec()
    assert spec['gather']['choices'] == ['all'] + list(maint.GATHER) and spec['gather']['default'] == ['all']
    assert spec['thresholds'] == maint.thresholds_spec()
    assert spec['login_password']['no_log'] is True and 'databases' in spec and 'all_databases' in spec


class Host(object):
    """What PgTarget uses of AnsibleModule when nothing runs: no_log_values."""

    def __init__(self):
        self.no_log_values = set()


@pytest.mark.parametrize('p, hdir', [
    (dict(history_dir='/h', backup_dir='/b'), '/h'),
    (dict(backup_dir='/b'), '/b/maintenance'),
    (dict(), None),
])
def test_history_dir(p, hdir):
    assert maint.Collector(Host(), p).history_dir() == hdir


def test_collector_thresholds_and_gather():
    c = maint.Collector(Host(), dict(thresholds=dict(cache_hit_pct=95.0, bloat_pct=None), gather=['tables', 'cache']))
    assert c.th == dict(maint.THRESHOLDS, cache_hit_pct=95.0)           # None keeps the default
    assert c.gather == {'tables', 'cache'}
    assert maint.Collector(Host(), dict(gather=['all', 'cache'])).gather == set(maint.GATHER)
    assert maint.Collector(Host(), dict()).gather == set(maint.GATHER)
    assert maint.THRESHOLDS['cache_hit_pct'] == 90.0                   # the defaults themselves untouched


def test_collector_hides_the_password():
    host = Host()
    maint.Collector(host, dict(login_password='s3cret'))
    assert 's3cret' in host.no_log_values
