#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgops.postgresql contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
module: pgbackrest_info
short_description: pgBackRest backups, the recoverable window and the WAL archive's health, with alerts
version_added: 0.4.0
description:
  - Reads C(pgbackrest info --output=json) for O(stanza) and the server's C(pg_stat_archiver), and returns the
    backups (newest first), the recoverable window - from the start of the oldest backup to the newest archived
    WAL - and the archive's status.
  - Raises an alert (one sentence each) when WAL archiving is failing (C(pg_stat_archiver) has a failure newer
    than its last success), when the newest archived WAL is older than O(max_archive_age_minutes) while the
    server has written WAL since, when there is no full backup younger than O(max_full_age_days), when the stanza
    is not ok, when C(archive_mode) is off and when a backup has page checksum errors.
  - Read-only; never changes anything.
author:
  - pgops.postgresql maintainers (@pgops)
requirements:
  - Python 3.8 or newer on the managed host; the module uses the standard library only (no psycopg2).
  - C(pgbackrest) on the managed host, or in the server's image with O(container). Natively the module runs as root or
    as O(os_user); pgBackRest runs as O(os_user).
  - C(psql) (the archive status) of the server's major version or newer - natively from O(pg_bin_dir), else
    C(/usr/lib/postgresql/<major>/bin), else the E(PATH); with O(container), inside the container.
  - With O(container), the C(docker) or C(podman) command line (O(container_runtime)) on the managed host.
extends_documentation_fragment:
  - pgops.postgresql.attributes
  - pgops.postgresql.attributes.actiongroup_connect
  - pgops.postgresql.connection
  - pgops.postgresql.pgbackrest
attributes:
  check_mode:
    support: full
    details: Read-only (O(metrics_file) is not written in check mode); otherwise the same in check mode.
  diff_mode:
    support: none
  idempotent:
    support: full
options:
  max_archive_age_minutes:
    description:
      - Alert when the newest archived WAL is older than this many minutes while the server has written WAL since
        (an idle server, with nothing to archive, raises no alert). C(0) turns the alert off.
      - Set the server's C(archive_timeout) below it, so that a quiet server still archives its changes in time.
    type: float
    default: 60
  max_full_age_days:
    description:
      - Alert when the newest full backup is older than this many days, or there is none - the weekly full
        backup with a day of slack. C(0) turns the alert off.
    type: float
    default: 8
  repo:
    description:
      - Only this repository's backups and archive (C(--repo)). Unset - all repositories.
    type: int
  maintenance_db:
    description:
      - The database to connect to for C(pg_stat_archiver).
    type: str
    default: postgres
  metrics_file:
    description:
      - Also write the recoverable window and the archive's state as Prometheus textfile-collector metrics to this
        file (e.g. C(/var/lib/node_exporter/textfile_collector/pgops_pitr.prom)), atomically and only when they
        changed (not in check mode; the module then reports C(changed)). Its directory must exist.
      - "Metrics, each labelled C(stanza): C(pgops_pitr_window_start_seconds), C(pgops_pitr_window_end_seconds),
        C(pgops_pitr_archive_age_seconds), C(pgops_pitr_archive_pending_bytes), C(pgops_pitr_archive_failing),
        C(pgops_pitr_last_full_backup_seconds), C(pgops_pitr_backups) (by C(type)), C(pgops_pitr_alerts)."
    type: path
notes:
  - The window's end is the time C(pg_stat_archiver) last archived a WAL segment (no earlier than the newest
    backup's end); changes after it are only in WAL not archived yet. C(pg_stat_archiver) counts since its last
    reset (C(archive.archived_count), C(archive.failed_count) in RV(archive)).
seealso:
  - module: pgops.postgresql.pgbackrest_backup
  - module: pgops.postgresql.pgbackrest_stanza
  - module: pgops.postgresql.backup_info
  - name: pg_stat_archiver
    description: The WAL archiver's statistics.
    link: https://www.postgresql.org/docs/current/monitoring-stats.html#MONITORING-PG-STAT-ARCHIVER-VIEW
'''

EXAMPLES = r'''
- name: Backups, window and archive of the pim stanza
  pgops.postgresql.pgbackrest_info:
    stanza: pim
  register: pitr

