# -*- coding: utf-8 -*-
"""pg_backup against PostgreSQL in a real container (docker exec), including a stopped container."""
from __future__ import absolute_import, division, print_function

import json
import os
import signal
import time

import pytest

from conftest import argv_while_running, docker, free_port, image, seeded_container, wait_container_ready, wait_for
from conftest import sha256
from test_pg_backup import visible

NAME = 'pgops-functional-pg-%d' % os.getpid()
PASSWORD = 'ContainerPw-%d' % os.getpid()


@pytest.fixture(scope='module')
def pg_container():
    """The seeded PostgreSQL 15 container on the host network, password authentication over TCP."""
    port = free_port()
    with seeded_container(NAME, image(15), ['--network', 'host', '-e', 'POSTGRES_PASSWORD', '-e', 'PGPORT=%d' % port],
                          env=dict(os.environ, POSTGRES_PASSWORD=PASSWORD)):
        yield dict(name=NAME, port=port)


def test_container_backup_then_stopped_container_fails_cleanly(pg_container, dest, run_module):
    args = dict(container=NAME, login_user='pim_user', databases=['pim_dev'], dest=dest, kind='full')
    ok = run_module('pg_backup', args)
    assert not ok.get('failed'), ok
    assert ok['backups'][0]['container'] == NAME and ok['rows_total'] > 5000
    # pg_dump runs in the container: the CPU of our child, docker exec, is not pg_dump's and is not reported
    assert 'pg_dump' not in ok['backups'][0]['phases'].get('cpu_seconds', {}), ok['backups'][0]['phases']
    assert sha256(ok['backup_path']) == ok['sha256']
    before = dict((n, sha256(os.path.join(dest, n))) for n in visible(dest))

    assert docker('stop', '-t', '2', NAME).returncode == 0
    try:
        res = run_module('pg_backup', args)
        assert res['failed'], res
        assert 'container %s is not running (status exited)' % NAME in res['msg']
        after = visible(dest)
        new = [n for n in after if n not in before]
        assert len(new) == 1 and new[0].endswith('.meta.json'), new   # the failure is recorded; no dump
        with open(os.path.join(dest, new[0])) as f:
            failed = json.load(f)
        assert failed['status'] == 'failed' and failed['file'] is None and failed['failed_step'] == 'preflight'
        assert dict((n, sha256(os.path.join(dest, n))) for n in before) == before
    finally:
        assert docker('start', NAME).returncode == 0
        wait_container_ready(NAME)


def test_container_password_over_tcp_stays_out_of_argv(pg_container, dest, run_module):
    args = dict(container=NAME, login_user='pim_user', login_password=PASSWORD, login_host='127.0.0.1',
                port=pg_container['port'], databases=['pim_dev'], dest=dest, format='custom')
    proc = run_module.popen('pg_backup', args)
    seen = argv_while_running(proc)
    res = run_module.result(proc)
    assert not res.get('failed'), res
    assert any(b'docker\x00exec' in c for c in seen)
    assert not any(PASSWORD.encode() in c for c in seen)
    assert PASSWORD not in json.dumps(res)
    listing = docker('exec', '-i', NAME, 'pg_restore', '--list', stdin=open(res['backup_path'], 'rb'))
    assert listing.returncode == 0 and 'TABLE DATA public products' in listing.stdout


def test_wrong_password_fails_with_a_clear_message(pg_container, dest, run_module):
    res = run_module('pg_backup', dict(container=NAME, login_user='pim_user', login_password='wrong',
                                       login_host='127.0.0.1', port=pg_container['port'], databases=['pim_dev'],
                                       dest=dest))
    assert res['failed'] and 'cannot connect to database pim_dev (container %s)' % NAME in res['msg']
    assert 'password authentication failed' in res['msg']


