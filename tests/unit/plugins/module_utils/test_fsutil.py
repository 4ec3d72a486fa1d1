# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgops.postgresql contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for the file-system helpers, on real files in a temporary directory."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
import multiprocessing
import os
import re
import stat
import subprocess
import time
from contextlib import contextmanager

import pytest
import yaml

from ansible_collections.pgops.postgresql.plugins.module_utils._fsutil import (
    COLLECTION_VERSION, DirLock, PgOpsError, append_log_line, ensure_dir, free_bytes, is_temp_name, pid_alive,
    remove_dead_temp_files, remove_tree, temp_name, temp_writer_pid, unusable_dir_reason, write_file_atomic,
    write_json_atomic,
)

GALAXY_YML = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', '..', '..', 'galaxy.yml')


@contextmanager
def umask(value):
    old = os.umask(value)
    try:
        yield
    finally:
        os.umask(old)


def mode_of(path):
    return stat.S_IMODE(os.stat(str(path)).st_mode)


def test_collection_version_matches_galaxy_yml():
    with open(GALAXY_YML) as f:
        galaxy = yaml.safe_load(f)
    assert COLLECTION_VERSION == galaxy['version']


def test_temp_name_is_hidden_beside_the_final_name():
    tmp = temp_name('/backups/pim_dev_full_20261128_020000.sql.zst')
    assert tmp == '/backups/.pim_dev_full_20261128_020000.sql.zst.tmp-%d' % os.getpid()
    assert is_temp_name(os.path.basename(tmp))
    assert temp_name('relative.meta.json') == '.relative.meta.json.tmp-%d' % os.getpid()
    for name in ('x.meta.json', '.pim_dev.lock', 'x.tmp-12'):
        assert not is_temp_name(name)


@pytest.mark.parametrize('mask', [0o022, 0o077])
def test_write_json_atomic(tmp_path, mask):
    path = tmp_path / 'pim_dev_full_20261128_020000.meta.json'
    record = {'id': '20261128_020000', 'label': u'Übergabe', 'size': 1000, 'database': 'pim_dev'}
    with umask(mask):
        write_json_atomic(str(path), record)
    raw = path.read_bytes()
    assert json.loads(raw.decode('utf-8')) == record
    assert raw.endswith(b'}\n')
    assert u'Übergabe'.encode('utf-8') in raw  # written as UTF-8, not \u escapes
    assert raw.index(b'"database"') < raw.index(b'"id"') < raw.index(b'"label"')  # sorted keys
    assert mode_of(path) == 0o640
    assert os.listdir(str(tmp_path)) == [path.name]


def test_write_file_atomic_replaces_and_keeps_the_old_content_on_failure(tmp_path):
    path = tmp_path / 'data'
    write_file_atomic(str(path), b'first')
    inode = os.stat(str(path)).st_ino
    write_file_atomic(str(path), bytearray(b'second' * 100000), mode=0o600)
    assert path.read_bytes() == b'second' * 100000
    assert mode_of(path) == 0o600
    assert os.stat(str(path)).st_ino != inode  # a new file renamed over the old one
    with pytest.raises(TypeError):
        write_file_atomic(str(path), u'text is not bytes')
    assert path.read_bytes() == b'second' * 100000
    assert os.listdir(str(tmp_path)) == ['data']


def test_write_json_atomic_unserialisable_creates_nothing(tmp_path):
    with pytest.raises(TypeError):
        write_json_atomic(str(tmp_path / 'x.meta.json'), {'bad': object()})
    assert os.listdir(str(tmp_path)) == []


def test_write_file_atomic_into_a_missing_directory_fails(tmp_path):
    with pytest.raises(OSError):
        write_file_atomic(str(tmp_path / 'missing' / 'x'), b'data')
    assert os.listdir(str(tmp_path)) == []


def test_ensure_dir_creates_0750_and_reports_changes(tmp_path):
    path = tmp_path / 'a' / 'b' / 'backups'
    with umask(0o077):
        assert ensure_dir(str(path)) is True
    assert mode_of(path) == 0o750
    assert ensure_dir(str(path)) is False
    os.chmod(str(path), 0o755)
    assert ensure_dir(str(path)) is True
    assert mode_of(path) == 0o750
    assert ensure_dir(str(path), uid=os.getuid(), gid=os.getgid()) is False


