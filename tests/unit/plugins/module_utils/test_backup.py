# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgops.postgresql contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for pg_backup's pure logic: which temporary names belong to a database."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os

import pytest

from ansible_collections.pgops.postgresql.plugins.module_utils._backup import temp_name_re, version_major
from ansible_collections.pgops.postgresql.plugins.module_utils._catalog import (
    COMPRESSIONS, FORMATS, GLOBALS, KINDS, META_SUFFIX, dump_suffix, meta_path, stem,
)
from ansible_collections.pgops.postgresql.plugins.module_utils._fsutil import temp_name


@pytest.mark.parametrize('database', ['pim_dev', 'pim', u'Ünïcode "db" o\'name = x', '.hidden', GLOBALS])
def test_every_temp_name_a_run_of_the_database_writes_matches(database):
    pattern = temp_name_re(database)
    for kind in KINDS:
        for label in (None, 'pre-deployment', u'before schema change ü', 'a_b'):
            entry_stem = stem(database, kind, label, '20261128_020000')
            for fmt in FORMATS:
                for compression in COMPRESSIONS:
                    final = os.path.join('/b', entry_stem + dump_suffix(fmt, compression))
                    assert pattern.match(os.path.basename(temp_name(final))), final
            assert pattern.match(os.path.basename(temp_name(meta_path('/b', entry_stem))))


@pytest.mark.parametrize('database, name', [
    ('pim', '.pim_dev_full_20261128_020000.sql.zst.tmp-42'),        # another database with the same prefix
    ('pim_dev', '.pim_full_20261128_020000.sql.zst.tmp-42'),
    ('pim_dev', '.pim_dev2_full_20261128_020000.sql.zst.tmp-42'),
    ('pim_dev', 'pim_dev_full_20261128_020000.sql.zst'),            # a backup
    ('pim_dev', 'pim_dev_full_20261128_020000' + META_SUFFIX),
    ('pim_dev', '.pim_dev.lock'),
    ('pim_dev', '.pim_dev_full_20261128_020000.sql.zst.tmp-'),      # no pid
    ('pim_dev', '.pim_dev_full_20261128_020000.txt.tmp-42'),        # not a suffix pg_backup writes
    ('pim_dev', '.pim_dev_weekly_20261128_020000.sql.zst.tmp-42'),  # not a kind
    ('pim_dev', '._globals_full_20261128_020000.sql.zst.tmp-42'),
    (GLOBALS, '.pim_dev_full_20261128_020000.sql.zst.tmp-42'),
])
def test_other_names_do_not_match(database, name):
    assert not temp_name_re(database).match(name)


@pytest.mark.parametrize('text, major', [
    ('pg_dump (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)', 15),
    ('pg_dump (PostgreSQL) 17.2', 17),
    ('9.6.24', 9),
])
def test_version_major(text, major):
    assert version_major(text) == major
