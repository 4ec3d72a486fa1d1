# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgops.postgresql contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# PRIVATE to the collection: this is not a public API and may change without notice.
"""The backup catalog: names on disk, backup ids, the metadata beside each backup, listing and statistics.

A backup is the pair ``<stem>.<ext>`` + ``<stem>.meta.json``. The metadata file is written last, atomically:
a dump without metadata, or any hidden ``.*.tmp-*`` name, is never listed as a backup. Failed runs leave a
metadata record with ``status: failed`` and no dump, so success rates can be computed from facts.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import datetime
import json
import os
import re

from urllib.parse import quote as _quote

from ansible_collections.pgops.postgresql.plugins.module_utils._server import server_of

META_SUFFIX = '.meta.json'
# 2: rows of each table alone (FROM ONLY), object names under search_path pg_catalog, locale and database settings
METADATA_VERSION = 2
ID_FORMAT = '%Y%m%d_%H%M%S'
ID_RE = re.compile(r'^\d{8}_\d{6}$')
KINDS = ('full', 'manual', 'snapshot', 'pre_deploy', 'pre_restore')
FORMATS = ('plain', 'custom', 'directory')
COMPRESSIONS = ('zstd', 'gzip', 'lz4', 'none')
DEFAULT_LEVEL = {'zstd': 1, 'gzip': 6, 'lz4': 1, 'none': 0}
LEVEL_RANGE = {'zstd': (1, 19), 'gzip': (1, 9), 'lz4': (1, 12), 'none': (0, 0)}
COMPRESSOR_EXT = {'zstd': '.zst', 'gzip': '.gz', 'lz4': '.lz4', 'none': ''}
GLOBALS = '@globals'
SIZE_SERIES = 10      # the newest backups in database_stats' size_series (the size trend)
LABEL_MAX = 64
_CONTROL_RE = re.compile(u'[\u0000-\u001f\u007f-\u009f]')


class CatalogError(ValueError):
    """A catalog request that cannot be met (bad label, unknown or ambiguous backup id); the message says why."""


def validate_label(label):
    """Return the label unchanged, or raise CatalogError saying why it is refused. Never rewrites it."""
    if label is None:
        return None
    if not label.strip():
        raise CatalogError('label must not be empty or blank')
    if len(label) > LABEL_MAX:
        raise CatalogError('label must be at most %d characters (got %d)' % (LABEL_MAX, len(label)))
    if '/' in label or '\\' in label:
        raise CatalogError('label %r must not contain a path separator ("/" or "\\")' % label)
    if '..' in label:
        raise CatalogError('label %r must not contain ".."' % label)
    if _CONTROL_RE.search(label):
        raise CatalogError('label %r must not contain control characters' % label)
    if label.startswith('.') or label.startswith('-'):
        raise CatalogError('label %r must not start with "." or "-"' % label)
    if len(slug(label)) > 2 * LABEL_MAX:
        raise CatalogError('label %r is too long once escaped for a file name (%d bytes, at most %d): use fewer '
                           'non-ASCII characters' % (label, len(slug(label)), 2 * LABEL_MAX))
    return label


def slug(name):
    """A file-name-safe form of a database name or label: %-escapes anything but [A-Za-z0-9_.-]."""
    if not name:
        return ''
    quoted = _quote(name.encode('utf-8'), safe='-._')
    return '%2E' + quoted[1:] if quoted.startswith('.') else quoted   # never a hidden file


def make_id(when):
    return when.strftime(ID_FORMAT)


def parse_id(backup_id):
    if not ID_RE.match(backup_id or ''):
        raise CatalogError('backup id %r is not of the form YYYYMMDD_HHMMSS (e.g. 20241219_143022)' % backup_id)
    try:
        return datetime.datetime.strptime(backup_id, ID_FORMAT)
    except ValueError:
        raise CatalogError('backup id %r is not a valid date and time' % backup_id)


def dump_suffix(fmt, compression):
    """File (or directory) suffix for a dump of this format; plain SQL is compressed by an external program."""
    if fmt == 'plain':
        return '.sql' + COMPRESSOR_EXT[compression]
    if fmt == 'custom':
        return '.dump'
    return '.dir'


def stem(database, kind, label, backup_id):
    """``<db>_<kind>[_<label>]_<id>``, e.g. ``pim_dev_pre_deploy_pre-deployment_20241219_143022``.

    Names are for people; the metadata is the truth (nothing parses file names), and pg_backup refuses to
    overwrite an existing name.
    """
    parts = [slug(database) if database != GLOBALS else '_globals', kind]
    if label:
        parts.append(slug(label))
    parts.append(backup_id)
    return '_'.join(parts)


def lock_name(database):
    return '.%s.lock' % (slug(database) if database != GLOBALS else '_globals')


def meta_path(directory, entry_stem):
    return os.path.join(directory, entry_stem + META_SUFFIX)


def load_catalog(directory):
    """All metadata records in ``directory`` (newest first) and a list of unreadable files as warnings."""
    entries, warnings = [], []
    try:
        names = os.listdir(directory)
    except OSError as e:
        if e.errno == 2:
            return entries, warnings
        raise
    for name in names:
        if not name.endswith(META_SUFFIX) or name.startswith('.'):
            continue
        path = os.path.join(directory, name)
        try:
            with open(path, 'rb') as f:
                meta = json.loads(f.read().decode('utf-8'))
            if not isinstance(meta, dict) or 'id' not in meta or 'database' not in meta:
                raise ValueError('not a pgops backup metadata record')
            _check_record(meta)
        except (IOError, OSError, ValueError) as e:
            warnings.append('%s: %s' % (path, e))
            continue
        meta['meta_path'] = path
        if meta.get('file'):
            meta['path'] = os.path.join(directory, meta['file'])
        entries.append(meta)
    entries.sort(key=lambda m: (_started(m), m['id']), reverse=True)
    return entries, warnings


EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


def _check_record(meta):
    """ValueError when a record's fields that listing, ordering and choosing read have the wrong type (a damaged
    or hand-edited file): such a record is reported as unreadable instead of failing every module."""
    for key, kinds in (('id', (str,)), ('database', (str,)), ('file', (str, type(None))),
                       ('status', (str, type(None)))):
        if not isinstance(meta.get(key), kinds):
            raise ValueError('not a pgops backup metadata record: %s is %r' % (key, meta.get(key)))
    for key in ('started_at', 'finished_at'):
        if meta.get(key) is not None:
            try:
                parse_time(meta[key])
            except (TypeError, ValueError):
                raise ValueError('not a pgops backup metadata record: %s %r is not a time' % (key, meta[key]))


def backup_time(meta):
    """When a backup happened: its ``started_at``, the instant of the dump's snapshot, i.e. the point its data
    can be recovered to (``finished_at`` only for a record without a readable ``started_at``). An aware datetime
    (an instant, not text: zones and DST differ), or None when the record has neither. Ages, ordering, retention,
    metrics and ``data_as_of`` all use this one notion."""
    for key in ('started_at', 'finished_at'):
        try:
            when = parse_time(meta.get(key))
        except (TypeError, ValueError):
            when = None
        if when is not None:
            return when
    return None


def _started(meta):
    """backup_time for ordering: a record without one sorts last."""
    return backup_time(meta) or EPOCH


def ids_for(entries, database):
    return set(m['id'] for m in entries if m.get('database') == database)


def parse_time(value):
    """ISO 8601 timestamp as written in metadata -> aware datetime."""
    if not value:
        return None
    when = _fromisoformat(value)   # fast path: what pg_backup writes (isoformat())
    if when is not None and when.tzinfo is not None:
        return when.replace(microsecond=0)
    return datetime.datetime.strptime(_fix_iso(value), '%Y-%m-%dT%H:%M:%S%z')


def _fromisoformat(value):
    try:
        return datetime.datetime.fromisoformat(value)
    except (TypeError, ValueError):
        return None


def _fix_iso(value):
    # Python 3.6's %z does not take "+01:00"; metadata writes "+01:00", so drop the colon and fractions.
    main, sep, tz = value[:19], value[19:], ''
    if 'Z' in sep:
        tz = '+0000'
    else:
        m = re.search(r'([+-])(\d\d):?(\d\d)$', sep)
        tz = '%s%s%s' % m.groups() if m else '+0000'
    return main + tz


def iso(dt):
    return dt.isoformat(timespec='seconds') if hasattr(dt, 'isoformat') else dt


def age_seconds(meta, now):
    """Seconds since the backup happened (backup_time), or None when unknown."""
    when = backup_time(meta)
    return (now - when).total_seconds() if when else None


def filter_entries(entries, database=None, kind=None, label=None, status=None, max_age_days=None, now=None,
                   databases=None, scope='any'):
    out = []
    for m in entries:
        if database is not None and m.get('database') != database:
            continue
        if databases is not None and m.get('database') not in databases:
            continue
        if scope not in (None, 'any') and m.get('scope', 'database') != scope:
            continue
        if kind and m.get('kind') not in (kind if isinstance(kind, (list, tuple)) else [kind]):
            continue
        if label is not None and m.get('label') != label:
            continue
        if status and status != 'any' and m.get('status') != status:
            continue
        if max_age_days is not None:
            age = age_seconds(m, now)
            if age is None or age > max_age_days * 86400:
                continue
        out.append(m)
    return out


def _pct_change(new, old):
    if not old:
        return None
    return round((float(new) - float(old)) * 100.0 / float(old), 1)


def database_stats(entries, now, window_days=30, size_change_pct=50.0, growth_pct=20.0, growth_days=7):
    """Stats for one database's entries (newest first)."""
    ok = [m for m in entries if m.get('status') == 'success']
    in_window = [m for m in entries if (age_seconds(m, now) or 0) <= window_days * 86400]
    win_ok = [m for m in in_window if m.get('status') == 'success']
    win_failed = [m for m in in_window if m.get('status') == 'failed']
    stats = {
        'count': len(ok),
        'failed': len([m for m in entries if m.get('status') == 'failed']),
        'size': sum(int(m.get('size') or 0) for m in ok),
        'success_rate': (round(100.0 * len(win_ok) / len(win_ok + win_failed), 1)
                         if win_ok or win_failed else None),
        'newest_id': ok[0]['id'] if ok else None,
        'newest_age_seconds': int(age_seconds(ok[0], now)) if ok else None,
        'newest_size': int(ok[0].get('size') or 0) if ok else None,
        'size_change_pct': None,
        'size_change_flag': False,
        'database_size': ok[0].get('database_size') if ok else None,
        'growth_pct': None,
        'growth_flag': False,
        'by_kind': {},
    }
    verified = [m for m in ok if is_verified(m)]
    stats['newest_verified_id'] = verified[0]['id'] if verified else None
    stats['newest_verified_age_seconds'] = int(age_seconds(verified[0], now)) if verified else None
    # the sizes of the newest successful backups, oldest first: the size trend at a glance
    stats['size_series'] = [[m.get('id'), int(m.get('size') or 0)] for m in reversed(ok[:SIZE_SERIES])]
    stats.update(offsite_stats(ok, now))
    for m in ok:
        k = stats['by_kind'].setdefault(m.get('kind'), {'count': 0, 'size': 0})
        k['count'] += 1
        k['size'] += int(m.get('size') or 0)
    if ok:
        newest = ok[0]
        # size change against the previous backup made the same way (same format and compression)
        same = [m for m in ok[1:] if (m.get('format'), m.get('compression')) ==
                (newest.get('format'), newest.get('compression'))]
        if same:
            stats['size_change_pct'] = _pct_change(newest.get('size'), same[0].get('size'))
            stats['size_change_flag'] = (stats['size_change_pct'] is not None and
                                         abs(stats['size_change_pct']) > size_change_pct)
        # growth: database size now against the newest backup at least growth_days older
        newest_t = _started(newest)
        older = [m for m in ok if (newest_t - _started(m)).total_seconds()
                 >= growth_days * 86400 and m.get('database_size')]
        if older and newest.get('database_size'):
            stats['growth_pct'] = _pct_change(newest['database_size'], older[0]['database_size'])
            stats['growth_flag'] = stats['growth_pct'] > growth_pct
    return stats


