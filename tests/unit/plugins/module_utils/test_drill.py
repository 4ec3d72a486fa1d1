# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgops.postgresql contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where a drill runs (_drill.choose): on the server when asked, in a throwaway instance where the backup's major
has binaries on this host (or the server has an image), and on the server otherwise with the reason - or an error
naming it when a throwaway instance was required. The binaries looked for are real files in a temporary pg_bin_dir."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os

import pytest

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.pgops.postgresql.plugins.module_utils._connection import PgTarget
from ansible_collections.pgops.postgresql.plugins.module_utils.restore.drill import CHOICES, choose, major_of
from ansible_collections.pgops.postgresql.plugins.module_utils._errors import PgOpsError
from ansible_collections.pgops.postgresql.tests.unit.plugins.modules.utils import set_module_args


@pytest.fixture
def module():
    with set_module_args({}):
        yield AnsibleModule(argument_spec={})


def bin_dir(tmp_path, *names):
    for name in names:
        path = tmp_path / name
        path.write_text('#!/bin/sh\n')
        os.chmod(str(path), 0o755)
    return str(tmp_path)


def target(module, **params):
    return PgTarget(module, dict(dict(login_user='pim_user'), **params))


META = dict(id='20261207_101010', server_version='15.18 (Debian 15.18-0+deb12u1)')


def test_major_of_reads_the_recorded_server_version():
    assert major_of(META) == 15
    assert major_of(dict(server_version='9.6.24')) == 9
    assert major_of({}) is None and major_of(dict(server_version='')) is None


def test_server_is_never_a_throwaway_instance(module):
    kind, detail, reason = choose(module, target(module), META, 'server')
    assert (kind, detail) == ('server', None) and 'instance=server' in reason
    assert CHOICES == ('auto', 'throwaway', 'server')


@pytest.mark.skipif(os.geteuid() != 0, reason='a native instance runs as root (runuser) or as postgres')
def test_native_binaries_of_the_major_make_a_throwaway_instance(module, tmp_path):
    pg_bin = bin_dir(tmp_path, 'initdb', 'pg_ctl')
    kind, detail, reason = choose(module, target(module, pg_bin_dir=pg_bin), META, 'auto')
    assert kind == 'native' and 'PostgreSQL 15 binaries' in reason
    assert detail[0] >= 0 and detail[1] >= 0          # the postgres OS user's uid and gid


def test_without_binaries_auto_says_why_it_used_the_server(module, tmp_path):
    pg_bin = bin_dir(tmp_path, 'pg_ctl')                # no initdb
    kind, detail, reason = choose(module, target(module, pg_bin_dir=pg_bin), META, 'auto')
    assert (kind, detail) == ('server', None)
    assert reason.startswith('no throwaway instance (initdb of PostgreSQL 15 not found')


def test_throwaway_that_cannot_be_had_is_an_error_naming_why(module, tmp_path):
    pg_bin = bin_dir(tmp_path, 'pg_ctl')
    with pytest.raises(PgOpsError) as e:
        choose(module, target(module, pg_bin_dir=pg_bin), META, 'throwaway')
    assert e.value.step == 'preflight'
    assert 'instance=throwaway' in e.value.msg and META['id'] in e.value.msg and 'initdb' in e.value.msg


def test_a_backup_without_a_server_version_drills_on_the_server(module):
    kind, _detail, reason = choose(module, target(module), dict(id='x'), 'auto')
    assert kind == 'server' and 'does not record its server version' in reason


def test_an_image_given_makes_a_container_without_inspecting_a_server(module):
    kind, detail, reason = choose(module, target(module), META, 'auto', image='pgops/postgres:15')
    assert kind == 'container' and detail == ('pgops/postgres:15', 'pgops/postgres:15')
    assert 'pgops/postgres:15' in reason
