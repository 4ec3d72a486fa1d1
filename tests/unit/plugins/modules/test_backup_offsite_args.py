# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgops.postgresql contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""backup_offsite's declared option rules: refused before boto3 is even needed (the job never starts)."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import pytest

from ansible_collections.pgops.postgresql.plugins.modules import backup_offsite

REFUSED = [
    pytest.param(dict(), ['state is pushed', 'path'], id='pushed-needs-path'),
    pytest.param(dict(state='fetched', dest='/restore'), ['state is fetched', 'database'], id='fetched-needs-database'),
    pytest.param(dict(state='fetched', database='pim'), ['state is fetched', 'dest'], id='fetched-needs-dest'),
    pytest.param(dict(path='/b', object_lock_mode='COMPLIANCE'), ['object_lock_mode', 'object_lock_days'],
                 id='object_lock_mode-needs-days'),
    pytest.param(dict(path='/b', access_key='AK'), ['access_key', 'secret_key'], id='keys-together'),
    pytest.param(dict(path='/b', access_key='AK', secret_key='SK', profile='ops'),
                 ['mutually exclusive', 'profile', 'access_key'], id='profile-or-keys'),
    pytest.param(dict(path='/b', state='gone'), ['state', 'pushed, fetched, listed, rotated'], id='state-choices'),
    # the rules AnsibleModule cannot declare (option_errors), refused before the job all the same
    pytest.param(dict(path='/b', object_lock_mode='GOVERNANCE', object_lock_days=0), ['object_lock_days', '1 or more'],
                 id='object_lock_days-at-least-1'),
    pytest.param(dict(path='/b', prefix='a/../b'), ['prefix', 'plain key prefix'], id='prefix-plain'),
    pytest.param(dict(path='/b', endpoint_url='minio:9000'), ['endpoint_url', 'http://'], id='endpoint-scheme'),
    pytest.param(dict(path='/b', endpoint_url='https://u:pw@s3.example'), ['endpoint_url', 'credentials'],
                 id='endpoint-no-credentials'),
]


@pytest.mark.parametrize('args, words', REFUSED)
def test_refused_before_any_work(run_args, args, words):
    result, failed, job = run_args(backup_offsite, dict(args, bucket='pgops'), 'run_backup_offsite')
    assert failed, result
    for word in words:
        assert word in result['msg'], (word, result['msg'])
    assert job.calls == []


@pytest.mark.parametrize('args', [
    dict(path='/b'), dict(state='fetched', dest='/restore', database='pim'), dict(state='listed'),
    dict(state='rotated'), dict(path='/b', object_lock_mode='GOVERNANCE', object_lock_days=7),
])
def test_accepted_options_reach_the_job(run_args, args):
    result, failed, job = run_args(backup_offsite, dict(args, bucket='pgops'), 'run_backup_offsite')
    assert not failed and len(job.calls) == 1, result
