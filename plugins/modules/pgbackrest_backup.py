#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgops.postgresql contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
module: pgbackrest_backup
short_description: Make a physical backup of a PostgreSQL cluster with pgBackRest (full, differential, incremental)
version_added: 0.4.0
description:
  - Runs C(pgbackrest backup) for O(stanza) - the whole cluster, copied while it runs, consistent with the WAL
    archive - and returns pgBackRest's record of it - label, type, times, sizes and WAL range - read back from
    C(pgbackrest info).
  - O(kind) and O(label) are stored with the backup as pgBackRest annotations (C(pgops-kind), C(pgops-label)),
    so that backups can be told apart later (M(pgops.postgresql.pgbackrest_info) returns them).
  - pgBackRest makes a full backup instead of a differential or incremental one when the repository has no full
    backup yet; RV(backup.type) says which was made. Its retention (C(repo1-retention-full) in C(pgbackrest.conf))
    expires old backups after each one.
  - pgBackRest runs natively as O(os_user), or inside O(container) (C(docker exec -u)). It reaches the server
    through the C(pg1-*) options of its configuration; the connection options only serve to find the container.
author:
  - pgops.postgresql maintainers (@pgops)
requirements:
  - Python 3.8 or newer on the managed host; the module uses the standard library only.
  - C(pgbackrest) on the managed host, or in the server's image with O(container). Natively the module runs as root or
    as O(os_user); pgBackRest runs as O(os_user).
  - With O(container), the C(docker) or C(podman) command line (O(container_runtime)) on the managed host.
extends_documentation_fragment:
  - pgops.postgresql.attributes
  - pgops.postgresql.attributes.actiongroup_connect
  - pgops.postgresql.connection
  - pgops.postgresql.pgbackrest
attributes:
  check_mode:
    support: full
    details: Reads the repository (C(pgbackrest info)) and says which backup would be made (RV(planned)); runs no
      backup.
  diff_mode:
    support: none
  idempotent:
    support: none
    details: Every run that is not in check mode makes a new backup.
options:
  type:
    description:
      - C(full) copies every file; C(diff) what changed since the last full backup; C(incr) what changed since
        the last backup of any type.
      - A restore of an incremental backup needs the whole chain (its full and every backup in between), which
        pgBackRest keeps as long as one of its backups is kept.
    type: str
    choices: [ full, diff, incr ]
    default: incr
  kind:
    description:
      - Why the backup is made, stored as the annotation C(pgops-kind) (the kinds of M(pgops.postgresql.pg_backup)).
    type: str
    choices: [ full, manual, snapshot, pre_deploy, pre_restore ]
    default: manual
  label:
    description:
      - A free label such as C(pre-deployment), stored as the annotation C(pgops-label).
      - A label with C(/), C(..), control characters, a leading C(.) or C(-), or over 64 characters is refused.
    type: str
  annotations:
    description:
      - More annotations to store with the backup (pgBackRest C(--annotation=KEY=VALUE)), each a one-line string.
        Keys starting with C(pgops-) are reserved for O(kind) and O(label).
    type: dict
    default: {}
  repo:
    description:
      - The repository to back up into (C(--repo)), when C(pgbackrest.conf) has several. Unset - pgBackRest's
        choice, the first one.
    type: int
seealso:
  - module: pgops.postgresql.pgbackrest_stanza
  - module: pgops.postgresql.pgbackrest_info
  - module: pgops.postgresql.pg_backup
  - name: pgBackRest user guide - backup
    description: Backup types and retention.
    link: https://pgbackrest.org/user-guide.html#concept/backup
'''

EXAMPLES = r'''
- name: The weekly full backup
  pgops.postgresql.pgbackrest_backup:
    stanza: pim
    type: full
    kind: full

- name: The daily incremental backup
  pgops.postgresql.pgbackrest_backup:
    stanza: pim
    type: incr
    kind: full

- name: Before a deployment, in the postgres-pim container, with an encrypted repository
  pgops.postgresql.pgbackrest_backup:
    stanza: pim
    container: postgres-pim
    type: diff
    kind: pre_deploy
    label: release-4.2
    pgbackrest_env:
      PGBACKREST_REPO1_CIPHER_PASS: "{{ vault_pgbackrest_cipher_pass }}"
  register: pre_deploy

- name: Its label, for the restore if the deployment goes wrong
  ansible.builtin.debug:
    msg: >-
      {{ pre_deploy.backup.label }} ({{ pre_deploy.backup.finished_at }},
      WAL from {{ pre_deploy.backup.wal_start }})
'''

RETURN = r'''
backup:
  description: The backup made, as C(pgbackrest info) records it; null in check mode.
  returned: success
  type: dict
  contains:
    label:
      description: pgBackRest's backup label (C(--set) of a restore).
      type: str
      sample: 20261128-020000F_20261129-020000I
    type:
      description: C(full), C(diff) or C(incr) - what was made (a full one when the repository had none).
      type: str
    started_at:
      description: Start, ISO-8601 UTC.
      type: str
      sample: "2026-11-29T02:00:00Z"
    finished_at:
      description: End, ISO-8601 UTC.
      type: str
    size:
      description: Bytes of the cluster this backup restores.
      type: int
    repo_size:
      description: Bytes of the backup in the repository (compressed), its chain's files included.
      type: int
    delta:
      description: Bytes of the cluster copied by this backup (all of it for a full one).
      type: int
    repo_delta:
      description: Bytes this backup added to the repository.
      type: int
    wal_start:
      description: The first WAL segment the backup needs.
      type: str
      sample: "000000010000000000000005"
    wal_stop:
      description: The last WAL segment the backup needs.
      type: str
    lsn_start:
      description: The LSN where the backup starts.
      type: str
      sample: 0/5000028
    lsn_stop:
      description: The LSN where the backup is consistent.
      type: str
    annotations:
      description: The backup's annotations (C(pgops-kind), C(pgops-label) and O(annotations)).
      type: dict
      sample: {pgops-kind: pre_deploy, pgops-label: release-4.2}
    prior:
      description: The backup this one is based on (null for a full one).
      type: str
    reference:
      description: The backups whose files this one uses.
      type: list
      elements: str
    error:
      description: pgBackRest found page checksum errors while copying.
      type: bool
    repo:
      description: The repository number.
      type: int
duration_seconds:
  description: Seconds C(pgbackrest backup) took (retention's expire included).
  returned: success, not in check mode
  type: float
requested_type:
  description: O(type) as asked.
  returned: always
  type: str
planned:
  description: In check mode, the backup that would be made - C(type) (C(full) when the repository has no full
    backup), C(annotations) and C(command).
  returned: check mode
  type: dict
failed_step:
  description: Where a failure happened - C(options), C(preflight), C(info), C(backup).
  returned: failure
  type: str
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.pgops.postgresql.plugins.module_utils._connection import (
    connection_argument_spec, connection_param_errors,
)
from ansible_collections.pgops.postgresql.plugins.module_utils._options import fail_on_errors
from ansible_collections.pgops.postgresql.plugins.module_utils._pgbackrest import (
    backup_argument_spec, backup_param_errors, pgbackrest_argument_spec, pgbackrest_param_errors, run_pgbackrest_backup,
)


def main():
    argument_spec = connection_argument_spec()
    argument_spec.update(pgbackrest_argument_spec())
    argument_spec.update(backup_argument_spec())
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    fail_on_errors(module, connection_param_errors(module.params) + pgbackrest_param_errors(module.params) +
                   backup_param_errors(module.params), failed_step='options')
    run_pgbackrest_backup(module)


if __name__ == '__main__':
    main()