def offsite_stats(ok, now):
    """The off-site copies that backup_offsite recorded in these (successful) backups' metadata: how many backups
    have one, and the age of the newest copy (None when none was copied)."""
    times = [parse_time(r.get('at')) for m in ok for r in m.get('offsite') or [] if r.get('at')]
    times = [t for t in times if t is not None]
    return {'offsite_copies': len([m for m in ok if m.get('offsite')]),
            'offsite_newest_age_seconds': int((now - max(times)).total_seconds()) if times else None}


# -- alert texts: one wording for backup_info and backup_metrics ---------------------------------------------
def size_change_alert(database, pct, threshold):
    return '%s: backup size changed %+.1f%% against the previous one (threshold %s%%)' % (database, pct or 0, threshold)


def growth_alert(database, pct, days, threshold):
    return '%s: database grew %.1f%% in %g days (threshold %s%%)' % (database, pct or 0, days, threshold)


def offsite_age_alert(database, age_seconds, threshold_days):
    return '%s: the newest off-site copy is %.1f days old (threshold %s days)' % (
        database, (age_seconds or 0) / 86400.0, threshold_days)


def no_success_alert(database, age_seconds, hours):
    """No successful backup newer than ``hours`` (``age_seconds`` None: none at all)."""
    return '%s: no successful backup %s' % (database, 'in the catalog' if age_seconds is None else
                                            'for %.1f h (threshold %s h)' % (age_seconds / 3600.0, hours))


