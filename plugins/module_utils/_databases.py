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

import csv
import re

from ansible_collections.pgops.postgresql.plugins.module_utils._connection import quote_ident, quote_literal
from ansible_collections.pgops.postgresql.plugins.module_utils._errors import PgOpsError
from ansible_collections.pgops.postgresql.plugins.module_utils._steps import SETTINGS

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


def objects_record(found):
    """What a backup's metadata records of a database's objects, from read_objects()'s ``found``: ``tables``
    (schema, name, rows), ``rows_total``, ``objects`` (a count per kind) and ``object_names`` (the other sets)."""
    names = dict((k, v) for k, v in found.items() if k not in ('tables', 'indexes'))
    tables = list(found.get('tables') or [])
    return dict(
        tables=tables, rows_total=sum(t['rows'] for t in tables), object_names=names,
        objects=dict(tables=len(tables) + len(names.get('partitioned_tables') or []),
                     views=len(names.get('views') or []), materialized_views=len(names.get('materialized_views') or []),
                     sequences=len(names.get('sequences') or []), functions=len(names.get('functions') or []),
                     indexes=found.get('indexes'), schemas=len(names.get('schemas') or []),
                     extensions=len(names.get('extensions') or [])))


FACTS_SQL = (
    "SELECT jsonb_build_object('owner', pg_get_userbyid(datdba), 'collate', datcollate, 'ctype', datctype,"
    " 'locale_provider', to_jsonb(d) ->> 'datlocprovider',"
    " 'locale', coalesce(to_jsonb(d) ->> 'datlocale', to_jsonb(d) ->> 'daticulocale'),"
    " 'icu_rules', to_jsonb(d) ->> 'daticurules',"
    " 'encoding', pg_encoding_to_char(encoding), 'allow', datallowconn,"
    " 'comment', shobj_description(oid, 'pg_database'),"
    " 'prepared', (SELECT coalesce(jsonb_agg(gid), '[]') FROM pg_prepared_xacts p WHERE p.database = datname)"
    ")::text FROM pg_database d WHERE datname = %s")


def database_facts(session, name):
    """Owner, locale, encoding, whether it accepts connections, comment and prepared transactions of database
    ``name``; None when there is no such database."""
    return session.query_json(FACTS_SQL % quote_literal(name))


# A database holds something of its own when it has a relation or function outside the system schemas that no
# extension brought (a database the image's entrypoint just created empty holds nothing to protect)
USER_OBJECTS_SQL = r"""
SELECT (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\_%'
          AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
          AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                          AND d.deptype = 'e'))
     + (SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
        WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\_%'
          AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid
                          AND d.deptype = 'e'))
"""


def holds_data(session):
    """Whether the session's database holds anything of its own (USER_OBJECTS_SQL)."""
    return session.query(USER_OBJECTS_SQL)[0] != '0'


def locale_clause(facts, server_major):
    """CREATE DATABASE options giving a database the locale in ``facts`` (an existing database's or a backup's)."""
    out = ''
    if facts.get('collate'):
        out += ' LC_COLLATE %s LC_CTYPE %s' % (quote_literal(facts['collate']), quote_literal(facts['ctype']))
    provider = {'c': 'libc', 'i': 'icu', 'b': 'builtin'}.get(facts.get('locale_provider'))
    if provider and server_major and server_major >= 15:
        out += ' LOCALE_PROVIDER %s' % provider   # explicit: template0 may have another provider
        if facts.get('locale') and provider != 'libc':
            out += ' %s_LOCALE %s' % (provider.upper(), quote_literal(facts['locale']))
        if facts.get('icu_rules') and provider == 'icu':
            out += ' ICU_RULES %s' % quote_literal(facts['icu_rules'])
    return out


# settings whose value is a list: pg_dump quotes each element (GUC_LIST_QUOTE)
LIST_SETTINGS = ('search_path', 'temp_tablespaces', 'session_preload_libraries', 'local_preload_libraries',
                 'shared_preload_libraries')


GUC_NAME_RE = re.compile(r'^[A-Za-z_][A-Za-z0-9_.]*$')


def setting_value(name, value):
    if name.lower() not in LIST_SETTINGS:
        return quote_literal(value)
    # the stored text quotes elements like identifiers ("a,b", public): csv reads that quoting exactly
    parts = next(csv.reader([value], skipinitialspace=True))
    return ', '.join(quote_literal(part.strip()) for part in parts)


def database_settings_sql(facts, dest, comment=True):
    """Statements giving database ``dest`` the privileges, settings, connection limit and comment in ``facts``
    (without the comment when ``comment`` is false: a scratch database keeps its pgops mark until it is renamed)."""
    db = quote_ident(dest)
    out = []
    if facts.get('acl') is not None:
        out.append('REVOKE ALL ON DATABASE %s FROM PUBLIC' % db)
        for a in facts['acl']:
            out.append('GRANT %s ON DATABASE %s TO %s%s' % (
                a['privilege'], db, quote_ident(a['grantee']) if a['grantee'] else 'PUBLIC',
                ' WITH GRANT OPTION' if a['grantable'] else ''))
    for s in facts.get('settings') or []:
        for item in s['config'] or []:
            name, dummy, value = item.partition('=')
            target = ('ROLE %s IN DATABASE %s' % (quote_ident(s['role']), db)) if s['role'] else 'DATABASE %s' % db
            if not GUC_NAME_RE.match(name):
                raise PgOpsError('unexpected setting name %r on the database' % name, step=SETTINGS)
            out.append('ALTER %s SET %s TO %s' % (target, name, setting_value(name, value)))
    if facts.get('connlimit') is not None and facts['connlimit'] != -1:
        out.append('ALTER DATABASE %s CONNECTION LIMIT %d' % (db, facts['connlimit']))
    if comment and facts.get('comment') is not None:
        out.append('COMMENT ON DATABASE %s IS %s' % (db, quote_literal(facts['comment'])))
    return out
