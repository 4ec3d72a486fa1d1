# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgops.postgresql contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# PRIVATE to the collection: this is not a public API and may change without notice.
"""pg_restore_verified's logic: a restore that can never leave things worse than before.

1. choose the backup (id, latest, latest_verified, newest before a time) from the catalog;
2. check the file: sha256 against the metadata, the format readable (pg_restore --list / compressed stream);
3. (replace) take a pre_restore backup of the target;
4. restore into a scratch database ``<target>__restore_<id>``;
5. verify it: exact row counts and object sets against the metadata, user assertions, amcheck;
6. test: drop it and record the result; new: rename it to the target; replace: end the target's sessions and
   swap by renames (target -> ``<target>__rollback_<ts>``, scratch -> target) in one transaction.

Any failure drops the scratch database and leaves the target untouched. Every run appends to an audit log.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import csv
import datetime
import hashlib
import json
import os
import pwd
import re
import signal
import socket
import tempfile
import time
from contextlib import suppress

from ansible_collections.pgops.postgresql.plugins.module_utils import _catalog as catalog
from ansible_collections.pgops.postgresql.plugins.module_utils._backup import BackupJob
from ansible_collections.pgops.postgresql.plugins.module_utils._connection import (
    conninfo_dbname, major_of, quote_ident, quote_literal,
)
from ansible_collections.pgops.postgresql.plugins.module_utils._databases import (
    DB_SETTINGS_SQL, drop_database, end_sessions, list_databases, read_objects,
)
from ansible_collections.pgops.postgresql.plugins.module_utils._errors import PgOpsError
from ansible_collections.pgops.postgresql.plugins.module_utils._fsutil import (
    COLLECTION_VERSION, DirLock, append_log_line, disk_space, sha256_file, write_json_atomic,
)
from ansible_collections.pgops.postgresql.plugins.module_utils._pipeline import (
    Stage, run_checked, run_drained, run_framed, run_pipeline, sha256_tree,
)
from ansible_collections.pgops.postgresql.plugins.module_utils._steps import (
    CHOOSE, FILE_CHECK, GUARD, INTERNAL, LOCK, OPTIONS, PRE_RESTORE_BACKUP, PREFLIGHT, RESTORE, RESTORE_STEPS,
    ROLLBACK, SCRATCH, SETTINGS, SWAP, VERIFY, job_step,
)

NAMEDATALEN = 63
ROLLBACK_TAG = '__rollback_'
RESTORE_TAG = '__restore_'
DECOMPRESS = {'zstd': ['zstd', '-q', '-d', '-c'], 'gzip': ['gzip', '-d', '-c'], 'lz4': ['lz4', '-q', '-d', '-c']}
TEST_STREAM = {'zstd': ['zstd', '-q', '-t'], 'gzip': ['gzip', '-t'], 'lz4': ['lz4', '-q', '-t']}
SET_KEYS = ('partitioned_tables', 'views', 'materialized_views', 'sequences', 'functions', 'schemas', 'extensions')
BTREE_CHECK_SQL = """
SELECT count(@SCHEMA@.bt_index_check(c.oid))::text FROM pg_index i
JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am am ON am.oid = c.relam
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE am.amname = 'btree' AND c.relkind = 'i' AND c.relpersistence <> 't' AND i.indisready AND i.indisvalid
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%'
"""
AMCHECK_SCHEMA = 'pgops_amcheck'   # amcheck's own schema in the scratch database: a database may have no public

# settings whose value is a list: pg_dump quotes each element (GUC_LIST_QUOTE)
LIST_SETTINGS = ('search_path', 'temp_tablespaces', 'session_preload_libraries', 'local_preload_libraries',
                 'shared_preload_libraries')


GUC_NAME_RE = re.compile(r'^[A-Za-z_][A-Za-z0-9_.]*$')


def _setting_value(name, value):
    if name.lower() not in LIST_SETTINGS:
        return quote_literal(value)
    # the stored text quotes elements like identifiers ("a,b", public): csv reads that quoting exactly
    parts = next(csv.reader([value], skipinitialspace=True))
    return ', '.join(quote_literal(part.strip()) for part in parts)


def database_settings_sql(facts, dest, comment=True):
    """Statements giving database ``dest`` the privileges, settings, connection limit and comment in ``facts``
    (without the comment when ``comment`` is false: a scratch database keeps its pgops mark until it is renamed)."""
    db = quote_ident(dest)
    out = []
    if facts.get('acl') is not None:
        out.append('REVOKE ALL ON DATABASE %s FROM PUBLIC' % db)
        for a in facts['acl']:
            out.append('GRANT %s ON DATABASE %s TO %s%s' % (
                a['privilege'], db, quote_ident(a['grantee']) if a['grantee'] else 'PUBLIC',
                ' WITH GRANT OPTION' if a['grantable'] else ''))
    for s in facts.get('settings') or []:
        for item in s['config'] or []:
            name, dummy, value = item.partition('=')
            target = ('ROLE %s IN DATABASE %s' % (quote_ident(s['role']), db)) if s['role'] else 'DATABASE %s' % db
            if not GUC_NAME_RE.match(name):
                raise PgOpsError('unexpected setting name %r on the database' % name, step=SETTINGS)
            out.append('ALTER %s SET %s TO %s' % (target, name, _setting_value(name, value)))
    if facts.get('connlimit') is not None and facts['connlimit'] != -1:
        out.append('ALTER DATABASE %s CONNECTION LIMIT %d' % (db, facts['connlimit']))
    if comment and facts.get('comment') is not None:
        out.append('COMMENT ON DATABASE %s IS %s' % (db, quote_literal(facts['comment'])))
    return out


def _now():
    return datetime.datetime.now().astimezone().replace(microsecond=0)


def derived_name(base, suffix):
    """``base + suffix`` within PostgreSQL's 63-byte limit: a long base is cut and given a short hash."""
    full = base + suffix
    if len(full.encode('utf-8')) <= NAMEDATALEN:
        return full
    digest = hashlib.sha1(base.encode('utf-8')).hexdigest()[:6]
    room = NAMEDATALEN - len(suffix.encode('utf-8')) - 7
    cut = base.encode('utf-8')[:room].decode('utf-8', 'ignore')
    return '%s~%s%s' % (cut, digest, suffix)


def rollback_prefix(target):
    """Every rollback name of ``target`` starts with this (the cut, if any, depends only on the suffix length)."""
    return derived_name(target, ROLLBACK_TAG + '00000000_000000')[:-15]


ROW_COUNTS = 'row_counts'     # the checks compare() reports under (keys of a verification's ``checks``)
OBJECTS = 'objects'
ASSERTIONS = 'assertions'


def compare(meta, found):
    """Differences between the metadata (the dump's snapshot) and a restored database, as (check, message) pairs:
    ``row_counts`` for tables missing, unexpected or with other row counts, ``objects`` for the other object sets."""
    problems = []
    want = dict(('%s.%s' % (t['schema'], t['name']), t['rows']) for t in meta.get('tables') or [])
    got = dict(('%s.%s' % (t['schema'], t['name']), t['rows']) for t in found.get('tables') or [])
    missing = sorted(set(want) - set(got))
    extra = sorted(set(got) - set(want))
    if missing:
        problems.append((ROW_COUNTS, 'tables missing: %s' % ', '.join(missing)))
    if extra:
        problems.append((ROW_COUNTS, 'unexpected tables: %s' % ', '.join(extra)))
    wrong = ['%s has %d rows, the backup says %d' % (k, got[k], want[k]) for k in sorted(want)
             if k in got and got[k] != want[k]]
    if wrong:
        problems.append((ROW_COUNTS, 'row counts differ: %s' % '; '.join(wrong)))
    names = meta.get('object_names') or {}
    for key in SET_KEYS:
        if key not in names:
            continue
        a, b = set(names[key]), set(found.get(key) or [])
        if a - b:
            problems.append((OBJECTS, '%s missing: %s' % (key.replace('_', ' '), ', '.join(sorted(a - b)))))
        if b - a and key != 'extensions':
            problems.append((OBJECTS, 'unexpected %s: %s' % (key.replace('_', ' '), ', '.join(sorted(b - a)))))
    return problems


