# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgops.postgresql contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for the output a backup writes (_dump.DumpOutput): the pipeline stages and their argv for every
format and compression, pg_dump's -Z value by version, the age recipients file, the file suffix and metadata.
The compressors and age are the real programs: a pipeline they end is run, and what it wrote is read back."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import hashlib
import os
import shutil
import stat
import subprocess

import pytest

from ansible_collections.pgops.postgresql.plugins.module_utils._connection import PgTarget
from ansible_collections.pgops.postgresql.plugins.module_utils._dump import AGE_SUFFIX, DumpOutput, _dump_directory
from ansible_collections.pgops.postgresql.plugins.module_utils._errors import PgOpsError
from ansible_collections.pgops.postgresql.plugins.module_utils._pipeline import Stage, run_to_file
from ansible_collections.pgops.postgresql.plugins.module_utils._steps import OPTIONS

TOOLS = ('zstd', 'gzip', 'pigz', 'lz4', 'age', 'cat', 'docker', 'pg_dump')


class MissingTool(Exception):
    """Where AnsibleModule.get_bin_path(required=True) would fail the module."""


class Host(object):
    """What DumpOutput and PgTarget use of AnsibleModule: get_bin_path over one directory of programs (links to
    the real ones, so a test decides which are installed), tmpdir and no_log_values."""

    def __init__(self, bindir, tmpdir):
        self.bindir = str(bindir)
        self.tmpdir = str(tmpdir)
        self.no_log_values = set()

    def get_bin_path(self, name, required=False):
        path = os.path.join(self.bindir, name)
        if os.access(path, os.X_OK):
            return path
        if required:
            raise MissingTool(name)
        return None


def host_with(tmp_path, tools=TOOLS):
    bindir = tmp_path / 'bin'
    bindir.mkdir()
    for name in tools:
        real = shutil.which(name)
        if real:
            os.symlink(real, str(bindir / name))
    tmpdir = tmp_path / 'moduletmp'
    tmpdir.mkdir()
    return Host(bindir, tmpdir)


@pytest.fixture
def host(tmp_path):
    for name in ('zstd', 'gzip', 'lz4', 'age', 'age-keygen', 'pg_dump', 'docker'):
        if not shutil.which(name):   # make test installs them (scripts/host-packages.sh): never skipped
            pytest.fail('%s is not installed: run scripts/host-packages.sh' % name)
    return host_with(tmp_path)


@pytest.fixture
def identity(tmp_path):
    """An age identity file and its public key."""
    path = str(tmp_path / 'identity.txt')
    subprocess.run(['age-keygen', '-o', path], check=True, stderr=subprocess.DEVNULL)
    public = subprocess.run(['age-keygen', '-y', path], check=True, stdout=subprocess.PIPE,
                            universal_newlines=True).stdout.strip()
    return path, public


def native(host, **params):
    return PgTarget(host, dict(dict(login_user='backup', login_host='db.example', login_port=5433), **params))


DECOMPRESS = {'zstd': ['zstd', '-dc'], 'gzip': ['gzip', '-dc'], 'lz4': ['lz4', '-dc']}


# -- compression ----------------------------------------------------------------------------------------------

def test_no_compression_has_no_compressor_stage(host):
    assert DumpOutput(host, 'plain', 'none', 0, []).compressor() is None


@pytest.mark.parametrize('compression, level, argv', [
    ('zstd', 7, ['zstd', '-q', '-c', '-T0', '-7']),
    ('gzip', 4, ['pigz', '-c', '-4']),
    ('lz4', 1, ['lz4', '-q', '-c', '-1']),
])
def test_compressor_argv_names_the_level(host, compression, level, argv):
    if compression == 'gzip' and not shutil.which('pigz'):
        argv = ['gzip'] + argv[1:]
    stage = DumpOutput(host, 'plain', compression, level, []).compressor()
    assert stage.name == argv[0]
    assert stage.argv == [os.path.join(host.bindir, argv[0])] + argv[1:]


def test_gzip_falls_back_to_gzip_without_pigz(tmp_path):
    host = host_with(tmp_path, tools=('gzip',))
    stage = DumpOutput(host, 'plain', 'gzip', 9, []).compressor()
    assert (stage.name, stage.argv) == ('gzip', [os.path.join(host.bindir, 'gzip'), '-c', '-9'])


