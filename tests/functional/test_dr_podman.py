# -*- coding: utf-8 -*-
"""The disaster_recovery role's server step with container_runtime podman, against real podman containers: a
stopped container is only started (same container, its data kept), a removed container and volume are recreated
by podman from the image; Docker never gets a container of that name. Needs podman (Debian's package) and Docker
(the image is copied from Docker into podman)."""
from __future__ import absolute_import, division, print_function

import json
import os
import resource
import shutil
import subprocess
import sys
import time

import pytest
import yaml

from conftest import argv_while_running, free_port, pg_bin, wait_for

NAME = 'pgops-functional-dr-podman-%d' % os.getpid()
VOLUME = NAME + '-data'
PASSWORD = 'PodmanPw-%d' % os.getpid()
CAP_SYS_RESOURCE = 24

PLAYBOOK = [{
    'name': 'Bring PostgreSQL back with podman (the server step of disaster_recovery only)',
    'hosts': 'localhost',
    'gather_facts': False,
    'tasks': [
        {'name': 'Bring the server back',
         'ansible.builtin.include_role': {'name': 'pgops.postgresql.disaster_recovery', 'tasks_from': 'server'}},
        {'name': 'Hand the outcome to the test',
         'ansible.builtin.copy': {
             'content': "{{ {'recreated': __dr_container_recreated, 'ready_seconds': __dr_server_ready_seconds}"
                        " | to_json }}",
             'dest': '{{ outcome_file }}', 'mode': '0600'}},
    ],
}]


def image():
    return os.environ.get('PGOPS_IMAGE_15') or 'pgops/postgres:15'


def run(argv, **kw):
    return subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                          check=False, **kw)


def podman(*args, **kw):
    return run(['podman'] + list(args), **kw)


def docker(*args, **kw):
    return run(['docker'] + list(args), **kw)


def ulimits():
    """The --ulimit values podman needs here: none with CAP_SYS_RESOURCE; without it podman's default (1048576
    open files and processes) cannot be set, so the hard limits podman runs with: RLIMIT_NOFILE, and RLIMIT_NPROC,
    which podman first lowers to the kernel's pid_max (measured: 32768 while the shell had 96551)."""
    with open('/proc/self/status') as f:
        cap_eff = int([line.split()[1] for line in f if line.startswith('CapEff:')][0], 16)
    if cap_eff & (1 << CAP_SYS_RESOURCE):
        return []
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    nproc = resource.getrlimit(resource.RLIMIT_NPROC)[1]
    with open('/proc/sys/kernel/pid_max') as f:
        pid_max = int(f.read())
    nproc = pid_max if nproc == resource.RLIM_INFINITY else min(nproc, pid_max)
    return ['nofile=%d:%d' % (nofile, nofile), 'nproc=%d:%d' % (nproc, nproc)]


def inspect(name):
    res = podman('container', 'inspect', name)
    return json.loads(res.stdout)[0] if res.returncode == 0 else None


def psql_tcp(port, sql):
    """As the application connects: TCP and the password (scram-sha-256 in the image's pg_hba)."""
    return run([pg_bin('psql'), '-X', '-A', '-t', '-h', '127.0.0.1', '-p', str(port), '-U', 'pim_user', '-d', 'pim_dev',
                '-c', sql], env=dict(os.environ, PGPASSWORD=PASSWORD, PGCONNECT_TIMEOUT='5'))


@pytest.fixture(scope='module')
def podman_image():
    """The local PostgreSQL image, copied from Docker into podman (no registry); removed again if copied here."""
    if shutil.which('podman') is None:
        pytest.fail('podman is not installed: scripts/host-packages.sh installs Debian\'s podman')
    if docker('version').returncode != 0:
        pytest.fail('docker does not answer: run make images (it starts dockerd and builds %s)' % image())
    copied = False
    if podman('image', 'exists', image()).returncode != 0:
        save = subprocess.Popen(['docker', 'save', image()], stdout=subprocess.PIPE)
        load = run(['podman', 'load'], stdin=save.stdout)
        save.stdout.close()
        assert save.wait() == 0 and load.returncode == 0, 'docker save | podman load: %s' % load.stderr
        copied = True
    try:
        yield image()
    finally:
        if copied:
            podman('rmi', image())


@pytest.fixture
def pg_podman(podman_image, tmp_path):
    """PostgreSQL in a podman container on the host network and a free port, with a named volume for PGDATA."""
    port = free_port()
    limits = ulimits()
    env = {'POSTGRES_USER': 'pim_user', 'POSTGRES_DB': 'pim_dev', 'PGPORT': str(port)}
    argv = ['run', '-d', '--name', NAME, '--network', 'host', '-v', VOLUME + ':/var/lib/postgresql/data',
            '-e', 'POSTGRES_PASSWORD']
    for key, value in sorted(env.items()):
        argv += ['-e', '%s=%s' % (key, value)]
    for limit in limits:
        argv += ['--ulimit', limit]
    try:
        started = podman(*(argv + [podman_image, 'postgres']), env=dict(os.environ, POSTGRES_PASSWORD=PASSWORD))
        if started.returncode != 0:
            pytest.fail('podman cannot run a container here (ulimits %s): %s'
                        % (limits or 'podman default', started.stderr.strip()))
        wait_for(lambda: psql_tcp(port, 'SELECT 1').returncode == 0, timeout=60, interval=0.3)
        marker = psql_tcp(port, 'CREATE TABLE dr_marker (id int); INSERT INTO dr_marker VALUES (42)')
        assert marker.returncode == 0, marker.stderr
        yield dict(port=port, env=env, ulimits=limits, tmp=tmp_path)
    finally:
        podman('rm', '-f', '-t', '0', NAME)
        podman('volume', 'rm', '-f', VOLUME)
        docker('rm', '-f', NAME)   # only there if the role wrongly made one


