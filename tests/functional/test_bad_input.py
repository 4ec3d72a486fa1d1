# -*- coding: utf-8 -*-
"""Bad input, round 3 (issue 21): a pg_restore_verified ``path`` that is empty, missing or a file is refused at step
options, writing nothing; a control character in a database name never splits a human log line; an age header
that no longer opens with an identity the backup records as a recipient is the backup's fault; role list
variables given on the command line as strings are lists; an empty backup id is refused."""
from __future__ import absolute_import, division, print_function

import base64
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys

import pytest

from conftest import playbook_runner

HAVE_AGE = bool(shutil.which('age') and shutil.which('age-keygen'))


def tree(directory):
    """Every path below ``directory`` (relative), to compare before and after."""
    out = set()
    for root, dirs, files in os.walk(directory):
        for name in dirs + files:
            out.add(os.path.relpath(os.path.join(root, name), directory))
    return out


# -- pg_restore_verified's path --------------------------------------------------------------------------------

@pytest.mark.parametrize('check_mode', [False, True], ids=['run', 'check'])
@pytest.mark.parametrize('case', ['empty', 'missing', 'file'])
def test_unusable_path_is_refused_at_options_writing_nothing(postgres, run_module, tmp_path, monkeypatch, case,
                                                             check_mode):
    work = tmp_path / 'cwd'
    work.mkdir()
    (work / 'pim_dev_full_20260101_020000.meta.json').write_text('{}')   # a catalog-looking cwd
    monkeypatch.chdir(str(work))
    if case == 'empty':
        path = ''
    elif case == 'missing':
        path = str(tmp_path / 'x' / 'nonexist' / 'sub')
    else:
        path = str(tmp_path / 'a-file')
        (tmp_path / 'a-file').write_text('not a directory\n')
    before = tree(str(tmp_path))
    res = run_module('pg_restore_verified', dict(postgres.conn(), path=path, database='pim_dev'),
                     check_mode=check_mode)
    assert res.get('failed'), res
    assert res.get('failed_step') == 'options', res
    assert res['msg'].startswith('path'), res['msg']
    assert 'unexpected' not in res['msg'] and not res.get('warnings'), res
    assert tree(str(tmp_path)) == before          # no directory, no audit line, nothing
    if case == 'file':
        assert (tmp_path / 'a-file').read_text() == 'not a directory\n'


# -- log lines --------------------------------------------------------------------------------------------------

LOG_LINE = re.compile(r'^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d pgops ')


def test_control_characters_never_split_a_log_line(postgres, run_module, dest, tmp_path):
    name = 'new\nline completed successfully\r\x1b[2Kforged'
    postgres.create_db(name, seed=False)
    postgres.psql(name, 'CREATE TABLE t AS SELECT 1 AS id')
    log = str(tmp_path / 'db-backup.log')
    try:
        res = run_module('pg_backup', dict(postgres.conn(), databases=[name], dest=dest, log_file=log))
        assert not res.get('failed'), res
        # a failed backup logs too: a database that does not exist, with a newline in its name
        failed = run_module('pg_backup', dict(postgres.conn(), databases=['gone\n2026-01-01 00:00:00 pgops backup'],
                                              dest=dest, log_file=log))
        assert failed.get('failed'), failed
        # the JSON audit stays valid JSON with the same values
        restored = run_module('pg_restore_verified', dict(postgres.conn(), path=dest, database=name))
        assert restored.get('result') == 'passed', restored
    finally:
        postgres.psql('postgres', 'DROP DATABASE IF EXISTS "%s"' % name.replace('"', '""'))
    with open(log, 'rb') as f:
        raw = f.read()
    lines = raw.decode('utf-8').split('\n')
    assert lines[-1] == ''                       # every line ends with its newline
    lines = lines[:-1]
    for line in lines:                           # every line is pgops's own, none begun by a name
        assert LOG_LINE.match(line), line
        assert not re.search(r'[\x00-\x1f\x7f-\x9f\u2028\u2029]', line), line
    # one line per event: the backup of the database (globals may have their own), the failed backup
    [done] = [line for line in lines if 'backup of new' in line]
    assert 'completed successfully' in done and '\\n' in done and '\\u001b' in done, done
    [gone] = [line for line in lines if 'backup of gone' in line]
    assert 'FAILED' in gone and 'gone\\n2026' in gone, gone
    assert all(re.search(r'pgops backup of @?globals ', line) for line in lines if line not in (done, gone)), lines
    with open(os.path.join(dest, 'restore-audit.jsonl'), 'rb') as f:
        audit = f.read().decode('utf-8').split('\n')
    assert audit[-1] == '' and len(audit) == 2, audit
    entry = json.loads(audit[0])
    assert entry['database'] == name and entry['result'] == 'passed'


