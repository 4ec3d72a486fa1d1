#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgops.postgresql contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
module: backup_metrics
short_description: Write Prometheus textfile-collector metrics of pgops backups and evaluate backup alerts
version_added: 0.1.0
description:
  - Reads the backup catalog in O(path) (the metadata M(pgops.postgresql.pg_backup) writes, failed runs and the
    verifications M(pgops.postgresql.pg_restore_verified) appends included) and the restore audit log, and writes
    the metrics to O(dest) for node_exporter's textfile collector (C(--collector.textfile.directory)).
  - "Per server, database and kind: time, duration and size of the newest successful backup, count and bytes of
    the successful backups, failed runs in the window. Per server and database: success ratio, newest backup
    age, size change, database size and growth, result and time of the newest restore verification. Per server,
    database and restore mode: time, result and RTO of the newest restore in the audit log. For the backup
    directory: free bytes, size and free ratio of its file system. Every alert as C(pgops_backup_alert) (1
    firing, 0 not)."
  - "Every series has a C(server) label (since 0.5.0): the server the backups belong to (recorded by
    M(pgops.postgresql.pg_backup), derived from the host and container for backups made before 0.5.0), so that
    two servers sharing a backup directory are never mixed; C(\"\") for records that say no server (dumps adopted
    without O(pgops.postgresql.backup_adopt#module:server)) and for restore audit lines written before 0.5.0. The
    restore series carry the server restored to. The directory's series carry O(server) (C(\"\") when unset)."
  - "Alerts, each with an action C(fail) (the task fails, after the file is written), C(warn) (an Ansible
    warning) or C(off) (not evaluated): no successful backup for O(no_success_hours); backup size changed by
    more than O(size_change_percent) against the previous backup made the same way; database grew by more than
    O(growth_percent) in O(growth_days); success rate below O(success_rate_target) over O(window_days); free
    space of the backup directory's file system below O(free_disk_percent); newest off-site copy older than
    O(offsite_max_age_days)."
  - The file is written through a temporary name and renamed into place (node_exporter never reads half of it),
    mode C(0644), and only when its content changes.
author:
  - pgops.postgresql maintainers (@pgops)
requirements:
  - Python 3.8 or newer on the managed host; the module uses the standard library only (no psycopg2).
  - Nothing else - it reads the backup catalog and the restore audit log and never connects to PostgreSQL.
  - node_exporter's textfile collector, to publish the file it writes (O(dest)).
extends_documentation_fragment:
  - pgops.postgresql.attributes
attributes:
  check_mode:
    support: full
    details: Computes the same metrics and alerts and fails the same way; writes nothing.
  diff_mode:
    support: full
    details: Before is the file's current text (empty when missing), after the text written (or to be written).
  idempotent:
    support: none
    details: The file holds the time it was written, backup ages and the free space measured at run time, so
      its text, and C(changed), differ on nearly every run.
options:
  server:
    description:
      - Write only this server's series (its name in the catalog, O(pgops.postgresql.pg_backup#module:server);
        C(pgops_server) in the inventory), together with those of the records that say no server, which every
        server may restore (label C(server=\"\")). O(databases) are then expected of this server.
      - Unset, every server's; O(databases) are expected of every server the catalog names.
    type: str
    version_added: 0.5.0
  path:
    description:
      - The backup directory (O(pgops.postgresql.pg_backup#module:dest) of pg_backup).
      - A missing directory is an empty catalog (every expected database then raises C(no_success)).
    type: path
    required: true
    aliases: [ backup_dir ]
  dest:
    description:
      - The metrics file. Its directory must exist; the name must end in C(.prom) for node_exporter to read it.
    type: path
    default: /var/lib/node_exporter/textfile_collector/pgops_backup.prom
  audit_log:
    description:
      - The restore audit log (JSON lines with C(time), C(mode), C(result), C(rto_seconds), C(database),
        C(target)). Default C(<path>/restore-audit.jsonl), where pg_restore_verified writes it.
    type: path
  databases:
    description:
      - Report only these databases, and expect each of them to have backups (a database without any raises
        C(no_success)) of O(server), or of every server the catalog names. Empty - every database in the catalog.
    type: list
    elements: str
    default: []
  window_days:
    description:
      - Window in days for the success rate and the failure counts (the plan's "100 % over 7 days").
    type: float
    default: 7
  no_success_hours:
    description:
      - Alert C(no_success) when the newest successful backup of a database is older than this (26 gives a daily
        backup two hours of slack).
    type: float
    default: 26
  no_success_action:
    description: Action of the C(no_success) alert.
    type: str
    choices: [ fail, warn, 'off' ]
    default: warn
  size_change_percent:
    description:
      - Alert C(size_change) when the newest backup is more than this many percent larger or smaller than the
        previous backup of the database made with the same format and compression.
    type: float
    default: 50
  size_change_action:
    description: Action of the C(size_change) alert.
    type: str
    choices: [ fail, warn, 'off' ]
    default: warn
  growth_percent:
    description:
      - Alert C(growth) when the database size recorded by the newest backup exceeds that of the newest backup at
        least O(growth_days) older by more than this many percent.
    type: float
    default: 20
  growth_days:
    description: Period of the growth comparison, in days.
    type: float
    default: 7
  growth_action:
    description: Action of the C(growth) alert.
    type: str
    choices: [ fail, warn, 'off' ]
    default: warn
  success_rate_target:
    description:
      - Alert C(success_rate) when successful runs over all runs of a database in O(window_days), in percent, is
        below this.
    type: float
    default: 100
  success_rate_action:
    description: Action of the C(success_rate) alert.
    type: str
    choices: [ fail, warn, 'off' ]
    default: warn
  free_disk_percent:
    description:
      - Alert C(free_disk) when the file system of O(path) has less than this many percent free.
    type: float
    default: 10
  free_disk_action:
    description: Action of the C(free_disk) alert.
    type: str
    choices: [ fail, warn, 'off' ]
    default: warn
  offsite_max_age_days:
    description: The C(offsite_age) alert fires for a database whose newest off-site copy (recorded by
      M(pgops.postgresql.backup_offsite)) is older than this many days; databases never copied do not fire it.
    type: float
    default: 8
    version_added: 0.2.0
  offsite_age_action:
    description: Action of the C(offsite_age) alert.
    type: str
    choices: [ fail, warn, 'off' ]
    default: warn
    version_added: 0.2.0
notes:
  - Ages in the file are those at the time of writing. Prometheus alert rules should rather use
    C(time() - pgops_backup_last_success_timestamp_seconds), which stays true between runs; see the collection's
    C(docs/monitoring.md) for rules matching these alerts.
  - Timestamps are Unix seconds (UTC); ratios are 0-1 (C(0.5) is 50 %).
seealso:
  - module: pgops.postgresql.backup_info
  - module: pgops.postgresql.pg_backup
  - module: pgops.postgresql.pg_restore_verified
  - name: node_exporter textfile collector
    description: How node_exporter reads C(*.prom) files.
    link: https://github.com/prometheus/node_exporter#textfile-collector
'''

EXAMPLES = r'''
- name: Write the backup metrics for node_exporter after the nightly backup
  pgops.postgresql.backup_metrics:
    path: /backups/database

- name: Monday's check - fail when a database had no backup for 26 hours or a backup run failed this week
  pgops.postgresql.backup_metrics:
    path: /backups/database
    databases: [pim_dev, pim_prod]
    no_success_action: fail
    success_rate_action: fail

- name: Two servers share the backup directory - this host writes its own server's series only
  pgops.postgresql.backup_metrics:
    path: /backups/database
    server: db1/postgres-pim
    dest: /var/lib/node_exporter/textfile_collector/pgops_backup.prom

- name: Only evaluate the alerts (nothing is written in check mode)
  pgops.postgresql.backup_metrics:
    path: /backups/database
    dest: /var/lib/node_exporter/textfile_collector/pgops_backup.prom
    free_disk_percent: 15
  check_mode: true
  register: backup_alerts
'''

RETURN = r'''
dest:
  description: The metrics file.
  returned: always
  type: str
  sample: /var/lib/node_exporter/textfile_collector/pgops_backup.prom
audit_log:
  description: The restore audit log read (it may not exist).
  returned: always
  type: str
  sample: /backups/database/restore-audit.jsonl
metrics:
  description: Every sample written (or to be written in check mode).
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Metric name.
      type: str
    labels:
      description: Label names and values.
      type: dict
    value:
      description: The value.
      type: float
  sample:
    - name: pgops_backup_last_size_bytes
      labels: {server: db1/postgres-pim, database: pim_prod, kind: full}
      value: 183512
alerts:
  description: Alerts firing, with their action.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: C(no_success), C(size_change), C(growth), C(success_rate), C(free_disk) or C(offsite_age).
      type: str
    server:
      description: The server (C("") when the records say none; for C(free_disk), O(server) or C("")).
      type: str
      version_added: 0.5.0
    database:
      description: The database; null for C(free_disk).
      type: str
    action:
      description: C(fail) or C(warn).
      type: str
    message:
      description: What crossed which threshold.
      type: str
  sample:
    - name: no_success
      server: db1/postgres-pim
      database: pim_prod
      action: fail
      message: "pim_prod: no successful backup for 30.5 h (threshold 26.0 h) on server db1/postgres-pim"
messages:
  description: The alerts' messages.
  returned: always
  type: list
  elements: str
summary:
  description: Counts of the run.
  returned: always
  type: dict
  contains:
    servers:
      description: Servers reported (C("") for records that say none).
      type: list
      elements: str
      version_added: 0.5.0
    databases:
      description: Databases reported.
      type: list
      elements: str
    backups:
      description: Successful backups in the catalog (of those databases).
      type: int
    failed:
      description: Failed-run records in the catalog (of those databases).
      type: int
    samples:
      description: Samples written.
      type: int
    alerts:
      description: Alerts firing.
      type: int
    failing:
      description: Alerts firing with action C(fail).
      type: int
catalog_warnings:
  description: Metadata files and audit log lines that could not be read.
  returned: always
  type: list
  elements: str
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.pgops.postgresql.plugins.module_utils._metrics import ACTIONS, DEFAULT_TEXTFILE, run_backup_metrics


def main():
    action = dict(type='str', choices=list(ACTIONS), default='warn')
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type='path', required=True, aliases=['backup_dir']),
            server=dict(type='str'),
            dest=dict(type='path', default=DEFAULT_TEXTFILE),
            audit_log=dict(type='path'),
            databases=dict(type='list', elements='str', default=[]),
            window_days=dict(type='float', default=7),
            no_success_hours=dict(type='float', default=26),
            no_success_action=dict(action),
            size_change_percent=dict(type='float', default=50),
            size_change_action=dict(action),
            growth_percent=dict(type='float', default=20),
            growth_days=dict(type='float', default=7),
            growth_action=dict(action),
            success_rate_target=dict(type='float', default=100),
            success_rate_action=dict(action),
            free_disk_percent=dict(type='float', default=10),
            free_disk_action=dict(action),
            offsite_max_age_days=dict(type='float', default=8),
            offsite_age_action=dict(action),
        ),
        supports_check_mode=True,
    )
    run_backup_metrics(module)


if __name__ == '__main__':
    main()
