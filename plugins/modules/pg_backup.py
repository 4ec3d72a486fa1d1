#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgops.postgresql contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
module: pg_backup
short_description: Back up PostgreSQL databases atomically, with metadata that proves what was dumped
version_added: 0.1.0
description:
  - Dumps one database, a list, or all databases (plus, when asked, roles and tablespaces) into O(dest).
  - Each dump is written to a hidden temporary name, every process of the pipeline (C(pg_dump | zstd)) must exit
    0, the file is fsynced and only then renamed into place; a failed run leaves no partial file. A killed run
    (C(kill -9) of the module) leaves its hidden temporary file, which the next run of the same database into
    O(dest) removes.
  - Beside each dump a C(.meta.json) file records the backup id (C(YYYYMMDD_HHMMSS), unique per database), kind,
    label, format, compression, size, sha256, timings, server and C(pg_dump) versions, database size, object
    counts and the exact row count of every table, counted in the same snapshot as the dump
    (C(pg_export_snapshot()) and C(pg_dump --snapshot)). M(pgops.postgresql.pg_restore_verified) checks restores
    against it.
  - Failed runs are recorded too (C(status=failed), no dump file) so that success rates are facts - also when
    the server or its container is down, or the free-space preflight refuses. Ids are taken and records written
    under the database's lock, so two runs never share an id.
  - Runs C(pg_dump) natively, or inside a container with O(container) so its version matches the server's.
author:
  - pgops.postgresql maintainers (@pgops)
requirements:
  - Python 3.8 or newer on the managed host; the module uses the standard library only (no psycopg2).
  - C(psql), C(pg_dump) and, for the globals dump, C(pg_dumpall) of the server's major version or newer - natively
    from O(pg_bin_dir), else C(/usr/lib/postgresql/<major>/bin), else the E(PATH); with O(container), inside the
    container.
  - With O(container), the C(docker) or C(podman) command line (O(container_runtime)) on the managed host.
  - For plain SQL (O(format=plain), or O(format=auto) with a pg_dump older than 16), the compressor of O(compression)
    on the managed host - C(zstd) (the default), C(pigz) or C(gzip), or C(lz4).
  - C(age) on the managed host with O(encrypt_recipients) or O(encrypt_recipients_file).
extends_documentation_fragment:
  - pgops.postgresql.attributes
  - pgops.postgresql.attributes.actiongroup_connect
  - pgops.postgresql.connection
  - pgops.postgresql.databases
attributes:
  check_mode:
    support: full
    details: Connects read-only to report the backups it would make (paths, database size, free space); writes nothing.
  diff_mode:
    support: none
  idempotent:
    support: none
    details: Every run that is not in check mode makes a new backup.
