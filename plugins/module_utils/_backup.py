# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgops.postgresql contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# PRIVATE to the collection: this is not a public API and may change without notice.
"""pg_backup's logic: preflight, a consistent dump with exact row counts from the same snapshot, metadata, log.

For each database: connect with psql (natively or with ``docker exec``), read sizes and versions, check free
space, take the per-database lock, open a REPEATABLE READ transaction and export its snapshot, run
``pg_dump --snapshot`` through the checked pipeline while the same transaction counts every table's rows, then
write the metadata atomically. Any failure removes the partial dump and records a ``failed`` entry; ids are
taken and records written under the database's lock, for failures as for successes. Under that lock a run also
removes the temporary files that a killed run of the same database left behind.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import datetime
import grp
import os
import pwd
import re
import socket
import time

from ansible_collections.pgops.postgresql.plugins.module_utils import _catalog as catalog
from ansible_collections.pgops.postgresql.plugins.module_utils._connection import (
    conninfo_dbname, major_of,
)
from ansible_collections.pgops.postgresql.plugins.module_utils._databases import (
    DB_SETTINGS_SQL, list_databases,
)
from ansible_collections.pgops.postgresql.plugins.module_utils._dump import AGE_SUFFIX, DumpOutput, dump_in_snapshot
from ansible_collections.pgops.postgresql.plugins.module_utils._errors import PgOpsError
from ansible_collections.pgops.postgresql.plugins.module_utils._globals import ROLES_SQL, link as link_globals
from ansible_collections.pgops.postgresql.plugins.module_utils._fsutil import (
    COLLECTION_VERSION, TMP_MARK, DirLock, append_log_line, ensure_dir, free_bytes, remove_dead_temp_files,
    remove_tree, temp_name, unusable_dir_reason, write_json_atomic,
)
from ansible_collections.pgops.postgresql.plugins.module_utils._pipeline import (
    Stage, run_to_file,
)
from ansible_collections.pgops.postgresql.plugins.module_utils._server import identity as server_identity
from ansible_collections.pgops.postgresql.plugins.module_utils._steps import (
    BACKUP_STEPS, CONNECT, DUMP, LOCK, OPTIONS, PREFLIGHT, QUERY, WRITE, job_step,
)

INSPECT_SQL = """
SELECT jsonb_build_object(
  'server_version', current_setting('server_version'),
  'server_version_num', current_setting('server_version_num')::int,
  'database_size', pg_database_size(current_database()),
  'encoding', pg_encoding_to_char(d.encoding),
  'collate', d.datcollate, 'ctype', d.datctype,
  -- 15+: locale provider (c libc, i icu, b builtin) and its locale (daticulocale in 15-16, datlocale in 17+)
  'locale_provider', to_jsonb(d) ->> 'datlocprovider',
  'locale', coalesce(to_jsonb(d) ->> 'datlocale', to_jsonb(d) ->> 'daticulocale'),
  'icu_rules', to_jsonb(d) ->> 'daticurules')::text
