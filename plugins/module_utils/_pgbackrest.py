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

Below the runner, what the modules do with it: ``run_pgbackrest_stanza`` (archiving settings through ALTER SYSTEM,
stanza-create, check), ``run_pgbackrest_backup`` and ``run_pgbackrest_info`` (whose pure part ``info_report`` turns
``info --output=json`` and pg_stat_archiver into backups, window, archive status and alerts).
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import datetime
import json
import os
import re
import time

from ansible_collections.pgops.postgresql.plugins.module_utils._catalog import CatalogError, KINDS, validate_label
from ansible_collections.pgops.postgresql.plugins.module_utils._connection import PgTarget, quote_literal
from ansible_collections.pgops.postgresql.plugins.module_utils._errors import PgOpsError
from ansible_collections.pgops.postgresql.plugins.module_utils._textfile import (
    read_textfile, render, textfile_dir_error, write_textfile,
)
from ansible_collections.pgops.postgresql.plugins.module_utils._pipeline import run_checked
from ansible_collections.pgops.postgresql.plugins.module_utils._steps import (
    BACKUP, CONNECT, INFO, OPTIONS, PGBACKREST_STEPS, PREFLIGHT, SETTINGS, STANZA, job_step,
)

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
        """How to reach the pgbackrest binary: docker exec -u USER [-e NAME...] CONTAINER; natively nothing (the
        process itself becomes os_user: ``run_as``)."""
        if self.container:
            argv = [self.module.get_bin_path(self.runtime, required=True), 'exec', '-u', self.os_user]
            for name in sorted(self.secret_env):
                argv += ['-e', name]   # the name only: the value comes from our environment, never argv
            return argv + [self.container]
        return []

    @property
    def run_as(self):
        """The OS user a native pgbackrest runs as, when it is not us: our direct child switches to it and dies
        with the module (runuser would stay between us and pgbackrest, which would outlive a killed module)."""
        if not self.container and os.geteuid() == 0 and self.os_user != 'root':
            return self.os_user
        return None

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
            return run_checked(self.argv(command, options), self.env(), label, step, user=self.run_as)
        except PgOpsError as e:
            found = error_message(e.msg)
            if found:
                e.msg = '%s: %s (%s)' % (label, found, e.msg)
            raise

    def info(self, options=()):
        """The stanza's entry of ``pgbackrest info --output=json`` (a dict: backup, archive, status...); ``options``
        narrow it (``--repo=2``, ``--set=LABEL``)."""
        out = self.run('info', ['--output=json'] + list(options), step=INFO)
        try:
            # with a wrong passphrase pgBackRest 2.45 puts raw control characters (and non-UTF-8 bytes, replaced
            # when decoded) in its error messages: strict=False reads them
            stanzas = json.loads(out, strict=False)
        except ValueError:
            raise PgOpsError('pgbackrest info printed no JSON: %s' % out[:500], step=INFO)
        for entry in stanzas:
            if entry.get('name') == self.stanza:
                return entry
        raise PgOpsError('pgbackrest info knows no stanza %s' % self.stanza, step=INFO)


# ==============================================================================================================
# What the modules pgbackrest_stanza, pgbackrest_backup and pgbackrest_info do with the runner above.
# ==============================================================================================================

BACKUP_TYPES = ('full', 'diff', 'incr')
# pgBackRest's stanza status codes (info --output=json, status.code): the stanza is not there yet
STANZA_MISSING_CODES = (1, 3)   # 1 missing stanza path, 3 missing stanza data
ANNOTATION_KIND = 'pgops-kind'
ANNOTATION_LABEL = 'pgops-label'
ANNOTATION_KEY_RE = re.compile(r'^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$')
WAL_NAME_RE = re.compile(r'^([0-9A-F]{8})([0-9A-F]{8})([0-9A-F]{8})(\.[0-9A-F]{8}\.backup)?$')
SHELL_SAFE_RE = re.compile(r'^[A-Za-z0-9_./=:@%+,-]+$')   # needs no quoting for /bin/sh


def stanza_argument_spec():
    return dict(
        archive=dict(type='bool', default=True),
        maintenance_db=dict(type='str', default='postgres'),
    )


def backup_argument_spec():
    return dict(
        type=dict(type='str', default='incr', choices=list(BACKUP_TYPES)),
        kind=dict(type='str', default='manual', choices=list(KINDS)),
        label=dict(type='str'),
        annotations=dict(type='dict', default={}),
        repo=dict(type='int'),
    )


