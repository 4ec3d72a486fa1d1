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
    details: Connects read-only, checks every listed object and returns the statements it would run (status
      C(planned)) and the facts it reads now; runs no statement and writes no file.
  diff_mode:
    support: none
  idempotent:
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
  description: Server facts, as M(pgops.postgresql.pg_maintenance_info) returns them (version, connections, sessions).
  returned: always
  type: dict
databases:
  description: Per database facts, as M(pgops.postgresql.pg_maintenance_info) returns them (size, cache, tables,
    unused indexes, expected tables, growth).
  returned: always
  type: list
  elements: dict
alerts:
  description: Alerts, as M(pgops.postgresql.pg_maintenance_info) returns them (C(level), C(check), C(database), C(message)).
  returned: always
  type: list
  elements: dict
backups:
  description: Backup catalog figures, as M(pgops.postgresql.pg_maintenance_info) returns them.
  returned: always
  type: dict
verifications:
  description: The last restore verifications, as M(pgops.postgresql.pg_maintenance_info) returns them.
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
from ansible_collections.pgops.postgresql.plugins.module_utils._maintenance import info_argument_spec, run_pg_maintenance
from ansible_collections.pgops.postgresql.plugins.module_utils._options import (
    database_choice_argument_spec, database_choice_errors, database_choice_rules, fail_on_errors,
)

CHOICE = database_choice_rules()


def option_errors(p):
    """pg_maintenance's rules that AnsibleModule cannot declare (one message each, naming the option and the fix);
    called first thing in main(), before any work."""
    return database_choice_errors(p)


def main():
    argument_spec = info_argument_spec()
    argument_spec.update(database_choice_argument_spec())
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
        required_one_of=CHOICE['required_one_of'],
        # the history goes to history_dir, by default <backup_dir>/maintenance
        required_if=CHOICE['required_if'] + [('write_history', True, ('history_dir', 'backup_dir'), True)],
        supports_check_mode=True,
    )
    check_connection_params(module)
    fail_on_errors(module, option_errors(module.params))
    run_pg_maintenance(module)


if __name__ == '__main__':
    main()
