# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgops.postgresql contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# PRIVATE to the collection: this is not a public API and may change without notice.
"""backup_offsite's logic: copies of catalog backups in an S3 bucket (AWS, MinIO, Ceph RGW, SeaweedFS, B2...).

The bucket mirrors the catalog's commit rule: a copy is ``<prefix>/<server slug>/<database slug>/<file>`` (the
data object) plus ``<prefix>/<server slug>/<database slug>/<stem>.meta.json`` (the metadata object), uploaded
LAST. A data object that no metadata object names is an unfinished upload: never listed as a copy, re-uploaded
by the next push, deleted by rotation once older than ``orphan_age_hours``.

The server (``_server.server_of`` of the pushed backup's metadata) is in the key since 0.5.0, so two servers
never write the same key, whatever their ids. Copies pushed by 0.4.0 live one level up, at
``<prefix>/<database slug>/...`` (as do backups whose server cannot be told): they are still listed, fetched,
verified and rotated, their server derived from their metadata object (None: every server's, as locally).
Every choice - fetch, rotation - is made among one server's copies.

A copy is only a copy when its data object is what its metadata object says: a data object of another size
(or, where the store says, another checksum) makes it DAMAGED - pushed again, never counted by rotation
towards ``min_keep`` or "newest verified", flagged by ``listed`` and ``verified`` (which reads every copy back).
Nothing depends on the objects' user metadata (``x-amz-meta-*``), which some stores drop: the metadata object
holds the truth.

Every state decides first (pure functions over listings), then acts; check mode returns the decision.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import base64
import binascii
import datetime
import hashlib
import json
import os
import re
import time
from concurrent.futures import ThreadPoolExecutor

from ansible_collections.pgops.postgresql.plugins.module_utils import _catalog as catalog
from ansible_collections.pgops.postgresql.plugins.module_utils._errors import PgOpsError
from ansible_collections.pgops.postgresql.plugins.module_utils._fsutil import (
    CHUNK, FILE_MODE, TMP_MARK, DirLock, ensure_dir, fsync_dir, pid_alive, remove_dead_temp_files, remove_tree,
    sha256_file, temp_name, temp_writer_pid, write_json_atomic,
)
from ansible_collections.pgops.postgresql.plugins.module_utils import _integrity as integrity
from ansible_collections.pgops.postgresql.plugins.module_utils._steps import (
    CHECK_UPLOAD, CHECKSUM, CONNECT, DELETE, DOWNLOAD, IO, LIST, OFFSITE_STEPS, OPTIONS, PLAN, RECORD, UPLOAD,
    job_step,
)
from ansible_collections.pgops.postgresql.plugins.module_utils import _rotate as retention
from ansible_collections.pgops.postgresql.plugins.module_utils._server import check_name, of_server, server_of

try:
    import boto3
    from botocore.config import Config
    from botocore import exceptions as bexc
    from boto3.s3.transfer import TransferConfig
    HAS_BOTO3 = True
    BOTO3_IMPORT_ERROR = None
except ImportError as e:  # pragma: no cover - reported by the module
    HAS_BOTO3 = False
    BOTO3_IMPORT_ERROR = e

POLICIES = ('weekly', 'all')
# requests in flight for HEADs of many copies, and for reading copies back (state verified)
HEAD_WORKERS = 8
READ_WORKERS = 4
NO_USER_METADATA = "the S3 store did not keep the object's user metadata: "
LOCK_MODES = ('GOVERNANCE', 'COMPLIANCE')
MiB = 1024 * 1024
# the steps a failure can name
STEPS = OFFSITE_STEPS
# what pg_backup names a dump: <db>_<kind>[_<label>]_<YYYYMMDD_HHMMSS><suffix>[.age]. Only such names, in a
# database level below the prefix (and a server level, since 0.5.0), can be unfinished uploads: anything else in
# a shared bucket is never ours to delete.
DUMP_NAME_RE = re.compile(r'^[^/]+_(%s)(_[^/]*)?_\d{8}_\d{6}\.(sql(\.zst|\.gz|\.lz4)?|dump)(\.age)?$'
                          % '|'.join(catalog.KINDS))
CREDENTIAL_CODES = ('InvalidAccessKeyId', 'SignatureDoesNotMatch', 'InvalidToken', 'ExpiredToken',
                    'InvalidClientTokenId', 'AuthorizationHeaderMalformed')


# -- names ----------------------------------------------------------------------------------------------------
def db_slug(database):
    return '_globals' if database == catalog.GLOBALS else catalog.slug(database)


def clean_prefix(prefix):
    prefix = (prefix or '').strip('/')
    if '//' in prefix or any(part in ('.', '..') for part in prefix.split('/')):
        raise PgOpsError('prefix %r must be a plain key prefix like "pgops/prod" (no "//", "." or "..")' % prefix,
                         step=OPTIONS)
    return prefix


def server_slug(server):
    """The server's name made file-name-safe for a key level, as database names are (``db1/pg`` -> ``db1%2Fpg``)."""
    return catalog.slug(server)


def object_key(prefix, database, name, server=None):
    """``<prefix>/<server>/<database>/<name>``; without a server (a backup whose server cannot be told, or the
    0.4.0 layout) ``<prefix>/<database>/<name>``."""
    return '/'.join(p for p in (prefix, server_slug(server) if server else None, db_slug(database), name) if p)


def key_place(prefix, key):
    """``(server slug or None, database slug, name)`` of a key at a place where backup_offsite puts objects -
    ``<prefix>/<server>/<database>/<name>`` or the 0.4.0 layout ``<prefix>/<database>/<name>`` - else None."""
    parts = key.split('/')
    depth = len(prefix.split('/')) if prefix else 0
    if '/'.join(parts[:depth]) != prefix:
        return None
    rest = parts[depth:]
    if not all(rest):
        return None
    if len(rest) == 2:
        return (None, rest[0], rest[1])
    if len(rest) == 3:
        return tuple(rest)
    return None


def is_dump_key(prefix, key):
    """Whether ``key`` is where backup_offsite puts a dump: ``<prefix>/<server>/<database>/<pg_backup dump name>``
    or ``<prefix>/<database>/<pg_backup dump name>`` (0.4.0), the name starting with its database's."""
    place = key_place(prefix, key)
    return bool(place) and bool(DUMP_NAME_RE.match(place[2])) and place[2].startswith(place[1] + '_')


def meta_name(meta):
    """``<stem>.meta.json`` of a catalog entry (the local metadata file's name)."""
    if meta.get('meta_path'):
        return os.path.basename(meta['meta_path'])
    return catalog.stem(meta['database'], meta['kind'], meta.get('label'), meta['id']) + catalog.META_SUFFIX


def hex_to_b64(hexdigest):
    return base64.b64encode(binascii.unhexlify(hexdigest)).decode('ascii')


def now_utc():
    return datetime.datetime.now(datetime.timezone.utc)


