# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgops.postgresql contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for the pgBackRest runner and the logic of pgbackrest_stanza/_backup/_info: option rules, argv
(secrets never in it), the archiving settings to change, and the parsing of REAL ``pgbackrest info --output=json``
output captured from pgBackRest 2.45 (fixtures/)."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import copy
import json
import os

import pytest

from ansible_collections.pgops.postgresql.plugins.module_utils import _pgbackrest as pgbr
from ansible_collections.pgops.postgresql.plugins.module_utils._pgbackrest import (
    PgBackRest, archive_command, archive_range, backup_options, backup_param_errors, backup_summary,
    desired_settings, error_message, info_param_errors, info_report, iso_utc, pgbackrest_argument_spec,
    pgbackrest_param_errors, settings_errors, stanza_missing, taken, wal_segment_end,
)

FIXTURES = os.path.join(os.path.dirname(__file__), 'fixtures')
SEG = 16 * 1024 * 1024


def fixture(name):
    with open(os.path.join(FIXTURES, name)) as f:
        return json.load(f)


@pytest.fixture
def entry():
    """full, diff and incr backups (annotated) and the archive after a WAL switch, stanza main."""
    return fixture('pgbackrest_info_full_diff_incr.json')[0]


class FakeModule(object):
    """What PgBackRest uses of AnsibleModule: get_bin_path and no_log_values."""

    def __init__(self):
        self.no_log_values = set()

    def get_bin_path(self, name, required=False):
        return '/usr/bin/' + name


def params(**overrides):
    p = dict((name, spec.get('default')) for name, spec in pgbackrest_argument_spec().items())
    p.update(stanza='main', container=None, container_runtime='docker')
    p.update(overrides)
    return p


# -- options --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize('overrides, words', [
    (dict(stanza='main'), None),
    (dict(stanza='pim.prod-1_a'), None),
    (dict(stanza='pim prod'), 'stanza must be'),
    (dict(stanza='-x'), 'stanza must be'),
    (dict(stanza=''), 'stanza must be'),
    (dict(pgbackrest_env={'PGBACKREST_REPO1_CIPHER_PASS': 'x'}), None),
    (dict(pgbackrest_env={'REPO1_CIPHER_PASS': 'x'}), 'not a pgBackRest environment option'),
    (dict(pgbackrest_env={'PGBACKREST_repo1': 'x'}), 'not a pgBackRest environment option'),
])
def test_pgbackrest_param_errors(overrides, words):
    errors = pgbackrest_param_errors(params(**overrides))
    if words is None:
        assert errors == []
    else:
        assert len(errors) == 1 and words in errors[0], errors


@pytest.mark.parametrize('overrides, words', [
    ({}, None),
    (dict(label='release-4.2', annotations={'ticket': 'OPS-1'}, repo=2), None),
    (dict(label='a..b'), '".."'),
    (dict(label='-x'), 'must not start'),
    (dict(label='x' * 65), 'at most 64'),
    (dict(annotations={'pgops-kind': 'full'}), 'is ours'),
    (dict(annotations={'bad key': 'v'}), 'key \'bad key\''),
    (dict(annotations={'k': 'two\nlines'}), 'one-line'),
    (dict(annotations={'k': ''}), 'one-line'),
    (dict(repo=0), 'repo must be'),
    (dict(repo=257), 'repo must be'),
])
def test_backup_param_errors(overrides, words):
    p = dict(type='incr', kind='manual', label=None, annotations={}, repo=None)
    p.update(overrides)
    errors = backup_param_errors(p)
    if words is None:
        assert errors == []
    else:
        assert len(errors) == 1 and words in errors[0], errors


@pytest.mark.parametrize('overrides, bad', [
    ({}, 0), (dict(max_archive_age_minutes=0, max_full_age_days=0), 0),
    (dict(max_archive_age_minutes=-1), 1), (dict(max_full_age_days=-0.5, repo=0), 2),
])
def test_info_param_errors(overrides, bad):
    p = dict(max_archive_age_minutes=60, max_full_age_days=8, repo=None)
    p.update(overrides)
    assert len(info_param_errors(p)) == bad


