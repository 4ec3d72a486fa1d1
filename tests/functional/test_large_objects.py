# -*- coding: utf-8 -*-
"""Large objects and sequence values are data (issue 21, "Large objects are data"): a database that holds only
large objects (or only a schema, a type, an event trigger...) is protected by the production guard and gets its
pre_restore backup; a backup records the count and size of its large objects and the value of every sequence in
the dump's snapshot, and a verified restore compares them: a dump without its large objects, or with a sequence
set back, is the backup's fault, while a sequence that moved forward during the dump is not."""
from __future__ import absolute_import, division, print_function

import hashlib
import json
import os
import subprocess
import sys

import pytest

from conftest import meta_file_of, meta_of, pg_bin, wait_for


def backup(run_module, postgres, dest, db, **kw):
    res = run_module('pg_backup', dict(postgres.conn(), databases=[db], dest=dest, **kw))
    assert not res.get('failed'), res
    return res


def restore(run_module, postgres, dest, **kw):
    return run_module('pg_restore_verified', dict(postgres.conn(), path=dest, **kw))


def rewrite_dump(dest, res, database, write):
    """Replace the dump of backup ``res`` with what ``write(path)`` writes, and make the metadata's size and
    sha256 match it, as a bug or an attacker would: the file check then passes and only the content can tell."""
    path = res['backup_path']
    write(path)
    meta_path, meta = meta_file_of(dest, res['id'], database)
    with open(path, 'rb') as f:
        meta['sha256'] = hashlib.sha256(f.read()).hexdigest()
    meta['size'] = os.path.getsize(path)
    with open(meta_path, 'w') as f:
        json.dump(meta, f)


@pytest.fixture
def db(postgres):
    name = 'lo_%s' % os.urandom(3).hex()
    postgres.create_db(name, seed=False)
    yield name
    for other in postgres.psql('postgres', "SELECT datname FROM pg_database WHERE datname LIKE '%s%%'"
                               % name).split():
        postgres.psql('postgres', 'DROP DATABASE IF EXISTS "%s"' % other)


@pytest.fixture
def user_objects_sql(collection_root):
    sys.path.insert(0, collection_root)
    try:
        from ansible_collections.pgops.postgresql.plugins.module_utils._databases import USER_OBJECTS_SQL
    finally:
        sys.path.remove(collection_root)
    return USER_OBJECTS_SQL


# -- holds_data: the production guard and the pre_restore backup --------------------------------------------
def test_a_database_of_large_objects_is_protected_and_backed_up_before_a_replace(postgres, dest, run_module, db):
    postgres.psql(db, "SELECT lo_from_bytea(0, 'precious document')")
    b = backup(run_module, postgres, dest, db)
    postgres.psql(db, "SELECT lo_from_bytea(0, 'the newer document')")
    res = restore(run_module, postgres, dest, database=db, mode='replace', protected_databases=[db])
    # before: passed, checks.guard '... is protected but empty: nothing to protect'
    assert res.get('failed') and res['failed_step'] == 'guard', res
    assert postgres.psql(db, 'SELECT count(*) FROM pg_largeobject_metadata') == '2'
    res = restore(run_module, postgres, dest, database=db, mode='replace', protected_databases=[db], confirm=True)
    assert not res.get('failed'), res
    # before: checks.pre_restore_backup 'skipped: ... holds nothing of its own'
    assert res['pre_restore_backup']['id'], res
    assert 'pre_restore_backup' not in res['checks'], res['checks']
    assert postgres.psql(db, 'SELECT count(*) FROM pg_largeobject_metadata') == '1'
    pre = meta_of(dest, res['pre_restore_backup']['id'], db)
    assert pre['kind'] == 'pre_restore' and pre['id'] != b['id']


@pytest.mark.parametrize('sql', [
    "SELECT lo_from_bytea(0, 'x')",
    'SELECT lo_create(0)',                                            # an empty large object
    'CREATE SCHEMA app',
    "CREATE TYPE mood AS ENUM ('calm')",
    'CREATE DOMAIN positive AS int CHECK (VALUE > 0)',
    'CREATE TYPE pair AS (a int, b int)',
    'CREATE TYPE span AS RANGE (subtype = int4)',
    # the trigger alone: its function where no user's function is looked for
    "CREATE FUNCTION pg_catalog.pgops_test_et() RETURNS event_trigger LANGUAGE plpgsql AS 'BEGIN END';"
    ' CREATE EVENT TRIGGER et ON ddl_command_start EXECUTE FUNCTION pg_catalog.pgops_test_et()',
    'CREATE COLLATION mine (provider = libc, locale = \'C\')',
    'CREATE TEXT SEARCH CONFIGURATION mine (COPY = simple)',
    'CREATE PUBLICATION pub',
    'CREATE FOREIGN DATA WRAPPER w; CREATE SERVER srv FOREIGN DATA WRAPPER w',
    'ALTER DEFAULT PRIVILEGES GRANT SELECT ON TABLES TO PUBLIC',
], ids=['large object', 'empty large object', 'schema', 'enum', 'domain', 'composite type', 'range type',
        'event trigger', 'collation', 'text search configuration', 'publication', 'foreign server',
        'default privileges'])
def test_holds_data_counts_what_is_data_or_schema(postgres, db, user_objects_sql, sql):
    assert postgres.psql(db, user_objects_sql) == '0'                 # a new database holds nothing
    postgres.psql(db, 'CREATE EXTENSION IF NOT EXISTS amcheck; CREATE EXTENSION IF NOT EXISTS btree_gist')
    assert postgres.psql(db, user_objects_sql) == '0'                 # nor do the objects of extensions
    postgres.psql(db, sql)
    assert postgres.psql(db, user_objects_sql) != '0', sql


