# -*- coding: utf-8 -*-
"""A fleet in one run: backup_info's stats per server (two servers with database shop sharing one directory never
mix their size changes or success rates), and list_backups.yml over several native clusters as inventory hosts -
one stopped, one with a missing backup directory - closing with one fleet summary that lists every server, marks
the broken ones, publishes pgops_fleet and writes the HTML page, while rc is Ansible's (2: some hosts failed)."""
from __future__ import absolute_import, division, print_function

import contextlib
import json
import os
import socket
import subprocess
import sys

import pytest

from conftest import cluster, pg_bin, playbook_runner


def name_of(pg):
    return '%s:%d' % (socket.gethostname(), pg.port)


def stop(pg):
    """Stop a cluster of conftest.cluster() (its data directory is beside its socket directory)."""
    as_user = ['runuser', '-u', 'postgres', '--'] if os.geteuid() == 0 else []
    subprocess.run(as_user + [pg_bin('pg_ctl'), '-D', os.path.join(os.path.dirname(pg.socket_dir), 'data'), '-m',
                              'fast', '-w', 'stop'], check=True, stdout=subprocess.DEVNULL)


def backup(run_module, pg, dest):
    res = run_module('pg_backup', dict(pg.conn(), databases=['shop'], dest=dest, globals=False))
    assert not res.get('failed'), res
    return res


@pytest.fixture(scope='module')
def servers():
    """Three servers, each with database shop: a's is small, b's a hundred times bigger, c's small."""
    with contextlib.ExitStack() as stack:
        pgs = dict((k, stack.enter_context(cluster())) for k in 'abc')
        for k, pg in pgs.items():
            pg.psql('postgres', 'CREATE DATABASE shop')
            rows = 20000 if k == 'b' else 100
            pg.psql('shop', "CREATE TABLE marker AS SELECT md5(g::text) AS who FROM generate_series(1, %d) g" % rows)
        yield pgs


def test_stats_per_server_never_mix_two_servers_of_one_database_name(servers, dest, run_module):
    a, b = servers['a'], servers['b']
    backup(run_module, a, dest)
    backup(run_module, b, dest)
    newest_a = backup(run_module, a, dest)    # against b's, a's would be a >50% size change
    info = run_module('backup_info', dict(path=dest))
    stats = info['stats']
    assert set(stats['servers']) == set([name_of(a), name_of(b)])
    sa, sb = stats['servers'][name_of(a)], stats['servers'][name_of(b)]
    assert (sa['count'], sb['count']) == (2, 1)
    assert sa['databases']['shop']['newest_id'] == newest_a['id']
    assert sa['databases']['shop']['size_change_flag'] is False, sa['databases']['shop']
    assert abs(sa['databases']['shop']['size_change_pct']) < 50
    assert sb['databases']['shop']['size_change_pct'] is None          # b's only backup: nothing to compare
    assert sa['success_rate'] == sb['success_rate'] == 100.0
    assert not [x for x in stats['alerts'] if 'size changed' in x], stats['alerts']
    # an alert names its server when the catalog holds more than one
    info = run_module('backup_info', dict(path=dest, expected_databases=['crm']))
    assert sorted(x for x in info['stats']['alerts'] if 'crm' in x) == sorted(
        '%s crm: no successful backup in the catalog' % name_of(pg) for pg in (a, b))
    # one server's view is that server's figures, and its alerts do not name it
    only_a = run_module('backup_info', dict(path=dest, server=name_of(a), expected_databases=['crm']))
    assert list(only_a['stats']['servers']) == [name_of(a)]
    assert 'crm: no successful backup in the catalog' in only_a['stats']['alerts']


