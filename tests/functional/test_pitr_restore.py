# -*- coding: utf-8 -*-
"""pgbackrest_restore on a real PostgreSQL 15 archiving into a real pgBackRest repository (host packages).

The story of every test: 50 orders, a full backup, 50 more orders, the time noted (the server's now()), a DELETE
by mistake of all but 20, the WAL switched and archived. A restore to the noted time must have exactly the 100
orders of that moment, a restore to the end of the archive the 20 left; nothing may touch the running server
until a confirmed replace, and a failure at any step must leave it as it was.
"""
from __future__ import absolute_import, division, print_function

import datetime
import json
import os
import signal
import socket
import subprocess
import time

import pytest

from conftest import pg_bin, wait_for
from pgbackrest_cluster import make_pgbackrest_cluster

MODULE = 'pgbackrest_restore'


def story(c):
    """The orders of the story; returns the noted time (server's now() between the inserts and the DELETE)."""
    c.psql('postgres', 'CREATE TABLE orders (id int PRIMARY KEY, note text NOT NULL)')
    c.psql('postgres', "INSERT INTO orders SELECT g, 'order ' || g FROM generate_series(1, 50) g")
    c.backup('full')
    c.psql('postgres', "INSERT INTO orders SELECT g, 'order ' || g FROM generate_series(51, 100) g")
    noted = c.psql('postgres', 'SELECT now()')
    time.sleep(0.3)
    c.psql('postgres', 'DELETE FROM orders WHERE id > 20')
    c.switch_wal()
    return noted


def count(c, port=None, host='127.0.0.1'):
    out = subprocess.run([pg_bin('psql'), '-X', '-A', '-t', '-h', host, '-p', str(port or c.port), '-U', 'postgres',
                          '-d', 'postgres', '-c', 'SELECT count(*) FROM orders'], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, universal_newlines=True, check=True)
    return int(out.stdout.strip())


def fingerprint(c):
    """What "untouched" means: the same postmaster running on the same data directory, with the same rows."""
    with open(os.path.join(c.data_directory, 'postmaster.pid')) as f:
        pid = int(f.readline())
    return dict(pid=pid, alive=os.path.exists('/proc/%d' % pid), rows=count(c),
                inode=os.stat(c.data_directory).st_ino, sysid=c.psql('postgres', 'SELECT system_identifier FROM '
                                                                                 'pg_control_system()'))


def running_argv():
    seen = []
    for pid in os.listdir('/proc'):
        if pid.isdigit():
            try:
                with open('/proc/%s/cmdline' % pid, 'rb') as f:
                    seen.append(f.read())
            except (IOError, OSError):
                continue
    return seen


def leftovers(c):
    return sorted(n for n in os.listdir(c.base) if '.pgops-' in n and not n.endswith(('.log', '.lock')))


@pytest.fixture(scope='module')
def cluster():
    with make_pgbackrest_cluster(prefix='pgops-pitr-r-') as c:
        c.noted = story(c)
        yield c


def test_check_mode_tells_the_plan_and_touches_nothing(run_module, cluster):
    before = fingerprint(cluster)
    r = run_module(MODULE, cluster.module_args(mode='new', target_time=cluster.noted), check_mode=True)
    assert not r.get('failed'), r
    assert r['changed'] is True
    assert r['target']['type'] == 'time'
    assert r['recoverable_window']['start'] <= r['recoverable_window']['end']
    assert any('pgbackrest restore' in step for step in r['plan'])
    assert leftovers(cluster) == []
    assert fingerprint(cluster) == before


def test_restore_to_the_noted_time_has_exactly_the_rows_of_that_moment(run_module, cluster):
    before = fingerprint(cluster)
    r = run_module(MODULE, cluster.module_args(
        mode='test', target_time=cluster.noted, databases=['postgres'], expected_tables=['public.orders'], amcheck=True,
        assertions=[dict(sql='SELECT count(*) = 100 AND max(id) = 100 FROM orders'),
                    dict(database='postgres', sql="SELECT bool_and(note = 'order ' || id) FROM orders")]))
    assert not r.get('failed'), r
    assert r['result'] == 'passed'
    assert r['verification']['assertions'] == 'passed'
    assert r['verification']['amcheck'].startswith('passed')
    assert r['verification']['expected_tables'] == 'passed'
    # ISO-8601 UTC, at or before the noted moment
    assert r['recovered_to'].endswith('Z') and 'T' in r['recovered_to'], r['recovered_to']
    assert datetime.datetime.fromisoformat(r['recovered_to']) <= datetime.datetime.fromisoformat(cluster.noted)
    assert r['rto_seconds'] > 0
    print('RTO test (time target): %.2fs phases %s' % (r['rto_seconds'], r['phases']))
    assert leftovers(cluster) == []
    assert fingerprint(cluster) == before


