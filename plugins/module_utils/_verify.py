# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgops.postgresql contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# PRIVATE to the collection: this is not a public API and may change without notice.
"""The one verifier of a restore, logical or physical, with one vocabulary for a check's outcome: ``passed``
(``passed (what was compared)``), ``failed``, ``error`` (it could not run), ``unavailable`` (amcheck not at hand),
``not recorded by this backup``.

- a restored scratch database against its backup's metadata (pg_restore_verified): exact row counts of every
  table, the object sets, the large objects (count and size), the sequence values, the user's assertions and
  amcheck. A difference is the backup's fault (BackupFault); an assertion that cannot run, or amcheck finding a
  damaged index this server just built, is not (inconclusive);
- a restored instance (pgbackrest_restore): it accepts connections, holds the databases and tables expected, the
  assertions hold, amcheck finds no corrupt B-tree index (``verify_instance``).

An assertion is true when its first row is ``t`` or ``true``."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible_collections.pgops.postgresql.plugins.module_utils._databases import (
    objects_record, read_objects, read_sequences,
)
from ansible_collections.pgops.postgresql.plugins.module_utils._connection import quote_ident, quote_literal
from ansible_collections.pgops.postgresql.plugins.module_utils._errors import PgOpsError
from ansible_collections.pgops.postgresql.plugins.module_utils._steps import VERIFY
from ansible_collections.pgops.postgresql.plugins.module_utils._verdict import BackupFault

ROW_COUNTS = 'row_counts'     # the checks compare() reports under (keys of a verification's ``checks``)
OBJECTS = 'objects'
ASSERTIONS = 'assertions'
LARGE_OBJECTS = 'large_objects'
SEQUENCES = 'sequences'
NOT_RECORDED = 'not recorded by this backup'
PASSED = 'passed'             # a check's outcomes
FAILED = 'failed'
ERROR = 'error'
UNAVAILABLE = 'unavailable'
TRUE = ('t', 'true')          # what psql prints for an assertion that holds
MOVED_SHOWN = 5               # sequences named in the note of those that moved during the dump
SET_KEYS = ('partitioned_tables', 'views', 'materialized_views', 'sequences', 'functions', 'schemas', 'extensions')
BTREE_CHECK_SQL = """
SELECT count(@SCHEMA@.bt_index_check(c.oid))::text FROM pg_index i
JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am am ON am.oid = c.relam
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE am.amname = 'btree' AND c.relkind = 'i' AND c.relpersistence <> 't' AND i.indisready AND i.indisvalid
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%'
"""
AMCHECK_SCHEMA = 'pgops_amcheck'   # amcheck's own schema in the scratch database: a database may have no public


def compare(meta, found, notes=None):
    """Differences between the metadata (the dump's snapshot) and a restored database, as (check, message) pairs:
    ``row_counts`` for tables missing, unexpected or with other row counts, ``objects`` for the other object sets,
    ``large_objects`` and ``sequences`` (when both the metadata and ``found`` have them: older backups recorded
    neither, and ``found`` holds ``sequence_values`` only when they were read). ``notes``: a dict that gets, for a
    check that passed, what it compared (``{check: text}``)."""
    problems = []
    want = dict(('%s.%s' % (t['schema'], t['name']), t['rows']) for t in meta.get('tables') or [])
    got = dict(('%s.%s' % (t['schema'], t['name']), t['rows']) for t in found.get('tables') or [])
    missing = sorted(set(want) - set(got))
    extra = sorted(set(got) - set(want))
    if missing:
        problems.append((ROW_COUNTS, 'tables missing: %s' % ', '.join(missing)))
    if extra:
        problems.append((ROW_COUNTS, 'unexpected tables: %s' % ', '.join(extra)))
    wrong = ['%s has %d rows, the backup says %d' % (k, got[k], want[k]) for k in sorted(want)
             if k in got and got[k] != want[k]]
    if wrong:
        problems.append((ROW_COUNTS, 'row counts differ: %s' % '; '.join(wrong)))
    names = meta.get('object_names') or {}
    for key in SET_KEYS:
        if key not in names:
            continue
        a, b = set(names[key]), set(found.get(key) or [])
        if a - b:
            problems.append((OBJECTS, '%s missing: %s' % (key.replace('_', ' '), ', '.join(sorted(a - b)))))
        if b - a and key != 'extensions':
            problems.append((OBJECTS, 'unexpected %s: %s' % (key.replace('_', ' '), ', '.join(sorted(b - a)))))
    notes = {} if notes is None else notes
    if meta.get('large_objects') is not None and found.get('large_objects') is not None:
        problems += compare_large_objects(meta['large_objects'], found['large_objects'], notes)
    if meta.get('sequence_values') is not None and found.get('sequence_values') is not None:
        problems += compare_sequences(meta['sequence_values'], found['sequence_values'], notes)
    return problems


def compare_large_objects(recorded, found, notes):
    """The large objects restored (``found``: count, size) against those of the dump's snapshot: another count, or
    another total size when both sizes could be read, is the backup's."""
    if found['count'] != recorded['count']:
        return [(LARGE_OBJECTS, 'large objects differ: %d restored, the backup says %d'
                 % (found['count'], recorded['count']))]
    if recorded.get('size') is None or found.get('size') is None:
        notes[LARGE_OBJECTS] = '%d large objects; their size was not compared: %s' % (
            found['count'], (found if found.get('size') is None else recorded).get('size_note') or 'not read')
        return []
    if found['size'] != recorded['size']:
        return [(LARGE_OBJECTS, 'large objects differ in size: %d bytes restored, the backup says %d'
                 % (found['size'], recorded['size']))]
    notes[LARGE_OBJECTS] = '%d large objects, %d bytes' % (found['count'], found['size'])
    return []


def _position(value):
    """A sequence's place: the last value it handed out (or the one before its next when it was never called)."""
    return value['last_value'] if value['is_called'] else value['last_value'] - value['increment']


def _shown(value):
    return '%d' % value['last_value'] + ('' if value['is_called'] else ' (is_called false)')


def compare_sequences(recorded, found, notes):
    """Restored sequence values against those read when the dump started. pg_dump reads each sequence later than
    that (sequences are not transactional), so a value further on in the sequence's direction moved during the
    dump (noted); one behind is the backup's. A cycling sequence may have wrapped: behind is noted, not failed.
    A sequence missing from the restore is the objects check's to report."""
    behind, moved, wrapped = [], [], []
    for name in sorted(recorded):
        want, got = recorded[name], found.get(name)
        if got is None:
            continue
        step = (_position(got) - _position(want)) * (1 if want['increment'] > 0 else -1)
        if step == 0:
            continue
        text = '%s %s -> %s' % (name, _shown(want), _shown(got))
        if step > 0:
            moved.append(text)
        elif want.get('cycle'):
            wrapped.append(text)
        else:
            behind.append('%s is at %s, the backup says %s' % (name, _shown(got), _shown(want)))
    if behind:
        return [(SEQUENCES, 'sequences behind the backup: %s' % '; '.join(behind))]
    note = '%d sequences' % len([n for n in recorded if n in found])
    for what, items in (('moved forward during the dump', moved), ('cycling, moved back (wrapped?)', wrapped)):
        if items:
            note += '; %s: %s' % (what, ', '.join(items[:MOVED_SHOWN]))
            if len(items) > MOVED_SHOWN:
                note += ' and %d more' % (len(items) - MOVED_SHOWN)
    notes[SEQUENCES] = note
    return []


def has_counts(meta):
    """Whether the metadata holds row counts to compare a restore with: the dump's snapshot counts (pg_backup), or
    the counts a first verified restore recorded for a backup that had none (an adopted one)."""
    return meta.get('tables') is not None


def counts_from_restore(found, when):
    """The record of the counts a verified restore found, for a backup without counts of its own: the keys
    pg_backup writes (``tables``, ``rows_total``, ``objects``, ``object_names``), marked as read from a restore."""
    return dict(objects_record(found), tables_source='drill', counts_from_restore=True, counts_recorded_at=when)


def verify_scratch(target, meta, scratch, assertions, amcheck, checks, warnings, now):
    """Verify ``scratch`` (restored from backup ``meta``); fills ``checks`` and ``warnings`` as it goes (they are
    recorded even when it fails) and returns the counts to record for a backup without any (else None).

    Raises BackupFault for a difference, PgOpsError (inconclusive) for what says nothing about the backup."""
    found_counts = None
    with target.psql(scratch) as s:
        found = read_objects(s, meta.get('format_version') or 1)
        if has_counts(meta):
            if meta.get('sequence_values') is not None:
                found['sequence_values'] = read_sequences(s)
            notes = {}
            problems = compare(meta, found, notes)
            # older backups recorded neither large objects nor sequence values: nothing to compare them with
            unrecorded = [c for c, key in ((LARGE_OBJECTS, 'large_objects'), (SEQUENCES, 'sequence_values'))
                          if meta.get(key) is None]
            for check in (ROW_COUNTS, OBJECTS, LARGE_OBJECTS, SEQUENCES):
                if check in unrecorded:
                    checks[check] = NOT_RECORDED
                elif any(c == check for c, dummy in problems):
                    checks[check] = FAILED
                else:
                    checks[check] = '%s (%s)' % (PASSED, notes[check]) if check in notes else PASSED
        else:
            # no counts to compare with (an adopted backup before its first drill): it must restore and hold
            # tables; the counts found are recorded with the verification, never taken as passed
            problems = [] if found.get('tables') else [(ROW_COUNTS, (
                'backup %s has no recorded row counts and its restore holds no table: nothing proves it holds '
                'the data' % meta['id']))]
            checks[ROW_COUNTS] = FAILED if problems else 'recorded (no counts to compare with)'
            checks[OBJECTS] = 'recorded (no object names to compare with)'
            if not problems:
                found_counts = counts_from_restore(found, now)
        checks['tables_verified'] = len(found.get('tables') or [])
        checks['rows_verified'] = sum(x['rows'] for x in found.get('tables') or [])
        for i, sql in enumerate(assertions or []):
            try:
                lines = s.query(sql)
            except PgOpsError as e:
                checks[ASSERTIONS] = ERROR
                raise PgOpsError('assertion %d (%s) could not run: %s; this says nothing about the backup (fix '
                                 'the assertion)' % (i + 1, sql, e.msg), step=VERIFY)
            if not is_true(lines):
                problems.append((ASSERTIONS, 'assertion %d is not true: %s (returned %r)'
                                 % (i + 1, sql, lines[0] if lines else None)))
        if assertions:
            checks[ASSERTIONS] = FAILED if any(c == ASSERTIONS for c, dummy in problems) else PASSED
        damaged = []
        if amcheck:
            checks['amcheck'] = check_btree_indexes(s, damaged, warnings)
    if problems:
        raise BackupFault('verification of %s against backup %s failed: %s'
                          % (scratch, meta['id'], '; '.join([m for dummy, m in problems] + damaged)), step=VERIFY)
    if damaged:
        raise PgOpsError('verification of %s failed: %s (an index this server just built: check the server)'
                         % (scratch, '; '.join(damaged)), step=VERIFY)
    return found_counts


def is_true(lines):
    """Whether an assertion's output (psql's lines) says it holds."""
    return bool(lines) and lines[0].strip() in TRUE


def btree_check_sql(schema):
    """The amcheck query over every valid B-tree index, with amcheck in ``schema`` (quoted here)."""
    return BTREE_CHECK_SQL.replace('@SCHEMA@', quote_ident(schema))


def btree_check(s, warnings):
    """amcheck's bt_index_check on every valid B-tree index of the session's database: (outcome, indexes checked,
    corruption found or None). amcheck not available, or not installable (no superuser), is ``unavailable``
    (the latter with a warning): no check was made, nothing was found."""
    available = s.query("SELECT count(*) FROM pg_available_extensions WHERE name = 'amcheck'")
    if not available or available[0] != '1':
        return UNAVAILABLE, None, None
    schema = s.query("SELECT n.nspname FROM pg_extension e JOIN pg_namespace n "
                     "ON n.oid = e.extnamespace WHERE e.extname = 'amcheck'")
    had = bool(schema)
    if not had:
        try:
            # its own schema: a database may have no public schema
            s.query('CREATE SCHEMA %s' % AMCHECK_SCHEMA)
            s.query('CREATE EXTENSION amcheck SCHEMA %s' % AMCHECK_SCHEMA)
        except PgOpsError as e:
            warnings.append('amcheck was not run: CREATE EXTENSION amcheck failed: %s' % e.msg)
            return UNAVAILABLE + ' (CREATE EXTENSION amcheck failed)', None, None
    try:
        checked = s.query(btree_check_sql(schema[0] if had else AMCHECK_SCHEMA))
        if not had:
            s.query('DROP EXTENSION amcheck')
            s.query('DROP SCHEMA %s' % AMCHECK_SCHEMA)
    except PgOpsError as e:
        return FAILED, None, e.msg
    return PASSED, int(checked[0]), None


def check_btree_indexes(s, problems, warnings):
    """btree_check's outcome as text; corruption found is appended to ``problems``."""
    outcome, checked, corruption = btree_check(s, warnings)
    if corruption:
        problems.append('amcheck found corruption: %s' % corruption)
    return '%s (%d B-tree indexes)' % (PASSED, checked) if outcome == PASSED else outcome


# -- a restored instance (pgbackrest_restore) ---------------------------------------------------------------------
INSTANCE_SQL = ("SELECT json_build_object('replayed', pg_last_xact_replay_timestamp(), "
                "'databases', (SELECT json_agg(datname ORDER BY datname) FROM pg_database "
                "WHERE datallowconn AND NOT datistemplate))::text")


def read_instance(target, maintenance_db):
    """What a restored instance says of itself: ``replayed`` (the last replayed commit) and its ``databases``.
    Connecting is the first check: PgOpsError when it does not accept connections."""
    with target.psql(maintenance_db) as s:
        return s.query_json(INSTANCE_SQL)


def missing_tables(s, tables):
    """Of ``tables`` (``schema.name``), those the session's database does not hold."""
    missing = []
    for table in tables:
        schema, name = table.split('.', 1)
        found = s.query("SELECT to_regclass(format('%%I.%%I', %s, %s)) IS NOT NULL"
                        % (quote_literal(schema), quote_literal(name)))
        if not is_true(found):
            missing.append(table)
    return missing


def verify_instance(target, found, want, checks, warnings):
    """The checks of a restored instance (``found``: read_instance's), filled into ``checks`` as they go so that a
    failure shows which one failed; PgOpsError at verify for the first that fails.

    ``want``: ``maintenance_db``, ``databases`` (that must be there; also those that expected_tables and amcheck
    look into, else every database), ``expected_tables``, ``assertions`` (dicts: ``sql``, ``database``), ``amcheck``."""
    databases = want.get('databases') or found.get('databases') or []
    missing_db = sorted(set(want.get('databases') or []) - set(found.get('databases') or []))
    if missing_db:
        raise PgOpsError('databases missing after the restore: %s' % ', '.join(missing_db), step=VERIFY)
    if want.get('expected_tables'):
        missing = []
        for db in want['databases']:
            with target.psql(db) as s:
                missing += ['%s in %s' % (table, db) for table in missing_tables(s, want['expected_tables'])]
        checks['expected_tables'] = FAILED if missing else PASSED
        if missing:
            raise PgOpsError('expected tables missing: %s' % ', '.join(missing), step=VERIFY)
    instance_assertions(target, want.get('assertions') or [], want['maintenance_db'], checks)
    if want.get('amcheck'):
        checks['amcheck'] = amcheck_databases(target, databases, warnings)
    return checks


def instance_assertions(target, assertions, default_db, checks):
    """Every assertion run (each in its database); PgOpsError at verify naming those that are not true or could
    not run."""
    failed, errors = [], 0
    for a in assertions:
        db = a.get('database') or default_db
        try:
            with target.psql(db) as s:
                out = s.query(a['sql'])
        except PgOpsError as e:
            failed.append('%s (in %s) could not run: %s' % (a['sql'], db, e.msg))
            errors += 1
            continue
        if not is_true(out):
            failed.append('%s (in %s) returned %s' % (a['sql'], db, out[0] if out else 'no row'))
    if assertions:
        checks[ASSERTIONS] = PASSED if not failed else ERROR if errors == len(failed) else FAILED
    if failed:
        raise PgOpsError('assertions failed: %s' % '; '.join(failed), step=VERIFY)


def amcheck_databases(target, databases, warnings):
    """btree_check in each of ``databases``: ``passed (N B-tree indexes)``, or the first database's reason it was
    ``unavailable``; PgOpsError at verify naming the database with a corrupt index."""
    checked = 0
    for db in databases:
        with target.psql(db) as s:
            outcome, count, corruption = btree_check(s, warnings)
        if corruption:
            raise PgOpsError('amcheck found a corrupt index in %s: %s' % (db, corruption), step=VERIFY)
        if outcome != PASSED:
            return outcome
        checked += count
    return '%s (%d B-tree indexes)' % (PASSED, checked)