# -- argv: natively (as os_user) or in the container; secrets by name only ---------------------------------------
def test_argv_in_a_container_names_secrets_never_their_values():
    module = FakeModule()
    br = PgBackRest(module, params(container='pg', config='/etc/pgbackrest/pgbackrest.conf', os_user='postgres',
                                   pgbackrest_env={'PGBACKREST_REPO1_CIPHER_PASS': 'v3ry-s3cret'}))
    argv = br.argv('backup', ['--type=full'])
    assert argv[:5] == ['/usr/bin/docker', 'exec', '-u', 'postgres', '-e']
    assert argv[5:7] == ['PGBACKREST_REPO1_CIPHER_PASS', 'pg']
    assert argv[7:10] == ['pgbackrest', '--stanza=main', '--config=/etc/pgbackrest/pgbackrest.conf']
    assert argv[-2:] == ['--type=full', 'backup']
    assert not [a for a in argv if 'v3ry-s3cret' in a]
    assert 'v3ry-s3cret' in module.no_log_values
    assert br.env()['PGBACKREST_REPO1_CIPHER_PASS'] == 'v3ry-s3cret'


def test_env_drops_inherited_pgbackrest_options(monkeypatch):
    monkeypatch.setenv('PGBACKREST_REPO1_PATH', '/elsewhere')
    env = PgBackRest(FakeModule(), params()).env()
    assert 'PGBACKREST_REPO1_PATH' not in env and env['LC_ALL'] == 'C'


def test_natively_as_root_pgbackrest_is_our_own_child_as_os_user(monkeypatch):
    """No runuser in between: the child switches to os_user itself and dies with the module (a killed module must
    not leave pgbackrest running)."""
    monkeypatch.setattr(pgbr.os, 'geteuid', lambda: 0)
    br = PgBackRest(FakeModule(), params(os_user='postgres'))
    argv = br.argv('check')
    assert argv[0] == '/usr/bin/pgbackrest' and argv[-1] == 'check'
    assert br.run_as == 'postgres'
    assert PgBackRest(FakeModule(), params(os_user='postgres', container='pg')).run_as is None
    monkeypatch.setattr(pgbr.os, 'geteuid', lambda: 1234)
    assert PgBackRest(FakeModule(), params(os_user='postgres')).run_as is None


@pytest.mark.parametrize('text, found', [
    ('ERROR: [055]: unable to load info file \'/repo/backup/main/backup.info\'',
     '[055]: unable to load info file \'/repo/backup/main/backup.info\''),
    ('P00  ERROR: [087]: archive_mode must be enabled\n', '[087]: archive_mode must be enabled'),
    ('WARN: something\n', ''),
])
def test_error_message(text, found):
    assert error_message(text) == found


# -- pgbackrest_stanza: what to set ---------------------------------------------------------------------------
def setting(value, source='default', file=None, context='postmaster', pending=False):
    return dict(setting=value, source=source, file=file, context=context, pending_restart=pending)


CMD = 'pgbackrest --stanza=main archive-push %p'


def test_archive_command_quotes_a_config_path_for_the_shell():
    assert archive_command('main') == CMD
    assert archive_command('main', '/etc/pgbackrest/pgbackrest.conf') == (
        'pgbackrest --stanza=main --config=/etc/pgbackrest/pgbackrest.conf archive-push %p')
    assert archive_command('main', "/etc/my conf/it's.conf") == (
        "pgbackrest --stanza=main '--config=/etc/my conf/it'\"'\"'s.conf' archive-push %p")
    assert archive_command('main', '/etc/100%.conf') == (
        'pgbackrest --stanza=main --config=/etc/100%%.conf archive-push %p')


def test_a_fresh_server_needs_all_three():
    current = dict(wal_level=setting('minimal', 'configuration file', 'minimal'), archive_mode=setting('off'),
                   archive_command=setting('(disabled)', context='sighup'))
    assert desired_settings(current, CMD) == [('wal_level', 'minimal', 'replica'), ('archive_mode', 'off', 'on'),
                                              ('archive_command', '(disabled)', CMD)]


