#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgops.postgresql contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
module: pgbackrest_stanza
short_description: Make a PostgreSQL server archive its WAL into pgBackRest, create the stanza and check it
version_added: 0.4.0
description:
  - With O(archive=true), sets through C(ALTER SYSTEM) what the server needs to archive its WAL into pgBackRest -
    C(wal_level=replica) (unless it already is C(logical)), C(archive_mode=on) (unless C(always)) and
    C(archive_command=pgbackrest --stanza=STANZA [--config=CONFIG] archive-push %p) (and an C(archive_library)
    emptied, which would win over it) - then reloads the configuration. Settings already right in the
    configuration files are left alone, even while the server still waits for a restart to apply them.
  - Never restarts the server. When C(wal_level) or C(archive_mode) changed, RV(restart_required) says that the
    server must be restarted (from C(pg_settings.pending_restart)); restart it and run the module again. The role
    P(pgops.postgresql.pgbackrest#role) does that.
  - When no restart is pending - creates the stanza in the repositories (C(pgbackrest stanza-create)) if it does
    not exist yet, then runs C(pgbackrest check), which proves that a WAL segment goes through C(archive_command)
    into the repository.
  - pgBackRest runs natively as O(os_user), or inside O(container) (C(docker exec -u)); SQL goes through C(psql)
    with the connection options.
author:
  - pgops.postgresql maintainers (@pgops)
requirements:
  - Python 3.8 or newer on the managed host; the module uses the standard library only (no psycopg2).
  - C(pgbackrest) on the managed host, or in the server's image with O(container). Natively the module runs as root or
    as O(os_user); pgBackRest runs as O(os_user).
  - C(psql) of the server's major version or newer - natively from O(pg_bin_dir), else
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
    details: Reads the settings and the repository and reports what would change (RV(settings_changed),
      RV(restart_required), RV(stanza_created), RV(actions)); changes nothing and does not run C(pgbackrest check).
  diff_mode:
    support: full
    details: The archiving settings before and after.
  idempotent:
    support: full
    details: A second run changes nothing (C(pgbackrest check) runs again, and is not a change).
options:
  archive:
    description:
      - Set C(wal_level), C(archive_mode) and C(archive_command) for pgBackRest.
      - C(false) leaves the server's settings alone (they are managed elsewhere) and only creates and checks
        the stanza.
    type: bool
    default: true
  maintenance_db:
    description:
      - The database to connect to for C(ALTER SYSTEM) and reading the settings.
    type: str
    default: postgres
notes:
  - C(ALTER SYSTEM) needs a superuser (or, from PostgreSQL 15, a role granted C(ALTER SYSTEM) on these
    parameters). A setting given on the server's command line (C(-c wal_level=minimal)) cannot be overridden
    that way and is refused with a message naming it.
seealso:
  - module: pgops.postgresql.pgbackrest_backup
  - module: pgops.postgresql.pgbackrest_info
  - name: pgBackRest user guide - configure archiving
    description: The settings this module makes, and why.
    link: https://pgbackrest.org/user-guide.html#quickstart/configure-archiving
'''

EXAMPLES = r'''
- name: Archive into pgBackRest and create the stanza
  pgops.postgresql.pgbackrest_stanza:
    stanza: pim
    login_unix_socket: /var/run/postgresql
  register: stanza

- name: Restart PostgreSQL when wal_level or archive_mode changed
  ansible.builtin.service:
    name: postgresql@15-main
    state: restarted
  when: stanza.restart_required

- name: Then create and check the stanza
  pgops.postgresql.pgbackrest_stanza:
    stanza: pim
    login_unix_socket: /var/run/postgresql
  when: stanza.restart_required

- name: In the postgres-pim container (its image adds the pgbackrest package); encrypted repository
  pgops.postgresql.pgbackrest_stanza:
    stanza: pim
    container: postgres-pim
    config: /etc/pgbackrest/pgbackrest.conf
    pgbackrest_env:
      PGBACKREST_REPO1_CIPHER_PASS: "{{ vault_pgbackrest_cipher_pass }}"
'''

RETURN = r'''
settings_changed:
  description: The settings set with C(ALTER SYSTEM) (or that would be, in check mode).
  returned: always
  type: list
  elements: str
  sample: [wal_level, archive_mode, archive_command]
restart_required:
  description: The server must be restarted before archiving works (C(pg_settings.pending_restart) of
    C(wal_level), C(archive_mode)); the stanza was then neither created nor checked.
  returned: always
  type: bool
stanza_created:
  description: C(pgbackrest stanza-create) ran (or would, in check mode) - the stanza did not exist.
  returned: always
  type: bool
checked:
  description: C(pgbackrest check) ran and passed - WAL goes through C(archive_command) into the repository.
  returned: always
  type: bool
archive_command:
  description: The archive_command for this stanza; null with O(archive=false).
  returned: always
  type: str
  sample: pgbackrest --stanza=pim archive-push %p
actions:
  description: What was done (or would be, in check mode), in order.
  returned: always
  type: list
  elements: str
  sample: ["ALTER SYSTEM SET archive_command = 'pgbackrest --stanza=pim archive-push %p'", "SELECT pg_reload_conf()",
           "pgbackrest stanza-create", "pgbackrest check"]
failed_step:
  description: Where a failure happened - C(options), C(preflight), C(connect), C(settings), C(stanza), C(info).
  returned: failure
  type: str
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.pgops.postgresql.plugins.module_utils._connection import (
    connection_argument_spec, connection_param_errors,
)
from ansible_collections.pgops.postgresql.plugins.module_utils._options import fail_on_errors
from ansible_collections.pgops.postgresql.plugins.module_utils._pgbackrest import (
    pgbackrest_argument_spec, pgbackrest_param_errors, run_pgbackrest_stanza, stanza_argument_spec,
)


def main():
    argument_spec = connection_argument_spec()
    argument_spec.update(pgbackrest_argument_spec())
    argument_spec.update(stanza_argument_spec())
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    fail_on_errors(module, connection_param_errors(module.params) + pgbackrest_param_errors(module.params),
                   failed_step='options')
    run_pgbackrest_stanza(module)


if __name__ == '__main__':
    main()
