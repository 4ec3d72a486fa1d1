# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgops.postgresql contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# PRIVATE to the collection: this is not a public API and may change without notice.
"""backup_rotate's logic: retention decided first (pure functions), then acted on.

Per database, newest first, a backup is kept when any protection applies (in progress, newest verified,
``min_keep`` newest successful, grandfather-father-son), else deleted when older than its kind's age limit
(or ``older_than_days``). Failed-run records never count as backups: they protect nothing and are removed by age.
Ages are differences of aware instants; day, ISO week and month buckets are the host's local calendar.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import datetime
import errno
import fcntl
import os
import re
import socket
import stat

from ansible_collections.pgops.postgresql.plugins.module_utils import _catalog as catalog
from ansible_collections.pgops.postgresql.plugins.module_utils._connection import PgTarget
from ansible_collections.pgops.postgresql.plugins.module_utils._databases import (
    drop_database, list_databases_with_comments,
)
from ansible_collections.pgops.postgresql.plugins.module_utils._errors import PgOpsError
from ansible_collections.pgops.postgresql.plugins.module_utils._fsutil import (
    TMP_MARK, DirLock, fsync_dir, is_temp_name, open_paths_under, pid_alive, remove_tree,
)
from ansible_collections.pgops.postgresql.plugins.module_utils.restore.audit import AUDIT_LOG_NAME, audit_interrupted, restore_lock_path, who
from ansible_collections.pgops.postgresql.plugins.module_utils.restore.scratch import scratch_info
from ansible_collections.pgops.postgresql.plugins.module_utils._server import server_of
from ansible_collections.pgops.postgresql.plugins.module_utils._steps import DROP, OPTIONS, PLAN, ROTATE_STEPS, job_step

DEFAULT_MAX_AGE_DAYS = {'full': 30, 'pre_deploy': 7, 'snapshot': 3, 'pre_restore': 7, 'manual': 7}
GFS_PERIODS = ('daily', 'weekly', 'monthly')
ROLLBACK_RE = re.compile(r'__rollback_(\d{8}_\d{6})$')
DAY = 86400.0


# -- policy -------------------------------------------------------------------------------------------------
def _number(value, option, minimum, integer=False, above=False):
    try:
        number = int(value) if integer else float(value)
        if integer and float(value) != number:
            raise ValueError(value)
    except (TypeError, ValueError):
        raise PgOpsError('%s must be %s, got %r' % (option, 'a whole number' if integer else 'a number', value),
                         step=OPTIONS)
    if number < minimum or (above and number == minimum):
        raise PgOpsError('%s must be %s %s, got %s' % (option, 'above' if above else 'at least', minimum, value),
                         step=OPTIONS)
    return number


def make_policy(max_age_days=None, older_than_days=None, keep_daily=0, keep_weekly=0, keep_monthly=0, min_keep=3,
                orphan_age_hours=24, rollback_retention_days=7):
    """Validated policy dict; every error names the option and what it accepts."""
    ages = dict(DEFAULT_MAX_AGE_DAYS)
    for kind, days in (max_age_days or {}).items():
        if kind not in catalog.KINDS:
            raise PgOpsError('max_age_days has an unknown kind %r (kinds: %s)' % (kind, ', '.join(catalog.KINDS)),
                             step=OPTIONS)
        ages[kind] = _number(days, 'max_age_days.%s' % kind, 0)
    return {
        'max_age_days': ages,
        'older_than_days': None if older_than_days is None else _number(older_than_days, 'older_than_days', 0),
        'keep_daily': _number(keep_daily or 0, 'keep_daily', 0, integer=True),
        'keep_weekly': _number(keep_weekly or 0, 'keep_weekly', 0, integer=True),
        'keep_monthly': _number(keep_monthly or 0, 'keep_monthly', 0, integer=True),
        'min_keep': _number(min_keep, 'min_keep', 1, integer=True),
        'orphan_age_hours': _number(orphan_age_hours, 'orphan_age_hours', 0, above=True),
        'rollback_retention_days': _number(rollback_retention_days, 'rollback_retention_days', 0),
    }


def _days(seconds):
    return '%.1fd' % (seconds / DAY)


def _limit_text(days):
    return '%gd' % days


def local_buckets(instant):
    """(day, ISO week, month) of an aware instant in the host's local time zone (TZ, DST included)."""
    local = instant.astimezone()
    day = local.date()
    iso = day.isocalendar()
    return {'daily': day.isoformat(), 'weekly': '%04d-W%02d' % (iso[0], iso[1]),
            'monthly': '%04d-%02d' % (day.year, day.month)}


