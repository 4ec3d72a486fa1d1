# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgops.postgresql contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# PRIVATE to the collection: this is not a public API and may change without notice.
"""pgbackrest_restore's pure rules, checked before anything is touched: the options (each message naming the option
and the fix), the target (time, restore point name, xid, LSN or the end of the archive), the recoverable window and
the backup set that fits the target."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import datetime
import re

from ansible_collections.pgops.postgresql.plugins.module_utils._errors import PgOpsError
from ansible_collections.pgops.postgresql.plugins.module_utils._pgbackrest import iso_utc as iso, usable_backups
from ansible_collections.pgops.postgresql.plugins.module_utils._steps import TARGET

TARGET_OPTIONS = ('target_time', 'target_name', 'target_xid', 'target_lsn')
MODES = ('test', 'new', 'replace', 'rollback')
SETTING_NAME_RE = re.compile(r'^[A-Za-z_][A-Za-z0-9_.]*$')
SETTING_VALUE_RE = re.compile(r'^[A-Za-z0-9_.:/@+,=-]*$')
LSN_RE = re.compile(r'^([0-9A-Fa-f]{1,8})/([0-9A-Fa-f]{1,8})$')
XID_RE = re.compile(r'^[0-9]{1,20}$')
TABLE_RE = re.compile(r'^[^.]+\.[^.]+$')
TIME_RE = re.compile(r'^(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,6}))?)?\s*'
                     r'(Z|z|UTC|[+-]\d{2}(?::?\d{2})?)$')


def parse_target_time(text):
    """An aware datetime from a timestamp with time zone (ISO 8601 or PostgreSQL's output:
    ``2026-11-28 22:28:38.102725+00``, ``2026-11-28T22:28:38Z``); ValueError naming what is wrong."""
    m = TIME_RE.match((text or '').strip())
    if not m:
        raise ValueError('target_time %r is not a timestamp with time zone (YYYY-MM-DD HH:MM[:SS[.ffffff]] and a '
                         'zone such as +00, +01:00 or Z)' % text)
    year, month, day, hour, minute, second, frac, zone = m.groups()
    if zone.upper() in ('Z', 'UTC'):
        offset = datetime.timedelta(0)
    else:
        sign = -1 if zone[0] == '-' else 1
        digits = zone[1:].replace(':', '')
        offset = sign * datetime.timedelta(hours=int(digits[:2]), minutes=int(digits[2:4] or 0))
    try:
        return datetime.datetime(int(year), int(month), int(day), int(hour), int(minute), int(second or 0),
                                 int((frac or '0').ljust(6, '0')), tzinfo=datetime.timezone(offset))
    except ValueError as e:
        raise ValueError('target_time %r is not a valid time: %s' % (text, e))


def iso_time(text):
    """A timestamp with time zone (PostgreSQL's or ISO 8601) as ISO-8601 UTC like the other times we return; text
    that is not one (an xid, a restore point name) unchanged."""
    try:
        return iso(parse_target_time(text).timestamp())
    except (ValueError, TypeError):
        return text


def lsn_value(text):
    m = LSN_RE.match(text or '')
    if not m:
        raise ValueError('target_lsn %r is not an LSN (e.g. 0/3000060)' % text)
    return (int(m.group(1), 16) << 32) + int(m.group(2), 16)


def target_of(params):
    """(type, value for pgBackRest --target) of the options; ('default', None) = the end of the archive."""
    if params.get('target_time'):
        when = parse_target_time(params['target_time']).astimezone(datetime.timezone.utc)
        return 'time', when.strftime('%Y-%m-%d %H:%M:%S.%f') + '+00'
    if params.get('target_name'):
        return 'name', params['target_name']
    if params.get('target_xid'):
        return 'xid', str(params['target_xid'])
    if params.get('target_lsn'):
        return 'lsn', params['target_lsn']
    return 'default', None


def option_errors(p):
    """pgbackrest_restore's rules that AnsibleModule cannot declare, one message each (naming the option and the
    fix); [] when fine. Called in main() before anything is looked at."""
    errors = []
    given = [k for k in TARGET_OPTIONS if p.get(k) not in (None, '')]
    if len(given) > 1:
        errors.append('%s are mutually exclusive: give one target (or none for the end of the archive)'
                      % ', '.join(given))
    if p.get('target_time'):
        try:
            parse_target_time(p['target_time'])
        except ValueError as e:
            errors.append(str(e))
    if p.get('target_xid') and not XID_RE.match(str(p['target_xid'])):
        errors.append('target_xid must be a transaction id (digits), got %r' % p['target_xid'])
    if p.get('target_lsn'):
        try:
            lsn_value(p['target_lsn'])
        except ValueError as e:
            errors.append(str(e))
    if p.get('target_name') is not None and not (0 < len(p['target_name']) < 64):
        errors.append('target_name must be a restore point name of 1 to 63 characters')
    if p.get('mode') in ('replace', 'rollback') and not p.get('confirm'):
        errors.append('mode=%s stops the server and switches its data directory: it needs confirm=true (run '
                      'mode=test or mode=new first to see what the restore gives)' % p.get('mode'))
    if p.get('mode') == 'rollback' and any(p.get(k) for k in TARGET_OPTIONS):
        errors.append('mode=rollback switches back to the kept data directory: it takes no target option')
    port = p.get('scratch_port')
    if port is not None and not 1024 <= port <= 65535:
        errors.append('scratch_port must be between 1024 and 65535 (got %s); leave it unset for a free port' % port)
    for name, value in sorted((p.get('scratch_settings') or {}).items()):
        if not SETTING_NAME_RE.match(str(name)) or not SETTING_VALUE_RE.match(str(value)):
            errors.append('scratch_settings: %s=%s is refused; names are setting names, values may hold letters, '
                          'digits and _ . : / @ + , = -' % (name, value))
    for table in p.get('expected_tables') or []:
        if not TABLE_RE.match(table):
            errors.append('expected_tables: %r is not schema.table' % table)
    if p.get('expected_tables') and not p.get('databases'):
        errors.append('expected_tables needs databases, the databases that must hold them')
    for i, a in enumerate(p.get('assertions') or []):
        if not (a.get('sql') or '').strip():
            errors.append('assertions[%d] has no sql' % i)
    timeline = p.get('target_timeline')
    if timeline and timeline not in ('current', 'latest') and not re.match(r'^[0-9]+$', str(timeline)):
        errors.append('target_timeline must be current, latest or a timeline number (got %r)' % timeline)
    if p.get('process_max') is not None and p['process_max'] < 1:
        errors.append('process_max must be 1 or more (got %s)' % p['process_max'])
    for name in ('recovery_timeout', 'start_timeout'):
        if p.get(name) is not None and p[name] < 1:
            errors.append('%s must be 1 second or more (got %s)' % (name, p[name]))
    if p.get('rollback_volume') and not (p.get('container') and p.get('mode') == 'rollback'):
        errors.append('rollback_volume names the kept volume of a server in a container: it goes with container '
                      'and mode=rollback')
    if p.get('rollback_directory') and (p.get('container') or p.get('mode') != 'rollback'):
        errors.append('rollback_directory names a kept data directory on this host: it goes with mode=rollback '
                      'without container (with container: rollback_volume)')
    return errors


def describe_window(window):
    return '%s to %s' % (window['start'], window['end'])


def choose_backup(info, kind, value, backup_set=None):
    """The backup set to restore for the target (its info entry); PgOpsError at ``target`` when there is none.

    time: the newest backup that ended at or before the target; lsn: the newest whose stop LSN is at or before it;
    default/name/xid: the newest backup (name and xid cannot be placed before a restore: give backup_set for a
    target older than the newest backup)."""
    backups = usable_backups(info)
    if backup_set:
        for b in backups:
            if b['label'] == backup_set:
                return b
        raise PgOpsError('backup_set %s is not a backup of stanza %s (backups: %s)'
                         % (backup_set, info.get('name'), ', '.join(b['label'] for b in backups) or 'none'),
                         step=TARGET)
    if not backups:
        raise PgOpsError('stanza %s has no backup to restore from: take a full backup first (pgbackrest_backup)'
                         % info.get('name'), step=TARGET)
    if kind == 'time':
        when = parse_target_time(value).timestamp()
        fit = [b for b in backups if b['timestamp']['stop'] <= when]
        if not fit:
            stop = iso(backups[0]['timestamp']['stop'])
            raise PgOpsError('target_time %s is before the end of the oldest backup %s (%s): the earliest moment '
                             'that can be restored is %s' % (value, backups[0]['label'], stop, stop), step=TARGET)
        return fit[-1]
    if kind == 'lsn':
        want = lsn_value(value)
        fit = [b for b in backups if lsn_value(b['lsn']['stop']) <= want]
        if not fit:
            raise PgOpsError('target_lsn %s is before the end of the oldest backup %s (stop LSN %s)'
                             % (value, backups[0]['label'], backups[0]['lsn']['stop']), step=TARGET)
        return fit[-1]
    return backups[-1]


def check_target(kind, value, window):
    """Refuse a time target outside the recoverable window (the message names the window); PgOpsError at target.
    Returns the epoch of a time target (inside the window), None for the others (they cannot be placed in time
    before a restore)."""
    if window is None:
        raise PgOpsError('there is no recoverable window: the stanza has no backup', step=TARGET)
    if kind != 'time':
        return None
    when = parse_target_time(value).timestamp()
    if when < window['start_epoch']:
        raise PgOpsError('target_time %s is before the recoverable window %s (the oldest backup started at %s); '
                         'nothing was created' % (iso(when), describe_window(window), window['start']),
                         step=TARGET)
    if when > window['end_epoch']:
        raise PgOpsError('target_time %s is after the recoverable window %s (the newest archived WAL is from %s: '
                         'later changes are not in the archive yet); nothing was created'
                         % (iso(when), describe_window(window), window['end']), step=TARGET)
    return when


def restore_options(params, instance, label, kind, value):
    """The options of ``pgbackrest restore`` into ``instance`` (its data directory, tablespaces mapped inside it):
    the backup set ``label`` and the target; archive_mode off, so the scratch never archives into the repository."""
    options = ['--pg1-path=%s' % instance.data, '--archive-mode=off',
               '--tablespace-map-all=%s' % instance.tablespaces, '--set=%s' % label, '--type=%s' % kind]
    if kind != 'default':
        options += ['--target=%s' % value, '--target-action=promote']
        if params.get('target_exclusive'):
            options.append('--target-exclusive')
    if params.get('target_timeline'):
        options.append('--target-timeline=%s' % params['target_timeline'])
    if params.get('process_max'):
        options.append('--process-max=%d' % params['process_max'])
    return options
