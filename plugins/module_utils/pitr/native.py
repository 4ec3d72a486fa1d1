# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgops.postgresql contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# PRIVATE to the collection: this is not a public API and may change without notice.
"""pgbackrest_restore for a server on this host: the scratch instance is a NativeInstance in a new directory beside
the server's data directory (``<data>.pgops-restore-<ts>``); ``replace`` stops the server, renames its data
directory to ``<data>.pgops-rollback-<ts>``, renames the verified scratch data directory in and starts the server
as it was started (its postmaster.opts); ``rollback`` renames the kept directory back the same way."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import pwd
import shlex
import subprocess
import tempfile
from contextlib import suppress

from ansible_collections.pgops.postgresql.plugins.module_utils._errors import PgOpsError
from ansible_collections.pgops.postgresql.plugins.module_utils._fsutil import DirLock, disk_space, fsync_dir
from ansible_collections.pgops.postgresql.plugins.module_utils._instance import (
    NativeInstance, as_user, mark_of, native_tool, postmaster_pid, pid_alive, stamp,
)
from ansible_collections.pgops.postgresql.plugins.module_utils._pgbackrest import error_message, iso_utc as iso
from ansible_collections.pgops.postgresql.plugins.module_utils._pipeline import describe_rc, die_with_parent, popen
from ansible_collections.pgops.postgresql.plugins.module_utils._steps import (
    INTERNAL, PREFLIGHT, RESTORE, ROLLBACK, SWAP,
)
from ansible_collections.pgops.postgresql.plugins.module_utils.pitr.backend import (
    Backend, postmaster_opts_args, unique_path,
)

SCRATCH_TAG = '.pgops-restore-'
ROLLBACK_TAG = '.pgops-rollback-'
REPLACED_TAG = '.pgops-replaced-'


class NativeBackend(Backend):
    """The server's data directory on this host; its tools of its major (pg_bin_dir or Debian's layout)."""

    def __init__(self, job):
        super(NativeBackend, self).__init__(job)
        try:
            pw = pwd.getpwnam(self.p['os_user'])
        except KeyError:
            raise PgOpsError('os_user %s does not exist on this host' % self.p['os_user'], step=PREFLIGHT)
        self.uid, self.gid = pw.pw_uid, pw.pw_gid

    def as_user(self, argv):
        return as_user(self.module, self.uid, self.p['os_user'], argv)

    @property
    def major(self):
        """The server's major version: read from the server (read_server) or its data directory (rollback_data)
        before any tool is looked for."""
        major = (self.job.facts or {}).get('major')
        if not major:
            raise PgOpsError('the server\'s major version is not known yet: read the server first', step=INTERNAL)
        return major

    def tool(self, name):
        """A server tool of the server's major version (pg_ctl must match the data directory)."""
        return native_tool(self.p.get('pg_bin_dir'), self.major, name)

    def lock(self, data):
        parent = os.path.dirname(data.rstrip('/'))
        return DirLock(os.path.join(parent, '.%s.pgops-pitr.lock' % os.path.basename(data.rstrip('/'))),
                       self.p['lock_timeout'], 'restores of %s' % data)

    # -- deciding ----------------------------------------------------------------------------------------------
    def plan_scratch(self, facts, chosen):
        data = self.p.get('data_directory') or facts['data_directory']
        if facts['data_directory'] != data:
            raise PgOpsError('data_directory %s is not the data directory of the server (%s)'
                             % (data, facts['data_directory']), step=PREFLIGHT)
        if not os.path.isdir(data):
            raise PgOpsError('the data directory %s is not on this host: run the module on the server\'s host, or '
                             'set container' % data, step=PREFLIGHT)
        # the default name is made unique: a run killed in this same second left its scratch under the same stamp
        directory = self.p.get('scratch_directory') or unique_path('%s%s%s' % (data.rstrip('/'), SCRATCH_TAG,
                                                                               stamp()))
        if os.path.lexists(directory):
            raise PgOpsError('scratch_directory %s exists already: give a new path' % directory, step=PREFLIGHT)
        free = disk_space(os.path.dirname(directory.rstrip('/')) or '/')[0]
        need = int((chosen.get('info') or {}).get('size') or 0)
        self.job.record(space=dict(free_bytes=free, needed_bytes=need))
        if free < need:
            raise PgOpsError('not enough free space for the scratch instance: %d MiB free beside %s, the backup %s '
                             'restores %d MiB; the server was not touched' % (free >> 20, data, chosen['label'],
                                                                              need >> 20), step=PREFLIGHT)
        if self.p['mode'] == 'replace':
            self.replace_preflight(facts, data, directory)
        mark = mark_of('restore', self.p['mode'], started=iso(self.job.t0), port=None, stanza=self.job.br.stanza)
        self.instance = NativeInstance(self.module, directory, self.uid, self.gid, pg_bin_dir=self.p.get('pg_bin_dir'),
                                       port=self.p.get('scratch_port'), os_user=self.p['os_user'],
                                       major=facts['major'], settings=self.p.get('scratch_settings'), mark=mark)
        mark['port'] = self.instance.port
        return data

    def replace_preflight(self, facts, data, directory):
        """What a switch needs, checked before anything is touched."""
        if facts.get('tablespaces'):
            raise PgOpsError('the server has tablespaces (%s): mode=replace does not move tablespaces; restore with '
                             'mode=new and copy the data' % ', '.join(facts['tablespaces']), step=PREFLIGHT)
        if os.path.ismount(data):
            raise PgOpsError('%s is a mount point: it cannot be renamed; mount its parent instead or use mode=new'
                             % data, step=PREFLIGHT)
        if os.stat(os.path.dirname(data.rstrip('/'))).st_dev != os.stat(
                os.path.dirname(directory.rstrip('/'))).st_dev:
            raise PgOpsError('scratch_directory %s is not on the file system of %s: the switch is a rename'
                             % (directory, data), step=PREFLIGHT)
        if not self.p.get('server_start_command') and not os.path.isfile(os.path.join(data, 'postmaster.opts')):
            raise PgOpsError('%s has no postmaster.opts to restart the server as it was started: set '
                             'server_stop_command and server_start_command' % data, step=PREFLIGHT)

    def plan_steps(self, steps, data):
        if self.p['mode'] == 'replace':
            steps += ['stop the server, rename %s to %s<ts>, move %s to %s' % (data, data + ROLLBACK_TAG,
                                                                               self.instance.data, data),
                      'start the server as it was started, verify again (on failure: switch back)']
        return steps

    def remove_words(self):
        return 'stop and remove %s' % self.instance.work

    def clean_leftovers(self, data):
        """Scratch directories of runs that died (their marker names a pid no longer alive on this host, and they
        were not left on purpose by mode=new): stopped and removed."""
        parent = os.path.dirname(data.rstrip('/'))
        found = NativeInstance.leftovers(parent, os.path.basename(data.rstrip('/')) + SCRATCH_TAG)
        for path in found:
            NativeInstance(self.module, path, self.uid, self.gid, pg_bin_dir=self.p.get('pg_bin_dir'),
                           os_user=self.p['os_user'], major=self.major).remove_leftover()
        return found

    # -- the scratch instance ----------------------------------------------------------------------------------
    def make_scratch(self):
        self.instance.make()

    def server_rules(self):
        hba = self.job.facts.get('hba_file')
        if hba and os.path.isfile(hba):
            with open(hba) as f:
                return f.read()
        return ''

    def run_restore(self, options):
        """``pgbackrest restore`` natively as os_user, as OUR child that dies with the module: runuser would stay
        between us and pgbackrest, and a killed module would leave pgbackrest writing into the scratch."""
        br = self.restorer()
        argv = br.argv('restore', options)
        preexec = die_with_parent(br.run_as)
        if br.run_as is None and os.geteuid() != self.uid:
            raise PgOpsError('the module runs as uid %d: run it as root (become) or as os_user %s'
                             % (os.geteuid(), self.p['os_user']), step=PREFLIGHT)
        err = tempfile.TemporaryFile()
        try:
            proc = popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err, env=br.env(),
                         preexec_fn=preexec)
            proc.wait()
            if proc.returncode != 0:
                err.seek(0)
                text = err.read().decode('utf-8', 'replace').strip()[-2000:]
                found = error_message(text)
                raise PgOpsError('pgbackrest restore failed (%s): %s' % (describe_rc(proc.returncode), found or text),
                                 step=RESTORE)
        except OSError as e:
            raise PgOpsError('cannot run pgbackrest: %s' % e, step=RESTORE)
        finally:
            err.close()

    def remove_files(self, paths):
        for path in paths:
            with suppress(OSError):
                os.unlink(path)

    # -- the server --------------------------------------------------------------------------------------------
    def server_start_argv(self, data, opts_dir):
        if self.p.get('server_start_command'):
            return list(self.p['server_start_command'])
        with open(os.path.join(opts_dir, 'postmaster.opts')) as f:
            args = postmaster_opts_args(f.read())
        log = self.p.get('server_log_file') or data.rstrip('/') + '.pgops-server.log'
        return self.as_user([self.tool('pg_ctl'), '-D', data, '-l', log, '-w', '-t', str(self.p['start_timeout']),
                             '-o', ' '.join(shlex.quote(a) for a in args), 'start'])

    def server_alive(self, data):
        pid = postmaster_pid(data)
        return pid is not None and pid_alive(pid)

    def stop_data(self, data, how):
        if not os.path.exists(os.path.join(data, 'postmaster.pid')):
            return
        self.run(self.as_user([self.tool('pg_ctl'), '-D', data, '-m', how, '-w', '-t', '120', 'stop']),
                 'pg_ctl stop of %s' % data, SWAP)

    def stop_server(self, data):
        if self.p.get('server_stop_command'):
            self.run(list(self.p['server_stop_command']), 'server_stop_command', SWAP)
        else:
            self.stop_data(data, 'fast')
        if self.server_alive(data):
            raise PgOpsError('the server in %s is still running after the stop' % data, step=SWAP)

    def start_server(self, argv, step):
        self.run(argv, 'start of the server', step)
        self.job.wait_server(step)

    # -- replace and rollback: renames of data directories ---------------------------------------------------
    def switch(self, data):
        """Stop the server, keep its data directory as rollback, move the verified scratch in, start, verify;
        any failure after the stop switches back."""
        inst = self.instance
        start_argv = self.server_start_argv(data, data)
        rollback_dir = unique_path(data.rstrip('/') + ROLLBACK_TAG + stamp())
        # the scratch goes down cleanly; it archives again as the server, from its own new timeline on
        history = self.make_switchable()
        self.stop_server(data)
        moved = False
        try:
            os.rename(data, rollback_dir)
            moved = True
            os.rename(inst.data, data)
            fsync_dir(os.path.dirname(data.rstrip('/')))
            self.job.record(rollback=dict(directory=rollback_dir, how='mode=rollback with confirm=true'))
            self.start_server(start_argv, SWAP)
            self.job.verify_switched()
        except BaseException as e:
            why = e.msg if isinstance(e, PgOpsError) else '%s: %s' % (type(e).__name__, e)
            back = self.switch_back(data, rollback_dir, moved, start_argv)
            raise PgOpsError('the switched server failed (%s); %s' % (why, back), step=SWAP)
        self.remove_scratch(ignore=True)
        for name in history:
            inst.write_file(os.path.join(data, 'pg_wal', 'archive_status', name + '.ready'), '')

    def switch_back(self, data, rollback_dir, moved, start_argv):
        """Put the kept data directory back and start it; a sentence saying what happened."""
        try:
            if self.server_alive(data):
                self.stop_data(data, 'immediate')
            if moved:
                if os.path.exists(data):
                    os.rename(data, self.instance.data)
                os.rename(rollback_dir, data)
                fsync_dir(os.path.dirname(data.rstrip('/')))
            self.job.forget('rollback')
            self.start_server(start_argv, ROLLBACK)
            self.remove_scratch(ignore=True)
            return 'switched back: the server runs on its original data directory %s again' % data
        except BaseException as e:
            why = e.msg if isinstance(e, PgOpsError) else str(e)
            return ('SWITCHING BACK FAILED (%s): the original data directory is %s; stop whatever runs in %s, move it '
                    'aside, rename %s to %s and start the server' % (why, rollback_dir if moved else data, data,
                                                                     rollback_dir, data))

    def rollback_data(self):
        """(data directory, whether the server answers): from the server, else from data_directory."""
        data = self.p.get('data_directory')
        try:
            facts = self.job.read_server()
            return data or facts['data_directory'], True
        except PgOpsError:
            if not data:
                raise PgOpsError('the server does not answer and data_directory is not set: set data_directory to '
                                 'roll back', step=PREFLIGHT)
            with open(os.path.join(data, 'PG_VERSION')) as f:
                self.job.facts = dict(major=int(f.read().strip()))
            return data, False

    def rollback(self):
        data, up = self.rollback_data()
        parent = os.path.dirname(data.rstrip('/'))
        base = os.path.basename(data.rstrip('/')) + ROLLBACK_TAG
        found = sorted(n for n in os.listdir(parent) if n.startswith(base))
        wanted = self.p.get('rollback_directory') or (os.path.join(parent, found[-1]) if found else None)
        if not wanted or not os.path.isdir(wanted):
            raise PgOpsError('no rollback directory of %s%s (found: %s)' % (
                data, ' at %s' % wanted if wanted else '', ', '.join(found) or 'none'), step=ROLLBACK)
        replaced = unique_path(data.rstrip('/') + REPLACED_TAG + stamp())
        self.job.record(plan=['stop the server, rename %s to %s and %s to %s, start it' % (data, replaced, wanted,
                                                                                           data)],
                        rollback=dict(directory=wanted, replaced_directory=replaced), changed=True)
        if self.job.check_mode:
            return False
        self.job.enter(ROLLBACK)
        start_argv = self.server_start_argv(data, wanted)
        current_argv = self.server_start_argv(data, data) if os.path.exists(
            os.path.join(data, 'postmaster.opts')) else start_argv
        if up:
            self.stop_server(data)
        if os.path.lexists(data):
            os.rename(data, replaced)
        else:   # a switch that failed half-way left no data directory: only the kept one goes back
            replaced = None
            self.job.record(rollback=dict(directory=wanted, replaced_directory=None))
        os.rename(wanted, data)
        fsync_dir(parent)
        try:
            self.start_server(start_argv, ROLLBACK)
        except PgOpsError as e:
            with suppress(PgOpsError):
                self.stop_data(data, 'immediate')
            os.rename(data, wanted)
            if replaced:
                os.rename(replaced, data)
            fsync_dir(parent)
            with suppress(PgOpsError):
                self.run(current_argv, 'start of the server', ROLLBACK)
            raise PgOpsError('the rolled-back data directory did not start (%s); the replaced one is back in %s'
                             % (e.msg, data), step=ROLLBACK)
        return True
