# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgops.postgresql contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for backup_adopt's pure logic: reading db-backup.sh names (never guessing), and judging content
(gzip streams, plain pg_dump header and trailer, random bytes) without PostgreSQL; and the counts a drill records
for a backup that had none."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import gzip
import hashlib
import os

import pytest

from ansible_collections.pgops.postgresql.plugins.module_utils import _adopt as adopt
from ansible_collections.pgops.postgresql.plugins.module_utils._verify import compare, counts_from_restore, has_counts

ID = '20241219_143022'


@pytest.mark.parametrize('name, expected', [
    ('pim_prod_full_%s.sql.gz' % ID, ('pim_prod', 'full', None, ID, '.sql.gz')),
    ('pim_dev_full_%s.sql.gz' % ID, ('pim_dev', 'full', None, ID, '.sql.gz')),
    ('pim_prod_manual_pre-deployment_%s.sql.gz' % ID, ('pim_prod', 'manual', 'pre-deployment', ID, '.sql.gz')),
    ('pim_prod_manual_corrupted-state_%s.sql.gz' % ID, ('pim_prod', 'manual', 'corrupted-state', ID, '.sql.gz')),
    ('pim_prod_manual_%s.sql.gz' % ID, ('pim_prod', 'manual', None, ID, '.sql.gz')),
    ('pim_dev_snapshot_%s.dump' % ID, ('pim_dev', 'snapshot', None, ID, '.dump')),
    ('pim_prod_pre_restore_%s.sql.gz' % ID, ('pim_prod', 'pre_restore', None, ID, '.sql.gz')),
    ('pim_prod_pre_deploy_release_2_%s.sql' % ID, ('pim_prod', 'pre_deploy', 'release_2', ID, '.sql')),
    ('shop_full_%s.gz' % ID, ('shop', 'full', None, ID, '.gz')),
])
def test_names_of_db_backup_sh_read_one_way(name, expected):
    assert adopt.parse_name(name) == expected


@pytest.mark.parametrize('name, problem', [
    ('pim_prod_backup_latest.sql.gz', adopt.NAME),             # no kind, no id
    ('pim_prod_%s.sql.gz' % ID, adopt.NAME),                   # no kind
    ('full_%s.sql.gz' % ID, adopt.NAME),                       # no database
    ('pim_prod_full_20241219.sql.gz', adopt.NAME),             # half an id
    ('pim_prod_full_20241319_143022.sql.gz', adopt.NAME),      # month 13
    ('pim_prod_full_20241219_256022.sql.gz', adopt.NAME),      # hour 25
    ('pim_prod_daily_%s.sql.gz' % ID, adopt.NAME),             # not a kind of the catalog: not mapped by guess
    ('pim_prod_full_%s.tar' % ID, adopt.NAME),                 # not a dump suffix
    ('pim_prod_manual_..%%2F_%s.sql.gz' % ID, adopt.NAME),     # a label the catalog refuses
    ('my_full_db_full_%s.sql.gz' % ID, adopt.AMBIGUOUS),       # database my, or my_full_db?
    ('pim_prod_manual_full_restore_%s.sql.gz' % ID, adopt.AMBIGUOUS),
])
def test_bad_or_ambiguous_names_are_refused_not_guessed(name, problem):
    with pytest.raises(adopt.Rejected) as e:
        adopt.parse_name(name)
    assert e.value.problem == problem
    assert name in e.value.msg


def test_databases_settle_an_ambiguous_name_and_exclude_others():
    name = 'my_full_db_full_%s.sql.gz' % ID
    assert adopt.parse_name(name, ['my_full_db']) == ('my_full_db', 'full', None, ID, '.sql.gz')
    assert adopt.parse_name(name, ['my']) == ('my', 'full', 'db_full', ID, '.sql.gz')
    with pytest.raises(adopt.Rejected) as e:
        adopt.parse_name('pim_dev_full_%s.sql.gz' % ID, ['pim_prod'])
    assert e.value.problem == adopt.NAME


def test_readings_lists_every_way():
    assert sorted(adopt.readings('a_full_b_full_%s' % ID)) == [('a', 'full', 'b_full', ID), ('a_full_b', 'full', None, ID)]
    assert adopt.readings('no_id_here') == []


PLAIN = (b'--\n-- PostgreSQL database dump\n--\n\n-- Dumped from database version 15.18 (Debian 15.18-0+deb12u1)\n'
         b'-- Dumped by pg_dump version 15.18 (Debian 15.18-0+deb12u1)\n\nSET statement_timeout = 0;\n'
         + b'INSERT INTO t VALUES (1);\n' * 20000 +
         b'\n--\n-- PostgreSQL database dump complete\n--\n\n')


def write(tmp_path, name, data):
    path = os.path.join(str(tmp_path), name)
    with open(path, 'wb') as f:
        f.write(data)
    return path


def test_a_whole_gzip_plain_dump_is_recognised_by_content(tmp_path):
    data = gzip.compress(PLAIN)
    facts = adopt.scan_file(write(tmp_path, 'x_full_%s.dump' % ID, data))   # the suffix lies: content wins
    assert (facts['format'], facts['compression'], facts['compressed_by']) == ('plain', 'gzip', 'external')
    assert facts['size'] == len(data) and facts['sha256'] == hashlib.sha256(data).hexdigest()
    assert facts['server_version'] == '15.18 (Debian 15.18-0+deb12u1)'
    assert facts['pg_dump_version'] == 'pg_dump (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)'
    assert facts['uncompressed_size'] == len(PLAIN)


