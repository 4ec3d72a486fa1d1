#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgops.postgresql contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
module: pg_restore_verified
short_description: Restore a pgops backup into a scratch database, prove it, then swap it in atomically
version_added: 0.1.0
description:
  - Chooses a backup from the catalog that M(pgops.postgresql.pg_backup) writes (by id, C(latest),
    C(latest_verified), or the newest before a time), checks its sha256 against the metadata and that its
    format is readable, before anything is touched.
  - Restores it into a scratch database C(<target>__restore_<id>) and verifies it - the exact row count of every
    table and the sets of tables, views, sequences and functions against the metadata, optional SQL assertions,
    optional amcheck of B-tree indexes.
  - O(mode=test) (a restore drill) drops the scratch database and records the result in the backup's metadata.
    O(mode=new) renames it to a new database. O(mode=replace) takes a C(pre_restore) backup of the target, gives
    the scratch database the target's database-level privileges, settings, connection limit and comment (which
    pg_dump leaves out), ends the target's sessions and swaps by renames in one transaction (target to C(<target>__rollback_<ts>), scratch
    to target), so the outage is only the rename and the previous content is kept. O(mode=rollback) swaps the
    newest rollback database back.
  - If any step fails the target is untouched, the scratch database is dropped and the error names the step.
    The plain-format restore sends its own C(BEGIN) and C(COMMIT), the C(COMMIT) only once the whole dump went
    through and every stage exited 0; the module's child processes die with it; a scratch database left by a
    killed run is dropped (and audited) by the next restore of that target.
  - A failure marks the backup C(failed) only on evidence about the backup itself; any other failure is recorded
    as C(inconclusive) (RV(verdict)). With O(fallback) a C(latest) restore falls back to the next older backup
    when the newest proves bad.
  - O(protected_databases) with O(confirm) guard production in every mode that replaces.
  - Every run appends a JSON line to an audit log - who, when, which backup, target, mode, result, RTO, the
    recovery point (RV(data_as_of)), every attempt; refusals too. Options that do not fit together are refused
    before anything is read or written, and are not audited.
author:
  - pgops.postgresql maintainers (@pgops)
requirements:
  - Python 3.8 or newer on the managed host; the module uses the standard library only (no psycopg2).
  - C(psql), C(pg_restore) (custom and directory backups) and C(pg_dump) (the pre_restore backup of O(mode=replace))
    of the server's major version or newer - natively from O(pg_bin_dir), else C(/usr/lib/postgresql/<major>/bin),
    else the E(PATH); with O(container), inside the container.
  - With O(container), the C(docker) or C(podman) command line (O(container_runtime)) on the managed host.
  - For plain SQL backups, their decompressor on the managed host - C(zstd), C(gzip) or C(lz4).
  - C(age) on the managed host to restore an encrypted backup (O(age_identity_file) or O(age_identity)).
extends_documentation_fragment:
  - pgops.postgresql.attributes
  - pgops.postgresql.attributes.actiongroup_connect
  - pgops.postgresql.connection
attributes:
  check_mode:
    support: full
    details: Chooses the backup, checks its file (read-only) and returns the plan; creates, restores and records nothing.
  diff_mode:
    support: none
  idempotent:
    support: none
    details: Every run restores again (test mode records a new verification).
