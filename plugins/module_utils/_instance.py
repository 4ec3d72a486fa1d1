# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgops.postgresql contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# PRIVATE to the collection: this is not a public API and may change without notice.
"""A throwaway PostgreSQL instance: made, started, checked, stopped and removed - natively (a temporary data
directory, a private unix socket directory, TCP on loopback only) or as a container from a given image (a new
volume for its data, the network it is given).

NativeInstance and ContainerInstance have one interface: ``make()``, ``start(timeout, secrets)``, ``alive()``,
``stop(how)``, ``remove(ignore)``, ``keep()``, ``tool(name)``, ``read_file`` / ``write_file`` / ``exists`` /
``listdir`` (paths inside the instance), ``prepare_config(server_rules)``, ``target(login_user)`` (a PgTarget on its
socket), ``log_tail()`` and ``describe(running, removed, login_user)``. Every instance carries a mark (a marker file
beside its data directory, labels on a container and its volume: purpose, pid, host, mode, kept) by which a later
run finds and removes what a killed run left (``is_leftover``, ``NativeInstance.leftovers``,
``ContainerInstance.clean_leftovers``).
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import datetime
import json
import os
import shlex
import signal
import socket
import tempfile
import time
from contextlib import suppress

from ansible_collections.pgops.postgresql.plugins.module_utils._connection import PgTarget
from ansible_collections.pgops.postgresql.plugins.module_utils._errors import PgOpsError
from ansible_collections.pgops.postgresql.plugins.module_utils._fsutil import (
    disk_space, pid_alive as _pid_alive, remove_tree,
)
from ansible_collections.pgops.postgresql.plugins.module_utils._pipeline import run_checked
from ansible_collections.pgops.postgresql.plugins.module_utils._steps import PREFLIGHT, RECOVERY, SCRATCH, START, SWAP

LOOPBACK = '127.0.0.1'
HBA_NAME = 'pgops_hba.conf'
IDENT_NAME = 'pgops_ident.conf'
CONTAINER_WORK = '/tmp/pgops-scratch'    # inside a container: socket directory, log, hba, tablespaces
# what every throwaway instance runs with: loopback only, its own socket, hba and ident, no archiving
BASE_SETTINGS = (('listen_addresses', LOOPBACK), ('archive_mode', 'off'), ('logging_collector', 'off'),
                 ('synchronous_standby_names', ''), ('cluster_name', 'pgops-scratch'))
# an instance that only takes a restore and is thrown away: nothing of it needs to survive a crash
RESTORE_TUNED = (('fsync', 'off'), ('full_page_writes', 'off'), ('wal_level', 'minimal'), ('max_wal_senders', '0'))
CONF_NOTE = '# pgops: the server keeps its configuration outside its data directory\n'


# -- pure rules ---------------------------------------------------------------------------------------------------
def stamp():
    return datetime.datetime.now(datetime.timezone.utc).strftime('%Y%m%dT%H%M%SZ')


def free_loopback_port():
    s = socket.socket()
    try:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]
    finally:
        s.close()


def pid_alive(pid):
    """True when ``pid`` (an int or the text of a label) runs on this host."""
    text = str(pid or '').strip()
    return text.isdigit() and _pid_alive(int(text))


def postmaster_pid(data):
    try:
        with open(os.path.join(data, 'postmaster.pid')) as f:
            return int(f.readline().strip())
    except (IOError, OSError, ValueError):
        return None


def tail_of_log(text, lines=8):
    """The last FATAL/ERROR/PANIC lines of a server log (else its last lines), on one line."""
    wanted = [ln for ln in text.splitlines() if 'FATAL' in ln or 'ERROR' in ln or 'PANIC' in ln]
    return ' | '.join((wanted or text.splitlines())[-lines:])


def log_tail(path, lines=8):
    try:
        with open(path, 'rb') as f:
            text = f.read().decode('utf-8', 'replace')
    except (IOError, OSError):
        return 'no log'
    return tail_of_log(text, lines)


def check_free_space(path, need, what):
    """Free bytes where ``path`` (or its nearest existing parent) is; PgOpsError at preflight when fewer than
    ``need``, the message saying ``what`` needs them."""
    free = disk_space(path)[0]
    if free < need:
        raise PgOpsError('not enough free space for %s: %d MiB free at %s, %d MiB needed'
                         % (what, free >> 20, path, need >> 20), step=PREFLIGHT)
    return free


def server_settings(socket_dir, hba, port, ident=None, settings=(), restore_tuned=False):
    """``-p PORT -c name=value ...`` of a throwaway instance, as the list postgres takes."""
    chosen = list(BASE_SETTINGS[:1]) + [('unix_socket_directories', socket_dir), ('hba_file', hba)]
    chosen += list(BASE_SETTINGS[1:])
    if ident:
        chosen.append(('ident_file', ident))
    if restore_tuned:
        chosen += list(RESTORE_TUNED)
    chosen += sorted((settings or {}).items()) if isinstance(settings, dict) else list(settings)
    args = ['-p', str(port)]
    for name, value in chosen:
        args += ['-c', '%s=%s' % (name, value)]
    return args


def hba_text(socket_dir, rules=''):
    """Our hba file: trust on the private socket directory (0700, the instance's OS user) first, then ``rules``
    (the server's own, for TCP)."""
    return ('# pgops scratch instance: trust only on its private socket directory %s\nlocal all all trust\n%s'
            % (socket_dir, rules or ''))


def mark_of(purpose, mode, kept=False, **extra):
    """What an instance says of the run that made it."""
    mark = dict(purpose=purpose, pid=os.getpid(), host=socket.gethostname(), mode=mode, kept=bool(kept))
    mark.update(extra)
    return mark


def label_prefix(purpose):
    return 'pgops.%s.' % purpose


def labels_of(purpose, mark):
    """A mark as container labels ``pgops.<purpose>.<key>=<value>``, sorted; ``kept`` is left out (labels cannot
    change after creation: a container made by mode=new is kept from birth)."""
    prefix = label_prefix(purpose)
    return sorted('%s%s=%s' % (prefix, k, v) for k, v in mark.items() if k not in ('purpose', 'kept'))


def label_args(labels):
    args = []
    for label in labels:
        args += ['--label', label]
    return args


def mark_from_labels(purpose, labels):
    """The mark of a container or volume from its labels (a dict); None when it has none of ours."""
    prefix = label_prefix(purpose)
    mark = dict((k[len(prefix):], v) for k, v in (labels or {}).items() if k.startswith(prefix))
    if not mark:
        return None
    mark['kept'] = mark.get('kept', 'false') == 'true' or mark.get('mode') == 'new'
    return mark


def is_leftover(mark, host=None):
    """Whether an instance's mark says it was left by a run that died on this host (and not kept on purpose)."""
    if not mark or mark.get('kept') in (True, 'true'):
        return False
    if mark.get('host') != (host or socket.gethostname()):
        return False
    return not pid_alive(mark.get('pid'))


def kill_processes_using(path):
    """SIGKILL every process whose command line names ``path`` (``--pg1-path=PATH/data``, ``-D PATH/data``) or
    that works in it (a postmaster's children have its data directory as their working directory). The number
    killed."""
    prefix = path.rstrip('/') + '/'
    mark = prefix.encode()
    killed = 0
    for pid in os.listdir('/proc'):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            with open('/proc/%s/cmdline' % pid, 'rb') as f:
                named = mark in f.read()
            if named or (os.readlink('/proc/%s/cwd' % pid) + '/').startswith(prefix):
                os.kill(int(pid), signal.SIGKILL)
                killed += 1
        except (IOError, OSError):
            continue
    return killed


def base_env():
    env = dict((k, v) for k, v in os.environ.items() if not k.startswith('PG'))
    env['LC_ALL'] = 'C'
    return env


# -- the instances ------------------------------------------------------------------------------------------------
class Instance(object):
    """What both kinds share: paths, settings, the config files a started instance needs, its connection."""

    kind = None

    def __init__(self, module, work, data, port=None, os_user='postgres', major=None, settings=None,
                 restore_tuned=False, purpose='restore', mark=None):
        self.module = module
        self.work = work
        self.data = data
        self.run_dir = os.path.join(work, 'run')
        self.log = os.path.join(work, 'postgresql.log')
        self.hba = os.path.join(work, HBA_NAME)
        self.tablespaces = os.path.join(work, 'tablespaces')
        self.port = port or free_loopback_port()
        self.host = LOOPBACK
        self.os_user = os_user
        self.major = major
        self.settings = settings or {}
        self.restore_tuned = restore_tuned
        self.purpose = purpose
        self.mark = mark or mark_of(purpose, 'test')
        self.ident = None
        self.created_conf = False
        self.started = False

    def options(self):
        """The ``pg_ctl -o`` text: our settings, shell-quoted."""
        args = server_settings(self.run_dir, self.hba, self.port, self.ident, self.settings, self.restore_tuned)
        return ' '.join(shlex.quote(a) for a in args)

    def prepare_config(self, server_rules=None):
        """Files a started instance needs: a postgresql.conf where the server keeps its configuration outside the
        data directory (Debian), our hba file (the data directory's rules, else ``server_rules()``'s) and an empty
        ident file where the data directory has none."""
        conf = os.path.join(self.data, 'postgresql.conf')
        if not self.exists(conf):
            self.write_file(conf, CONF_NOTE)
            self.created_conf = True
        rules = ''
        own = os.path.join(self.data, 'pg_hba.conf')
        if self.exists(own):
            rules = self.read_file(own)
        if not rules and server_rules is not None:
            rules = server_rules() or ''
        self.write_file(self.hba, hba_text(self.run_dir, rules))
        if not self.exists(os.path.join(self.data, 'pg_ident.conf')):
            self.ident = os.path.join(self.work, IDENT_NAME)
            self.write_file(self.ident, '')

    def target_params(self, login_user):
        return dict(login_user=login_user, login_unix_socket=self.run_dir, login_port=self.port, connect_timeout=5)

    def target(self, login_user):
        """A PgTarget on the instance's private socket."""
        target = PgTarget(self.module, self.target_params(login_user))
        target.server_major = self.major
        return target

    def start_failed(self, e):
        return PgOpsError('%s; its log: %s' % (e.msg, self.log_tail()), step=START)

    def describe(self, running, removed=False, login_user='postgres'):
        return dict(data_directory=self.data, port=self.port, host=self.host, socket_directory=self.run_dir,
                    log=self.log, running=running, removed=removed)


class NativeInstance(Instance):
    """An instance in a new directory ``work`` (mode 0700, owned by ``uid``/``gid``): ``data/``, ``run/`` (its
    socket), ``tablespaces/``, its log, hba and ident files, and the marker ``pgops-<purpose>.json``."""

    kind = 'native'

    def __init__(self, module, work, uid, gid, pg_bin_dir=None, **kw):
        super(NativeInstance, self).__init__(module, work, os.path.join(work, 'data'), **kw)
        self.uid, self.gid = uid, gid
        self.pg_bin_dir = pg_bin_dir
        self.marker = os.path.join(work, marker_name(self.purpose))

    # -- commands ------------------------------------------------------------------------------------------------
    def as_user(self, argv):
        return as_user(self.module, self.uid, self.os_user, argv)

    def tool(self, name):
        """A server tool of the instance's major version (pg_ctl must match the data directory)."""
        return native_tool(self.pg_bin_dir, self.major, name)

    def pg_ctl_stop(self, data, how='fast', timeout=120, step=SWAP):
        """``pg_ctl stop`` of any data directory on this host (this instance's or the server's)."""
        if not os.path.exists(os.path.join(data, 'postmaster.pid')):
            return
        run_checked(self.as_user([self.tool('pg_ctl'), '-D', data, '-m', how, '-w', '-t', str(timeout), 'stop']),
                    base_env(), 'pg_ctl stop of %s' % data, step)

    # -- the interface -----------------------------------------------------------------------------------------
    def make(self):
        os.mkdir(self.work, 0o700)
        os.chown(self.work, self.uid, self.gid)
        self.write_mark()
        for path in (self.data, self.run_dir, self.tablespaces):
            os.mkdir(path, 0o700)
            os.chown(path, self.uid, self.gid)

    def make_dir(self, path):
        """A directory of the instance's OS user (a tablespace's location)."""
        os.mkdir(path, 0o700)
        os.chown(path, self.uid, self.gid)

    def write_mark(self):
        with open(self.marker, 'w') as f:
            json.dump(self.mark, f, sort_keys=True)

    def keep(self):
        self.mark['kept'] = True
        self.write_mark()

    def start(self, timeout, secrets=None):
        # -w: pg_ctl returns once it accepts (read-only) connections - recovery reached a consistent state - or
        # fails when the postmaster exits (a target recovery cannot reach: the log says why)
        argv = self.as_user([self.tool('pg_ctl'), '-D', self.data, '-l', self.log, '-w', '-t', str(timeout), '-o',
                             self.options(), 'start'])
        self.started = True
        env = base_env()
        env.update(secrets or {})   # restore_command (archive-get) runs in the instance's environment
        try:
            run_checked(argv, env, 'pg_ctl start of the scratch instance', START)
        except PgOpsError as e:
            raise self.start_failed(e)

    def alive(self):
        pid = postmaster_pid(self.data)
        return pid is not None and pid_alive(pid)

    def stop(self, how='fast', ignore=False, timeout=120):
        try:
            self.pg_ctl_stop(self.data, how, timeout)
        except PgOpsError:
            if not ignore:
                raise
        self.started = False

    def remove(self, ignore=False):
        """Stop it (immediately) and remove its directory; the problems met, as sentences (raised unless
        ``ignore``)."""
        if not os.path.isdir(self.work):
            return []
        if self.started:
            self.stop('immediate', ignore=True)
        try:
            remove_tree(self.work)
        except OSError as e:
            if not ignore:
                raise PgOpsError('removing %s failed: %s' % (self.work, e), step=SCRATCH)
            return ['the scratch directory %s could not be removed (%s)' % (self.work, e)]
        return []

    def remove_leftover(self):
        """Remove what a killed run left here: its instance stopped, any process still naming it killed."""
        self.stop('immediate', ignore=True)
        # what is still running there (a pgbackrest restore, a postmaster whose pg_ctl start was orphaned, its
        # children): killed, then the tree removed once nothing writes to it any more
        deadline = time.time() + 30
        while True:
            killed = kill_processes_using(self.work)
            remove_tree(self.work, ignore_errors=True)
            if not os.path.exists(self.work) or time.time() > deadline:
                break
            time.sleep(0.2 if killed else 0.1)

    @staticmethod
    def leftovers(parent, prefix, purpose='restore', host=None):
        """Directories ``parent/<prefix>*`` whose marker says a run that died made them."""
        found = []
        for name in sorted(os.listdir(parent)):
            path = os.path.join(parent, name)
            marker = os.path.join(path, marker_name(purpose))
            if not name.startswith(prefix) or not os.path.isfile(marker):
                continue
            try:
                with open(marker) as f:
                    mark = json.load(f)
            except (IOError, OSError, ValueError):
                continue
            if is_leftover(mark, host):
                found.append(path)
        return found

    # -- files ----------------------------------------------------------------------------------------------
    def write_file(self, path, text):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, 'w') as f:
            f.write(text)
        os.chmod(path, 0o600)
        os.chown(path, self.uid, self.gid)

    def read_file(self, path):
        with open(path) as f:
            return f.read()

    def exists(self, path):
        return os.path.exists(path)

    def listdir(self, path):
        return os.listdir(path)

    def log_tail(self):
        return log_tail(self.log)

    def target_params(self, login_user):
        params = super(NativeInstance, self).target_params(login_user)
        params['pg_bin_dir'] = self.pg_bin_dir
        return params

    def describe(self, running, removed=False, login_user='postgres'):
        out = dict(directory=self.work, **super(NativeInstance, self).describe(running, removed))
        if running:
            out['connect'] = 'psql -h 127.0.0.1 -p %d -U %s (or -h %s as %s)' % (
                self.port, login_user, self.run_dir, self.os_user)
            out['stop_command'] = self.as_user([self.tool('pg_ctl'), '-D', self.data, '-m', 'fast', 'stop'])
            out['remove'] = 'stop it, then remove %s' % self.work
        return out


def as_user(module, uid, os_user, argv):
    """``argv`` run as ``os_user`` (uid ``uid``): as it is when we are that user, through runuser when root."""
    if os.geteuid() == uid:
        return list(argv)
    if os.geteuid() == 0:
        return [module.get_bin_path('runuser', required=True), '-u', os_user, '--'] + list(argv)
    raise PgOpsError('the module runs as uid %d: run it as root (become) or as os_user %s'
                     % (os.geteuid(), os_user), step=PREFLIGHT)


def marker_name(purpose):
    return 'pgops-%s.json' % purpose


def native_tool(pg_bin_dir, major, name):
    """A server tool of PostgreSQL ``major`` on this host (``pg_bin_dir`` or Debian's layout); PgOpsError at
    preflight when it is not there."""
    path = os.path.join(pg_bin_dir, name) if pg_bin_dir else '/usr/lib/postgresql/%d/bin/%s' % (major, name)
    if not os.access(path, os.X_OK):
        raise PgOpsError('%s of PostgreSQL %d not found (%s): install the server package or set pg_bin_dir'
                         % (name, major, path), step=PREFLIGHT)
    return path


class Docker(object):
    """Runs of ``docker ARGS`` (or podman) with one environment: secrets go by name (``-e NAME``), never argv."""

    def __init__(self, runtime, env=None):
        self.runtime = runtime
        self.env = env if env is not None else base_env()

    def __call__(self, args, label, step, stdin_path=None, env=None):
        return run_checked([self.runtime] + list(args), env or self.env, label, step, stdin_path=stdin_path)

    def inspect(self, name, step, what='container'):
        args = ['inspect', name] if what == 'container' else ['volume', 'inspect', name]
        return json.loads(self(args, 'inspect of %s %s' % (what, name), step))[0]


class ContainerInstance(Instance):
    """An instance in a NEW container on ``image`` (``sleep infinity`` as its command; PostgreSQL runs in it by
    docker exec) with a new volume ``volume`` mounted at ``data_mount``, the given ``mounts`` (``--mount`` texts)
    and ``network`` (``none``: no network at all); its container and volume carry the mark as labels."""

    kind = 'container'

    def __init__(self, module, docker, name, image, data, data_mount=None, mounts=(), network='none', env=None,
                 volume=None, **kw):
        super(ContainerInstance, self).__init__(module, CONTAINER_WORK, data, **kw)
        self.docker = docker
        self.name = name
        self.image = image
        self.data_mount = data_mount or data
        self.mounts = list(mounts)
        self.network = network
        self.env = dict(env or {})     # passed to docker run by name
        self.volume = volume or name
        self.container_created = False
        self.volume_created = False
        for value in self.env.values():
            module.no_log_values.add(value)

    def labels(self):
        return labels_of(self.purpose, dict(self.mark, volume=self.volume))

    def run_argv(self):
        """``docker run`` of the instance's container (without the runtime)."""
        argv = ['run', '-d', '--name', self.name, '--network', self.network] + label_args(self.labels())
        argv += ['--mount', 'type=volume,source=%s,target=%s' % (self.volume, self.data_mount)]
        for m in self.mounts:
            argv += ['--mount', m]
        for name in sorted(self.env):
            argv += ['-e', name]
        return argv + ['--entrypoint', 'sleep', self.image, 'infinity']

    def make(self):
        self.docker(['volume', 'create'] + label_args(self.labels()) + [self.volume], 'docker volume create',
                    SCRATCH)
        self.volume_created = True
        self.docker(self.run_argv(), 'docker run of the scratch container', SCRATCH,
                    env=dict(self.docker.env, **self.env))
        self.container_created = True

    def make_dirs(self):
        """The instance's directories, owned by its OS user."""
        self.exec(['mkdir', '-p', self.data, self.run_dir, self.tablespaces], user='0')
        self.exec(['chown', '-R', '%s:' % self.os_user, self.data, self.work, self.tablespaces], user='0')
        self.exec(['chmod', '0700', self.data, self.run_dir], user='0')

    def make_dir(self, path):
        """A directory of the instance's OS user (a tablespace's location)."""
        self.exec(['mkdir', '-m', '0700', path])

    def exec(self, argv, user=None, step=SCRATCH, label=None, stdin_path=None, env_names=(), env=None):
        args = ['exec'] + (['-i'] if stdin_path else []) + ['-u', user or self.os_user]
        for name in env_names:
            args += ['-e', name]
        return self.docker(args + [self.name] + list(argv), label or argv[0], step, stdin_path=stdin_path, env=env)

    def keep(self):
        return None   # labels cannot change: a container of mode=new was marked kept when it was made

    def tool(self, name):
        return '/usr/lib/postgresql/%d/bin/%s' % (self.major, name)

    def start(self, timeout, secrets=None):
        self.started = True
        try:
            self.exec([self.tool('pg_ctl'), '-D', self.data, '-l', self.log, '-w', '-t', str(timeout), '-o',
                       self.options(), 'start'], step=START, label='pg_ctl start in the scratch container',
                      env_names=sorted(secrets or {}), env=dict(self.docker.env, **(secrets or {})))
        except PgOpsError as e:
            raise self.start_failed(e)

    def alive(self):
        try:
            self.exec([self.tool('pg_ctl'), '-D', self.data, 'status'], step=RECOVERY)
            return True
        except PgOpsError:
            return False

    def stop(self, how='fast', ignore=False, timeout=120):
        try:
            self.exec([self.tool('pg_ctl'), '-D', self.data, '-m', how, '-w', '-t', str(timeout), 'stop'],
                      step=SWAP, label='pg_ctl stop in the scratch container')
        except PgOpsError:
            if not ignore:
                raise
        self.started = False

    def remove_container(self):
        self.docker(['rm', '-f', self.name], 'docker rm of the scratch container', SWAP)
        self.container_created = False

    def remove(self, ignore=False):
        """Remove the container (whatever runs in it ends) and its volume; the problems met (raised unless
        ``ignore``)."""
        problems = []
        if self.container_created:
            try:
                self.docker(['rm', '-f', self.name], 'docker rm of the scratch container', SCRATCH)
                self.container_created = False
            except PgOpsError as e:
                problems.append(e.msg)
        if self.volume_created and not self.container_created:
            try:
                self.docker(['volume', 'rm', self.volume], 'docker volume rm of the scratch volume', SCRATCH)
                self.volume_created = False
            except PgOpsError as e:
                problems.append(e.msg)
        if problems and not ignore:
            raise PgOpsError('; '.join(problems), step=SCRATCH)
        return problems

    @staticmethod
    def clean_leftovers(docker, purpose, of, host=None):
        """Remove the containers and volumes marked ``pgops.<purpose>.of=<of>`` that a run which died left (a
        volume too whose container is gone: a run killed during a switch); their names."""
        prefix = label_prefix(purpose)
        cleaned = []
        out = docker(['ps', '-a', '--filter', 'label=%sof=%s' % (prefix, of), '--format', '{{.Names}}'],
                     'docker ps', SCRATCH)
        for name in out.split():
            labels = (docker.inspect(name, SCRATCH).get('Config') or {}).get('Labels') or {}
            if not is_leftover(mark_from_labels(purpose, labels), host):
                continue
            for args, label in ((['rm', '-f', name], 'docker rm'),
                                (['volume', 'rm', labels.get(prefix + 'volume') or name], 'docker volume rm')):
                with suppress(PgOpsError):    # best effort: what stays is found again by the next run
                    docker(args, label, SCRATCH)
            cleaned.append(name)
        out = docker(['volume', 'ls', '-q', '--filter', 'label=%sof=%s' % (prefix, of)], 'docker volume ls', SCRATCH)
        for name in out.split():
            if name in cleaned:
                continue
            labels = docker.inspect(name, SCRATCH, what='volume').get('Labels') or {}
            if not is_leftover(mark_from_labels(purpose, labels), host):
                continue
            if docker(['ps', '-aq', '--filter', 'volume=%s' % name], 'docker ps', SCRATCH).strip():
                continue
            with suppress(PgOpsError):        # best effort: a volume still in use stays for the next run
                docker(['volume', 'rm', name], 'docker volume rm', SCRATCH)
                cleaned.append(name)
        return cleaned

    # -- files ----------------------------------------------------------------------------------------------
    def write_file(self, path, text):
        """Through ``dd`` in the container (as its OS user) from a file in the module's temporary directory."""
        fd, tmp = tempfile.mkstemp(dir=self.module.tmpdir)
        try:
            with os.fdopen(fd, 'w') as f:
                f.write(text)
            self.exec(['dd', 'of=%s' % path, 'status=none'], stdin_path=tmp)
        finally:
            os.unlink(tmp)

    def read_file(self, path):
        return self.exec(['cat', path])

    def exists(self, path):
        try:
            self.exec(['test', '-e', path])
            return True
        except PgOpsError:
            return False

    def listdir(self, path):
        return [n for n in self.exec(['ls', '-1a', path]).split() if n not in ('.', '..')]

    def log_tail(self):
        try:
            text = self.read_file(self.log)
        except PgOpsError as e:
            return 'no log (%s)' % e.msg
        return tail_of_log(text)

    def target_params(self, login_user):
        params = super(ContainerInstance, self).target_params(login_user)
        params.update(container=self.name, container_runtime=self.docker.runtime, container_user=self.os_user)
        return params

    def describe(self, running, removed=False, login_user='postgres'):
        out = dict(container=self.name, volume=self.volume, image=self.image, network=self.network,
                   **super(ContainerInstance, self).describe(running, removed))
        if running:
            tool = os.path.basename(self.docker.runtime)
            out['connect'] = '%s exec -it -u %s %s psql -h %s -p %d -U %s' % (
                tool, self.os_user, self.name, self.run_dir, self.port, login_user)
            if self.network == 'host':
                out['connect'] += ' (or psql -h 127.0.0.1 -p %d from this host)' % self.port
            out['stop_command'] = [self.docker.runtime, 'rm', '-f', self.name]
            out['remove'] = '%s rm -f %s && %s volume rm %s' % (tool, self.name, tool, self.volume)
        return out