def info_argument_spec():
    return dict(
        max_archive_age_minutes=dict(type='float', default=60),
        max_full_age_days=dict(type='float', default=8),
        repo=dict(type='int'),
        maintenance_db=dict(type='str', default='postgres'),
        metrics_file=dict(type='path'),
    )


# Prometheus textfile-collector metrics of point-in-time recovery (pgbackrest_info's metrics_file), per stanza
PITR_FAMILIES = (
    ('pgops_pitr_window_start_seconds', 'gauge', 'Unix time of the oldest moment a point-in-time restore can reach.'),
    ('pgops_pitr_window_end_seconds', 'gauge',
     'Unix time of the newest moment a point-in-time restore can reach (the newest archived WAL).'),
    ('pgops_pitr_archive_age_seconds', 'gauge', 'Seconds since the server last archived a WAL file.'),
    ('pgops_pitr_archive_pending_bytes', 'gauge',
     'WAL bytes written since the newest archived segment (the RPO at stake).'),
    ('pgops_pitr_archive_failing', 'gauge', '1 when the last archiving attempt failed.'),
    ('pgops_pitr_last_full_backup_seconds', 'gauge', 'Unix time the newest full pgBackRest backup finished.'),
    ('pgops_pitr_backups', 'gauge', 'pgBackRest backups in the repository, by type.'),
    ('pgops_pitr_alerts', 'gauge', 'Alerts pgbackrest_info raised (0 when all is well).'),
)


def pitr_samples(stanza, entry, report, repo=None):
    """pgbackrest_info's report as Prometheus samples (render with _textfile.render(samples, PITR_FAMILIES))."""
    labels = dict(stanza=stanza)
    out = []

    def add(name, value, **extra):
        if value is not None:
            out.append(dict(name=name, labels=dict(labels, **extra), value=value))
    window = report.get('recoverable_window') or {}
    add('pgops_pitr_window_start_seconds', window.get('start_epoch'))
    add('pgops_pitr_window_end_seconds', window.get('end_epoch'))
    archive = report.get('archive') or {}
    add('pgops_pitr_archive_age_seconds', archive.get('age_seconds'))
    add('pgops_pitr_archive_pending_bytes', archive.get('pending_wal_bytes'))
    add('pgops_pitr_archive_failing', bool(archive.get('failing')))
    fulls = [(b.get('timestamp') or {}).get('stop') for b in repo_backups(entry, repo)
             if b.get('type') == 'full' and not b.get('error')]
    add('pgops_pitr_last_full_backup_seconds', max(fulls) if fulls else None)
    for kind in ('full', 'diff', 'incr'):
        add('pgops_pitr_backups', len([b for b in report.get('backups') or [] if b.get('type') == kind]), type=kind)
    add('pgops_pitr_alerts', len(report.get('alerts') or []))
    return out


def backup_param_errors(params):
    """What the backup module's spec cannot say (one message per option, naming it and the fix); [] when fine."""
    errors = []
    try:
        validate_label(params.get('label'))
    except CatalogError as e:
        errors.append(str(e))
    for key, value in sorted((params.get('annotations') or {}).items()):
        if not ANNOTATION_KEY_RE.match(key):
            errors.append('annotations: key %r must be letters, digits, _ . - (at most 64, not leading . or -)' % key)
        elif key.startswith('pgops-'):
            errors.append('annotations: key %r is ours (set kind and label instead)' % key)
        if value is None or isinstance(value, (dict, list)) or '\n' in str(value) or not str(value).strip():
            errors.append('annotations: the value of %r must be a non-empty one-line string' % key)
    errors += repo_errors(params)
    return errors


def info_param_errors(params):
    errors = []
    for name in ('max_archive_age_minutes', 'max_full_age_days'):
        value = params.get(name)
        if value is not None and value < 0:
            errors.append('%s must be 0 (no alert) or more, got %s' % (name, value))
    return errors + repo_errors(params)


def repo_errors(params):
    repo = params.get('repo')
    if repo is not None and not 1 <= repo <= 256:
        return ['repo must be a pgBackRest repository number, 1 to 256 (got %s)' % repo]
    return []


