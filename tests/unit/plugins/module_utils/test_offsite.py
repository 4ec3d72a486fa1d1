# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgops.postgresql contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for backup_offsite's pure logic: key names, the push policy, the push plan, remote rotation with
Object Lock, error messages, option rules. The S3 behaviour itself is tested on a real server
(tests/functional/test_offsite.py)."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import datetime
import json

import pytest

from ansible_collections.pgops.postgresql.plugins.module_utils import _offsite as offsite
from ansible_collections.pgops.postgresql.plugins.module_utils._fsutil import PgOpsError
from ansible_collections.pgops.postgresql.plugins.module_utils._rotate import make_policy

UTC = datetime.timezone.utc
NOW = datetime.datetime(2026, 11, 28, 12, 0, 0, tzinfo=UTC)   # a Saturday
DAY = datetime.timedelta(days=1)


def entry(database='pim', days_ago=0.0, kind='full', verified=False, status='success', fmt='custom', **kw):
    when = NOW - datetime.timedelta(days=days_ago)
    bid = when.strftime('%Y%m%d_%H%M%S')
    m = dict(id=bid, database=database, kind=kind, status=status, format=fmt, file='%s_%s_%s.dump'
             % (database, kind, bid), size=10, sha256='ab' * 32, started_at=when.isoformat())
    m['meta_path'] = '/b/%s_%s_%s.meta.json' % (database, kind, bid)
    if verified:
        m['verifications'] = [dict(result='passed')]
    m.update(kw)
    return m


def newest_first(entries):
    return sorted(entries, key=lambda m: m['started_at'], reverse=True)


# -- names ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize('prefix, database, name, key', [
    ('pgops', 'pim', 'a.dump', 'pgops/pim/a.dump'),
    ('', 'pim', 'a.dump', 'pim/a.dump'),
    ('a/b', 'my db/x', 'f', 'a/b/my%20db%2Fx/f'),
    ('p', '@globals', 'g.sql', 'p/_globals/g.sql'),
])
def test_object_key(prefix, database, name, key):
    assert offsite.object_key(offsite.clean_prefix(prefix), database, name) == key


@pytest.mark.parametrize('prefix', ['a//b', '../x', 'a/./b'])
def test_bad_prefix_refused(prefix):
    with pytest.raises(PgOpsError) as e:
        offsite.clean_prefix(prefix)
    assert 'prefix' in e.value.msg and e.value.step == 'options'


def test_clean_prefix_strips_slashes():
    assert offsite.clean_prefix('/pgops/prod/') == 'pgops/prod'


def test_hex_to_b64_matches_s3_checksum_encoding():
    # sha256 of b'hello' as S3 returns it in x-amz-checksum-sha256 (seen from SeaweedFS and AWS)
    assert offsite.hex_to_b64('2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824') == \
        'LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ='


# -- policy ---------------------------------------------------------------------------------------------------
def test_weekly_takes_newest_verified_full_per_week_and_database():
    entries = newest_first([
        entry(days_ago=0, verified=False),             # newest, unverified: skipped
        entry(days_ago=1, verified=True),              # week 48 newest verified: chosen
        entry(days_ago=2, verified=True),              # same week: no
        entry(days_ago=1.5, kind='manual', verified=True),   # not full
        entry(days_ago=8, verified=True),              # week 47: chosen
        entry(days_ago=9, verified=True, status='failed'),
        entry(database='crm', days_ago=2, verified=True),  # other database: chosen
    ])
    chosen, skipped = offsite.select_for_push(entries)
    assert [(m['database'], m['started_at'][:10]) for m in chosen] == [
        ('pim', '2026-11-27'), ('crm', '2026-11-26'), ('pim', '2026-11-20')]
    assert skipped == []


def test_all_policy_kinds_and_databases_filters():
    entries = newest_first([entry(days_ago=0), entry(days_ago=1, kind='manual'), entry(database='crm', days_ago=2),
                            entry(days_ago=3, status='failed')])
    assert len(offsite.select_for_push(entries, 'all')[0]) == 3
    assert [m['kind'] for m in offsite.select_for_push(entries, 'all', kinds=['manual'])[0]] == ['manual']
    assert [m['database'] for m in offsite.select_for_push(entries, 'all', databases=['crm'])[0]] == ['crm']


