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
import time

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
    # the next backup pushes right after it when asked; the week's verified copy is not pushed twice
    out = play('backup.yml', '-e', 'pgops_offsite_after_backup=true')
    assert 'TASK [pgops.postgresql.offsite : Copy the backups off-site]' in out and '0 backup(s) copied' in out
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
    [fetched] = [m for m in metas if m.get('fetched_from') and m['database'] == 'drs_prod']
    assert fetched['id'] == d['backup_id'] and fetched['encrypted'] is True
    assert fetched['verifications'][-1]['result'] == 'passed'
    # the key that decrypts never reached the host's backups or the report
    secret = (keys / 'identity.txt').read_text().split('AGE-SECRET-KEY-')[1].split()[0]
    for p in backups.iterdir():
        if p.is_file() and not p.name.endswith('.age'):
            assert secret not in p.read_text(errors='replace')
    assert secret not in out


def test_the_age_of_the_newest_offsite_copy_is_reported_and_alerted(postgres, run_module, tmp_path, s3):
    postgres.create_db('drs_age')
    backups = str(tmp_path / 'b')
    b = run_module('pg_backup', dict(postgres.conn(), databases=['drs_age'], dest=backups))
    assert not b.get('failed'), b
    pushed = run_module('backup_offsite', dict(path=backups, bucket=BUCKET, prefix='age', policy='all',
                                               endpoint_url=s3.endpoint, region='us-east-1',
                                               addressing_style='path', access_key=s3server.ACCESS_KEY,
                                               secret_key=s3server.SECRET_KEY))
    assert not pushed.get('failed'), pushed
    assert [p['id'] for p in pushed['pushed'] if p['database'] == 'drs_age'] == [b['id']], pushed
    info = run_module('backup_info', dict(path=backups))
    db = info['stats']['databases']['drs_age']
    assert db['offsite_copies'] == 1 and 0 <= db['offsite_newest_age_seconds'] < 600
    assert not [a for a in info['stats']['alerts'] if 'off-site' in a]
    # the copy recorded ten days ago: backup_info and backup_metrics say so
    meta_path = [str(p) for p in (tmp_path / 'b').glob('drs_age_*.meta.json')][0]
    meta = json.loads(open(meta_path).read())
    meta['offsite'][0]['at'] = '2020-01-01T00:00:00+00:00'
    with open(meta_path, 'w') as f:
        json.dump(meta, f)
    info = run_module('backup_info', dict(path=backups))
    assert [a for a in info['stats']['alerts'] if 'drs_age: the newest off-site copy is' in a], info['stats']['alerts']
    prom = str(tmp_path / 'pgops.prom')
    metrics = run_module('backup_metrics', dict(path=backups, dest=prom, databases=['drs_age'],
                                                offsite_age_action='fail'))
    assert metrics.get('failed') and 'off-site copy' in metrics['msg'], metrics
    text = open(prom).read()
    # every sample names its server too (issue 22): whatever the name, it is the backup's
    server = json.loads(open(meta_path).read())['server']
    assert 'pgops_offsite_newest_age_seconds{database="drs_age",server="%s"}' % server in text, text
    assert 'pgops_backup_alert{action="fail",alert="offsite_age",database="drs_age",server="%s"} 1' % server in text


def test_dr_from_a_bucket_two_servers_push_to_restores_this_servers_data(run_module, collection_root, tmp_path, s3):
    """Issue 22: servers prod-a and prod-b push database shop to one bucket with the default prefix; prod-a is
    lost with its backups. disaster_recovery.yml (pgops_server prod-a) fetches prod-a's copy - not the newer
    prod-b one - and restores A; with disaster_recovery_source_server prod-b it restores B, on purpose."""
    from conftest import cluster
    with cluster() as a, cluster() as b:
        made = {}
        for pg, name, letter in ((a, 'prod-a', 'A'), (b, 'prod-b', 'B')):
            pg.psql('postgres', 'CREATE DATABASE shop')
            pg.psql('shop', "CREATE TABLE marker (who text); INSERT INTO marker VALUES ('%s')" % letter)
            directory = str(tmp_path / name)
            res = run_module('pg_backup', dict(pg.conn(), databases=['shop'], dest=directory, server=name))
            assert not res.get('failed'), res
            pushed = run_module('backup_offsite', dict(path=directory, bucket=BUCKET, policy='all',
                                                       endpoint_url=s3.endpoint, region='us-east-1',
                                                       access_key=s3server.ACCESS_KEY,
                                                       secret_key=s3server.SECRET_KEY))
            assert not pushed.get('failed') and pushed['pushed'], pushed
            made[name] = res
            time.sleep(1.1)     # another id: both copies fetched into one directory keep their own file names
        backups = tmp_path / 'prod-a'
        a.psql('postgres', 'DROP DATABASE shop')            # prod-a is lost, its backups too
        shutil.rmtree(str(backups))
        inv = tmp_path / 'inventory.yml'
        inv.write_text(yaml.safe_dump({'postgres_servers': {
            'hosts': {'prod-a': {'ansible_connection': 'local', 'ansible_python_interpreter': sys.executable}},
            'vars': {'pgops_login_host': '127.0.0.1', 'pgops_port': a.port, 'pgops_login_user': 'postgres',
                     'pgops_server': 'prod-a', 'pgops_databases': ['shop'], 'pgops_backup_dir': str(backups),
                     'pgops_log_file': str(tmp_path / 'db-backup.log'), 'metrics_enabled': False,
                     'pgops_offsite_bucket': BUCKET, 'pgops_offsite_endpoint_url': s3.endpoint,
                     'pgops_offsite_region': 'us-east-1', 'pgops_offsite_addressing_style': 'path',
                     'pgops_offsite_access_key': s3server.ACCESS_KEY,
                     'pgops_offsite_secret_key': s3server.SECRET_KEY}}}))
        env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=collection_root, ANSIBLE_FORCE_COLOR='0', ANSIBLE_NOCOLOR='1',
                   PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ['PATH'])

        def dr(*args):
            proc = subprocess.run([os.path.join(os.path.dirname(sys.executable), 'ansible-playbook'), '-i', str(inv),
                                   os.path.join(REPO, 'playbooks', 'disaster_recovery.yml'),
                                   '-e', 'disaster_recovery_fetch_offsite=true'] + list(args),
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True, env=env,
                                  cwd=str(tmp_path), check=False)
            assert proc.returncode == 0, proc.stdout[-4000:]
            return json.loads((backups / 'disaster-recovery-last.json').read_text())

        [d] = dr()['databases']
        assert d['result'] == 'passed' and d['backup_id'] == made['prod-a']['id'], d
        assert a.psql('shop', 'SELECT who FROM marker') == 'A'
        [d] = dr('-e', 'disaster_recovery_source_server=prod-b', '-e', 'disaster_recovery_confirm=true')['databases']
        assert d['result'] == 'passed' and d['backup_id'] == made['prod-b']['id'], d
        assert a.psql('shop', 'SELECT who FROM marker') == 'B'
