# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgops.postgresql contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# PRIVATE to the collection: this is not a public API and may change without notice.
"""pgbackrest_restore's algorithm: a point-in-time restore by pgBackRest that is proven before it is trusted - the
same steps wherever the server runs; what differs (a data directory on this host, a server in a container) is a
backend of pitr/backend.py's interface (pitr/native.py, pitr/container.py).

1. options and the target (time, restore point name, xid, LSN or the end of the archive) are checked, the target
   against the recoverable window (oldest backup -> newest archived WAL) - before anything is touched;
2. ``pgbackrest restore --archive-mode=off --target-action=promote`` into a SCRATCH instance (_instance), so it
   never writes into the repository and never touches the server's files;
3. the scratch instance starts on a free loopback port with a private socket directory, recovery replays WAL to
   the target and promotes; we wait for it;
4. verify (_verify.verify_instance): it accepts connections, expected tables, SQL assertions, amcheck;
5. test: record the result and the RTO, remove the scratch; new: leave it running and say how to connect;
   replace (confirm): the backend switches the verified scratch in for the server and verifies again - any failure
   after the switch switches back; rollback (confirm): the backend switches the kept data back.

Until the switch the running server is only read (SQL: its settings and pg_stat_archiver); a failure at any step
stops and removes the scratch. Every real run appends a JSON line to an audit log.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
import os
import pwd
import socket
import time
from contextlib import contextmanager

from ansible_collections.pgops.postgresql.plugins.module_utils._connection import PgTarget
from ansible_collections.pgops.postgresql.plugins.module_utils._errors import PgOpsError
from ansible_collections.pgops.postgresql.plugins.module_utils._fsutil import append_log_line
from ansible_collections.pgops.postgresql.plugins.module_utils._pgbackrest import (
    PgBackRest, iso_utc as iso, recoverable_window, usable_backups,
)
from ansible_collections.pgops.postgresql.plugins.module_utils._pipeline import run_checked
from ansible_collections.pgops.postgresql.plugins.module_utils._steps import (
    INFO, INTERNAL, OPTIONS, PGBACKREST_STEPS, PREFLIGHT, RECOVERY, RESTORE, SCRATCH, START, SWAP, TARGET, VERIFY,
    job_step,
)
from ansible_collections.pgops.postgresql.plugins.module_utils._verify import PASSED, read_instance, verify_instance
from ansible_collections.pgops.postgresql.plugins.module_utils.pitr.native import NativeBackend
from ansible_collections.pgops.postgresql.plugins.module_utils.pitr.target import (
    check_target, choose_backup, iso_time, restore_options, target_of,
)

SERVER_SQL = """
SELECT json_build_object(
  'version_num', current_setting('server_version_num'),
  'data_directory', current_setting('data_directory'),
  'hba_file', current_setting('hba_file'),
  'in_recovery', pg_is_in_recovery(),
  'tablespaces', (SELECT coalesce(json_agg(spcname), '[]') FROM pg_tablespace
                  WHERE spcname NOT IN ('pg_default', 'pg_global')),
  'last_archived_wal', a.last_archived_wal,
  'last_archived_time', extract(epoch FROM a.last_archived_time),
  'failed_count', a.failed_count)::text
