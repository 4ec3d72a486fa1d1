# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgops.postgresql contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# PRIVATE to the collection: this is not a public API and may change without notice.
"""A restore's scratch database, from birth to swap: its name (``<target>__restore_<id>``) and the rollback's
(``<target>__rollback_<ts>``) within PostgreSQL's 63 bytes, the pgops mark in its comment that lets the next run
drop what a killed run left, its creation, the database-level settings it is given, and the swap by renames in
one transaction.

Every function takes the admin session (on the maintenance database) it works with and, when it may have to open a
new one (psql stops on an error), an ``open_admin`` callable; it returns the session to go on with.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import hashlib
import json
import time
from contextlib import suppress

from ansible_collections.pgops.postgresql.plugins.module_utils._connection import quote_ident, quote_literal
from ansible_collections.pgops.postgresql.plugins.module_utils._databases import (
    DB_SETTINGS_SQL, database_settings_sql, drop_database, end_sessions, list_databases, locale_clause,
)
from ansible_collections.pgops.postgresql.plugins.module_utils._errors import PgOpsError
from ansible_collections.pgops.postgresql.plugins.module_utils._steps import SCRATCH, SETTINGS, SWAP

NAMEDATALEN = 63
ROLLBACK_TAG = '__rollback_'
RESTORE_TAG = '__restore_'
SCRATCH_MARK = 'pgops:restore '   # a scratch database's comment: ours to drop after an interrupted run


def derived_name(base, suffix):
    """``base + suffix`` within PostgreSQL's 63-byte limit: a long base is cut and given a short hash."""
    full = base + suffix
    if len(full.encode('utf-8')) <= NAMEDATALEN:
        return full
    digest = hashlib.sha1(base.encode('utf-8')).hexdigest()[:6]
    room = NAMEDATALEN - len(suffix.encode('utf-8')) - 7
    cut = base.encode('utf-8')[:room].decode('utf-8', 'ignore')
    return '%s~%s%s' % (cut, digest, suffix)


def scratch_name(target, backup_id):
    return derived_name(target, RESTORE_TAG + backup_id)


def rollback_name(target, stamp):
    return derived_name(target, ROLLBACK_TAG + stamp)


def rollback_prefix(target):
    """Every rollback name of ``target`` starts with this (the cut, if any, depends only on the suffix length)."""
    return rollback_name(target, '00000000_000000')[:-15]


def scratch_prefix(target):
    """Every scratch name of ``target`` starts with this."""
    return scratch_name(target, '00000000_000000')[:-15]


def scratch_info(comment):
    """What a scratch database's comment says of the run that made it (backup, target, host, pid, start), or None
    when the database is not one of ours."""
    if not comment or not comment.startswith(SCRATCH_MARK):
        return None
    try:
        info = json.loads(comment[len(SCRATCH_MARK):])
    except ValueError:
        return None
    return info if isinstance(info, dict) and info.get('target') else None


def create_scratch(admin, open_admin, scratch, owner, facts, server_major, mark, drop_public=False, target=None):
    """CREATE DATABASE ``scratch`` (template0, the encoding and locale of ``facts``: the target's or the backup's)
    with the pgops ``mark`` (a dict) in its comment; ``drop_public``: the backed-up database had no public schema.
    A failure drops what was made (step scratch). Returns the admin session to go on with."""
    create = 'CREATE DATABASE %s TEMPLATE template0 OWNER %s' % (quote_ident(scratch), quote_ident(owner))
    if facts.get('encoding'):
        create += ' ENCODING %s' % quote_literal(facts['encoding'])
    create += locale_clause(facts, server_major)
    try:
        admin.query(create)
        admin.query('COMMENT ON DATABASE %s IS %s' % (
            quote_ident(scratch), quote_literal(SCRATCH_MARK + json.dumps(mark, sort_keys=True))))
    except PgOpsError as e:
        admin = open_admin()
        with suppress(PgOpsError):
            drop_database(admin, scratch)
        raise PgOpsError('creating the scratch database %s failed: %s' % (scratch, e.msg), step=SCRATCH)
    if drop_public:
        # template0 has a public schema and pg_dump does not drop it: the database had none
        with target.psql(scratch) as session:
            session.query('DROP SCHEMA IF EXISTS public')
    return admin


