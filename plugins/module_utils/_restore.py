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
import socket
import time
from contextlib import suppress

from ansible_collections.pgops.postgresql.plugins.module_utils import _catalog as catalog
from ansible_collections.pgops.postgresql.plugins.module_utils._backup import OBJECTS_SQL, BackupJob
from ansible_collections.pgops.postgresql.plugins.module_utils._connection import (
    conninfo_dbname, major_of, quote_ident, quote_literal,
)
from ansible_collections.pgops.postgresql.plugins.module_utils._fsutil import (
    COLLECTION_VERSION, DirLock, PgOpsError, append_log_line, write_json_atomic,
)
from ansible_collections.pgops.postgresql.plugins.module_utils._pipeline import (
    Stage, run_checked, run_pipeline, sha256_tree, CHUNK,
)

NAMEDATALEN = 63
ROLLBACK_TAG = '__rollback_'
RESTORE_TAG = '__restore_'
DECOMPRESS = {'zstd': ['zstd', '-q', '-d', '-c'], 'gzip': ['gzip', '-d', '-c'], 'lz4': ['lz4', '-q', '-d', '-c']}
TEST_STREAM = {'zstd': ['zstd', '-q', '-t'], 'gzip': ['gzip', '-t'], 'lz4': ['lz4', '-q', '-t']}
SET_KEYS = ('partitioned_tables', 'views', 'materialized_views', 'sequences', 'functions', 'schemas', 'extensions')
BTREE_CHECK_SQL = """
SELECT count(bt_index_check(c.oid))::text FROM pg_index i
JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am am ON am.oid = c.relam
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE am.amname = 'btree' AND c.relpersistence <> 't' AND i.indisready AND i.indisvalid
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%'
"""


DB_SETTINGS_SQL = """
SELECT jsonb_build_object(
  'acl', CASE WHEN d.datacl IS NULL THEN NULL WHEN cardinality(d.datacl) = 0 THEN '[]'::jsonb
              ELSE (SELECT jsonb_agg(jsonb_build_object(
                      'grantee', CASE WHEN a.grantee = 0 THEN NULL ELSE pg_get_userbyid(a.grantee) END,
                      'privilege', a.privilege_type, 'grantable', a.is_grantable))
                    FROM aclexplode(d.datacl) a) END,
  'settings', (SELECT coalesce(jsonb_agg(jsonb_build_object(
                 'role', CASE WHEN s.setrole = 0 THEN NULL ELSE pg_get_userbyid(s.setrole) END,
                 'config', s.setconfig)), '[]') FROM pg_db_role_setting s WHERE s.setdatabase = d.oid),
  'connlimit', d.datconnlimit,
  'comment', shobj_description(d.oid, 'pg_database'))::text
FROM pg_database d WHERE d.datname = %s
"""
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


def database_settings_sql(facts, dest):
    """Statements giving database ``dest`` the privileges, settings, connection limit and comment in ``facts``."""
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
                raise PgOpsError('unexpected setting name %r on the database' % name, step='settings')
            out.append('ALTER %s SET %s TO %s' % (target, name, _setting_value(name, value)))
    if facts.get('connlimit') is not None and facts['connlimit'] != -1:
        out.append('ALTER DATABASE %s CONNECTION LIMIT %d' % (db, facts['connlimit']))
    if facts.get('comment') is not None:
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


def compare(meta, found):
    """Differences between the metadata (the dump's snapshot) and a restored database, as sentences."""
    problems = []
    want = dict(('%s.%s' % (t['schema'], t['name']), t['rows']) for t in meta.get('tables') or [])
    got = dict(('%s.%s' % (t['schema'], t['name']), t['rows']) for t in found.get('tables') or [])
    missing = sorted(set(want) - set(got))
    extra = sorted(set(got) - set(want))
    if missing:
        problems.append('tables missing: %s' % ', '.join(missing))
    if extra:
        problems.append('unexpected tables: %s' % ', '.join(extra))
    wrong = ['%s has %d rows, the backup says %d' % (k, got[k], want[k]) for k in sorted(want)
             if k in got and got[k] != want[k]]
    if wrong:
        problems.append('row counts differ: %s' % '; '.join(wrong))
    names = meta.get('object_names') or {}
    for key in SET_KEYS:
        if key not in names:
            continue
        a, b = set(names[key]), set(found.get(key) or [])
        if a - b:
            problems.append('%s missing: %s' % (key.replace('_', ' '), ', '.join(sorted(a - b))))
        if b - a and key != 'extensions':
            problems.append('unexpected %s: %s' % (key.replace('_', ' '), ', '.join(sorted(b - a))))
    return problems


