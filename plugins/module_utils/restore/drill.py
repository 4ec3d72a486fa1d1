# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgops.postgresql contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# PRIVATE to the collection: this is not a public API and may change without notice.
"""Where a drill (pg_restore_verified mode=test) restores: a throwaway instance or the server itself.

A throwaway instance is a new, blank PostgreSQL of the backup's major made for one drill and removed after it
(_instance): for a server in a container, a container of that container's own image (the major, the extensions
and the locales match) with no network and its data on a new volume; natively, the host's binaries of that major
with a temporary data directory, its unix socket and loopback only. It is initialised with the login user as its
bootstrap superuser (as a recreated container would be), started with restore settings (no fsync, no WAL to speak
of), given the backup's roles from its globals dump, and the drill then runs there unchanged: the production
server sees no session and no WAL. ``choose`` says which and why; ``DrillInstance`` is the context manager.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import pwd
import re
import time
from contextlib import suppress

from ansible_collections.pgops.postgresql.plugins.module_utils._errors import PgOpsError
from ansible_collections.pgops.postgresql.plugins.module_utils._globals import (
    GlobalsScript, globals_entry, read_globals, tablespace_statements,
)
from ansible_collections.pgops.postgresql.plugins.module_utils._instance import (
    ContainerInstance, Docker, NativeInstance, base_env, check_free_space, mark_of, native_tool,
)
from ansible_collections.pgops.postgresql.plugins.module_utils._pipeline import run_checked
from ansible_collections.pgops.postgresql.plugins.module_utils._verdict import BackupFault
from ansible_collections.pgops.postgresql.plugins.module_utils._steps import INSTANCE, PREFLIGHT, ROLES, START

PURPOSE = 'drill'
CHOICES = ('auto', 'throwaway', 'server')
VERSION_RE = re.compile(r'^\s*(\d+)')
CONTAINER_BASE = '/var/lib/pgops-drill'
# beyond _instance.RESTORE_TUNED: what a cluster that only takes one restore can afford
DRILL_SETTINGS = {'maintenance_work_mem': '256MB', 'max_wal_size': '4GB', 'checkpoint_timeout': '30min',
                  'autovacuum': 'off', 'max_connections': '20', 'shared_buffers': '128MB'}
START_TIMEOUT = 120


def major_of(meta):
    m = VERSION_RE.match(str(meta.get('server_version') or ''))
    return int(m.group(1)) if m else None


def server_image(module, target):
    """The image id of the server's container (it may be stopped), or (None, why)."""
    runtime = module.get_bin_path(target.runtime)
    if not runtime:
        return None, '%s is not installed on this host' % target.runtime
    try:
        out = run_checked([runtime, 'inspect', '--format', '{{.Image}} {{.Config.Image}}', target.container],
                          base_env(), 'inspect of container %s' % target.container, PREFLIGHT)
    except PgOpsError as e:
        return None, 'container %s cannot be inspected (%s)' % (target.container, e.msg)
    parts = out.split()
    return (parts[0], parts[1] if len(parts) > 1 else parts[0]), None


def native_binaries(major, pg_bin_dir, os_user):
    """(uid, gid, why not): whether this host can run a PostgreSQL ``major`` instance as ``os_user``."""
    try:
        native_tool(pg_bin_dir, major, 'initdb')
        native_tool(pg_bin_dir, major, 'pg_ctl')
    except PgOpsError as e:
        return None, None, e.msg
    try:
        pw = pwd.getpwnam(os_user)
    except KeyError:
        return None, None, 'there is no OS user %s to run the instance' % os_user
    if os.geteuid() not in (0, pw.pw_uid):
        return None, None, 'the module runs as uid %d, neither root nor %s' % (os.geteuid(), os_user)
    return pw.pw_uid, pw.pw_gid, None


def choose(module, target, meta, wanted, image=None, pg_bin_dir=None, os_user='postgres'):
    """(kind, detail, reason) of where a drill of ``meta`` runs: kind ``container`` (detail: (image id, name)),
    ``native`` (detail: (uid, gid)) or ``server`` (detail None). ``wanted``: auto, throwaway or server; a
    throwaway that cannot be had is an error naming why, auto then says why it used the server."""
    if wanted == 'server':
        return 'server', None, 'instance=server: the drill restores into a scratch database on the server'
    major = major_of(meta)
    why = None
    if major is None:
        why = 'backup %s does not record its server version' % meta.get('id')
    elif target.container or image:
        found, why = ((image, image), None) if image else server_image(module, target)
        if found:
            return 'container', found, 'a throwaway container of the image of %s (%s)' % (
                target.container or 'the drill', found[1])
    else:
        uid, gid, why = native_binaries(major, pg_bin_dir or target.bin_dir, os_user)
        if why is None:
            return 'native', (uid, gid), 'a throwaway instance of this host\'s PostgreSQL %d binaries' % major
    if wanted == 'throwaway':
        raise PgOpsError('instance=throwaway: no throwaway instance can be made for backup %s: %s'
                         % (meta.get('id'), why), step=PREFLIGHT)
    return 'server', None, 'no throwaway instance (%s): the drill restores into a scratch database on the server' % why