def safe_file_name(name):
    """A dump name that stays inside the backup directory: one plain, non-hidden path component."""
    return bool(name) and name == os.path.basename(name) and '\\' not in name and name not in ('.', '..') \
        and not name.startswith('.') and '\x00' not in name


def _age_limit(meta, policy):
    """(days, text) of the age limit that applies to this record, or (None, why) when none does."""
    if policy['older_than_days'] is not None:
        return policy['older_than_days'], 'older_than_days %s' % _limit_text(policy['older_than_days'])
    kind = meta.get('kind')
    if kind not in policy['max_age_days']:
        return None, 'kind %r has no age limit' % kind
    return policy['max_age_days'][kind], '%s max %s' % (kind, _limit_text(policy['max_age_days'][kind]))


def plan_database(entries, now, policy, locked=False, busy=frozenset(), present=None):
    """Decisions for the records of ONE database (any order in, newest first out). Pure: no I/O.

    ``locked``: another process holds the database's lock. ``busy``: names (dump or metadata) that have a
    temporary sibling being written. ``present``: names in the directory (None: assume every dump exists).
    Each decision is ``(meta, action, reason)`` with action ``delete`` or ``keep``.
    """
    timed = [(catalog.backup_time(m), m) for m in entries]
    far_past = datetime.datetime(1, 1, 1, tzinfo=datetime.timezone.utc)
    timed.sort(key=lambda tm: (tm[0] or far_past, tm[1].get('id') or ''), reverse=True)
    if locked:
        return [(m, 'keep', 'in progress (locked)') for dummy, m in timed]
    fixed, good, info = {}, [], {}
    for when, m in timed:
        key = id(m)
        name = m.get('file')
        meta_name = os.path.basename(m.get('meta_path') or '')
        info[key] = when
        if (name and name in busy) or meta_name in busy:
            fixed[key] = 'in progress (temporary file)'
        elif when is None:
            fixed[key] = 'started_at missing or invalid: age unknown'
        elif name and not safe_file_name(name):
            fixed[key] = 'file %r is not a plain name in the directory: not touched' % name
        elif m.get('status') == 'success' and name and (present is None or name in present):
            good.append(m)
    protect = dict((id(m), []) for m in good)
    verified = [m for m in good if catalog.is_verified(m)]
    if verified:
        protect[id(verified[0])].append('newest verified')
    for m in good[:policy['min_keep']]:
        protect[id(m)].append('min_keep %d' % policy['min_keep'])
    for period in GFS_PERIODS:
        wanted = policy['keep_' + period]
        seen = set()
        for m in good:
            if len(seen) >= wanted:
                break
            bucket = local_buckets(info[id(m)])[period]
            if bucket not in seen:
                seen.add(bucket)
                protect[id(m)].append('gfs %s %s' % (period, bucket))
    out = []
    for when, m in timed:
        key = id(m)
        if key in fixed:
            out.append((m, 'keep', fixed[key]))
            continue
        limit, limit_text = _age_limit(m, policy)
        age = (now - when).total_seconds()
        expired = limit is not None and age > limit * DAY
        age_text = 'age %s %s %s' % (_days(age), '>' if expired else '<=', limit_text) if limit is not None \
            else limit_text
        if protect.get(key):
            reason = '; '.join(protect[key])
            out.append((m, 'keep', reason + (' (over age: %s)' % age_text if expired else '')))
            continue
        status = m.get('status')
        if status == 'success' and key not in protect:
            age_text = 'dump missing; ' + age_text
        elif status == 'failed':
            age_text = 'failed run; ' + age_text
        elif status != 'success':
            out.append((m, 'keep', 'status %r is neither success nor failed: not touched' % status))
            continue
        out.append((m, 'delete' if expired else 'keep', age_text))
    return out


