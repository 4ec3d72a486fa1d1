#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgops.postgresql contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
module: pg_maintenance_info
short_description: Collect PostgreSQL maintenance and health facts - sizes, unused indexes, bloat, vacuum, sessions
version_added: 0.1.0
description:
  - Collects, per database, table sizes (heap, indexes, TOAST), unused indexes, a bloat estimate, dead tuples and
    the last (auto)vacuum and (auto)analyze, the cache hit ratio and the database size; for the server,
    long-running and idle-in-transaction sessions and connections per database against C(max_connections).
  - Checks that expected tables exist - a list, or by default the tables of the newest verified backup.
  - Reads the backup metadata and the maintenance history for trends (database growth within a week, backup
    sizes) and turns facts over thresholds into alerts.
  - Read-only; never writes. M(pgops.postgresql.pg_maintenance) runs ANALYZE (and optionally VACUUM and REINDEX)
    and writes the history and the HTML report.
  - Runs C(psql) natively, or inside a container with O(container) (C(docker exec); no Python needed there).
author:
  - pgops.postgresql maintainers (@pgops)
requirements:
  - Python 3.8 or newer on the managed host; the module uses the standard library only (no psycopg2).
  - C(psql) of the server's major version or newer - natively from O(pg_bin_dir), else
    C(/usr/lib/postgresql/<major>/bin), else the E(PATH); with O(container), inside the container.
  - With O(container), the C(docker) or C(podman) command line (O(container_runtime)) on the managed host.
extends_documentation_fragment:
  - pgops.postgresql.attributes
  - pgops.postgresql.attributes.actiongroup_connect
  - pgops.postgresql.connection
  - pgops.postgresql.databases
  - pgops.postgresql.maintenance
attributes:
  check_mode:
    support: full
    details: Read-only; behaves the same in check mode.
  diff_mode:
    support: none
  idempotent:
    support: full
seealso:
  - module: pgops.postgresql.pg_maintenance
  - module: pgops.postgresql.backup_info
  - name: Monitoring database activity
    description: PostgreSQL's statistics views (pg_stat_activity, pg_stat_user_tables, pg_stat_user_indexes).
    link: https://www.postgresql.org/docs/current/monitoring-stats.html
'''

EXAMPLES = r'''
- name: Health facts of pim_dev in the postgres-pim container; expected tables from the newest verified backup
  pgops.postgresql.pg_maintenance_info:
    container: postgres-pim
    login_user: pim_user
    databases: pim_dev
    backup_dir: /backups/database
  register: pim_health

- name: Fail on a critical alert (e.g. a missing table)
  ansible.builtin.assert:
    that: pim_health.alerts | selectattr('level', 'equalto', 'critical') | list | length == 0
    fail_msg: "{{ pim_health.alerts | selectattr('level', 'equalto', 'critical') | map(attribute='message') | join('; ') }}"

- name: Only connections and expected tables (fast), with an explicit list
  pgops.postgresql.pg_maintenance_info:
    login_host: db.example.com
    login_user: monitor
    login_password: "{{ vault_monitor_password }}"
    databases: pim_prod
    gather: [connections, expected_tables]
    expected_tables: [public.products, public.categories, public.orders]
'''

RETURN = r'''
server:
  description: Server facts.
  returned: always
  type: dict
  contains:
    version:
      description: C(server_version).
      type: str
      sample: "15.18 (Debian 15.18-0+deb12u1)"
    version_num:
      description: C(server_version_num).
      type: int
    max_connections:
      description: C(max_connections).
      type: int
    superuser_reserved_connections:
      description: C(superuser_reserved_connections).
      type: int
    now:
      description: The server's clock.
      type: str
    connections:
      description: Client connections, C(total), C(pct) of C(max_connections) and C(by_database) (name to count).
      type: dict
      returned: when O(gather) includes C(connections)
    long_running:
      description: Active sessions over O(thresholds.long_running_seconds) (C(pid), C(database), C(user),
        C(application), C(client), C(state), C(since), C(seconds), C(query) cut to 200 characters).
      type: list
      elements: dict
      returned: when O(gather) includes C(sessions)
    idle_in_transaction:
      description: Sessions idle in a transaction over O(thresholds.idle_in_transaction_seconds), as in RV(server.long_running).
      type: list
      elements: dict
      returned: when O(gather) includes C(sessions)