options:
  path:
    description:
      - The backup directory (O(pgops.postgresql.pg_backup#module:dest)).
      - It must exist. An empty O(path), one that does not exist and one that is not a directory are refused
        before anything is read or written (nothing is created, nothing audited).
    type: path
    required: true
  database:
    description:
      - The database whose backups to choose from. Needed when an id exists for several databases.
    type: str
  source_server:
    description:
      - Restore a backup of another server (its O(server) name in the catalog), on purpose - for instance
        staging refreshed from production's backup. Unset, only this server's own backups are chosen (O(server),
        or its derived name); a backup id, C(latest) or C(latest_verified) that exists only for another server is
        refused, naming that server. The target's protection (O(protected_databases), O(confirm)) applies as
        always; the result and the audit line name both servers.
      - Backups recorded before 0.5.0 have no server name; theirs is derived from the host and container they
        recorded.
    type: str
    version_added: 0.5.0
  instance:
    description:
      - Where a drill (O(mode=test)) restores and verifies. C(throwaway) - a new, blank PostgreSQL instance of the
        backup's major made for this drill and removed after it; the production server sees no session and writes
        no WAL for it, and the instance gets the backup's roles from its globals dump first, as a disaster recovery
        onto a new server would, so a backup that cannot restore on a blank server fails the drill, saying why.
        For a server in a container, the instance is a container of that container's own image (O(instance_image)
        to name another), with no network and its data on a new volume; natively, the host's binaries of that
        major (O(pg_bin_dir) or C(/usr/lib/postgresql/<major>/bin)), a directory under O(instance_dir), its unix
        socket and loopback only. It runs with restore settings (C(fsync), C(full_page_writes) off,
        C(wal_level=minimal)).
      - C(server) - a scratch database on the server, as before 0.5.0.
      - C(auto) - C(throwaway) where the server's image or binaries are at hand (and the module runs as root or as
        the C(postgres) OS user), else C(server); the result's RV(instance) says which and why. See
        docs/restore.md, Drills.
      - Other modes ignore it.
    type: str
    choices: [auto, throwaway, server]
    default: auto
    version_added: 0.5.0
  instance_image:
    description:
      - The image of the throwaway drill container, when the server's container is not on this host (a drill host
        rehearsing a disaster recovery from the off-site copy). Unset, the image of O(container).
    type: str
    version_added: 0.5.0
  instance_dir:
    description:
      - The directory under which a native throwaway drill instance keeps its data (a new C(pgops-drill-*)
        directory, removed after the drill). Its free space is checked first (the database's size, times
        O(server_free_space_ratio), plus 64 MiB).
    type: path
    default: /var/tmp
    version_added: 0.5.0
  backup_id:
    description:
      - C(YYYYMMDD_HHMMSS) (e.g. C(20241219_143022)), C(latest), or C(latest_verified) (the newest backup whose
        last verification passed). An unknown id fails with the nearest ids.
      - An empty O(backup_id) is refused (an empty survey answer never means the newest backup).
    type: str
    default: latest
  before:
    description:
      - Choose among backups started before this time (C(2024-12-19 14:30), ISO 8601, or a backup id).
    type: str
  mode:
    description:
      - C(test) restore drill, C(new) restore into a new database, C(replace) swap into the target, C(rollback)
        swap the newest rollback database back into the target.
    type: str
    choices: [ test, new, replace, rollback ]
    default: test
  target:
    description:
      - Database to restore into (C(new), C(replace)) or to roll back. Defaults to the backup's database.
      - Required with O(mode=new); O(mode=rollback) needs O(target) or O(database).
      - With O(mode=replace) and no O(database), the backups of O(target) itself are chosen; restoring another
        database's backup into it needs O(database) named explicitly.
    type: str
  fallback:
    description:
      - With O(backup_id=latest) or O(backup_id=latest_verified), restore the newest backup that proves itself -
        when a backup fails for a reason that is its own (sha256, an unreadable archive, a restore error caused
        by its content, row counts or objects that differ, an assertion that returns false), record that and try
        the next older one, up to O(max_attempts) backups. A failure that is not the backup's (a killed client, a
        full disk, a lost connection, an assertion that cannot run) stops the run, recorded as inconclusive.
      - Every attempt is returned in RV(attempts) and written to the audit log.
    type: bool
    default: false
    version_added: 0.2.0
  max_attempts:
    description:
      - With O(fallback), how many backups to try at most.
    type: int
    default: 3
    version_added: 0.2.0
  max_age_hours:
    description:
      - With O(backup_id=latest), O(backup_id=latest_verified) or O(before), refuse any backup older than this
        many hours, saying how old the newest is. Name a backup by its id to restore an older one on purpose.
    type: float
    version_added: 0.2.0
  protected_databases:
    description:
      - Databases (production) that O(mode=replace) and O(mode=rollback) replace only with O(confirm=true). The
        rule is in the module, so no path - a role, a skipped tag, AWX, disaster recovery - can bypass it. A
        refusal is audited.
      - Restoring into a protected database that does not exist (a total loss) needs no confirmation.
    type: list
    elements: str
    default: []
    version_added: 0.2.0
  confirm:
    description:
      - Confirms replacing or rolling back a database listed in O(protected_databases).
    type: bool
    default: false
    version_added: 0.2.0
  rollback_database:
    description:
      - With O(mode=rollback), the rollback database to bring back (default the newest of the target).
    type: str
  owner:
    description:
      - Owner of the restored database. Defaults to the target's current owner, else O(login_user).
    type: str
  no_owner:
    description:
      - For custom and directory formats, do not restore object ownership and privileges.
    type: bool
    default: false
  jobs:
    description:
      - Parallel C(pg_restore) workers for custom and directory formats (natively; in a container the archive is
        streamed to one worker, and so is an encrypted archive, as C(pg_restore -j) needs a seekable file and the
        clear dump is never written to disk).
    type: int
    default: 2
  assertions:
    description:
      - SQL queries run in the restored database that must each return true, e.g.
        C(SELECT count(*) > 0 FROM products).
    type: list
    elements: str
    default: []
  session_settings:
    description:
      - Settings for the restore's own sessions (passed as E(PGOPTIONS), never to the server's configuration).
      - The defaults make the restore faster without risk to the target - the scratch database is verified
        before it is used, and a crash during the restore only loses the scratch database.
      - Names and values may hold letters, digits, C(_), C(.) and C(-) only.
    type: dict
    default:
      synchronous_commit: 'off'
      maintenance_work_mem: 256MB
      max_parallel_maintenance_workers: 2
  amcheck:
    description:
      - Check every B-tree index with the amcheck extension where it is available (created and dropped again).
    type: bool
    default: false
  pre_restore_backup:
    description:
      - With O(mode=replace) and an existing target, take a C(pre_restore) backup of it first.
    type: bool
    default: true
  record:
    description:
      - Append the result (time, mode, result, RTO, checks) to the C(verifications) of the backup's metadata.
    type: bool
    default: true
  maintenance_db:
    description:
      - Database to connect to for creating, renaming and dropping databases.
    type: str
    default: postgres
  audit_log:
    description:
      - Audit log file (JSON lines). Defaults to C(restore-audit.jsonl) in O(path).
    type: path
  audit_user:
    description:
      - Who asked for the restore, for the audit log (the role passes the controller user).
    type: str
  audit_context:
    description:
      - More facts for the audit log, such as the AWX job id.
    type: dict
  lock_timeout:
    description:
      - Seconds to wait for the backup lock when recording results or taking the pre-restore backup.
    type: int
    default: 300
  free_space_ratio:
    description:
      - Free space wanted in O(path) for the pre-restore backup, as a multiple of the database size.
    type: float
    default: 0.5
  server_free_space_ratio:
    description:
      - Free space wanted where the server keeps its data (its C(data_directory), seen with C(df) in the container
        or on this host), as a multiple of the backed-up database size, before the scratch database is created.
        Less refuses the restore with the numbers, before anything is touched. C(0) skips the check.
      - Reading C(data_directory) needs superuser or C(pg_read_all_settings); where it cannot be read, or the
        server is on another host, a warning says the check was not made.
    type: float
    default: 1.0
    version_added: 0.2.0
  backup_log_file:
    description:
      - Log file for the pre-restore backup's line.
    type: path
  backup_owner:
    description:
      - Owner of the pre-restore backup files.
    type: str
  backup_group:
    description:
      - Group of the pre-restore backup files.
    type: str
  age_identity_file:
    description:
      - Path of an age identity file (C(age-keygen -o key.txt)) on the host where the module runs, to restore
        backups made with O(pgops.postgresql.pg_backup#module:encrypt_recipients). The file is decrypted on the fly
        (C(age -d | zstd -d | psql), C(age -d | pg_restore)); the clear dump never reaches a disk.
      - The identity is checked against the backup's recipients, and the whole file decrypted in the format
        check, before any database is created. A key that does not fit fails the run as inconclusive (it says
        nothing about the backup); a ciphertext that does not decrypt although its sha256 matches fails the backup.
      - An encrypted backup without O(age_identity_file) or O(age_identity) is refused, naming its recipients.
      - A replace encrypts its pre_restore backup to the recipients of the backup being restored.
      - Mutually exclusive with O(age_identity). See C(docs/encryption.md).
    type: path
    version_added: 0.2.0
  age_identity:
    description:
      - The content of an age identity file (e.g. from Ansible Vault), used like O(age_identity_file). It is
        written with mode C(0600) into the module's temporary directory, removed when the module ends, and never
        put on a command line or in the output.
    type: str
    version_added: 0.2.0
seealso:
  - module: pgops.postgresql.pg_backup
  - module: pgops.postgresql.backup_info
'''

EXAMPLES = r'''
- name: Drill of an encrypted backup, with the identity from Ansible Vault
  pgops.postgresql.pg_restore_verified:
    login_user: postgres
    path: /backups/database
    database: pim_prod
    mode: test
    age_identity: "{{ vault_pgops_age_identity }}"

- name: Weekly drill - restore the newest backup of pim_prod into a scratch database, verify, drop
  pgops.postgresql.pg_restore_verified:
    container: postgres-pim
    login_user: pim_user
    path: /backups/database
    database: pim_prod
    mode: test

- name: Restore backup 20241219_143022 over pim_dev, keeping a rollback database
  pgops.postgresql.pg_restore_verified:
    container: postgres-pim
    login_user: pim_user
    path: /backups/database
    database: pim_dev
    backup_id: "20241219_143022"
    mode: replace
    assertions:
      - SELECT count(*) > 0 FROM products

- name: Undo that restore
  pgops.postgresql.pg_restore_verified:
    container: postgres-pim
    login_user: pim_user
    path: /backups/database
    target: pim_dev
    mode: rollback

- name: Disaster recovery - the newest backup of pim_prod that proves itself, none older than two days
  pgops.postgresql.pg_restore_verified:
    container: postgres-pim
    login_user: pim_user
    path: /backups/database
    database: pim_prod
    backup_id: latest
    fallback: true
    max_age_hours: 48
    mode: replace
    protected_databases: [pim_prod]
    confirm: true

- name: Test a production backup in a new database before touching production
  pgops.postgresql.pg_restore_verified:
    login_user: postgres
    path: /backups/database
    database: pim_prod
    backup_id: latest_verified
    mode: new
    target: pim_prod_check
'''

RETURN = r'''
backup_id:
  description: Id of the backup restored.
  returned: when a backup was chosen
  type: str
  sample: "20241219_143022"
backup_path:
  description: Path of the backup restored.
  returned: when a backup was chosen
  type: str
database:
  description: The backup's database.
  returned: when a backup was chosen
  type: str
target:
  description: The database restored into or rolled back.
  returned: always
  type: str
mode:
  description: The mode.
  returned: always
  type: str
result:
  description: C(passed) or C(failed).
  returned: when the run got past the plan
  type: str
plan:
  description: The steps, in order (in check mode, what would be done).
  returned: always
  type: list
  elements: str
checks:
  description: Each check's result (C(sha256), C(format), C(row_counts), C(objects), C(assertions), C(amcheck);
    for an encrypted backup C(age_identity) and C(decryption)), the number of tables and rows verified, and
    (replace) the database settings statements carried over.
  returned: always
  type: dict
  sample: {sha256: passed, format: passed, row_counts: passed, objects: passed, tables_verified: 4, rows_verified: 6032}