def plan_rotation(entries, now, policy, locked=(), busy=frozenset(), present=None):
    """Decisions for a whole catalog, grouped per server and database (two servers sharing the directory never
    protect, nor fail to protect, each other's backups), in catalog order (newest first)."""
    groups = {}
    for m in entries:
        groups.setdefault((server_of(m), m.get('database')), []).append(m)
    decided = {}
    for (dummy, database), mine in groups.items():
        for m, action, reason in plan_database(mine, now, policy, database in locked, busy, present):
            decided[id(m)] = (m, action, reason)
    # a globals dump goes only with the last kept database backup that links it: its restore may need the roles
    linked = {}
    for m, action, dummy in decided.values():
        link = m.get('globals') or {}
        if action == 'keep' and m.get('database') != catalog.GLOBALS and link.get('file'):
            linked.setdefault(link['file'], []).append('%s %s' % (m.get('database'), m.get('id')))
    for key, (m, action, reason) in list(decided.items()):
        if m.get('database') == catalog.GLOBALS and action == 'delete' and m.get('file') in linked:
            users = sorted(linked[m['file']])
            decided[key] = (m, 'keep', 'the globals of kept backup%s %s (%s)' % (
                's' if len(users) > 1 else '', ', '.join(users), reason))
    return [decided[id(m)] for m in entries]


def rollback_plan(names, now, retention_days):
    """``(name, action, reason)`` for every ``<db>__rollback_<YYYYMMDD_HHMMSS>`` (local time) database."""
    out = []
    for name in sorted(names):
        m = ROLLBACK_RE.search(name)
        if not m:
            continue
        try:
            created = catalog.parse_id(m.group(1)).astimezone()   # naive local -> aware local
        except catalog.CatalogError:
            continue
        age = (now - created).total_seconds()
        expired = age > retention_days * DAY
        out.append((name, 'drop' if expired else 'keep', 'age %s %s rollback_retention_days %s'
                    % (_days(age), '>' if expired else '<=', _limit_text(retention_days))))
    return out


