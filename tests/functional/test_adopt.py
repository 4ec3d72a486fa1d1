# -*- coding: utf-8 -*-
"""backup_adopt against the dumps a team already has: files made with the maintenance plan's own commands
(``pg_dump db | gzip > <db>_full_<id>.sql.gz``, a manual backup with a label, ``pg_dump -Fc`` snapshots) from a
real PostgreSQL, plus a badly named file, a cut gzip stream and random bytes. Adopted backups are listed by
backup_info, proven by pg_restore_verified (which records the counts it found, and compares later restores against
them) and rotated by backup_rotate by the same rules; the bad files are reported and left exactly as they were."""
from __future__ import absolute_import, division, print_function

import datetime
import json
import os
import subprocess
import time

import pytest

from conftest import pg_bin, playbook_runner

DB = 'pim_prod'


def backup_id(days_ago=0.0, hours_ago=0.0):
    when = datetime.datetime.now() - datetime.timedelta(days=days_ago, hours=hours_ago)
    return when.strftime('%Y%m%d_%H%M%S')


def files(dest):
    """Every file in dest with its bytes and mtime."""
    out = {}
    for name in sorted(os.listdir(dest)):
        path = os.path.join(dest, name)
        if os.path.isfile(path):
            with open(path, 'rb') as f:
                out[name] = (f.read(), os.stat(path).st_mtime_ns)
    return out


def plan_gzip_dump(postgres, database, path):
    """The plan's daily backup, exactly: pg_dump | gzip > file (a shell pipeline)."""
    command = '%s -h 127.0.0.1 -p %d -U postgres %s | gzip > %s' % (pg_bin('pg_dump'), postgres.port, database, path)
    subprocess.run(command, shell=True, check=True)


def plan_snapshot(postgres, database, path):
    """The plan's quick snapshot: pg_dump -Fc (custom format)."""
    subprocess.run([pg_bin('pg_dump'), '-h', '127.0.0.1', '-p', str(postgres.port), '-U', 'postgres', '-Fc', '-f',
                    path, database], check=True)