phases:
  description: Seconds spent in each phase (C(file_check), C(pre_restore_backup), C(restore), C(verify), C(settings),
    C(swap), C(drop_scratch)).
  returned: always
  type: dict
rto_seconds:
  description: Seconds from the start of the run until the target was usable (or, in test mode, verified).
  returned: on success
  type: float
server:
  description: This server's name in the catalog (O(server), or derived).
  returned: when the catalog was read
  type: str
  version_added: 0.5.0
instance:
  description:
    - Where the drill ran (O(mode=test)) - C(kind) (C(container), C(native) or C(server)) and C(reason); for a
      throwaway instance also C(major), C(superuser), C(image) / C(image_id) / C(network) (a container) or
      C(directory) (native) and C(free_mib) where its data went.
  returned: mode=test
  type: dict
  version_added: 0.5.0
source_server:
  description: The server whose backups were chosen from (this one unless O(source_server)).
  returned: when the catalog was read
  type: str
  version_added: 0.5.0
scratch_database:
  description: The scratch database name used.
  returned: when a backup was chosen
  type: str
rollback_database:
  description: The database holding the previous content (replace), or the one brought back (rollback).
  returned: with mode replace over an existing target, and with mode rollback
  type: str
pre_restore_backup:
  description: id, path, size, sha256 and C(encrypted) of the backup taken before replacing (encrypted to the
    recipients of the restored backup when that one is encrypted).
  returned: with mode replace over an existing target
  type: dict
