# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgops.postgresql contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one verifier's vocabulary and rules, shared by logical (pg_restore_verified) and physical
(pgbackrest_restore) restores: what counts as a true assertion, the amcheck SQL and the outcomes of amcheck as
psql answered them (functional tests run them on real servers: test_verify_objects.py, test_pitr_restore.py)."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import pytest

from ansible_collections.pgops.postgresql.plugins.module_utils._errors import PgOpsError
from ansible_collections.pgops.postgresql.plugins.module_utils._verify import (
    AMCHECK_SCHEMA, BTREE_CHECK_SQL, FAILED, PASSED, UNAVAILABLE, btree_check, btree_check_sql,
    check_btree_indexes, is_true,
)


@pytest.mark.parametrize('lines, true', [
    (['t'], True), (['true'], True), ([' t '], True), (['t', 'f'], True),
    (['f'], False), (['false'], False), ([''], False), ([], False), (['1'], False), (['yes'], False),
])
def test_an_assertion_holds_when_its_first_row_is_true(lines, true):
    assert is_true(lines) is true


def test_the_amcheck_schema_is_quoted_as_an_identifier():
    sql = btree_check_sql('my "odd" schema')
    assert 'count("my ""odd"" schema".bt_index_check(c.oid))' in sql
    assert '@SCHEMA@' in BTREE_CHECK_SQL and '@SCHEMA@' not in sql
    # only valid, ready, permanent B-tree indexes proper ('i', never the partitioned 'I'), outside system schemas
    for words in ("am.amname = 'btree'", "c.relkind = 'i'", "c.relpersistence <> 't'", 'i.indisready',
                  'i.indisvalid', "NOT IN ('pg_catalog', 'information_schema')"):
        assert words in sql


class Answers(object):
    """psql's answers to the statements btree_check sends, in order (an error: a PgOpsError to raise)."""

    def __init__(self, *answers):
        self.answers = list(answers)
        self.sent = []

    def query(self, sql):
        self.sent.append(sql)
        answer = self.answers.pop(0)
        if isinstance(answer, PgOpsError):
            raise answer
        return answer


def test_amcheck_installed_for_the_check_and_dropped_after():
    s = Answers(['1'], [], [], [], ['12'], [], [])
    warnings = []
    assert btree_check(s, warnings) == (PASSED, 12, None)
    assert s.sent[2:4] == ['CREATE SCHEMA %s' % AMCHECK_SCHEMA, 'CREATE EXTENSION amcheck SCHEMA %s' % AMCHECK_SCHEMA]
    assert 'count("%s".bt_index_check' % AMCHECK_SCHEMA in s.sent[4]
    assert s.sent[5:] == ['DROP EXTENSION amcheck', 'DROP SCHEMA %s' % AMCHECK_SCHEMA]
    assert warnings == []


def test_amcheck_already_installed_is_used_where_it_is_and_left():
    s = Answers(['1'], ['ext'], ['3'])
    assert btree_check(s, []) == (PASSED, 3, None)
    assert 'count("ext".bt_index_check' in s.sent[2] and len(s.sent) == 3


def test_amcheck_not_available_or_not_installable_is_unavailable_never_passed():
    assert btree_check(Answers(['0']), []) == (UNAVAILABLE, None, None)
    warnings = []
    s = Answers(['1'], [], PgOpsError('permission denied to create extension "amcheck"'))
    outcome = check_btree_indexes(s, [], warnings)
    assert outcome == 'unavailable (CREATE EXTENSION amcheck failed)'
    assert warnings == ['amcheck was not run: CREATE EXTENSION amcheck failed: permission denied to create '
                        'extension "amcheck"']


def test_corruption_is_a_problem():
    problems = []
    s = Answers(['1'], ['public'], PgOpsError('index "orders_pkey" lacks a main relation fork'))
    assert btree_check(Answers(['1'], ['public'], PgOpsError('x')), [])[0] == FAILED
    assert check_btree_indexes(s, problems, []) == FAILED
    assert problems == ['amcheck found corruption: index "orders_pkey" lacks a main relation fork']
    assert check_btree_indexes(Answers(['1'], ['public'], ['7']), problems, []) == 'passed (7 B-tree indexes)'
