#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgops.postgresql contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
module: backup_adopt
short_description: Register the backups a team already has (db-backup.sh dumps) in the pgops catalog
version_added: 0.3.0
description:
  - Finds the dumps in O(path) that the catalog does not know yet - the files of the PIM maintenance plan's
    C(db-backup.sh), such as C(pim_prod_full_20241219_143022.sql.gz), C(pim_prod_manual_pre-deployment_20241219_143022.sql.gz)
    or C(pim_dev_snapshot_20241219_143022.dump) - and writes the metadata record beside each one
    (C(<stem>.meta.json), the format of docs/metadata.md, with C(origin=adopted)), after which
    M(pgops.postgresql.backup_info) lists it, M(pgops.postgresql.backup_rotate) rotates it by the same rules and
    M(pgops.postgresql.pg_restore_verified) restores and proves it like any other backup.
  - The database, kind, label and id are read from the name C(<database>_<kind>[_<label>]_<YYYYMMDD>_<HHMMSS>.<ext>),
    kind being one of C(full), C(manual), C(snapshot), C(pre_deploy), C(pre_restore); the id is the host's local time,
    as with M(pgops.postgresql.pg_backup). A name that does not read that way, or reads more than one way (a
    database or label holding a kind word; set O(databases) to settle it), is reported, never guessed.
  - The format and compression come from the content, not the suffix. A gzip file is decompressed to its end
    (every member's CRC and length checked) and must be a whole plain pg_dump (its header and its C(dump complete)
    trailer - C(pg_dump | gzip) hides a failed pg_dump, the trailer does not); a custom-format archive (C(PGDMP)) is
    read whole by C(pg_restore) (its table of contents, then every data block into a script that is thrown away),
    and the database it names must be the one of the file name. Unreadable, cut or damaged files, and files that are
    not the dump of one database, are reported per file and not adopted. zstd, lz4 and age files are reported as
    unsupported.
  - The sha256 and size of each dump are recorded; db-backup.sh's own C(<stem>.meta) beside it, when present, is
    kept as-is in the record (C(adoption.original_meta)).
  - The dump is never moved, renamed or rewritten. Each record is written under a hidden temporary name, fsynced
    and renamed into place, under the database's backup lock (the one M(pgops.postgresql.pg_backup) takes), after
    checking again that no backup of that database took the id meanwhile.
  - An adopted backup has no row counts from a snapshot. It is not verified until a restore proves it;
    M(pgops.postgresql.pg_restore_verified) then checks that it restores and holds tables, and records the counts it
    found (C(tables_source=drill), C(counts_from_restore=true)); later restores are compared against them.
author:
  - pgops.postgresql maintainers (@pgops)
requirements:
  - Python 3.8 or newer on the managed host; the module uses the standard library only (no psycopg2).
  - C(pg_restore) on the E(PATH) to check custom-format archives (their table of contents); without it such a file
    cannot be checked and is not adopted. gzip streams and plain SQL are checked in Python.
extends_documentation_fragment:
  - pgops.postgresql.attributes
attributes:
  check_mode:
    support: full
    details: Makes every check a real run makes (names, sha256, content read to its end) and returns exactly the
      backups it would adopt; writes nothing (not even a lock file).
  diff_mode:
    support: full
    details: Before is the list of the dumps in O(path) the catalog knows, after the same list with the adopted ones.
  idempotent:
    support: full
    details: A second run finds every adopted dump in the catalog and adopts nothing.
