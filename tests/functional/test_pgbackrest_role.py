# -*- coding: utf-8 -*-
"""The pgbackrest role through playbooks/pitr_setup.yml (ansible-playbook, a local inventory), end to end:
natively on a host PostgreSQL 15 cluster (pgBackRest 2.45 from the host's packages) and for PostgreSQL in a
container of the test images (pgops/postgres:15 with 2.45, pgops/postgres:17 with trixie's 2.55.1).

In the order check mode -> nothing changed -> real run (config 0640 postgres, archiving set, the restart done and
said, stanza created and checked) -> re-run changed nothing; then pitr_backup.yml makes a full backup. The
repository passphrase is in the inventory (as in Ansible Vault): never on a command line nor in the output.
"""
from __future__ import absolute_import, division, print_function

import json
import os
import pwd
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import uuid

import pytest
import yaml

from conftest import argv_while_running, free_port, pg_bin, wait_for
from pgbackrest_cluster import PgBackRestCluster
from s3server import ACCESS_KEY, SECRET_KEY, S3Server
from tlsproxy import TlsProxy

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CIPHER_PASS = 'pgops-role-Cipher-pass-5d2f-never-logged'
PREFIX = 'pgops-pitr-b-'


def recap_changed(out):
    found = re.findall(r'changed=(\d+)', out.split('PLAY RECAP', 1)[-1])
    assert found, out[-2000:]
    return int(found[0])


class Play(object):
    """ansible-playbook with an inventory of one local host; secrets in the inventory file (0600)."""

    def __init__(self, collection_root, base, host_vars):
        self.base = base
        self.inventory = os.path.join(base, 'inventory.yml')
        fd = os.open(self.inventory, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, 'w') as f:
            yaml.safe_dump({'postgres_servers': {'hosts': {'pim-db': dict(
                host_vars, ansible_connection='local', ansible_python_interpreter=sys.executable)}}}, f)
        self.env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=collection_root, ANSIBLE_FORCE_COLOR='0',
                        ANSIBLE_STDOUT_CALLBACK='default', ANSIBLE_NOCOLOR='1',
                        PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ['PATH'])

    def run(self, playbook, *args):
        """rc, output, every command line seen while it ran."""
        proc = subprocess.Popen([os.path.join(os.path.dirname(sys.executable), 'ansible-playbook'), '-i',
                                 self.inventory, os.path.join(REPO, 'playbooks', playbook)] + list(args),
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True,
                                env=self.env, cwd=self.base)
        seen = argv_while_running(proc)
        out = proc.communicate()[0]
        for cmdline in seen:
            for secret in (CIPHER_PASS, SECRET_KEY):
                assert secret.encode() not in cmdline, cmdline
        assert CIPHER_PASS not in out and SECRET_KEY not in out
        return proc.returncode, out


@pytest.fixture
def native(collection_root):
    """A PG15 cluster without archiving nor stanza, and where the role puts its files (a temp dir)."""
    cluster = PgBackRestCluster(archive=False, prefix=PREFIX)
    try:
        cluster.init()
        cluster.start()
        role = os.path.join(cluster.base, 'role')
        os.makedirs(role)
        host_vars = {
            'pgops_login_host': '127.0.0.1', 'pgops_port': cluster.port, 'pgops_login_user': 'postgres',
            'pgbackrest_config': os.path.join(role, 'etc', 'pgbackrest.conf'),
            'pgbackrest_pg_path': cluster.data_directory, 'pgbackrest_pg_socket_path': cluster.socket_dir,
            'pgbackrest_repo_path': os.path.join(role, 'repo'), 'pgbackrest_log_path': os.path.join(role, 'log'),
            'pgbackrest_lock_path': cluster.lock_path,
            'pgbackrest_cipher_type': 'aes-256-cbc', 'pgbackrest_cipher_pass': CIPHER_PASS,
            'pgbackrest_restart_command': cluster.as_user() + [
                pg_bin('pg_ctl'), '-D', cluster.data_directory, '-l', cluster.server_log, '-w', '-t', '60', '-m',
                'fast', 'restart'],
            'pgops_pgbackrest_config': os.path.join(role, 'etc', 'pgbackrest.conf'),
            'metrics_enabled': False,
        }
        yield cluster, Play(collection_root, role, host_vars), host_vars
    finally:
        cluster.destroy()


