# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgops.postgresql contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Every failure lands in a step of the closed set, and in the right one: PgOpsError refuses any other name, the
pipelines keep their label (the message) apart from their step, a backup's session errors become connect / preflight
/ dump, and a restore's damaged compressed stream is file_check with the verdict failed, not inconclusive."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import ast
import gzip
import hashlib
import os
import shutil

import pytest

from ansible_collections.pgops.postgresql.plugins.module_utils import _steps as steps
from ansible_collections.pgops.postgresql.plugins.module_utils._backup import BackupJob
from ansible_collections.pgops.postgresql.plugins.module_utils._connection import PgTarget
from ansible_collections.pgops.postgresql.plugins.module_utils._errors import PgOpsError
from ansible_collections.pgops.postgresql.plugins.module_utils._fsutil import PgOpsError as FsutilPgOpsError
from ansible_collections.pgops.postgresql.plugins.module_utils._pipeline import (
    Stage, run_checked, run_drained, run_framed, run_pipeline, run_to_file,
)
from ansible_collections.pgops.postgresql.plugins.module_utils.restore.job import RestoreJob
from ansible_collections.pgops.postgresql.plugins.module_utils._verdict import BackupFault
from ansible_collections.pgops.postgresql.plugins.module_utils._verify import OBJECTS, ROW_COUNTS, compare

MODULE_UTILS = os.path.join(os.path.dirname(steps.__file__))
ENV = dict(os.environ, LC_ALL='C')


class FakeModule(object):
    """What the jobs use of AnsibleModule: check_mode, tmpdir, get_bin_path, no_log_values."""

    def __init__(self, tmpdir, check_mode=False):
        self.check_mode = check_mode
        self.tmpdir = str(tmpdir)
        self.no_log_values = set()

    @staticmethod
    def get_bin_path(name, required=False):
        path = shutil.which(name)
        if path is None and required:   # make test installs them (scripts/host-packages.sh): never skipped
            pytest.fail('%s is not installed: run scripts/host-packages.sh' % name)
        return path


# -- the closed set ----------------------------------------------------------------------------------------------
def test_every_job_set_is_inside_the_closed_set():
    for kind in (steps.BACKUP_STEPS, steps.RESTORE_STEPS, steps.ROTATE_STEPS, steps.OFFSITE_STEPS,
                 steps.MAINTENANCE_STEPS, steps.SESSION_STEPS, steps.PGBACKREST_STEPS):
        assert kind <= steps.ALL_STEPS
    assert steps.QUERY not in steps.BACKUP_STEPS | steps.RESTORE_STEPS   # a session's step, never a job's


@pytest.mark.parametrize('bad', ['file_check (gzip stream test)', 'psql', 'pg_dump --version', 'df in the container',
                                 ''])
def test_pg_ops_error_refuses_free_text_as_its_step(bad):
    with pytest.raises(ValueError):
        raise PgOpsError('boom', step=bad)
    err = PgOpsError('boom', step=steps.DUMP)
    with pytest.raises(ValueError):
        err.step = bad
    assert err.step == steps.DUMP


def test_pg_ops_error_is_one_class_wherever_it_is_imported_from():
    assert FsutilPgOpsError is PgOpsError
    assert PgOpsError('not named yet').step is None


@pytest.mark.parametrize('step, in_progress, expected', [
    ('lock', 'dump', 'lock'),            # a step the job knows stays
    ('query', 'dump', 'dump'),           # a session's own step becomes the step in progress
    (None, 'preflight', 'preflight'),    # an unnamed failure too
    ('connect', 'verify', 'verify'),     # connect is not a restore step: the restore names its own
    ('connect', 'preflight', 'connect'),  # ... but it is a backup's
])
def test_job_step(step, in_progress, expected):
    kind = steps.RESTORE_STEPS if in_progress == 'verify' else steps.BACKUP_STEPS
    assert steps.job_step(step, kind, in_progress) == expected


def test_job_step_refuses_a_step_in_progress_outside_the_job():
    with pytest.raises(ValueError):
        steps.job_step('query', steps.BACKUP_STEPS, steps.VERIFY)


def _step_arguments(tree):
    """Every ``step=<expression>`` keyword and every ``<x>.step = <expression>`` assignment in a module."""
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg in ('step', 'failed_step'):
            yield node.lineno, node.value
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Attribute) and target.attr == 'step':
                    yield node.lineno, node.value


def test_no_step_is_written_as_free_text():
    """A step is a _steps constant (or a variable holding one), never a string literal typed at the call."""
    literals = []
    for name in sorted(os.listdir(MODULE_UTILS)):
        if not name.endswith('.py') or name in ('_steps.py', '_connection.py'):
            continue
        with open(os.path.join(MODULE_UTILS, name)) as f:
            tree = ast.parse(f.read())
        for line, value in _step_arguments(tree):
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                literals.append('%s:%d %r' % (name, line, value.value))
    assert literals == []


