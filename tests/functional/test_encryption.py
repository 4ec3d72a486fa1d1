# -*- coding: utf-8 -*-
"""Backups encrypted with age (public keys only on the database host) and verified restores that decrypt them,
with real age, real zstd and a real PostgreSQL: what is on disk is ciphertext, the metadata says so, a wrong or
missing key is refused before any database is created without blaming the backup, and a damaged ciphertext
never commits anything."""
from __future__ import absolute_import, division, print_function

import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import pytest

from conftest import argv_while_running, meta_file_of, meta_of, pg_bin, playbook_runner, sha256
from test_container import pg_container  # noqa: F401 pylint: disable=unused-import # the container fixture

pytestmark = pytest.mark.skipif(not shutil.which('age') or not shutil.which('age-keygen'),
                                reason='age is not installed (scripts/host-packages.sh installs it)')


def databases(postgres):
    return set(postgres.psql('postgres', 'SELECT datname FROM pg_database').split())


class Key(object):
    def __init__(self, directory, name):
        self.path = os.path.join(directory, name + '.txt')
        subprocess.run(['age-keygen', '-o', self.path], check=True, stderr=subprocess.DEVNULL)
        with open(self.path) as f:
            self.content = f.read()
        self.secret = [line for line in self.content.splitlines() if line.startswith('AGE-SECRET-KEY-')][0]
        self.public = subprocess.run(['age-keygen', '-y', self.path], check=True, stdout=subprocess.PIPE,
                                     universal_newlines=True).stdout.strip()


@pytest.fixture(scope='module')
def keys(tmp_path_factory):
    d = str(tmp_path_factory.mktemp('age-keys'))
    return dict(ops=Key(d, 'ops'), breakglass=Key(d, 'breakglass'), stranger=Key(d, 'stranger'))


@pytest.fixture
def secret_db(postgres):
    """A seeded database with one more table large enough for many 64 KiB age chunks."""
    postgres.create_db('secretdb')
    postgres.psql('secretdb', "CREATE TABLE big AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 60000) g")
    return postgres.row_counts('secretdb')


def backup(run_module, postgres, dest, keys, **kw):
    args = dict(postgres.conn(), databases=['secretdb'], dest=dest,
                encrypt_recipients=[keys['ops'].public, keys['breakglass'].public])
    args.update(kw)
    res = run_module('pg_backup', args)
    assert not res.get('failed'), res
    return res


def restore(run_module, postgres, dest, check_mode=False, **kw):
    args = dict(postgres.conn(), path=dest, database='secretdb')
    args.update(kw)
    return run_module('pg_restore_verified', args, check_mode=check_mode)


def decrypt(path, key):
    return subprocess.run(['age', '-d', '-i', key.path, path], check=True, stdout=subprocess.PIPE).stdout


@pytest.mark.parametrize('fmt,suffix', [('plain', '.sql.zst.age'), ('custom', '.dump.age')])
def test_encrypted_backup_is_ciphertext_described_by_its_metadata(postgres, dest, run_module, keys, secret_db, fmt,
                                                                  suffix):
    res = backup(run_module, postgres, dest, keys, format=fmt, globals=True)
    path = res['backup_path']
    assert path.endswith(suffix)
    meta = meta_of(dest, res['id'], 'secretdb')
    assert meta['encrypted'] is True
    assert meta['encryption'] == dict(tool='age', recipients=[keys['ops'].public, keys['breakglass'].public])
    assert meta['sha256'] == sha256(path) == res['sha256'] and meta['size'] == os.path.getsize(path)
    assert oct(os.stat(path).st_mode & 0o777) == '0o640'
    with open(path, 'rb') as f:
        assert f.read(21) == b'age-encryption.org/v1'
    # not readable without the key
    if fmt == 'plain':
        assert subprocess.run(['zstd', '-q', '-t', path], stderr=subprocess.DEVNULL, check=False).returncode != 0
    else:
        assert subprocess.run([pg_bin('pg_restore'), '--list', path], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, check=False).returncode != 0
    # either recipient's identity gives the dump
    for key in (keys['ops'], keys['breakglass']):
        clear = decrypt(path, key)
        if fmt == 'plain':
            sql = subprocess.run(['zstd', '-dc'], input=clear, stdout=subprocess.PIPE, check=True).stdout
            assert b'CREATE TABLE public.big' in sql
        else:
            assert clear.startswith(b'PGDMP')
            listing = subprocess.run([pg_bin('pg_restore'), '--list'], input=clear, stdout=subprocess.PIPE,
                                     check=True).stdout
            assert b'TABLE DATA public big' in listing
    assert subprocess.run(['age', '-d', '-i', keys['stranger'].path, path], stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL, check=False).returncode != 0
    # the globals dump is encrypted too
    [glob] = [b for b in res['backups'] if b['database'] == '@globals']
    assert glob['status'] == 'success' and glob['path'].endswith('.sql.zst.age') and glob['encrypted'] is True
    assert glob['encryption']['recipients'] == meta['encryption']['recipients']
    sql = subprocess.run(['zstd', '-dc'], input=decrypt(glob['path'], keys['ops']), stdout=subprocess.PIPE,
                         check=True).stdout
    assert b'CREATE ROLE postgres' in sql
    # no clear copy and no recipients file left behind
    assert not [n for n in os.listdir(dest) if n.startswith('.') and 'tmp' in n]