FROM pg_database d WHERE d.datname = current_database()
"""

DIRECTORY_ENCRYPTION_MSG = (
    'format=directory cannot be encrypted (encrypt_recipients / encrypt_recipients_file are set): pg_dump writes '
    'its files itself, and they would stay in clear; use format=custom or format=plain with encryption')


def _now():
    return datetime.datetime.now().astimezone().replace(microsecond=0)


def _uid_gid(owner, group):
    uid = gid = -1
    if owner:
        try:
            uid = pwd.getpwnam(owner).pw_uid
        except KeyError:
            raise PgOpsError('owner %r does not exist on this host' % owner, step=PREFLIGHT)
    if group:
        try:
            gid = grp.getgrnam(group).gr_gid
        except KeyError:
            raise PgOpsError('group %r does not exist on this host' % group, step=PREFLIGHT)
    return uid, gid


# an X25519 age recipient: "age1" and 58 lower-case bech32 characters (the encoding of a 32-byte key and checksum)
AGE_RECIPIENT_RE = re.compile(r'^age1[qpzry9x8gf2tvdw0s3jn54khce6mua7l]{58}$')

_DUMP_SUFFIXES = set(catalog.dump_suffix(f, c) for f in catalog.FORMATS for c in catalog.COMPRESSIONS)
_SUFFIXES = sorted(_DUMP_SUFFIXES | set(x + AGE_SUFFIX for x in _DUMP_SUFFIXES) | set([catalog.META_SUFFIX]),
                   key=len, reverse=True)


def backup_argument_spec():
    """pg_backup's own options (beside the connection options and the choice of databases)."""
    return dict(
        globals=dict(type='bool'),
        globals_role_passwords=dict(type='bool', default=False, no_log=False),
        dest=dict(type='path', required=True),
        kind=dict(type='str', default='full', choices=list(catalog.KINDS)),
        label=dict(type='str'),
        format=dict(type='str', default='auto', choices=['auto'] + list(catalog.FORMATS)),
        compression=dict(type='str', default='zstd', choices=list(catalog.COMPRESSIONS)),
        compression_level=dict(type='int'),
        jobs=dict(type='int', default=1),
        owner=dict(type='str'),
        group=dict(type='str'),
        free_space_ratio=dict(type='float', default=0.5),
        lock_timeout=dict(type='int', default=300),
        log_file=dict(type='path'),
        encrypt_recipients=dict(type='list', elements='str', no_log=False),
        encrypt_recipients_file=dict(type='path'),
    )


def resolve_format(requested, dump_major, encrypted):
    """The format ``auto`` stands for: ``custom`` where pg_dump compresses with zstd inside the archive (16 or
    newer), so that a restore runs ``pg_restore -j``; ``plain`` otherwise (an older pg_dump only has gzip inside,
    slower than plain SQL through zstd -T0) and for encrypted backups (an encrypted archive is restored by one
    job, reading age's output). Any other value is itself."""
    if requested != 'auto':
        return requested
    return 'custom' if dump_major >= 16 and not encrypted else 'plain'


def backup_job_options(**given):
    """The options of a BackupJob made by another job (the pre_restore backup): pg_backup's defaults (its argument
    spec), then ``given``; unknown names are a programming error."""
    spec = backup_argument_spec()
    unknown = set(given) - set(spec) - set(('databases', 'all_databases', 'maintenance_db'))
    if unknown:
        raise ValueError('not options of pg_backup: %s' % ', '.join(sorted(unknown)))
    opts = dict((name, option.get('default')) for name, option in spec.items())
    opts.update(databases=None, all_databases=None, maintenance_db='postgres')
    opts.update(given)
    return opts


def age_recipients(keys, keys_file):
    """The age public keys of ``encrypt_recipients`` and the lines of ``encrypt_recipients_file`` (blank lines and
    ``#`` comments skipped), checked and without duplicates; raises PgOpsError naming the option of a bad one."""
    found = []
    for key in keys or []:
        key = (key or '').strip()
        if not AGE_RECIPIENT_RE.match(key):
            raise PgOpsError('encrypt_recipients: %r is not an age public key (age1 followed by 58 lower-case bech32 '
                             'characters, as printed by age-keygen -y); give public keys only, never the identity'
                             % key[:80], step=OPTIONS)
        found.append(key)
    if keys_file:
        try:
            with open(keys_file, 'rb') as f:
                lines = f.read().decode('utf-8', 'replace').splitlines()
        except (IOError, OSError) as e:
            raise PgOpsError('encrypt_recipients_file: cannot read %s: %s' % (keys_file, e.strerror or e),
                             step=OPTIONS)
        for n, line in enumerate(lines, 1):
            line = line.strip()
            if not line or line.startswith('#'):
                continue
            if not AGE_RECIPIENT_RE.match(line):
                what = ('an age identity (a secret key: it must never be on the database host)'
                        if line.upper().startswith('AGE-SECRET-KEY-') else 'not an age public key')
                raise PgOpsError('encrypt_recipients_file: line %d of %s is %s; the file holds age public keys '
                                 '(age1..., one a line, # comments)' % (n, keys_file, what), step=OPTIONS)
            found.append(line)
        if not found:
            raise PgOpsError('encrypt_recipients_file: %s holds no age public key' % keys_file, step=OPTIONS)
    out = []
    for key in found:
        if key not in out:
            out.append(key)
    return out


