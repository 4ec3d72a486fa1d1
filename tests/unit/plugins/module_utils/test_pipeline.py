# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgops.postgresql contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for the checked pipelines, with real processes writing real files."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import hashlib
import os
import stat
import subprocess
from contextlib import contextmanager

import pytest

from ansible_collections.pgops.postgresql.plugins.module_utils._fsutil import PgOpsError
from ansible_collections.pgops.postgresql.plugins.module_utils._pipeline import (
    SIGPIPE_CODES, Stage, describe_rc, failure_message, pipeline_failures, run_checked, run_framed, run_to_file,
    sha256_tree,
)

ENV = {'PATH': os.environ.get('PATH', '/usr/bin:/bin'), 'LC_ALL': 'C'}


def sh(name, script):
    return Stage(name, ['sh', '-c', script])


def sha(data):
    return hashlib.sha256(data).hexdigest()


@contextmanager
def umask(value):
    old = os.umask(value)
    try:
        yield
    finally:
        os.umask(old)


def finished(name, script):
    """A Stage whose process really ran to its end (for pipeline_failures / failure_message)."""
    stage = sh(name, script)
    stage.proc = subprocess.Popen(stage.argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    stage.proc.wait()
    return stage


# -- describe_rc ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize('rc, text', [
    (1, 'exit code 1'),
    (-9, 'killed by signal SIGKILL'),
    (-200, 'killed by signal 200'),
    (137, 'exit code 137 (SIGKILL)'),
    (141, 'exit code 141 (SIGPIPE)'),
    (129, 'exit code 129'),
])
def test_describe_rc(rc, text):
    assert describe_rc(rc) == text


# -- run_to_file: success -----------------------------------------------------------------------------------------

def test_run_to_file_two_stages(tmp_path):
    path = tmp_path / 'pim_dev_full_20261128_020000.sql'
    with umask(0o022):
        size, digest = run_to_file([sh('producer', 'printf abc'), Stage('cat', ['cat'])], str(path), ENV)
    assert (size, digest) == (3, sha(b'abc'))
    assert path.read_bytes() == b'abc'
    assert stat.S_IMODE(os.stat(str(path)).st_mode) == 0o640
    assert os.listdir(str(tmp_path)) == [path.name]


def test_run_to_file_streams_more_than_one_chunk_through_a_compressor(tmp_path):
    path = tmp_path / 'big.gz'
    n = 3 * (1 << 20) + 17
    size, digest = run_to_file([Stage('head', ['head', '-c', str(n), '/dev/zero']),
                                Stage('gzip', ['gzip', '-c', '-1'])], str(path), ENV)
    data = path.read_bytes()
    assert (size, digest) == (len(data), sha(data))
    assert subprocess.check_output(['gzip', '-dc', str(path)]) == b'\0' * n


def test_run_to_file_tells_the_cpu_each_stage_used(tmp_path):
    # the busy stage is told apart from the idle one: a loop burning CPU before it writes, then cat
    stages = [sh('busy', 'i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done; printf done'), Stage('cat', ['cat'])]
    run_to_file(stages, str(tmp_path / 'out'), ENV)
    busy, idle = stages[0].cpu_seconds, stages[1].cpu_seconds
    assert busy > 0.05 and idle is not None and idle < busy, (busy, idle)
    assert [s.rc for s in stages] == [0, 0]


def test_run_to_file_passes_env_and_gives_the_first_stage_no_stdin(tmp_path):
    path = tmp_path / 'out'
    env = dict(ENV, PGOPS_TEST_VALUE=u'hällo')
    size, digest = run_to_file([sh('echo', 'printf %s "$PGOPS_TEST_VALUE"; cat')], str(path), env)
    assert path.read_bytes() == u'hällo'.encode('utf-8')
    empty = tmp_path / 'empty'
    assert run_to_file([Stage('cat', ['cat'])], str(empty), ENV) == (0, sha(b''))
    assert empty.read_bytes() == b''


# -- run_to_file: failure leaves nothing ------------------------------------------------------------------------

