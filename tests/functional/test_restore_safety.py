# -*- coding: utf-8 -*-
"""pg_restore_verified's safety rules, each against a real PostgreSQL: the production guard in the module, no
restore across databases by accident, the newest backup that proves itself (fallback, max age, RPO), verdicts
only from evidence about the backup, killed runs that commit nothing and are cleaned and audited, checks made
before anything is touched (prepared transactions, free space), and an audit line for every run."""
from __future__ import absolute_import, division, print_function

import fcntl
import json
import os
import signal
import subprocess
import time

import pytest

from conftest import meta_of, wait_for


def databases(postgres):
    return set(postgres.psql('postgres', 'SELECT datname FROM pg_database').split())


def audit(dest):
    with open(os.path.join(dest, 'restore-audit.jsonl')) as f:
        return [json.loads(line) for line in f]


def backup(run_module, postgres, dest, db, **kw):
    res = run_module('pg_backup', dict(postgres.conn(), databases=[db], dest=dest, **kw))
    assert not res.get('failed'), res
    return res


def restore(run_module, postgres, dest, check_mode=False, **kw):
    args = dict(postgres.conn(), path=dest)
    args.update(kw)
    return run_module('pg_restore_verified', args, check_mode=check_mode)


def flip_byte(path):
    with open(path, 'r+b') as f:
        f.seek(os.path.getsize(path) // 2)
        byte = f.read(1)
        f.seek(-1, 1)
        f.write(bytes([byte[0] ^ 0x01]))


@pytest.fixture
def shop(postgres, dest, run_module):
    postgres.create_db('shop')
    res = backup(run_module, postgres, dest, 'shop')
    return dict(id=res['id'], path=res['backup_path'], counts=postgres.row_counts('shop'))


# -- the production guard -------------------------------------------------------------------------------------
@pytest.mark.parametrize('mode', ['replace', 'rollback'])
def test_protected_database_needs_confirm_in_the_module(postgres, dest, run_module, shop, mode):
    if mode == 'rollback':
        first = restore(run_module, postgres, dest, database='shop', mode='replace', pre_restore_backup=False)
        assert not first.get('failed'), first
    postgres.psql('shop', "UPDATE products SET name = 'today'")
    before = databases(postgres)
    for check_mode in (True, False):
        res = restore(run_module, postgres, dest, check_mode=check_mode, database='shop', mode=mode,
                      protected_databases=['shop'])
        assert res['failed'] and res['failed_step'] == 'guard', res
        assert 'protected database' in res['msg'] and 'confirm=true' in res['msg']
    assert databases(postgres) == before
    assert postgres.psql('shop', "SELECT count(*) FROM products WHERE name = 'today'") != '0'
    refused = audit(dest)[-1]
    assert refused['result'] == 'failed' and refused['failed_step'] == 'guard' and refused['target'] == 'shop'
    assert refused['protected'] is True and refused['confirmed'] is False
    ok = restore(run_module, postgres, dest, database='shop', mode=mode, protected_databases=['shop'], confirm=True)
    assert not ok.get('failed'), ok
    assert audit(dest)[-1]['result'] == 'passed' and audit(dest)[-1]['confirmed'] is True
    if mode == 'rollback':   # the audit says where the replaced content went
        assert audit(dest)[-1]['replaced_database'] == ok['replaced_database']
        assert ok['replaced_database'] in databases(postgres)


def test_a_missing_protected_database_is_restored_without_confirm(postgres, dest, run_module, shop):
    postgres.psql('postgres', 'DROP DATABASE shop')
    res = restore(run_module, postgres, dest, database='shop', mode='replace', protected_databases=['shop'])
    assert not res.get('failed'), res
    assert postgres.row_counts('shop') == shop['counts']


def test_an_empty_protected_database_is_restored_without_confirm(postgres, dest, run_module, shop):
    """A recreated container's entrypoint creates POSTGRES_DB empty: nothing there to protect."""
    postgres.psql('postgres', 'DROP DATABASE shop')
    postgres.psql('postgres', 'CREATE DATABASE shop')
    postgres.psql('shop', 'CREATE EXTENSION IF NOT EXISTS amcheck')   # an extension's objects are not the user's
    res = restore(run_module, postgres, dest, database='shop', mode='replace', protected_databases=['shop'])
    assert not res.get('failed'), res
    assert 'empty' in res['checks']['guard']
    assert postgres.row_counts('shop') == shop['counts']
    # nothing to keep: no pre_restore backup of an empty database
    assert 'pre_restore_backup' not in res and res['checks']['pre_restore_backup'].startswith('skipped')
    # one function of its own is enough to be protected
    postgres.psql('postgres', 'DROP DATABASE shop')
    postgres.psql('postgres', 'CREATE DATABASE shop')
    postgres.psql('shop', 'CREATE FUNCTION mine() RETURNS int LANGUAGE sql AS $$SELECT 1$$')
    res = restore(run_module, postgres, dest, database='shop', mode='replace', protected_databases=['shop'])
    assert res['failed'] and res['failed_step'] == 'guard', res


# -- choosing: never across databases by accident, never a pre_restore backup as "latest" ----------------------
def test_replace_with_target_only_restores_the_targets_own_backup(postgres, dest, run_module, shop):
    postgres.create_db('crm')
    time.sleep(1.1)
    crm = backup(run_module, postgres, dest, 'crm')      # newer than shop's (ids are per database: not the same)
    res = restore(run_module, postgres, dest, target='shop', mode='replace', pre_restore_backup=False)
    assert not res.get('failed'), res
    assert res['backup_id'] == shop['id'] != crm['id'] and res['database'] == 'shop'
    # an id of another database: refused, saying how to do it on purpose
    res = restore(run_module, postgres, dest, target='shop', backup_id=crm['id'], mode='replace')
    assert res['failed'] and res['failed_step'] == 'choose', res
    assert 'is of database crm' in res['msg'] and 'set database: crm' in res['msg']
    entry = audit(dest)[-1]
    assert (entry['backup_id'], entry['target'], entry['failed_step']) == (crm['id'], 'shop', 'choose')
    # a replace or new with "latest" and no database at all is refused
    for mode, extra in (('replace', {}), ('new', dict(target='fresh'))):
        res = restore(run_module, postgres, dest, mode=mode, **extra)
        assert res['failed'] and res['failed_step'] == 'options' and 'needs database' in res['msg'], res


def test_latest_never_picks_a_pre_restore_backup(postgres, dest, run_module):
    postgres.create_db('onlypre')
    backup(run_module, postgres, dest, 'onlypre', kind='pre_restore')
    res = restore(run_module, postgres, dest, database='onlypre', mode='test')
    assert res['failed'] and res['failed_step'] == 'choose' and 'only pre_restore backups' in res['msg'], res


def test_a_database_with_the_scratch_name_is_refused_not_dropped(postgres, dest, run_module, shop):
    scratch = 'shop__restore_%s' % shop['id']
    postgres.psql('postgres', 'CREATE DATABASE "%s"' % scratch)
    postgres.psql(scratch, 'CREATE TABLE precious (x int); INSERT INTO precious VALUES (1)')
    res = restore(run_module, postgres, dest, database='shop', mode='test', instance='server')
    assert res['failed'] and res['failed_step'] == 'scratch' and 'not made by pgops' in res['msg'], res
    assert postgres.psql(scratch, 'SELECT count(*) FROM precious') == '1'
    assert res['verdict'] == 'inconclusive'


def test_rollback_waits_for_the_restore_lock(postgres, dest, run_module, shop):
    ok = restore(run_module, postgres, dest, database='shop', mode='replace', pre_restore_backup=False)
    assert not ok.get('failed'), ok
    fd = os.open(os.path.join(dest, '.shop.restore.lock'), os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)     # a replace of shop in progress
    try:
        res = restore(run_module, postgres, dest, target='shop', mode='rollback', lock_timeout=1)
    finally:
        os.close(fd)
    assert res['failed'] and res['failed_step'] == 'lock' and 'restores of shop' in res['msg'], res
    assert ok['rollback_database'] in databases(postgres)


# -- the newest backup that proves itself ----------------------------------------------------------------------
def test_fallback_to_the_next_older_backup_when_the_newest_is_bad(postgres, dest, run_module, shop):
    postgres.psql('shop', 'DELETE FROM product_attributes WHERE product_id > 1400')
    newer = backup(run_module, postgres, dest, 'shop')
    flip_byte(newer['backup_path'])
    postgres.psql('postgres', 'DROP DATABASE shop')    # a total loss
    # check mode already reads the files: it plans the restore of the backup that would be used
    plan = restore(run_module, postgres, dest, check_mode=True, database='shop', mode='replace', fallback=True)
    assert plan['fallback_candidates'] == [shop['id']] and plan['backup_id'] == shop['id'], plan
    assert [a['result'] for a in plan['attempts']] == ['failed', 'passed']
    assert meta_of(dest, newer['id'], 'shop')['verifications'] == []     # check mode records nothing
    res = restore(run_module, postgres, dest, database='shop', mode='replace', fallback=True)
    assert not res.get('failed'), res
    assert res['backup_id'] == shop['id']
    assert [(a['backup_id'], a['result']) for a in res['attempts']] == [(newer['id'], 'failed'), (shop['id'], 'passed')]
    assert res['attempts'][0]['failed_step'] == 'file_check'
    assert postgres.row_counts('shop') == shop['counts']
    # the recovery point: when the restored data is from, and how old it was
    assert res['data_as_of'] == meta_of(dest, shop['id'], 'shop')['started_at']
    assert res['data_age_seconds'] >= 0
    assert meta_of(dest, newer['id'], 'shop')['verifications'][-1]['result'] == 'failed'
    assert [a['backup_id'] for a in audit(dest)[-1]['attempts']] == [newer['id'], shop['id']]
    # without fallback the same damage fails and says so
    res = restore(run_module, postgres, dest, database='shop', backup_id=newer['id'], mode='test')
    assert res['failed'] and res['verdict'] == 'failed' and res['failed_step'] == 'file_check'


def test_latest_verified_falls_back_when_a_verified_backup_was_damaged_since(postgres, dest, run_module, shop):
    newer = backup(run_module, postgres, dest, 'shop')
    for b in (shop['id'], newer['id']):
        drill = restore(run_module, postgres, dest, database='shop', backup_id=b, mode='test')
        assert not drill.get('failed'), drill
    flip_byte(newer['backup_path'])
    res = restore(run_module, postgres, dest, database='shop', backup_id='latest_verified', mode='test',
                  fallback=True)
    assert not res.get('failed') and res['backup_id'] == shop['id'], res
    # the damaged one is no longer "verified": the next latest_verified does not even try it
    again = restore(run_module, postgres, dest, check_mode=True, database='shop', backup_id='latest_verified')
    assert again['backup_id'] == shop['id']


def test_max_age_refuses_old_data(postgres, dest, run_module, shop):
    time.sleep(2)
    res = restore(run_module, postgres, dest, database='shop', mode='test', max_age_hours=0.0002)
    assert res['failed'] and res['failed_step'] == 'choose', res
    assert 'hours old: more than max_age_hours' in res['msg'] and 'backup_id: %s' % shop['id'] in res['msg']
    named = restore(run_module, postgres, dest, database='shop', mode='test', backup_id=shop['id'],
                    max_age_hours=0.0002)
    assert not named.get('failed'), named


# -- verdicts: only evidence about the backup marks it failed ---------------------------------------------------
def test_an_assertion_that_cannot_run_is_inconclusive(postgres, dest, run_module, shop):
    assert not restore(run_module, postgres, dest, database='shop', mode='test').get('failed')
    res = restore(run_module, postgres, dest, database='shop', mode='replace',
                  assertions=['SELECT count(*) > 0 FROM contactz'])
    assert res['failed'] and res['failed_step'] == 'verify' and res['verdict'] == 'inconclusive', res
    assert 'could not run' in res['msg'] and 'contactz' in res['msg']
    assert [v['result'] for v in meta_of(dest, shop['id'], 'shop')['verifications']] == ['passed', 'inconclusive']
    plan = restore(run_module, postgres, dest, check_mode=True, database='shop', backup_id='latest_verified')
    assert plan['backup_id'] == shop['id']
    # an assertion that runs and returns false is the backup's fault
    res = restore(run_module, postgres, dest, database='shop', mode='test', assertions=['SELECT false'])
    assert res['failed'] and res['verdict'] == 'failed', res


@pytest.mark.parametrize('fmt', ['plain', 'custom'])
def test_a_missing_role_is_inconclusive(postgres, dest, run_module, fmt):
    postgres.psql('postgres', 'DROP DATABASE IF EXISTS owned')
    postgres.psql('postgres', 'DROP ROLE IF EXISTS ghost_owner')
    postgres.psql('postgres', 'CREATE ROLE ghost_owner')
    postgres.create_db('owned', seed=False)
    postgres.psql('owned', 'CREATE TABLE t (x int); INSERT INTO t VALUES (1); ALTER TABLE t OWNER TO ghost_owner')
    b = backup(run_module, postgres, dest, 'owned', format=fmt)
    postgres.psql('postgres', 'DROP DATABASE owned')
    postgres.psql('postgres', 'DROP ROLE ghost_owner')
    res = restore(run_module, postgres, dest, database='owned', mode='test', instance='server')
    # named before anything is restored: the backup records the roles it needs, and a drill creates none
    assert res['failed'] and res['failed_step'] == 'roles', res
    assert 'ghost_owner' in res['msg'] and res['verdict'] == 'inconclusive', res
    assert meta_of(dest, b['id'], 'owned')['verifications'][-1]['result'] == 'inconclusive'
    # a backup made before 0.5.0 records no roles: the restore itself finds the role missing, still inconclusive
    meta = meta_of(dest, b['id'], 'owned')
    path = [os.path.join(dest, n) for n in os.listdir(dest) if n.endswith('.meta.json') and b['id'] in n
            and n.startswith('owned')][0]
    del meta['roles']
    with open(path, 'w') as f:
        json.dump(meta, f)
    res = restore(run_module, postgres, dest, database='owned', mode='test', instance='server')
    assert res['failed'] and res['failed_step'] == 'restore', res
    assert 'ghost_owner' in res['msg'] and res['verdict'] == 'inconclusive', res


def test_a_dump_whose_content_does_not_restore_is_failed(postgres, dest, run_module, shop):
    # a dump made wrong at the source, whose sha256 matches its metadata: the restore error is the backup's fault
    meta = meta_of(dest, shop['id'], 'shop')
    # the error comes first, then far more than a pipe holds: psql stops reading, the decompressor must not block
    bad = (b'CREATE TABLE products (id int);\nINSERT INTO products VALUES (\'not a number\');\n'
           + b'INSERT INTO products VALUES (1);\n' * 1000000)
    subprocess.run(['zstd', '-q', '-f', '-o', shop['path']], input=bad, check=True)
    import hashlib
    with open(shop['path'], 'rb') as f:
        data = f.read()
    meta.update(sha256=hashlib.sha256(data).hexdigest(), size=len(data))
    meta_file = [n for n in os.listdir(dest) if n.endswith('.meta.json') and shop['id'] in n][0]
    with open(os.path.join(dest, meta_file), 'w') as f:
        json.dump(meta, f)
    res = restore(run_module, postgres, dest, database='shop', mode='test')
    assert res['failed'] and res['failed_step'] == 'restore' and res['verdict'] == 'failed', res
    assert '22P02' in res['msg']      # invalid_text_representation, with its SQLSTATE


# -- killed runs: nothing committed, nothing left running, cleaned and audited by the next run ----------------
@pytest.mark.parametrize('cleaner', ['restore', 'rotate'])
def test_killed_module_commits_nothing_and_the_next_run_cleans_and_audits(postgres, dest, run_module, cleaner):
    postgres.create_db('bigkill', seed=False)
    postgres.psql('bigkill', "CREATE TABLE big AS SELECT g AS id, md5(g::text) || repeat('z', 300) AS payload "
                             "FROM generate_series(1, 300000) g; CREATE INDEX ON big (payload)")
    b = backup(run_module, postgres, dest, 'bigkill')
    proc = run_module.popen('pg_restore_verified', dict(postgres.conn(), path=dest, database='bigkill', mode='test',
                                                        instance='server'))

    def restoring():
        out = subprocess.run(['pgrep', '-f', 'psql.*VERBOSITY=verbose'], stdout=subprocess.PIPE,
                             universal_newlines=True, check=False).stdout.split()
        return out or None

    children = wait_for(restoring)
    time.sleep(0.5)
    os.kill(proc.pid, signal.SIGKILL)          # the module itself, as a killed ansible-playbook leaves it
    proc.communicate()
    os.unlink(proc.args_path)
    wait_for(lambda: not restoring(), timeout=20)   # its children died with it
    for pid in children:
        assert not os.path.exists('/proc/%s' % pid) or open('/proc/%s/stat' % pid).read().split()[2] == 'Z'
    scratch = 'bigkill__restore_%s' % b['id']
    time.sleep(1)
    assert scratch in databases(postgres)
    assert postgres.psql(scratch, "SELECT count(*) FROM pg_class WHERE relname = 'big'") == '0'   # rolled back
    if cleaner == 'restore':
        res = restore(run_module, postgres, dest, database='bigkill', mode='test', instance='server')
        assert not res.get('failed'), res
        assert scratch not in databases(postgres)
        assert audit(dest)[-1]['result'] == 'passed'
    else:
        # a scratch database of a restore from another backup directory is not this rotation's to drop
        postgres.psql('postgres', 'CREATE DATABASE "other__restore_20200101_000000"')
        postgres.psql('postgres', 'COMMENT ON DATABASE "other__restore_20200101_000000" IS \'pgops:restore '
                                  '{"target": "other", "pid": 1, "host": "elsewhere", "path": "/elsewhere"}\'')
        args = dict(postgres.conn(), path=dest, drop_rollback_databases=True)
        plan = run_module('backup_rotate', args, check_mode=True)
        assert [d['name'] for d in plan['scratch_databases_dropped']] == [scratch], plan
        postgres.psql('postgres', 'DROP DATABASE "other__restore_20200101_000000"')
        assert scratch in databases(postgres)
        res = run_module('backup_rotate', args)
        assert not res.get('failed') and res['changed'], res
        assert scratch not in databases(postgres)
    interrupted = [a for a in audit(dest) if a['result'] == 'interrupted']
    assert len(interrupted) == 1 and interrupted[0]['backup_id'] == b['id'] and interrupted[0]['target'] == 'bigkill'
    assert ('backup_rotate' in interrupted[0]['error']) == (cleaner == 'rotate')


# -- checked before anything is touched -------------------------------------------------------------------------
def test_prepared_transaction_on_the_target_is_found_first(postgres, dest, run_module, shop):
    if postgres.psql('postgres', 'SHOW max_prepared_transactions') == '0':
        pytest.fail('the test cluster needs max_prepared_transactions > 0 (conftest)')
    postgres.psql('shop', "BEGIN; UPDATE products SET name = 'px' WHERE id = 1; PREPARE TRANSACTION 'pgops_px'")
    try:
        res = restore(run_module, postgres, dest, database='shop', mode='replace')
        assert res['failed'] and res['failed_step'] == 'preflight' and 'pgops_px' in res['msg'], res
        assert res['phases'] == {} and 'pre_restore_backup' not in res
    finally:
        postgres.psql('shop', "ROLLBACK PREPARED 'pgops_px'")


def test_not_enough_space_on_the_server_is_refused_with_the_numbers(postgres, dest, run_module, shop):
    before = databases(postgres)
    res = restore(run_module, postgres, dest, database='shop', mode='replace', server_free_space_ratio=1000000)
    assert res['failed'] and res['failed_step'] == 'preflight', res
    assert 'not enough free space for the scratch database' in res['msg'] and 'MiB free' in res['msg']
    assert databases(postgres) == before and res['verdict'] == 'inconclusive'
    ok = restore(run_module, postgres, dest, database='shop', mode='test')
    assert 'MiB free' in ok['checks']['server_free_space']
