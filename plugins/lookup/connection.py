# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgops.postgresql contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
name: connection
author:
  - pgops.postgresql maintainers (@pgops)
short_description: The connection options of every pgops module, from the shared C(pgops_*) variables
version_added: 0.3.0
description:
  - Returns one dictionary of the options of the C(pgops.postgresql.connect) action group (the modules that talk
    to PostgreSQL) from the host's C(pgops_*) variables, leaving out the ones that are unset or empty, so that
    the modules' own defaults apply.
  - Every role of the collection applies it with C(module_defaults) to the whole group; a playbook can do the
    same. This is the only place where a C(pgops_*) variable is mapped to a module option.
  - "The variables: C(pgops_container), C(pgops_container_runtime), C(pgops_container_user),
    C(pgops_login_user), C(pgops_login_password), C(pgops_login_host), C(pgops_login_unix_socket),
    C(pgops_port) (or C(pgops_login_port)), C(pgops_connect_timeout), C(pgops_pg_bin_dir), C(pgops_ssl_mode),
    C(pgops_ca_cert), C(pgops_ssl_cert), C(pgops_ssl_key), and C(pgops_server) (the server's name in the backup
    catalog, since 0.5.0)."
  - Keyword arguments override a variable for one call (an empty value removes it).
options:
  _terms:
    description: Not used.
    required: false
notes:
  - The password is returned as it is given (Ansible Vault works); the modules never log it.
'''

EXAMPLES = r'''
- name: Read the catalog and the server with the connection of the pgops roles
  module_defaults:
    group/pgops.postgresql.connect: "{{ lookup('pgops.postgresql.connection') }}"
  block:
    - name: Sizes, bloat and sessions
      pgops.postgresql.pg_maintenance_info:
        databases: [pim_prod]

- name: Restore into another server than the backups came from
  pgops.postgresql.pg_restore_verified: "{{ lookup('pgops.postgresql.connection', login_host='db2.example.com')
    | combine({'path': '/backups/database', 'database': 'pim_prod', 'backup_id': 'latest', 'mode': 'test'}) }}"
'''

RETURN = r'''
_raw:
  description: One dictionary of module options (C(login_user), C(login_port), C(container), ...).
  type: list
  elements: dict
'''

from ansible.errors import AnsibleError
from ansible.plugins.lookup import LookupBase

# variable -> module option: the single mapping (the options are connection_argument_spec()'s)
VARIABLES = (
    ('pgops_container', 'container'),
    ('pgops_container_runtime', 'container_runtime'),
    ('pgops_container_user', 'container_user'),
    ('pgops_login_user', 'login_user'),
    ('pgops_login_password', 'login_password'),
    ('pgops_login_host', 'login_host'),
    ('pgops_login_unix_socket', 'login_unix_socket'),
    ('pgops_port', 'login_port'),
    ('pgops_login_port', 'login_port'),
    ('pgops_connect_timeout', 'connect_timeout'),
    ('pgops_pg_bin_dir', 'pg_bin_dir'),
    ('pgops_ssl_mode', 'ssl_mode'),
    ('pgops_ca_cert', 'ca_cert'),
    ('pgops_ssl_cert', 'ssl_cert'),
    ('pgops_ssl_key', 'ssl_key'),
    ('pgops_server', 'server'),
)
OPTIONS = frozenset(option for _variable, option in VARIABLES)
INTEGERS = frozenset(['login_port', 'connect_timeout'])


def unset(value):
    """Empty string, None, or 0 for a port/timeout: the module's default applies."""
    return value is None or (isinstance(value, str) and not value.strip()) or value == 0


class LookupModule(LookupBase):

    def run(self, terms, variables=None, **kwargs):
        variables = variables or {}
        unknown = sorted(set(kwargs) - OPTIONS)
        if unknown:
            raise AnsibleError('pgops.postgresql.connection: unknown option(s) %s; known: %s'
                               % (', '.join(unknown), ', '.join(sorted(OPTIONS))))
        options = {}
        for variable, option in VARIABLES:
            if variable in variables:
                value = self._templar.template(variables[variable])
                if not unset(value):
                    options[option] = value
        for option, value in kwargs.items():
            options.pop(option, None)
            if not unset(value):
                options[option] = value
        for option in INTEGERS & set(options):
            try:
                options[option] = int(options[option])
            except (TypeError, ValueError):
                raise AnsibleError('pgops.postgresql.connection: %s must be a number (got %r)'
                                   % ('pgops_port' if option == 'login_port' else 'pgops_' + option,
                                      options[option]))
        return [options]