# -- small pure helpers ---------------------------------------------------------------------------------------
def iso_utc(epoch):
    """ISO-8601 UTC ("2026-11-28T22:27:29Z", with microseconds when the time has them) of a Unix time; None
    stays None."""
    if epoch is None:
        return None
    when = datetime.datetime.fromtimestamp(float(epoch), tz=datetime.timezone.utc)
    text = when.strftime('%Y-%m-%dT%H:%M:%S')
    if when.microsecond:
        text += '.%06d' % when.microsecond
    return text + 'Z'


def shell_word(text):
    """``text`` as one word of a /bin/sh command line (archive_command runs through the shell)."""
    return text if SHELL_SAFE_RE.match(text) else "'%s'" % text.replace("'", "'\"'\"'")


def archive_command(stanza, config=None):
    """The archive_command that pushes WAL into this stanza: ``pgbackrest --stanza=S [--config=C] archive-push %p``
    (``pgbackrest`` from the server's PATH: the same text natively and in a container)."""
    words = ['pgbackrest', '--stanza=%s' % stanza]
    if config:
        words.append(shell_word('--config=%s' % config).replace('%', '%%'))   # %% is PostgreSQL's literal %
    return ' '.join(words + ['archive-push', '%p'])


def lsn_bytes(lsn):
    """'16/B374D848' -> its byte position."""
    high, low = lsn.split('/')
    return (int(high, 16) << 32) + int(low, 16)


