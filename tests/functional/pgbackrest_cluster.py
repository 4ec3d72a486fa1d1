# -*- coding: utf-8 -*-
# API stable for test_pitr_restore.py (and test_pgbackrest.py): add to it, do not change what is here.
"""A native PostgreSQL 15 cluster archiving into pgBackRest (2.45, host packages) with a local repository, all in
one temp dir owned by the OS user ``postgres``: data/, sock/, repo/, log/ (pgBackRest and server logs), lock/,
spool/ and pgbackrest.conf (0640 postgres)::

    from pgbackrest_cluster import make_pgbackrest_cluster

    with make_pgbackrest_cluster() as c:          # started, archiving, stanza created
        c.psql('postgres', 'CREATE TABLE t (i int)')
        c.backup('full')
        c.info()                                  # the stanza's entry of `pgbackrest info --output=json`
        c.module_args(type='incr')                # connection + pgBackRest options for our modules

``archive=False`` gives a fresh cluster without archiving nor stanza (what pgbackrest_stanza starts from);
``cipher_pass='...'`` encrypts the repository (repo1-cipher-type=aes-256-cbc in the config, the pass only in the
environment: PGBACKREST_REPO1_CIPHER_PASS of the server, so that archive_command finds it, and of our CLI calls).
"""
from __future__ import absolute_import, division, print_function

import contextlib
import json
import os
import pwd
import shutil
import subprocess
import tempfile
import time

from conftest import free_port, pg_bin

STANZA = 'main'
CIPHER_ENV = 'PGBACKREST_REPO1_CIPHER_PASS'


def pgbackrest_bin():
    found = shutil.which('pgbackrest')
    if not found:
        raise AssertionError('pgbackrest not found: apt-get install pgbackrest (make test does)')
    return found