def has_counts(meta):
    """Whether the metadata holds row counts to compare a restore with: the dump's snapshot counts (pg_backup), or
    the counts a first verified restore recorded for a backup that had none (an adopted one)."""
    return meta.get('tables') is not None


def counts_from_restore(found, when):
    """The record of the counts a verified restore found, for a backup without counts of its own: the keys
    pg_backup writes (``tables``, ``rows_total``, ``objects``, ``object_names``), marked as read from a restore."""
    names = dict((k, v) for k, v in found.items() if k not in ('tables', 'indexes'))
    tables = list(found.get('tables') or [])
    return dict(
        tables=tables, rows_total=sum(t['rows'] for t in tables), object_names=names,
        objects=dict(tables=len(tables) + len(names.get('partitioned_tables') or []),
                     views=len(names.get('views') or []), materialized_views=len(names.get('materialized_views') or []),
                     sequences=len(names.get('sequences') or []), functions=len(names.get('functions') or []),
                     indexes=found.get('indexes'), schemas=len(names.get('schemas') or []),
                     extensions=len(names.get('extensions') or [])),
        tables_source='drill', counts_from_restore=True, counts_recorded_at=when)


SCRATCH_MARK = 'pgops:restore '   # a scratch database's comment: ours to drop after an interrupted run
VERSION_RE = re.compile(r'^(\d+)')

# What a failed restore says about the backup. Only evidence about the backup itself marks it failed: its file
# (missing, sha256, unreadable archive), a restore error caused by the dump's content, row counts or objects
# that differ, an assertion that runs and returns false. Anything else - a killed client, a full disk, a lost
# connection, a missing role, an assertion that cannot run - is inconclusive and leaves its verdict as it was.
ENV_SQLSTATE_CLASSES = ('08', '25', '28', '3D', '40', '53', '55', '57', '58', 'F0', 'HV', 'XX')
ENV_SQLSTATES = ('42501',)          # insufficient privilege
ENV_PATTERNS = (
    'no space left on device', 'could not extend file', 'could not write to file', 'out of memory',
    'server closed the connection', 'connection to server', 'terminating connection', 'could not connect',
    'too many connections', 'the database system is', 'canceling statement', 'deadlock detected',
    'could not obtain lock', 'permission denied', 'must be owner', 'could not open extension control file',
    'could not access file', 'error response from daemon', 'no such container', 'is not running',
    'oci runtime', 'cannot connect to the docker daemon', 'read error', 'input/output error',
)
# a truncated compressed stream: zstd says "Read error (39) : premature end", which is about the file's content
# (it ends too early), not an I/O error, although it holds "read error"
CONTENT_PATTERNS = ('premature end',)
MISSING_GLOBAL_RE = re.compile(r'(role|tablespace) "[^"]*" does not exist')
SQLSTATE_RE = re.compile(r'(?:ERROR|FATAL|PANIC):\s+([0-9A-Z]{5}):')
KILLED_CODES = (128 + signal.SIGKILL, 128 + signal.SIGTERM, 128 + signal.SIGINT, 128 + signal.SIGHUP)
RUNTIME_CODES = (125, 126, 127)     # docker/podman exec could not run the command


class BackupFault(PgOpsError):
    """A failure that is evidence about the backup itself: the backup's verdict becomes ``failed``."""


def judge(err):
    """``err`` as a BackupFault when its cause is the backup's content, unchanged (inconclusive) otherwise."""
    stages = getattr(err, 'stages', None)
    if not stages:
        return err                 # a program that could not start, a session error: nothing about the backup
    by_age = _judge_age(err, stages)
    if by_age is not None:
        return by_age
    for name, rc, text in stages:
        low = text.lower()
        if rc is None or rc < 0 or rc in KILLED_CODES or rc in RUNTIME_CODES:
            return err
        if name in ('zstd', 'gzip', 'lz4') and any(p in low for p in CONTENT_PATTERNS):
            continue
        if any(p in low for p in ENV_PATTERNS) or MISSING_GLOBAL_RE.search(text):
            return err
        if name == 'psql' and rc in (1, 2):
            return err             # psql: 2 = the connection was lost, 1 = a fatal error of its own
        for code in SQLSTATE_RE.findall(text):
            if code[:2] in ENV_SQLSTATE_CLASSES or code in ENV_SQLSTATES:
                return err
    fault = BackupFault(err.msg, step=err.step)
    fault.stages = stages
    return fault


def _judge_age(err, stages):
    """The verdict when ``age -d`` failed: its failure decides (the stages after it only saw its stream end).
    A key that does not fit, or an identity that cannot be read, says nothing about the backup (inconclusive);
    a ciphertext that does not decrypt - after its sha256 matched the metadata - is the backup's fault."""
    for name, rc, text in stages:
        if name != 'age' or rc in (0, None):
            continue
        low = text.lower()
        if (rc < 0 or rc in KILLED_CODES or rc in RUNTIME_CODES or 'identit' in low
                or any(p in low for p in ENV_PATTERNS)):
            return err
        fault = BackupFault(err.msg, step=err.step)
        fault.stages = stages
        return fault
    return None


USER_OBJECTS_SQL = r"""
SELECT (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\_%'
          AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
          AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                          AND d.deptype = 'e'))
     + (SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
        WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\_%'
          AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid
                          AND d.deptype = 'e'))
"""


def scratch_info(comment):
    """What a scratch database's comment says of the run that made it (backup, target, host, pid, start), or None
    when the database is not one of ours."""
    if not comment or not comment.startswith(SCRATCH_MARK):
        return None
    try:
        info = json.loads(comment[len(SCRATCH_MARK):])
    except ValueError:
        return None
    return info if isinstance(info, dict) and info.get('target') else None


def restore_lock_path(directory, target):
    """The lock every restore (and rollback) of ``target`` holds while it runs."""
    return os.path.join(directory, '.%s.restore.lock' % catalog.slug(target))


def audit_interrupted(log, info, who_entry, cleaned_by):
    """The audit line of a run that was killed before it could write its own (once per run: a run already
    audited as interrupted, by its run marker or by its scratch database, is not audited again)."""
    if _audited_interrupted(log, info):
        return
    if info.get('scratch_database'):
        what = '%s dropped its scratch database %s' % (cleaned_by, info.get('scratch_database'))
    else:
        what = '%s found it had created no scratch database' % cleaned_by
    append_log_line(log, json.dumps(dict(
        who=who_entry, time=info.get('started'), mode=info.get('mode'), backup_id=info.get('backup_id'),
        database=info.get('database'), target=info.get('target'), result='interrupted', context={},
        error='the run (pid %s on %s) ended without finishing; %s at %s'
              % (info.get('pid'), info.get('host'), what, _now().isoformat())),
        sort_keys=True, ensure_ascii=False))


def _audited_interrupted(log, info):
    try:
        with open(log, 'rb') as f:
            lines = f.read().decode('utf-8', 'replace').splitlines()
    except (IOError, OSError):
        return False
    tag = '(pid %s on %s)' % (info.get('pid'), info.get('host'))
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if (isinstance(entry, dict) and entry.get('result') == 'interrupted' and entry.get('time') == info.get('started')
                and tag in (entry.get('error') or '')):
            return True
    return False


