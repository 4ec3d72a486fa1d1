# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgops.postgresql contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""pgbackrest_stanza's, pgbackrest_backup's and pgbackrest_info's option rules: refused before pgBackRest or the
server is reached (the job never starts), each message naming the option, with failed_step=options."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import pytest

from ansible_collections.pgops.postgresql.plugins.modules import pgbackrest_backup, pgbackrest_info, pgbackrest_stanza

JOBS = dict(stanza=(pgbackrest_stanza, 'run_pgbackrest_stanza'), backup=(pgbackrest_backup, 'run_pgbackrest_backup'),
            info=(pgbackrest_info, 'run_pgbackrest_info'))


def run(run_args, which, **args):
    module, job = JOBS[which]
    args.setdefault('stanza', 'main')
    return run_args(module, args, job)


REFUSED = [
    # declared in the argument spec
    pytest.param('stanza', dict(stanza=None), ['stanza'], False, id='stanza-required'),
    pytest.param('backup', dict(type='weekly'), ['type', 'full, diff, incr'], False, id='backup-type'),
    pytest.param('backup', dict(kind='nightly'), ['kind', 'full, manual'], False, id='backup-kind'),
    pytest.param('info', dict(max_full_age_days='soon'), ['max_full_age_days'], False, id='info-float'),
    pytest.param('stanza', dict(container_runtime='lxc'), ['container_runtime'], False, id='runtime'),
    # pgbackrest_param_errors / connection_param_errors / the module's own
    pytest.param('stanza', dict(stanza='pim prod'), ['stanza must be a pgBackRest stanza name'], True,
                 id='stanza-name'),
    pytest.param('info', dict(pgbackrest_env={'REPO1_CIPHER_PASS': 'x'}), ['pgbackrest_env', 'PGBACKREST_'], True,
                 id='env-name'),
    pytest.param('backup', dict(login_port=0), ['login_port (port) must be between 1 and 65535'], True,
                 id='port'),
    pytest.param('backup', dict(label='a/b'), ['label', 'path separator'], True, id='backup-label'),
    pytest.param('backup', dict(annotations={'pgops-kind': 'x'}), ['annotations', 'set kind and label'], True,
                 id='backup-reserved-annotation'),
    pytest.param('backup', dict(repo=0), ['repo must be a pgBackRest repository number'], True, id='backup-repo'),
    pytest.param('info', dict(max_archive_age_minutes=-5), ['max_archive_age_minutes must be 0'], True,
                 id='info-age'),
    pytest.param('info', dict(repo=300), ['repo must be'], True, id='info-repo'),
]


@pytest.mark.parametrize('which, args, words, step', REFUSED)
def test_refused_before_any_work(run_args, which, args, words, step):
    result, failed, job = run(run_args, which, **args)
    assert failed, result
    for word in words:
        assert word in result['msg'], (word, result['msg'])
    if step:
        assert result['failed_step'] == 'options'
    assert job.calls == []


@pytest.mark.parametrize('which, args, expected', [
    ('stanza', {}, dict(archive=True, maintenance_db='postgres', os_user='postgres', config=None)),
    ('backup', dict(type='full', label='release-4.2', annotations={'ticket': 'OPS-1'}, repo=2),
     dict(type='full', kind='manual', label='release-4.2', repo=2)),
    ('backup', {}, dict(type='incr', kind='manual', annotations={})),
    ('info', {}, dict(max_archive_age_minutes=60, max_full_age_days=8, repo=None)),
    ('info', dict(max_archive_age_minutes=0, max_full_age_days=0), dict(max_archive_age_minutes=0)),
])
def test_accepted_options_reach_the_job(run_args, which, args, expected):
    result, failed, job = run(run_args, which, **args)
    assert not failed and len(job.calls) == 1, result
    for name, value in expected.items():
        assert job.calls[0][name] == value, name