# -- errors ---------------------------------------------------------------------------------------------------
def explain(e, what, bucket=None, endpoint=None, step=CONNECT):
    """A PgOpsError with a message that says what to fix, for any boto3/botocore failure. Never holds secrets."""
    where = endpoint or 'the AWS S3 endpoint'
    if isinstance(e, PgOpsError):
        return e
    if HAS_BOTO3:
        if isinstance(e, (bexc.EndpointConnectionError, bexc.ConnectTimeoutError)):
            return PgOpsError('%s: cannot reach the S3 endpoint %s (%s): check endpoint_url, the network and the '
                              'firewall' % (what, where, type(e).__name__), step=CONNECT)
        if isinstance(e, bexc.ReadTimeoutError):
            return PgOpsError('%s: the S3 endpoint %s did not answer in time: %s' % (what, where, e), step=step)
        if isinstance(e, bexc.NoCredentialsError):
            return PgOpsError('%s: no S3 credentials found: set access_key and secret_key, or profile, or provide '
                              'them through the environment (AWS_ACCESS_KEY_ID...) or an instance role' % what,
                              step=CONNECT)
        if isinstance(e, bexc.ProfileNotFound):
            return PgOpsError('%s: %s (profile)' % (what, e), step=CONNECT)
        if isinstance(e, bexc.SSLError):
            return PgOpsError('%s: TLS failure talking to %s: %s (validate_certs)' % (what, where, e), step=CONNECT)
        if isinstance(e, bexc.ClientError):
            err = e.response.get('Error', {}) or {}
            code = str(err.get('Code') or '')
            status = (e.response.get('ResponseMetadata') or {}).get('HTTPStatusCode')
            if code in CREDENTIAL_CODES:
                return PgOpsError('%s: the S3 endpoint %s refused the credentials (%s): check access_key and '
                                  'secret_key (or the profile / environment credentials)' % (what, where, code),
                                  step=CONNECT)
            if code in ('NoSuchBucket',) or (code in ('404', 'NotFound') and step == CONNECT):
                return PgOpsError('%s: bucket %s does not exist at %s: create it (with Object Lock enabled if you '
                                  'use object_lock_mode) or fix bucket' % (what, bucket, where), step=CONNECT)
            if code in ('AccessDenied', '403', 'Forbidden'):
                return PgOpsError('%s: access denied by %s for bucket %s (HTTP %s): the credentials lack a '
                                  'permission (see docs/offsite.md for the least-privilege policy)'
                                  % (what, where, bucket, status), step=step)
            return PgOpsError('%s: S3 error %s (HTTP %s): %s' % (what, code, status, err.get('Message') or ''),
                              step=step)
        if isinstance(e, bexc.BotoCoreError):
            return PgOpsError('%s: %s' % (what, e), step=step)
    return PgOpsError('%s: %s' % (what, e), step=step)


def _client_code(e):
    if HAS_BOTO3 and isinstance(e, bexc.ClientError):
        return str((e.response.get('Error') or {}).get('Code') or '')
    return ''


# -- connection -----------------------------------------------------------------------------------------------
class Remote(object):
    """A bucket + prefix reached through one boto3 client; every call raises PgOpsError on failure."""

    def __init__(self, p):
        self.bucket = p['bucket']
        self.prefix = clean_prefix(p.get('prefix'))
        self.endpoint = p.get('endpoint_url') or None
        self.storage_class = p.get('storage_class') or None
        self.request_checksums = p.get('request_checksums', True)
        kwargs = {}
        if p.get('access_key') or p.get('secret_key'):
            kwargs.update(aws_access_key_id=p.get('access_key'), aws_secret_access_key=p.get('secret_key'))
            if p.get('session_token'):
                kwargs['aws_session_token'] = p['session_token']
        if p.get('profile'):
            kwargs['profile_name'] = p['profile']
        cfg = dict(connect_timeout=p.get('connect_timeout') or 5, read_timeout=p.get('read_timeout') or 60,
                   retries={'max_attempts': p.get('retries') or 3, 'mode': 'standard'},
                   s3={'addressing_style': p.get('addressing_style') or ('path' if self.endpoint else 'auto')})
        if not self.request_checksums:
            # S3-compatibles that reject the flexible checksums (x-amz-checksum-*, aws-chunked trailers)
            cfg.update(request_checksum_calculation='when_required', response_checksum_validation='when_required')
        try:
            session = boto3.session.Session(**kwargs)
            self.client = session.client('s3', endpoint_url=self.endpoint, region_name=p.get('region') or None,
                                         verify=p.get('validate_certs', True), config=Config(**cfg))
        except Exception as e:
            raise explain(e, 'cannot set up the S3 client', self.bucket, self.endpoint)

    def call(self, what, fn, step=LIST, **kwargs):
        try:
            return fn(**kwargs)
        except Exception as e:
            raise explain(e, what, self.bucket, self.endpoint, step)

    def check_object_lock(self):
        """Fail before anything is uploaded when the bucket cannot take Object Lock settings."""
        try:
            conf = self.client.get_object_lock_configuration(Bucket=self.bucket)
        except Exception as e:
            if _client_code(e) in ('ObjectLockConfigurationNotFoundError', 'ObjectLockConfigurationNotFound',
                                   'InvalidRequest', 'NoSuchObjectLockConfiguration'):
                conf = {}
            else:
                raise explain(e, 'cannot read the Object Lock configuration of bucket %s' % self.bucket,
                              self.bucket, self.endpoint, CONNECT)
        if (conf.get('ObjectLockConfiguration') or {}).get('ObjectLockEnabled') != 'Enabled':
            raise PgOpsError('bucket %s does not have Object Lock enabled, so object_lock_mode cannot be set on its '
                             'objects: Object Lock is enabled when a bucket is created (ObjectLockEnabledForBucket, '
                             '"mc mb --with-lock"); use such a bucket, or drop object_lock_mode' % self.bucket,
                             step=CONNECT)

    def check_bucket(self):
        # a LIST, not a HEAD: its error body tells wrong credentials (SignatureDoesNotMatch, InvalidAccessKeyId)
        # from a missing permission (AccessDenied) and a missing bucket (NoSuchBucket); HEAD says only 403/404
        self.call('cannot open bucket %s' % self.bucket, self.client.list_objects_v2, CONNECT, Bucket=self.bucket,
                  Prefix=self.db_prefix(), MaxKeys=1)

    def db_prefix(self, database=None):
        base = self.prefix + '/' if self.prefix else ''
        return base + (db_slug(database) + '/' if database is not None else '')

    def list_objects(self, database=None):
        """Every object under the prefix (or one database's), as dicts with Key, Size, LastModified."""
        out = []
        kwargs = dict(Bucket=self.bucket, Prefix=self.db_prefix(database))
        while True:
            page = self.call('cannot list bucket %s' % self.bucket, self.client.list_objects_v2, LIST, **kwargs)
            out.extend(page.get('Contents') or [])
            if not page.get('IsTruncated'):
                return out
            kwargs['ContinuationToken'] = page['NextContinuationToken']

    def get_json(self, key):
        body = self.call('cannot read %s' % key, self.client.get_object, LIST, Bucket=self.bucket,
                         Key=key)['Body'].read()
        return json.loads(body.decode('utf-8'))

    def head(self, key, checksums=False):
        kwargs = dict(Bucket=self.bucket, Key=key)
        if checksums and self.request_checksums:
            kwargs['ChecksumMode'] = 'ENABLED'
        try:
            return self.client.head_object(**kwargs)
        except Exception as e:
            if _client_code(e) in ('404', 'NoSuchKey', 'NotFound'):
                return None
            raise explain(e, 'cannot read the object %s' % key, self.bucket, self.endpoint, LIST)


def full_object_sha256(head):
    """The store's SHA-256 of the whole object from a HEAD/GET (base64), or None: absent, or the checksum of
    checksums of a multipart upload (``...-<parts>``, ``ChecksumType: COMPOSITE``), which no sha256 equals."""
    value = (head or {}).get('ChecksumSHA256')
    if not value or '-' in value or (head.get('ChecksumType') or 'FULL_OBJECT') != 'FULL_OBJECT':
        return None
    return value


def copy_damage(c):
    """Why a copy is damaged - its data object is not what its metadata object records - or None when nothing
    known says so. Pure: reads the listing (``data_present``, ``remote_size``) and, when the data object was
    read with a HEAD (``head``), the store's full-object SHA-256 and ``x-amz-meta-sha256`` where the store
    kept them (a store that keeps no user metadata gives no verdict here, nor does a multipart checksum)."""
    key = c.get('key')
    if not c.get('data_present'):
        return 'the data object %s is missing' % key
    size, sha = c.get('size'), c.get('sha256')
    head = c.get('head') or {}
    remote_size = head.get('ContentLength', c.get('remote_size'))
    if size is not None and remote_size != size:
        return 'the data object %s holds %s bytes, its metadata says %s' % (key, remote_size, size)
    s3sum = full_object_sha256(head)
    if sha and s3sum and s3sum != hex_to_b64(sha):
        return "the store's SHA-256 checksum of the data object %s is %s, its metadata's sha256 %s is %s" \
            % (key, s3sum, sha, hex_to_b64(sha))
    user = (head.get('Metadata') or {}).get('sha256')
    if sha and user and user != sha:
        return 'the data object %s carries x-amz-meta-sha256 %s, its metadata says %s' % (key, user, sha)
    return None