def test_multi_member_gzip_and_plain_sql(tmp_path):
    half = len(PLAIN) // 2
    facts = adopt.scan_file(write(tmp_path, 'a', gzip.compress(PLAIN[:half]) + gzip.compress(PLAIN[half:])))
    assert facts['compression'] == 'gzip' and facts['uncompressed_size'] == len(PLAIN)
    facts = adopt.scan_file(write(tmp_path, 'b', PLAIN))
    assert (facts['format'], facts['compression']) == ('plain', 'none')


@pytest.mark.parametrize('data, problem, words', [
    (gzip.compress(PLAIN)[:-100], adopt.CONTENT, 'ends early'),                       # cut
    (gzip.compress(PLAIN)[:-8] + b'\x00\x00\x00\x00' + gzip.compress(PLAIN)[-4:], adopt.CONTENT, 'damaged'),  # CRC
    (gzip.compress(PLAIN[:len(PLAIN) // 2]), adopt.CONTENT, 'trailer'),               # pg_dump died, gzip did not
    (gzip.compress(b'hello world\n'), adopt.CONTENT, 'not pg_dump output'),
    (os.urandom(4096).replace(b'\x1f\x8b', b'xx').replace(b'PGDMP', b'xxxxx'), adopt.CONTENT, 'not pg_dump output'),
    (b'', adopt.CONTENT, 'empty'),
    (b'\x28\xb5\x2f\xfd' + os.urandom(100), adopt.UNSUPPORTED, 'zstd'),
    (b'age-encryption.org/v1\n' + os.urandom(100), adopt.UNSUPPORTED, 'age'),
    (gzip.compress(b'PGDMP\x01\x0e\x00\x04\x08\x01\x01' + os.urandom(100)), adopt.UNSUPPORTED, 'gunzip'),
    (gzip.compress(b'--\n-- PostgreSQL database cluster dump\n--\n'), adopt.UNSUPPORTED, 'cluster'),
    (b'PGDMP\x01\x0e\x00\x04\x08\x03' + os.urandom(100), adopt.UNSUPPORTED, 'tar'),
])
def test_content_that_is_not_a_whole_dump_is_refused(tmp_path, data, problem, words):
    with pytest.raises(adopt.Rejected) as e:
        adopt.scan_file(write(tmp_path, 'f', data))
    assert e.value.problem == problem and words in e.value.msg, e.value.msg


def test_a_custom_archive_without_pg_restore_cannot_be_checked(tmp_path):
    with pytest.raises(adopt.Rejected) as e:
        adopt.scan_file(write(tmp_path, 'f', b'PGDMP\x01\x0e\x00\x04\x08\x01' + os.urandom(100)), pg_restore=None)
    assert e.value.problem == adopt.CHECK


def test_a_symbolic_link_is_not_adopted(tmp_path):
    target = write(tmp_path, 'real', gzip.compress(PLAIN))
    link = os.path.join(str(tmp_path), 'link')
    os.symlink(target, link)
    with pytest.raises(adopt.Rejected) as e:
        adopt.scan_file(link)
    assert e.value.problem == adopt.READ and 'symbolic link' in e.value.msg


def test_original_meta_is_kept_as_is(tmp_path):
    write(tmp_path, 'db_full_%s.meta' % ID, b'timestamp=x\nsize=1 MB\n')
    kept = adopt.original_meta(str(tmp_path), 'db_full_%s' % ID)
    assert kept['content'] == 'timestamp=x\nsize=1 MB\n' and kept['file'] == 'db_full_%s.meta' % ID
    assert adopt.original_meta(str(tmp_path), 'other_full_%s' % ID) is None
    write(tmp_path, 'big_full_%s.meta' % ID, b'x' * (adopt.ORIGINAL_META_MAX + 1))
    big = adopt.original_meta(str(tmp_path), 'big_full_%s' % ID)
    assert big['content'] is None and big['size'] == adopt.ORIGINAL_META_MAX + 1 and big['sha256']


FOUND = dict(tables=[dict(schema='public', name='a', rows=3), dict(schema='public', name='b', rows=0)],
             partitioned_tables=['public.p'], views=['public.v'], materialized_views=[], sequences=['public.s'],
             functions=[], indexes=2, schemas=['public'], extensions=['plpgsql'])


def test_counts_from_a_restore_are_marked_and_later_compared():
    assert not has_counts(dict(id=ID)) and has_counts(dict(tables=[]))
    counts = counts_from_restore(FOUND, '2026-11-28T02:00:00+00:00')
    assert counts['tables_source'] == 'drill' and counts['counts_from_restore'] is True
    assert counts['rows_total'] == 3 and counts['objects']['tables'] == 3 and counts['objects']['indexes'] == 2
    assert 'indexes' not in counts['object_names'] and 'tables' not in counts['object_names']
    # a record holding them compares a later restore like any other
    assert compare(counts, FOUND) == []
    other = dict(FOUND, tables=[dict(schema='public', name='a', rows=4), FOUND['tables'][1]])
    assert compare(counts, other) == [('row_counts', 'row counts differ: public.a has 4 rows, the backup says 3')]