def run_marker_path(directory, target):
    """The marker a restore (or rollback) of ``target`` keeps while it runs: left behind only by a killed run."""
    return os.path.join(directory, '.%s.restore.running' % catalog.slug(target))


def scratch_prefix(target):
    """Every scratch name of ``target`` starts with this."""
    return derived_name(target, RESTORE_TAG + '00000000_000000')[:-15]


def locale_clause(facts, server_major):
    """CREATE DATABASE options giving a database the locale in ``facts`` (an existing database's or a backup's)."""
    out = ''
    if facts.get('collate'):
        out += ' LC_COLLATE %s LC_CTYPE %s' % (quote_literal(facts['collate']), quote_literal(facts['ctype']))
    provider = {'c': 'libc', 'i': 'icu', 'b': 'builtin'}.get(facts.get('locale_provider'))
    if provider and server_major and server_major >= 15:
        out += ' LOCALE_PROVIDER %s' % provider   # explicit: template0 may have another provider
        if facts.get('locale') and provider != 'libc':
            out += ' %s_LOCALE %s' % (provider.upper(), quote_literal(facts['locale']))
        if facts.get('icu_rules') and provider == 'icu':
            out += ' ICU_RULES %s' % quote_literal(facts['icu_rules'])
    return out


class RestoreJob(object):
    """One run of pg_restore_verified. ``run()`` decides (choose, guard, plan), then acts attempt by attempt."""

    def __init__(self, module, target, opts):
        self.module = module
        self.target = target
        self.o = opts
        self.check_mode = module.check_mode
        self.path = os.path.abspath(opts['path'])
        self.phases = {}
        self.checks = {}
        self.warnings = []
        self.attempts = []
        self.interrupted = []      # audit entries of earlier runs whose scratch database this run cleaned
        self.t0 = time.time()
        self.started = _now()
        self.result = dict(changed=False)
        self.pre_restore_done = False
        self.identity_file = None  # the age identity for encrypted backups (written 0600 from age_identity)
        self.identity_tmp = None
        self.found_counts = None   # counts a restore found for a backup without any (recorded when it passed)
        self.stage = PREFLIGHT   # the step a session error (a lost connection, a refused query) belongs to

    # -- small helpers ------------------------------------------------------------------------------------
    def _phase(self, name, started):
        self.phases[name] = round(time.time() - started, 3)

    def admin(self):
        return self.target.psql(self.o.get('maintenance_db') or 'postgres')

    def _db_info(self, admin, name):
        return admin.query_json(
            "SELECT jsonb_build_object('owner', pg_get_userbyid(datdba), 'collate', datcollate, 'ctype', datctype,"
            " 'locale_provider', to_jsonb(d) ->> 'datlocprovider',"
            " 'locale', coalesce(to_jsonb(d) ->> 'datlocale', to_jsonb(d) ->> 'daticulocale'),"
            " 'icu_rules', to_jsonb(d) ->> 'daticurules',"
            " 'encoding', pg_encoding_to_char(encoding), 'allow', datallowconn,"
            " 'comment', shobj_description(oid, 'pg_database'),"
            " 'prepared', (SELECT coalesce(jsonb_agg(gid), '[]') FROM pg_prepared_xacts p WHERE p.database = datname)"
            ")::text FROM pg_database d WHERE datname = %s" % quote_literal(name))

    def copy_database_settings(self, admin, source, dest):
        """Carry what pg_dump without --create leaves out from the replaced database to its replacement:
        database privileges, per-database (and per-role-in-database) settings, connection limit and comment.
        Without this a restore could reopen a database to PUBLIC or lose the application's search_path."""
        t = time.time()
        facts = admin.query_json(DB_SETTINGS_SQL % quote_literal(source))
        if facts is None:
            raise PgOpsError('database %s disappeared during the restore' % source, step=SETTINGS)
        statements = database_settings_sql(facts, dest, comment=False)
        try:
            for sql in statements:
                admin.query(sql)
        except PgOpsError as e:
            raise PgOpsError('carrying the database settings of %s over to %s failed: %s' % (source, dest, e.msg),
                             step=SETTINGS)
        self.checks['database_settings'] = '%d statements' % len(statements)
        self._phase('settings', t)

    def apply_recorded_settings(self, admin, meta, dest):
        """The database settings recorded with the backup, on ``dest``. One that cannot be applied (a role that
        does not exist on this server) is a warning: the restored data is good all the same."""
        facts = meta.get('database_settings')
        if not facts:
            return admin
        applied = 0
        for sql in database_settings_sql(facts, dest, comment=False):
            try:
                admin.query(sql)
                applied += 1
            except PgOpsError as e:
                self.warnings.append('a database setting of the backup could not be applied (%s): %s' % (sql, e.msg))
                admin = self.admin()   # psql stopped on the error
        self.checks['database_settings'] = '%d statements' % applied
        return admin

    # -- deciding -----------------------------------------------------------------------------------------
    def source_database(self):
        """The database whose backups to choose from: ``database``, else (replace) the target itself."""
        mode, database, target = self.o['mode'], self.o.get('database'), self.o.get('target')
        backup_id = self.o.get('backup_id') or 'latest'
        if database:
            return database
        if mode == 'replace' and target:
            return target          # never another database's backup: a replace across databases names its source
        if mode in ('replace', 'new') and backup_id in catalog.CHOOSERS:
            raise PgOpsError('mode=%s with backup_id=%s needs database, the database whose backups to restore'
                             % (mode, backup_id), step=OPTIONS)
        return None

    def candidates(self, database):
        entries, warnings = catalog.load_catalog(self.path)
        self.warnings += warnings
        backup_id = self.o.get('backup_id') or 'latest'
        try:
            found = catalog.backup_candidates(entries, database, backup_id, self.o.get('before'),
                                              self.o.get('max_age_hours'))
        except catalog.CatalogError as e:
            msg = str(e)
            if database and backup_id not in catalog.CHOOSERS:
                others = sorted(set(m['database'] for m in entries if m.get('id') == backup_id
                                    and m.get('database') != database and m.get('status') == 'success'))
                if others:
                    msg += ' (backup %s is of database %s: to restore it into %s, set database: %s)' % (
                        backup_id, ', '.join(others), self.o.get('target') or database, others[0])
            raise PgOpsError(msg, step=CHOOSE)
        if not self.o.get('fallback') or backup_id not in catalog.CHOOSERS:
            return found[:1]
        return found[:max(1, int(self.o.get('max_attempts') or 1))]

    def holds_data(self, target_db):
        """Whether ``target_db`` holds anything of its own: a relation or function outside the system schemas that
        no extension brought. A database the image's entrypoint just created empty (POSTGRES_DB on a new volume)
        holds nothing to protect."""
        with self.target.psql(target_db) as s:
            return s.query(USER_OBJECTS_SQL)[0] != '0'

    def guard(self, target_db, exists):
        """Production guard: replacing or rolling back a protected database that holds data needs confirm."""
        if not exists or target_db not in (self.o.get('protected_databases') or []) or self.o.get('confirm'):
            return
        if not self.holds_data(target_db):
            self.checks['guard'] = '%s is protected but empty: nothing to protect' % target_db
            return
        raise PgOpsError(
            '%s is a protected database (protected_databases): mode=%s would replace it and needs confirm=true. '
            'Test the backup first (mode=new, target=%s_check), then confirm'
            % (target_db, self.o['mode'], target_db), step=GUARD)

    def server_checks(self, admin, meta, target_db, info):
        """Before any work: a server new enough for the dump, no prepared transaction on the target, free space."""
        server_major = self.target.server_major
        m = VERSION_RE.match(str(meta.get('server_version') or ''))
        if m and server_major and int(m.group(1)) > server_major:
            raise PgOpsError('backup %s is of PostgreSQL %s; this server is %s: restore it on %s or newer'
                             % (meta['id'], meta.get('server_version'), server_major, m.group(1)), step=PREFLIGHT)
        if info and info.get('prepared') and self.o['mode'] == 'replace':
            raise PgOpsError('%s has prepared transactions (%s): the swap would wait for them forever; COMMIT PREPARED '
                             'or ROLLBACK PREPARED them first' % (target_db, ', '.join(info['prepared'])),
                             step=PREFLIGHT)
        ratio = float(self.o.get('server_free_space_ratio') or 0)
        need = int((meta.get('database_size') or 0) * ratio)
        if not need:
            return
        free, where = self.server_free_bytes(admin)
        if free is None:
            self.warnings.append('could not check the free space on the server (%s): the restore needs about %d MiB'
                                 % (where, need >> 20))
            return
        self.checks['server_free_space'] = '%d MiB free, %d MiB wanted' % (free >> 20, need >> 20)
        if free < need:
            raise PgOpsError(
                'not enough free space for the scratch database on the server: %d MiB free in %s, %d MiB wanted '
                '(backup %s of a %d MiB database x server_free_space_ratio %s); the target was not touched'
                % (free >> 20, where, need >> 20, meta['id'], (meta.get('database_size') or 0) >> 20, ratio),
                step=PREFLIGHT)

    def server_free_bytes(self, admin):
        """Free bytes where the server keeps its data, and where that is; (None, why) when it can't be seen."""
        datadir = (admin.query(
            "SELECT CASE WHEN (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) OR "
            "pg_has_role(current_user, 'pg_read_all_settings', 'USAGE') THEN current_setting('data_directory') "
            "ELSE '' END") or [''])[0]
        if not datadir:
            return None, 'data_directory is not readable by %s (superuser or pg_read_all_settings)' % self.target.user
        if self.target.container:
            try:
                out = run_checked(self.target.container_prefix() + ['df', '-P', '-k', datadir], self.target.env(),
                                  'df in the container', PREFLIGHT)
                return int(out.strip().splitlines()[-1].split()[3]) * 1024, '%s:%s' % (self.target.container, datadir)
            except (PgOpsError, ValueError, IndexError) as e:
                return None, 'df in container %s: %s' % (self.target.container, e)
        host = self.target.host or ''
        if (not host or host.startswith('/') or host in ('localhost', '127.0.0.1', '::1')) and os.path.isdir(datadir):
            return disk_space(datadir)[0], datadir
        return None, 'the data directory %s is not on this host' % datadir

    # -- encryption -----------------------------------------------------------------------------------------
    @staticmethod
    def recipients(meta):
        return list((meta.get('encryption') or {}).get('recipients') or [])

    def identity(self, meta):
        """Path of the age identity for an encrypted backup; a clear error when none was given."""
        if self.identity_file:
            return self.identity_file
        if self.o.get('age_identity_file'):
            path = os.path.abspath(self.o['age_identity_file'])
            if not os.path.isfile(path) or not os.access(path, os.R_OK):
                raise PgOpsError('age_identity_file: %s is not a readable file (backup %s is encrypted to %s)'
                                 % (path, meta['id'], ', '.join(self.recipients(meta))), step=OPTIONS)
            self.identity_file = path
        elif self.o.get('age_identity'):
            fd, path = tempfile.mkstemp(prefix='pgops-identity-', suffix='.txt', dir=self.module.tmpdir)
            self.identity_tmp = path
            with os.fdopen(fd, 'w') as f:
                os.fchmod(f.fileno(), 0o600)
                f.write(self.o['age_identity'].strip() + '\n')
            self.identity_file = path
        else:
            raise PgOpsError('backup %s is encrypted with age to %s: set age_identity_file (or age_identity) to an '
                             'identity of one of these recipients; nothing was created'
                             % (meta['id'], ', '.join(self.recipients(meta)) or 'unknown recipients'), step=OPTIONS)
        return self.identity_file

    def remove_identity(self):
        if self.identity_tmp:
            with suppress(OSError):
                os.unlink(self.identity_tmp)
            self.identity_tmp = self.identity_file = None

    def decryptor(self, meta):
        """The ``age -d`` stage reading the ciphertext on stdin, for an encrypted backup (None otherwise)."""
        if not meta.get('encrypted'):
            return None
        age = self.module.get_bin_path('age', required=True)
        return Stage('age', [age, '--decrypt', '-i', self.identity(meta)])

    def _check_identity(self, meta):
        """Refuse an identity none of whose public keys is a recipient of the backup (inconclusive: a wrong key
        says nothing about the backup). An identity age-keygen cannot read is left to ``age -d`` to judge."""
        keygen = self.module.get_bin_path('age-keygen')
        recipients = self.recipients(meta)
        if not keygen or not recipients:
            return
        try:
            out = run_checked([keygen, '-y', self.identity(meta)], None, 'age-keygen', FILE_CHECK)
        except PgOpsError:
            return
        mine = [line.strip() for line in out.splitlines() if line.strip()]
        if mine and not set(mine) & set(recipients):
            raise PgOpsError('the age identity given (public key %s) is not one of the recipients of backup %s (%s): '
                             'use the identity of one of them; this says nothing about the backup'
                             % (', '.join(mine), meta['id'], ', '.join(recipients)), step=FILE_CHECK)
        self.checks['age_identity'] = 'matches a recipient'

    # -- acting -------------------------------------------------------------------------------------------
    def check_file(self, meta):
        """sha256 against the metadata and a readable format, before anything is touched. An encrypted backup is
        decrypted in full into the format test (proving the ciphertext's integrity too), never onto disk."""
        t = time.time()
        path = os.path.join(self.path, meta['file'])
        if meta.get('encrypted'):
            self.identity(meta)     # no identity: refused before the file is even read
        if not os.path.exists(path):
            raise BackupFault('backup file %s is missing' % path, step=FILE_CHECK)
        if meta['format'] == 'directory':
            size, digest, dummy = sha256_tree(path)
        else:
            size, digest = sha256_file(path)
        if digest != meta['sha256'] or size != meta['size']:
            raise BackupFault('backup %s is damaged: sha256 %s and size %d, the metadata says %s and %d'
                              % (meta['file'], digest, size, meta['sha256'], meta['size']), step=FILE_CHECK)
        self.checks['sha256'] = 'passed'
        env = self.target.env()
        if meta.get('encrypted'):
            self._check_identity(meta)
        try:
            age = self.decryptor(meta)
            if age is not None:
                if meta['format'] != 'plain':
                    # pg_restore --list reads the table of contents only: the rest is drained through age
                    run_drained([age], Stage('pg_restore', self.target.argv_noconn(
                        'pg_restore', ['--list'], interactive=bool(self.target.container))), env, FILE_CHECK, path)
                else:
                    stages = [age]
                    if meta['compression'] != 'none':
                        argv = list(TEST_STREAM[meta['compression']])
                        argv[0] = self.module.get_bin_path(argv[0], required=True)
                        stages.append(Stage(os.path.basename(argv[0]), argv + ['-']))
                    run_pipeline(stages, env, FILE_CHECK, stdin_path=path)
                self.checks['decryption'] = 'passed'
            elif meta['format'] == 'plain':
                if meta['compression'] != 'none':
                    argv = list(TEST_STREAM[meta['compression']])
                    argv[0] = self.module.get_bin_path(argv[0], required=True)
                    run_pipeline([Stage(os.path.basename(argv[0]), argv + [path])], env, FILE_CHECK)
            elif meta['format'] == 'directory' or not self.target.container:
                run_pipeline([Stage('pg_restore', self.target.argv_noconn('pg_restore', ['--list', path]))], env,
                             FILE_CHECK)
            else:
                run_pipeline([Stage('pg_restore', self.target.argv_noconn('pg_restore', ['--list'], interactive=True))],
                             env, FILE_CHECK, stdin_path=path)
        except PgOpsError as e:
            e.step = FILE_CHECK
            judged = judge(e)
            if meta.get('encrypted') and not isinstance(judged, BackupFault):
                judged.msg += ' (backup %s is encrypted to %s)' % (meta['id'], ', '.join(self.recipients(meta)))
            raise judged
        self.checks['format'] = 'passed'
        self._phase('file_check', t)

    def pre_restore_backup(self, target_db, meta):
        """A backup of the target before it is replaced; encrypted to the recipients of the backup being
        restored when that one is encrypted, so a restore never leaves a clear copy of an encrypted database."""
        t = time.time()
        opts = dict(dest=self.path, kind='pre_restore', label=None, format='plain', compression='zstd',
                    compression_level=None, jobs=1, owner=self.o.get('backup_owner'), group=self.o.get('backup_group'),
                    free_space_ratio=self.o.get('free_space_ratio', 0.5), lock_timeout=self.o.get('lock_timeout', 300),
                    log_file=self.o.get('backup_log_file'), databases=[target_db], globals=False, all_databases=False,
                    encrypt_recipients=self.recipients(meta) if meta.get('encrypted') else None)
        job = BackupJob(self.module, self.target, opts)
        entry = job.backup_one(target_db)
        self.warnings += job.warnings
        if entry['status'] != 'success':
            raise PgOpsError('the pre_restore backup of %s failed: %s' % (target_db, entry.get('error')),
                             step=PRE_RESTORE_BACKUP)
        self._phase('pre_restore_backup', t)
        self.result['pre_restore_backup'] = dict((k, entry.get(k))
                                                 for k in ('id', 'path', 'size', 'sha256', 'encrypted'))

    def restore_into(self, meta, scratch):
        t = time.time()
        path = os.path.join(self.path, meta['file'])
        self.target.options = dict(self.o.get('session_settings') or {})
        try:
            env = self.target.env()
            self._restore_with(meta, scratch, path, env)
        except PgOpsError as e:
            e.step = RESTORE
            raise judge(e)
        finally:
            self.target.options = {}
        self._phase('restore', t)

    def _restore_with(self, meta, scratch, path, env):
        dbarg = conninfo_dbname(scratch)
        if meta['format'] == 'plain':
            # BEGIN and COMMIT are ours: COMMIT is sent only after the whole dump went through and every stage
            # exited 0, so a killed run or a failed stage can never commit a partial restore
            psql = Stage('psql', self.target.argv('psql', ['-X', '-w', '-q', '-v', 'ON_ERROR_STOP=1', '-v',
                                                           'VERBOSITY=verbose', '-o', '/dev/null', '-d', dbarg],
                                                  interactive=True))
            producers = []
            age = self.decryptor(meta)
            if age is not None:
                producers.append(age)     # age -d | zstd -d | psql: a failing age means no COMMIT is sent
            if meta['compression'] != 'none':
                argv = list(DECOMPRESS[meta['compression']])
                argv[0] = self.module.get_bin_path(argv[0], required=True)
                producers.append(Stage(os.path.basename(argv[0]), argv))
            run_framed(producers, psql, env, RESTORE, b'BEGIN;\n', b'\nCOMMIT;\n', stdin_path=path)
        else:
            args = ['--exit-on-error', '--no-password', '-d', dbarg]
            if self.o.get('no_owner'):
                args += ['--no-owner', '--no-privileges']
            # one pg_restore job (a container or an encrypted archive read from stdin, or jobs: 1) restores in one
            # transaction: killed, or reading a stream that ends early, it commits nothing. Parallel jobs commit
            # each item as they finish it; a killed run's scratch database is dropped by the next one.
            single = ['--single-transaction']
            age = self.decryptor(meta)
            if age is not None:
                # age -d | pg_restore reading stdin (natively and in a container): the clear dump never reaches
                # a disk, and pg_restore -j needs a seekable file, so an encrypted archive is restored by one job.
                # Drained: age authenticates the whole file even if pg_restore stops reading before its end.
                run_drained([age], Stage('pg_restore', self.target.argv(
                    'pg_restore', single + args, interactive=bool(self.target.container))), env, RESTORE, path)
                return
            if self.target.container:
                if meta['format'] == 'directory':
                    raise PgOpsError('a directory-format backup cannot be restored with container; restore it '
                                     'natively', step=OPTIONS)
                run_pipeline([Stage('pg_restore', self.target.argv('pg_restore', single + args, interactive=True))],
                             env, RESTORE, stdin_path=path)
            else:
                jobs = int(self.o.get('jobs') or 1)
                parallel = ['-j', str(jobs)] if jobs > 1 else single
                run_pipeline([Stage('pg_restore', self.target.argv('pg_restore', parallel + args + [path]))],
                             env, RESTORE)

    def verify(self, meta, scratch):
        """Against the metadata: a difference is the backup's fault; an assertion that cannot run, or amcheck
        finding a damaged index just built by this server, is not (inconclusive)."""
        t = time.time()
        with self.target.psql(scratch) as s:
            found = read_objects(s, meta.get('format_version') or 1)
            if has_counts(meta):
                problems = compare(meta, found)
                for check in (ROW_COUNTS, OBJECTS):
                    self.checks[check] = 'failed' if any(c == check for c, dummy in problems) else 'passed'
            else:
                # no counts to compare with (an adopted backup before its first drill): it must restore and hold
                # tables; the counts found are recorded with the verification (_attempted), never taken as passed
                problems = [] if found.get('tables') else [(ROW_COUNTS, (
                    'backup %s has no recorded row counts and its restore holds no table: nothing proves it holds '
                    'the data' % meta['id']))]
                self.checks[ROW_COUNTS] = 'failed' if problems else 'recorded (no counts to compare with)'
                self.checks[OBJECTS] = 'recorded (no object names to compare with)'
                if not problems:
                    self.found_counts = counts_from_restore(found, _now().isoformat())
            self.checks['tables_verified'] = len(found.get('tables') or [])
            self.checks['rows_verified'] = sum(x['rows'] for x in found.get('tables') or [])
            for i, sql in enumerate(self.o.get('assertions') or []):
                try:
                    lines = s.query(sql)
                except PgOpsError as e:
                    self.checks[ASSERTIONS] = 'error'
                    raise PgOpsError('assertion %d (%s) could not run: %s; this says nothing about the backup (fix '
                                     'the assertion)' % (i + 1, sql, e.msg), step=VERIFY)
                if not lines or lines[0].strip() not in ('t', 'true'):
                    problems.append((ASSERTIONS, 'assertion %d is not true: %s (returned %r)'
                                     % (i + 1, sql, lines[0] if lines else None)))
            if self.o.get('assertions'):
                self.checks[ASSERTIONS] = 'failed' if any(c == ASSERTIONS for c, dummy in problems) else 'passed'
            amcheck = []
            if self.o.get('amcheck'):
                self.checks['amcheck'] = self._amcheck(s, amcheck)
        if problems:
            raise BackupFault('verification of %s against backup %s failed: %s'
                              % (scratch, meta['id'], '; '.join([m for dummy, m in problems] + amcheck)), step=VERIFY)
        if amcheck:
            raise PgOpsError('verification of %s failed: %s (an index this server just built: check the server)'
                             % (scratch, '; '.join(amcheck)), step=VERIFY)
        self._phase('verify', t)

    def _amcheck(self, s, problems):
        available = s.query("SELECT count(*) FROM pg_available_extensions WHERE name = 'amcheck'")
        if not available or available[0] != '1':
            return 'unavailable'
        schema = s.query("SELECT quote_ident(n.nspname) FROM pg_extension e JOIN pg_namespace n "
                         "ON n.oid = e.extnamespace WHERE e.extname = 'amcheck'")
        had = bool(schema)
        if not had:
            try:
                # its own schema: a database may have no public schema
                s.query('CREATE SCHEMA %s' % AMCHECK_SCHEMA)
                s.query('CREATE EXTENSION amcheck SCHEMA %s' % AMCHECK_SCHEMA)
            except PgOpsError as e:   # not allowed to (no superuser): no check was made, nothing was found
                self.warnings.append('amcheck was not run: CREATE EXTENSION amcheck failed: %s' % e.msg)
                return 'unavailable (CREATE EXTENSION amcheck failed)'
        try:
            checked = s.query(BTREE_CHECK_SQL.replace('@SCHEMA@', schema[0] if had else AMCHECK_SCHEMA))
            if not had:
                s.query('DROP EXTENSION amcheck')
                s.query('DROP SCHEMA %s' % AMCHECK_SCHEMA)
        except PgOpsError as e:
            problems.append('amcheck found corruption: %s' % e.msg)
            return 'failed'
        return 'passed (%s B-tree indexes)' % checked[0]

    def swap(self, admin, target_db, scratch, rollback_name, comment=False):
        """End the target's sessions and rename target -> rollback, scratch -> target in one transaction.

        ``comment`` (a SQL literal or NULL) replaces the incoming database's comment in the same transaction: a
        scratch database keeps its pgops mark until the swap commits, so a run killed before that leaves a
        scratch database the next run recognises and drops."""
        t = time.time()
        terminated = 0
        for attempt in range(10):
            terminated += end_sessions(admin, target_db)
            try:
                admin.query('BEGIN')
                admin.query('ALTER DATABASE %s RENAME TO %s' % (quote_ident(target_db), quote_ident(rollback_name)))
                admin.query('ALTER DATABASE %s RENAME TO %s' % (quote_ident(scratch), quote_ident(target_db)))
                if comment is not False:
                    admin.query('COMMENT ON DATABASE %s IS %s' % (quote_ident(target_db), comment))
                admin.query('COMMIT')
                break
            except PgOpsError as e:
                # psql stopped on the error (ON_ERROR_STOP): nothing was renamed; retry with a new session
                admin.close()
                if attempt == 9 or 'being accessed by other users' not in e.msg:
                    raise PgOpsError('swapping %s and %s failed: %s' % (scratch, target_db, e.msg), step=SWAP)
                admin = self.admin()
                time.sleep(0.2)
        self.result['sessions_terminated'] = terminated
        self._phase('swap', t)
        return admin

    def clean_leftovers(self, admin, target_db, scratch):
        """Drop the scratch databases of earlier runs of ours on this target that were killed (we hold the
        target's restore lock, so none of them is running); refuse a database of that name we did not make."""
        for name in list_databases(admin, prefix=scratch_prefix(target_db)):
            comment = admin.query_json("SELECT to_jsonb(shobj_description(oid, 'pg_database'))::text FROM pg_database "
                                       "WHERE datname = %s" % quote_literal(name))
            info = scratch_info(comment)
            if not info or info.get('target') != target_db:
                if name == scratch:
                    raise PgOpsError('a database named %s exists and was not made by pgops (no pgops comment): '
                                     'refusing to drop it; rename or drop it yourself' % name, step=SCRATCH)
                continue
            drop_database(admin, name)
            # the same killed run may be known by its run marker already: keep the entry naming its scratch
            self.interrupted = [i for i in self.interrupted if (i.get('pid'), i.get('host'), i.get('started')) !=
                                (info.get('pid'), info.get('host'), info.get('started'))]
            self.interrupted.append(dict(info, scratch_database=name))
            self.warnings.append('dropped %s, left by an interrupted restore (backup %s, started %s on %s, pid %s)'
                                 % (name, info.get('backup_id'), info.get('started'), info.get('host'), info.get('pid')))

    # -- the run ------------------------------------------------------------------------------------------
    def run(self):
        mode = self.o['mode']
        if mode == 'rollback':
            target_db = self.o.get('target') or self.o.get('database')
            if not target_db:
                raise PgOpsError('mode=rollback needs target (or database): the database to roll back', step=OPTIONS)
            self.result.update(mode='rollback', target=target_db)
            self.target.check_container()
            self.stage = ROLLBACK
            try:
                return self._locked(target_db, self.rollback, target_db)
            except PgOpsError as e:
                e.step = job_step(e.step, RESTORE_STEPS, ROLLBACK)
                raise
        if mode == 'new' and not self.o.get('target'):
            raise PgOpsError('mode=new needs target, the name of the new database', step=OPTIONS)
        database = self.source_database()
        self.target.check_container()
        candidates = self.candidates(database)
        first = candidates[0]
        target_db = self.o.get('target') or first['database']
        self.result.update(mode=mode, target=target_db)
        if len(candidates) > 1:
            self.result['fallback_candidates'] = [m['id'] for m in candidates[1:]]
        return self._locked(target_db, self._attempts, candidates, target_db)

    def _locked(self, target_db, fn, *args):
        if self.check_mode:
            return fn(*args)
        # one restore of a target at a time: a drill and a replace of the same backup share the scratch name,
        # and a rollback must not run in the middle of a replace
        with DirLock(restore_lock_path(self.path, target_db), self.o.get('lock_timeout', 300),
                     'restores of %s' % target_db):
            # under the lock, a marker left behind is a killed run's, whatever step it was killed at (before a
            # scratch database existed too): it is audited as interrupted by _audit
            marker = run_marker_path(self.path, target_db)
            with suppress(IOError, OSError, ValueError):   # no marker (the usual case), or an unreadable one
                with open(marker, 'rb') as f:
                    stale = json.loads(f.read().decode('utf-8'))
                if isinstance(stale, dict) and stale.get('target'):
                    self.interrupted.append(dict(stale, scratch_database=None))
            meta = args[0][0] if args and isinstance(args[0], list) and args[0] else {}
            try:
                write_json_atomic(marker, dict(
                    backup_id=meta.get('id'), database=meta.get('database'), target=target_db, mode=self.o['mode'],
                    host=socket.gethostname(), pid=os.getpid(), started=self.started.isoformat()))
            except (IOError, OSError) as e:   # a full backup directory: the restore itself may still run
                self.warnings.append('could not write the run marker %s: %s' % (marker, e))
            try:
                return fn(*args)
            finally:
                with suppress(OSError):
                    os.unlink(marker)

    def _attempts(self, candidates, target_db):
        """Try the candidates in order; fall back to the next only when a failure is the backup's fault."""
        for n, meta in enumerate(candidates):
            self.checks = {}
            self.found_counts = None
            self.phases = dict((k, v) for k, v in self.phases.items() if k == 'pre_restore_backup')
            try:
                result = self._run(meta, target_db)
                self._attempted(meta, None)
                return result
            except PgOpsError as e:
                e.step = job_step(e.step, RESTORE_STEPS, self.stage)
                self._attempted(meta, e)
                if not isinstance(e, BackupFault) or n == len(candidates) - 1:
                    raise
                self.warnings.append('backup %s of %s failed at %s (%s); falling back to %s'
                                     % (meta['id'], meta['database'], e.step, e.msg, candidates[n + 1]['id']))
        raise PgOpsError('no candidate backup', step=CHOOSE)   # not reached: candidates is never empty

    def _attempted(self, meta, error):
        outcome = 'passed' if error is None else ('failed' if isinstance(error, BackupFault) else 'inconclusive')
        attempt = dict(backup_id=meta['id'], database=meta['database'], result=outcome)
        if error is not None:
            attempt.update(failed_step=error.step, error=error.msg)
        self.attempts.append(attempt)
        if self.check_mode or not self.o.get('record', True) or (error is not None and error.step in NOT_RECORDED):
            return
        entry = dict(verified_at=_now().isoformat(), mode=self.o['mode'], target=self.result.get('target'),
                     result=outcome, rto_seconds=self.result.get('rto_seconds') if error is None else None,
                     checks=self.checks, phases=self.phases, error=error.msg if error else None,
                     failed_step=error.step if error else None, host=socket.gethostname(),
                     collection_version=COLLECTION_VERSION)
        try:
            record_verification(self.path, meta, entry, self.o.get('lock_timeout', 300),
                                counts=self.found_counts if error is None else None)
            self.result['recorded'] = True
            if entry.get('counts_recorded'):
                self.result['counts_recorded'] = True
        except (OSError, ValueError, PgOpsError) as e:
            self.warnings.append('could not record the verification of %s in its metadata: %s' % (meta['id'], e))

    def _run(self, meta, target_db):
        mode = self.o['mode']
        scratch = derived_name(target_db, RESTORE_TAG + meta['id'])
        data_as_of = catalog.data_time(meta)
        self.result.update(backup_id=meta['id'], backup_path=os.path.join(self.path, meta['file']),
                           database=meta['database'], scratch_database=scratch,
                           data_as_of=catalog.iso(data_as_of) if data_as_of else None,
                           data_age_seconds=int((_now() - data_as_of).total_seconds()) if data_as_of else None)
        self.result.pop('rto_seconds', None)
        self.stage = PREFLIGHT
        admin = self.admin()
        try:
            info = self._db_info(admin, target_db)
            self.target.server_major = major_of(admin.query('SHOW server_version_num')[0])
            if mode == 'new' and info:
                raise PgOpsError('target database %s already exists; mode=new restores into a new database only '
                                 '(use mode=replace to replace it)' % target_db, step=OPTIONS)
            if mode == 'replace':
                self.guard(target_db, bool(info))
            rollback_name = derived_name(target_db, ROLLBACK_TAG + catalog.make_id(_now()))
            self.result['plan'] = self._plan(mode, meta, target_db, scratch, rollback_name, info)
            self.server_checks(admin, meta, target_db, info)
            self.check_file(meta)
            if self.check_mode:
                self.result['changed'] = mode != 'test' or bool(self.o.get('record', True))
                return self.result
            self.stage = SCRATCH
            self.clean_leftovers(admin, target_db, scratch)
            if mode == 'replace' and info and self.o.get('pre_restore_backup', True) and not self.pre_restore_done:
                if self.holds_data(target_db):
                    self.pre_restore_backup(target_db, meta)
                else:   # e.g. the empty POSTGRES_DB of a recreated container: nothing to keep
                    self.checks['pre_restore_backup'] = 'skipped: %s holds nothing of its own' % target_db
                self.pre_restore_done = True
            owner = self.o.get('owner') or (info or {}).get('owner') or self.target.user
            self.result['changed'] = True
            create = 'CREATE DATABASE %s TEMPLATE template0 OWNER %s' % (quote_ident(scratch), quote_ident(owner))
            if meta.get('encoding'):
                create += ' ENCODING %s' % quote_literal(meta['encoding'])
            create += locale_clause(info or meta, self.target.server_major)
            mark = SCRATCH_MARK + json.dumps(dict(backup_id=meta['id'], database=meta['database'], target=target_db,
                                                  mode=mode, host=socket.gethostname(), pid=os.getpid(),
                                                  started=self.started.isoformat(), path=self.path),
                                             sort_keys=True)
            try:
                admin.query(create)
                admin.query('COMMENT ON DATABASE %s IS %s' % (quote_ident(scratch), quote_literal(mark)))
            except PgOpsError as e:
                admin = self.admin()
                with suppress(PgOpsError):
                    drop_database(admin, scratch)
                raise PgOpsError('creating the scratch database %s failed: %s' % (scratch, e.msg), step=SCRATCH)
            try:
                schemas = (meta.get('object_names') or {}).get('schemas')
                if schemas is not None and 'public' not in schemas:
                    # template0 has a public schema and pg_dump does not drop it: the database had none
                    with self.target.psql(scratch) as session:
                        session.query('DROP SCHEMA IF EXISTS public')
                self.stage = RESTORE
                self.restore_into(meta, scratch)
                self.stage = VERIFY
                self.verify(meta, scratch)
                self.stage = SWAP
                admin = self._finish(admin, mode, meta, target_db, scratch, rollback_name, info)
            except BaseException:
                # whatever failed, the scratch database goes; the target was not touched before the swap
                with suppress(Exception):   # the session may be broken already; a new one follows
                    admin.close()
                admin = self.admin()
                try:
                    drop_database(admin, scratch)
                except PgOpsError as e:
                    # the server may be down or restarting (the very cause of the failure): the error to report
                    # is the one that stopped the restore; the marked scratch database goes with the next run
                    self.warnings.append('the scratch database %s could not be dropped (%s); the next restore of '
                                         '%s drops it' % (scratch, e.msg, target_db))
                raise
            self.result['rto_seconds'] = round(time.time() - self.t0, 3)
            self.result['result'] = 'passed'
            return self.result
        finally:
            admin.close()

    def _finish(self, admin, mode, meta, target_db, scratch, rollback_name, info):
        t = time.time()
        if mode == 'test':
            drop_database(admin, scratch)
            self._phase('drop_scratch', t)
            return admin
        if mode == 'replace' and info:
            self.copy_database_settings(admin, target_db, scratch)
            # a replace of the same target that finished in the same second took this name already
            taken = set(list_databases(admin, prefix=rollback_prefix(target_db)))
            while rollback_name in taken:
                time.sleep(1.05 - (time.time() % 1))
                rollback_name = derived_name(target_db, ROLLBACK_TAG + catalog.make_id(_now()))
            admin = self.swap(admin, target_db, scratch, rollback_name,
                              comment='NULL' if info.get('comment') is None else quote_literal(info['comment']))
            self.result['rollback_database'] = rollback_name
            return admin
        # new, or replace with no existing target (disaster recovery): the scratch becomes the target, with the
        # database settings recorded in the backup (pg_dump without --create has none of them)
        admin = self.apply_recorded_settings(admin, meta, scratch)
        recorded = (meta.get('database_settings') or {}).get('comment')
        # the mark goes in the transaction that renames: a run killed before it leaves a scratch database pgops drops
        admin.query('BEGIN')
        admin.query('COMMENT ON DATABASE %s IS %s' % (
            quote_ident(scratch), 'NULL' if recorded is None else quote_literal(recorded)))
        admin.query('ALTER DATABASE %s RENAME TO %s' % (quote_ident(scratch), quote_ident(target_db)))
        admin.query('COMMIT')
        self._phase('swap', t)
        return admin

    def _plan(self, mode, meta, target_db, scratch, rollback_name, info):
        steps = ['check sha256 and format of %s' % meta['file']]
        if mode == 'replace' and info and self.o.get('pre_restore_backup', True):
            steps.append('pre_restore backup of %s%s' % (
                target_db, ', encrypted to the same recipients' if meta.get('encrypted') else ''))
        decrypt = ''
        if meta.get('encrypted'):
            decrypt = ', decrypted with age on the fly' + (', one pg_restore job' if meta['format'] != 'plain' else '')
        steps.append('restore backup %s (%s, %s%s) into scratch database %s'
                     % (meta['id'], meta['format'], meta['compression'], decrypt, scratch))
        if has_counts(meta):
            steps.append('verify %d tables / %s rows and the object sets against the metadata'
                         % (len(meta.get('tables') or []), meta.get('rows_total')))
        else:
            steps.append('no row counts are recorded (%s backup): check it restored tables and record the counts '
                         'found in the metadata (tables_source: drill)' % (meta.get('origin') or 'this'))
        if mode == 'test':
            steps.append('drop %s and record the result in the backup metadata' % scratch)
        elif mode == 'new':
            steps.append('rename %s to %s' % (scratch, target_db))
        elif info:
            steps.append('give %s the database-level settings of %s (privileges, ALTER DATABASE/ROLE ... SET, '
                         'connection limit, comment)' % (scratch, target_db))
            steps.append('end sessions on %s, rename it to %s and %s to %s' % (target_db, rollback_name, scratch,
                                                                               target_db))
        else:
            steps.append('%s does not exist: rename %s to it' % (target_db, scratch))
        if self.result.get('fallback_candidates'):
            steps.append('if backup %s proves bad, fall back to %s in this order'
                         % (meta['id'], ', '.join(self.result['fallback_candidates'])))
        return steps

    def rollback(self, target_db):
        admin = self.admin()
        try:
            prefix = rollback_prefix(target_db)
            found = sorted(n for n in list_databases(admin, prefix=prefix)
                           if re.match(r'^\d{8}_\d{6}$', n[len(prefix):]))
            wanted = self.o.get('rollback_database') or (found[-1] if found else None)
            if not wanted or wanted not in found:
                raise PgOpsError('no rollback database of %s%s (found: %s)' % (
                    target_db, ' named %s' % wanted if wanted else '', ', '.join(found) or 'none'), step=ROLLBACK)
            info = self._db_info(admin, target_db)
            self.guard(target_db, bool(info))
            if info and info.get('prepared'):
                raise PgOpsError('%s has prepared transactions (%s): COMMIT PREPARED or ROLLBACK PREPARED them first'
                                 % (target_db, ', '.join(info['prepared'])), step=PREFLIGHT)
            swapped_out = derived_name(target_db, ROLLBACK_TAG + catalog.make_id(_now()))
            if swapped_out == wanted:
                time.sleep(1)
                swapped_out = derived_name(target_db, ROLLBACK_TAG + catalog.make_id(_now()))
            self.result.update(rollback_database=wanted, replaced_database=swapped_out if info else None,
                               plan=['end sessions on %s, rename it to %s and %s to %s'
                                     % (target_db, swapped_out, wanted, target_db)] if info else
                               ['rename %s to %s' % (wanted, target_db)])
            self.result['changed'] = True
            if self.check_mode:
                return self.result
            if info:
                admin = self.swap(admin, target_db, wanted, swapped_out)
            else:
                admin.query('ALTER DATABASE %s RENAME TO %s' % (quote_ident(wanted), quote_ident(target_db)))
            self.result['rto_seconds'] = round(time.time() - self.t0, 3)
            self.result['result'] = 'passed'
            return self.result
        finally:
            admin.close()


