# -*- coding: utf-8 -*-
"""Drills in a throwaway instance (pg_restore_verified mode=test, instance auto / throwaway / server): a container
of the server container's own image, or a native instance of the host's binaries; the server sees no WAL and
nothing of the instance is left; a backup whose objects need a role the globals do not hold passes a same-server
drill and fails the throwaway one naming the role; a killed drill's instance is removed (and audited) by the next
run; a full disk where the instance's data goes fails before anything is made there."""
from __future__ import absolute_import, division, print_function

import json
import os
import pwd
import signal
import subprocess
import sys
import tempfile

import pytest

from conftest import cluster, docker, free_port, image, meta_of, playbook_runner, seeded_container, wait_for

NAME = 'pgops-functional-drill-%d' % os.getpid()


def wal_lsn(psql):
    return psql("SELECT pg_current_wal_insert_lsn()")


def wal_bytes(psql, before):
    return int(psql("SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), '%s')" % before))


def drill_containers():
    out = docker('ps', '-a', '--filter', 'label=pgops.drill.pid', '--format', '{{.Names}}').stdout.split()
    vols = docker('volume', 'ls', '-q', '--filter', 'label=pgops.drill.pid').stdout.split()
    return out, vols


def drill_dirs(parent):
    return sorted(n for n in os.listdir(parent) if n.startswith('pgops-drill-'))


@pytest.fixture(scope='module')
def pim():
    """The seeded PIM container (PostgreSQL 15, host network, trust)."""
    port = free_port()
    with seeded_container(NAME, image(15), ['--network', 'host', '-e', 'POSTGRES_HOST_AUTH_METHOD=trust',
                                            '-e', 'PGPORT=%d' % port]):
        yield NAME


def cpsql(sql):
    out = docker('exec', NAME, 'psql', '-X', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-U', 'pim_user', '-d', 'pim_dev',
                 '-c', sql)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_a_container_drill_runs_in_a_container_of_the_servers_image(pim, dest, run_module):
    conn = dict(container=pim, login_user='pim_user')
    backup = run_module('pg_backup', dict(conn, databases=['pim_dev'], dest=dest))
    assert not backup.get('failed'), backup
    before = wal_lsn(cpsql)
    sessions = cpsql("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'")
    res = run_module('pg_restore_verified', dict(conn, path=dest, database='pim_dev', mode='test'))
    assert res['result'] == 'passed', res
    inst = res['instance']
    assert inst['kind'] == 'container' and inst['network'] == 'none', inst
    own_image = docker('inspect', '--format', '{{.Image}}', pim).stdout.strip()
    assert inst['image_id'] == own_image, inst
    assert res['checks']['row_counts'] == 'passed' and res['checks']['system_identifier'].startswith('not compared')
    assert 'roles' in res['checks']
    # the server wrote no WAL for it (a same-server drill writes about the database's size)
    assert wal_bytes(cpsql, before) < 1 << 20
    assert cpsql("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'") == sessions
    assert drill_containers() == ([], []), drill_containers()
    recorded = meta_of(dest, res['backup_id'], 'pim_dev')['verifications'][-1]
    assert recorded['result'] == 'passed' and recorded['instance']['kind'] == 'container'
    assert 'instance_start' in res['phases'] and 'instance_remove' in res['phases']
    # the same-server drill, on purpose, for comparison: it is the server's WAL that carries it
    before = wal_lsn(cpsql)
    here = run_module('pg_restore_verified', dict(conn, path=dest, database='pim_dev', mode='test', instance='server'))
    assert here['result'] == 'passed' and here['instance']['kind'] == 'server', here
    assert wal_bytes(cpsql, before) > 1 << 20


def test_a_killed_container_drill_is_removed_and_audited_by_the_next(pim, dest, run_module):
    conn = dict(container=pim, login_user='pim_user')
    assert not run_module('pg_backup', dict(conn, databases=['pim_dev'], dest=dest)).get('failed')
    proc = run_module.popen('pg_restore_verified', dict(conn, path=dest, database='pim_dev', mode='test'))
    wait_for(lambda: drill_containers()[0], timeout=60, interval=0.1)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate()
    os.unlink(proc.args_path)
    assert drill_containers()[0], 'the killed run left its container'
    res = run_module('pg_restore_verified', dict(conn, path=dest, database='pim_dev', mode='test'))
    assert res['result'] == 'passed', res
    assert drill_containers() == ([], []), drill_containers()
    assert 'left by an interrupted drill' in json.dumps(res.get('warnings')), res.get('warnings')
    with open(os.path.join(dest, 'restore-audit.jsonl')) as f:
        lines = [json.loads(x) for x in f]
    interrupted = [x for x in lines if x['result'] == 'interrupted']
    assert interrupted and 'removed its throwaway instance' in interrupted[-1]['error'], interrupted