def test_native_setup_check_mode_then_real_then_idempotent(native):
    cluster, play, host_vars = native
    config = host_vars['pgbackrest_config']

    rc, out = play.run('pitr_setup.yml', '--check')
    assert rc == 0, out[-3000:]
    assert 'restart: NEEDED (check mode)' in out and 'archive_mode' in out, out[-3000:]
    assert not os.path.exists(config)
    assert cluster.psql('postgres', 'SHOW archive_mode') == 'off'

    rc, out = play.run('pitr_setup.yml')
    assert rc == 0, out[-3000:]
    assert 'restart: done' in out and 'stanza created: True' in out and 'checked: True' in out, out[-3000:]
    st = os.stat(config)
    assert stat.S_IMODE(st.st_mode) == 0o640 and st.st_uid == pwd.getpwnam('postgres').pw_uid
    with open(config) as f:
        text = f.read()
    assert 'repo1-cipher-pass=%s' % CIPHER_PASS in text and 'repo1-cipher-type=aes-256-cbc' in text
    assert '[main]\npg1-path=%s\n' % cluster.data_directory in text and 'repo1-bundle=y' in text
    assert cluster.psql('postgres', 'SHOW archive_mode') == 'on'
    assert 'archive-push %p' in cluster.psql('postgres', 'SHOW archive_command')
    info = json.loads(cluster.run(['pgbackrest', '--stanza=main', '--config=%s' % config, '--output=json',
                                   'info']).stdout)[0]
    assert info['cipher'] == 'aes-256-cbc' and info['db'], info   # the stanza exists (no backup yet: status 2)

    rc, out = play.run('pitr_setup.yml')
    assert rc == 0 and recap_changed(out) == 0, out[-3000:]
    assert 'restart: not needed' in out

    rc, out = play.run('pitr_backup.yml', '-e', 'pitr_backup_type=full')
    assert rc == 0, out[-3000:]
    assert 'full backup 2' in out and 'recoverable window' in out, out[-3000:]


def test_native_pitr_restore_playbook_drill_and_confirmation(native):
    """pitr_restore.yml: a drill to latest passes; replace without pitr_confirm is refused, even with the
    playbook's own check skipped (the module's rule), and the server keeps its data."""
    cluster, play, _host_vars = native
    for playbook, args in (('pitr_setup.yml', []), ('pitr_backup.yml', ['-e', 'pitr_backup_type=full'])):
        rc, out = play.run(playbook, *args)
        assert rc == 0, out[-3000:]
    cluster.psql('postgres', 'CREATE TABLE kept AS SELECT 1 AS i')
    cluster.switch_wal()

    rc, out = play.run('pitr_restore.yml', '-e', '{"pitr_expected_tables": ["public.kept"], '
                       '"pitr_databases": ["postgres"]}')
    assert rc == 0 and 'test: passed' in out, out[-3000:]

    for extra in ([], ['--skip-tags', 'always']):
        rc, out = play.run('pitr_restore.yml', '-e', 'pitr_mode=replace', *extra)
        assert rc != 0 and 'confirm' in out, out[-3000:]
        assert cluster.psql('postgres', 'SELECT count(*) FROM kept') == '1'


def test_native_restart_refused_when_not_allowed(native):
    _cluster, play, _host_vars = native
    rc, out = play.run('pitr_setup.yml', '-e', 'pgbackrest_restart=false')
    assert rc != 0 and 'PostgreSQL must restart for archiving' in out, out[-3000:]


def test_native_s3_repository_through_tls(native):
    """The role with an S3 repository (SeaweedFS behind stunnel, a private CA), encrypted and bundled, with the
    options a busy server uses (asynchronous archiving, parallel processes): set up, then a full backup into S3."""
    cluster, play, host_vars = native
    server = S3Server().start()
    try:
        server.client().create_bucket(Bucket='pgops-role')
        with TlsProxy(int(server.endpoint.rsplit(':', 1)[1])).start() as proxy:
            host_vars = dict(host_vars, pgbackrest_repo_type='s3', pgbackrest_repo_path='/pim',
                             pgbackrest_s3_endpoint='localhost', pgbackrest_s3_bucket='pgops-role',
                             pgbackrest_s3_uri_style='path', pgbackrest_s3_port=proxy.port,
                             pgbackrest_s3_ca_file=proxy.ca_file, pgbackrest_s3_key=ACCESS_KEY,
                             pgbackrest_s3_key_secret=SECRET_KEY, pgbackrest_archive_async=True,
                             pgbackrest_spool_path=os.path.join(play.base, 'spool'), pgbackrest_process_max=2,
                             pgbackrest_retention_diff=3, pgbackrest_compress_level=3,
                             pgbackrest_global_options={'archive-push-queue-max': '1GiB', 'delta': True})
            play = Play(play.env['ANSIBLE_COLLECTIONS_PATH'], play.base, host_vars)
            rc, out = play.run('pitr_setup.yml')
            assert rc == 0, out[-3000:]
            assert 'repository s3://pgops-role/pim' in out and 'checked: True' in out, out[-3000:]
            with open(host_vars['pgbackrest_config']) as f:
                text = f.read()
            for line in ('repo1-type=s3', 'repo1-s3-uri-style=path', 'repo1-storage-port=%d' % proxy.port,
                         'repo1-storage-ca-file=%s' % proxy.ca_file, 'repo1-s3-key-secret=%s' % SECRET_KEY,
                         'archive-async=y', 'process-max=2', 'repo1-retention-diff=3', 'compress-level=3',
                         'delta=y', 'archive-push-queue-max=1GiB'):
                assert line + '\n' in text, (line, text)
            rc, out = play.run('pitr_backup.yml', '-e', 'pitr_backup_type=full')
            assert rc == 0 and 'full backup 2' in out, out[-3000:]
            keys = [o['Key'] for o in server.client().list_objects_v2(Bucket='pgops-role', Prefix='pim/')['Contents']]
            assert any('/bundle/' in k for k in keys), keys
    finally:
        server.stop()