def success_rate_alert(database, rate, window_days, target=None):
    return '%s: backup success rate %.1f%% over %g days%s' % (
        database, rate or 0, window_days, ' (target %s%%)' % target if target is not None else '')


UNKNOWN_SERVER = '(unknown)'   # the key of records whose server cannot be told (adopted dumps, no host recorded)


def _database_alerts(per_db, window_days, size_change_pct, growth_pct, growth_days, offsite_max_age_days,
                     no_success_hours, expected_databases, prefix=''):
    """The alerts of per-database stats (one server's, or the whole catalog's) as (database, text) pairs;
    ``prefix`` names the server in the text."""
    alerts = []
    for db, s in per_db.items():
        if s['size_change_flag']:
            alerts.append((db, size_change_alert(prefix + db, s['size_change_pct'], size_change_pct)))
        if s['growth_flag']:
            alerts.append((db, growth_alert(prefix + db, s['growth_pct'], growth_days, growth_pct)))
        age = s['offsite_newest_age_seconds']
        if offsite_max_age_days and age is not None and age > offsite_max_age_days * 86400:
            alerts.append((db, offsite_age_alert(prefix + db, age, offsite_max_age_days)))
        if s['success_rate'] is not None and s['success_rate'] < 100.0:
            alerts.append((db, success_rate_alert(prefix + db, s['success_rate'], window_days)))
    if no_success_hours:
        for db in sorted((set(per_db) | set(expected_databases or ())) - set([GLOBALS])):
            age = per_db[db]['newest_age_seconds'] if db in per_db else None
            if age is None or age > no_success_hours * 3600:
                alerts.append((db, no_success_alert(prefix + db, age, no_success_hours)))
    return alerts


