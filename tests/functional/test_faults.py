# -*- coding: utf-8 -*-
"""Fault injection at every stage, as acceptance tests do it: kill -9 of the module and of each child at each
stage of a backup and a restore, the server stopped mid-dump and mid-restore, a full disk, hostile names,
concurrent runs, damaged dumps and metadata. Each test asserts the documented behaviour: nothing half-written
looks like a backup, the target is untouched, nothing is committed, the next run cleans up and audits, and only
evidence about a backup marks it failed."""
from __future__ import absolute_import, division, print_function

import json
import os
import signal
import subprocess
import time

import pytest

from conftest import wait_for, pg_bin


def dbs(postgres):
    return set(postgres.psql('postgres', 'SELECT datname FROM pg_database').split('\n'))


def audit(dest):
    p = os.path.join(dest, 'restore-audit.jsonl')
    if not os.path.exists(p):
        return []
    with open(p) as f:
        return [json.loads(line) for line in f]


def descendants(root):
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        kids = children_of(pid)
        out += kids
        todo += kids
    return out


def pgrep(pattern, root=None):
    """Processes matching ``pattern`` among the descendants of ``root`` (default: this pytest): never another
    session's processes."""
    out = subprocess.run(['pgrep', '-f', pattern], stdout=subprocess.PIPE, universal_newlines=True,
                         check=False).stdout.split()
    mine = set(descendants(root or os.getpid()))
    return [p for p in out if int(p) in mine] or None


def children_of(pid):
    try:
        with open('/proc/%d/task/%d/children' % (pid, pid)) as f:
            return [int(x) for x in f.read().split()]
    except IOError:
        return []


def alive(pid):
    try:
        with open('/proc/%d/stat' % pid) as f:
            return f.read().split()[2] != 'Z'
    except IOError:
        return False


def kill_module(run_module, proc):
    kids = descendants(proc.pid)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate()
    os.unlink(proc.args_path)
    time.sleep(1.0)
    return [k for k in kids if alive(k)]


def big_db(postgres, name, rows=300000):
    postgres.create_db(name, seed=False)
    postgres.psql(name, "CREATE TABLE big AS SELECT g AS id, md5(g::text) || repeat('z', 300) AS payload "
                        "FROM generate_series(1, %d) g; CREATE INDEX ON big (payload)" % rows)


def backup(run_module, postgres, dest, db, **kw):
    res = run_module('pg_backup', dict(postgres.conn(), databases=[db], dest=dest, **kw))
    assert not res.get('failed'), res
    return res


def restore_args(postgres, dest, **kw):
    a = dict(postgres.conn(), path=dest)
    a.update(kw)
    return a


def visible_dumps(dest):
    return sorted(n for n in os.listdir(dest) if not n.startswith('.') and not n.endswith('.meta.json')
                  and n != 'restore-audit.jsonl')


def metas(dest):
    out = []
    for n in os.listdir(dest):
        if n.endswith('.meta.json') and not n.startswith('.'):
            with open(os.path.join(dest, n)) as f:
                out.append(json.load(f))
    return out


# -- pg_restore_verified: kill -9 of the module at each stage -----------------------------------------------
@pytest.mark.parametrize('stage,pattern', [
    ('restore', r'zstd -q -d -c'),                  # the sha256 thread reads the same file meanwhile
    ('pre_restore_backup', r'pg_dump.*--snapshot'),  # after the verify, before the swap: the scratch exists
])
def test_restore_killed_at_a_stage_is_audited_as_interrupted(postgres, dest, run_module, stage, pattern):
    name = 'kb_' + stage.replace('pre_restore_backup', 'prb')
    big_db(postgres, name, 600000)
    backup(run_module, postgres, dest, name)
    counts = postgres.row_counts(name)
    proc = run_module.popen('pg_restore_verified', restore_args(postgres, dest, database=name, mode='replace'))
    wait_for(lambda: pgrep(pattern), timeout=60, interval=0.005)
    left = kill_module(run_module, proc)
    assert left == [], 'children left running: %s' % left
    assert postgres.row_counts(name) == counts
    hidden_tmp = [n for n in os.listdir(dest) if '.tmp-' in n]
    # a killed pre_restore dump may leave its hidden temp file only
    assert all(n.startswith('.') for n in hidden_tmp)
    assert not [n for n in visible_dumps(dest) if 'pre_restore' in n]
    res = run_module('pg_restore_verified', restore_args(postgres, dest, database=name, mode='test'))
    assert not res.get('failed'), res
    lines = audit(dest)
    assert [l for l in lines if l['result'] == 'interrupted'], \
        'killed at %s: no interrupted line in the audit: %s' % (stage, [l['result'] for l in lines])


