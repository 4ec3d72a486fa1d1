#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgops.postgresql contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
module: backup_rotate
short_description: Delete old pgops backups by age, grandfather-father-son counts and minimum counts, safely
version_added: 0.1.0
description:
  - Applies a retention policy to the backups that M(pgops.postgresql.pg_backup) writes in O(path), per database.
  - A successful backup is deleted when it is older than the maximum age of its kind (O(max_age_days)), or than
    O(older_than_days) when that is set, unless a protection keeps it.
  - "Protections, any of which keeps a backup: the newest O(min_keep) successful backups of the database; the
    newest successful backup whose last restore drill passed (newest verified); grandfather-father-son - the
    newest successful backup of each of the last O(keep_daily) local calendar days, O(keep_weekly) ISO weeks and
    O(keep_monthly) months that have one; a backup in progress (the database's lock file C(.<db>.lock) is
    held, or a temporary C(.*.tmp-*) file of the dump or its metadata exists)."
  - Failed-run records protect nothing and count toward nothing, so a run of failed backups never rotates the
    good ones away; they are removed once older than their kind's maximum age.
  - Ages are measured between instants (UTC offsets and daylight saving time do not shift them); days, weeks and
    months are those of the managed host's local time zone.
  - A backup is deleted dump first (a file or a directory; symbolic links are removed, never followed), then its
    metadata, so a half-deleted backup never looks complete. Each database's deletions run under its backup
    lock, taken without waiting; if a backup has started meanwhile its records are kept and a warning says so.
  - Also removes orphaned temporary files (C(.*.tmp-*)) older than O(orphan_age_hours) that no running process
    holds, and, with O(drop_rollback_databases), the rollback databases C(<db>__rollback_<YYYYMMDD_HHMMSS>) that
    M(pgops.postgresql.pg_restore_verified) leaves, once older than O(rollback_retention_days).
  - The whole plan is computed before anything is deleted; check mode returns exactly that plan.
author:
  - pgops.postgresql maintainers (@pgops)
requirements:
  - Python 3.8 or newer on the managed host; the module uses the standard library only (no psycopg2).
  - C(psql) (to find and drop old rollback and scratch databases) of the server's major version or newer - natively
    from O(pg_bin_dir), else C(/usr/lib/postgresql/<major>/bin), else the E(PATH); with O(container), inside the
    container.
  - With O(container), the C(docker) or C(podman) command line (O(container_runtime)) on the managed host.
extends_documentation_fragment:
  - pgops.postgresql.attributes
  - pgops.postgresql.retention
  - pgops.postgresql.attributes.actiongroup_connect
  - pgops.postgresql.connection
attributes:
  check_mode:
    support: full
    details: Computes the same plan and returns the same lists as a real run; deletes and drops nothing (with
      O(drop_rollback_databases) it connects to list the databases).
  diff_mode:
    support: full
    details: Before is the list of backup files (metadata names for failed runs), after the list kept.
  idempotent:
    support: full
    details: A later run deletes what has aged out since.
