# -*- coding: utf-8 -*-
"""pg_maintenance_info, pg_maintenance and playbooks/health_check.yml against a real PostgreSQL (natively and in
a container without Python): facts, expected tables from the backup catalog, check mode, history and report."""
from __future__ import absolute_import, division, print_function

import json
import os
import shutil
import subprocess

import pytest

from conftest import docker, free_port, image, run_playbook, seeded_container, wait_container_ready, wait_for

DB = 'pim_maint'


def by_name(tables):
    return dict(('%s.%s' % (t['schema'], t['name']), t) for t in tables)


def files(directory):
    return sorted(os.listdir(directory)) if os.path.isdir(directory) else []


def last_analyze(postgres, db, table):
    return postgres.psql(db, "SELECT coalesce(last_analyze::text, 'never') FROM pg_stat_user_tables "
                             "WHERE relname = '%s'" % table)


@pytest.fixture(scope='module')
def maint_db(postgres):
    postgres.create_db(DB)
    postgres.psql(DB, 'CREATE INDEX products_never_used_idx ON products (updated_at)')
    postgres.psql(DB, "CREATE TABLE fresh AS SELECT g AS id, repeat('x', 3000) AS doc FROM generate_series(1, 300) g")
    return DB


def test_info_collects_the_facts_and_reports_a_missing_table(postgres, maint_db, run_module):
    res = run_module('pg_maintenance_info', dict(postgres.conn(), databases=[maint_db],
                                                 expected_tables=['public.products', 'categories', 'public.orders']))
    assert not res.get('failed'), res
    assert res['changed'] is False
    db = res['databases'][0]
    assert db['name'] == maint_db and db['size_bytes'] > 1000000
    exp = db['expected_tables']
    assert exp['source'] == 'option' and exp['missing'] == ['public.orders'] and exp['checked']
    assert [a for a in res['alerts'] if a['check'] == 'expected_tables'][0]['level'] == 'critical'
    assert res['alerts'][0]['level'] == 'critical'   # most severe first
    tables = by_name(db['tables'])
    for t in db['tables']:
        assert t['heap_bytes'] + t['indexes_bytes'] + t['toast_bytes'] == t['total_bytes']
    assert tables['public.fresh']['toast_bytes'] > 0   # 3000-byte values are TOASTed
    assert tables['public.products']['reltuples'] == 1500 and tables['public.products']['live_tuples'] > 0
    assert tables['public.products']['last_analyze'] is not None   # the seed ends with ANALYZE
    assert tables['public.products']['bloat_bytes'] is not None and tables['public.products']['bloat_pct'] < 50
    unused = [ix['name'] for ix in db['unused_indexes']]
    assert 'products_never_used_idx' in unused
    assert not [n for n in unused if n.endswith('_pkey') or n.endswith('_key')]   # unique and PK left out
    assert 'products_never_used_idx' in [a['message'].split()[1].split('.')[1] for a in res['alerts']
                                         if a['check'] == 'unused_index']
    assert db['cache']['blocks'] > 0 and 0 <= db['cache']['hit_pct'] <= 100
    assert res['server']['connections']['by_database'][maint_db] >= 1
    assert res['server']['max_connections'] > 0 and res['server']['version_num'] >= 100000
    assert res['server']['long_running'] == [] and res['server']['idle_in_transaction'] == []


def test_info_sees_an_idle_in_transaction_session(postgres, maint_db, run_module):
    idle = subprocess.Popen([shutil.which('psql') or 'psql', '-X', '-q', '-h', '127.0.0.1', '-p', str(postgres.port),
                             '-U', 'postgres', '-d', maint_db], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                            universal_newlines=True)
    try:
        idle.stdin.write('BEGIN; SELECT 1;\n')
        idle.stdin.flush()
        wait_for(lambda: postgres.psql(maint_db, "SELECT count(*) FROM pg_stat_activity WHERE state = "
                                                 "'idle in transaction'") == '1', timeout=20)
        res = run_module('pg_maintenance_info', dict(postgres.conn(), databases=[maint_db], gather=['sessions'],
                                                     thresholds=dict(idle_in_transaction_seconds=0)))
        assert not res.get('failed'), res
        sessions = res['server']['idle_in_transaction']
        assert [s['database'] for s in sessions] == [maint_db]
        assert [a for a in res['alerts'] if a['check'] == 'idle_in_transaction']
        assert 'tables' not in res['databases'][0]   # gather limits the work
    finally:
        idle.stdin.close()
        idle.wait(timeout=20)