@pytest.fixture
def native():
    with cluster() as pg:
        pg.psql('postgres', 'CREATE DATABASE shop')
        pg.psql('shop', "CREATE TABLE items AS SELECT g AS id, md5(g::text) AS h FROM generate_series(1, 50000) g")
        yield pg


def native_psql(pg):
    return lambda sql: pg.psql('shop', sql).strip()


def test_a_native_drill_runs_in_a_temporary_instance(native, dest, run_module):
    backup = run_module('pg_backup', dict(native.conn(), databases=['shop'], dest=dest))
    assert not backup.get('failed'), backup
    parent = tempfile.mkdtemp(prefix='pgops-drills-')
    os.chmod(parent, 0o755)
    before = wal_lsn(native_psql(native))
    res = run_module('pg_restore_verified', dict(native.conn(), path=dest, database='shop', mode='test',
                                                 instance_dir=parent))
    assert res['result'] == 'passed' and res['instance']['kind'] == 'native', res
    assert res['instance']['directory'].startswith(parent + '/pgops-drill-')
    assert wal_bytes(native_psql(native), before) < 1 << 20
    assert drill_dirs(parent) == []
    os.rmdir(parent)


def test_a_role_the_globals_lack_fails_the_throwaway_drill_only(native, dest, run_module):
    native.psql('shop', 'CREATE ROLE catalog_app; ALTER TABLE items OWNER TO catalog_app')
    # no globals dump: the server has the role, a blank instance would not
    backup = run_module('pg_backup', dict(native.conn(), databases=['shop'], dest=dest, globals=False))
    assert not backup.get('failed'), backup
    here = run_module('pg_restore_verified', dict(native.conn(), path=dest, database='shop', mode='test',
                                                  instance='server'))
    assert here['result'] == 'passed', here
    blank = run_module('pg_restore_verified', dict(native.conn(), path=dest, database='shop', mode='test'))
    assert blank['failed'] and blank['failed_step'] == 'roles', blank
    assert 'catalog_app' in blank['msg'], blank['msg']
    assert blank['instance']['kind'] == 'native'
    # with the globals dump, the throwaway drill creates the role - in the instance, not on the server
    native.psql('shop', 'GRANT SELECT ON items TO PUBLIC')
    with_globals = run_module('pg_backup', dict(native.conn(), databases=['shop'], dest=dest))
    res = run_module('pg_restore_verified', dict(native.conn(), path=dest, database='shop', mode='test',
                                                 backup_id=with_globals['id']))
    assert res['result'] == 'passed' and 'catalog_app' in res['instance']['roles_created'], res
    assert 'roles_created' not in res
    with open(os.path.join(dest, 'restore-audit.jsonl')) as f:
        assert not [a for a in map(json.loads, f) if a.get('roles_created')]


def test_a_full_disk_where_the_instance_goes_fails_before_it_is_made(native, dest, run_module):
    backup = run_module('pg_backup', dict(native.conn(), databases=['shop'], dest=dest))
    assert not backup.get('failed'), backup
    small = tempfile.mkdtemp(prefix='pgops-small-')
    subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=16m', 'tmpfs', small], check=True)
    try:
        res = run_module('pg_restore_verified', dict(native.conn(), path=dest, database='shop', mode='test',
                                                     instance='throwaway', instance_dir=small))
        assert res['failed'] and res['failed_step'] == 'preflight', res
        assert 'not enough free space for the drill instance' in res['msg'] and small in res['msg'], res['msg']
        assert os.listdir(small) == []
    finally:
        subprocess.run(['umount', small], check=False)
        os.rmdir(small)