def test_recipients_file_and_unencrypted_backups(postgres, dest, run_module, keys, secret_db, tmp_path):
    rfile = tmp_path / 'recipients.txt'
    rfile.write_text('# restore host\n%s\n\n# break glass, in the safe\n%s\n' % (keys['ops'].public,
                                                                                 keys['breakglass'].public))
    res = backup(run_module, postgres, dest, keys, encrypt_recipients=[keys['ops'].public],
                 encrypt_recipients_file=str(rfile), compression='none')
    assert res['backup_path'].endswith('.sql.age')
    meta = meta_of(dest, res['id'], 'secretdb')
    assert meta['encryption']['recipients'] == [keys['ops'].public, keys['breakglass'].public]   # no duplicate
    assert b'CREATE TABLE public.big' in decrypt(res['backup_path'], keys['breakglass'])
    clear = run_module('pg_backup', dict(postgres.conn(), databases=['secretdb'], dest=dest))
    assert not clear.get('failed') and clear['backup_path'].endswith('.sql.zst')
    assert meta_of(dest, clear['id'], 'secretdb')['encrypted'] is False


@pytest.mark.parametrize('args,words', [
    (dict(format='directory'), ['format=directory', 'encrypt_recipients', 'encrypt_recipients_file']),
    (dict(encrypt_recipients=['age1notakey']), ['encrypt_recipients', 'age1notakey', 'age public key']),
    (dict(encrypt_recipients=['ssh-ed25519 AAAA']), ['encrypt_recipients', 'age public key']),
])
def test_refused_options_name_the_option(postgres, dest, run_module, keys, args, words):
    base = dict(postgres.conn(), databases=['postgres'], dest=dest, encrypt_recipients=[keys['ops'].public])
    base.update(args)
    res = run_module('pg_backup', base)
    assert res.get('failed') and all(w in res['msg'] for w in words), res
    assert not os.path.exists(dest) or not os.listdir(dest)


def test_identity_in_recipients_file_is_refused(postgres, dest, run_module, keys, tmp_path):
    rfile = tmp_path / 'recipients.txt'
    rfile.write_text(keys['ops'].content)
    res = run_module('pg_backup', dict(postgres.conn(), databases=['postgres'], dest=dest,
                                       encrypt_recipients_file=str(rfile)))
    assert res.get('failed') and 'encrypt_recipients_file' in res['msg'] and 'identity' in res['msg'], res
    assert keys['ops'].secret not in json.dumps(res)


