# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgops.postgresql contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""pgbackrest_restore's pure rules: option checks (each message naming the option and the fix), target parsing, the
recoverable window and the choice of the backup set - on the JSON pgBackRest 2.45 really printed (a full, an
incremental and a differential backup of a PostgreSQL 15 cluster, then pg_stat_archiver of that server)."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import copy
import datetime
import json

import pytest

from ansible_collections.pgops.postgresql.plugins.module_utils._errors import PgOpsError
from ansible_collections.pgops.postgresql.plugins.module_utils._pgbackrest import recoverable_window
from ansible_collections.pgops.postgresql.plugins.module_utils.pitr.backend import (
    new_timeline_history, postmaster_opts_args, strip_archive_off, unarchived_history,
)
from ansible_collections.pgops.postgresql.plugins.module_utils.pitr.target import (
    check_target, choose_backup, option_errors, parse_target_time, restore_options, target_of,
)

# `pgbackrest --output=json info` (2.45), captured after: full, INSERT, incr, INSERT, diff, pg_switch_wal()
INFO = json.loads(r'''
{"archive": [{"database": {"id": 1, "repo-key": 1}, "id": "15-1", "max": "000000010000000000000008",
  "min": "000000010000000000000001"}],
 "backup": [
  {"archive": {"start": "000000010000000000000003", "stop": "000000010000000000000003"},
   "backrest": {"format": 5, "version": "2.45"}, "database": {"id": 1, "repo-key": 1}, "error": false,
   "info": {"delta": 22992686, "repository": {"delta": 3043944, "size": 3043944}, "size": 22992686},
   "label": "20261128-223553F", "lsn": {"start": "0/3000028", "stop": "0/3000100"}, "prior": null,
   "reference": null, "timestamp": {"start": 1795905353, "stop": 1795905356}, "type": "full"},
  {"archive": {"start": "000000010000000000000005", "stop": "000000010000000000000005"},
   "backrest": {"format": 5, "version": "2.45"}, "database": {"id": 1, "repo-key": 1}, "error": false,
   "info": {"delta": 598282, "repository": {"delta": 51137, "size": 3044006}, "size": 23000878},
   "label": "20261128-223553F_20261128-223557I", "lsn": {"start": "0/5000028", "stop": "0/5000100"},
   "prior": "20261128-223553F", "reference": ["20261128-223553F"],
   "timestamp": {"start": 1795905357, "stop": 1795905358}, "type": "incr"},
  {"archive": {"start": "000000010000000000000007", "stop": "000000010000000000000007"},
   "backrest": {"format": 5, "version": "2.45"}, "database": {"id": 1, "repo-key": 1}, "error": false,
   "info": {"delta": 598282, "repository": {"delta": 51151, "size": 3044020}, "size": 23000878},
   "label": "20261128-223553F_20261128-223559D", "lsn": {"start": "0/7000028", "stop": "0/7000100"},
   "prior": "20261128-223553F", "reference": ["20261128-223553F"],
   "timestamp": {"start": 1795905359, "stop": 1795905360}, "type": "diff"}],
 "cipher": "none", "db": [{"id": 1, "repo-key": 1, "system-id": 7713354744976547804, "version": "15"}],
 "name": "main", "repo": [{"cipher": "none", "key": 1, "status": {"code": 0, "message": "ok"}}],
 "status": {"code": 0, "lock": {"backup": {"held": false}}, "message": "ok"}}
''')
# SELECT json_build_object(...) FROM pg_stat_archiver on that server, right after
LAST_ARCHIVED_TIME = 1795905361.288051
FULL, INCR, DIFF = (b['label'] for b in INFO['backup'])


def at(epoch):
    """PostgreSQL's text for an epoch, as SELECT now() prints it."""
    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).strftime('%Y-%m-%d %H:%M:%S.%f+00')


