# -*- coding: utf-8 -*-
"""The loss of the whole host, backups included, as an operator lives it with the plan's playbooks: encrypted
daily backups, the weekly drill and the weekly off-site copy to a real S3 server (SeaweedFS); then the database
AND the backup directory are gone, and disaster_recovery.yml brings the newest copy back from the bucket and
proves it in a scratch database before it becomes the database - with the identity given only to the restore."""
from __future__ import absolute_import, division, print_function

import json
import os
import shutil
import subprocess
import sys

import pytest
import yaml

import s3server

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUCKET = 'pgops-dr'


@pytest.fixture
def s3():
    server = s3server.S3Server()
    try:
        server.start()
        server.client().create_bucket(Bucket=BUCKET)
        yield server
    finally:
        server.stop()


def test_total_loss_of_the_host_recovered_from_the_bucket(postgres, collection_root, tmp_path, s3):
    postgres.create_db('drs_prod')
    counts = postgres.row_counts('drs_prod')
    keys = tmp_path / 'keys'
    keys.mkdir()
    subprocess.run(['age-keygen', '-o', str(keys / 'identity.txt')], check=True, stderr=subprocess.DEVNULL)
    recipient = subprocess.run(['age-keygen', '-y', str(keys / 'identity.txt')], check=True,
                               stdout=subprocess.PIPE, universal_newlines=True).stdout.strip()
    backups = tmp_path / 'backups'
    common = {'pgops_login_host': '127.0.0.1', 'pgops_port': postgres.port, 'pgops_login_user': 'postgres',
              'pgops_databases': ['drs_prod'], 'pgops_backup_dir': str(backups),
              'pgops_log_file': str(tmp_path / 'db-backup.log'), 'metrics_enabled': False,
              'pgops_encrypt_recipients': [recipient],
              'pgops_offsite_bucket': BUCKET, 'pgops_offsite_endpoint_url': s3.endpoint,
              'pgops_offsite_region': 'us-east-1', 'pgops_offsite_addressing_style': 'path',
              'pgops_offsite_access_key': s3server.ACCESS_KEY, 'pgops_offsite_secret_key': s3server.SECRET_KEY}
    inv = tmp_path / 'inventory.yml'
    inv.write_text(yaml.safe_dump({'postgres_servers': {
        'hosts': {'pim-db': {'ansible_connection': 'local', 'ansible_python_interpreter': sys.executable}},
        'vars': common}}))
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=collection_root, ANSIBLE_FORCE_COLOR='0', ANSIBLE_NOCOLOR='1',
               PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ['PATH'])

    def play(playbook, *args):
        proc = subprocess.run([os.path.join(os.path.dirname(sys.executable), 'ansible-playbook'), '-i', str(inv),
                               os.path.join(REPO, 'playbooks', playbook)] + list(args),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True, env=env,
                              cwd=str(tmp_path), check=False)
        assert s3server.SECRET_KEY not in proc.stdout
        assert proc.returncode == 0, proc.stdout[-4000:]
        return proc.stdout

    identity = ['-e', 'pgops_age_identity_file=%s' % (keys / 'identity.txt')]
    play('backup.yml')
    play('restore_drill.yml', *identity)
    out = play('offsite.yml')
    assert 'drs_prod' in out
    objects = [o['Key'] for o in s3.client().list_objects_v2(Bucket=BUCKET).get('Contents', [])]
    assert any(k.endswith('.sql.zst.age') for k in objects) and any(k.endswith('.meta.json') for k in objects)

    # the host is lost: the database and every local backup
    postgres.psql('postgres', 'DROP DATABASE drs_prod')
    shutil.rmtree(str(backups))
    out = play('disaster_recovery.yml', '-e', 'disaster_recovery_fetch_offsite=true', *identity)
    report = json.loads((backups / 'disaster-recovery-last.json').read_text())
    [d] = report['databases']
    assert d['result'] == 'passed' and str(d['tables_found']) == str(d['tables_expected']), d
    assert postgres.row_counts('drs_prod') == counts
    metas = [json.loads(p.read_text()) for p in backups.glob('*.meta.json')]
    [fetched] = [m for m in metas if m.get('fetched_from')]
    assert fetched['id'] == d['backup_id'] and fetched['encrypted'] is True
    assert fetched['verifications'][-1]['result'] == 'passed'
    # the key that decrypts never reached the host's backups or the report
    secret = (keys / 'identity.txt').read_text().split('AGE-SECRET-KEY-')[1].split()[0]
    for p in backups.iterdir():
        if p.is_file() and not p.name.endswith('.age'):
            assert secret not in p.read_text(errors='replace')
    assert secret not in out