sessions_terminated:
  description: Sessions on the target ended before the swap.
  returned: when a swap happened
  type: int
roles_to_create:
  description:
    - The roles the backup needs (its metadata's C(roles)) that the server lacks, created from the globals dump
      linked from the backup (C(globals)) before the scratch database exists, in one transaction, with the groups
      they are members of; an existing role is never altered. SUPERUSER, REPLICATION and BYPASSRLS are not given
      (a warning names the role). With O(mode=test) a missing role fails the drill (step C(roles), inconclusive);
      a drill never creates roles on the server it runs on. Not with O(no_owner).
    - With no globals dump at hand, the restore fails at step C(roles) naming the missing roles.
  returned: when the server lacks roles the backup needs (check mode too)
  type: list
  elements: str
  version_added: 0.5.0
roles_created:
  description: The roles this run created (also in the audit line). A restore that fails after creating them drops
    them again (RV(roles_dropped)).
  returned: when roles were created
  type: list
  elements: str
  version_added: 0.5.0
roles_dropped:
  description: The roles a failed restore had created and dropped again.
  returned: when a restore failed after creating roles
  type: list
  elements: str
  version_added: 0.5.0
failed_step:
  description: The step that failed (C(options), C(guard), C(choose), C(lock), C(preflight), C(file_check),
    C(roles), C(pre_restore_backup), C(scratch), C(restore), C(verify), C(settings), C(swap), C(rollback),
    C(internal)).
  returned: on failure
  type: str
verdict:
  description: What the failure says about the backup - C(failed) (evidence about the backup itself, recorded in its
    metadata; C(latest_verified) no longer chooses it) or C(inconclusive) (a failure outside the backup, recorded as
    such; its earlier verdict stands).
  returned: on failure
  type: str
attempts:
  description: Each backup tried, in order, with its C(result) (C(passed), C(failed), C(inconclusive)) and, on
    failure, C(failed_step) and C(error). More than one only with O(fallback).
  returned: always
  type: list
  elements: dict
fallback_candidates:
  description: With O(fallback), the older backups that would be tried, in order, if the first proves bad.
  returned: when there are any
  type: list
  elements: str
counts_recorded:
  description:
    - For a backup without row counts in its metadata (adopted with M(pgops.postgresql.backup_adopt)), the counts
      this restore found, now recorded in the metadata (C(tables_source=drill)) so that later restores compare
      against them. Such a backup is verified only by a real restore.
  returned: when a backup without counts passed a restore that records
  type: dict
data_as_of:
  description: When the restored backup's data is from (the dump's snapshot) - the recovery point.
  returned: when a backup was chosen
  type: str
  sample: "2024-12-19T14:30:22+01:00"