@pytest.fixture
def legacy(postgres, dest):
    """A /backups/database as db-backup.sh leaves it: good dumps, a .meta, and three bad files."""
    postgres.create_db(DB)
    os.makedirs(dest, 0o750)
    ids = dict(full=backup_id(days_ago=1), manual=backup_id(hours_ago=5), snapshot=backup_id(hours_ago=2),
               cut=backup_id(days_ago=2), noise=backup_id(days_ago=3))
    names = dict(full='%s_full_%s.sql.gz' % (DB, ids['full']),
                 manual='%s_manual_pre-deployment_%s.sql.gz' % (DB, ids['manual']),
                 snapshot='%s_snapshot_%s.dump' % (DB, ids['snapshot']),
                 bad_name='%s_backup_latest.sql.gz' % DB,
                 cut='%s_full_%s.sql.gz' % (DB, ids['cut']),
                 noise='%s_full_%s.sql.gz' % (DB, ids['noise']))
    plan_gzip_dump(postgres, DB, os.path.join(dest, names['full']))
    plan_gzip_dump(postgres, DB, os.path.join(dest, names['manual']))
    plan_snapshot(postgres, DB, os.path.join(dest, names['snapshot']))
    with open(os.path.join(dest, names['full'][:-len('.sql.gz')] + '.meta'), 'w') as f:
        f.write('timestamp=%s\ndatabase=%s\ntype=full\nfile=%s\n' % (ids['full'], DB, names['full']))
    plan_gzip_dump(postgres, DB, os.path.join(dest, names['bad_name']))
    with open(os.path.join(dest, names['full']), 'rb') as f:
        whole = f.read()
    with open(os.path.join(dest, names['cut']), 'wb') as f:
        f.write(whole[:len(whole) // 2])                     # a copy cut short: the stream ends early
    with open(os.path.join(dest, names['noise']), 'wb') as f:
        f.write(os.urandom(50000))                           # not a dump at all
    with open(os.path.join(dest, 'db-backup.log'), 'w') as f:
        f.write('2024-12-19 14:30:22 Backup completed successfully\n')
    return dict(ids=ids, names=names)


def test_adopt_check_mode_real_run_idempotent(dest, run_module, legacy):
    names = legacy['names']
    before = files(dest)

    # check mode: exactly what would be adopted, and nothing written
    plan = run_module('backup_adopt', dict(path=dest, _ansible_diff=True), check_mode=True)
    assert not plan.get('failed'), plan
    assert plan['changed'] is True
    assert sorted(a['file'] for a in plan['adopted']) == sorted([names['full'], names['manual'], names['snapshot']])
    assert files(dest) == before                             # not even a lock file
    assert names['full'] in plan['diff']['after'] and names['full'] not in plan['diff']['before']

    # the real run adopts the same, with what the content says
    t0 = time.time()
    res = run_module('backup_adopt', dict(path=dest, _ansible_diff=True))
    took = time.time() - t0
    assert not res.get('failed'), res
    assert res['changed'] is True
    adopted = dict((a['file'], a) for a in res['adopted'])
    assert sorted(adopted) == sorted(a['file'] for a in plan['adopted'])
    full, manual, snap = adopted[names['full']], adopted[names['manual']], adopted[names['snapshot']]
    assert (full['database'], full['kind'], full['label'], full['id']) == (DB, 'full', None, legacy['ids']['full'])
    assert (full['format'], full['compression']) == ('plain', 'gzip')
    assert (manual['kind'], manual['label']) == ('manual', 'pre-deployment')
    assert (snap['kind'], snap['format']) == ('snapshot', 'custom')
    assert full['original_meta'] == names['full'][:-len('.sql.gz')] + '.meta'
    print('adopting %d files (of %d candidates) took %.3f s (module %.3f s)'
          % (len(adopted), len(adopted) + len(res['rejected']), took, res['duration_seconds']))

    # bad ones: reported per file with the cause, not adopted, untouched
    rejected = dict((r['file'], r) for r in res['rejected'])
    assert rejected[names['bad_name']]['problem'] == 'name'
    assert rejected[names['cut']]['problem'] == 'content' and 'ends early' in rejected[names['cut']]['reason']
    assert rejected[names['noise']]['problem'] == 'content'
    assert 'db-backup.log' in res['ignored']
    after = files(dest)
    for name, content in before.items():
        assert after[name] == content, name                  # no dump (good or bad) moved, rewritten or touched
    new = sorted(set(after) - set(before))
    written = sorted(a['meta_path'].rsplit('/', 1)[1] for a in res['adopted'])
    assert [n for n in new if not n.startswith('.')] == written
    assert not [n for n in os.listdir(dest) if '.tmp-' in n]

    # the record: the catalog's schema, origin adopted, the .meta kept as-is, no counts
    with open(full['meta_path']) as f:
        record = json.load(f)
    assert record['origin'] == 'adopted' and record['status'] == 'success' and record['scope'] == 'database'
    assert record['file'] == names['full'] and record['verifications'] == []
    assert record['size'] == os.path.getsize(os.path.join(dest, names['full']))
    assert record['server_version'].startswith('15') or record['server_version'][:2].isdigit()
    assert 'tables' not in record
    assert record['adoption']['original_meta']['content'].startswith('timestamp=%s' % legacy['ids']['full'])
    assert oct(os.stat(full['meta_path']).st_mode & 0o777) == '0o640'

    # listed by backup_info, origin adopted, not verified (no restore yet), integrity checked against the record
    info = run_module('backup_info', dict(path=dest, verify_checksums=True))
    listed = dict((b['file'], b) for b in info['backups'])
    assert sorted(listed) == sorted(adopted)
    assert all(b['origin'] == 'adopted' and b['verified'] is False and b['checksum'] == 'passed'
               for b in listed.values())

    # idempotent: a second run adopts nothing and still reports the bad files
    again = run_module('backup_adopt', dict(path=dest))
    assert again['changed'] is False and again['adopted'] == []
    assert sorted(again['skipped']) == sorted(adopted)
    assert sorted(r['file'] for r in again['rejected']) == sorted(rejected)
    assert files(dest) == after


def test_names_that_read_two_ways_are_not_guessed(dest, run_module, postgres):
    postgres.create_db('my_full_db')
    os.makedirs(dest, 0o750)
    name = 'my_full_db_full_%s.sql.gz' % backup_id(days_ago=1)
    plan_gzip_dump(postgres, 'my_full_db', os.path.join(dest, name))
    res = run_module('backup_adopt', dict(path=dest))
    assert res['adopted'] == [] and res['rejected'][0]['problem'] == 'ambiguous', res
    settled = run_module('backup_adopt', dict(path=dest, databases=['my_full_db']))
    assert [(a['database'], a['kind']) for a in settled['adopted']] == [('my_full_db', 'full')], settled


def test_a_failed_pg_dump_behind_gzip_is_refused(dest, run_module, postgres):
    """pg_dump | gzip exits 0 when pg_dump fails half-way: the gzip stream is whole, the dump is not."""
    postgres.create_db(DB)
    os.makedirs(dest, 0o750)
    good = os.path.join(dest, 'x.sql.gz')
    plan_gzip_dump(postgres, DB, good)
    cut_plain = subprocess.run(['gzip', '-dc', good], stdout=subprocess.PIPE, check=True).stdout
    os.unlink(good)
    name = '%s_full_%s.sql.gz' % (DB, backup_id(days_ago=1))
    subprocess.run(['gzip', '-c'], input=cut_plain[:len(cut_plain) // 2], stdout=open(os.path.join(dest, name), 'wb'),
                   check=True)
    res = run_module('backup_adopt', dict(path=dest))
    assert res['adopted'] == [] and res['rejected'][0]['problem'] == 'content', res
    assert 'trailer' in res['rejected'][0]['reason']


def test_adopted_backup_proven_by_drill_counts_recorded_then_compared(dest, run_module, postgres, legacy):
    res = run_module('backup_adopt', dict(path=dest))
    full = [a for a in res['adopted'] if a['kind'] == 'full'][0]
    conn = postgres.conn()

    # check mode says what it would do; nothing is recorded, the backup stays unverified
    dry = run_module('pg_restore_verified', dict(conn, path=dest, database=DB, backup_id=full['id'], mode='test'),
                     check_mode=True)
    assert not dry.get('failed'), dry
    assert any('no row counts are recorded' in step for step in dry['plan']), dry['plan']
    info = run_module('backup_info', dict(path=dest, database=DB))
    assert not [b for b in info['backups'] if b['verified']]

    # the drill: a real restore into scratch, tables found, counts recorded from it (marked as such)
    drill = run_module('pg_restore_verified', dict(conn, path=dest, database=DB, backup_id=full['id'], mode='test'))
    assert not drill.get('failed'), drill
    assert drill['result'] == 'passed' and drill.get('counts_recorded') is True
    assert drill['checks']['row_counts'].startswith('recorded') and drill['checks']['tables_verified'] == 4
    with open(full['meta_path']) as f:
        record = json.load(f)
    assert record['tables_source'] == 'drill' and record['counts_from_restore'] is True
    assert dict(('%s.%s' % (t['schema'], t['name']), t['rows']) for t in record['tables']) == postgres.row_counts(DB)
    assert record['rows_total'] == sum(postgres.row_counts(DB).values())
    assert record['verifications'][-1]['result'] == 'passed' and record['verifications'][-1]['counts_recorded']
    info = run_module('backup_info', dict(path=dest, database=DB))
    assert [b['id'] for b in info['backups'] if b['verified']] == [full['id']]

    # a later restore compares against those counts: passed as they are ...
    again = run_module('pg_restore_verified', dict(conn, path=dest, database=DB, backup_id=full['id'], mode='test'))
    assert again['result'] == 'passed' and again['checks']['row_counts'] == 'passed', again
    assert not again.get('counts_recorded')
    # ... and failed when the recorded counts are not what the dump holds
    record['tables'][0]['rows'] += 1
    with open(full['meta_path'], 'w') as f:
        json.dump(record, f)
    wrong = run_module('pg_restore_verified', dict(conn, path=dest, database=DB, backup_id=full['id'], mode='test'))
    assert wrong['failed'] and wrong['failed_step'] == 'verify' and wrong['verdict'] == 'failed', wrong
    assert 'row counts differ' in wrong['msg']

    # the custom-format snapshot is proven the same way
    snap = [a for a in res['adopted'] if a['kind'] == 'snapshot'][0]
    proof = run_module('pg_restore_verified', dict(conn, path=dest, database=DB, backup_id=snap['id'], mode='test'))
    assert proof['result'] == 'passed' and proof.get('counts_recorded') is True, proof


def test_adopted_backup_without_tables_is_not_verified(dest, run_module, postgres):
    """A dump that restores no table proves nothing: the drill fails it instead of recording empty counts."""
    postgres.create_db('empty_db', seed=False)
    os.makedirs(dest, 0o750)
    plan_gzip_dump(postgres, 'empty_db', os.path.join(dest, 'empty_db_full_%s.sql.gz' % backup_id(days_ago=1)))
    res = run_module('backup_adopt', dict(path=dest))
    assert len(res['adopted']) == 1, res
    drill = run_module('pg_restore_verified', dict(postgres.conn(), path=dest, database='empty_db', mode='test'))
    assert drill['failed'] and drill['verdict'] == 'failed' and 'no table' in drill['msg'], drill
    with open(res['adopted'][0]['meta_path']) as f:
        record = json.load(f)
    assert 'tables' not in record and record['verifications'][-1]['result'] == 'failed'


def test_rotation_treats_adopted_backups_by_the_same_rules(dest, run_module, postgres):
    postgres.create_db(DB)
    os.makedirs(dest, 0o750)
    template = os.path.join(dest, 'template.tmp')
    plan_gzip_dump(postgres, DB, template)
    ages = dict(old_full=45, older_full=40, recent_full=2, newest_full=0.5)
    names = {}
    for key, days in ages.items():
        names[key] = '%s_full_%s.sql.gz' % (DB, backup_id(days_ago=days))
        with open(template, 'rb') as src, open(os.path.join(dest, names[key]), 'wb') as out:
            out.write(src.read())
    names['old_snapshot'] = '%s_snapshot_%s.dump' % (DB, backup_id(days_ago=5))
    plan_snapshot(postgres, DB, os.path.join(dest, names['old_snapshot']))
    names['bad'] = '%s_full_%s.sql.gz' % (DB, backup_id(days_ago=60))
    with open(os.path.join(dest, names['bad']), 'wb') as f:
        f.write(os.urandom(1000))
    os.unlink(template)
    res = run_module('backup_adopt', dict(path=dest))
    assert len(res['adopted']) == 5 and [r['file'] for r in res['rejected']] == [names['bad']], res
    bad_before = files(dest)[names['bad']]

    plan = run_module('backup_rotate', dict(postgres.conn(), path=dest, min_keep=2), check_mode=True)
    assert not plan.get('failed'), plan
    rotated = run_module('backup_rotate', dict(postgres.conn(), path=dest, min_keep=2))
    assert not rotated.get('failed'), rotated
    left = set(os.listdir(dest))
    # full: 30 days, snapshot: 3 days, the newest two always kept - the rules of pg_backup's own backups
    assert names['old_full'] not in left and names['older_full'] not in left and names['old_snapshot'] not in left
    assert names['old_full'].replace('.sql.gz', '.meta.json') not in left
    assert names['recent_full'] in left and names['newest_full'] in left
    assert files(dest)[names['bad']] == bad_before           # not in the catalog: rotation does not touch it
    info = run_module('backup_info', dict(path=dest))
    assert sorted(b['file'] for b in info['backups']) == sorted([names['recent_full'], names['newest_full']])


def test_custom_archives_compressed_or_not_and_a_cut_one(dest, run_module, postgres):
    postgres.create_db(DB)
    os.makedirs(dest, 0o750)
    plain = os.path.join(dest, '%s_snapshot_%s.dump' % (DB, backup_id(hours_ago=3)))
    subprocess.run([pg_bin('pg_dump'), '-h', '127.0.0.1', '-p', str(postgres.port), '-U', 'postgres', '-Fc', '-Z0',
                    '-f', plain, DB], check=True)
    packed = os.path.join(dest, '%s_snapshot_%s.dump' % (DB, backup_id(hours_ago=2)))
    plan_snapshot(postgres, DB, packed)
    cut = os.path.join(dest, '%s_snapshot_%s.dump' % (DB, backup_id(hours_ago=1)))
    with open(packed, 'rb') as f:
        data = f.read()
    with open(cut, 'wb') as f:
        f.write(data[:int(len(data) * 0.7)])     # its table of contents is whole, its data is not
    other = os.path.join(dest, 'pim_dev_snapshot_%s.dump' % backup_id(hours_ago=1))
    with open(packed, 'rb') as src, open(other, 'wb') as out:
        out.write(src.read())                    # a dump of pim_prod under the name of pim_dev
    res = run_module('backup_adopt', dict(path=dest))
    adopted = dict((a['file'], a) for a in res['adopted'])
    assert sorted(adopted) == sorted([os.path.basename(plain), os.path.basename(packed)]), res
    assert adopted[os.path.basename(plain)]['compression'] == 'none'
    assert adopted[os.path.basename(packed)]['compression'] == 'gzip'
    rejected = dict((r['file'], r) for r in res['rejected'])
    assert rejected[os.path.basename(cut)]['problem'] == 'content', rejected
    assert rejected[os.path.basename(other)]['problem'] == 'content'
    assert 'dump of database %s' % DB in rejected[os.path.basename(other)]['reason']


def test_playbooks_adopt_then_the_weekly_drill_proves_them(postgres, collection_root, dest, legacy, tmp_path):
    """As an operator migrates: playbooks/adopt_backups.yml (check, then real), then the restore_drill role's
    playbook proves the adopted backups and records their counts; list_backups.yml lists them."""
    import sys
    inventory = {'postgres_servers': {
        'hosts': {'pim-db': {'ansible_connection': 'local', 'ansible_python_interpreter': sys.executable}},
        'vars': {'pgops_login_host': '127.0.0.1', 'pgops_port': postgres.port, 'pgops_login_user': 'postgres',
                 'pgops_databases': [DB], 'pgops_backup_dir': dest, 'metrics_enabled': False}}}
    run = playbook_runner(collection_root, inventory, tmp_path)

    before = files(dest)
    rc, out = run('adopt_backups.yml', '--check', '--diff')
    assert rc != 0 and '3 file(s) not adopted' in out, out[-3000:]       # the bad files fail the job, after ...
    assert files(dest) == before                                           # ... check mode wrote nothing
    rc, out = run('adopt_backups.yml', '-e', 'adopt_backups_fail_on_rejected=false')
    assert rc == 0 and 'changed=1' in out, out[-3000:]
    rc, out = run('adopt_backups.yml', '-e', 'adopt_backups_fail_on_rejected=false')
    assert rc == 0 and 'changed=0' in out, out[-3000:]                     # idempotent

    rc, out = run('restore_drill.yml')
    assert rc == 0, out[-4000:]
    records = []
    for name in os.listdir(dest):
        if name.endswith('.meta.json'):
            with open(os.path.join(dest, name)) as f:
                records.append(json.load(f))
    assert len(records) == 3
    assert all(r['origin'] == 'adopted' and r['tables_source'] == 'drill' and r['verifications'][-1]['result'] ==
               'passed' for r in records), [(r['file'], r.get('tables_source'), r['verifications']) for r in records]
    rc, out = run('list_backups.yml')
    assert rc == 0 and legacy['ids']['full'] in out, out[-3000:]