options:
  path:
    description:
      - The backup directory (O(pgops.postgresql.pg_backup#module:dest) of pg_backup).
      - A missing directory has nothing to rotate (a warning says so).
    type: path
    required: true
    aliases: [ dest ]
  older_than_days:
    description:
      - One maximum age in days for every kind, overriding O(max_age_days) (the plan's C(clean N days)).
      - Protections still apply.
    type: float
  keep_daily:
    description:
      - Keep the newest successful backup of each of the last N local calendar days that have one, per database,
        even when it is older than its age limit. C(0) disables.
    type: int
    default: 0
  keep_weekly:
    description:
      - Keep the newest successful backup of each of the last N ISO weeks (local time) that have one, per database.
    type: int
    default: 0
  keep_monthly:
    description:
      - Keep the newest successful backup of each of the last N calendar months (local time) that have one,
        per database.
    type: int
    default: 0
  min_keep:
    description:
      - The newest N successful backups of each database are always kept; a successful backup is deleted by age
        only when at least N newer successful ones exist. At least C(1).
    type: int
    default: 3
  orphan_age_hours:
    description:
      - Remove temporary files and directories (C(.*.tmp-*)) left by interrupted runs once they have not been
        modified for this many hours and no live process holds them (the writer's pid in the name is gone and
        no process has them open).
    type: float
    default: 24
  drop_rollback_databases:
    description:
      - Also drop rollback databases (C(<db>__rollback_<YYYYMMDD_HHMMSS>), the time being the host's local time
        of the swap) older than O(rollback_retention_days), ending their sessions first.
      - And the scratch databases that a killed M(pgops.postgresql.pg_restore_verified) left (recognised by the
        comment the module puts on them, never by name alone) when no restore of their target is running (its
        restore lock in O(path) is free); each is written to the restore audit log as an interrupted run.
      - Needs the connection options; they are not used otherwise.
    type: bool
    default: false
  rollback_retention_days:
    description:
      - Age in days after which a rollback database is dropped, with O(drop_rollback_databases).
    type: float
    default: 7
  maintenance_db:
    description:
      - Database to connect to for listing and dropping rollback databases.
    type: str
    default: postgres
notes:
  - Dumps without metadata are not backups for pgops and are never deleted; metadata files that cannot be read
    are reported in RV(catalog_warnings) and their dumps left alone.
seealso:
  - module: pgops.postgresql.pg_backup
  - module: pgops.postgresql.backup_info
  - module: pgops.postgresql.pg_restore_verified
'''

EXAMPLES = r'''
- name: Nightly rotation with the default ages per kind, keeping the newest 3 backups of every database
  pgops.postgresql.backup_rotate:
    path: /backups/database

- name: Grandfather-father-son - 7 daily, 4 weekly, 6 monthly; full backups otherwise 14 days
  pgops.postgresql.backup_rotate:
    path: /backups/database
    max_age_days:
      full: 14
    keep_daily: 7
    keep_weekly: 4
    keep_monthly: 6

- name: What would "clean 10 days" delete? (nothing is deleted in check mode)
  pgops.postgresql.backup_rotate:
    path: /backups/database
    older_than_days: 10
  check_mode: true
  register: rotation

- name: Rotate and drop rollback databases older than 3 days in the postgres-pim container
  pgops.postgresql.backup_rotate:
    path: /backups/database
    drop_rollback_databases: true
    rollback_retention_days: 3
    container: postgres-pim
    login_user: pim_user
'''

RETURN = r'''
failed_step:
  description: The step that failed (C(options), C(plan), C(preflight), C(connect), C(drop)).
  returned: on failure
  type: str
deleted:
  description: Backups (and failed-run records) deleted, or in check mode to be deleted, newest first.
  returned: always
  type: list
  elements: dict
  contains:
    path:
      description: The dump (a directory for the directory format); null for a failed-run record.
      type: str
    meta_path:
      description: The metadata file.
      type: str
    database:
      description: Database name (C(@globals) for roles and tablespaces).
      type: str
    id:
      description: Backup id.
      type: str
    kind:
      description: Backup kind.
      type: str
    status:
      description: C(success) or C(failed).
      type: str
    started_at:
      description: When the backup started, as in the metadata.
      type: str
    action:
      description: C(delete).
      type: str
    reason:
      description: The rule that decided it.
      type: str
      sample: age 31.2d > full max 30d
    bytes:
      description: Bytes of the dump and its metadata.
      type: int
  sample:
    - path: /backups/database/pim_prod_full_20261028_020000.sql.zst
      meta_path: /backups/database/pim_prod_full_20261028_020000.meta.json
      database: pim_prod
      id: "20261028_020000"
      kind: full
      status: success
      started_at: "2026-10-28T02:00:00+01:00"
      action: delete
      reason: age 31.0d > full max 30d
      bytes: 1052110
kept:
  description: Records kept, newest first, each with the same keys as RV(deleted) but C(bytes).
  returned: always
  type: list
  elements: dict
  sample:
    - path: /backups/database/pim_prod_full_20261127_020000.sql.zst
      meta_path: /backups/database/pim_prod_full_20261127_020000.meta.json
      database: pim_prod
      id: "20261127_020000"
      kind: full
      status: success
      started_at: "2026-11-27T02:00:00+01:00"
      action: keep
      reason: newest verified; min_keep 3; gfs daily 2026-11-27
bytes_freed:
  description: Bytes freed (in check mode, that would be freed) by the deleted backups.
  returned: always
  type: int
orphans_removed:
  description: Orphaned temporary files and directories removed (in check mode, to be removed).
  returned: always
  type: list
  elements: str
scratch_databases_dropped:
  description: Scratch databases of interrupted restores that were (or in check mode would be) dropped.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The database.
      type: str
    reason:
      description: Which restore left it.
      type: str
rollback_databases_dropped:
  description: Rollback databases dropped (in check mode, to be dropped), each with the reason.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Database name.
      type: str
    reason:
      description: Its age against O(rollback_retention_days).
      type: str
  sample:
    - name: pim_prod__rollback_20261101_101500
      reason: age 26.7d > rollback_retention_days 7d
summary:
  description: Counts of the run.
  returned: always
  type: dict
  contains:
    backups:
      description: Successful backups in the catalog before the run.
      type: int
    records:
      description: Metadata records before the run (successful and failed).
      type: int
    deleted:
      description: Records deleted.
      type: int
    kept:
      description: Records kept.
      type: int
    failed_records_deleted:
      description: Failed-run records among the deleted.
      type: int
    bytes_freed:
      description: Same as RV(bytes_freed).
      type: int
    orphans_removed:
      description: Number of orphaned temporary files removed.
      type: int
    rollback_databases_dropped:
      description: Number of rollback databases dropped.
      type: int
    databases:
      description: Per database, records kept and deleted.
      type: dict
      sample: {"pim_prod": {"kept": 9, "deleted": 2}}
catalog_warnings:
  description: Metadata files that could not be read (their dumps are left alone).
  returned: always
  type: list
  elements: str
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.pgops.postgresql.plugins.module_utils._connection import (
    check_connection_params, connection_argument_spec,
)
from ansible_collections.pgops.postgresql.plugins.module_utils._options import (
    drop_unset_suboptions, max_age_days_argument_spec,
)
from ansible_collections.pgops.postgresql.plugins.module_utils._rotate import run_backup_rotate


def main():
    argument_spec = connection_argument_spec()
    argument_spec.update(
        path=dict(type='path', required=True, aliases=['dest']),
        max_age_days=max_age_days_argument_spec(),
        older_than_days=dict(type='float'),
        keep_daily=dict(type='int', default=0),
        keep_weekly=dict(type='int', default=0),
        keep_monthly=dict(type='int', default=0),
        min_keep=dict(type='int', default=3),
        orphan_age_hours=dict(type='float', default=24),
        drop_rollback_databases=dict(type='bool', default=False),
        rollback_retention_days=dict(type='float', default=7),
        maintenance_db=dict(type='str', default='postgres'),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    check_connection_params(module)
    drop_unset_suboptions(module.params, 'max_age_days')
    run_backup_rotate(module)


if __name__ == '__main__':
    main()
