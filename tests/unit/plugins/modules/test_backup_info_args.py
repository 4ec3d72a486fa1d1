# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgops.postgresql contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""backup_info's and backup_metrics's declared option rules: refused before the catalog is read."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import pytest

from ansible_collections.pgops.postgresql.plugins.modules import backup_info, backup_metrics


@pytest.mark.parametrize('module, job, args, words', [
    pytest.param(backup_info, 'run_backup_info', dict(database='pim', databases=['crm']),
                 ['mutually exclusive', 'database', 'databases'], id='info-database-or-databases'),
    pytest.param(backup_info, 'run_backup_info', dict(kind=['weekly']), ['kind', 'full, manual'], id='info-kind'),
    pytest.param(backup_info, 'run_backup_info', dict(status='ok'), ['status', 'success, failed, any'],
                 id='info-status'),
    pytest.param(backup_metrics, 'run_backup_metrics', dict(growth_action='page'), ['growth_action', 'warn'],
                 id='metrics-action'),
])
def test_refused_before_any_work(run_args, module, job, args, words):
    result, failed, recorder = run_args(module, dict(args, path='/backups/database'), job)
    assert failed, result
    for word in words:
        assert word in result['msg'], (word, result['msg'])
    assert recorder.calls == []


@pytest.mark.parametrize('module, job', [(backup_info, 'run_backup_info'), (backup_metrics, 'run_backup_metrics')])
def test_accepted_options_reach_the_job(run_args, module, job):
    result, failed, recorder = run_args(module, dict(path='/backups/database'), job)
    assert not failed and len(recorder.calls) == 1, result