class DrillInstance(object):
    """``with DrillInstance(job, meta, kind, detail) as target:`` the PgTarget of a started, blank instance whose
    bootstrap superuser is the server's login user; removed on the way out, whatever happened. Leftovers of
    killed runs (marked ``pgops.drill.*``) are removed first and returned by ``interrupted``."""

    def __init__(self, module, target, meta, kind, detail, work_dir=None, need_bytes=0, os_user='postgres'):
        self.module = module
        self.server_target = target
        self.meta = meta
        self.kind = kind
        self.major = major_of(meta)
        self.need = int(need_bytes or 0)
        self.user = target.user or os_user
        self.os_user = os_user
        self.of = (target.server or 'server').replace('/', '_').replace(':', '_')
        self.mark = mark_of(PURPOSE, 'test', of=self.of, backup_id=meta.get('id'))
        self.interrupted = []
        self.phases = {}
        name = 'pgops-drill-%s-%d-%d' % (re.sub(r'[^A-Za-z0-9_.-]', '_', self.of)[:40], os.getpid(),
                                         int(time.time() * 1000) % 100000)
        if kind == 'container':
            self.docker = Docker(module.get_bin_path(target.runtime, required=True))
            self.instance = ContainerInstance(
                module, self.docker, name, detail[0], CONTAINER_BASE + '/data', data_mount=CONTAINER_BASE,
                network='none', major=self.major, settings=DRILL_SETTINGS, restore_tuned=True, purpose=PURPOSE,
                mark=self.mark, os_user=os_user)
            self.image_name = detail[1]
            self.instance.tablespaces = CONTAINER_BASE + '/tablespaces'   # on the volume, with the data
        else:
            self.parent = work_dir or '/var/tmp'
            self.instance = NativeInstance(
                module, os.path.join(self.parent, name), detail[0], detail[1], pg_bin_dir=target.bin_dir,
                major=self.major, settings=DRILL_SETTINGS, restore_tuned=True, purpose=PURPOSE, mark=self.mark,
                os_user=os_user)
            self.image_name = None

    # -- before ---------------------------------------------------------------------------------------------
    def clean_leftovers(self):
        """Remove what killed drills of this server left (containers and volumes, or directories)."""
        if self.kind == 'container':
            names = ContainerInstance.clean_leftovers(self.docker, PURPOSE, self.of)
        else:
            names = []
            if os.path.isdir(self.parent):
                for path in NativeInstance.leftovers(self.parent, 'pgops-drill-', PURPOSE):
                    leftover = NativeInstance(self.module, path, self.instance.uid, self.instance.gid,
                                              pg_bin_dir=self.instance.pg_bin_dir, major=self.major, purpose=PURPOSE)
                    leftover.remove_leftover()
                    names.append(path)
        self.interrupted = names
        return names

    def initdb(self):
        argv = [self.instance.tool('initdb'), '-D', self.instance.data, '-U', self.user, '-A', 'trust',
                '-E', 'UTF8', '--locale=C', '--no-sync']
        if self.kind == 'container':
            self.instance.exec(argv, step=START, label='initdb in the drill container')
        else:
            run_checked(self.instance.as_user(argv), base_env(), 'initdb of the drill instance', START)

    def free_space(self):
        """Free space where the instance's data goes, checked before anything is made there (native), or on the
        new volume before the restore (container: where docker keeps it)."""
        if not self.need:
            return None
        if self.kind == 'native':
            return check_free_space(self.parent, self.need, 'the drill instance')
        out = self.instance.exec(['df', '-P', '-k', CONTAINER_BASE], step=PREFLIGHT, label='df in the drill container')
        try:
            free = int(out.strip().splitlines()[-1].split()[3]) * 1024
        except (ValueError, IndexError):
            return None
        if free < self.need:
            raise PgOpsError('not enough free space for the drill instance: %d MiB free on its volume (docker\'s data '
                             'root), %d MiB needed' % (free >> 20, self.need >> 20), step=PREFLIGHT)
        return free

    # -- the context ----------------------------------------------------------------------------------------
    def __enter__(self):
        t = time.time()
        self.clean_leftovers()
        if self.kind == 'native':
            self.free = self.free_space()
        try:
            self.instance.make()
            if self.kind == 'container':
                self.instance.make_dirs()
                self.free = self.free_space()
            self.initdb()
            self.instance.prepare_config()
            self.instance.start(START_TIMEOUT)
        except BaseException:
            self.remove()
            raise
        self.phases['instance_start'] = round(time.time() - t, 3)
        target = self.instance.target(self.user)
        target.server = self.server_target.server       # the drill is of that server's backup
        return target

    def remove(self):
        t = time.time()
        problems = self.instance.remove(ignore=True)
        self.phases['instance_remove'] = round(time.time() - t, 3)
        return problems

    def __exit__(self, *exc):
        with suppress(Exception):
            self.problems = self.remove()
        return False

    def describe(self):
        """What the metadata and the result record of the instance."""
        out = dict(kind=self.kind, major=self.major, superuser=self.user)
        if self.kind == 'container':
            out.update(image=self.image_name, image_id=self.instance.image, network='none')
        else:
            out.update(directory=self.instance.work)
        if getattr(self, 'free', None):
            out['free_mib'] = self.free >> 20
        return out