def test_the_backups_tablespaces_are_mapped_into_the_instance(native, dest, run_module):
    """A table in a tablespace of its own: the same-server drill finds the tablespace there; a blank instance has
    it only from the globals dump, mapped under the instance's directory; without the globals it fails naming it."""
    location = tempfile.mkdtemp(prefix='pgops-ts-')
    pw = pwd.getpwnam('postgres')
    os.chown(location, pw.pw_uid, pw.pw_gid)
    try:
        native.psql('postgres', "CREATE TABLESPACE ts_hot LOCATION '%s'" % location)
        native.psql('shop', 'CREATE TABLE hot TABLESPACE ts_hot AS SELECT g AS id FROM generate_series(1, 1000) g')
        parent = tempfile.mkdtemp(prefix='pgops-drills-')
        os.chmod(parent, 0o755)
        bare = run_module('pg_backup', dict(native.conn(), databases=['shop'], dest=dest, globals=False))
        blank = run_module('pg_restore_verified', dict(native.conn(), path=dest, database='shop', mode='test',
                                                       backup_id=bare['id'], instance='throwaway', instance_dir=parent))
        assert blank['failed'] and blank['verdict'] == 'inconclusive', (blank['msg'], blank['failed_step'])
        assert '"default_tablespace": "ts_hot"' in blank['msg'], blank['msg']
        backup = run_module('pg_backup', dict(native.conn(), databases=['shop'], dest=dest))
        res = run_module('pg_restore_verified', dict(native.conn(), path=dest, database='shop', mode='test',
                                                     backup_id=backup['id'], instance='throwaway', instance_dir=parent))
        assert res['result'] == 'passed', res
        mapped = res['instance']['tablespaces']
        assert list(mapped) == ['ts_hot'] and mapped['ts_hot'].startswith(res['instance']['directory'] + '/'), mapped
        assert res['checks']['row_counts'].startswith('passed'), res['checks']
        assert drill_dirs(parent) == [] and os.listdir(location) != []     # the server's tablespace untouched
        os.rmdir(parent)
    finally:
        native.psql('shop', 'DROP TABLE IF EXISTS hot')
        native.psql('postgres', 'DROP TABLESPACE IF EXISTS ts_hot')
        os.rmdir(location)