class RestoreJob(object):

    def __init__(self, module, target, opts):
        self.module = module
        self.target = target
        self.o = opts
        self.check_mode = module.check_mode
        self.path = os.path.abspath(opts['path'])
        self.phases = {}
        self.checks = {}
        self.warnings = []
        self.t0 = time.time()
        self.result = dict(changed=False)

    # -- small helpers ------------------------------------------------------------------------------------
    def _phase(self, name, started):
        self.phases[name] = round(time.time() - started, 3)

    def admin(self):
        return self.target.psql(self.o.get('maintenance_db') or 'postgres')

    def _db_info(self, admin, name):
        return admin.query_json(
            "SELECT jsonb_build_object('owner', pg_get_userbyid(datdba), 'collate', datcollate, 'ctype', datctype,"
            " 'encoding', pg_encoding_to_char(encoding), 'allow', datallowconn)::text FROM pg_database "
            "WHERE datname = %s" % quote_literal(name))

    def copy_database_settings(self, admin, source, dest):
        """Carry what pg_dump without --create leaves out from the replaced database to its replacement:
        database privileges, per-database (and per-role-in-database) settings, connection limit and comment.
        Without this a restore could reopen a database to PUBLIC or lose the application's search_path."""
        t = time.time()
        facts = admin.query_json(DB_SETTINGS_SQL % quote_literal(source))
        if facts is None:
            raise PgOpsError('database %s disappeared during the restore' % source, step='settings')
        statements = database_settings_sql(facts, dest)
        try:
            for sql in statements:
                admin.query(sql)
        except PgOpsError as e:
            raise PgOpsError('carrying the database settings of %s over to %s failed: %s' % (source, dest, e.msg),
                             step='settings')
        self.checks['database_settings'] = '%d statements' % len(statements)
        self._phase('settings', t)

    def _databases_like(self, admin, prefix):
        names = admin.query_json("SELECT coalesce(jsonb_agg(datname ORDER BY datname), '[]')::text FROM pg_database")
        return [n for n in names if n.startswith(prefix)]

    def _drop(self, admin, name):
        admin.query("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = %s "
                    "AND pid <> pg_backend_pid()" % quote_literal(name))
        admin.query('DROP DATABASE IF EXISTS %s' % quote_ident(name))

    # -- steps ---------------------------------------------------------------------------------------------
    def choose(self):
        entries, warnings = catalog.load_catalog(self.path)
        self.warnings += warnings
        try:
            return catalog.select_backup(entries, self.o.get('database'), self.o.get('backup_id') or 'latest',
                                         self.o.get('before'))
        except catalog.CatalogError as e:
            raise PgOpsError(str(e), step='choose')

    def check_file(self, meta):
        """sha256 against the metadata and a readable format, before anything is touched."""
        t = time.time()
        path = os.path.join(self.path, meta['file'])
        if not os.path.exists(path):
            raise PgOpsError('backup file %s is missing' % path, step='file_check')
        if meta['format'] == 'directory':
            size, digest, dummy = sha256_tree(path)
        else:
            h = hashlib.sha256()
            size = 0
            with open(path, 'rb') as f:
                while True:
                    chunk = f.read(CHUNK)
                    if not chunk:
                        break
                    size += len(chunk)
                    h.update(chunk)
            digest = h.hexdigest()
        if digest != meta['sha256'] or size != meta['size']:
            raise PgOpsError('backup %s is damaged: sha256 %s and size %d, the metadata says %s and %d'
                             % (meta['file'], digest, size, meta['sha256'], meta['size']), step='file_check')
        self.checks['sha256'] = 'passed'
        env = self.target.env()
        if meta['format'] == 'plain':
            if meta['compression'] != 'none':
                argv = list(TEST_STREAM[meta['compression']])
                argv[0] = self.module.get_bin_path(argv[0], required=True)
                run_checked(argv + [path], env, 'file_check (%s stream test)' % meta['compression'])
            self.checks['format'] = 'passed'
        else:
            if meta['format'] == 'directory' or not self.target.container:
                run_checked(self.target.argv_noconn('pg_restore', ['--list', path]), env, 'file_check')
            else:
                run_pipeline([Stage('pg_restore', self.target.argv_noconn('pg_restore', ['--list'], interactive=True))], env,
                             'file_check', stdin_path=path)
            self.checks['format'] = 'passed'
        self._phase('file_check', t)

    def pre_restore_backup(self, target_db):
        t = time.time()
        opts = dict(dest=self.path, kind='pre_restore', label=None, format='plain', compression='zstd',
                    compression_level=None, jobs=1, owner=self.o.get('backup_owner'), group=self.o.get('backup_group'),
                    free_space_ratio=self.o.get('free_space_ratio', 0.5), lock_timeout=self.o.get('lock_timeout', 300),
                    log_file=self.o.get('backup_log_file'), databases=[target_db], globals=False, all_databases=False)
        job = BackupJob(self.module, self.target, opts)
        entry = job.backup_one(target_db)
        self.warnings += job.warnings
        if entry['status'] != 'success':
            raise PgOpsError('the pre_restore backup of %s failed: %s' % (target_db, entry.get('error')),
                             step='pre_restore_backup')
        self._phase('pre_restore_backup', t)
        self.result['pre_restore_backup'] = dict((k, entry.get(k)) for k in ('id', 'path', 'size', 'sha256'))

    def restore_into(self, meta, scratch):
        t = time.time()
        path = os.path.join(self.path, meta['file'])
        self.target.options = dict(self.o.get('session_settings') or {})
        try:
            env = self.target.env()
            self._restore_with(meta, scratch, path, env)
        finally:
            self.target.options = {}
        self._phase('restore', t)

    def _restore_with(self, meta, scratch, path, env):
        dbarg = conninfo_dbname(scratch)
        if meta['format'] == 'plain':
            psql = Stage('psql', self.target.argv('psql', ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '--single-transaction',
                                                           '-o', '/dev/null', '-d', dbarg], interactive=True))
            if meta['compression'] == 'none':
                run_pipeline([psql], env, 'restore', stdin_path=path)
            else:
                argv = list(DECOMPRESS[meta['compression']])
                argv[0] = self.module.get_bin_path(argv[0], required=True)
                run_pipeline([Stage(argv[0].rsplit('/', 1)[-1], argv + [path]), psql], env, 'restore')
        else:
            args = ['--exit-on-error', '--no-password', '-d', dbarg]
            if self.o.get('no_owner'):
                args += ['--no-owner', '--no-privileges']
            if self.target.container:
                if meta['format'] == 'directory':
                    raise PgOpsError('a directory-format backup cannot be restored with container; restore it '
                                     'natively', step='restore')
                run_pipeline([Stage('pg_restore', self.target.argv('pg_restore', args, interactive=True))], env,
                             'restore', stdin_path=path)
            else:
                jobs = int(self.o.get('jobs') or 1)
                run_pipeline([Stage('pg_restore', self.target.argv('pg_restore', ['-j', str(jobs)] + args + [path]))],
                             env, 'restore')

    def verify(self, meta, scratch):
        t = time.time()
        with self.target.psql(scratch) as s:
            found = s.query_json(OBJECTS_SQL)
            problems = compare(meta, found)
            self.checks['row_counts'] = 'failed' if any(p.startswith(('tables', 'unexpected tables', 'row counts'))
                                                        for p in problems) else 'passed'
            self.checks['objects'] = 'failed' if [p for p in problems if not p.startswith(
                ('tables', 'unexpected tables', 'row counts'))] else 'passed'
            self.checks['tables_verified'] = len(found.get('tables') or [])
            self.checks['rows_verified'] = sum(x['rows'] for x in found.get('tables') or [])
            for i, sql in enumerate(self.o.get('assertions') or []):
                try:
                    lines = s.query(sql)
                except PgOpsError as e:
                    raise PgOpsError('assertion %d (%s) failed to run: %s' % (i + 1, sql, e.msg), step='verify')
                if not lines or lines[0].strip() not in ('t', 'true'):
                    problems.append('assertion %d is not true: %s (returned %r)' % (i + 1, sql, lines[0] if lines else None))
            if self.o.get('assertions'):
                self.checks['assertions'] = 'failed' if any(p.startswith('assertion') for p in problems) else 'passed'
            if self.o.get('amcheck'):
                self.checks['amcheck'] = self._amcheck(s, problems)
        if problems:
            raise PgOpsError('verification of %s against backup %s failed: %s'
                             % (scratch, meta['id'], '; '.join(problems)), step='verify')
        self._phase('verify', t)

    def _amcheck(self, s, problems):
        available = s.query("SELECT count(*) FROM pg_available_extensions WHERE name = 'amcheck'")
        if not available or available[0] != '1':
            return 'unavailable'
        had = s.query("SELECT count(*) FROM pg_extension WHERE extname = 'amcheck'")[0] == '1'
        try:
            if not had:
                s.query('CREATE EXTENSION amcheck')
            checked = s.query(BTREE_CHECK_SQL)
            if not had:
                s.query('DROP EXTENSION amcheck')
        except PgOpsError as e:
            problems.append('amcheck found corruption: %s' % e.msg)
            return 'failed'
        return 'passed (%s B-tree indexes)' % checked[0]

    def swap(self, admin, target_db, scratch, rollback_name):
        """End the target's sessions and rename target -> rollback, scratch -> target in one transaction."""
        t = time.time()
        q_target = quote_literal(target_db)
        terminated = 0
        for attempt in range(10):
            out = admin.query("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = %s "
                              "AND pid <> pg_backend_pid()" % q_target)
            terminated += int(out[0]) if out else 0
            try:
                admin.query('BEGIN')
                admin.query('ALTER DATABASE %s RENAME TO %s' % (quote_ident(target_db), quote_ident(rollback_name)))
                admin.query('ALTER DATABASE %s RENAME TO %s' % (quote_ident(scratch), quote_ident(target_db)))
                admin.query('COMMIT')
                break
            except PgOpsError as e:
                # psql stopped on the error (ON_ERROR_STOP): nothing was renamed; retry with a new session
                admin.close()
                if attempt == 9 or 'being accessed by other users' not in e.msg:
                    raise PgOpsError('swapping %s and %s failed: %s' % (scratch, target_db, e.msg), step='swap')
                admin = self.admin()
                time.sleep(0.2)
        self.result['sessions_terminated'] = terminated
        self._phase('swap', t)
        return admin

    # -- the run ------------------------------------------------------------------------------------------
    def run(self):
        mode = self.o['mode']
        self.target.check_container()
        if mode == 'rollback':
            return self.rollback()
        meta = self.choose()
        target_db = self.o.get('target') or meta['database']
        scratch = derived_name(target_db, RESTORE_TAG + meta['id'])
        self.result.update(backup_id=meta['id'], backup_path=os.path.join(self.path, meta['file']),
                           database=meta['database'], target=target_db, mode=mode, scratch_database=scratch)
        if mode == 'new' and not self.o.get('target'):
            raise PgOpsError('mode=new needs target, the name of the new database', step='options')
        if self.check_mode:
            return self._run(meta, mode, target_db, scratch)
        # one restore of a target at a time: a drill and a replace of the same backup share the scratch name
        with DirLock(os.path.join(self.path, '.%s.restore.lock' % catalog.slug(target_db)),
                     self.o.get('lock_timeout', 300), 'restores of %s' % target_db):
            return self._run(meta, mode, target_db, scratch)

    def _run(self, meta, mode, target_db, scratch):
        admin = self.admin()
        try:
            info = self._db_info(admin, target_db)
            self.target.server_major = major_of(admin.query('SHOW server_version_num')[0])
            if mode == 'new' and info:
                raise PgOpsError('target database %s already exists; mode=new restores into a new database only '
                                 '(use mode=replace to replace it)' % target_db, step='options')
            rollback_name = derived_name(target_db, ROLLBACK_TAG + catalog.make_id(_now()))
            self.result['plan'] = self._plan(mode, meta, target_db, scratch, rollback_name, info)
            self.check_file(meta)
            if self.check_mode:
                self.result['changed'] = mode != 'test' or bool(self.o.get('record', True))
                return self.result
            if mode == 'replace' and info and self.o.get('pre_restore_backup', True):
                self.pre_restore_backup(target_db)
            owner = self.o.get('owner') or (info or {}).get('owner') or self.target.user
            self._drop(admin, scratch)  # a leftover of an interrupted run of ours
            self.result['changed'] = True
            create = 'CREATE DATABASE %s TEMPLATE template0 OWNER %s' % (quote_ident(scratch), quote_ident(owner))
            if meta.get('encoding'):
                create += ' ENCODING %s' % quote_literal(meta['encoding'])
            if info:
                create += ' LC_COLLATE %s LC_CTYPE %s' % (quote_literal(info['collate']), quote_literal(info['ctype']))
            try:
                admin.query(create)
            except PgOpsError as e:
                admin = self.admin()
                raise PgOpsError('creating the scratch database %s failed: %s' % (scratch, e.msg), step='scratch')
            try:
                self.restore_into(meta, scratch)
                self.verify(meta, scratch)
                if mode == 'test':
                    t = time.time()
                    self._drop(admin, scratch)
                    self._phase('drop_scratch', t)
                elif mode == 'new':
                    t = time.time()
                    admin.query('ALTER DATABASE %s RENAME TO %s' % (quote_ident(scratch), quote_ident(target_db)))
                    self._phase('swap', t)
                elif info:
                    self.copy_database_settings(admin, target_db, scratch)
                    admin = self.swap(admin, target_db, scratch, rollback_name)
                    self.result['rollback_database'] = rollback_name
                else:   # replace with no existing target (disaster recovery): the scratch becomes the target
                    t = time.time()
                    admin.query('ALTER DATABASE %s RENAME TO %s' % (quote_ident(scratch), quote_ident(target_db)))
                    self._phase('swap', t)
            except BaseException:
                # whatever failed, the scratch database goes; the target was not touched before the swap
                with suppress(Exception):   # the session may be broken already; a new one follows
                    admin.close()
                admin = self.admin()
                self._drop(admin, scratch)
                raise
            self.result['rto_seconds'] = round(time.time() - self.t0, 3)
            self.result['result'] = 'passed'
            return self.result
        finally:
            admin.close()

    def _plan(self, mode, meta, target_db, scratch, rollback_name, info):
        steps = ['check sha256 and format of %s' % meta['file']]
        if mode == 'replace' and info and self.o.get('pre_restore_backup', True):
            steps.append('pre_restore backup of %s' % target_db)
        steps.append('restore backup %s (%s, %s) into scratch database %s'
                     % (meta['id'], meta['format'], meta['compression'], scratch))
        steps.append('verify %d tables / %s rows and the object sets against the metadata'
                     % (len(meta.get('tables') or []), meta.get('rows_total')))
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
        return steps

    def rollback(self):
        target_db = self.o.get('target') or self.o.get('database')
        if not target_db:
            raise PgOpsError('mode=rollback needs target (or database): the database to roll back', step='options')
        self.result.update(mode='rollback', target=target_db)
        admin = self.admin()
        try:
            prefix = rollback_prefix(target_db)
            found = sorted(n for n in self._databases_like(admin, prefix)
                           if re.match(r'^\d{8}_\d{6}$', n[len(prefix):]))
            wanted = self.o.get('rollback_database') or (found[-1] if found else None)
            if not wanted or wanted not in found:
                raise PgOpsError('no rollback database of %s%s (found: %s)' % (
                    target_db, ' named %s' % wanted if wanted else '', ', '.join(found) or 'none'), step='rollback')
            swapped_out = derived_name(target_db, ROLLBACK_TAG + catalog.make_id(_now()))
            if swapped_out == wanted:
                time.sleep(1)
                swapped_out = derived_name(target_db, ROLLBACK_TAG + catalog.make_id(_now()))
            self.result.update(rollback_database=wanted, replaced_database=swapped_out,
                               plan=['end sessions on %s, rename it to %s and %s to %s'
                                     % (target_db, swapped_out, wanted, target_db)])
            if self.check_mode:
                self.result['changed'] = True
                return self.result
            self.result['changed'] = True
            if self._db_info(admin, target_db):
                admin = self.swap(admin, target_db, wanted, swapped_out)
            else:
                admin.query('ALTER DATABASE %s RENAME TO %s' % (quote_ident(wanted), quote_ident(target_db)))
            self.result['rto_seconds'] = round(time.time() - self.t0, 3)
            self.result['result'] = 'passed'
            return self.result
        finally:
            admin.close()