@pytest.mark.parametrize('fmt,how', [('plain', 'content'), ('custom', 'file')])
def test_restore_with_the_right_identity(postgres, dest, run_module, keys, secret_db, fmt, how):
    b = backup(run_module, postgres, dest, keys, format=fmt)
    ident = dict(age_identity=keys['breakglass'].content) if how == 'content' else dict(
        age_identity_file=keys['ops'].path)
    before = databases(postgres)
    res = restore(run_module, postgres, dest, mode='test', **ident)
    assert not res.get('failed'), res
    assert res['result'] == 'passed' and res['backup_id'] == b['id']
    assert res['checks']['decryption'] == res['checks']['sha256'] == res['checks']['row_counts'] == 'passed'
    assert res['checks']['age_identity'] == 'matches a recipient'
    assert res['checks']['rows_verified'] == sum(secret_db.values())
    assert databases(postgres) == before
    # replace: exact row counts, and the pre_restore backup is encrypted to the same recipients
    postgres.psql('secretdb', 'DELETE FROM big WHERE id > 100')
    res = restore(run_module, postgres, dest, mode='replace', backup_id=b['id'], **ident)
    assert not res.get('failed'), res
    assert postgres.row_counts('secretdb') == secret_db
    pre = res['pre_restore_backup']
    assert pre['encrypted'] is True and pre['path'].endswith('.sql.zst.age')
    pre_meta = meta_of(dest, pre['id'], 'secretdb')
    assert pre_meta['kind'] == 'pre_restore' and pre_meta['encryption']['recipients'] == [
        keys['ops'].public, keys['breakglass'].public]
    sql = subprocess.run(['zstd', '-dc'], input=decrypt(pre['path'], keys['ops']), stdout=subprocess.PIPE,
                         check=True).stdout
    assert b'CREATE TABLE public.big' in sql
    assert not [n for n in os.listdir(dest) if n.endswith(('.sql.zst', '.dump', '.sql'))]   # no clear copy
    postgres.psql('postgres', 'DROP DATABASE "%s"' % res['rollback_database'])


def test_wrong_identity_is_refused_before_any_database_and_is_inconclusive(postgres, dest, run_module, keys,
                                                                           secret_db):
    b = backup(run_module, postgres, dest, keys)
    before = databases(postgres)
    for ident in (dict(age_identity=keys['stranger'].content), dict(age_identity_file=keys['stranger'].path)):
        res = restore(run_module, postgres, dest, mode='replace', **ident)
        assert res.get('failed') and res['failed_step'] == 'file_check' and res['verdict'] == 'inconclusive', res
        assert keys['ops'].public in res['msg'] and keys['breakglass'].public in res['msg']
        assert keys['stranger'].public in res['msg']
        assert databases(postgres) == before and 'pre_restore_backup' not in res
        assert postgres.row_counts('secretdb') == secret_db
    meta = meta_of(dest, b['id'], 'secretdb')
    assert [v['result'] for v in meta['verifications']] == ['inconclusive', 'inconclusive']
    assert meta['status'] == 'success'