NOT_RECORDED = (OPTIONS, GUARD, CHOOSE, LOCK)   # refused before the backup was looked at


def record_verification(path, meta, entry, lock_timeout, counts=None):
    """Append a verification to the backup's metadata (atomically, under the database's backup lock). ``counts``:
    the counts a passed restore found for a backup that had none, recorded unless the record has counts by now."""
    meta_path = meta.get('meta_path') or catalog.meta_path(path, meta['file'].rsplit('.', 1)[0])
    with DirLock(os.path.join(path, catalog.lock_name(meta['database'])), lock_timeout,
                 'database %s in %s' % (meta['database'], path)):
        with open(meta_path, 'rb') as f:
            record = json.loads(f.read().decode('utf-8'))
        record.setdefault('verifications', []).append(entry)
        if counts and not has_counts(record):
            record.update(counts)
            entry['counts_recorded'] = True
        st = os.stat(meta_path)
        write_json_atomic(meta_path, record, st.st_uid, st.st_gid)


def who(audit_user=None):
    try:
        os_user = pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        os_user = str(os.geteuid())
    return dict(os_user=os_user, sudo_user=os.environ.get('SUDO_USER'), user=audit_user or os_user,
                host=socket.gethostname())


SETTING_RE = re.compile(r'^[A-Za-z0-9_.-]+$')


