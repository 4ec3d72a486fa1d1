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
from ansible_collections.pgops.postgresql.plugins.module_utils._fsutil import disk_space
from ansible_collections.pgops.postgresql.plugins.module_utils._server import check_name, of_server, server_of
from ansible_collections.pgops.postgresql.plugins.module_utils.restore.audit import AUDIT_LOG_NAME
from ansible_collections.pgops.postgresql.plugins.module_utils._textfile import (
    read_textfile, render, textfile_dir_error, write_textfile,
)

DEFAULT_TEXTFILE = '/var/lib/node_exporter/textfile_collector/pgops_backup.prom'
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


def _server(meta):
    """The ``server`` label of a record: its server (_server.server_of), '' when nothing says which."""
    return server_of(meta) or ''


def expected_servers(entries, cfg):
    """The servers whose expected databases (cfg databases) must have backups: the ``server`` option's, else
    every named server of the catalog; '' (nothing says which) only when the catalog names none."""
    if cfg.get('server'):
        return [cfg['server']]
    named = sorted(set(_server(m) for m in entries) - set(['']))
    return named or ['']


def compute(entries, audit, now, free, size, cfg):
    """Samples and alerts from the catalog entries, the audit records and the disk figures.

    Every figure is per (server, database): two servers sharing a backup directory never mix (the label
    ``server``; '' for records that say no server, e.g. dumps adopted without one). Figures of the directory
    (free space, warnings, the write time) carry the ``server`` option's name, '' when every server's are written.

    cfg: server (None: every server's), databases (list or None), window_days (success rate and failures),
    size_change_percent, growth_percent, growth_days, no_success_hours, success_rate_target, free_disk_percent,
    offsite_max_age_days and <alert>_action for every alert in ALERTS.
    """
    samples = []

    def add(name, value, **labels):
        if value is not None:
            samples.append(dict(name=name, labels=labels, value=value))

    only = cfg.get('server') or None
    if only:
        entries = of_server(entries, only)       # its own, and those that say no server (every server's)
    wanted = cfg.get('databases') or None
    expected = expected_servers(entries, cfg)
    if wanted:
        entries = [m for m in entries if m.get('database') in wanted]
    window = cfg['window_days']
    groups = {}
    for m in entries:                            # newest first, as the catalog lists them
        groups.setdefault((_server(m), m.get('database')), []).append(m)
    for srv in expected:
        for db in wanted or []:
            groups.setdefault((srv, db), [])
    stats = {}
    for (srv, db), mine in sorted(groups.items()):
        if mine:
            stats[(srv, db)] = catalog.database_stats(mine, now, window, cfg['size_change_percent'],
                                                      cfg['growth_percent'], cfg['growth_days'])
        for kind in sorted(set(m.get('kind') for m in mine)):
            ok = [m for m in mine if m.get('kind') == kind and m.get('status') == 'success']
            failed = [m for m in mine if m.get('kind') == kind and m.get('status') == 'failed'
                      and (catalog.age_seconds(m, now) or 0) <= window * 86400]
            labels = dict(server=srv, database=db, kind=kind)
            add('pgops_backup_count', len(ok), **labels)
            add('pgops_backup_bytes', sum(int(m.get('size') or 0) for m in ok), **labels)
            add('pgops_backup_failures', len(failed), **labels)
            if ok:
                add('pgops_backup_last_success_timestamp_seconds', _seconds(catalog.backup_time(ok[0])), **labels)
                add('pgops_backup_last_duration_seconds', ok[0].get('duration_seconds'), **labels)
                add('pgops_backup_last_size_bytes', int(ok[0].get('size') or 0), **labels)
        s = stats.get((srv, db))
        if s:
            if s['success_rate'] is not None:
                add('pgops_backup_success_ratio', round(s['success_rate'] / 100.0, 4), server=srv, database=db)
            add('pgops_backup_newest_age_seconds', s['newest_age_seconds'], server=srv, database=db)
            if s['size_change_pct'] is not None:
                add('pgops_backup_size_change_ratio', round(s['size_change_pct'] / 100.0, 4), server=srv, database=db)
            add('pgops_offsite_newest_age_seconds', s.get('offsite_newest_age_seconds'), server=srv, database=db)
            add('pgops_database_size_bytes', s['database_size'], server=srv, database=db)
            if s['growth_pct'] is not None:
                add('pgops_database_growth_ratio', round(s['growth_pct'] / 100.0, 4), server=srv, database=db)
        newest = _newest_verification(mine)
        if newest:
            add('pgops_backup_verify_last_result', 1 if newest[1].get('result') == 'passed' else 0,
                server=srv, database=db)
            add('pgops_backup_verify_last_timestamp_seconds', newest[0], server=srv, database=db)
    last_restore = {}
    for rec in audit:
        db = rec.get('database')
        t = _ts(rec.get('time'))
        srv = rec.get('server') or ''            # the server restored to; lines before 0.5.0 say none
        if db is None or t is None or (wanted and db not in wanted) or rec.get('result') not in ('passed', 'failed'):
            continue
        if only and srv not in (only, ''):
            continue
        key = (srv, db, rec.get('mode') or 'unknown')
        if key not in last_restore or t >= last_restore[key][0]:
            last_restore[key] = (t, rec)
    for (srv, db, mode), (t, rec) in sorted(last_restore.items()):
        labels = dict(server=srv, database=db, mode=mode)
        add('pgops_restore_last_timestamp_seconds', t, **labels)
        add('pgops_restore_last_result', 1 if rec.get('result') == 'passed' else 0, **labels)
        add('pgops_restore_last_rto_seconds', rec.get('rto_seconds'), **labels)
    directory = only or ''
    add('pgops_backup_dir_free_bytes', free, server=directory)
    add('pgops_backup_dir_size_bytes', size, server=directory)
    free_ratio = round(float(free) / size, 4) if size else None
    add('pgops_backup_dir_free_ratio', free_ratio, server=directory)

    alerts = []

    def alert(name, srv, database, firing, message):
        action = cfg['%s_action' % name]
        if action == 'off':
            return
        add('pgops_backup_alert', 1 if firing else 0, alert=name, server=srv, database=database or '', action=action)
        if firing:
            if srv and database:
                message += ' on server %s' % srv
            alerts.append(dict(name=name, server=srv, database=database, action=action, message=message))

    for (srv, db) in sorted(groups):
        s = stats.get((srv, db))
        age = s['newest_age_seconds'] if s else None
        limit = cfg['no_success_hours'] * 3600
        alert('no_success', srv, db, age is None or age > limit,
              catalog.no_success_alert(db, age, cfg['no_success_hours']))
        alert('size_change', srv, db, bool(s and s['size_change_flag']),
              catalog.size_change_alert(db, s and s['size_change_pct'], cfg['size_change_percent']))
        alert('growth', srv, db, bool(s and s['growth_flag']),
              catalog.growth_alert(db, s and s['growth_pct'], cfg['growth_days'], cfg['growth_percent']))
        offsite_age = s.get('offsite_newest_age_seconds') if s else None
        alert('offsite_age', srv, db, offsite_age is not None and offsite_age > cfg['offsite_max_age_days'] * 86400,
              catalog.offsite_age_alert(db, offsite_age, cfg['offsite_max_age_days']))
        rate = s['success_rate'] if s else None
        alert('success_rate', srv, db, rate is not None and rate < cfg['success_rate_target'],
              catalog.success_rate_alert(db, rate, window, cfg['success_rate_target']))
    alert('free_disk', directory, None, free_ratio is not None and free_ratio * 100 < cfg['free_disk_percent'],
          'backup directory file system has %.1f%% free (threshold %s%%)'
          % ((free_ratio or 0) * 100, cfg['free_disk_percent']))
    add('pgops_backup_metrics_timestamp_seconds', round((now - catalog.EPOCH).total_seconds(), 3), server=directory)
    summary = dict(servers=sorted(set(srv for srv, db in groups)), databases=sorted(set(db for srv, db in groups)),
                   backups=len([m for m in entries if m.get('status') == 'success']),
                   failed=len([m for m in entries if m.get('status') == 'failed']))
    return samples, alerts, summary


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
    if p['server'] is not None:
        try:
            check_name(p['server'])
        except PgOpsError as e:
            module.fail_json(msg=e.msg)
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
    cfg = dict((k, p[k]) for k in ('server', 'databases', 'window_days', 'size_change_percent', 'growth_percent', 'growth_days',
                                   'no_success_hours', 'success_rate_target', 'free_disk_percent',
                                   'offsite_max_age_days'))
    cfg.update(('%s_action' % a, p['%s_action' % a]) for a in ALERTS)
    samples, alerts, summary = compute(entries, audit, now, free, size, cfg)
    samples.append(dict(name='pgops_backup_catalog_warnings', labels=dict(server=p['server'] or ''),
                        value=len(warnings)))
    text = render(samples, FAMILIES)
    before = read_textfile(dest)
    changed = before != text
    result = dict(changed=changed, dest=dest, audit_log=audit_path, metrics=samples, alerts=alerts,
                  messages=[a['message'] for a in alerts], catalog_warnings=warnings,
                  summary=dict(summary, samples=len(samples), alerts=len(alerts),
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
