#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgops.postgresql contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: backup_offsite
short_description: Off-site copies of pg_backup backups in an S3 bucket - push, fetch, list, rotate, verify
version_added: 0.2.0
description:
  - Copies the backups that M(pgops.postgresql.pg_backup) writes in O(path) to an S3 bucket (AWS S3, MinIO, Ceph
    RGW, SeaweedFS, Backblaze B2, Wasabi and other S3-compatible stores), brings them back, lists and rotates them.
  - "A copy is two objects: C(<prefix>/<server>/<database>/<file>) (the data object) and
    C(<prefix>/<server>/<database>/<stem>.meta.json) (the backup's metadata), uploaded B(last): a data object that
    no metadata object names is an unfinished upload, never a copy. C(<server>) is the server the backup's
    metadata names (C(server), since 0.5.0), escaped for a key as database names are (C(db1/pg) is
    C(db1%2Fpg)): two servers never write the same key, even with the same database and backup id."
  - "Copies pushed before 0.5.0 live at C(<prefix>/<database>/...) (as do backups whose server cannot be told):
    they are still listed, fetched, verified and rotated, their server derived from their metadata object; one
    that records neither a server nor a host is every server's."
  - "Every choice is per server: O(state=fetched) chooses among O(server)'s copies, O(state=rotated) applies its
    rules per server and database."
  - "A copy whose data object's size - and, where the store returns them, its full-object SHA-256 checksum or
    its C(x-amz-meta-sha256) - does not match its metadata object is B(damaged): it is no copy. O(state=pushed)
    uploads it again, O(state=rotated) never counts it towards O(min_keep) nor as the newest verified copy,
    O(state=listed) flags it (RV(copies[].damaged)) and a warning names it."
  - "O(state=pushed): copies the backups O(policy) selects that the bucket does not hold intact yet, and the
    globals dump (C(@globals)) that each of them links in its metadata (C(globals)), whatever the policy. The
    data object is uploaded first (multipart above O(multipart_chunk_mb)), read back with HEAD and its size and,
    when the store returns them, its SHA-256 checksum and C(x-amz-meta-sha256) compared with the local metadata;
    only then is the metadata object written. A store that keeps no user metadata (C(x-amz-meta-*)) is told
    apart and said in a warning; nothing depends on it. Each copy is recorded in the local metadata
    (C(offsite: [{bucket, key, version_id, endpoint, at}])), atomically under the database's backup lock."
  - "O(state=fetched): downloads one backup (O(backup_id), C(latest) or C(latest_verified) of O(database)) into
    O(dest) under a temporary name, checks its size and sha256 against the metadata object and only then renames
    it into place and writes its metadata; a damaged or tampered object fails and leaves nothing behind.
    C(latest) and C(latest_verified) never choose a copy known to be damaged. The globals dump the backup links
    is fetched first, checked the same way (RV(globals)). Temporary files of the same backup that killed fetches
    left are removed. The result can be given to M(pgops.postgresql.pg_restore_verified)
    (O(pgops.postgresql.pg_restore_verified#module:path) = O(dest))."
  - "O(state=listed): the copies in the bucket (damaged ones flagged) and the unfinished uploads."
  - "O(state=rotated): remote retention with the rules of M(pgops.postgresql.backup_rotate): per server and
    database the
    newest O(min_keep) intact copies, the newest verified intact copy and the grandfather-father-son copies are
    always kept, and the globals copies that kept copies link; others go once older than their kind's
    O(max_age_days) (or O(older_than_days)). Copies under S3 Object Lock (retention date ahead, or a legal hold)
    are kept and listed in RV(locked). Unfinished uploads older than O(orphan_age_hours) are deleted. Data object
    first, metadata object last."
  - "O(state=verified) (added in 0.5.0): reads back every copy (of O(database) or O(databases)) - the bucket's
    counterpart of backup_info's O(pgops.postgresql.backup_info#module:verify_checksums), for the plan's
    verify-integrity day: the size always, and the checksum - the store's full-object SHA-256 when it returns
    one (single-part uploads with O(request_checksums)), else a streamed sha256 of the object's body (or always,
    with O(full_read)) - against the metadata object. Per copy RV(copies[].integrity), and RV(stats). Read-only."
  - Every state decides first and acts second; check mode returns exactly what a real run would do.
author:
  - pgops.postgresql maintainers (@pgops)
requirements:
  - Python 3.8 or newer on the managed host.
  - The Python library boto3 1.28 or newer on the managed host (meta/requirements.txt); no AWS CLI.
  - No PostgreSQL client tools - it reads the backup catalog and its files and never connects to the server.
extends_documentation_fragment:
  - pgops.postgresql.attributes
  - pgops.postgresql.retention
attributes:
  check_mode:
    support: full
    details: Reads the bucket and the catalog and returns the same lists as a real run; uploads, downloads,
      deletes and records nothing. O(state=verified) only reads, so it runs in check mode exactly as in a real run.
  diff_mode:
    support: none
  idempotent:
    support: full
    details: A second push uploads nothing and reports no change; a fetch of a backup already in O(dest) with the
      same sha256 changes nothing. O(state=listed) and O(state=verified) never change anything.
options:
  state:
    description:
      - What to do.
    type: str
    choices:
      pushed: copy to the bucket.
      fetched: bring one backup back.
      listed: list the copies.
      rotated: apply the remote retention.
      verified: read back every copy and check its size and checksum (added in 0.5.0).
    default: pushed
  path:
    description:
      - The local backup directory (O(pgops.postgresql.pg_backup#module:dest)). Required with O(state=pushed).
    type: path
  dest:
    description:
      - Directory a fetched backup and its metadata are written to (created 0750 when missing). Required with
        O(state=fetched).
    type: path
  bucket:
    description: The bucket. It must exist (with Object Lock enabled to use O(object_lock_mode)).
    type: str
    required: true
  prefix:
    description: Key prefix under which copies live, e.g. C(pgops/prod).
    type: str
    default: pgops
  endpoint_url:
    description:
      - The S3 endpoint of an S3-compatible store, e.g. C(https://minio.example.com:9000). Unset means AWS S3.
      - With it set, path-style addressing is used (see O(addressing_style)).
    type: str
  region:
    description: The region (AWS), or what the S3-compatible store expects (often C(us-east-1)).
    type: str
  access_key:
    description:
      - Access key id. Unset, boto3's default chain applies (environment C(AWS_ACCESS_KEY_ID), O(profile), the
        shared credentials file, an instance or task role).
    type: str
  secret_key:
    description: Secret access key, with O(access_key). Never logged, written, nor returned.
    type: str
  session_token:
    description: Session token for temporary credentials, with O(access_key).
    type: str
  profile:
    description: A named profile of the shared AWS config and credentials files.
    type: str
  validate_certs:
    description: Verify the endpoint's TLS certificate.
    type: bool
    default: true
  addressing_style:
    description: S3 addressing; default C(path) with O(endpoint_url), else C(auto).
    type: str
    choices: [ auto, path, virtual ]
  storage_class:
    description: Storage class of pushed objects, e.g. C(STANDARD_IA), C(GLACIER_IR). Unset, the bucket's default.
    type: str
  request_checksums:
    description:
      - Send SHA-256 checksums with uploads (C(ChecksumAlgorithm=SHA256)) and ask for them on HEAD.
      - Set C(false) for S3-compatible stores that reject the flexible checksum headers; the size check (and the
        C(x-amz-meta-sha256) check where the store keeps user metadata) still applies, a fetch always checks the
        sha256 of what it downloaded, and O(state=verified) then reads every object back to hash it.
    type: bool
    default: true
  connect_timeout:
    description: Seconds to wait for a connection to the endpoint.
    type: int
    default: 5
  read_timeout:
    description: Seconds to wait for an answer on an open connection.
    type: int
    default: 60
  retries:
    description: Attempts per request (boto3 C(standard) retry mode), the first included.
    type: int
    default: 3
  policy:
    description:
      - Which local backups O(state=pushed) copies.
      - C(weekly) - per database, the newest verified successful backup of each ISO week (local calendar) among
        O(kinds) (default C(full)).
      - C(all) - every successful backup among O(kinds) (default every kind).
      - Directory-format backups are not copied (reported in RV(skipped)).
    type: str
    choices: [ weekly, all ]
    default: weekly
  kinds:
    description: Kinds to push (C(full), C(manual), C(snapshot), C(pre_deploy), C(pre_restore)).
    type: list
    elements: str
    choices: [ full, manual, snapshot, pre_deploy, pre_restore ]
  databases:
    description: Only these databases (push, rotate, verify). Unset, every database.
    type: list
    elements: str
  database:
    description: The database to fetch (required with O(state=fetched)) or to list/rotate/verify alone.
    type: str
  server:
    description:
      - The server (its name in the catalog, C(pgops_server)) whose copies to fetch, list, verify or rotate; with
        O(state=pushed), only that server's local backups are pushed. Copies whose server cannot be told (pushed
        before 0.5.0 from metadata that records neither a server nor a host) are every server's.
      - With O(state=fetched), C(latest), C(latest_verified) or a backup id are chosen among that server's copies
        only; a backup that only another server has is refused, naming it. Unset, the one server whose copies of
        O(database) the bucket holds; copies of several servers are refused, naming them - never a silent pick.
      - Unset with the other states, every server's copies (each server's rotated on its own).
      - O(state=pushed) always puts a backup under its own server, whatever this option.
    type: str
    version_added: 0.5.0
  backup_id:
    description:
      - With O(state=fetched), a backup id, C(latest) or C(latest_verified) (as recorded in the bucket), of
        O(server).
      - An empty value is refused (since 0.5.0) - an AWX survey left blank never means C(latest).
    type: str
    default: latest
  full_read:
    description:
      - With O(state=verified), read and hash every object even when the store returns a matching full-object
        SHA-256 checksum. That checksum was computed when the object was written; only a read proves that every
        byte can still be read back.
    type: bool
    default: false
    version_added: 0.5.0
  object_lock_mode:
    description:
      - Put each pushed object under S3 Object Lock in this mode for O(object_lock_days). The bucket must have
        Object Lock enabled. C(COMPLIANCE) objects cannot be deleted by anyone before their date.
    type: str
    choices: [ GOVERNANCE, COMPLIANCE ]
  object_lock_days:
    description: Retention in days for O(object_lock_mode).
    type: int
  multipart_chunk_mb:
    description: Files larger than this are uploaded in parts of this size (MiB, at least 5).
    type: int
    default: 64
  older_than_days:
    description: As in M(pgops.postgresql.backup_rotate), for O(state=rotated).
    type: float
  keep_daily:
    description: As in M(pgops.postgresql.backup_rotate), for O(state=rotated).
    type: int
    default: 0
  keep_weekly:
    description: As in M(pgops.postgresql.backup_rotate), for O(state=rotated).
    type: int
    default: 0
  keep_monthly:
    description: As in M(pgops.postgresql.backup_rotate), for O(state=rotated).
    type: int
    default: 0
  min_keep:
    description: The newest N complete copies of each server's database are always kept (O(state=rotated)).
    type: int
    default: 3
  orphan_age_hours:
    description: Unfinished uploads older than this are deleted by O(state=rotated).
    type: float
    default: 24
  lock_timeout:
    description: Seconds to wait for the database's backup lock when recording a copy or fetching.
    type: int
    default: 60
notes:
  - Credentials never appear on a command line, in the metadata or in the module's output.
  - Unreachable endpoints fail after O(retries) attempts of O(connect_timeout) seconds each.
  - The objects' user metadata (C(x-amz-meta-sha256), C(x-amz-meta-pgops-id)) is written but never needed, since
    the metadata object holds each copy's size and sha256. Some stores keep no user metadata (JuiceFS's gateway
    without C(--object-meta)); a push to one says so in a warning that starts with C(the S3 store did not keep
    the object's user metadata).
seealso:
  - module: pgops.postgresql.pg_backup
  - module: pgops.postgresql.backup_rotate
  - module: pgops.postgresql.pg_restore_verified
'''

EXAMPLES = r'''
- name: Push this week's newest verified full backup of every database to MinIO
  pgops.postgresql.backup_offsite:
    path: /backups/database
    bucket: pgops-offsite
    prefix: prod
    endpoint_url: https://minio.example.com:9000
    access_key: "{{ vault_s3_access_key }}"
    secret_key: "{{ vault_s3_secret_key }}"

- name: Push every successful backup to AWS S3 (instance role credentials), locked for 35 days
  pgops.postgresql.backup_offsite:
    path: /backups/database
    bucket: acme-pg-backups
    region: eu-central-1
    policy: all
    object_lock_mode: COMPLIANCE
    object_lock_days: 35
    storage_class: STANDARD_IA

- name: Fetch the newest verified copy of pim_prod, then restore it into a scratch database
  block:
    - name: Fetch
      pgops.postgresql.backup_offsite:
        state: fetched
        bucket: acme-pg-backups
        database: pim_prod
        backup_id: latest_verified
        dest: /restore/offsite
    - name: Verify by restoring
      pgops.postgresql.pg_restore_verified:
        path: /restore/offsite
        database: pim_prod
        mode: test

- name: Fetch server db1/pim's newest copy of shop from a bucket that many servers push to
  pgops.postgresql.backup_offsite:
    state: fetched
    bucket: acme-pg-backups
    database: shop
    server: db1/pim
    dest: /restore/offsite

- name: Verify integrity - read every copy back (size, and checksum) and fail on any damaged copy
  pgops.postgresql.backup_offsite:
    state: verified
    bucket: acme-pg-backups
  register: offsite_verify
  failed_when: offsite_verify.stats.integrity.ok != offsite_verify.stats.count

- name: Remote retention - 8 weekly and 12 monthly copies; what would go?
  pgops.postgresql.backup_offsite:
    state: rotated
    bucket: acme-pg-backups
    keep_weekly: 8
    keep_monthly: 12
    older_than_days: 60
  check_mode: true
  register: offsite_rotation
'''

RETURN = r'''
state:
  description: The state run.
  returned: always
  type: str
bucket:
  description: The bucket.
  returned: always
  type: str
prefix:
  description: The key prefix.
  returned: always
  type: str
server:
  description:
    - With O(state=fetched), the server of the fetched copy (O(server), or the one server whose copies the bucket
      holds; null for a copy whose server cannot be told). Otherwise O(server) (null when unset).
  returned: always
  type: str
  version_added: 0.5.0
endpoint:
  description: O(endpoint_url), or null for AWS S3.
  returned: always
  type: str
pushed:
  description: Backups uploaded (in check mode, to be uploaded).
  returned: state=pushed
  type: list
  elements: dict
  contains:
    database:
      description: Database.
      type: str
    server:
      description: The backup's server (under which its copy is), null when it cannot be told.
      type: str
      version_added: 0.5.0
    id:
      description: Backup id.
      type: str
    key:
      description: Key of the data object.
      type: str
    meta_key:
      description: Key of the metadata object.
      type: str
    size:
      description: Bytes.
      type: int
    reason:
      description:
        - Why it is uploaded - C(not in the bucket), C(unfinished upload ...), C(the copy in the bucket is damaged
          (...) - upload again); a globals dump pushed because database backups link it starts with
          C(globals of <database> <id>).
      type: str
    version_id:
      description: Version id of the data object (versioned buckets), else null. Not in check mode.
      type: str
    bytes_per_second:
      description: Upload throughput. Not in check mode.
      type: int
recorded:
  description: Copies found complete in the bucket and now recorded in the local metadata.
  returned: state=pushed
  type: list
  elements: dict
present:
  description: Selected backups already in the bucket and recorded.
  returned: state=pushed
  type: list
  elements: dict
skipped:
  description: Selected backups not copied, with the reason.
  returned: state=pushed
  type: list
  elements: dict
bytes_per_second:
  description: Throughput of the run's transfers (push or fetch), when something was transferred.
  returned: when something was transferred
  type: int
backup_id:
  description: The fetched backup's id.
  returned: state=fetched
  type: str
path:
  description: The fetched dump in O(dest).
  returned: state=fetched
  type: str
meta_path:
  description: Its metadata file in O(dest).
  returned: state=fetched
  type: str
sha256:
  description: Its sha256, checked against the download.
  returned: state=fetched
  type: str
globals:
  description:
    - The globals dump that the fetched backup's metadata links (C(globals)), fetched before it with the same
      checks; null when the metadata links none (backups made before pg_backup linked them).
  returned: state=fetched
  type: dict
  version_added: 0.5.0
  contains:
    status:
      description: C(fetched) (in check mode, to be fetched), C(present) (already in O(dest)) or C(missing) (not
        in the bucket; a warning says so).
      type: str
    backup_id:
      description: Its id.
      type: str
    path:
      description: The dump in O(dest) (not when missing).
      type: str
    meta_path:
      description: Its metadata file in O(dest) (not when missing).
      type: str
    sha256:
      description: Its sha256.
      type: str
    changed:
      description: Whether it was (or, in check mode, would be) fetched.
      type: bool
removed_temp_files:
  description: Temporary files of the fetched backups that killed fetches left in O(dest) (their pid no longer
    runs), removed (in check mode, to be removed).
  returned: state=fetched
  type: list
  elements: str
  version_added: 0.5.0
copies:
  description:
    - Copies (metadata object present), newest first.
    - With O(state=verified), each with its integrity as read back.
  returned: state=listed or state=verified
  type: list
  elements: dict
  contains:
    database:
      description: Database.
      type: str
    server:
      description: The copy's server (from its metadata object; derived for copies made before 0.5.0), null when
        it cannot be told.
      type: str
      version_added: 0.5.0
    id:
      description: Backup id.
      type: str
    kind:
      description: Kind.
      type: str
    key:
      description: Data object key.
      type: str
    meta_key:
      description: Metadata object key.
      type: str
    size:
      description: Bytes as the metadata records.
      type: int
    verified:
      description: Whether the last conclusive restore verification in the copied metadata passed.
      type: bool
    data_present:
      description: False when the metadata object names a data object that is gone.
      type: bool
    remote_size:
      description: Bytes of the data object in the bucket (null when it is gone).
      type: int
    complete:
      description: The data object is there with the size its metadata records.
      type: bool
    damaged:
      description:
        - The copy is damaged - its data object is missing, or its size (or, where the store returns them, its
          full-object SHA-256 checksum or x-amz-meta-sha256) does not match the metadata object; with
          O(state=verified), what reading it back found. A damaged copy is not counted as a copy.
      type: bool
      version_added: 0.5.0
    damage:
      description: Why it is damaged (keys, sizes, digests), or null.
      type: str
      version_added: 0.5.0
    integrity:
      description:
        - O(state=verified) only. As backup_info's - C(ok), C(missing), C(size_mismatch), C(checksum_mismatch),
          C(unreadable) (the read failed), C(unchecked) (the metadata records no size).
      type: str
      choices: [ ok, missing, size_mismatch, checksum_mismatch, unreadable, unchecked ]
      version_added: 0.5.0
    integrity_detail:
      description: O(state=verified) only. What differs, or null.
      type: str
      version_added: 0.5.0
    checksum:
      description: O(state=verified) only. C(passed) or C(failed) when a checksum was compared, else null.
      type: str
      version_added: 0.5.0
    checksum_method:
      description:
        - O(state=verified) only. C(s3_checksum_sha256) - the store's full-object SHA-256 against the metadata's
          sha256; C(sha256_read) - the object read back and hashed; null when no checksum was compared.
      type: str
      version_added: 0.5.0
    bytes_read:
      description: O(state=verified) only. Bytes read back (0 when the store's checksum sufficed).
      type: int
      version_added: 0.5.0
    damaged_after_verification:
      description: O(state=verified) only. The copy's metadata records a passed verified restore, but the copy
        is damaged.
      type: bool
      version_added: 0.5.0
damaged:
  description: The damaged copies of RV(copies) (each also named in a warning).
  returned: state=listed or state=verified
  type: list
  elements: dict
  version_added: 0.5.0
stats:
  description: The summary of O(state=verified).
  returned: state=verified
  type: dict
  version_added: 0.5.0
  contains:
    count:
      description: Copies checked.
      type: int
    integrity:
      description: Copies per integrity state (every state, zeros included), plus C(checksums_verified) and
        C(damaged_after_verification), as in backup_info's stats.
      type: dict
    alerts:
      description: One sentence per damaged copy (also given as warnings).
      type: list
      elements: str
    bytes_read:
      description: Bytes read back.
      type: int
    seconds:
      description: Wall time of the checks.
      type: float
    bytes_per_second:
      description: Read throughput, null when nothing was read.
      type: int
    unfinished:
      description: Unfinished uploads under the prefix (not copies, not checked).
      type: int
unfinished:
  description: Data objects that no metadata object names (interrupted uploads), with key, size, last_modified.
  returned: state=listed
  type: list
  elements: dict
deleted:
  description: Copies deleted (in check mode, to be deleted), each with action and reason.
  returned: state=rotated
  type: list
  elements: dict
kept:
  description: Copies kept, each with the reason.
  returned: state=rotated
  type: list
  elements: dict
locked:
  description: Copies past their retention that S3 Object Lock keeps (also in RV(kept)).
  returned: state=rotated
  type: list
  elements: dict
orphans_removed:
  description: Unfinished uploads deleted (in check mode, to be deleted).
  returned: state=rotated
  type: list
  elements: dict
bytes_freed:
  description: Bytes deleted from the bucket (in check mode, to be deleted).
  returned: state=rotated
  type: int
catalog_warnings:
  description: Unreadable metadata objects or local metadata files, copies kept by a lock, damaged copies,
    globals dumps that could not travel with their backups, and a store that keeps no user metadata (also given
    as warnings).
  returned: always
  type: list
  elements: str
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.pgops.postgresql.plugins.module_utils._offsite import option_errors, run_backup_offsite
from ansible_collections.pgops.postgresql.plugins.module_utils._options import (
    drop_unset_suboptions, fail_on_errors, max_age_days_argument_spec,
)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            state=dict(type='str', default='pushed', choices=['pushed', 'fetched', 'listed', 'rotated', 'verified']),
            path=dict(type='path'),
            dest=dict(type='path'),
            bucket=dict(type='str', required=True),
            prefix=dict(type='str', default='pgops'),
            endpoint_url=dict(type='str'),
            region=dict(type='str'),
            access_key=dict(type='str', no_log=True),
            secret_key=dict(type='str', no_log=True),
            session_token=dict(type='str', no_log=True),
            profile=dict(type='str'),
            validate_certs=dict(type='bool', default=True),
            addressing_style=dict(type='str', choices=['auto', 'path', 'virtual']),
            storage_class=dict(type='str'),
            request_checksums=dict(type='bool', default=True),
            connect_timeout=dict(type='int', default=5),
            read_timeout=dict(type='int', default=60),
            retries=dict(type='int', default=3),
            policy=dict(type='str', default='weekly', choices=['weekly', 'all']),
            kinds=dict(type='list', elements='str',
                       choices=['full', 'manual', 'snapshot', 'pre_deploy', 'pre_restore']),
            databases=dict(type='list', elements='str'),
            database=dict(type='str'),
            server=dict(type='str'),
            backup_id=dict(type='str', default='latest'),
            full_read=dict(type='bool', default=False),
            object_lock_mode=dict(type='str', choices=['GOVERNANCE', 'COMPLIANCE']),
            object_lock_days=dict(type='int'),
            multipart_chunk_mb=dict(type='int', default=64),
            max_age_days=max_age_days_argument_spec(),
            older_than_days=dict(type='float'),
            keep_daily=dict(type='int', default=0),
            keep_weekly=dict(type='int', default=0),
            keep_monthly=dict(type='int', default=0),
            min_keep=dict(type='int', default=3),
            orphan_age_hours=dict(type='float', default=24),
            lock_timeout=dict(type='int', default=60),
        ),
        required_if=[('state', 'pushed', ['path']), ('state', 'fetched', ['dest', 'database'])],
        required_by={'object_lock_mode': 'object_lock_days'},
        required_together=[('access_key', 'secret_key')],
        mutually_exclusive=[('profile', 'access_key')],
        supports_check_mode=True,
    )
    drop_unset_suboptions(module.params, 'max_age_days')
    fail_on_errors(module, option_errors(module.params), failed_step='options')
    run_backup_offsite(module)


if __name__ == '__main__':
    main()