def test_expected_tables_come_from_the_newest_verified_backup(postgres, dest, run_module):
    db = 'pim_expected'
    postgres.create_db(db)
    postgres.psql(db, 'CREATE TABLE orders (id int PRIMARY KEY)')
    conn = postgres.conn()
    older = run_module('pg_backup', dict(conn, databases=[db], dest=dest))
    assert not older.get('failed'), older

    res = run_module('pg_maintenance_info', dict(conn, databases=[db], backup_dir=dest, gather=['expected_tables']))
    exp = res['databases'][0]['expected_tables']
    assert exp['source'] == 'newest_backup' and exp['backup_id'] == older['id'] and exp['missing'] == []
    assert 'public.orders' in exp['expected']
    assert 'no verified backup of pim_expected' in exp['note'] and 'no verified backup' in json.dumps(res.get('warnings'))

    # the older backup passes a restore drill; then orders is dropped and a newer, unverified backup is made
    meta_file = [os.path.join(dest, n) for n in files(dest) if n.endswith(older['id'] + '.meta.json') and n.startswith(db)][0]
    with open(meta_file) as f:
        meta = json.load(f)
    meta['verifications'] = [dict(verified_at=meta['finished_at'], result='passed', mode='test', rto_seconds=1.5)]
    with open(meta_file, 'w') as f:
        json.dump(meta, f)
    postgres.psql(db, 'DROP TABLE orders')
    newer = run_module('pg_backup', dict(conn, databases=[db], dest=dest))
    assert not newer.get('failed') and newer['id'] != older['id'], newer

    res = run_module('pg_maintenance_info', dict(conn, databases=[db], backup_dir=dest))
    exp = res['databases'][0]['expected_tables']
    assert exp['source'] == 'verified_backup' and exp['backup_id'] == older['id']
    assert exp['missing'] == ['public.orders']
    assert res['verifications'][0]['backup_id'] == older['id'] and res['verifications'][0]['result'] == 'passed'
    assert res['backups']['databases'][db]['newest_id'] != older['id']
    assert [p[2] for p in res['databases'][0]['size_series']].count('backup') == 2
    assert len(res['databases'][0]['backup_series']) == 2

    # an explicit empty list expects nothing
    res = run_module('pg_maintenance_info', dict(conn, databases=[db], backup_dir=dest, expected_tables=[]))
    assert res['databases'][0]['expected_tables']['missing'] == []
    assert not [a for a in res['alerts'] if a['check'] == 'expected_tables']


def test_check_mode_runs_and_writes_nothing_then_the_real_run_does(postgres, maint_db, dest, run_module):
    hist = os.path.join(dest, 'maintenance')
    args = dict(postgres.conn(), databases=[maint_db], backup_dir=dest, analyze_tables=['public.fresh'])
    assert last_analyze(postgres, maint_db, 'fresh') == 'never'

    check = run_module('pg_maintenance', args, check_mode=True)
    assert not check.get('failed'), check
    assert check['changed'] is True
    assert [(a['action'], a['target'], a['status']) for a in check['actions']] == [('analyze', 'public.fresh', 'planned')]
    assert check['actions'][0]['sql'] == 'ANALYZE "public"."fresh"'
    assert check['report_path'].startswith(hist + '/maintenance_') and check['report_path'].endswith('.html')
    assert not os.path.exists(dest)   # nothing written, not even the directory
    assert last_analyze(postgres, maint_db, 'fresh') == 'never'

    run = run_module('pg_maintenance', args)
    assert not run.get('failed'), run
    assert run['changed'] is True and run['actions'][0]['status'] == 'done'
    assert last_analyze(postgres, maint_db, 'fresh') != 'never'
    assert by_name(run['databases'][0]['tables'])['public.fresh']['last_analyze'] is not None
    names = files(hist)
    assert names == sorted([os.path.basename(run['record_path']), os.path.basename(run['report_path']),
                            'latest.html'])
    assert oct(os.stat(hist).st_mode & 0o777) == '0o750'
    assert oct(os.stat(run['record_path']).st_mode & 0o777) == '0o640'
    with open(run['record_path']) as f:
        record = json.load(f)
    assert record['databases'] == run['databases'] and record['alerts'] == run['alerts']
    assert record['actions'] == run['actions'] and record['history_runs'] == 0
    with open(run['report_path']) as f:
        html = f.read()
    assert 'products_never_used_idx' in html and 'id="chart-db-size"' in html
    assert 'http://' not in html.replace('http://www.w3.org', '') and 'https://' not in html   # self-contained

    again = run_module('pg_maintenance', dict(args, analyze_tables=[]))
    assert again['history_runs'] == 1 and again['actions'][0]['target'] == '(all tables)'
    sources = [p[2] for p in again['databases'][0]['size_series']]
    assert sources.count('maintenance') == 2   # the first run's record and this run
    assert len([n for n in files(hist) if n.endswith('.json')]) == 2


