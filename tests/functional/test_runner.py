# -*- coding: utf-8 -*-
"""playbooks/backup.yml run the way AWX runs it: ansible-runner with a private data directory (project/,
inventory/, env/extravars, env/envvars), no prompts; the custom stats published with set_stats arrive in the
playbook_on_stats event AWX stores (artifact_data), and in the job events ansible-runner writes to artifacts/."""
from __future__ import absolute_import, division, print_function

import glob
import json
import os
import sys

import pytest
import yaml

ansible_runner = pytest.importorskip('ansible_runner')

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture
def private_data_dir(postgres, collection_root, tmp_path):
    postgres.create_db('runner_pim')
    pdd = tmp_path / 'awx'
    for sub in ('project', 'inventory', 'env'):
        (pdd / sub).mkdir(parents=True)
    os.symlink(os.path.join(REPO, 'playbooks'), str(pdd / 'project' / 'playbooks'))   # AWX's project checkout
    backups = tmp_path / 'backups'
    textfile = tmp_path / 'textfile_collector'
    textfile.mkdir()
    inventory = {'postgres_servers': {
        'hosts': {'pim-db': {'ansible_connection': 'local', 'ansible_python_interpreter': sys.executable}},
        'vars': {'pgops_login_host': '127.0.0.1', 'pgops_port': postgres.port, 'pgops_login_user': 'postgres',
                 'pgops_databases': ['runner_pim'], 'pgops_backup_dir': str(backups),
                 'pgops_log_file': str(tmp_path / 'logs' / 'db-backup.log')}}}
    (pdd / 'inventory' / 'hosts.yml').write_text(yaml.safe_dump(inventory))
    # what a job template's extra vars / survey answers become
    (pdd / 'env' / 'extravars').write_text(yaml.safe_dump({'backup_label': 'awx', 'backup_kind': 'manual',
                                                           'metrics_textfile_dir': str(textfile)}))
    link = os.path.join(REPO, '.cache', 'collections')
    paths = [link] if os.path.isdir(os.path.join(link, 'ansible_collections', 'pgops', 'postgresql')) else []
    (pdd / 'env' / 'envvars').write_text(yaml.safe_dump({
        'ANSIBLE_COLLECTIONS_PATH': ':'.join(paths + [collection_root]), 'ANSIBLE_FORCE_COLOR': '0'}))
    return dict(pdd=str(pdd), backups=str(backups), textfile=str(textfile))


def test_backup_playbook_under_ansible_runner(private_data_dir, monkeypatch):
    monkeypatch.setenv('PATH', os.path.dirname(sys.executable) + os.pathsep + os.environ['PATH'])   # the venv's ansible
    r = ansible_runner.run(private_data_dir=private_data_dir['pdd'], playbook='playbooks/backup.yml', ident='backup-1',
                           quiet=True)
    out = r.stdout.read()
    assert r.status == 'successful' and r.rc == 0, out[-4000:]
    assert r.stats['failures'] == {} and r.stats['ok'].get('pim-db')

    [stats_event] = [e for e in r.events if e.get('event') == 'playbook_on_stats']
    custom = stats_event['event_data']['artifact_data']
    metas = [json.load(open(p)) for p in glob.glob(os.path.join(private_data_dir['backups'], '*.meta.json'))]
    # the database's backup and the globals dump of the run, which it links
    [meta] = [m for m in metas if m['scope'] == 'database']
    [globals_meta] = [m for m in metas if m['scope'] == 'globals']
    assert meta['kind'] == 'manual' and meta['label'] == 'awx' and meta['database'] == 'runner_pim'
    assert meta['globals']['id'] == globals_meta['id']
    assert custom['pgops_backup']['backups'] == [meta['id'], globals_meta['id']]
    assert custom['pgops_backup']['failed'] == []
    assert int(custom['pgops_backup']['total_size']) == meta['size'] + globals_meta['size']
    assert custom['pgops_metrics']['file'] == os.path.join(private_data_dir['textfile'], 'pgops_backup.prom')
    assert int(custom['pgops_metrics']['samples']) > 10

    # the same data in the artifacts AWX collects (job_events/*.json)
    pattern = os.path.join(private_data_dir['pdd'], 'artifacts', 'backup-1', 'job_events', '*.json')
    events = [json.load(open(p)) for p in glob.glob(pattern)]
    [on_disk] = [e for e in events if e.get('event') == 'playbook_on_stats']
    assert on_disk['event_data']['artifact_data']['pgops_backup']['backups'] == [meta['id'], globals_meta['id']]
    with open(os.path.join(private_data_dir['textfile'], 'pgops_backup.prom')) as f:
        assert 'pgops_backup_count{database="runner_pim",kind="manual",server="%s"} 1' % meta['server'] in f.read()


def test_rotate_playbook_under_ansible_runner(private_data_dir, monkeypatch):
    """The plan's "clean 14 days" as AWX launches it: extra vars only; the newest backups are kept (min_keep)."""
    monkeypatch.setenv('PATH', os.path.dirname(sys.executable) + os.pathsep + os.environ['PATH'])
    first = ansible_runner.run(private_data_dir=private_data_dir['pdd'], playbook='playbooks/backup.yml', ident='b', quiet=True)
    assert first.status == 'successful', first.stdout.read()[-3000:]
    extravars = {'rotate_older_than_days': 14, 'metrics_textfile_dir': private_data_dir['textfile']}
    r = ansible_runner.run(private_data_dir=private_data_dir['pdd'], playbook='playbooks/rotate.yml', ident='rotate-1',
                           extravars=extravars, quiet=True)
    assert r.status == 'successful', r.stdout.read()[-3000:]
    [stats_event] = [e for e in r.events if e.get('event') == 'playbook_on_stats']
    custom = stats_event['event_data']['artifact_data']
    # the backup and its globals dump
    assert custom['pgops_rotate']['deleted'] == [] and int(custom['pgops_rotate']['kept']) == 2
    assert 'pgops_metrics' in custom
