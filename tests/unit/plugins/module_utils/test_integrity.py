# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgops.postgresql contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for the integrity check of backups against their metadata, on real files in a temporary directory."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import hashlib
import os

import pytest

from ansible_collections.pgops.postgresql.plugins.module_utils._integrity import (
    DAMAGED, STATES, annotate, check_backup, sha256_file, summary, tree_files,
)
from ansible_collections.pgops.postgresql.plugins.module_utils._pipeline import sha256_tree


@pytest.mark.parametrize('size', [0, 1, (1 << 20) - 1, 1 << 20, (3 << 20) + 7])
def test_sha256_file_matches_hashlib_across_chunk_boundaries(tmp_path, size):
    data = os.urandom(size)
    path = tmp_path / 'dump'
    path.write_bytes(data)
    assert sha256_file(str(path)) == (size, hashlib.sha256(data).hexdigest())


def test_sha256_file_of_a_missing_file_raises(tmp_path):
    with pytest.raises(OSError):
        sha256_file(str(tmp_path / 'missing'))


def make_file_backup(directory, name='db_full_20261128_020000.sql.zst', data=b'a dump\n' * 1000, **extra):
    path = os.path.join(str(directory), name)
    with open(path, 'wb') as f:
        f.write(data)
    meta = dict(id='20261128_020000', database='db', status='success', format='plain', file=name, size=len(data),
                sha256=hashlib.sha256(data).hexdigest(), verifications=[])
    meta.update(extra)
    return meta, path


def make_dir_backup(directory, name='db_full_20261128_030000.dir'):
    path = os.path.join(str(directory), name)
    os.makedirs(path)
    for rel, data in (('toc.dat', b'toc' * 100), ('3001.dat.gz', b'rows' * 500), ('3002.dat.gz', b'more' * 50)):
        with open(os.path.join(path, rel), 'wb') as f:
            f.write(data)
    size, digest, files = sha256_tree(path)
    meta = dict(id='20261128_030000', database='db', status='success', format='directory', file=name, size=size,
                sha256=digest, files=files, verifications=[])
    return meta, path


@pytest.mark.parametrize('verify', [False, True])
def test_intact_file_is_ok(tmp_path, verify):
    meta, dummy = make_file_backup(tmp_path)
    assert check_backup(meta, str(tmp_path), verify) == dict(
        integrity='ok', integrity_detail=None, checksum='passed' if verify else None)


@pytest.mark.parametrize('damage, cheap, full', [
    ('delete', 'missing', 'missing'),
    ('truncate', 'size_mismatch', 'size_mismatch'),
    ('append', 'size_mismatch', 'size_mismatch'),
    ('flip', 'ok', 'checksum_mismatch'),
    ('replace_with_directory', 'missing', 'missing'),
])
def test_damaged_file(tmp_path, damage, cheap, full):
    meta, path = make_file_backup(tmp_path)
    if damage == 'delete':
        os.unlink(path)
    elif damage == 'truncate':
        with open(path, 'r+b') as f:
            f.truncate(10)
    elif damage == 'append':
        with open(path, 'ab') as f:
            f.write(b'x')
    elif damage == 'flip':
        with open(path, 'r+b') as f:
            f.write(b'A')
    else:
        os.unlink(path)
        os.makedirs(path)
    assert check_backup(meta, str(tmp_path))['integrity'] == cheap
    verdict = check_backup(meta, str(tmp_path), verify_checksums=True)
    assert verdict['integrity'] == full and path in verdict['integrity_detail']
    assert verdict['checksum'] == ('failed' if full == 'checksum_mismatch' else None)


def test_truncated_file_detail_names_both_sizes(tmp_path):
    meta, path = make_file_backup(tmp_path)
    with open(path, 'r+b') as f:
        f.truncate(10)
    assert check_backup(meta, str(tmp_path))['integrity_detail'] == (
        '%s holds 10 bytes, the metadata says %d' % (path, meta['size']))


def test_intact_directory_is_ok(tmp_path):
    meta, path = make_dir_backup(tmp_path)
    assert tree_files(path) == (meta['size'], set(meta['files']))
    assert check_backup(meta, str(tmp_path), True) == dict(integrity='ok', integrity_detail=None, checksum='passed')


