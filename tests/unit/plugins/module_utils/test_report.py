# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgops.postgresql contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for the maintenance report (formatting, SVG charts, escaping) and the trend logic it draws."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
import re

import pytest

from ansible_collections.pgops.postgresql.plugins.module_utils._maintenance import (
    compare_tables, expected_from_backups, growth, judge, split_name, THRESHOLDS,
)
from ansible_collections.pgops.postgresql.plugins.module_utils._report import (
    _nice_ceiling, fmt_age, fmt_bytes, fmt_pct, fmt_time, line_chart, render_html, tables_chart,
)
from ansible_collections.pgops.postgresql.plugins.module_utils._fsutil import PgOpsError


@pytest.mark.parametrize('value,text', [
    (None, u'\u2013'), (0, '0 B'), (1023, '1023 B'), (1024, '1.0 KiB'), (1536, '1.5 KiB'),
    (5 * 1024 ** 2, '5.0 MiB'), (int(2.25 * 1024 ** 3), '2.2 GiB'), (1024 ** 5, '1.0 PiB'),
])
def test_fmt_bytes(value, text):
    assert fmt_bytes(value) == text


@pytest.mark.parametrize('fn,value,text', [
    (fmt_pct, 99.25, '99.2 %'), (fmt_pct, None, u'\u2013'), (fmt_age, 59, '59 s'), (fmt_age, 3600, '60 min'),
    (fmt_age, 7200, '2.0 h'), (fmt_age, 3 * 86400, '3.0 d'),
    (fmt_time, '2026-12-15T03:00:42+01:00', '2026-12-15 03:00'), (fmt_time, None, 'never'),
])
def test_other_formats(fn, value, text):
    assert fn(value) == text


@pytest.mark.parametrize('value,ceiling', [
    (0, 1.0), (900, 1000.0), (1000, 1000.0), (3 * 1024 ** 2, 5 * 1024 ** 2), (1.2 * 1024 ** 3, 2 * 1024 ** 3),
    (240 * 1024 ** 2, 250 * 1024 ** 2),
])
def test_axis_ceiling_is_round_and_above(value, ceiling):
    assert _nice_ceiling(value) == ceiling >= value


def test_line_chart_draws_every_point_inside_the_plot():
    series = [('pim_dev', [('2026-12-01T02:00:00+01:00', 100, 'databases.0.size_series.0', ''),
                           ('2026-12-08T02:00:00+01:00', 150, 'databases.0.size_series.1', '')]),
              ('pim_prod', [('2026-12-05T02:00:00+01:00', 300, 'databases.1.size_series.0', '')])]
    svg = line_chart('c', 'title', series, width=560, height=260)
    assert 'data-point-count="3"' in svg and 'data-series-count="2"' in svg
    assert svg.count('<circle') == 3 and svg.count('<path') == 1   # a one-point series has no line
    for cx, cy in re.findall(r'<circle class="pt" cx="([\d.]+)" cy="([\d.]+)"', svg):
        assert 70 <= float(cx) <= 544 and 16 <= float(cy) <= 226


def test_line_chart_without_data_says_so():
    assert 'no data yet' in line_chart('c', 't', [('pim_dev', [])])


def test_tables_chart_segments_add_up_to_the_total():
    t = dict(schema='public', name='products', heap_bytes=600, indexes_bytes=300, toast_bytes=100, total_bytes=1000)
    svg = tables_chart('c', [t], 'databases.0.tables', width=560)
    widths = [float(w) for w in re.findall(r'<rect class="seg" x="[\d.]+" y="\d+" width="([\d.]+)"', svg)]
    assert len(widths) == 3 and abs(sum(widths) - (560 - 170 - 74)) < 0.5


def minimal_record(name='pim_dev', table='products'):
    return dict(collected_at='2026-12-15T03:00:00+01:00', host='h', container=None, collection_version='0.1.0',
                thresholds=dict(THRESHOLDS), history_runs=0, actions=[], verifications=[], backups=None,
                server=dict(version='15.18', max_connections=100, connections=dict(total=1, pct=1.0,
                                                                                   by_database={name: 1})),
                alerts=[dict(level='critical', check='expected_tables', database=name, message='missing <b>x</b>')],
                databases=[dict(name=name, size_bytes=1000, size_series=[], backup_series=[],
                                growth=dict(pct=None, flag=False, note='not enough history'),
                                tables=[dict(schema='public', name=table, heap_bytes=1, indexes_bytes=0, toast_bytes=0,
                                             total_bytes=1, live_tuples=1, dead_tuples=0, bloat_bytes=None,
                                             last_vacuum=None, last_autovacuum=None, last_analyze=None,
                                             last_autoanalyze=None)], unused_indexes=[])])