# the keys remote_catalog and the checks add to a copy's metadata: never written into a local metadata file
REMOTE_KEYS = ('meta_key', 'key', 'data_present', 'remote_size', 'last_modified', 'meta_path', 'head')


def damage_warning(remote, c, damage, what):
    return 'copy %s of %s in bucket %s is damaged (%s): %s' % (c['id'], c['database'], remote.bucket, damage, what)


def head_copies(remote, copies):
    """HEAD the data object of each copy (with checksums when allowed), several at a time: sets ``head``; an
    object gone since the listing is no longer ``data_present``."""
    todo = [c for c in copies if c.get('data_present')]
    if not todo:
        return
    with ThreadPoolExecutor(max_workers=min(HEAD_WORKERS, len(todo))) as pool:
        heads = list(pool.map(lambda c: remote.head(c['key'], checksums=True), todo))
    for c, head in zip(todo, heads):
        if head is None:
            c.update(data_present=False, remote_size=None)
        c['head'] = head


def remote_catalog(remote, database=None, server=None):
    """(copies, unfinished, warnings) under the prefix (of ``database`` alone when given; of ``server`` - its own
    and those whose server cannot be told, see _server.of_server - when given). A copy is a metadata object (its
    JSON, plus ``key``, ``meta_key``, ``remote_size``, ``last_modified``) whose data object exists or not
    (``data_present``); unfinished are data objects no metadata object names. Both layouts are read: the
    server's level (0.5.0) and the 0.4.0 one without it."""
    objects = remote.list_objects()
    by_key = dict((o['Key'], o) for o in objects)
    want_db = db_slug(database) if database is not None else None
    want_server = server_slug(server) if server else None

    def wanted(key):
        place = key_place(remote.prefix, key)
        return bool(place) and want_db in (None, place[1]) and (want_server is None or place[0] in (None, want_server))
    copies, warnings, named = [], [], set()
    for o in objects:
        key = o['Key']
        if not key.endswith(catalog.META_SUFFIX) or not wanted(key):
            continue
        try:
            meta = remote.get_json(key)
            if not isinstance(meta, dict) or 'id' not in meta or 'database' not in meta or not meta.get('file'):
                raise ValueError('not a pgops backup metadata record')
            if not retention.safe_file_name(meta['file']):
                raise ValueError('file %r is not a plain name' % meta['file'])
        except (ValueError, UnicodeDecodeError) as e:
            warnings.append('%s: %s' % (key, e))
            continue
        data_key = key.rsplit('/', 1)[0] + '/' + meta['file'] if '/' in key else meta['file']
        named.add(data_key)
        data = by_key.get(data_key)
        meta.update(meta_key=key, key=data_key, data_present=data is not None,
                    remote_size=data['Size'] if data else None, last_modified=_iso(o.get('LastModified')),
                    meta_path=key)
        meta.pop('path', None)
        if database is not None and meta['database'] != database:
            continue    # a database whose name escapes to the same slug: not this one
        copies.append(meta)
    if server:
        copies = of_server(copies, server)
    unfinished = [dict(key=o['Key'], size=o['Size'], last_modified=_iso(o.get('LastModified')),
                       last_modified_dt=o.get('LastModified'))
                  for o in objects if o['Key'] not in named and is_dump_key(remote.prefix, o['Key'])
                  and wanted(o['Key'])]
    copies.sort(key=lambda m: (catalog.backup_time(m) or catalog.EPOCH, m['id']), reverse=True)
    return copies, unfinished, warnings


def _iso(when):
    return when.isoformat() if hasattr(when, 'isoformat') else when


# -- push -----------------------------------------------------------------------------------------------------
def select_for_push(entries, policy='weekly', kinds=None, databases=None):
    """The local backups the policy selects, newest first. Pure.

    ``weekly``: per server and database, the newest verified successful backup of each ISO week (local calendar) among
    ``kinds`` (default ``full``). ``all``: every successful backup among ``kinds`` (default: all kinds).
    Directory-format backups are left out (returned second, with the reason): a directory is not one object.
    """
    if policy not in POLICIES:
        raise PgOpsError('policy must be one of %s, got %r' % (', '.join(POLICIES), policy), step=OPTIONS)
    if kinds is None:
        kinds = ['full'] if policy == 'weekly' else list(catalog.KINDS)
    chosen, skipped, seen = [], [], set()
    for m in entries:   # newest first
        if m.get('status') != 'success' or not m.get('file') or m.get('kind') not in kinds:
            continue
        if databases is not None and m.get('database') not in databases:
            continue
        if policy == 'weekly':
            if not catalog.is_verified(m):
                continue
            when = catalog.backup_time(m)
            if when is None:
                continue
            bucket = (server_of(m), m['database'], retention.local_buckets(when)['weekly'])
            if bucket in seen:
                continue
            seen.add(bucket)
        if m.get('format') == 'directory':
            skipped.append((m, 'directory-format backups are not copied off-site (use format custom or plain)'))
            continue
        chosen.append(m)
    return chosen, skipped


def linked_globals(selected, entries):
    """The globals dumps (``@globals``) that the selected database backups link (their metadata's ``globals``:
    ``{id, file, sha256}``, the pg_dumpall --globals-only of the same pg_backup run) and that the selection
    does not hold yet, whatever the policy: a database backup restored elsewhere needs its roles. Pure.
    Returns (linked entries, warnings for links that name no successful globals dump of the catalog)."""
    have = set(id(m) for m in selected)
    linked, warnings = [], []
    for m in selected:
        link = m.get('globals')
        if not isinstance(link, dict) or not link.get('file'):
            continue
        found = [e for e in entries if e.get('database') == catalog.GLOBALS and e.get('file') == link['file']
                 and e.get('status') == 'success' and link.get('id') in (None, e.get('id'))
                 and server_of(e) in (server_of(m), None)]
        if not found:
            warnings.append('the globals dump %s (id %s) linked from backup %s of %s is not in the catalog: not '
                            'pushed, so a restore from the bucket cannot recreate its roles'
                            % (link['file'], link.get('id'), m['id'], m['database']))
            continue
        g = found[0]
        if link.get('sha256') and g.get('sha256') != link['sha256']:
            warnings.append('the globals dump %s linked from backup %s of %s has sha256 %s, the link says %s: not '
                            'pushed' % (g['file'], m['id'], m['database'], g.get('sha256'), link['sha256']))
            continue
        if id(g) not in have:
            have.add(id(g))
            linked.append(g)
    return linked, warnings


def linked_by(selected):
    """``{globals file: 'globals of <database> <id>[, ...]'}`` for the reasons of linked globals dumps."""
    out = {}
    for m in selected:
        link = m.get('globals')
        if isinstance(link, dict) and link.get('file'):
            out.setdefault(link['file'], []).append('%s %s' % (m['database'], m['id']))
    return dict((k, 'globals of ' + ', '.join(v)) for k, v in out.items())


def push_keys(prefix, m):
    """``(key, meta_key)`` of a local backup's copy: under its own server (server_of its metadata)."""
    server = server_of(m)
    return object_key(prefix, m['database'], m['file'], server), object_key(prefix, m['database'], meta_name(m), server)


