# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgops.postgresql contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# PRIVATE to the collection: this is not a public API and may change without notice.
"""Files that are never seen half-written, directory locks and other file-system helpers."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import errno
import fcntl
import hashlib
import json
import os
import re
import stat
import time
from contextlib import suppress

# PgOpsError lives in _errors; imported here too, where _connection and older code import it from
from ansible_collections.pgops.postgresql.plugins.module_utils._errors import PgOpsError
from ansible_collections.pgops.postgresql.plugins.module_utils._steps import LOCK

COLLECTION_VERSION = '0.4.0'

DIR_MODE = 0o750
FILE_MODE = 0o640
TMP_MARK = '.tmp-'
CHUNK = 1 << 20

# Characters that end a line for some reader (grep and less: LF; Python's splitlines: CR, VT, FF, FS, GS, RS, NEL,
# LS, PS) or rewrite it on a terminal (CR, BS, ESC sequences): every C0 control, DEL, every C1 control, U+2028/9.
LINE_BREAKERS_RE = re.compile(r'[\x00-\x1f\x7f-\x9f\u2028\u2029]')
SHORT_ESCAPES = {u'\n': u'\\n', u'\r': u'\\r', u'\t': u'\\t'}


def temp_name(final_path):
    """Hidden name in the same directory: never listed as a backup, same file system for rename."""
    head, tail = os.path.split(final_path)
    return os.path.join(head, '.%s%s%d' % (tail, TMP_MARK, os.getpid()))


def is_temp_name(name):
    return name.startswith('.') and TMP_MARK in name


def temp_writer_pid(name):
    """The writer's pid in a temporary name ``.<final name>.tmp-<pid>``, or None when it holds none."""
    if not is_temp_name(name):
        return None
    pid = name.rpartition(TMP_MARK)[2]
    return int(pid) if pid.isdigit() else None


def pid_alive(pid):
    """True when a process ``pid`` runs on this host (one we may not signal counts as running)."""
    if pid is None or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except OSError as e:
        return e.errno == errno.EPERM
    return True


def open_paths_under(directory):
    """Paths at or below ``directory`` that some process has open (Linux /proc; empty where unreadable)."""
    prefix = os.path.realpath(directory).rstrip('/') + '/'
    held = set()
    try:
        pids = [p for p in os.listdir('/proc') if p.isdigit()]
    except OSError:
        return held
    for pid in pids:
        fd_dir = '/proc/%s/fd' % pid
        try:
            fds = os.listdir(fd_dir)
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(os.path.join(fd_dir, fd))
            except OSError:
                continue
            if target.startswith(prefix):
                held.add(target)
    return held


def remove_dead_temp_files(directory, name_re):
    """Remove the temporary files and directories in ``directory`` whose name matches ``name_re`` and whose
    writer (the pid in the name) no longer runs on this host and that no process holds open.

    Call it under the lock of whatever writes these names: a live writer is never touched. Returns the names
    removed and one message per name that could not be removed.
    """
    removed, errors = [], []
    try:
        names = sorted(n for n in os.listdir(directory) if is_temp_name(n) and name_re.match(n))
    except OSError as e:
        return removed, ['cannot list %s: %s' % (directory, e.strerror or e)]
    dead = [n for n in names if temp_writer_pid(n) not in (None, os.getpid()) and not pid_alive(temp_writer_pid(n))]
    if not dead:
        return removed, errors
    held = open_paths_under(directory)
    real = os.path.realpath(directory)
    for name in dead:
        path = os.path.join(real, name)
        if path in held or any(h.startswith(path + '/') for h in held):
            continue    # e.g. a pg_dump -Fd still writing into the directory of a killed module
        try:
            remove_tree(os.path.join(directory, name))
            removed.append(name)
        except OSError as e:
            errors.append('cannot remove the leftover temporary file %s: %s'
                          % (os.path.join(directory, name), e.strerror or e))
    return removed, errors


