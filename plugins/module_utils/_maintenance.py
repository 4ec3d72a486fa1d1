# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgops.postgresql contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# PRIVATE to the collection: this is not a public API and may change without notice.
"""Monthly maintenance and health facts: what pg_maintenance_info collects and pg_maintenance acts on.

Every query returns its data as one jsonb text line (``PsqlSession.query_json``), so the same code runs with
psql on the host or inside a container that has no Python. Trends (database growth, backup sizes) are computed
from facts only: the history records earlier runs wrote (one JSON file per run) and the backup metadata.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import datetime
import json
import os
import re
import socket
import time

from ansible_collections.pgops.postgresql.plugins.module_utils import _catalog as catalog
from ansible_collections.pgops.postgresql.plugins.module_utils._connection import (
    PgTarget, connection_argument_spec, major_of, quote_ident, quote_literal,
)
from ansible_collections.pgops.postgresql.plugins.module_utils._databases import list_databases
from ansible_collections.pgops.postgresql.plugins.module_utils._errors import PgOpsError
from ansible_collections.pgops.postgresql.plugins.module_utils._fsutil import (
    COLLECTION_VERSION, ensure_dir, write_file_atomic, write_json_atomic,
)
from ansible_collections.pgops.postgresql.plugins.module_utils._report import fmt_bytes, render_html
from ansible_collections.pgops.postgresql.plugins.module_utils._server import of_server
from ansible_collections.pgops.postgresql.plugins.module_utils._steps import (
    CATALOG, COLLECT, MAINTAIN, MAINTENANCE_STEPS, OPTIONS, WRITE, job_step,
)

RECORD_VERSION = 1
GATHER = ('tables', 'bloat', 'indexes', 'cache', 'sessions', 'connections', 'expected_tables')
HISTORY_RE = re.compile(r'^maintenance_(\d{8}_\d{6})(_\d+)?\.json$')
LEVELS = ('critical', 'warning', 'info')

THRESHOLDS = dict(
    long_running_seconds=300,
    idle_in_transaction_seconds=60,
    connections_pct=80.0,
    cache_hit_pct=90.0,
    cache_min_blocks=1000,
    dead_tuples_pct=20.0,
    dead_tuples_min=1000,
    bloat_pct=50.0,
    bloat_min_bytes=8 * 1024 * 1024,
    growth_pct=20.0,
    growth_days=7,
    backup_size_change_pct=50.0,
)


def thresholds_spec():
    options = {}
    for name, default in THRESHOLDS.items():
        options[name] = dict(type='float' if isinstance(default, float) else 'int', default=default)
    return dict(type='dict', default={}, options=options)


def info_argument_spec():
    """Options pg_maintenance_info and pg_maintenance share (documented in both modules)."""
    from ansible_collections.pgops.postgresql.plugins.module_utils._options import database_choice_argument_spec

    spec = connection_argument_spec()
    spec.update(database_choice_argument_spec())
    spec.update(
        gather=dict(type='list', elements='str', default=['all'], choices=['all'] + list(GATHER)),
        expected_tables=dict(type='list', elements='str'),
        backup_dir=dict(type='path'),
        history_dir=dict(type='path'),
        top_tables=dict(type='int', default=20),
        thresholds=thresholds_spec(),
    )
    return spec


# -- SQL ----------------------------------------------------------------------------------------------------
# Every statement returns one jsonb text line. Timestamps come back as ISO 8601 with the UTC offset.

SERVER_SQL = """
SELECT jsonb_build_object(
  'version', current_setting('server_version'),
  'version_num', current_setting('server_version_num')::int,
  'max_connections', current_setting('max_connections')::int,
  'superuser_reserved_connections', current_setting('superuser_reserved_connections')::int,
  'now', now()
)::text
"""

CONNECTIONS_SQL = """
SELECT jsonb_build_object(
  'total', (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'),
  'by_database', (SELECT coalesce(jsonb_object_agg(d.datname, (SELECT count(*) FROM pg_stat_activity a
                   WHERE a.datname = d.datname AND a.backend_type = 'client backend')), '{}')
                  FROM pg_database d WHERE NOT d.datistemplate)
)::text
"""

SESSIONS_SQL = """
WITH s AS (
  SELECT pid, datname, usename, application_name, client_addr, state, query_start, state_change, query
  FROM pg_stat_activity
  WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()
)
SELECT jsonb_build_object(
  'long_running', (SELECT coalesce(jsonb_agg(jsonb_build_object(
      'pid', pid, 'database', datname, 'user', usename, 'application', application_name,
      'client', host(client_addr), 'state', state, 'since', query_start,
      'seconds', floor(extract(epoch FROM now() - query_start))::bigint, 'query', left(query, 200))
    ORDER BY query_start), '[]') FROM s
    WHERE state = 'active' AND now() - query_start > make_interval(secs => %(long)d)),
  'idle_in_transaction', (SELECT coalesce(jsonb_agg(jsonb_build_object(
      'pid', pid, 'database', datname, 'user', usename, 'application', application_name,
      'client', host(client_addr), 'state', state, 'since', state_change,
      'seconds', floor(extract(epoch FROM now() - state_change))::bigint, 'query', left(query, 200))
    ORDER BY state_change), '[]') FROM s
    WHERE state LIKE 'idle in transaction%%' AND now() - state_change > make_interval(secs => %(idle)d))
)::text
"""

DATABASE_SQL = """
SELECT jsonb_build_object(
  'name', current_database(),
  'size_bytes', pg_database_size(current_database()),
  'blks_hit', d.blks_hit, 'blks_read', d.blks_read, 'stats_reset', d.stats_reset,
  -- the tables a backup's metadata counts: ordinary tables outside the system schemas, none of an extension's
  'own_table_count', (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema')
      AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp\\_%'
      AND NOT EXISTS (SELECT 1 FROM pg_depend e WHERE e.classid = 'pg_class'::regclass AND e.objid = c.oid
                      AND e.deptype = 'e'))
)::text
FROM pg_stat_database d WHERE d.datname = current_database()
"""

# Ordinary tables and materialized views outside the system schemas. heap = total - indexes - TOAST (so the
# three add up to pg_total_relation_size); the bloat estimate compares the pages a table holds with the pages
# its rows need (row width from pg_stats, 24-byte tuple header, 4-byte line pointer, page header, fillfactor).
TABLES_SQL = """
WITH t AS (
  SELECT c.oid, n.nspname, c.relname, c.relkind, c.relpages, greatest(c.reltuples, 0) AS reltuples,
         coalesce((SELECT substring(o FROM 'fillfactor=(\\d+)')::int FROM unnest(c.reloptions) o
                   WHERE o LIKE 'fillfactor=%'), 100) AS fillfactor,
         pg_total_relation_size(c.oid) AS total_bytes, pg_indexes_size(c.oid) AS indexes_bytes,
         coalesce(pg_total_relation_size(nullif(c.reltoastrelid, 0)), 0) AS toast_bytes
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE c.relkind IN ('r', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
    AND n.nspname !~ '^pg_(toast|temp_)'
), w AS (
  SELECT t.oid,
         (SELECT sum((1 - coalesce(s.null_frac, 0)) * coalesce(s.avg_width, 0)) FROM pg_stats s
          WHERE s.schemaname = t.nspname AND s.tablename = t.relname) AS data_width,
         (SELECT max(s.null_frac) FROM pg_stats s WHERE s.schemaname = t.nspname AND s.tablename = t.relname)
           AS max_null_frac,
         (SELECT count(*) FROM pg_attribute a WHERE a.attrelid = t.oid AND a.attnum > 0 AND NOT a.attisdropped)
           AS ncols
  FROM t
)
SELECT coalesce(jsonb_agg(jsonb_build_object(
  'schema', t.nspname, 'name', t.relname, 'kind', CASE t.relkind WHEN 'm' THEN 'materialized view' ELSE 'table' END,
  'total_bytes', t.total_bytes, 'indexes_bytes', t.indexes_bytes, 'toast_bytes', t.toast_bytes,
  'heap_bytes', t.total_bytes - t.indexes_bytes - t.toast_bytes,
  'live_tuples', s.n_live_tup, 'dead_tuples', s.n_dead_tup,
  'last_vacuum', s.last_vacuum, 'last_autovacuum', s.last_autovacuum,
  'last_analyze', s.last_analyze, 'last_autoanalyze', s.last_autoanalyze,
  'vacuum_count', s.vacuum_count, 'autovacuum_count', s.autovacuum_count,
  'analyze_count', s.analyze_count, 'autoanalyze_count', s.autoanalyze_count,
  'relpages', t.relpages, 'reltuples', t.reltuples::bigint,
  'expected_pages', CASE WHEN w.data_width IS NULL THEN NULL ELSE ceil(t.reltuples * (
      24 + CASE WHEN w.max_null_frac > 0 THEN ceil(w.ncols / 8.0) ELSE 0 END + w.data_width + 4)
      / ((current_setting('block_size')::int - 24) * t.fillfactor / 100.0))::bigint END,
  'block_size', current_setting('block_size')::int
) ORDER BY t.total_bytes DESC, t.nspname, t.relname), '[]')::text
FROM t JOIN w ON w.oid = t.oid LEFT JOIN pg_stat_all_tables s ON s.relid = t.oid
"""

# idx_scan = 0, leaving out unique, primary-key and exclusion-constraint indexes (they enforce rules even when
# never scanned).
UNUSED_INDEXES_SQL = """
SELECT coalesce(jsonb_agg(jsonb_build_object(
  'schema', s.schemaname, 'table', s.relname, 'name', s.indexrelname, 'idx_scan', s.idx_scan,
  'size_bytes', pg_relation_size(s.indexrelid), 'definition', pg_get_indexdef(s.indexrelid))
  ORDER BY pg_relation_size(s.indexrelid) DESC, s.schemaname, s.indexrelname), '[]')::text
FROM pg_stat_user_indexes s JOIN pg_index i ON i.indexrelid = s.indexrelid
WHERE s.idx_scan = 0 AND NOT i.indisunique AND NOT i.indisprimary AND NOT i.indisexclusion
"""

PRESENT_TABLES_SQL = """
SELECT coalesce(jsonb_agg(jsonb_build_array(n.nspname, c.relname) ORDER BY n.nspname, c.relname), '[]')::text
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'm', 'f') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname !~ '^pg_(toast|temp_)'
"""

RELATIONS_SQL = """
SELECT coalesce(jsonb_agg(jsonb_build_array(n.nspname, c.relname, c.relkind)), '[]')::text
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE (n.nspname, c.relname) IN (%s)
"""


# -- names ----------------------------------------------------------------------------------------------------
def split_name(name):
    """``schema.table`` -> (schema, table); a bare ``table`` is in ``public``. The first dot separates."""
    if not name or not name.strip():
        raise PgOpsError('an empty table name was given', step=OPTIONS)
    if '.' in name:
        schema, rel = name.split('.', 1)
        return schema, rel
    return 'public', name


def qualified(schema, name):
    return '%s.%s' % (quote_ident(schema), quote_ident(name))


def display(schema, name):
    return '%s.%s' % (schema, name)


def now_local():
    return datetime.datetime.now().astimezone()


# -- expected tables ------------------------------------------------------------------------------------------
def expected_from_backups(entries, database):
    """The expected tables of ``database`` from the backup catalog: the newest verified backup, else the newest
    successful one (and say so). Returns (tables as (schema, name) pairs, source dict)."""
    ok = [m for m in entries if m.get('database') == database and m.get('status') == 'success'
          and m.get('scope', 'database') == 'database']
    verified = [m for m in ok if catalog.is_verified(m)]
    if verified:
        chosen, source = verified[0], 'verified_backup'
        note = 'tables of the newest verified backup %s' % chosen['id']
    elif ok:
        chosen, source = ok[0], 'newest_backup'
        note = ('no verified backup of %s: using the tables of the newest successful backup %s (run a restore '
                'drill to verify one)' % (database, ok[0]['id']))
    else:
        return None, dict(source='none', backup_id=None,
                          note='no successful backup of %s in the catalog and no expected_tables given: '
                               'nothing to compare' % database)
    tables = [(t['schema'], t['name']) for t in chosen.get('tables') or []]
    return tables, dict(source=source, backup_id=chosen['id'], note=note)


def compare_tables(expected, present):
    present = set(tuple(p) for p in present)
    missing = sorted(set(expected) - present)
    return [display(s, n) for s, n in missing]


# -- growth and series ------------------------------------------------------------------------------------------
def load_history(directory):
    """Earlier runs' records (oldest first) and warnings for unreadable files. A missing directory is empty."""
    records, warnings = [], []
    if not directory or not os.path.isdir(directory):
        return records, warnings
    for name in sorted(os.listdir(directory)):
        if not HISTORY_RE.match(name):
            continue
        path = os.path.join(directory, name)
        try:
            with open(path, 'rb') as f:
                rec = json.loads(f.read().decode('utf-8'))
            if not isinstance(rec, dict) or 'collected_at' not in rec:
                raise ValueError('not a pgops maintenance record')
            catalog.parse_time(rec['collected_at'])
        except (IOError, OSError, ValueError, TypeError) as e:
            warnings.append('%s: %s' % (path, e))
            continue
        records.append(rec)
    records.sort(key=lambda r: catalog.parse_time(r['collected_at']))
    return records, warnings


def size_series(database, history, entries, now=None, size_now=None):
    """Database size over time: [[iso time, bytes, source], ...] oldest first, from history records, backup
    metadata (database_size at the start of each successful backup) and, when given, this run."""
    points = []
    for rec in history:
        for db in rec.get('databases') or []:
            if db.get('name') == database and db.get('size_bytes') is not None:
                points.append((catalog.parse_time(rec['collected_at']), int(db['size_bytes']), 'maintenance'))
    for m in entries:
        if m.get('database') == database and m.get('status') == 'success' and m.get('database_size'):
            points.append((catalog.backup_time(m), int(m['database_size']), 'backup'))
    if now is not None and size_now is not None:
        points.append((now, int(size_now), 'maintenance'))
    points.sort(key=lambda p: p[0])
    return [[catalog.iso(t), v, src] for t, v, src in points]


def backup_series(database, entries):
    """Backup size over time for one database: [[iso time, bytes, backup id], ...] oldest first."""
    ok = [m for m in entries if m.get('database') == database and m.get('status') == 'success']
    ok.sort(key=lambda m: catalog.backup_time(m) or catalog.EPOCH)
    return [[m['started_at'], int(m.get('size') or 0), m['id']] for m in ok]


def growth(series, now, days, threshold):
    """Growth of the newest point against the newest point at least ``days`` older; None without one."""
    if not series:
        return dict(pct=None, flag=False, note='no size known')
    newest_t, newest_v = catalog.parse_time(series[-1][0]), series[-1][1]
    older = [p for p in series if (newest_t - catalog.parse_time(p[0])).total_seconds() >= days * 86400]
    if not older:
        oldest_days = (newest_t - catalog.parse_time(series[0][0])).total_seconds() / 86400.0
        return dict(pct=None, flag=False, note='not enough history: the oldest size is %.1f days old, %d needed'
                    % (oldest_days, days))
    ref_t, ref_v = older[-1][0], older[-1][1]
    if not ref_v:
        return dict(pct=None, flag=False, note='reference size is 0')
    pct = round((newest_v - ref_v) * 100.0 / ref_v, 1)
    return dict(pct=pct, flag=pct > threshold, since=ref_t, reference_bytes=ref_v, bytes=newest_v,
                days=round((newest_t - catalog.parse_time(ref_t)).total_seconds() / 86400.0, 1),
                note='%+.1f%% since %s' % (pct, ref_t[:10]))


def verifications(entries, limit=10):
    """The last verification of each backup that has one, newest first."""
    out = []
    for m in entries:
        last = catalog.last_verification(m)
        if last:
            out.append(dict(backup_id=m['id'], database=m.get('database'), kind=m.get('kind'),
                            verified_at=last.get('verified_at'), result=last.get('result'), mode=last.get('mode'),
                            rto_seconds=last.get('rto_seconds'), error=last.get('error')))
    out.sort(key=lambda v: catalog.parse_time(v['verified_at']) or catalog.EPOCH, reverse=True)
    return out[:limit]


# -- alerts ------------------------------------------------------------------------------------------------------
def alert(level, check, message, database=None):
    return dict(level=level, check=check, database=database, message=message)


def _pct(part, whole):
    return round(part * 100.0 / whole, 1) if whole else None


def judge(record, th):
    """Alerts for a record, most severe first."""
    alerts = []
    server = record['server']
    conn = server.get('connections')
    if conn:
        if conn['pct'] is not None and conn['pct'] >= th['connections_pct']:
            alerts.append(alert('critical', 'connections', '%d of %d connections in use (%.1f%%, threshold %s%%)'
                                % (conn['total'], server['max_connections'], conn['pct'], th['connections_pct'])))
    for s in server.get('long_running') or []:
        alerts.append(alert('warning', 'long_running', 'session %s (%s@%s) active for %d s: %s'
                            % (s['pid'], s['user'], s['database'], s['seconds'], s['query']), s['database']))
    for s in server.get('idle_in_transaction') or []:
        alerts.append(alert('warning', 'idle_in_transaction', 'session %s (%s@%s) idle in transaction for %d s'
                            % (s['pid'], s['user'], s['database'], s['seconds']), s['database']))
    for db in record['databases']:
        name = db['name']
        exp = db.get('expected_tables')
        if exp and exp.get('missing'):
            alerts.append(alert('critical', 'expected_tables', 'missing %s (expected from %s)'
                                % (', '.join(exp['missing']), exp['note'] if exp['source'] != 'option'
                                   else 'expected_tables'), name))
        g = db.get('growth')
        if g and g.get('flag'):
            alerts.append(alert('warning', 'growth', 'database grew %.1f%% in %.1f days (threshold %s%% in %d days)'
                                % (g['pct'], g['days'], th['growth_pct'], th['growth_days']), name))
        cache = db.get('cache')
        if cache and cache['hit_pct'] is not None and cache['blocks'] >= th['cache_min_blocks'] \
                and cache['hit_pct'] < th['cache_hit_pct']:
            alerts.append(alert('warning', 'cache_hit', 'cache hit ratio %.1f%% (threshold %s%%)'
                                % (cache['hit_pct'], th['cache_hit_pct']), name))
        for t in db.get('tables_all') or []:
            if t.get('dead_pct') is not None and t['dead_pct'] >= th['dead_tuples_pct'] \
                    and (t.get('dead_tuples') or 0) >= th['dead_tuples_min']:
                alerts.append(alert('warning', 'dead_tuples', '%s.%s has %d dead tuples (%.1f%%): VACUUM it'
                                    % (t['schema'], t['name'], t['dead_tuples'], t['dead_pct']), name))
            if t.get('bloat_pct') is not None and t['bloat_pct'] >= th['bloat_pct'] \
                    and (t.get('bloat_bytes') or 0) >= th['bloat_min_bytes']:
                alerts.append(alert('warning', 'bloat', '%s.%s is an estimated %.1f%% bloat (%s)'
                                    % (t['schema'], t['name'], t['bloat_pct'], fmt_bytes(t['bloat_bytes'])), name))
        for ix in db.get('unused_indexes') or []:
            alerts.append(alert('info', 'unused_index', 'index %s.%s on %s has never been scanned (%s)'
                                % (ix['schema'], ix['name'], ix['table'], fmt_bytes(ix['size_bytes'])), name))
    for text in (record.get('backups') or {}).get('alerts') or []:
        alerts.append(alert('warning', 'backups', text, text.split(':', 1)[0]))
    alerts.sort(key=lambda a: LEVELS.index(a['level']))
    return alerts


# -- collection ------------------------------------------------------------------------------------------------
def _table_facts(tables):
    for t in tables:
        live, dead = t.get('live_tuples') or 0, t.get('dead_tuples') or 0
        t['dead_pct'] = _pct(dead, live + dead) if t.get('dead_tuples') is not None else None
        if t.get('expected_pages') is not None and t.get('relpages'):
            bloat_pages = max(t['relpages'] - t['expected_pages'], 0)
            t['bloat_bytes'] = bloat_pages * t['block_size']
            t['bloat_pct'] = _pct(bloat_pages, t['relpages'])
        else:
            t['bloat_bytes'] = t['bloat_pct'] = None   # never analyzed, or empty: no estimate
    return tables


class Collector(object):
    """Collects the facts for one run; ``record`` is JSON-ready (what pg_maintenance_info returns)."""

    def __init__(self, module, params):
        self.module = module
        self.p = params
        self.target = PgTarget(module, params)
        self.th = dict(THRESHOLDS)
        self.th.update(dict((k, v) for k, v in (params.get('thresholds') or {}).items() if v is not None))
        gather = params.get('gather') or ['all']
        self.gather = set(GATHER) if 'all' in gather else set(gather)
        self.warnings = []
        self.now = now_local()

    def history_dir(self):
        if self.p.get('history_dir'):
            return self.p['history_dir']
        if self.p.get('backup_dir'):
            return os.path.join(self.p['backup_dir'], 'maintenance')
        return None

    def databases(self):
        if not self.p.get('all_databases'):
            return list(self.p['databases'])
        with self.target.psql(self.p.get('maintenance_db') or 'postgres') as s:
            return list_databases(s, connectable=True)

    def catalog_entries(self):
        if not self.p.get('backup_dir'):
            return []
        try:
            entries, warnings = catalog.load_catalog(self.p['backup_dir'])
        except OSError as e:
            raise PgOpsError('cannot read the backup directory %s (backup_dir): %s' % (self.p['backup_dir'], e),
                             step=CATALOG)
        self.warnings += warnings
        return of_server(entries, self.target.server)   # this server's backups name its expected tables

    def server(self, s):
        server = s.query_json(SERVER_SQL)
        self.target = self.target.for_server(major_of(server['version_num']))
        if 'connections' in self.gather:
            conn = s.query_json(CONNECTIONS_SQL)
            conn['pct'] = _pct(conn['total'], server['max_connections'])
            server['connections'] = conn
        if 'sessions' in self.gather:
            server.update(s.query_json(SESSIONS_SQL % dict(long=int(self.th['long_running_seconds']),
                                                           idle=int(self.th['idle_in_transaction_seconds']))))
        return server

    def database(self, s, name, entries):
        db = s.query_json(DATABASE_SQL)
        if 'cache' in self.gather:
            hit, read = db['blks_hit'] or 0, db['blks_read'] or 0
            db['cache'] = dict(hit_pct=_pct(hit, hit + read), blocks=hit + read, blks_hit=hit, blks_read=read,
                               stats_reset=db.get('stats_reset'))
        for key in ('blks_hit', 'blks_read'):
            db.pop(key, None)
        if 'tables' in self.gather or 'bloat' in self.gather:
            tables = _table_facts(s.query_json(TABLES_SQL))
            if 'bloat' not in self.gather:
                for t in tables:
                    t['bloat_bytes'] = t['bloat_pct'] = None
            db['tables_all'] = tables
            db['table_count'] = len(tables)
            db['tables'] = tables[:max(self.p.get('top_tables') or 0, 0)]
            db['bloat_bytes'] = sum(t['bloat_bytes'] or 0 for t in tables)
        if 'indexes' in self.gather:
            db['unused_indexes'] = s.query_json(UNUSED_INDEXES_SQL)
        if 'expected_tables' in self.gather:
            db['expected_tables'] = self.expected(s, name, entries)
        return db

    def expected(self, s, name, entries):
        if self.p.get('expected_tables') is not None:
            tables = [split_name(t) for t in self.p['expected_tables']]
            info = dict(source='option', backup_id=None, note='the expected_tables option')
        else:
            tables, info = expected_from_backups(entries, name)
            if info['source'] == 'newest_backup':
                self.warnings.append(info['note'])
        if tables is None:
            info.update(expected=[], missing=[], checked=False)
            return info
        present = s.query_json(PRESENT_TABLES_SQL)
        info.update(expected=[display(sc, n) for sc, n in tables], missing=compare_tables(tables, present),
                    checked=True)
        return info

    def collect(self):
        """The full record: server facts, one entry per database, trends, backups, alerts."""
        self.target.check_container()
        names = self.databases()
        entries = self.catalog_entries()
        history, warnings = load_history(self.history_dir())
        self.warnings += warnings
        record = dict(format_version=RECORD_VERSION, collected_at=catalog.iso(self.now), host=socket.gethostname(),
                      container=self.p.get('container'), collection_version=COLLECTION_VERSION,
                      history_dir=self.history_dir(), backup_dir=self.p.get('backup_dir'), databases=[],
                      thresholds=self.th, gather=sorted(self.gather))
        t0 = time.time()
        for i, name in enumerate(names):
            with self.target.psql(name) as s:
                if i == 0:
                    record['server'] = self.server(s)
                record['databases'].append(self.database(s, name, entries))
        if not names:
            with self.target.psql(self.p.get('maintenance_db') or 'postgres') as s:
                record['server'] = self.server(s)
        for db in record['databases']:
            series = size_series(db['name'], history, entries, self.now, db['size_bytes'])
            db['size_series'] = series
            db['growth'] = growth(series, self.now, self.th['growth_days'], self.th['growth_pct'])
            db['backup_series'] = backup_series(db['name'], entries)
        if entries:
            stats = catalog.catalog_stats([m for m in entries if m.get('database') in names], self.now,
                                          size_change_pct=self.th['backup_size_change_pct'],
                                          growth_pct=self.th['growth_pct'], growth_days=int(self.th['growth_days']))
            record['backups'] = dict(count=stats['count'], failed=stats['failed'], total_size=stats['total_size'],
                                     success_rate=stats['success_rate'], alerts=stats['alerts'],
                                     databases=dict((k, dict(newest_id=v['newest_id'],
                                                             newest_age_seconds=v['newest_age_seconds'],
                                                             newest_size=v['newest_size'],
                                                             size_change_pct=v['size_change_pct']))
                                                    for k, v in stats['databases'].items()))
        else:
            record['backups'] = None
        record['verifications'] = verifications([m for m in entries if m.get('database') in names])
        record['history_runs'] = len(history)
        record['alerts'] = judge(record, self.th)
        for db in record['databases']:
            db.pop('tables_all', None)
        record['collect_seconds'] = round(time.time() - t0, 3)
        return record


# -- actions ---------------------------------------------------------------------------------------------------
class Action(object):
    def __init__(self, database, kind, sql, target):
        self.database, self.kind, self.sql, self.target = database, kind, sql, target

    def as_dict(self, status, seconds=None):
        return dict(database=self.database, action=self.kind, target=self.target, sql=self.sql, status=status,
                    duration_seconds=seconds)


def _check_relations(s, database, names, kinds, option):
    """Fail before acting when a listed object is missing or of the wrong kind."""
    if not names:
        return
    pairs = [split_name(n) for n in names]
    values = ', '.join('(%s, %s)' % (quote_literal(a), quote_literal(b)) for a, b in pairs)
    found = s.query_json(RELATIONS_SQL % values)
    kind_of = dict(((sc, n), k) for sc, n, k in found)
    bad = []
    for sc, n in pairs:
        k = kind_of.get((sc, n))
        if k is None:
            bad.append('%s (not found)' % display(sc, n))
        elif k not in kinds:
            bad.append('%s (relkind %s)' % (display(sc, n), k))
    if bad:
        raise PgOpsError('%s: %s in database %s; give existing objects as schema.name'
                         % (option, ', '.join(bad), database), step=OPTIONS)


def plan_actions(p, s, database, server_major):
    """What pg_maintenance will run in ``database`` (checked first, so check mode predicts exactly)."""
    actions = []
    if p['vacuum']:
        _check_relations(s, database, p['vacuum_tables'], ('r', 'm', 'p'), 'vacuum_tables')
        for t in p['vacuum_tables'] or [None]:
            target = display(*split_name(t)) if t else '(all tables)'
            sql = 'VACUUM (ANALYZE)' + (' ' + qualified(*split_name(t)) if t else '')
            actions.append(Action(database, 'vacuum_analyze', sql, target))
    if p['analyze']:
        _check_relations(s, database, p['analyze_tables'], ('r', 'm', 'p'), 'analyze_tables')
        if p['analyze_tables']:
            for t in p['analyze_tables']:
                actions.append(Action(database, 'analyze', 'ANALYZE ' + qualified(*split_name(t)),
                                      display(*split_name(t))))
        elif not (p['vacuum'] and not p['vacuum_tables']):   # a whole-database VACUUM (ANALYZE) did it already
            actions.append(Action(database, 'analyze', 'ANALYZE', '(all tables)'))
    if p['reindex_indexes'] or p['reindex_tables']:
        if server_major < 12:
            raise PgOpsError('REINDEX CONCURRENTLY needs PostgreSQL 12 or newer (server %d): empty reindex_indexes '
                             'and reindex_tables' % server_major, step=OPTIONS)
        _check_relations(s, database, p['reindex_tables'], ('r', 'm', 'p'), 'reindex_tables')
        _check_relations(s, database, p['reindex_indexes'], ('i', 'I'), 'reindex_indexes')
        for t in p['reindex_tables'] or []:
            actions.append(Action(database, 'reindex', 'REINDEX TABLE CONCURRENTLY ' + qualified(*split_name(t)),
                                  display(*split_name(t))))
        for t in p['reindex_indexes'] or []:
            actions.append(Action(database, 'reindex', 'REINDEX INDEX CONCURRENTLY ' + qualified(*split_name(t)),
                                  display(*split_name(t))))
    return actions


def run_pg_maintenance_info(module):
    """pg_maintenance_info: collect, never write."""
    try:
        collector = Collector(module, module.params)
        record = collector.collect()
    except PgOpsError as e:
        module.fail_json(msg=e.msg, failed_step=job_step(e.step, MAINTENANCE_STEPS, COLLECT))
    for w in collector.warnings:
        module.warn(w)
    module.exit_json(changed=False, server=record['server'], databases=record['databases'],
                     alerts=record['alerts'], backups=record['backups'], verifications=record['verifications'],
                     history_runs=record['history_runs'], collected_at=record['collected_at'])


def history_paths(directory, when):
    stamp = catalog.make_id(when)
    n = 1
    while True:
        base = 'maintenance_%s%s' % (stamp, '' if n == 1 else '_%d' % n)
        if not os.path.exists(os.path.join(directory, base + '.json')):
            return os.path.join(directory, base + '.json'), os.path.join(directory, base + '.html')
        n += 1


def run_pg_maintenance(module):
    """pg_maintenance: decide the actions in every database, run them (not in check mode), collect the facts,
    write one history record and one HTML report."""
    p = module.params
    result = dict(changed=False, actions=[], record_path=None, report_path=None)
    in_progress = COLLECT
    try:
        collector = Collector(module, p)
        target = collector.target
        target.check_container()
        names = collector.databases()
        plan = []
        for name in names:
            with target.psql(name) as s:
                major = major_of(s.query('SHOW server_version_num')[0])
                plan += plan_actions(p, s, name, major)
        hdir = collector.history_dir()
        if p['write_history'] and not hdir:
            raise PgOpsError('write_history needs history_dir or backup_dir (the history goes to '
                             '<backup_dir>/maintenance by default)', step=OPTIONS)
        result['changed'] = bool(plan) or bool(p['write_history'])
        if module.check_mode:
            result['actions'] = [a.as_dict('planned') for a in plan]
        else:
            in_progress = MAINTAIN
            for name in names:
                mine = [a for a in plan if a.database == name]
                if not mine:
                    continue
                with target.psql(name) as s:
                    for a in mine:
                        t = time.time()
                        s.query(a.sql)
                        result['actions'].append(a.as_dict('done', round(time.time() - t, 3)))
        collector.now = now_local()
        in_progress = COLLECT
        record = collector.collect()
        record['actions'] = result['actions']
        record['check_mode'] = module.check_mode
        if p['write_history']:
            in_progress = WRITE
            json_path, html_path = history_paths(hdir, collector.now)
            record['id'] = os.path.basename(json_path)[len('maintenance_'):-len('.json')]
            result.update(record_path=json_path, report_path=html_path)
            if not module.check_mode:
                ensure_dir(hdir)
                write_json_atomic(json_path, record)
                html = render_html(record)
                write_file_atomic(html_path, html.encode('utf-8'))
                write_file_atomic(os.path.join(hdir, 'latest.html'), html.encode('utf-8'))
    except PgOpsError as e:
        module.fail_json(msg=e.msg, failed_step=job_step(e.step, MAINTENANCE_STEPS, in_progress), **result)
    except (IOError, OSError) as e:
        module.fail_json(msg='writing the maintenance history failed: %s' % e, failed_step=WRITE, **result)
    for w in collector.warnings:
        module.warn(w)
    result.update(server=record['server'], databases=record['databases'], alerts=record['alerts'],
                  backups=record['backups'], verifications=record['verifications'],
                  history_runs=record['history_runs'], collected_at=record['collected_at'])
    module.exit_json(**result)
