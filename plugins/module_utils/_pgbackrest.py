# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgops.postgresql contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# PRIVATE to the collection: this is not a public API and may change without notice.
"""Running pgBackRest: argv for the ``pgbackrest`` command natively or inside the PostgreSQL container, its
errors as PgOpsError, and its JSON ``info``.

pgBackRest runs where the server's data directory is (``archive_command`` runs there too): on the host as the
cluster's OS user, or in the container (``docker exec -u postgres``). We drive it; we never re-implement it.

Secrets never reach argv: a repository passphrase or S3 secret is either in pgbackrest.conf (mode 0640, owned by
the cluster's user, so that ``archive_command`` finds it) or passed as pgBackRest's own environment variables
(``PGBACKREST_REPO1_CIPHER_PASS``...), whose *names* only appear on a ``docker exec -e`` command line.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
import os
import re

from ansible_collections.pgops.postgresql.plugins.module_utils._errors import PgOpsError
from ansible_collections.pgops.postgresql.plugins.module_utils._pipeline import run_checked
from ansible_collections.pgops.postgresql.plugins.module_utils._steps import INFO, PREFLIGHT

DEFAULT_CONFIG = '/etc/pgbackrest/pgbackrest.conf'
# pgBackRest's own environment options: PGBACKREST_<OPTION> (e.g. PGBACKREST_REPO1_CIPHER_PASS)
ENV_NAME_RE = re.compile(r'^PGBACKREST_[A-Z0-9_]+$')
# "ERROR: [055]: unable to load info file ..." (console) / "P00  ERROR: [055]: ..." (log lines)
ERROR_RE = re.compile(r'ERROR: \[(\d+)\]: (.*)')


def pgbackrest_argument_spec():
    """Options every pgBackRest module adds to the shared connection options (``connection_argument_spec``, whose
    ``container`` and ``container_runtime`` say where pgBackRest runs too); doc fragment ``pgbackrest``."""
    return dict(
        stanza=dict(type='str', required=True),
        config=dict(type='path'),
        pgbackrest_env=dict(type='dict', no_log=True, default={}),
        os_user=dict(type='str', default='postgres'),
    )


def pgbackrest_param_errors(params):
    """One message per pgBackRest option that is wrong (naming the option and the fix); [] when fine."""
    errors = []
    stanza = params.get('stanza') or ''
    if not re.match(r'^[A-Za-z0-9][A-Za-z0-9_.-]*$', stanza):
        errors.append('stanza must be a pgBackRest stanza name (letters, digits, _ . -), got %r' % stanza)
    for name in sorted(params.get('pgbackrest_env') or {}):
        if not ENV_NAME_RE.match(name):
            errors.append('pgbackrest_env: %r is not a pgBackRest environment option (PGBACKREST_<OPTION>, e.g. '
                          'PGBACKREST_REPO1_CIPHER_PASS)' % name)
    return errors


def error_message(text):
    """pgBackRest's own error lines ("[055]: unable to load info file ...") out of its output; '' when none."""
    found = ['[%s]: %s' % m.groups() for m in ERROR_RE.finditer(text or '')]
    return '; '.join(found)


class PgBackRest(object):
    """argv, environment and runs of ``pgbackrest --stanza=S [--config=C] COMMAND`` for one stanza."""

    def __init__(self, module, params=None):
        self.module = module
        p = params if params is not None else module.params
        self.stanza = p['stanza']
        self.config = p.get('config')
        self.secret_env = dict((k, str(v)) for k, v in (p.get('pgbackrest_env') or {}).items())
        self.container = p.get('container')
        self.runtime = p.get('container_runtime') or 'docker'
        self.os_user = p.get('os_user') or 'postgres'
        for value in self.secret_env.values():
            module.no_log_values.add(value)

    def env(self):
        env = dict((k, v) for k, v in os.environ.items() if not k.startswith('PGBACKREST_'))
        env.update(self.secret_env)
        env['LC_ALL'] = 'C'
        return env

    def prefix(self):
        """How to reach the pgbackrest binary: docker exec -u USER [-e NAME...] CONTAINER, runuser as root, or
        nothing when we already are the cluster's user."""
        if self.container:
            argv = [self.module.get_bin_path(self.runtime, required=True), 'exec', '-u', self.os_user]
            for name in sorted(self.secret_env):
                argv += ['-e', name]   # the name only: the value comes from our environment, never argv
            return argv + [self.container]
        if os.geteuid() == 0 and self.os_user != 'root':
            # runuser keeps our environment (PGBACKREST_* included) unless told otherwise
            return [self.module.get_bin_path('runuser', required=True), '-u', self.os_user, '--']
        return []

    def binary(self):
        return 'pgbackrest' if self.container else self.module.get_bin_path('pgbackrest', required=True)

    def argv(self, command, options=()):
        """argv of one pgBackRest command for this stanza (options are ``--name=value`` strings)."""
        argv = self.prefix() + [self.binary(), '--stanza=%s' % self.stanza]
        if self.config:
            argv.append('--config=%s' % self.config)
        argv += ['--log-level-console=off', '--log-level-stderr=warn']   # errors on stderr, output on stdout
        return argv + list(options) + [command]

    def run(self, command, options=(), step=PREFLIGHT, label=None):
        """Run one command; its stdout, or PgOpsError at ``step`` whose message leads with pgBackRest's error."""
        label = label or 'pgbackrest %s' % command
        try:
            return run_checked(self.argv(command, options), self.env(), label, step)
        except PgOpsError as e:
            found = error_message(e.msg)
            if found:
                e.msg = '%s: %s (%s)' % (label, found, e.msg)
            raise

    def info(self):
        """The stanza's entry of ``pgbackrest info --output=json`` (a dict: backup, archive, status...)."""
        out = self.run('info', ['--output=json'], step=INFO)
        try:
            stanzas = json.loads(out)
        except ValueError:
            raise PgOpsError('pgbackrest info printed no JSON: %s' % out[:500], step=INFO)
        for entry in stanzas:
            if entry.get('name') == self.stanza:
                return entry
        raise PgOpsError('pgbackrest info knows no stanza %s' % self.stanza, step=INFO)