def run_drill(job, meta, target_db):
    """One attempt of a drill (``job``: the RestoreJob, mode test) where ``choose`` puts it: in a throwaway
    instance, the job's target being the instance for the attempt (its roles are the instance's, gone with it),
    or on the server. ``job._run_here`` does the attempt either way."""
    job.stage = INSTANCE
    kind, detail, reason = choose(job.module, job.target, meta, job.o.get('instance') or 'auto',
                                  image=job.o.get('instance_image'))
    job.result['instance'] = dict(kind=kind, reason=reason)
    if kind == 'server':
        return job._run_here(meta, target_db)
    ratio = max(1.0, float(job.o.get('server_free_space_ratio') or 0))
    drill = DrillInstance(job.module, job.target, meta, kind, detail, work_dir=job.o.get('instance_dir'),
                          need_bytes=int((meta.get('database_size') or 0) * ratio) + (64 << 20))
    job.result['instance'].update(drill.describe())
    server = job.target
    job.in_instance = True
    if job.check_mode:
        try:
            result = job._run_here(meta, target_db)
            result['plan'].insert(0, 'make %s (%s), give it the backup\'s roles from its globals dump, '
                                     'restore and verify there, then remove it' % (
                                         'a throwaway container, no network' if kind == 'container'
                                         else 'a throwaway instance', reason))
            return result
        finally:
            job.in_instance = False
    try:
        try:
            job.target = drill.__enter__().for_server(drill.major)
        except PgOpsError as e:
            e.step = PREFLIGHT if e.step == PREFLIGHT else INSTANCE
            raise
        finally:
            _note_leftovers(job, drill)
        job.result['instance'].update(drill.describe())
        job.phases.update(drill.phases)
        job.drill = drill      # _run_here maps the tablespaces once the file is checked (map_tablespaces)
        return job._run_here(meta, target_db)
    finally:
        job.target = server
        job.in_instance = False
        job.drill = None
        job.created_roles = []      # they were the instance's, gone with it: not the server's roles_created
        if job.result.get('roles_created'):
            job.result['instance']['roles_created'] = job.result.pop('roles_created')
        drill.__exit__(None, None, None)
        job.phases.update(drill.phases)
        job.warnings += ['the throwaway instance: %s' % p for p in getattr(drill, 'problems', None) or []]


def _note_leftovers(job, drill):
    if not drill.interrupted:
        return
    job.warnings.append('removed %s, left by an interrupted drill' % ', '.join(drill.interrupted))
    for info in job.interrupted:
        info['instance'] = list(drill.interrupted)


def map_tablespaces(job, drill, meta):
    """Create the tablespaces of the backup's globals dump in the instance, each in a directory of its own under
    the instance's (a disaster recovery recreates them; a dump that puts a table in one needs it). Without a
    globals dump there is nothing to map, and a dump that names a tablespace fails the restore naming it."""
    entry = globals_entry(job.path, meta)
    if entry is None:
        return []
    job.stage = ROLES
    try:
        script = GlobalsScript(read_globals(job.module, job.identity, entry, job.path, job.target.env()))
    except ValueError as e:
        raise BackupFault('the globals dump %s cannot be read: %s' % (entry['file'], e), step=ROLES)
    names = [n for n in script.tablespaces if n not in ('pg_default', 'pg_global')]
    if not names:
        return []
    where = dict((n, '%s/%02d_%s' % (drill.instance.tablespaces, i, re.sub(r'[^A-Za-z0-9_.-]', '_', n)[:40]))
                 for i, n in enumerate(names))
    for n in names:
        drill.instance.make_dir(where[n])
    try:
        with job.admin() as admin:
            for st in tablespace_statements(names, where.get):
                admin.query(st)
    except PgOpsError as e:
        raise PgOpsError('creating the tablespaces %s of globals dump %s in the throwaway instance failed: %s'
                         % (', '.join(names), entry['id'], e.msg), step=ROLES)
    job.result['instance']['tablespaces'] = where
    job.stage = PREFLIGHT
    return names