def plan_push(selected, remote_copies, remote_unfinished, prefix, bucket, endpoint):
    """``(meta, key, meta_key, action, reason)`` for each selected local backup. Pure.

    action: ``upload`` (not there, only an unfinished data object, or a damaged copy - see copy_damage),
    ``record`` (an intact copy exists, but the local metadata does not record it yet) or ``present``.
    Keys are under the backup's server. An intact copy of the same backup (same sha256) that 0.4.0 pushed
    without the server level is the backup's copy: not uploaded a second time.
    """
    complete = dict((c['meta_key'], c) for c in remote_copies)
    partial = set(u['key'] for u in remote_unfinished)
    out = []
    for m in selected:
        key, mkey = push_keys(prefix, m)
        copy = complete.get(mkey)
        if copy is None and server_of(m) is not None:
            old_key = object_key(prefix, m['database'], m['file'])
            old_mkey = object_key(prefix, m['database'], meta_name(m))
            old = complete.get(old_mkey)
            if old is not None and old.get('data_present') and old.get('sha256') == m.get('sha256') \
                    and server_of(old) in (server_of(m), None) and not copy_damage(old):
                key, mkey, copy = old_key, old_mkey, old     # the 0.4.0 copy of this very backup
        recorded = any(r.get('bucket') == bucket and r.get('key') == key and r.get('endpoint') == endpoint
                       for r in m.get('offsite') or [])
        damage = copy_damage(copy) if copy is not None and copy.get('data_present') else None
        if copy is not None and copy.get('data_present') and copy.get('sha256') == m.get('sha256') and not damage:
            out.append((m, key, mkey, 'present' if recorded else 'record',
                        'already in the bucket' if recorded else 'in the bucket, not yet recorded locally'))
        elif damage and copy.get('sha256') == m.get('sha256'):
            out.append((m, key, mkey, 'upload', 'the copy in the bucket is damaged (%s): upload again' % damage))
        elif copy is not None:
            out.append((m, key, mkey, 'upload', 'the copy in the bucket is incomplete or differs: upload again'))
        elif key in partial:
            out.append((m, key, mkey, 'upload', 'unfinished upload (data object without metadata): upload again'))
        else:
            out.append((m, key, mkey, 'upload', 'not in the bucket'))
    return out


def lock_args(mode, days, now=None):
    if not mode:
        return {}
    until = (now or now_utc()) + datetime.timedelta(days=days)
    return dict(ObjectLockMode=mode, ObjectLockRetainUntilDate=until)


def upload_backup(remote, meta, key, mkey, directory, p):
    """Data object first (multipart above ``multipart_threshold_mb``), checked by a HEAD, then the metadata
    object. Returns (version_id, seconds, user_metadata_kept).

    The HEAD check needs nothing the store may drop: the size always, the store's full-object SHA-256 when it
    gives one, ``x-amz-meta-sha256`` only when the store kept it (JuiceFS's gateway without --object-meta keeps
    no user metadata; the copy's sha256 is in its metadata object anyway)."""
    path = os.path.join(directory, meta['file'])
    try:
        size, digest = sha256_file(path)
    except (IOError, OSError) as e:
        raise PgOpsError('cannot read the backup %s: %s (was it rotated away meanwhile?)' % (path, e.strerror or e),
                         step=UPLOAD)
    if size != meta.get('size') or (meta.get('sha256') and digest != meta['sha256']):
        raise PgOpsError('local backup %s no longer matches its metadata (size %d/%s, sha256 %s/%s): not copied '
                         'off-site; check it with backup_info verify_checksums'
                         % (path, size, meta.get('size'), digest, meta.get('sha256')), step=CHECKSUM)
    extra = dict(Metadata={'sha256': digest, 'pgops-id': meta['id']}, **lock_args(p.get('object_lock_mode'),
                                                                                  p.get('object_lock_days')))
    if remote.storage_class:
        extra['StorageClass'] = remote.storage_class
    if remote.request_checksums:
        extra['ChecksumAlgorithm'] = 'SHA256'
    chunk = max(5, int(p.get('multipart_chunk_mb') or 64)) * MiB
    tconf = TransferConfig(multipart_threshold=chunk, multipart_chunksize=chunk, max_concurrency=4,
                           use_threads=True)
    started = time.time()
    try:
        with open(path, 'rb') as f:
            remote.client.upload_fileobj(f, remote.bucket, key, ExtraArgs=extra, Config=tconf)
    except Exception as e:
        raise explain(e, 'upload of %s to s3://%s/%s failed' % (path, remote.bucket, key), remote.bucket,
                      remote.endpoint, UPLOAD)
    seconds = time.time() - started
    head = remote.head(key, checksums=True)
    if head is None:
        raise PgOpsError('s3://%s/%s is missing right after its upload' % (remote.bucket, key), step=CHECK_UPLOAD)
    problems = []
    if head.get('ContentLength') != size:
        problems.append('size %s, local %d' % (head.get('ContentLength'), size))
    user_sha = (head.get('Metadata') or {}).get('sha256')
    if user_sha is not None and user_sha != digest:
        problems.append('x-amz-meta-sha256 %s, local %s' % (user_sha, digest))
    remote_sum = full_object_sha256(head)
    if remote_sum and remote_sum != hex_to_b64(digest):
        problems.append('ChecksumSHA256 %s, local %s' % (remote_sum, hex_to_b64(digest)))
    if problems:
        raise PgOpsError('s3://%s/%s does not match the local backup after upload (%s): the metadata object was '
                         'not written, so it stays an unfinished upload' % (remote.bucket, key, '; '.join(problems)),
                         step=CHECK_UPLOAD)
    with open(meta['meta_path'], 'rb') as f:
        body = f.read()
    mextra = dict(Bucket=remote.bucket, Key=mkey, Body=body, ContentType='application/json',
                  **lock_args(p.get('object_lock_mode'), p.get('object_lock_days')))
    if remote.storage_class:
        mextra['StorageClass'] = remote.storage_class
    if remote.request_checksums:
        mextra['ChecksumAlgorithm'] = 'SHA256'
    remote.call('cannot write the metadata object %s' % mkey, remote.client.put_object, UPLOAD, **mextra)
    return head.get('VersionId'), seconds, user_sha is not None


def record_offsite(directory, meta, record, lock_timeout):
    """Append an off-site copy to the backup's local metadata (atomically, under the database's backup lock)."""
    with DirLock(os.path.join(directory, catalog.lock_name(meta['database'])), lock_timeout,
                 'database %s in %s' % (meta['database'], directory)):
        with open(meta['meta_path'], 'rb') as f:
            current = json.loads(f.read().decode('utf-8'))
        copies = [r for r in current.get('offsite') or [] if not (
            r.get('bucket') == record['bucket'] and r.get('key') == record['key']
            and r.get('endpoint') == record['endpoint'])]
        current['offsite'] = copies + [record]
        st = os.stat(meta['meta_path'])
        write_json_atomic(meta['meta_path'], current, st.st_uid, st.st_gid)


