# -*- coding: utf-8 -*-
"""pgbackrest_stanza, pgbackrest_backup and pgbackrest_info against a real PostgreSQL 15 cluster of the host and
the host's pgBackRest (2.45) with a local repository (pgbackrest_cluster.py)."""
from __future__ import absolute_import, division, print_function

import datetime
import json
import os
import stat
import time

import pytest

from conftest import argv_while_running, pg_bin, wait_for
from pgbackrest_cluster import CIPHER_ENV, PgBackRestCluster, make_pgbackrest_cluster

SECRET = 'pgops-Cipher-s3cr3t-Pass-7c1d'


def utc(iso):
    """An ISO-8601 UTC time of the modules ('...Z', with or without fractions of a second) as a datetime."""
    return datetime.datetime.strptime(iso.rstrip('Z').split('.')[0], '%Y-%m-%dT%H:%M:%S').replace(
        microsecond=int((iso.rstrip('Z').split('.') + ['0'])[1].ljust(6, '0')[:6]))


def repo_files(cluster):
    found = []
    for root, dummy, names in os.walk(cluster.repo_path):
        found += [os.path.join(root, n) for n in names]
    return sorted(found)


def archiving_settings(cluster):
    return cluster.psql('postgres', "SELECT string_agg(name || '=' || setting || ':' || pending_restart, ',' "
                                    "ORDER BY name) FROM pg_settings WHERE name IN "
                                    "('wal_level', 'archive_mode', 'archive_command')")


# -- pgbackrest_stanza ----------------------------------------------------------------------------------------
def test_stanza_from_a_fresh_cluster(run_module):
    """check mode -> settings (restart required) -> idempotent before the restart -> restart -> stanza created and
    checked -> idempotent."""
    c = PgBackRestCluster(archive=False, server_options={'wal_level': 'minimal', 'max_wal_senders': '0'})
    try:
        c.init()
        c.start()
        args = c.module_args()
        settings_before = archiving_settings(c)
        auto_conf = os.path.join(c.data_directory, 'postgresql.auto.conf')
        with open(auto_conf) as f:
            auto_before = f.read()

        planned = run_module('pgbackrest_stanza', args, check_mode=True)
        assert planned['changed'] and not planned.get('failed'), planned
        assert planned['settings_changed'] == ['wal_level', 'archive_mode', 'archive_command']
        assert planned['restart_required'] is True and planned['stanza_created'] is False
        assert planned['checked'] is False
        assert planned['archive_command'] == 'pgbackrest --stanza=main --config=%s archive-push %%p' % c.config
        assert archiving_settings(c) == settings_before          # check mode changed nothing
        with open(auto_conf) as f:
            assert f.read() == auto_before
        assert repo_files(c) == []

        # no stanza yet: pgBackRest's own error, at the backup step
        failed = run_module('pgbackrest_backup', dict(args, type='full'))
        assert failed.get('failed') and failed['failed_step'] == 'backup', failed
        assert failed['msg'].startswith('pgbackrest backup: [') and 'ERROR' in failed['msg'], failed['msg']

        done = run_module('pgbackrest_stanza', dict(args, _ansible_diff=True))
        assert done['changed'] and not done.get('failed'), done['msg'] if done.get('failed') else done
        assert done['settings_changed'] == planned['settings_changed']
        assert done['diff'] == dict(before=dict(wal_level='minimal', archive_mode='off', archive_command='(disabled)'),
                                    after=dict(wal_level='replica', archive_mode='on',
                                               archive_command=done['archive_command']))
        assert done['restart_required'] is True
        assert done['stanza_created'] is False and done['checked'] is False
        assert repo_files(c) == []                               # nothing in the repository before the restart
        now = dict(kv.split('=', 1) for kv in archiving_settings(c).split(','))
        assert now['wal_level'] == 'minimal:true' and now['archive_mode'] == 'off:true'
        assert now['archive_command'] == '(disabled):false'   # so PostgreSQL shows it while archive_mode is off
        assert c.psql('postgres', "SELECT setting FROM pg_file_settings WHERE name = 'archive_command' "
                                  "ORDER BY seqno DESC LIMIT 1") == done['archive_command']

        again = run_module('pgbackrest_stanza', args)           # before the restart: nothing to set again
        assert not again['changed'] and again['settings_changed'] == [] and again['restart_required'], again

        c.restart()
        assert archiving_settings(c) == ('archive_command=%s:false,archive_mode=on:false,wal_level=replica:false'
                                         % done['archive_command'])
        planned = run_module('pgbackrest_stanza', args, check_mode=True)
        assert planned['changed'] and planned['stanza_created'] and not planned['checked'], planned
        assert planned['settings_changed'] == [] and planned['restart_required'] is False
        assert planned['actions'] == ['pgbackrest stanza-create', 'pgbackrest check']
        assert repo_files(c) == []

        done = run_module('pgbackrest_stanza', args)
        assert done['changed'] and done['stanza_created'] and done['checked'], done
        assert done['restart_required'] is False and done['settings_changed'] == []
        assert c.info()['status']['message'] in ('ok', 'no valid backups')
        assert c.psql('postgres', 'SELECT archived_count > 0 FROM pg_stat_archiver') == 't'   # check pushed WAL

        again = run_module('pgbackrest_stanza', args)
        assert not again['changed'] and not again['stanza_created'] and again['checked'], again
        assert again['actions'] == ['pgbackrest check']
    finally:
        c.destroy()


