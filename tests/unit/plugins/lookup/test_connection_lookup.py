# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgops.postgresql contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The lookup that maps the pgops_* variables to the connection options of every connecting module, once."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import pytest

from ansible.errors import AnsibleError
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar

try:    # ansible-core 2.19+: only strings from trusted sources (playbooks, inventory) are templates
    from ansible.template import trust_as_template
except ImportError:
    def trust_as_template(value):
        return value

from ansible_collections.pgops.postgresql.plugins.lookup.connection import LookupModule, OPTIONS
from ansible_collections.pgops.postgresql.plugins.module_utils._connection import connection_argument_spec


def lookup(variables, **kwargs):
    loader = DataLoader()
    module = LookupModule(loader=loader, templar=Templar(loader=loader, variables=variables))
    [result] = module.run([], variables=variables, **kwargs)
    return result


def test_every_option_is_a_connection_option_of_the_modules():
    assert OPTIONS <= set(connection_argument_spec())


def test_variables_map_to_options_and_empty_ones_are_left_out():
    got = lookup(dict(pgops_container='postgres-pim', pgops_login_user='pim_user', pgops_login_password='',
                      pgops_port='5433', pgops_login_host='', pgops_pg_bin_dir='/usr/lib/postgresql/15/bin',
                      pgops_container_user='postgres', pgops_ssl_mode='verify-full', unrelated='x'))
    assert got == dict(container='postgres-pim', login_user='pim_user', login_port=5433,
                       pg_bin_dir='/usr/lib/postgresql/15/bin', container_user='postgres', ssl_mode='verify-full')


def test_port_zero_means_the_default():
    assert lookup(dict(pgops_port=0, pgops_connect_timeout=0)) == {}


def test_keywords_override_one_call():
    got = lookup(dict(pgops_login_host='db1', pgops_container='pg'), login_host='db2', container='')
    assert got == dict(login_host='db2')


def test_templated_values_are_resolved():
    got = lookup(dict(vault_pw='s3cret', pgops_login_password=trust_as_template('{{ vault_pw }}')))
    assert got == dict(login_password='s3cret')


@pytest.mark.parametrize('variables, kwargs, message', [
    (dict(pgops_port='five'), {}, 'pgops_port must be a number'),
    ({}, dict(hostname='x'), 'unknown option(s) hostname'),
])
def test_bad_input_names_the_variable(variables, kwargs, message):
    with pytest.raises(AnsibleError, match=message.replace('(', r'\(').replace(')', r'\)')):
        lookup(variables, **kwargs)