def push(remote, p, check_mode):
    directory = p['path']
    try:
        entries, warnings = catalog.load_catalog(directory)
    except OSError as e:
        raise PgOpsError('cannot read the backup directory %s (path): %s' % (directory, e), step=PLAN)
    if not os.path.isdir(directory):
        warnings.append('the backup directory %s (path) does not exist: nothing to push' % directory)
    if p.get('server'):
        entries = of_server(entries, p['server'])   # that server's backups (and those whose server cannot be told)
    selected, skipped = select_for_push(entries, p.get('policy') or 'weekly', p.get('kinds'), p.get('databases'))
    linked, lwarn = linked_globals(selected, entries)
    why_linked = linked_by(selected)
    selected = selected + linked
    if p.get('object_lock_mode'):
        remote.check_object_lock()
    copies, unfinished, rwarn = remote_catalog(remote)
    wanted = set(push_keys(remote.prefix, m)[1] for m in selected) \
        | set(object_key(remote.prefix, m['database'], meta_name(m)) for m in selected)    # 0.4.0 layout too
    head_copies(remote, [c for c in copies if c['meta_key'] in wanted])     # size, checksum: is it intact?
    plan = plan_push(selected, copies, unfinished, remote.prefix, remote.bucket, remote.endpoint)
    result = dict(pushed=[], recorded=[], present=[], warnings=warnings + lwarn + rwarn,
                  skipped=[dict(id=m['id'], database=m['database'], reason=why) for m, why in skipped])
    by_meta_key = dict((c['meta_key'], c) for c in copies)
    for m, key, mkey, action, reason in plan:
        if reason.startswith('the copy in the bucket is damaged'):
            result['warnings'].append(damage_warning(remote, by_meta_key[mkey], copy_damage(by_meta_key[mkey]),
                                                     'not counted as a copy; %s' % (
                                                         'to be uploaded again' if check_mode else 'uploaded again')))
    dropped = []
    todo = [x for x in plan if x[3] != 'present']
    result['changed'] = bool(todo)
    total_bytes, total_seconds = 0, 0.0
    for m, key, mkey, action, reason in plan:
        if m['database'] == catalog.GLOBALS and m.get('file') in why_linked:
            reason = '%s: %s' % (why_linked[m['file']], reason)
        item = dict(database=m['database'], server=server_of(m), id=m['id'], kind=m.get('kind'), key=key,
                    meta_key=mkey, size=m.get('size'), reason=reason)
        if action == 'present':
            result['present'].append(item)
            continue
        version = None
        if not check_mode:
            if action == 'upload':
                version, seconds, kept = upload_backup(remote, m, key, mkey, directory, p)
                if not kept:
                    dropped.append(key)
                item['seconds'] = round(seconds, 3)
                item['bytes_per_second'] = int((m.get('size') or 0) / max(seconds, 0.001))
                total_bytes += m.get('size') or 0
                total_seconds += seconds
            else:
                head = remote.head(key)
                version = head.get('VersionId') if head else None
            record = dict(bucket=remote.bucket, key=key, version_id=version, endpoint=remote.endpoint,
                          at=catalog.iso(datetime.datetime.now().astimezone()))
            if p.get('object_lock_mode') and action == 'upload':
                record['object_lock'] = dict(mode=p['object_lock_mode'], days=p['object_lock_days'])
            try:
                record_offsite(directory, m, record, p.get('lock_timeout') or 60)
            except (IOError, OSError, ValueError) as e:
                raise PgOpsError('copied %s to s3://%s/%s but cannot record it in %s: %s'
                                 % (m['id'], remote.bucket, key, m['meta_path'], e), step=RECORD)
            item['version_id'] = version
        (result['pushed'] if action == 'upload' else result['recorded']).append(item)
    if total_seconds:
        result['bytes_per_second'] = int(total_bytes / max(total_seconds, 0.001))
    if dropped:
        result['warnings'].append(
            NO_USER_METADATA + '%d uploaded object(s) came back without x-amz-meta-sha256 and x-amz-meta-pgops-id '
            '(first: s3://%s/%s). Nothing depends on them: each copy was checked by its size (and the store\'s '
            'SHA-256 checksum where it gave one), and its sha256 is in its metadata object, which push, rotation, '
            'state verified and fetch check. To keep them (a JuiceFS gateway: --object-meta), see docs/offsite.md'
            % (len(dropped), remote.bucket, dropped[0]))
    return result


# -- fetch ----------------------------------------------------------------------------------------------------
def fetch_temp_re(chosen):
    """The temporary names a fetch of this copy writes (temp_name): ``.<file>.tmp-<pid>`` and
    ``.<stem>.meta.json.tmp-<pid>``."""
    names = (chosen['file'], chosen['meta_key'].rsplit('/', 1)[-1])
    return re.compile(r'^\.(?:%s)%s\d+$' % ('|'.join(re.escape(n) for n in names), re.escape(TMP_MARK)))


def stale_temp_names(dest, name_re):
    """Read-only (check mode): the names remove_dead_temp_files would consider, their writer gone."""
    try:
        names = os.listdir(dest)
    except OSError:
        return []
    return sorted(n for n in names if name_re.match(n) and temp_writer_pid(n) not in (None, os.getpid())
                  and not pid_alive(temp_writer_pid(n)))


def fetch(remote, p, check_mode):
    """One database backup (``backup_id``, ``latest``, ``latest_verified``) into ``dest``, and the globals dump
    its metadata links (``globals``), fetched FIRST: once the database backup's metadata is in ``dest``, so are
    its roles."""
    database = p.get('database')
    backup_id = p.get('backup_id') or 'latest'
    every, unfinished, warnings = remote_catalog(remote, database)
    server = fetch_server(remote, every, database, p.get('server'))
    copies = of_server(every, server) if server else every
    usable = [c for c in copies if c.get('data_present')]
    intact = usable
    if backup_id in catalog.CHOOSERS:
        # latest / latest_verified: the newest copy that is a copy, never one known to be damaged; a copy named
        # by its id is tried, and its download checked
        intact = [c for c in usable if not copy_damage(c)]
    try:
        chosen = catalog.backup_candidates(intact, database=database, backup_id=backup_id)[0]
    except catalog.CatalogError as e:
        try:
            newest = catalog.backup_candidates(usable, database=database, backup_id=backup_id)[0]
        except catalog.CatalogError:
            newest = None
        where = 's3://%s/%s%s' % (remote.bucket, remote.db_prefix(), ' for server %s' % server if server else '')
        if newest is not None:   # only damaged copies to choose from
            raise PgOpsError('no intact copy of database %s in %s for %s: the newest, s3://%s/%s, is '
                             'damaged or was tampered with (%s; its metadata records sha256 %s); nothing was '
                             'fetched' % (database, where, backup_id, remote.bucket, newest['key'],
                                          copy_damage(newest), newest.get('sha256')), step=CHECKSUM)
        msg = 'in %s: %s' % (where, e)
        elsewhere = sorted(set(server_of(c) for c in every if c not in copies and c.get('data_present')
                               and c.get('status') == 'success'
                               and (backup_id in catalog.CHOOSERS or c.get('id') == backup_id)) - set([None]))
        if elsewhere:
            msg += ('; %s of database %s exists for server %s: another server\'s copy is fetched only when named '
                    'by server' % ('backup %s' % backup_id if backup_id not in catalog.CHOOSERS else 'a copy',
                                   database, ', '.join(elsewhere)))
        raise PgOpsError(msg, step=PLAN)
    good = set(id(c) for c in intact)
    for c in usable:
        if id(c) not in good and catalog.backup_time(c) and catalog.backup_time(c) > catalog.backup_time(chosen):
            warnings.append(damage_warning(remote, c, copy_damage(c), 'not fetched; %s %s is the newest intact copy'
                                           % (backup_id, chosen['id'])))
    link = chosen.get('globals') if isinstance(chosen.get('globals'), dict) else None
    gresult = None
    if link and link.get('file'):
        gresult, gwarn = fetch_linked_globals(remote, p, chosen, link, check_mode)
        warnings += gwarn
    result = fetch_copy(remote, p, chosen, check_mode)
    result['warnings'] = warnings + result.get('warnings', [])
    result['globals'] = gresult
    result['server'] = server_of(chosen)
    if gresult is not None:
        result['changed'] = bool(result['changed'] or gresult.get('changed'))
        result['removed_temp_files'] = gresult.pop('removed_temp_files', []) + result['removed_temp_files']
    return result


def fetch_server(remote, copies, database, server):
    """The server whose copies of ``database`` a fetch chooses from: ``server``; unset, the one server whose
    copies the bucket holds (None when none of them names a server). Copies of several servers and no
    ``server``: refused, naming them - never a silent pick of another server's data."""
    if server:
        return server
    servers = sorted(set(server_of(c) for c in copies) - set([None]))
    if len(servers) > 1:
        raise PgOpsError('s3://%s/%s holds copies of database %s from several servers (%s): set server to the one '
                         'whose copy to fetch (pgops_server; in the disaster_recovery role '
                         'disaster_recovery_source_server to restore another server\'s on purpose)'
                         % (remote.bucket, remote.db_prefix(), database, ', '.join(servers)), step=OPTIONS)
    return servers[0] if servers else None