@pytest.mark.parametrize('compression', ['zstd', 'lz4', 'gzip'])
def test_a_missing_compressor_is_required(tmp_path, compression):
    host = host_with(tmp_path, tools=())
    with pytest.raises(MissingTool) as e:
        DumpOutput(host, 'plain', compression, 3, []).compressor()
    assert str(e.value) == ('gzip' if compression == 'gzip' else compression)


@pytest.mark.parametrize('compression, level, dump_major, expected', [
    ('none', 0, 17, ('0', 'none', 0)),
    ('none', 0, 12, ('0', 'none', 0)),
    ('gzip', 5, 15, ('5', 'gzip', 5)),
    ('gzip', 5, 16, ('gzip:5', 'gzip', 5)),
    ('zstd', 3, 16, ('zstd:3', 'zstd', 3)),
    ('lz4', 1, 17, ('lz4:1', 'lz4', 1)),
])
def test_pg_dump_z_value_by_version(host, compression, level, dump_major, expected):
    warnings = []
    assert DumpOutput(host, 'custom', compression, level, []).internal_compress(dump_major, warnings) == expected
    assert warnings == []


@pytest.mark.parametrize('compression', ['zstd', 'lz4'])
def test_zstd_and_lz4_inside_the_dump_need_pg_dump_16_and_fall_back_to_gzip_6(host, compression):
    warnings = []
    out = DumpOutput(host, 'directory', compression, 19, []).internal_compress(15, warnings)
    assert out == ('6', 'gzip', 6)                 # not the level asked for zstd: gzip's default
    [w] = warnings
    assert w.startswith('compression=%s inside the directory format needs pg_dump 16 or newer (this is 15)'
                        % compression) and w.endswith('used gzip level 6 instead')


# -- stages ---------------------------------------------------------------------------------------------------

def test_plain_dump_is_pg_dump_then_compressor_then_age(host, identity):
    output = DumpOutput(host, 'plain', 'zstd', 3, [identity[1]])
    stages = output.stages(native(host), ['-d', 'shop'], '0')
    assert [s.name for s in stages] == ['pg_dump', 'zstd', 'age']
    assert stages[0].argv == [os.path.join(host.bindir, 'pg_dump'), '-h', 'db.example', '-p', '5433', '-U',
                              'backup', '-Fp', '-d', 'shop']
    assert stages[2].argv[1:3] == ['--encrypt', '-R']


def test_plain_dump_without_compression_or_recipients_is_pg_dump_alone(host):
    stages = DumpOutput(host, 'plain', 'none', 0, []).stages(native(host), ['-d', 'shop'], '0')
    assert [s.name for s in stages] == ['pg_dump']
    assert stages[0].argv[-3:] == ['-Fp', '-d', 'shop']


@pytest.mark.parametrize('pg_dump_z', ['zstd:3', '6', '0'])
def test_custom_dump_compresses_inside_pg_dump_never_outside(host, pg_dump_z):
    stages = DumpOutput(host, 'custom', 'zstd', 3, []).stages(native(host), ['-d', 'shop'], pg_dump_z)
    assert [s.name for s in stages] == ['pg_dump']
    assert stages[0].argv[-5:] == ['-Fc', '-Z', pg_dump_z, '-d', 'shop']


def test_in_a_container_pg_dump_runs_through_docker_exec(host):
    target = PgTarget(host, dict(container='pg15', login_user='backup', login_password='pw'))
    stages = DumpOutput(host, 'custom', 'gzip', 6, []).stages(target, ['-w'], '6')
    argv = stages[0].argv
    assert argv[:2] == [os.path.join(host.bindir, 'docker'), 'exec'] and 'pg15' in argv
    assert argv[argv.index('pg15') + 1] == 'pg_dump'          # the container's own pg_dump
    assert 'pw' not in argv and argv[argv.index('PGPASSWORD') - 1] == '-e'   # the name, never the value


def test_with_format_is_a_copy(host):
    auto = DumpOutput(host, 'auto', 'zstd', 3, ['age1x'], jobs=4)
    plain = auto.with_format('plain')
    assert (auto.format, plain.format) == ('auto', 'plain')
    assert (plain.compression, plain.level, plain.recipients, plain.jobs) == ('zstd', 3, ['age1x'], 4)