def wal_segment_end(name, segment_size):
    """(timeline, byte position just past the end) of WAL segment ``name`` (a ``.backup`` file names its segment);
    None for anything else (a ``.history`` or ``.partial`` file)."""
    m = WAL_NAME_RE.match(name or '')
    if not m or not segment_size:
        return None
    timeline, log, seg = (int(g, 16) for g in m.groups()[:3])
    segno = log * (0x100000000 // segment_size) + seg
    return timeline, (segno + 1) * segment_size


def backup_summary(entry):
    """One backup of ``pgbackrest info --output=json`` in our words (what pgbackrest_backup returns)."""
    info = entry.get('info') or {}
    repo = info.get('repository') or {}
    archive = entry.get('archive') or {}
    lsn = entry.get('lsn') or {}
    stamp = entry.get('timestamp') or {}
    return dict(
        label=entry.get('label'), type=entry.get('type'),
        started_at=iso_utc(stamp.get('start')), finished_at=iso_utc(stamp.get('stop')),
        size=info.get('size'), repo_size=repo.get('size'), delta=info.get('delta'), repo_delta=repo.get('delta'),
        wal_start=archive.get('start'), wal_stop=archive.get('stop'),
        lsn_start=lsn.get('start'), lsn_stop=lsn.get('stop'),
        annotations=dict(entry.get('annotation') or {}),
        prior=entry.get('prior'), reference=list(entry.get('reference') or []),
        error=bool(entry.get('error')), repo=(entry.get('database') or {}).get('repo-key'),
    )


def current_db_id(entry):
    """The id of the stanza's current PostgreSQL cluster (after a stanza-upgrade older ids stay in history)."""
    ids = [db.get('id') for db in entry.get('db') or [] if db.get('id') is not None]
    return max(ids) if ids else None


def archive_range(entry, repo=None):
    """(min, max) WAL of the current cluster in the repository (None, None when nothing is archived)."""
    db_id = current_db_id(entry)
    lows, highs = [], []
    for a in entry.get('archive') or []:
        database = a.get('database') or {}
        if db_id is not None and database.get('id') != db_id:
            continue
        if repo is not None and database.get('repo-key') != repo:
            continue
        if a.get('min'):
            lows.append(a['min'])
        if a.get('max'):
            highs.append(a['max'])
    return (min(lows) if lows else None), (max(highs) if highs else None)


def stanza_missing(entry):
    return ((entry.get('status') or {}).get('code')) in STANZA_MISSING_CODES


# -- pgbackrest_stanza ----------------------------------------------------------------------------------------
def desired_settings(current, command):
    """The changes that make the server archive with ``command``: [(name, value now, value wanted)].

    ``current`` maps each setting to {setting, file, source, pending_restart}: ``file`` is the value the
    configuration files give (what the next reload or restart takes, ALTER SYSTEM included), ``source`` where
    the running value comes from. A setting already right in the files is not changed again while a restart is
    pending, so a second run before the restart changes nothing."""
    def upcoming(name):
        s = current.get(name) or {}
        if s.get('source') in ('command line', 'environment variable'):
            return s.get('setting')
        return s.get('file') if s.get('file') is not None else s.get('setting')

    changes = []
    level = upcoming('wal_level')
    if level not in ('replica', 'logical'):
        changes.append(('wal_level', level, 'replica'))
    mode = upcoming('archive_mode')
    if mode not in ('on', 'always'):
        changes.append(('archive_mode', mode, 'on'))
    if upcoming('archive_command') != command:
        changes.append(('archive_command', upcoming('archive_command'), command))
    if 'archive_library' in current and upcoming('archive_library'):
        changes.append(('archive_library', upcoming('archive_library'), ''))   # it would win over archive_command
    return changes


def settings_errors(current, changes):
    """Settings ALTER SYSTEM cannot change because the server's command line (or environment) fixes them."""
    errors = []
    for name, dummy, wanted in changes:
        source = (current.get(name) or {}).get('source')
        if source in ('command line', 'environment variable'):
            errors.append('%s is set on the server\'s %s (%s), which ALTER SYSTEM cannot override: set it to %r '
                          'there (or remove it) and run again'
                          % (name, source, current[name].get('setting'), wanted))
    return errors


SETTINGS_SQL = '''
SELECT json_object_agg(s.name, json_build_object(
  'setting', s.setting, 'source', s.source, 'context', s.context, 'pending_restart', s.pending_restart,
  'file', (SELECT f.setting FROM pg_file_settings f WHERE f.name = s.name ORDER BY f.seqno DESC LIMIT 1)))
FROM pg_settings s WHERE s.name IN ('wal_level', 'archive_mode', 'archive_command', 'archive_library')
'''


def read_settings(session):
    return session.query_json(SETTINGS_SQL) or {}


def run_pgbackrest_stanza(module):
    p = module.params
    result = dict(changed=False, settings_changed=[], restart_required=False, stanza_created=False, checked=False,
                  archive_command=None, actions=[])
    in_progress = CONNECT
    try:
        target = PgTarget(module)
        target.check_container()
        br = PgBackRest(module)
        before = after = {}
        if p['archive']:
            command = archive_command(br.stanza, br.config)
            result['archive_command'] = command
            with target.psql(p['maintenance_db']) as s:
                in_progress = SETTINGS
                current = read_settings(s)
                changes = desired_settings(current, command)
                errors = settings_errors(current, changes)
                if errors:
                    raise PgOpsError('; '.join(errors), step=SETTINGS)
                before = dict((name, now) for name, now, dummy in changes)
                after = dict((name, wanted) for name, dummy, wanted in changes)
                result['settings_changed'] = [name for name, dummy, dummy2 in changes]
                result['actions'] += ['ALTER SYSTEM SET %s = %s' % (name, quote_literal(wanted))
                                      for name, dummy, wanted in changes]
                if changes:
                    result['actions'].append('SELECT pg_reload_conf()')
                result['changed'] = bool(changes)
                pending = [n for n in current if (current.get(n) or {}).get('pending_restart')]
                if module.check_mode:
                    restart = [n for n, dummy, dummy2 in changes if (current.get(n) or {}).get('context') ==
                               'postmaster']
                    result['restart_required'] = bool(pending or restart)
                else:
                    for name, dummy, wanted in changes:
                        s.query('ALTER SYSTEM SET %s = %s' % (name, quote_literal(wanted)))
                    if changes:
                        s.query('SELECT pg_reload_conf()')
                    result['restart_required'] = wait_reloaded(s, after)
        if result['restart_required']:
            result['actions'].append('restart the server, then run pgbackrest_stanza again')
        else:
            in_progress = STANZA
            entry = br.info()
            if stanza_missing(entry):
                result['actions'].append('pgbackrest stanza-create')
                if not module.check_mode:
                    br.run('stanza-create', step=STANZA)
                result['stanza_created'] = result['changed'] = True
            result['actions'].append('pgbackrest check')
            if not module.check_mode:
                br.run('check', step=STANZA)
                result['checked'] = True
        if module._diff:
            result['diff'] = dict(before=before, after=after)
    except PgOpsError as e:
        module.fail_json(msg=e.msg, failed_step=job_step(e.step, PGBACKREST_STEPS, in_progress), **result)
    module.exit_json(**result)


def taken(name, wanted, now):
    """Whether the server took a changed setting: in force, or pending a restart. While archive_mode is off
    PostgreSQL shows archive_command as "(disabled)" (it is read again at the restart archive_mode needs)."""
    if now.get('setting') == wanted or now.get('pending_restart'):
        return True
    return name == 'archive_command' and now.get('setting') == '(disabled)'


def wait_reloaded(session, wanted, timeout=15):
    """After pg_reload_conf(): wait until every changed setting is in force or pending a restart (the reload is
    asynchronous); whether a restart is pending for an archiving setting."""
    deadline = time.time() + timeout
    while True:
        now = read_settings(session)
        waiting = [n for n, v in wanted.items() if not taken(n, v, now.get(n) or {})]
        if not waiting or time.time() > deadline:
            break
        time.sleep(0.1)
    if waiting:
        raise PgOpsError('the server did not take %s after pg_reload_conf() within %d s: see its log'
                         % (', '.join(sorted(waiting)), timeout), step=SETTINGS)
    return any((now.get(n) or {}).get('pending_restart') for n in now)


# -- pgbackrest_backup ----------------------------------------------------------------------------------------
def backup_options(params):
    """``--type``, ``--annotation`` and ``--repo`` options of ``pgbackrest backup`` for the module's params."""
    options = ['--type=%s' % params['type']]
    annotations = dict(params.get('annotations') or {})
    annotations[ANNOTATION_KIND] = params['kind']
    if params.get('label'):
        annotations[ANNOTATION_LABEL] = params['label']
    for key in sorted(annotations):
        options.append('--annotation=%s=%s' % (key, annotations[key]))
    if params.get('repo'):
        options.append('--repo=%d' % params['repo'])
    return options, annotations


def repo_backups(entry, repo=None):
    return [b for b in entry.get('backup') or []
            if repo is None or (b.get('database') or {}).get('repo-key') == repo]


def usable_backups(entry, repo=None):
    """The stanza's backups pgBackRest can restore (no error; of repository ``repo`` when given), oldest first."""
    found = [b for b in repo_backups(entry, repo) if not b.get('error')]
    return sorted(found, key=lambda b: (b['timestamp']['start'], b['label']))


def recoverable_window(entry, last_archived_time=None, repo=None):
    """What a point-in-time restore can reach, or None without a usable backup: ``start`` the oldest backup's
    start, ``end`` the newest archived WAL's time (pg_stat_archiver's last_archived_time, never before the newest
    backup's stop), their epochs, and ``earliest_consistent`` (the oldest backup's stop: a time target inside
    that backup cannot be reached). The one definition pgbackrest_info and pgbackrest_restore share."""
    backups = usable_backups(entry, repo)
    if not backups:
        return None
    start = float(backups[0]['timestamp']['start'])
    newest_stop = float(max(b['timestamp']['stop'] for b in backups))
    end = max(float(last_archived_time), newest_stop) if last_archived_time is not None else newest_stop
    return dict(start=iso_utc(start), end=iso_utc(end), start_epoch=start, end_epoch=end,
                earliest_consistent=iso_utc(backups[0]['timestamp']['stop']))


def run_pgbackrest_backup(module):
    p = module.params
    result = dict(changed=False, backup=None, duration_seconds=None, requested_type=p['type'])
    in_progress = INFO
    try:
        PgTarget(module).check_container()
        br = PgBackRest(module)
        info_options = ['--repo=%d' % p['repo']] if p.get('repo') else []
        before = repo_backups(br.info(info_options), p.get('repo'))
        options, annotations = backup_options(p)
        full_exists = any(b.get('type') == 'full' for b in before)
        result['changed'] = True
        if module.check_mode:
            result['planned'] = dict(type=p['type'] if full_exists else 'full', annotations=annotations,
                                     command=['pgbackrest', '--stanza=%s' % br.stanza] + options + ['backup'])
            result['msg'] = 'would make a %s backup%s' % (result['planned']['type'], '' if full_exists or p['type'] ==
                                                          'full' else ' (no full backup in the repository yet)')
            module.exit_json(**result)
        in_progress = BACKUP
        started = time.time()
        br.run('backup', options, step=BACKUP)
        result['duration_seconds'] = round(time.time() - started, 3)
        in_progress = INFO
        seen = set(b.get('label') for b in before)
        made = [b for b in repo_backups(br.info(info_options), p.get('repo')) if b.get('label') not in seen]
        if not made:
            raise PgOpsError('pgbackrest backup succeeded but pgbackrest info lists no new backup in stanza %s'
                             % br.stanza, step=INFO)
        result['backup'] = backup_summary(made[-1])
    except PgOpsError as e:
        module.fail_json(msg=e.msg, failed_step=job_step(e.step, PGBACKREST_STEPS, in_progress), **result)
    module.exit_json(**result)


# -- pgbackrest_info ------------------------------------------------------------------------------------------
ARCHIVER_SQL = '''
SELECT json_build_object(
  'archived_count', a.archived_count, 'last_archived_wal', a.last_archived_wal,
  'last_archived_time', extract(epoch FROM a.last_archived_time), 'failed_count', a.failed_count,
  'last_failed_wal', a.last_failed_wal, 'last_failed_time', extract(epoch FROM a.last_failed_time),
  'stats_reset', extract(epoch FROM a.stats_reset),
  'archive_mode', current_setting('archive_mode'), 'archive_command', current_setting('archive_command'),
  'in_recovery', pg_is_in_recovery(),
  'current_wal_lsn', CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_current_wal_lsn()::text END,
  'current_wal_file', CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_walfile_name(pg_current_wal_lsn()) END,
  'wal_segment_size', (SELECT setting::bigint * CASE unit WHEN '8kB' THEN 8192 ELSE 1 END
                       FROM pg_settings WHERE name = 'wal_segment_size'),
  'now', extract(epoch FROM clock_timestamp()))
FROM pg_stat_archiver a
'''


def ago(seconds):
    """'3 min', '2.5 h', '9.1 days' for an age in seconds."""
    if seconds < 3600:
        return '%d min' % round(seconds / 60.0)
    if seconds < 172800:
        return '%.1f h' % (seconds / 3600.0)
    return '%.1f days' % (seconds / 86400.0)


def info_report(entry, archiver, now, max_archive_age_minutes=60, max_full_age_days=8, repo=None):
    """What pgbackrest_info returns, from the stanza's ``info --output=json`` entry and the server's
    pg_stat_archiver (ARCHIVER_SQL's row; None when not read): backups newest first, the recoverable window,
    the archive status and one alert sentence per problem."""
    archiver = archiver or {}
    alerts = []
    backups = [backup_summary(b) for b in repo_backups(entry, repo)]
    status = entry.get('status') or {}
    report_status = dict(code=status.get('code'), message=status.get('message'),
                         backup_running=bool(((status.get('lock') or {}).get('backup') or {}).get('held')),
                         cipher=entry.get('cipher'),
                         repos=[dict(key=r.get('key'), cipher=r.get('cipher'),
                                     code=(r.get('status') or {}).get('code'),
                                     message=(r.get('status') or {}).get('message'))
                                for r in entry.get('repo') or []])
    if status.get('code') not in (0, None):
        alerts.append('pgBackRest stanza %s is not ok: %s (status code %s)'
                      % (entry.get('name'), status.get('message'), status.get('code')))

    # -- the archive
    min_wal, max_wal = archive_range(entry, repo)
    last_time = archiver.get('last_archived_time')
    failed_time = archiver.get('last_failed_time')
    failing = bool(archiver.get('failed_count')) and failed_time is not None and (
        last_time is None or failed_time >= last_time)
    # WAL written after the newest archived segment: the server's last archived file (a .backup file names an
    # older segment than the one archived just before it) or the repository's newest segment, on this timeline
    pending = None
    size = archiver.get('wal_segment_size')
    current_lsn = archiver.get('current_wal_lsn')
    current = wal_segment_end(archiver.get('current_wal_file'), size)
    ends = [e[1] for e in (wal_segment_end(n, size) for n in (archiver.get('last_archived_wal'), max_wal))
            if e and current and e[0] == current[0]]
    if current_lsn and ends:
        pending = max(0, lsn_bytes(current_lsn) - max(ends))
    age = round(now - last_time, 3) if last_time is not None else None
    archive = dict(min_wal=min_wal, max_wal=max_wal,
                   last_archived_wal=archiver.get('last_archived_wal'), last_archived_time=iso_utc(last_time),
                   age_seconds=age, archived_count=archiver.get('archived_count'),
                   failed_count=archiver.get('failed_count'), last_failed_wal=archiver.get('last_failed_wal'),
                   last_failed_time=iso_utc(failed_time), failing=failing, pending_wal_bytes=pending,
                   mode=archiver.get('archive_mode'), command=archiver.get('archive_command'))
    if archiver and archiver.get('archive_mode') not in ('on', 'always') and not archiver.get('in_recovery'):
        alerts.append('archive_mode is %s: WAL is not archived, so no recovery past the newest backup '
                      '(run pgbackrest_stanza)' % archiver.get('archive_mode'))
    if failing:
        alerts.append('WAL archiving is failing: %s failed attempt(s) since %s, the last for %s at %s%s; see the '
                      'server log and pgBackRest\'s archive-push log' % (
                          archiver.get('failed_count'), iso_utc(archiver.get('stats_reset')) or 'the stats reset',
                          archiver.get('last_failed_wal'), iso_utc(failed_time),
                          ', newest archived %s at %s' % (archiver.get('last_archived_wal'), iso_utc(last_time))
                          if last_time is not None else ', nothing archived since'))
    if max_archive_age_minutes and age is not None and age > max_archive_age_minutes * 60 and pending != 0:
        alerts.append('the newest archived WAL (%s) is %s old, over max_archive_age_minutes=%s, and the server has '
                      'written WAL since%s: set archive_timeout to bound the loss, and check archiving'
                      % (archiver.get('last_archived_wal'), ago(age), max_archive_age_minutes,
                         ' (%d bytes)' % pending if pending else ''))

    # -- backups and the window
    for b in backups:
        if b['error']:
            alerts.append('backup %s has errors (pgBackRest found page checksum errors): check it with '
                          'pgbackrest info --set=%s' % (b['label'], b['label']))
    fulls = [b for b in entry.get('backup') or [] if b.get('type') == 'full' and not b.get('error') and
             (repo is None or (b.get('database') or {}).get('repo-key') == repo)]
    if max_full_age_days:
        if not fulls:
            alerts.append('no full backup in the repository of stanza %s' % entry.get('name'))
        else:
            newest = max((b.get('timestamp') or {}).get('stop') or 0 for b in fulls)
            if now - newest > max_full_age_days * 86400:
                alerts.append('no full backup in the last %s days: the newest full finished at %s (%s ago)'
                              % (max_full_age_days, iso_utc(newest), ago(now - newest)))
    window = recoverable_window(entry, last_time, repo)
    backups.reverse()   # newest first
    return dict(backups=backups, recoverable_window=window, archive=archive, alerts=alerts, status=report_status)


def run_pgbackrest_info(module):
    p = module.params
    in_progress = INFO
    try:
        target = PgTarget(module)
        target.check_container()
        br = PgBackRest(module)
        entry = br.info(['--repo=%d' % p['repo']] if p.get('repo') else [])
        in_progress = CONNECT
        down = None
        try:
            with target.psql(p['maintenance_db']) as s:
                archiver = s.query_json(ARCHIVER_SQL)
        except PgOpsError as e:
            if target.container:
                raise
            # natively pgBackRest reads the repository without the server: a disaster recovery needs the window
            # most when the server is down
            down, archiver = e.msg, None
        report = info_report(entry, archiver, (archiver or {}).get('now') or time.time(),
                             p['max_archive_age_minutes'], p['max_full_age_days'], p.get('repo'))
        report['server'] = dict(reachable=down is None, error=down)
        if down:
            report['alerts'].insert(0, 'the server does not answer (%s): the recoverable window shown ends at the '
                                       'newest backup\'s end, a lower bound - the archive holds WAL up to %s, whose '
                                       'time only the server or a restore tells' % (down, report['archive']['max_wal']))
    except PgOpsError as e:
        module.fail_json(msg=e.msg, failed_step=job_step(e.step, PGBACKREST_STEPS, in_progress))
    changed = False
    if p.get('metrics_file'):
        changed = write_metrics(module, p['metrics_file'], render(pitr_samples(p['stanza'], entry, report,
                                                                               p.get('repo')), PITR_FAMILIES))
        report['metrics_file'] = p['metrics_file']
    module.exit_json(changed=changed, **report)


def write_metrics(module, path, text):
    """Write the textfile atomically when its content changes (not in check mode); whether it changed."""
    if textfile_dir_error(path, 'metrics_file'):
        module.fail_json(msg=textfile_dir_error(path, 'metrics_file'), failed_step=OPTIONS)
    if read_textfile(path) == text:
        return False
    if not module.check_mode:
        try:
            write_textfile(path, text)
        except (IOError, OSError, PgOpsError) as e:
            module.fail_json(msg='cannot write %s (metrics_file): %s' % (path, e), failed_step=OPTIONS)
    return True