def test_ensure_dir_with_another_mode(tmp_path):
    path = tmp_path / 'shared'
    assert ensure_dir(str(path), mode=0o2770) is True
    assert mode_of(path) == 0o2770
    assert ensure_dir(str(path), mode=0o2770) is False


def test_dir_lock_excludes_a_second_holder_and_times_out(tmp_path):
    lock_path = str(tmp_path / '.pim_dev.lock')
    with DirLock(lock_path, 1, 'database pim_dev') as held:
        assert held.fd is not None
        with open(lock_path) as f:
            assert f.read() == '%d\n' % os.getpid()
        started = time.time()
        with pytest.raises(PgOpsError) as err:
            with DirLock(lock_path, 0.3, 'database pim_dev in /b'):
                pytest.fail('a second holder got the lock')
        waited = time.time() - started
        assert 0.3 <= waited < 2
        assert err.value.step == 'lock'
        assert 'database pim_dev in /b' in err.value.msg
        assert 'pid %d' % os.getpid() in err.value.msg
        assert lock_path in err.value.msg
    assert held.fd is None
    # released: the next run gets it at once, and the lock file stays
    with DirLock(lock_path, 0, 'database pim_dev'):
        pass
    assert os.path.exists(lock_path)


def test_dir_lock_released_on_error(tmp_path):
    lock_path = str(tmp_path / '.x.lock')
    with pytest.raises(RuntimeError):
        with DirLock(lock_path, 0, 'x'):
            raise RuntimeError('boom')
    with DirLock(lock_path, 0, 'x'):
        pass


def test_append_log_line(tmp_path):
    log = tmp_path / 'log' / 'sub' / 'pgops.log'
    with umask(0o022):
        append_log_line(str(log), u'2026-11-28 02:00:05 pgops backup of pim_dev completed')
        append_log_line(str(log), u'second line ends once\n')
        append_log_line(str(log), u'Übergabe')
    assert log.read_bytes().decode('utf-8').split('\n') == [
        '2026-11-28 02:00:05 pgops backup of pim_dev completed', 'second line ends once', u'Übergabe', '']
    assert mode_of(log) == 0o640
    assert mode_of(log.parent) == 0o750


def test_free_bytes_of_a_missing_path_is_its_nearest_parent(tmp_path):
    st = os.statvfs(str(tmp_path))
    expected = st.f_bavail * st.f_frsize
    got = free_bytes(str(tmp_path / 'not' / 'yet' / 'there'))
    assert isinstance(got, int) and got > 0
    assert abs(got - expected) < 64 << 20  # other writers may be busy on this file system
    assert abs(free_bytes(str(tmp_path)) - expected) < 64 << 20


def test_remove_tree(tmp_path):
    tree = tmp_path / 'dump.dir'
    (tree / 'sub').mkdir(parents=True)
    (tree / 'sub' / 'f').write_bytes(b'x')
    (tree / 'toc.dat').write_bytes(b'y')
    target = tmp_path / 'target'
    target.mkdir()
    os.symlink(str(target), str(tmp_path / 'link'))
    remove_tree(str(tree))
    remove_tree(str(tmp_path / 'link'))  # the link goes, not what it points to
    remove_tree(str(tmp_path / 'never-existed'))
    assert sorted(os.listdir(str(tmp_path))) == ['target']


def dead_pid():
    proc = subprocess.Popen(['true'])
    proc.wait()
    return proc.pid


@pytest.mark.parametrize('name, pid', [
    ('.pim_dev_full_20261128_020000.sql.zst.tmp-4242', 4242),
    ('.x.meta.json.tmp-1', 1),
    ('.x.tmp-', None),
    ('.x.tmp-12a', None),
    ('x.tmp-12', None),           # not hidden: not a temporary name
    ('.pim_dev.lock', None),
])
def test_temp_writer_pid(name, pid):
    assert temp_writer_pid(name) == pid


def test_temp_writer_pid_of_temp_name():
    assert temp_writer_pid(os.path.basename(temp_name('/b/x.sql.zst'))) == os.getpid()


def test_pid_alive():
    assert pid_alive(os.getpid()) is True
    assert pid_alive(1) is True           # another user's process counts as running
    assert pid_alive(dead_pid()) is False
    assert pid_alive(None) is False and pid_alive(0) is False and pid_alive(-1) is False