def test_restore_to_latest_has_everything_archived(run_module, cluster):
    r = run_module(MODULE, cluster.module_args(mode='test', assertions=[dict(sql='SELECT count(*) = 20 FROM orders')]))
    assert not r.get('failed'), r
    assert r['target']['type'] == 'latest'
    assert r['verification']['assertions'] == 'passed'
    assert leftovers(cluster) == []


def test_restore_to_a_named_restore_point(run_module, cluster):
    # story(): switch_wal() makes the restore point pgops-switch after the DELETE
    r = run_module(MODULE, cluster.module_args(mode='test', target_name='pgops-switch',
                                               assertions=[dict(sql='SELECT count(*) = 20 FROM orders')]))
    assert not r.get('failed'), r
    assert r['target'] == dict(type='name', value='pgops-switch')
    r = run_module(MODULE, cluster.module_args(mode='test', target_name='no-such-point'))
    assert r.get('failed') and r['failed_step'] in ('start', 'recovery'), r
    assert 'recovery ended before configured recovery target was reached' in r['msg']
    assert leftovers(cluster) == []


@pytest.mark.parametrize('when, word', [('before', 'before the recoverable window'),
                                        ('after', 'after the recoverable window')])
def test_target_outside_the_window_is_refused_with_the_window(run_module, cluster, when, word):
    before = fingerprint(cluster)
    shift = "- interval '1 day'" if when == 'before' else "+ interval '1 hour'"
    target = cluster.psql('postgres', 'SELECT now() %s' % shift)
    for check_mode in (True, False):
        r = run_module(MODULE, cluster.module_args(mode='new', target_time=target), check_mode=check_mode)
        assert r.get('failed'), r
        assert r['failed_step'] == 'target'
        assert word in r['msg']
        window = r['recoverable_window']
        assert window['start'] in r['msg'] and window['end'] in r['msg']
        assert 'nothing was created' in r['msg']
    assert leftovers(cluster) == []
    assert fingerprint(cluster) == before


def test_replace_without_confirm_is_refused(run_module, cluster):
    before = fingerprint(cluster)
    r = run_module(MODULE, cluster.module_args(mode='replace', target_time=cluster.noted))
    assert r.get('failed'), r
    assert 'confirm' in r['msg']
    assert r['failed_step'] == 'options'
    assert leftovers(cluster) == []
    assert fingerprint(cluster) == before


def test_a_failing_assertion_removes_the_scratch_and_leaves_the_server(run_module, cluster):
    before = fingerprint(cluster)
    r = run_module(MODULE, cluster.module_args(mode='new', target_time=cluster.noted,
                                               assertions=[dict(sql='SELECT count(*) = 99 FROM orders')]))
    assert r.get('failed'), r
    assert r['failed_step'] == 'verify'
    assert 'returned f' in r['msg']
    assert r['verification']['assertions'] == 'failed'
    assert r['scratch']['removed'] is True
    assert not os.path.exists(r['scratch']['directory'])
    assert leftovers(cluster) == []
    assert fingerprint(cluster) == before