def fetch_linked_globals(remote, p, chosen, link, check_mode):
    """Fetch the globals dump that ``chosen`` links, checked like any fetch. Returns (result, warnings); a link
    to a dump the bucket does not hold (never pushed, rotated away) is a warning: the database backup may need
    no role of its own, and a restore says which roles are missing."""
    gcopies, dummy, gwarn = remote_catalog(remote, catalog.GLOBALS, server_of(chosen))
    found = [c for c in gcopies if c.get('file') == link['file'] and link.get('id') in (None, c.get('id'))]
    found.sort(key=lambda c: (c.get('sha256') != link.get('sha256'), server_of(c) is None))   # its own first
    base = dict(backup_id=link.get('id'), file=link['file'], sha256=link.get('sha256'))
    if not found or not found[0].get('data_present'):
        what = 'its data object is missing' if found else 'it is not in the bucket'
        return dict(base, status='missing', changed=False), gwarn + [
            'the globals dump %s (id %s) that backup %s of %s links was not fetched: %s (s3://%s/%s); a restore '
            'from %s cannot recreate roles the server lacks' % (link['file'], link.get('id'), chosen['id'],
                                                                chosen['database'], what, remote.bucket,
                                                                remote.db_prefix(), p['dest'])]
    g = found[0]
    if link.get('sha256') and g.get('sha256') != link['sha256']:
        raise PgOpsError('the globals copy s3://%s/%s is not the globals dump that backup %s of %s links: its '
                         'sha256 is %s, the link says %s; nothing was fetched'
                         % (remote.bucket, g['key'], chosen['id'], chosen['database'], g.get('sha256'),
                            link['sha256']), step=CHECKSUM)
    damage = copy_damage(g)
    if damage:
        raise PgOpsError('the globals dump that backup %s of %s links is damaged in the bucket: %s; nothing was '
                         'fetched' % (chosen['id'], chosen['database'], damage), step=CHECKSUM)
    out = fetch_copy(remote, p, g, check_mode)
    gwarn += out.pop('warnings', [])
    out.update(status='fetched' if out['changed'] else 'present')
    return out, gwarn


def fetch_copy(remote, p, chosen, check_mode):
    """Download one copy into ``dest``: temporary name, fsync, size and sha256 checked, rename, then its
    metadata (last). Under the database's lock, the temporary files of this copy left by dead fetches go."""
    dest = p['dest']
    final = os.path.join(dest, chosen['file'])
    final_meta = os.path.join(dest, chosen['meta_key'].rsplit('/', 1)[-1])
    result = dict(backup_id=chosen['id'], database=chosen['database'], key=chosen['key'],
                  meta_key=chosen['meta_key'], path=final, meta_path=final_meta, size=chosen.get('size'),
                  sha256=chosen.get('sha256'), removed_temp_files=[])
    if not chosen.get('sha256'):
        raise PgOpsError('the metadata object %s records no sha256: refusing to fetch an unverifiable copy'
                         % chosen['meta_key'], step=CHECKSUM)
    have_data = False
    if os.path.lexists(final):
        size, digest = sha256_file(final) if os.path.isfile(final) else (None, None)
        if digest != chosen['sha256']:
            raise PgOpsError('%s already exists and is not this backup (sha256 %s, the copy says %s): not '
                             'overwritten; fetch into another dest or move it away' % (final, digest, chosen['sha256']),
                             step=PLAN)
        have_data = True   # when the metadata is missing: a fetch stopped between the dump and its metadata
    done = have_data and os.path.isfile(final_meta)
    temp_re = fetch_temp_re(chosen)
    if check_mode:
        stale = [os.path.join(dest, n) for n in stale_temp_names(dest, temp_re)]
        result.update(changed=bool(not done or stale), removed_temp_files=stale)
        if done:
            result['msg'] = 'already in %s' % dest
        return result
    if done and not stale_temp_names(dest, temp_re):
        result.update(changed=False, msg='already in %s' % dest)
        return result
    ensure_dir(dest)
    with DirLock(os.path.join(dest, catalog.lock_name(chosen['database'])), p.get('lock_timeout') or 60,
                 'database %s in %s' % (chosen['database'], dest)):
        removed, errors = remove_dead_temp_files(dest, temp_re)
        result['removed_temp_files'] = [os.path.join(dest, n) for n in removed]
        result.setdefault('warnings', []).extend(errors)
        result['changed'] = bool(removed) or not done
        if done:
            result['msg'] = 'already in %s' % dest
            return result
        if not have_data:
            size, seconds = _download_checked(remote, chosen, final, dest)
            result.update(seconds=round(seconds, 3), bytes_per_second=int(size / max(seconds, 0.001)))
        meta = dict((k, v) for k, v in chosen.items() if k not in REMOTE_KEYS)
        meta['fetched_from'] = dict(bucket=remote.bucket, key=chosen['key'], endpoint=remote.endpoint,
                                    at=catalog.iso(datetime.datetime.now().astimezone()))
        write_json_atomic(final_meta, meta)     # last: the commit marker of the local catalog
    return result


def _download_checked(remote, chosen, final, dest):
    """Download to a temporary name, fsync, check size and sha256, rename into place. Returns (size, seconds)."""
    tmp = temp_name(final)
    started = time.time()
    try:
        try:
            with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE), 'wb') as f:
                remote.client.download_fileobj(remote.bucket, chosen['key'], f)
                f.flush()
                os.fsync(f.fileno())
        except Exception as e:
            raise explain(e, 'download of s3://%s/%s failed' % (remote.bucket, chosen['key']), remote.bucket,
                          remote.endpoint, DOWNLOAD)
        seconds = time.time() - started
        size, digest = sha256_file(tmp)
        if size != chosen.get('size') or digest != chosen['sha256']:
            raise PgOpsError('s3://%s/%s is damaged or was tampered with: %d bytes with sha256 %s, its metadata '
                             'says %s bytes with sha256 %s; nothing was written to %s'
                             % (remote.bucket, chosen['key'], size, digest, chosen.get('size'),
                                chosen['sha256'], dest), step=CHECKSUM)
        os.replace(tmp, final)
    except BaseException:
        remove_tree(tmp)
        raise
    fsync_dir(dest)
    return size, seconds


# -- list -----------------------------------------------------------------------------------------------------
def copy_summary(c):
    damage = copy_damage(c)
    return dict(database=c['database'], server=server_of(c), id=c['id'], kind=c.get('kind'), label=c.get('label'),
                key=c['key'], meta_key=c['meta_key'], size=c.get('size'), sha256=c.get('sha256'), started_at=c.get('started_at'),
                verified=catalog.is_verified(c), data_present=c['data_present'], remote_size=c['remote_size'],
                complete=bool(c['data_present'] and c['remote_size'] == c.get('size')),
                damaged=damage is not None, damage=damage, last_modified=c['last_modified'])


def listed(remote, p):
    copies, unfinished, warnings = remote_catalog(remote, p.get('database'), p.get('server'))
    head_copies(remote, copies)
    summaries = [copy_summary(c) for c in copies]
    damaged = [x for x in summaries if x['damaged']]
    warnings += [damage_warning(remote, x, x['damage'], 'not counted as a copy: push it again, or run state verified')
                 for x in damaged]
    return dict(changed=False, copies=summaries, damaged=damaged,
                unfinished=[dict((k, v) for k, v in u.items() if k != 'last_modified_dt') for u in unfinished],
                warnings=warnings)


# -- rotate ---------------------------------------------------------------------------------------------------
def lock_state(head, now):
    """Why an object cannot be deleted (retention date ahead, legal hold), or None."""
    if not head:
        return None
    if head.get('ObjectLockLegalHoldStatus') == 'ON':
        return 'legal hold'
    until = head.get('ObjectLockRetainUntilDate')
    if head.get('ObjectLockMode') and until and until > now:
        until = until.astimezone(datetime.timezone.utc).isoformat(timespec='seconds')
        return 'object lock %s until %s' % (head['ObjectLockMode'], until)
    return None


