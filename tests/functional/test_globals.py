# -*- coding: utf-8 -*-
"""Roles travel with the backups: pg_backup takes the globals with every database backup and links them from its
metadata, with the roles the database needs; a restore onto a blank server (a new cluster) creates the roles it
lacks from that dump - never altering one that exists - and refuses, naming them, when no dump is at hand."""
from __future__ import absolute_import, division, print_function

import json
import os

import pytest

from conftest import cluster, meta_of

ROLES_SEED = '''
CREATE ROLE reader;
CREATE ROLE owner_role;
CREATE ROLE "Odd ""Role""" LOGIN CONNECTION LIMIT 7;
CREATE ROLE app_group;
GRANT app_group TO reader;
CREATE ROLE power SUPERUSER;
COMMENT ON ROLE reader IS 'reads; everything';
'''

OBJECTS = '''
CREATE TABLE items (id serial PRIMARY KEY, name text);
INSERT INTO items (name) SELECT 'item ' || g FROM generate_series(1, 50) g;
GRANT SELECT ON items TO reader;
ALTER TABLE items OWNER TO owner_role;
CREATE TABLE notes (body text);
ALTER TABLE notes OWNER TO "Odd ""Role""";
CREATE TABLE admin_only (x int);
ALTER TABLE admin_only OWNER TO power;
'''


def roles_of(pg):
    return set(pg.psql('postgres', 'SELECT rolname FROM pg_roles').splitlines())


@pytest.fixture(scope='module')
def source():
    """A server whose database 'shop' has objects owned by and granted to roles of its own."""
    with cluster() as pg:
        pg.psql('postgres', ROLES_SEED)
        pg.psql('postgres', 'CREATE DATABASE shop')
        pg.psql('shop', OBJECTS)
        yield pg


@pytest.fixture
def blank():
    """A new server: none of the source's roles."""
    with cluster() as pg:
        yield pg


@pytest.fixture
def backup(source, dest, run_module):
    # the blank server stands for the same server rebuilt (a disaster recovery): it keeps the name
    res = run_module('pg_backup', dict(source.conn(), databases=['shop'], dest=dest, server='shop-server'))
    assert not res.get('failed'), res
    return res


def restore(run_module, pg, dest, check_mode=False, **kw):
    args = dict(pg.conn(), path=dest, database='shop', server='shop-server')
    args.update(kw)
    return run_module('pg_restore_verified', args, check_mode=check_mode)


def test_every_database_backup_links_the_globals_of_its_run(backup, dest):
    scopes = [b['scope'] for b in backup['backups']]
    assert scopes == ['database', 'globals']                   # by default; taken first, listed last
    db, glob = backup['backups']
    meta = meta_of(dest, db['id'], 'shop')
    assert meta_of(dest, glob['id'], '@globals')['finished_at'] <= meta['started_at']
    assert meta['globals'] == dict(id=glob['id'], file=glob['file'], sha256=glob['sha256'])
    assert {'reader', 'owner_role', 'Odd "Role"', 'power', 'postgres'} <= set(meta['roles'])
    assert 'app_group' not in meta['roles']                   # needed only through reader's membership
    assert meta_of(dest, glob['id'], '@globals')['role_passwords'] is False


def test_globals_false_takes_none_and_links_none(source, dest, run_module):
    res = run_module('pg_backup', dict(source.conn(), databases=['shop'], dest=dest, globals=False,
                                       server='shop-server'))
    assert not res.get('failed'), res
    assert [b['scope'] for b in res['backups']] == ['database']
    assert meta_of(dest, res['id'], 'shop')['globals'] is None