def test_restore_killed_in_the_swap_leaves_a_scratch_the_next_run_can_clean(postgres, dest, run_module):
    """Hold a lock on the target (a session on another database with an open COMMENT ON DATABASE) so the swap's
    RENAME waits; kill -9 the module then. The scratch already lost its pgops comment in _finish()."""
    name = 'kswap'
    postgres.create_db(name)
    b = backup(run_module, postgres, dest, name)
    counts = postgres.row_counts(name)
    holder = subprocess.Popen([pg_bin('psql'), '-X', '-q', '-h', '127.0.0.1', '-p', str(postgres.port), '-U',
                               'postgres', '-d', 'postgres'], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                              universal_newlines=True)
    holder.stdin.write('BEGIN;\nCOMMENT ON DATABASE kswap IS \'held\';\n')
    holder.stdin.flush()
    time.sleep(0.5)
    proc = run_module.popen('pg_restore_verified', restore_args(postgres, dest, database=name, mode='replace',
                                                                pre_restore_backup=False))
    scratch = 'kswap__restore_%s' % b['id']

    def waiting_rename():
        return postgres.psql('postgres', "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                                         "AND query ILIKE 'ALTER DATABASE%RENAME%'") != '0'
    wait_for(waiting_rename, timeout=60)
    left = kill_module(run_module, proc)
    holder.stdin.write('ROLLBACK;\n\\q\n')
    holder.stdin.close()
    holder.wait()
    assert left == []
    assert postgres.row_counts(name) == counts
    comment = postgres.psql('postgres', "SELECT coalesce(shobj_description(oid, 'pg_database'), '<null>') "
                                        "FROM pg_database WHERE datname = '%s'" % scratch)
    res = run_module('pg_restore_verified', restore_args(postgres, dest, database=name, mode='test'))
    assert not res.get('failed'), 'scratch comment after the kill: %r; next run: %s' % (comment, res.get('msg'))
    assert [l for l in audit(dest) if l['result'] == 'interrupted']


def test_custom_restore_killed_commits_nothing_in_the_scratch(postgres, dest, run_module):
    """One pg_restore job restores in one transaction (parallel workers, which PR_SET_PDEATHSIG does not reach,
    commit each item they finish; the next run drops that scratch database)."""
    name = 'kcustom'
    big_db(postgres, name, 600000)
    postgres.psql(name, 'CREATE TABLE small AS SELECT g FROM generate_series(1, 10) g')
    b = backup(run_module, postgres, dest, name, format='custom')
    proc = run_module.popen('pg_restore_verified', restore_args(postgres, dest, database=name, mode='test', jobs=1,
                                                                instance='server'))
    scratch = '%s__restore_%s' % (name, b['id'])

    def copying():
        if scratch not in dbs(postgres):
            return False
        return postgres.psql('postgres', "SELECT count(*) FROM pg_stat_activity WHERE datname = '%s' AND "
                                         "query ILIKE '%%COPY%%big%%' " % scratch) != '0'
    wait_for(copying, timeout=60, interval=0.02)
    left = kill_module(run_module, proc)
    assert left == []
    assert scratch in dbs(postgres)
    committed = postgres.psql(scratch, "SELECT count(*) FROM pg_class WHERE relkind = 'r' AND "
                                       "relnamespace = 'public'::regnamespace")
    assert committed == '0', 'the killed pg_restore left %s committed tables in %s' % (committed, scratch)
    # the next restore of that target drops the scratch database and audits the killed run
    res = run_module('pg_restore_verified', restore_args(postgres, dest, database=name, mode='test', jobs=1,
                                                         instance='server'))
    assert not res.get('failed'), res.get('msg')
    assert scratch not in dbs(postgres)


# -- pg_backup: kill -9 of the module and of each child --------------------------------------------------
@pytest.mark.parametrize('victim,pattern,kw', [
    ('module', r'age --encrypt', dict(encrypt=True)),
    ('age', r'age --encrypt', dict(encrypt=True)),
    ('zstd', r'zstd -q -c', dict()),
    ('pg_dump', r'pg_dump.*--snapshot', dict(format='custom')),
    ('module', r'pg_dump.*--snapshot', dict(format='custom')),
    ('psql', r'psql .*-q -A -t', dict()),
])
def test_backup_kill(postgres, dest, run_module, victim, pattern, kw, tmp_path):
    name = 'kbk'
    if name not in dbs(postgres):
        big_db(postgres, name, 600000)
    # the database's pipeline (the globals dump of the run, taken first, is tiny: its stages are the same code)
    args = dict(postgres.conn(), databases=[name], globals=False, dest=dest, compression_level=9)
    if kw.get('encrypt'):
        key = str(tmp_path / 'key.txt')
        subprocess.run(['age-keygen', '-o', key], check=True, stderr=subprocess.DEVNULL)
        pub = subprocess.run(['age-keygen', '-y', key], stdout=subprocess.PIPE, universal_newlines=True,
                             check=True).stdout.strip()
        args['encrypt_recipients'] = [pub]
    if kw.get('format'):
        args['format'] = kw['format']
        args.pop('compression_level')
    proc = run_module.popen('pg_backup', args)
    pids = wait_for(lambda: pgrep(pattern), timeout=60, interval=0.005)
    wait_for(lambda: [n for n in os.listdir(dest) if '.tmp-' in n and os.path.getsize(os.path.join(dest, n))] if
             os.path.isdir(dest) else None, timeout=60, interval=0.005)
    if victim == 'module':
        left = kill_module(run_module, proc)
        assert left == []
        assert visible_dumps(dest) == []
        assert metas(dest) == []
        again = run_module('pg_backup', dict(args, compression_level=1) if 'compression_level' in args else args)
        assert not again.get('failed'), again
        assert again['removed_temp_files'], again
        assert not [n for n in os.listdir(dest) if '.tmp-' in n]
    else:
        os.kill(int(pids[0]), signal.SIGKILL)
        res = run_module.result(proc)
        assert res['failed'] and res['backups'][0]['failed_step'] in ('dump', 'count'), res
        assert not [n for n in os.listdir(dest) if '.tmp-' in n]
        assert visible_dumps(dest) == []
        assert [m['status'] for m in metas(dest)] == ['failed']
        time.sleep(0.5)
        assert not pgrep('pg_dump.*--snapshot') and not pgrep('zstd -q -c') and not pgrep('age --encrypt')


# -- server stopped mid-dump and mid-restore --------------------------------------------------------------
def pg_ctl(postgres, action):
    base = os.path.dirname(postgres.socket_dir)
    data = os.path.join(base, 'data')
    cmd = ['runuser', '-u', 'postgres', '--', pg_bin('pg_ctl'), '-D', data, '-w']
    if action == 'stop':
        cmd += ['-m', 'immediate', 'stop']
    else:
        cmd += ['-l', os.path.join(base, 'log'), '-o', '-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off '
                '-c max_prepared_transactions=5' % (postgres.port, postgres.socket_dir), 'start']
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)