# -- large objects verified ---------------------------------------------------------------------------------
LO_SQL = """
SELECT lo_from_bytea(0, 'precious document');
SELECT lo_from_bytea(0, convert_to(repeat('x', 5000), 'UTF8'));     -- more than one 2 kB page
SELECT lo_create(0);                                                 -- an empty one
CREATE TABLE docs (id serial PRIMARY KEY, doc oid);
INSERT INTO docs (doc) SELECT oid FROM pg_largeobject_metadata;
CREATE SEQUENCE down INCREMENT -1 START -1;
SELECT nextval('down'), nextval('down');
CREATE SEQUENCE fresh;
"""


@pytest.mark.parametrize('fmt', ['plain', 'custom'])
def test_large_objects_and_sequences_are_recorded_and_verified(postgres, dest, run_module, db, fmt):
    postgres.psql(db, LO_SQL)
    b = backup(run_module, postgres, dest, db, format=fmt)
    meta = meta_of(dest, b['id'], db)
    assert meta['large_objects'] == dict(count=3, size=len('precious document') + 5000), meta['large_objects']
    assert meta['objects']['large_objects'] == 3
    assert meta['sequence_values'] == {
        'public.docs_id_seq': dict(last_value=3, is_called=True, increment=1, cycle=False),
        'public.down': dict(last_value=-2, is_called=True, increment=-1, cycle=False),
        'public.fresh': dict(last_value=1, is_called=False, increment=1, cycle=False)}, meta['sequence_values']
    res = restore(run_module, postgres, dest, database=db, mode='test')
    assert not res.get('failed'), res
    assert res['checks']['large_objects'] == 'passed (3 large objects, 5017 bytes)', res['checks']
    assert res['checks']['sequences'] == 'passed (3 sequences)', res['checks']


def test_a_dump_without_its_large_objects_fails_verification(postgres, dest, run_module, db):
    postgres.psql(db, LO_SQL)
    b = backup(run_module, postgres, dest, db, compression='none')

    def without_large_objects(path):   # the same database dumped with pg_dump -B (--no-large-objects)
        with open(path, 'wb') as f:
            subprocess.run([pg_bin('pg_dump'), '-Fp', '-B', '-h', '127.0.0.1', '-p',
                            str(postgres.port), '-U', 'postgres', '-d', db], stdout=f, check=True)
    rewrite_dump(dest, b, db, without_large_objects)
    res = restore(run_module, postgres, dest, database=db, mode='test')
    # before: passed (the restore holds docs' 3 rows, whose oids point at nothing)
    assert res.get('failed') and res['verdict'] == 'failed' and res['failed_step'] == 'verify', res
    assert 'large objects differ: 0 restored, the backup says 3' in res['msg'], res['msg']
    assert res['checks']['large_objects'] == 'failed' and res['checks']['row_counts'] == 'passed'


def test_a_dump_with_a_sequence_set_back_fails_verification(postgres, dest, run_module, db):
    postgres.psql(db, "CREATE SEQUENCE invoice_no; SELECT setval('invoice_no', 500)")
    b = backup(run_module, postgres, dest, db, compression='none')

    def set_back(path):
        with open(path) as f:
            text = f.read()
        line = "SELECT pg_catalog.setval('public.invoice_no', 500, true);"
        assert line in text
        with open(path, 'w') as f:
            f.write(text.replace(line, line.replace('500', '5')))
    rewrite_dump(dest, b, db, set_back)
    res = restore(run_module, postgres, dest, database=db, mode='test')
    # before: passed, and the next invoice number would have been 6 again
    assert res.get('failed') and res['verdict'] == 'failed' and res['failed_step'] == 'verify', res
    assert 'public.invoice_no is at 5, the backup says 500' in res['msg'], res['msg']
    assert res['checks']['sequences'] == 'failed'


def test_a_sequence_that_moved_during_the_dump_passes(postgres, dest, run_module, db):
    """pg_dump reads a sequence when it gets to it, later than the snapshot: ahead of the record is fine."""
    postgres.psql(db, 'CREATE TABLE items (id serial PRIMARY KEY); INSERT INTO items DEFAULT VALUES')
    locker = subprocess.Popen([pg_bin('psql'), '-X', '-q', '-h', '127.0.0.1', '-p', str(postgres.port), '-U',
                               'postgres', '-d', db], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                              universal_newlines=True)
    try:
        locker.stdin.write('BEGIN; LOCK TABLE items IN ACCESS EXCLUSIVE MODE;\n')
        locker.stdin.flush()
        wait_for(lambda: postgres.psql(db, "SELECT count(*) FROM pg_locks WHERE mode = 'AccessExclusiveLock' "
                                           "AND relation = 'items'::regclass") == '1')
        proc = run_module.popen('pg_backup', dict(postgres.conn(), databases=[db], dest=dest))
        # pg_dump waits for its lock on items, after the snapshot has read the sequence
        wait_for(lambda: postgres.psql(db, "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                                           "AND query LIKE 'LOCK TABLE%'") == '1')
        postgres.psql(db, "SELECT nextval('items_id_seq'), nextval('items_id_seq')")
        locker.stdin.write('COMMIT;\n')
        locker.stdin.close()
        b = run_module.result(proc)
    finally:
        if not locker.stdin.closed:   # a failed wait: end the locking session, which releases the lock
            locker.stdin.close()
        locker.wait(timeout=30)
    assert not b.get('failed'), b
    assert meta_of(dest, b['id'], db)['sequence_values']['public.items_id_seq']['last_value'] == 1
    res = restore(run_module, postgres, dest, database=db, mode='test')
    assert not res.get('failed'), res
    assert res['checks']['sequences'] == ('passed (1 sequences; moved forward during the dump: '
                                          'public.items_id_seq 1 -> 3)'), res['checks']
