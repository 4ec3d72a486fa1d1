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
  - Reads files only; never connects to PostgreSQL and never changes anything.
author:
  - pgops.postgresql maintainers (@pgops)
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
      - Only backups younger than this many days.
    type: float
  limit:
    description:
      - Return at most this many backups (the newest). C(0) for all.
    type: int
    default: 0
  stats:
    description:
      - Compute statistics and alerts over the filtered backups.
    type: bool
    default: true
  window_days:
    description:
      - Days over which the success rate is computed.
    type: int
    default: 30
  size_change_threshold:
    description:
      - Flag a backup whose size differs from the previous one by more than this percentage.
    type: float
    default: 50
  growth_threshold:
    description:
      - Flag a database that grew by more than this percentage over O(growth_days).
    type: float
    default: 20
  growth_days:
    description:
      - Period for the growth check.
    type: int
    default: 7
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
'''

RETURN = r'''
backups:
  description:
    - Metadata of the matching backups, newest first (see docs/metadata.md for every key), plus C(path) (the dump),
      C(meta_path) and C(verified) (true when the last verified restore of the backup passed).
  returned: always
  type: list
  elements: dict
  sample:
    - id: "20261128_020000"
      database: pim_prod
      kind: full
      status: success
      path: /backups/database/pim_prod_full_20261128_020000.sql.zst
      size: 1048576
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
      description: The same figures per database, with C(size_change_pct), C(size_change_flag), C(growth_pct)
        and C(growth_flag).
      type: dict
    alerts:
      description: One sentence per threshold crossed.
      type: list
      elements: str
catalog_warnings:
  description: Metadata files that could not be read.
  returned: always
  type: list
  elements: str
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.pgops.postgresql.plugins.module_utils._catalog import KINDS, run_backup_info


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type='path', required=True),
            database=dict(type='str'),
            kind=dict(type='list', elements='str', choices=list(KINDS)),
            label=dict(type='str'),
            status=dict(type='str', default='any', choices=['success', 'failed', 'any']),
            max_age_days=dict(type='float'),
            limit=dict(type='int', default=0),
            stats=dict(type='bool', default=True),
            window_days=dict(type='int', default=30),
            size_change_threshold=dict(type='float', default=50),
            growth_threshold=dict(type='float', default=20),
            growth_days=dict(type='int', default=7),
        ),
        supports_check_mode=True,
    )
    run_backup_info(module)


if __name__ == '__main__':
    main()