def test_directory_format_is_skipped_with_reason():
    chosen, skipped = offsite.select_for_push([entry(fmt='directory', file='x.dir')], 'all')
    assert chosen == [] and 'directory-format' in skipped[0][1]


def test_unknown_policy_refused():
    with pytest.raises(PgOpsError):
        offsite.select_for_push([], 'daily')


# -- push plan ------------------------------------------------------------------------------------------------
def remote_copy(m, prefix='p', data_present=True, sha256=None, remote_size=None, head=None):
    c = dict(m, key=offsite.object_key(prefix, m['database'], m['file']),
             meta_key=offsite.object_key(prefix, m['database'], offsite.meta_name(m)),
             data_present=data_present, sha256=sha256 or m['sha256'],
             remote_size=(remote_size if remote_size is not None else m['size']) if data_present else None)
    if head is not None:
        c['head'] = head
    return c


def test_plan_push_actions():
    new, done, unrec, partial, differs = [entry(days_ago=d) for d in range(5)]
    done['offsite'] = [dict(bucket='bk', key=offsite.object_key('p', 'pim', done['file']), endpoint=None)]
    copies = [remote_copy(done), remote_copy(unrec), remote_copy(differs, sha256='cd' * 32)]
    unfinished = [dict(key=offsite.object_key('p', 'pim', partial['file']))]
    plan = offsite.plan_push([new, done, unrec, partial, differs], copies, unfinished, 'p', 'bk', None)
    assert [a for dummy, dummy, dummy, a, dummy in plan] == ['upload', 'present', 'record', 'upload', 'upload']
    assert plan[3][4].startswith('unfinished upload')
    # the same copy recorded for another endpoint is not "present" here
    other = offsite.plan_push([done], copies, [], 'p', 'bk', 'https://other')
    assert other[0][3] == 'record'


def test_plan_push_uploads_a_damaged_copy_again():
    """A copy whose data object is shorter than its metadata says is no copy: upload it again, even when it
    was recorded locally (as the truncated copy of issue 21 was)."""
    m = entry()
    m['offsite'] = [dict(bucket='bk', key=offsite.object_key('p', 'pim', m['file']), endpoint=None)]
    for copy in (remote_copy(m, remote_size=4),
                 remote_copy(m, head=dict(ContentLength=10, ChecksumSHA256=offsite.hex_to_b64('cd' * 32)))):
        plan = offsite.plan_push([m], [copy], [], 'p', 'bk', None)
        assert plan[0][3] == 'upload' and 'damaged' in plan[0][4], plan


def test_lock_args():
    assert offsite.lock_args(None, 5) == {}
    args = offsite.lock_args('COMPLIANCE', 35, NOW)
    assert args == dict(ObjectLockMode='COMPLIANCE', ObjectLockRetainUntilDate=NOW + 35 * DAY)


# -- remote rotation ------------------------------------------------------------------------------------------
def rotation_copies():
    return [remote_copy(entry(days_ago=d, verified=(d == 70))) for d in (1, 10, 40, 50, 70)]


def test_remote_rotation_same_rules_as_backup_rotate():
    copies = rotation_copies()
    decisions, orphans = offsite.plan_remote_rotation(copies, [], NOW, make_policy(min_keep=2), {})
    actions = dict((c['started_at'][:10], (a, r)) for c, a, r in decisions)
    assert actions['2026-11-27'][0] == 'keep' and actions['2026-11-18'][0] == 'keep'   # min_keep 2
    assert actions['2026-10-19'][0] == 'delete' and actions['2026-10-09'][0] == 'delete'
    assert actions['2026-09-19'][0] == 'keep' and 'newest verified' in actions['2026-09-19'][1]


