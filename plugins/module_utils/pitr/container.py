# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgops.postgresql contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# PRIVATE to the collection: this is not a public API and may change without notice.
"""pgbackrest_restore for PostgreSQL in a container (``container`` set).

The scratch instance is a ContainerInstance: a NEW container on the server's image, with a new volume where the
server's data volume is mounted, the server container's other mounts read-only (the repository among them) and its
network; pgbackrest restore and pg_ctl run inside it (docker exec).

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

import os
import subprocess
import time
from contextlib import suppress

from ansible_collections.pgops.postgresql.plugins.module_utils._errors import PgOpsError
from ansible_collections.pgops.postgresql.plugins.module_utils._instance import (
    ContainerInstance, Docker, base_env, mark_of, stamp,
)
from ansible_collections.pgops.postgresql.plugins.module_utils._pgbackrest import PgBackRest, current_db_id
from ansible_collections.pgops.postgresql.plugins.module_utils._pipeline import popen
from ansible_collections.pgops.postgresql.plugins.module_utils._steps import (
    INFO, PREFLIGHT, RESTORE, ROLLBACK, SCRATCH, SWAP,
)
from ansible_collections.pgops.postgresql.plugins.module_utils.pitr.backend import Backend
from ansible_collections.pgops.postgresql.plugins.module_utils.pitr.target import target_of

DEFAULT_DATA = '/var/lib/postgresql/data'


def holding_mount(mounts, path):
    """The destination of the mount (of ``docker inspect``'s Mounts) that holds ``path``; None when none does."""
    holding = [m['Destination'] for m in mounts
               if path == m['Destination'] or path.startswith(m['Destination'].rstrip('/') + '/')]
    return max(holding, key=len) if holding else None


def env_of(spec):
    return dict(e.split('=', 1) for e in (spec.get('Config') or {}).get('Env') or [] if '=' in e)


class ContainerBackend(Backend):
    """The server container ``container``; its scratch containers are told apart by labels."""

    def __init__(self, job):
        super(ContainerBackend, self).__init__(job)
        self.was_down = False   # a replace of a stopped server container (decide_down)
        self.runtime = self.module.get_bin_path(self.p.get('container_runtime') or 'docker', required=True)
        self.original = self.p['container']
        self.docker = Docker(self.runtime, self.env())
        self.image = None
        self.config = None
        self.copy_config = False
        self.server_volume = self.volumes_root = self.rollback_volume = None
        self.rollback_created = False

    def env(self):
        env = base_env()
        env.update(self.job.br.secret_env)   # docker exec -e NAME passes these values (names only on argv)
        return env

    def inspect(self):
        return self.docker.inspect(self.original, PREFLIGHT)

    # -- a server container that is stopped (disaster recovery): replace only ----------------------------------
    def server_down(self):
        return self.p['mode'] == 'replace' and not self.server_running(PREFLIGHT)

    def decide_down(self):
        """The server container is stopped - its data damaged or lost, the disaster recovery case. Nothing can be
        asked of it: the data directory comes from data_directory, PGDATA or the image's default, and pgBackRest
        runs in the scratch container, made first (the stanza's info gives the major). The switch then starts the
        container on the verified data; a failure leaves it stopped on its own data, as it was."""
        job = self.job
        self.was_down = True
        env = env_of(self.inspect())
        facts = dict(data_directory=self.p.get('data_directory') or env.get('PGDATA') or DEFAULT_DATA,
                     hba_file=None, tablespaces=[], last_archived_time=None, major=None)
        job.facts = facts
        job.record(server=dict(running=False))
        job.warn('container %s is stopped: the data directory is taken as %s, and the recoverable window ends at '
                 'the newest backup\'s end (the server cannot tell its last archived WAL)'
                 % (self.original, facts['data_directory']))
        if job.check_mode:
            kind, value = target_of(self.p)
            job.record(target=dict(type='latest' if kind == 'default' else kind, value=value))
            return facts, kind, value, dict(label='(the one fitting the target: pgBackRest runs in the scratch '
                                                  'container, not made in check mode)')
        self.plan_scratch(facts, {})
        job.record_cleaned(self.clean_leftovers(facts['data_directory']))
        try:
            self.make_scratch()
            info = self.restorer().info()
            versions = [db for db in info.get('db') or [] if db.get('id') == current_db_id(info)]
            if not versions:
                raise PgOpsError('stanza %s knows no PostgreSQL cluster (pgbackrest info has no db)'
                                 % job.br.stanza, step=INFO)
            facts['major'] = self.instance.major = int(str(versions[0].get('version')).partition('.')[0])
            kind, value, chosen = job.decide_target(facts, info)
        except BaseException:
            self.remove_scratch(ignore=True)
            raise
        return facts, kind, value, chosen

    # -- deciding ----------------------------------------------------------------------------------------------
    def plan_scratch(self, facts, chosen):
        if self.instance is not None and self.instance.container_created:
            return self.instance.data   # made already: the server is down (decide_down)
        spec = self.inspect()
        data = self.p.get('data_directory') or facts['data_directory']
        mounts = spec.get('Mounts') or []
        data_mount = holding_mount(mounts, data) or data
        others = []
        for m in mounts:
            if m['Destination'] == data_mount or m.get('Type') not in ('volume', 'bind'):
                continue
            source = m['Name'] if m['Type'] == 'volume' else m['Source']
            if ',' in source + m['Destination'] or '"' in source + m['Destination']:
                raise PgOpsError('the mount %s of container %s has a comma or quote in its path: cannot be given '
                                 'to the scratch container' % (m['Destination'], self.original), step=PREFLIGHT)
            others.append('type=%s,source=%s,target=%s,readonly' % (m['Type'], source, m['Destination']))
        self.config = self.p.get('config') or '/etc/pgbackrest/pgbackrest.conf'
        self.copy_config = holding_mount(mounts, self.config) is None
        self.image = spec['Image']
        name = '%s-pgops-restore-%s' % (self.original, stamp().lower())
        self.instance = ContainerInstance(
            self.module, self.docker, name, spec['Image'], data, data_mount=data_mount, mounts=others,
            network=(spec.get('HostConfig') or {}).get('NetworkMode') or 'default',
            env=dict((n, v) for n, v in env_of(spec).items() if n.startswith('PGBACKREST_')),
            port=self.p.get('scratch_port'), os_user=self.p['os_user'], major=facts.get('major'),
            settings=self.p.get('scratch_settings'), mark=mark_of('restore', self.p['mode'], of=self.original))
        if self.p['mode'] == 'replace':
            if facts.get('tablespaces'):
                raise PgOpsError('the server has tablespaces (%s): mode=replace does not move tablespaces; restore '
                                 'with mode=new and copy the data' % ', '.join(facts['tablespaces']), step=PREFLIGHT)
            self.server_volume, self.volumes_root = self.data_volume(spec, data_mount)
            self.rollback_volume = '%s-pgops-rollback-%s' % (self.server_volume, stamp().lower())
        return data

    def plan_steps(self, steps, data):
        inst = self.instance
        steps.insert(0, 'new volume %s and container %s (image %s, network %s, sleep infinity) with the mounts of %s '
                        'read-only but the data volume' % (inst.volume, inst.name, inst.image[:19], inst.network,
                                                           self.original))
        if self.copy_config:
            steps.insert(1, 'copy %s from %s into it' % (self.config, self.original))
        if self.p['mode'] == 'replace':
            steps += ['stop it and remove the scratch container, keeping its volume; stop container %s (%s)'
                      % (self.original, ' '.join(self.p.get('server_stop_command') or ['docker stop'])),
                      'swap the volumes\' content (renames under %s): volume %s gets the restored data, its old '
                      'data goes to the new volume %s (the rollback)' % (self.volumes_root, self.server_volume,
                                                                         self.rollback_volume),
                      'start container %s, verify again (on failure: swap back)' % self.original]
        return steps

    def remove_words(self):
        return 'remove container and volume %s' % self.instance.name

    def clean_leftovers(self, data):
        return ContainerInstance.clean_leftovers(self.docker, 'restore', self.original)

    # -- the scratch instance ----------------------------------------------------------------------------------
    def make_scratch(self):
        inst = self.instance
        if inst.container_created:
            return   # made already: the server is down (decide_down)
        inst.make()
        if self.server_volume:
            root = self.volume_root(inst.volume)
            if root != self.volumes_root:
                raise PgOpsError('the scratch volume %s is under %s, the data volume %s under %s: mode=replace swaps '
                                 'them by renames, which needs one volumes root; use mode=new'
                                 % (inst.volume, root, self.server_volume, self.volumes_root), step=SCRATCH)
        inst.make_dirs()
        if self.copy_config:
            self.copy_config_in()

    def copy_config_in(self):
        """pgbackrest.conf of the server container (copied into it by the role, not in the image) into the scratch:
        a tar stream from one docker cp to the other - the file (it may hold a passphrase) never lands on disk."""
        src = popen([self.runtime, 'cp', '%s:%s' % (self.original, self.config), '-'], stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE, env=self.env())
        dst = popen([self.runtime, 'cp', '-', '%s:%s' % (self.instance.name, os.path.dirname(self.config))],
                    stdin=src.stdout, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=self.env())
        src.stdout.close()
        dummy, dst_err = dst.communicate()
        src_err = src.stderr.read()
        src.wait()
        src.stderr.close()
        if src.returncode or dst.returncode:
            raise PgOpsError('copying %s from %s to the scratch container failed: %s %s' % (
                self.config, self.original, src_err.decode('utf-8', 'replace').strip(),
                dst_err.decode('utf-8', 'replace').strip()), step=SCRATCH)

    def restorer(self):
        return PgBackRest(self.module, dict(self.p, container=self.instance.name))

    def run_restore(self, options):
        # inside the scratch container: docker rm -f of the container ends whatever a killed run left running there
        self.restorer().run('restore', options, step=RESTORE)

    def server_rules(self):
        if not self.job.facts.get('hba_file'):
            return ''
        with suppress(PgOpsError):
            return self.docker(['exec', '-u', self.p['os_user'], self.original, 'cat', self.job.facts['hba_file']],
                               'cat hba_file', SCRATCH)
        return ''

    def remove_files(self, paths):
        self.instance.exec(['rm', '-f'] + list(paths), step=SWAP)

    # -- the server container --------------------------------------------------------------------------------
    def server_running(self, step=SWAP):
        out = self.docker(['inspect', '--format', '{{.State.Running}}', self.original],
                          'inspect of container %s' % self.original, step)
        return out.strip() == 'true'

    def start_server(self, step):
        self.run(list(self.p.get('server_start_command') or [self.runtime, 'start', self.original]),
                 'start of the server', step)
        self.job.wait_server(step)

    def stop_server(self):
        """Sessions are ended first (a SIGTERM stop is PostgreSQL's smart shutdown: it would wait for them), then the
        container stops with its own stop signal, or server_stop_command does it."""
        if self.was_down and not self.server_running():
            return
        if self.p.get('server_stop_command'):
            self.run(list(self.p['server_stop_command']), 'server_stop_command', SWAP)
        else:
            with suppress(PgOpsError):
                with self.job.server.psql(self.p['maintenance_db']) as s:
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

    # -- replace and rollback: the data volume's content is swapped by renames ---------------------------------
    def volume_root(self, name):
        """The directory holding a plain local volume's directory (``<root>/<name>/_data``)."""
        vol = self.docker.inspect(name, PREFLIGHT, what='volume')
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
        self.docker(swap_argv(self.volumes_root, self.image, moves, check),
                    'the volume swap (%s)' % ', '.join('%s -> %s' % m for m in moves), step)

    def switch(self, data):
        """Stop the server container, swap the verified scratch's content into its data volume (the old content
        into a new rollback volume), start it, verify; any failure after the stop swaps back."""
        inst = self.instance
        server, kept = self.server_volume, self.rollback_volume
        moves = [(server, kept), (inst.volume, server)]
        try:
            history = self.make_switchable()
            inst.remove_container()
            self.docker(['volume', 'create', '--label', 'pgops.rollback.of=%s' % server, '--label',
                         'pgops.rollback.container=%s' % self.original, kept], 'docker volume create', SWAP)
            self.rollback_created = True
            if self.volume_root(kept) != self.volumes_root:
                raise PgOpsError('the rollback volume %s is not under %s' % (kept, self.volumes_root), step=SWAP)
            self.swap_volumes(moves, SWAP, check=True)
            self.stop_server()
        except BaseException:
            self.drop_rollback_volume()
            self.remove_scratch(ignore=True)
            if not self.was_down and not self.server_running():
                with suppress(PgOpsError):
                    self.start_server(SWAP)
            raise
        try:
            self.swap_volumes(moves, SWAP)
            self.job.record(rollback=dict(volume=kept, how='mode=rollback with confirm=true'))
            self.start_server(SWAP)
            self.job.verify_switched()
        except BaseException as e:
            why = e.msg if isinstance(e, PgOpsError) else '%s: %s' % (type(e).__name__, e)
            back = self.swap_back([(server, inst.volume), (kept, server)])
            if back.startswith('swapped back'):
                self.job.forget('rollback')
                self.drop_rollback_volume()
                self.remove_scratch(ignore=True)
            raise PgOpsError('the switched server failed (%s); %s' % (why, back), step=SWAP)
        self.remove_scratch(ignore=True)
        if history:
            status = os.path.join(inst.data, 'pg_wal', 'archive_status')
            self.docker(['exec', '-u', self.p['os_user'], self.original, 'touch']
                        + [os.path.join(status, n + '.ready') for n in history], 'touch .ready', SWAP)

    def drop_rollback_volume(self):
        if self.rollback_created:
            try:
                self.docker(['volume', 'rm', self.rollback_volume], 'docker volume rm', SWAP)
                self.rollback_created = False
            except PgOpsError as e:
                self.job.warn('the empty volume %s could not be removed: %s' % (self.rollback_volume, e.msg))

    def swap_back(self, moves):
        """Stop the server container, undo the swap, start it (unless it was stopped before: then it stays
        stopped); a sentence saying what happened."""
        try:
            if self.server_running():
                self.stop_immediately()
            self.swap_volumes(moves, ROLLBACK)
            if self.was_down:
                return 'swapped back: container %s is stopped on its own data, as it was' % self.original
            self.start_server(ROLLBACK)
            return 'swapped back: container %s runs on its original data again' % self.original
        except BaseException as e:
            why = e.msg if isinstance(e, PgOpsError) else str(e)
            return ('SWAPPING BACK FAILED (%s): the original data is in volume %s; stop container %s, then move '
                    '<volumes root>/%s/_data back to <volumes root>/%s/_data (see docs/pitr.md) and start it'
                    % (why, moves[-1][0], self.original, moves[-1][0], moves[-1][1]))

    def kept_volume(self):
        """(server's data volume, the kept volume to swap back): refused when there is none, or it is empty."""
        spec = self.inspect()
        data = self.p.get('data_directory') or env_of(spec).get('PGDATA') or DEFAULT_DATA
        mount = holding_mount(spec.get('Mounts') or [], data) or data
        self.image = spec['Image']
        server, self.volumes_root = self.data_volume(spec, mount)
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
        return server, kept

    def rollback(self):
        """Swap the kept volume's content back into the server's data volume (the current content goes to a new
        volume ``<volume>-pgops-replaced-<ts>``)."""
        server, kept = self.kept_volume()
        replaced = '%s-pgops-replaced-%s' % (server, stamp().lower())
        self.job.record(plan=['stop container %s, swap the volumes\' content: %s to the new volume %s, %s to %s, '
                              'start it' % (self.original, server, replaced, kept, server)],
                        rollback=dict(volume=kept, replaced_volume=replaced), changed=True)
        if self.job.check_mode:
            return False
        self.job.enter(ROLLBACK)
        if self.server_running():
            with suppress(PgOpsError):
                self.job.read_server()
        self.docker(['volume', 'create', '--label', 'pgops.replaced.of=%s' % server, replaced],
                    'docker volume create', ROLLBACK)
        moves = [(server, replaced), (kept, server)]
        try:
            self.swap_volumes(moves, ROLLBACK, check=True)
            if self.server_running():
                self.stop_server()
        except BaseException:
            with suppress(PgOpsError):
                self.docker(['volume', 'rm', replaced], 'docker volume rm', ROLLBACK)
            raise
        self.swap_volumes(moves, ROLLBACK)
        try:
            self.start_server(ROLLBACK)
        except PgOpsError as e:
            back = self.swap_back([(server, kept), (replaced, server)])
            raise PgOpsError('the rolled-back data did not start (%s); %s' % (e.msg, back), step=ROLLBACK)
        with suppress(PgOpsError):
            self.docker(['volume', 'rm', kept], 'docker volume rm', ROLLBACK)
        return True


def swap_argv(volumes_root, image, moves, check=False):
    """``docker run`` (without the runtime) of the helper container that runs SWAP_SCRIPT on ``moves``."""
    names = []
    for pair in moves:
        names += list(pair)
    return ['run', '--rm', '--network', 'none', '--user', '0', '--entrypoint', 'sh', '--mount',
            'type=bind,source=%s,target=/pgops-volumes' % volumes_root, image,
            '-c', SWAP_SCRIPT, 'pgops-swap', '/pgops-volumes', 'check' if check else 'swap'] + names


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
