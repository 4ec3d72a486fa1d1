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
    dict(login_port=1), dict(login_port=5432), dict(login_port=65535),
    dict(ssl_mode='verify-full', ca_cert='/etc/ssl/ca.crt', ssl_cert='/c.crt', ssl_key='/c.key'),
    dict(connect_timeout=1),
    dict(lock_timeout=0), dict(free_space_ratio=0.0), dict(free_space_ratio=0.5), dict(jobs=1), dict(jobs=8),
    dict(databases=None), dict(databases=['a', 'b', 'A']),
])
def test_accepted(overrides):
    assert connection_param_errors(defaults(**overrides)) == []


@pytest.mark.parametrize('overrides, message', [
    (dict(login_port=0), 'login_port (port) must be between 1 and 65535 (got 0); leave it unset for the default '
     'port'),
    (dict(login_port=-1), 'login_port (port) must be between 1 and 65535 (got -1); leave it unset for the default '
     'port'),
    (dict(login_port=65536), 'login_port (port) must be between 1 and 65535 (got 65536); leave it unset for the default '
     'port'),
    (dict(ssl_key='/c.key'), 'ssl_key needs ssl_cert (the client certificate the key belongs to)'),
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
    errors = connection_param_errors(defaults(login_port=0, connect_timeout=0, lock_timeout=-1))
    assert [e.split(' ')[0] for e in errors] == ['login_port', 'connect_timeout', 'lock_timeout']


def test_options_a_module_does_not_have_are_not_checked():
    # backup_info-like params: no connection options at all
    assert connection_param_errors(dict(path='/backups', limit=0)) == []


class FakeModule(object):
    """What PgTarget uses of AnsibleModule: get_bin_path and no_log_values."""

    def __init__(self):
        self.no_log_values = set()

    def get_bin_path(self, name, required=False):
        return '/usr/bin/' + name


def test_tls_options_travel_as_libpq_environment_never_argv():
    from ansible_collections.pgops.postgresql.plugins.module_utils._connection import PgTarget
    params = defaults(container='pg', ssl_mode='verify-full', ca_cert='/certs/ca.crt', ssl_cert='/certs/c.crt',
                      ssl_key='/certs/c.key', login_password='s3cret')
    target = PgTarget(FakeModule(), params)
    env = target.env()
    assert (env['PGSSLMODE'], env['PGSSLROOTCERT'], env['PGSSLCERT'], env['PGSSLKEY']) == (
        'verify-full', '/certs/ca.crt', '/certs/c.crt', '/certs/c.key')
    argv = target.argv('psql', ['-c', 'SELECT 1'])
    # docker exec -e NAME: the value comes from the environment of the docker client, never from argv
    for name in ('PGSSLMODE', 'PGSSLROOTCERT', 'PGSSLCERT', 'PGSSLKEY', 'PGPASSWORD'):
        assert argv[argv.index(name) - 1] == '-e'
    assert not [a for a in argv if 'verify-full' in a or '/certs/' in a or 's3cret' in a]


def test_without_tls_options_the_environment_keeps_its_own(monkeypatch):
    from ansible_collections.pgops.postgresql.plugins.module_utils._connection import PgTarget
    monkeypatch.setenv('PGSSLMODE', 'require')
    target = PgTarget(FakeModule(), defaults())
    assert target.env()['PGSSLMODE'] == 'require'        # an ops host's own libpq setting still applies
    assert 'PGSSLMODE' not in PgTarget(FakeModule(), defaults(container='pg')).container_prefix()
