# -*- coding: utf-8 -*-
"""backup_metrics on a real catalog: real pg_backup runs (one failed), a real verified restore and its audit log,
then the .prom file parsed with prometheus_client and compared with the metadata on disk."""
from __future__ import absolute_import, division, print_function

import datetime
import json
import os
import stat

import pytest

from conftest import metas, prom_samples, value

DB = 'metrics_shop'


def ts(iso_text):
    return datetime.datetime.fromisoformat(iso_text).timestamp()


@pytest.fixture(scope='module')
def catalog(postgres, run_module, tmp_path_factory):
    """Backups: 1 snapshot, 2 full (the second after the data grew a lot), 1 failed run; a drill of the newest."""
    dest = str(tmp_path_factory.mktemp('metrics') / 'backups')
    postgres.create_db(DB)
    snap = run_module('pg_backup', dict(postgres.conn(), databases=[DB], dest=dest, kind='snapshot', format='custom'))
    first = run_module('pg_backup', dict(postgres.conn(), databases=[DB], dest=dest))
    assert not first.get('failed'), first
    postgres.psql(DB, "CREATE TABLE filler AS SELECT g AS id, md5(g::text) || md5((g * 7)::text) AS t "
                      "FROM generate_series(1, 60000) g")
    second = run_module('pg_backup', dict(postgres.conn(), databases=[DB], dest=dest))
    bad = run_module('pg_backup', dict(postgres.conn(), databases=['metrics_gone'], dest=dest))
    assert not second.get('failed') and not snap.get('failed') and bad.get('failed'), (second, snap, bad)
    drill = run_module('pg_restore_verified', dict(postgres.conn(), path=dest, database=DB, backup_id=second['id'],
                                                   mode='test'))
    assert drill['result'] == 'passed', drill
    return dict(dest=dest, first=first, second=second, snap=snap, drill=drill)


def test_check_mode_writes_nothing(catalog, run_module, tmp_path):
    out = str(tmp_path / 'pgops_backup.prom')
    res = run_module('backup_metrics', dict(path=catalog['dest'], dest=out, _ansible_diff=True), check_mode=True)
    assert not res.get('failed'), res
    assert res['changed'] is True and not os.path.exists(out)
    assert res['diff']['before'] == '' and '# TYPE pgops_backup_count gauge' in res['diff']['after']
    assert os.listdir(str(tmp_path)) == []


def test_values_equal_the_metadata(catalog, run_module, tmp_path):
    out = str(tmp_path / 'pgops_backup.prom')
    res = run_module('backup_metrics', dict(path=catalog['dest'], dest=out))
    assert not res.get('failed'), res
    assert res['changed'] is True and res['dest'] == out
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o644
    assert not [n for n in os.listdir(str(tmp_path)) if n != 'pgops_backup.prom']     # no temporary left
    text, s = prom_samples(out)
    assert '# HELP pgops_backup_last_success_timestamp_seconds' in text

    records = metas(catalog['dest'])
    ok = [m for m in records if m['status'] == 'success' and m['database'] == DB]
    for kind in ('full', 'snapshot'):
        mine = [m for m in ok if m['kind'] == kind]
        newest = mine[0]
        assert value(s, 'pgops_backup_count', database=DB, kind=kind) == len(mine)
        assert value(s, 'pgops_backup_bytes', database=DB, kind=kind) == sum(m['size'] for m in mine)
        assert value(s, 'pgops_backup_last_size_bytes', database=DB, kind=kind) == newest['size']
        assert value(s, 'pgops_backup_last_duration_seconds', database=DB, kind=kind) == pytest.approx(
            newest['duration_seconds'])
        assert value(s, 'pgops_backup_last_success_timestamp_seconds', database=DB, kind=kind) == pytest.approx(
            ts(newest['started_at']), abs=1)   # the recovery point: when the dump began
        assert value(s, 'pgops_backup_failures', database=DB, kind=kind) == 0
    assert value(s, 'pgops_backup_success_ratio', database=DB) == 1.0
    assert value(s, 'pgops_database_size_bytes', database=DB) == ok[0]['database_size']
    # the failed run: a record without dump, counted, ratio 0, and an alert
    assert value(s, 'pgops_backup_failures', database='metrics_gone', kind='full') == 1
    assert value(s, 'pgops_backup_count', database='metrics_gone', kind='full') == 0
    assert value(s, 'pgops_backup_success_ratio', database='metrics_gone') == 0.0
    assert value(s, 'pgops_backup_alert', alert='no_success', database='metrics_gone', action='warn') == 1
    assert value(s, 'pgops_backup_alert', alert='success_rate', database='metrics_gone', action='warn') == 1
    assert value(s, 'pgops_backup_alert', alert='no_success', database=DB, action='warn') == 0
    # size change: the second full against the first (same format and compression); the snapshot is newest
    # overall but is compared with nothing of its own format
    fulls = [m for m in ok if m['kind'] == 'full']
    assert fulls[0]['id'] == catalog['second']['id']
    # the verification recorded in the second backup, and the audit log line of the same drill
    [v] = [m for m in ok if m['id'] == catalog['second']['id'] and m['kind'] == 'full'][0]['verifications']
    assert value(s, 'pgops_backup_verify_last_result', database=DB) == 1
    assert value(s, 'pgops_backup_verify_last_timestamp_seconds', database=DB) == pytest.approx(ts(v['verified_at']))
    with open(os.path.join(catalog['dest'], 'restore-audit.jsonl')) as f:
        audit = [json.loads(line) for line in f]
    assert value(s, 'pgops_restore_last_rto_seconds', database=DB, mode='test') == pytest.approx(
        audit[-1]['rto_seconds']) == pytest.approx(catalog['drill']['rto_seconds'])
    assert value(s, 'pgops_restore_last_result', database=DB, mode='test') == 1
    st = os.statvfs(catalog['dest'])
    assert value(s, 'pgops_backup_dir_size_bytes') == st.f_blocks * st.f_frsize
    assert 0 < value(s, 'pgops_backup_dir_free_ratio') <= 1
    assert value(s, 'pgops_backup_catalog_warnings') == 0
    assert {a['name'] for a in res['alerts'] if a['database'] == 'metrics_gone'} == {'no_success', 'success_rate'}
    assert all(a['action'] == 'warn' for a in res['alerts'])
    assert res['summary']['failing'] == 0


