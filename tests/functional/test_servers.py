# -*- coding: utf-8 -*-
"""Every backup knows its server: two servers with a database of the same name share one backup directory; each
restore and each rotation acts on its own server's backups only, another server's backup is restored only when
named with source_server, and backup_info says whose each backup is."""
from __future__ import absolute_import, division, print_function

import gzip
import json
import os
import socket
import subprocess

import pytest

from conftest import cluster, pg_bin


@pytest.fixture(scope='module')
def servers():
    """Servers a and b, each with database shop whose table marker holds its own letter."""
    with cluster() as a, cluster() as b:
        for pg, letter in ((a, 'A'), (b, 'B')):
            pg.psql('postgres', 'CREATE DATABASE shop')
            pg.psql('shop', "CREATE TABLE marker (who text); INSERT INTO marker VALUES ('%s')" % letter)
        yield dict(a=a, b=b)


def name_of(pg):
    return '%s:%d' % (socket.gethostname(), pg.port)


def backup(run_module, pg, dest, **kw):
    res = run_module('pg_backup', dict(pg.conn(), databases=['shop'], dest=dest, globals=False, **kw))
    assert not res.get('failed'), res
    return res


def restore(run_module, pg, dest, **kw):
    return run_module('pg_restore_verified', dict(pg.conn(), path=dest, database='shop', **kw))


def marker(pg, database):
    return pg.psql(database, 'SELECT who FROM marker')


@pytest.fixture
def shared(servers, dest, run_module):
    """Backups of a, then of b, into one directory (b's is the newest)."""
    a = backup(run_module, servers['a'], dest)
    b = backup(run_module, servers['b'], dest)
    yield dict(a=a, b=b)
    for pg in servers.values():
        pg.psql('postgres', 'DROP DATABASE IF EXISTS shop_check')


def test_each_backup_records_its_server_and_the_evidence(servers, shared, dest, run_module):
    info = run_module('backup_info', dict(path=dest))
    by_id = dict((b['id'], b) for b in info['backups'])
    a, b = by_id[shared['a']['id']], by_id[shared['b']['id']]
    assert (a['server'], b['server']) == (name_of(servers['a']), name_of(servers['b']))
    ids = [m['server_identity']['system_identifier'] for m in (a, b)]
    assert all(ids) and ids[0] != ids[1]                       # two clusters
    assert a['server_identity']['port'] == servers['a'].port
    only_a = run_module('backup_info', dict(path=dest, server=name_of(servers['a'])))
    assert [m['id'] for m in only_a['backups']] == [shared['a']['id']]


def test_a_restore_takes_its_own_servers_backup_even_when_another_is_newer(servers, shared, dest, run_module):
    res = restore(run_module, servers['a'], dest, mode='new', target='shop_check')
    assert not res.get('failed'), res
    assert res['backup_id'] == shared['a']['id'] and res['source_server'] == res['server'] == name_of(servers['a'])
    assert marker(servers['a'], 'shop_check') == 'A'
    assert res['checks']['system_identifier'].startswith('same cluster')


def test_another_servers_backup_id_is_refused_naming_that_server(servers, shared, dest, run_module):
    res = restore(run_module, servers['a'], dest, mode='new', target='shop_check', backup_id=shared['b']['id'])
    assert res['failed'] and res['failed_step'] == 'choose', res
    assert name_of(servers['b']) in res['msg'] and 'source_server' in res['msg'], res['msg']
    assert 'shop_check' not in servers['a'].psql('postgres', 'SELECT datname FROM pg_database').split()


def test_latest_of_a_database_only_another_server_has_is_refused(servers, dest, run_module):
    backup(run_module, servers['b'], dest)
    res = restore(run_module, servers['a'], dest, mode='test')
    assert res['failed'] and res['failed_step'] == 'choose', res
    assert 'for server %s' % name_of(servers['a']) in res['msg'] and name_of(servers['b']) in res['msg'], res['msg']


def test_a_cross_server_restore_is_on_purpose_and_audited_with_both_names(servers, shared, dest, run_module):
    res = restore(run_module, servers['a'], dest, mode='new', target='shop_check', source_server=name_of(servers['b']))
    assert not res.get('failed'), res
    assert res['backup_id'] == shared['b']['id'] and marker(servers['a'], 'shop_check') == 'B'
    assert res['checks']['system_identifier'].startswith('another cluster')
    with open(res['audit_log']) as f:
        audit = json.loads(f.read().splitlines()[-1])
    assert (audit['server'], audit['source_server']) == (name_of(servers['a']), name_of(servers['b']))
    assert audit['system_identifier'].startswith('another cluster')