def test_vacuum_and_reindex_are_opt_in_and_checked_first(postgres, maint_db, dest, run_module):
    base = dict(postgres.conn(), databases=[maint_db], write_history=False)
    res = run_module('pg_maintenance', dict(base, analyze=False, vacuum=True, vacuum_tables=['public.missing_table'],
                                            reindex_indexes=['public.products_never_used_idx']))
    assert res['failed'] and 'vacuum_tables: public.missing_table (not found)' in res['msg'], res
    assert res['actions'] == []

    res = run_module('pg_maintenance', dict(base, analyze=False, reindex_indexes=['public.products']))
    assert res['failed'] and 'reindex_indexes: public.products (relkind r)' in res['msg'], res

    postgres.psql(maint_db, 'DELETE FROM fresh WHERE id > 150')
    res = run_module('pg_maintenance', dict(base, analyze=False, vacuum=True, vacuum_tables=['public.fresh'],
                                            reindex_indexes=['public.products_never_used_idx']))
    assert not res.get('failed'), res
    assert [(a['action'], a['sql']) for a in res['actions']] == [
        ('vacuum_analyze', 'VACUUM (ANALYZE) "public"."fresh"'),
        ('reindex', 'REINDEX INDEX CONCURRENTLY "public"."products_never_used_idx"')]
    fresh = by_name(res['databases'][0]['tables'])['public.fresh']
    assert fresh['last_vacuum'] is not None and fresh['dead_tuples'] == 0
    assert res['record_path'] is None and not os.path.exists(dest)


def test_all_databases_and_history_needs_a_directory(postgres, maint_db, run_module):
    res = run_module('pg_maintenance', dict(postgres.conn(), all_databases=True, analyze=False))
    assert res['failed'] and 'write_history is True' in res['msg'] and 'history_dir, backup_dir' in res['msg'], res
    res = run_module('pg_maintenance_info', dict(postgres.conn(), all_databases=True, gather=['connections']))
    assert maint_db in [d['name'] for d in res['databases']] and 'postgres' in [d['name'] for d in res['databases']]


# -- the same in a container without Python, reached with docker exec ------------------------------------------
NAME = 'pgops-functional-maint-%d' % os.getpid()


@pytest.fixture(scope='module')
def pg_container():
    """The seeded PostgreSQL 15 container without a network, an index never used, and no Python."""
    with seeded_container(NAME, image(15), ['--network', 'none', '-e', 'POSTGRES_PASSWORD=x'],
                          extra_sql='\nCREATE INDEX products_never_used_idx ON products (price);\n') as name:
        assert docker('exec', name, 'sh', '-c', 'rm -f /usr/bin/python3*; ! command -v python3').returncode == 0
        yield name


def test_container_without_python_gives_the_same_facts(pg_container, dest, run_module):
    args = dict(container=pg_container, login_user='pim_user', databases=['pim_dev'], backup_dir=dest,
                expected_tables=['public.products', 'public.orders'])
    res = run_module('pg_maintenance', args)
    assert not res.get('failed'), res
    db = res['databases'][0]
    assert db['expected_tables']['missing'] == ['public.orders']
    assert 'products_never_used_idx' in [ix['name'] for ix in db['unused_indexes']]
    assert by_name(db['tables'])['public.products']['reltuples'] == 1500
    assert res['actions'][0]['sql'] == 'ANALYZE' and res['actions'][0]['status'] == 'done'
    with open(res['record_path']) as f:
        assert json.load(f)['container'] == pg_container
    assert docker('stop', '-t', '1', pg_container).returncode == 0
    try:
        res = run_module('pg_maintenance_info', args)
        assert res['failed'] and 'is not running (status exited)' in res['msg']
    finally:
        docker('start', pg_container)
        wait_container_ready(pg_container)


# -- playbooks/health_check.yml, run as a user runs it ---------------------------------------------------------
def test_health_check_playbook_fails_on_a_missing_table_and_passes_once_it_exists(postgres, maint_db, dest,
                                                                                  run_module, collection_root,
                                                                                  tmp_path):
    postgres.psql(maint_db, 'DROP TABLE IF EXISTS orders')
    backup = run_module('pg_backup', dict(postgres.conn(), databases=[maint_db], dest=dest))
    assert not backup.get('failed'), backup
    extra = dict(maintenance_databases=[maint_db], pgops_login_host='127.0.0.1', pgops_port=postgres.port,
                 pgops_login_user='postgres', maintenance_backup_dir=dest,
                 maintenance_expected_tables=['public.products', 'public.orders'])
    rc, out = run_playbook(collection_root, 'health_check.yml', extra, tmp_path)
    assert rc != 0, out
    assert 'FAIL expected tables: %s missing public.orders' % maint_db in out, out
    assert 'PASS connection: %s reachable (PostgreSQL ' % maint_db in out, out
    assert 'PASS newest backup: %s %s' % (maint_db, backup['id']) in out, out
    assert 'PASS free disk: ' in out and 'SKIP container: ' in out and 'PASS connections: ' in out, out

    postgres.psql(maint_db, 'CREATE TABLE orders (id int)')
    try:
        rc, out = run_playbook(collection_root, 'health_check.yml', extra, tmp_path)
        assert rc == 0, out
        assert 'PASS expected tables: %s has all 2' % maint_db in out, out
        assert 'FAIL ' not in out
    finally:
        postgres.psql(maint_db, 'DROP TABLE orders')

    rc, out = run_playbook(collection_root, 'health_check.yml', dict(extra, pgops_port=free_port()), tmp_path)
    assert rc != 0
    assert 'FAIL connection: %s unreachable' % maint_db in out, out