def test_new_leaves_a_scratch_to_copy_rows_back_from(run_module, cluster):
    r = run_module(MODULE, cluster.module_args(mode='new', target_time=cluster.noted))
    assert not r.get('failed'), r
    scratch = r['scratch']
    try:
        assert scratch['running'] is True
        assert count(cluster, port=scratch['port']) == 100
        assert count(cluster, port=scratch['port'], host=scratch['socket_directory']) == 100
        # the scratch never archives into the repository
        archive = subprocess.run([pg_bin('psql'), '-X', '-A', '-t', '-h', '127.0.0.1', '-p', str(scratch['port']),
                                  '-U', 'postgres', '-d', 'postgres', '-c', 'SHOW archive_mode'],
                                 stdout=subprocess.PIPE, universal_newlines=True, check=True).stdout.strip()
        assert archive == 'off'
        print('RTO new: %.2fs' % r['rto_seconds'])
        # copy the deleted rows back into the running server
        dump = subprocess.Popen([pg_bin('psql'), '-X', '-h', '127.0.0.1', '-p', str(scratch['port']), '-U', 'postgres',
                                 '-d', 'postgres', '-c', 'COPY (SELECT * FROM orders WHERE id > 20) TO STDOUT'],
                                stdout=subprocess.PIPE)
        subprocess.run([pg_bin('psql'), '-X', '-h', '127.0.0.1', '-p', str(cluster.port), '-U', 'postgres', '-d',
                        'postgres', '-c', 'COPY orders FROM STDIN'], stdin=dump.stdout, check=True)
        dump.stdout.close()
        assert dump.wait() == 0
        assert count(cluster) == 100
    finally:
        subprocess.run(scratch['stop_command'], check=False)
        subprocess.run(['rm', '-rf', scratch['directory']], check=True)
    cluster.psql('postgres', 'DELETE FROM orders WHERE id > 20')   # the story as it was for the next tests
    assert leftovers(cluster) == []


def test_kill_9_during_the_restore_leaves_the_server_running_and_untouched(run_module, cluster):
    before = fingerprint(cluster)
    proc = run_module.popen(MODULE, cluster.module_args(mode='test', target_time=cluster.noted))

    def restoring():
        for name in leftovers(cluster):
            data = os.path.join(cluster.base, name, 'data')
            if os.path.isdir(data) and os.listdir(data):
                return True
        return proc.poll() is not None
    wait_for(restoring, timeout=60, interval=0.02)
    assert proc.poll() is None, 'the restore finished before it could be killed: %s' % proc.communicate()[0]
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.communicate()
    os.unlink(proc.args_path)
    assert fingerprint(cluster) == before
    assert count(cluster) == 20
    # pgbackrest died with the module; its restore:local workers (its own children, which no death signal reaches)
    # exit when they see their pipe closed, and the next run kills any still writing into the scratch it removes
    r = run_module(MODULE, cluster.module_args(mode='test'))
    assert not r.get('failed'), (r.get('msg'), r.get('failed_step'))
    assert len(r['cleaned']) == 1
    assert not [a for a in running_argv() if b'pgbackrest' in a and b'restore' in a and cluster.base.encode() in a]
    assert leftovers(cluster) == []
    assert fingerprint(cluster) == before


def test_replace_with_confirm_then_rollback(run_module):
    # a cluster of its own: this test stops the server and switches its data directory
    with make_pgbackrest_cluster(prefix='pgops-pitr-r-') as c:
        noted = story(c)
        original_sysid = c.psql('postgres', 'SELECT system_identifier FROM pg_control_system()')
        # a failure after the switch switches back: this assertion holds on the scratch (its port) only
        from conftest import free_port
        port = free_port()
        r = run_module(MODULE, c.module_args(mode='replace', confirm=True, target_time=noted, scratch_port=port,
                                             assertions=[dict(sql="SELECT current_setting('port') = '%d'" % port)]))
        assert r.get('failed') and r['failed_step'] == 'swap', r
        assert 'switched back' in r['msg'] and 'SWITCHING BACK FAILED' not in r['msg']
        assert r['verification']['scratch']['assertions'] == 'passed'
        assert r['verification']['switched']['assertions'] == 'failed'
        assert count(c) == 20
        assert leftovers(c) == [], leftovers(c)
        assert 'rollback' not in r

        r = run_module(MODULE, c.module_args(mode='replace', confirm=True, target_time=noted,
                                             assertions=[dict(sql='SELECT count(*) = 100 FROM orders')]))
        assert not r.get('failed'), r
        print('RTO replace: %.2fs phases %s' % (r['rto_seconds'], r['phases']))
        assert count(c) == 100
        assert r['verification']['switched']['assertions'] == 'passed'
        kept = r['rollback']['directory']
        assert os.path.isdir(kept) and kept.startswith(c.data_directory + '.pgops-rollback-')
        assert c.psql('postgres', 'SELECT system_identifier FROM pg_control_system()') == original_sysid
        assert c.psql('postgres', 'SHOW archive_mode') == 'on'
        assert not any('.pgops-restore-' in n for n in os.listdir(c.base))
        # the new timeline reaches the archive: the server archives again
        c.psql('postgres', "INSERT INTO orders VALUES (1000, 'after the replace')")
        c.switch_wal()
        assert c.psql('postgres', 'SELECT failed_count FROM pg_stat_archiver') == '0'
        archived = [n for dummy, dummy2, names in os.walk(c.repo_path) for n in names]
        assert any(n.startswith('00000002.history') for n in archived), archived

        r = run_module(MODULE, c.module_args(mode='rollback'))
        assert r.get('failed') and 'confirm' in r['msg'], r
        r = run_module(MODULE, c.module_args(mode='rollback', confirm=True))
        assert not r.get('failed'), r
        print('RTO rollback: %.2fs' % r['rto_seconds'])
        assert count(c) == 20
        assert os.path.isdir(r['rollback']['replaced_directory'])
        assert not os.path.exists(kept)