def fsync_dir(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_file_atomic(path, data, mode=FILE_MODE, uid=-1, gid=-1):
    """Write bytes to ``path`` through a temporary name, fsync, rename, fsync the directory."""
    tmp = temp_name(path)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fchmod(fd, mode)
            if uid != -1 or gid != -1:
                os.fchown(fd, uid, gid)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        remove_tree(tmp)
        raise
    fsync_dir(os.path.dirname(path) or '.')


def write_json_atomic(path, obj, uid=-1, gid=-1):
    data = (json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + '\n').encode('utf-8')
    write_file_atomic(path, data, uid=uid, gid=gid)


def remove_tree(path, ignore_errors=False):
    """Remove a file, a symbolic link (never its target) or a directory tree (links inside unlinked, not
    followed). A missing path is fine; other errors are raised, or ignored with ``ignore_errors`` (cleaning up
    after a failure whose own error is the one to report)."""
    if ignore_errors:
        with suppress(OSError):
            remove_tree(path)
        return
    try:
        st = os.lstat(path)
    except OSError as e:
        if e.errno == errno.ENOENT:
            return
        raise
    if stat.S_ISDIR(st.st_mode):
        for entry in os.scandir(path):
            remove_tree(entry.path)
        os.rmdir(path)
    else:
        try:
            os.unlink(path)
        except OSError as e:
            if e.errno != errno.ENOENT:
                raise


def sha256_file(path):
    """(size, sha256 hex digest) of a file, read 1 MiB at a time: memory stays flat whatever the size."""
    digest = hashlib.sha256()
    size = 0
    with open(path, 'rb') as f:
        while True:
            chunk = f.read(CHUNK)
            if not chunk:
                break
            size += len(chunk)
            digest.update(chunk)
    return size, digest.hexdigest()


def unusable_dir_reason(path):
    """Why ``path`` cannot be used (or created) as a directory to write in, or None when it can.

    Read-only: the same answer in check mode as in a real run. Root passes the permission bits, but not a
    read-only file system nor a file in the way.
    """
    path = os.path.abspath(path)
    if os.path.lexists(path) and not os.path.isdir(path):
        return '%s exists and is not a directory' % path
    probe = path
    while not os.path.lexists(probe):
        parent = os.path.dirname(probe)
        if parent == probe:
            break
        probe = parent
    if not os.path.isdir(probe):
        return '%s is not a directory, so %s cannot be created under it' % (probe, path)
    if not os.access(probe, os.W_OK | os.X_OK):
        try:
            read_only = bool(os.statvfs(probe).f_flag & os.ST_RDONLY)
        except OSError:
            read_only = False
        if read_only:
            return '%s is on a read-only file system' % probe
        return '%s is not writable by uid %d' % (probe, os.geteuid())
    return None


def ensure_dir(path, uid=-1, gid=-1, mode=DIR_MODE):
    """Create ``path`` (and parents) with ``mode``; tighten an existing one. Returns True when changed."""
    changed = False
    if not os.path.isdir(path):
        try:
            os.makedirs(path, mode)
        except OSError as e:
            if e.errno != errno.EEXIST or not os.path.isdir(path):
                raise   # else a concurrent run created it first: fine
        changed = True
    st = os.stat(path)
    if (st.st_mode & 0o7777) != mode:
        os.chmod(path, mode)
        changed = True
    if (uid != -1 and st.st_uid != uid) or (gid != -1 and st.st_gid != gid):
        os.chown(path, uid, gid)
        changed = True
    return changed


def disk_space(path):
    """(free bytes for an unprivileged writer, size bytes) of the file system holding ``path`` or its nearest
    existing parent."""
    probe = os.path.abspath(path)
    while not os.path.exists(probe):
        parent = os.path.dirname(probe)
        if parent == probe:
            break
        probe = parent
    st = os.statvfs(probe)
    return st.f_bavail * st.f_frsize, st.f_blocks * st.f_frsize


def free_bytes(path):
    """Free bytes for an unprivileged writer at ``path`` or its nearest existing parent."""
    return disk_space(path)[0]


class DirLock(object):
    """An exclusive flock on a lock file; waits up to ``timeout`` seconds, then fails clearly."""

    def __init__(self, path, timeout, what):
        self.path = path
        self.timeout = timeout
        self.what = what
        self.fd = None

    def __enter__(self):
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, FILE_MODE)
        deadline = time.time() + self.timeout
        while True:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except (IOError, OSError) as e:
                if e.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                if time.time() >= deadline:
                    holder = self._holder()
                    os.close(self.fd)
                    self.fd = None
                    raise PgOpsError(
                        'another run holds the lock for %s (lock file %s%s); waited %ss (lock_timeout)'
                        % (self.what, self.path, ', pid %s' % holder if holder else '', self.timeout),
                        step=LOCK)
                time.sleep(0.2)
        os.ftruncate(self.fd, 0)
        os.write(self.fd, ('%d\n' % os.getpid()).encode('ascii'))
        return self

    def _holder(self):
        try:
            with open(self.path) as f:
                return f.read().strip()
        except (IOError, OSError):
            return ''

    def __exit__(self, *exc):
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None
        return False


def one_line(text):
    """``text`` with every character that could end or rewrite a line written as its JSON escape (``\\n``,
    ``\\r``, ``\\t``, else ``\\uXXXX``): a database name or a label holding a newline can never start a line
    of its own in a log that people grep ("... completed successfully").

    JSON notation, so that a JSON line stays valid and decodes to the same value: json.dumps escapes C0 controls
    itself (such a line is written byte for byte as it was); only DEL, C1 controls and U+2028/9, which it leaves
    as they are with ensure_ascii=False, become ``\\uXXXX``. Backslashes are left alone (a JSON line's own
    escapes must not be doubled)."""
    return LINE_BREAKERS_RE.sub(lambda m: SHORT_ESCAPES.get(m.group(0)) or u'\\u%04x' % ord(m.group(0)), text)


def append_log_line(path, line):
    """Append one line to a log file (created 0640, parent 0750 when missing), under a lock. Every log line of the
    collection, human or JSON, goes through here: a trailing newline is dropped, then ``one_line`` escapes the
    rest, so that one call writes exactly one line."""
    parent = os.path.dirname(path)
    if parent and not os.path.isdir(parent):
        os.makedirs(parent, DIR_MODE)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, FILE_MODE)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, (one_line(line.rstrip('\n')) + '\n').encode('utf-8'))
        os.fsync(fd)
    finally:
        os.close(fd)
