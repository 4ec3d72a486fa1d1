# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgops.postgresql contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type


class ModuleDocFragment(object):
    # What pg_maintenance_info and pg_maintenance collect, and the thresholds of their alerts.
    DOCUMENTATION = r'''
options:
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
'''