# -- pipelines: the label is the message, the step is a name -----------------------------------------------------
def test_run_checked_keeps_label_and_step_apart():
    with pytest.raises(PgOpsError) as err:
        run_checked(['sh', '-c', 'echo no such key >&2; exit 1'], ENV, 'age-keygen', steps.FILE_CHECK)
    assert err.value.step == 'file_check' and err.value.msg == 'age-keygen failed: sh exit code 1: no such key'


def test_run_checked_refuses_an_unknown_step_before_running_anything(tmp_path):
    marker = tmp_path / 'ran'
    with pytest.raises(ValueError):
        run_checked(['touch', str(marker)], ENV, 'touch', 'touch it')
    assert not marker.exists()


def test_run_pipeline_failure_is_at_its_step_with_its_label(tmp_path):
    with pytest.raises(PgOpsError) as err:
        run_pipeline([Stage('false', ['false'])], ENV, steps.RESTORE, label='restore of x')
    assert err.value.step == 'restore' and err.value.msg.startswith('restore of x failed: false exit code 1')
    with pytest.raises(PgOpsError) as err:
        run_pipeline([Stage('cat', ['cat'])], ENV, steps.FILE_CHECK, stdin_path=str(tmp_path / 'missing'))
    assert err.value.step == 'file_check' and 'cannot read' in err.value.msg
    with pytest.raises(PgOpsError) as err:
        run_pipeline([Stage('nope', [str(tmp_path / 'no-such-program')])], ENV, steps.FILE_CHECK)
    assert err.value.step == 'file_check' and 'cannot run nope' in err.value.msg


def test_run_framed_and_drained_fail_at_their_step(tmp_path):
    data = tmp_path / 'in'
    data.write_bytes(b'x' * 1000)
    with pytest.raises(PgOpsError) as err:
        run_framed([Stage('false', ['sh', '-c', 'cat; exit 1'])], Stage('cat', ['cat']), ENV, steps.RESTORE,
                   b'', b'', str(data))
    assert err.value.step == 'restore'
    with pytest.raises(PgOpsError) as err:
        run_drained([Stage('cat', ['cat'])], Stage('false', ['false']), ENV, steps.FILE_CHECK, str(data))
    assert err.value.step == 'file_check'


def test_run_to_file_failures_are_dump_or_write(tmp_path):
    with pytest.raises(PgOpsError) as err:
        run_to_file([Stage('pg_dump', ['sh', '-c', 'echo lost >&2; exit 1'])], str(tmp_path / 'd.dump'), ENV)
    assert err.value.step == 'dump'
    with pytest.raises(PgOpsError) as err:
        run_to_file([Stage('pg_dump', ['true'])], str(tmp_path / 'no' / 'dir' / 'd.dump'), ENV)
    assert err.value.step == 'write'


# -- a backup ----------------------------------------------------------------------------------------------------
def backup_opts(dest, **kw):
    opts = dict(dest=str(dest), kind='full', label=None, format='custom', compression='zstd', compression_level=None,
                jobs=1, owner=None, group=None, free_space_ratio=0, lock_timeout=5, log_file=None,
                databases=['shop'], globals=False, all_databases=False, encrypt_recipients=None,
                encrypt_recipients_file=None, maintenance_db=None)
    opts.update(kw)
    return opts


def closed_port():
    import socket
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.mark.skipif(not shutil.which('psql'), reason='psql is not installed')
def test_a_backup_of_an_unreachable_server_fails_at_connect(tmp_path):
    """A real psql against a closed port: the session's own step (query) is recorded as connect."""
    module = FakeModule(tmp_path)
    target = PgTarget(module, dict(login_host='127.0.0.1', login_port=closed_port(), login_user='postgres',
                                   connect_timeout=2))
    dest = tmp_path / 'backups'
    dest.mkdir()
    job = BackupJob(module, target, backup_opts(dest))
    entry = job.backup_one('shop')
    assert entry['status'] == 'failed' and entry['failed_step'] == 'connect', entry
    assert entry['failed_step'] in steps.BACKUP_STEPS
    records = [n for n in os.listdir(str(dest)) if n.endswith('.meta.json')]
    assert len(records) == 1   # the failure is recorded in the catalog, under its step


@pytest.mark.parametrize('raised, expected_without_id, expected_with_id', [
    (None, 'preflight', 'dump'),
    (steps.QUERY, 'preflight', 'dump'),
    (steps.LOCK, 'lock', 'lock'),
    (steps.COUNT, 'count', 'count'),
    (steps.VERIFY, 'preflight', 'dump'),     # a step of another job never lands in a backup's record
])
def test_every_recorded_backup_failure_names_a_backup_step(tmp_path, raised, expected_without_id, expected_with_id):
    module = FakeModule(tmp_path, check_mode=True)
    job = BackupJob(module, PgTarget(module, {}), backup_opts(tmp_path))
    meta = job._base_meta('shop')
    meta['kind'] = 'full'
    assert job._failed(dict(meta), PgOpsError('x', step=raised))['failed_step'] == expected_without_id
    assert job._failed(dict(meta, id='20261128_120000'), PgOpsError('x', step=raised))['failed_step'] == expected_with_id


