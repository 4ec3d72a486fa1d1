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
  'extensions', (SELECT coalesce(jsonb_agg(extname ORDER BY 1), '[]') FROM pg_extension),
  'large_objects', (SELECT count(*) FROM pg_largeobject_metadata),
  'large_object_access', (SELECT CASE WHEN count(*) = 0 THEN NULL
                                      WHEN has_table_privilege('pg_catalog.pg_largeobject', 'SELECT') THEN 'catalog'
                                      WHEN current_setting('lo_compat_privileges')::boolean
                                        OR bool_and(pg_has_role(lomowner, 'USAGE') OR EXISTS (
                                             SELECT 1 FROM aclexplode(lomacl) a WHERE a.privilege_type = 'SELECT'
                                             AND (a.grantee = 0 OR pg_has_role(a.grantee, 'USAGE')))) THEN 'objects'
                                      ELSE 'none' END FROM pg_largeobject_metadata))::text
"""
OBJECTS_SQL = OBJECTS_SQL_TEMPLATE.replace('@ONLY@', 'ONLY ')
# metadata format_version 1 (before 0.3.0): parents counted with their children, names under the session's
# search_path; still used to verify those backups
OBJECTS_SQL_V1 = OBJECTS_SQL_TEMPLATE.replace('@ONLY@', '')


# The logical size of every large object, one index probe each: its last page's number times the page size
# (LOBLKSIZE, a quarter of the block size) plus that page's length; holes (pages never written) count as the zeros
# lo_read() returns for them, which pg_dump dumps. Needs SELECT on pg_largeobject (superusers have it).
LARGE_OBJECTS_SIZE_SQL = """
SELECT coalesce(sum(p.pageno::bigint * (current_setting('block_size')::int / 4) + octet_length(p.data)), 0)
FROM pg_largeobject_metadata m
CROSS JOIN LATERAL (SELECT l.pageno, l.data FROM pg_largeobject l WHERE l.loid = m.oid
                    ORDER BY l.pageno DESC LIMIT 1) p
"""
# The same through the large object interface, for a user who may read every object but not pg_largeobject: open
# (INV_READ, in the transaction's snapshot), seek to the end (the same index probe), close - in this order, the
# subqueries kept apart by OFFSET 0 (a read-only descriptor lives until the transaction ends otherwise).
LARGE_OBJECTS_SIZE_BY_OBJECT_SQL = """
SELECT coalesce(sum(size), 0) FROM (
  SELECT fd, lo_lseek64(fd, 0, 2) AS size FROM (
    SELECT lo_open(oid, 262144) AS fd FROM pg_largeobject_metadata OFFSET 0) o OFFSET 0) s
WHERE lo_close(fd) = 0
"""
LARGE_OBJECTS_UNREAD = ('not read: this user may read neither pg_largeobject nor every large object (SELECT on '
                        'each); only the count is verified')


def read_objects(session, metadata_version=None):
    """OBJECTS_SQL (or the query of an older metadata format) on ``session``, names under search_path pg_catalog.
    ``large_objects`` is a dict: ``count``, and ``size`` (bytes; None with a ``size_note`` when it cannot be read)."""
    if metadata_version is not None and metadata_version < 2:
        found = session.query_json(OBJECTS_SQL_V1)
    else:
        session.query('SET search_path TO pg_catalog')
        found = session.query_json(OBJECTS_SQL)   # an error ends the psql session: no RESET needed then
        session.query('RESET search_path')
    access = found.pop('large_object_access', None)
    count = int(found.get('large_objects') or 0)
    found['large_objects'] = lo = dict(count=count, size=0)
    if access == 'catalog':
        lo['size'] = int(session.query(LARGE_OBJECTS_SIZE_SQL)[0])
    elif access == 'objects':
        lo['size'] = int(session.query(LARGE_OBJECTS_SIZE_BY_OBJECT_SQL)[0])
    elif count:
        lo['size'], lo['size_note'] = None, LARGE_OBJECTS_UNREAD
    return found


# Each sequence's value as pg_dump dumps it (setval(name, last_value, is_called)), in one statement:
# pg_sequence_last_value() for those called at least once (NULL otherwise), and for the others a SELECT of their
# own generated as the row counts are (the value after setval(.., false) or RESTART is in the sequence alone),
# both halves of the pair from that one read. Only the sequences this user may read (pg_dump fails on the others,
# naming them); extension members are left out, as pg_dump leaves out their values. OFFSET 0 keeps each function
# to one call per sequence, after the filter (pg_sequence_last_value raises for a relation that is not one).
SEQUENCES_SQL = r"""
SELECT coalesce(jsonb_object_agg(name, jsonb_build_object(
         'last_value', coalesce(called, (xpath('/row/v/text()', x))[1]::text::bigint),
         'is_called', called IS NOT NULL OR (xpath('/row/c/text()', x))[1]::text::boolean,
         'increment', increment, 'cycle', cycle)), '{}')::text
