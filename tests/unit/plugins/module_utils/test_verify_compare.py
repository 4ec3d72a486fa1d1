# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgops.postgresql contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for _verify.compare's large objects and sequence values: what the dump's snapshot recorded against
what a restore holds. Sequences are not transactional and pg_dump reads them after the record was made: a value
further on in the sequence's direction moved during the dump, one behind is the backup's fault."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import pytest

from ansible_collections.pgops.postgresql.plugins.module_utils._databases import objects_record
from ansible_collections.pgops.postgresql.plugins.module_utils._verify import (
    LARGE_OBJECTS, SEQUENCES, compare, counts_from_restore,
)

TABLES = [dict(schema='public', name='docs', rows=2)]


def seq(last_value, is_called=True, increment=1, cycle=False):
    return dict(last_value=last_value, is_called=is_called, increment=increment, cycle=cycle)


def run(meta_extra, found_extra):
    notes = {}
    problems = compare(dict(tables=TABLES, **meta_extra), dict(tables=TABLES, **found_extra), notes)
    return problems, notes


# -- large objects -------------------------------------------------------------------------------------------
@pytest.mark.parametrize('recorded, found, problems, note', [
    (dict(count=2, size=30), dict(count=2, size=30), [], '2 large objects, 30 bytes'),
    (dict(count=0, size=0), dict(count=0, size=0), [], '0 large objects, 0 bytes'),
    (dict(count=2, size=30), dict(count=0, size=0),
     [(LARGE_OBJECTS, 'large objects differ: 0 restored, the backup says 2')], None),
    (dict(count=2, size=30), dict(count=3, size=30),
     [(LARGE_OBJECTS, 'large objects differ: 3 restored, the backup says 2')], None),
    (dict(count=2, size=30), dict(count=2, size=29),
     [(LARGE_OBJECTS, 'large objects differ in size: 29 bytes restored, the backup says 30')], None),
    # a size that could not be read on either side: the count alone is compared, and the note says so
    (dict(count=2, size=None, size_note='not read: no SELECT'), dict(count=2, size=30), [],
     '2 large objects; their size was not compared: not read: no SELECT'),
    (dict(count=2, size=30), dict(count=2, size=None, size_note='not read here'), [],
     '2 large objects; their size was not compared: not read here'),
    (dict(count=2, size=None), dict(count=1, size=None),
     [(LARGE_OBJECTS, 'large objects differ: 1 restored, the backup says 2')], None),
])
def test_large_objects(recorded, found, problems, note):
    got, notes = run(dict(large_objects=recorded), dict(large_objects=found))
    assert got == problems
    assert notes.get(LARGE_OBJECTS) == note


def test_a_backup_without_large_objects_recorded_compares_as_before():
    """Metadata of older backups has no large_objects key: nothing is compared, whatever the restore holds."""
    assert run({}, dict(large_objects=dict(count=5, size=100), sequence_values={'public.s': seq(9)})) == ([], {})


# -- sequences -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize('recorded, found, behind, note', [
    (seq(5), seq(5), None, '1 sequences'),
    (seq(1, is_called=False), seq(1, is_called=False), None, '1 sequences'),
    # the same place said two ways: 5 handed out, or 6 next without being called
    (seq(5), seq(6, is_called=False), None, '1 sequences'),
    (seq(5), seq(7), None, '1 sequences; moved forward during the dump: public.s 5 -> 7'),
    (seq(1, is_called=False), seq(1), None, '1 sequences; moved forward during the dump: public.s 1 (is_called '
                                            'false) -> 1'),
    (seq(-5, increment=-1), seq(-9, increment=-1), None,
     '1 sequences; moved forward during the dump: public.s -5 -> -9'),
    (seq(500), seq(5), 'public.s is at 5, the backup says 500', None),
    (seq(5), seq(5, is_called=False), 'public.s is at 5 (is_called false), the backup says 5', None),
    (seq(-5, increment=-1), seq(-2, increment=-1), 'public.s is at -2, the backup says -5', None),
    (seq(10, increment=10), seq(20, is_called=False, increment=10), None, '1 sequences'),
    # a cycling sequence may have wrapped round during the dump: noted, not failed
    (seq(99, cycle=True), seq(2, cycle=True), None, '1 sequences; cycling, moved back (wrapped?): public.s 99 -> 2'),
])
def test_sequences(recorded, found, behind, note):
    got, notes = run(dict(sequence_values={'public.s': recorded}), dict(sequence_values={'public.s': found}))
    assert got == ([(SEQUENCES, 'sequences behind the backup: %s' % behind)] if behind else [])
    assert notes.get(SEQUENCES) == note


def test_sequences_name_every_one_behind_and_a_few_that_moved():
    recorded = dict(('public.s%d' % i, seq(10)) for i in range(8))
    moved = dict((k, seq(11)) for k in recorded)
    problems, notes = run(dict(sequence_values=recorded), dict(sequence_values=moved))
    assert problems == []
    assert notes[SEQUENCES] == ('8 sequences; moved forward during the dump: public.s0 10 -> 11, public.s1 10 -> 11, '
                                'public.s2 10 -> 11, public.s3 10 -> 11, public.s4 10 -> 11 and 3 more')
    two_behind = dict(moved, **{'public.s3': seq(9), 'public.s6': seq(1)})
    problems, notes = run(dict(sequence_values=recorded), dict(sequence_values=two_behind))
    assert problems == [(SEQUENCES, 'sequences behind the backup: public.s3 is at 9, the backup says 10; '
                                    'public.s6 is at 1, the backup says 10')]


def test_a_sequence_missing_from_the_restore_is_left_to_the_objects_check():
    meta = dict(tables=TABLES, object_names=dict(sequences=['public.s']), sequence_values={'public.s': seq(3)})
    assert compare(meta, dict(tables=TABLES, sequences=[], sequence_values={})) == [
        ('objects', 'sequences missing: public.s')]


def test_sequence_values_are_compared_only_when_read():
    """verify_scratch reads the restored values only for a backup that recorded them."""
    meta = dict(tables=TABLES, sequence_values={'public.s': seq(3)})
    assert compare(meta, dict(tables=TABLES)) == []


# -- what the metadata records ---------------------------------------------------------------------------------
def test_objects_record_keeps_large_objects_out_of_the_name_sets():
    found = dict(tables=TABLES, indexes=1, sequences=['public.s'], large_objects=dict(count=2, size=30))
    record = objects_record(found)
    assert record['large_objects'] == dict(count=2, size=30)
    assert record['objects']['large_objects'] == 2
    assert 'large_objects' not in record['object_names']
    # a drill's counts for an adopted backup carry them too, and later restores compare against them
    drill = counts_from_restore(found, '2026-01-01T00:00:00+00:00')
    assert compare(drill, dict(found, large_objects=dict(count=1, size=30))) == [
        (LARGE_OBJECTS, 'large objects differ: 1 restored, the backup says 2')]
