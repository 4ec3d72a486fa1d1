# -*- coding: utf-8 -*-
"""A fleet of six PostgreSQL containers in one run, all backing up into ONE shared directory: backup.yml,
restore_drill.yml and list_backups.yml over the six hosts with forks 6. After a first good run, one container is
stopped and one is broken (garbage over a table's data file: pg_dump fails reading it). Each host's failure stays its
own (rc 2, the four others backed up and drilled), every drill chose its own server's backup, and the fleet
summary lists the six servers: the stopped one down, the broken one with its failed backup in its success rate."""
from __future__ import absolute_import, division, print_function

import contextlib
import json
import os
import sys

import pytest
from conftest import docker, free_port, image, playbook_runner, seeded_container, wait_container_ready

HOSTS = ['fleet%d' % i for i in range(6)]
STOPPED, BROKEN = 'fleet1', 'fleet2'


def container_of(host):
    return 'pgops-functional-%s-%d' % (host, os.getpid())


def psql(host, sql):
    out = docker('exec', container_of(host), 'psql', '-X', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-U', 'pim_user',
                 '-d', 'pim_dev', '-c', sql)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def recap(out):
    """{host: (failed, unreachable)} of the last PLAY RECAP."""
    counts = {}
    for line in out[out.rindex('PLAY RECAP'):].splitlines()[1:]:
        parts = line.split()
        if len(parts) > 2 and parts[1] == ':':
            c = dict(p.split('=') for p in parts[2:] if '=' in p)
            counts[parts[0]] = (int(c.get('failed', 0)), int(c.get('unreachable', 0)))
    return counts


def failed_hosts(out):
    return sorted(h for h, (failed, unreachable) in recap(out).items() if failed or unreachable)


@pytest.fixture(scope='module')
def fleet(collection_root, tmp_path_factory):
    """Six seeded containers on the host network, each with its own port and a marker row naming it."""
    base = tmp_path_factory.mktemp('fleet6')
    backups = base / 'backups'                          # one directory for the whole fleet
    hosts = {}
    with contextlib.ExitStack() as stack:
        for host in HOSTS:
            port = free_port()
            stack.enter_context(seeded_container(
                container_of(host), image(15), ['--network', 'host', '--label', 'pgops.test=fleet',
                                                '-e', 'POSTGRES_HOST_AUTH_METHOD=trust', '-e', 'PGPORT=%d' % port],
                extra_sql="CREATE TABLE fleet_marker AS SELECT '%s'::text AS who;\n" % host))
            hosts[host] = {'pgops_container': container_of(host), 'pgops_server': 'pim-' + host,
                           'pgops_backup_dir': str(backups)}
        inventory = {'postgres_servers': {'hosts': hosts, 'vars': {
            'ansible_connection': 'local', 'ansible_python_interpreter': sys.executable,
            'pgops_login_user': 'pim_user', 'pgops_databases': ['pim_dev'],
            'pgops_log_file': str(base / 'db-backup.log')}}}
        run = playbook_runner(collection_root, inventory, base, env_more={'ANSIBLE_SHOW_CUSTOM_STATS': '1'})

        def playbook(name, *args):
            rc, out = run(name, '-f', str(len(HOSTS)), *args)
            (base / (name + '.out')).write_text(out)      # for a failing test's reader
            return rc, out

        runs = {}
        runs['first'] = playbook('backup.yml', '-e', 'metrics_enabled=false')
        first = catalog(str(backups))
        # break one server: garbage over a table's data file, written while it is stopped; pg_dump cannot read it
        path = psql(BROKEN, "SELECT current_setting('data_directory') || '/' || pg_relation_filepath('fleet_marker')")
        owner = docker('exec', container_of(BROKEN), 'stat', '-c', '%u:%g', path).stdout.strip().split(':')
        assert docker('stop', '-t', '5', container_of(BROKEN)).returncode == 0
        garbage = base / 'garbage'
        garbage.write_bytes(os.urandom(8192))
        os.chown(str(garbage), int(owner[0]), int(owner[1]))
        os.chmod(str(garbage), 0o600)
        assert docker('cp', '-a', str(garbage), '%s:%s' % (container_of(BROKEN), path)).returncode == 0
        assert docker('start', container_of(BROKEN)).returncode == 0
        wait_container_ready(container_of(BROKEN))
        assert docker('stop', '-t', '5', container_of(STOPPED)).returncode == 0
        runs['backup'] = playbook('backup.yml', '-e', 'metrics_enabled=false')
        runs['drill'] = playbook('restore_drill.yml')
        runs['list'] = playbook('list_backups.yml', '-e', 'fleet_report_file=%s' % (base / 'fleet.html'))
        yield dict(runs=runs, first=first, backups=str(backups), report=str(base / 'fleet.html'), run_playbook=playbook)


