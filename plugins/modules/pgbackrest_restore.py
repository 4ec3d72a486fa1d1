#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgops.postgresql contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
module: pgbackrest_restore
short_description: Point-in-time restore with pgBackRest into a scratch instance, proven before it is used
version_added: 0.4.0
description:
  - Restores a pgBackRest stanza to a moment - a time, a named restore point, a transaction id, an LSN, or the
    end of the archive - into a B(scratch instance), never over the running server.
  - Before anything is touched, the target is checked against the recoverable window (the oldest backup's start
    to the newest archived WAL, from C(pgbackrest info) and the server's C(pg_stat_archiver)); a target outside it
    is refused with the window in the message.
  - The scratch is a new data directory beside the server's (O(scratch_directory)), owned by O(os_user) with mode
    C(0700). C(pgbackrest restore --archive-mode=off --target-action=promote) fills it (tablespaces mapped into it),
    so the scratch never writes into the repository. It starts on a free loopback port (O(scratch_port)) with a
    private socket directory, recovery replays the WAL up to the target and promotes.
  - It is then verified - it accepts connections, O(expected_tables), O(assertions), O(amcheck) - and
    O(mode=test) removes it and reports the RTO (a recovery drill), O(mode=new) leaves it running for you to copy
    data out (the answer to a bad C(DELETE)), O(mode=replace) stops the server, keeps its data directory as
    C(<data>.pgops-rollback-<ts>), moves the scratch data directory in, starts the server as it was started (its
    C(postmaster.opts), or O(server_start_command)) and verifies again; O(mode=rollback) switches the kept
    directory back.
  - A failure at any step leaves the running server untouched and removes the scratch instance; after the switch
    of a replace, a failure switches back automatically. A scratch left by a killed run is removed by the next run.
  - O(mode=replace) and O(mode=rollback) need O(confirm=true).
  - Every real run appends a JSON line to an audit log (O(audit_log)).
  - Runs on the server's host (natively, as root or as O(os_user)).
  - With O(container), the scratch is a new container on the server's image with a new volume, the server's other
    mounts read-only. O(mode=replace) then stops the server container, swaps the content of its data volume with
    the verified scratch volume's (renames of the plain local volumes' directories, done by a helper container of
    the same image - instant whatever the size; the volume keeps its name, so a compose file stays right), keeps the
    old content in a new volume C(<volume>-pgops-rollback-<ts>), starts the container and verifies again;
    O(mode=rollback) swaps it back. The data directory must be in a plain local volume (no driver options, not a
    bind mount) that no other running container uses; else use O(mode=new).
  - With O(container) and O(mode=replace) the server container may be B(stopped) - its data damaged or lost, the
    disaster recovery case. Nothing is asked of it then - the data directory is O(data_directory), its C(PGDATA) or
    C(/var/lib/postgresql/data); pgBackRest runs in the scratch container, made first; the recoverable window ends
    at the newest backup's end (C(latest) still replays the whole archive). The container is started on the
    verified data, its own kept in the rollback volume; a failure leaves it stopped on its own data.
author:
  - pgops.postgresql maintainers (@pgops)
requirements:
  - C(pgbackrest) on the host (natively) or in the server's image (with O(container)).
  - The PostgreSQL server binaries of the server's major version (C(pg_ctl)), under O(pg_bin_dir) or
    C(/usr/lib/postgresql/<major>/bin), natively; C(runuser) when the module runs as root.
  - C(psql) on the host, or in the container with O(container).
  - With O(container), the C(docker) (or O(container_runtime)) CLI on the host.
extends_documentation_fragment:
  - pgops.postgresql.attributes
  - pgops.postgresql.attributes.actiongroup_connect
  - pgops.postgresql.connection
  - pgops.postgresql.pgbackrest
attributes:
  check_mode:
    support: full
    details: Reads the server's settings and C(pgbackrest info), checks the options and the target against the
      recoverable window and returns the plan; creates, restores and stops nothing.
  diff_mode:
    support: none
  idempotent:
    support: none
    details: Every run restores again.