def test_stanza_refuses_a_setting_fixed_on_the_command_line(run_module):
    c = PgBackRestCluster(archive=False)
    try:
        c.init()
        c.run([pg_bin('pg_ctl'), '-D', c.data_directory, '-l', c.server_log, '-w', '-o',
               '-c archive_mode=off', 'start'])
        c.running = True
        result = run_module('pgbackrest_stanza', c.module_args())
        assert result.get('failed') and result['failed_step'] == 'settings', result
        assert 'archive_mode is set on the server\'s command line' in result['msg']
        with open(os.path.join(c.data_directory, 'postgresql.auto.conf')) as f:
            assert 'archive' not in f.read()                    # refused before any ALTER SYSTEM
    finally:
        c.destroy()


# -- pgbackrest_backup and pgbackrest_info on one cluster (in this order) ---------------------------------
@pytest.fixture(scope='module')
def cluster():
    with make_pgbackrest_cluster(global_options={'repo1-bundle': 'y'}) as c:
        c.psql('postgres', 'CREATE TABLE items AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 20000) g')
        yield c


def test_backup_check_mode_full_then_incr(run_module, cluster):
    args = cluster.module_args()
    planned = run_module('pgbackrest_backup', dict(args, type='incr'), check_mode=True)
    assert planned['changed'] and planned['backup'] is None, planned
    assert planned['planned']['type'] == 'full' and 'no full backup' in planned['msg']
    assert planned['planned']['annotations'] == {'pgops-kind': 'manual'}
    assert cluster.info()['backup'] == []                       # nothing ran

    full = run_module('pgbackrest_backup', dict(args, type='full', kind='full', label='weekly'))
    assert full['changed'] and not full.get('failed'), full
    b = full['backup']
    rec = cluster.info()['backup'][-1]
    assert b['label'] == rec['label'] and b['type'] == 'full' and rec['label'].endswith('F')
    assert b['annotations'] == {'pgops-kind': 'full', 'pgops-label': 'weekly'} == rec['annotation']
    want = (rec['info']['size'], rec['info']['repository']['size'], rec['info']['delta'])
    assert (b['size'], b['repo_size'], b['delta']) == want
    assert (b['wal_start'], b['wal_stop']) == (rec['archive']['start'], rec['archive']['stop'])
    assert (b['lsn_start'], b['lsn_stop']) == (rec['lsn']['start'], rec['lsn']['stop'])
    assert b['started_at'] == time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(rec['timestamp']['start']))
    assert b['finished_at'] == time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(rec['timestamp']['stop']))
    assert b['prior'] is None and b['error'] is False and full['duration_seconds'] > 0

    cluster.psql('postgres', 'UPDATE items SET v = v || \'!\' WHERE id <= 100')
    planned = run_module('pgbackrest_backup', dict(args, type='incr'), check_mode=True)
    assert planned['planned']['type'] == 'incr', planned
    incr = run_module('pgbackrest_backup', dict(args, type='incr', label='after-change',
                                                annotations={'ticket': 'OPS-1'}))
    assert incr['changed'] and not incr.get('failed'), incr
    i = incr['backup']
    assert i['type'] == 'incr' and i['prior'] == b['label'] and i['reference'] == [b['label']]
    assert i['label'].startswith(b['label'] + '_') and i['label'].endswith('I')
    assert i['annotations'] == {'pgops-kind': 'manual', 'pgops-label': 'after-change', 'ticket': 'OPS-1'}
    assert i['delta'] < b['delta'] and i['repo_delta'] < b['repo_delta']
    assert i['wal_start'] > b['wal_stop'] and i['lsn_start'] != b['lsn_start']
    print('\npgbackrest full backup %.2f s (%d bytes, repo %d), incr %.2f s (delta %d bytes, repo delta %d)'
          % (full['duration_seconds'], b['size'], b['repo_delta'], incr['duration_seconds'], i['delta'],
             i['repo_delta']))