def test_server_stopped_mid_dump(postgres, dest, run_module):
    name = 'kstop'
    big_db(postgres, name, 600000)
    proc = run_module.popen('pg_backup', dict(postgres.conn(), databases=[name], globals=False, dest=dest,
                                              compression_level=19))
    wait_for(lambda: pgrep(r'pg_dump.*--snapshot'), timeout=60, interval=0.005)
    time.sleep(0.3)
    pg_ctl(postgres, 'stop')
    try:
        res = run_module.result(proc)
    finally:
        pg_ctl(postgres, 'start')
    assert res['failed'], res
    assert not [n for n in os.listdir(dest) if '.tmp-' in n]
    assert visible_dumps(dest) == []
    assert [m['status'] for m in metas(dest)] == ['failed']
    print('STOP-MID-DUMP', res['msg'])


@pytest.mark.parametrize('fmt', ['plain', 'custom'])
def test_server_stopped_mid_restore(postgres, dest, run_module, fmt):
    name = 'krs_' + fmt
    big_db(postgres, name, 600000)
    b = backup(run_module, postgres, dest, name, format=fmt)
    counts = postgres.row_counts(name)
    proc = run_module.popen('pg_restore_verified', restore_args(postgres, dest, database=name, mode='replace',
                                                                pre_restore_backup=False))
    wait_for(lambda: pgrep(r'psql.*VERBOSITY=verbose') or pgrep(r'pg_restore .*--exit-on-error'), timeout=60,
             interval=0.005)
    time.sleep(0.5)
    pg_ctl(postgres, 'stop')
    time.sleep(0.5)
    pg_ctl(postgres, 'start')
    res = run_module.result(proc)
    print('STOP-MID-RESTORE', fmt, res.get('failed_step'), res.get('verdict'), res.get('msg'))
    assert res['failed'] and res['verdict'] == 'inconclusive', res
    assert postgres.row_counts(name) == counts
    m = [x for x in metas(dest) if x['id'] == b['id'] and x['database'] == name][0]
    assert all(v['result'] != 'failed' for v in m['verifications'])
    again = run_module('pg_restore_verified', restore_args(postgres, dest, database=name, mode='test',
                                                           instance='server'))
    assert not again.get('failed'), again
    assert '%s__restore_%s' % (name, b['id']) not in dbs(postgres)