def test_damaged_copy_never_counts_towards_min_keep_nor_newest_verified():
    """Issue 21: three verified copies, the newest truncated: min_keep 1 and "newest verified" must protect the
    newest INTACT copy, never the damaged one."""
    copies = [remote_copy(entry(days_ago=d, verified=True)) for d in (1, 2, 3)]
    copies[0]['remote_size'] = 4
    decisions, dummy = offsite.plan_remote_rotation(copies, [], NOW, make_policy(min_keep=1, older_than_days=0), {})
    got = [(c['started_at'][:10], a, r) for c, a, r in decisions]
    assert got[1][1] == 'keep' and got[1][2].startswith('newest verified; min_keep 1'), got
    assert got[0][1] == 'delete' and 'damaged' in got[0][2] and '4 bytes' in got[0][2], got
    assert got[2][1] == 'delete', got


@pytest.mark.parametrize('copy, words', [
    (dict(data_present=False), 'missing'),
    (dict(remote_size=4), 'holds 4 bytes, its metadata says 10'),
    (dict(head=dict(ContentLength=10, ChecksumSHA256=offsite.hex_to_b64('cd' * 32))), 'SHA-256 checksum'),
    (dict(head=dict(ContentLength=10, Metadata={'sha256': 'cd' * 32})), 'x-amz-meta-sha256'),
    (dict(head=dict(ContentLength=10, ChecksumSHA256=offsite.hex_to_b64('ab' * 32))), None),
    (dict(head=dict(ContentLength=10, ChecksumSHA256='bm90IGEgZnVsbCBvYmplY3Q=-3')), None),  # composite: no verdict
    (dict(head=dict(ContentLength=10, Metadata={})), None),    # a store that keeps no user metadata: no verdict
    (dict(), None),
])
def test_copy_damage(copy, words):
    c = remote_copy(entry(), data_present=copy.pop('data_present', True), remote_size=copy.pop('remote_size', None),
                    head=copy.pop('head', None))
    damage = offsite.copy_damage(c)
    assert (damage is None) if words is None else (words in damage), damage


def globals_linked():
    """A database copy linking the globals dump of its run, and three globals copies."""
    gl = [entry(database='@globals', days_ago=d, scope='globals', file='_globals_full_%d.sql' % d)
          for d in (1, 20, 40)]
    db = entry(days_ago=40, verified=True, globals=dict(id=gl[2]['id'], file=gl[2]['file'], sha256=gl[2]['sha256']))
    return db, gl


def test_rotation_keeps_the_globals_of_a_kept_copy():
    db, gl = globals_linked()
    copies = [remote_copy(db)] + [remote_copy(g) for g in gl]
    decisions, dummy = offsite.plan_remote_rotation(copies, [], NOW, make_policy(min_keep=1, older_than_days=10), {})
    got = dict((c['file'], (a, r)) for c, a, r in decisions)
    assert got[db['file']][0] == 'keep'
    assert got[gl[2]['file']][0] == 'keep' and 'globals of pim %s' % db['id'] in got[gl[2]['file']][1], got
    assert got[gl[1]['file']][0] == 'delete', got


def test_push_selection_brings_the_linked_globals_whatever_the_policy():
    db, gl = globals_linked()
    db['verifications'] = [dict(result='passed')]
    entries = newest_first([db] + gl)
    chosen, dummy = offsite.select_for_push(entries, 'weekly', databases=['pim'])
    assert [m['id'] for m in chosen] == [db['id']]
    linked, warnings = offsite.linked_globals(chosen, entries)
    assert [m['id'] for m in linked] == [gl[2]['id']] and warnings == []
    gone = dict(db, globals=dict(id='20200101_000000', file='_globals_full_x.sql', sha256='ef' * 32))
    linked, warnings = offsite.linked_globals([gone], entries)
    assert linked == [] and 'not in' in warnings[0] and '20200101_000000' in warnings[0]


def test_locked_copy_is_kept_and_says_why():
    copies = rotation_copies()
    locks = {copies[2]['key']: 'object lock COMPLIANCE until 2026-12-01T00:00:00+00:00',
             copies[3]['meta_key']: 'legal hold'}
    decisions, dummy = offsite.plan_remote_rotation(copies, [], NOW, make_policy(min_keep=2), locks)
    reasons = dict((c['key'], (a, r)) for c, a, r in decisions)
    assert reasons[copies[2]['key']][0] == 'keep' and 'COMPLIANCE' in reasons[copies[2]['key']][1]
    assert reasons[copies[3]['key']][0] == 'keep' and 'legal hold' in reasons[copies[3]['key']][1]


