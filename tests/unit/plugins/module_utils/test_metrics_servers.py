# -*- coding: utf-8 -*-
"""backup_metrics's figures per (server, database): two servers sharing a directory never mix, records made before
0.5.0 count for the server derived from their host and container, records that say no server are labelled ''."""
from __future__ import absolute_import, division, print_function

import datetime

import pytest

from ansible_collections.pgops.postgresql.plugins.module_utils._metrics import compute, expected_servers

NOW = datetime.datetime(2026, 12, 7, 12, 0, tzinfo=datetime.timezone.utc)
CFG = dict(server=None, databases=[], window_days=7, size_change_percent=50, growth_percent=20, growth_days=7,
           no_success_hours=26, success_rate_target=100, free_disk_percent=10, offsite_max_age_days=8,
           **dict(('%s_action' % a, 'warn')
                  for a in ('no_success', 'size_change', 'growth', 'success_rate', 'free_disk', 'offsite_age')))


def rec(server, status='success', hours=1, database='shop', **kw):
    when = (NOW - datetime.timedelta(hours=hours)).isoformat()
    m = dict(id='x%s%s' % (server, hours), database=database, kind='full', status=status, started_at=when,
             finished_at=when, size=100 if status == 'success' else 0, **kw)
    if server:
        m['server'] = server
    return m


ENTRIES = [rec('a', hours=1), rec('b', status='failed', hours=2), rec('b', hours=3),
           rec(None, hours=4, host='ops1', container='pg'),           # 0.4.0: the derived server ops1/pg
           rec(None, hours=5, origin='adopted')]                      # says no server: ''
AUDIT = [dict(time=NOW.isoformat(), database='shop', mode='test', result='passed', rto_seconds=3, server='a',
              source_server='b'),
         dict(time=NOW.isoformat(), database='shop', mode='new', result='passed', rto_seconds=9)]   # before 0.5.0


def by_server(samples, name, **labels):
    return dict((s['labels']['server'], s['value']) for s in samples if s['name'] == name
                and all(s['labels'].get(k) == v for k, v in labels.items()))


def test_each_server_has_its_own_series():
    samples, alerts, summary = compute(ENTRIES, AUDIT, NOW, 50, 100, CFG)
    assert by_server(samples, 'pgops_backup_count') == {'a': 1, 'b': 1, 'ops1/pg': 1, '': 1}
    assert by_server(samples, 'pgops_backup_success_ratio') == {'a': 1.0, 'b': 0.5, 'ops1/pg': 1.0, '': 1.0}
    assert by_server(samples, 'pgops_restore_last_rto_seconds') == {'a': 3, '': 9}   # the server restored to
    assert by_server(samples, 'pgops_backup_dir_free_ratio') == {'': 0.5}
    assert [(x['server'], x['name']) for x in alerts] == [('b', 'success_rate')]
    assert alerts[0]['message'].endswith(' on server b')
    assert summary['servers'] == ['', 'a', 'b', 'ops1/pg'] and summary['failed'] == 1


def test_server_option_writes_that_servers_series_and_those_that_say_none():
    samples, alerts, summary = compute(ENTRIES, AUDIT, NOW, 50, 100, dict(CFG, server='b', databases=['shop', 'x']))
    assert set(s['labels']['server'] for s in samples) == {'b', ''}
    assert by_server(samples, 'pgops_backup_dir_free_ratio') == {'b': 0.5}
    assert by_server(samples, 'pgops_restore_last_rto_seconds') == {'': 9}
    # the expected database x is expected of b, not of every server
    assert by_server(samples, 'pgops_backup_alert', alert='no_success', database='x') == {'b': 1}


@pytest.mark.parametrize('entries, server, expected', [
    (ENTRIES, None, ['a', 'b', 'ops1/pg']),           # every named server ('' is none of them)
    (ENTRIES, 'z', ['z']),
    ([rec(None, origin='adopted')], None, ['']),     # nothing named: ''
    ([], None, ['']),
])
def test_expected_servers(entries, server, expected):
    assert expected_servers(entries, dict(server=server)) == expected