options:
  mode:
    description:
      - C(test) restore, verify, remove the scratch and report the RTO; C(new) leave the verified scratch instance
        running; C(replace) switch it in place of the server's data directory; C(rollback) switch the kept data
        directory back.
    type: str
    choices: [ test, new, replace, rollback ]
    default: test
  target_time:
    description:
      - Recover up to this moment, a timestamp with time zone (C(2026-11-28 14:30:00+01), C(2026-11-28T13:30:00Z);
        PostgreSQL's C(now()) output works). A time without a zone is refused.
      - Mutually exclusive with O(target_name), O(target_xid) and O(target_lsn). None of them means the end of the
        archive (C(latest)).
    type: str
  target_name:
    description:
      - Recover up to a restore point made with C(pg_create_restore_point()).
    type: str
  target_xid:
    description:
      - Recover up to this transaction id.
    type: str
  target_lsn:
    description:
      - Recover up to this WAL location (C(0/3000060)).
    type: str
  target_exclusive:
    description:
      - Stop just before the target instead of just after it.
    type: bool
    default: false
  target_timeline:
    description:
      - The timeline to recover along - C(current) (the backup's), C(latest) (PostgreSQL's default, the newest in
        the archive) or a number. After a O(mode=rollback) the archive holds the timeline of the undone replace -
        restores of the rolled-back server need C(current) until its next full backup.
    type: str
  backup_set:
    description:
      - The pgBackRest backup label to restore from (C(20261128-020000F)). By default the newest backup that ended
        before the target time or LSN, else the newest. Needed for a name or xid target older than the newest backup.
    type: str
  scratch_directory:
    description:
      - A new directory for the scratch instance (data directory C(data/), socket directory C(run/), log,
        tablespaces). Must not exist. Default C(<data_directory>.pgops-restore-<timestamp>) beside the server's
        data directory (on its file system, which O(mode=replace) needs).
    type: path
  scratch_port:
    description:
      - Loopback TCP port of the scratch instance, 1024 to 65535. Default a free one.
    type: int
  scratch_settings:
    description:
      - More server settings for the scratch instance only (C(-c name=value)), such as C(shared_buffers=128MB) when
        the server's own would not fit twice in memory.
      - Values may hold letters, digits and the characters C(_.:/@+,=-).
    type: dict
    default: {}
  data_directory:
    description:
      - The server's data directory. Default read from the server (C(data_directory), needs superuser or
        C(pg_read_all_settings)). O(mode=rollback) needs it when the server does not answer.
    type: path
  rollback_directory:
    description:
      - With O(mode=rollback), the kept directory to switch back. Default the newest C(<data>.pgops-rollback-*).
    type: path
  rollback_volume:
    description:
      - With O(container) and O(mode=rollback), the kept volume to swap back. Default the newest volume labelled
        C(pgops.rollback.of=<data volume>) (C(<volume>-pgops-rollback-<ts>)).
    type: str
  server_stop_command:
    description:
      - argv that stops the server for a switch (e.g. C([systemctl, stop, postgresql@15-main])). Default
        C(pg_ctl stop -m fast) as O(os_user); with O(container), client sessions are ended then C(docker stop).
    type: list
    elements: str
  server_start_command:
    description:
      - argv that starts the server after a switch. Default C(pg_ctl start) as O(os_user) with the arguments of the
        data directory's C(postmaster.opts) (how it was started), logging to O(server_log_file); with O(container),
        C(docker start).
    type: list
    elements: str
  server_log_file:
    description:
      - The log file of the server started by the default O(server_start_command). Default
        C(<data_directory>.pgops-server.log).
    type: path
  databases:
    description:
      - The databases to verify (O(expected_tables), O(amcheck)). Default every database that accepts connections.
    type: list
    elements: str
  expected_tables:
    description:
      - Tables (C(schema.table)) that must exist in every database of O(databases) after the restore.
    type: list
    elements: str
    default: []
  assertions:
    description:
      - SQL queries that must each return true in the restored instance, each with the database to run it in
        (see the examples).
    type: list
    elements: dict
    default: []
    suboptions:
      database:
        description: The database to run it in. Default O(maintenance_db).
        type: str
      sql:
        description: The query; its first column of the first row must be true.
        type: str
        required: true
  amcheck:
    description:
      - Check every B-tree index with C(bt_index_check) where the amcheck extension is available (created in a
        schema of its own and dropped again). Where it is not available, or cannot be created, the check reports
        C(unavailable) (with a warning for the latter) - never C(passed).
    type: bool
    default: false
  confirm:
    description:
      - Must be true for O(mode=replace) and O(mode=rollback), which stop the server and switch its data directory.
    type: bool
    default: false
  recovery_timeout:
    description:
      - Seconds to wait for recovery to reach its target and promote.
    type: int
    default: 3600
  start_timeout:
    description:
      - Seconds to wait for the switched server to accept connections.
    type: int
    default: 300
  process_max:
    description:
      - pgBackRest's C(--process-max) for the restore.
    type: int
  maintenance_db:
    description:
      - Database to connect to for the checks.
    type: str
    default: postgres
  lock_timeout:
    description:
      - Seconds to wait for another restore of the same server to finish.
    type: int
    default: 30
  audit_log:
    description:
      - Audit log file (JSON lines). Default C(pgops-pitr-audit.jsonl) beside the server's data directory.
    type: path
  audit_user:
    description:
      - Who asked for the restore, for the audit log.
    type: str
  audit_context:
    description:
      - More facts for the audit log, such as the AWX job id.
    type: dict