def leftover_scratches(admin, target_db, scratch):
    """The scratch databases of earlier runs of ours on ``target_db`` (name, the run's mark), to drop: the caller
    holds the target's restore lock, so none of them is running. A database named ``scratch`` that we did not make
    is refused (step scratch); other unmarked names are left alone."""
    found = []
    for name in list_databases(admin, prefix=scratch_prefix(target_db)):
        comment = admin.query_json("SELECT to_jsonb(shobj_description(oid, 'pg_database'))::text FROM pg_database "
                                   "WHERE datname = %s" % quote_literal(name))
        info = scratch_info(comment)
        if not info or info.get('target') != target_db:
            if name == scratch:
                raise PgOpsError('a database named %s exists and was not made by pgops (no pgops comment): '
                                 'refusing to drop it; rename or drop it yourself' % name, step=SCRATCH)
            continue
        found.append((name, info))
    return found


def copy_database_settings(admin, source, dest):
    """Carry what pg_dump without --create leaves out from the replaced database to its replacement: database
    privileges, per-database (and per-role-in-database) settings, connection limit and comment. Without this a
    restore could reopen a database to PUBLIC or lose the application's search_path. Returns the statement count."""
    facts = admin.query_json(DB_SETTINGS_SQL % quote_literal(source))
    if facts is None:
        raise PgOpsError('database %s disappeared during the restore' % source, step=SETTINGS)
    statements = database_settings_sql(facts, dest, comment=False)
    try:
        for sql in statements:
            admin.query(sql)
    except PgOpsError as e:
        raise PgOpsError('carrying the database settings of %s over to %s failed: %s' % (source, dest, e.msg),
                         step=SETTINGS)
    return len(statements)


def apply_recorded_settings(admin, open_admin, facts, dest, warnings):
    """The database settings recorded with a backup (``facts``), on ``dest``. One that cannot be applied (a role
    that does not exist on this server) is a warning: the restored data is good all the same.
    Returns (admin session to go on with, statements applied)."""
    applied = 0
    for sql in database_settings_sql(facts or {}, dest, comment=False):
        try:
            admin.query(sql)
            applied += 1
        except PgOpsError as e:
            warnings.append('a database setting of the backup could not be applied (%s): %s' % (sql, e.msg))
            admin = open_admin()   # psql stopped on the error
    return admin, applied


def swap(admin, open_admin, target_db, scratch, rollback, comment=False):
    """End the target's sessions and rename target -> rollback, scratch -> target in one transaction.

    ``comment`` (a SQL literal or NULL) replaces the incoming database's comment in the same transaction: a scratch
    database keeps its pgops mark until the swap commits, so a run killed before that leaves a scratch database the
    next run recognises and drops. Returns (admin session to go on with, sessions terminated)."""
    terminated = 0
    for attempt in range(10):
        terminated += end_sessions(admin, target_db)
        try:
            admin.query('BEGIN')
            admin.query('ALTER DATABASE %s RENAME TO %s' % (quote_ident(target_db), quote_ident(rollback)))
            admin.query('ALTER DATABASE %s RENAME TO %s' % (quote_ident(scratch), quote_ident(target_db)))
            if comment is not False:
                admin.query('COMMENT ON DATABASE %s IS %s' % (quote_ident(target_db), comment))
            admin.query('COMMIT')
            break
        except PgOpsError as e:
            # psql stopped on the error (ON_ERROR_STOP): nothing was renamed; retry with a new session
            admin.close()
            if attempt == 9 or 'being accessed by other users' not in e.msg:
                raise PgOpsError('swapping %s and %s failed: %s' % (scratch, target_db, e.msg), step=SWAP)
            admin = open_admin()
            time.sleep(0.2)
    return admin, terminated


def rename_in(admin, scratch, target_db, comment):
    """Rename ``scratch`` to ``target_db`` (which does not exist), giving it ``comment`` (None: no comment) in the
    same transaction: the pgops mark goes only when the rename commits."""
    admin.query('BEGIN')
    admin.query('COMMENT ON DATABASE %s IS %s' % (quote_ident(scratch), 'NULL' if comment is None else
                                                  quote_literal(comment)))
    admin.query('ALTER DATABASE %s RENAME TO %s' % (quote_ident(scratch), quote_ident(target_db)))
    admin.query('COMMIT')
    return admin