def test_info_window_archive_and_no_alerts(run_module, cluster):
    cluster.switch_wal()
    result = run_module('pgbackrest_info', cluster.module_args())
    assert not result['changed'] and not result.get('failed'), result
    raw = cluster.info()
    labels = [b['label'] for b in raw['backup']]
    assert [b['label'] for b in result['backups']] == labels[::-1]   # newest first
    assert [b['type'] for b in result['backups']] == ['incr', 'full']
    assert result['backups'][1]['annotations']['pgops-label'] == 'weekly'
    window = result['recoverable_window']
    assert window['start_epoch'] == raw['backup'][0]['timestamp']['start']
    assert window['end_epoch'] >= raw['backup'][-1]['timestamp']['stop']
    archived = cluster.psql('postgres', 'SELECT last_archived_wal || \' \' || extract(epoch FROM last_archived_time) '
                                        'FROM pg_stat_archiver').split()
    assert result['archive']['last_archived_wal'] == archived[0]
    assert abs(window['end_epoch'] - float(archived[1])) < 0.001
    assert result['archive']['max_wal'] == raw['archive'][0]['max'] == archived[0]
    assert result['archive']['min_wal'] == raw['archive'][0]['min']
    assert result['archive']['failing'] is False and result['archive']['failed_count'] == 0
    assert result['archive']['pending_wal_bytes'] == 0
    assert result['status']['code'] == 0 and result['status']['message'] == 'ok'
    assert result['alerts'] == [], result['alerts']


def test_info_writes_prometheus_metrics_of_the_window_and_the_archive(run_module, cluster, tmp_path):
    prom = str(tmp_path / 'pgops_pitr.prom')
    planned = run_module('pgbackrest_info', cluster.module_args(metrics_file=prom), check_mode=True)
    assert planned['changed'] and not os.path.exists(prom), planned          # check mode writes nothing
    result = run_module('pgbackrest_info', cluster.module_args(metrics_file=prom))
    assert result['changed'] and result['metrics_file'] == prom, result
    with open(prom) as f:
        text = f.read()
    samples = dict(line.rsplit(' ', 1) for line in text.splitlines() if line and not line.startswith('#'))
    stanza = '{stanza="%s"}' % cluster.stanza
    assert float(samples['pgops_pitr_window_start_seconds' + stanza]) == result['recoverable_window']['start_epoch']
    assert float(samples['pgops_pitr_window_end_seconds' + stanza]) == result['recoverable_window']['end_epoch']
    assert samples['pgops_pitr_archive_failing' + stanza] == '0'
    assert samples['pgops_pitr_backups{stanza="%s",type="full"}' % cluster.stanza] == '1'
    assert samples['pgops_pitr_alerts' + stanza] == str(len(result['alerts']))
    assert '# TYPE pgops_pitr_archive_age_seconds gauge' in text
    assert stat.S_IMODE(os.stat(prom).st_mode) == 0o644   # node_exporter runs as its own user
    missing = run_module('pgbackrest_info', cluster.module_args(metrics_file=str(tmp_path / 'no' / 'x.prom')))
    assert missing['failed'] and 'metrics_file' in missing['msg'] and missing['failed_step'] == 'options'


def test_info_alerts_old_full_and_old_archive(run_module, cluster):
    time.sleep(1.5)
    cluster.psql('postgres', 'INSERT INTO items VALUES (0, \'not archived yet\')')   # WAL written, not switched
    result = run_module('pgbackrest_info', cluster.module_args(max_full_age_days=1.0 / 86400,
                                                               max_archive_age_minutes=1.0 / 60))
    alerts = ' | '.join(result['alerts'])
    assert 'no full backup in the last' in alerts, alerts
    assert 'the newest archived WAL (%s)' % result['archive']['last_archived_wal'] in alerts
    assert result['archive']['pending_wal_bytes'] > 0
    assert len(result['alerts']) == 2
    off = run_module('pgbackrest_info', cluster.module_args(max_full_age_days=0, max_archive_age_minutes=0))
    assert off['alerts'] == []