def plan_remote_rotation(copies, unfinished, now, policy, locks):
    """Decisions over the bucket. Pure: ``locks`` maps a key to why it cannot be deleted.

    Returns (decisions, orphans): decisions ``(copy, action, reason)`` from retention.plan_database per server
    and database (the same protections as backup_rotate: two servers' copies never protect, nor fail to protect,
    each other's), a delete turned into ``keep`` when either object is locked; orphans ``(unfinished, action,
    reason)``.

    A damaged copy (copy_damage) is no copy: it is never one of the ``min_keep`` newest nor the newest verified,
    and goes by age like a copy whose data object is gone. A globals copy that a kept database copy links
    (``globals``) is kept with it: that copy's roles.
    """
    groups = {}
    for c in copies:
        groups.setdefault((server_of(c) or '', c['database']), []).append(c)
    decisions = []
    for group in sorted(groups):
        mine = groups[group]
        damage = dict((id(c), copy_damage(c)) for c in mine if c.get('data_present'))
        present = set(c['file'] for c in mine if c.get('data_present') and not damage[id(c)])
        for c, action, reason in retention.plan_database(mine, now, policy, present=present):
            if damage.get(id(c)):
                reason = 'damaged (%s); %s' % (damage[id(c)], reason.replace('dump missing; ', '', 1))
            decisions.append((c, action, reason))
    needed = {}
    for c, action, reason in decisions:
        link = c.get('globals')
        if action == 'keep' and c['database'] != catalog.GLOBALS and isinstance(link, dict) and link.get('file'):
            needed.setdefault(link['file'], []).append((server_of(c), '%s %s' % (c['database'], c['id'])))
    for i, (c, action, reason) in enumerate(decisions):
        if c['database'] == catalog.GLOBALS and action == 'delete' and c.get('file') in needed:
            # the globals of a kept copy of the same server (a globals copy of no known server: of any)
            mine = [what for server, what in needed[c['file']] if None in (server_of(c), server)
                    or server == server_of(c)]
            if mine:
                decisions[i] = (c, 'keep', 'globals of %s; %s' % (', '.join(mine), reason))
    for i, (c, action, reason) in enumerate(decisions):
        lock = locks.get(c['key']) or locks.get(c['meta_key'])
        if action == 'delete' and lock:
            decisions[i] = (c, 'keep', 'locked (%s); %s' % (lock, reason))
    orphans = []
    limit = policy['orphan_age_hours'] * 3600.0
    for u in unfinished:
        when = u.get('last_modified_dt')
        age = (now - when).total_seconds() if when else 0
        if age <= limit:
            orphans.append((u, 'keep', 'unfinished upload %.1fh old <= orphan_age_hours %g'
                            % (age / 3600.0, policy['orphan_age_hours'])))
        elif locks.get(u['key']):
            orphans.append((u, 'keep', 'unfinished upload, locked (%s)' % locks[u['key']]))
        else:
            orphans.append((u, 'delete', 'unfinished upload %.1fh old > orphan_age_hours %g'
                            % (age / 3600.0, policy['orphan_age_hours'])))
    return decisions, orphans


def _versions(remote, key):
    """Version ids of exactly ``key`` (delete markers included), in a versioned bucket."""
    out, kwargs = [], dict(Bucket=remote.bucket, Prefix=key)
    while True:
        page = remote.call('cannot list the versions of %s' % key, remote.client.list_object_versions, DELETE,
                           **kwargs)
        for v in (page.get('Versions') or []) + (page.get('DeleteMarkers') or []):
            if v.get('Key') == key and v.get('VersionId') not in (None, 'null'):
                out.append(v['VersionId'])
        if not page.get('IsTruncated'):
            return out
        kwargs.update(KeyMarker=page.get('NextKeyMarker'), VersionIdMarker=page.get('NextVersionIdMarker'))


def delete_object(remote, key, head):
    """Delete ``key``. In a versioned bucket every version of it (a plain DELETE would only hide the data behind
    a delete marker, and deleting the current version alone would bring back an older upload). Raises
    PgOpsError naming the key."""
    what = 'cannot delete s3://%s/%s' % (remote.bucket, key)
    if head and head.get('VersionId') not in (None, 'null'):
        versions = _versions(remote, key)
        current = head['VersionId']
        for version in [current] + [v for v in versions if v != current]:
            remote.call(what + ' (version %s)' % version, remote.client.delete_object, DELETE, Bucket=remote.bucket,
                        Key=key, VersionId=version)
    else:
        remote.call(what, remote.client.delete_object, DELETE, Bucket=remote.bucket, Key=key)


def rotate(remote, p, check_mode):
    policy = retention.make_policy(max_age_days=p.get('max_age_days'), older_than_days=p.get('older_than_days'),
                                   keep_daily=p.get('keep_daily'), keep_weekly=p.get('keep_weekly'),
                                   keep_monthly=p.get('keep_monthly'), min_keep=p.get('min_keep'),
                                   orphan_age_hours=p.get('orphan_age_hours'))
    now = now_utc()
    copies, unfinished, warnings = remote_catalog(remote, p.get('database'), p.get('server'))
    if p.get('databases') is not None:
        copies = [c for c in copies if c['database'] in p['databases']]
    # every data object's HEAD (is the copy intact?), a first pass without locks, then HEAD the other objects
    # that would go (read-only: check mode sees the same)
    head_copies(remote, copies)
    decisions, orphans = plan_remote_rotation(copies, unfinished, now, policy, {})
    heads, locks = {}, {}
    for c, action, dummy in decisions:
        if action == 'delete':
            if c.get('data_present'):
                heads[c['key']] = c.get('head')
            heads[c['meta_key']] = remote.head(c['meta_key'])
    for u, action, dummy in orphans:
        if action == 'delete':
            heads[u['key']] = remote.head(u['key'])
    for key, head in heads.items():
        why = lock_state(head, now)
        if why:
            locks[key] = why
    decisions, orphans = plan_remote_rotation(copies, unfinished, now, policy, locks)
    result = dict(deleted=[], kept=[], locked=[], orphans_removed=[], warnings=warnings, bytes_freed=0)
    for c, action, reason in decisions:
        item = dict(copy_summary(c), action=action, reason=reason)
        if action == 'delete':
            result['deleted'].append(item)
            result['bytes_freed'] += c.get('remote_size') or 0
        else:
            result['kept'].append(item)
            if reason.startswith('locked'):
                result['locked'].append(item)
    for u, action, reason in orphans:
        if action == 'delete':
            result['orphans_removed'].append(dict(key=u['key'], size=u['size'], reason=reason))
            result['bytes_freed'] += u['size']
    for c, action, reason in decisions:
        damage = copy_damage(c) if c.get('data_present') else None
        if damage:
            result['warnings'].append(damage_warning(remote, c, damage, 'not counted as a copy; %s' % (
                ('to be deleted' if check_mode else 'deleted') if action == 'delete'
                else 'kept until it expires')))
    if result['locked']:
        result['warnings'].append('%d copies are past their retention but locked by S3 Object Lock: kept until '
                                  'their retention date (see locked)' % len(result['locked']))
    result['changed'] = bool(result['deleted'] or result['orphans_removed'])
    if check_mode:
        return result
    errors = []
    for c, action, reason in decisions:
        if action != 'delete':
            continue
        try:
            if c.get('data_present'):
                delete_object(remote, c['key'], heads.get(c['key']))
            delete_object(remote, c['meta_key'], heads.get(c['meta_key']))   # data first, metadata last
        except PgOpsError as e:
            errors.append('copy %s of %s: %s' % (c['id'], c['database'], e.msg))
    for u, action, reason in orphans:
        if action == 'delete':
            try:
                delete_object(remote, u['key'], heads.get(u['key']))
            except PgOpsError as e:
                errors.append('unfinished upload: %s' % e.msg)
    if errors:
        raise PgOpsError('; '.join(errors), step=DELETE, **result)
    return result


