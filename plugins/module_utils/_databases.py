# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgops.postgresql contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# PRIVATE to the collection: this is not a public API and may change without notice.
"""What the jobs ask of and do to whole databases, in one place: list them, end their sessions and drop one, the
database-level settings a dump leaves out, and the objects (with exact row counts) a backup records and a restore
verifies."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible_collections.pgops.postgresql.plugins.module_utils._connection import quote_ident, quote_literal

# every database (templates too); ``connectable`` only: the ones a backup or a collector can connect to
_LIST_SQL = """
SELECT coalesce(jsonb_agg(%s ORDER BY datname), '[]')::text FROM pg_database%s
"""
_CONNECTABLE = ' WHERE datallowconn AND NOT datistemplate'
_WITH_COMMENT = "jsonb_build_object('name', datname, 'comment', shobj_description(oid, 'pg_database'))"


def list_databases(session, connectable=False, prefix=None):
    """Names of the databases on the server (sorted); ``connectable``: not templates and accepting connections;
    ``prefix``: only the names that start with it."""
    names = session.query_json(_LIST_SQL % ('datname', _CONNECTABLE if connectable else '')) or []
    return [n for n in names if prefix is None or n.startswith(prefix)]


def list_databases_with_comments(session):
    """Every database as ``{'name', 'comment'}`` (sorted by name): a scratch database is known by its comment."""
    return session.query_json(_LIST_SQL % (_WITH_COMMENT, '')) or []


def end_sessions(session, name):
    """Terminate every other session on database ``name``; returns how many were ended."""
    out = session.query("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = %s "
                        "AND pid <> pg_backend_pid()" % quote_literal(name))
    return int(out[0]) if out else 0


def drop_database(session, name):
    """End every other session on database ``name`` and drop it (a missing one is fine)."""
    end_sessions(session, name)
    session.query('DROP DATABASE IF EXISTS %s' % quote_ident(name))


# What pg_dump without --create leaves out of a dump: the database's privileges, its (and its roles') settings,
# connection limit and comment. Recorded with each backup so that a restore into a new database can carry them.
DB_SETTINGS_SQL = """
SELECT jsonb_build_object(
  'acl', CASE WHEN d.datacl IS NULL THEN NULL WHEN cardinality(d.datacl) = 0 THEN '[]'::jsonb
              ELSE (SELECT jsonb_agg(jsonb_build_object(
                      'grantee', CASE WHEN a.grantee = 0 THEN NULL ELSE pg_get_userbyid(a.grantee) END,
                      'privilege', a.privilege_type, 'grantable', a.is_grantable))
                    FROM aclexplode(d.datacl) a) END,
  'settings', (SELECT coalesce(jsonb_agg(jsonb_build_object(
                 'role', CASE WHEN s.setrole = 0 THEN NULL ELSE pg_get_userbyid(s.setrole) END,
                 'config', s.setconfig)), '[]') FROM pg_db_role_setting s WHERE s.setdatabase = d.oid),
  'connlimit', d.datconnlimit,
  'comment', shobj_description(d.oid, 'pg_database'))::text
FROM pg_database d WHERE d.datname = %s
"""


# Runs inside the exported snapshot: exact row counts of every table, and the objects a restore must bring back.
# Objects that belong to extensions are left out (CREATE EXTENSION recreates them). Each table's own rows
# (FROM ONLY): an inheritance parent's count must not include its children's, nor read foreign-table children
# (whose data pg_dump does not dump). Run with search_path = pg_catalog (see read_objects()): the argument types in
# the function names are then schema-qualified the same way whatever the database's or role's search_path.
OBJECTS_SQL_TEMPLATE = r"""
WITH ext AS (SELECT classid, objid FROM pg_depend WHERE deptype = 'e'),
nsp AS (SELECT oid, nspname FROM pg_namespace
        WHERE nspname NOT IN ('pg_catalog', 'information_schema')
          AND nspname NOT LIKE 'pg\_toast%' AND nspname NOT LIKE 'pg\_temp\_%'),
rel AS (SELECT c.oid, nsp.nspname, c.relname, c.relkind FROM pg_class c JOIN nsp ON nsp.oid = c.relnamespace
        WHERE NOT EXISTS (SELECT 1 FROM ext WHERE ext.classid = 'pg_class'::regclass AND ext.objid = c.oid)),
fn AS (SELECT p.oid, nsp.nspname, p.proname, pg_get_function_identity_arguments(p.oid) AS args
       FROM pg_proc p JOIN nsp ON nsp.oid = p.pronamespace
       WHERE NOT EXISTS (SELECT 1 FROM ext WHERE ext.classid = 'pg_proc'::regclass AND ext.objid = p.oid))
SELECT jsonb_build_object(
  'tables', (SELECT coalesce(jsonb_agg(jsonb_build_object(
                 'schema', nspname, 'name', relname,
                 'rows', (xpath('/row/c/text()', query_to_xml(
                          format('SELECT count(*) AS c FROM @ONLY@%I.%I', nspname, relname), false, true, '')))[1]::text::bigint)
                 ORDER BY nspname, relname), '[]') FROM rel WHERE relkind = 'r'),
  'partitioned_tables', (SELECT coalesce(jsonb_agg(format('%I.%I', nspname, relname) ORDER BY 1), '[]')
                         FROM rel WHERE relkind = 'p'),
  'views', (SELECT coalesce(jsonb_agg(format('%I.%I', nspname, relname) ORDER BY 1), '[]') FROM rel WHERE relkind = 'v'),
  'materialized_views', (SELECT coalesce(jsonb_agg(format('%I.%I', nspname, relname) ORDER BY 1), '[]')
                         FROM rel WHERE relkind = 'm'),
  'sequences', (SELECT coalesce(jsonb_agg(format('%I.%I', nspname, relname) ORDER BY 1), '[]') FROM rel WHERE relkind = 'S'),
  'functions', (SELECT coalesce(jsonb_agg(format('%I.%I(%s)', nspname, proname, args) ORDER BY 1), '[]') FROM fn),
  'indexes', (SELECT count(*) FROM rel WHERE relkind IN ('i', 'I')),
  'schemas', (SELECT coalesce(jsonb_agg(nspname ORDER BY 1), '[]') FROM nsp),
  'extensions', (SELECT coalesce(jsonb_agg(extname ORDER BY 1), '[]') FROM pg_extension))::text
"""
OBJECTS_SQL = OBJECTS_SQL_TEMPLATE.replace('@ONLY@', 'ONLY ')
# metadata format_version 1 (before 0.3.0): parents counted with their children, names under the session's
# search_path; still used to verify those backups
OBJECTS_SQL_V1 = OBJECTS_SQL_TEMPLATE.replace('@ONLY@', '')


def read_objects(session, metadata_version=None):
    """OBJECTS_SQL (or the query of an older metadata format) on ``session``, names under search_path pg_catalog."""
    if metadata_version is not None and metadata_version < 2:
        return session.query_json(OBJECTS_SQL_V1)
    session.query('SET search_path TO pg_catalog')
    found = session.query_json(OBJECTS_SQL)   # an error ends the psql session: no RESET needed then
    session.query('RESET search_path')
    return found