# -- file system ----------------------------------------------------------------------------------------------
def lock_held(path):
    """True when another process holds the flock on ``path`` (tested non-blocking; a missing file is free)."""
    try:
        fd = os.open(path, os.O_RDWR)
    except OSError as e:
        if e.errno == errno.ENOENT:
            return False
        if e.errno != errno.EACCES:
            raise
        fd = os.open(path, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except (IOError, OSError) as e:
            if e.errno in (errno.EAGAIN, errno.EACCES):
                return True
            raise
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def tree_size(path):
    """Bytes of regular files at ``path`` (a file or a directory tree), never following symbolic links."""
    try:
        st = os.lstat(path)
    except OSError:
        return 0
    if not stat.S_ISDIR(st.st_mode):
        return st.st_size if stat.S_ISREG(st.st_mode) else 0
    total = 0
    for entry in os.scandir(path):
        total += tree_size(entry.path)
    return total


def tree_mtime(path):
    """Newest modification time at ``path`` or below (no symbolic link followed)."""
    st = os.lstat(path)
    newest = st.st_mtime
    if stat.S_ISDIR(st.st_mode):
        for entry in os.scandir(path):
            newest = max(newest, tree_mtime(entry.path))
    return newest


def _temp_base(name):
    """``.<final name>.tmp-<pid>`` -> (final name, pid or None)."""
    base, dummy, pid = name[1:].rpartition(TMP_MARK)
    return base, int(pid) if pid.isdigit() else None


class Rotation(object):
    """Rotation of one backup directory: ``plan()`` decides everything, ``act()`` does exactly that."""

    def __init__(self, directory, policy, now=None):
        self.directory = os.path.abspath(directory)
        self.policy = policy
        self.now = now or datetime.datetime.now().astimezone()
        self.warnings = []
        self.catalog_warnings = []
        self.entries = []
        self.decisions = []
        self.orphans = []
        self.deleted = []
        self.kept = []
        self.bytes_freed = 0
        self.errors = []

    def _orphans(self, temps):
        """Temporary names older than orphan_age_hours that no live process holds (by pid or open file)."""
        limit = self.now.timestamp() - self.policy['orphan_age_hours'] * 3600.0
        candidates = []
        for name in temps:
            path = os.path.join(self.directory, name)
            try:
                if tree_mtime(path) >= limit:
                    continue
            except OSError:
                continue
            if pid_alive(_temp_base(name)[1]):
                continue
            candidates.append(name)
        if not candidates:
            return []
        held = open_paths_under(self.directory)
        real = os.path.realpath(self.directory)
        out = []
        for name in candidates:
            path = os.path.join(real, name)
            if any(h == path or h.startswith(path + '/') for h in held):
                continue
            out.append(name)
        return sorted(out)

    def plan(self):
        try:
            self.entries, warnings = catalog.load_catalog(self.directory)
            names = os.listdir(self.directory) if os.path.isdir(self.directory) else []
        except OSError as e:
            raise PgOpsError('cannot read the backup directory %s (path): %s' % (self.directory, e), step=PLAN)
        self.catalog_warnings = warnings
        present = set(names)
        temps = [n for n in names if is_temp_name(n)]
        self.orphans = self._orphans(temps)
        gone = set(self.orphans)
        busy = frozenset(_temp_base(n)[0] for n in temps if n not in gone)
        locked = set()
        for database in set(m.get('database') for m in self.entries):
            lock = catalog.lock_name(database)
            if lock in present and lock_held(os.path.join(self.directory, lock)):
                locked.add(database)
        self.decisions = []
        for m, action, reason in plan_rotation(self.entries, self.now, self.policy, locked, busy, present):
            item = self._item(m, action, reason)
            self.decisions.append(item)
        self._split()
        return self

    def _item(self, m, action, reason):
        name = m.get('file')
        item = dict(path=os.path.join(self.directory, name) if name else None, meta_path=m['meta_path'],
                    database=m.get('database'), id=m.get('id'), kind=m.get('kind'), status=m.get('status'),
                    started_at=m.get('started_at'), action=action, reason=reason)
        if action == 'delete':
            size = tree_size(item['path']) if name else 0
            item['bytes'] = size + tree_size(item['meta_path'])
        return item

    def _split(self):
        self.deleted = [d for d in self.decisions if d['action'] == 'delete']
        self.kept = [d for d in self.decisions if d['action'] == 'keep']
        self.bytes_freed = sum(d['bytes'] for d in self.deleted)

    @property
    def changed(self):
        return bool(self.deleted or self.orphans)

    def act(self):
        """Delete what the plan says: per database under its lock (taken without waiting), dump before metadata."""
        by_db = {}
        for d in self.deleted:
            by_db.setdefault(d['database'], []).append(d)
        skipped = set()
        for database, items in sorted(by_db.items(), key=lambda kv: kv[0] or ''):
            lock = os.path.join(self.directory, catalog.lock_name(database))
            existed = os.path.lexists(lock)
            try:
                with DirLock(lock, 0, 'database %s in %s' % (database, self.directory)) as held:
                    if not existed:
                        self._own_like_directory(held.fd)
                    for d in items:
                        self._delete(d)
            except PgOpsError as e:
                # a backup of this database started after the plan: keep its records this time
                self.warnings.append('%s; its backups were kept this time' % e.msg)
                for d in items:
                    d.update(action='keep', reason='in progress (locked)')
                    skipped.add(id(d))
        if skipped:
            self._split()
        for name in self.orphans:
            try:
                remove_tree(os.path.join(self.directory, name))
            except OSError as e:
                self.errors.append('removing orphaned temporary file %s: %s' % (name, e))
        if self.deleted or self.orphans:
            fsync_dir(self.directory)

    def _own_like_directory(self, fd):
        """A lock file we had to create belongs to the directory's owner, so pg_backup can still open it."""
        st = os.stat(self.directory)
        if os.geteuid() == 0 and (st.st_uid, st.st_gid) != (0, 0):
            os.fchown(fd, st.st_uid, st.st_gid)

    def _delete(self, d):
        try:
            if d['path']:
                remove_tree(d['path'])       # the dump first: a half-deleted backup never looks complete
            os.unlink(d['meta_path'])
        except OSError as e:
            if e.errno != errno.ENOENT:
                self.errors.append('deleting backup %s of %s (%s): %s' % (d['id'], d['database'], d['path'], e))

    def diff(self):
        def label(d):
            return os.path.basename(d['path'] or d['meta_path'])
        before = sorted(label(d) for d in self.decisions)
        after = sorted(label(d) for d in self.kept)
        return dict(before_header=self.directory, after_header=self.directory,
                    before=''.join(n + '\n' for n in before), after=''.join(n + '\n' for n in after))

    def summary(self):
        per_db = {}
        for d in self.decisions:
            s = per_db.setdefault(d['database'], {'kept': 0, 'deleted': 0})
            s['kept' if d['action'] == 'keep' else 'deleted'] += 1
        return dict(backups=len([d for d in self.decisions if d['status'] == 'success']),
                    records=len(self.decisions), deleted=len(self.deleted), kept=len(self.kept),
                    failed_records_deleted=len([d for d in self.deleted if d['status'] == 'failed']),
                    bytes_freed=self.bytes_freed, orphans_removed=len(self.orphans), databases=per_db)


class RollbackCleanup(object):
    """Rollback databases ``<db>__rollback_<YYYYMMDD_HHMMSS>`` older than the retention, and the scratch databases
    of restores that were killed (their target's restore lock is free): listed, then dropped."""

    def __init__(self, target, maintenance_db, retention_days, now, directory):
        self.target = target
        self.maintenance_db = maintenance_db or 'postgres'
        self.retention_days = retention_days
        self.now = now
        self.directory = directory
        self.plan = []
        self.scratch = []

    def decide(self):
        self.target.check_container()
        with self.target.psql(self.maintenance_db) as s:
            found = list_databases_with_comments(s)
        self.plan = rollback_plan([d['name'] for d in found], self.now, self.retention_days)
        for d in found:
            info = scratch_info(d['comment'])
            # only the scratch databases of restores from this backup directory (whose restore lock is here),
            # and never one whose run still lives on this host
            if (info and info.get('path') == os.path.abspath(self.directory)
                    and not lock_held(restore_lock_path(self.directory, info['target']))
                    and not (info.get('host') == socket.gethostname() and pid_alive(info.get('pid')))):
                self.scratch.append(dict(info, scratch_database=d['name']))
        return self

    @property
    def to_drop(self):
        return [dict(name=n, reason=r) for n, a, r in self.plan if a == 'drop']

    @property
    def scratch_to_drop(self):
        return [dict(name=i['scratch_database'], reason='left by an interrupted restore of %s (backup %s, pid %s on '
                     '%s, started %s)' % (i['target'], i.get('backup_id'), i.get('pid'), i.get('host'),
                                          i.get('started'))) for i in self.scratch]

    def act(self):
        with self.target.psql(self.maintenance_db) as s:
            for item in self.to_drop + self.scratch_to_drop:
                drop_database(s, item['name'])
        for info in self.scratch:
            audit_interrupted(os.path.join(self.directory, AUDIT_LOG_NAME), info, who(), 'backup_rotate')


def run_backup_rotate(module):
    """backup_rotate's main: validate, plan files (and rollback databases), act outside check mode, report."""
    p = module.params
    try:
        policy = make_policy(p['max_age_days'], p['older_than_days'], p['keep_daily'], p['keep_weekly'],
                             p['keep_monthly'], p['min_keep'], p['orphan_age_hours'], p['rollback_retention_days'])
    except PgOpsError as e:
        module.fail_json(msg=e.msg, failed_step=OPTIONS)
    if not (p['path'] or '').strip():
        module.fail_json(msg='path must name the backup directory; an empty path would rotate the current directory')
    if os.path.exists(p['path']) and not os.path.isdir(p['path']):
        module.fail_json(msg='path %s is not a directory' % p['path'])
    rotation = Rotation(p['path'], policy)
    cleanup = None
    try:
        rotation.plan()
        if p['drop_rollback_databases']:
            cleanup = RollbackCleanup(PgTarget(module), p['maintenance_db'], policy['rollback_retention_days'],
                                      rotation.now, rotation.directory).decide()
    except PgOpsError as e:
        step = job_step(e.step, ROTATE_STEPS, PLAN)
        module.fail_json(msg='backup_rotate failed at step %s: %s' % (step, e.msg), failed_step=step)
    if not os.path.isdir(rotation.directory):
        rotation.warnings.append('backup directory %s (path) does not exist: nothing to rotate' % rotation.directory)
    dropped = cleanup.to_drop if cleanup else []
    scratch = cleanup.scratch_to_drop if cleanup else []
    failure = failed_step = None
    if not module.check_mode:
        rotation.act()
        if dropped or scratch:
            try:
                cleanup.act()
            except PgOpsError as e:
                failure = 'dropping rollback or scratch databases failed: %s' % e.msg
                failed_step = DROP
    result = dict(changed=rotation.changed or bool(dropped) or bool(scratch), deleted=rotation.deleted,
                  kept=rotation.kept, bytes_freed=rotation.bytes_freed,
                  orphans_removed=[os.path.join(rotation.directory, n) for n in rotation.orphans],
                  rollback_databases_dropped=dropped, scratch_databases_dropped=scratch,
                  catalog_warnings=rotation.catalog_warnings)
    summary = rotation.summary()
    summary['rollback_databases_dropped'] = len(dropped)
    result['summary'] = summary
    if module._diff:
        result['diff'] = rotation.diff()
    for w in rotation.catalog_warnings + rotation.warnings:
        module.warn(w)
    if rotation.errors or failure:
        if failed_step:
            result['failed_step'] = failed_step
        module.fail_json(msg='; '.join(rotation.errors + ([failure] if failure else [])), **result)
    module.exit_json(**result)