def test_a_killed_native_drill_is_stopped_removed_and_audited_by_the_next(native, dest, run_module):
    native.psql('shop', "CREATE TABLE bulk AS SELECT g AS id, md5(g::text) AS a, md5((-g)::text) AS b "
                        "FROM generate_series(1, 600000) g")
    backup = run_module('pg_backup', dict(native.conn(), databases=['shop'], dest=dest))
    assert not backup.get('failed'), backup
    parent = tempfile.mkdtemp(prefix='pgops-drills-')
    os.chmod(parent, 0o755)
    args = dict(native.conn(), path=dest, database='shop', mode='test', instance='throwaway', instance_dir=parent)
    proc = run_module.popen('pg_restore_verified', args)

    def started():
        return [d for d in drill_dirs(parent) if os.path.exists(os.path.join(parent, d, 'data', 'postmaster.pid'))]
    wait_for(started, timeout=60, interval=0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate()
    os.unlink(proc.args_path)
    left = drill_dirs(parent)
    assert left, 'the killed run left its instance'
    res = run_module('pg_restore_verified', args)
    assert res['result'] == 'passed', res
    assert drill_dirs(parent) == [], (drill_dirs(parent), res.get('warnings'), os.listdir(os.path.join(parent, left[0])))
    # no postgres of the killed run's instance is still running
    assert subprocess.run(['pgrep', '-f', os.path.join(parent, left[0])], check=False).returncode == 1
    with open(os.path.join(dest, 'restore-audit.jsonl')) as f:
        interrupted = [x for x in map(json.loads, f) if x['result'] == 'interrupted']
    assert interrupted and 'removed its throwaway instance %s' % os.path.join(parent, left[0]) in interrupted[-1]['error']
    os.rmdir(parent)


@pytest.fixture
def s3():
    import s3server
    server = s3server.S3Server()
    try:
        server.start()
        server.client().create_bucket(Bucket='pgops-drills')
        yield server
    finally:
        server.stop()


def test_a_drill_host_rehearses_the_recovery_from_the_off_site_copy(pim, dest, run_module, s3, tmp_path):
    """Another host (no server container there, no connection to the server): fetch the newest copy from the
    bucket, then drill it in a container of the server's image - the disaster-recovery path with its RTO."""
    import s3server
    conn = dict(container=pim, login_user='pim_user')
    b = run_module('pg_backup', dict(conn, databases=['pim_dev'], dest=dest))
    assert not b.get('failed'), b
    bucket = dict(bucket='pgops-drills', prefix='pim', endpoint_url=s3.endpoint, region='us-east-1',
                  access_key=s3server.ACCESS_KEY, secret_key=s3server.SECRET_KEY)
    pushed = run_module('backup_offsite', dict(bucket, path=dest, policy='all', databases=['pim_dev']))
    assert not pushed.get('failed') and pushed['pushed'], pushed
    drill_host = str(tmp_path / 'fetched')
    fetched = run_module('backup_offsite', dict(bucket, state='fetched', database='pim_dev', dest=drill_host))
    assert not fetched.get('failed') and fetched['backup_id'] == b['id'], fetched
    server = meta_of(dest, b['id'], 'pim_dev')['server']
    res = run_module('pg_restore_verified', dict(login_user='pim_user', path=drill_host, database='pim_dev',
                                                 mode='test', instance='throwaway', source_server=server,
                                                 instance_image=docker('inspect', '--format', '{{.Config.Image}}',
                                                                       pim).stdout.strip()))
    assert res['result'] == 'passed' and res['instance']['kind'] == 'container', res
    assert res['checks']['roles'] and res['rto_seconds'] > 0
    assert meta_of(drill_host, b['id'], 'pim_dev')['verifications'][-1]['instance']['kind'] == 'container'
    assert drill_containers() == ([], [])


def test_the_drill_role_on_a_drill_host_fetches_the_copies_and_drills_them(
        pim, dest, run_module, s3, tmp_path, collection_root):
    """restore_drill.yml over a drill host (restore_drill_from_offsite): the newest off-site copy of each database
    is fetched and drilled in a throwaway container of the server's image; the server's directory is not read."""
    import s3server
    conn = dict(container=pim, login_user='pim_user')
    b = run_module('pg_backup', dict(conn, databases=['pim_dev'], dest=dest))
    bucket = dict(bucket='pgops-drills', prefix='host', endpoint_url=s3.endpoint, region='us-east-1',
                  access_key=s3server.ACCESS_KEY, secret_key=s3server.SECRET_KEY)
    assert not run_module('backup_offsite', dict(bucket, path=dest, policy='all', databases=['pim_dev'])).get('failed')
    server = meta_of(dest, b['id'], 'pim_dev')['server']
    fetched = str(tmp_path / 'drill-host')
    os.makedirs(fetched)
    run = playbook_runner(collection_root, {'drill_hosts': {'hosts': {'localhost': {
        'ansible_connection': 'local', 'ansible_python_interpreter': sys.executable}}}}, tmp_path)
    rc, out = run('restore_drill.yml', '-e', json.dumps(dict(
        pgops_hosts='drill_hosts', pgops_login_user='pim_user', pgops_server=server, pgops_databases=['pim_dev'],
        pgops_offsite_bucket='pgops-drills', pgops_offsite_prefix='host', pgops_offsite_endpoint_url=s3.endpoint,
        pgops_offsite_region='us-east-1', pgops_offsite_access_key=s3server.ACCESS_KEY,
        pgops_offsite_secret_key=s3server.SECRET_KEY, pgops_offsite_addressing_style='path',
        restore_drill_from_offsite=True, restore_drill_offsite_backup_id='latest', restore_drill_backup_dir=fetched,
        restore_drill_instance='throwaway', restore_drill_count=1, metrics_enabled=False,
        restore_drill_instance_image=docker('inspect', '--format', '{{.Config.Image}}', pim).stdout.strip())))
    assert rc == 0, out[-3000:]
    assert s3server.SECRET_KEY not in out
    assert 'PASS pim_dev %s' % b['id'] in out, out[-3000:]
    verification = meta_of(fetched, b['id'], 'pim_dev')['verifications'][-1]
    assert verification['result'] == 'passed' and verification['instance']['kind'] == 'container', verification
    assert drill_containers() == ([], [])