def test_logical_and_always_are_kept_and_nothing_changes_twice():
    current = dict(wal_level=setting('logical', 'configuration file', 'logical'),
                   archive_mode=setting('always', 'configuration file', 'always'),
                   archive_command=setting(CMD, 'configuration file', CMD, 'sighup'), archive_library=setting(''))
    assert desired_settings(current, CMD) == []


def test_settings_pending_a_restart_are_not_set_again():
    # after ALTER SYSTEM + reload, before the restart: the files already say what we want
    current = dict(wal_level=setting('minimal', 'configuration file', 'replica', pending=True),
                   archive_mode=setting('off', 'default', 'on', pending=True),
                   archive_command=setting('(disabled)', 'default', CMD, 'sighup'))
    assert desired_settings(current, CMD) == []


def test_an_archive_library_is_emptied():
    current = dict(wal_level=setting('replica'), archive_mode=setting('on', file='on'),
                   archive_command=setting(CMD, file=CMD), archive_library=setting('basic_archive', file='x'))
    assert desired_settings(current, CMD) == [('archive_library', 'x', '')]


def test_a_setting_on_the_command_line_is_refused_with_its_name():
    current = dict(wal_level=setting('replica'), archive_mode=setting('off', 'command line', 'on'),
                   archive_command=setting(CMD, file=CMD))
    changes = desired_settings(current, CMD)
    assert changes == [('archive_mode', 'off', 'on')]   # the command line wins over the files
    errors = settings_errors(current, changes)
    assert len(errors) == 1 and 'archive_mode is set on the server\'s command line' in errors[0]


@pytest.mark.parametrize('name, wanted, now, ok', [
    ('archive_command', CMD, dict(setting=CMD), True),
    ('archive_command', CMD, dict(setting='(disabled)'), True),
    ('archive_command', CMD, dict(setting='old'), False),
    ('wal_level', 'replica', dict(setting='minimal', pending_restart=True), True),
    ('wal_level', 'replica', dict(setting='minimal', pending_restart=False), False),
])
def test_taken(name, wanted, now, ok):
    assert taken(name, wanted, now) is ok


def test_stanza_missing_from_real_output(entry):
    assert stanza_missing(fixture('pgbackrest_info_missing_stanza.json')[0])
    assert not stanza_missing(entry)


# -- pgbackrest_backup --------------------------------------------------------------------------------------
def test_backup_options_with_annotations_sorted():
    options, annotations = backup_options(dict(type='diff', kind='pre_deploy', label='release 4.2',
                                               annotations={'ticket': 'OPS-1'}, repo=2))
    assert options == ['--type=diff', '--annotation=pgops-kind=pre_deploy', '--annotation=pgops-label=release 4.2',
                       '--annotation=ticket=OPS-1', '--repo=2']
    assert annotations == {'pgops-kind': 'pre_deploy', 'pgops-label': 'release 4.2', 'ticket': 'OPS-1'}
    options, dummy = backup_options(dict(type='incr', kind='manual', label=None, annotations={}, repo=None))
    assert options == ['--type=incr', '--annotation=pgops-kind=manual']


def test_backup_summary_of_real_output(entry):
    full, diff, incr = [backup_summary(b) for b in entry['backup']]
    raw = entry['backup'][0]
    assert full['label'] == raw['label'] and full['type'] == 'full' and full['prior'] is None
    assert full['started_at'] == iso_utc(raw['timestamp']['start']) and full['started_at'].endswith('Z')
    assert (full['size'], full['repo_size'], full['delta'], full['repo_delta']) == (
        raw['info']['size'], raw['info']['repository']['size'], raw['info']['delta'],
        raw['info']['repository']['delta'])
    assert (full['wal_start'], full['wal_stop'], full['lsn_start'], full['lsn_stop']) == (
        raw['archive']['start'], raw['archive']['stop'], raw['lsn']['start'], raw['lsn']['stop'])
    assert full['annotations'] == {'pgops-kind': 'full', 'pgops-label': 'weekly'}
    assert diff['type'] == 'diff' and diff['prior'] == full['label'] and diff['reference'] == [full['label']]
    assert incr['type'] == 'incr' and incr['prior'] == diff['label']
    assert incr['annotations'] == {'pgops-kind': 'pre_deploy', 'pgops-label': 'release-4.2'}
    assert full['repo'] == 1 and not full['error']