FROM pg_stat_archiver a
"""


class PitrJob(object):
    """One run of pgbackrest_restore: decide (server, window, target, plan), then act, through ``backend``.

    Its state changes only through enter / step (the stage, timed phases), record / forget (the result), warn and
    passed."""

    def __init__(self, module, backend_class=NativeBackend):
        self.module = module
        self.p = module.params
        self.check_mode = module.check_mode
        self.server = PgTarget(module)
        self.br = PgBackRest(module)
        self.result = dict(changed=False, mode=self.p['mode'], plan=[])
        self.phases = {}
        self.verification = {}
        self.warnings = []
        self.t0 = time.time()
        self.stage = OPTIONS
        self.facts = None
        self.switch_t0 = None
        self.backend = backend_class(self)

    # -- state -------------------------------------------------------------------------------------------------
    def enter(self, stage):
        self.stage = stage

    @contextmanager
    def step(self, stage, phase=None):
        """Enter ``stage``; with ``phase``, time it (recorded when it succeeds)."""
        self.stage = stage
        started = time.time()
        yield
        if phase:
            self.timed(phase, started)

    def timed(self, phase, started):
        self.phases[phase] = round(time.time() - started, 3)

    def record(self, **values):
        self.result.update(values)

    def record_cleaned(self, cleaned):
        if cleaned:
            self.record(cleaned=cleaned)

    def forget(self, key):
        self.result.pop(key, None)

    def warn(self, text):
        self.warnings.append(text)

    def passed(self, rto=None, **values):
        self.record(rto_seconds=round((rto or time.time()) - self.t0, 3), result='passed', **values)
        return self.result

    # -- deciding ----------------------------------------------------------------------------------------------
    def read_server(self):
        """The running server's facts (read-only SQL)."""
        self.enter(PREFLIGHT)
        self.server.check_container()
        with self.server.psql(self.p['maintenance_db']) as s:
            facts = s.query_json(SERVER_SQL)
        facts['major'] = int(facts['version_num']) // 10000
        self.server.server_major = facts['major']
        if facts.get('in_recovery'):
            raise PgOpsError('the server is a standby (in recovery): restore from its primary', step=PREFLIGHT)
        self.facts = facts
        return facts

    def decide(self):
        self.enter(PREFLIGHT)
        if self.backend.server_down():
            return self.backend.decide_down()
        facts = self.read_server()
        kind, value, chosen = self.decide_target(facts, self.br.info())
        return facts, kind, value, chosen

    def decide_target(self, facts, info):
        """The window from ``info`` (the stanza's ``pgbackrest info`` entry) and the server's facts, the target
        checked against it, the backup set: (kind, value, chosen backup)."""
        self.enter(INFO)
        status = info.get('status') or {}
        if status.get('code') not in (0, None) and not usable_backups(info):
            raise PgOpsError('stanza %s: %s' % (self.br.stanza, status.get('message')), step=INFO)
        window = recoverable_window(info, facts.get('last_archived_time'))
        self.record(recoverable_window=dict((k, v) for k, v in (window or {}).items() if not k.endswith('_epoch')))
        self.enter(TARGET)
        kind, value = target_of(self.p)
        self.record(target=dict(type='latest' if kind == 'default' else kind, value=value))
        check_target(kind, value, window)
        chosen = choose_backup(info, kind, value, self.p.get('backup_set'))
        self.record(backup_set=chosen['label'])
        self.enter(PREFLIGHT)
        return kind, value, chosen

    def plan(self, kind, value, chosen, data):
        inst = self.backend.instance
        target = 'the end of the archive' if kind == 'default' else '%s %s' % (kind, value)
        steps = ['pgbackrest restore of backup %s to %s into %s (archive_mode off, tablespaces inside it)'
                 % (chosen['label'], target, inst.data),
                 'start it on 127.0.0.1:%d (socket in %s), wait for recovery to reach the target and promote'
                 % (inst.port, inst.run_dir),
                 'verify: accepts connections%s%s%s' % (
                     ', tables %s' % ', '.join(self.p['expected_tables']) if self.p.get('expected_tables') else '',
                     ', %d assertions' % len(self.p['assertions']) if self.p.get('assertions') else '',
                     ', amcheck' if self.p.get('amcheck') else '')]
        if self.p['mode'] == 'test':
            steps.append('%s; record the RTO' % self.backend.remove_words())
        elif self.p['mode'] == 'new':
            steps.append('leave it running on 127.0.0.1:%d' % inst.port)
        return self.backend.plan_steps(steps, data)

    # -- acting ------------------------------------------------------------------------------------------------
    def run_job(self):
        if self.p['mode'] == 'rollback':
            self.enter(PREFLIGHT)
            return self.rolled_back() if self.backend.rollback() else self.result
        facts, kind, value, chosen = self.decide()
        data = self.backend.plan_scratch(facts, chosen)
        self.record(plan=self.plan(kind, value, chosen, data))
        if self.check_mode:
            self.record(changed=self.p['mode'] in ('new', 'replace'))
            return self.result
        with self.backend.lock(data):
            self.record_cleaned(self.backend.clean_leftovers(data))
            return self.restore(kind, value, chosen, data)

    def restore(self, kind, value, chosen, data):
        backend = self.backend
        inst = backend.instance
        with self.step(SCRATCH):
            backend.make_scratch()
        self.record(changed=True)
        switched = False
        try:
            with self.step(RESTORE, 'restore'):
                backend.run_restore(restore_options(self.p, inst, chosen['label'], kind, value))
            with self.step(START, 'start'):
                inst.prepare_config(backend.server_rules)
                inst.start(self.p['recovery_timeout'], self.br.secret_env)
            with self.step(RECOVERY, 'recovery'):
                scratch = inst.target(self.p['login_user'])
                self.wait_promoted(scratch, self.p['recovery_timeout'], inst)
            with self.step(VERIFY, 'verify'):
                self.verify(scratch, amcheck=self.p.get('amcheck'))
            if self.p['mode'] == 'test':
                rto, started = time.time(), time.time()
                backend.remove_scratch()
                self.timed('remove_scratch', started)
                return self.passed(rto)
            if self.p['mode'] == 'new':
                inst.keep()
                return self.passed(scratch=inst.describe(True, login_user=self.p['login_user']))
            self.enter(SWAP)
            switched = True
            self.switch_t0 = time.time()
            backend.switch(data)
            self.archive_new_timeline()
            return self.passed()
        except BaseException:
            if not switched:
                self.record(scratch=inst.describe(False, removed=True))
                backend.remove_scratch(ignore=True)
            raise

    def wait_promoted(self, target, timeout, instance=None):
        """Wait until the instance accepts connections and is out of recovery; PgOpsError at ``recovery`` with the
        tail of the scratch ``instance``'s log when it stops or times out."""
        deadline = time.time() + timeout
        last = ''
        while True:
            try:
                out = run_checked(target.argv('psql', ['-X', '-w', '-A', '-t', '-d', self.p['maintenance_db'], '-c',
                                                       'SELECT pg_is_in_recovery()']), target.env(), 'psql', RECOVERY)
                if out.strip() == 'f':
                    return
                last = 'still in recovery'
            except PgOpsError as e:
                last = e.msg
            if instance is not None and not instance.alive():
                raise PgOpsError('the scratch instance stopped during recovery: %s' % instance.log_tail(),
                                 step=RECOVERY)
            if time.time() > deadline:
                raise PgOpsError('recovery did not reach its target within %ds (recovery_timeout; %s)%s'
                                 % (timeout, last, ': %s' % instance.log_tail() if instance else ''), step=RECOVERY)
            time.sleep(0.2)

    def wait_server(self, step):
        try:
            self.wait_promoted(self.server, self.p['start_timeout'])
        except PgOpsError as e:
            raise PgOpsError('the server did not come back: %s' % e.msg, step=step)

    # -- verification ------------------------------------------------------------------------------------------
    def verify(self, target, amcheck=False, switched=False):
        """The checks on ``target``, recorded in ``verification`` (under ``switched`` for the switched server)
        as they go, so that a failure shows which check failed."""
        checks = dict(connections=PASSED)
        self.verification = dict(scratch=self.verification, switched=checks) if switched else checks
        found = read_instance(target, self.p['maintenance_db'])
        if not switched:
            self.record(recovered_to=iso_time(found.get('replayed') or (self.result.get('target') or {}).get('value')))
        want = dict(maintenance_db=self.p['maintenance_db'], databases=self.p.get('databases'),
                    expected_tables=self.p.get('expected_tables'), assertions=self.p.get('assertions'),
                    amcheck=amcheck)
        return verify_instance(target, found, want, checks, self.warnings)

    def verify_switched(self):
        """The switched server, up again, verified as the scratch was (the backends call it inside their switch,
        where a failure switches back)."""
        self.timed('switch', self.switch_t0)
        started = time.time()
        self.verify(self.server, switched=True)
        self.timed('verify_switched', started)

    def archive_new_timeline(self):
        """The switched server is on the new timeline of the restore: push its history file and first segment now
        (a checkpoint marks the segments completed while archive_mode was off)."""
        try:
            with self.server.psql(self.p['maintenance_db']) as s:
                s.query('CHECKPOINT')
                s.query('SELECT pg_switch_wal()')
        except PgOpsError as e:
            self.warn('could not switch WAL on the replaced server (%s): check archiving' % e.msg)
        self.warn('the server now runs on a new timeline: take a full backup (pgbackrest_backup type=full) so that '
                  'later restores start from it')

    def rolled_back(self):
        self.verification = dict(connections=PASSED)   # the kept data was the server's: no assertions
        self.warn('the server is back on the timeline it had before the replace: restores that should follow it '
                  'need target_timeline=current (the archive also holds the newer timeline of the replace), until '
                  'a new full backup')
        return self.passed()


