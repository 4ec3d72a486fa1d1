# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgops.postgresql contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# PRIVATE to the collection: this is not a public API and may change without notice.
"""pgbackrest_restore for PostgreSQL in a container (``container`` set); _pitr holds the steps both share.

The scratch instance is a NEW container on the server's image, with a new volume where the server's data volume is
mounted and the server container's other mounts read-only (the repository among them); pgbackrest restore and
pg_ctl run inside it (docker exec).

``replace`` cannot rename a data directory the server container mounts: a container's mounts are fixed, and
re-creating the container would leave the compose file naming the old volume. What is swapped is the content of
the volumes. A plain local volume is a directory ``<volumes root>/<name>/_data``; a helper container (the server's
image, no network) bind-mounts the volumes root and renames ``_data`` directories, so that the server's volume keeps
its name and gets the verified scratch's content, and its old content goes to a new volume
``<volume>-pgops-rollback-<ts>``. Renames on one file system: the switch costs the same for 1 GB or 1 TB, and
``rollback`` is the same swap back. Any failure after the stop switches back.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
import os
import socket
import subprocess
import tempfile
import time
from contextlib import suppress

from ansible_collections.pgops.postgresql.plugins.module_utils._connection import PgTarget
from ansible_collections.pgops.postgresql.plugins.module_utils._errors import PgOpsError
from ansible_collections.pgops.postgresql.plugins.module_utils._pgbackrest import PgBackRest, current_db_id
from ansible_collections.pgops.postgresql.plugins.module_utils._pipeline import popen, run_checked
from ansible_collections.pgops.postgresql.plugins.module_utils._pitr import (
    HBA_NAME, PitrJob, free_loopback_port, pid_alive, stamp, strip_archive_off, tail_of_log, target_of,
    unarchived_history,
)
from ansible_collections.pgops.postgresql.plugins.module_utils._steps import (
    INFO, PREFLIGHT, RECOVERY, RESTORE, ROLLBACK, SCRATCH, START, SWAP,
)

SCRATCH_WORK = '/tmp/pgops-scratch'
LABEL_OF = 'pgops.restore.of'


class ContainerPitrJob(PitrJob):
    """The scratch instance of a server in a container: a NEW container on the same image, with a new volume where
    the server's data volume is mounted, the server container's other mounts read-only (the repository among them),
    its network, and ``sleep infinity`` as command; pgbackrest restore and pg_ctl run inside it (docker exec)."""

    def __init__(self, module):
        super(ContainerPitrJob, self).__init__(module)
        self.server_down = False   # a replace of a stopped server container (decide_server_down)
        self.runtime = module.get_bin_path(self.p.get('container_runtime') or 'docker', required=True)
        self.original = self.p['container']

    def docker(self, args, label, step, stdin_path=None):
        return run_checked([self.runtime] + list(args), self.env(), label, step, stdin_path=stdin_path)

    def in_scratch(self, argv, user=None, step=SCRATCH, label=None, stdin_path=None, env_names=()):
        args = ['exec'] + (['-i'] if stdin_path else []) + ['-u', user or self.p['os_user']]
        for name in env_names:
            args += ['-e', name]
        return self.docker(args + [self.scratch['container']] + list(argv), label or argv[0], step, stdin_path)

    def pg_tool(self, name):
        return '/usr/lib/postgresql/%d/bin/%s' % (self.facts['major'], name)

    def env(self):
        env = super(ContainerPitrJob, self).env()
        env.update(self.br.secret_env)   # docker exec -e NAME passes these values (names only on argv)
        return env

    # -- a server container that is stopped (disaster recovery): replace only ----------------------------------
    def decide(self):
        if self.p['mode'] == 'replace' and not self.server_running(PREFLIGHT):
            return self.decide_server_down()
        return super(ContainerPitrJob, self).decide()

    def decide_server_down(self):
        """The server container is stopped - its data damaged or lost, the disaster recovery case. Nothing can be
        asked of it: the data directory comes from data_directory, PGDATA or the image's default, and pgBackRest
        runs in the scratch container, made first (the stanza's info gives the major). The switch then starts the
        container on the verified data; a failure leaves it stopped on its own data, as it was."""
        self.stage = PREFLIGHT
        self.server_down = True
        spec = json.loads(self.docker(['inspect', self.original], 'inspect of container %s' % self.original,
                                      PREFLIGHT))[0]
        env = dict(e.split('=', 1) for e in (spec.get('Config') or {}).get('Env') or [] if '=' in e)
        facts = dict(data_directory=self.p.get('data_directory') or env.get('PGDATA') or '/var/lib/postgresql/data',
                     hba_file=None, tablespaces=[], last_archived_time=None, major=None)
        self.facts = facts
        self.result['server'] = dict(running=False)
        self.warnings.append('container %s is stopped: the data directory is taken as %s, and the recoverable window '
                             'ends at the newest backup\'s end (the server cannot tell its last archived WAL)'
                             % (self.original, facts['data_directory']))
        if self.check_mode:
            kind, value = target_of(self.p)
            self.result['target'] = dict(type='latest' if kind == 'default' else kind, value=value)
            return facts, kind, value, dict(label='(the one fitting the target: pgBackRest runs in the scratch '
                                                  'container, not made in check mode)')
        self.plan_scratch(facts, {})
        self.clean_leftovers(facts['data_directory'])
        try:
            self.make_scratch()
            info = self.restorer().info()
            versions = [db for db in info.get('db') or [] if db.get('id') == current_db_id(info)]
            if not versions:
                raise PgOpsError('stanza %s knows no PostgreSQL cluster (pgbackrest info has no db)'
                                 % self.br.stanza, step=INFO)
            facts['major'] = int(str(versions[0].get('version')).partition('.')[0])
            kind, value, chosen = self.decide_target(facts, info)
        except BaseException:
            self.remove_scratch(ignore=True)
            raise
        return facts, kind, value, chosen

    def plan_scratch(self, facts, chosen):
        if self.scratch is not None and self.scratch.get('container_created'):
            return self.scratch['data'], None   # made already: the server is down (decide_server_down)
        out = self.docker(['inspect', self.original], 'inspect of container %s' % self.original, PREFLIGHT)
        spec = json.loads(out)[0]
        data = self.p.get('data_directory') or facts['data_directory']
        mounts = spec.get('Mounts') or []
        holding = [m for m in mounts if data == m['Destination'] or data.startswith(m['Destination'].rstrip('/') + '/')]
        data_mount = max(holding, key=lambda m: len(m['Destination']))['Destination'] if holding else data
        others = []
        for m in mounts:
            if m['Destination'] == data_mount or m.get('Type') not in ('volume', 'bind'):
                continue
            source = m['Name'] if m['Type'] == 'volume' else m['Source']
            if ',' in source + m['Destination'] or '"' in source + m['Destination']:
                raise PgOpsError('the mount %s of container %s has a comma or quote in its path: cannot be given '
                                 'to the scratch container' % (m['Destination'], self.original), step=PREFLIGHT)
            others.append('type=%s,source=%s,target=%s,readonly' % (m['Type'], source, m['Destination']))
        name = '%s-pgops-restore-%s' % (self.original, stamp().lower())
        config = self.p.get('config') or '/etc/pgbackrest/pgbackrest.conf'
        config_mounted = any(config == m['Destination'] or config.startswith(m['Destination'].rstrip('/') + '/')
                             for m in mounts)
        env_names = sorted(e.split('=', 1)[0] for e in (spec.get('Config') or {}).get('Env') or []
                           if e.startswith('PGBACKREST_'))
        port = self.p.get('scratch_port') or free_loopback_port()
        self.scratch = dict(container=name, volume=name, image=spec['Image'], data=data, data_mount=data_mount,
                            mounts=others, network=(spec.get('HostConfig') or {}).get('NetworkMode') or 'default',
                            run=SCRATCH_WORK + '/run', log=SCRATCH_WORK + '/postgresql.log',
                            hba=SCRATCH_WORK + '/' + HBA_NAME, tablespaces=SCRATCH_WORK + '/tablespaces',
                            port=port, host='127.0.0.1', config=config, copy_config=not config_mounted,
                            env=dict((n, v) for n, v in (e.split('=', 1) for e in spec['Config'].get('Env') or [])
                                     if n in env_names), directory=name)
        for value in self.scratch['env'].values():
            self.module.no_log_values.add(value)
        if self.p['mode'] == 'replace':
            if facts.get('tablespaces'):
                raise PgOpsError('the server has tablespaces (%s): mode=replace does not move tablespaces; restore '
                                 'with mode=new and copy the data' % ', '.join(facts['tablespaces']), step=PREFLIGHT)
            self.scratch['server_volume'], self.scratch['volumes_root'] = self.data_volume(spec, data_mount)
            self.scratch['rollback_volume'] = '%s-pgops-rollback-%s' % (self.scratch['server_volume'],
                                                                        stamp().lower())
        return data, None

    def plan(self, kind, value, chosen, data):
        steps = super(ContainerPitrJob, self).plan(kind, value, chosen, data)
        s = self.scratch
        steps.insert(0, 'new volume %s and container %s (image %s, network %s, sleep infinity) with the mounts of %s '
                        'read-only but the data volume' % (s['volume'], s['container'], s['image'][:19],
                                                           s['network'], self.original))
        if s['copy_config']:
            steps.insert(1, 'copy %s from %s into it' % (s['config'], self.original))
        steps = [st.replace('stop and remove %s' % s['directory'], 'remove container and volume %s' % s['container'])
                 for st in steps]
        if self.p['mode'] == 'replace':
            steps[-2:] = ['stop it and remove the scratch container, keeping its volume; stop container %s (%s)'
                          % (self.original, ' '.join(self.p.get('server_stop_command') or ['docker stop'])),
                          'swap the volumes\' content (renames under %s): volume %s gets the restored data, its old '
                          'data goes to the new volume %s (the rollback)' % (s['volumes_root'], s['server_volume'],
                                                                             s['rollback_volume']),
                          'start container %s, verify again (on failure: swap back)' % self.original]
        return steps

    def clean_leftovers(self, data):
        out = self.docker(['ps', '-a', '--filter', 'label=%s=%s' % (LABEL_OF, self.original), '--format',
                           '{{.Names}}'], 'docker ps', SCRATCH)
        cleaned = []
        for name in out.split():
            info = json.loads(self.docker(['inspect', name], 'inspect', SCRATCH))[0]
            labels = (info.get('Config') or {}).get('Labels') or {}
            if labels.get('pgops.restore.mode') == 'new' or labels.get('pgops.restore.host') != socket.gethostname():
                continue
            if pid_alive(labels.get('pgops.restore.pid')):
                continue
            with suppress(PgOpsError):
                self.docker(['rm', '-f', name], 'docker rm', SCRATCH)
            with suppress(PgOpsError):
                self.docker(['volume', 'rm', labels.get('pgops.restore.volume') or name], 'docker volume rm', SCRATCH)
            cleaned.append(name)
        # a volume whose container is gone: a run killed during a switch, after it removed the scratch container
        out = self.docker(['volume', 'ls', '-q', '--filter', 'label=%s=%s' % (LABEL_OF, self.original)],
                          'docker volume ls', SCRATCH)
        for name in out.split():
            if name in cleaned:
                continue
            info = json.loads(self.docker(['volume', 'inspect', name], 'inspect', SCRATCH))[0]
            labels = info.get('Labels') or {}
            if labels.get('pgops.restore.mode') == 'new' or labels.get('pgops.restore.host') != socket.gethostname() \
                    or pid_alive(labels.get('pgops.restore.pid')):
                continue
            if self.docker(['ps', '-aq', '--filter', 'volume=%s' % name], 'docker ps', SCRATCH).strip():
                continue
            with suppress(PgOpsError):
                self.docker(['volume', 'rm', name], 'docker volume rm', SCRATCH)
                cleaned.append(name)
        if cleaned:
            self.result['cleaned'] = cleaned

    def make_scratch(self):
        s = self.scratch
        if s.get('container_created'):
            return   # made already: the server is down (decide_server_down)
        self.stage = SCRATCH
        labels = ['--label', '%s=%s' % (LABEL_OF, self.original), '--label', 'pgops.restore.pid=%d' % os.getpid(),
                  '--label', 'pgops.restore.host=%s' % socket.gethostname(), '--label',
                  'pgops.restore.mode=%s' % self.p['mode'], '--label', 'pgops.restore.volume=%s' % s['volume']]
        self.docker(['volume', 'create'] + labels + [s['volume']], 'docker volume create', SCRATCH)
        s['volume_created'] = True
        argv = ['run', '-d', '--name', s['container'], '--network', s['network']] + labels
        argv += ['--mount', 'type=volume,source=%s,target=%s' % (s['volume'], s['data_mount'])]
        for m in s['mounts']:
            argv += ['--mount', m]
        env = self.env()
        for name, value in sorted(s['env'].items()):
            argv += ['-e', name]
        argv += ['--entrypoint', 'sleep', s['image'], 'infinity']
        run_checked([self.runtime] + argv, dict(env, **s['env']), 'docker run of the scratch container', SCRATCH)
        s['container_created'] = True
        if s.get('server_volume'):
            root = self.volume_root(s['volume'])
            if root != s['volumes_root']:
                raise PgOpsError('the scratch volume %s is under %s, the data volume %s under %s: mode=replace swaps '
                                 'them by renames, which needs one volumes root; use mode=new'
                                 % (s['volume'], root, s['server_volume'], s['volumes_root']), step=SCRATCH)
        self.in_scratch(['mkdir', '-p', s['data'], s['run'], s['tablespaces']], user='0')
        self.in_scratch(['chown', '-R', '%s:' % self.p['os_user'], s['data'], SCRATCH_WORK], user='0')
        self.in_scratch(['chmod', '0700', s['data'], s['run']], user='0')
        if s['copy_config']:
            self.copy_config()

    def copy_config(self):
        """pgbackrest.conf of the server container (copied into it by the role, not in the image) into the scratch:
        a tar stream from one docker cp to the other - the file (it may hold a passphrase) never lands on disk."""
        s = self.scratch
        src = popen([self.runtime, 'cp', '%s:%s' % (self.original, s['config']), '-'], stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE, env=self.env())
        dst = popen([self.runtime, 'cp', '-', '%s:%s' % (s['container'], os.path.dirname(s['config']))],
                    stdin=src.stdout, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=self.env())
        src.stdout.close()
        dst_out, dst_err = dst.communicate()
        src_err = src.stderr.read()
        src.wait()
        src.stderr.close()
        if src.returncode or dst.returncode:
            raise PgOpsError('copying %s from %s to the scratch container failed: %s %s' % (
                s['config'], self.original, src_err.decode('utf-8', 'replace').strip(),
                dst_err.decode('utf-8', 'replace').strip()), step=SCRATCH)

    def write_marker(self, kept):
        return None

    def run_restore(self, options):
        # inside the scratch container: docker rm -f of the container ends whatever a killed run left running there
        self.restorer().run('restore', options, step=RESTORE)

    def restorer(self):
        params = dict(self.p, container=self.scratch['container'])
        return PgBackRest(self.module, params)

    def scratch_file(self, path, text):
        fd, tmp = tempfile.mkstemp(dir=self.module.tmpdir)
        try:
            with os.fdopen(fd, 'w') as f:
                f.write(text)
            self.in_scratch(['dd', 'of=%s' % path, 'status=none'], stdin_path=tmp)
        finally:
            os.unlink(tmp)

    def prepare_scratch_config(self):
        s = self.scratch
        try:
            rules = self.in_scratch(['cat', os.path.join(s['data'], 'pg_hba.conf')])
        except PgOpsError:
            rules = ''
        if not rules and self.facts.get('hba_file'):
            with suppress(PgOpsError):
                rules = self.docker(['exec', '-u', self.p['os_user'], self.original, 'cat', self.facts['hba_file']],
                                    'cat hba_file', SCRATCH)
        self.scratch_file(s['hba'], '# pgops scratch instance: trust only on its private socket directory %s\n'
                                    'local all all trust\n%s' % (s['run'], rules))
        try:
            self.in_scratch(['test', '-e', os.path.join(s['data'], 'postgresql.conf')])
        except PgOpsError:
            self.scratch_file(os.path.join(s['data'], 'postgresql.conf'), '# pgops\n')
            s['created_conf'] = True
        try:
            self.in_scratch(['test', '-e', os.path.join(s['data'], 'pg_ident.conf')])
        except PgOpsError:
            s['ident'] = SCRATCH_WORK + '/pgops_ident.conf'
            self.scratch_file(s['ident'], '')

    def start_scratch(self):
        s = self.scratch
        self.scratch_started = True
        try:
            self.in_scratch([self.pg_tool('pg_ctl'), '-D', s['data'], '-l', s['log'], '-w', '-t',
                             str(self.p['recovery_timeout']), '-o', self.scratch_options(), 'start'],
                            step=START, label='pg_ctl start in the scratch container',
                            env_names=sorted(self.br.secret_env))
        except PgOpsError as e:
            raise PgOpsError('%s; its log: %s' % (e.msg, self.scratch_log()), step=START)

    def scratch_alive(self):
        try:
            self.in_scratch([self.pg_tool('pg_ctl'), '-D', self.scratch['data'], 'status'], step=RECOVERY)
            return True
        except PgOpsError:
            return False

    def scratch_log(self):
        try:
            text = self.in_scratch(['cat', self.scratch['log']])
        except PgOpsError as e:
            return 'no log (%s)' % e.msg
        return tail_of_log(text)

    def scratch_target(self):
        s = self.scratch
        params = dict(login_user=self.p['login_user'], login_unix_socket=s['run'], login_port=s['port'],
                      connect_timeout=5, container=s['container'], container_runtime=self.p.get('container_runtime'),
                      container_user=self.p['os_user'])
        target = PgTarget(self.module, params)
        target.server_major = self.facts['major']
        return target

    def scratch_result(self, running, removed=False):
        s = self.scratch
        out = dict(container=s['container'], volume=s['volume'], image=s['image'], network=s['network'],
                   data_directory=s['data'], port=s['port'], host=s['host'], socket_directory=s['run'], log=s['log'],
                   running=running, removed=removed)
        if running:
            out['connect'] = '%s exec -it -u %s %s psql -h %s -p %d -U %s' % (
                os.path.basename(self.runtime), self.p['os_user'], s['container'], s['run'], s['port'],
                self.p['login_user'])
            if s['network'] == 'host':
                out['connect'] += ' (or psql -h 127.0.0.1 -p %d from this host)' % s['port']
            out['stop_command'] = [self.runtime, 'rm', '-f', s['container']]
            tool = os.path.basename(self.runtime)
            out['remove'] = '%s rm -f %s && %s volume rm %s' % (tool, s['container'], tool, s['volume'])
        return out

    def remove_scratch(self, ignore=False):
        s = self.scratch
        if s is None:
            return
        problems = []
        if s.get('container_created'):
            try:
                self.docker(['rm', '-f', s['container']], 'docker rm of the scratch container', SCRATCH)
                s['container_created'] = False
            except PgOpsError as e:
                problems.append(e.msg)
        if s.get('volume_created') and not s.get('container_created'):
            try:
                self.docker(['volume', 'rm', s['volume']], 'docker volume rm of the scratch volume', SCRATCH)
                s['volume_created'] = False
            except PgOpsError as e:
                problems.append(e.msg)
        if problems and not ignore:
            raise PgOpsError('; '.join(problems), step=SCRATCH)
        for p in problems:
            self.warnings.append('%s; the next restore removes it' % p)

    # -- replace and rollback: the data volume's content is swapped by renames ---------------------------------
    def volume_root(self, name):
        """The directory holding a plain local volume's directory (``<root>/<name>/_data``)."""
        vol = json.loads(self.docker(['volume', 'inspect', name], 'inspect of volume %s' % name, PREFLIGHT))[0]
        point = vol.get('Mountpoint') or ''
        if vol.get('Driver') != 'local' or vol.get('Options') or os.path.basename(point) != '_data' \
                or os.path.basename(os.path.dirname(point)) != name:
            raise PgOpsError('volume %s (driver %s, options %s, at %s) is not a plain local volume: mode=replace '
                             'swaps volume directories by renames; restore with mode=new and switch by hand'
                             % (name, vol.get('Driver'), vol.get('Options') or 'none', point or '?'), step=PREFLIGHT)
        return os.path.dirname(os.path.dirname(point))

    def data_volume(self, spec, data_mount):
        """(name, volumes root) of the volume holding the server's data directory; refused unless a switch by
        renames is possible and no other running container uses it."""
        mount = [m for m in spec.get('Mounts') or [] if m['Destination'] == data_mount]
        if not mount or mount[0].get('Type') != 'volume':
            raise PgOpsError('the data directory of container %s is %s: mode=%s swaps the content of its data '
                             'volume; restore with mode=new and switch by hand (docs/pitr.md)' % (
                                 self.original, 'in a bind mount of %s' % mount[0]['Source'] if mount
                                 else 'in the container\'s own layer (no volume)', self.p['mode']), step=PREFLIGHT)
        name = mount[0]['Name']
        root = self.volume_root(name)
        users = self.docker(['ps', '--filter', 'volume=%s' % name, '--format', '{{.Names}}'], 'docker ps',
                            PREFLIGHT).split()
        others = sorted(set(users) - set([self.original]))
        if others:
            raise PgOpsError('volume %s is also used by running containers %s: stop them first (a switch changes '
                             'what they see)' % (name, ', '.join(others)), step=PREFLIGHT)
        return name, root

    def swap_volumes(self, moves, step, check=False):
        """Rename ``<root>/<src>/_data`` to ``<root>/<dst>/_data`` for each (src, dst) in order, in a helper
        container (the server's image, no network) that bind-mounts the volumes root: the daemon's host sees
        the paths, which this host may not. A volume left without ``_data`` gets an empty one. With ``check``,
        only that every directory is there and on one file system (a rename, never a copy)."""
        names = []
        for pair in moves:
            names += list(pair)
        argv = ['run', '--rm', '--network', 'none', '--user', '0', '--entrypoint', 'sh', '--mount',
                'type=bind,source=%s,target=/pgops-volumes' % self.scratch['volumes_root'], self.scratch['image'],
                '-c', SWAP_SCRIPT, 'pgops-swap', '/pgops-volumes', 'check' if check else 'swap'] + names
        self.docker(argv, 'the volume swap (%s)' % ', '.join('%s -> %s' % m for m in moves), step)

    def server_running(self, step=SWAP):
        out = self.docker(['inspect', '--format', '{{.State.Running}}', self.original],
                          'inspect of container %s' % self.original, step)
        return out.strip() == 'true'

    def server_start_argv(self, data, opts_dir):
        return list(self.p.get('server_start_command') or [self.runtime, 'start', self.original])

    def stop_server(self, data):
        """Sessions are ended first (a SIGTERM stop is PostgreSQL's smart shutdown: it would wait for them), then the
        container stops with its own stop signal, or server_stop_command does it."""
        if self.server_down and not self.server_running():
            return
        if self.p.get('server_stop_command'):
            self.run(list(self.p['server_stop_command']), 'server_stop_command', SWAP)
        else:
            with suppress(PgOpsError):
                with self.server.psql(self.p['maintenance_db']) as s:
                    s.query("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE pid <> "
                            "pg_backend_pid() AND backend_type = 'client backend'")
            self.docker(['stop', '-t', str(self.p['start_timeout']), self.original], 'docker stop', SWAP)
        if self.server_running():
            raise PgOpsError('container %s is still running after the stop' % self.original, step=SWAP)

    def stop_immediately(self):
        """Stop the container with SIGQUIT, PostgreSQL's immediate shutdown: the data it ran on is thrown away, and a
        clean shutdown would switch WAL and archive a segment of a timeline that never was (a later restore's
        new timeline would collide with it in the archive)."""
        # docker kill, not stop --signal: daemons before API 1.42 ignore the latter's signal and send their own
        with suppress(PgOpsError):
            self.docker(['kill', '--signal', 'QUIT', self.original], 'docker kill', ROLLBACK)
        deadline = time.time() + 30
        while self.server_running() and time.time() < deadline:
            time.sleep(0.2)
        self.docker(['stop', '-t', '10', self.original], 'docker stop', ROLLBACK)

    def make_switchable(self):
        """The verified scratch as the server will start it: stopped cleanly, archive_mode=off of the restore gone
        from postgresql.auto.conf, the new timeline's history file marked for archiving; then its container goes
        and its volume stays."""
        s = self.scratch
        self.in_scratch([self.pg_tool('pg_ctl'), '-D', s['data'], '-m', 'fast', '-w', '-t', '120', 'stop'],
                        step=SWAP, label='pg_ctl stop in the scratch container')
        self.scratch_started = False
        auto = os.path.join(s['data'], 'postgresql.auto.conf')
        self.scratch_file(auto, strip_archive_off(self.in_scratch(['cat', auto], step=SWAP)))
        remove = [os.path.join(s['data'], 'postmaster.opts')]
        if s.get('created_conf'):
            remove.append(os.path.join(s['data'], 'postgresql.conf'))
        self.in_scratch(['rm', '-f'] + remove, step=SWAP)
        # marked for archiving once the switched server is verified (as natively: see PitrJob.switch)
        wal = os.path.join(s['data'], 'pg_wal')
        s['history'] = unarchived_history(self.in_scratch(['ls', '-1a', wal], step=SWAP).split(),
                                          self.in_scratch(['ls', '-1a', os.path.join(wal, 'archive_status')],
                                                          step=SWAP).split())
        if self.in_scratch(['ls', '-A', os.path.join(s['data'], 'pg_tblspc')], step=SWAP).strip():
            raise PgOpsError('the restored backup has tablespaces: mode=replace does not move them; use mode=new',
                             step=SWAP)
        self.docker(['rm', '-f', s['container']], 'docker rm of the scratch container', SWAP)
        s['container_created'] = False

    def switch(self, data):
        """Stop the server container, swap the verified scratch's content into its data volume (the old content
        into a new rollback volume), start it, verify; any failure after the stop swaps back."""
        s = self.scratch
        t = time.time()
        server, kept = s['server_volume'], s['rollback_volume']
        try:
            self.make_switchable()
            self.docker(['volume', 'create', '--label', 'pgops.rollback.of=%s' % server, '--label',
                         'pgops.rollback.container=%s' % self.original, kept], 'docker volume create', SWAP)
            s['rollback_created'] = True
            if self.volume_root(kept) != s['volumes_root']:
                raise PgOpsError('the rollback volume %s is not under %s' % (kept, s['volumes_root']), step=SWAP)
            self.swap_volumes([(server, kept), (s['volume'], server)], SWAP, check=True)
            self.stop_server(data)
        except BaseException:
            self.drop_rollback_volume()
            self.remove_scratch(ignore=True)
            if not self.server_down and not self.server_running():
                with suppress(PgOpsError):
                    self.start_server(self.server_start_argv(data, None), SWAP)
            raise
        try:
            self.swap_volumes([(server, kept), (s['volume'], server)], SWAP)
            self.result['rollback'] = dict(volume=kept, how='mode=rollback with confirm=true')
            self.start_server(self.server_start_argv(data, None), SWAP)
            self.wait_server(SWAP)
            self._phase('switch', t)
            t = time.time()
            self.verify(self.server, switched=True)
            self._phase('verify_switched', t)
        except BaseException as e:
            why = e.msg if isinstance(e, PgOpsError) else '%s: %s' % (type(e).__name__, e)
            back = self.swap_back(data, [(server, s['volume']), (kept, server)])
            if back.startswith('swapped back'):
                self.result.pop('rollback', None)
                self.drop_rollback_volume()
                self.remove_scratch(ignore=True)
            raise PgOpsError('the switched server failed (%s); %s' % (why, back), step=SWAP)
        self.remove_scratch(ignore=True)
        if s['history']:
            status = os.path.join(s['data'], 'pg_wal', 'archive_status')
            self.docker(['exec', '-u', self.p['os_user'], self.original, 'touch']
                        + [os.path.join(status, n + '.ready') for n in s['history']], 'touch .ready', SWAP)
        self.archive_new_timeline()

    def drop_rollback_volume(self):
        s = self.scratch
        if s.get('rollback_created'):
            try:
                self.docker(['volume', 'rm', s['rollback_volume']], 'docker volume rm', SWAP)
                s['rollback_created'] = False
            except PgOpsError as e:
                self.warnings.append('the empty volume %s could not be removed: %s' % (s['rollback_volume'], e.msg))

    def swap_back(self, data, moves):
        """Stop the server container, undo the swap, start it (unless it was stopped before: then it stays
        stopped); a sentence saying what happened."""
        try:
            if self.server_running():
                self.stop_immediately()
            self.swap_volumes(moves, ROLLBACK)
            if self.server_down:
                return 'swapped back: container %s is stopped on its own data, as it was' % self.original
            self.start_server(self.server_start_argv(data, None), ROLLBACK)
            self.wait_server(ROLLBACK)
            return 'swapped back: container %s runs on its original data again' % self.original
        except BaseException as e:
            why = e.msg if isinstance(e, PgOpsError) else str(e)
            return ('SWAPPING BACK FAILED (%s): the original data is in volume %s; stop container %s, then move '
                    '<volumes root>/%s/_data back to <volumes root>/%s/_data (see docs/pitr.md) and start it'
                    % (why, moves[-1][0], self.original, moves[-1][0], moves[-1][1]))

    def rollback(self):
        """Swap the kept volume's content back into the server's data volume (the current content goes to a new
        volume ``<volume>-pgops-replaced-<ts>``)."""
        self.stage = PREFLIGHT
        spec = json.loads(self.docker(['inspect', self.original], 'inspect of container %s' % self.original,
                                      PREFLIGHT))[0]
        env = dict(e.split('=', 1) for e in (spec.get('Config') or {}).get('Env') or [] if '=' in e)
        data = self.p.get('data_directory') or env.get('PGDATA') or '/var/lib/postgresql/data'
        holding = [m['Destination'] for m in spec.get('Mounts') or []
                   if data == m['Destination'] or data.startswith(m['Destination'].rstrip('/') + '/')]
        mount = max(holding, key=len) if holding else data
        self.scratch = dict(image=spec['Image'])
        server, root = self.data_volume(spec, mount)
        self.scratch['volumes_root'] = root
        found = sorted(self.docker(['volume', 'ls', '-q', '--filter', 'label=pgops.rollback.of=%s' % server],
                                   'docker volume ls', PREFLIGHT).split())
        kept = self.p.get('rollback_volume') or (found[-1] if found else None)
        if not kept or kept not in found:
            raise PgOpsError('no rollback volume of %s%s (found: %s)' % (
                server, ' named %s' % kept if kept else '', ', '.join(found) or 'none'), step=ROLLBACK)
        relative = os.path.relpath(os.path.join(data, 'PG_VERSION'), mount)
        try:
            self.docker(['run', '--rm', '--network', 'none', '--entrypoint', 'test', '--mount',
                         'type=volume,source=%s,target=/pgops-kept,readonly' % kept, spec['Image'], '-s',
                         os.path.join('/pgops-kept', relative)], 'a look into volume %s' % kept, PREFLIGHT)
        except PgOpsError:
            raise PgOpsError('volume %s holds no data directory (no %s): a replace killed before its swap leaves its '
                             'rollback volume empty; remove it (docker volume rm %s) - the server kept its own data'
                             % (kept, relative, kept), step=ROLLBACK)
        replaced = '%s-pgops-replaced-%s' % (server, stamp().lower())
        self.result['plan'] = ['stop container %s, swap the volumes\' content: %s to the new volume %s, %s to %s, '
                               'start it' % (self.original, server, replaced, kept, server)]
        self.result['rollback'] = dict(volume=kept, replaced_volume=replaced)
        self.result['changed'] = True
        if self.check_mode:
            return self.result
        self.stage = ROLLBACK
        if self.server_running():
            with suppress(PgOpsError):
                self.read_server()
        self.docker(['volume', 'create', '--label', 'pgops.replaced.of=%s' % server, replaced],
                    'docker volume create', ROLLBACK)
        moves = [(server, replaced), (kept, server)]
        try:
            self.swap_volumes(moves, ROLLBACK, check=True)
            if self.server_running():
                self.stop_server(data)
        except BaseException:
            with suppress(PgOpsError):
                self.docker(['volume', 'rm', replaced], 'docker volume rm', ROLLBACK)
            raise
        self.swap_volumes(moves, ROLLBACK)
        try:
            self.start_server(self.server_start_argv(data, None), ROLLBACK)
            self.wait_server(ROLLBACK)
        except PgOpsError as e:
            back = self.swap_back(data, [(server, kept), (replaced, server)])
            raise PgOpsError('the rolled-back data did not start (%s); %s' % (e.msg, back), step=ROLLBACK)
        with suppress(PgOpsError):
            self.docker(['volume', 'rm', kept], 'docker volume rm', ROLLBACK)
        return self.rolled_back()


# Renames of volume directories in the helper container; volume names are Docker's ([A-Za-z0-9][A-Za-z0-9_.-]*),
# given as arguments, never pasted into the script. `mv` renames within one file system, checked first: it would
# copy across two.
SWAP_SCRIPT = r'''set -eu
cd "$1"
mode=$2; shift 2
all="$*"
dev=$(stat -c %d .)
for v in $all; do
  [ -d "$v" ] || { echo "volume directory $v is missing under the volumes root" >&2; exit 3; }
  [ "$(stat -c %d "$v")" = "$dev" ] || { echo "volume $v is on another file system" >&2; exit 3; }
  if [ -e "$v/_data" ] && [ "$(stat -c %d "$v/_data")" != "$dev" ]; then
    echo "$v/_data is a mount of its own" >&2; exit 3
  fi
done
if [ "$mode" = check ]; then
  while [ $# -ge 2 ]; do
    [ -d "$1/_data" ] || { echo "volume $1 has no _data" >&2; exit 3; }
    shift 2
  done
  exit 0
fi
while [ $# -ge 2 ]; do
  if [ -e "$1/_data" ]; then
    if [ -e "$2/_data" ]; then rmdir "$2/_data"; fi
    mv "$1/_data" "$2/_data"
  fi
  shift 2
done
for v in $all; do
  [ -e "$v/_data" ] || mkdir -m 0755 "$v/_data"
done
sync
'''