notes:
  - The scratch instance trusts connections on its private socket directory only (mode C(0700), owned by
    O(os_user)); over TCP on 127.0.0.1 it applies the server's own C(pg_hba.conf) rules.
  - After O(mode=replace) the server runs on a new timeline; its history file and first segment are archived
    right away. Take a full backup afterwards.
seealso:
  - module: pgops.postgresql.pg_restore_verified
'''

EXAMPLES = r'''
- name: Drill - restore the end of the archive into a scratch instance, verify, remove it, report the RTO
  pgops.postgresql.pgbackrest_restore:
    stanza: main
    mode: test
    expected_tables: [public.orders]
    databases: [shop]

- name: A DELETE went wrong at 14:32 - bring up the data of 14:30 beside the server to copy rows back
  pgops.postgresql.pgbackrest_restore:
    stanza: main
    mode: new
    target_time: "2026-11-28 14:30:00+01"
  register: pitr

- name: Replace the server's data with the state before the mistake (the old data directory is kept)
  pgops.postgresql.pgbackrest_restore:
    stanza: main
    mode: replace
    target_name: before-migration
    confirm: true
    assertions:
      - database: shop
        sql: SELECT count(*) > 0 FROM orders

- name: Undo that replace
  pgops.postgresql.pgbackrest_restore:
    stanza: main
    mode: rollback
    confirm: true
'''

RETURN = r'''
mode:
  description: The mode.
  returned: always
  type: str
result:
  description: C(passed) or C(failed).
  returned: when the run got past the checks
  type: str
plan:
  description: The steps, in order (in check mode, what would be done).
  returned: always
  type: list
  elements: str
target:
  description: The recovery target, C(type) (C(latest), C(time), C(name), C(xid), C(lsn)) and C(value) (a time as
    UTC).
  returned: unless mode is rollback
  type: dict
  sample: {type: time, value: "2026-11-28 13:30:00.000000+00"}
