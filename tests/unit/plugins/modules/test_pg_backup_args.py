# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgops.postgresql contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""pg_backup's option rules: each refusal names the option and the fix, and comes before any work (the job never
starts, dest is not created)."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os

import pytest

from ansible_collections.pgops.postgresql.plugins.modules import pg_backup

AGE_KEY = 'age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p'


@pytest.fixture
def dest(tmp_path):
    return str(tmp_path / 'backups')


def run(run_args, backup_dir, **args):
    args.setdefault('dest', backup_dir)
    return run_args(pg_backup, args, 'run_pg_backup')


REFUSED = [
    # declared: required_one_of (all_databases has no default, so its absence is seen)
    pytest.param({}, ['one of the following is required', 'databases', 'all_databases', 'globals'],
                 id='nothing-chosen'),
    # declared: required_if all_databases=false needs databases or globals
    pytest.param(dict(all_databases=False), ['all_databases is False', 'databases', 'globals'],
                 id='all_databases-false-alone'),
    # _options.database_choice_errors
    pytest.param(dict(databases=['pim'], all_databases=True),
                 ['databases and all_databases=true are mutually exclusive', 'remove databases',
                  'all_databases=false'], id='databases-with-all_databases-true'),
    pytest.param(dict(databases=[], globals=True), ['databases must name at least one database', 'all_databases=true'],
                 id='databases-empty'),
    pytest.param(dict(databases=['pim', '']), ['no empty name'], id='databases-empty-name'),
    pytest.param(dict(all_databases=False, globals=False),
                 ['nothing chosen', 'databases', 'all_databases=true', 'globals=true'], id='explicit-falses'),
    # pg_backup.option_errors
    pytest.param(dict(databases=['pim'], dest=' '), ['dest must not be empty', '/backups/database'], id='dest-empty'),
    pytest.param(dict(databases=['pim'], label='../etc'), ['label:'], id='label'),
    pytest.param(dict(databases=['pim'], compression='gzip', compression_level=12),
                 ['compression_level 12', 'compression=gzip', '1 to 9', 'leave compression_level unset'],
                 id='compression_level-range'),
    pytest.param(dict(databases=['pim'], jobs=4), ['jobs=4 needs format=directory', 'jobs=1'],
                 id='jobs-needs-directory'),
    pytest.param(dict(databases=['pim'], format='directory', encrypt_recipients=[AGE_KEY]),
                 ['format=directory cannot be encrypted', 'encrypt_recipients', 'format=custom'],
                 id='directory-encrypted'),
    pytest.param(dict(databases=['pim'], format='directory', encrypt_recipients_file='/etc/pgops/keys.txt'),
                 ['format=directory cannot be encrypted', 'encrypt_recipients_file'], id='directory-encrypted-file'),
    pytest.param(dict(databases=['pim'], format='directory', container='pg'),
                 ['format=directory cannot be used with container', 'format=custom'], id='directory-container'),
]


@pytest.mark.parametrize('args, words', REFUSED)
def test_refused_before_any_work(run_args, dest, args, words):
    result, failed, job = run(run_args, dest, **args)
    assert failed, result
    for word in words:
        assert word in result['msg'], (word, result['msg'])
    assert job.calls == []
    assert not os.path.exists(dest)


def test_every_broken_rule_is_reported_at_once(run_args, dest):
    result, failed, job = run(run_args, dest, databases=['pim'], dest='', jobs=2, label='a/b')
    assert failed and job.calls == []
    assert [m.split(' ')[0] for m in result['msg'].split('; ')] == ['dest', 'label:', 'jobs=2']


ACCEPTED = [
    pytest.param(dict(databases=['pim']), id='databases'),
    # all_databases=false beside databases is what roles pass: not "mutually exclusive"
    pytest.param(dict(databases=['pim'], all_databases=False, globals=False), id='databases-all_databases-false'),
    pytest.param(dict(all_databases=True), id='all_databases'),
    pytest.param(dict(globals=True), id='globals-alone'),
    pytest.param(dict(all_databases=False, globals=True), id='globals-all_databases-false'),
    pytest.param(dict(databases=['pim'], format='directory', jobs=4), id='directory-jobs'),
    pytest.param(dict(databases=['pim'], compression='zstd', compression_level=19), id='compression_level-max'),
]


@pytest.mark.parametrize('args', ACCEPTED)
def test_accepted_options_reach_the_job(run_args, dest, args):
    result, failed, job = run(run_args, dest, **args)
    assert not failed, result
    assert len(job.calls) == 1 and result['job_ran']
    assert job.calls[0]['all_databases'] is args.get('all_databases')   # no default filled in
