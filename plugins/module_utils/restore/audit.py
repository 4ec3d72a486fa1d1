# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgops.postgresql contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# PRIVATE to the collection: this is not a public API and may change without notice.
"""What a restore leaves on record: the audit log (``restore-audit.jsonl``, one JSON line per run, interrupted
runs included), the verifications appended to a backup's metadata, and the lock and run marker of a target.

backup_rotate reads the same rules (it audits the scratch databases of killed runs it drops) without importing
the restore job.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import datetime
import json
import os
import pwd
import socket

from ansible_collections.pgops.postgresql.plugins.module_utils import _catalog as catalog
from ansible_collections.pgops.postgresql.plugins.module_utils._fsutil import DirLock, append_log_line, write_json_atomic
from ansible_collections.pgops.postgresql.plugins.module_utils._verify import has_counts

AUDIT_LOG_NAME = 'restore-audit.jsonl'


def now():
    return datetime.datetime.now().astimezone().replace(microsecond=0)


def restore_lock_path(directory, target):
    """The lock every restore (and rollback) of ``target`` holds while it runs."""
    return os.path.join(directory, '.%s.restore.lock' % catalog.slug(target))


def run_marker_path(directory, target):
    """The marker a restore (or rollback) of ``target`` keeps while it runs: left behind only by a killed run."""
    return os.path.join(directory, '.%s.restore.running' % catalog.slug(target))


def audit_interrupted(log, info, who_entry, cleaned_by):
    """The audit line of a run that was killed before it could write its own (once per run: a run already
    audited as interrupted, by its run marker or by its scratch database, is not audited again)."""
    if _audited_interrupted(log, info):
        return
    if info.get('instance'):
        what = '%s removed its throwaway instance %s' % (cleaned_by, ', '.join(info['instance']))
    elif info.get('scratch_database'):
        what = '%s dropped its scratch database %s' % (cleaned_by, info.get('scratch_database'))
    else:
        what = '%s found it had created no scratch database' % cleaned_by
    append_log_line(log, json.dumps(dict(
        who=who_entry, time=info.get('started'), mode=info.get('mode'), backup_id=info.get('backup_id'),
        database=info.get('database'), target=info.get('target'), result='interrupted', context={},
        error='the run (pid %s on %s) ended without finishing; %s at %s'
              % (info.get('pid'), info.get('host'), what, now().isoformat())),
        sort_keys=True, ensure_ascii=False))


def _audited_interrupted(log, info):
    try:
        with open(log, 'rb') as f:
            lines = f.read().decode('utf-8', 'replace').splitlines()
    except (IOError, OSError):
        return False
    tag = '(pid %s on %s)' % (info.get('pid'), info.get('host'))
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if (isinstance(entry, dict) and entry.get('result') == 'interrupted' and entry.get('time') == info.get('started')
                and tag in (entry.get('error') or '')):
            return True
    return False


def record_verification(path, meta, entry, lock_timeout, counts=None):
    """Append a verification to the backup's metadata (atomically, under the database's backup lock). ``counts``:
    the counts a passed restore found for a backup that had none, recorded unless the record has counts by now."""
    meta_path = meta.get('meta_path') or catalog.meta_path(path, meta['file'].rsplit('.', 1)[0])
    with DirLock(os.path.join(path, catalog.lock_name(meta['database'])), lock_timeout,
                 'database %s in %s' % (meta['database'], path)):
        with open(meta_path, 'rb') as f:
            record = json.loads(f.read().decode('utf-8'))
        record.setdefault('verifications', []).append(entry)
        if counts and not has_counts(record):
            record.update(counts)
            entry['counts_recorded'] = True
        st = os.stat(meta_path)
        write_json_atomic(meta_path, record, st.st_uid, st.st_gid)


def who(audit_user=None):
    try:
        os_user = pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        os_user = str(os.geteuid())
    return dict(os_user=os_user, sudo_user=os.environ.get('SUDO_USER'), user=audit_user or os_user,
                host=socket.gethostname())


def write_audit(p, job, started, result):
    """Every run is audited, refusals included; each scratch database of an interrupted run too."""
    log = p['audit_log'] or os.path.join(job.path, AUDIT_LOG_NAME)
    base = dict(who=who(p['audit_user']), context=p['audit_context'] or {}, container=p.get('container'))
    lines = []
    try:
        for info in job.interrupted:
            audit_interrupted(log, info, base['who'], 'the next restore of %s' % info.get('target'))
    except (IOError, OSError) as e:
        job.warnings.append('could not write the audit log %s: %s' % (log, e))
    lines.append(dict(base, time=started.isoformat(), mode=p['mode'],
                      backup_id=result.get('backup_id') or p.get('backup_id'),
                      database=result.get('database') or p.get('database'),
                      target=result.get('target') or p.get('target') or p.get('database'),
                      result=result.get('result'), rto_seconds=result.get('rto_seconds'),
                      data_as_of=result.get('data_as_of'), failed_step=result.get('failed_step'),
                      error=result.get('error'), rollback_database=result.get('rollback_database'),
                      replaced_database=result.get('replaced_database'),
                      roles_created=result.get('roles_created') or None,
                      server=job.target.server, source_server=job.source_server(),
                      system_identifier=job.checks.get('system_identifier'),
                      attempts=job.attempts if len(job.attempts) > 1 else None,
                      protected=(result.get('target') or p.get('target') or p.get('database'))
                      in (p.get('protected_databases') or []),
                      confirmed=bool(p.get('confirm'))))
    try:
        for line in lines:
            append_log_line(log, json.dumps(line, sort_keys=True, ensure_ascii=False))
        result['audit_log'] = log
    except (IOError, OSError) as e:
        job.warnings.append('could not write the audit log %s: %s' % (log, e))
