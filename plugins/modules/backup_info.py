#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgops.postgresql contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
module: backup_info
short_description: List pgops backups and compute their statistics and alerts
version_added: 0.1.0
description:
  - Reads the metadata that M(pgops.postgresql.pg_backup) writes beside each backup in O(path) and lists the
    backups newest first, filtered by database, kind, label, status and age.
  - Computes statistics fit for AWX and monitoring - count, total size, per kind, success rate over a window,
    age of the newest backup, size change against the previous backup made the same way (over 50% is flagged),
    and database growth over 7 days (over 20% is flagged) - with the alerts they raise.
  - Checks every listed successful backup against its metadata - the dump exists with the recorded size (for
    O(pgops.postgresql.pg_backup#module:format=directory), the directory holds every recorded file and they add
    up to the recorded size) - and, with O(verify_checksums=true), its sha256. A damaged backup is reported in
    RV(backups[].integrity) and raises an alert, and one whose last verified restore passed is flagged
    RV(backups[].damaged_after_verification).
  - Reads files only; never connects to PostgreSQL and never changes anything (not even the metadata).
author:
  - pgops.postgresql maintainers (@pgops)
requirements:
  - Python 3.8 or newer on the managed host; the module uses the standard library only (no psycopg2).
  - Nothing else - it reads the backup catalog (the records in O(path)) and never connects to PostgreSQL.
extends_documentation_fragment:
  - pgops.postgresql.attributes
attributes:
  check_mode:
    support: full
    details: Read-only; behaves the same in check mode.
  diff_mode:
    support: none
  idempotent:
    support: full
options:
  path:
    description:
      - The backup directory (O(pgops.postgresql.pg_backup#module:dest) of pg_backup).
    type: path
    required: true
  database:
    description:
      - Only backups of this database (C(@globals) for roles and tablespaces).
    type: str
  server:
    description:
      - Only backups of this server (its name in the catalog, see
        O(pgops.postgresql.pg_backup#module:server)); backups recorded before 0.5.0 belong to the server derived
        from the host and container they recorded. Unset, every server's; each listed backup says its C(server).
    type: str
    version_added: 0.5.0
  databases:
    description:
      - Only backups of these databases (newest first across them, with O(limit) - the weekly drill's "newest N").
    type: list
    elements: str
    version_added: 0.2.0
  scope:
    description:
      - Only database dumps (C(database)), only roles and tablespaces (C(globals)), or both.
    type: str
    choices: [ database, globals, any ]
    default: any
    version_added: 0.2.0
  kind:
    description:
      - Only backups of these kinds.
    type: list
    elements: str
    choices: [ full, manual, snapshot, pre_deploy, pre_restore ]
  label:
    description:
      - Only backups with this label.
    type: str
  status:
    description:
      - Only successful or failed runs, or both.
    type: str
    choices: [ success, failed, any ]
    default: any
  max_age_days:
    description:
      - Only backups younger than this many days (0 or more).
    type: float
  limit:
    description:
      - Return at most this many backups (the newest). C(0) for all; negative values are refused.
      - With O(limit_per_database), at most this many of each database.
    type: int
    default: 0
  limit_per_database:
    description:
      - Apply O(limit) to each database, not to the whole list, so that every database is represented (a weekly
        drill of the newest backup of each database, however many there are).
    type: bool
    default: false
    version_added: 0.3.0
  stats:
    description:
      - Compute statistics and alerts over the filtered backups.
    type: bool
    default: true
  window_days:
    description:
      - Days over which the success rate is computed (1 or more).
    type: int
    default: 30
  offsite_max_age_days:
    description:
      - Alert when the newest off-site copy of a database (recorded by M(pgops.postgresql.backup_offsite)) is older
        than this many days - the plan's weekly copy, with a day of slack. Databases never copied raise no such
        alert. C(0) turns the alert off.
    type: float
    default: 8
    version_added: 0.2.0
  no_success_hours:
    description:
      - Alert when the newest successful backup of a database is older than this many hours, or when there is none
        - the plan's daily backup with two hours of slack, so that backups that silently stopped are noticed.
      - Every database of the catalog is checked, and every database named in O(database), O(databases) or
        O(expected_databases) even when the catalog holds nothing of it. C(0) turns the alert off.
    type: float
    default: 26
    version_added: 0.3.0
  expected_databases:
    description:
      - Databases that should have backups, checked by O(no_success_hours) even when the catalog has never seen
        them, without filtering the list as O(databases) does (for example C(pgops_databases)).
    type: list
    elements: str
    version_added: 0.3.0
  size_change_threshold:
    description:
      - Flag a backup whose size differs from the previous one by more than this percentage (0 or more).
    type: float
    default: 50
  growth_threshold:
    description:
      - Flag a database that grew by more than this percentage over O(growth_days) (0 or more).
    type: float
    default: 20
  growth_days:
    description:
      - Period for the growth check, in days (1 or more).
    type: int
    default: 7
  verify_checksums:
    description:
      - Also compute the sha256 of every listed backup (after O(limit)) and compare it with the metadata, like
        pgBackRest's C(verify) - for a O(pgops.postgresql.pg_backup#module:format=directory) dump, of every file.
        This reads every byte of the listed backups.
      - Without it only the existence and size of each dump are checked (cheap; a truncated or deleted dump is
        found, a same-size corruption is not).
    type: bool
    default: false
    version_added: 0.2.0
seealso:
  - module: pgops.postgresql.pg_backup
'''

EXAMPLES = r'''
- name: The plan's "list"
  pgops.postgresql.backup_info:
    path: /backups/database
  register: backups

- name: The plan's "stats", failing the job on an alert
  pgops.postgresql.backup_info:
    path: /backups/database
    database: pim_prod
  register: info
  failed_when: info.stats.alerts | length > 0

- name: The three newest successful full backups of pim_prod
  pgops.postgresql.backup_info:
    path: /backups/database
    database: pim_prod
    kind: [full]
    status: success
    limit: 3
    stats: false

- name: The plan's weekly "verify integrity" - sha256 of every backup against its metadata
  pgops.postgresql.backup_info:
    path: /backups/database
    status: success
    verify_checksums: true
  register: verify
  failed_when: verify.stats.integrity.ok != verify.stats.count
'''

RETURN = r'''
backups:
  description:
    - Metadata of the matching backups, newest first (see docs/metadata.md for every key), plus C(path) (the dump),
      C(meta_path) and C(verified) (true when the last verified restore of the backup passed), and the result of
      the integrity check of the dump against the metadata.
  returned: always
  type: list
  elements: dict
  contains:
    server:
      description: The server the backup belongs to (recorded, or derived for a backup made before 0.5.0).
      type: str
      version_added: 0.5.0
    path:
      description: The dump (a directory for format C(directory)); absent for a failed run.
      type: str
    meta_path:
      description: The metadata file.
      type: str
    verified:
      description: True when the last conclusive verified restore of the backup passed.
      type: bool
    origin:
      description: C(adopted) for a dump registered by M(pgops.postgresql.backup_adopt); absent for the backups
        pg_backup made.
      type: str
    integrity:
      description:
        - C(ok) - the dump exists with the recorded size (and, with O(verify_checksums=true), the recorded sha256).
        - C(missing) - the dump (or, for a directory, one of its recorded files) is gone.
        - C(size_mismatch) - the dump's size differs from the metadata (truncated, or grown).
        - C(checksum_mismatch) - with O(verify_checksums=true), the sha256 differs from the metadata.
        - C(unreadable) - the dump could not be read (permissions, I/O error).
        - C(unchecked) - nothing to check - a failed run (no dump), or metadata without a size.
      type: str
      version_added: 0.2.0
      choices: [ ok, missing, size_mismatch, checksum_mismatch, unreadable, unchecked ]
    integrity_detail:
      description: Why the backup is not C(ok) (paths, sizes, digests, the damaged files of a directory); null when it is.
      type: str
      version_added: 0.2.0
    checksum:
      description: C(passed) or C(failed) when the sha256 was computed (O(verify_checksums=true)), else null.
      type: str
      version_added: 0.2.0
    damaged_after_verification:
      description: True when the last conclusive verified restore of the backup passed but the dump is damaged now -
        the backup is no longer the one that was proven.
      type: bool
      version_added: 0.2.0
  sample:
    - id: "20261128_020000"
      database: pim_prod
      kind: full
      status: success
      path: /backups/database/pim_prod_full_20261128_020000.sql.zst
      size: 1048576
      integrity: ok
      integrity_detail: null
      checksum: passed
      damaged_after_verification: false
stats:
  description: Statistics of the matching backups, per database, with alerts.
  returned: when O(stats=true)
  type: dict
  contains:
    count:
      description: Successful backups.
      type: int
    failed:
      description: Failed runs.
      type: int
    total_size:
      description: Bytes of all successful backups.
      type: int
    by_kind:
      description: Count and bytes per kind.
      type: dict
    success_rate:
      description: Percentage of successful runs over O(window_days); null when there were none.
      type: float
    newest_age_seconds:
      description: Age of the newest successful backup of any database.
      type: int
    databases:
      description: The same figures per database, with C(size_change_pct), C(size_change_flag), C(growth_pct),
        C(growth_flag), C(offsite_copies) (backups with an off-site copy) and C(offsite_newest_age_seconds) (age of
        the newest off-site copy, null when none); since 0.5.0 also C(newest_verified_id) and
        C(newest_verified_age_seconds) (the newest backup whose last verified restore passed, null when none) and
        C(size_series) (C([id, bytes]) of the newest 10 successful backups, oldest first).
        Across servers here; per server in RV(stats.servers), where each database also has its C(alerts).
      type: dict
    servers:
      description:
        - The figures per server (the C(server) of each backup; C((unknown)) for backups whose server cannot be
          told, such as adopted dumps without O(pgops.postgresql.backup_adopt#module:server)), computed per server
          and database so that the success rate, size change and growth of two servers with a database of the
          same name never mix - C(databases) (as RV(stats.databases), of that server only), C(success_rate),
          C(count), C(failed) and that server's C(alerts).
        - RV(stats.alerts) is the union of the servers' alerts; each names its server when the catalog holds more
          than one. RV(stats.databases) stays the figures per database name across servers.
      type: dict
      version_added: 0.5.0
      sample:
        db1:5433:
          databases: {shop: {count: 7, failed: 0, success_rate: 100.0, newest_id: "20261207_020000"}}
          success_rate: 100.0
          count: 7
          failed: 0
          alerts: []
    integrity:
      description:
        - Count of the matching backups per integrity state (C(ok), C(missing), C(size_mismatch),
          C(checksum_mismatch), C(unreadable), C(unchecked)), of those C(damaged_after_verification), and
          C(checksums_verified) (sha256 computed and matching).
      type: dict
      version_added: 0.2.0
      sample: {ok: 12, missing: 0, size_mismatch: 1, checksum_mismatch: 0, unreadable: 0, unchecked: 2,
               damaged_after_verification: 1, checksums_verified: 0}
    alerts:
      description: One sentence per threshold crossed and per damaged backup.
      type: list
      elements: str
path_exists:
  description: False when O(path) does not exist (the catalog is then empty; the fleet summary reports it).
  returned: always
  type: bool
  version_added: 0.5.0
catalog_warnings:
  description: Metadata files that could not be read.
  returned: always
  type: list
  elements: str
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.pgops.postgresql.plugins.module_utils._catalog import KINDS
from ansible_collections.pgops.postgresql.plugins.module_utils._info import run_backup_info


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type='path', required=True),
            database=dict(type='str'),
            databases=dict(type='list', elements='str'),
            server=dict(type='str'),
            scope=dict(type='str', default='any', choices=['database', 'globals', 'any']),
            kind=dict(type='list', elements='str', choices=list(KINDS)),
            label=dict(type='str'),
            status=dict(type='str', default='any', choices=['success', 'failed', 'any']),
            max_age_days=dict(type='float'),
            limit=dict(type='int', default=0),
            limit_per_database=dict(type='bool', default=False),
            stats=dict(type='bool', default=True),
            window_days=dict(type='int', default=30),
            size_change_threshold=dict(type='float', default=50),
            offsite_max_age_days=dict(type='float', default=8),
            no_success_hours=dict(type='float', default=26),
            expected_databases=dict(type='list', elements='str'),
            growth_threshold=dict(type='float', default=20),
            growth_days=dict(type='int', default=7),
            verify_checksums=dict(type='bool', default=False),
        ),
        mutually_exclusive=[('database', 'databases')],
        supports_check_mode=True,
    )
    run_backup_info(module)


if __name__ == '__main__':
    main()