def temp_name_re(database):
    """Temporary names of this database's dumps and metadata: ``.<db>_<kind>[_<label>]_<id><suffix>.tmp-<pid>``."""
    base = catalog.slug(database) if database != catalog.GLOBALS else '_globals'
    return re.compile(r'^\.%s_(?:%s)_(?:.+_)?\d{8}_\d{6}(?:%s)%s\d+$' % (
        re.escape(base), '|'.join(re.escape(k) for k in catalog.KINDS), '|'.join(re.escape(x) for x in _SUFFIXES),
        re.escape(TMP_MARK)))


def version_major(version_text):
    """Major version in 'pg_dump (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)' (15) or '9.6.24' (9)."""
    m = re.search(r'PostgreSQL\)\s+(\d+)', version_text) or re.search(r'(\d+)', version_text)
    if not m:
        raise PgOpsError('cannot read a version from %r' % version_text, step=PREFLIGHT)
    return int(m.group(1))


class BackupJob(object):
    """One run of pg_backup: a target, options, and one entry per database (plus globals)."""

    def __init__(self, module, target, opts):
        self.module = module
        self.target = target
        self.o = opts
        self.check_mode = module.check_mode
        self.warnings = []
        self.uid, self.gid = _uid_gid(opts.get('owner'), opts.get('group'))
        self.dest = os.path.abspath(opts['dest'])
        self.compression = opts['compression']
        self.level = opts.get('compression_level')
        if self.level is None:
            self.level = catalog.DEFAULT_LEVEL[self.compression]
        lo, hi = catalog.LEVEL_RANGE[self.compression]
        if not lo <= self.level <= hi:
            raise PgOpsError('compression_level %s is out of range for compression=%s (%d to %d)'
                             % (self.level, self.compression, lo, hi), step=OPTIONS)
        self.dest_changed = False
        self.globals_link = None   # the globals dump of this run, linked from each database backup's metadata
        self.server_identity = None
        self.removed_temp_files = []
        self.recipients = age_recipients(opts.get('encrypt_recipients'), opts.get('encrypt_recipients_file'))
        if self.recipients and opts.get('format') == 'directory':
            raise PgOpsError(DIRECTORY_ENCRYPTION_MSG, step=OPTIONS)
        self.output = DumpOutput(module, opts['format'], self.compression, self.level, self.recipients, opts.get('jobs'))

    # -- helpers ----------------------------------------------------------------------------------------
    def _log(self, line):
        if self.o.get('log_file') and not self.check_mode:
            stamp = _now().strftime('%Y-%m-%d %H:%M:%S')
            try:
                append_log_line(self.o['log_file'], '%s pgops %s' % (stamp, line))
            except (IOError, OSError) as e:
                self.warnings.append('could not write log_file %s: %s' % (self.o['log_file'], e))

    def _lock(self, database, timeout=None):
        """The lock of ``database`` in dest: ids are taken and records written only while holding it."""
        what = ('globals in %s' % self.dest if database == catalog.GLOBALS
                else 'database %s in %s' % (database, self.dest))
        return DirLock(os.path.join(self.dest, catalog.lock_name(database)),
                       self.o['lock_timeout'] if timeout is None else timeout, what)

    def _clean_temp_files(self, database):
        """Under the database's lock: remove the temporary files a killed run of this database left."""
        removed, errors = remove_dead_temp_files(self.dest, temp_name_re(database))
        self.removed_temp_files += [os.path.join(self.dest, n) for n in removed]
        self.warnings += errors

    def _allocate_id(self, database):
        """A new id (local time) unique for this database in the catalog; waits for the next second if taken."""
        entries, dummy = catalog.load_catalog(self.dest)
        taken = catalog.ids_for(entries, database)
        while True:
            now = _now()
            backup_id = catalog.make_id(now)
            if backup_id not in taken:
                return backup_id, now
            time.sleep(1.05 - (time.time() % 1))

    # -- entry points -----------------------------------------------------------------------------------
    def databases(self):
        """Resolve the databases option (a list or all_databases)."""
        if self.o.get('all_databases'):
            with self.target.psql(self.o.get('maintenance_db') or 'postgres') as s:
                return list_databases(s, connectable=True)
        return list(self.o.get('databases') or [])

    def run(self):
        if self.recipients:
            self.module.get_bin_path('age', required=True)   # fails with a clear message, in check mode too
        reason = unusable_dir_reason(self.dest)
        if reason:
            raise PgOpsError('dest: %s; set dest to a directory this user can create and write in' % reason,
                             step=PREFLIGHT)
        if not self.check_mode:
            try:
                self.dest_changed = ensure_dir(self.dest, self.uid, self.gid)
            except (IOError, OSError) as e:
                raise PgOpsError('dest: cannot create %s or set its mode 0750%s: %s' % (
                    self.dest, ' and owner' if self.uid != -1 or self.gid != -1 else '', e.strerror or e),
                    step=PREFLIGHT)
        try:
            self.target.check_container()
        except PgOpsError as e:
            # the server is unreachable: every requested backup failed, and the catalog says so
            named = list(self.o.get('databases') or [])
            if not named:
                raise
            failed = [self._failed(self._base_meta(db), e) for db in named]
            return failed, failed
        dbs = self.databases()
        wanted = self.o.get('globals')
        if not dbs and not wanted:
            raise PgOpsError('nothing to back up: all_databases found no database', step=PREFLIGHT)
        results, failures, globals_entry = [], [], None
        # globals first, so that each database backup of the run links the roles it needs (listed last, after
        # the databases): unset, they are backed up with every database backup, and a failure does not fail the
        # run (the database backups are good), it is recorded and warned about
        if wanted or (wanted is None and dbs):
            globals_entry = self.backup_globals(self.o.get('maintenance_db') or 'postgres')
            if globals_entry['status'] in ('success', 'planned'):
                self.globals_link = link_globals(globals_entry)
            elif not wanted:
                self.warnings.append('the globals (roles, tablespaces) were not backed up: %s; the database '
                                     'backups of this run link none, so a restore onto a server without their '
                                     'roles will need them created by hand' % globals_entry.get('error'))
        for db in dbs:
            entry = self.backup_one(db)
            results.append(entry)
            if entry['status'] == 'failed':
                failures.append(entry)
        if globals_entry is not None:
            results.append(globals_entry)
            if wanted and globals_entry['status'] == 'failed':
                failures.append(globals_entry)
        return results, failures

    def _server_identity(self, session):
        """The evidence recorded beside the server's name (_server), read once per run."""
        if self.server_identity is None:
            self.server_identity = server_identity(session, self.target)
        return self.server_identity

    def _preflight(self, session, database):
        info = session.query_json(INSPECT_SQL)
        self.target = self.target.for_server(major_of(info['server_version_num']))
        ratio = float(self.o.get('free_space_ratio') or 0)
        need = int(info['database_size'] * ratio)
        free = free_bytes(self.dest)
        if need and free < need:
            raise PgOpsError(
                'not enough free space in %s: %d MiB free, %d MiB wanted (database %s is %d MiB x free_space_ratio %s)'
                % (self.dest, free >> 20, need >> 20, database, info['database_size'] >> 20, ratio), step=PREFLIGHT)
        info['free_bytes'] = free
        return info

    def _base_meta(self, database, scope='database'):
        return {
            'format_version': catalog.METADATA_VERSION, 'scope': scope, 'database': database,
            'kind': self.o['kind'], 'label': self.o.get('label'),
            'format': self.o['format'] if scope == 'database' else 'plain',
            'server': self.target.server, 'host': socket.gethostname(), 'container': self.target.container,
            'collection_version': COLLECTION_VERSION, 'verifications': [],
        }

    def backup_one(self, database):
        meta = self._base_meta(database)
        session = None
        try:
            try:
                session = self.target.psql(database)
                info = self._preflight(session, database)
            except PgOpsError as e:
                if e.step == QUERY:
                    e.msg = 'cannot connect to database %s (%s): %s' % (database, self.target.where(), e.msg)
                    e.step = CONNECT
                e.step = job_step(e.step, BACKUP_STEPS, PREFLIGHT)
                raise
            meta.update(server_version=info['server_version'], database_size=info['database_size'],
                        encoding=info['encoding'], collate=info.get('collate'), ctype=info.get('ctype'),
                        locale_provider=info.get('locale_provider'), locale=info.get('locale'),
                        icu_rules=info.get('icu_rules'),
                        database_settings=session.query_json(DB_SETTINGS_SQL % 'current_database()'),
                        roles=session.query_json(ROLES_SQL), globals=self.globals_link,
                        server_identity=self._server_identity(session))
            dump_version = self.target.tool_version('pg_dump')
            meta['pg_dump_version'] = dump_version
            if self.check_mode:
                backup_id = catalog.make_id(_now())
                self._fill_names(meta, backup_id, version_major(dump_version))
                meta.update(status='planned', id=backup_id, path=os.path.join(self.dest, meta['file']),
                            estimated_size=info['database_size'], free_bytes=info['free_bytes'])
                return meta
            with self._lock(database):
                return self._locked_backup(session, database, meta, dump_version)
        except PgOpsError as e:
            return self._failed(meta, e)
        except (IOError, OSError) as e:
            return self._failed(meta, PgOpsError('writing the backup failed: %s' % e, step=WRITE))
        finally:
            if session is not None:
                session.close()

    def _locked_backup(self, session, database, meta, dump_version):
        """The backup proper, under the database's lock: the id, the dump and its record, or the failure's."""
        self._clean_temp_files(database)
        try:
            backup_id, started = self._allocate_id(database)
            meta.update(id=backup_id, started_at=started.isoformat())
            pg_dump_z, output = self._fill_names(meta, backup_id, version_major(dump_version))
            t0 = time.time()
            try:
                meta.update(dump_in_snapshot(self.target, session, database, output, meta['path'], pg_dump_z,
                                             self.uid, self.gid))
            finally:
                meta['finished_at'] = _now().isoformat()
                meta['duration_seconds'] = round(time.time() - t0, 3)
            meta['status'] = 'success'
            meta['throughput_bytes_per_second'] = int(meta['size'] / max(meta['duration_seconds'], 0.001))
            # under the lock: the next backup of this database sees this id taken
            self._write_meta(meta)
        except PgOpsError as e:
            # the snapshot session failed (BEGIN, the snapshot, COMMIT): the dump is the step in progress
            e.step = job_step(e.step, BACKUP_STEPS, DUMP)
            return self._failed(meta, e, locked=True)
        except (IOError, OSError) as e:
            return self._failed(meta, PgOpsError('writing the backup failed: %s' % e, step=WRITE), locked=True)
        self._log('backup of %s (%s%s, id %s) completed successfully: %s, %d bytes, %.1fs'
                  % (database, meta['kind'], ', ' + meta['label'] if meta.get('label') else '', meta['id'],
                     meta['path'], meta['size'], meta['duration_seconds']))
        return meta

    def _fill_names(self, meta, backup_id, dump_major):
        """The backup's format (``auto`` resolved), id, file names and compression in ``meta``; returns pg_dump's -Z
        value (custom/directory) and the DumpOutput to write it with."""
        fmt = meta['format'] = resolve_format(self.o['format'], dump_major, bool(self.recipients))
        output = self.output.with_format(fmt)
        pg_dump_z = None
        if fmt == 'plain':
            meta['compression'], meta['compression_level'] = self.compression, self.level
            meta['compressed_by'] = 'external' if self.compression != 'none' else None
        else:
            pg_dump_z, meta['compression'], meta['compression_level'] = output.internal_compress(
                dump_major, self.warnings)
            meta['compressed_by'] = 'pg_dump' if meta['compression'] != 'none' else None
        entry_stem = catalog.stem(meta['database'], meta['kind'], meta.get('label'), backup_id)
        name = entry_stem + output.suffix(fmt, meta['compression'])
        meta.update(output.encryption_meta())
        meta_file = catalog.meta_path(self.dest, entry_stem)
        # checked before the names are taken: a refused run must not record its failure over another backup
        if len(os.path.basename(temp_name(meta_file)).encode('utf-8')) > 255:
            raise PgOpsError('the file name for database %r with this kind and label is over 255 bytes once escaped; '
                             'use a shorter label' % meta['database'], step=OPTIONS)
        if not self.check_mode and (os.path.lexists(os.path.join(self.dest, name)) or os.path.lexists(meta_file)):
            raise PgOpsError('%s already exists; refusing to overwrite a backup' % meta_file, step=DUMP)
        meta['id'] = backup_id
        meta['file'] = name
        meta['path'] = os.path.join(self.dest, name)
        meta['meta_path'] = meta_file
        return pg_dump_z, output

    def _write_meta(self, meta):
        path = meta['meta_path']
        record = dict((k, v) for k, v in meta.items() if k not in ('meta_path', 'path') and not k.startswith('_'))
        write_json_atomic(path, record, self.uid, self.gid)

    def _failed(self, meta, err, locked=False):
        """Record a failed run in the catalog (under the database's lock) and the log; returns its entry.

        ``locked``: the caller holds the database's lock. Otherwise it is taken here, waiting up to lock_timeout
        like a backup would; when the failure is that lock (another run held it for lock_timeout), only one more
        try is made, so a run never waits twice, and a warning says when the failure could not be recorded.
        """
        # every recorded failure names a step of BACKUP_STEPS: an unnamed one is the step in progress
        err.step = job_step(err.step, BACKUP_STEPS, DUMP if meta.get('id') else PREFLIGHT)
        meta['status'] = 'failed'
        meta['error'] = err.msg
        meta['failed_step'] = err.step
        if not self.check_mode and os.path.isdir(self.dest):
            if locked:
                self._record_failure(meta)
            else:
                try:
                    with self._lock(meta['database'], 0 if err.step == LOCK else None):
                        self._record_failure(meta)
                except PgOpsError as e:
                    why = e.msg if err.step != LOCK else (
                        'another run still holds the lock of the database, so no id can be taken safely')
                    self.warnings.append('the failed backup of %s is not recorded in %s: %s'
                                         % (meta['database'], self.dest, why))
                except (IOError, OSError) as e:
                    self.warnings.append('the failed backup of %s is not recorded in %s: %s'
                                         % (meta['database'], self.dest, e))
        self._log('backup of %s (%s%s%s) FAILED: %s' % (
            meta['database'], meta['kind'], ', ' + meta['label'] if meta.get('label') else '',
            ', id ' + meta['id'] if meta.get('id') else '', err.msg))
        meta.pop('path', None)
        return meta

    def _record_failure(self, meta):
        """Under the database's lock: a fresh id when none was taken yet, then the failure's record."""
        try:
            if not meta.get('meta_path'):
                # failed before an id was taken (preflight, connect, lock): a fresh id all the same
                backup_id, started = self._allocate_id(meta['database'])
                entry_stem = catalog.stem(meta['database'], meta['kind'], meta.get('label'), backup_id)
                meta.update(id=backup_id, started_at=started.isoformat(), finished_at=started.isoformat(),
                            meta_path=catalog.meta_path(self.dest, entry_stem))
            if meta.get('path') and not os.path.lexists(meta['meta_path']):
                remove_tree(meta['path'])   # a finished dump whose metadata could not be written is no backup
            for key in ('size', 'sha256', 'files', 'throughput_bytes_per_second'):
                meta.pop(key, None)
            meta['file'] = None
            if os.path.lexists(meta['meta_path']):   # never record a failure over another backup's metadata
                raise OSError('%s exists already' % meta['meta_path'])
            self._write_meta(meta)
        except (IOError, OSError) as e:
            self.warnings.append('could not record the failed backup in %s: %s'
                                 % (meta.get('meta_path') or self.dest, e))

    def backup_globals(self, any_database):
        """Roles and tablespaces (pg_dumpall --globals-only); role passwords only when asked."""
        meta = self._base_meta(catalog.GLOBALS, scope='globals')
        meta.update(compression=self.compression, compression_level=self.level,
                    role_passwords=bool(self.o.get('globals_role_passwords')))
        try:
            version = self.target.tool_version('pg_dumpall')
            meta['pg_dump_version'] = version
            if self.check_mode:
                backup_id = catalog.make_id(_now())
                entry_stem = catalog.stem(catalog.GLOBALS, meta['kind'], meta['label'], backup_id)
                meta.update(self.output.encryption_meta())
                meta.update(status='planned', id=backup_id,
                            path=os.path.join(self.dest, entry_stem + self.output.suffix('plain', self.compression)))
                return meta
            with self._lock(catalog.GLOBALS):
                return self._locked_globals(meta, any_database)
        except PgOpsError as e:
            return self._failed(meta, e)
        except (IOError, OSError) as e:
            return self._failed(meta, PgOpsError('writing the backup failed: %s' % e, step=WRITE))

    def _locked_globals(self, meta, any_database):
        self._clean_temp_files(catalog.GLOBALS)
        try:
            backup_id, started = self._allocate_id(catalog.GLOBALS)
            entry_stem = catalog.stem(catalog.GLOBALS, meta['kind'], meta['label'], backup_id)
            meta.update(id=backup_id, started_at=started.isoformat(),
                        file=entry_stem + self.output.suffix('plain', self.compression),
                        meta_path=catalog.meta_path(self.dest, entry_stem))
            meta['path'] = os.path.join(self.dest, meta['file'])
            t0 = time.time()
            args = ['-w', '--globals-only', '-l', conninfo_dbname(any_database)]
            if not meta['role_passwords']:
                args.append('--no-role-passwords')
            stages = [Stage('pg_dumpall', self.target.argv('pg_dumpall', args))]
            comp = self.output.compressor()
            if comp:
                stages.append(comp)
            enc = self.output.encryptor()
            if enc:
                stages.append(enc)
            meta.update(self.output.encryption_meta())
            meta['size'], meta['sha256'] = run_to_file(stages, meta['path'], self.target.env(), self.uid, self.gid)
            meta.update(status='success', finished_at=_now().isoformat(), duration_seconds=round(time.time() - t0, 3))
            self._write_meta(meta)
        except PgOpsError as e:
            return self._failed(meta, e, locked=True)
        except (IOError, OSError) as e:
            return self._failed(meta, PgOpsError('writing the backup failed: %s' % e, step=WRITE), locked=True)
        self._log('backup of globals (%s, id %s) completed successfully: %s, %d bytes'
                  % (meta['kind'], meta['id'], meta['path'], meta['size']))
        return meta


