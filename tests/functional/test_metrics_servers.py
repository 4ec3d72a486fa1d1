# -*- coding: utf-8 -*-
"""Two servers with a database of the same name share one backup directory (issue 22): the metrics keep them apart
(a series per server, each server's figures its own), the restore role restores another server's backup only
when told to (restore_source_server), and the weekly drill of each host drills its own server's backups and
writes its own server's metrics."""
from __future__ import absolute_import, division, print_function

import json
import os
import sys

import pytest

from conftest import cluster, metas, playbook_runner, prom_samples, series
SERVERS = {'a': 'db1/shop-a', 'b': 'db1/shop-b'}


def audit(dest):
    path = os.path.join(dest, 'restore-audit.jsonl')
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


@pytest.fixture(scope='module')
def shared(run_module, tmp_path_factory):
    """Servers a and b, database shop on each (table marker holding 'A' / 'B'), both backed up into one
    directory under their pgops_server names; b also has a failed run of shop."""
    base = tmp_path_factory.mktemp('servers')
    dest = str(base / 'backups')
    with cluster() as a, cluster() as b:
        pgs = dict(a=a, b=b)
        ids = {}
        for key, pg in sorted(pgs.items()):
            pg.psql('postgres', 'CREATE DATABASE shop')
            pg.psql('shop', "CREATE TABLE marker (who text); INSERT INTO marker VALUES ('%s')" % key.upper())
            res = run_module('pg_backup', dict(pg.conn(), server=SERVERS[key], databases=['shop'], dest=dest,
                                               globals=False))
            assert not res.get('failed'), res
            ids[key] = res['id']
        b.psql('postgres', 'ALTER DATABASE shop ALLOW_CONNECTIONS false')
        bad = run_module('pg_backup', dict(b.conn(), server=SERVERS['b'], databases=['shop'], dest=dest,
                                           globals=False))
        b.psql('postgres', 'ALTER DATABASE shop ALLOW_CONNECTIONS true')
        assert bad.get('failed'), bad
        failed = [m for m in metas(dest) if m['status'] == 'failed']
        assert [(m['server'], m['database']) for m in failed] == [(SERVERS['b'], 'shop')], failed
        yield dict(pgs=pgs, dest=dest, ids=ids, base=base)


@pytest.fixture
def play(shared, collection_root, tmp_path):
    """ansible-playbook over an inventory of hosts a and b (both local), sharing the backup directory."""
    hosts = {}
    for key, pg in shared['pgs'].items():
        hosts[key] = {'ansible_connection': 'local', 'ansible_python_interpreter': sys.executable,
                      'pgops_port': pg.port, 'pgops_server': SERVERS[key],
                      'metrics_file_name': 'pgops_%s.prom' % key}
    prom = tmp_path / 'prom'
    inventory = {'postgres_servers': {'hosts': hosts, 'vars': {
        'pgops_login_host': '127.0.0.1', 'pgops_login_user': 'postgres', 'pgops_databases': ['shop'],
        'pgops_backup_dir': shared['dest'], 'pgops_log_file': str(tmp_path / 'db-backup.log'),
        'metrics_textfile_dir': str(prom), 'metrics_create_dir': True}}}
    return dict(run=playbook_runner(collection_root, inventory, tmp_path), prom=str(prom))


