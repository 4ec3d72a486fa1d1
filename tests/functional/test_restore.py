# -*- coding: utf-8 -*-
"""pg_restore_verified against a real PostgreSQL: drills, replace with rollback, and the faults that must
leave the target untouched (a flipped byte, a truncated file, a restore killed mid-way, a failed assertion)."""
from __future__ import absolute_import, division, print_function

import json
import os
import shutil
import signal
import subprocess

import pytest

from conftest import meta_of, pg_bin, wait_for


def databases(postgres):
    return set(postgres.psql('postgres', 'SELECT datname FROM pg_database').split())


@pytest.fixture
def shop(postgres, dest, run_module):
    """A seeded database 'shop' and one plain zstd backup of it."""
    postgres.create_db('shop')
    res = run_module('pg_backup', dict(postgres.conn(), databases=['shop'], dest=dest))
    assert not res.get('failed'), res
    return dict(db='shop', id=res['id'], counts=postgres.row_counts('shop'), path=res['backup_path'])


def restore(run_module, postgres, dest, check_mode=False, **kw):
    args = dict(postgres.conn(), path=dest)
    args.update(kw)
    return run_module('pg_restore_verified', args, check_mode=check_mode)


def test_drill_verifies_drops_scratch_and_records(postgres, dest, run_module, shop):
    before = databases(postgres)
    res = restore(run_module, postgres, dest, database='shop', mode='test', amcheck=True,
                  assertions=['SELECT count(*) = 1500 FROM products'])
    assert not res.get('failed'), res
    assert res['result'] == 'passed' and res['backup_id'] == shop['id']
    assert res['checks']['sha256'] == res['checks']['format'] == res['checks']['row_counts'] == 'passed'
    assert res['checks']['objects'] == res['checks']['assertions'] == 'passed'
    assert res['checks']['amcheck'].startswith('passed (')
    assert res['checks']['rows_verified'] == sum(shop['counts'].values())
    assert set(res['phases']) >= {'file_check', 'restore', 'verify', 'drop_scratch'}
    assert res['rto_seconds'] > 0
    assert databases(postgres) == before                       # scratch dropped, nothing else touched
    assert postgres.row_counts('shop') == shop['counts']
    meta = meta_of(dest, shop['id'], 'shop')
    [v] = meta['verifications']
    assert v['result'] == 'passed' and v['mode'] == 'test' and v['rto_seconds'] == res['rto_seconds']
    with open(os.path.join(dest, 'restore-audit.jsonl')) as f:
        audit = [json.loads(line) for line in f]
    assert audit[-1]['backup_id'] == shop['id'] and audit[-1]['result'] == 'passed'
    assert audit[-1]['who']['os_user'] and audit[-1]['mode'] == 'test'
    # latest_verified now finds it; a newer unverified backup is not chosen
    newer = run_module('pg_backup', dict(postgres.conn(), databases=['shop'], dest=dest))
    plan = restore(run_module, postgres, dest, check_mode=True, database='shop', backup_id='latest_verified')
    assert plan['backup_id'] == shop['id'] != newer['id']


def test_check_mode_plans_and_touches_nothing(postgres, dest, run_module, shop):
    before = databases(postgres)
    res = restore(run_module, postgres, dest, check_mode=True, database='shop', mode='replace')
    assert not res.get('failed'), res
    assert res['changed'] is True and 'pre_restore backup of shop' in res['plan']
    assert any('rename it to shop__rollback_' in step for step in res['plan'])
    assert databases(postgres) == before
    assert meta_of(dest, shop['id'], 'shop')['verifications'] == []
    assert not os.path.exists(os.path.join(dest, 'restore-audit.jsonl'))


def test_unknown_id_lists_the_nearest(postgres, dest, run_module, shop):
    res = restore(run_module, postgres, dest, database='shop', backup_id='20200101_000000')
    assert res['failed'] and res['failed_step'] == 'choose'
    assert 'no backup 20200101_000000 of database shop; nearest ids: %s' % shop['id'] in res['msg']


