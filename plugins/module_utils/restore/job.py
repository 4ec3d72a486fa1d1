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

import json
import os
import re
import socket
import time
from contextlib import suppress

from ansible_collections.pgops.postgresql.plugins.module_utils import _catalog as catalog
from ansible_collections.pgops.postgresql.plugins.module_utils._age import AgeIdentity, recipients
from ansible_collections.pgops.postgresql.plugins.module_utils._backup import BackupJob, backup_job_options
from ansible_collections.pgops.postgresql.plugins.module_utils._connection import major_of, quote_ident, quote_literal
from ansible_collections.pgops.postgresql.plugins.module_utils._databases import (
    database_facts, drop_database, holds_data, list_databases,
)
from ansible_collections.pgops.postgresql.plugins.module_utils._errors import PgOpsError
from ansible_collections.pgops.postgresql.plugins.module_utils._fsutil import COLLECTION_VERSION, DirLock, disk_space, write_json_atomic
from ansible_collections.pgops.postgresql.plugins.module_utils._globals import create_roles, drop_created, restore_plan
from ansible_collections.pgops.postgresql.plugins.module_utils._pipeline import run_checked

from ansible_collections.pgops.postgresql.plugins.module_utils._server import compare_cluster, elsewhere, of_server
from ansible_collections.pgops.postgresql.plugins.module_utils._steps import (
    CHOOSE, GUARD, INTERNAL, LOCK, OPTIONS, PRE_RESTORE_BACKUP, PREFLIGHT, RESTORE, RESTORE_STEPS, ROLES,
    ROLLBACK, SCRATCH, SWAP, VERIFY, job_step,
)
from ansible_collections.pgops.postgresql.plugins.module_utils._verdict import BackupFault
from ansible_collections.pgops.postgresql.plugins.module_utils._verify import has_counts, verify_scratch
from ansible_collections.pgops.postgresql.plugins.module_utils.restore.audit import (
    now, record_verification, restore_lock_path, run_marker_path, write_audit,
)
from ansible_collections.pgops.postgresql.plugins.module_utils.restore.data import FileDigest, check_file, restore_data
from ansible_collections.pgops.postgresql.plugins.module_utils.restore.drill import map_tablespaces, run_drill
from ansible_collections.pgops.postgresql.plugins.module_utils.restore.scratch import (
    apply_recorded_settings, copy_database_settings, create_scratch, leftover_scratches, rename_in, rollback_name,
    rollback_prefix, scratch_name, swap,
)

VERSION_RE = re.compile(r'^(\d+)')