def _fails(tmp_path, stages):
    path = tmp_path / 'pim_dev_full_20261128_020000.sql.zst'
    with pytest.raises(PgOpsError) as err:
        run_to_file(stages, str(path), ENV)
    assert os.listdir(str(tmp_path)) == []  # neither the final name nor the hidden temporary one
    return err.value


def test_failing_last_stage(tmp_path):
    err = _fails(tmp_path, [sh('producer', 'printf abc'), Stage('false', ['false'])])
    assert err.step == 'dump'
    assert err.msg == 'backup pipeline failed: false exit code 1'


def test_failing_first_stage_names_it_with_its_stderr(tmp_path):
    err = _fails(tmp_path, [sh('pg_dump', 'printf partial; echo "pg_dump: error: connection lost" >&2; exit 2'),
                            Stage('cat', ['cat'])])
    assert err.step == 'dump'
    assert err.msg == 'backup pipeline failed: pg_dump exit code 2: pg_dump: error: connection lost'


def test_stage_killed_by_a_signal(tmp_path):
    err = _fails(tmp_path, [sh('pg_dump', 'printf abc; kill -9 $$'), Stage('cat', ['cat'])])
    assert err.msg == 'backup pipeline failed: pg_dump killed by signal SIGKILL'


def test_sigpipe_upstream_is_blamed_on_the_stage_that_really_failed(tmp_path):
    err = _fails(tmp_path, [Stage('yes', ['yes']), sh('zstd', 'echo "zstd: no space" >&2; exit 1')])
    assert err.msg == 'backup pipeline failed: zstd exit code 1: zstd: no space'


def test_downstream_exiting_early_is_a_failure_not_a_short_backup(tmp_path):
    # head succeeds, but upstream died of SIGPIPE: the output is truncated, so the pipeline failed
    err = _fails(tmp_path, [Stage('yes', ['yes']), Stage('head', ['head', '-c', '5'])])
    assert err.msg == 'backup pipeline failed: yes killed by signal SIGPIPE'


def test_failure_keeps_an_existing_file_at_the_final_path(tmp_path):
    path = tmp_path / 'x.sql'
    path.write_bytes(b'previous')
    with pytest.raises(PgOpsError):
        run_to_file([Stage('false', ['false'])], str(path), ENV)
    assert path.read_bytes() == b'previous'
    assert os.listdir(str(tmp_path)) == ['x.sql']


def test_stage_that_cannot_start_is_named(tmp_path):
    err = _fails(tmp_path, [Stage('pg_dump', [str(tmp_path / 'no-such-pg_dump')]), Stage('cat', ['cat'])])
    assert err.step != 'write'  # the backup file was never the problem
    assert 'pg_dump' in err.msg


def test_run_to_file_into_a_missing_directory(tmp_path):
    with pytest.raises(PgOpsError) as err:
        run_to_file([sh('producer', 'printf abc')], str(tmp_path / 'missing' / 'x'), ENV)
    assert err.value.step == 'write' and 'No such file or directory' in err.value.msg
    assert os.listdir(str(tmp_path)) == []


def test_run_to_file_mode_does_not_depend_on_umask(tmp_path):
    # write_file_atomic (metadata) and fsync_tree (directory dumps) give 0640 whatever the umask; so must dumps
    path = tmp_path / 'x.sql'
    with umask(0o077):
        run_to_file([sh('producer', 'printf abc')], str(path), ENV)
    assert stat.S_IMODE(os.stat(str(path)).st_mode) == 0o640


# -- pipeline_failures / failure_message --------------------------------------------------------------------------