def test_info_with_the_server_down_still_gives_the_backups_and_the_window(run_module, cluster):
    # the disaster recovery case: the repository is read without the server, which is an alert, not a failure
    up = run_module('pgbackrest_info', cluster.module_args())
    assert up['server'] == dict(reachable=True, error=None), up['server']
    cluster.stop()
    try:
        down = run_module('pgbackrest_info', cluster.module_args())
        assert not down.get('failed'), down
        assert down['server']['reachable'] is False and down['server']['error'], down['server']
        assert down['alerts'][0].startswith('the server does not answer'), down['alerts']
        assert [b['label'] for b in down['backups']] == [b['label'] for b in up['backups']]
        assert down['recoverable_window']['start'] == up['recoverable_window']['start']
        # without the server the end is the newest backup's: a lower bound of the window with the server up
        # (as instants: '...:57Z' and '...:57.96Z' of the same second do not order as strings)
        assert utc(down['recoverable_window']['end']) <= utc(up['recoverable_window']['end'])
        # (a clean shutdown archives the segment it was writing)
        assert down['archive']['max_wal'] >= up['archive']['max_wal'] and down['archive']['failing'] is False
        assert down['archive']['max_wal'] in down['alerts'][0]
    finally:
        cluster.start()


def test_info_reports_failing_archiving(run_module, cluster):
    """The repository's archive becomes unwritable: archive-push fails; the failure is in archive.failed_count and
    in the alerts, not silent. (Last test on this cluster: archiving stays broken.)"""
    archive_dir = os.path.join(cluster.repo_path, 'archive', cluster.stanza)
    for root, dirs, dummy in os.walk(archive_dir):
        for d in dirs:
            os.chmod(os.path.join(root, d), stat.S_IRUSR | stat.S_IXUSR)   # 0500: postgres can read, not write
    cluster.psql('postgres', 'INSERT INTO items VALUES (-1, \'lost if the server dies now\')')
    cluster.psql('postgres', 'SELECT pg_switch_wal()')
    wait_for(lambda: cluster.psql('postgres', 'SELECT failed_count > 0 FROM pg_stat_archiver') == 't', timeout=60)
    result = run_module('pgbackrest_info', cluster.module_args())
    assert not result.get('failed'), result
    archive = result['archive']
    assert archive['failing'] is True and archive['failed_count'] >= 1, archive
    assert archive['last_failed_wal'] > archive['last_archived_wal']
    assert archive['last_failed_time'] is not None
    alerts = ' | '.join(result['alerts'])
    assert 'WAL archiving is failing' in alerts and archive['last_failed_wal'] in alerts, alerts
    # the window ends where archiving stopped
    assert result['recoverable_window']['end'] == archive['last_archived_time']


# -- secrets --------------------------------------------------------------------------------------------------
def test_cipher_pass_never_in_argv_nor_output(run_module):
    with make_pgbackrest_cluster(cipher_pass=SECRET) as c:
        assert c.info()['cipher'] == 'aes-256-cbc'
        args = c.module_args()
        assert args['pgbackrest_env'] == {CIPHER_ENV: SECRET}
        seen = []
        outputs = []
        for module, extra in (('pgbackrest_stanza', {}), ('pgbackrest_stanza', dict(archive=False)),
                              ('pgbackrest_backup', dict(type='full')), ('pgbackrest_info', {})):
            proc = run_module.popen(module, dict(args, **extra))
            seen += argv_while_running(proc)
            result = run_module.result(proc)
            assert not result.get('failed'), result
            outputs.append(json.dumps(result))
        stanza, no_archive, backup = [json.loads(o) for o in outputs[:3]]
        # the helper's cluster archives exactly as pgbackrest_stanza would: nothing to change
        assert not stanza['changed'] and stanza['checked'] and stanza['settings_changed'] == [], stanza
        assert no_archive['archive_command'] is None and no_archive['checked'] and not no_archive['changed']
        assert backup['backup']['type'] == 'full'
        assert any(b'pgbackrest' in a and b'backup' in a for a in seen)   # the sampling saw pgbackrest run
        assert not [a for a in seen if SECRET.encode() in a]
        assert not [o for o in outputs if SECRET in o]
        # the pass is needed: without it the encrypted repository cannot be read, and the failure says where
        no_pass = dict(args)
        no_pass.pop('pgbackrest_env')
        failed = run_module('pgbackrest_backup', no_pass)
        assert failed.get('failed') and failed['failed_step'] == 'info', failed
        assert SECRET not in json.dumps(failed)
        with open(c.config) as f:
            assert SECRET not in f.read()
