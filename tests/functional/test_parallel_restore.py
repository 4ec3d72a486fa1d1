# -*- coding: utf-8 -*-
"""format: auto and parallel verified restores (issue 13): custom with zstd inside on pg_dump 16+, plain below;
pg_restore -j in a container when its bind mount shows the backup file, one job reading stdin when it does not."""
from __future__ import absolute_import, division, print_function

import os
import shutil
import subprocess
import tempfile

import pytest

from conftest import free_port, image, seeded_container

NAME = 'pgops-functional-par-%d' % os.getpid()


@pytest.fixture(scope='module')
def pg17():
    """PostgreSQL 17 in a container whose /backups is a bind mount of a host directory."""
    mounted = tempfile.mkdtemp(prefix='pgops-par-')
    try:
        with seeded_container(NAME, image(17), ['--network', 'host', '-e', 'POSTGRES_HOST_AUTH_METHOD=trust',
                                                '-e', 'PGPORT=%d' % free_port(), '-v', '%s:/backups' % mounted]):
            yield dict(name=NAME, mounted=mounted)
    finally:
        shutil.rmtree(mounted, ignore_errors=True)


def test_auto_is_custom_with_zstd_on_17_and_restores_with_jobs_through_the_mount(pg17, run_module, tmp_path):
    dest = os.path.join(pg17['mounted'], 'database')
    conn = dict(container=pg17['name'], login_user='pim_user')
    res = run_module('pg_backup', dict(conn, databases=['pim_dev'], dest=dest))
    assert not res.get('failed'), res
    meta = res['backups'][0]
    assert (meta['format'], meta['compression'], meta['compressed_by']) == ('custom', 'zstd', 'pg_dump'), meta
    assert meta['file'].endswith('.dump')
    drill = run_module('pg_restore_verified', dict(conn, path=dest, database='pim_dev', mode='test', jobs=2,
                                                   instance='server'))
    assert not drill.get('failed'), drill
    assert drill['checks']['restore_method'] == 'pg_restore -j 2 in the container (/backups/database/%s)' \
        % meta['file'], drill['checks']
    assert drill['checks']['row_counts'] == drill['checks']['sha256'] == 'passed'

    # the same backup where the container cannot see it: one job reading stdin, verified all the same
    elsewhere = str(tmp_path / 'copy')
    shutil.copytree(dest, elsewhere)
    drill = run_module('pg_restore_verified', dict(conn, path=elsewhere, database='pim_dev', mode='test', jobs=2,
                                                   instance='server'))
    assert not drill.get('failed'), drill
    assert drill['checks']['restore_method'] == 'pg_restore reading stdin, one transaction', drill['checks']

    # mounted but not readable by the exec user (postgres, the file 0600 root's): not used, one job on stdin
    dump = os.path.join(dest, meta['file'])
    os.chmod(dump, 0o600)
    try:
        drill = run_module('pg_restore_verified', dict(conn, container_user='postgres', path=dest,
                                                       database='pim_dev', mode='test', jobs=2,
                                                       instance='server'))
    finally:
        os.chmod(dump, 0o640)
    assert not drill.get('failed'), drill
    assert drill['checks']['restore_method'] == 'pg_restore reading stdin, one transaction', drill['checks']

    # encrypted backups stay plain SQL (an encrypted archive restores with one job anyway)
    key = subprocess.run(['age-keygen'], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, check=True,
                         universal_newlines=True).stdout
    recipient = [line.split(': ')[1] for line in key.splitlines() if line.startswith('# public key: ')][0]
    enc = run_module('pg_backup', dict(conn, databases=['pim_dev'], dest=str(tmp_path / 'enc'),
                                       encrypt_recipients=[recipient]))
    assert not enc.get('failed'), enc
    assert enc['backups'][0]['format'] == 'plain' and enc['backups'][0]['file'].endswith('.sql.zst.age')


def test_auto_is_plain_with_pg_dump_15(postgres, dest, run_module):
    postgres.create_db('auto15')
    res = run_module('pg_backup', dict(postgres.conn(), databases=['auto15'], dest=dest))
    assert not res.get('failed'), res
    meta = res['backups'][0]
    assert (meta['format'], meta['compression'], meta['compressed_by']) == ('plain', 'zstd', 'external'), meta
    assert meta['pg_dump_version'].split()[-1].startswith('15.')