- name: Fail the monitoring job on an alert
  ansible.builtin.assert:
    that: pitr.alerts | length == 0
    fail_msg: "{{ pitr.alerts | join('; ') }}"

- name: Tell how far back we can go
  ansible.builtin.debug:
    msg: "recoverable from {{ pitr.recoverable_window.start }} to {{ pitr.recoverable_window.end }}"
  when: pitr.recoverable_window
'''

RETURN = r'''
metrics_file:
  description: The metrics file written (or, in check mode, that would be), when O(metrics_file) is set.
  returned: when O(metrics_file) is set
  type: str
backups:
  description: The backups, newest first, each as RV(pgops.postgresql.pgbackrest_backup#module:backup) of
    M(pgops.postgresql.pgbackrest_backup) (label, type, started_at, finished_at, size, repo_size, delta, repo_delta,
    wal_start, wal_stop, lsn_start, lsn_stop, annotations, prior, reference, error, repo).
  returned: always
  type: list
  elements: dict
recoverable_window:
  description: The times a point-in-time restore can reach, ISO-8601 UTC (C(start), C(end)) and as Unix times
    (C(start_epoch), C(end_epoch)); null when there is no backup.
  returned: always
  type: dict
  sample: {start: "2026-11-22T02:00:00Z", end: "2026-11-29T10:41:07.123456Z", start_epoch: 1795312800,
           end_epoch: 1795948867.123456}
archive:
  description: The WAL archive - C(min_wal) and C(max_wal) in the repository (current cluster), and from
    C(pg_stat_archiver) C(last_archived_wal), C(last_archived_time), C(age_seconds), C(archived_count),
    C(failed_count), C(last_failed_wal), C(last_failed_time); C(failing) (a failure newer than the last success),
    C(pending_wal_bytes) (WAL written after the last archived segment, null when unknown), C(mode) and C(command)
    (C(archive_mode), C(archive_command)).
  returned: always
  type: dict
  sample: {min_wal: "000000010000000000000001", max_wal: "00000001000000000000002A",
           last_archived_wal: "00000001000000000000002A", last_archived_time: "2026-11-29T10:41:07.123456Z",
           age_seconds: 42.0, archived_count: 42, failed_count: 0, last_failed_wal: null, last_failed_time: null,
           failing: false, pending_wal_bytes: 1024, mode: "on", command: "pgbackrest --stanza=pim archive-push %p"}
server:
  description: C(reachable) - whether the server answered - and C(error) (why not). Natively, a server that does
    not answer is an alert, not a failure - the backups and the window come from the repository, the window then
    ending at the newest backup's end (a lower bound) - so a disaster recovery can still read them; with
    O(container) it fails.
  returned: always
  type: dict
  sample: {reachable: true, error: null}
alerts:
  description: One sentence per problem found; empty when all is well.
  returned: always
  type: list
  elements: str
  sample: ["WAL archiving is failing: 12 failed attempt(s) since 2026-11-28T22:00:00Z, the last for
           00000001000000000000002B at 2026-11-29T10:41:07Z, newest archived 00000001000000000000002A at
           2026-11-29T09:30:00Z; see the server log and pgBackRest's archive-push log"]
status:
  description: The stanza's status - C(code) and C(message) of pgBackRest (C(0), C(ok)), C(backup_running),
    C(cipher) and C(repos) (each with C(key), C(cipher), C(code), C(message)).
  returned: always
  type: dict
failed_step:
  description: Where a failure happened - C(options), C(preflight), C(info), C(connect).
  returned: failure
  type: str
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.pgops.postgresql.plugins.module_utils._connection import (
    connection_argument_spec, connection_param_errors,
)
from ansible_collections.pgops.postgresql.plugins.module_utils._options import fail_on_errors
from ansible_collections.pgops.postgresql.plugins.module_utils._pgbackrest import (
    info_argument_spec, info_param_errors, pgbackrest_argument_spec, pgbackrest_param_errors, run_pgbackrest_info,
)


def main():
    argument_spec = connection_argument_spec()
    argument_spec.update(pgbackrest_argument_spec())
    argument_spec.update(info_argument_spec())
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    fail_on_errors(module, connection_param_errors(module.params) + pgbackrest_param_errors(module.params) +
                   info_param_errors(module.params), failed_step='options')
    run_pgbackrest_info(module)


if __name__ == '__main__':
    main()