# -- PostgreSQL in a container: the scratch is a new container on the same image with a new volume ---------------
CONTAINER = 'pgops-pitr-r-pg-%d' % os.getpid()
PGBACKREST_CONF = """[global]
repo1-path=/var/lib/pgbackrest
repo1-retention-full=2
start-fast=y

[main]
pg1-path=/var/lib/postgresql/data
pg1-port=%d
pg1-socket-path=/var/run/postgresql
"""


def docker(*args, **kw):
    check = kw.pop('check', True)
    proc = subprocess.run(['docker'] + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, check=False, **kw)
    if check and proc.returncode != 0:
        raise AssertionError('docker %s failed: %s' % (' '.join(args), proc.stderr))
    return proc.stdout.strip()


class ContainerCluster(object):
    def __init__(self, name, port):
        self.name = name
        self.port = port

    def psql(self, sql, container=None, extra=()):
        return docker('exec', '-u', 'postgres', container or self.name, 'psql', '-X', '-q', '-A', '-t', '-v',
                      'ON_ERROR_STOP=1', *(list(extra) + ['-d', 'postgres', '-c', sql]))

    def pgbackrest(self, *args):
        return docker('exec', '-u', 'postgres', self.name, 'pgbackrest', '--stanza=main', *args)

    def module_args(self, **extra):
        return dict(dict(container=self.name, login_user='postgres', stanza='main'), **extra)

    def scratches(self):
        return docker('ps', '-a', '--filter', 'label=pgops.restore.of=%s' % self.name, '--format', '{{.Names}}').split()

    def scratch_volumes(self):
        return docker('volume', 'ls', '-q', '--filter', 'label=pgops.restore.of=%s' % self.name).split()


@pytest.fixture(scope='module')
def pg_container(tmp_path_factory):
    if subprocess.run(['docker', 'version'], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                      check=False).returncode != 0:
        pytest.fail('docker does not answer: run make test (it starts dockerd)')
    from conftest import free_port
    port = free_port()
    c = ContainerCluster(CONTAINER, port)
    try:
        docker('run', '-d', '--name', CONTAINER, '--network', 'host', '-e', 'POSTGRES_PASSWORD=unused-here',
               '-e', 'PGPORT=%d' % port, '--mount', 'type=volume,source=%s-data,target=/var/lib/postgresql/data'
               % CONTAINER, '--mount', 'type=volume,source=%s-repo,target=/var/lib/pgbackrest' % CONTAINER,
               os.environ.get('PGOPS_IMAGE_15', 'pgops/postgres:15'), 'postgres', '-c', 'wal_level=replica',
               '-c', 'archive_mode=on', '-c', 'archive_command=pgbackrest --stanza=main archive-push %p')
        wait_for(lambda: subprocess.run(['docker', 'exec', CONTAINER, 'pg_isready', '-q', '-U', 'postgres'],
                                        check=False).returncode == 0, timeout=60, interval=0.3)
        conf = tmp_path_factory.mktemp('pitr-conf') / 'pgbackrest.conf'
        conf.write_text(PGBACKREST_CONF % port)
        docker('cp', str(conf), '%s:/etc/pgbackrest/pgbackrest.conf' % CONTAINER)   # as the role copies it
        docker('exec', CONTAINER, 'chown', 'postgres:postgres', '/etc/pgbackrest/pgbackrest.conf')
        docker('exec', CONTAINER, 'chmod', '0640', '/etc/pgbackrest/pgbackrest.conf')
        c.pgbackrest('stanza-create')
        c.pgbackrest('check')
        c.psql('CREATE TABLE orders (id int PRIMARY KEY, note text NOT NULL)')
        c.psql("INSERT INTO orders SELECT g, 'order ' || g FROM generate_series(1, 50) g")
        c.pgbackrest('--type=full', 'backup')
        c.psql("INSERT INTO orders SELECT g, 'order ' || g FROM generate_series(51, 100) g")
        c.noted = c.psql('SELECT now()')
        time.sleep(0.3)
        c.psql('DELETE FROM orders WHERE id > 20')
        before = c.psql('SELECT archived_count FROM pg_stat_archiver')
        c.psql('SELECT pg_switch_wal()')
        wait_for(lambda: c.psql('SELECT archived_count FROM pg_stat_archiver') != before, timeout=60, interval=0.2)
        yield c
    finally:
        for name in c.scratches():
            docker('rm', '-f', name, check=False)
        for name in c.scratch_volumes():
            docker('volume', 'rm', name, check=False)
        docker('rm', '-f', CONTAINER, check=False)
        docker('volume', 'rm', CONTAINER + '-data', CONTAINER + '-repo', check=False)