def test_remove_dead_temp_files_removes_only_matching_names_of_dead_writers(tmp_path):
    dead = dead_pid()
    mine = re.compile(r'^\.db_')
    names = {
        '.db_full_1.sql.zst.tmp-%d' % dead: True,          # dead writer: removed
        '.db_full_1.meta.json.tmp-%d' % dead: True,
        '.db_full_2.sql.zst.tmp-%d' % os.getpid(): False,  # live writer
        '.db_full_3.sql.zst.tmp-1': False,                 # live writer (init)
        '.other_full_1.sql.zst.tmp-%d' % dead: False,      # does not match
        '.db_full_4.sql.zst.tmp-': False,                  # no pid: not ours to judge
        'db_full_5.sql.zst': False,                        # a backup
        '.db.lock': False,
    }
    for name in names:
        (tmp_path / name).write_bytes(b'x')
    tree = tmp_path / ('.db_full_6.dir.tmp-%d' % dead)
    (tree / 'sub').mkdir(parents=True)
    (tree / 'sub' / 'toc.dat').write_bytes(b'x')
    removed, errors = remove_dead_temp_files(str(tmp_path), mine)
    expected = sorted([n for n, gone in names.items() if gone] + [tree.name])
    assert sorted(removed) == expected and errors == []
    assert sorted(os.listdir(str(tmp_path))) == sorted(n for n, gone in names.items() if not gone)


def test_remove_dead_temp_files_keeps_what_a_process_holds_open(tmp_path):
    dead = dead_pid()
    held_file = tmp_path / ('.db_full_1.sql.tmp-%d' % dead)
    held_tree = tmp_path / ('.db_full_2.dir.tmp-%d' % dead)
    held_tree.mkdir()
    with open(str(held_file), 'wb') as f, open(str(held_tree / '3001.dat'), 'wb') as g:
        f.write(b'x')
        g.write(b'y')       # e.g. pg_dump -Fd still writing for a killed module
        removed, errors = remove_dead_temp_files(str(tmp_path), re.compile('.'))
        assert removed == [] and errors == []
    removed, errors = remove_dead_temp_files(str(tmp_path), re.compile('.'))
    assert sorted(removed) == sorted([held_file.name, held_tree.name]) and os.listdir(str(tmp_path)) == []


def test_remove_dead_temp_files_of_a_missing_directory_reports(tmp_path):
    removed, errors = remove_dead_temp_files(str(tmp_path / 'missing'), re.compile('.'))
    assert removed == [] and len(errors) == 1 and 'cannot list' in errors[0]


def test_unusable_dir_reason(tmp_path):
    blocker = tmp_path / 'file'
    blocker.write_bytes(b'x')
    assert unusable_dir_reason(str(tmp_path)) is None
    assert unusable_dir_reason(str(tmp_path / 'a' / 'b')) is None      # created later, under a writable dir
    assert unusable_dir_reason(str(blocker)) == '%s exists and is not a directory' % blocker
    assert unusable_dir_reason(str(blocker / 'a' / 'b')) == (
        '%s is not a directory, so %s cannot be created under it' % (blocker, blocker / 'a' / 'b'))
    os.symlink(str(tmp_path / 'nowhere'), str(tmp_path / 'dangling'))
    assert 'exists and is not a directory' in unusable_dir_reason(str(tmp_path / 'dangling'))
    assert unusable_dir_reason('/proc/1/no-such-dir') is not None


@pytest.mark.skipif(os.geteuid() == 0, reason='root writes through permission bits')
def test_unusable_dir_reason_not_writable(tmp_path):
    locked = tmp_path / 'locked'
    locked.mkdir(mode=0o500)
    try:
        assert unusable_dir_reason(str(locked / 'backups')) == '%s is not writable by uid %d' % (locked, os.geteuid())
    finally:
        os.chmod(str(locked), 0o700)


def _ensure(path):
    ensure_dir(path)


def test_ensure_dir_when_concurrent_runs_create_it(tmp_path):
    # the first backup of several databases at once: every run creates dest; none may fail because another won
    for i in range(30):
        path = str(tmp_path / str(i) / 'backups')
        procs = [multiprocessing.Process(target=_ensure, args=(path,)) for dummy in range(6)]
        for p in procs:
            p.start()
        for p in procs:
            p.join()
        assert [p.exitcode for p in procs] == [0] * 6
        assert mode_of(path) == 0o750