def test_restore_onto_a_blank_server_creates_the_missing_roles(blank, backup, dest, run_module):
    blank.psql('postgres', "CREATE ROLE reader CONNECTION LIMIT 3")   # exists: must stay as it is
    before = blank.psql('postgres', "SELECT rolconnlimit, rolcanlogin FROM pg_roles WHERE rolname = 'reader'")
    plan = restore(run_module, blank, dest, mode='new', target='shop', check_mode=True)
    assert not plan.get('failed'), plan
    assert plan['roles_to_create'] == ['Odd "Role"', 'owner_role', 'power']
    assert any(s.startswith('create roles Odd "Role", owner_role, power from globals dump') for s in plan['plan'])
    assert 'owner_role' not in roles_of(blank)                 # check mode created nothing

    res = restore(run_module, blank, dest, mode='new', target='shop')
    assert not res.get('failed'), res
    assert res['roles_created'] == ['Odd "Role"', 'owner_role', 'power']
    assert blank.psql('shop', "SELECT pg_get_userbyid(relowner) FROM pg_class WHERE relname = 'items'") == 'owner_role'
    assert blank.psql('shop', "SELECT has_table_privilege('reader', 'items', 'SELECT')") == 't'
    assert blank.psql('shop', 'SELECT count(*) FROM items') == '50'
    assert blank.psql('postgres', "SELECT rolconnlimit, rolcanlogin FROM pg_roles WHERE rolname = 'reader'") == before
    # the role with a quoted name came with its attributes; the superuser came without SUPERUSER
    assert blank.psql('postgres', """SELECT rolcanlogin, rolconnlimit FROM pg_roles WHERE rolname = 'Odd "Role"'""") \
        == 't|7'
    assert blank.psql('postgres', "SELECT rolsuper FROM pg_roles WHERE rolname = 'power'") == 'f'
    assert 'role power is created without SUPERUSER' in json.dumps(res.get('warnings')), res.get('warnings')
    # the app_group membership of the existing reader was not given: reader is never altered
    assert 'app_group' not in roles_of(blank)
    with open(res['audit_log']) as f:
        audit = json.loads(f.read().splitlines()[-1])
    assert audit['roles_created'] == ['Odd "Role"', 'owner_role', 'power']


def test_a_drill_never_creates_roles_on_its_server(blank, backup, dest, run_module):
    res = restore(run_module, blank, dest, mode='test', instance='server')     # a same-server drill
    assert res.get('failed') and res['failed_step'] == 'roles' and res['verdict'] == 'inconclusive', res
    assert 'owner_role' in res['msg'] and 'mode=new' in res['msg']
    assert 'owner_role' not in roles_of(blank)


def test_without_its_globals_dump_the_missing_roles_are_named(blank, backup, dest, run_module):
    glob = backup['backups'][1]
    os.unlink(os.path.join(dest, glob['file']))
    os.unlink(os.path.join(dest, glob['file'].split('.sql')[0] + '.meta.json'))
    res = restore(run_module, blank, dest, mode='new', target='shop')
    assert res.get('failed') and res['failed_step'] == 'roles', res
    assert 'Odd "Role", owner_role, power, reader' in res['msg'] and glob['id'] in res['msg']
    assert 'shop' not in blank.psql('postgres', 'SELECT datname FROM pg_database').split()
    assert 'owner_role' not in roles_of(blank)


def test_a_restore_that_fails_after_creating_roles_drops_them(blank, backup, dest, run_module):
    res = restore(run_module, blank, dest, mode='new', target='shop', assertions=['SELECT false'])
    assert res.get('failed') and res['failed_step'] == 'verify', res
    # reader's group came with it (a role is created with its memberships) and went with it
    assert res['roles_dropped'] == ['Odd "Role"', 'app_group', 'owner_role', 'power', 'reader']
    assert not {'reader', 'owner_role', 'power', 'app_group'} & roles_of(blank)


def test_disaster_recovery_replace_on_a_blank_server_brings_roles_with_their_memberships(blank, backup, dest,
                                                                                         run_module):
    res = restore(run_module, blank, dest, mode='replace', protected_databases=['shop'])
    assert not res.get('failed'), res
    assert res['roles_created'] == ['Odd "Role"', 'app_group', 'owner_role', 'power', 'reader']
    assert blank.psql('postgres', "SELECT pg_has_role('reader', 'app_group', 'MEMBER')") == 't'
    assert blank.psql('postgres', "SELECT shobj_description(oid, 'pg_authid') FROM pg_roles "
                                  "WHERE rolname = 'reader'") == 'reads; everything'
    assert blank.psql('shop', "SELECT has_table_privilege('reader', 'items', 'SELECT')") == 't'