# -- verify ---------------------------------------------------------------------------------------------------
def _verdict(state, detail=None, checksum=None, method=None, bytes_read=0):
    return dict(integrity=state, integrity_detail=detail, checksum=checksum, checksum_method=method,
                bytes_read=bytes_read)


def verify_copy(remote, c, full_read=False):
    """Read one copy back: the data object's size (HEAD) always; its checksum by the store's full-object
    SHA-256 when it gives one and ``full_read`` is off (``s3_checksum_sha256``), else by reading the whole
    object and hashing it (``sha256_read``, the bytes counted too). The states are backup_info's."""
    if not c.get('data_present'):
        return _verdict(integrity.MISSING, 'the data object %s is missing' % c['key'])
    try:
        head = remote.head(c['key'], checksums=True)
    except PgOpsError as e:
        return _verdict(integrity.UNREADABLE, e.msg)
    if head is None:
        return _verdict(integrity.MISSING, 'the data object %s is missing' % c['key'])
    size, sha = c.get('size'), c.get('sha256')
    if size is None:
        return _verdict(integrity.UNCHECKED, 'the metadata object %s records no size' % c['meta_key'])
    if head.get('ContentLength') != size:
        return _verdict(integrity.SIZE_MISMATCH, 'the data object %s holds %s bytes, its metadata says %s'
                        % (c['key'], head.get('ContentLength'), size))
    if not sha:
        return _verdict(integrity.OK, 'the metadata object %s records no sha256: only the size was checked'
                        % c['meta_key'])
    s3sum = full_object_sha256(head)
    if s3sum and not full_read:
        if s3sum == hex_to_b64(sha):
            return _verdict(integrity.OK, None, 'passed', 's3_checksum_sha256')
        return _verdict(integrity.CHECKSUM_MISMATCH, "the store's SHA-256 checksum of %s is %s, its metadata's "
                        "sha256 %s is %s" % (c['key'], s3sum, sha, hex_to_b64(sha)), 'failed', 's3_checksum_sha256')
    digest, count = hashlib.sha256(), 0
    try:
        kwargs = dict(Bucket=remote.bucket, Key=c['key'])
        if head.get('VersionId') not in (None, 'null'):
            kwargs['VersionId'] = head['VersionId']     # the object the HEAD saw, not a newer upload
        body = remote.client.get_object(**kwargs)['Body']
        try:
            for chunk in body.iter_chunks(CHUNK):
                count += len(chunk)
                digest.update(chunk)
        finally:
            body.close()
    except Exception as e:
        return _verdict(integrity.UNREADABLE, explain(e, 'cannot read s3://%s/%s' % (remote.bucket, c['key']),
                                                      remote.bucket, remote.endpoint, DOWNLOAD).msg,
                        bytes_read=count)
    if count != size:
        return _verdict(integrity.SIZE_MISMATCH, 'reading the data object %s gave %d bytes, its metadata says %s'
                        % (c['key'], count, size), bytes_read=count)
    if digest.hexdigest() != sha:
        return _verdict(integrity.CHECKSUM_MISMATCH, 'sha256 of the data object %s is %s, its metadata says %s'
                        % (c['key'], digest.hexdigest(), sha), 'failed', 'sha256_read', count)
    return _verdict(integrity.OK, None, 'passed', 'sha256_read', count)


def verify(remote, p):
    """state verified: read back every copy under the prefix (or of ``database`` / ``databases``) - the
    bucket's counterpart of backup_info's verify_checksums. Read-only: the same in check mode."""
    copies, unfinished, warnings = remote_catalog(remote, p.get('database'), p.get('server'))
    if p.get('databases') is not None:
        copies = [c for c in copies if c['database'] in p['databases']]
    started = time.time()
    full_read = bool(p.get('full_read'))
    if copies:
        with ThreadPoolExecutor(max_workers=min(READ_WORKERS, len(copies))) as pool:
            verdicts = list(pool.map(lambda c: verify_copy(remote, c, full_read), copies))
    else:
        verdicts = []
    out = []
    for c, verdict in zip(copies, verdicts):
        item = copy_summary(c)
        item.update(verdict)
        item['damaged'] = verdict['integrity'] in integrity.DAMAGED
        item['damage'] = verdict['integrity_detail'] if item['damaged'] else None
        item['damaged_after_verification'] = bool(item['damaged'] and catalog.is_verified(c))
        out.append(item)
    counts, alerts = integrity.summary([dict(x, verifications=c.get('verifications'))
                                        for x, c in zip(out, copies)])
    seconds = time.time() - started
    bytes_read = sum(x['bytes_read'] for x in out)
    stats = dict(count=len(out), integrity=counts, alerts=alerts, bytes_read=bytes_read, seconds=round(seconds, 3),
                 bytes_per_second=int(bytes_read / max(seconds, 0.001)) if bytes_read else None,
                 unfinished=len(unfinished))
    return dict(changed=False, copies=out, damaged=[x for x in out if x['damaged']], stats=stats,
                warnings=warnings + alerts)


# -- module entry ---------------------------------------------------------------------------------------------
def option_errors(p):
    """backup_offsite's rules that AnsibleModule cannot declare (the declared ones - object_lock_mode needs
    object_lock_days, access_key with secret_key, profile or keys - are in its argument spec), one message each,
    naming the option and the fix; [] when fine."""
    errors = []
    if not (p.get('bucket') or '').strip():
        errors.append('bucket must not be empty')
    if p.get('object_lock_days') is not None and p['object_lock_days'] < 1:
        errors.append('object_lock_days must be 1 or more (got %s)' % p['object_lock_days'])
    try:
        clean_prefix(p.get('prefix'))
    except PgOpsError as e:
        errors.append(e.msg)
    if p.get('backup_id') is not None and not p['backup_id'].strip():
        errors.append('backup_id must not be empty: give a backup id (e.g. 20261128_020000), latest or '
                      'latest_verified - an empty answer (an AWX survey left blank) never means latest')
    if p.get('server') is not None:
        try:
            check_name(p['server'], 'server')
        except PgOpsError as e:
            errors.append(e.msg)
    endpoint = p.get('endpoint_url') or ''
    if endpoint and not endpoint.startswith(('http://', 'https://')):
        errors.append('endpoint_url %r must start with http:// or https://' % endpoint)
    if '@' in endpoint.split('://', 1)[-1].split('/', 1)[0]:
        errors.append('endpoint_url must not carry credentials (user:password@): use access_key and secret_key')
    return errors


def run_backup_offsite(module):
    p = module.params
    if not HAS_BOTO3:
        module.fail_json(msg='backup_offsite needs boto3 on the managed host (pip install boto3): %s'
                         % BOTO3_IMPORT_ERROR, failed_step=OPTIONS)
    for name in ('secret_key', 'access_key', 'session_token'):
        if p.get(name):
            module.no_log_values.add(p[name])
    try:
        remote = Remote(p)
        remote.check_bucket()
        state = p['state']
        if state == 'pushed':
            result = push(remote, p, module.check_mode)
        elif state == 'fetched':
            result = fetch(remote, p, module.check_mode)
        elif state == 'listed':
            result = listed(remote, p)
        elif state == 'verified':
            result = verify(remote, p)
        else:
            result = rotate(remote, p, module.check_mode)
        if state != 'fetched':
            result['server'] = p.get('server')
    except (IOError, OSError) as e:
        module.fail_json(msg='%s: %s' % (getattr(e, 'filename', None) or 'local file system', e.strerror or e),
                         failed_step=IO)
    except PgOpsError as e:
        details = dict(e.details)
        details['catalog_warnings'] = details.pop('warnings', [])
        details.pop('changed', None)
        module.fail_json(msg=e.msg, failed_step=job_step(e.step, OFFSITE_STEPS, CONNECT), **details)
    result.update(bucket=remote.bucket, prefix=remote.prefix, endpoint=remote.endpoint, state=p['state'])
    result['catalog_warnings'] = result.pop('warnings', [])
    for warning in result['catalog_warnings']:
        module.warn(warning)
    module.exit_json(**result)