@pytest.mark.parametrize('epoch, text', [
    (0, '1970-01-01T00:00:00Z'), (1795905288, '2026-11-28T22:34:48Z'), (1795905288.25, '2026-11-28T22:34:48.250000Z'),
    (None, None),
])
def test_iso_utc(epoch, text):
    assert iso_utc(epoch) == text


# -- pgbackrest_info ----------------------------------------------------------------------------------------
@pytest.mark.parametrize('name, end', [
    ('000000010000000000000003', (1, 4 * SEG)),
    ('000000010000000000000003.00000028.backup', (1, 4 * SEG)),   # the .backup file names its segment
    ('0000000200000001000000FF', (2, (0x100000000 + 0x100 * SEG))),
    ('00000002.history', None), ('000000010000000000000003.partial', None), (None, None),
])
def test_wal_segment_end(name, end):
    assert wal_segment_end(name, SEG) == end


def archiver(entry, **overrides):
    """pg_stat_archiver as ARCHIVER_SQL returns it, healthy: the repository's newest WAL archived a minute after
    the newest backup, nothing written since."""
    last = entry['archive'][0]['max']
    stop = entry['backup'][-1]['timestamp']['stop']
    row = dict(archived_count=8, last_archived_wal=last, last_archived_time=stop + 60.5, failed_count=0,
               last_failed_wal=None, last_failed_time=None, stats_reset=stop - 3600, archive_mode='on',
               archive_command=CMD, in_recovery=False, current_wal_lsn='0/9000000',
               current_wal_file='000000010000000000000009', wal_segment_size=SEG, now=stop + 120)
    row.update(overrides)
    return row


def test_healthy_report(entry):
    row = archiver(entry)
    report = info_report(entry, row, row['now'])
    assert report['alerts'] == []
    assert [b['type'] for b in report['backups']] == ['incr', 'diff', 'full']   # newest first
    window = report['recoverable_window']
    assert window['start_epoch'] == entry['backup'][0]['timestamp']['start']
    assert window['end_epoch'] == row['last_archived_time'] and window['end'].endswith('.500000Z')
    archive = report['archive']
    assert (archive['min_wal'], archive['max_wal']) == ('000000010000000000000001', '000000010000000000000008')
    assert archive['pending_wal_bytes'] == 0 and archive['failing'] is False and archive['age_seconds'] == 59.5
    assert report['status']['code'] == 0 and report['status']['repos'][0]['message'] == 'ok'


def test_the_window_end_is_no_earlier_than_the_newest_backup(entry):
    row = archiver(entry, last_archived_time=entry['backup'][0]['timestamp']['stop'])
    window = info_report(entry, row, row['now'])['recoverable_window']
    assert window['end_epoch'] == entry['backup'][-1]['timestamp']['stop']
    window = info_report(entry, None, 0, 0, 0)['recoverable_window']   # no pg_stat_archiver at all
    assert window['end_epoch'] == entry['backup'][-1]['timestamp']['stop']


def test_failing_archiving_is_an_alert(entry):
    row = archiver(entry)
    row.update(failed_count=3, last_failed_wal='000000010000000000000009', last_failed_time=row['now'] - 5)
    report = info_report(entry, row, row['now'])
    assert report['archive']['failing'] is True and report['archive']['failed_count'] == 3
    assert len(report['alerts']) == 1 and report['alerts'][0].startswith('WAL archiving is failing: 3 failed')
    assert '000000010000000000000009' in report['alerts'][0]
    # failures older than the last success: archiving recovered, counted but not alerted
    row.update(last_failed_time=row['last_archived_time'] - 100)
    report = info_report(entry, row, row['now'])
    assert report['archive']['failing'] is False and report['alerts'] == []