def test_a_named_server_keeps_its_backups_whatever_it_connects_through(servers, dest, run_module):
    made = backup(run_module, servers['a'], dest, server='prod-a')
    assert run_module('backup_info', dict(path=dest))['backups'][0]['server'] == 'prod-a'
    unnamed = restore(run_module, servers['a'], dest, mode='test')
    assert unnamed['failed'] and unnamed['failed_step'] == 'choose', unnamed    # not this connection's name
    named = restore(run_module, servers['a'], dest, mode='test', server='prod-a')
    assert not named.get('failed') and named['backup_id'] == made['id'], named


def test_rotation_keeps_each_servers_newest(servers, shared, dest, run_module):
    args = dict(servers['a'].conn(), path=dest, older_than_days=0, min_keep=1)
    plan = run_module('backup_rotate', args, check_mode=True)
    assert not plan.get('failed'), plan
    assert sorted(d['id'] for d in plan['deleted']) == []      # each server's only backup is its newest
    backup(run_module, servers['a'], dest)
    res = run_module('backup_rotate', args)
    assert [d['id'] for d in res['deleted']] == [shared['a']['id']]        # a's older one; b's only one stays
    assert os.path.exists(shared['b']['backup_path'])


def test_a_bad_server_name_is_refused_naming_the_option(servers, dest, run_module):
    res = run_module('pg_backup', dict(servers['a'].conn(), databases=['shop'], dest=dest, server='a\nb'))
    assert res['failed'] and 'server must be a name' in res['msg'], res
    res = restore(run_module, servers['a'], dest, mode='test', source_server='')
    assert res['failed'] and 'source_server must be a name' in res['msg'], res


def test_a_replace_swaps_in_its_own_servers_backup(servers, shared, dest, run_module):
    servers['a'].psql('shop', "UPDATE marker SET who = 'changed'")
    res = restore(run_module, servers['a'], dest, mode='replace', pre_restore_backup=False)
    assert not res.get('failed'), res
    assert res['backup_id'] == shared['a']['id'] and marker(servers['a'], 'shop') == 'A'
    servers['a'].psql('postgres', 'DROP DATABASE %s' % res['rollback_database'])


def test_a_record_made_before_0_5_0_is_its_hosts_and_an_adopted_dump_its_named_servers(servers, dest, run_module):
    made = backup(run_module, servers['a'], dest)
    path = [os.path.join(dest, n) for n in os.listdir(dest) if n.endswith('.meta.json') and made['id'] in n][0]
    with open(path) as f:
        meta = json.load(f)
    for key in ('server', 'server_identity'):
        del meta[key]
    with open(path, 'w') as f:
        json.dump(meta, f)
    # a 0.4.0 record: its server is derived from its host (no container, the default port) - not server a's
    info = run_module('backup_info', dict(path=dest))
    assert [b['server'] for b in info['backups']] == [socket.gethostname()]
    refused = restore(run_module, servers['a'], dest, mode='test')
    assert refused['failed'] and socket.gethostname() in refused['msg'], refused
    ok = restore(run_module, servers['a'], dest, mode='test', source_server=socket.gethostname())
    assert not ok.get('failed') and ok['backup_id'] == made['id'], ok
    # a dump made outside pgops, adopted to server b: b's, not a's
    other = os.path.join(os.path.dirname(dest), 'adopt')
    os.makedirs(other)
    dump = os.path.join(other, 'shop_full_20241219_143022.sql.gz')
    with open(dump, 'wb') as f:
        f.write(gzip.compress(subprocess.run(
            [pg_bin('pg_dump'), '-h', '127.0.0.1', '-p', str(servers['b'].port), '-U', 'postgres', 'shop'],
            stdout=subprocess.PIPE, check=True).stdout))
    adopted = run_module('backup_adopt', dict(path=other, server=name_of(servers['b'])))
    assert not adopted.get('failed'), adopted
    assert run_module('backup_info', dict(path=other))['backups'][0]['server'] == name_of(servers['b'])
    assert restore(run_module, servers['a'], other, mode='test')['failed']
    assert not restore(run_module, servers['b'], other, mode='test').get('failed')