def test_names_are_escaped_and_the_embedded_json_cannot_close_its_script():
    html = render_html(minimal_record(name='<script>alert(1)</script>', table='x</script><script>alert(2)'))
    body = html.split('<script type="application/json"')[0]
    assert '<script>alert' not in body and '&lt;script&gt;alert(1)&lt;/script&gt;' in body
    data = html.split('id="pgops-data">')[1].split('</script>')[0]
    assert json.loads(data)['databases'][0]['name'] == '<script>alert(1)</script>'
    assert 'missing &lt;b&gt;x&lt;/b&gt;' in html


def test_page_is_self_contained():
    html = render_html(minimal_record())
    assert not re.search(r'(src|href)=["\']?(https?:)?//', html) and '@import' not in html


@pytest.mark.parametrize('name,pair', [('public.orders', ('public', 'orders')), ('orders', ('public', 'orders')),
                                       ('audit.log.2024', ('audit', 'log.2024'))])
def test_split_name(name, pair):
    assert split_name(name) == pair


def test_split_name_refuses_blank():
    with pytest.raises(PgOpsError):
        split_name(' ')


def meta(backup_id, started, tables, status='success', verified=None):
    m = dict(id=backup_id, database='pim_dev', status=status, started_at=started,
             tables=[dict(schema='public', name=t, rows=1) for t in tables])
    if verified:
        m['verifications'] = [dict(result='failed'), dict(result=verified)]
    return m


def test_expected_tables_prefer_the_newest_verified_backup():
    entries = [meta('20261215_020000', '2026-12-15T02:00:00+01:00', ['a']),
               meta('20261214_020000', '2026-12-14T02:00:00+01:00', ['a', 'orders'], verified='passed'),
               meta('20261213_020000', '2026-12-13T02:00:00+01:00', ['a', 'b'], verified='passed')]
    tables, info = expected_from_backups(entries, 'pim_dev')
    assert info['source'] == 'verified_backup' and info['backup_id'] == '20261214_020000'
    assert compare_tables(tables, [['public', 'a']]) == ['public.orders']


def test_expected_tables_fall_back_to_the_newest_success_and_say_so():
    entries = [meta('20261215_020000', '2026-12-15T02:00:00+01:00', ['x'], status='failed'),
               meta('20261214_020000', '2026-12-14T02:00:00+01:00', ['a'], verified='failed')]   # last check failed
    tables, info = expected_from_backups(entries, 'pim_dev')
    assert info['source'] == 'newest_backup' and info['backup_id'] == '20261214_020000'
    assert 'no verified backup' in info['note'] and tables == [('public', 'a')]
    assert expected_from_backups([], 'pim_dev')[1]['source'] == 'none'


@pytest.mark.parametrize('series,pct,flag', [
    ([['2026-12-01T00:00:00+00:00', 100, 'backup'], ['2026-12-09T00:00:00+00:00', 125, 'maintenance']], 25.0, True),
    ([['2026-12-01T00:00:00+00:00', 100, 'backup'], ['2026-12-07T00:00:00+00:00', 110, 'backup'],
      ['2026-12-09T00:00:00+00:00', 115, 'maintenance']], 15.0, False),   # the newest point a week older counts
    ([['2026-12-05T00:00:00+00:00', 100, 'backup'], ['2026-12-09T00:00:00+00:00', 200, 'maintenance']], None, False),
])
def test_growth_in_a_week(series, pct, flag):
    g = growth(series, None, 7, 20.0)
    assert g['pct'] == pct and g['flag'] is flag
    if pct is None:
        assert 'not enough history' in g['note']


def test_alerts_are_ordered_by_severity():
    rec = minimal_record()
    rec['alerts'] = []
    rec['databases'][0].update(expected_tables=dict(source='option', missing=['public.orders'], note=''),
                               unused_indexes=[dict(schema='public', name='i', table='t', size_bytes=8192)],
                               growth=dict(pct=30.0, flag=True, days=7.0))
    rec['server'].update(connections=dict(total=90, pct=90.0), idle_in_transaction=[], long_running=[])
    levels = [(a['level'], a['check']) for a in judge(rec, THRESHOLDS)]
    assert levels == [('critical', 'connections'), ('critical', 'expected_tables'), ('warning', 'growth'),
                      ('info', 'unused_index')]
