# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgops.postgresql contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# PRIVATE to the collection: this is not a public API and may change without notice.
"""Prometheus textfile-collector metrics and alerts from the backup catalog and the restore audit log.

Everything is computed from facts on disk: the metadata records pg_backup writes (failed runs included), the
verifications pg_restore_verified appends to them, and its audit log (``restore-audit.jsonl``). The file is
written atomically (node_exporter never reads half a file) with mode 0644.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import datetime
import json
import os

from ansible_collections.pgops.postgresql.plugins.module_utils import _catalog as catalog
from ansible_collections.pgops.postgresql.plugins.module_utils._errors import PgOpsError
from ansible_collections.pgops.postgresql.plugins.module_utils._fsutil import disk_space, write_file_atomic

DEFAULT_TEXTFILE = '/var/lib/node_exporter/textfile_collector/pgops_backup.prom'
AUDIT_LOG_NAME = 'restore-audit.jsonl'
FILE_MODE = 0o644
ACTIONS = ('fail', 'warn', 'off')
ALERTS = ('no_success', 'size_change', 'growth', 'success_rate', 'free_disk', 'offsite_age')

# name -> (type, help); the order is the order in the file
FAMILIES = (
    ('pgops_backup_last_success_timestamp_seconds', 'gauge',
     'Unix time the newest successful backup of the database and kind started (its recovery point).'),
    ('pgops_backup_last_duration_seconds', 'gauge', 'Duration of the newest successful backup of the database and kind.'),
    ('pgops_backup_last_size_bytes', 'gauge', 'Size of the newest successful backup of the database and kind.'),
    ('pgops_backup_count', 'gauge', 'Successful backups in the catalog, per database and kind.'),
    ('pgops_backup_bytes', 'gauge', 'Bytes of the successful backups in the catalog, per database and kind.'),
    ('pgops_backup_failures', 'gauge', 'Failed backup runs in the success-rate window, per database and kind.'),
    ('pgops_backup_success_ratio', 'gauge', 'Successful runs / all runs in the success-rate window (0-1), per database.'),
    ('pgops_backup_newest_age_seconds', 'gauge',
     'Age of the newest successful backup when the file was written (prefer time() - last_success_timestamp).'),
    ('pgops_backup_size_change_ratio', 'gauge',
     'Size change of the newest backup against the previous one made the same way (0.5 = +50 %).'),
    ('pgops_backup_verify_last_result', 'gauge', 'Result of the newest restore verification of the database (1 passed, 0 failed).'),
    ('pgops_backup_verify_last_timestamp_seconds', 'gauge', 'Unix time of the newest restore verification of the database.'),
    ('pgops_restore_last_rto_seconds', 'gauge', 'Recovery time of the newest restore in the audit log, per database and mode.'),
    ('pgops_restore_last_timestamp_seconds', 'gauge', 'Unix time of the newest restore in the audit log, per database and mode.'),
    ('pgops_restore_last_result', 'gauge', 'Result of the newest restore in the audit log (1 passed, 0 failed), per database and mode.'),
    ('pgops_offsite_newest_age_seconds', 'gauge',
     'Age of the newest off-site copy of the database (backup_offsite) when the file was written.'),
    ('pgops_database_size_bytes', 'gauge', 'pg_database_size() at the start of the newest successful backup.'),
    ('pgops_database_growth_ratio', 'gauge', 'Database size growth against the newest backup at least growth_days older (0.2 = +20 %).'),
    ('pgops_backup_dir_free_bytes', 'gauge', 'Free bytes (for unprivileged writers) on the file system of the backup directory.'),
    ('pgops_backup_dir_size_bytes', 'gauge', 'Size of the file system of the backup directory.'),
    ('pgops_backup_dir_free_ratio', 'gauge', 'Free / size of the file system of the backup directory (0-1).'),
    ('pgops_backup_alert', 'gauge', 'An alert of backup_metrics (1 firing, 0 not), with its action.'),
    ('pgops_backup_catalog_warnings', 'gauge', 'Metadata files or audit log lines that could not be read.'),
    ('pgops_backup_metrics_timestamp_seconds', 'gauge', 'Unix time this file was written.'),
)


def _seconds(when):
    """Unix time of an aware datetime (None stays None)."""
    return (when - catalog.EPOCH).total_seconds() if when else None


def _ts(value):
    return _seconds(catalog.parse_time(value))


def escape_label(value):
    return str(value).replace('\\', '\\\\').replace('"', '\\"').replace('\n', '\\n')


def format_value(value):
    if isinstance(value, bool):
        return '1' if value else '0'
    if isinstance(value, int):
        return str(value)
    value = float(value)
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def render(samples, families=None):
    """The textfile: HELP and TYPE for every family (``families``: (name, type, help) triples, default the
    backup catalog's), then its samples sorted by labels."""
    lines = []
    for name, mtype, text in FAMILIES if families is None else families:
        lines.append('# HELP %s %s' % (name, text))
        lines.append('# TYPE %s %s' % (name, mtype))
        mine = sorted((s for s in samples if s['name'] == name), key=lambda s: sorted(s['labels'].items()))
        for s in mine:
            labels = ','.join('%s="%s"' % (k, escape_label(v)) for k, v in sorted(s['labels'].items()))
            lines.append('%s%s %s' % (name, '{%s}' % labels if labels else '', format_value(s['value'])))
    return '\n'.join(lines) + '\n'


def textfile_dir_error(path, option):
    """The message naming ``option`` when the directory of the textfile ``path`` is missing, else None."""
    directory = os.path.dirname(path) or '.'
    if os.path.isdir(directory):
        return None
    return ('the directory of %s (%s) does not exist: create it (node_exporter\'s --collector.textfile.directory) '
            'or point %s elsewhere' % (option, directory, option))


def read_textfile(path):
    """The textfile as it is ('' when there is none), to compare before writing."""
    try:
        with open(path, 'rb') as f:
            return f.read().decode('utf-8', 'replace')
    except (IOError, OSError):
        return ''


def write_textfile(path, text):
    """Atomically, mode 0644: node_exporter runs as its own user. Raises OSError or PgOpsError."""
    write_file_atomic(path, text.encode('utf-8'), mode=FILE_MODE)


def read_audit_log(path):
    """Records of the restore audit log (JSON lines), oldest first, and warnings for unreadable lines."""
    records, warnings = [], []
    try:
        with open(path, 'rb') as f:
            for n, raw in enumerate(f, 1):
                if not raw.strip():
                    continue
                try:
                    rec = json.loads(raw.decode('utf-8'))
                    if not isinstance(rec, dict):
                        raise ValueError('not a JSON object')
                except ValueError as e:
                    warnings.append('%s line %d: %s' % (path, n, e))
                    continue
                records.append(rec)
    except (IOError, OSError) as e:
        if getattr(e, 'errno', None) != 2:
            warnings.append('%s: %s' % (path, e))
    return records, warnings


def _newest_verification(entries):
    best = None
    for m in entries:
        for v in m.get('verifications') or []:
            t = _ts(v.get('verified_at'))
            if t is not None and v.get('result') in ('passed', 'failed') and (best is None or t >= best[0]):
                best = (t, v)
    return best


def compute(entries, audit, now, free, size, cfg):
    """Samples and alerts from the catalog entries, the audit records and the disk figures.

    cfg: databases (list or None), window_days (success rate and failures), size_change_percent,
    growth_percent, growth_days, no_success_hours, success_rate_target, free_disk_percent, and
    <alert>_action for every alert in ALERTS.
    """
    samples = []

    def add(name, value, **labels):
        if value is not None:
            samples.append(dict(name=name, labels=labels, value=value))

    wanted = cfg.get('databases') or None
    if wanted:
        entries = [m for m in entries if m.get('database') in wanted]
    window = cfg['window_days']
    stats = catalog.catalog_stats(entries, now, window, cfg['size_change_percent'], cfg['growth_percent'],
                                  cfg['growth_days'])
    databases = sorted(set(stats['databases']) | set(wanted or []))
    for db in databases:
        mine = [m for m in entries if m.get('database') == db]
        for kind in sorted(set(m.get('kind') for m in mine)):
            ok = [m for m in mine if m.get('kind') == kind and m.get('status') == 'success']
            failed = [m for m in mine if m.get('kind') == kind and m.get('status') == 'failed'
                      and (catalog.age_seconds(m, now) or 0) <= window * 86400]
            add('pgops_backup_count', len(ok), database=db, kind=kind)
            add('pgops_backup_bytes', sum(int(m.get('size') or 0) for m in ok), database=db, kind=kind)
            add('pgops_backup_failures', len(failed), database=db, kind=kind)
            if ok:
                add('pgops_backup_last_success_timestamp_seconds',
                    _seconds(catalog.backup_time(ok[0])), database=db, kind=kind)
                add('pgops_backup_last_duration_seconds', ok[0].get('duration_seconds'), database=db, kind=kind)
                add('pgops_backup_last_size_bytes', int(ok[0].get('size') or 0), database=db, kind=kind)
        s = stats['databases'].get(db)
        if s:
            if s['success_rate'] is not None:
                add('pgops_backup_success_ratio', round(s['success_rate'] / 100.0, 4), database=db)
            add('pgops_backup_newest_age_seconds', s['newest_age_seconds'], database=db)
            if s['size_change_pct'] is not None:
                add('pgops_backup_size_change_ratio', round(s['size_change_pct'] / 100.0, 4), database=db)
            add('pgops_offsite_newest_age_seconds', s.get('offsite_newest_age_seconds'), database=db)
            add('pgops_database_size_bytes', s['database_size'], database=db)
            if s['growth_pct'] is not None:
                add('pgops_database_growth_ratio', round(s['growth_pct'] / 100.0, 4), database=db)
        newest = _newest_verification(mine)
        if newest:
            add('pgops_backup_verify_last_result', 1 if newest[1].get('result') == 'passed' else 0, database=db)
            add('pgops_backup_verify_last_timestamp_seconds', newest[0], database=db)
    last_restore = {}
    for rec in audit:
        db = rec.get('database')
        t = _ts(rec.get('time'))
        if db is None or t is None or (wanted and db not in wanted) or rec.get('result') not in ('passed', 'failed'):
            continue
        key = (db, rec.get('mode') or 'unknown')
        if key not in last_restore or t >= last_restore[key][0]:
            last_restore[key] = (t, rec)
    for (db, mode), (t, rec) in sorted(last_restore.items()):
        add('pgops_restore_last_timestamp_seconds', t, database=db, mode=mode)
        add('pgops_restore_last_result', 1 if rec.get('result') == 'passed' else 0, database=db, mode=mode)
        add('pgops_restore_last_rto_seconds', rec.get('rto_seconds'), database=db, mode=mode)
    add('pgops_backup_dir_free_bytes', free)
    add('pgops_backup_dir_size_bytes', size)
    free_ratio = round(float(free) / size, 4) if size else None
    add('pgops_backup_dir_free_ratio', free_ratio)

    alerts = []

    def alert(name, database, firing, message):
        action = cfg['%s_action' % name]
        if action == 'off':
            return
        add('pgops_backup_alert', 1 if firing else 0, alert=name, database=database or '', action=action)
        if firing:
            alerts.append(dict(name=name, database=database, action=action, message=message))

    for db in databases:
        s = stats['databases'].get(db)
        age = s['newest_age_seconds'] if s else None
        limit = cfg['no_success_hours'] * 3600
        alert('no_success', db, age is None or age > limit,
              catalog.no_success_alert(db, age, cfg['no_success_hours']))
        alert('size_change', db, bool(s and s['size_change_flag']),
              catalog.size_change_alert(db, s and s['size_change_pct'], cfg['size_change_percent']))
        alert('growth', db, bool(s and s['growth_flag']),
              catalog.growth_alert(db, s and s['growth_pct'], cfg['growth_days'], cfg['growth_percent']))
        offsite_age = s.get('offsite_newest_age_seconds') if s else None
        alert('offsite_age', db, offsite_age is not None and offsite_age > cfg['offsite_max_age_days'] * 86400,
              catalog.offsite_age_alert(db, offsite_age, cfg['offsite_max_age_days']))
        rate = s['success_rate'] if s else None
        alert('success_rate', db, rate is not None and rate < cfg['success_rate_target'],
              catalog.success_rate_alert(db, rate, window, cfg['success_rate_target']))
    alert('free_disk', None, free_ratio is not None and free_ratio * 100 < cfg['free_disk_percent'],
          'backup directory file system has %.1f%% free (threshold %s%%)'
          % ((free_ratio or 0) * 100, cfg['free_disk_percent']))
    add('pgops_backup_metrics_timestamp_seconds', round((now - catalog.EPOCH).total_seconds(), 3))
    return samples, alerts, stats


def run_backup_metrics(module):
    """backup_metrics's main: compute, compare with the file on disk, write unless check mode, then alerts."""
    p = module.params
    now = datetime.datetime.now().astimezone()
    path = p['path']
    if os.path.exists(path) and not os.path.isdir(path):
        module.fail_json(msg='path %s is not a directory (the backup directory)' % path)
    for name in ALERTS:
        if p['%s_action' % name] not in ACTIONS:  # pragma: no cover - choices= guards this
            module.fail_json(msg='%s_action must be one of %s' % (name, ', '.join(ACTIONS)))
    dest = p['dest']
    if textfile_dir_error(dest, 'dest'):
        module.fail_json(msg=textfile_dir_error(dest, 'dest'))
    try:
        entries, warnings = catalog.load_catalog(path)
    except OSError as e:
        module.fail_json(msg='cannot read the backup directory %s (path): %s' % (path, e))
    audit_path = p['audit_log'] or os.path.join(path, AUDIT_LOG_NAME)
    audit, audit_warnings = read_audit_log(audit_path)
    warnings = warnings + audit_warnings
    free, size = disk_space(path)
    cfg = dict((k, p[k]) for k in ('databases', 'window_days', 'size_change_percent', 'growth_percent', 'growth_days',
                                   'no_success_hours', 'success_rate_target', 'free_disk_percent',
                                   'offsite_max_age_days'))
    cfg.update(('%s_action' % a, p['%s_action' % a]) for a in ALERTS)
    samples, alerts, stats = compute(entries, audit, now, free, size, cfg)
    samples.append(dict(name='pgops_backup_catalog_warnings', labels={}, value=len(warnings)))
    text = render(samples)
    before = read_textfile(dest)
    changed = before != text
    result = dict(changed=changed, dest=dest, audit_log=audit_path, metrics=samples, alerts=alerts,
                  messages=[a['message'] for a in alerts], catalog_warnings=warnings,
                  summary=dict(databases=sorted(stats['databases']), backups=stats['count'], failed=stats['failed'],
                               samples=len(samples), alerts=len(alerts),
                               failing=len([a for a in alerts if a['action'] == 'fail'])))
    if module._diff:
        result['diff'] = dict(before=before, after=text, before_header=dest, after_header=dest)
    if changed and not module.check_mode:
        try:
            write_textfile(dest, text)
        except (IOError, OSError, PgOpsError) as e:
            module.fail_json(msg='cannot write %s (dest): %s' % (dest, e), **result)
    for a in alerts:
        if a['action'] == 'warn':
            module.warn(a['message'])
    failing = [a['message'] for a in alerts if a['action'] == 'fail']
    if failing:
        module.fail_json(msg='backup alerts: %s' % '; '.join(failing), **result)
    module.exit_json(**result)