def test_orphans_by_age_and_lock():
    unfinished = [dict(key='p/pim/a', size=1, last_modified_dt=NOW - 2 * DAY),
                  dict(key='p/pim/b', size=1, last_modified_dt=NOW - datetime.timedelta(hours=1)),
                  dict(key='p/pim/c', size=1, last_modified_dt=NOW - 3 * DAY)]
    dummy, orphans = offsite.plan_remote_rotation([], unfinished, NOW, make_policy(orphan_age_hours=24),
                                                  {'p/pim/c': 'legal hold'})
    assert [(u['key'], a) for u, a, r in orphans] == [
        ('p/pim/a', 'delete'), ('p/pim/b', 'keep'), ('p/pim/c', 'keep')]


@pytest.mark.parametrize('head, locked', [
    (None, False),
    ({}, False),
    ({'ObjectLockMode': 'GOVERNANCE', 'ObjectLockRetainUntilDate': NOW + DAY}, True),
    ({'ObjectLockMode': 'COMPLIANCE', 'ObjectLockRetainUntilDate': NOW - DAY}, False),
    ({'ObjectLockLegalHoldStatus': 'ON'}, True),
])
def test_lock_state(head, locked):
    assert bool(offsite.lock_state(head, NOW)) is locked


# -- errors and options ---------------------------------------------------------------------------------------
def client_error(code, status):
    from botocore.exceptions import ClientError
    return ClientError({'Error': {'Code': code, 'Message': 'm'}, 'ResponseMetadata': {'HTTPStatusCode': status}},
                       'ListObjectsV2')


@pytest.mark.parametrize('code, status, words', [
    ('SignatureDoesNotMatch', 403, 'refused the credentials'),
    ('InvalidAccessKeyId', 403, 'refused the credentials'),
    ('NoSuchBucket', 404, 'does not exist'),
    ('AccessDenied', 403, 'least-privilege'),
    ('SlowDown', 503, 'S3 error SlowDown'),
])
def test_explain_client_errors(code, status, words):
    pytest.importorskip('botocore')
    e = offsite.explain(client_error(code, status), 'cannot open bucket b', 'b', 'http://s3')
    assert words in e.msg


def test_explain_unreachable():
    pytest.importorskip('botocore')
    from botocore.exceptions import EndpointConnectionError
    e = offsite.explain(EndpointConnectionError(endpoint_url='http://x'), 'cannot open bucket b', 'b', 'http://x')
    assert 'cannot reach the S3 endpoint http://x' in e.msg and e.step == 'connect'


@pytest.mark.parametrize('params, words', [
    (dict(bucket=' '), 'bucket must not be empty'),
    (dict(bucket='b', object_lock_mode='COMPLIANCE', object_lock_days=0), 'object_lock_days must be 1'),
    (dict(bucket='b', prefix='a//b'), 'prefix'),
    (dict(bucket='b', endpoint_url='localhost:9000'), 'must start with http://'),
    (dict(bucket='b', endpoint_url='http://u:p@localhost:9000'), 'must not carry credentials'),
    (dict(bucket='b', state='fetched', backup_id=''), 'backup_id must not be empty'),
    (dict(bucket='b', state='fetched', backup_id='  '), 'backup_id must not be empty'),
])
def test_option_errors(params, words):
    errors = offsite.option_errors(params)
    assert len(errors) == 1 and words in errors[0], errors
    assert offsite.option_errors(dict(bucket='b', prefix='pgops/prod', endpoint_url='https://s3.example')) == []