data_age_seconds:
  description: How old that data was when the restore ran (the RPO of this restore).
  returned: when a backup was chosen
  type: int
replaced_database:
  description: With O(mode=rollback), the name the target was moved to (itself a rollback database).
  returned: with mode rollback over an existing target
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
from ansible_collections.pgops.postgresql.plugins.module_utils._catalog import CHOOSERS
from ansible_collections.pgops.postgresql.plugins.module_utils._errors import PgOpsError
from ansible_collections.pgops.postgresql.plugins.module_utils._options import backup_dir_errors, fail_on_errors
from ansible_collections.pgops.postgresql.plugins.module_utils.restore.job import SETTING_RE, run_pg_restore_verified
from ansible_collections.pgops.postgresql.plugins.module_utils._server import check_name


def option_errors(p):
    """pg_restore_verified's rules that AnsibleModule cannot declare, one message each (naming the option and the
    fix). Called first thing in main(), before the container, the server or the catalog is looked at."""
    errors = backup_dir_errors(p['path'])
    if p['backup_id'] is not None and not p['backup_id'].strip():
        # an empty survey answer (AWX) or -e restore_backup_id= must not mean "the newest backup"
        errors.append('backup_id must not be empty: give a backup id (YYYYMMDD_HHMMSS), latest or latest_verified')
    if p['source_server'] is not None:
        try:
            check_name(p['source_server'], 'source_server')
        except PgOpsError as e:
            errors.append(e.msg)
    for k, v in (p['session_settings'] or {}).items():
        if not SETTING_RE.match(str(k)) or not SETTING_RE.match(str(v)):
            errors.append('session_settings: %s=%s is refused; names and values may hold letters, digits, "_", "." '
                          'and "-" only' % (k, v))
    if p['max_attempts'] < 1:
        errors.append('max_attempts must be 1 or more (got %s)' % p['max_attempts'])
    for name in ('max_age_hours', 'server_free_space_ratio'):
        if p[name] is not None and p[name] < 0:
            errors.append('%s must be 0 or more (got %s)' % (name, p[name]))
    # a replace without database restores the target's own backups; anything else choosing "latest" must say whose
    if (p['mode'] in ('new', 'replace') and (p['backup_id'] or 'latest') in CHOOSERS and not p['database']
            and not (p['mode'] == 'replace' and p['target'])):
        errors.append('mode=%s with backup_id=%s needs database, the database whose backups to restore: set '
                      'database%s' % (p['mode'], p['backup_id'] or 'latest',
                                      ' (or target, to restore its own backups)' if p['mode'] == 'replace' else ''))
    return errors