recoverable_window:
  description: C(start) (the oldest backup's start), C(end) (the newest archived WAL) and C(earliest_consistent)
    (the oldest backup's end, the first moment a time target can reach), ISO-8601 UTC.
  returned: unless mode is rollback
  type: dict
backup_set:
  description: The pgBackRest backup restored from.
  returned: when the target was accepted
  type: str
recovered_to:
  description: The last transaction replayed (C(pg_last_xact_replay_timestamp())), else the target; a time in
    ISO-8601 UTC (C(2026-11-28T13:29:00.123456Z)) like RV(recoverable_window).
  returned: when the scratch instance was verified
  type: str
rto_seconds:
  description: Seconds from the start of the run until the data was usable (test and new - the scratch verified;
    replace - the switched server verified; rollback - the server back).
  returned: on success
  type: float
phases:
  description: Seconds per phase (C(restore), C(start), C(recovery), C(verify), C(remove_scratch), C(switch),
    C(verify_switched)).
  returned: always
  type: dict
scratch:
  description: The scratch instance - C(directory), C(data_directory), C(host), C(port), C(socket_directory),
    C(log), C(running), C(removed); with O(mode=new) also C(connect), C(stop_command) and C(remove).
  returned: with mode new, and when a failure removed it
  type: dict
verification:
  description: Each check's result (C(connections), C(expected_tables), C(assertions), C(amcheck)) in the words
    of pg_restore_verified's checks - C(passed) (amcheck C(passed (N B-tree indexes))), C(failed), C(error) (an
    assertion could not run), C(unavailable) (amcheck); with O(mode=replace) under C(scratch) and C(switched).
  returned: always
  type: dict
rollback:
  description: The kept data directory (C(directory)) and, with O(mode=rollback), where the replaced one went
    (C(replaced_directory)); with O(container), the kept volume (C(volume)) and C(replaced_volume).
  returned: with mode replace and rollback
  type: dict
server:
  description: C(running=false) when the server container was stopped (a replace for disaster recovery).
  returned: with container and mode replace, when the server container was stopped
  type: dict
cleaned:
  description: Scratch directories of killed runs that this run stopped and removed.
  returned: when there were any
  type: list
  elements: str
space:
  description: Free bytes beside the data directory and the bytes the backup restores.
  returned: unless mode is rollback
  type: dict
failed_step:
  description: The step that failed (C(options), C(preflight), C(info), C(target), C(scratch), C(restore),
    C(start), C(recovery), C(verify), C(swap), C(rollback), C(internal)).
  returned: on failure
  type: str
error:
  description: What failed.
  returned: on failure
  type: str
audit_log:
  description: The audit log written.
  returned: outside check mode
  type: str
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.pgops.postgresql.plugins.module_utils._connection import (
    check_connection_params, connection_argument_spec,
)
from ansible_collections.pgops.postgresql.plugins.module_utils._options import fail_on_errors
from ansible_collections.pgops.postgresql.plugins.module_utils._pgbackrest import (
    pgbackrest_argument_spec, pgbackrest_param_errors,
)
from ansible_collections.pgops.postgresql.plugins.module_utils.pitr.container import ContainerBackend
from ansible_collections.pgops.postgresql.plugins.module_utils.pitr.job import run_pgbackrest_restore
from ansible_collections.pgops.postgresql.plugins.module_utils.pitr.native import NativeBackend
from ansible_collections.pgops.postgresql.plugins.module_utils.pitr.target import MODES, TARGET_OPTIONS, option_errors


def main():
    argument_spec = connection_argument_spec()
    argument_spec.update(pgbackrest_argument_spec())
    argument_spec.update(
        mode=dict(type='str', default='test', choices=list(MODES)),
        target_time=dict(type='str'),
        target_name=dict(type='str'),
        target_xid=dict(type='str'),
        target_lsn=dict(type='str'),
        target_exclusive=dict(type='bool', default=False),
        backup_set=dict(type='str'),
        target_timeline=dict(type='str'),
        scratch_directory=dict(type='path'),
        scratch_port=dict(type='int'),
        scratch_settings=dict(type='dict', default={}),
        data_directory=dict(type='path'),
        rollback_directory=dict(type='path'),
        rollback_volume=dict(type='str'),
        server_stop_command=dict(type='list', elements='str'),
        server_start_command=dict(type='list', elements='str'),
        server_log_file=dict(type='path'),
        databases=dict(type='list', elements='str'),
        expected_tables=dict(type='list', elements='str', default=[]),
        assertions=dict(type='list', elements='dict', default=[],
                        options=dict(database=dict(type='str'), sql=dict(type='str', required=True))),
        amcheck=dict(type='bool', default=False),
        confirm=dict(type='bool', default=False),
        recovery_timeout=dict(type='int', default=3600),
        start_timeout=dict(type='int', default=300),
        process_max=dict(type='int'),
        maintenance_db=dict(type='str', default='postgres'),
        lock_timeout=dict(type='int', default=30),
        audit_log=dict(type='path'),
        audit_user=dict(type='str'),
        audit_context=dict(type='dict'),
    )
    module = AnsibleModule(
        argument_spec=argument_spec,
        mutually_exclusive=[TARGET_OPTIONS],
        required_together=[('server_stop_command', 'server_start_command')],
        supports_check_mode=True,
    )
    check_connection_params(module)
    fail_on_errors(module, pgbackrest_param_errors(module.params) + option_errors(module.params),
                   failed_step='options')
    run_pgbackrest_restore(module, ContainerBackend if module.params.get('container') else NativeBackend)


if __name__ == '__main__':
    main()