def _rate(entries, now, window_days):
    in_window = [m for m in entries if (age_seconds(m, now) or 0) <= window_days * 86400]
    n_ok = len([m for m in in_window if m.get('status') == 'success'])
    n_failed = len([m for m in in_window if m.get('status') == 'failed'])
    return round(100.0 * n_ok / (n_ok + n_failed), 1) if n_ok + n_failed else None


def _per_database(entries, now, window_days, size_change_pct, growth_pct, growth_days):
    return dict((db, database_stats([m for m in entries if m.get('database') == db], now, window_days,
                                    size_change_pct, growth_pct, growth_days))
                for db in sorted(set(m.get('database') for m in entries)))


def catalog_stats(entries, now, window_days=30, size_change_pct=50.0, growth_pct=20.0, growth_days=7,
                  offsite_max_age_days=8.0, no_success_hours=0, expected_databases=()):
    """Totals, per-kind figures and per-database stats with alerts, as plain JSON for AWX.

    ``no_success_hours`` (0: off): alert for each database of the catalog, and each of ``expected_databases``
    even when the catalog has nothing of it, whose newest successful backup is older than that (or missing).

    ``servers`` holds the same figures per server (``server_of``; UNKNOWN_SERVER for records that cannot be
    told), computed per (server, database): the success rate, size change and growth of two servers with a
    database of the same name never mix. The alerts are those of each server, and name the server when the
    catalog holds more than one; ``databases`` stays the figures per database name across servers (as before
    0.5.0). ``expected_databases`` are expected of every server of the catalog.
    """
    ok = [m for m in entries if m.get('status') == 'success']
    per_db = _per_database(entries, now, window_days, size_change_pct, growth_pct, growth_days)
    by_kind = {}
    for m in ok:
        k = by_kind.setdefault(m.get('kind'), {'count': 0, 'size': 0})
        k['count'] += 1
        k['size'] += int(m.get('size') or 0)
    by_server = {}
    for m in entries:
        by_server.setdefault(server_of(m) or UNKNOWN_SERVER, []).append(m)
    many = len(by_server) > 1
    servers, alerts = {}, []
    for name in sorted(by_server):
        mine = by_server[name]
        dbs = _per_database(mine, now, window_days, size_change_pct, growth_pct, growth_days)
        found = _database_alerts(dbs, window_days, size_change_pct, growth_pct, growth_days, offsite_max_age_days,
                                 no_success_hours, expected_databases, prefix=(name + ' ') if many else '')
        for db, s in dbs.items():
            s['alerts'] = [text for of, text in found if of == db]
        found = [text for dummy, text in found]
        servers[name] = {'databases': dbs, 'success_rate': _rate(mine, now, window_days), 'alerts': found,
                         'count': len([m for m in mine if m.get('status') == 'success']),
                         'failed': len([m for m in mine if m.get('status') == 'failed'])}
        alerts.extend(found)
    if not by_server:      # an empty catalog: the expected databases have no backup
        alerts = [text for dummy, text in _database_alerts({}, window_days, size_change_pct, growth_pct, growth_days,
                                                           offsite_max_age_days, no_success_hours,
                                                           expected_databases)]
    return {
        'count': len(ok),
        'failed': len([m for m in entries if m.get('status') == 'failed']),
        'total_size': sum(int(m.get('size') or 0) for m in ok),
        'by_kind': by_kind,
        'success_rate': _rate(entries, now, window_days),
        'window_days': window_days,
        'newest_age_seconds': min([s['newest_age_seconds'] for s in per_db.values()
                                   if s['newest_age_seconds'] is not None] or [None]) if per_db else None,
        'databases': per_db,
        'servers': servers,
        'alerts': alerts,
    }