def test_wrong_identity_seen_by_age_itself_is_inconclusive(postgres, dest, run_module, keys, secret_db, tmp_path):
    """An identity age-keygen cannot turn into a public key (so the recipients check is skipped): age -d's own
    "no identity matched" is judged inconclusive all the same."""
    b = backup(run_module, postgres, dest, keys)
    odd = tmp_path / 'odd-identity.txt'
    # an ssh key is a valid age identity that age-keygen -y does not read
    if not shutil.which('ssh-keygen'):
        pytest.fail('ssh-keygen not installed: scripts/host-packages.sh installs openssh-client')
    subprocess.run(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-f', str(odd)], check=True)
    before = databases(postgres)
    res = restore(run_module, postgres, dest, mode='test', age_identity_file=str(odd))
    assert res.get('failed') and res['failed_step'] == 'file_check' and res['verdict'] == 'inconclusive', res
    assert 'no identity matched' in res['msg'] and keys['ops'].public in res['msg']
    assert databases(postgres) == before
    assert meta_of(dest, b['id'], 'secretdb')['verifications'][-1]['result'] == 'inconclusive'


def test_no_identity_names_the_recipients(postgres, dest, run_module, keys, secret_db):
    b = backup(run_module, postgres, dest, keys)
    before = databases(postgres)
    for check_mode in (True, False):
        res = restore(run_module, postgres, dest, check_mode=check_mode, mode='test')
        assert res.get('failed') and res['verdict'] == 'inconclusive', res
        assert 'age_identity' in res['msg']
        assert keys['ops'].public in res['msg'] and keys['breakglass'].public in res['msg']
    assert databases(postgres) == before
    assert meta_of(dest, b['id'], 'secretdb')['verifications'] == []


def test_bit_flipped_ciphertext_fails_the_file_check(postgres, dest, run_module, keys, secret_db):
    b = backup(run_module, postgres, dest, keys)
    with open(b['backup_path'], 'r+b') as f:
        f.seek(os.path.getsize(b['backup_path']) // 2)
        byte = f.read(1)
        f.seek(-1, 1)
        f.write(bytes([byte[0] ^ 0x01]))
    before = databases(postgres)
    res = restore(run_module, postgres, dest, mode='replace', age_identity_file=keys['ops'].path)
    assert res.get('failed') and res['failed_step'] == 'file_check' and res['verdict'] == 'failed', res
    assert 'sha256' in res['msg']
    assert databases(postgres) == before and postgres.row_counts('secretdb') == secret_db


def damage_and_fix_metadata(dest, backup_id, path):
    """Flip a byte in the last chunk of the ciphertext and make the metadata match the damaged file."""
    size = os.path.getsize(path)
    assert size > 3 * 65536, 'the backup must span several age chunks'
    with open(path, 'r+b') as f:
        f.seek(size - 100)
        byte = f.read(1)
        f.seek(-1, 1)
        f.write(bytes([byte[0] ^ 0x01]))
    meta_path, meta = meta_file_of(dest, backup_id, 'secretdb')
    meta['sha256'] = sha256(path)
    with open(meta_path, 'w') as f:
        json.dump(meta, f)


@pytest.mark.parametrize('fmt', ['plain', 'custom'])
def test_damaged_ciphertext_with_matching_sha256_is_the_backups_fault(postgres, dest, run_module, keys, secret_db,
                                                                      fmt):
    b = backup(run_module, postgres, dest, keys, format=fmt, compression='none' if fmt == 'plain' else 'zstd')
    damage_and_fix_metadata(dest, b['id'], b['backup_path'])
    postgres.psql('secretdb', 'DELETE FROM big WHERE id > 100')
    target_counts = postgres.row_counts('secretdb')
    before = databases(postgres)
    res = restore(run_module, postgres, dest, mode='replace', age_identity_file=keys['ops'].path)
    assert res.get('failed') and res['verdict'] == 'failed' and res['failed_step'] == 'file_check', res
    assert res['checks']['sha256'] == 'passed' and 'age' in res['msg']
    assert databases(postgres) == before                 # no scratch database, no rollback database
    assert postgres.row_counts('secretdb') == target_counts
    assert meta_of(dest, b['id'], 'secretdb')['verifications'][-1]['result'] == 'failed'


def test_age_failing_mid_restore_commits_nothing(postgres, dest, run_module, keys, secret_db, collection_root):
    """The restore pipeline itself (past the file check): age -d emits the chunks it authenticated before it
    finds the damaged one; psql has then received part of the dump, and no COMMIT is ever sent."""
    sys.path.insert(0, collection_root)
    try:
        from ansible_collections.pgops.postgresql.plugins.module_utils._pipeline import Stage, run_framed
        from ansible_collections.pgops.postgresql.plugins.module_utils._verdict import BackupFault, judge
        from ansible_collections.pgops.postgresql.plugins.module_utils._fsutil import PgOpsError
    finally:
        sys.path.remove(collection_root)
    b = backup(run_module, postgres, dest, keys, compression='none')
    damage_and_fix_metadata(dest, b['id'], b['backup_path'])
    postgres.create_db('scratch_age', seed=False)
    psql = Stage('psql', [pg_bin('psql'), '-X', '-w', '-q', '-v', 'ON_ERROR_STOP=1', '-o', '/dev/null',
                          '-h', '127.0.0.1', '-p', str(postgres.port), '-U', 'postgres', '-d', 'scratch_age'])
    age = Stage('age', [shutil.which('age'), '--decrypt', '-i', keys['ops'].path])
    t0 = time.time()
    with pytest.raises(PgOpsError) as info:
        run_framed([age], psql, dict(os.environ), 'restore', b'BEGIN;\n', b'\nCOMMIT;\n', b['backup_path'])
    err = info.value
    assert 'age' in err.msg and 'failed to decrypt' in err.msg, err.msg
    assert isinstance(judge(err), BackupFault)
    assert time.time() - t0 < 60
    assert postgres.psql('scratch_age', "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = "
                                        "c.relnamespace WHERE n.nspname = 'public'") == '0'
    postgres.psql('postgres', 'DROP DATABASE scratch_age')


def test_identity_never_in_argv_output_or_metadata(postgres, dest, run_module, keys, secret_db):
    b = backup(run_module, postgres, dest, keys, format='custom')
    proc = run_module.popen('pg_restore_verified', dict(postgres.conn(), path=dest, database='secretdb', mode='test',
                                                        age_identity=keys['ops'].content))
    seen = argv_while_running(proc)
    res = run_module.result(proc)
    assert not res.get('failed'), res
    assert any(b'age\x00--decrypt' in c for c in seen)             # age ran, and was sampled
    secret = keys['ops'].secret.encode()
    assert not any(secret in c for c in seen)
    assert keys['ops'].secret not in json.dumps(res)
    for name in os.listdir(dest):
        full = os.path.join(dest, name)
        if os.path.isfile(full):
            with open(full, 'rb') as f:
                assert secret not in f.read(), name
    assert meta_of(dest, b['id'], 'secretdb')['verifications'][-1]['result'] == 'passed'
    # the identity file written for age (0600, in the module's temporary directory) is gone
    assert not glob.glob(os.path.join(tempfile.gettempdir(), 'ansible-moduletmp-*', 'pgops-identity-*'))


def test_identity_given_twice_is_refused(postgres, dest, run_module, keys):
    res = restore(run_module, postgres, dest, mode='test', age_identity=keys['ops'].content,
                  age_identity_file=keys['ops'].path)
    assert res.get('failed') and 'age_identity' in res['msg'] and 'age_identity_file' in res['msg'], res
    assert keys['ops'].secret not in json.dumps(res)


@pytest.mark.parametrize('fmt', ['plain', 'custom'])
def test_encrypted_backup_and_restore_in_a_container(pg_container, dest, run_module, keys, fmt):
    """pg_dump runs in the container, age on the host; the restore streams age -d | pg_restore (or psql) into
    docker exec -i."""
    conn = dict(container=pg_container['name'], login_user='pim_user')
    b = run_module('pg_backup', dict(conn, databases=['pim_dev'], dest=dest, format=fmt,
                                     encrypt_recipients=[keys['ops'].public]))
    assert not b.get('failed'), b
    assert b['backup_path'].endswith('.age') and b['backups'][0]['encrypted'] is True
    res = run_module('pg_restore_verified', dict(conn, path=dest, database='pim_dev', backup_id=b['id'], mode='test',
                                                 age_identity=keys['ops'].content))
    assert not res.get('failed'), res
    assert res['checks']['decryption'] == 'passed' and res['checks']['rows_verified'] == b['rows_total']
    assert keys['ops'].secret not in json.dumps(res)


def test_playbooks_encrypt_and_restore_with_the_shared_variables(postgres, collection_root, keys, tmp_path):
    """backup.yml with pgops_encrypt_recipients, then restore_drill.yml and restore.yml with pgops_age_identity
    (the content, as Ansible Vault would give it): every backup encrypted, drills and the replace pass, and the
    identity is in no output."""
    postgres.create_db('pb_secret')
    backups = tmp_path / 'backups'
    inventory = {'postgres_servers': {
        'hosts': {'pim-db': {'ansible_connection': 'local', 'ansible_python_interpreter': sys.executable}},
        'vars': {'pgops_login_host': '127.0.0.1', 'pgops_port': postgres.port, 'pgops_login_user': 'postgres',
                 'pgops_databases': ['pb_secret'], 'pgops_backup_dir': str(backups),
                 'pgops_log_file': str(tmp_path / 'db-backup.log'), 'metrics_enabled': False,
                 'pgops_encrypt_recipients': [keys['ops'].public, keys['breakglass'].public],
                 'pgops_age_identity': keys['breakglass'].content}}}
    playbook = playbook_runner(collection_root, inventory, tmp_path)

    def run(name, *args):
        rc, out = playbook(name, *args)
        assert keys['breakglass'].secret not in out
        return rc, out

    rc, out = run('backup.yml')
    assert rc == 0, out[-3000:]
    dumps = [n for n in os.listdir(str(backups)) if not n.startswith('.') and not n.endswith(('.json', '.jsonl'))]
    assert dumps and all(n.endswith('.age') for n in dumps), dumps
    rc, out = run('restore_drill.yml')
    assert rc == 0, out[-3000:]
    counts = postgres.row_counts('pb_secret')
    postgres.psql('pb_secret', 'DELETE FROM product_attributes')
    rc, out = run('restore.yml', '-e', 'restore_database=pb_secret')
    assert rc == 0, out[-3000:]
    assert postgres.row_counts('pb_secret') == counts
    pre = [n for n in os.listdir(str(backups)) if '_pre_restore_' in n and not n.endswith('.json')]
    assert pre and all(n.endswith('.sql.zst.age') for n in pre), pre