def audit_line(module, job, result):
    """The audit log's path and line of one run (None, None when there is nowhere to write it)."""
    p = module.params
    log = p.get('audit_log')
    if not log and job.facts and job.facts.get('data_directory') and not p.get('container'):
        data = (p.get('data_directory') or job.facts['data_directory']).rstrip('/')
        log = os.path.join(os.path.dirname(data), 'pgops-pitr-audit.jsonl')
    if not log:
        return None, None
    try:
        who = pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        who = str(os.geteuid())
    line = dict(time=iso(job.t0), who=dict(os_user=who, user=p.get('audit_user') or who, host=socket.gethostname()),
                context=p.get('audit_context') or {}, stanza=p['stanza'], mode=p['mode'], target=result.get('target'),
                backup_set=result.get('backup_set'), result=result.get('result'), rto_seconds=result.get('rto_seconds'),
                recovered_to=result.get('recovered_to'), failed_step=result.get('failed_step'),
                error=result.get('error'), rollback=result.get('rollback'), confirmed=bool(p.get('confirm')))
    return log, json.dumps(line, sort_keys=True, ensure_ascii=False)


def run_pgbackrest_restore(module, backend_class=NativeBackend):
    """Run one pgbackrest_restore with ``backend_class`` (pitr.native.NativeBackend or
    pitr.container.ContainerBackend) and exit the module."""
    job = None
    error = None
    result = dict(changed=False, mode=module.params['mode'])
    try:
        job = PitrJob(module, backend_class)
        result = job.run_job()
    except PgOpsError as e:
        error = e
    except Exception as e:  # pylint: disable=broad-except
        error = PgOpsError('unexpected %s: %s' % (type(e).__name__, e), step=INTERNAL)
    if job is not None:
        result = job.result
        result.update(phases=job.phases, verification=job.verification)
        result['duration_seconds'] = round(time.time() - job.t0, 3)
    if error is not None:
        error.step = job_step(error.step, PGBACKREST_STEPS, job.stage if job else PREFLIGHT)
        result.update(result='failed', failed_step=error.step, error=error.msg)
    if job is not None and not module.check_mode:
        log, line = audit_line(module, job, result)
        if log:
            try:
                append_log_line(log, line)
                result['audit_log'] = log
            except (IOError, OSError) as e:
                job.warn('could not write the audit log %s: %s' % (log, e))
    for w in (job.warnings if job else []):
        module.warn(w)
    if error is not None:
        module.fail_json(msg='%s failed at step %s: %s' % (module.params['mode'], error.step, error.msg), **result)
    module.exit_json(**result)