def last_verification(meta):
    """The newest conclusive verification (passed or failed); 'inconclusive' runs say nothing of the backup."""
    checks = [v for v in meta.get('verifications') or [] if v.get('result') in ('passed', 'failed')]
    return checks[-1] if checks else None


def is_verified(meta):
    last = last_verification(meta)
    return bool(last and last.get('result') == 'passed')


def _parse_before(value):
    """``before`` as a backup id or a date/time ('2024-12-19', '2024-12-19 14:30', ISO with offset)."""
    if ID_RE.match(value):
        return parse_id(value).astimezone()
    for fmt in ('%Y-%m-%dT%H:%M:%S%z', '%Y-%m-%d %H:%M:%S', '%Y-%m-%dT%H:%M:%S', '%Y-%m-%d %H:%M', '%Y-%m-%d'):
        try:
            text = _fix_iso(value) if fmt.endswith('%z') else value
            when = datetime.datetime.strptime(text, fmt)
            return when if when.tzinfo else when.astimezone()
        except ValueError:
            continue
    raise CatalogError('before %r is neither a backup id (20241219_143022) nor a date and time '
                       '(2024-12-19 14:30:22)' % value)


def _nearest(candidates, backup_id, n=3):
    try:
        wanted = parse_id(backup_id)
    except CatalogError:
        return [m['id'] for m in candidates[:n]]
    return [m['id'] for m in sorted(candidates, key=lambda m: abs((parse_id(m['id']) - wanted).total_seconds()))[:n]]


