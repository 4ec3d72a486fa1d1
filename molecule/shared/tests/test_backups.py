# -*- coding: utf-8 -*-
"""Proves the backups that converge made: modes, checksums, metadata row counts equal to the source's, and
a real restore of every backup into a scratch database with identical row counts.

PGOPS_TOPOLOGY=native: PostgreSQL runs on the target. PGOPS_TOPOLOGY=container: the target is the Docker host
and PostgreSQL runs in the container PGOPS_PG_CONTAINER (reached with docker exec, no Python in it).
"""
from __future__ import absolute_import, division, print_function

import json
import os
import shlex

import pytest

DEST = '/backups/database'
LOG = '/logs/db-backup.log'
TOPOLOGY = os.environ.get('PGOPS_TOPOLOGY', 'native')
CONTAINER = os.environ.get('PGOPS_PG_CONTAINER', 'postgres-pim-molecule')
WEIRD = u'Ünïcode "db" o\'name'
EXPECTED_FULL = ['pim_dev', 'pim_prod'] + ([WEIRD] if TOPOLOGY == 'native' else [])

COUNT_SQL = ("SELECT coalesce(jsonb_object_agg(format('%s.%s', n.nspname, c.relname), (xpath('/row/c/text()', "
             "query_to_xml(format('SELECT count(*) AS c FROM %I.%I', n.nspname, c.relname), false, true, '')))"
             "[1]::text::bigint), '{}')::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
             "WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema')")


def pg(tool, *args):
    """Shell words running a PostgreSQL tool next to the server (in its container for that topology)."""
    words = ([] if TOPOLOGY == 'native' else ['docker', 'exec', '-i', CONTAINER]) + [tool, '-U', 'pim_user']
    return ' '.join(shlex.quote(w) for w in words + list(args))


def dbarg(name):
    return "dbname='%s'" % name.replace('\\', '\\\\').replace("'", "\\'")


def row_counts(host, database):
    out = host.check_output(pg('psql', '-X', '-A', '-t', '-d', dbarg(database), '-c', COUNT_SQL))
    return json.loads(out)


def meta_counts(meta):
    return dict(('%s.%s' % (t['schema'], t['name']), t['rows']) for t in meta['tables'])


@pytest.fixture(scope='module')
def records(host):
    names = host.check_output('ls -1 %s' % DEST).splitlines()
    entries = []
    for name in names:
        if name.endswith('.meta.json'):
            meta = json.loads(host.file('%s/%s' % (DEST, name)).content_string)
            meta['meta_name'] = name
            entries.append(meta)
    return entries


@pytest.fixture(scope='module')
def catalog(records):
    """The database backups (each run also took the globals, which they link)."""
    return [m for m in records if m['scope'] == 'database']


def test_every_database_backup_links_the_globals_dump_of_its_run(records, catalog):
    globals_ids = dict((m['id'], m) for m in records if m['scope'] == 'globals')
    for meta in catalog:
        linked = globals_ids[meta['globals']['id']]
        assert linked['status'] == 'success' and linked['file'] == meta['globals']['file']
        assert meta['roles']                  # at least the database's owner and the bootstrap superuser


def test_backup_directory_is_private(host):
    d = host.file(DEST)
    assert d.is_directory
    assert d.mode == 0o750
    for name in host.check_output('ls -1 %s' % DEST).splitlines():
        assert host.file('%s/%s' % (DEST, name)).mode == 0o640, name


def test_exactly_the_converge_backups_exist(catalog):
    """check mode ran first and created nothing: only converge's backups are here, all successful."""
    kinds = sorted((m['database'], m['kind']) for m in catalog)
    expected = sorted([(db, 'full') for db in EXPECTED_FULL] + [('pim_dev', 'snapshot'), ('pim_prod', 'pre_deploy')])
    assert kinds == expected
    assert all(m['status'] == 'success' for m in catalog)
    assert [m['label'] for m in catalog if m['kind'] == 'pre_deploy'] == ['pre-deployment']
    assert [m['format'] for m in catalog if m['kind'] == 'snapshot'] == ['custom']
    assert all(m['container'] == (CONTAINER if TOPOLOGY == 'container' else None) for m in catalog)


def test_checksums_match_metadata(host, catalog):
    for meta in catalog:
        path = '%s/%s' % (DEST, meta['file'])
        assert host.file(path).size == meta['size']
        assert host.check_output('sha256sum %s' % shlex.quote(path)).split()[0] == meta['sha256']


def test_formats_are_readable(host, catalog):
    for meta in catalog:
        path = shlex.quote('%s/%s' % (DEST, meta['file']))
        if meta['format'] == 'custom':
            assert host.run(pg('pg_restore', '--list') + ' < ' + path).rc == 0
        elif meta['compression'] == 'zstd':
            assert host.run('zstd -q -t %s' % path).rc == 0
        elif meta['compression'] == 'gzip':
            assert host.run('gzip -t %s' % path).rc == 0


def test_metadata_row_counts_equal_the_source(host, catalog):
    for meta in catalog:
        counts = meta_counts(meta)
        assert counts == row_counts(host, meta['database']), meta['database']
        assert meta['rows_total'] == sum(counts.values())
    pim = [m for m in catalog if m['database'] == 'pim_dev'][0]
    assert meta_counts(pim)['public.products'] == 1500
    if TOPOLOGY == 'native':
        weird = [m for m in catalog if m['database'] == WEIRD][0]
        assert meta_counts(weird) == {'public.MixedCase Items': 321}


def test_every_backup_restores_with_identical_counts(host, catalog):
    for i, meta in enumerate(catalog):
        scratch = 'pgops_scratch_%d' % i
        path = shlex.quote('%s/%s' % (DEST, meta['file']))
        host.run(pg('dropdb', '--if-exists', scratch))
        host.check_output(pg('createdb', scratch))
        if meta['format'] == 'custom':
            cmd = pg('pg_restore', '--exit-on-error', '-d', scratch) + ' < ' + path
        else:
            decompress = {'zstd': 'zstd -dc', 'gzip': 'gzip -dc', 'lz4': 'lz4 -dc', 'none': 'cat'}[meta['compression']]
            cmd = '%s %s | %s' % (decompress, path, pg('psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', scratch))
        result = host.run("bash -o pipefail -c %s" % shlex.quote(cmd))
        assert result.rc == 0, result.stderr
        assert row_counts(host, scratch) == meta_counts(meta), meta['file']
        host.check_output(pg('dropdb', scratch))


def test_log_has_one_success_line_per_backup(host, records):
    log = host.file(LOG).content_string.splitlines()
    assert len([line for line in log if 'completed successfully' in line]) == len(records)
    assert not [line for line in log if 'FAILED' in line]


@pytest.mark.skipif(TOPOLOGY != 'container', reason='only the container topology has a separate server container')
def test_server_container_has_no_python(host):
    assert host.run('docker exec %s sh -c "command -v python3"' % CONTAINER).rc != 0
