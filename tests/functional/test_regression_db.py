# -*- coding: utf-8 -*-
"""PostgreSQL's own regression database through pg_backup and pg_restore_verified.

scripts/regression-db.sh runs the server's regression suite (pg_regress, parallel schedule) on the test cluster
and leaves the database ``regression`` behind: some 500 tables with inheritance and partitions, every index
access method, rules, policies, types, domains, C and SQL functions, large objects. It is backed up plain and
custom, verified with mode test and amcheck, and restored with mode new; the restored database must have
exactly the source's rows and objects. The source package and the libraries built from it are kept in
.cache/pg-regress: the first run downloads and configures (about a minute more), later runs only run the suite.
"""
from __future__ import absolute_import, division, print_function

import json
import os
import shutil
import subprocess
import time

import pytest

from conftest import REPO, meta_of, only_counts

SCRIPT = os.path.join(REPO, 'scripts', 'regression-db.sh')
DB = 'regression'


def databases(postgres):
    return set(postgres.psql('postgres', 'SELECT datname FROM pg_database').split())


def inheritance_parents(postgres, database):
    out = postgres.psql(database, """
        SELECT DISTINCT format('%s.%s', n.nspname, c.relname) FROM pg_inherits i
        JOIN pg_class c ON c.oid = i.inhparent JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind = 'r'""")
    return set(out.splitlines())


def btree_indexes(postgres, database):
    return int(postgres.psql(database, r"""
        SELECT count(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
        JOIN pg_am am ON am.oid = c.relam JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE am.amname = 'btree' AND c.relkind = 'i' AND i.indisvalid AND i.indisready
          AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\_toast%'
          AND n.nspname NOT LIKE 'pg\_temp%'"""))


# what the database is made of, as counts per catalog: equal in a faithful restore
SHAPE_SQL = r"""
WITH nsp AS (SELECT oid FROM pg_namespace WHERE nspname NOT IN ('pg_catalog', 'information_schema')
               AND nspname NOT LIKE 'pg\_toast%' AND nspname NOT LIKE 'pg\_temp%')
SELECT json_build_object(
  'relkinds', (SELECT json_object_agg(k, n) FROM (SELECT relkind AS k, count(*) AS n FROM pg_class
               WHERE relnamespace IN (SELECT oid FROM nsp) GROUP BY relkind) s),
  'functions', (SELECT count(*) FROM pg_proc WHERE pronamespace IN (SELECT oid FROM nsp)),
  'types', (SELECT count(*) FROM pg_type WHERE typnamespace IN (SELECT oid FROM nsp)),
  'constraints', (SELECT count(*) FROM pg_constraint WHERE connamespace IN (SELECT oid FROM nsp)),
  'triggers', (SELECT count(*) FROM pg_trigger WHERE NOT tgisinternal),
  'rules', (SELECT count(*) FROM pg_rewrite r JOIN pg_class c ON c.oid = r.ev_class
            WHERE c.relnamespace IN (SELECT oid FROM nsp)),
  'policies', (SELECT count(*) FROM pg_policy),
  'large_objects', (SELECT count(*) FROM pg_largeobject_metadata),
  'schemas', (SELECT count(*) FROM nsp))::text
"""


@pytest.fixture(scope='module')
def regression(postgres):
    """The regression database on the test cluster, built once for this module and dropped after it."""
    missing = [tool for tool in ('gcc', 'make', 'perl', 'tar') if not shutil.which(tool)]
    assert not missing, 'scripts/regression-db.sh needs %s on this host' % ', '.join(missing)
    t0 = time.time()
    proc = subprocess.run([SCRIPT, '-h', '127.0.0.1', '-p', str(postgres.port), '-U', postgres.user, '-d', DB],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True, check=False)
    assert proc.returncode == 0, proc.stdout[-4000:]
    print('regression database built in %.0fs: %s' % (time.time() - t0, proc.stdout.strip().splitlines()[-1]))
    yield DB
    for db in sorted(databases(postgres)):
        if db == DB or db.startswith(DB + '_'):
            postgres.psql('postgres', 'DROP DATABASE IF EXISTS "%s"' % db)


def test_the_regression_database_is_the_full_one(postgres, regression):
    shape = json.loads(postgres.psql(regression, SHAPE_SQL))
    assert shape['relkinds']['r'] > 400 and shape['relkinds']['p'] > 50 and shape['relkinds']['I'] > 10
    assert shape['relkinds']['m'] > 0 and shape['relkinds']['v'] > 20 and shape['relkinds']['S'] > 20
    assert shape['functions'] > 200 and shape['rules'] > 20 and shape['policies'] > 0
    assert inheritance_parents(postgres, regression)
    # the C functions of regress.so were created (the library was built and loaded)
    assert int(postgres.psql(regression, "SELECT count(*) FROM pg_proc WHERE probin LIKE '%/regress.so'")) > 0


@pytest.mark.parametrize('fmt', ['plain', 'custom'])
def test_backup_and_drill_with_amcheck(postgres, dest, run_module, regression, fmt):
    real = only_counts(postgres, regression)
    b = run_module('pg_backup', dict(postgres.conn(), databases=[regression], dest=dest, format=fmt))
    assert not b.get('failed'), b.get('msg')
    meta = meta_of(dest, b['id'], regression)
    recorded = dict(('%s.%s' % (t['schema'], t['name']), t['rows']) for t in meta['tables'])
    assert set(recorded) == set(real)
    # exact per table; an inheritance parent's count is its own rows (FROM ONLY)
    assert recorded == real

    before = databases(postgres)
    res = run_module('pg_restore_verified', dict(postgres.conn(), path=dest, database=regression,
                                                 backup_id=b['id'], mode='test', amcheck=True))
    assert not res.get('failed'), res.get('msg')
    assert res['result'] == 'passed'
    checks = res['checks']
    assert checks['sha256'] == checks['format'] == checks['row_counts'] == checks['objects'] == 'passed'
    assert checks['amcheck'] == 'passed (%d B-tree indexes)' % btree_indexes(postgres, regression)
    assert checks['tables_verified'] == len(real)
    assert checks['rows_verified'] == meta['rows_total']
    assert databases(postgres) == before
    assert meta_of(dest, b['id'], regression)['verifications'][-1]['result'] == 'passed'


def test_new_mode_restores_every_row_and_object(postgres, dest, run_module, regression):
    b = run_module('pg_backup', dict(postgres.conn(), databases=[regression], dest=dest, format='custom'))
    assert not b.get('failed'), b.get('msg')
    target = regression + '_restored'
    res = run_module('pg_restore_verified', dict(postgres.conn(), path=dest, database=regression, backup_id=b['id'],
                                                 mode='new', target=target))
    assert not res.get('failed'), res.get('msg')
    assert res['result'] == 'passed' and res['checks']['row_counts'] == res['checks']['objects'] == 'passed'
    assert target in databases(postgres)
    assert only_counts(postgres, target) == only_counts(postgres, regression)
    assert json.loads(postgres.psql(target, SHAPE_SQL)) == json.loads(postgres.psql(regression, SHAPE_SQL))
