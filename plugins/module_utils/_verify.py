# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgops.postgresql contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# PRIVATE to the collection: this is not a public API and may change without notice.
"""Verifying a restored scratch database against its backup's metadata: exact row counts of every table, the
object sets, the user's assertions and amcheck. A difference is the backup's fault (BackupFault); an assertion
that cannot run, or amcheck finding a damaged index this server just built, is not (inconclusive)."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible_collections.pgops.postgresql.plugins.module_utils._databases import objects_record, read_objects
from ansible_collections.pgops.postgresql.plugins.module_utils._errors import PgOpsError
from ansible_collections.pgops.postgresql.plugins.module_utils._steps import VERIFY
from ansible_collections.pgops.postgresql.plugins.module_utils._verdict import BackupFault

ROW_COUNTS = 'row_counts'     # the checks compare() reports under (keys of a verification's ``checks``)
OBJECTS = 'objects'
ASSERTIONS = 'assertions'
SET_KEYS = ('partitioned_tables', 'views', 'materialized_views', 'sequences', 'functions', 'schemas', 'extensions')
BTREE_CHECK_SQL = """
SELECT count(@SCHEMA@.bt_index_check(c.oid))::text FROM pg_index i
JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am am ON am.oid = c.relam
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE am.amname = 'btree' AND c.relkind = 'i' AND c.relpersistence <> 't' AND i.indisready AND i.indisvalid
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%'
"""
AMCHECK_SCHEMA = 'pgops_amcheck'   # amcheck's own schema in the scratch database: a database may have no public


def compare(meta, found):
    """Differences between the metadata (the dump's snapshot) and a restored database, as (check, message) pairs:
    ``row_counts`` for tables missing, unexpected or with other row counts, ``objects`` for the other object sets."""
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
    return problems


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
            problems = compare(meta, found)
            for check in (ROW_COUNTS, OBJECTS):
                checks[check] = 'failed' if any(c == check for c, dummy in problems) else 'passed'
        else:
            # no counts to compare with (an adopted backup before its first drill): it must restore and hold
            # tables; the counts found are recorded with the verification, never taken as passed
            problems = [] if found.get('tables') else [(ROW_COUNTS, (
                'backup %s has no recorded row counts and its restore holds no table: nothing proves it holds '
                'the data' % meta['id']))]
            checks[ROW_COUNTS] = 'failed' if problems else 'recorded (no counts to compare with)'
            checks[OBJECTS] = 'recorded (no object names to compare with)'
            if not problems:
                found_counts = counts_from_restore(found, now)
        checks['tables_verified'] = len(found.get('tables') or [])
        checks['rows_verified'] = sum(x['rows'] for x in found.get('tables') or [])
        for i, sql in enumerate(assertions or []):
            try:
                lines = s.query(sql)
            except PgOpsError as e:
                checks[ASSERTIONS] = 'error'
                raise PgOpsError('assertion %d (%s) could not run: %s; this says nothing about the backup (fix '
                                 'the assertion)' % (i + 1, sql, e.msg), step=VERIFY)
            if not lines or lines[0].strip() not in ('t', 'true'):
                problems.append((ASSERTIONS, 'assertion %d is not true: %s (returned %r)'
                                 % (i + 1, sql, lines[0] if lines else None)))
        if assertions:
            checks[ASSERTIONS] = 'failed' if any(c == ASSERTIONS for c, dummy in problems) else 'passed'
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


def check_btree_indexes(s, problems, warnings):
    """amcheck's bt_index_check on every valid B-tree index of the session's database; its outcome as text.
    Corruption found is appended to ``problems``; amcheck that cannot be installed is a warning."""
    available = s.query("SELECT count(*) FROM pg_available_extensions WHERE name = 'amcheck'")
    if not available or available[0] != '1':
        return 'unavailable'
    schema = s.query("SELECT quote_ident(n.nspname) FROM pg_extension e JOIN pg_namespace n "
                     "ON n.oid = e.extnamespace WHERE e.extname = 'amcheck'")
    had = bool(schema)
    if not had:
        try:
            # its own schema: a database may have no public schema
            s.query('CREATE SCHEMA %s' % AMCHECK_SCHEMA)
            s.query('CREATE EXTENSION amcheck SCHEMA %s' % AMCHECK_SCHEMA)
        except PgOpsError as e:   # not allowed to (no superuser): no check was made, nothing was found
            warnings.append('amcheck was not run: CREATE EXTENSION amcheck failed: %s' % e.msg)
            return 'unavailable (CREATE EXTENSION amcheck failed)'
    try:
        checked = s.query(BTREE_CHECK_SQL.replace('@SCHEMA@', schema[0] if had else AMCHECK_SCHEMA))
        if not had:
            s.query('DROP EXTENSION amcheck')
            s.query('DROP SCHEMA %s' % AMCHECK_SCHEMA)
    except PgOpsError as e:
        problems.append('amcheck found corruption: %s' % e.msg)
        return 'failed'
    return 'passed (%s B-tree indexes)' % checked[0]