def test_size_change_alert(catalog, run_module, tmp_path):
    """The newest full backup against the previous plain+zstd one: the filler table makes it far larger."""
    first, second = catalog['first'], catalog['second']
    out = str(tmp_path / 'm.prom')
    res = run_module('backup_metrics', dict(path=catalog['dest'], dest=out, databases=[DB]))
    assert not res.get('failed'), res
    dummy, s = prom_samples(out)
    pct = round((second['size'] - first['size']) * 100.0 / first['size'], 1)
    assert pct > 50
    assert value(s, 'pgops_backup_size_change_ratio', database=DB) == pytest.approx(round(pct / 100.0, 4))
    assert value(s, 'pgops_backup_alert', alert='size_change', database=DB, action='warn') == 1
    [alert] = [a for a in res['alerts'] if a['name'] == 'size_change']
    assert alert['database'] == DB and ('%+.1f%%' % pct) in alert['message']
    # databases= restricts the report: the failed database is not in it
    assert not [k for k in s if dict(k[1]).get('database') == 'metrics_gone']
    res = run_module('backup_metrics', dict(path=catalog['dest'], dest=out, databases=[DB], size_change_percent=100000))
    assert not [a for a in res['alerts'] if a['name'] == 'size_change']


def test_fail_action_fails_after_writing(catalog, run_module, tmp_path):
    out = str(tmp_path / 'pgops_backup.prom')
    res = run_module('backup_metrics', dict(path=catalog['dest'], dest=out, no_success_action='fail',
                                            success_rate_action='off', databases=[DB, 'metrics_gone', 'never_backed_up']))
    assert res.get('failed') and 'no successful backup' in res['msg'], res
    assert 'metrics_gone' in res['msg'] and 'never_backed_up' in res['msg'] and DB + ':' not in res['msg']
    dummy, s = prom_samples(out)                                        # written before failing
    assert value(s, 'pgops_backup_alert', alert='no_success', database='never_backed_up', action='fail') == 1
    assert not [k for k in s if k[0] == 'pgops_backup_alert' and dict(k[1])['alert'] == 'success_rate']


def test_free_disk_and_thresholds(catalog, run_module, tmp_path):
    out = str(tmp_path / 'pgops_backup.prom')
    res = run_module('backup_metrics', dict(path=catalog['dest'], dest=out, databases=[DB], free_disk_percent=100.0,
                                            free_disk_action='fail', no_success_hours=0.0001,
                                            size_change_action='off'))
    assert res.get('failed') and 'free' in res['msg'], res
    assert {(a['name'], a['action']) for a in res['alerts']} == {('free_disk', 'fail'), ('no_success', 'warn')}


def test_missing_textfile_directory_is_an_error(catalog, run_module, tmp_path):
    res = run_module('backup_metrics', dict(path=catalog['dest'], dest=str(tmp_path / 'nope' / 'x.prom')))
    assert res.get('failed') and 'does not exist' in res['msg'], res


def test_unchanged_file_is_not_rewritten(catalog, run_module, tmp_path):
    """The file carries its own write time, so a second run changes it; the diff says exactly that."""
    out = str(tmp_path / 'pgops_backup.prom')
    run_module('backup_metrics', dict(path=catalog['dest'], dest=out, databases=[DB]))
    again = run_module('backup_metrics', dict(path=catalog['dest'], dest=out, databases=[DB], _ansible_diff=True),
                       check_mode=True)
    before = again['diff']['before'].splitlines()
    after = again['diff']['after'].splitlines()
    changed = [b for b, a in zip(before, after) if a != b]
    assert len(before) == len(after)
    assert all(line.split('{')[0].split(' ')[0] in ('pgops_backup_metrics_timestamp_seconds', 'pgops_backup_newest_age_seconds',
                                                    'pgops_backup_dir_free_bytes', 'pgops_backup_dir_free_ratio')
               for line in changed), changed
