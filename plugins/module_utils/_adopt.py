# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgops.postgresql contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# PRIVATE to the collection: this is not a public API and may change without notice.
"""backup_adopt's logic: register the dumps a team already has (the plan's db-backup.sh) in the catalog.

A file is adopted when its name reads unambiguously as ``<database>_<kind>[_<label>]_<YYYYMMDD>_<HHMMSS>.<ext>``
and its content proves to be a whole dump: a gzip stream that decompresses to its end (CRC and length checked) into
a plain SQL dump that starts with pg_dump's header and ends with its ``dump complete`` trailer, an uncompressed
plain dump with the same header and trailer, or a custom-format archive (``PGDMP``) that pg_restore reads from end
to end. The format and compression come from the content, never from the suffix alone.

Adopting writes one metadata record beside the dump (``<stem>.meta.json``, the catalog's schema, ``origin:
adopted``) with the collection's atomic writer, under the database's backup lock. The dump itself is never moved,
renamed or rewritten. An adopted backup has no snapshot row counts: its first verified restore records the counts
it found (see _restore.py), and it is verified only by such a restore.

Everything is decided first (the same checks in check mode), then acted on; a second run finds every file in the
catalog already and adopts nothing.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import datetime
import hashlib
import os
import re
import socket
import stat
import subprocess
import tempfile
import time
import zlib

from ansible_collections.pgops.postgresql.plugins.module_utils import _catalog as catalog
from ansible_collections.pgops.postgresql.plugins.module_utils._errors import PgOpsError
from ansible_collections.pgops.postgresql.plugins.module_utils._fsutil import (
    CHUNK, COLLECTION_VERSION, DirLock, is_temp_name, write_json_atomic,
)
from ansible_collections.pgops.postgresql.plugins.module_utils._pipeline import popen
from ansible_collections.pgops.postgresql.plugins.module_utils._steps import LOCK, OPTIONS, PREFLIGHT, WRITE

ORIGIN = 'adopted'
# the suffixes a dump of db-backup.sh (or a hand-made pg_dump) may carry; longest first
DUMP_SUFFIXES = ('.sql.gz', '.dump.gz', '.sql.zst', '.sql.lz4', '.sql', '.dump', '.backup', '.gz')
ORIGINAL_META_SUFFIX = '.meta'          # db-backup.sh's own metadata file beside the dump
ORIGINAL_META_MAX = 64 * 1024           # kept as text up to this size; larger ones are kept by sha256 only
ID_TAIL_RE = re.compile(r'^(?P<head>.+)_(?P<id>\d{8}_\d{6})$')

# the reasons a file is not adopted (``rejected[].problem``): a closed set
NAME = 'name'               # the name does not read as database, kind, [label,] id
AMBIGUOUS = 'ambiguous'     # it reads more than one way
READ = 'read'               # the file cannot be read (permissions, I/O), or is not a regular file
CONTENT = 'content'         # not a whole dump: broken gzip stream, truncated, not pg_dump output
UNSUPPORTED = 'unsupported'  # a real format this adopt does not register (zstd, lz4, age, a cluster dump)
CONFLICT = 'conflict'       # its id is taken for the database, or its metadata name exists already
CHECK = 'check'             # it could not be checked here (pg_restore missing or too old): says nothing of the file
PROBLEMS = (NAME, AMBIGUOUS, READ, CONTENT, UNSUPPORTED, CONFLICT, CHECK)

GZIP_MAGIC = b'\x1f\x8b'
PGDMP_MAGIC = b'PGDMP'
ZSTD_MAGIC = b'\x28\xb5\x2f\xfd'
LZ4_MAGIC = b'\x04\x22\x4d\x18'
AGE_MAGIC = b'age-encryption.org/'
PLAIN_HEADER = b'-- PostgreSQL database dump'
PLAIN_TRAILER = b'-- PostgreSQL database dump complete'
CLUSTER_HEADER = b'-- PostgreSQL database cluster dump'
HEAD_KEEP = 8192
GZIP_OUT_MAX = 4 * CHUNK
TAIL_KEEP = 4096
VERSION_LINES = (('server_version', re.compile(br'^-- Dumped from database version (\S.*)$', re.M)),
                 ('pg_dump_version', re.compile(br'^-- Dumped by pg_dump version (\S.*)$', re.M)))


class Rejected(Exception):
    """A file that is not adopted, and why: ``problem`` (one of PROBLEMS) and a message naming the file."""

    def __init__(self, problem, msg):
        super(Rejected, self).__init__(msg)
        self.problem = problem
        self.msg = msg


# -- names ----------------------------------------------------------------------------------------------------
def split_suffix(name):
    """(stem, suffix) for a name ending in one of DUMP_SUFFIXES, else (name, None)."""
    for suffix in DUMP_SUFFIXES:
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[:-len(suffix)], suffix
    return name, None


def _kind_at(tokens, i):
    """(kind, tokens it spans) when a kind starts at tokens[i] (``pre_restore`` spans two), else (None, 0)."""
    for kind in catalog.KINDS:
        parts = kind.split('_')
        if tokens[i:i + len(parts)] == parts:
            return kind, len(parts)
    return None, 0


def readings(stem):
    """Every way ``stem`` reads as ``<database>_<kind>[_<label>]_<id>``: a list of (database, kind, label, id).

    The id is the last two tokens (``YYYYMMDD_HHMMSS``); the kind is any kind of the catalog (full, manual,
    snapshot, pre_deploy, pre_restore) after a non-empty database; what lies between the kind and the id is the
    label. A database or label holding a kind word can give several readings: the caller refuses to guess.
    """
    m = ID_TAIL_RE.match(stem)
    if not m:
        return []
    tokens = m.group('head').split('_')
    out = []
    for i in range(1, len(tokens)):
        kind, span = _kind_at(tokens, i)
        if not kind:
            continue
        database = '_'.join(tokens[:i])
        label = '_'.join(tokens[i + span:]) or None
        if not database or (label is not None and not label.strip('_')):
            continue
        out.append((database, kind, label, m.group('id')))
    return out


def parse_name(name, databases=None):
    """(database, kind, label, id, suffix) of a dump's file name, or Rejected(NAME / AMBIGUOUS) saying why.

    ``databases``: the only databases a name may be of (it also settles a name that reads several ways).
    """
    stem, suffix = split_suffix(name)
    if suffix is None:
        raise Rejected(NAME, '%s: not a dump name (expected one of the suffixes %s)' % (name, ', '.join(DUMP_SUFFIXES)))
    found = readings(stem)
    if not found:
        raise Rejected(NAME, '%s: the name does not read as <database>_<kind>[_<label>]_<YYYYMMDD>_<HHMMSS>%s with '
                             'kind one of %s' % (name, suffix, ', '.join(catalog.KINDS)))
    if databases:
        found = [r for r in found if r[0] in databases]
        if not found:
            raise Rejected(NAME, '%s: the name is not of any of the databases %s' % (name, ', '.join(databases)))
    if len(found) > 1:
        raise Rejected(AMBIGUOUS, '%s: the name reads %d ways (%s); set databases to say which database it is of'
                       % (name, len(found), '; '.join('database %s, kind %s, label %s' % (d, k, l)
                                                      for d, k, l, dummy in found)))
    database, kind, label, backup_id = found[0]
    try:
        catalog.parse_id(backup_id)
        catalog.validate_label(label)
    except catalog.CatalogError as e:
        raise Rejected(NAME, '%s: %s' % (name, e))
    return database, kind, label, backup_id, suffix


# -- content --------------------------------------------------------------------------------------------------
class _PlainCheck(object):
    """Watches a plain SQL stream: its first bytes (pg_dump's header, versions) and its last (the trailer)."""

    def __init__(self):
        self.head = b''
        self.tail = b''
        self.size = 0

    def feed(self, data):
        if not data:
            return
        self.size += len(data)
        if len(self.head) < HEAD_KEEP:
            self.head += data[:HEAD_KEEP - len(self.head)]
        self.tail = (self.tail + data[-TAIL_KEEP:])[-TAIL_KEEP:]

    def verdict(self, name, what):
        """Facts (versions) of a whole plain dump, or Rejected(CONTENT / UNSUPPORTED)."""
        if CLUSTER_HEADER in self.head:
            raise Rejected(UNSUPPORTED, '%s: %s is a pg_dumpall cluster dump, not the dump of one database' % (name, what))
        if PLAIN_HEADER not in self.head[:1024]:
            raise Rejected(CONTENT, '%s: %s is not pg_dump output (no "%s" header in its first bytes)'
                           % (name, what, PLAIN_HEADER.decode('ascii')))
        if PLAIN_TRAILER not in self.tail:
            raise Rejected(CONTENT, '%s: %s ends without pg_dump\'s "%s" trailer: the dump is incomplete (pg_dump '
                                    'stopped, or the file was cut)' % (name, what, PLAIN_TRAILER.decode('ascii')))
        facts = {}
        for key, regex in VERSION_LINES:
            m = regex.search(self.head)
            facts[key] = m.group(1).decode('utf-8', 'replace').strip() if m else None
        if facts.get('pg_dump_version'):
            facts['pg_dump_version'] = 'pg_dump (PostgreSQL) %s' % facts['pg_dump_version']
        return facts


def _open_regular(path, name):
    """A read-only file object for a regular file (a symbolic link or anything else is refused)."""
    try:
        st = os.lstat(path)
    except OSError as e:
        raise Rejected(READ, '%s: cannot stat: %s' % (name, e.strerror or e))
    if stat.S_ISLNK(st.st_mode):
        raise Rejected(READ, '%s: is a symbolic link; adopt the file it points to in its own directory' % name)
    if not stat.S_ISREG(st.st_mode):
        raise Rejected(READ, '%s: is not a regular file' % name)
    try:
        return open(path, 'rb')
    except (IOError, OSError) as e:
        raise Rejected(READ, '%s: cannot read: %s' % (name, e.strerror or e))


def scan_file(path, pg_restore=None):
    """Read the file once: size, sha256, and what its content is. Returns a dict with ``size``, ``sha256``,
    ``format``, ``compression``, ``compressed_by`` and the versions found; raises Rejected when it is not a whole
    dump of one database (or cannot be checked here)."""
    name = os.path.basename(path)
    with _open_regular(path, name) as f:
        try:
            first = f.read(CHUNK)
        except (IOError, OSError) as e:
            raise Rejected(READ, '%s: cannot read: %s' % (name, e.strerror or e))
        if not first:
            raise Rejected(CONTENT, '%s: is empty' % name)
        if first.startswith(GZIP_MAGIC):
            return _scan_gzip(f, first, name)
        if first.startswith(PGDMP_MAGIC):
            facts = _scan_custom(f, first, name, path, pg_restore)
            return facts
        if first.startswith(ZSTD_MAGIC) or first.startswith(LZ4_MAGIC):
            raise Rejected(UNSUPPORTED, '%s: is %s-compressed; adopt registers the dumps db-backup.sh writes (gzip '
                                        'plain SQL, custom format) and plain SQL' %
                           (name, 'zstd' if first.startswith(ZSTD_MAGIC) else 'lz4'))
        if first.startswith(AGE_MAGIC):
            raise Rejected(UNSUPPORTED, '%s: is encrypted with age; it cannot be checked without the identity' % name)
        return _scan_plain(f, first, name)


def _read_all(f, first, name, sink):
    digest = hashlib.sha256()
    size = 0
    chunk = first
    while chunk:
        digest.update(chunk)
        size += len(chunk)
        sink(chunk)
        try:
            chunk = f.read(CHUNK)
        except (IOError, OSError) as e:
            raise Rejected(READ, '%s: cannot read at byte %d: %s' % (name, size, e.strerror or e))
    return size, digest.hexdigest()


def _scan_gzip(f, first, name):
    """Decompress every gzip member to its end (zlib checks each member's CRC32 and length), feeding the plain
    check: a cut or damaged stream, or a stream that is not a whole pg_dump, is refused."""
    plain = _PlainCheck()
    state = dict(d=zlib.decompressobj(16 + zlib.MAX_WBITS), members=1, offset=0)

    def sink(data):
        while data:
            d = state['d']
            if d.eof:
                if not data.strip(b'\x00'):
                    return       # zero padding after the last member, as gzip itself accepts
                d = state['d'] = zlib.decompressobj(16 + zlib.MAX_WBITS)
                state['members'] += 1
            try:
                # bounded output: a highly compressed stream never sits whole in memory
                plain.feed(d.decompress(data, GZIP_OUT_MAX))
                while d.unconsumed_tail and not d.eof:
                    plain.feed(d.decompress(d.unconsumed_tail, GZIP_OUT_MAX))
            except zlib.error as e:
                raise Rejected(CONTENT, '%s: the gzip stream is damaged (member %d, near compressed byte %d): %s'
                               % (name, state['members'], state['offset'], e))
            rest = d.unused_data if d.eof else b''
            state['offset'] += len(data) - len(rest)
            data = rest

    size, digest = _read_all(f, first, name, sink)
    if not state['d'].eof:
        raise Rejected(CONTENT, '%s: the gzip stream ends early (truncated after %d bytes: unexpected end of file)'
                       % (name, size))
    # what a gzip'ed custom archive would be (pg_dump -Fc | gzip): not restorable as one of the catalog's formats
    if plain.head.startswith(PGDMP_MAGIC):
        raise Rejected(UNSUPPORTED, '%s: is a gzip-compressed custom-format archive; gunzip it to a .dump first' % name)
    facts = plain.verdict(name, 'its decompressed content')
    facts.update(size=size, sha256=digest, format='plain', compression='gzip', compressed_by='external',
                 compression_level=None, uncompressed_size=plain.size)
    return facts


def _scan_plain(f, first, name):
    plain = _PlainCheck()
    size, digest = _read_all(f, first, name, plain.feed)
    facts = plain.verdict(name, 'it')
    facts.update(size=size, sha256=digest, format='plain', compression='none', compressed_by=None,
                 compression_level=0)
    return facts


# the header of ``pg_restore --list`` (";     dbname: pim_prod", ";     Compression: -1", ...)
LIST_LINE_RE = re.compile(r'^;\s+(dbname|format|compression|dumped from database version|dumped by pg_dump version)'
                          r':\s*(.*)$', re.M | re.I)


def _scan_custom(f, first, name, path, pg_restore):
    """A custom archive: sha256 of the file, then pg_restore reads it whole (its table of contents with --list,
    every data block into a script that is thrown away), which a cut or damaged archive does not survive."""
    # the header: "PGDMP", version major, minor, revision, int size, offset size, then the format (1: custom)
    if len(first) < 11 or first[10:11] != b'\x01':
        fmt = {b'\x03': 'tar', b'\x05': 'directory'}.get(first[10:11], 'unknown')
        raise Rejected(UNSUPPORTED, '%s: is a pg_dump archive of format %s, not a custom-format (.dump) file'
                       % (name, fmt))
    size, digest = _read_all(f, first, name, lambda data: None)
    if not pg_restore:
        raise Rejected(CHECK, '%s: a custom-format archive is checked with pg_restore, which is not on this host; '
                              'install the PostgreSQL client tools (this says nothing about the file)' % name)
    listing = _run(pg_restore, ['--list', path], name)
    info = dict((k.lower(), v.strip()) for k, v in LIST_LINE_RE.findall(listing))
    plain = _PlainCheck()
    _run(pg_restore, ['-f', '-', path], name, sink=plain.feed)
    facts = plain.verdict(name, 'the script pg_restore makes of it')
    compression = info.get('compression', '')
    compression = 'none' if compression in ('0', 'none', '') else 'gzip' if compression in ('-1', 'gzip') or \
        compression.isdigit() else compression
    facts.update(size=size, sha256=digest, format='custom', compression=compression,
                 compressed_by='pg_dump' if compression != 'none' else None, compression_level=None,
                 dumped_database=info.get('dbname'))
    if info.get('dumped from database version'):
        facts['server_version'] = info['dumped from database version']
    if info.get('dumped by pg_dump version'):
        facts['pg_dump_version'] = 'pg_dump (PostgreSQL) %s' % info['dumped by pg_dump version']
    return facts


def _run(pg_restore, args, name, sink=None):
    """pg_restore with ``args`` (argv list, no shell, dies with the module); stdout to ``sink`` or returned."""
    err = tempfile.TemporaryFile()
    try:
        proc = popen([pg_restore] + args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err,
                     close_fds=True)
    except OSError as e:
        err.close()
        raise Rejected(CHECK, '%s: cannot run %s: %s' % (name, pg_restore, e.strerror or e))
    out = []
    try:
        while True:
            data = os.read(proc.stdout.fileno(), CHUNK)
            if not data:
                break
            if sink is None:
                out.append(data)
            else:
                sink(data)
    finally:
        proc.stdout.close()
        proc.wait()
    err.seek(0)
    text = err.read().decode('utf-8', 'replace').strip()[-2000:]
    err.close()
    if proc.returncode != 0:
        low = text.lower()
        if 'unsupported version' in low:
            raise Rejected(CHECK, '%s: pg_restore %s could not read it (exit code %d: %s); a newer pg_restore may '
                                  '(this says nothing about the file)'
                           % (name, ' '.join(args[:-1]), proc.returncode, text))
        raise Rejected(CONTENT, '%s: pg_restore %s failed on it (exit code %d): %s' % (
            name, ' '.join(args[:-1]), proc.returncode, text))
    return b''.join(out).decode('utf-8', 'replace')


def original_meta(directory, stem):
    """db-backup.sh's own ``<stem>.meta`` beside the dump, kept as-is: {file, sha256, size, content} (content is
    None when it is larger than ORIGINAL_META_MAX or not UTF-8 text), or None when there is none."""
    name = stem + ORIGINAL_META_SUFFIX
    path = os.path.join(directory, name)
    if not os.path.isfile(path) or os.path.islink(path):
        return None
    try:
        with open(path, 'rb') as f:
            data = f.read(ORIGINAL_META_MAX + 1)
            digest = hashlib.sha256(data)
            size = len(data)
            while True:
                more = f.read(CHUNK)
                if not more:
                    break
                digest.update(more)
                size += len(more)
    except (IOError, OSError) as e:
        return dict(file=name, error='cannot read: %s' % (e.strerror or e), content=None)
    try:
        content = data.decode('utf-8') if size <= ORIGINAL_META_MAX else None
    except UnicodeDecodeError:
        content = None
    return dict(file=name, sha256=digest.hexdigest(), size=size, content=content)


# -- the record -----------------------------------------------------------------------------------------------
def _local_time(backup_id):
    """The id (the host's local time when db-backup.sh ran, like pg_backup's ids) as an aware datetime."""
    return catalog.parse_id(backup_id).astimezone()


def make_record(directory, name, parsed, facts, now, server=None):
    """The catalog record of an adopted dump: the schema pg_backup writes (docs/metadata.md) with what is known,
    ``origin: adopted`` and ``adoption`` (how it was recognised, db-backup.sh's .meta kept as-is). No ``tables``:
    there are no snapshot counts; the first verified restore records the counts it found."""
    database, kind, label, backup_id, suffix = parsed
    stem = name[:-len(suffix)]
    started = _local_time(backup_id)
    try:
        mtime = datetime.datetime.fromtimestamp(int(os.stat(os.path.join(directory, name)).st_mtime)).astimezone()
    except OSError:
        mtime = None
    record = dict(
        format_version=catalog.METADATA_VERSION, origin=ORIGIN, id=backup_id, scope='database', database=database,
        kind=kind, label=label, status='success', file=name, format=facts['format'],
        compression=facts['compression'], compression_level=facts.get('compression_level'),
        compressed_by=facts.get('compressed_by'), size=facts['size'], sha256=facts['sha256'], encrypted=False,
        # when the dump ended is not known (a copied file has a new mtime): no finished_at, no duration
        started_at=started.isoformat(), finished_at=None, duration_seconds=None,
        server_version=facts.get('server_version'), pg_dump_version=facts.get('pg_dump_version'),
        database_size=None, host=socket.gethostname(), container=None, collection_version=COLLECTION_VERSION,
        # a dump made outside pgops does not say which server it is of: the server adopting names it, or (unset)
        # it stays every server's, as records made before 0.5.0 whose server cannot be told
        server=server,
        verifications=[],
        adoption=dict(
            adopted_at=now.isoformat(), source_name=name, detected_from='content', suffix=suffix,
            uncompressed_size=facts.get('uncompressed_size'), dumped_database=facts.get('dumped_database'),
            started_at_from='file name (host local time)', file_mtime=mtime.isoformat() if mtime else None,
            original_meta=original_meta(directory, stem)),
    )
    return record


def meta_file_of(directory, name, suffix):
    """``<stem>.meta.json`` of the dump's own stem (catalog.meta_path): the record sits beside the dump it
    describes, and a db-backup.sh name is already the catalog's ``<db>_<kind>[_<label>]_<id>``."""
    return catalog.meta_path(directory, name[:-len(suffix)])


def _suffix_note(suffix, facts):
    expected = catalog.dump_suffix(facts['format'], facts['compression'])
    if suffix == expected or (suffix == '.gz' and expected == '.sql.gz'):
        return None
    return 'the suffix %s does not match the content (%s, %s): the content was recorded' % (
        suffix, facts['format'], facts['compression'])


# -- the job --------------------------------------------------------------------------------------------------
class AdoptJob(object):
    """One run of backup_adopt: plan (every check, read-only), then write the records under each database's lock."""

    def __init__(self, module, opts):
        self.module = module
        self.check_mode = module.check_mode
        self.path = os.path.abspath(opts['path'])
        self.databases = list(opts.get('databases') or []) or None
        self.lock_timeout = opts.get('lock_timeout', 60)
        self.server = opts.get('server')
        self.warnings = []
        self.pg_restore = module.get_bin_path('pg_restore')

    def plan(self):
        """(adopt, rejected, skipped, ignored): records to write; files refused with why; files the catalog has;
        names that are not dumps (other files of the directory)."""
        if not os.path.isdir(self.path):
            raise PgOpsError('path %s is %s; set path to the directory of the backups to adopt'
                             % (self.path, 'not a directory' if os.path.exists(self.path) else 'missing'),
                             step=OPTIONS)
        try:
            names = sorted(os.listdir(self.path))
        except OSError as e:
            raise PgOpsError('cannot list %s: %s' % (self.path, e.strerror or e), step=PREFLIGHT)
        entries, warnings = catalog.load_catalog(self.path)
        self.warnings += warnings
        known = set(m.get('file') for m in entries if m.get('file'))
        taken = set((m.get('database'), m.get('id')) for m in entries)
        now = datetime.datetime.now().astimezone().replace(microsecond=0)
        adopt, rejected, skipped, ignored = [], [], [], []
        claimed = {}
        clashes = set()
        for name in names:
            if name.startswith('.') or is_temp_name(name) or name.endswith(catalog.META_SUFFIX) \
                    or name.endswith(ORIGINAL_META_SUFFIX):
                continue
            if name in known:
                skipped.append(name)
                continue
            if split_suffix(name)[1] is None:
                ignored.append(name)
                continue
            try:
                parsed = parse_name(name, self.databases)
                database, kind, label, backup_id, suffix = parsed
                meta_file = meta_file_of(self.path, name, suffix)
                if os.path.lexists(meta_file):
                    raise Rejected(CONFLICT, '%s: %s exists already but does not describe this file; refusing to '
                                             'overwrite it' % (name, os.path.basename(meta_file)))
                if (database, backup_id) in taken:
                    raise Rejected(CONFLICT, '%s: database %s has a backup with id %s in the catalog already'
                                   % (name, database, backup_id))
                if (database, backup_id) in claimed:
                    clashes.add((database, backup_id))
                    raise Rejected(CONFLICT, '%s: %s has the same database (%s) and id (%s); neither is adopted until '
                                             'one is renamed' % (name, claimed[(database, backup_id)], database,
                                                                 backup_id))
                facts = scan_file(os.path.join(self.path, name), self.pg_restore)
                if facts.get('dumped_database') and facts['dumped_database'] != database:
                    raise Rejected(CONTENT, '%s: the archive is a dump of database %s, its name says %s'
                                   % (name, facts['dumped_database'], database))
            except Rejected as r:
                rejected.append(dict(file=name, path=os.path.join(self.path, name), problem=r.problem, reason=r.msg))
                continue
            claimed[(database, backup_id)] = name
            record = make_record(self.path, name, parsed, facts, now, self.server)
            note = _suffix_note(suffix, facts)
            if note:
                record['adoption']['suffix_note'] = note
                self.warnings.append('%s: %s' % (name, note))
            adopt.append((meta_file, record))
        # two files of one database and id (e.g. a .sql.gz and a .dump of one run): neither is adopted
        for meta_file, record in [(m, r) for m, r in adopt if (r['database'], r['id']) in clashes]:
            adopt.remove((meta_file, record))
            rejected.append(dict(file=record['file'], path=os.path.join(self.path, record['file']), problem=CONFLICT,
                                 reason='%s: another file has the same database (%s) and id (%s); neither is adopted '
                                        'until one is renamed' % (record['file'], record['database'], record['id'])))
        return adopt, rejected, skipped, ignored

    def write(self, adopt):
        """Write each record under its database's lock, re-checking under it that nothing took its id or name."""
        written = []
        for database in sorted(set(r['database'] for dummy, r in adopt)):
            lock = DirLock(os.path.join(self.path, catalog.lock_name(database)), self.lock_timeout,
                           'database %s in %s' % (database, self.path))
            with lock:
                entries, dummy = catalog.load_catalog(self.path)
                taken = catalog.ids_for(entries, database)
                known = set(m.get('file') for m in entries)
                for meta_file, record in [(m, r) for m, r in adopt if r['database'] == database]:
                    if record['id'] in taken or record['file'] in known or os.path.lexists(meta_file):
                        self.warnings.append('%s: taken meanwhile (id %s of %s, or its metadata name); not adopted'
                                             % (record['file'], record['id'], database))
                        continue
                    uid, gid = -1, -1
                    if os.geteuid() == 0:
                        st = os.stat(os.path.join(self.path, record['file']))
                        uid, gid = st.st_uid, st.st_gid
                    try:
                        write_json_atomic(meta_file, record, uid, gid)
                    except (IOError, OSError) as e:
                        raise PgOpsError('writing %s failed: %s (the records written before it stay: %s)'
                                         % (meta_file, e.strerror or e,
                                            ', '.join(os.path.basename(m) for m, dummy in written) or 'none'),
                                         step=WRITE)
                    written.append((meta_file, record))
        return written


def summary(meta_file, record):
    """What the module returns of an adopted (or, in check mode, to-be-adopted) backup."""
    out = dict((k, record.get(k)) for k in ('database', 'kind', 'label', 'id', 'file', 'format', 'compression',
                                            'size', 'sha256', 'started_at', 'server_version', 'origin'))
    out.update(meta_path=meta_file, path=os.path.dirname(meta_file) + os.sep + record['file'],
               original_meta=(record['adoption'].get('original_meta') or {}).get('file'))
    return out


def run_backup_adopt(module):
    """backup_adopt's main: plan every file (the same checks in check mode), then write the records."""
    t0 = time.time()
    job = AdoptJob(module, module.params)
    try:
        adopt, rejected, skipped, ignored = job.plan()
    except PgOpsError as e:
        module.fail_json(msg=e.msg, failed_step=e.step)
    written = adopt
    if adopt and not module.check_mode:
        try:
            written = job.write(adopt)
        except PgOpsError as e:
            module.fail_json(msg=e.msg, failed_step=e.step or LOCK)
        except (IOError, OSError) as e:   # the lock file cannot be created (a read-only directory)
            module.fail_json(msg='cannot take the backup lock in %s: %s' % (job.path, e.strerror or e),
                             failed_step=LOCK)
    for r in rejected:
        job.warnings.append('not adopted (%s): %s' % (r['problem'], r['reason']))
    for w in job.warnings:
        module.warn(w)
    before = sorted(n for n in skipped)
    result = dict(
        changed=bool(written), backup_dir=job.path,
        adopted=[summary(m, r) for m, r in written], rejected=rejected, skipped=skipped, ignored=ignored,
        duration_seconds=round(time.time() - t0, 3))
    if module._diff:
        result['diff'] = dict(before_header='%s (catalog)' % job.path, after_header='%s (catalog)' % job.path,
                              before='\n'.join(before) + ('\n' if before else ''),
                              after='\n'.join(sorted(before + [r['file'] for m, r in written])) +
                              ('\n' if before or written else ''))
    module.exit_json(**result)
