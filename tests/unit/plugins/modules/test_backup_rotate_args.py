# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgops.postgresql contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""backup_rotate's max_age_days, declared with the kinds as suboptions: another key or a value that is not a number
is refused before anything is planned; the kinds given override only their own default."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import pytest

from ansible_collections.pgops.postgresql.plugins.modules import backup_offsite, backup_rotate

MODULES = [pytest.param((backup_rotate, 'run_backup_rotate', dict(path='/backups/database')), id='backup_rotate'),
           pytest.param((backup_offsite, 'run_backup_offsite', dict(bucket='pgops', state='rotated')),
                        id='backup_offsite')]


@pytest.mark.parametrize('which', MODULES)
@pytest.mark.parametrize('max_age_days, words', [
    pytest.param({'weekly': 3}, ['max_age_days.weekly', 'full, manual, pre_deploy, pre_restore, snapshot'],
                 id='unknown-kind'),
    pytest.param({'full': 'a month'}, ['full', 'float'], id='not-a-number'),
])
def test_max_age_days_refused_before_any_work(run_args, which, max_age_days, words):
    module, job, base = which
    result, failed, recorder = run_args(module, dict(base, max_age_days=max_age_days), job)
    assert failed, result
    for word in words:
        assert word in result['msg'], (word, result['msg'])
    assert recorder.calls == []


@pytest.mark.parametrize('which', MODULES)
def test_max_age_days_keeps_only_the_kinds_given(run_args, which):
    module, job, base = which
    result, failed, recorder = run_args(module, dict(base, max_age_days={'full': 60, 'snapshot': '1.5'}), job)
    assert not failed, result
    assert recorder.calls[0]['max_age_days'] == {'full': 60.0, 'snapshot': 1.5}


@pytest.mark.parametrize('which', MODULES)
def test_max_age_days_unset_stays_unset(run_args, which):
    module, job, base = which
    result, failed, recorder = run_args(module, dict(base), job)
    assert not failed and recorder.calls[0]['max_age_days'] is None, result