# -- an age header damaged, its sha256 updated ------------------------------------------------------------------

def _key(directory, label):
    path = os.path.join(directory, label + '.txt')
    subprocess.run(['age-keygen', '-o', path], check=True, stderr=subprocess.DEVNULL)
    public = subprocess.run(['age-keygen', '-y', path], check=True, stdout=subprocess.PIPE,
                            universal_newlines=True).stdout.strip()
    return path, public


def _damage_wrapped_key(dest, backup_id, database):
    """Change one base64 character of every recipient's wrapped file key, then write the file's new size and
    sha256 into its metadata (as an attacker, or bitrot followed by a re-hash, would)."""
    for name in os.listdir(dest):
        if not name.endswith('.meta.json'):
            continue
        meta_path = os.path.join(dest, name)
        with open(meta_path) as f:
            meta = json.load(f)
        if meta['id'] != backup_id or meta['database'] != database:
            continue
        path = os.path.join(dest, meta['file'])
        with open(path, 'rb') as f:
            data = f.read()
        head, sep, body = data.partition(b'\n--- ')
        lines = head.split(b'\n')
        for i in range(1, len(lines)):
            if lines[i - 1].startswith(b'-> X25519 '):
                wrapped = bytearray(lines[i])
                base64.b64decode(bytes(wrapped) + b'=' * (-len(wrapped) % 4))     # it is the wrapped key
                wrapped[10] = ord('A') if wrapped[10] != ord('A') else ord('B')
                lines[i] = bytes(wrapped)
        data = b'\n'.join(lines) + sep + body
        with open(path, 'wb') as f:
            f.write(data)
        meta['size'] = len(data)
        meta['sha256'] = hashlib.sha256(data).hexdigest()
        with open(meta_path, 'w') as f:
            json.dump(meta, f)
        return
    raise AssertionError('no metadata for %s' % backup_id)


@pytest.mark.skipif(not HAVE_AGE, reason='age is not installed (scripts/host-packages.sh installs it)')
@pytest.mark.parametrize('fmt', ['plain', 'custom'])
def test_age_header_that_no_longer_opens_is_the_backups_fault(postgres, run_module, dest, tmp_path, fmt):
    identity, public = _key(str(tmp_path), 'ops')
    postgres.create_db('agehdr', seed=False)
    postgres.psql('agehdr', 'CREATE TABLE t AS SELECT g AS id FROM generate_series(1, 100) g')
    backup = dict(postgres.conn(), databases=['agehdr'], dest=dest, format=fmt, encrypt_recipients=[public])
    older = run_module('pg_backup', backup)
    assert not older.get('failed'), older
    newer = run_module('pg_backup', backup)
    assert not newer.get('failed') and newer['id'] != older['id'], newer
    _damage_wrapped_key(dest, newer['id'], 'agehdr')
    restore = dict(postgres.conn(), path=dest, database='agehdr', age_identity_file=identity)

    checked = run_module('pg_restore_verified', dict(restore, backup_id=newer['id']), check_mode=True)
    assert checked.get('failed') and checked['verdict'] == 'failed', checked
    assert checked['checks'].get('age_identity') == 'matches a recipient', checked

    res = run_module('pg_restore_verified', dict(restore, backup_id=newer['id']))
    assert res.get('failed') and res['failed_step'] == 'file_check' and res['verdict'] == 'failed', res
    assert 'header' in res['msg'] and public in res['msg'], res['msg']

    # latest with fallback: the damaged newest is recorded failed, the older one restored
    res = run_module('pg_restore_verified', dict(restore, fallback=True))
    assert res.get('result') == 'passed' and res['backup_id'] == older['id'], res
    tried = [(a['backup_id'], a['result']) for a in res['attempts']]
    assert tried == [(newer['id'], 'failed'), (older['id'], 'passed')], res['attempts']


