# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgops.postgresql contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for the checks of the connection options every connecting module runs first."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import pytest

from ansible_collections.pgops.postgresql.plugins.module_utils._connection import (
    connection_argument_spec, connection_param_errors,
)


def defaults(**overrides):
    """module.params as AnsibleModule fills them from the shared spec (unset options are None)."""
    params = dict((name, spec.get('default')) for name, spec in connection_argument_spec().items())
    params.update(overrides)
    return params


@pytest.mark.parametrize('overrides', [
    {},
    dict(port=1), dict(port=5432), dict(port=65535),
    dict(connect_timeout=1),
    dict(lock_timeout=0), dict(free_space_ratio=0.0), dict(free_space_ratio=0.5), dict(jobs=1), dict(jobs=8),
    dict(databases=None), dict(databases=['a', 'b', 'A']),
])
def test_accepted(overrides):
    assert connection_param_errors(defaults(**overrides)) == []


@pytest.mark.parametrize('overrides, message', [
    (dict(port=0), 'port must be between 1 and 65535 (got 0); leave it unset for the default port'),
    (dict(port=-1), 'port must be between 1 and 65535 (got -1); leave it unset for the default port'),
    (dict(port=65536), 'port must be between 1 and 65535 (got 65536); leave it unset for the default port'),
    (dict(connect_timeout=0), 'connect_timeout must be 1 second or more (got 0)'),
    (dict(connect_timeout=-10), 'connect_timeout must be 1 second or more (got -10)'),
    (dict(lock_timeout=-1), 'lock_timeout must be 0 or more (got -1)'),
    (dict(free_space_ratio=-0.1), 'free_space_ratio must be 0 or more (got -0.1)'),
    (dict(jobs=0), 'jobs must be 1 or more (got 0)'),
    (dict(databases=['a', 'b', 'a', 'b', 'a']), "databases names 'a', 'b' more than once: list each database once"),
])
def test_refused_naming_the_option(overrides, message):
    assert connection_param_errors(defaults(**overrides)) == [message]


def test_every_error_is_reported_at_once():
    errors = connection_param_errors(defaults(port=0, connect_timeout=0, lock_timeout=-1))
    assert [e.split(' ')[0] for e in errors] == ['port', 'connect_timeout', 'lock_timeout']


def test_options_a_module_does_not_have_are_not_checked():
    # backup_info-like params: no connection options at all
    assert connection_param_errors(dict(path='/backups', limit=0)) == []