def _audit(p, job, started, result):
    """Every run is audited, refusals included; each scratch database of an interrupted run too."""
    log = p['audit_log'] or os.path.join(job.path, 'restore-audit.jsonl')
    base = dict(who=who(p['audit_user']), context=p['audit_context'] or {}, container=p.get('container'))
    lines = []
    try:
        for info in job.interrupted:
            audit_interrupted(log, info, base['who'], 'the next restore of %s' % info.get('target'))
    except (IOError, OSError) as e:
        job.warnings.append('could not write the audit log %s: %s' % (log, e))
    lines.append(dict(base, time=started.isoformat(), mode=p['mode'],
                      backup_id=result.get('backup_id') or p.get('backup_id'),
                      database=result.get('database') or p.get('database'),
                      target=result.get('target') or p.get('target') or p.get('database'),
                      result=result.get('result'), rto_seconds=result.get('rto_seconds'),
                      data_as_of=result.get('data_as_of'), failed_step=result.get('failed_step'),
                      error=result.get('error'), rollback_database=result.get('rollback_database'),
                      replaced_database=result.get('replaced_database'),
                      attempts=job.attempts if len(job.attempts) > 1 else None,
                      protected=(result.get('target') or p.get('target') or p.get('database'))
                      in (p.get('protected_databases') or []),
                      confirmed=bool(p.get('confirm'))))
    try:
        for line in lines:
            append_log_line(log, json.dumps(line, sort_keys=True, ensure_ascii=False))
        result['audit_log'] = log
    except (IOError, OSError) as e:
        job.warnings.append('could not write the audit log %s: %s' % (log, e))