class PgBackRestCluster(object):
    """One throwaway cluster + its pgBackRest repository. ``init()`` then ``start()`` (or use
    ``make_pgbackrest_cluster``). Attributes: base, data_directory, socket_dir, repo_path, log_path, lock_path,
    spool_path, config, port, stanza, cipher_pass, os_user."""

    def __init__(self, stanza=STANZA, archive=True, cipher_pass=None, global_options=None, stanza_options=None,
                 server_options=None, prefix='pgops-pgbr-'):
        self.stanza = stanza
        self.archive = archive
        self.cipher_pass = cipher_pass
        self.global_options = dict(global_options or {})
        self.stanza_options = dict(stanza_options or {})
        self.server_options = dict(server_options or {})
        self.os_user = 'postgres'
        self.base = tempfile.mkdtemp(prefix=prefix)
        os.chmod(self.base, 0o755)
        self.data_directory = os.path.join(self.base, 'data')
        self.socket_dir = os.path.join(self.base, 'sock')
        self.repo_path = os.path.join(self.base, 'repo')
        self.log_path = os.path.join(self.base, 'log')
        self.lock_path = os.path.join(self.base, 'lock')
        self.spool_path = os.path.join(self.base, 'spool')
        self.config = os.path.join(self.base, 'pgbackrest.conf')
        self.server_log = os.path.join(self.log_path, 'postgresql.log')
        self.port = free_port()
        self.running = False

    # -- running things as the cluster's user ------------------------------------------------------------------
    def as_user(self):
        return ['runuser', '-u', self.os_user, '--'] if os.geteuid() == 0 else []

    def env(self, extra=None):
        env = dict((k, v) for k, v in os.environ.items() if not k.startswith('PGBACKREST_'))
        env['LC_ALL'] = 'C'
        if self.cipher_pass:
            env[CIPHER_ENV] = self.cipher_pass
        env.update(extra or {})
        return env

    def run(self, argv, check=True, env=None, timeout=300):
        """Run argv as the cluster's user; CompletedProcess (text). AssertionError with stderr when check."""
        proc = subprocess.run(self.as_user() + list(argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              universal_newlines=True, env=env or self.env(), timeout=timeout, check=False)
        if check and proc.returncode != 0:
            raise AssertionError('%s failed (rc %d): %s %s'
                                 % (' '.join(argv), proc.returncode, proc.stdout, proc.stderr))
        return proc

    def chown(self, path):
        if os.geteuid() == 0:
            pw = pwd.getpwnam(self.os_user)
            os.chown(path, pw.pw_uid, pw.pw_gid)

    # -- set up ------------------------------------------------------------------------------------------------
    def archive_command(self):
        """The archive_command pgbackrest_stanza sets (so that it finds nothing to change on this cluster)."""
        return 'pgbackrest --stanza=%s --config=%s archive-push %%p' % (self.stanza, self.config)

    def write_config(self, global_options=None, stanza_options=None):
        """(Re)write pgbackrest.conf; the given options are merged over the current ones (None value: removed)."""
        self.global_options.update(global_options or {})
        self.stanza_options.update(stanza_options or {})
        glob = dict([('repo1-path', self.repo_path), ('repo1-retention-full', '2'), ('start-fast', 'y'),
                     ('log-path', self.log_path), ('lock-path', self.lock_path), ('spool-path', self.spool_path),
                     ('log-level-file', 'detail')])
        if self.cipher_pass:
            glob['repo1-cipher-type'] = 'aes-256-cbc'
        glob.update(self.global_options)
        stanza = dict([('pg1-path', self.data_directory), ('pg1-port', str(self.port)),
                       ('pg1-socket-path', self.socket_dir), ('pg1-user', 'postgres')])
        stanza.update(self.stanza_options)
        lines = ['[global]'] + ['%s=%s' % kv for kv in sorted(glob.items()) if kv[1] is not None]
        lines += ['', '[%s]' % self.stanza] + ['%s=%s' % kv for kv in sorted(stanza.items()) if kv[1] is not None]
        tmp = self.config + '.tmp'
        with open(tmp, 'w') as f:
            f.write('\n'.join(lines) + '\n')
        os.chmod(tmp, 0o640)
        self.chown(tmp)
        os.replace(tmp, self.config)

    def init(self):
        """initdb, directories and pgbackrest.conf; with archive=True archiving is set in postgresql.conf."""
        for path in (self.base, self.socket_dir, self.repo_path, self.log_path, self.lock_path, self.spool_path):
            if not os.path.isdir(path):
                os.makedirs(path)
            self.chown(path)
        os.chmod(self.repo_path, 0o750)
        self.run([pg_bin('initdb'), '-D', self.data_directory, '-U', 'postgres', '--auth=trust', '-E', 'UTF8',
                  '--locale=C.UTF-8'])
        self.write_config()
        settings = dict([('listen_addresses', "'127.0.0.1'"), ('port', str(self.port)),
                         ('unix_socket_directories', "'%s'" % self.socket_dir), ('fsync', 'off'),
                         ('max_wal_senders', '3')])
        if self.archive:
            settings.update([('wal_level', 'replica'), ('archive_mode', 'on'),
                             ('archive_command', "'%s'" % self.archive_command())])
        settings.update(self.server_options)
        with open(os.path.join(self.data_directory, 'postgresql.conf'), 'a') as f:
            f.write('\n# pgbackrest_cluster.py\n')
            for name in sorted(settings):
                f.write('%s = %s\n' % (name, settings[name]))
        return self

    def start(self):
        self.run([pg_bin('pg_ctl'), '-D', self.data_directory, '-l', self.server_log, '-w', '-t', '60', 'start'])
        self.running = True
        return self

    def stop(self, mode='fast'):
        self.run([pg_bin('pg_ctl'), '-D', self.data_directory, '-m', mode, '-w', 'stop'], check=False)
        self.running = False

    def restart(self):
        self.run([pg_bin('pg_ctl'), '-D', self.data_directory, '-l', self.server_log, '-w', '-t', '60', '-m',
                  'fast', 'restart'])
        self.running = True

    def destroy(self):
        if self.running or os.path.exists(os.path.join(self.data_directory, 'postmaster.pid')):
            self.stop('immediate')
        shutil.rmtree(self.base, ignore_errors=True)

    # -- using it ----------------------------------------------------------------------------------------------
    def psql(self, database, sql, check=True):
        """Run SQL over TCP as postgres; its unaligned tuples-only output, stripped."""
        proc = subprocess.run([pg_bin('psql'), '-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-h', '127.0.0.1',
                               '-p', str(self.port), '-U', 'postgres', '-d', database, '-c', sql],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, check=False)
        if check and proc.returncode != 0:
            raise AssertionError('psql failed: %s' % proc.stderr)
        return proc.stdout.strip()

    def pgbackrest(self, *args, **kwargs):
        """``pgbackrest --stanza=S --config=C ARGS...`` as postgres; stdout. kwargs: check=True, env=None (extra
        environment), timeout=300."""
        argv = [pgbackrest_bin(), '--stanza=%s' % self.stanza, '--config=%s' % self.config] + list(args)
        proc = self.run(argv, check=kwargs.get('check', True), env=self.env(kwargs.get('env')),
                        timeout=kwargs.get('timeout', 300))
        return proc.stdout if kwargs.get('check', True) else proc

    def stanza_create(self):
        self.pgbackrest('stanza-create')
        self.pgbackrest('check')

    def backup(self, type='full', *options):   # pylint: disable=redefined-builtin
        """One backup via the CLI; the label of the newest backup afterwards."""
        self.pgbackrest('--type=%s' % type, *(list(options) + ['backup']))
        return self.info()['backup'][-1]['label']

    def info(self):
        """The stanza's entry of ``pgbackrest info --output=json``."""
        for entry in json.loads(self.pgbackrest('--output=json', 'info')):
            if entry['name'] == self.stanza:
                return entry
        raise AssertionError('no stanza %s in pgbackrest info' % self.stanza)

    def switch_wal(self):
        """pg_switch_wal() and wait until the switched segment is archived; its name. A restore point named
        pgops-switch is made first so that the segment is never empty (pg_switch_wal() of an empty one does
        nothing)."""
        before = self.psql('postgres', 'SELECT archived_count FROM pg_stat_archiver')
        self.psql('postgres', 'SELECT pg_create_restore_point(\'pgops-switch\')')
        segment = self.psql('postgres', 'SELECT pg_walfile_name(pg_switch_wal())')
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.psql('postgres', 'SELECT archived_count FROM pg_stat_archiver') != before:
                return segment
            time.sleep(0.1)
        raise AssertionError('WAL segment %s not archived within 60 s' % segment)

    def conn(self):
        """Connection options of our modules for this cluster (native: no container)."""
        return dict(login_host='127.0.0.1', port=self.port, login_user='postgres')

    def module_args(self, **extra):
        """conn() + stanza, config, and pgbackrest_env with the cipher pass when the repository is encrypted."""
        args = dict(self.conn(), stanza=self.stanza, config=self.config)
        if self.cipher_pass:
            args['pgbackrest_env'] = {CIPHER_ENV: self.cipher_pass}
        args.update(extra)
        return args


@contextlib.contextmanager
def make_pgbackrest_cluster(**kwargs):
    """A started PgBackRestCluster (archive=True: archiving and stanza created); destroyed on exit."""
    cluster = PgBackRestCluster(**kwargs)
    try:
        cluster.init()
        cluster.start()
        if cluster.archive:
            cluster.stanza_create()
        yield cluster
    finally:
        cluster.destroy()
