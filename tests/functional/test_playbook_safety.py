# -*- coding: utf-8 -*-
"""The plan's playbooks as an operator runs them (ansible-playbook, a local inventory, a real PostgreSQL): the
production guard holds whatever tags are skipped or modes chosen, a bare restore refuses to guess the database,
and the weekly drill reports every backup when one of them fails (instead of crashing in Jinja)."""
from __future__ import absolute_import, division, print_function

import json
import os
import sys

import pytest

from conftest import playbook_runner


@pytest.fixture
def play(postgres, collection_root, tmp_path):
    postgres.create_db('pb_prod')
    postgres.create_db('pb_dev')
    backups = tmp_path / 'backups'
    inventory = {'postgres_servers': {
        'hosts': {'pim-db': {'ansible_connection': 'local', 'ansible_python_interpreter': sys.executable}},
        'vars': {'pgops_login_host': '127.0.0.1', 'pgops_port': postgres.port, 'pgops_login_user': 'postgres',
                 'pgops_databases': ['pb_prod', 'pb_dev'], 'pgops_production_databases': ['pb_prod'],
                 'pgops_backup_dir': str(backups), 'pgops_log_file': str(tmp_path / 'db-backup.log'),
                 'metrics_enabled': False}}}
    run = playbook_runner(collection_root, inventory, tmp_path)

    rc, out = run('backup.yml')
    assert rc == 0, out[-3000:]
    return dict(run=run, backups=str(backups))


def audit(backups):
    with open(os.path.join(backups, 'restore-audit.jsonl')) as f:
        return [json.loads(line) for line in f]


@pytest.mark.parametrize('args', [
    ['-e', 'restore_database=pb_prod'],
    ['-e', 'restore_database=pb_prod', '--skip-tags', 'restore_preflight'],
    ['-e', 'restore_database=pb_prod', '--tags', 'restore_run'],
    ['-e', 'restore_database=pb_prod', '-e', 'restore_mode=rollback'],
    ['-e', 'restore_database=pb_dev', '-e', 'restore_target=pb_prod'],
])
def test_production_guard_cannot_be_bypassed(postgres, play, args):
    postgres.psql('pb_prod', "UPDATE products SET name = 'live' WHERE id = 1")
    rc, out = play['run']('restore.yml', *args)
    assert rc != 0, out[-3000:]
    assert 'protected database' in out or 'no rollback database' in out, out[-3000:]
    assert postgres.psql('pb_prod', 'SELECT name FROM products WHERE id = 1') == 'live'
    assert audit(play['backups'])[-1]['result'] == 'failed'


def test_confirmed_production_restore_reports_its_recovery_point(postgres, play):
    rc, out = play['run']('restore.yml', '-e', 'restore_database=pb_prod', '-e', 'restore_confirm=true')
    assert rc == 0, out[-3000:]
    assert 'data as of' in out and 'backups tried' in out
    entry = audit(play['backups'])[-1]
    assert entry['result'] == 'passed' and entry['confirmed'] is True and entry['data_as_of']


def test_a_bare_restore_does_not_guess_the_database(postgres, play):
    rc, out = play['run']('restore.yml')
    assert rc != 0 and 'Name the database whose backup to restore' in out, out[-3000:]
    assert not os.path.exists(os.path.join(play['backups'], 'restore-audit.jsonl'))


def test_drill_reports_every_backup_when_one_fails(postgres, play):
    metas = [os.path.join(play['backups'], n) for n in os.listdir(play['backups']) if n.endswith('.meta.json')]
    damaged = json.load(open([m for m in metas if 'pb_dev' in m][0]))
    with open(os.path.join(play['backups'], damaged['file']), 'r+b') as f:
        f.seek(10)
        f.write(b'\x00\x01\x02')
    rc, out = play['run']('restore_drill.yml')
    assert rc != 0, out[-3000:]
    assert 'The restore drill failed' in out and 'PASS pb_prod' in out and 'FAIL pb_dev' in out, out[-4000:]
    assert 'default=None' not in out and 'object has no attribute' not in out


@pytest.mark.parametrize('playbook, args', [
    ('backup.yml', []),
    ('restore.yml', ['-e', 'restore_database=pb_dev', '-e', 'restore_mode=test']),
    ('restore_drill.yml', []),
    ('disaster_recovery.yml', []),
    ('maintenance.yml', []),
])
def test_every_role_connects_with_the_shared_pgops_variables(play, playbook, args):
    """pgops_pg_bin_dir (and with it the whole connection) reaches every module of every role, through one
    module_defaults: a directory without the client tools fails each of them, naming the option."""
    rc, out = play['run'](playbook, '-e', 'pgops_pg_bin_dir=/nonexistent/pgops-bin', *args)
    assert rc != 0 and 'not found in pg_bin_dir /nonexistent/pgops-bin' in out, out[-3000:]