# -- the module's declarative rules ---------------------------------------------------------------------------
@pytest.mark.parametrize('args, words', [
    (dict(bucket='b'), 'path'),                                          # state pushed needs path
    (dict(bucket='b', state='fetched', dest='/x'), 'database'),          # fetched needs database + dest
    (dict(bucket='b', path='/x', object_lock_mode='GOVERNANCE'), 'object_lock_days'),
    (dict(bucket='b', path='/x', access_key='AKIAEXAMPLEKEY'), 'secret_key'),
    (dict(bucket='b', path='/x', access_key='AKIAEXAMPLEKEY', secret_key='wJalrXUtnFEMIEXAMPLE', profile='ops'),
     'mutually exclusive'),
    (dict(bucket='b', state='fetched', dest='/x', database='pim', backup_id=''), 'backup_id must not be empty'),
])
def test_module_argument_rules(args, words, capsys):
    from ansible.module_utils.testing import patch_module_args
    from ansible_collections.pgops.postgresql.plugins.modules import backup_offsite
    with patch_module_args(args):
        with pytest.raises(SystemExit):
            backup_offsite.main()
    out = json.loads(capsys.readouterr().out)
    assert out['failed'] and words in out['msg'], out
    assert 'wJalrXUtnFEMIEXAMPLE' not in json.dumps(out)


@pytest.mark.parametrize('name, ours', [
    ('.pim_full_20261128_020000.dump.tmp-4242', True),
    ('.pim_full_20261128_020000.meta.json.tmp-17', True),
    ('.pim_full_20261128_020000.dump.tmp-', False),                  # no pid: not a writer's name
    ('.pim_full_20261128_020000.dump.tmp-12x', False),
    ('.pim_full_20261127_020000.dump.tmp-4242', False),              # another backup's
    ('pim_full_20261128_020000.dump', False),
])
def test_fetch_temp_names_are_this_copys_only(name, ours):
    chosen = dict(file='pim_full_20261128_020000.dump', meta_key='p/pim/pim_full_20261128_020000.meta.json')
    assert bool(offsite.fetch_temp_re(chosen).match(name)) is ours


@pytest.mark.parametrize('prefix, key, ours', [
    ('pgops', 'pgops/pim/pim_full_20261128_020000.sql.zst', True),
    ('pgops', 'pgops/pim/pim_pre_deploy_v1.2_20261128_020000.dump.age', True),
    ('', 'pim/pim_manual_20261128_020000.sql', True),
    ('a/b', 'a/b/pim/pim_full_20261128_020000.dump', True),
    ('pgops', 'pgops/pim/sub/pim_full_20261128_020000.dump', False),   # too deep
    ('pgops', 'pgops/pim_full_20261128_020000.dump', False),           # no database level
    ('pgops', 'pgops/pim/holiday-photos.zip', False),                  # not a pg_backup name
    ('', 'website/index.html', False),
    ('pgops', 'pgops/pim/pim_full_20261128_020000.meta.json', False),
])
def test_only_dump_names_can_be_unfinished_uploads(prefix, key, ours):
    assert offsite.is_dump_key(prefix, key) is ours


def test_remote_gfs_weekly_keeps_one_copy_per_week():
    copies = [remote_copy(entry(days_ago=d)) for d in (0, 1, 7, 8, 14, 15, 21, 22)]
    policy = make_policy(older_than_days=0.5, min_keep=1, keep_weekly=3)
    decisions, dummy = offsite.plan_remote_rotation(copies, [], NOW, policy, {})
    kept = [c['started_at'][:10] for c, a, r in decisions if a == 'keep']
    assert kept == ['2026-11-28', '2026-11-21', '2026-11-14'], decisions


# -- every copy knows its server (issue 22) -------------------------------------------------------------------
@pytest.mark.parametrize('server, key', [
    ('db1/pim', 'p/db1%2Fpim/shop/shop_full_20261128_020000.dump'),
    ('db1:5433', 'p/db1%3A5433/shop/shop_full_20261128_020000.dump'),
    ('.hidden', 'p/%2Ehidden/shop/shop_full_20261128_020000.dump'),
    (None, 'p/shop/shop_full_20261128_020000.dump'),        # a backup whose server cannot be told: 0.4.0's place
])
def test_object_key_carries_the_server(server, key):
    assert offsite.object_key('p', 'shop', 'shop_full_20261128_020000.dump', server) == key


@pytest.mark.parametrize('prefix, key, ours', [
    ('pgops', 'pgops/db1%2Fpg/pim/pim_full_20261128_020000.sql.zst', True),
    ('', 'db1/pim/pim_full_20261128_020000.dump', True),
    ('pgops', 'pgops/db1/pim/x/pim_full_20261128_020000.dump', False),      # too deep
    ('pgops', 'pgops/db1/other/pim_full_20261128_020000.dump', False),      # not its database's name
])
def test_dump_keys_under_a_server(prefix, key, ours):
    assert offsite.is_dump_key(prefix, key) is ours