def params(**kw):
    base = dict(mode='test', target_time=None, target_name=None, target_xid=None, target_lsn=None, confirm=False,
                scratch_port=None, scratch_settings={}, expected_tables=[], databases=None, assertions=[],
                recovery_timeout=3600, start_timeout=300, process_max=None, target_timeline=None, container=None)
    base.update(kw)
    return base


# -- options ---------------------------------------------------------------------------------------------------
REFUSED = [
    pytest.param(dict(target_time='2026-11-28 12:00:00+00', target_name='x'),
                 'target_time, target_name are mutually exclusive', id='two-targets'),
    pytest.param(dict(target_time='2026-11-28 12:00:00'), 'not a timestamp with time zone', id='time-without-zone'),
    pytest.param(dict(target_time='yesterday'), 'not a timestamp with time zone', id='time-words'),
    pytest.param(dict(target_time='2026-02-30 12:00:00+00'), 'not a valid time', id='time-no-such-day'),
    pytest.param(dict(target_xid='12a'), 'target_xid must be a transaction id', id='xid'),
    pytest.param(dict(target_lsn='0/ZZ'), 'target_lsn', id='lsn'),
    pytest.param(dict(target_name='x' * 64), 'target_name must be a restore point name', id='name-too-long'),
    pytest.param(dict(mode='replace'), 'mode=replace stops the server and switches its data directory: it needs '
                                       'confirm=true', id='replace-needs-confirm'),
    pytest.param(dict(mode='rollback'), 'mode=rollback stops the server', id='rollback-needs-confirm'),
    pytest.param(dict(mode='rollback', confirm=True, target_name='x'), 'takes no target option',
                 id='rollback-no-target'),
    pytest.param(dict(scratch_port=80), 'scratch_port must be between 1024 and 65535', id='port'),
    pytest.param(dict(scratch_settings={'shared_buffers': '1GB; rm -rf'}), 'scratch_settings: shared_buffers=',
                 id='setting-value'),
    pytest.param(dict(scratch_settings={'a b': '1'}), 'scratch_settings: a b=1', id='setting-name'),
    pytest.param(dict(expected_tables=['orders'], databases=['shop']), "'orders' is not schema.table",
                 id='table-without-schema'),
    pytest.param(dict(expected_tables=['public.orders']), 'expected_tables needs databases', id='tables-need-dbs'),
    pytest.param(dict(assertions=[dict(database='shop', sql=' ')]), 'assertions[0] has no sql', id='empty-sql'),
    pytest.param(dict(recovery_timeout=0), 'recovery_timeout must be 1 second or more', id='timeout'),
    pytest.param(dict(process_max=0), 'process_max must be 1 or more', id='process-max'),
    pytest.param(dict(target_timeline='newest'), 'target_timeline must be current, latest or a timeline number',
                 id='timeline'),
    pytest.param(dict(container='pg', mode='rollback', confirm=True, rollback_directory='/srv/pg.pgops-rollback-1'),
                 'with container: rollback_volume', id='container-rollback-directory'),
    pytest.param(dict(mode='rollback', confirm=True, rollback_volume='pg-data-pgops-rollback-1'),
                 'rollback_volume names the kept volume', id='rollback-volume-without-container'),
    pytest.param(dict(mode='test', rollback_directory='/srv/x'), 'rollback_directory names a kept data directory',
                 id='rollback-directory-outside-rollback'),
]


@pytest.mark.parametrize('kw, words', REFUSED)
def test_option_errors_name_the_option_and_the_fix(kw, words):
    errors = option_errors(params(**kw))
    assert any(words in e for e in errors), errors