CHOOSERS = ('latest', 'latest_verified')


def backup_candidates(entries, database=None, backup_id='latest', before=None, max_age_hours=None, now=None):
    """The backups a restore may use, best first: an id gives one; ``latest`` every successful backup newest
    first; ``latest_verified`` those whose last conclusive verification passed, newest first. A restore tries
    the first and, when allowed to fall back, the next ones in this order.

    Only successful database backups are candidates. A ``pre_restore`` backup (the state a restore replaced) is
    chosen only by its id, never by ``latest``. An unknown id fails with the nearest ids; an id that two
    databases share fails as ambiguous unless ``database`` is given. ``max_age_hours`` refuses, for ``latest``
    and ``latest_verified``, any backup older than that, saying how old the newest one is.
    """
    candidates = [m for m in entries if m.get('status') == 'success' and m.get('scope', 'database') == 'database'
                  and (database is None or m.get('database') == database)]
    what = 'database %s' % database if database else 'any database'
    if before:
        limit = _parse_before(before)
        candidates = [m for m in candidates if _started(m) < limit]
        what += ' before %s' % before
    if not candidates:
        raise CatalogError('no successful backup of %s in the catalog' % what)
    if backup_id not in (None, '') + CHOOSERS:
        matches = [m for m in candidates if m['id'] == backup_id]
        if not matches:
            nearest = ', '.join(_nearest(candidates, backup_id))
            raise CatalogError('no backup %s of %s; nearest ids: %s' % (backup_id, what, nearest))
        if len(matches) > 1:
            raise CatalogError('backup id %s is ambiguous: it exists for databases %s; set database'
                               % (backup_id, ', '.join(sorted(m['database'] for m in matches))))
        return matches
    chosen = [m for m in candidates if m.get('kind') != 'pre_restore']
    if not chosen:
        raise CatalogError('%s has only pre_restore backups (%s): a pre_restore backup is restored only when '
                           'named by its id (backup_id)' % (what, ', '.join(m['id'] for m in candidates[:3])))
    if backup_id == 'latest_verified':
        verified = [m for m in chosen if is_verified(m)]
        if not verified:
            raise CatalogError('no verified backup of %s (run a restore drill first; newest unverified: %s)'
                               % (what, chosen[0]['id']))
        chosen = verified
    if max_age_hours is not None:
        now = now or datetime.datetime.now().astimezone()
        young = [m for m in chosen if (age_seconds(m, now) or 0) <= max_age_hours * 3600]
        if not young:
            raise CatalogError('the newest %sbackup of %s, %s, is %.1f hours old: more than max_age_hours %s. '
                               'Restore it only by naming it (backup_id: %s) or with a larger max_age_hours'
                               % ('verified ' if backup_id == 'latest_verified' else '', what, chosen[0]['id'],
                                  age_seconds(chosen[0], now) / 3600.0, max_age_hours, chosen[0]['id']))
        chosen = young
    return chosen


def select_backup(entries, database=None, backup_id='latest', before=None):
    """The backup a restore tries first (see backup_candidates)."""
    return backup_candidates(entries, database, backup_id, before)[0]


def data_time(meta):
    """When a backup's data is from: the dump's snapshot, taken when it started (backup_time)."""
    return backup_time(meta)