def test_s3_without_keys_is_refused_before_anything(native):
    _cluster, play, host_vars = native
    rc, out = play.run('pitr_setup.yml', '-e', 'pgbackrest_repo_type=s3')
    assert rc != 0 and 'pgbackrest_repo_type=s3 needs pgbackrest_s3_endpoint' in out, out[-3000:]
    assert not os.path.exists(host_vars['pgbackrest_config'])


def docker(*args, **kwargs):
    return subprocess.run(['docker'] + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, check=kwargs.get('check', True), timeout=120)


@pytest.fixture
def container(request, collection_root):
    """A PostgreSQL container of the test image (network host, a free port), removed afterwards."""
    image = request.param
    if shutil.which('docker') is None or docker('version', check=False).returncode != 0:
        pytest.fail('docker does not answer: run make test (scripts/ensure-docker.sh starts dockerd)')
    if docker('image', 'inspect', image, check=False).returncode != 0:
        pytest.fail('%s missing: scripts/images.sh builds it' % image)
    name = '%s%s' % (PREFIX, uuid.uuid4().hex[:8])
    port = free_port()
    base = tempfile.mkdtemp(prefix=PREFIX)
    try:
        docker('run', '-d', '--name', name, '--network', 'host', '-e', 'POSTGRES_HOST_AUTH_METHOD=trust',
               '-e', 'PGPORT=%d' % port, image, 'postgres')   # the images' CMD is sleep infinity
        wait_for(lambda: docker('exec', '-u', 'postgres', name, 'pg_isready', '-q', '-p', str(port),
                                check=False).returncode == 0, timeout=60, interval=0.5)
        host_vars = {'pgops_container': name, 'pgops_login_user': 'postgres', 'pgops_port': port,
                     'pgbackrest_cipher_type': 'aes-256-cbc', 'pgbackrest_cipher_pass': CIPHER_PASS,
                     'pgbackrest_stanza': 'pim', 'pgops_pgbackrest_stanza': 'pim', 'metrics_enabled': False}
        yield name, Play(collection_root, base, host_vars)
    finally:
        docker('rm', '-f', '-v', name, check=False)
        shutil.rmtree(base, ignore_errors=True)


@pytest.mark.parametrize('container', ['pgops/postgres:15', 'pgops/postgres:17'], indirect=True)
def test_container_setup_restart_stanza_idempotent(container):
    name, play = container
    version = docker('exec', name, 'pgbackrest', 'version').stdout.strip()
    rc, out = play.run('pitr_setup.yml', '--check')
    assert rc == 0 and 'restart: NEEDED (check mode)' in out, out[-3000:]
    assert docker('exec', name, 'test', '-e', '/etc/pgbackrest/pgbackrest.conf', check=False).returncode != 0
    started = docker('inspect', '-f', '{{.State.StartedAt}}', name).stdout

    rc, out = play.run('pitr_setup.yml')
    assert rc == 0, out[-3000:]
    assert 'restart: done' in out and 'stanza created: True' in out and 'checked: True' in out, out[-3000:]
    assert docker('inspect', '-f', '{{.State.StartedAt}}', name).stdout != started   # restarted, not recreated
    listing = docker('exec', name, 'stat', '-c', '%U %G %a', '/etc/pgbackrest/pgbackrest.conf').stdout.split()
    assert listing == ['postgres', 'postgres', '640']
    assert docker('exec', '-u', 'postgres', name, 'psql', '-Atc', 'SHOW archive_mode', '-p',
                  play_port(play)).stdout.strip() == 'on'

    rc, out = play.run('pitr_setup.yml')
    assert rc == 0 and recap_changed(out) == 0, out[-3000:]

    rc, out = play.run('pitr_backup.yml', '-e', 'pitr_backup_type=full')
    assert rc == 0, out[-3000:]
    info = json.loads(docker('exec', '-u', 'postgres', name, 'pgbackrest', '--stanza=pim', '--output=json',
                             'info').stdout)[0]
    assert info['status']['code'] == 0 and [b['type'] for b in info['backup']] == ['full'], info
    print('\n%s in %s: set up and backed up' % (version, name))


def play_port(play):
    with open(play.inventory) as f:
        return str(yaml.safe_load(f)['postgres_servers']['hosts']['pim-db']['pgops_port'])
