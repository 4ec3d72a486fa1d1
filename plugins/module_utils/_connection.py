# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgops.postgresql contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# PRIVATE to the collection: this is not a public API and may change without notice.
"""How to reach PostgreSQL: the shared connection options, argv for client tools run natively or inside a
container (``docker exec``), and a psql session that runs queries inside one transaction.

Secrets never reach argv: the password travels in the environment of the client process (for a container,
``docker exec -e PGPASSWORD`` names the variable and the docker client passes its value through).
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import copy
import glob
import json
import os
import subprocess
import tempfile
from contextlib import suppress

from ansible_collections.pgops.postgresql.plugins.module_utils._errors import PgOpsError
from ansible_collections.pgops.postgresql.plugins.module_utils._pipeline import (
    die_with_parent, failure_message, popen, run_checked, Stage,
)
from ansible_collections.pgops.postgresql.plugins.module_utils._server import check_name, derived_name
from ansible_collections.pgops.postgresql.plugins.module_utils._steps import CONNECT, PREFLIGHT, QUERY


SSL_MODES = ('disable', 'allow', 'prefer', 'require', 'verify-ca', 'verify-full')
# TLS options -> the libpq environment variables that carry them to every client tool
SSL_ENV = (('ssl_mode', 'PGSSLMODE'), ('ca_cert', 'PGSSLROOTCERT'), ('ssl_cert', 'PGSSLCERT'),
           ('ssl_key', 'PGSSLKEY'))


def connection_argument_spec():
    """Options every module that talks to PostgreSQL shares (documented in doc fragment ``connection``)."""
    return dict(
        login_user=dict(type='str', default='postgres', aliases=['login']),
        login_password=dict(type='str', no_log=True),
        login_host=dict(type='str', aliases=['host']),
        login_unix_socket=dict(type='str', aliases=['unix_socket']),
        login_port=dict(type='int', aliases=['port']),
        connect_timeout=dict(type='int', default=10),
        ssl_mode=dict(type='str', choices=list(SSL_MODES)),
        ca_cert=dict(type='str', aliases=['ssl_rootcert']),
        ssl_cert=dict(type='str'),
        ssl_key=dict(type='str', no_log=False),
        container=dict(type='str'),
        container_runtime=dict(type='str', default='docker', choices=['docker', 'podman']),
        container_user=dict(type='str'),
        pg_bin_dir=dict(type='path'),
        server=dict(type='str'),
    )


# Options of the modules that connect which make no sense below zero (where a module has them).
NON_NEGATIVE_OPTIONS = ('lock_timeout', 'free_space_ratio')


def connection_param_errors(params):
    """One message per connection-related option out of range (each naming the option and the fix); [] when fine.

    The shared connection options, plus, where the module has them, ``lock_timeout`` and ``free_space_ratio`` (0
    or more), ``jobs`` (1 or more) and ``databases`` (each name once).
    """
    errors = []
    port = params.get('login_port')
    if port is not None and not 1 <= port <= 65535:
        errors.append('login_port (port) must be between 1 and 65535 (got %s); leave it unset for the default port'
                      % port)
    if params.get('ssl_key') and not params.get('ssl_cert'):
        errors.append('ssl_key needs ssl_cert (the client certificate the key belongs to)')
    timeout = params.get('connect_timeout')
    if timeout is not None and timeout < 1:
        errors.append('connect_timeout must be 1 second or more (got %s)' % timeout)
    for name in NON_NEGATIVE_OPTIONS:
        value = params.get(name)
        if value is not None and value < 0:
            errors.append('%s must be 0 or more (got %s)' % (name, value))
    jobs = params.get('jobs')
    if jobs is not None and jobs < 1:
        errors.append('jobs must be 1 or more (got %s)' % jobs)
    if params.get('server') is not None:
        try:
            check_name(params['server'])
        except PgOpsError as e:
            errors.append(e.msg)
    databases = params.get('databases') or []
    twice = sorted(set(d for d in databases if databases.count(d) > 1))
    if twice:
        errors.append('databases names %s more than once: list each database once'
                      % ', '.join(repr(d) for d in twice))
    return errors


def check_connection_params(module):
    """Fail the module when a connection-related option is out of range (see ``connection_param_errors``).

    Every module that connects calls it first thing in main(), after AnsibleModule() and before any work.
    """
    errors = connection_param_errors(module.params)
    if errors:
        module.fail_json(msg='; '.join(errors))


# set by us for every client tool (an inherited value is dropped); the PGSSL* variables only when their option is
# set (else an inherited PGSSLMODE etc. of the ops host still applies to native tools)
CLIENT_ENV = ('PGPASSWORD', 'PGCONNECT_TIMEOUT', 'PGAPPNAME', 'PGCLIENTENCODING', 'PGOPTIONS')


def conninfo_dbname(name):
    """A conninfo string naming ``name`` exactly, even with spaces, quotes, '=' or unicode in it."""
    return "dbname='%s'" % name.replace('\\', '\\\\').replace("'", "\\'")


def quote_ident(name):
    return '"%s"' % name.replace('"', '""')


def quote_literal(value):
    return "'%s'" % value.replace("'", "''")


class PgTarget(object):
    """Builds argv and environment for PostgreSQL client tools on the managed host or in a container."""

    def __init__(self, module, params=None):
        self.module = module
        p = params if params is not None else module.params
        self.user = p.get('login_user')
        self.password = p.get('login_password')
        self.host = p.get('login_host') or p.get('login_unix_socket')
        self.port = p.get('login_port')
        self.ssl = dict((name, p.get(option)) for option, name in SSL_ENV if p.get(option))
        self.timeout = p.get('connect_timeout') or 10
        self.container = p.get('container')
        self.runtime = p.get('container_runtime') or 'docker'
        self.container_user = p.get('container_user')
        self.bin_dir = p.get('pg_bin_dir')
        # the server's name in the catalog (_server): given, or derived from what this target connects to
        self.server = p.get('server') or derived_name(self.container, p.get('login_host'), self.port)
        self.server_major = None
        self.options = {}   # session settings for the tools' connections (PGOPTIONS), e.g. for a restore
        if self.password:
            module.no_log_values.add(self.password)

    # -- environment and argv -------------------------------------------------------------------------
    def env(self):
        env = dict(os.environ)
        for name in CLIENT_ENV:
            env.pop(name, None)
        env.update(PGCONNECT_TIMEOUT=str(self.timeout), PGAPPNAME='pgops', PGCLIENTENCODING='UTF8',
                   LC_ALL='C')
        if self.password:
            env['PGPASSWORD'] = self.password
        if self.options:
            env['PGOPTIONS'] = ' '.join('-c %s=%s' % (k, v) for k, v in sorted(self.options.items()))
        env.update(self.ssl)
        return env

    def container_prefix(self, interactive=False):
        runtime = self.module.get_bin_path(self.runtime, required=True)
        argv = [runtime, 'exec']
        if interactive:
            argv.append('-i')
        if self.container_user:
            argv += ['-u', self.container_user]
        for name in CLIENT_ENV:
            if name == 'PGPASSWORD' and not self.password or name == 'PGOPTIONS' and not self.options:
                continue
            argv += ['-e', name]   # the name only: the value comes from our environment, never argv
        for name in sorted(self.ssl):
            argv += ['-e', name]
        argv.append(self.container)
        return argv

    def conn_args(self):
        args = []
        if self.host:
            args += ['-h', self.host]
        if self.port:
            args += ['-p', str(self.port)]
        if self.user:
            args += ['-U', self.user]
        return args

    def tool(self, name):
        """Path of a client tool: inside the container its name (the container's PATH), else the best match."""
        if self.container:
            return name
        if self.bin_dir:
            path = os.path.join(self.bin_dir, name)
            if not os.access(path, os.X_OK):
                raise PgOpsError('%s not found in pg_bin_dir %s' % (name, self.bin_dir), step=PREFLIGHT)
            return path
        if self.server_major:
            candidates = []
            for path in glob.glob('/usr/lib/postgresql/*/bin/%s' % name):
                try:
                    major = int(path.split('/')[4])
                except ValueError:
                    continue
                if major >= self.server_major:
                    candidates.append((major, path))
            if candidates:
                return sorted(candidates)[0][1]   # the same major as the server, else the nearest newer one
        return self.module.get_bin_path(name, required=True)

    def argv(self, tool, args, interactive=False):
        prefix = self.container_prefix(interactive) if self.container else []
        return prefix + [self.tool(tool)] + self.conn_args() + list(args)

    def argv_noconn(self, tool, args, interactive=False):
        prefix = self.container_prefix(interactive) if self.container else []
        return prefix + [self.tool(tool)] + list(args)

    def with_options(self, options):
        """A copy whose tools' connections run with these session settings (PGOPTIONS), e.g. for a restore."""
        other = copy.copy(self)
        other.options = dict(options or {})
        return other

    def for_server(self, major):
        """A copy that knows the server's major version (client tools are then chosen to match it)."""
        other = copy.copy(self)
        other.server_major = major
        return other

    def where(self):
        return 'container %s' % self.container if self.container else (self.host or 'local socket')

    # -- checks ---------------------------------------------------------------------------------------
    def check_container(self):
        """Fail clearly when the container is missing or not running."""
        if not self.container:
            return
        runtime = self.module.get_bin_path(self.runtime, required=True)
        proc = subprocess.run([runtime, 'inspect', '--format', '{{.State.Status}}', self.container],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False,
                              preexec_fn=die_with_parent())
        if proc.returncode != 0:
            raise PgOpsError('container %s not found (%s inspect: %s)' % (
                self.container, self.runtime, proc.stderr.decode('utf-8', 'replace').strip()), step=PREFLIGHT)
        status = proc.stdout.decode().strip()
        if status != 'running':
            raise PgOpsError('container %s is not running (status %s): start it (%s start %s) and check its logs '
                             '(%s logs %s); only if its data is lost, recover with the disaster recovery playbook'
                             % (self.container, status, self.runtime, self.container, self.runtime, self.container),
                             step=PREFLIGHT)

    def container_path(self, path):
        """Where the container sees the host file ``path`` (a bind mount or volume holding it), or None.

        Checked, not assumed: the file must be readable there with the same size (``stat`` as the exec user), so a
        remote container runtime, or a mount of another file system, gives None."""
        if not self.container:
            return None
        runtime = self.module.get_bin_path(self.runtime, required=True)
        try:
            out = run_checked([runtime, 'inspect', '--format', '{{json .Mounts}}', self.container], None,
                              '%s inspect' % self.runtime, PREFLIGHT)
            mounts = json.loads(out or 'null') or []
        except (PgOpsError, ValueError):
            return None
        real = os.path.realpath(path)
        inner = None
        for m in sorted(mounts, key=lambda m: -len(m.get('Source') or '')):
            src, dst = (m.get('Source') or '').rstrip('/'), m.get('Destination') or ''
            if src and dst and (real == src or real.startswith(src + '/')):
                inner = dst.rstrip('/') + real[len(src):]
                break
        if inner is None:
            return None
        try:
            # one exec (each costs about 80 ms): readable as the exec user, then its size; the path is an argument
            seen = run_checked(self.container_prefix() + ['sh', '-c', 'test -r "$1" && exec stat -L -c %s "$1"',
                                                          'sh', inner], None, 'stat in the container', PREFLIGHT)
        except PgOpsError:
            return None
        if seen.strip() != str(os.path.getsize(real)):
            return None
        return inner

    def tool_version(self, tool):
        out = run_checked(self.argv_noconn(tool, ['--version']), self.env(), '%s --version' % tool, PREFLIGHT)
        return out.strip()

    def psql(self, database):
        return PsqlSession(self, database)


class PsqlSession(object):
    """One psql process fed through a pipe: queries run in one server session, each answered up to a marker.

    Results come back one row a line, unaligned, so queries that return data return it as one jsonb text.
    """

    MARKER = '__pgops_end_of_result__'

    def __init__(self, target, database):
        self.target = target
        self.database = database
        self.err = tempfile.TemporaryFile()
        argv = target.argv('psql', ['-X', '-w', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1',
                                    '-d', conninfo_dbname(database)], interactive=True)
        self.stage = Stage('psql', argv)
        self.stage.err = self.err
        try:
            self.proc = popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.err,
                              env=target.env(), universal_newlines=True, encoding='utf-8', errors='replace')
        except OSError as e:
            raise PgOpsError('cannot start psql: %s' % e, step=CONNECT)
        self.stage.proc = self.proc

    def query(self, sql):
        """Run ``sql``; return its output lines. On error psql exits (ON_ERROR_STOP) and we report its stderr."""
        with suppress(IOError, OSError):   # psql is gone: its exit status and stderr are reported below
            self.proc.stdin.write(sql.strip().rstrip(';') + ';\n\\echo ' + self.MARKER + '\n')
            self.proc.stdin.flush()
        lines = []
        while True:
            line = self.proc.stdout.readline()
            if not line:
                self.proc.wait()
                raise PgOpsError(failure_message([self.stage], 'query on database %s (%s)'
                                                 % (self.database, self.target.where())), step=QUERY)
            line = line.rstrip('\n')
            if line == self.MARKER:
                return lines
            lines.append(line)

    def query_json(self, sql):
        lines = self.query(sql)
        return json.loads(lines[0]) if lines and lines[0] else None

    def close(self):
        if self.proc.poll() is None:
            with suppress(IOError, OSError):   # already gone
                self.proc.stdin.write('\\q\n')
                self.proc.stdin.close()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()
        self.err.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def major_of(version_num):
    """Major version from server_version_num (150004 -> 15, 90624 -> 9)."""
    num = int(version_num)
    return num // 10000 if num >= 100000 else num // 100