ACCEPTED = [
    pytest.param(dict(), id='latest'),
    pytest.param(dict(target_time='2026-11-28 22:35:58.5+00'), id='postgres-now'),
    pytest.param(dict(target_time='2026-11-28T23:35:58+01:00'), id='iso-offset'),
    pytest.param(dict(target_time='2026-11-28T22:35:58Z'), id='iso-z'),
    pytest.param(dict(target_name='before-migration'), id='name'),
    pytest.param(dict(target_xid='726'), id='xid'),
    pytest.param(dict(target_lsn='0/5000100'), id='lsn'),
    pytest.param(dict(mode='replace', confirm=True, target_name='x'), id='replace-confirmed'),
    pytest.param(dict(mode='rollback', confirm=True), id='rollback-confirmed'),
    pytest.param(dict(scratch_settings={'shared_buffers': '128MB', 'synchronous_commit': 'off'}), id='settings'),
    pytest.param(dict(expected_tables=['public.orders'], databases=['shop'],
                      assertions=[dict(database='shop', sql='SELECT true')]), id='checks'),
    pytest.param(dict(target_timeline='current'), id='timeline-current'),
    pytest.param(dict(target_timeline='3'), id='timeline-number'),
    pytest.param(dict(container='pg', mode='new'), id='container-new'),
    pytest.param(dict(container='pg', mode='replace', confirm=True), id='container-replace'),
    pytest.param(dict(container='pg', mode='rollback', confirm=True, rollback_volume='pg-data-pgops-rollback-1'),
                 id='container-rollback-volume'),
]


@pytest.mark.parametrize('kw', ACCEPTED)
def test_accepted_options(kw):
    assert option_errors(params(**kw)) == []


# -- targets ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize('text, utc', [
    ('2026-11-28 22:35:58.102725+00', '2026-11-28 22:35:58.102725'),
    ('2026-11-28 23:35:58+01', '2026-11-28 22:35:58.000000'),
    ('2026-11-28T23:35:58+01:00', '2026-11-28 22:35:58.000000'),
    ('2026-11-28 17:05-0530', '2026-11-28 22:35:00.000000'),
    ('2026-11-28T22:35:58.1Z', '2026-11-28 22:35:58.100000'),
    ('2026-11-28 22:35:58 UTC', '2026-11-28 22:35:58.000000'),
])
def test_target_time_is_passed_to_pgbackrest_in_utc(text, utc):
    assert parse_target_time(text).tzinfo is not None
    assert target_of(dict(target_time=text)) == ('time', utc + '+00')


def test_target_kinds():
    assert target_of({}) == ('default', None)
    assert target_of(dict(target_name='p1')) == ('name', 'p1')
    assert target_of(dict(target_xid='726')) == ('xid', '726')
    assert target_of(dict(target_lsn='0/5000100')) == ('lsn', '0/5000100')


# -- the window ------------------------------------------------------------------------------------------------
def test_window_from_the_oldest_backup_to_the_newest_archived_wal():
    w = recoverable_window(INFO, LAST_ARCHIVED_TIME)
    assert w['start'] == '2026-11-28T22:35:53Z'
    assert w['end'] == '2026-11-28T22:36:01.288051Z'
    assert w['earliest_consistent'] == '2026-11-28T22:35:56Z'


def test_window_end_is_never_before_the_newest_backup():
    assert recoverable_window(INFO, None)['end'] == '2026-11-28T22:36:00Z'
    assert recoverable_window(INFO, 1795905000)['end'] == '2026-11-28T22:36:00Z'


def test_no_backup_no_window():
    empty = copy.deepcopy(INFO)
    empty['backup'] = []
    assert recoverable_window(empty, LAST_ARCHIVED_TIME) is None
    with pytest.raises(PgOpsError) as e:
        check_target('default', None, None)
    assert e.value.step == 'target'


def test_a_backup_in_error_does_not_open_the_window():
    broken = copy.deepcopy(INFO)
    broken['backup'][0]['error'] = True
    assert recoverable_window(broken, LAST_ARCHIVED_TIME)['start'] == '2026-11-28T22:35:57Z'


