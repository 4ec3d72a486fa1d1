# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgops.postgresql contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The volume swap of a container replace, run for real by sh on directories laid out as Docker's local volumes
(``<root>/<name>/_data``)."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import subprocess

from ansible_collections.pgops.postgresql.plugins.module_utils._pitr_container import SWAP_SCRIPT


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