def test_container_restore_to_the_noted_time_in_a_new_container(run_module, pg_container):
    c = pg_container
    # the volume a run killed during a switch leaves (its scratch container removed already): cleaned up
    orphan = '%s-pgops-restore-orphan' % c.name
    docker('volume', 'create', '--label', 'pgops.restore.of=%s' % c.name, '--label', 'pgops.restore.pid=999999999',
           '--label', 'pgops.restore.host=%s' % socket.gethostname(), '--label', 'pgops.restore.mode=replace', orphan)
    pid = docker('exec', c.name, 'head', '-1', '/var/lib/postgresql/data/postmaster.pid')
    r = run_module(MODULE, c.module_args(mode='test', target_time=c.noted, databases=['postgres'], amcheck=True,
                                         expected_tables=['public.orders'],
                                         assertions=[dict(sql='SELECT count(*) = 100 FROM orders')]))
    assert not r.get('failed'), r
    print('RTO container test: %.2fs phases %s' % (r['rto_seconds'], r['phases']))
    assert r['verification']['assertions'] == 'passed'
    assert any('copy /etc/pgbackrest/pgbackrest.conf' in step for step in r['plan'])
    assert r['cleaned'] == [orphan]
    assert c.scratches() == [] and c.scratch_volumes() == []
    assert c.psql('SELECT count(*) FROM orders') == '20'
    assert docker('exec', c.name, 'head', '-1', '/var/lib/postgresql/data/postmaster.pid') == pid


def test_container_new_leaves_a_container_to_copy_rows_back_from(run_module, pg_container):
    c = pg_container
    r = run_module(MODULE, c.module_args(mode='new', target_time=c.noted))
    assert not r.get('failed'), r
    s = r['scratch']
    try:
        assert s['container'].startswith(c.name + '-pgops-restore-') and s['running']
        assert c.scratches() == [s['container']]
        rows = c.psql('COPY (SELECT * FROM orders WHERE id > 20) TO STDOUT', container=s['container'],
                      extra=['-h', s['socket_directory'], '-p', str(s['port'])])
        assert len(rows.splitlines()) == 80
        assert c.psql('SHOW archive_mode', container=s['container'],
                      extra=['-h', s['socket_directory'], '-p', str(s['port'])]) == 'off'
        print('RTO container new: %.2fs' % r['rto_seconds'])
    finally:
        subprocess.run(s['stop_command'], check=False, stdout=subprocess.DEVNULL)
        docker('volume', 'rm', s['volume'], check=False)
    assert c.scratches() == [] and c.scratch_volumes() == []


def test_container_target_outside_the_window_creates_nothing(run_module, pg_container):
    c = pg_container
    r = run_module(MODULE, c.module_args(mode='test', target_time=c.psql("SELECT now() + interval '1 hour'")))
    assert r.get('failed') and r['failed_step'] == 'target', r
    assert 'after the recoverable window' in r['msg']
    assert c.scratches() == [] and c.scratch_volumes() == []