def test_metrics_have_a_series_per_server_each_with_its_own_figures(shared, run_module, tmp_path):
    dest = shared['dest']
    a, b = SERVERS['a'], SERVERS['b']
    drill = run_module('pg_restore_verified', dict(shared['pgs']['a'].conn(), server=a, path=dest, database='shop',
                                                   mode='test'))
    assert drill['result'] == 'passed' and drill['backup_id'] == shared['ids']['a'], drill
    out = str(tmp_path / 'pgops_backup.prom')
    res = run_module('backup_metrics', dict(path=dest, dest=out))
    assert not res.get('failed'), res
    s = prom_samples(out)[1]
    records = metas(dest)
    for srv in (a, b):
        ok = [m for m in records if m['server'] == srv and m['status'] == 'success']
        assert series(s, 'pgops_backup_count', database='shop', kind='full')[srv] == len(ok) == 1
        assert series(s, 'pgops_backup_bytes', database='shop', kind='full')[srv] == ok[0]['size']
        assert series(s, 'pgops_backup_last_size_bytes', database='shop', kind='full')[srv] == ok[0]['size']
        assert series(s, 'pgops_database_size_bytes', database='shop')[srv] == ok[0]['database_size']
    assert sorted(series(s, 'pgops_backup_count', database='shop', kind='full')) == [a, b]
    assert series(s, 'pgops_backup_failures', database='shop', kind='full') == {a: 0, b: 1}
    assert series(s, 'pgops_backup_success_ratio', database='shop') == {a: 1.0, b: 0.5}
    assert series(s, 'pgops_backup_alert', alert='success_rate', database='shop', action='warn') == {a: 0, b: 1}
    [rate] = [x for x in res['alerts'] if x['name'] == 'success_rate']
    assert rate['server'] == b and rate['message'].endswith('on server %s' % b), rate
    # the drill was a's: its verification and its RTO are a's only
    assert series(s, 'pgops_backup_verify_last_result', database='shop') == {a: 1}
    assert list(series(s, 'pgops_restore_last_rto_seconds', database='shop', mode='test')) == [a]
    assert res['summary']['servers'] == [a, b]

    # server: only that server's series (the directory's carry its name)
    only = run_module('backup_metrics', dict(path=dest, dest=out, server=b, databases=['shop']))
    assert not only.get('failed'), only
    s = prom_samples(out)[1]
    assert {dict(k[1]).get('server') for k in s} == {b}
    assert series(s, 'pgops_backup_success_ratio', database='shop') == {b: 0.5}
    assert not series(s, 'pgops_restore_last_rto_seconds', database='shop', mode='test')
    bad = run_module('backup_metrics', dict(path=dest, dest=out, server='  '))
    assert bad.get('failed') and 'server must be a name' in bad['msg'], bad


def test_restore_role_restores_another_servers_backup_only_with_restore_source_server(shared, play):
    a = shared['pgs']['a']
    try:
        rc, out = play['run']('restore.yml', '-l', 'a', '-e', 'restore_database=shop', '-e', 'restore_mode=new',
                              '-e', 'restore_target=shop_from_b', '-e', 'restore_source_server=%s' % SERVERS['b'])
        assert rc == 0, out[-3000:]
        assert a.psql('shop_from_b', 'SELECT who FROM marker') == 'B'
        line = audit(shared['dest'])[-1]
        assert (line['server'], line['source_server'], line['backup_id']) == (
            SERVERS['a'], SERVERS['b'], shared['ids']['b']), line
        rc, out = play['run']('restore.yml', '-l', 'a', '-e', 'restore_database=shop', '-e', 'restore_mode=new',
                              '-e', 'restore_target=shop_own')
        assert rc == 0, out[-3000:]
        assert a.psql('shop_own', 'SELECT who FROM marker') == 'A'     # b's is newer, a's own is restored
    finally:
        for db in ('shop_from_b', 'shop_own'):
            a.psql('postgres', 'DROP DATABASE IF EXISTS %s' % db)


def test_drill_of_each_host_drills_and_reports_its_own_servers_backups(shared, play):
    before = len(audit(shared['dest']))
    rc, out = play['run']('restore_drill.yml', '-e', 'restore_drill_databases=shop')
    assert rc == 0, out[-3000:]
    lines = audit(shared['dest'])[before:]
    drilled = sorted((x['server'], x['source_server'], x['backup_id'], x['result']) for x in lines)
    assert drilled == sorted((SERVERS[k], SERVERS[k], shared['ids'][k], 'passed') for k in ('a', 'b')), lines
    # the metrics role of each host wrote its own server's series
    for key in ('a', 'b'):
        s = prom_samples(os.path.join(play['prom'], 'pgops_%s.prom' % key))[1]
        assert {dict(k[1]).get('server') for k in s} == {SERVERS[key]}
        assert list(series(s, 'pgops_backup_verify_last_result', database='shop')) == [SERVERS[key]]


def test_drill_without_pgops_server_refuses_a_directory_of_several_servers(shared, play):
    before = len(audit(shared['dest']))
    rc, out = play['run']('restore_drill.yml', '-l', 'a', '-e', 'restore_drill_databases=shop',
                          '-e', 'restore_drill_server=', '-e', 'metrics_enabled=false')
    assert rc != 0 and 'several servers' in out and 'set pgops_server' in out, out[-3000:]
    assert len(audit(shared['dest'])) == before                         # nothing restored