@pytest.mark.parametrize('damage', ['flip', 'truncate'])
def test_damaged_backup_is_refused_before_the_target_is_touched(postgres, dest, run_module, shop, damage):
    with open(shop['path'], 'r+b') as f:
        if damage == 'flip':
            f.seek(os.path.getsize(shop['path']) // 2)
            byte = f.read(1)
            f.seek(-1, 1)
            f.write(bytes([byte[0] ^ 0x01]))
        else:
            f.truncate(os.path.getsize(shop['path']) // 2)
    postgres.psql('shop', 'DELETE FROM product_attributes WHERE product_id > 1000')
    changed_counts = postgres.row_counts('shop')
    before = databases(postgres)
    res = restore(run_module, postgres, dest, database='shop', mode='replace')
    assert res['failed'] and res['failed_step'] == 'file_check', res
    assert 'is damaged: sha256' in res['msg']
    assert databases(postgres) == before and postgres.row_counts('shop') == changed_counts
    assert meta_of(dest, shop['id'], 'shop')['verifications'][-1]['result'] == 'failed'
    assert len([n for n in os.listdir(dest) if 'pre_restore' in n]) == 0   # refused before the pre-restore backup


def test_replace_with_open_sessions_then_rollback(postgres, dest, run_module, shop):
    postgres.psql('shop', 'DELETE FROM product_attributes; UPDATE products SET name = \'changed\'')
    damaged = postgres.row_counts('shop')
    session = subprocess.Popen([pg_bin('psql'), '-X', '-h', '127.0.0.1', '-p', str(postgres.port), '-U', 'postgres',
                                '-d', 'shop'], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    session.stdin.write(b'SELECT 1;\n')
    session.stdin.flush()
    session.stdout.readline()
    try:
        res = restore(run_module, postgres, dest, database='shop', backup_id=shop['id'], mode='replace')
    finally:
        session.stdin.close()
        session.wait()
    assert not res.get('failed'), res
    assert res['sessions_terminated'] >= 1
    assert postgres.row_counts('shop') == shop['counts']
    assert postgres.psql('shop', "SELECT count(*) FROM products WHERE name = 'changed'") == '0'
    rollback = res['rollback_database']
    assert rollback.startswith('shop__rollback_') and rollback in databases(postgres)
    assert postgres.row_counts(rollback) == damaged
    assert res['pre_restore_backup']['id'] and os.path.isfile(res['pre_restore_backup']['path'])
    assert 'swap' in res['phases'] and 'pre_restore_backup' in res['phases']
    with open(os.path.join(dest, 'restore-audit.jsonl')) as f:
        audit = [json.loads(line) for line in f]
    assert audit[-1]['mode'] == 'replace' and audit[-1]['rollback_database'] == rollback

    back = restore(run_module, postgres, dest, target='shop', mode='rollback')
    assert not back.get('failed'), back
    assert back['rollback_database'] == rollback
    assert postgres.row_counts('shop') == damaged
    assert back['replaced_database'] in databases(postgres) and rollback not in databases(postgres)
    assert postgres.row_counts(back['replaced_database']) == shop['counts']


def test_restore_killed_midway_leaves_target_untouched(postgres, dest, run_module):
    postgres.create_db('bigshop', seed=False)
    postgres.psql('bigshop', "CREATE TABLE big AS SELECT g AS id, md5(g::text) || repeat('y', 300) AS payload "
                             "FROM generate_series(1, 300000) g; CREATE INDEX ON big (payload)")
    res = run_module('pg_backup', dict(postgres.conn(), databases=['bigshop'], dest=dest, compression='none'))
    assert not res.get('failed'), res
    postgres.psql('bigshop', 'DELETE FROM big WHERE id > 1000')
    before_dbs = databases(postgres)
    proc = run_module.popen('pg_restore_verified', dict(postgres.conn(), path=dest, database='bigshop',
                                                        mode='replace', pre_restore_backup=False))

    def restoring_psql():
        out = subprocess.run(['pgrep', '-f', 'psql.*VERBOSITY=verbose'], stdout=subprocess.PIPE,
                             universal_newlines=True, check=False).stdout.split()
        return out[0] if out else None

    os.kill(int(wait_for(restoring_psql)), signal.SIGKILL)
    res = run_module.result(proc)
    assert res['failed'] and res['failed_step'] == 'restore' and 'psql killed by signal SIGKILL' in res['msg'], res
    # a killed client says nothing about the backup: inconclusive, and the backup stays restorable
    assert res['verdict'] == 'inconclusive' and res['attempts'][0]['result'] == 'inconclusive', res
    assert databases(postgres) == before_dbs
    assert postgres.psql('bigshop', 'SELECT count(*) FROM big') == '1000'


def test_failed_assertion_drops_scratch_and_keeps_target(postgres, dest, run_module, shop):
    before = databases(postgres)
    res = restore(run_module, postgres, dest, database='shop', mode='replace',
                  assertions=['SELECT count(*) = 0 FROM products'])
    assert res['failed'] and res['failed_step'] == 'verify' and 'assertion 1 is not true' in res['msg'], res
    assert databases(postgres) == before
    assert postgres.row_counts('shop') == shop['counts']


def test_new_mode_and_refusal_to_overwrite(postgres, dest, run_module, shop):
    res = restore(run_module, postgres, dest, database='shop', mode='new', target='shop_check')
    assert not res.get('failed'), res
    assert postgres.row_counts('shop_check') == shop['counts']
    again = restore(run_module, postgres, dest, database='shop', mode='new', target='shop_check')
    assert again['failed'] and 'already exists' in again['msg']


def test_custom_and_directory_formats_restore(postgres, dest, run_module, shop):
    for fmt in ('custom', 'directory'):
        b = run_module('pg_backup', dict(postgres.conn(), databases=['shop'], dest=dest, format=fmt,
                                         compression='gzip', jobs=2 if fmt == 'directory' else 1))
        assert not b.get('failed'), b
        res = restore(run_module, postgres, dest, database='shop', backup_id=b['id'], mode='test', jobs=2)
        assert not res.get('failed'), res
        assert res['checks']['row_counts'] == 'passed'


def test_disaster_recovery_restore_into_missing_database(postgres, dest, run_module, shop):
    postgres.psql('postgres', 'DROP DATABASE shop')
    res = restore(run_module, postgres, dest, database='shop', mode='replace')
    assert not res.get('failed'), res
    assert 'rollback_database' not in res and 'pre_restore_backup' not in res
    assert postgres.row_counts('shop') == shop['counts']


def test_missing_backup_file(postgres, dest, run_module, shop):
    shutil.move(shop['path'], shop['path'] + '.moved')
    res = restore(run_module, postgres, dest, database='shop')
    assert res['failed'] and res['failed_step'] == 'file_check' and 'is missing' in res['msg']


def test_replace_keeps_the_database_level_settings(postgres, dest, run_module, shop):
    postgres.psql('postgres', "DROP ROLE IF EXISTS shop_app; CREATE ROLE shop_app LOGIN; "
                              "REVOKE ALL ON DATABASE shop FROM PUBLIC; GRANT CONNECT, TEMPORARY ON DATABASE shop TO shop_app; "
                              "ALTER DATABASE shop SET search_path TO \"$user\", public, \"Odd Schema\", \"a,b\"; "
                              "ALTER DATABASE shop SET statement_timeout TO '5min'; "
                              "ALTER ROLE shop_app IN DATABASE shop SET work_mem TO '8MB'; "
                              "ALTER DATABASE shop CONNECTION LIMIT 42; COMMENT ON DATABASE shop IS 'the shop''s data'")

    def facts(db):
        return postgres.psql('postgres', (
            "SELECT concat_ws(' | ', (SELECT array_agg(x ORDER BY x)::text FROM unnest(d.datacl::text[]) x), "
            "(SELECT string_agg(coalesce(pg_get_userbyid(nullif(s.setrole, 0)), '-') || ':' || s.setconfig::text, ';' "
            "ORDER BY s.setrole) FROM pg_db_role_setting s WHERE s.setdatabase = d.oid), d.datconnlimit, "
            "shobj_description(d.oid, 'pg_database')) FROM pg_database d WHERE d.datname = '%s'" % db))

    before = facts('shop')
    assert 'shop_app=Tc' in before and '42' in before and "the shop's data" in before
    res = restore(run_module, postgres, dest, database='shop', mode='replace')
    assert not res.get('failed'), res
    assert res['checks']['database_settings'].endswith('statements')
    after = facts('shop')
    assert after.replace(res['rollback_database'], 'shop') == before.replace(res['rollback_database'], 'shop')
    # PUBLIC is still kept out, and the application's search_path still applies
    assert postgres.psql('shop', 'SHOW search_path') == '"$user", public, "Odd Schema", "a,b"'


def test_failures_outside_the_backup_do_not_unverify_it_and_latest_skips_pre_restore(postgres, dest, run_module, shop):
    drill = restore(run_module, postgres, dest, database='shop', mode='test')
    assert not drill.get('failed'), drill
    # the pre-restore backup cannot be taken (free space): nothing is said about the backup itself
    res = restore(run_module, postgres, dest, database='shop', mode='replace', free_space_ratio=1000000)
    assert res['failed'] and res['failed_step'] == 'pre_restore_backup', res
    meta = meta_of(dest, shop['id'], 'shop')
    assert [v['result'] for v in meta['verifications']] == ['passed', 'inconclusive']
    info = run_module('backup_info', dict(path=dest, database='shop', stats=False))
    assert [b['verified'] for b in info['backups'] if b['id'] == shop['id']] == [True]
    # a successful replace leaves a newer pre_restore backup: "latest" still means the newest real backup
    ok = restore(run_module, postgres, dest, database='shop', mode='replace')
    assert not ok.get('failed') and ok['pre_restore_backup']['id'], ok
    for backup_id in ('latest', 'latest_verified'):
        plan = restore(run_module, postgres, dest, check_mode=True, database='shop', backup_id=backup_id)
        assert plan['backup_id'] == shop['id'], (backup_id, plan['backup_id'])


def rewrite_metadata(dest, backup_id, database, path):
    """Make the metadata describe the file as it is now (a damage the sha256 cannot see)."""
    import hashlib
    with open(path, 'rb') as f:
        data = f.read()
    for name in os.listdir(dest):
        if name.endswith('.meta.json'):
            meta_path = os.path.join(dest, name)
            with open(meta_path) as f:
                meta = json.load(f)
            if meta['id'] == backup_id and meta['database'] == database:
                meta.update(sha256=hashlib.sha256(data).hexdigest(), size=len(data))
                with open(meta_path, 'w') as f:
                    json.dump(meta, f)
                return
    raise AssertionError('no metadata for %s' % backup_id)


def stream_tests(argvs):
    """The command lines that read a whole dump a second time: a stream test (zstd/lz4 -t, gzip -t)."""
    return [a for a in argvs if os.path.basename(a[0]) in ('zstd', 'gzip', 'lz4', 'pigz') and '-t' in a]


@pytest.mark.parametrize('compression', ['zstd', 'gzip', 'lz4'])
def test_one_pass_restore_reads_the_file_once_and_still_finds_a_damaged_stream(postgres, dest, run_module,
                                                                               compression):
    """A drill reads the dump once (no stream test before the restore: the restore's own decompression and a
    sha256 computed beside it are the check). A stream damaged behind matching metadata still fails at file_check,
    as the backup's fault, with the target untouched and no pre_restore backup taken."""
    from conftest import argv_while_running
    name = 'onepass_' + compression
    postgres.create_db(name)
    b = run_module('pg_backup', dict(postgres.conn(), databases=[name], dest=dest, compression=compression))
    assert not b.get('failed'), b
    proc = run_module.popen('pg_restore_verified', dict(postgres.conn(), path=dest, database=name, mode='test'))
    seen = [[part.decode('utf-8', 'replace') for part in c.split(b'\0') if part] for c in argv_while_running(proc)]
    seen = [a for a in seen if a]
    res = run_module.result(proc)
    assert not res.get('failed'), res
    assert res['checks']['sha256'] == res['checks']['format'] == res['checks']['row_counts'] == 'passed'
    assert stream_tests(seen) == [], 'the dump was read twice: %s' % stream_tests(seen)
    assert any(os.path.basename(a[0]) in (compression, 'pigz') and '-d' in a for a in seen), seen

    with open(b['backup_path'], 'r+b') as f:      # damage the middle of the stream, then hide it from sha256
        f.seek(os.path.getsize(b['backup_path']) // 2)
        chunk = f.read(64)
        f.seek(-64, 1)
        f.write(bytes(x ^ 0x5a for x in chunk))
    rewrite_metadata(dest, b['id'], name, b['backup_path'])
    postgres.psql(name, 'DELETE FROM product_attributes WHERE product_id > 1000')
    counts, before = postgres.row_counts(name), databases(postgres)
    res = restore(run_module, postgres, dest, database=name, mode='replace')
    assert res['failed'] and res['failed_step'] == 'file_check' and res['verdict'] == 'failed', res
    assert res['checks']['sha256'] == 'passed'            # the file is the one recorded: its stream is bad
    assert databases(postgres) == before and postgres.row_counts(name) == counts
    assert [n for n in os.listdir(dest) if 'pre_restore' in n] == []
    assert meta_of(dest, b['id'], name)['verifications'][-1]['result'] == 'failed'