def test_container_restore_drill_and_replace(pg_container, dest, run_module):
    conn = dict(container=NAME, login_user='pim_user')
    for fmt in ('plain', 'custom'):
        b = run_module('pg_backup', dict(conn, databases=['pim_dev'], dest=dest, format=fmt, compression='gzip'))
        assert not b.get('failed'), b
        drill = run_module('pg_restore_verified', dict(conn, path=dest, database='pim_dev', backup_id=b['id'],
                                                       mode='test'))
        assert not drill.get('failed'), drill
        assert drill['checks']['row_counts'] == 'passed' and drill['checks']['rows_verified'] == b['rows_total']
    wipe = docker('exec', NAME, 'psql', '-X', '-q', '-U', 'pim_user', '-d', 'pim_dev', '-c', 'DELETE FROM product_attributes')
    assert wipe.returncode == 0, wipe.stderr
    res = run_module('pg_restore_verified', dict(conn, path=dest, database='pim_dev', mode='replace'))
    assert not res.get('failed'), res
    count = docker('exec', NAME, 'psql', '-X', '-A', '-t', '-U', 'pim_user', '-d', 'pim_dev', '-c',
                   'SELECT count(*) FROM product_attributes')
    assert count.stdout.strip() == '4500'
    assert res['rollback_database'].startswith('pim_dev__rollback_')


def test_killed_module_commits_nothing_inside_the_container(pg_container, dest, run_module):
    """The docker client dies with the module; the psql inside the container then reads the end of its input
    without our COMMIT, so the server rolls the restore back (psql --single-transaction would commit it)."""
    conn = dict(container=NAME, login_user='pim_user')
    sql = ("DROP DATABASE IF EXISTS bigc", "CREATE DATABASE bigc")
    for q in sql:
        assert docker('exec', NAME, 'psql', '-X', '-q', '-U', 'pim_user', '-d', 'pim_dev', '-c', q).returncode == 0
    fill = docker('exec', NAME, 'psql', '-X', '-q', '-U', 'pim_user', '-d', 'bigc', '-c',
                  "CREATE TABLE big AS SELECT g AS id, md5(g::text) || repeat('c', 300) AS payload "
                  "FROM generate_series(1, 300000) g; CREATE INDEX ON big (payload)")
    assert fill.returncode == 0, fill.stderr
    b = run_module('pg_backup', dict(conn, databases=['bigc'], dest=dest))
    assert not b.get('failed'), b
    # a drill on the server (the throwaway instance is tested in test_drill_instance.py)
    proc = run_module.popen('pg_restore_verified', dict(conn, path=dest, database='bigc', mode='test',
                                                        instance='server'))

    def in_container_restore():
        out = docker('exec', NAME, 'sh', '-c', 'pgrep -f "psql.*[V]ERBOSITY=verbose" || true').stdout.split()
        return out or None

    wait_for(in_container_restore, timeout=60, interval=0.1)
    time.sleep(0.5)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate()
    os.unlink(proc.args_path)
    wait_for(lambda: not in_container_restore(), timeout=30, interval=0.2)
    scratch = 'bigc__restore_%s' % b['id']
    tables = docker('exec', NAME, 'psql', '-X', '-A', '-t', '-U', 'pim_user', '-d', scratch, '-c',
                    "SELECT count(*) FROM pg_class WHERE relname = 'big'")
    assert tables.returncode == 0 and tables.stdout.strip() == '0', tables   # nothing was committed
    again = run_module('pg_restore_verified', dict(conn, path=dest, database='bigc', mode='test', instance='server'))
    assert not again.get('failed'), again
    assert 'left by an interrupted restore' in json.dumps(again.get('warnings')), again
    listed = docker('exec', NAME, 'psql', '-X', '-A', '-t', '-U', 'pim_user', '-d', 'pim_dev', '-c',
                    "SELECT count(*) FROM pg_database WHERE datname LIKE 'bigc\\_\\_restore%'")
    assert listed.stdout.strip() == '0'
