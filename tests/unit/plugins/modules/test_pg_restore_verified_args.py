# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgops.postgresql contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""pg_restore_verified's option rules: refused before the container, the server or the catalog is looked at (the
job never starts, nothing is audited), each message naming the option and the fix."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os

import pytest

from ansible_collections.pgops.postgresql.plugins.modules import pg_restore_verified


@pytest.fixture
def path(tmp_path):
    backups = tmp_path / 'backups'
    backups.mkdir()
    return str(backups)


def run(run_args, backup_dir, **args):
    args.setdefault('path', backup_dir)
    return run_args(pg_restore_verified, args, 'run_pg_restore_verified')


REFUSED = [
    # declared
    pytest.param(dict(mode='new', database='pim'), ['mode is new', 'target'], False, id='new-needs-target'),
    pytest.param(dict(mode='rollback'), ['mode is rollback', 'target', 'database'], False,
                 id='rollback-needs-target-or-database'),
    pytest.param(dict(age_identity_file='/k.txt', age_identity='AGE-SECRET-KEY-1X'),
                 ['mutually exclusive', 'age_identity_file', 'age_identity'], False, id='one-identity'),
    # option_errors
    pytest.param(dict(mode='new', target='fresh'), ['mode=new with backup_id=latest needs database', 'set database'],
                 True, id='new-latest-needs-database'),
    pytest.param(dict(mode='replace', backup_id='latest_verified'),
                 ['mode=replace with backup_id=latest_verified needs database', 'or target'], True,
                 id='replace-latest-needs-database-or-target'),
    pytest.param(dict(max_attempts=0), ['max_attempts must be 1 or more (got 0)'], True, id='max_attempts'),
    pytest.param(dict(max_age_hours=-1), ['max_age_hours must be 0 or more (got -1'], True, id='max_age_hours'),
    pytest.param(dict(server_free_space_ratio=-0.5), ['server_free_space_ratio must be 0 or more (got -0.5)'], True,
                 id='server_free_space_ratio'),
    pytest.param(dict(backup_id=''), ['backup_id must not be empty', 'latest_verified'], True, id='backup_id-empty'),
    pytest.param(dict(backup_id='  '), ['backup_id must not be empty'], True, id='backup_id-blank'),
    pytest.param(dict(path=''), ['path must not be empty', 'current directory'], True, id='path-empty'),
    pytest.param(dict(path='MISSING'), ['does not exist', 'nothing was created'], True, id='path-missing'),
    pytest.param(dict(path='FILE'), ['is not a directory', 'set path'], True, id='path-file'),
    pytest.param(dict(session_settings={'work_mem': '64MB; DROP'}),
                 ['session_settings: work_mem=64MB; DROP is refused', 'letters, digits'], True,
                 id='session_settings'),
]


@pytest.mark.parametrize('args, words, step', REFUSED)
def test_refused_before_any_work(run_args, path, tmp_path, args, words, step):
    if args.get('path') == 'MISSING':
        args = dict(args, path=str(tmp_path / 'backups' / 'nonexist' / 'sub'))
    elif args.get('path') == 'FILE':
        (tmp_path / 'a-file').write_text('x')
        args = dict(args, path=str(tmp_path / 'a-file'))
    result, failed, job = run(run_args, path, **args)
    assert failed, result
    for word in words:
        assert word in result['msg'], (word, result['msg'])
    if step:   # the job's own refusals carry failed_step=options: these keep it
        assert result['failed_step'] == 'options'
    assert job.calls == []
    assert os.listdir(path) == []


ACCEPTED = [
    pytest.param(dict(), id='test-latest'),
    pytest.param(dict(mode='new', target='fresh', database='pim'), id='new'),
    pytest.param(dict(mode='new', target='fresh', backup_id='20261128_020000'), id='new-by-id'),
    pytest.param(dict(mode='replace', target='pim'), id='replace-own-backups'),
    pytest.param(dict(mode='rollback', database='pim'), id='rollback-database'),
    pytest.param(dict(max_attempts=1, max_age_hours=0, server_free_space_ratio=0), id='lowest-values'),
]


@pytest.mark.parametrize('args', ACCEPTED)
def test_accepted_options_reach_the_job(run_args, path, args):
    result, failed, job = run(run_args, path, **args)
    assert not failed, result
    assert len(job.calls) == 1
