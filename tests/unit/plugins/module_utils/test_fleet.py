# -*- coding: utf-8 -*-
"""Stats per server (catalog_stats' servers: two servers of one database name never mix) and the fleet summary
(_fleet.summary, the filters fleet_summary / fleet_html) from pure records."""
from __future__ import absolute_import, division, print_function

import datetime
import json

import pytest

from ansible.errors import AnsibleFilterError

from ansible_collections.pgops.postgresql.plugins.filter.fleet import fleet_html, fleet_summary
from ansible_collections.pgops.postgresql.plugins.module_utils._catalog import UNKNOWN_SERVER, catalog_stats
from ansible_collections.pgops.postgresql.plugins.module_utils._fleet import summary
from ansible_collections.pgops.postgresql.plugins.module_utils._report import render_fleet_html

T0 = datetime.datetime(2026, 12, 7, 12, 0, 0, tzinfo=datetime.timezone.utc)


def rec(hours_ago, server, database='shop', size=1000, status='success', verified=None, database_size=None):
    t = T0 - datetime.timedelta(hours=hours_ago)
    m = dict(id=t.strftime('%Y%m%d_%H%M%S'), database=database, kind='full', status=status, started_at=t.isoformat(),
             format='custom', compression='zstd', size=size if status == 'success' else None)
    if server:
        m['server'] = server
    if database_size:
        m['database_size'] = database_size
    if verified:
        m['verifications'] = [dict(result=verified)]
    return m


def newest_first(entries):
    return sorted(entries, key=lambda m: m['started_at'], reverse=True)


def test_one_server_keeps_the_alerts_as_before_and_says_its_server():
    entries = newest_first([rec(0, 'a', size=5000), rec(24, 'a', size=1000)])
    s = catalog_stats(entries, T0)
    assert list(s['servers']) == ['a']
    assert s['alerts'] == ['shop: backup size changed +400.0% against the previous one (threshold 50.0%)']
    assert s['servers']['a']['alerts'] == s['alerts']
    assert s['servers']['a']['databases']['shop']['alerts'] == s['alerts']
    assert s['databases']['shop']['count'] == s['servers']['a']['count'] == 2


def test_size_change_of_two_servers_never_mixes():
    # a: 1000 then 1010; b: 100000 between them. Across servers a's newest would be -99 % against b's
    entries = newest_first([rec(0, 'a', size=1010), rec(12, 'b', size=100000), rec(24, 'a', size=1000)])
    s = catalog_stats(entries, T0)
    a, b = s['servers']['a']['databases']['shop'], s['servers']['b']['databases']['shop']
    assert a['size_change_pct'] == 1.0 and not a['size_change_flag']
    assert b['size_change_pct'] is None
    assert s['databases']['shop']['size_change_flag']          # the name-only figures still mix (as before 0.5.0)
    assert not [x for x in s['alerts'] if 'size changed' in x], s['alerts']


def test_success_rate_and_growth_are_per_server():
    entries = newest_first([rec(0, 'a', database_size=2000), rec(1, 'b', status='failed'),
                            rec(2, 'b', database_size=100), rec(24 * 8, 'a', database_size=1900),
                            rec(24 * 8, 'b', database_size=10)])
    s = catalog_stats(entries, T0)
    assert s['servers']['a']['success_rate'] == 100.0
    assert s['servers']['b']['success_rate'] == pytest.approx(66.7)
    assert s['servers']['a']['databases']['shop']['growth_pct'] == pytest.approx(5.3, abs=0.1)
    assert s['servers']['b']['databases']['shop']['growth_flag']
    assert s['alerts'] == [
        'b shop: database grew 900.0% in 7 days (threshold 20.0%)',
        'b shop: backup success rate 66.7% over 30 days']
    assert s['servers']['a']['alerts'] == []


def test_unknown_server_has_its_own_key_and_expected_databases_are_every_servers():
    entries = newest_first([rec(0, 'a'), rec(1, None)])
    s = catalog_stats(entries, T0, no_success_hours=26, expected_databases=['crm'])
    assert sorted(s['servers']) == [UNKNOWN_SERVER, 'a']
    assert sorted(x for x in s['alerts'] if 'crm' in x) == [
        '(unknown) crm: no successful backup in the catalog', 'a crm: no successful backup in the catalog']


def test_newest_verified_and_the_size_series():
    entries = newest_first([rec(0, 'a', size=3), rec(24, 'a', size=2, verified='passed'),
                            rec(48, 'a', size=1, verified='failed')])
    shop = catalog_stats(entries, T0)['servers']['a']['databases']['shop']
    assert shop['newest_verified_id'] == entries[1]['id'] and shop['newest_verified_age_seconds'] == 86400
    assert shop['size_series'] == [[entries[2]['id'], 1], [entries[1]['id'], 2], [entries[0]['id'], 3]]


def test_an_empty_catalog_still_alerts_the_expected_databases():
    s = catalog_stats([], T0, no_success_hours=26, expected_databases=['shop'])
    assert s['servers'] == {} and s['alerts'] == ['shop: no successful backup in the catalog']