databases:
  description: One entry per database.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Database name.
      type: str
    size_bytes:
      description: C(pg_database_size()).
      type: int
    stats_reset:
      description: When the database's statistics were last reset (unused-index counts start there).
      type: str
    cache:
      description: C(hit_pct), C(blocks), C(blks_hit), C(blks_read), C(stats_reset) from C(pg_stat_database).
      type: dict
      returned: when O(gather) includes C(cache)
    tables:
      description:
        - The O(top_tables) biggest tables and materialized views - C(schema), C(name), C(kind), C(total_bytes),
          C(heap_bytes), C(indexes_bytes), C(toast_bytes) (the three add up to C(total_bytes)), C(live_tuples),
          C(dead_tuples), C(dead_pct), C(last_vacuum), C(last_autovacuum), C(last_analyze), C(last_autoanalyze),
          the four counts, C(relpages), C(reltuples), C(expected_pages), C(bloat_bytes) and C(bloat_pct)
          (null when there are no statistics to estimate from).
      type: list
      elements: dict
      returned: when O(gather) includes C(tables) or C(bloat)
    own_table_count:
      description:
        - Number of ordinary tables outside the system schemas that no extension owns - what a backup's metadata
          counts (the disaster recovery's health check compares the two).
      type: int
      returned: always
      version_added: 0.5.0
    table_count:
      description: Number of tables and materialized views.
      type: int
      returned: when O(gather) includes C(tables) or C(bloat)
    bloat_bytes:
      description: Sum of the estimated bloat of all tables.
      type: int
      returned: when O(gather) includes C(tables) or C(bloat)
    unused_indexes:
      description: Indexes never scanned, biggest first (C(schema), C(table), C(name), C(idx_scan), C(size_bytes), C(definition)).
      type: list
      elements: dict
      returned: when O(gather) includes C(indexes)
    expected_tables:
      description:
        - C(source) (C(option), C(verified_backup), C(newest_backup) or C(none)), C(backup_id), C(note),
          C(checked), C(expected) and C(missing) (C(schema.table) names).
      type: dict
      returned: when O(gather) includes C(expected_tables)
    size_series:
      description: Database size over time, oldest first, as C([time, bytes, source]) with source C(maintenance) or C(backup).
      type: list
      elements: list
    backup_series:
      description: Size of each successful backup, oldest first, as C([started_at, bytes, backup id]).
      type: list
      elements: list
    growth:
      description:
        - Growth against the newest size at least O(thresholds.growth_days) older - C(pct), C(flag), C(since),
          C(reference_bytes), C(bytes), C(days), C(note); C(pct) is null (and C(note) says why) without one.
      type: dict
alerts:
  description: Alerts, most severe first, each with C(level) (C(critical), C(warning), C(info)), C(check), C(database) and C(message).
  returned: always
  type: list
  elements: dict
  sample:
    - level: critical
      check: expected_tables
      database: pim_dev
      message: "missing public.orders (expected from tables of the newest verified backup 20261128_020000)"
backups:
  description: Backup catalog figures for these databases (C(count), C(failed), C(total_size), C(success_rate),
    C(alerts), and per database C(newest_id), C(newest_age_seconds), C(newest_size), C(size_change_pct)); null without O(backup_dir) or backups.
  returned: always
  type: dict
verifications:
  description: The last restore verification of each verified backup, newest first (at most 10).
  returned: always
  type: list
  elements: dict
history_runs:
  description: Number of earlier runs in the history directory.
  returned: always
  type: int
collected_at:
  description: When the facts were collected (ISO 8601 with offset).
  returned: always
  type: str
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.pgops.postgresql.plugins.module_utils._connection import check_connection_params
from ansible_collections.pgops.postgresql.plugins.module_utils._maintenance import info_argument_spec, run_pg_maintenance_info
from ansible_collections.pgops.postgresql.plugins.module_utils._options import (
    database_choice_argument_spec, database_choice_errors, database_choice_rules, fail_on_errors,
)

CHOICE = database_choice_rules()


def option_errors(p):
    """pg_maintenance_info's rules that AnsibleModule cannot declare (one message each, naming the option and the
    fix); called first thing in main(), before any work."""
    return database_choice_errors(p)


def main():
    argument_spec = info_argument_spec()
    argument_spec.update(database_choice_argument_spec())
    module = AnsibleModule(
        argument_spec=argument_spec,
        required_one_of=CHOICE['required_one_of'],
        required_if=CHOICE['required_if'],
        supports_check_mode=True,
    )
    check_connection_params(module)
    fail_on_errors(module, option_errors(module.params))
    run_pg_maintenance_info(module)


if __name__ == '__main__':
    main()
