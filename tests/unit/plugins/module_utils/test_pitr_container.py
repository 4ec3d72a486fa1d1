# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgops.postgresql contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The volume swap of a container replace, run for real by sh on directories laid out as Docker's local volumes
(``<root>/<name>/_data``)."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import subprocess

from ansible_collections.pgops.postgresql.plugins.module_utils.pitr.container import (
    SWAP_SCRIPT, holding_mount, swap_argv,
)


def volumes(tmp_path, **content):
    for name, files in content.items():
        data = tmp_path / name / '_data'
        data.mkdir(parents=True)
        for f in files:
            (data / f).write_text(f)
    return tmp_path


def swap(root, mode, *names):
    return subprocess.run(['sh', '-c', SWAP_SCRIPT, 'pgops-swap', str(root), mode] + list(names),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, check=False)


def listing(root):
    return dict((name, sorted(os.listdir(str(root / name / '_data')))) for name in sorted(os.listdir(str(root))))


def test_replace_moves_the_server_data_to_the_rollback_and_the_scratch_in(tmp_path):
    root = volumes(tmp_path, pg=['PG_VERSION', 'old'], rb=[], scratch=['PG_VERSION', 'restored'])
    assert swap(root, 'check', 'pg', 'rb', 'scratch', 'pg').returncode == 0
    assert listing(root) == dict(pg=['PG_VERSION', 'old'], rb=[], scratch=['PG_VERSION', 'restored'])
    proc = swap(root, 'swap', 'pg', 'rb', 'scratch', 'pg')
    assert proc.returncode == 0, proc.stderr
    assert listing(root) == dict(pg=['PG_VERSION', 'restored'], rb=['PG_VERSION', 'old'], scratch=[])
    # and back
    assert swap(root, 'swap', 'pg', 'scratch', 'rb', 'pg').returncode == 0
    assert listing(root) == dict(pg=['PG_VERSION', 'old'], rb=[], scratch=['PG_VERSION', 'restored'])


def test_a_target_that_is_not_empty_stops_the_swap_before_anything_moves(tmp_path):
    root = volumes(tmp_path, pg=['old'], rb=['something'], scratch=['restored'])
    proc = swap(root, 'swap', 'pg', 'rb', 'scratch', 'pg')
    assert proc.returncode != 0 and 'rb/_data' in proc.stderr
    assert listing(root) == dict(pg=['old'], rb=['something'], scratch=['restored'])


def test_check_refuses_a_missing_volume_or_data(tmp_path):
    root = volumes(tmp_path, pg=['old'], rb=[])
    proc = swap(root, 'check', 'pg', 'rb', 'scratch', 'pg')
    assert proc.returncode == 3 and 'volume directory scratch is missing' in proc.stderr
    (tmp_path / 'scratch').mkdir()
    proc = swap(root, 'check', 'pg', 'rb', 'scratch', 'pg')
    assert proc.returncode == 3 and 'volume scratch has no _data' in proc.stderr
    assert sorted(os.listdir(str(root / 'pg' / '_data'))) == ['old'] and os.listdir(str(root / 'rb' / '_data')) == []


def test_the_helper_container_has_no_network_and_gets_the_names_as_arguments():
    argv = swap_argv('/var/lib/docker/volumes', 'pgops/postgres:15', [('pg', 'rb'), ('scratch', 'pg')], check=True)
    assert argv[:4] == ['run', '--rm', '--network', 'none']
    assert 'type=bind,source=/var/lib/docker/volumes,target=/pgops-volumes' in argv
    assert argv[argv.index('-c') + 1] == SWAP_SCRIPT
    assert argv[-7:] == ['pgops-swap', '/pgops-volumes', 'check', 'pg', 'rb', 'scratch', 'pg']
    assert swap_argv('/r', 'img', [('a', 'b')])[-4:] == ['/pgops-volumes', 'swap', 'a', 'b']


# `docker inspect`'s Mounts of a server container (pgops/postgres:15, the role's layout)
MOUNTS = [dict(Type='volume', Name='pg-data', Source='/var/lib/docker/volumes/pg-data/_data',
               Destination='/var/lib/postgresql/data'),
          dict(Type='bind', Source='/srv/pgbackrest', Destination='/var/lib/pgbackrest'),
          dict(Type='bind', Source='/srv/pgbackrest-conf', Destination='/etc/pgbackrest')]


def test_the_mount_holding_a_path_is_the_deepest_one():
    assert holding_mount(MOUNTS, '/var/lib/postgresql/data') == '/var/lib/postgresql/data'
    assert holding_mount(MOUNTS, '/var/lib/postgresql/data/pgdata') == '/var/lib/postgresql/data'
    assert holding_mount(MOUNTS + [dict(Destination='/var/lib')], '/var/lib/postgresql/data/x') == \
        '/var/lib/postgresql/data'
    assert holding_mount(MOUNTS, '/etc/pgbackrest/pgbackrest.conf') == '/etc/pgbackrest'
    # a prefix of the name is not a parent directory
    assert holding_mount(MOUNTS, '/var/lib/postgresql/database') is None
    assert holding_mount([], '/var/lib/postgresql/data') is None