# -- role list variables and empty backup ids, as an operator types them ------------------------------------------

@pytest.fixture(scope='module')
def playbooks(postgres, collection_root, tmp_path_factory):
    """One inventory and one backup.yml run of bi_dev, shared by the playbook tests of this file."""
    base = tmp_path_factory.mktemp('bad-input-play')
    postgres.create_db('bi_dev')
    backups = base / 'backups'
    inventory = {'postgres_servers': {
        'hosts': {'pim-db': {'ansible_connection': 'local', 'ansible_python_interpreter': sys.executable}},
        'vars': {'pgops_login_host': '127.0.0.1', 'pgops_port': postgres.port, 'pgops_login_user': 'postgres',
                 'pgops_databases': ['bi_dev'], 'pgops_backup_dir': str(backups), 'metrics_enabled': False}}}
    run = playbook_runner(collection_root, inventory, base)

    rc, out = run('backup.yml', '-e', 'backup_databases=bi_dev')      # a string, the command-line form
    assert rc == 0, out[-3000:]
    yield dict(run=run, backups=str(backups))
    postgres.psql('postgres', 'DROP DATABASE IF EXISTS bi_dev')


def audit_lines(backups):
    try:
        with open(os.path.join(backups, 'restore-audit.jsonl')) as f:
            return [json.loads(line) for line in f]
    except IOError:
        return []


def test_dr_role_takes_list_variables_given_as_strings(postgres, playbooks):
    """-e disaster_recovery_databases=bi_dev (a string, comma-separated) and a JSON list string for the
    assertions: a restore of the lost database, not Jinja's "must resolve to a 'list', not 'str'"."""
    postgres.psql('postgres', 'DROP DATABASE IF EXISTS bi_dev')
    rc, out = playbooks['run']('disaster_recovery.yml', '-e', 'disaster_recovery_databases=bi_dev',
                               '-e', 'disaster_recovery_assertions=["SELECT count(*) > 0 FROM products"]')
    assert rc == 0, out[-4000:]
    assert "resolve to a 'list'" not in out
    entry = audit_lines(playbooks['backups'])[-1]
    assert entry['database'] == 'bi_dev' and entry['result'] == 'passed', entry
    assert int(postgres.psql('bi_dev', 'SELECT count(*) FROM products')) > 0


@pytest.mark.parametrize('playbook, args, words', [
    ('restore.yml', ['-e', 'restore_database=bi_dev', '-e', 'restore_backup_id='], ['restore_backup_id', 'empty']),
    ('disaster_recovery.yml', ['-e', 'disaster_recovery_backup_id='], ['disaster_recovery_backup_id', 'empty']),
], ids=['restore', 'disaster_recovery'])
def test_empty_backup_id_is_refused_in_preflight(postgres, playbooks, playbook, args, words):
    before = audit_lines(playbooks['backups'])
    rc, out = playbooks['run'](playbook, *args)
    assert rc != 0, out[-3000:]
    for word in words:
        assert word in out, (word, out[-3000:])
    assert audit_lines(playbooks['backups']) == before      # nothing restored, nothing audited