def main():
    argument_spec = connection_argument_spec()
    argument_spec.update(
        path=dict(type='path', required=True),
        database=dict(type='str'),
        backup_id=dict(type='str', default='latest'),
        before=dict(type='str'),
        mode=dict(type='str', default='test', choices=['test', 'new', 'replace', 'rollback']),
        target=dict(type='str'),
        rollback_database=dict(type='str'),
        owner=dict(type='str'),
        no_owner=dict(type='bool', default=False),
        jobs=dict(type='int', default=2),
        assertions=dict(type='list', elements='str', default=[]),
        session_settings=dict(type='dict',
                              default=dict(synchronous_commit='off', maintenance_work_mem='256MB',
                                           max_parallel_maintenance_workers=2)),
        amcheck=dict(type='bool', default=False),
        pre_restore_backup=dict(type='bool', default=True),
        record=dict(type='bool', default=True),
        maintenance_db=dict(type='str', default='postgres'),
        audit_log=dict(type='path'),
        audit_user=dict(type='str'),
        audit_context=dict(type='dict'),
        lock_timeout=dict(type='int', default=300),
        free_space_ratio=dict(type='float', default=0.5),
        backup_log_file=dict(type='path'),
        backup_owner=dict(type='str'),
        backup_group=dict(type='str'),
        fallback=dict(type='bool', default=False),
        max_attempts=dict(type='int', default=3),
        max_age_hours=dict(type='float'),
        protected_databases=dict(type='list', elements='str', default=[]),
        confirm=dict(type='bool', default=False),
        server_free_space_ratio=dict(type='float', default=1.0),
        age_identity_file=dict(type='path'),
        age_identity=dict(type='str', no_log=True),
        source_server=dict(type='str'),
        instance=dict(type='str', default='auto', choices=['auto', 'throwaway', 'server']),
        instance_image=dict(type='str'),
        instance_dir=dict(type='path', default='/var/tmp'),
    )
    module = AnsibleModule(
        argument_spec=argument_spec,
        required_if=[('mode', 'new', ('target',)),
                     ('mode', 'rollback', ('target', 'database'), True)],
        mutually_exclusive=[('age_identity_file', 'age_identity')],
        supports_check_mode=True,
    )
    check_connection_params(module)
    # failed_step as for the refusals the job makes itself (RV(failed_step))
    fail_on_errors(module, option_errors(module.params), failed_step='options')
    run_pg_restore_verified(module)


if __name__ == '__main__':
    main()
