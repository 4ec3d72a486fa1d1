# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgops.postgresql contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for backup_metrics's logic (_metrics): the textfile exposition format (label escaping, value
formatting, read back by prometheus_client's own parser), the atomic 0644 write on real files, the restore audit
log reader, and the figures and alerts compute() derives from catalog records (one server; the per-server rules
are in test_metrics_servers.py)."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import datetime
import json
import os
import stat

import pytest
from prometheus_client.parser import text_string_to_metric_families

from ansible_collections.pgops.postgresql.plugins.module_utils._metrics import ALERTS, FAMILIES, compute, read_audit_log
from ansible_collections.pgops.postgresql.plugins.module_utils._textfile import (
    FILE_MODE, escape_label, format_value, read_textfile, render, textfile_dir_error, write_textfile,
)

NOW = datetime.datetime(2026, 12, 7, 12, 0, tzinfo=datetime.timezone.utc)
CFG = dict(server=None, databases=[], window_days=7, size_change_percent=50, growth_percent=20, growth_days=7,
           no_success_hours=26, success_rate_target=100, free_disk_percent=10, offsite_max_age_days=8,
           **dict(('%s_action' % a, 'warn') for a in ALERTS))
GIB = 1 << 30


def epoch(when):
    return (when - datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)).total_seconds()


def rec(hours, status='success', database='shop', kind='full', size=1000, **kw):
    """A catalog record of server db1 ``hours`` before NOW (the catalog lists them newest first)."""
    when = NOW - datetime.timedelta(hours=hours)
    m = dict(id=when.strftime('%Y%m%d_%H%M%S'), server='db1', database=database, kind=kind, status=status,
             started_at=when.isoformat(), finished_at=(when + datetime.timedelta(seconds=30)).isoformat(),
             duration_seconds=30.5, size=size if status == 'success' else 0, format='custom', compression='zstd')
    m.update(kw)
    return m


def run(entries, audit=(), free=50 * GIB, size=100 * GIB, **cfg):
    return compute(entries, list(audit), NOW, free, size, dict(CFG, **cfg))


def pick(samples, name, **labels):
    """The values of ``name`` whose labels include ``labels``."""
    return [s['value'] for s in samples if s['name'] == name
            and all(s['labels'].get(k) == v for k, v in labels.items())]