def served(m, server):
    return dict(m, server=server)


def server_copy(m, prefix='p'):
    c = remote_copy(m, prefix)
    c.update(key=offsite.object_key(prefix, m['database'], m['file'], offsite.server_of(m)),
             meta_key=offsite.object_key(prefix, m['database'], offsite.meta_name(m), offsite.server_of(m)))
    return c


def test_two_servers_same_database_same_id_never_share_a_key():
    a, b = served(entry('shop'), 'db1/a'), served(entry('shop'), 'db1/b')
    assert a['id'] == b['id'] and a['file'] == b['file']
    plan = offsite.plan_push([a, b], [server_copy(a)], [], 'p', 'bk', None)
    assert [x[3] for x in plan] == ['record', 'upload'], plan      # a's copy is not b's
    assert plan[0][1] != plan[1][1] and plan[0][2] != plan[1][2]
    assert plan[1][1] == 'p/db1%2Fb/shop/' + b['file']


def test_a_0_4_0_copy_of_the_same_backup_is_not_pushed_again():
    m = served(entry('shop', host='db1'), 'db1')
    old = remote_copy(dict(m, server=None))                    # at <prefix>/<database>/, no server recorded
    plan = offsite.plan_push([m], [old], [], 'p', 'bk', None)
    assert plan[0][3] == 'record' and plan[0][1] == 'p/shop/' + m['file'], plan
    other = remote_copy(dict(m, server=None, sha256='cd' * 32), sha256='cd' * 32)    # not this backup
    assert offsite.plan_push([m], [other], [], 'p', 'bk', None)[0][1:4] == (
        'p/db1/shop/' + m['file'], 'p/db1/shop/' + offsite.meta_name(m), 'upload')


def test_remote_rotation_per_server():
    """min_keep and the newest verified copy count per (server, database): b's newer copies never make a's go."""
    a = [server_copy(served(entry('shop', days_ago=d, verified=(d == 60)), 'a')) for d in (50, 60)]
    b = [server_copy(served(entry('shop', days_ago=d), 'b')) for d in (1, 2, 3)]
    decisions, dummy = offsite.plan_remote_rotation(a + b, [], NOW, make_policy(min_keep=1, older_than_days=10), {})
    kept = sorted((c['server'], c['started_at'][:10]) for c, action, dummy in decisions if action == 'keep')
    assert ('a', '2026-10-09') in kept and ('b', '2026-11-27') in kept, decisions   # a's newest and verified kept
    assert ('a', '2026-09-29') in kept                                              # a's newest verified


class FakeRemote(object):
    bucket, prefix = 'bk', 'p'

    def db_prefix(self, database=None):
        return 'p/'


def test_fetch_server_never_picks_silently():
    copies = [served(entry('shop'), 'db1/a'), served(entry('shop', days_ago=1), 'db1/b'), entry('shop', days_ago=2)]
    with pytest.raises(PgOpsError) as e:
        offsite.fetch_server(FakeRemote(), copies, 'shop', None)
    assert 'db1/a, db1/b' in e.value.msg and 'set server' in e.value.msg and e.value.step == 'options'
    assert offsite.fetch_server(FakeRemote(), copies[1:], 'shop', None) == 'db1/b'    # one server (and unknowns)
    assert offsite.fetch_server(FakeRemote(), copies[2:], 'shop', None) is None
    assert offsite.fetch_server(FakeRemote(), copies, 'shop', 'db1/a') == 'db1/a'


def test_weekly_policy_per_server():
    a, b = served(entry('shop', verified=True), 'a'), served(entry('shop', days_ago=0.1, verified=True), 'b')
    chosen, dummy = offsite.select_for_push([a, b], 'weekly')
    assert [m['server'] for m in chosen] == ['a', 'b']


def test_server_option_is_checked():
    assert [e for e in offsite.option_errors(dict(bucket='bk', server=' ')) if e.startswith('server must')]