def test_jobs_default_to_one(host):
    assert DumpOutput(host, 'directory', 'zstd', 3, None, jobs=None).jobs == 1
    assert DumpOutput(host, 'directory', 'zstd', 3, None).recipients == []


def test_directory_format_is_refused_in_a_container(host, tmp_path):
    target = PgTarget(host, dict(container='pg15', login_user='backup'))
    output = DumpOutput(host, 'directory', 'zstd', 3, [])
    with pytest.raises(PgOpsError) as e:
        _dump_directory(target, output, ['-d', 'shop'], str(tmp_path / 'x.dir'), 'zstd:3', {}, -1, -1)
    assert e.value.step == OPTIONS
    assert 'format=directory' in e.value.msg and 'format=custom' in e.value.msg
    assert not os.path.exists(str(tmp_path / 'x.dir'))


# -- encryption -----------------------------------------------------------------------------------------------

def test_no_recipients_no_encryption(host):
    output = DumpOutput(host, 'plain', 'zstd', 3, [])
    assert output.encryptor() is None
    assert output.encryption_meta() == dict(encrypted=False)
    assert output.suffix('plain', 'zstd') == '.sql.zst'
    assert os.listdir(host.tmpdir) == []


def test_recipients_go_to_a_0600_file_in_the_module_tmpdir_once(host):
    keys = ['age1aaaa', 'age1bbbb']
    output = DumpOutput(host, 'custom', 'zstd', 3, keys)
    first = output.encryptor()
    second = output.encryptor()
    path = first.argv[-1]
    assert first.argv == [os.path.join(host.bindir, 'age'), '--encrypt', '-R', path] == second.argv
    assert os.path.dirname(path) == host.tmpdir and os.listdir(host.tmpdir) == [os.path.basename(path)]
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    with open(path) as f:
        assert f.read() == 'age1aaaa\nage1bbbb\n'
    assert not any(k in first.argv for k in keys)         # argv stays short: the keys are in the file
    assert output.encryption_meta() == dict(encrypted=True, encryption=dict(tool='age', recipients=keys))
    keys.append('age1cccc')                                # the output keeps its own copy
    assert output.encryption_meta()['encryption']['recipients'] == ['age1aaaa', 'age1bbbb']


@pytest.mark.parametrize('fmt, compression, suffix', [
    ('plain', 'zstd', '.sql.zst'),
    ('plain', 'gzip', '.sql.gz'),
    ('plain', 'lz4', '.sql.lz4'),
    ('plain', 'none', '.sql'),
    ('custom', 'zstd', '.dump'),
    ('directory', 'gzip', '.dir'),
])
def test_suffix_ends_in_age_when_encrypted(host, fmt, compression, suffix):
    assert DumpOutput(host, fmt, compression, 3, []).suffix(fmt, compression) == suffix
    assert DumpOutput(host, fmt, compression, 3, ['age1x']).suffix(fmt, compression) == suffix + AGE_SUFFIX


# -- the stages run: what they write reads back -----------------------------------------------------------------

@pytest.mark.parametrize('compression', ['zstd', 'gzip', 'lz4', 'none'])
def test_compressed_encrypted_pipeline_reads_back_to_the_input(host, identity, tmp_path, compression):
    data = b''.join(b'INSERT INTO t VALUES (%d, \'row %d\');\n' % (i, i) for i in range(20000))
    src = tmp_path / 'dump.sql'
    src.write_bytes(data)
    output = DumpOutput(host, 'plain', compression, 3, [identity[1]])
    stages = [Stage('pg_dump', [os.path.join(host.bindir, 'cat'), str(src)])]   # stands in for pg_dump's stdout
    comp = output.compressor()
    if comp:
        stages.append(comp)
    stages.append(output.encryptor())
    path = str(tmp_path / ('shop' + output.suffix('plain', compression)))
    size, digest = run_to_file(stages, path, dict(os.environ))
    with open(path, 'rb') as f:
        written = f.read()
    assert (size, digest) == (len(written), hashlib.sha256(written).hexdigest())
    assert written.startswith(b'age-encryption.org/v1')
    clear = subprocess.run(['age', '-d', '-i', identity[0], path], check=True, stdout=subprocess.PIPE).stdout
    if compression != 'none':
        assert len(clear) < len(data)
        clear = subprocess.run(DECOMPRESS[compression], input=clear, check=True, stdout=subprocess.PIPE).stdout
    assert clear == data