# -- the fleet summary -------------------------------------------------------------------------------------------
def report(server, entries, probe=None, path='/backups', **info):
    stats = catalog_stats(newest_first(entries), T0)
    return dict(server=server, path=path, probe=probe if probe is not None else dict(server=dict(version='16.4')),
                info=dict(dict(stats=stats, path_exists=True), **info), error='', task='')


def fleet_of(reports):
    return summary(reports, now=T0)


def by_name(fleet):
    return dict((s['name'], s) for s in fleet['servers'])


def test_every_host_is_a_line_and_the_broken_ones_are_marked():
    fleet = fleet_of({
        'db-a': report('a', [rec(0, 'a')]),
        'db-b': report('b', [rec(0, 'b')], probe=dict(failed=True, msg='connection refused')),
        'db-c': report('c', [], path_exists=False, path='/nowhere'),
        'db-d': dict(server='', path='/x', probe={}, info=dict(failed=True, msg='cannot read /x'),
                     error='cannot read /x',
                     task='Read the backup catalog'),
        'db-e': None,
    })
    s = by_name(fleet)
    assert sorted(s) == ['(host db-d)', '(host db-e)', 'a', 'b', 'c']
    assert [s[n]['state'] for n in ('a', 'b', 'c', '(host db-d)', '(host db-e)')] == [
        'ok', 'down', 'failed', 'failed', 'no_result']
    assert s['b']['databases'][0]['newest_id'] and 'connection refused' in s['b']['errors'][0]
    assert 'does not exist' in s['c']['errors'][0]
    assert fleet['state'] == 'failed' and fleet['counts']['hosts'] == 5
    assert (fleet['counts']['hosts_ok'], fleet['counts']['hosts_down'], fleet['counts']['hosts_failed'],
            fleet['counts']['hosts_no_result']) == (1, 1, 2, 1)
    assert 'b [server down] hosts: db-b' in fleet['lines']
    assert len(fleet['alerts']) == 4


def test_a_shared_directory_counts_each_server_once_and_judges_each_host_by_its_own_alerts():
    entries = [rec(0, 'a', size=1000), rec(24, 'a', size=1000), rec(0, 'b', size=9000), rec(24, 'b', size=1000)]
    fleet = fleet_of({'db-a': report('a', entries), 'db-b': report('b', entries)})
    s = by_name(fleet)
    assert sorted(s) == ['a', 'b']
    assert s['a']['reported_by'] == s['b']['reported_by'] == ['db-a', 'db-b']
    assert (s['a']['hosts'], s['b']['hosts']) == (['db-a'], ['db-b'])
    assert (s['a']['state'], s['b']['state']) == ('ok', 'alerts')
    assert [h['state'] for h in fleet['hosts']] == ['ok', 'alerts']
    assert s['b']['alerts'] == ['b shop: backup size changed +800.0% against the previous one (threshold 50.0%)']


def test_the_host_server_is_its_catalogs_only_server_when_unnamed():
    fleet = fleet_of({'db-a': report('', [rec(0, 'db-a:5433')])})
    assert fleet['hosts'][0]['server'] == 'db-a:5433' and by_name(fleet)['db-a:5433']['hosts'] == ['db-a']


def test_the_filter_reads_hostvars_and_keeps_hosts_without_a_report():
    hostvars = {'db-a': {'list_backups_fleet_report': report('a', [rec(0, 'a')])}, 'db-b': {}}
    fleet = fleet_summary(hostvars, ['db-a', 'db-b', 'db-gone'])
    assert [h['state'] for h in fleet['hosts']] == ['ok', 'no_result', 'no_result']
    json.dumps(fleet)                                   # plain JSON, for set_stats
    with pytest.raises(AnsibleFilterError, match='hosts must be a list'):
        fleet_summary(hostvars, 'db-a')
    with pytest.raises(AnsibleFilterError, match='must be hostvars'):
        fleet_summary(['db-a'], ['db-a'])
    with pytest.raises(AnsibleFilterError, match='record of pgops.postgresql.fleet_summary'):
        fleet_html({'x': 1})


def test_the_page_embeds_the_record_and_ties_every_number_to_it():
    fleet = fleet_of({'db-a': report('a', [rec(0, 'a', size=2048), rec(24, 'a', size=2000)]),
                      'db-b': report('b</script>', [rec(0, 'b</script>')], probe=dict(failed=True, msg='<refused>'))})
    html = render_fleet_html(fleet)
    assert html == fleet_html(fleet)
    data = html[html.index('id="pgops-data">') + 16:html.index('</script>', html.index('id="pgops-data">'))]
    assert json.loads(data) == json.loads(json.dumps(fleet))
    assert 'data-server="a" data-state="ok"' in html and 'data-state="down"' in html
    shown = html[:html.index('id="pgops-data">')]
    assert '&lt;refused&gt;' in shown and '<refused>' not in shown and 'b&lt;/script&gt;' in shown
    assert html.count('</script>') == 2                # the record's own "</script>" cannot close its script
    assert 'data-path="servers.0.databases.0.size_series.1" data-format="bytes">' in html
    assert html.count('data-chart="spark"') == 2


def test_the_maintenance_report_css_is_left_as_it_is():
    from ansible_collections.pgops.postgresql.plugins.module_utils import _report
    assert '.badge.warn' not in _report.CSS and '.badge.warn' in _report.FLEET_CSS