def test_pg_backup_fails_with_failed_step_and_the_old_step_key(tmp_path, monkeypatch):
    """The module-level failure (refused before any backup) returns failed_step, and step for one release."""
    from ansible_collections.pgops.postgresql.plugins.module_utils import _backup

    class Failed(Exception):
        pass

    class Module(FakeModule):
        params = dict(backup_opts(tmp_path, compression_level=42, databases=['shop']), container=None)

        def fail_json(self, **kw):
            raise Failed(kw)

    with pytest.raises(Failed) as out:
        _backup.run_pg_backup(Module(tmp_path))
    result = out.value.args[0]
    assert result['failed_step'] == 'options' and 'step' not in result and 'compression_level 42' in result['msg']


# -- a restore ---------------------------------------------------------------------------------------------------
def restore_job(tmp_path):
    module = FakeModule(tmp_path)
    return RestoreJob(module, PgTarget(module, {}), dict(path=str(tmp_path), mode='test'))


def gzip_backup(tmp_path, damage):
    """A plain gzip backup whose metadata matches its (damaged) file: only the stream test can find the damage."""
    path = tmp_path / 'shop_full_20261128_120000.sql.gz'
    payload = gzip.compress(b''.join(b'INSERT INTO t VALUES (%d);\n' % i for i in range(20000)))
    path.write_bytes(damage(payload))
    data = path.read_bytes()
    return dict(id='20261128_120000', database='shop', file=path.name, format='plain', compression='gzip',
                encrypted=False, size=len(data), sha256=hashlib.sha256(data).hexdigest())


@pytest.mark.skipif(not shutil.which('gzip'), reason='gzip is not installed')
@pytest.mark.parametrize('damage', [
    lambda b: b[:len(b) // 2],                                               # truncated: unexpected end of file
    lambda b: b[:len(b) // 2] + bytes([b[len(b) // 2] ^ 0xff]) + b[len(b) // 2 + 1:],  # a flipped byte
], ids=['truncated', 'flipped-byte'])
def test_a_damaged_gzip_stream_is_file_check_and_failed_not_inconclusive(tmp_path, damage):
    """The full file check (check mode; a real run finds the same in the restore's own pass: test_restore.py)."""
    job = restore_job(tmp_path)
    job.check_mode = True    # the full check; and _attempted records nothing in check mode
    meta = gzip_backup(tmp_path, damage)
    with pytest.raises(PgOpsError) as err:
        job.check_file(meta)
    assert err.value.step == 'file_check', err.value.msg
    assert isinstance(err.value, BackupFault), err.value.msg     # evidence about the backup: verdict failed
    job._attempted(meta, err.value)
    assert job.attempts[-1]['result'] == 'failed' and job.attempts[-1]['failed_step'] == 'file_check'


def test_a_missing_backup_file_is_file_check_and_failed(tmp_path):
    job = restore_job(tmp_path)
    meta = dict(id='20261128_120000', database='shop', file='gone.sql.gz', format='plain', compression='gzip',
                size=1, sha256='0' * 64)
    with pytest.raises(BackupFault) as err:
        job.check_file(meta)
    assert err.value.step == 'file_check'


def test_a_restore_session_error_is_named_after_the_step_in_progress(tmp_path):
    """A lost psql session (step query) during verify is a verify failure, and inconclusive."""
    job = restore_job(tmp_path)
    meta = dict(id='20261128_120000', database='shop', file='x.dump')

    def run(meta, target_db):
        job.stage = steps.VERIFY
        raise PgOpsError('server closed the connection', step=steps.QUERY)

    job._run = run
    job.check_mode = True
    with pytest.raises(PgOpsError) as err:
        job._attempts([meta], 'shop')
    assert err.value.step == 'verify'
    assert job.attempts[-1]['result'] == 'inconclusive' and job.attempts[-1]['failed_step'] == 'verify'


# -- compare: checks, not sentences ------------------------------------------------------------------------------
def test_compare_returns_check_and_message_pairs():
    meta = dict(tables=[dict(schema='public', name='a', rows=2), dict(schema='public', name='b', rows=1)],
                object_names=dict(views=['public.v'], extensions=['plpgsql']))
    found = dict(tables=[dict(schema='public', name='a', rows=3), dict(schema='public', name='c', rows=0)],
                 views=[], extensions=['plpgsql', 'pg_trgm'])
    assert compare(meta, found) == [
        (ROW_COUNTS, 'tables missing: public.b'),
        (ROW_COUNTS, 'unexpected tables: public.c'),
        (ROW_COUNTS, 'row counts differ: public.a has 3 rows, the backup says 2'),
        (OBJECTS, 'views missing: public.v'),
    ]
    assert compare(meta, dict(meta['object_names'], tables=meta['tables'])) == []
