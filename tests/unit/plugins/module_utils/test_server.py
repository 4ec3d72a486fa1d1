# -*- coding: utf-8 -*-
"""The server a backup belongs to: the derived names, and the server of a record made before 0.5.0."""
from __future__ import absolute_import, division, print_function

import pytest

from ansible_collections.pgops.postgresql.plugins.module_utils._errors import PgOpsError
from ansible_collections.pgops.postgresql.plugins.module_utils._server import (
    check_name, derived_name, of_server, server_of,
)


@pytest.mark.parametrize('container, login_host, port, name', [
    ('postgres-pim', None, None, 'ops1/postgres-pim'),
    ('postgres-pim', 'db9', 6000, 'ops1/postgres-pim'),        # in a container: the container names it
    (None, None, None, 'ops1'),
    (None, '/var/run/postgresql', 5432, 'ops1'),               # a socket directory is this host
    (None, 'localhost', 5433, 'ops1:5433'),
    (None, 'db1.example.test', None, 'ops1/db1.example.test'),
    (None, 'db1.example.test', 6432, 'ops1/db1.example.test:6432'),
])
def test_derived_names(container, login_host, port, name):
    assert derived_name(container, login_host, port, host='ops1') == name


def test_a_record_made_before_0_5_0_belongs_to_the_server_derived_from_what_it_recorded():
    assert server_of(dict(host='ops1', container='postgres-pim')) == 'ops1/postgres-pim'
    assert server_of(dict(host='ops1', container=None)) == 'ops1'
    assert server_of(dict(server='prod', host='ops1', container='x')) == 'prod'
    assert server_of(dict()) is None


def test_records_whose_server_cannot_be_told_are_every_servers():
    a, b, unknown = dict(server='a'), dict(server='b'), dict()
    assert of_server([a, b, unknown], 'a') == [a, unknown]


@pytest.mark.parametrize('bad', ['', '   ', 'a\nb', 'x' * 201, 'tab\there'])
def test_bad_names_are_refused_naming_the_option(bad):
    with pytest.raises(PgOpsError) as e:
        check_name(bad, 'source_server')
    assert e.value.msg.startswith('source_server must be a name')


def test_an_adopted_dump_without_a_server_name_is_every_servers():
    assert server_of(dict(origin='adopted', host='ops1', container=None)) is None
    assert server_of(dict(origin='adopted', host='ops1', server='prod')) == 'prod'
