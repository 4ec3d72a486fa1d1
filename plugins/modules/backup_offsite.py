#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgops.postgresql contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: backup_offsite
short_description: Off-site copies of pg_backup backups in an S3 bucket - push, fetch, list, rotate
version_added: 0.2.0
description:
  - Copies the backups that M(pgops.postgresql.pg_backup) writes in O(path) to an S3 bucket (AWS S3, MinIO, Ceph
    RGW, SeaweedFS, Backblaze B2, Wasabi and other S3-compatible stores), brings them back, lists and rotates them.
  - "A copy is two objects: C(<prefix>/<database>/<file>) (the data object) and
    C(<prefix>/<database>/<stem>.meta.json) (the backup's metadata), uploaded B(last): a data object that no
    metadata object names is an unfinished upload, never a copy."
  - "O(state=pushed): copies the backups O(policy) selects that the bucket does not hold yet. The data object is
    uploaded first (multipart above O(multipart_chunk_mb)), read back with HEAD and its size, its
    C(x-amz-meta-sha256) and, when the store returns one, its SHA-256 checksum compared with the local metadata;
    only then is the metadata object written. Each copy is recorded in the local metadata
    (C(offsite: [{bucket, key, version_id, endpoint, at}])), atomically under the database's backup lock."
  - "O(state=fetched): downloads one backup (O(backup_id), C(latest) or C(latest_verified) of O(database)) into
    O(dest) under a temporary name, checks its size and sha256 against the metadata object and only then renames
    it into place and writes its metadata; a damaged or tampered object fails and leaves nothing behind. The
    result can be given to M(pgops.postgresql.pg_restore_verified) (O(pgops.postgresql.pg_restore_verified#module:path)
    = O(dest))."
  - "O(state=listed): the complete copies in the bucket and the unfinished uploads."
  - "O(state=rotated): remote retention with the rules of M(pgops.postgresql.backup_rotate): per database the
    newest O(min_keep) copies, the newest verified copy and the grandfather-father-son copies are always kept;
    others go once older than their kind's O(max_age_days) (or O(older_than_days)). Copies under S3 Object Lock
    (retention date ahead, or a legal hold) are kept and listed in RV(locked). Unfinished uploads older than
    O(orphan_age_hours) are deleted. Data object first, metadata object last."
  - Every state decides first and acts second; check mode returns exactly what a real run would do.
author:
  - pgops.postgresql maintainers (@pgops)
requirements:
  - boto3 on the managed host
extends_documentation_fragment:
  - pgops.postgresql.attributes
  - pgops.postgresql.retention
attributes:
  check_mode:
    support: full
    details: Reads the bucket and the catalog and returns the same lists as a real run; uploads, downloads,
      deletes and records nothing.
  diff_mode:
    support: none
  idempotent:
    support: full
    details: A second push uploads nothing and reports no change; a fetch of a backup already in O(dest) with the
      same sha256 changes nothing.
options:
  state:
    description:
      - C(pushed) copies to the bucket, C(fetched) brings one backup back, C(listed) lists, C(rotated) applies
        remote retention.
    type: str
    choices: [ pushed, fetched, listed, rotated ]
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
      - Set C(false) for S3-compatible stores that reject the flexible checksum headers; the size and
        C(x-amz-meta-sha256) checks still apply, and a fetch always checks the sha256 of what it downloaded.
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
    description: Only these databases (push, rotate). Unset, every database.
    type: list
    elements: str
  database:
    description: The database to fetch (required with O(state=fetched)) or to list/rotate alone.
    type: str
  backup_id:
    description: With O(state=fetched), a backup id, C(latest) or C(latest_verified) (as recorded in the bucket).
    type: str
    default: latest
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
    description: The newest N complete copies of each database are always kept (O(state=rotated)).
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
      description: Why it is uploaded.
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
copies:
  description: Complete copies (metadata object present), newest first.
  returned: state=listed
  type: list
  elements: dict
  contains:
    database:
      description: Database.
      type: str
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
  description: Unreadable metadata objects or local metadata files, and copies kept by a lock (also given as
    warnings).
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
            state=dict(type='str', default='pushed', choices=['pushed', 'fetched', 'listed', 'rotated']),
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
            backup_id=dict(type='str', default='latest'),
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