# -- damaged metadata ------------------------------------------------------------------------------------
@pytest.mark.parametrize('content', [
    b'not json at all',
    b'{"id": "20200101_000000", "database": "dmeta", "file": 7, "status": "success"}',
    b'{"id": 20200101, "database": "dmeta", "status": "failed"}',
    b'{"id": "20200101_000000", "database": "dmeta", "status": "success", "started_at": "garbage"}',
])
def test_damaged_metadata_does_not_break_the_catalog(postgres, dest, run_module, content):
    name = 'dmeta'
    if name not in dbs(postgres):
        postgres.create_db(name)
    backup(run_module, postgres, dest, name)
    with open(os.path.join(dest, 'dmeta_full_20200101_000000.meta.json'), 'wb') as f:
        f.write(content)
    with open(os.path.join(dest, 'dmeta_full_20200101_000001.meta.json'), 'wb') as f:
        f.write(content.replace(b'20200101', b'20200102'))
    res = run_module('pg_backup', dict(postgres.conn(), databases=[name], dest=dest))
    assert not res.get('failed'), res
    res = run_module('pg_restore_verified', restore_args(postgres, dest, database=name, mode='test',
                                                         max_age_hours=1))
    assert not res.get('failed'), res
    res = run_module('backup_info', dict(path=dest))
    assert not res.get('failed'), res


# -- hostile names, concurrency ---------------------------------------------------------------------------
HOSTILE = ["it's \"q\" db", 'a=b c', u'ünï cödé ✓', "x' OR '1'='1", 'trailing ', '-lead', '%2E.dot']


@pytest.mark.parametrize('name', HOSTILE)
def test_hostile_names_backup_restore_replace_rollback(postgres, dest, run_module, name):
    postgres.create_db(name, seed=False)
    postgres.psql(name, 'CREATE TABLE "Mixed Case" (id int PRIMARY KEY); '
                        'INSERT INTO "Mixed Case" SELECT generate_series(1, 50)')
    counts = postgres.row_counts(name)
    b = backup(run_module, postgres, dest, name)
    for mode in ('test', 'replace'):
        res = run_module('pg_restore_verified', restore_args(postgres, dest, database=name, mode=mode))
        assert not res.get('failed'), (mode, res)
    assert postgres.row_counts(name) == counts
    res = run_module('pg_restore_verified', restore_args(postgres, dest, database=name, mode='rollback'))
    assert not res.get('failed'), res
    assert postgres.row_counts(name) == counts


def test_three_concurrent_restores_of_one_database(postgres, dest, run_module):
    name = 'conc'
    postgres.create_db(name)
    counts = postgres.row_counts(name)
    backup(run_module, postgres, dest, name)
    procs = [run_module.popen('pg_restore_verified', restore_args(postgres, dest, database=name, mode=m,
                                                                  target=name if m != 'new' else 'conc_new'))
             for m in ('replace', 'test', 'replace')]
    res = [run_module.result(p) for p in procs]
    assert all(not r.get('failed') for r in res), [r.get('msg') for r in res]
    assert postgres.row_counts(name) == counts
    assert not [d for d in dbs(postgres) if d.startswith('conc__restore_')]


def test_three_concurrent_backups(postgres, dest, run_module):
    name = 'concb'
    postgres.create_db(name)
    procs = [run_module.popen('pg_backup', dict(postgres.conn(), databases=[name], dest=dest, format=f))
             for f in ('plain', 'custom', 'plain')]
    res = [run_module.result(p) for p in procs]
    assert all(not r.get('failed') for r in res), [r.get('msg') for r in res]
    assert len(set(r['id'] for r in res)) == 3