def test_container_replace_swaps_the_data_volume_then_rollback_swaps_it_back(run_module, pg_container):
    # the last test on pg_container: it stops the server container and swaps its data volume's content
    c = pg_container
    volume = CONTAINER + '-data'

    def kept_volumes(label):
        return docker('volume', 'ls', '-q', '--filter', 'label=%s=%s' % (label, volume)).split()

    started = docker('inspect', '--format', '{{.State.StartedAt}}', c.name)
    r = run_module(MODULE, c.module_args(mode='replace', confirm=True, target_time=c.noted), check_mode=True)
    assert not r.get('failed') and r['changed'], r
    assert any('swap the volumes' in step and volume in step for step in r['plan']), r['plan']
    assert c.scratches() == [] and c.scratch_volumes() == [] and kept_volumes('pgops.rollback.of') == []
    assert docker('inspect', '--format', '{{.State.StartedAt}}', c.name) == started

    # the switched server fails its check (this assertion holds on the scratch's port only): swapped back
    from conftest import free_port
    port = free_port()
    r = run_module(MODULE, c.module_args(mode='replace', confirm=True, target_time=c.noted, scratch_port=port,
                                         assertions=[dict(sql="SELECT current_setting('port') = '%d'" % port)]))
    assert r.get('failed') and r['failed_step'] == 'swap', r
    assert 'swapped back' in r['msg'] and 'FAILED' not in r['msg'], r['msg']
    assert r['verification']['switched']['assertions'] == 'failed'
    assert c.psql('SELECT count(*) FROM orders') == '20'
    assert c.scratches() == [] and c.scratch_volumes() == [] and kept_volumes('pgops.rollback.of') == []
    assert 'rollback' not in r

    original_sysid = c.psql('SELECT system_identifier FROM pg_control_system()')
    r = run_module(MODULE, c.module_args(mode='replace', confirm=True, target_time=c.noted,
                                         assertions=[dict(sql='SELECT count(*) = 100 FROM orders')]))
    assert not r.get('failed'), r['msg']
    print('RTO container replace: %.2fs phases %s' % (r['rto_seconds'], r['phases']))
    kept = r['rollback']['volume']
    try:
        assert kept.startswith(volume + '-pgops-rollback-') and kept_volumes('pgops.rollback.of') == [kept]
        assert c.psql('SELECT count(*) FROM orders') == '100'
        assert c.psql('SELECT system_identifier FROM pg_control_system()') == original_sysid
        assert c.psql('SHOW archive_mode') == 'on'
        assert c.scratches() == [] and c.scratch_volumes() == []
        # the kept volume holds the data the server had: its own files, untouched
        assert docker('run', '--rm', '--network', 'none', '--entrypoint', 'cat', '--mount',
                      'type=volume,source=%s,target=/kept' % kept, os.environ.get('PGOPS_IMAGE_15', 'pgops/postgres:15'),
                      '/kept/PG_VERSION') == '15'
        # the new timeline reaches the archive: the server archives again
        c.psql("INSERT INTO orders VALUES (1000, 'after the replace')")
        c.psql('SELECT pg_switch_wal()')
        wait_for(lambda: '00000002.history' in docker('exec', c.name, 'find', '/var/lib/pgbackrest/archive'),
                 timeout=60, interval=0.3)
        assert c.psql('SELECT failed_count FROM pg_stat_archiver') == '0'

        r = run_module(MODULE, c.module_args(mode='rollback'))
        assert r.get('failed') and 'confirm' in r['msg'], r
        # an empty rollback volume (a replace killed before its swap) is refused, naming it; another is chosen
        empty = volume + '-pgops-rollback-zzzz-empty'
        docker('volume', 'create', '--label', 'pgops.rollback.of=%s' % volume, empty)
        r = run_module(MODULE, c.module_args(mode='rollback', confirm=True))
        assert r.get('failed') and 'volume %s holds no data directory' % empty in r['msg'], r
        assert c.psql('SELECT count(*) FROM orders') == '101'
        docker('volume', 'rm', empty)
        r = run_module(MODULE, c.module_args(mode='rollback', confirm=True, rollback_volume=kept))
        assert not r.get('failed'), r
        print('RTO container rollback: %.2fs' % r['rto_seconds'])
        assert c.psql('SELECT count(*) FROM orders') == '20'
        assert r['rollback']['volume'] == kept and kept_volumes('pgops.rollback.of') == []
        assert kept_volumes('pgops.replaced.of') == [r['rollback']['replaced_volume']]
    finally:
        for name in kept_volumes('pgops.rollback.of') + kept_volumes('pgops.replaced.of'):
            docker('volume', 'rm', name, check=False)