def test_pipeline_failures_leaves_out_sigpipe_victims():
    ok = finished('ok', 'exit 0')
    pipe_shell = finished('shell', 'exit 141')           # a shell reports SIGPIPE as 128 + 13
    pipe_signal = finished('dumper', 'kill -PIPE $$')    # killed by SIGPIPE itself
    real = finished('zstd', 'exit 1')
    assert pipe_shell.rc in SIGPIPE_CODES and pipe_signal.rc in SIGPIPE_CODES
    assert pipeline_failures([pipe_signal, pipe_shell, real, ok]) == [real]
    assert pipeline_failures([pipe_signal, ok]) == [pipe_signal]   # alone, SIGPIPE is the failure
    assert pipeline_failures([ok, ok]) == []
    assert pipeline_failures([Stage('never started', ['true'])]) == []
    assert failure_message([pipe_shell, real], 'restore') == 'restore failed: zstd exit code 1'


def test_run_checked():
    assert run_checked(['sh', '-c', 'printf "15.4\\n"; cat'], ENV, 'version') == '15.4\n'
    with pytest.raises(PgOpsError) as err:
        run_checked(['sh', '-c', 'echo nope >&2; exit 3'], ENV, 'psql', 'file_check')
    assert err.value.step == 'file_check'      # the step, from the closed set; the label is in the message only
    assert err.value.msg == 'psql failed: sh exit code 3: nope'


# -- sha256_tree --------------------------------------------------------------------------------------------------

def test_sha256_tree(tmp_path):
    tree = tmp_path / 'pim_dev_full_20261128_020000.dir'
    (tree / 'sub').mkdir(parents=True)
    (tree / 'toc.dat').write_bytes(b'toc')
    (tree / '3001.dat.gz').write_bytes(b'x' * ((1 << 20) + 5))
    (tree / 'sub' / 'empty').write_bytes(b'')
    total, digest, files = sha256_tree(str(tree))
    assert total == 3 + (1 << 20) + 5
    assert files == {'toc.dat': sha(b'toc'), '3001.dat.gz': sha(b'x' * ((1 << 20) + 5)),
                     os.path.join('sub', 'empty'): sha(b'')}
    manifest = ''.join('%s  %s\n' % (files[k], k) for k in sorted(files))
    assert digest == sha(manifest.encode('utf-8'))
    # a renamed file changes the tree digest even though no content changed
    os.rename(str(tree / 'toc.dat'), str(tree / 'toc2.dat'))
    assert sha256_tree(str(tree))[1] != digest


def test_sha256_tree_of_an_empty_directory(tmp_path):
    assert sha256_tree(str(tmp_path)) == (0, sha(b''), {})


def test_framed_relay_does_not_hang_when_the_consumer_stops_reading(tmp_path):
    """psql stopping on an error in a large dump: the producer must not block on a pipe nobody reads, and the
    consumer's failure is the one reported (not the producer's SIGPIPE)."""
    big = tmp_path / 'big'
    big.write_bytes(b'x' * (8 << 20))
    consumer = Stage('sh', ['sh', '-c', 'head -c 10 >/dev/null; exit 3'])
    with pytest.raises(PgOpsError) as e:
        run_framed([Stage('cat', ['cat'])], consumer, dict(os.environ), 'restore', b'', b'', str(big))
    assert 'sh exit code 3' in e.value.msg and 'cat' not in e.value.msg.split('failed:')[1]


def test_framed_relay_commits_only_a_complete_stream(tmp_path):
    data = tmp_path / 'data'
    data.write_bytes(b'body\n')
    out = tmp_path / 'out'
    consumer = Stage('sh', ['sh', '-c', 'cat > "%s"' % out])
    run_framed([Stage('cat', ['cat'])], consumer, dict(os.environ), 'restore', b'BEGIN;\n', b'COMMIT;\n', str(data))
    assert out.read_bytes() == b'BEGIN;\nbody\nCOMMIT;\n'
    failed_out = tmp_path / 'failed_out'
    consumer = Stage('sh', ['sh', '-c', 'cat > "%s"' % failed_out])
    with pytest.raises(PgOpsError) as e:
        run_framed([Stage('false', ['sh', '-c', 'cat; exit 1'])], consumer, dict(os.environ), 'restore',
                   b'BEGIN;\n', b'COMMIT;\n', str(data))
    assert 'exit code 1' in e.value.msg
    assert not failed_out.exists() or b'COMMIT' not in failed_out.read_bytes()