# -- full disk -------------------------------------------------------------------------------------------
@pytest.mark.parametrize('fmt', ['plain', 'custom'])
def test_full_disk_for_the_pre_restore_backup_is_inconclusive(postgres, tmp_path, run_module, fmt):
    name = 'kfull_' + fmt
    big_db(postgres, name, 20000)
    mnt = str(tmp_path / 'small')
    os.makedirs(mnt)
    subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=4m', 'tmpfs', mnt], check=True)
    try:
        b = backup(run_module, postgres, mnt, name, format=fmt, compression_level=9, free_space_ratio=0)
        counts = postgres.row_counts(name)
        st = os.statvfs(mnt)
        with open(os.path.join(mnt, 'filler'), 'wb') as f:
            f.write(b'x' * max(0, st.f_bavail * st.f_frsize - 64 * 1024))
        res = run_module('pg_restore_verified', restore_args(postgres, mnt, database=name, mode='replace',
                                                             free_space_ratio=0))
        print('FULL', res.get('failed_step'), res.get('verdict'), res.get('msg'), res.get('warnings'))
        if res.get('failed'):
            assert res['verdict'] == 'inconclusive', res
        assert postgres.row_counts(name) == counts or not res.get('failed')
        assert not [n for n in os.listdir(mnt) if '.tmp-' in n]
    finally:
        subprocess.run(['umount', mnt], check=True)


# -- truncated dumps whose metadata was made to match (the format check / restore must catch them) -------------
@pytest.mark.parametrize('fmt', ['plain', 'custom'])
def test_truncated_dump_with_matching_metadata_is_the_backups_fault(postgres, dest, run_module, fmt):
    import hashlib
    name = 'trunc_' + fmt
    postgres.create_db(name)
    b = backup(run_module, postgres, dest, name, format=fmt)
    counts = postgres.row_counts(name)
    with open(b['backup_path'], 'r+b') as f:
        f.truncate(os.path.getsize(b['backup_path']) * 2 // 3)
    with open(b['backup_path'], 'rb') as f:
        data = f.read()
    mp = [os.path.join(dest, n) for n in os.listdir(dest) if n.endswith('.meta.json') and b['id'] in n][0]
    with open(mp) as f:
        meta = json.load(f)
    meta.update(sha256=hashlib.sha256(data).hexdigest(), size=len(data))
    with open(mp, 'w') as f:
        json.dump(meta, f)
    res = run_module('pg_restore_verified', restore_args(postgres, dest, database=name, mode='replace'))
    print('TRUNC', fmt, res.get('failed_step'), res.get('verdict'), res.get('msg', '')[:300])
    assert res['failed'] and res['verdict'] == 'failed', res
    assert postgres.row_counts(name) == counts
    assert not [d for d in dbs(postgres) if d.startswith(name + '__restore_')]


@pytest.mark.parametrize('fmt,pattern', [('plain', r'zstd -q -d -c'), ('custom', r'pg_restore .*--exit-on-error'),
                                         ('plain', r'psql.*VERBOSITY=verbose')])
def test_restore_child_killed_is_inconclusive_and_commits_nothing(postgres, dest, run_module, fmt, pattern):
    name = 'kchild_' + fmt
    if name not in dbs(postgres):
        big_db(postgres, name, 600000)
    b = backup(run_module, postgres, dest, name, format=fmt)
    counts = postgres.row_counts(name)
    proc = run_module.popen('pg_restore_verified', restore_args(postgres, dest, database=name, mode='replace',
                                                                pre_restore_backup=False))
    pids = wait_for(lambda: pgrep(pattern, proc.pid), timeout=60, interval=0.005)
    time.sleep(0.3)
    os.kill(int(pids[0]), signal.SIGKILL)
    res = run_module.result(proc)
    print('CHILD', fmt, pattern, res.get('failed_step'), res.get('verdict'), res.get('msg', '')[:200])
    assert res['failed'] and res['failed_step'] == 'restore' and res['verdict'] == 'inconclusive', res
    assert postgres.row_counts(name) == counts
    assert not [d for d in dbs(postgres) if d.startswith(name + '__restore_')]
    m = [x for x in metas(dest) if x['id'] == b['id'] and x['database'] == name][0]
    assert m['verifications'][-1]['result'] == 'inconclusive'
    assert not pgrep(r'pg_restore|zstd -q -d|VERBOSITY=verbose', proc.pid)


def test_two_replaces_in_the_same_second_do_not_collide_on_the_rollback_name(postgres, dest, run_module):
    name = 'samesec'
    postgres.create_db(name, seed=False)
    postgres.psql(name, 'CREATE TABLE t AS SELECT generate_series(1, 10) AS id')
    backup(run_module, postgres, dest, name)
    for i in range(4):
        procs = [run_module.popen('pg_restore_verified', restore_args(postgres, dest, database=name, mode='replace',
                                                                      pre_restore_backup=False, lock_timeout=60))
                 for dummy in range(2)]
        res = [run_module.result(p) for p in procs]
        assert all(not r.get('failed') for r in res), [r.get('msg') for r in res]
