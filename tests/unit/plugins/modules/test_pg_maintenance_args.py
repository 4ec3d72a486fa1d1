# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgops.postgresql contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""pg_maintenance_info's and pg_maintenance's option rules (the database choice they share with pg_backup, and
pg_maintenance's history directory): each refusal names the option and the fix and comes before any work."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os

import pytest

from ansible_collections.pgops.postgresql.plugins.modules import pg_maintenance, pg_maintenance_info

MODULES = [pytest.param((pg_maintenance_info, 'run_pg_maintenance_info'), id='pg_maintenance_info'),
           pytest.param((pg_maintenance, 'run_pg_maintenance'), id='pg_maintenance')]


@pytest.fixture
def history_dir(tmp_path):
    return str(tmp_path / 'history')


def run(run_args, which, history, **args):
    module, job = which
    args.setdefault('history_dir', history)
    return run_args(module, args, job)


REFUSED = [
    # was a TypeError (list(None)) after connecting: all_databases defaulted to false, so required_one_of never fired
    pytest.param({}, ['one of the following is required', 'databases', 'all_databases'], id='nothing-chosen'),
    pytest.param(dict(all_databases=False), ['all_databases is False', 'databases'], id='all_databases-false-alone'),
    pytest.param(dict(databases=['pim'], all_databases=True),
                 ['databases and all_databases=true are mutually exclusive', 'remove databases'],
                 id='databases-with-all_databases-true'),
    pytest.param(dict(databases=[]), ['databases must name at least one database'], id='databases-empty'),
    pytest.param(dict(databases=['']), ['no empty name'], id='databases-empty-name'),
    pytest.param(dict(databases=None, all_databases=None), ['nothing chosen', 'databases', 'all_databases=true'],
                 id='explicit-nulls'),
]


@pytest.mark.parametrize('which', MODULES)
@pytest.mark.parametrize('args, words', REFUSED)
def test_refused_before_any_work(run_args, history_dir, which, args, words):
    result, failed, job = run(run_args, which, history_dir, **args)
    assert failed, result
    for word in words:
        assert word in result['msg'], (word, result['msg'])
    assert job.calls == []
    assert not os.path.exists(history_dir)


ACCEPTED = [
    pytest.param(dict(databases=['pim']), id='databases'),
    # was refused as "mutually exclusive": the maintenance role passes exactly this
    pytest.param(dict(databases=['pim'], all_databases=False), id='databases-all_databases-false'),
    pytest.param(dict(all_databases=True), id='all_databases'),
]


@pytest.mark.parametrize('which', MODULES)
@pytest.mark.parametrize('args', ACCEPTED)
def test_accepted_options_reach_the_job(run_args, history_dir, which, args):
    result, failed, job = run(run_args, which, history_dir, **args)
    assert not failed, result
    assert len(job.calls) == 1 and result['job_ran']


def test_history_needs_a_directory(run_args):
    result, failed, job = run_args(pg_maintenance, dict(databases=['pim']), 'run_pg_maintenance')
    assert failed and job.calls == []
    assert 'write_history is True' in result['msg'] and 'history_dir, backup_dir' in result['msg'], result


@pytest.mark.parametrize('args', [dict(write_history=False), dict(backup_dir='/backups/database')])
def test_history_directory_or_no_history(run_args, args):
    result, failed, job = run_args(pg_maintenance, dict(args, databases=['pim']), 'run_pg_maintenance')
    assert not failed and len(job.calls) == 1, result


def test_info_needs_no_history_directory(run_args):
    result, failed, job = run_args(pg_maintenance_info, dict(databases=['pim']), 'run_pg_maintenance_info')
    assert not failed and len(job.calls) == 1, result
