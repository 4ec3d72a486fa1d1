# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgops.postgresql contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# PRIVATE to the collection: this is not a public API and may change without notice.
"""Writing a dump: the output a backup asks for (format, compression and level, age recipients) as pipeline stages,
and the dump of one database inside an exported snapshot while the same snapshot counts every table's rows.

``dump_in_snapshot`` takes everything it needs and returns what the metadata records; the finished dump keeps a
hidden temporary name until its row counts are in, so that nothing half-made ever looks like a backup.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import copy
import os
import tempfile
import threading
import time

from ansible_collections.pgops.postgresql.plugins.module_utils import _catalog as catalog
from ansible_collections.pgops.postgresql.plugins.module_utils._connection import conninfo_dbname
from ansible_collections.pgops.postgresql.plugins.module_utils._databases import (
    objects_record, read_objects, read_sequences,
)
from ansible_collections.pgops.postgresql.plugins.module_utils._errors import PgOpsError
from ansible_collections.pgops.postgresql.plugins.module_utils._fsutil import fsync_dir, remove_tree, temp_name
from ansible_collections.pgops.postgresql.plugins.module_utils._pipeline import (
    Stage, close_stages, failure_message, fsync_tree, run_to_file, sha256_tree, start_stages, stop_stages,
)
from ansible_collections.pgops.postgresql.plugins.module_utils._steps import COUNT, DUMP, OPTIONS

AGE_SUFFIX = '.age'


class DumpOutput(object):
    """What a backup writes: ``fmt``, ``compression`` at ``level``, encrypted to ``recipients`` (age public keys)."""

    def __init__(self, module, fmt, compression, level, recipients, jobs=1):
        self.module = module
        self.format = fmt
        self.compression = compression
        self.level = level
        self.recipients = list(recipients or [])
        self.jobs = int(jobs or 1)
        self.recipients_file = None

    def with_format(self, fmt):
        """A copy writing format ``fmt`` (``auto`` resolved by the job once pg_dump's version is known)."""
        other = copy.copy(self)
        other.format = fmt
        return other

    def encryptor(self):
        """The ``age`` stage that ends the pipeline when recipients are given (None otherwise). The public keys go
        into a 0600 file in the module's temporary directory (``-R``): they are no secret, but argv stays short."""
        if not self.recipients:
            return None
        age = self.module.get_bin_path('age', required=True)
        if self.recipients_file is None:
            fd, path = tempfile.mkstemp(prefix='pgops-recipients-', suffix='.txt', dir=self.module.tmpdir)
            with os.fdopen(fd, 'w') as f:
                os.fchmod(f.fileno(), 0o600)
                f.write(''.join(k + '\n' for k in self.recipients))
            self.recipients_file = path
        return Stage('age', [age, '--encrypt', '-R', self.recipients_file])

    def encryption_meta(self):
        """The metadata keys saying how the backup is encrypted."""
        meta = dict(encrypted=bool(self.recipients))
        if self.recipients:
            meta['encryption'] = dict(tool='age', recipients=list(self.recipients))
        return meta

    def suffix(self, fmt, compression):
        return catalog.dump_suffix(fmt, compression) + (AGE_SUFFIX if self.recipients else '')

    def compressor(self):
        """The external compressor stage for plain SQL and globals (runs where the module runs); None for none."""
        c, lvl = self.compression, self.level
        if c == 'none':
            return None
        if c == 'zstd':
            return Stage('zstd', [self.module.get_bin_path('zstd', required=True), '-q', '-c', '-T0', '-%d' % lvl])
        if c == 'gzip':
            binary = self.module.get_bin_path('pigz') or self.module.get_bin_path('gzip', required=True)
            return Stage(os.path.basename(binary), [binary, '-c', '-%d' % lvl])
        return Stage('lz4', [self.module.get_bin_path('lz4', required=True), '-q', '-c', '-%d' % lvl])

    def internal_compress(self, dump_major, warnings):
        """(pg_dump -Z value, compression, level) for the custom/directory formats: zstd and lz4 there need pg_dump
        16 or newer; older ones use gzip (a warning says so)."""
        c, lvl = self.compression, self.level
        if c == 'none':
            return '0', 'none', 0
        if c in ('zstd', 'lz4') and dump_major < 16:
            warnings.append('compression=%s inside the %s format needs pg_dump 16 or newer (this is %s): '
                            'used gzip level 6 instead' % (c, self.format, dump_major))
            return '6', 'gzip', 6
        if dump_major < 16:
            return str(lvl), 'gzip', lvl
        return '%s:%d' % (c, lvl), c, lvl

    def stages(self, target, args, pg_dump_z):
        """The pipeline of a plain or custom dump: pg_dump [| compressor] [| age]."""
        if self.format == 'plain':
            stages = [Stage('pg_dump', target.argv('pg_dump', ['-Fp'] + args))]
            comp = self.compressor()
            if comp:
                stages.append(comp)
        else:
            stages = [Stage('pg_dump', target.argv('pg_dump', ['-Fc', '-Z', pg_dump_z] + args))]
        enc = self.encryptor()
        if enc:
            stages.append(enc)
        return stages


def dump_in_snapshot(target, session, database, output, path, pg_dump_z, uid=-1, gid=-1):
    """Dump ``database`` to ``path`` as ``output`` says, in a REPEATABLE READ snapshot exported by ``session``
    (open on that database) while the same snapshot counts every table's rows in a thread.

    Returns the metadata it learnt: snapshot, sequence_values (read before pg_dump starts), size, sha256 (files for
    a directory), and objects_record()'s keys.
    A failure removes what was written and raises (step dump, or count when the counting failed)."""
    session.query('BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY')
    snapshot = session.query('SELECT pg_export_snapshot()')[0].strip()
    # sequences are not transactional: the snapshot does not hold their values, pg_dump reads each when it gets
    # to it. Read here, before pg_dump starts, a sequence that only moves forward is never further on in our
    # record than in the dump (verify_scratch then accepts a restored value ahead of the record, never behind)
    reading = time.time()
    try:
        sequences = read_sequences(session)
    except PgOpsError as e:
        raise PgOpsError('reading the sequence values in the dump snapshot failed: %s' % e.msg, step=COUNT)
    learnt = dict(snapshot=snapshot, sequence_values=sequences)
    counted = {}

    def count():
        started = time.time()
        try:
            counted['objects'] = read_objects(session)
        except PgOpsError as e:
            counted['error'] = e
        counted['seconds'] = time.time() - started

    counter = threading.Thread(target=count, name='pgops-rowcount')
    counter.start()
    # the finished dump keeps a hidden temporary name until its row counts are in: a run killed before its
    # metadata could be written leaves only a temporary name (removed by the next run), never a complete-looking
    # dump without metadata
    staged = temp_name(path)
    phases = dict(sequences=round(time.time() - reading, 3))
    started = time.time()
    try:
        args = ['-w', '--snapshot=' + snapshot, '-d', conninfo_dbname(database)]
        env = target.env()
        if output.format == 'directory':
            learnt.update(_dump_directory(target, output, args, staged, pg_dump_z, env, uid, gid))
        else:
            stages = output.stages(target, args, pg_dump_z)
            learnt['size'], learnt['sha256'] = run_to_file(stages, path, env, uid, gid, publish=False)
            # the CPU each process of the pipeline used (they run at once: the largest is the bottleneck); not
            # pg_dump's in a container, where our child is only the runtime's client
            phases['cpu_seconds'] = dict((st.name, st.cpu_seconds) for st in stages
                                         if st.cpu_seconds is not None and not (target.container and st.name == 'pg_dump'))
        phases['dump'] = round(time.time() - started, 3)
    except PgOpsError as e:
        counter.join()
        if 'error' in counted:
            # the count ended the snapshot's transaction: pg_dump then fails with "invalid snapshot identifier"
            # (or reports the same cause second); the count's error is the one to report
            raise PgOpsError('counting rows in the dump snapshot failed: %s (pg_dump then failed: %s)'
                             % (counted['error'].msg, e.msg), step=COUNT)
        raise
    finally:
        counter.join()
    if 'error' in counted:
        remove_tree(staged, ignore_errors=True)
        raise PgOpsError('counting rows in the dump snapshot failed: %s' % counted['error'].msg, step=COUNT)
    phases['count'] = round(counted['seconds'], 3)
    phases['count_wait'] = round(max(0.0, time.time() - started - phases['dump']), 3)
    finishing = time.time()
    try:
        session.query('COMMIT')
        os.rename(staged, path)
        fsync_dir(os.path.dirname(path))
    except BaseException:
        remove_tree(staged, ignore_errors=True)
        raise
    phases['finish'] = round(time.time() - finishing, 3)
    learnt.update(objects_record(counted['objects']))
    learnt['phases'] = phases
    return learnt


def _dump_directory(target, output, args, tmp, pg_dump_z, env, uid, gid):
    """pg_dump -Fd into the hidden temporary name, fsynced and hashed: size, sha256 and files."""
    if target.container:
        raise PgOpsError('format=directory writes the dump from inside the container; use format=custom '
                         'with container (or run pg_backup natively against the server)', step=OPTIONS)
    stage = Stage('pg_dump', target.argv('pg_dump', ['-Fd', '-j', str(output.jobs), '-Z', pg_dump_z, '-f', tmp]
                                         + args))
    try:
        start_stages([stage], env)
        stage.proc.stdout.read()
        stage.proc.wait()
        if stage.rc != 0:
            raise PgOpsError(failure_message([stage], 'backup pipeline'), step=DUMP)
        fsync_tree(tmp, uid=uid, gid=gid)
        size, digest, files = sha256_tree(tmp)
        return dict(size=size, sha256=digest, files=files)
    except BaseException:
        stop_stages([stage])
        remove_tree(tmp)
        raise
    finally:
        close_stages([stage])