def test_an_old_archive_is_an_alert_only_when_wal_was_written_since(entry):
    row = archiver(entry, now=entry['backup'][-1]['timestamp']['stop'] + 7200)
    assert info_report(entry, row, row['now'], max_full_age_days=0)['alerts'] == []   # idle: nothing to archive
    row.update(current_wal_lsn='0/9001000')
    report = info_report(entry, row, row['now'], max_full_age_days=0)
    assert report['archive']['pending_wal_bytes'] == 0x1000
    assert len(report['alerts']) == 1 and 'is 2.0 h old, over max_archive_age_minutes=60' in report['alerts'][0]
    assert info_report(entry, row, row['now'], max_archive_age_minutes=0, max_full_age_days=0)['alerts'] == []


def test_pending_wal_counts_from_the_newest_archived_segment(entry):
    # after a backup the server's last archived file is often the .backup file of an OLDER segment than the one
    # archived just before it: the repository's newest segment says what is archived
    row = archiver(entry, last_archived_wal='000000010000000000000007.00000028.backup',
                   now=entry['backup'][-1]['timestamp']['stop'] + 7200)
    report = info_report(entry, row, row['now'], max_full_age_days=0)
    assert report['archive']['pending_wal_bytes'] == 0 and report['alerts'] == []
    # another timeline than the server's: unknown, and the age alone decides
    row.update(current_wal_file='000000020000000000000009')
    report = info_report(entry, row, row['now'], max_full_age_days=0)
    assert report['archive']['pending_wal_bytes'] is None and len(report['alerts']) == 1


def test_no_recent_full_backup_is_an_alert(entry):
    row = archiver(entry)
    later = entry['backup'][0]['timestamp']['stop'] + 9 * 86400
    alerts = info_report(entry, row, later, max_archive_age_minutes=0)['alerts']
    assert len(alerts) == 1 and alerts[0].startswith('no full backup in the last 8 days') and '(9.0 days ago)' \
        in alerts[0]
    no_full = copy.deepcopy(entry)
    no_full['backup'] = [b for b in no_full['backup'] if b['type'] != 'full']
    alerts = info_report(no_full, row, row['now'])['alerts']
    assert alerts == ['no full backup in the repository of stanza main']


def test_a_missing_stanza_and_archive_mode_off(entry):
    missing = fixture('pgbackrest_info_missing_stanza.json')[0]
    row = archiver(entry, archive_mode='off', last_archived_wal=None, last_archived_time=None, archived_count=0)
    report = info_report(missing, row, row['now'])
    assert report['backups'] == [] and report['recoverable_window'] is None
    assert report['archive']['min_wal'] is None and report['archive']['age_seconds'] is None
    assert report['alerts'] == ['pgBackRest stanza main is not ok: missing stanza path (status code 1)',
                                'archive_mode is off: WAL is not archived, so no recovery past the newest backup '
                                '(run pgbackrest_stanza)',
                                'no full backup in the repository of stanza main']


def test_a_backup_with_errors_is_an_alert_and_not_in_the_window(entry):
    damaged = copy.deepcopy(entry)
    damaged['backup'][0]['error'] = True
    row = archiver(entry)
    report = info_report(damaged, row, row['now'])
    assert any('has errors' in a and damaged['backup'][0]['label'] in a for a in report['alerts'])
    assert report['recoverable_window']['start_epoch'] == damaged['backup'][1]['timestamp']['start']


def test_archive_range_of_the_current_cluster_and_repo(entry):
    two = copy.deepcopy(entry)
    two['db'].append(dict(id=2, **{'repo-key': 1, 'system-id': 1, 'version': '15'}))
    two['archive'].append(dict(database={'id': 2, 'repo-key': 1}, id='15-2', min='000000010000000000000001',
                               max='000000010000000000000002'))
    assert archive_range(two) == ('000000010000000000000001', '000000010000000000000002')   # after stanza-upgrade
    assert archive_range(entry, repo=2) == (None, None)
    assert archive_range(entry, repo=1) == ('000000010000000000000001', '000000010000000000000008')