@pytest.mark.parametrize('epoch, words', [
    (1795905353 - 3600, 'is before the recoverable window 2026-11-28T22:35:53Z to 2026-11-28T22:36:01.288051Z'),
    (LAST_ARCHIVED_TIME + 1, 'is after the recoverable window 2026-11-28T22:35:53Z to 2026-11-28T22:36:01.288051Z'),
])
def test_a_time_outside_the_window_is_refused_naming_it(epoch, words):
    kind, value = target_of(dict(target_time=at(epoch)))
    with pytest.raises(PgOpsError) as e:
        check_target(kind, value, recoverable_window(INFO, LAST_ARCHIVED_TIME))
    assert words in e.value.msg
    assert 'nothing was created' in e.value.msg
    assert e.value.step == 'target'


@pytest.mark.parametrize('epoch', [1795905353, 1795905358.5, LAST_ARCHIVED_TIME])
def test_a_time_inside_the_window_passes(epoch):
    kind, value = target_of(dict(target_time=at(epoch)))
    assert check_target(kind, value, recoverable_window(INFO, LAST_ARCHIVED_TIME)) == pytest.approx(epoch)


@pytest.mark.parametrize('kind, value', [('name', 'p1'), ('xid', '726'), ('lsn', '0/9000000'), ('default', None)])
def test_other_targets_are_not_placed_in_time(kind, value):
    """Only a time can be placed in the window before the restore: the others pass (the restore tells)."""
    window = recoverable_window(INFO, LAST_ARCHIVED_TIME)
    assert check_target(kind, value, window) is None
    # even with a window that ended long before: nothing is compared
    assert check_target(kind, value, dict(window, start_epoch=0, end_epoch=1)) is None


# -- the backup set --------------------------------------------------------------------------------------------
@pytest.mark.parametrize('epoch, label', [
    (1795905356, FULL),          # the full's stop: the first consistent moment
    (1795905358.9, INCR),
    (LAST_ARCHIVED_TIME, DIFF),
])
def test_a_time_target_takes_the_newest_backup_that_ended_before_it(epoch, label):
    assert choose_backup(INFO, 'time', at(epoch))['label'] == label


def test_a_time_inside_the_oldest_backup_is_refused():
    with pytest.raises(PgOpsError) as e:
        choose_backup(INFO, 'time', at(1795905354))
    assert 'before the end of the oldest backup %s' % FULL in e.value.msg
    assert '2026-11-28T22:35:56Z' in e.value.msg


@pytest.mark.parametrize('lsn, label', [('0/3000100', FULL), ('0/6000000', INCR), ('1/0', DIFF)])
def test_an_lsn_target_takes_the_newest_backup_that_ended_before_it(lsn, label):
    assert choose_backup(INFO, 'lsn', lsn)['label'] == label


def test_name_xid_and_latest_take_the_newest_unless_a_set_is_given():
    for kind, value in (('name', 'p'), ('xid', '9'), ('default', None)):
        assert choose_backup(INFO, kind, value)['label'] == DIFF
    assert choose_backup(INFO, 'xid', '9', backup_set=FULL)['label'] == FULL
    with pytest.raises(PgOpsError) as e:
        choose_backup(INFO, 'name', 'p', backup_set='20200101-000000F')
    assert 'is not a backup of stanza main' in e.value.msg and FULL in e.value.msg


# -- switching ---------------------------------------------------------------------------------------------------
# postgresql.auto.conf as pgBackRest 2.45 wrote it for restore --archive-mode=off --type=time
AUTO_CONF = """# Do not edit this file manually!
# It will be overwritten by the ALTER SYSTEM command.
work_mem = '8MB'

# Recovery settings generated by pgBackRest restore on 2026-11-28 22:28:41
archive_mode = 'off'
restore_command = '/usr/bin/pgbackrest --config=/tmp/c.conf --pg1-path=/tmp/s --stanza=main archive-get %f "%p"'
recovery_target_time = '2026-11-28 22:28:38.102725+00'
recovery_target_action = 'promote'
"""


def test_the_switched_data_directory_archives_again():
    out = strip_archive_off(AUTO_CONF)
    assert "archive_mode = 'off'" not in out
    assert "work_mem = '8MB'" in out and 'restore_command' in out