def record_verification(path, meta, entry, lock_timeout):
    """Append a verification to the backup's metadata (atomically, under the database's backup lock)."""
    meta_path = meta.get('meta_path') or catalog.meta_path(path, meta['file'].rsplit('.', 1)[0])
    with DirLock(os.path.join(path, catalog.lock_name(meta['database'])), lock_timeout,
                 'database %s in %s' % (meta['database'], path)):
        with open(meta_path, 'rb') as f:
            record = json.loads(f.read().decode('utf-8'))
        record.setdefault('verifications', []).append(entry)
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
BACKUP_STEPS = ('file_check', 'restore', 'verify')


def run_pg_restore_verified(module):
    from ansible_collections.pgops.postgresql.plugins.module_utils._connection import PgTarget

    p = module.params
    for k, v in (p['session_settings'] or {}).items():
        if not SETTING_RE.match(str(k)) or not SETTING_RE.match(str(v)):
            module.fail_json(msg='session_settings: %s=%s is refused; names and values may hold letters, digits, '
                                 '"_", "." and "-" only' % (k, v))
    job = RestoreJob(module, PgTarget(module), p)
    started = _now()
    error = None
    try:
        result = job.run()
    except PgOpsError as e:
        error = e
    except Exception as e:  # pylint: disable=broad-except
        # still audited and reported; the scratch database was dropped on the way out
        error = PgOpsError('unexpected %s: %s' % (type(e).__name__, e), step='internal')
    if error is not None:
        result = job.result
        result.update(result='failed', failed_step=error.step, error=error.msg)
    result.update(checks=job.checks, phases=job.phases)
    result['duration_seconds'] = round(time.time() - job.t0, 3)
    if p['mode'] != 'rollback' and result.get('backup_id') and not module.check_mode and \
            p['record'] and (error is None or error.step not in ('choose', 'options')):
        # a failure outside the backup's own steps (disk, locks, sessions, settings, swap) proves nothing about it
        outcome = result.get('result') if error is None or error.step in BACKUP_STEPS else 'inconclusive'
        entry = dict(verified_at=started.isoformat(), mode=p['mode'], target=result.get('target'),
                     result=outcome, rto_seconds=result.get('rto_seconds'), checks=job.checks,
                     phases=job.phases, error=result.get('error'), failed_step=result.get('failed_step'),
                     host=socket.gethostname(), collection_version=COLLECTION_VERSION)
        try:
            entries, dummy = catalog.load_catalog(job.path)
            meta = [m for m in entries if m['id'] == result['backup_id'] and m['database'] == result['database']][0]
            record_verification(job.path, meta, entry, p['lock_timeout'])
            result['recorded'] = True
        except (IndexError, OSError, ValueError, PgOpsError) as e:
            job.warnings.append('could not record the verification in the metadata: %s' % e)
    if not module.check_mode:
        audit = dict(time=started.isoformat(), who=who(p['audit_user']), context=p['audit_context'] or {},
                     backup_id=result.get('backup_id'), database=result.get('database'), target=result.get('target'),
                     mode=p['mode'], result=result.get('result'), rto_seconds=result.get('rto_seconds'),
                     failed_step=result.get('failed_step'), error=result.get('error'),
                     rollback_database=result.get('rollback_database'), container=p.get('container'))
        log = p['audit_log'] or os.path.join(job.path, 'restore-audit.jsonl')
        try:
            append_log_line(log, json.dumps(audit, sort_keys=True, ensure_ascii=False))
            result['audit_log'] = log
        except (IOError, OSError) as e:
            job.warnings.append('could not write the audit log %s: %s' % (log, e))
    for w in job.warnings:
        module.warn(w)
    if error is not None:
        module.fail_json(msg='%s failed at step %s: %s' % (p['mode'], error.step, error.msg), **result)
    module.exit_json(**result)