class RestoreJob(object):
    """One run of pg_restore_verified. ``run()`` decides (choose, guard, plan), then acts attempt by attempt; the
    steps themselves live with what they work on: _restore_data (check the file, restore its data), _verify,
    _scratch (create, swap, settings), _age (the identity)."""

    def __init__(self, module, target, opts):
        self.module = module
        self.target = target
        self.o = opts
        self.check_mode = module.check_mode
        self.path = os.path.abspath(opts['path'])
        self.identity = AgeIdentity(module, opts.get('age_identity_file'), opts.get('age_identity'))
        self.phases = {}
        self.checks = {}
        self.warnings = []
        self.attempts = []
        self.interrupted = []      # audit entries of earlier runs whose scratch database this run cleaned
        self.t0 = time.time()
        self.started = now()
        self.result = dict(changed=False)
        self.pre_restore_done = False
        self.found_counts = None   # counts a restore found for a backup without any (recorded when it passed)
        self.created_roles = []    # roles this run created from the backup's globals dump (dropped if it fails)
        self.in_instance = False   # a drill running in a throwaway instance (_drill): self.target is the instance
        self.drill = None          # that instance's DrillInstance
        self.stage = PREFLIGHT   # the step a session error (a lost connection, a refused query) belongs to

    # -- small helpers ------------------------------------------------------------------------------------
    def _phase(self, name, started):
        self.phases[name] = round(time.time() - started, 3)

    def admin(self):
        return self.target.psql(self.o.get('maintenance_db') or 'postgres')

    def holds_data(self, target_db):
        with self.target.psql(target_db) as s:
            return holds_data(s)

    # -- deciding -----------------------------------------------------------------------------------------
    def source_database(self):
        """The database whose backups to choose from: ``database``, else (replace) the target itself. (mode=new
        without a target, and a chooser without database for new/replace, are refused by option_errors.)"""
        database, target = self.o.get('database'), self.o.get('target')
        if database:
            return database
        if self.o['mode'] == 'replace' and target:
            return target          # never another database's backup: a replace across databases names its source
        return None

    def check_system(self, admin, meta):
        """The server's system identifier against the backup's (_server.compare_cluster): said, never refused."""
        if self.in_instance:
            self.checks['system_identifier'] = 'not compared: a throwaway instance'
            return
        check, warning = compare_cluster(admin, self.target, meta, own=self.source_server() == self.target.server)
        if check:
            self.checks['system_identifier'] = check
        if warning:
            self.warnings.append(warning)

    def source_server(self):
        """The server whose backups to choose from: this server's own, or ``source_server`` (on purpose)."""
        return self.o.get('source_server') or self.target.server

    def candidates(self, database):
        all_entries, warnings = catalog.load_catalog(self.path)
        self.warnings += warnings
        source = self.source_server()
        # only the source server's backups (never another server's, even of a database of the same name)
        entries = of_server(all_entries, source)
        self.result.update(server=self.target.server, source_server=source)
        backup_id = self.o.get('backup_id') or 'latest'
        try:
            found = catalog.backup_candidates(entries, database, backup_id, self.o.get('before'),
                                              self.o.get('max_age_hours'))
        except catalog.CatalogError as e:
            msg = str(e)
            msg += elsewhere(all_entries, source, database, backup_id, catalog.CHOOSERS)
            if database and backup_id not in catalog.CHOOSERS:
                others = sorted(set(m['database'] for m in entries if m.get('id') == backup_id
                                    and m.get('database') != database and m.get('status') == 'success'
                                    and m.get('scope', 'database') == 'database'))
                if others:
                    msg += ' (backup %s is of database %s: to restore it into %s, set database: %s)' % (
                        backup_id, ', '.join(others), self.o.get('target') or database, others[0])
            raise PgOpsError(msg, step=CHOOSE)
        if not self.o.get('fallback') or backup_id not in catalog.CHOOSERS:
            return found[:1]
        return found[:max(1, int(self.o.get('max_attempts') or 1))]

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

    def _plan(self, mode, meta, target_db, scratch, rollback, info):
        if meta['format'] == 'directory':
            steps = ['check sha256 and format of %s' % meta['file']]
        else:
            steps = ['check the size and header of %s; its sha256 and stream are checked while the restore reads it'
                     % meta['file']]
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
        if mode == 'replace' and info and self.o.get('pre_restore_backup', True):
            steps.append('pre_restore backup of %s%s' % (
                target_db, ', encrypted to the same recipients' if meta.get('encrypted') else ''))
        if mode == 'test':
            steps.append('drop %s and record the result in the backup metadata' % scratch)
        elif mode == 'new':
            steps.append('rename %s to %s' % (scratch, target_db))
        elif info:
            steps.append('give %s the database-level settings of %s (privileges, ALTER DATABASE/ROLE ... SET, '
                         'connection limit, comment)' % (scratch, target_db))
            steps.append('end sessions on %s, rename it to %s and %s to %s' % (target_db, rollback, scratch,
                                                                               target_db))
        else:
            steps.append('%s does not exist: rename %s to it' % (target_db, scratch))
        if self.result.get('fallback_candidates'):
            steps.append('if backup %s proves bad, fall back to %s in this order'
                         % (meta['id'], ', '.join(self.result['fallback_candidates'])))
        return steps

    # -- the steps ----------------------------------------------------------------------------------------
    def one_pass(self, meta):
        """Whether the sha256 and the stream test ride on the restore's own read of the file (see _restore_data):
        not in check mode, which restores nothing, nor for a directory-format backup (many files)."""
        return not self.check_mode and meta['format'] != 'directory'

    def check_file(self, meta):
        t = time.time()
        check_file(self.module, self.target, self.identity, meta, os.path.join(self.path, meta['file']), self.checks,
                   full=not self.one_pass(meta))
        self._phase('file_check', t)

    def pre_restore_backup(self, target_db, meta):
        """A backup of the target before it is replaced; encrypted to the recipients of the backup being
        restored when that one is encrypted, so a restore never leaves a clear copy of an encrypted database."""
        t = time.time()
        opts = backup_job_options(
            dest=self.path, kind='pre_restore', databases=[target_db], owner=self.o.get('backup_owner'),
            group=self.o.get('backup_group'), free_space_ratio=self.o.get('free_space_ratio', 0.5),
            lock_timeout=self.o.get('lock_timeout', 300), log_file=self.o.get('backup_log_file'),
            encrypt_recipients=recipients(meta) if meta.get('encrypted') else None)
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
        digest = FileDigest(path) if self.one_pass(meta) else None
        restore_data(self.module, self.target.with_options(self.o.get('session_settings')), self.identity, meta,
                     path, scratch, self.checks, jobs=int(self.o.get('jobs') or 1),
                     no_owner=bool(self.o.get('no_owner')), digest=digest)
        self._phase('restore', t)

    def verify(self, meta, scratch):
        t = time.time()
        self.found_counts = verify_scratch(self.target, meta, scratch, self.o.get('assertions'),
                                           self.o.get('amcheck'), self.checks, self.warnings, now().isoformat())
        self._phase('verify', t)

    def plan_roles(self, admin, meta):
        """The RolePlan of the roles to create before the restore, or None (_globals.restore_plan)."""
        if self.o.get('no_owner'):
            return None     # no owners and no privileges restored: the roles are not looked at
        self.stage = ROLES
        plan = restore_plan(self.module, self.target, self.identity, admin, meta, self.path,
                            drill=self.o['mode'] == 'test' and not self.in_instance, checks=self.checks, warnings=self.warnings)
        self.stage = PREFLIGHT
        if plan is None:
            return None
        self.result['plan'].insert(1, plan.describe())
        self.result['roles_to_create'] = list(plan.create)
        return plan

    def drop_created_roles(self):
        """A restore that failed after creating roles drops them again (it leaves the server as it found it)."""
        if not self.created_roles:
            return
        with suppress(Exception):
            with self.admin() as admin:
                error = drop_created(admin, self.created_roles)
                if error:
                    self.warnings.append('the roles %s created for this restore could not be dropped: %s'
                                         % (', '.join(self.created_roles), error))
                else:
                    self.result['roles_created'] = []
                    self.result['roles_dropped'] = list(self.created_roles)
                    self.created_roles = []

    def clean_leftovers(self, admin, target_db, scratch):
        """Drop the scratch databases killed runs of ours left on this target (audited as interrupted)."""
        for name, info in leftover_scratches(admin, target_db, scratch):
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
            self.result.update(mode='rollback', target=target_db)
            self.target.check_container()
            self.stage = ROLLBACK
            try:
                return self._locked(target_db, self.rollback, target_db)
            except PgOpsError as e:
                e.step = job_step(e.step, RESTORE_STEPS, ROLLBACK)
                raise
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
            # scratch database existed too): it is audited as interrupted by write_audit
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
        entry = dict(verified_at=now().isoformat(), mode=self.o['mode'], target=self.result.get('target'),
                     instance=dict((k, v) for k, v in (self.result.get('instance') or {}).items()
                                   if k in ('kind', 'image', 'major')) or None,
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
        """One attempt: a drill where restore/drill.py puts it (a throwaway instance or the server), else here."""
        if self.o['mode'] == 'test':
            return run_drill(self, meta, target_db)
        return self._run_here(meta, target_db)

    def _run_here(self, meta, target_db):
        """One attempt: decide against the server (guard, plan, checks, the file), then act on a scratch database
        that is dropped whatever fails; the target is touched only by the final swap."""
        mode = self.o['mode']
        scratch = scratch_name(target_db, meta['id'])
        data_as_of = catalog.data_time(meta)
        self.result.update(backup_id=meta['id'], backup_path=os.path.join(self.path, meta['file']),
                           database=meta['database'], scratch_database=scratch,
                           data_as_of=catalog.iso(data_as_of) if data_as_of else None,
                           data_age_seconds=int((now() - data_as_of).total_seconds()) if data_as_of else None)
        self.result.pop('rto_seconds', None)
        self.stage = PREFLIGHT
        admin = self.admin()
        try:
            info = database_facts(admin, target_db)
            self.target = self.target.for_server(major_of(admin.query('SHOW server_version_num')[0]))
            self.check_system(admin, meta)
            if mode == 'new' and info:
                raise PgOpsError('target database %s already exists; mode=new restores into a new database only '
                                 '(use mode=replace to replace it)' % target_db, step=OPTIONS)
            if mode == 'replace':
                self.guard(target_db, bool(info))
            rollback = rollback_name(target_db, catalog.make_id(now()))
            self.result['plan'] = self._plan(mode, meta, target_db, scratch, rollback, info)
            self.server_checks(admin, meta, target_db, info)
            self.check_file(meta)
            if self.drill is not None and not self.check_mode:
                map_tablespaces(self, self.drill, meta)     # the globals read once the backup is known readable
            roles = self.plan_roles(admin, meta)
            if self.check_mode:
                self.result['changed'] = mode != 'test' or bool(self.o.get('record', True))
                return self.result
            self.stage = SCRATCH
            self.clean_leftovers(admin, target_db, scratch)
            self.result['changed'] = True
            if roles is not None:
                self.stage = ROLES
                create_roles(admin, roles)
                self.created_roles = list(roles.create)
                self.result['roles_created'] = list(roles.create)
                self.stage = SCRATCH
            schemas = (meta.get('object_names') or {}).get('schemas')
            admin = create_scratch(
                admin, self.admin, scratch, self.o.get('owner') or (info or {}).get('owner') or self.target.user,
                dict(info or meta, encoding=meta.get('encoding')), self.target.server_major,
                dict(backup_id=meta['id'], database=meta['database'], target=target_db, mode=mode,
                     host=socket.gethostname(), pid=os.getpid(), started=self.started.isoformat(), path=self.path),
                drop_public=schemas is not None and 'public' not in schemas, target=self.target)
            try:
                self.stage = RESTORE
                self.restore_into(meta, scratch)
                self.stage = VERIFY
                self.verify(meta, scratch)
                if mode == 'replace' and info and self.o.get('pre_restore_backup', True) and not self.pre_restore_done:
                    # the target's state as late as possible before the swap, and only once the backup to restore
                    # is proven: a damaged one costs no backup of the target
                    self.stage = PRE_RESTORE_BACKUP
                    if self.holds_data(target_db):
                        self.pre_restore_backup(target_db, meta)
                    else:   # e.g. the empty POSTGRES_DB of a recreated container: nothing to keep
                        self.checks['pre_restore_backup'] = 'skipped: %s holds nothing of its own' % target_db
                    self.pre_restore_done = True
                self.stage = SWAP
                admin = self._finish(admin, mode, meta, target_db, scratch, rollback, info)
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
                self.drop_created_roles()
                raise
            self.result['rto_seconds'] = round(time.time() - self.t0, 3)
            self.result['result'] = 'passed'
            return self.result
        finally:
            admin.close()

    def _finish(self, admin, mode, meta, target_db, scratch, rollback, info):
        t = time.time()
        if mode == 'test':
            drop_database(admin, scratch)
            self._phase('drop_scratch', t)
            return admin
        if mode == 'replace' and info:
            ts = time.time()
            self.checks['database_settings'] = '%d statements' % copy_database_settings(admin, target_db, scratch)
            self._phase('settings', ts)
            # a replace of the same target that finished in the same second took this name already
            taken = set(list_databases(admin, prefix=rollback_prefix(target_db)))
            while rollback in taken:
                time.sleep(1.05 - (time.time() % 1))
                rollback = rollback_name(target_db, catalog.make_id(now()))
            t = time.time()
            admin, self.result['sessions_terminated'] = swap(
                admin, self.admin, target_db, scratch, rollback,
                comment='NULL' if info.get('comment') is None else quote_literal(info['comment']))
            self._phase('swap', t)
            self.result['rollback_database'] = rollback
            return admin
        # new, or replace with no existing target (disaster recovery): the scratch becomes the target, with the
        # database settings recorded in the backup (pg_dump without --create has none of them)
        recorded = meta.get('database_settings')
        if recorded:
            admin, applied = apply_recorded_settings(admin, self.admin, recorded, scratch, self.warnings)
            self.checks['database_settings'] = '%d statements' % applied
        # the mark goes in the transaction that renames: a run killed before it leaves a scratch database pgops drops
        admin = rename_in(admin, scratch, target_db, (recorded or {}).get('comment'))
        self._phase('swap', t)
        return admin

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
            info = database_facts(admin, target_db)
            self.guard(target_db, bool(info))
            if info and info.get('prepared'):
                raise PgOpsError('%s has prepared transactions (%s): COMMIT PREPARED or ROLLBACK PREPARED them first'
                                 % (target_db, ', '.join(info['prepared'])), step=PREFLIGHT)
            swapped_out = rollback_name(target_db, catalog.make_id(now()))
            if swapped_out == wanted:
                time.sleep(1)
                swapped_out = rollback_name(target_db, catalog.make_id(now()))
            self.result.update(rollback_database=wanted, replaced_database=swapped_out if info else None,
                               plan=['end sessions on %s, rename it to %s and %s to %s'
                                     % (target_db, swapped_out, wanted, target_db)] if info else
                               ['rename %s to %s' % (wanted, target_db)])
            self.result['changed'] = True
            if self.check_mode:
                return self.result
            if info:
                t = time.time()
                admin, self.result['sessions_terminated'] = swap(admin, self.admin, target_db, wanted, swapped_out)
                self._phase('swap', t)
            else:
                admin.query('ALTER DATABASE %s RENAME TO %s' % (quote_ident(wanted), quote_ident(target_db)))
            self.result['rto_seconds'] = round(time.time() - self.t0, 3)
            self.result['result'] = 'passed'
            return self.result
        finally:
            admin.close()


NOT_RECORDED = (OPTIONS, GUARD, CHOOSE, LOCK)   # refused before the backup was looked at


SETTING_RE = re.compile(r'^[A-Za-z0-9_.-]+$')


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
    started = now()
    error = None
    try:
        result = job.run()
    except PgOpsError as e:
        error = e
    except Exception as e:  # pylint: disable=broad-except
        # still audited and reported; the scratch database was dropped on the way out
        error = PgOpsError('unexpected %s: %s' % (type(e).__name__, e), step=INTERNAL)
    finally:
        job.identity.remove()
    if error is not None:
        error.step = job_step(error.step, RESTORE_STEPS, job.stage)
        result = job.result
        result.update(result='failed', failed_step=error.step, error=error.msg,
                      verdict='failed' if isinstance(error, BackupFault) else 'inconclusive')
    result.update(checks=job.checks, phases=job.phases, attempts=job.attempts)
    result['duration_seconds'] = round(time.time() - job.t0, 3)
    if not module.check_mode:
        write_audit(p, job, started, result)
    for w in job.warnings:
        module.warn(w)
    if error is not None:
        module.fail_json(msg='%s failed at step %s: %s' % (p['mode'], error.step, error.msg), **result)
    module.exit_json(**result)