def test_container_replace_of_a_stopped_server_whose_data_is_damaged(run_module, pg_container):
    # disaster recovery: the server container is stopped and cannot start (pg_control gone); pgBackRest runs in the
    # scratch container, the verified data is swapped in and the container started on it
    c = pg_container
    volume = CONTAINER + '-data'
    before = c.psql('SELECT count(*) FROM orders')
    c.psql("INSERT INTO orders VALUES (2000, 'archived just before the disaster')")
    archived = c.psql('SELECT archived_count FROM pg_stat_archiver')
    c.psql('SELECT pg_switch_wal()')
    wait_for(lambda: c.psql('SELECT archived_count FROM pg_stat_archiver') != archived, timeout=60, interval=0.2)
    docker('stop', c.name)
    image = os.environ.get('PGOPS_IMAGE_15', 'pgops/postgres:15')
    docker('run', '--rm', '--network', 'none', '--entrypoint', 'rm', '--mount',
           'type=volume,source=%s,target=/data' % volume, image, '/data/global/pg_control')
    assert subprocess.run(['docker', 'start', '-a', c.name], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                          timeout=60, check=False).returncode != 0          # it cannot start on that data
    try:
        planned = run_module(MODULE, c.module_args(mode='replace', confirm=True, target_timeline='current'),
                             check_mode=True)
        assert not planned.get('failed') and planned['server'] == dict(running=False), planned
        assert c.scratches() == [] and c.scratch_volumes() == []
        r = run_module(MODULE, c.module_args(mode='replace', confirm=True, target_timeline='current',
                                             databases=['postgres'], expected_tables=['public.orders'],
                                             assertions=[dict(sql='SELECT count(*) = %d FROM orders' % (int(before) + 1))]))
        assert not r.get('failed'), r['msg']
        print('RTO container replace of a stopped server: %.2fs phases %s' % (r['rto_seconds'], r['phases']))
        assert docker('inspect', '--format', '{{.State.Running}}', c.name) == 'true'
        assert c.psql('SELECT note FROM orders WHERE id = 2000') == 'archived just before the disaster'
        assert r['verification']['switched']['assertions'] == 'passed'
        assert c.scratches() == [] and c.scratch_volumes() == []
        kept = r['rollback']['volume']
        # the damaged data is kept, not thrown away
        assert docker('run', '--rm', '--network', 'none', '--entrypoint', 'sh', '--mount',
                      'type=volume,source=%s,target=/kept' % kept, image, '-c',
                      'test -s /kept/PG_VERSION && test ! -e /kept/global/pg_control && echo damaged') == 'damaged'
    finally:
        if docker('inspect', '--format', '{{.State.Running}}', c.name) != 'true':
            subprocess.run(['docker', 'start', c.name], check=False, stdout=subprocess.DEVNULL)
        for name in docker('volume', 'ls', '-q', '--filter', 'label=pgops.rollback.of=%s' % volume).split():
            docker('volume', 'rm', name, check=False)


def test_encrypted_repository_passphrase_never_in_argv_nor_output(run_module):
    from conftest import argv_while_running
    secret = 'Pitr-Cipher-%d-Secret' % os.getpid()
    with make_pgbackrest_cluster(prefix='pgops-pitr-r-', cipher_pass=secret) as c:
        noted = story(c)
        proc = run_module.popen(MODULE, c.module_args(mode='test', target_time=noted,
                                                      assertions=[dict(sql='SELECT count(*) = 100 FROM orders')]))
        seen = argv_while_running(proc)
        out = run_module.result(proc)
        assert not out.get('failed'), out
        assert seen and not any(secret.encode() in argv for argv in seen)
        assert secret not in json.dumps(out)
        assert leftovers(c) == []
