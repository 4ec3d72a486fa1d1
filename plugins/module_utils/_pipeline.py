# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgops.postgresql contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# PRIVATE to the collection: this is not a public API and may change without notice.
"""Process pipelines whose every exit status is checked, streamed into a file that appears atomically.

``pg_dump | zstd > file`` in a shell only reports the last process's status and leaves a partial file behind on
failure. Here each stage is an argv list (no shell), stderr of every stage is kept, the output is hashed while it
streams through Python in 1 MiB chunks (memory stays flat whatever the size), written to a hidden temporary name,
fsynced and renamed only when every stage exited 0.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import ctypes
import errno
import hashlib
import os
import pwd
import signal
import subprocess
import tempfile
from contextlib import suppress

from ansible_collections.pgops.postgresql.plugins.module_utils._errors import PgOpsError
from ansible_collections.pgops.postgresql.plugins.module_utils._fsutil import (
    CHUNK, FILE_MODE, fsync_dir, remove_tree, sha256_file, temp_name,
)
from ansible_collections.pgops.postgresql.plugins.module_utils._steps import DUMP, PREFLIGHT, WRITE, check_step

STDERR_TAIL = 2000
SIGPIPE_CODES = (-signal.SIGPIPE, 128 + signal.SIGPIPE)


PR_SET_PDEATHSIG = 1
try:
    _LIBC = ctypes.CDLL(None, use_errno=True)
    _PRCTL = _LIBC.prctl
except (OSError, AttributeError):   # not Linux: children are stopped by stop_stages() only
    _PRCTL = None


def die_with_parent(user=None):
    """A ``preexec_fn`` for every child: SIGKILL it when the module dies (kill -9 included), so that no client
    goes on writing behind a killed module (a psql committing a restore, a pg_dump filling a disk).

    ``user``: the child first becomes that OS user (its uid, gid and groups), then asks for the signal (a change
    of credentials clears the request): a direct child as another user, where ``runuser`` would stay between us
    and it and leave it running when the module is killed."""
    ids = None
    if user is not None:
        pw = pwd.getpwnam(user)      # in the parent: no lookups between fork and exec
        ids = (pw.pw_uid, pw.pw_gid, os.getgrouplist(pw.pw_name, pw.pw_gid))
    if _PRCTL is None and ids is None:
        return None
    parent = os.getpid()

    def preexec():
        if ids is not None:
            os.setgroups(ids[2])
            os.setgid(ids[1])
            os.setuid(ids[0])
        if _PRCTL is not None:
            _PRCTL(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:   # the module died before prctl took effect
            os._exit(1)
    return preexec


def popen(argv, **kwargs):
    """subprocess.Popen for our children: they die with the module."""
    kwargs.setdefault('preexec_fn', die_with_parent())
    return subprocess.Popen(argv, **kwargs)


def describe_rc(rc):
    if rc < 0:
        try:
            return 'killed by signal %s' % signal.Signals(-rc).name
        except ValueError:
            return 'killed by signal %d' % -rc
    if rc > 128 and rc - 128 in (signal.SIGKILL, signal.SIGTERM, signal.SIGINT, signal.SIGPIPE):
        return 'exit code %d (%s)' % (rc, signal.Signals(rc - 128).name)
    return 'exit code %d' % rc


def _tail(fileobj):
    fileobj.seek(0)
    data = fileobj.read()
    text = data.decode('utf-8', 'replace').strip()
    return text[-STDERR_TAIL:]


class Stage(object):
    def __init__(self, name, argv):
        self.name = name
        self.argv = argv
        self.proc = None
        self.err = None
        self.cpu_seconds = None   # user + system CPU of the process, once reaped by wait_stage()

    @property
    def rc(self):
        return self.proc.returncode if self.proc else None


def pipeline_failures(stages):
    """Stages that failed, leaving out the ones that only died of SIGPIPE when another failed for real."""
    failed = [s for s in stages if s.rc not in (0, None)]
    real = [s for s in failed if s.rc not in SIGPIPE_CODES]
    return real or failed


def failure_message(stages, what):
    parts = []
    for s in pipeline_failures(stages):
        msg = '%s %s' % (s.name, describe_rc(s.rc))
        err = _tail(s.err) if s.err else ''
        if err:
            msg += ': ' + err
        parts.append(msg)
    return '%s failed: %s' % (what, '; '.join(parts))


def start_stages(stages, env, first_stdin=None):
    """Start ``stages`` as a pipeline (each stage's stdout feeds the next); returns the last one's stdout."""
    prev_out = first_stdin
    for i, stage in enumerate(stages):
        stage.err = tempfile.TemporaryFile()
        stage.proc = popen(
            stage.argv, stdin=prev_out if prev_out is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=stage.err, env=env, close_fds=True)
        if prev_out is not None and prev_out is not first_stdin:
            prev_out.close()  # the next stage owns it now: an early exit downstream gives upstream SIGPIPE
        prev_out = stage.proc.stdout
    return prev_out


def wait_stage(stage):
    """Reap ``stage`` with its resource usage: ``cpu_seconds`` (user + system) of that process - of the runtime's
    client, not of the command, when it is ``docker exec``."""
    try:
        dummy, status, usage = os.wait4(stage.proc.pid, 0)
    except ChildProcessError:   # reaped already
        stage.proc.wait()
        return
    stage.proc.returncode = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
    stage.cpu_seconds = round(usage.ru_utime + usage.ru_stime, 3)


def stop_stages(stages):
    """Terminate the stages still running (kill after 10 s) and reap them all."""
    for s in stages:
        if s.proc and s.proc.poll() is None:
            with suppress(OSError):   # exited meanwhile
                s.proc.terminate()
    for s in stages:
        if s.proc:
            try:
                s.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                s.proc.kill()
                s.proc.wait()


def close_stages(stages):
    """Close the pipes and stderr files of ``stages``."""
    for s in stages:
        if s.proc and s.proc.stdout:
            s.proc.stdout.close()
        if s.err:
            s.err.close()


def run_to_file(stages, path, env, uid=-1, gid=-1, publish=True):
    """Run ``stages`` as a pipeline into ``path``; returns (size, sha256 hex). With ``publish=False`` the
    finished, fsynced file keeps its hidden temporary name (``temp_name(path)``) for the caller to rename.
    Each stage's ``cpu_seconds`` is set once it ended (see wait_stage).

    On any failure (a stage exits non-zero or is killed, the disk fills up) the temporary file is removed and
    PgOpsError is raised naming the stage, its exit status and its stderr.
    """
    tmp = temp_name(path)
    digest = hashlib.sha256()
    size = 0
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_EXCL, FILE_MODE)
    except OSError as e:
        raise PgOpsError('cannot create %s: %s' % (tmp, e.strerror or e), step=WRITE)
    try:
        try:
            os.fchmod(fd, FILE_MODE)   # whatever the umask
            try:
                out = start_stages(stages, env)
            except OSError as e:
                raise _cannot_run(stages, e, 'backup pipeline', DUMP)
            src = out.fileno()
            buf = bytearray(CHUNK)        # one buffer for the whole stream: memory stays flat
            whole = memoryview(buf)
            while True:
                n = os.readv(src, [buf])
                if not n:
                    break
                view = whole[:n]
                digest.update(view)
                size += n
                while view:
                    view = view[os.write(fd, view):]
            for s in stages:
                wait_stage(s)
            if any(s.rc != 0 for s in stages):
                raise PgOpsError(failure_message(stages, 'backup pipeline'), step=DUMP)
            if uid != -1 or gid != -1:
                os.fchown(fd, uid, gid)
            os.fsync(fd)
        except OSError as e:
            raise PgOpsError('writing %s failed: %s' % (path, e.strerror or e), step=WRITE)
        finally:
            os.close(fd)
            stop_stages(stages)
            close_stages(stages)
        if publish:
            os.replace(tmp, path)
            fsync_dir(os.path.dirname(path) or '.')
    except BaseException:
        remove_tree(tmp)
        raise
    return size, digest.hexdigest()


def run_checked(argv, env, label, step=PREFLIGHT, stdin_path=None, user=None):
    """Run one command; return its stdout text, or raise PgOpsError at ``step`` (a _steps name) with rc and stderr.
    ``label`` names the command in the message only; ``user``: run it as that OS user (see die_with_parent)."""
    check_step(step)
    stage = Stage(os.path.basename(argv[0]), argv)
    stage.err = tempfile.TemporaryFile()
    stdin = open(stdin_path, 'rb') if stdin_path else subprocess.DEVNULL
    try:
        stage.proc = popen(argv, stdin=stdin, stdout=subprocess.PIPE, stderr=stage.err, env=env,
                           preexec_fn=die_with_parent(user))
        out = stage.proc.stdout.read()
        stage.proc.wait()
        if stage.rc != 0:
            raise PgOpsError(failure_message([stage], label), step=step)
        return out.decode('utf-8', 'replace')
    finally:
        if stdin_path:
            stdin.close()
        close_stages([stage])


def sha256_tree(path):
    """Per-file sha256 of a directory (a directory-format dump) and one digest over the sorted manifest."""
    files = {}
    total = 0
    for root, dummy, names in os.walk(path):
        for name in names:
            full = os.path.join(root, name)
            size, files[os.path.relpath(full, path)] = sha256_file(full)
            total += size
    manifest = ''.join('%s  %s\n' % (files[k], k) for k in sorted(files))
    return total, hashlib.sha256(manifest.encode('utf-8')).hexdigest(), files


def fsync_tree(path, mode_dir=0o750, mode_file=FILE_MODE, uid=-1, gid=-1):
    for root, dirs, names in os.walk(path):
        for name in names:
            full = os.path.join(root, name)
            os.chmod(full, mode_file)
            if uid != -1 or gid != -1:
                os.chown(full, uid, gid)
            fd = os.open(full, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        os.chmod(root, mode_dir)
        if uid != -1 or gid != -1:
            os.chown(root, uid, gid)
        fsync_dir(root)


def stage_report(stages):
    """(name, rc, stderr tail) of every stage, for callers that judge a failure by its cause."""
    return [(s.name, s.rc, _tail(s.err) if s.err else '') for s in stages]


def _fail(stages, label, step):
    err = PgOpsError(failure_message(stages, label), step=step)
    err.stages = stage_report(pipeline_failures(stages))
    return err


def _open_input(path, label, step):
    """The input file of a pipeline, or PgOpsError naming the step and the file."""
    try:
        return open(path, 'rb')
    except (IOError, OSError) as e:
        raise PgOpsError('%s failed: cannot read %s: %s' % (label, path, e.strerror or e), step=step)


def _cannot_run(stages, e, label, step):
    """PgOpsError for the first stage that could not be started."""
    bad = [s for s in stages if s.proc is None][0]
    return PgOpsError('%s failed: cannot run %s (%s): %s' % (label, bad.name, bad.argv[0], e.strerror or e), step=step)


def _start_consumer(consumer, env):
    """Start the last stage of run_framed/run_drained, reading from a pipe we write into."""
    consumer.err = tempfile.TemporaryFile()
    consumer.proc = popen(consumer.argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                          stderr=consumer.err, env=env, close_fds=True)


def run_pipeline(stages, env, step, stdin_path=None, label=None):
    """Run ``stages`` as a pipeline whose output is not kept (a restore); the first reads ``stdin_path``.

    Every stage must exit 0; otherwise PgOpsError at ``step`` (a _steps name) names the failing stage with its
    exit status and stderr (and carries ``stages``: name, rc and stderr of the failed ones). ``label`` names the
    pipeline in messages (default: the step).
    """
    _run_reading(stages, env, step, stdin_path, label, lambda data: None)


def run_to_bytes(stages, env, step, stdin_path=None, label=None, limit=64 << 20):
    """Run ``stages`` as a pipeline and return the last one's output (at most ``limit`` bytes: a small file such
    as a globals dump). Every stage must exit 0, as for run_pipeline."""
    label = label or check_step(step)
    chunks = []

    def keep(data):
        chunks.append(data)
        if sum(len(c) for c in chunks) > limit:
            raise PgOpsError('%s: the output is over %d MiB' % (label, limit >> 20), step=step)
    _run_reading(stages, env, step, stdin_path, label, keep)
    return b''.join(chunks)


def _run_reading(stages, env, step, stdin_path, label, sink):
    """The pipeline of run_pipeline and run_to_bytes: its output given to ``sink`` chunk by chunk."""
    label = label or check_step(step)
    stdin = _open_input(stdin_path, label, step) if stdin_path else None
    try:
        try:
            out = start_stages(stages, env, first_stdin=stdin)
        except OSError as e:
            raise _cannot_run(stages, e, label, step)
        if stdin is not None:
            stdin.close()
            stdin = None
        while True:
            data = os.read(out.fileno(), CHUNK)
            if not data:
                break
            sink(data)
        for s in stages:
            s.proc.wait()
        if any(s.rc != 0 for s in stages):
            raise _fail(stages, label, step)
    finally:
        if stdin is not None:
            stdin.close()
        stop_stages(stages)
        close_stages(stages)


def _relay(src, dst):
    """Copy ``src`` to ``dst`` (file descriptors) until EOF; False when the reader went away (EPIPE)."""
    splice = getattr(os, 'splice', None)
    try:
        while True:
            if splice is not None:
                try:
                    n = splice(src, dst, CHUNK)
                except OSError as e:
                    if e.errno != errno.EINVAL:
                        raise
                    splice = None   # a file system or pipe that cannot splice: copy through a buffer
                    continue
                if not n:
                    return True
                continue
            data = os.read(src, CHUNK)
            if not data:
                return True
            view = memoryview(data)
            while view:
                view = view[os.write(dst, view):]
    except BrokenPipeError:
        return False


def run_framed(producers, consumer, env, step, head, tail, stdin_path, label=None):
    """``producers | consumer`` with ``head`` written to the consumer before the stream and ``tail`` after it,
    only once every producer exited 0 and the whole stream was passed on.

    With ``head='BEGIN;'`` and ``tail='COMMIT;'`` a psql consumer commits only a complete, checked stream: if a
    producer fails or the module is killed (its children die with it; a client in a container sees its input
    end), psql reads end-of-input inside an open transaction and the server rolls it back. ``psql
    --single-transaction`` would commit whatever it had read at that point. Failures are PgOpsErrors at ``step``.
    """
    label = label or check_step(step)
    stdin = _open_input(stdin_path, label, step)
    stages = list(producers) + [consumer]
    try:
        try:
            src = start_stages(producers, env, first_stdin=stdin).fileno() if producers else stdin.fileno()
            _start_consumer(consumer, env)
        except OSError as e:
            raise _cannot_run(stages, e, label, step)
        dst = consumer.proc.stdin.fileno()
        complete = relayed = False
        try:
            os.write(dst, head)
            relayed = _relay(src, dst)
        except BrokenPipeError:
            relayed = False
        if not relayed and producers:
            # the consumer stopped reading (psql stopped on an error): the producers must not wait for a reader
            producers[-1].proc.stdout.close()
        for s in producers:
            s.proc.wait()
        try:
            complete = relayed and all(s.rc == 0 for s in producers)
            if complete:
                os.write(dst, tail)
        except BrokenPipeError:
            complete = False
        finally:
            with suppress(OSError):
                consumer.proc.stdin.close()
        if not complete and consumer.proc.poll() is None:
            consumer.proc.terminate()   # its transaction is rolled back; it must not wait for more input
        consumer.proc.wait()
        if any(s.rc not in (0,) + SIGPIPE_CODES for s in producers):
            raise _fail(producers, label, step)   # the consumer was stopped because of it: its status says nothing
        if consumer.rc != 0:
            raise _fail([consumer], label, step)
        if any(s.rc != 0 for s in producers):
            raise _fail(producers, label, step)
        if not complete:
            raise PgOpsError('%s failed: %s stopped reading its input; nothing was committed' % (label, consumer.name),
                             step=step)
    finally:
        stdin.close()
        stop_stages(stages)
        close_stages(stages)


def run_drained(producers, consumer, env, step, stdin_path, label=None):
    """``producers | consumer`` for a check whose consumer may stop reading early (``pg_restore --list`` reads
    only an archive's table of contents): the producers' output is relayed to the consumer and, once it stops
    reading, drained to the end, so every producer (``age -d``: the whole ciphertext authenticated) must still
    run to completion and exit 0, and the consumer must exit 0 too. Failures are PgOpsErrors at ``step``.
    """
    label = label or check_step(step)
    stdin = _open_input(stdin_path, label, step)
    stages = list(producers) + [consumer]
    try:
        try:
            src = start_stages(producers, env, first_stdin=stdin).fileno()
            _start_consumer(consumer, env)
        except OSError as e:
            raise _cannot_run(stages, e, label, step)
        stdin.close()
        dst = consumer.proc.stdin.fileno()
        if not _relay(src, dst):
            while os.read(src, CHUNK):
                continue     # the consumer has seen what it needs; the producers still run to the end
        with suppress(OSError):
            consumer.proc.stdin.close()
        for s in stages:
            s.proc.wait()
        if any(s.rc != 0 for s in producers):
            raise _fail(producers, label, step)
        if consumer.rc != 0:
            raise _fail([consumer], label, step)
    finally:
        stdin.close()
        stop_stages(stages)
        close_stages(stages)