def disaster_recovery_server(collection_root, pg, label):
    """ansible-playbook with the role's server step and container_runtime podman; returns (proc, outcome, argvs)."""
    tmp = pg['tmp']
    playbook = tmp / 'dr-podman.yml'
    playbook.write_text(yaml.safe_dump(PLAYBOOK, sort_keys=False))
    inventory = tmp / 'hosts.yml'
    inventory.write_text(yaml.safe_dump({'all': {'hosts': {'localhost': {
        'ansible_connection': 'local', 'ansible_python_interpreter': sys.executable}}}}))
    outcome = tmp / ('outcome-%s.json' % label)
    extra = {
        'pgops_container': NAME,
        'pgops_container_runtime': 'podman',
        'pgops_container_image': image(),
        'pgops_container_volume': VOLUME,
        'pgops_container_command': ['postgres'],
        'pgops_container_env': pg['env'],
        'pgops_container_ulimits': pg['ulimits'],
        'pgops_login_user': 'pim_user',
        'pgops_login_password': PASSWORD,
        'disaster_recovery_container_pull': 'never',
        'disaster_recovery_ready_timeout': 60,
        'outcome_file': str(outcome),
    }
    extra_file = tmp / 'extra.json'
    extra_file.write_text(json.dumps(extra))
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=collection_root, ANSIBLE_FORCE_COLOR='0', ANSIBLE_NOCOLOR='1',
               ANSIBLE_STDOUT_CALLBACK='default')
    bindir = os.path.dirname(sys.executable)
    began = time.time()
    proc = subprocess.Popen([os.path.join(bindir, 'ansible-playbook'), '-i', str(inventory), str(playbook),
                             '-e', '@%s' % extra_file], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            universal_newlines=True, env=env)
    argvs = argv_while_running(proc)
    out = proc.communicate()[0]
    elapsed = time.time() - began
    assert proc.returncode == 0, out[-6000:]
    with open(str(outcome)) as f:
        result = json.load(f)
    result.update(elapsed=round(elapsed, 1), stdout=out)
    print('%s: ready after %s s (server step), ansible-playbook %s s' % (label, result['ready_seconds'],
                                                                         result['elapsed']))
    return result, argvs


def assert_running_and_ready(pg):
    info = inspect(NAME)
    assert info is not None and info['State']['Running'], info and info['State']
    ready = podman('exec', NAME, 'pg_isready', '-q', '-h', '127.0.0.1', '-U', 'pim_user', '-d', 'postgres')
    assert ready.returncode == 0, ready.stderr
    login = psql_tcp(pg['port'], 'SELECT 1')
    assert login.returncode == 0 and login.stdout.strip() == '1', login.stderr
    no_docker = docker('container', 'inspect', NAME)
    assert no_docker.returncode != 0 and 'no such' in no_docker.stderr.lower(), \
        'a Docker container %s exists beside the podman one' % NAME
    return info


def test_podman_container_is_started_then_recreated(pg_podman, collection_root):
    before = inspect(NAME)
    assert podman('stop', '-t', '10', NAME).returncode == 0
    assert not inspect(NAME)['State']['Running']

    # stopped: only started - the same container (same id, own image), data kept, "started"
    started, dummy = disaster_recovery_server(collection_root, pg_podman, 'started')
    info = assert_running_and_ready(pg_podman)
    assert info['Id'] == before['Id'] and info['Image'] == before['Image']
    assert started['recreated'] is False, started['stdout'][-3000:]
    assert psql_tcp(pg_podman['port'], 'SELECT id FROM dr_marker').stdout.strip() == '42'

    # gone, container and volume: recreated by podman from the image and the variables, "recreated"
    assert podman('rm', '-f', '-t', '0', NAME).returncode == 0
    assert podman('volume', 'rm', VOLUME).returncode == 0
    assert inspect(NAME) is None
    recreated, argvs = disaster_recovery_server(collection_root, pg_podman, 'recreated')
    info = assert_running_and_ready(pg_podman)
    assert info['Id'] != before['Id']
    assert recreated['recreated'] is True, recreated['stdout'][-3000:]
    assert info['ImageName'].split('/')[-1] == image().split('/')[-1], info['ImageName']
    assert [m['Name'] for m in info['Mounts'] if m['Destination'] == '/var/lib/postgresql/data'] == [VOLUME]
    env = dict(e.split('=', 1) for e in info['Config']['Env'])
    assert dict((k, env.get(k)) for k in pg_podman['env']) == pg_podman['env']
    assert info['HostConfig']['NetworkMode'] == 'host'
    limits = sorted('%s=%d:%d' % (u['Name'].replace('RLIMIT_', '').lower(), u['Soft'], u['Hard'])
                    for u in info['HostConfig']['Ulimits'])
    assert set(pg_podman['ulimits']) <= set(limits), limits
    # a fresh PGDATA (the volume was removed), initialised with the login password, which never was on an argv
    assert psql_tcp(pg_podman['port'], 'SELECT to_regclass(\'dr_marker\') IS NULL').stdout.strip() == 't'
    assert any(b'podman\x00container\x00run' in a or b'podman\x00run' in a for a in argvs), 'podman run not seen'
    assert not any(PASSWORD.encode() in a for a in argvs)
    assert PASSWORD not in recreated['stdout']

    # running already: nothing to do, still "started"
    again, dummy = disaster_recovery_server(collection_root, pg_podman, 'running')
    assert again['recreated'] is False
    assert inspect(NAME)['Id'] == info['Id']