options:
  path:
    description:
      - The backup directory holding the dumps, e.g. C(/backups/database) (the directory the catalog is in, the
        O(pgops.postgresql.pg_backup#module:dest)).
    type: path
    required: true
  databases:
    description:
      - Adopt only the dumps of these databases. A name that reads several ways (a database name holding a kind word,
        such as C(my_full_db_full_20241219_143022.sql.gz)) is read as the one of these databases.
      - Without it every dump whose name reads one way is considered.
    type: list
    elements: str
  server:
    description:
      - The server the dumps are of, recorded in their metadata (see O(pgops.postgresql.pg_backup#module:server));
        restores and rotation then treat them as that server's backups.
      - Unset, an adopted dump belongs to no server in particular (like a record made before 0.5.0 whose server
        cannot be told), so any server's restore may choose it. Set it when several servers share the directory.
    type: str
    version_added: 0.5.0
  lock_timeout:
    description:
      - Seconds to wait for a database's backup lock (held by a running backup or restore drill) before failing.
    type: int
    default: 60
seealso:
  - module: pgops.postgresql.backup_info
  - module: pgops.postgresql.pg_restore_verified
  - module: pgops.postgresql.backup_rotate
notes:
  - Only regular files directly in O(path) are considered; hidden files, temporary files, metadata (C(*.meta.json),
    C(*.meta)) are left alone, and other files (C(*.log), ...) are returned in RV(ignored).
  - A symbolic link is not adopted (rotation would remove the link, not the dump); adopt the file where it is.
  - backup_rotate deletes an adopted dump and its C(.meta.json); db-backup.sh's own C(.meta) stays.
'''

EXAMPLES = r'''
- name: What would be adopted (nothing is written)
  pgops.postgresql.backup_adopt:
    path: /backups/database
  check_mode: true
  register: plan

- name: Adopt the db-backup.sh dumps of pim_dev and pim_prod, failing when one is refused
  pgops.postgresql.backup_adopt:
    path: /backups/database
    databases: [pim_dev, pim_prod]
  register: adopted
  failed_when: adopted.rejected | length > 0

- name: Prove the newest adopted backup of pim_prod by a restore drill (records the counts it finds)
  pgops.postgresql.pg_restore_verified:
    path: /backups/database
    database: pim_prod
    mode: test
'''

RETURN = r'''
adopted:
  description: The backups adopted (in check mode, those that would be), in name order.
  returned: always
  type: list
  elements: dict
  contains:
    database:
      description: The database, from the name.
      type: str
    kind:
      description: The kind, from the name.
      type: str
    label:
      description: The label, from the name (null when none).
      type: str
    id:
      description: The backup id (C(YYYYMMDD_HHMMSS)), from the name.
      type: str
    file:
      description: The dump's file name.
      type: str
    path:
      description: The dump.
      type: str
    meta_path:
      description: The metadata record written (or to be written) beside it.
      type: str
    format:
      description: C(plain) or C(custom), from the content.
      type: str
    compression:
      description: C(gzip) or C(none), from the content.
      type: str
    size:
      description: Bytes of the dump.
      type: int
    sha256:
      description: SHA-256 of the dump.
      type: str
    started_at:
      description: The id as a time with the host's UTC offset.
      type: str
    server_version:
      description: The server version the dump names (null when it names none).
      type: str
    origin:
      description: Always C(adopted).
      type: str
    original_meta:
      description: The name of db-backup.sh's C(.meta) kept in the record, or null.
      type: str
  sample:
    - database: pim_prod
      kind: full
      label: null
      id: "20241219_143022"
      file: pim_prod_full_20241219_143022.sql.gz
      path: /backups/database/pim_prod_full_20241219_143022.sql.gz
      meta_path: /backups/database/pim_prod_full_20241219_143022.meta.json
      format: plain
      compression: gzip
      size: 77116
      sha256: d63a3ea5fb44e0ccca078d61c997f9c06851472ecc233def7a205eeda619bd8c
      started_at: "2024-12-19T14:30:22+01:00"
      server_version: "15.18 (Debian 15.18-0+deb12u1)"
      origin: adopted
      original_meta: pim_prod_full_20241219_143022.meta
rejected:
  description: The files not adopted, with why. Each is also a warning.
  returned: always
  type: list
  elements: dict
  contains:
    file:
      description: The file name.
      type: str
    path:
      description: The file.
      type: str
    problem:
      description:
        - C(name) - the name does not read as C(<database>_<kind>[_<label>]_<YYYYMMDD>_<HHMMSS>.<ext>).
        - C(ambiguous) - it reads more than one way (set O(databases)).
        - C(read) - it cannot be read, or is not a regular file (a symbolic link).
        - C(content) - not a whole dump - a cut or damaged gzip stream, no pg_dump header or trailer, an archive
          pg_restore cannot read to its end, or the dump of another database than its name says.
        - C(unsupported) - zstd, lz4, age, a gzip'ed custom archive, a tar archive, a pg_dumpall cluster dump.
        - C(conflict) - its database already has a backup with that id, its metadata name is taken, or another file
          has the same database and id.
        - C(check) - it could not be checked here (no pg_restore, or one too old for the archive); this says
          nothing about the file.
      type: str
      choices: [ name, ambiguous, read, content, unsupported, conflict, check ]
    reason:
      description: A sentence naming the file and the cause.
      type: str
skipped:
  description: Dumps in O(path) the catalog knows already (adopted earlier, or written by pg_backup).
  returned: always
  type: list
  elements: str
ignored:
  description: Other files in O(path) whose names are not dump names (logs, notes).
  returned: always
  type: list
  elements: str
backup_dir:
  description: The directory, absolute.
  returned: always
  type: str
duration_seconds:
  description: Wall time of the run (the content checks read every byte of every candidate).
  returned: always
  type: float
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.pgops.postgresql.plugins.module_utils._adopt import run_backup_adopt


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type='path', required=True),
            databases=dict(type='list', elements='str'),
            server=dict(type='str'),
            lock_timeout=dict(type='int', default=60),
        ),
        supports_check_mode=True,
    )
    run_backup_adopt(module)


if __name__ == '__main__':
    main()