@pytest.fixture(scope='module')
def fleet(servers, collection_root, tmp_path_factory):
    """list_backups.yml over a, b, c (c stopped) and d (a's server, a backup directory that does not exist)."""
    base = tmp_path_factory.mktemp('fleet')
    hosts = {}
    for k in 'abc':
        pg = servers[k]
        hosts['db-' + k] = {'pgops_port': pg.port, 'pgops_backup_dir': str(base / ('backups-' + k)),
                            'pgops_server': 'srv-' + k}
    hosts['db-d'] = {'pgops_port': servers['a'].port, 'pgops_backup_dir': str(base / 'missing'),
                     'pgops_server': 'srv-d'}
    for host in hosts.values():
        host.update(ansible_connection='local', ansible_python_interpreter=sys.executable)
    inventory = {'postgres_servers': {'hosts': hosts, 'vars': {
        'pgops_login_host': '127.0.0.1', 'pgops_login_user': 'postgres', 'pgops_databases': ['shop'],
        'pgops_log_file': str(base / 'db-backup.log')}}}
    run = playbook_runner(collection_root, inventory, base, env_more={'ANSIBLE_SHOW_CUSTOM_STATS': '1'})

    def playbook(name, *args):
        return run(name, '-f', '4', *args)

    rc, out = playbook('backup.yml', '-l', 'db-a,db-b,db-c', '-e', 'metrics_enabled=false')
    assert rc == 0, out[-4000:]
    stop(servers['c'])
    report = base / 'fleet.html'
    rc, out = playbook('list_backups.yml', '-e', 'fleet_report_file=%s' % report)
    (base / 'list_backups.out').write_text(out)     # for a failing test's reader
    return dict(rc=rc, out=out, report=str(report))


def custom_stats(out):
    """The pgops_fleet of the CUSTOM STATS block (ANSIBLE_SHOW_CUSTOM_STATS)."""
    text = out[out.index('CUSTOM STATS'):]
    text = text[text.index('RUN:') + 4:].strip()
    return json.JSONDecoder().raw_decode(text)[0]['pgops_fleet']


def test_one_stopped_server_and_one_missing_directory_fail_their_hosts_only(fleet):
    out = fleet['out']
    assert fleet['rc'] == 2, out[-4000:]
    recap = out[out.index('PLAY RECAP'):]
    for host, failed in (('db-a', 0), ('db-b', 0), ('db-c', 1), ('db-d', 1)):
        line = [x for x in recap.splitlines() if x.startswith(host + ' ')][0]
        assert 'failed=%d' % failed in line, line


def test_the_summary_lists_every_server_and_marks_the_broken_ones(fleet):
    fleet_ = custom_stats(fleet['out'])
    by_name = dict((s['name'], s) for s in fleet_['servers'])
    assert sorted(by_name) == ['srv-a', 'srv-b', 'srv-c', 'srv-d']
    assert by_name['srv-a']['state'] == by_name['srv-b']['state'] == 'ok', by_name['srv-a']
    assert by_name['srv-c']['state'] == 'down'
    error = by_name['srv-c']['errors'][0]
    assert 'the connection check failed' in error and 'refused' in error, error
    assert by_name['srv-d']['state'] == 'failed' and 'does not exist' in by_name['srv-d']['errors'][0]
    for name in ('srv-a', 'srv-b', 'srv-c'):          # the stopped server's backups are still listed
        shop = by_name[name]['databases'][0]          # the globals' row last
        assert [d['name'] for d in by_name[name]['databases']] == ['shop', '@globals']
        assert shop['newest_id'] and shop['success_rate'] == 100.0
        assert shop['newest_age_seconds'] < 3600 and shop['newest_verified_id'] is None
    assert fleet_['counts']['hosts'] == 4 and fleet_['counts']['hosts_down'] == 1
    assert fleet_['counts']['hosts_failed'] == 1 and fleet_['state'] == 'failed'
    # printed too, one table per server
    assert 'srv-c [server down] hosts: db-c' in fleet['out']


def test_the_html_page_is_written_and_self_contained(fleet):
    with open(fleet['report']) as f:
        html = f.read()
    assert html.startswith('<!DOCTYPE html>') and 'PostgreSQL fleet' in html
    for name in ('srv-a', 'srv-b', 'srv-c', 'srv-d'):
        assert 'data-server="%s"' % name in html
    assert 'data-server="srv-c" data-state="down"' in html
    assert 'http://' not in html and 'https://' not in html
