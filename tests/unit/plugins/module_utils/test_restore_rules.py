# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgops.postgresql contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for the restore's rules that are pure logic: which backups a restore may use and in which order
(latest, latest_verified, ids, pre_restore, max age), which failures are the backup's fault, and how a scratch
database of ours is recognised."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import datetime
import json

import pytest

from ansible_collections.pgops.postgresql.plugins.module_utils._catalog import (
    CatalogError, backup_candidates, make_id,
)
from ansible_collections.pgops.postgresql.plugins.module_utils._fsutil import PgOpsError
from ansible_collections.pgops.postgresql.plugins.module_utils.restore.scratch import SCRATCH_MARK, scratch_info, scratch_prefix
from ansible_collections.pgops.postgresql.plugins.module_utils._verdict import BackupFault, judge

UTC = datetime.timezone.utc
NOW = datetime.datetime(2026, 11, 28, 12, 0, 0, tzinfo=UTC)


def meta(hours_ago, database='shop', kind='full', status='success', verifications=()):
    started = NOW - datetime.timedelta(hours=hours_ago)
    return dict(id=make_id(started), database=database, kind=kind, status=status, scope='database',
                started_at=started.isoformat(), finished_at=started.isoformat(),
                verifications=[dict(result=r) for r in verifications])


# newest first, as load_catalog returns them
CATALOG = [
    meta(1, kind='pre_restore'),
    meta(2),                                             # last night's, not drilled yet
    meta(3, database='crm'),
    meta(26, verifications=['passed', 'inconclusive']),  # an inconclusive run leaves the verdict as it was
    meta(50, verifications=['passed', 'failed']),        # proved bad since
    meta(74, verifications=['passed']),
    meta(98, status='failed'),
]


def ids(entries):
    return [CATALOG.index(m) for m in entries]


@pytest.mark.parametrize('backup_id, expected', [
    ('latest', [1, 3, 4, 5]),            # newest first, no pre_restore, no failed run, no other database
    ('latest_verified', [3, 5]),         # the last conclusive verification passed
    (CATALOG[0]['id'], [0]),             # a pre_restore backup by its id
    (CATALOG[4]['id'], [4]),             # any backup by its id, whatever its verdict
])
def test_candidates_order_and_kinds(backup_id, expected):
    assert ids(backup_candidates(CATALOG, 'shop', backup_id, now=NOW)) == expected


def test_max_age_refuses_old_data_and_says_how_old():
    assert ids(backup_candidates(CATALOG, 'shop', 'latest', max_age_hours=30, now=NOW)) == [1, 3]
    with pytest.raises(CatalogError) as e:
        backup_candidates(CATALOG, 'shop', 'latest_verified', max_age_hours=12, now=NOW)
    assert 'is 26.0 hours old: more than max_age_hours 12' in str(e.value)
    assert 'backup_id: %s' % CATALOG[3]['id'] in str(e.value)
    # an id is an explicit choice: no age limit
    assert ids(backup_candidates(CATALOG, 'shop', CATALOG[5]['id'], max_age_hours=1, now=NOW)) == [5]


def test_only_pre_restore_backups_are_never_latest():
    with pytest.raises(CatalogError) as e:
        backup_candidates([meta(1, kind='pre_restore')], 'shop', 'latest', now=NOW)
    assert 'only pre_restore backups' in str(e.value) and 'named by its id' in str(e.value)


def test_an_id_shared_by_two_databases_is_ambiguous_without_database():
    twins = [meta(5, database='a'), meta(5, database='b')]
    with pytest.raises(CatalogError) as e:
        backup_candidates(twins, None, twins[0]['id'], now=NOW)
    assert 'ambiguous' in str(e.value) and 'set database' in str(e.value)


def failure(*stages):
    err = PgOpsError('restore failed: ...', step='restore')
    err.stages = list(stages)
    return err


@pytest.mark.parametrize('stages, fault', [
    # evidence about the backup
    ([('psql', 3, 'psql:<stdin>:12: ERROR:  22P02: invalid input syntax for type integer: "x"')], True),
    ([('psql', 3, 'psql:<stdin>:9: ERROR:  42601: syntax error at or near "CREAT"')], True),
    ([('zstd', 1, 'zstd: /b.sql.zst: Data corruption detected')], True),
    ([('pg_restore', 1, 'pg_restore: error: did not find magic string in file header')], True),
    ([('pg_restore', 1, 'pg_restore: error: could not execute query: ERROR:  duplicate key value violates '
                        'unique constraint "p_pkey"')], True),
    # not the backup's fault: killed, the server's disk, the connection, the environment
    ([('psql', -9, '')], False),
    ([('psql', 137, '')], False),                        # docker exec: the process inside was killed
    ([('psql', 2, 'psql: error: server closed the connection unexpectedly')], False),
    ([('psql', 3, 'ERROR:  53100: could not extend file "base/1/2": No space left on device')], False),
    ([('psql', 3, 'ERROR:  57P01: terminating connection due to administrator command')], False),
    ([('psql', 3, 'ERROR:  42704: role "ghost" does not exist')], False),
    # a tablespace the server lacks: pg_dump's SET default_tablespace, and pg_restore's
    ([('psql', 3, 'ERROR:  22023: invalid value for parameter "default_tablespace": "ts_hot"')], False),
    ([('pg_restore', 1, 'pg_restore: error: could not execute query: ERROR:  tablespace "ts_hot" does not exist')],
     False),
    ([('psql', 3, 'ERROR:  42501: permission denied for schema public')], False),
    ([('pg_restore', 1, 'pg_restore: error: could not execute query: ERROR:  role "ghost" does not exist')], False),
    ([('pg_restore', 1, 'pg_restore: error: could not execute query: ERROR:  could not extend file: No space '
                        'left on device')], False),
    ([('psql', 125, 'Error response from daemon: container abc is not running')], False),
    ([('psql', 126, 'OCI runtime exec failed')], False),
])
def test_judge_blames_the_backup_only_on_evidence(stages, fault):
    judged = judge(failure(*stages))
    assert isinstance(judged, BackupFault) is fault
    assert judged.step == 'restore'


def test_judge_without_stages_is_inconclusive():
    err = PgOpsError('cannot run psql', step='restore')
    assert judge(err) is err


def test_scratch_databases_are_recognised_by_their_comment_only():
    info = dict(backup_id='20261128_020000', target='shop', host='h', pid=1, started='2026-11-28T02:00:00+00:00')
    assert scratch_info(SCRATCH_MARK + json.dumps(info)) == info
    for comment in (None, '', 'a user comment', SCRATCH_MARK + 'not json', SCRATCH_MARK + '[1]', SCRATCH_MARK + '{}'):
        assert scratch_info(comment) is None
    assert scratch_prefix('shop') == 'shop__restore_'
    long_name = 'x' * 60
    assert len(scratch_prefix(long_name).encode()) + 15 <= 63