FROM (SELECT name, called, increment, cycle,
             CASE WHEN called IS NULL THEN query_to_xml(format('SELECT last_value AS v, is_called AS c FROM %I.%I',
                                                               nspname, relname), false, true, '') END AS x
      FROM (SELECT format('%I.%I', n.nspname, c.relname) AS name, n.nspname, c.relname,
                   pg_sequence_last_value(c.oid) AS called, s.seqincrement AS increment, s.seqcycle AS cycle
            FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_sequence s ON s.seqrelid = c.oid
            WHERE c.relkind = 'S' AND n.nspname NOT IN ('pg_catalog', 'information_schema')
              AND n.nspname NOT LIKE 'pg\_toast%' AND n.nspname NOT LIKE 'pg\_temp\_%'
              AND has_table_privilege(c.oid, 'SELECT')   -- not has_sequence_privilege: it raises for other relations
              AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                              AND d.deptype = 'e')
            OFFSET 0) seq
      OFFSET 0) v
"""


def read_sequences(session):
    """``{"schema.name": {"last_value", "is_called", "increment", "cycle"}}`` of every sequence of the session's
    database. Sequences are not transactional: this is their value now, whatever snapshot the session holds."""
    session.query('SET search_path TO pg_catalog')
    found = session.query_json(SEQUENCES_SQL)
    session.query('RESET search_path')
    return found


def objects_record(found):
    """What a backup's metadata records of a database's objects, from read_objects()'s ``found``: ``tables``
    (schema, name, rows), ``rows_total``, ``objects`` (a count per kind), ``object_names`` (the other sets) and
    ``large_objects`` (count and size)."""
    names = dict((k, v) for k, v in found.items() if k not in ('tables', 'indexes', 'large_objects'))
    tables = list(found.get('tables') or [])
    out = dict(
        tables=tables, rows_total=sum(t['rows'] for t in tables), object_names=names,
        objects=dict(tables=len(tables) + len(names.get('partitioned_tables') or []),
                     views=len(names.get('views') or []), materialized_views=len(names.get('materialized_views') or []),
                     sequences=len(names.get('sequences') or []), functions=len(names.get('functions') or []),
                     indexes=found.get('indexes'), schemas=len(names.get('schemas') or []),
                     extensions=len(names.get('extensions') or [])))
    if found.get('large_objects') is not None:
        out['large_objects'] = dict(found['large_objects'])
        out['objects']['large_objects'] = found['large_objects']['count']
    return out


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


# A database holds something of its own when it has, outside the system schemas and not brought by an extension,
# a relation, function, type or other object of a schema; a schema other than an (empty) public; a large object;
# or another object pg_dump dumps: an event trigger, publication, foreign data wrapper or server, cast,
# procedural language or default privileges. A database the image's entrypoint just created empty holds nothing to
# protect, nor does one with only extensions (PostGIS images install some in POSTGRES_DB). Each test is an EXISTS
# on a catalog, so the answer comes from the first object found.
_USER_NSP = (r"n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\_%'")


def _not_extension(catalog, alias):
    return ("NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = '%s'::regclass AND d.objid = %s.oid "
            "AND d.deptype = 'e')" % (catalog, alias))


def _in_user_schema(catalog, nsp_column, extra=''):
    return ('EXISTS (SELECT 1 FROM %s x JOIN pg_namespace n ON n.oid = x.%s WHERE %s AND %s%s)'
            % (catalog, nsp_column, _USER_NSP, _not_extension(catalog, 'x'), extra))


def _user_object(catalog, where='true'):
    return 'EXISTS (SELECT 1 FROM %s x WHERE %s AND %s)' % (catalog, where, _not_extension(catalog, 'x'))


_USER_TESTS = [
    'EXISTS (SELECT 1 FROM pg_largeobject_metadata)',
    _in_user_schema('pg_class', 'relnamespace', " AND x.relkind IN ('r', 'p', 'v', 'm', 'S', 'f', 'c')"),
    _in_user_schema('pg_proc', 'pronamespace'),
    # a type of its own: not the row type of a relation nor the array (or multirange) of another type, which
    # depend on their object internally
    _in_user_schema('pg_type', 'typnamespace', " AND NOT EXISTS (SELECT 1 FROM pg_depend i WHERE i.classid = "
                    "'pg_type'::regclass AND i.objid = x.oid AND i.deptype = 'i')"),
    # a schema other than public, even empty
    "EXISTS (SELECT 1 FROM pg_namespace n WHERE %s AND n.nspname <> 'public' AND %s)"
    % (_USER_NSP, _not_extension('pg_namespace', 'n')),
] + [_in_user_schema(c, col) for c, col in (
    ('pg_operator', 'oprnamespace'), ('pg_collation', 'collnamespace'), ('pg_conversion', 'connamespace'),
    ('pg_opfamily', 'opfnamespace'), ('pg_ts_config', 'cfgnamespace'), ('pg_ts_dict', 'dictnamespace'),
    ('pg_ts_parser', 'prsnamespace'), ('pg_ts_template', 'tmplnamespace'))] + [
    _user_object('pg_event_trigger'), _user_object('pg_publication'), _user_object('pg_foreign_data_wrapper'),
    _user_object('pg_foreign_server'), 'EXISTS (SELECT 1 FROM pg_default_acl)',
    # made after initdb: OIDs from FirstNormalObjectId (16384) on
    _user_object('pg_cast', 'x.oid >= 16384'), _user_object('pg_language', 'x.oid >= 16384'),
]
USER_OBJECTS_SQL = 'SELECT (%s)::int' % '\n  OR '.join(_USER_TESTS)


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