def run_pg_restore_verified(module):
    from ansible_collections.pgops.postgresql.plugins.module_utils._connection import PgTarget

    # the rules between options are pg_restore_verified's option_errors() and its declared rules, checked before
    p = module.params
    if p.get('age_identity'):
        module.no_log_values.add(p['age_identity'])
        for line in p['age_identity'].splitlines():
            if line.strip() and not line.strip().startswith('#'):
                module.no_log_values.add(line.strip())
    job = RestoreJob(module, PgTarget(module), p)
    started = _now()
    error = None
    try:
        result = job.run()
    except PgOpsError as e:
        error = e
    except Exception as e:  # pylint: disable=broad-except
        # still audited and reported; the scratch database was dropped on the way out
        error = PgOpsError('unexpected %s: %s' % (type(e).__name__, e), step=INTERNAL)
    finally:
        job.remove_identity()
    if error is not None:
        error.step = job_step(error.step, RESTORE_STEPS, job.stage)
        result = job.result
        result.update(result='failed', failed_step=error.step, error=error.msg,
                      verdict='failed' if isinstance(error, BackupFault) else 'inconclusive')
    result.update(checks=job.checks, phases=job.phases, attempts=job.attempts)
    result['duration_seconds'] = round(time.time() - job.t0, 3)
    if not module.check_mode:
        _audit(p, job, started, result)
    for w in job.warnings:
        module.warn(w)
    if error is not None:
        module.fail_json(msg='%s failed at step %s: %s' % (p['mode'], error.step, error.msg), **result)
    module.exit_json(**result)