def parsed(text):
    """{(name, sorted label pairs): value} as Prometheus reads the textfile."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


# -- the exposition format ------------------------------------------------------------------------------------

@pytest.mark.parametrize('raw, escaped', [
    ('shop', 'shop'),
    ('we"ird', 'we\\"ird'),
    ('back\\slash', 'back\\\\slash'),
    ('two\nlines', 'two\\nlines'),
    ('\\"\n', '\\\\\\"\\n'),
    (42, '42'),
])
def test_escape_label(raw, escaped):
    assert escape_label(raw) == escaped


@pytest.mark.parametrize('value, text', [
    (True, '1'), (False, '0'), (0, '0'), (3, '3'), (12345678901234567890, '12345678901234567890'),
    (2.0, '2'), (0.25, '0.25'), (-1.5, '-1.5'), (1e16, '1e+16'), (1781430000.5, '1781430000.5'),
])
def test_format_value(value, text):
    assert format_value(value) == text


def test_render_writes_help_and_type_for_every_family_in_order_even_without_samples():
    text = render([], FAMILIES)
    lines = text.splitlines()
    assert text.endswith('\n')
    assert len(lines) == 2 * len(FAMILIES)
    for i, (name, mtype, help_text) in enumerate(FAMILIES):
        assert lines[2 * i] == '# HELP %s %s' % (name, help_text)
        assert lines[2 * i + 1] == '# TYPE %s %s' % (name, mtype)


def test_render_sorts_samples_by_labels_and_omits_braces_without_labels():
    families = (('t_size', 'gauge', 'Size.'), ('t_up', 'gauge', 'Up.'))
    samples = [dict(name='t_size', labels=dict(database='b', server='x'), value=2),
               dict(name='t_up', labels={}, value=True),
               dict(name='t_size', labels=dict(database='a', server='x'), value=1.5),
               dict(name='t_other', labels={}, value=9)]                  # not a family: not written
    assert render(samples, families) == '\n'.join([
        '# HELP t_size Size.', '# TYPE t_size gauge',
        't_size{database="a",server="x"} 1.5',
        't_size{database="b",server="x"} 2',
        '# HELP t_up Up.', '# TYPE t_up gauge',
        't_up 1']) + '\n'


def test_prometheus_reads_back_every_label_and_value_as_written():
    odd = 'sh"op\\prod\nnew'
    samples = [dict(name='pgops_backup_count', labels=dict(server='db1/pg', database=odd, kind='full'), value=3),
               dict(name='pgops_backup_success_ratio', labels=dict(server='', database='x'), value=0.8333),
               dict(name='pgops_backup_metrics_timestamp_seconds', labels=dict(server=''), value=1781430000.123)]
    got = parsed(render(samples, FAMILIES))
    assert got == {
        ('pgops_backup_count', (('database', odd), ('kind', 'full'), ('server', 'db1/pg'))): 3.0,
        ('pgops_backup_success_ratio', (('database', 'x'), ('server', ''))): 0.8333,
        ('pgops_backup_metrics_timestamp_seconds', (('server', ''),)): 1781430000.123,
    }


def test_a_whole_computed_file_parses():
    entries = [rec(2, size=2000), rec(26, size=1000), rec(30, status='failed'), rec(3, database='crm')]
    samples, dummy, dummy2 = run(entries)
    got = parsed(render(samples, FAMILIES))
    assert len(got) == len(samples)          # every sample is one series: no duplicate, none lost


# -- the textfile on disk ---------------------------------------------------------------------------------------

def test_textfile_dir_error_names_the_option_and_the_directory(tmp_path):
    assert textfile_dir_error(str(tmp_path / 'pgops.prom'), 'dest') is None
    assert textfile_dir_error('pgops.prom', 'dest') is None                      # the working directory
    missing = str(tmp_path / 'collector' / 'pgops.prom')
    msg = textfile_dir_error(missing, 'metrics_file')
    assert msg.startswith('the directory of metrics_file (%s) does not exist' % os.path.dirname(missing))
    assert '--collector.textfile.directory' in msg and msg.endswith('or point metrics_file elsewhere')


def test_read_textfile(tmp_path):
    path = tmp_path / 'pgops.prom'
    assert read_textfile(str(path)) == ''
    path.write_bytes(b'# HELP x caf\xc3\xa9\nbad \xff\n')
    assert read_textfile(str(path)) == u'# HELP x caf\xe9\nbad \ufffd\n'


def test_write_textfile_is_atomic_and_0644_whatever_the_umask(tmp_path):
    path = str(tmp_path / 'pgops_backup.prom')
    old = os.umask(0o077)
    try:
        write_textfile(path, 'old 1\n')
        reader = open(path)                      # node_exporter reading while the next run writes
        try:
            write_textfile(path, u'new{database="caf\xe9"} 2\n')
            assert reader.read() == 'old 1\n'    # a new inode renamed into place: never half a file
        finally:
            reader.close()
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(path).st_mode) == FILE_MODE == 0o644
    with open(path, 'rb') as f:
        assert f.read() == u'new{database="caf\xe9"} 2\n'.encode('utf-8')
    assert os.listdir(str(tmp_path)) == ['pgops_backup.prom']      # no temporary name left


def test_a_failed_write_leaves_no_temporary_file(tmp_path):
    target = tmp_path / 'pgops.prom'
    target.mkdir()                               # a directory where the file should be
    with pytest.raises(OSError):
        write_textfile(str(target), 'x 1\n')
    assert os.listdir(str(tmp_path)) == ['pgops.prom'] and os.listdir(str(target)) == []


# -- the restore audit log --------------------------------------------------------------------------------------

def test_read_audit_log_keeps_objects_and_names_the_bad_lines(tmp_path):
    path = tmp_path / 'restore-audit.jsonl'
    path.write_bytes(b'{"database": "shop", "result": "passed"}\n'
                     b'\n'
                     b'{"database": "crm", "res\n'
                     b'["not", "an", "object"]\n'
                     b'  \n'
                     b'{"database": "crm", "result": "failed"}\n')
    records, warnings = read_audit_log(str(path))
    assert records == [dict(database='shop', result='passed'), dict(database='crm', result='failed')]
    assert len(warnings) == 2
    assert warnings[0].startswith('%s line 3: ' % path)
    assert warnings[1] == '%s line 4: not a JSON object' % path


def test_a_missing_audit_log_is_no_warning_an_unreadable_one_is(tmp_path):
    assert read_audit_log(str(tmp_path / 'restore-audit.jsonl')) == ([], [])
    records, warnings = read_audit_log(str(tmp_path))              # a directory: cannot be read as a log
    assert records == [] and len(warnings) == 1 and warnings[0].startswith(str(tmp_path))


# -- the figures ------------------------------------------------------------------------------------------------

def test_counts_sizes_and_the_newest_success_per_kind():
    entries = [rec(1, size=3000), rec(2, kind='snapshot', size=500), rec(25, size=2000),
               rec(50, status='failed'), rec(24 * 30, status='failed')]          # outside the 7-day window
    samples, dummy, summary = run(entries)
    full = dict(server='db1', database='shop', kind='full')
    assert pick(samples, 'pgops_backup_count', **full) == [2]
    assert pick(samples, 'pgops_backup_bytes', **full) == [5000]
    assert pick(samples, 'pgops_backup_failures', **full) == [1]                 # the one in the window
    assert pick(samples, 'pgops_backup_last_size_bytes', **full) == [3000]
    assert pick(samples, 'pgops_backup_last_duration_seconds', **full) == [30.5]
    assert pick(samples, 'pgops_backup_last_success_timestamp_seconds', **full) == [
        epoch(NOW - datetime.timedelta(hours=1))]
    assert pick(samples, 'pgops_backup_count', kind='snapshot') == [1]
    assert pick(samples, 'pgops_backup_failures', kind='snapshot') == [0]
    assert pick(samples, 'pgops_backup_newest_age_seconds', database='shop') == [3600]
    # 3 successes and 1 failure in the window
    assert pick(samples, 'pgops_backup_success_ratio', database='shop') == [0.75]
    assert summary == dict(servers=['db1'], databases=['shop'], backups=3, failed=2)


def test_size_change_and_growth_ratios():
    entries = [rec(1, size=1600, database_size=1300), rec(25, size=1000, database_size=1200),
               rec(24 * 8, size=900, database_size=1000)]
    samples, alerts, dummy = run(entries)
    assert pick(samples, 'pgops_backup_size_change_ratio', database='shop') == [0.6]
    assert pick(samples, 'pgops_database_size_bytes', database='shop') == [1300]
    assert pick(samples, 'pgops_database_growth_ratio', database='shop') == [0.3]     # against 8 days ago
    assert sorted(a['name'] for a in alerts) == ['growth', 'size_change']
    [size] = [a for a in alerts if a['name'] == 'size_change']
    assert size['message'] == ('shop: backup size changed +60.0% against the previous one (threshold 50%) '
                               'on server db1')


def test_databases_option_keeps_only_those_and_expects_them():
    entries = [rec(1, database='shop'), rec(1, database='crm')]
    samples, alerts, summary = run(entries, databases=['shop', 'billing'])
    assert set(s['labels']['database'] for s in samples if s['labels'].get('database')) == {'shop', 'billing'}
    assert summary['databases'] == ['billing', 'shop']
    assert pick(samples, 'pgops_backup_count', database='billing') == []         # no backup, no count ...
    [missing] = [a for a in alerts if a['database'] == 'billing']                 # ... but the alert fires
    assert missing['name'] == 'no_success'
    assert missing['message'] == 'billing: no successful backup in the catalog on server db1'
    assert pick(samples, 'pgops_backup_alert', alert='no_success', database='billing', action='warn') == [1]
    assert pick(samples, 'pgops_backup_alert', alert='no_success', database='shop', action='warn') == [0]


@pytest.mark.parametrize('hours, firing', [(25, False), (27, True)])
def test_no_success_fires_past_no_success_hours(hours, firing):
    samples, alerts, dummy = run([rec(hours)])
    assert pick(samples, 'pgops_backup_alert', alert='no_success', database='shop') == [1 if firing else 0]
    assert [a['name'] for a in alerts] == (['no_success'] if firing else [])
    if firing:
        assert alerts[0]['message'].startswith('shop: no successful backup for 27.0 h (threshold 26 h)')


def test_an_alert_turned_off_writes_no_sample_and_fires_nothing():
    samples, alerts, dummy = run([rec(100)], no_success_action='off')
    assert pick(samples, 'pgops_backup_alert', alert='no_success') == []
    assert alerts == []


def test_the_action_is_a_label_and_travels_with_the_alert():
    samples, alerts, dummy = run([rec(1), rec(2, status='failed')], success_rate_action='fail')
    assert pick(samples, 'pgops_backup_alert', alert='success_rate', database='shop', action='fail') == [1]
    [a] = alerts
    assert (a['name'], a['action'], a['server'], a['database']) == ('success_rate', 'fail', 'db1', 'shop')
    assert a['message'] == 'shop: backup success rate 50.0% over 7 days (target 100%) on server db1'
    samples, alerts, dummy = run([rec(1), rec(2, status='failed')], success_rate_target=50)
    assert alerts == []


@pytest.mark.parametrize('free, size, ratio, firing', [
    (5 * GIB, 100 * GIB, 0.05, True),
    (10 * GIB, 100 * GIB, 0.1, False),           # at the threshold: not below it
    (60 * GIB, 100 * GIB, 0.6, False),
])
def test_free_disk(free, size, ratio, firing):
    samples, alerts, dummy = run([rec(1)], free=free, size=size)
    assert pick(samples, 'pgops_backup_dir_free_bytes', server='') == [free]
    assert pick(samples, 'pgops_backup_dir_size_bytes', server='') == [size]
    assert pick(samples, 'pgops_backup_dir_free_ratio', server='') == [ratio]
    assert pick(samples, 'pgops_backup_alert', alert='free_disk', database='') == [1 if firing else 0]
    fired = [a for a in alerts if a['name'] == 'free_disk']
    assert len(fired) == (1 if firing else 0)
    if firing:
        assert fired[0]['message'] == 'backup directory file system has 5.0% free (threshold 10%)'
        assert fired[0]['database'] is None and fired[0]['server'] == ''      # the directory's, no server added


def test_a_file_system_of_size_zero_has_no_ratio_and_no_alert():
    samples, alerts, dummy = run([rec(1)], free=0, size=0)
    assert pick(samples, 'pgops_backup_dir_free_ratio') == []
    assert pick(samples, 'pgops_backup_alert', alert='free_disk') == [0]
    assert not [a for a in alerts if a['name'] == 'free_disk']


def test_offsite_age():
    old = (NOW - datetime.timedelta(days=10)).isoformat()
    samples, alerts, dummy = run([rec(1, offsite=[dict(at=old)])])
    assert pick(samples, 'pgops_offsite_newest_age_seconds', database='shop') == [10 * 86400]
    [a] = alerts
    assert a['name'] == 'offsite_age'
    assert a['message'] == 'shop: the newest off-site copy is 10.0 days old (threshold 8 days) on server db1'
    samples, alerts, dummy = run([rec(1)])
    assert pick(samples, 'pgops_offsite_newest_age_seconds') == [] and alerts == []    # never copied: no age


def t(hours):
    return (NOW - datetime.timedelta(hours=hours)).isoformat()


def test_the_newest_verification_of_the_database_counts():
    entries = [rec(1, verifications=[dict(verified_at=t(0.5), result='inconclusive')]),
               rec(5, verifications=[dict(verified_at=t(4), result='passed'), dict(verified_at=t(2), result='failed')]),
               rec(9, verifications=[dict(verified_at=t(3), result='passed')])]
    samples, dummy, dummy2 = run(entries)
    assert pick(samples, 'pgops_backup_verify_last_result', database='shop') == [0]    # 2 h ago, failed
    assert pick(samples, 'pgops_backup_verify_last_timestamp_seconds', database='shop') == [
        epoch(NOW - datetime.timedelta(hours=2))]
    samples, dummy, dummy2 = run([rec(1)])
    assert pick(samples, 'pgops_backup_verify_last_result') == []


def test_the_newest_restore_of_each_database_and_mode():
    audit = [dict(time=t(5), database='shop', mode='test', result='passed', rto_seconds=40, server='db1'),
             dict(time=t(3), database='shop', mode='test', result='failed', rto_seconds=9, server='db1'),
             dict(time=t(1), database='shop', mode='test', result='running', server='db1'),     # not a result
             dict(time=None, database='shop', mode='test', result='passed', server='db1'),      # no time
             dict(time=t(2), database='shop', mode='replace', result='passed', rto_seconds=120, server='db1'),
             dict(time=t(2), database='shop', result='passed', rto_seconds=7, server='db1'),    # no mode
             dict(time=t(1), database='other', mode='test', result='passed', rto_seconds=1, server='db1')]
    samples, dummy, dummy2 = run([rec(1)], audit=audit, databases=['shop'])
    got = dict((s['labels']['mode'], s['value']) for s in samples if s['name'] == 'pgops_restore_last_rto_seconds')
    assert got == {'test': 9, 'replace': 120, 'unknown': 7}
    assert pick(samples, 'pgops_restore_last_result', mode='test') == [0]
    assert pick(samples, 'pgops_restore_last_timestamp_seconds', mode='test') == [
        epoch(NOW - datetime.timedelta(hours=3))]
    assert pick(samples, 'pgops_restore_last_rto_seconds', database='other') == []     # not in databases


def test_the_write_time_is_a_sample():
    samples, dummy, dummy2 = run([])
    assert pick(samples, 'pgops_backup_metrics_timestamp_seconds', server='') == [epoch(NOW)]
    assert json.loads(json.dumps(samples)) == samples     # JSON-ready: the module returns them