# Returned at the top level when one database was backed up. The dump's path is ``backup_path`` and the directory
# ``backup_dir``: Ansible stats a top-level ``path`` (else ``dest``) on exit and overwrites ``size`` with it
# (4096 for a format=directory dump).
SUMMARY_KEYS = (('id', 'id'), ('path', 'backup_path'), ('size', 'size'), ('sha256', 'sha256'),
                ('duration_seconds', 'duration_seconds'), ('throughput_bytes_per_second', 'throughput_bytes_per_second'),
                ('rows_total', 'rows_total'))


def run_pg_backup(module):
    """pg_backup's main: validate cross-option rules, run the job, exit or fail with every backup's outcome."""
    # imported here so that the module file stays an argument spec and one call
    from ansible_collections.pgops.postgresql.plugins.module_utils._connection import PgTarget

    # the rules between options are pg_backup's option_errors() and its declared rules, checked before this
    p = module.params
    try:
        job = BackupJob(module, PgTarget(module), p)
        results, failures = job.run()
    except PgOpsError as e:
        module.fail_json(msg=e.msg, failed_step=job_step(e.step, BACKUP_STEPS, PREFLIGHT))
    for w in job.warnings:
        module.warn(w)
    out = dict(changed=True, backups=results, backup_dir=job.dest, removed_temp_files=job.removed_temp_files)
    db_results = [r for r in results if r.get('scope') == 'database']
    if len(db_results) == 1:
        for key, name in SUMMARY_KEYS:
            if key in db_results[0]:
                out[name] = db_results[0][key]
    if failures:
        # changed stays true: the failed runs are recorded in the catalog and the log
        module.fail_json(msg='; '.join('backup of %s failed at %s: %s' % (f['database'], f.get('failed_step'), f['error'])
                                       for f in failures), **out)
    module.exit_json(**out)