def catalog(backups):
    """Every metadata record of the shared directory."""
    out = []
    for name in sorted(os.listdir(backups)):
        if name.endswith('.meta.json'):
            with open(os.path.join(backups, name)) as f:
                out.append(json.load(f))
    return out


def test_the_first_run_backs_up_all_six_into_one_directory(fleet):
    rc, out = fleet['runs']['first']
    assert rc == 0 and failed_hosts(out) == [], out[-3000:]
    first = [m for m in fleet['first'] if m.get('database') == 'pim_dev']
    assert sorted((m['server'], m['status']) for m in first) == [('pim-' + h, 'success') for h in HOSTS]


def test_a_stopped_and_a_broken_server_fail_their_own_hosts_only(fleet):
    rc, out = fleet['runs']['backup']
    assert rc == 2, out[-3000:]
    assert failed_hosts(out) == sorted([STOPPED, BROKEN]), out[out.rindex('PLAY RECAP'):]
    assert 'container %s is not running' % container_of(STOPPED) in out
    assert 'invalid page in block 0 of relation' in out, out[-3000:]           # the broken server's pg_dump error, reported
    records = [m for m in catalog(fleet['backups']) if m.get('database') == 'pim_dev']
    for host in HOSTS:
        mine = [m for m in records if m['server'] == 'pim-' + host]
        statuses = [m['status'] for m in sorted(mine, key=lambda m: m['started_at'])]
        want = ['success', 'failed'] if host in (STOPPED, BROKEN) else ['success', 'success']
        assert statuses == want, (host, statuses)
        assert all(m['container'] == container_of(host) for m in mine)


def test_each_drill_verifies_its_own_servers_backup(fleet):
    rc, out = fleet['runs']['drill']
    assert rc == 2 and failed_hosts(out) == [STOPPED], out[-3000:]
    records = [m for m in catalog(fleet['backups']) if m.get('database') == 'pim_dev' and m['status'] == 'success']
    for host in HOSTS:
        mine = sorted((m for m in records if m['server'] == 'pim-' + host), key=lambda m: m['started_at'])
        verified = [m for m in mine if [v for v in m.get('verifications') or [] if v['result'] == 'passed']]
        if host == STOPPED:      # five drills of pim_dev ran over the shared directory: none took this one's
            assert verified == [], host
        else:
            # the newest good backup of that server was drilled (the broken one's is its first)
            assert mine[-1]['id'] in [m['id'] for m in verified], (host, [m['id'] for m in mine])


def custom_stats(out):
    text = out[out.index('CUSTOM STATS'):]
    text = text[text.index('RUN:') + 4:].strip()
    return json.JSONDecoder().raw_decode(text)[0]['pgops_fleet']


def test_the_fleet_summary_lists_six_servers_and_marks_the_two(fleet):
    rc, out = fleet['runs']['list']
    assert rc == 2 and failed_hosts(out) == [STOPPED], out[-3000:]
    summary = custom_stats(out)
    by_name = dict((s['name'], s) for s in summary['servers'])
    assert sorted(by_name) == sorted('pim-' + h for h in HOSTS)
    assert by_name['pim-' + STOPPED]['state'] == 'down'
    for host in HOSTS:
        db = [d for d in by_name['pim-' + host]['databases'] if d['name'] == 'pim_dev'][0]
        assert db['newest_id'], (host, db)
        if host in (STOPPED, BROKEN):
            assert db['success_rate'] == 50.0, (host, db)
        else:
            assert db['success_rate'] == 100.0 and db['newest_verified_id'] == db['newest_id'], (host, db)
            assert by_name['pim-' + host]['state'] in ('ok', 'alerts'), by_name['pim-' + host]
    assert summary['counts']['hosts'] == len(HOSTS) and summary['counts']['hosts_down'] == 1
    with open(fleet['report']) as f:
        html = f.read()
    assert all('data-server="pim-%s"' % h in html for h in HOSTS)
    assert 'data-server="pim-%s" data-state="down"' % STOPPED in html