@pytest.mark.parametrize('damage, cheap, full, named', [
    ('remove_dir', 'missing', 'missing', 'is missing'),
    ('remove_file', 'missing', 'missing', '1 of the 3 files'),
    ('truncate_file', 'size_mismatch', 'size_mismatch', 'the metadata says'),
    ('extra_file', 'size_mismatch', 'size_mismatch', 'the metadata says'),
    ('flip_file', 'ok', 'checksum_mismatch', '1 file(s) differ: 3001.dat.gz'),
    ('rename_file', 'missing', 'missing', '3002.dat.gz'),
])
def test_damaged_directory(tmp_path, damage, cheap, full, named):
    meta, path = make_dir_backup(tmp_path)
    member = os.path.join(path, '3001.dat.gz' if damage != 'rename_file' else '3002.dat.gz')
    if damage == 'remove_dir':
        for name in os.listdir(path):
            os.unlink(os.path.join(path, name))
        os.rmdir(path)
    elif damage == 'remove_file':
        os.unlink(member)
    elif damage == 'truncate_file':
        with open(member, 'r+b') as f:
            f.truncate(1)
    elif damage == 'extra_file':
        with open(os.path.join(path, 'stray'), 'wb') as f:
            f.write(b'x')
    elif damage == 'flip_file':
        with open(member, 'r+b') as f:
            f.write(b'X')
    else:
        os.rename(member, member + '.old')
    assert check_backup(meta, str(tmp_path))['integrity'] == cheap
    verdict = check_backup(meta, str(tmp_path), verify_checksums=True)
    assert verdict['integrity'] == full and named in verdict['integrity_detail']


@pytest.mark.parametrize('meta', [
    dict(id='1', database='db', status='failed', file=None),
    dict(id='1', database='db', status='success', file='x.sql.zst', size=None),
])
def test_nothing_to_check_is_unchecked(tmp_path, meta):
    (tmp_path / 'x.sql.zst').write_bytes(b'x')
    assert check_backup(meta, str(tmp_path), True)['integrity'] == 'unchecked'


def test_no_recorded_sha256_checks_the_size_only(tmp_path):
    meta, dummy = make_file_backup(tmp_path, sha256=None)
    verdict = check_backup(meta, str(tmp_path), True)
    assert verdict['integrity'] == 'ok' and verdict['checksum'] is None
    assert 'records no sha256' in verdict['integrity_detail']


def verification(result, when='2026-11-29T03:00:00+01:00'):
    return dict(result=result, verified_at=when, mode='test')


@pytest.mark.parametrize('verifications, flagged', [
    ([], False),
    ([verification('passed')], True),
    ([verification('passed'), verification('inconclusive')], True),    # says nothing about the backup
    ([verification('passed'), verification('failed')], False),         # its last conclusive check failed already
    ([verification('failed'), verification('passed')], True),
])
def test_damaged_after_verification(tmp_path, verifications, flagged):
    damaged, path = make_file_backup(tmp_path, verifications=verifications)
    intact, dummy = make_file_backup(tmp_path, name='intact.sql.zst', verifications=verifications)
    os.unlink(path)
    annotate([damaged, intact], str(tmp_path))
    assert damaged['integrity'] == 'missing' and damaged['damaged_after_verification'] is flagged
    assert intact['integrity'] == 'ok' and intact['damaged_after_verification'] is False


def test_annotate_computes_checksums_only_for_the_entries_asked(tmp_path):
    first, dummy = make_file_backup(tmp_path, name='a.sql.zst')
    second, path = make_file_backup(tmp_path, name='b.sql.zst')
    with open(path, 'r+b') as f:
        f.write(b'Z')
    annotate([first, second], str(tmp_path), checksum_entries=[first])
    assert first['checksum'] == 'passed' and second['checksum'] is None and second['integrity'] == 'ok'


def test_summary_counts_every_state_and_alerts_on_damage(tmp_path):
    ok, dummy = make_file_backup(tmp_path, name='ok.sql.zst', id='20261128_010000')
    gone, gone_path = make_file_backup(tmp_path, name='gone.sql.zst', id='20261128_020000',
                                       verifications=[verification('passed')])
    short, short_path = make_file_backup(tmp_path, name='short.sql.zst', id='20261128_030000', database='other')
    failed = dict(id='20261128_040000', database='db', status='failed', file=None)
    os.unlink(gone_path)
    with open(short_path, 'r+b') as f:
        f.truncate(3)
    entries = annotate([ok, gone, short, failed], str(tmp_path), checksum_entries=[ok])
    counts, alerts = summary(entries)
    assert set(counts) == set(STATES) | set(['damaged_after_verification', 'checksums_verified'])
    assert counts == dict(ok=1, missing=1, size_mismatch=1, checksum_mismatch=0, unreadable=0, unchecked=1,
                          damaged_after_verification=1, checksums_verified=1)
    assert alerts == [
        'db: backup 20261128_020000 passed a verified restore on 2026-11-29T03:00:00+01:00 but is now damaged '
        '(missing): %s is missing' % gone_path,
        'other: backup 20261128_030000 is damaged (size_mismatch): %s holds 3 bytes, the metadata says %d'
        % (short_path, short['size']),
    ]
    assert set(DAMAGED) < set(STATES)