options:
  globals:
    description:
      - Dump roles, role memberships and tablespaces (C(pg_dumpall --globals-only)) as a separate backup
        (database C(@globals)), first, and link it from the metadata of every database backup of the run
        (C(globals)) beside the roles each database needs (C(roles)), so that a restore onto a server without
        those roles can create them (M(pgops.postgresql.pg_restore_verified)).
      - Unset means yes whenever databases are backed up; a globals dump that fails then only warns (the
        database backups are good, they link no globals). V(true) makes its failure fail the run; V(false)
        takes none.
      - O(globals=true) alone (without O(databases) or O(all_databases)) backs up only roles and tablespaces.
      - Before 0.5.0 unset meant no.
    type: bool
  globals_role_passwords:
    description:
      - Include role password hashes in the globals dump. Off by default (C(--no-role-passwords)).
    type: bool
    default: false
  dest:
    description:
      - Backup directory. Created with mode C(0750) (an existing one is set to C(0750)); dumps and metadata are C(0640).
      - Must not be empty. A path that is a file, lies under a file, or cannot be written (read-only file system,
        permissions) fails before anything is done, in check mode too.
    type: path
    required: true
  kind:
    description:
      - Why the backup is made; retention policies are per kind.
    type: str
    choices: [ full, manual, snapshot, pre_deploy, pre_restore ]
    default: full
  label:
    description:
      - A free label such as C(pre-deployment), stored in the metadata and the file name.
      - A label with C(/), C(..), control characters, a leading C(.) or C(-), or over 64 characters is refused with
        an error; it is never silently changed.
    type: str
  format:
    description:
      - C(plain) is SQL piped through an external compressor (fastest with zstd, portable).
      - C(custom) is pg_dump's archive (selective and parallel restore with C(pg_restore)), compressed by pg_dump.
      - C(directory) writes one file per table with O(jobs) parallel workers; not available with O(container).
      - C(auto) (the default since 0.4.0) is C(custom) where pg_dump is 16 or newer (zstd inside the archive), so
        that a verified restore runs C(pg_restore -j); C(plain) with an older pg_dump (gzip only inside the archive,
        slower than plain SQL through zstd) and for encrypted backups (an encrypted archive restores with one job).
        The metadata and RV(backups) say which format was used.
    type: str
    choices: [ auto, plain, custom, directory ]
    default: auto
  compression:
    description:
      - Compression method. For C(custom) and C(directory), zstd and lz4 need pg_dump 16 or newer; with an older
        pg_dump gzip is used and a warning says so.
    type: str
    choices: [ zstd, gzip, lz4, none ]
    default: zstd
  compression_level:
    description:
      - Compression level (zstd 1-19, default 1; gzip 1-9, default 6; lz4 1-12, default 1).
      - zstd's default is 1 because it measured smaller than level 3 and as fast or faster, on text-like and on
        catalogue-like data (docs/backup.md).
    type: int
  jobs:
    description:
      - Parallel dump workers for O(format=directory). 1 or more.
    type: int
    default: 1
  owner:
    description:
      - Owner of the backup directory, dumps and metadata.
    type: str
  group:
    description:
      - Group of the backup directory, dumps and metadata.
    type: str
  free_space_ratio:
    description:
      - Refuse to start unless the free space in O(dest) is at least the database size times this ratio.
        C(0) disables the check; negative values are refused.
      - A refusal is recorded as a failed run.
    type: float
    default: 0.5
  lock_timeout:
    description:
      - Seconds to wait for another backup of the same database into the same directory to finish. 0 or more.
      - A failed run also takes this lock to record its failure under a fresh id.
    type: int
    default: 300
  log_file:
    description:
      - "Append one line per backup to this file, ending in C(completed successfully) or C(FAILED: reason)."
    type: path
  encrypt_recipients:
    description:
      - Encrypt every dump (and the globals dump) to these age public keys (C(age1...), printed by
        C(age-keygen -y)). The C(age) command is one more checked stage of the pipeline (C(pg_dump | zstd | age));
        the file name gets C(.age) appended, and the metadata records C(encrypted), the recipients, and the size
        and sha256 of the ciphertext on disk.
      - Only public keys are needed here; the database host cannot decrypt its own backups. Restores need the
        identity (see M(pgops.postgresql.pg_restore_verified) O(pgops.postgresql.pg_restore_verified#module:age_identity)).
      - May be combined with O(encrypt_recipients_file). Not possible with O(format=directory) (refused).
      - See C(docs/encryption.md) for keys, a break-glass recipient and rotation.
    type: list
    elements: str
    version_added: 0.2.0
  encrypt_recipients_file:
    description:
      - A file of age public keys, one a line (blank lines and C(#) comments allowed), used like
        O(encrypt_recipients). Must hold at least one key; an identity (C(AGE-SECRET-KEY-...)) in it is refused.
    type: path
    version_added: 0.2.0
seealso:
  - module: pgops.postgresql.backup_info
  - name: pg_dump
    description: PostgreSQL's pg_dump reference.
    link: https://www.postgresql.org/docs/current/app-pgdump.html
'''

EXAMPLES = r'''
- name: Daily full backup of the PIM database running in the postgres-pim container
  pgops.postgresql.pg_backup:
    container: postgres-pim
    login_user: pim_user
    databases: [pim_dev, pim_prod]
    dest: /backups/database
    kind: full
    log_file: /var/log/pgops/db-backup.log

- name: Labelled backup before a deployment
  pgops.postgresql.pg_backup:
    container: postgres-pim
    login_user: pim_user
    databases: pim_prod
    dest: /backups/database
    kind: pre_deploy
    label: pre-deployment

- name: Quick snapshot in custom format over TCP
  pgops.postgresql.pg_backup:
    login_host: db.example.com
    login_user: backup
    login_password: "{{ vault_backup_password }}"
    databases: pim_dev
    dest: /backups/database
    kind: snapshot
    format: custom

- name: Encrypted with age to the restore host's key and an offline break-glass key
  pgops.postgresql.pg_backup:
    login_user: postgres
    databases: pim_prod
    globals: true
    dest: /backups/database
    encrypt_recipients:
      - age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p
      - age1lggyhqrw2nlhcxprm67z43rta597azn8gknawjehu9d9dl0jq3yqqvfafg

- name: Everything, with roles and tablespaces, 4 parallel workers per database
  pgops.postgresql.pg_backup:
    login_user: postgres
    all_databases: true
    globals: true
    format: directory
    jobs: 4
    dest: /backups/database
'''

RETURN = r'''
failed_step:
  description: The step that failed (C(options), C(preflight), C(connect), C(lock), C(dump), C(count), C(write));
    the same set as the metadata of a failed run.
  returned: on failure
  type: str
  sample: preflight
backups:
  description: One entry per backup made (or, in check mode, planned), with its metadata.
  returned: always
  type: list
  elements: dict
  contains:
    id:
      description: Backup id, C(YYYYMMDD_HHMMSS) in the host's local time, unique per database.
      type: str
      sample: "20241219_143022"
    database:
      description: Database name (C(@globals) for roles and tablespaces).
      type: str
    status:
      description: C(success), C(failed) or, in check mode, C(planned).
      type: str
    path:
      description: Path of the dump (a directory for O(format=directory)).
      type: str
    size:
      description: Bytes on disk.
      type: int
    sha256:
      description: SHA-256 of the dump (for a directory, of its sorted per-file manifest).
      type: str
    duration_seconds:
      description: Wall time of the dump.
      type: float
    throughput_bytes_per_second:
      description: Bytes written per second.
      type: int
    phases:
      description: Seconds of C(dump) (the pipeline), C(count) (the row counts, run beside it), C(count_wait),
        C(finish), and C(cpu_seconds) per process of the pipeline (not pg_dump's with O(container)).
      type: dict
    rows_total:
      description: Sum of the exact row counts of all tables, from the dump's snapshot.
      type: int
    roles:
      description: The roles the database's objects depend on (owners, grantees, policies, default privileges,
        the database's owner, roles with settings in it, the bootstrap superuser); a restore creates the ones a
        server lacks from the linked globals dump.
      type: list
      elements: str
      returned: for database backups
      version_added: 0.5.0
    globals:
      description: C(id), C(file) and C(sha256) of the globals dump taken in the same run (null when none was).
      type: dict
      returned: for database backups
      version_added: 0.5.0
    encrypted:
      description: Whether the dump is encrypted with age (then RV(backups[].size) and RV(backups[].sha256) are of
        the ciphertext).
      type: bool
      version_added: 0.2.0
    encryption:
      description: C(tool) (C(age)) and C(recipients), the public keys the dump is encrypted to.
      type: dict
      returned: when encrypted
      version_added: 0.2.0
    tables:
      description: Schema, name and exact row count of every table.
      type: list
      elements: dict
    error:
      description: Why a backup failed.
      type: str
      returned: when status is failed
  sample:
    - id: "20261128_020000"
      database: pim_prod
      status: success
      path: /backups/database/pim_prod_full_20261128_020000.sql.zst
      size: 1048576
      sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
      duration_seconds: 2.4
      rows_total: 15230
backup_dir:
  description: The backup directory (O(dest) made absolute).
  returned: always
  type: str
  version_added: 0.2.0
  sample: /backups/database
removed_temp_files:
  description: Hidden temporary files and directories that killed runs of the same databases had left in O(dest),
    removed by this run (their writer's pid no longer runs and no process holds them open).
  returned: always
  type: list
  version_added: 0.2.0
  elements: str
  sample: [/backups/database/.pim_prod_full_20261128_020000.sql.zst.tmp-4242]
id:
  description: Id of the backup when exactly one database was backed up.
  returned: when one database was backed up
  type: str
  sample: "20241219_143022"
backup_path:
  description:
    - Path of the dump (a directory for O(format=directory)) when exactly one database was backed up successfully
      (or, in check mode, would be).
    - Not called C(path) - Ansible would replace RV(size) by the size of that path, 4096 for a directory.
  returned: when one database was backed up
  type: str
  version_added: 0.2.0
  sample: /backups/database/pim_prod_full_20261128_020000.sql.zst
size:
  description: Size of the dump when exactly one database was backed up (for O(format=directory), the sum of its files).
  returned: when one database was backed up
  type: int
sha256:
  description: SHA-256 of the dump when exactly one database was backed up.
  returned: when one database was backed up
  type: str
duration_seconds:
  description: Duration when exactly one database was backed up.
  returned: when one database was backed up
  type: float
throughput_bytes_per_second:
  description: Throughput when exactly one database was backed up.
  returned: when one database was backed up
  type: int
rows_total:
  description: Total rows when exactly one database was backed up.
  returned: when one database was backed up
  type: int
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.pgops.postgresql.plugins.module_utils._backup import (
    DIRECTORY_ENCRYPTION_MSG, backup_argument_spec, run_pg_backup,
)
from ansible_collections.pgops.postgresql.plugins.module_utils import _catalog as catalog
from ansible_collections.pgops.postgresql.plugins.module_utils._connection import (
    check_connection_params, connection_argument_spec,
)
from ansible_collections.pgops.postgresql.plugins.module_utils._options import (
    database_choice_argument_spec, database_choice_errors, database_choice_rules, fail_on_errors,
)

# besides databases / all_databases, globals=true alone chooses something to back up (roles and tablespaces)
CHOICE = database_choice_rules(also=('globals',))


def option_errors(p):
    """pg_backup's rules that AnsibleModule cannot declare, one message each (naming the option and the fix).

    Called first thing in main(), before any work; the declared rules (CHOICE) have fired by then.
    """
    errors = database_choice_errors(p, also=('globals',))
    if not (p['dest'] or '').strip():
        errors.append('dest must not be empty: set it to the backup directory, e.g. /backups/database '
                      '(an empty dest would mean the current directory)')
    try:
        catalog.validate_label(p['label'])
    except catalog.CatalogError as e:
        errors.append('label: %s' % e)
    if p['compression_level'] is not None:
        lo, hi = catalog.LEVEL_RANGE[p['compression']]
        if not lo <= p['compression_level'] <= hi:
            errors.append('compression_level %s is out of range for compression=%s (%d to %d): set a level in '
                          'that range, or leave compression_level unset for the default (%d)'
                          % (p['compression_level'], p['compression'], lo, hi, catalog.DEFAULT_LEVEL[p['compression']]))
    if p['jobs'] > 1 and p['format'] != 'directory':
        errors.append('jobs=%d needs format=directory (parallel dumps write one file per table): set '
                      'format=directory, or jobs=1' % p['jobs'])
    if p['format'] == 'directory' and (p['encrypt_recipients'] or p['encrypt_recipients_file']):
        errors.append(DIRECTORY_ENCRYPTION_MSG)
    if p['format'] == 'directory' and p['container']:
        errors.append('format=directory cannot be used with container: pg_dump would write the directory inside '
                      'the container; use format=custom')
    return errors


def main():
    argument_spec = connection_argument_spec()
    argument_spec.update(database_choice_argument_spec())
    argument_spec.update(backup_argument_spec())
    module = AnsibleModule(
        argument_spec=argument_spec,
        required_one_of=CHOICE['required_one_of'],
        required_if=CHOICE['required_if'],
        supports_check_mode=True,
    )
    check_connection_params(module)
    fail_on_errors(module, option_errors(module.params))
    run_pg_backup(module)


if __name__ == '__main__':
    main()
