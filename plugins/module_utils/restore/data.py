# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgops.postgresql contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# PRIVATE to the collection: this is not a public API and may change without notice.
"""Reading a backup file for a restore: the file check before anything is touched, and the restore of its data
into a scratch database through checked pipelines (age -d | decompress | psql in one transaction, or pg_restore).

One pass over the file: the quick file check (size, the archive's table of contents, the age identity against the
file's header) comes first; the sha256 is computed by a thread while the restore reads the same file, and the
restore's own decryption and decompression are the stream test. The scratch database is trusted by nothing until
the restore, the sha256 and the verification all passed, so a damaged file fails there with the target untouched
(step file_check: the file's fault, as when it was read twice). ``full=True`` (check mode, which restores nothing;
directory-format backups) keeps the complete check before anything else.

Each step takes what it needs and fills the ``checks`` it is given; a failure is judged (_verdict) as the
backup's fault or not.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import hashlib
import os
import subprocess
import tempfile
import threading

from ansible_collections.pgops.postgresql.plugins.module_utils._age import recipients
from ansible_collections.pgops.postgresql.plugins.module_utils._connection import conninfo_dbname
from ansible_collections.pgops.postgresql.plugins.module_utils._errors import PgOpsError
from ansible_collections.pgops.postgresql.plugins.module_utils._fsutil import CHUNK, sha256_file
from ansible_collections.pgops.postgresql.plugins.module_utils._pipeline import (
    Stage, close_stages, failure_message, popen, run_drained, run_framed, run_pipeline, sha256_tree,
    stage_report, stop_stages,
)
from ansible_collections.pgops.postgresql.plugins.module_utils._steps import FILE_CHECK, OPTIONS, RESTORE
from ansible_collections.pgops.postgresql.plugins.module_utils._verdict import BackupFault, judge

DECOMPRESS = {'zstd': ['zstd', '-q', '-d', '-c'], 'gzip': ['gzip', '-d', '-c'], 'lz4': ['lz4', '-q', '-d', '-c']}
TEST_STREAM = {'zstd': ['zstd', '-q', '-t'], 'gzip': ['gzip', '-t'], 'lz4': ['lz4', '-q', '-t']}


class FileDigest(object):
    """sha256 and size of a file, computed by a thread while a restore reads the same file (the page cache
    serves the second reader: one pass over the disk)."""

    def __init__(self, path):
        self.path = path
        self.size = 0
        self.digest = hashlib.sha256()
        self.error = None
        self.thread = threading.Thread(target=self._run, name='pgops-sha256')
        self.thread.daemon = True
        self.thread.start()

    def _run(self):
        try:
            with open(self.path, 'rb') as f:
                while True:
                    data = f.read(CHUNK)
                    if not data:
                        break
                    self.digest.update(data)
                    self.size += len(data)
        except (IOError, OSError) as e:
            self.error = e

    def damage(self, meta):
        """Wait for the digest; a BackupFault (step file_check) when the file is not the one the metadata
        describes, None when it is. A file that could not be read says nothing about the backup (PgOpsError)."""
        self.thread.join()
        if self.error is not None:
            return PgOpsError('reading %s for its sha256 failed: %s' % (self.path, self.error), step=FILE_CHECK)
        digest = self.digest.hexdigest()
        if digest != meta['sha256'] or self.size != meta['size']:
            return BackupFault(damaged_message(meta, digest, self.size), step=FILE_CHECK)
        return None


def damaged_message(meta, digest, size):
    return ('backup %s is damaged: sha256 %s and size %d, the metadata says %s and %d'
            % (meta['file'], digest, size, meta['sha256'], meta['size']))


def _tool(module, table, compression):
    argv = list(table[compression])
    argv[0] = module.get_bin_path(argv[0], required=True)
    return Stage(os.path.basename(argv[0]), argv)


def check_file(module, target, identity, meta, path, checks, full=True):
    """The file check, before anything is touched. ``full``: sha256 and size against the metadata and a readable
    format, an encrypted backup decrypted in full into the format test (proving the ciphertext's integrity too),
    never onto disk. Otherwise the quick check of the one-pass restore: the size, the archive's table of contents,
    the identity against the file's header; the rest is proven by restore_data (``digest``).
    ``identity``: an AgeIdentity (used only for encrypted backups)."""
    if meta.get('encrypted'):
        identity.file(meta)     # no identity: refused before the file is even read
    if not os.path.exists(path):
        raise BackupFault('backup file %s is missing' % path, step=FILE_CHECK)
    if not full and meta['format'] != 'directory':
        _quick_check(module, target, identity, meta, path, checks)
        return
    if meta['format'] == 'directory':
        size, digest, dummy = sha256_tree(path)
    else:
        size, digest = sha256_file(path)
    if digest != meta['sha256'] or size != meta['size']:
        raise BackupFault(damaged_message(meta, digest, size), step=FILE_CHECK)
    checks['sha256'] = 'passed'
    if meta.get('encrypted'):
        matched = identity.check(meta)
        if matched:
            checks['age_identity'] = matched
    stream_check(module, target, identity, meta, path, checks)


def stream_check(module, target, identity, meta, path, checks):
    """The file's stream is readable to its end: decrypted (age authenticates every chunk), decompressed
    (``zstd -t``...) or, for an archive, its table of contents listed. Raises at step file_check."""
    env = target.env()
    try:
        age = identity.decryptor(meta)
        if age is not None:
            if meta['format'] != 'plain':
                # pg_restore --list reads the table of contents only: the rest is drained through age
                run_drained([age], Stage('pg_restore', target.argv_noconn(
                    'pg_restore', ['--list'], interactive=bool(target.container))), env, FILE_CHECK, path)
            else:
                stages = [age]
                if meta['compression'] != 'none':
                    stage = _tool(module, TEST_STREAM, meta['compression'])
                    stage.argv.append('-')
                    stages.append(stage)
                run_pipeline(stages, env, FILE_CHECK, stdin_path=path)
            checks['decryption'] = 'passed'
        elif meta['format'] == 'plain':
            if meta['compression'] != 'none':
                stage = _tool(module, TEST_STREAM, meta['compression'])
                stage.argv.append(path)
                run_pipeline([stage], env, FILE_CHECK)
        else:
            _list_archive(target, path, env)
    except PgOpsError as e:
        raise _file_fault(e, meta, identity)
    checks['format'] = 'passed'


def _list_archive(target, path, env):
    """pg_restore --list: the archive's table of contents is readable (it reads no further)."""
    if not target.container:
        run_pipeline([Stage('pg_restore', target.argv_noconn('pg_restore', ['--list', path]))], env, FILE_CHECK)
    else:
        run_pipeline([Stage('pg_restore', target.argv_noconn('pg_restore', ['--list'], interactive=True))],
                     env, FILE_CHECK, stdin_path=path)


def _file_fault(e, meta, identity):
    e.step = FILE_CHECK
    judged = judge(e, identity_matches=identity.matched if meta.get('encrypted') else None)
    if meta.get('encrypted') and not isinstance(judged, BackupFault):
        judged.msg += ' (backup %s is encrypted to %s)' % (meta['id'], ', '.join(recipients(meta)))
    return judged


def _quick_check(module, target, identity, meta, path, checks):
    size = os.path.getsize(path)
    if size != meta['size']:
        raise BackupFault('backup %s is damaged: sha256 and size differ from the metadata (size %d, the metadata '
                          'says %d)' % (meta['file'], size, meta['size']), step=FILE_CHECK)
    checks['sha256'] = 'pending (computed while the restore reads the file)'
    env = target.env()
    try:
        if meta.get('encrypted'):
            matched = identity.check(meta)
            if matched:
                checks['age_identity'] = matched
            _probe_identity(identity, meta, path, env)
            checks['age_header'] = 'passed'
        elif meta['format'] == 'custom':
            _list_archive(target, path, env)
    except PgOpsError as e:
        raise _file_fault(e, meta, identity)


def _probe_identity(identity, meta, path, env):
    """``age -d`` on the file until its first clear byte: the identity opens the file's header (a wrong one fails
    here, before any database is made); the rest is decrypted, and authenticated, by the restore."""
    stage = identity.decryptor(meta)
    with open(path, 'rb') as src:
        stage.err = tempfile.TemporaryFile()
        stage.proc = popen(stage.argv, stdin=src, stdout=subprocess.PIPE, stderr=stage.err, env=env)
    try:
        first = stage.proc.stdout.read(1)
        if first:
            return
        stage.proc.wait()
        if stage.rc != 0:
            err = PgOpsError(failure_message([stage], 'age header check'), step=FILE_CHECK)
            err.stages = stage_report([stage])
            raise err
    finally:
        stop_stages([stage])
        close_stages([stage])


def restore_data(module, target, identity, meta, path, scratch, checks, jobs=1, no_owner=False, digest=None):
    """Restore the backup file ``path`` into the (empty) scratch database; ``target`` carries the session settings
    the restore's connections use. A failure is judged and raised at step restore: the scratch then holds nothing
    committed (plain: our own BEGIN/COMMIT; one pg_restore job: --single-transaction) or is dropped by the caller.

    ``digest`` (a FileDigest of ``path``, one-pass restore): the file must also be the one the metadata describes;
    if not, that is the failure (step file_check), whatever the restore said. A stream that does not decrypt or
    decompress is the file's fault too (step file_check)."""
    try:
        checks['restore_method'] = _restore_with(module, target, identity, meta, path, scratch, jobs, no_owner)
    except PgOpsError as e:
        e.step = RESTORE
        judged = judge(e)
        if digest is None:
            raise judged
        # a failed one-pass restore: was it the file? Its sha256, then (only now, on this failure path) the
        # stream test the quick check left out, decide - as a full file check before the restore would have
        damaged = digest.damage(meta)
        if damaged is None:
            checks['sha256'] = 'passed'
            try:
                stream_check(module, target, identity, meta, path, checks)
            except PgOpsError as stream:
                damaged = stream
        if damaged is not None:
            damaged.msg += ' (the restore into the scratch database failed on it: %s)' % e.msg
            raise damaged
        raise judged
    if digest is not None:
        damaged = digest.damage(meta)
        if damaged is not None:
            raise damaged
        checks['sha256'] = 'passed'
        checks['format'] = 'passed'
        if meta.get('encrypted'):
            checks['decryption'] = 'passed'


def _restore_with(module, target, identity, meta, path, scratch, jobs, no_owner):
    env = target.env()
    dbarg = conninfo_dbname(scratch)
    age = identity.decryptor(meta)
    if meta['format'] == 'plain':
        # BEGIN and COMMIT are ours: COMMIT is sent only after the whole dump went through and every stage
        # exited 0, so a killed run or a failed stage can never commit a partial restore
        psql = Stage('psql', target.argv('psql', ['-X', '-w', '-q', '-v', 'ON_ERROR_STOP=1', '-v',
                                                  'VERBOSITY=verbose', '-o', '/dev/null', '-d', dbarg],
                                         interactive=True))
        producers = []
        if age is not None:
            producers.append(age)     # age -d | zstd -d | psql: a failing age means no COMMIT is sent
        if meta['compression'] != 'none':
            producers.append(_tool(module, DECOMPRESS, meta['compression']))
        run_framed(producers, psql, env, RESTORE, b'BEGIN;\n', b'\nCOMMIT;\n', stdin_path=path)
        return 'psql, one transaction'
    args = ['--exit-on-error', '--no-password', '-d', dbarg]
    if no_owner:
        args += ['--no-owner', '--no-privileges']
    # one pg_restore job (a container or an encrypted archive read from stdin, or jobs: 1) restores in one
    # transaction: killed, or reading a stream that ends early, it commits nothing. Parallel jobs commit
    # each item as they finish it; a killed run's scratch database is dropped by the next one.
    single = ['--single-transaction']
    if age is not None:
        # age -d | pg_restore reading stdin (natively and in a container): the clear dump never reaches
        # a disk, and pg_restore -j needs a seekable file, so an encrypted archive is restored by one job.
        # Drained: age authenticates the whole file even if pg_restore stops reading before its end.
        run_drained([age], Stage('pg_restore', target.argv(
            'pg_restore', single + args, interactive=bool(target.container))), env, RESTORE, path)
        return 'pg_restore reading age -d, one transaction'
    if target.container:
        if meta['format'] == 'directory':
            raise PgOpsError('a directory-format backup cannot be restored with container; restore it '
                             'natively', step=OPTIONS)
        inner = target.container_path(path) if jobs > 1 else None
        if inner:
            # the backup directory is mounted in the container: pg_restore -j reads the file there, no copy
            run_pipeline([Stage('pg_restore', target.argv('pg_restore', ['-j', str(jobs)] + args + [inner]))],
                         env, RESTORE)
            return 'pg_restore -j %d in the container (%s)' % (jobs, inner)
        # not mounted: one job reading stdin (-j needs a seekable file; copying the dump in would double it)
        run_pipeline([Stage('pg_restore', target.argv('pg_restore', single + args, interactive=True))],
                     env, RESTORE, stdin_path=path)
        return 'pg_restore reading stdin, one transaction'
    parallel = ['-j', str(jobs)] if jobs > 1 else single
    run_pipeline([Stage('pg_restore', target.argv('pg_restore', parallel + args + [path]))], env, RESTORE)
    return 'pg_restore -j %d' % jobs if jobs > 1 else 'pg_restore, one transaction'