def test_an_archive_mode_of_the_server_itself_stays():
    own = "# Do not edit this file manually!\narchive_mode = 'off'\n"
    assert strip_archive_off(own) == own


def test_postmaster_opts_give_the_arguments_the_server_was_started_with():
    text = ('/usr/lib/postgresql/15/bin/postgres "-D" "/var/lib/postgresql/15/main" "-c" '
            '"config_file=/etc/postgresql/15/main/postgresql.conf"\n')
    assert postmaster_opts_args(text) == ['-D', '/var/lib/postgresql/15/main', '-c',
                                          'config_file=/etc/postgresql/15/main/postgresql.conf']


def test_history_files_already_marked_are_not_marked_again():
    assert unarchived_history(['00000002.history', '00000003.history', '00000004.history', '000000040000000000000001'],
                              ['00000002.history.done', '00000003.history.ready']) == ['00000004.history']


class Scratch(object):
    data = '/srv/pg.pgops-restore-1/data'
    tablespaces = '/srv/pg.pgops-restore-1/tablespaces'


@pytest.mark.parametrize('kw, kind, value, tail', [
    (dict(), 'default', None, []),
    (dict(), 'time', '2026-11-28 22:35:58.000000+00', ['--target=2026-11-28 22:35:58.000000+00',
                                                       '--target-action=promote']),
    (dict(target_exclusive=True, target_timeline='current', process_max=4), 'xid', '726',
     ['--target=726', '--target-action=promote', '--target-exclusive', '--target-timeline=current',
      '--process-max=4']),
])
def test_restore_options_never_archive_and_map_tablespaces_inside(kw, kind, value, tail):
    options = restore_options(kw, Scratch(), FULL, kind, value)
    assert options == ['--pg1-path=/srv/pg.pgops-restore-1/data', '--archive-mode=off',
                       '--tablespace-map-all=/srv/pg.pgops-restore-1/tablespaces', '--set=%s' % FULL,
                       '--type=%s' % kind] + tail


def test_new_timeline_history_is_marked_for_the_archive(tmp_path):
    wal = tmp_path / 'pg_wal'
    (wal / 'archive_status').mkdir(parents=True)
    for name in ('000000010000000000000004', '00000002.history', '00000003.history', '000000030000000000000004'):
        (wal / name).write_text('')
    (wal / 'archive_status' / '00000002.history.done').write_text('')
    assert new_timeline_history(str(wal)) == ['00000003.history']


# -- the module refuses before any work ------------------------------------------------------------------------
@pytest.mark.parametrize('args, words', [
    (dict(target_time='2026-11-28 12:00:00+00', target_xid='5'), 'mutually exclusive'),
    (dict(mode='replace'), 'needs confirm=true'),
    (dict(stanza='bad stanza'), 'stanza must be a pgBackRest stanza name'),
    (dict(server_stop_command=['systemctl', 'stop', 'postgresql']), 'server_start_command'),
    (dict(target_time='noon'), 'not a timestamp with time zone'),
])
def test_the_module_refuses_before_any_work(monkeypatch, args, words):
    from ansible.module_utils import basic
    from ansible_collections.pgops.postgresql.plugins.modules import pgbackrest_restore
    from ansible_collections.pgops.postgresql.tests.unit.plugins.modules.utils import (
        AnsibleExitJson, AnsibleFailJson, exit_json, fail_json, set_module_args,
    )
    calls = []
    monkeypatch.setattr(basic.AnsibleModule, 'exit_json', exit_json)
    monkeypatch.setattr(basic.AnsibleModule, 'fail_json', fail_json)
    monkeypatch.setattr(pgbackrest_restore, 'run_pgbackrest_restore', calls.append)
    with set_module_args(dict(dict(stanza='main'), **args)):
        with pytest.raises((AnsibleFailJson, AnsibleExitJson)) as e:
            pgbackrest_restore.main()
    assert isinstance(e.value, AnsibleFailJson), e.value.result
    assert words in e.value.result['msg']
    assert calls == []
