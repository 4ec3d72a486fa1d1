#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgops.postgresql contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
module: pg_maintenance
short_description: Monthly PostgreSQL maintenance - ANALYZE, optional VACUUM and REINDEX, history and an HTML report
version_added: 0.1.0
description:
  - Runs C(ANALYZE) on whole databases or listed tables; optionally C(VACUUM (ANALYZE)) and
    C(REINDEX CONCURRENTLY) of chosen tables and indexes (both off by default).
  - Decides first, acts second - listed objects are checked to exist before anything runs, so check mode
    predicts exactly what a real run does.
  - Then collects what M(pgops.postgresql.pg_maintenance_info) collects (the same options) and writes one history
    record C(maintenance_<YYYYMMDD_HHMMSS>.json) and one self-contained HTML page C(maintenance_<YYYYMMDD_HHMMSS>.html)
    (also copied to C(latest.html)) into O(history_dir) - charts of database and backup size over time (inline
    SVG; no network, no external scripts or styles), top tables, unused indexes, alerts, sessions and the last
    restore verifications. Files are written atomically (C(0640) in a C(0750) directory).
  - Growth alerts (the plan's "more than 20% in a week") are computed from those records and the backup metadata.
author:
  - pgops.postgresql maintainers (@pgops)
extends_documentation_fragment:
  - pgops.postgresql.connection
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
    details: Connects read-only, checks every listed object and returns the statements it would run (status
      C(planned)) and the facts it reads now; runs no statement and writes no file.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: none
  idempotent:
    description: When run twice in a row outside check mode, with the same arguments, the second invocation indicates no change.
    support: none
    details: Every run analyzes again and adds a history record and a report.
options:
  analyze:
    description:
      - Run C(ANALYZE) - on O(analyze_tables), or on the whole database when that list is empty.
    type: bool
    default: true
  analyze_tables:
    description:
      - Tables to analyze, as C(schema.table) (a bare name is in C(public)). Empty for all.
    type: list
    elements: str
    default: []
  vacuum:
    description:
      - Also run C(VACUUM (ANALYZE)) - on O(vacuum_tables), or the whole database when that list is empty. Off
        by default. (A whole-database VACUUM (ANALYZE) makes a separate whole-database ANALYZE unnecessary, so
        it is then not run again.)
    type: bool
    default: false
  vacuum_tables:
    description:
      - Tables for O(vacuum), as C(schema.table). Empty for all.
    type: list
    elements: str
    default: []
  reindex_tables:
    description:
      - Tables whose indexes are rebuilt with C(REINDEX TABLE CONCURRENTLY) (PostgreSQL 12 or newer). Empty
        (the default) rebuilds nothing.
    type: list
    elements: str
    default: []
  reindex_indexes:
    description:
      - Indexes rebuilt with C(REINDEX INDEX CONCURRENTLY), as C(schema.index). Empty (the default) rebuilds
        nothing.
    type: list
    elements: str
    default: []
  write_history:
    description:
      - Write the history record and the HTML report. Needs O(history_dir) or O(backup_dir).
    type: bool
    default: true
  databases:
    description:
      - Databases to look at. Names may hold spaces, quotes and unicode.
      - Mutually exclusive with O(all_databases); one of the two is required.
    type: list
    elements: str
    aliases: [ database, db ]
  all_databases:
    description:
      - Every database that accepts connections and is not a template.
    type: bool
    default: false
  maintenance_db:
    description:
      - Database to connect to when listing databases for O(all_databases).
    type: str
    default: postgres
  gather:
    description:
      - What to collect. C(tables) is sizes (heap, indexes, TOAST), live and dead tuples and the last (auto)vacuum
        and (auto)analyze; C(bloat) an estimate of the space a table holds beyond what its rows need (from
        C(pg_stats), so only for analyzed tables); C(indexes) the unused indexes (C(idx_scan = 0), unique,
        primary-key and exclusion indexes left out); C(cache) the cache hit ratio; C(sessions) long-running and
        idle-in-transaction sessions; C(connections) connections per database against C(max_connections);
        C(expected_tables) the check that expected tables exist.
      - The database size and the server version are always collected.
    type: list
    elements: str
    choices: [ all, tables, bloat, indexes, cache, sessions, connections, expected_tables ]
    default: [ all ]
  expected_tables:
    description:
      - Tables that must exist in every database of O(databases), as C(schema.table) (a bare name is in
        C(public); the first dot separates schema and table). A missing table is a C(critical) alert.
      - When unset, the tables of the newest verified backup of each database in O(backup_dir) (the metadata's
        C(tables)); when no backup is verified, the newest successful backup, with a warning that says so; when
        there is no backup either, nothing is compared (C(source=none)).
      - An empty list expects nothing.
    type: list
    elements: str
  backup_dir:
    description:
      - The backup directory (O(pgops.postgresql.pg_backup#module:dest)). Its metadata gives the expected tables,
        the backup size chart, backup alerts, the newest backup of each database and the last restore
        verifications.
    type: path
  history_dir:
    description:
      - Directory of the maintenance history, one C(maintenance_<YYYYMMDD_HHMMSS>.json) record per run.
      - Defaults to C(<backup_dir>/maintenance).
    type: path
  top_tables:
    description:
      - How many tables, biggest first, are returned per database (and kept in the history).
    type: int
    default: 20
  thresholds:
    description:
      - When a fact becomes an alert.
    type: dict
    default: {}
    suboptions:
      long_running_seconds:
        description: An active query running longer than this is reported (C(warning)).
        type: int
        default: 300
      idle_in_transaction_seconds:
        description: A session idle in a transaction longer than this is reported (C(warning)).
        type: int
        default: 60
      connections_pct:
        description: Client connections at or above this percentage of C(max_connections) are C(critical).
        type: float
        default: 80.0
      cache_hit_pct:
        description: A database cache hit ratio below this percentage is a C(warning).
        type: float
        default: 90.0
      cache_min_blocks:
        description: The cache hit ratio is judged only after this many blocks were read or hit.
        type: int
        default: 1000
      dead_tuples_pct:
        description: A table whose dead tuples reach this percentage of its tuples is a C(warning).
        type: float
        default: 20.0
      dead_tuples_min:
        description: The dead-tuple alert needs at least this many dead tuples too.
        type: int
        default: 1000
      bloat_pct:
        description: A table whose estimated bloat reaches this percentage of its pages is a C(warning).
        type: float
        default: 50.0
      bloat_min_bytes:
        description: The bloat alert needs at least this many bytes of bloat too.
        type: int
        default: 8388608
      growth_pct:
        description: Database growth above this percentage within O(thresholds.growth_days) is a C(warning).
        type: float
        default: 20.0
      growth_days:
        description: The growth window, in days (the plan's week).
        type: int
        default: 7
      backup_size_change_pct:
        description: A backup whose size differs from the previous one made the same way by more is a C(warning).
        type: float
        default: 50.0
seealso:
  - module: pgops.postgresql.pg_maintenance_info
  - module: pgops.postgresql.backup_info
  - name: Routine vacuuming
    description: PostgreSQL's guide to VACUUM and ANALYZE.
    link: https://www.postgresql.org/docs/current/routine-vacuuming.html
'''

EXAMPLES = r'''
- name: The plan's monthly task - ANALYZE pim_dev, history and report beside the backups
  pgops.postgresql.pg_maintenance:
    container: postgres-pim
    login_user: pim_user
    databases: pim_dev
    backup_dir: /backups/database
  register: monthly

- name: Show where the report is
  ansible.builtin.debug:
    msg: "{{ monthly.report_path }}"

- name: VACUUM (ANALYZE) two busy tables and rebuild one index without blocking writes
  pgops.postgresql.pg_maintenance:
    login_user: postgres
    databases: pim_prod
    backup_dir: /backups/database
    analyze: false
    vacuum: true
    vacuum_tables: [public.products, public.product_attributes]
    reindex_indexes: [public.products_specs_idx]
'''

RETURN = r'''
actions:
  description: The statements run (C(status=done)) or, in check mode, planned (C(status=planned)), in order.
  returned: always
  type: list
  elements: dict
  contains:
    database:
      description: Database the statement runs in.
      type: str
    action:
      description: C(analyze), C(vacuum_analyze) or C(reindex).
      type: str
    target:
      description: C(schema.table) or C(schema.index), or C((all tables)).
      type: str
    sql:
      description: The statement, identifiers quoted.
      type: str
      sample: ANALYZE "public"."products"
    status:
      description: C(done) or C(planned).
      type: str
    duration_seconds:
      description: Wall time of the statement (null when planned).
      type: float
record_path:
  description: The history record written (in check mode, the one that would be written).
  returned: always
  type: str
  sample: /backups/database/maintenance/maintenance_20261215_030000.json
report_path:
  description: The HTML report written (in check mode, the one that would be written).
  returned: always
  type: str
  sample: /backups/database/maintenance/maintenance_20261215_030000.html
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

from ansible_collections.pgops.postgresql.plugins.module_utils._maintenance import (
    MUTUALLY_EXCLUSIVE, REQUIRED_ONE_OF, info_argument_spec, run_maintenance,
)


def main():
    argument_spec = info_argument_spec()
    argument_spec.update(
        analyze=dict(type='bool', default=True),
        analyze_tables=dict(type='list', elements='str', default=[]),
        vacuum=dict(type='bool', default=False),
        vacuum_tables=dict(type='list', elements='str', default=[]),
        reindex_tables=dict(type='list', elements='str', default=[]),
        reindex_indexes=dict(type='list', elements='str', default=[]),
        write_history=dict(type='bool', default=True),
    )
    module = AnsibleModule(
        argument_spec=argument_spec,
        mutually_exclusive=MUTUALLY_EXCLUSIVE,
        required_one_of=REQUIRED_ONE_OF,
        supports_check_mode=True,
    )
    run_maintenance(module)


if __name__ == '__main__':
    main()
