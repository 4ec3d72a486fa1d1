# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgops.postgresql contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# PRIVATE to the collection: this is not a public API and may change without notice.
"""The roles a database backup needs, and their creation from the globals dump on a server that lacks them.

A database dump names roles (owners, grantees, policies, default privileges) that live outside the database: a
restore onto a new server fails with ``role ... does not exist`` unless they are there first. pg_backup records
the roles each database depends on (``roles``, read from ``pg_shdepend`` with the database's owner and the
bootstrap superuser) and links the globals dump (``pg_dumpall --globals-only``) taken in the same run
(``globals``). A restore that needs roles the server lacks creates exactly those (and the groups they are members
of) from that dump, in one transaction, before the scratch database exists; an existing role is never altered.
SUPERUSER, REPLICATION and BYPASSRLS are not given to a role created this way (the result names what was left
out): a restore must not mint privileged logins on a server.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import re

from ansible_collections.pgops.postgresql.plugins.module_utils import _catalog as catalog
from ansible_collections.pgops.postgresql.plugins.module_utils._connection import quote_ident, quote_literal
from ansible_collections.pgops.postgresql.plugins.module_utils._errors import PgOpsError
from ansible_collections.pgops.postgresql.plugins.module_utils._fsutil import sha256_file
from ansible_collections.pgops.postgresql.plugins.module_utils._pipeline import Stage, run_to_bytes
from ansible_collections.pgops.postgresql.plugins.module_utils._steps import ROLES
from ansible_collections.pgops.postgresql.plugins.module_utils._verdict import BackupFault

# The roles the current database's objects depend on: owners, grantees of privileges (database ones too),
# policies and default privileges (pg_shdepend), the database's owner, roles with settings in it, and the bootstrap
# superuser (pinned: pg_shdepend never names it, yet a dump says OWNER TO it for everything it owns).
ROLES_SQL = """
WITH db AS (SELECT oid, datdba FROM pg_database WHERE datname = current_database())
SELECT coalesce(jsonb_agg(DISTINCT r.rolname ORDER BY r.rolname), '[]')::text
FROM (SELECT s.refobjid AS oid FROM pg_shdepend s, db
      WHERE s.refclassid = 'pg_authid'::regclass
        AND (s.dbid = db.oid OR (s.dbid = 0 AND s.classid = 'pg_database'::regclass AND s.objid = db.oid))
      UNION SELECT datdba FROM db
      UNION SELECT setrole FROM pg_db_role_setting, db WHERE setdatabase = db.oid AND setrole <> 0
      UNION SELECT 10::oid) x
JOIN pg_roles r ON r.oid = x.oid
"""

# the roles of a list that exist on the server
EXISTING_SQL = "SELECT coalesce(jsonb_agg(rolname ORDER BY rolname), '[]')::text FROM pg_roles WHERE rolname = ANY(%s)"

PRIVILEGED = ('SUPERUSER', 'REPLICATION', 'BYPASSRLS')

_IDENT = r'(?:"(?:[^"]|"")*"|[A-Za-z_][A-Za-z0-9_$]*)'
_CREATE_RE = re.compile(r'^CREATE ROLE (%s)\s*$' % _IDENT, re.S)
_ALTER_RE = re.compile(r'^ALTER ROLE (%s) (WITH|SET|RESET|IN DATABASE)\b' % _IDENT, re.S)
_COMMENT_RE = re.compile(r'^(?:COMMENT ON|SECURITY LABEL (?:FOR \S+ )?ON) ROLE (%s) IS\b' % _IDENT, re.S)
_GRANT_RE = re.compile(r'^GRANT (%s) TO (%s)(.*)$' % (_IDENT, _IDENT), re.S)
_GRANTED_BY_RE = re.compile(r'\s+GRANTED BY %s\s*$' % _IDENT)
_TABLESPACE_RE = re.compile(r'^CREATE TABLESPACE (%s)\s' % _IDENT, re.S)


def unquote(ident):
    """The name a (possibly double-quoted) SQL identifier stands for; pg_dumpall quotes all but plain lower case."""
    if ident.startswith('"'):
        return ident[1:-1].replace('""', '"')
    return ident.lower()


def split_statements(sql):
    """The statements of a pg_dumpall script, without their ``;``: comments, blank lines and psql meta-commands
    (``\\connect``) left out, single-quoted literals (which may hold ``;`` and newlines) kept whole."""
    out, buf, i, n = [], [], 0, len(sql)
    at_start = True
    while i < n:
        c = sql[i]
        if at_start and c in ' \t\r\n':
            i += 1
            continue
        if at_start and (sql.startswith('--', i) or c == '\\'):
            end = sql.find('\n', i)
            i = n if end < 0 else end + 1
            continue
        at_start = False
        if c == "'":
            end = i + 1
            while True:
                end = sql.find("'", end)
                if end < 0:
                    raise ValueError('an unterminated string literal')
                if sql.startswith("''", end):
                    end += 2
                    continue
                break
            buf.append(sql[i:end + 1])
            i = end + 1
            continue
        if c == '"':
            end = sql.find('"', i + 1)
            while end >= 0 and sql.startswith('""', end):
                end = sql.find('"', end + 2)
            if end < 0:
                raise ValueError('an unterminated quoted identifier')
            buf.append(sql[i:end + 1])
            i = end + 1
            continue
        if c == ';':
            out.append(''.join(buf).strip())
            buf, at_start = [], True
            i += 1
            continue
        buf.append(c)
        i += 1
    if ''.join(buf).strip():
        out.append(''.join(buf).strip())
    return [s for s in out if s]


def _outside_literals(statement, fn):
    """``statement`` with ``fn`` applied to its text outside literals (a password hash, a date) and quoted names."""
    parts = re.split(r"""('(?:[^']|'')*'|"(?:[^"]|"")*")""", statement)
    return ''.join(p if p[:1] in ("'", '"') else fn(p) for p in parts)


def _unprivileged(statement, dropped):
    """An ``ALTER ROLE ... WITH`` statement without SUPERUSER, REPLICATION and BYPASSRLS (their NO forms instead);
    the attributes left out are added to ``dropped``."""
    def fix(text):
        for attr in PRIVILEGED:
            pattern = re.compile(r'(?<![A-Za-z_])%s(?![A-Za-z_])' % attr)
            if pattern.search(text):
                dropped.add(attr)
                text = pattern.sub('NO' + attr, text)
        return text
    return _outside_literals(statement, fix)


class GlobalsScript(object):
    """The role statements of a globals dump, by role: creation, attributes, settings and comments, memberships."""

    def __init__(self, sql):
        self.create = {}
        self.alter = {}
        self.grants = []        # (group, member, statement without GRANTED BY)
        self.tablespaces = []   # the names of the tablespaces the dump creates, in its order
        for st in split_statements(sql):
            m = _TABLESPACE_RE.match(st)
            if m:
                self.tablespaces.append(unquote(m.group(1)))
                continue
            m = _CREATE_RE.match(st)
            if m:
                self.create[unquote(m.group(1))] = st
                continue
            m = _ALTER_RE.match(st)
            if m:
                self.alter.setdefault(unquote(m.group(1)), []).append((m.group(2) == 'WITH', st))
                continue
            m = _COMMENT_RE.match(st)
            if m:
                self.alter.setdefault(unquote(m.group(1)), []).append((False, st))
                continue
            m = _GRANT_RE.match(st)
            if m and not re.match(r'^\s*(ON|,)', m.group(3) or ''):
                # GRANTED BY names a grantor that may not exist here: the restoring user grants instead
                self.grants.append((unquote(m.group(1)), unquote(m.group(2)), _GRANTED_BY_RE.sub('', st)))

    def plan(self, missing, existing):
        """(roles to create, their statements in order, attributes left out, roles found nowhere) for the roles
        ``missing`` on a server that has ``existing``: the groups a created role is a member of are created too
        when the server lacks them; memberships are granted where both sides exist or are created."""
        wanted = [r for r in missing if r in self.create]
        absent = sorted(r for r in missing if r not in self.create)
        changed = True
        while changed:
            changed = False
            for group, member, dummy in self.grants:
                if member in wanted and group not in wanted and group not in existing and group in self.create:
                    wanted.append(group)
                    changed = True
        wanted.sort()
        dropped = {}
        statements = [self.create[r] for r in wanted]
        for r in wanted:
            for attributes, st in self.alter.get(r, []):
                if attributes:
                    left_out = set()
                    st = _unprivileged(st, left_out)
                    if left_out:
                        dropped[r] = sorted(left_out)
                statements.append(st)
        have = set(existing) | set(wanted)
        for group, member, st in self.grants:
            if (group in wanted or member in wanted) and group in have and member in have:
                statements.append(st)
        return wanted, statements, dropped, absent


def secrets_of(statements):
    """The password literals in ``statements`` (role_passwords dumps): for the module's no_log_values."""
    found = []
    for st in statements:
        for m in re.finditer(r"\bPASSWORD\s+('(?:[^']|'')*')", st):
            found.append(m.group(1)[1:-1].replace("''", "'"))
    return found


def globals_entry(directory, meta, entries=None):
    """The catalog entry of the globals dump linked from database backup ``meta`` (None when it links none, or
    the dump is not in ``directory``)."""
    link = meta.get('globals') or {}
    if not link.get('id'):
        return None
    if entries is None:
        entries, dummy = catalog.load_catalog(directory)
    for e in entries:
        if (e.get('database') == catalog.GLOBALS and e.get('id') == link['id'] and e.get('status') == 'success'
                and (not link.get('file') or e.get('file') == link['file'])):
            return e
    return None


def read_globals(module, identity, entry, directory, env):
    """The SQL text of globals dump ``entry``: its sha256 checked against its metadata, decrypted and
    decompressed in memory (a globals dump is small). A damaged dump is a BackupFault."""
    path = os.path.join(directory, entry['file'])
    if not os.path.isfile(path):
        raise BackupFault('the globals dump %s linked from the backup is missing' % path, step=ROLES)
    size, digest = sha256_file(path)
    if digest != entry.get('sha256') or size != entry.get('size'):
        raise BackupFault('the globals dump %s is damaged: sha256 %s and size %d, its metadata says %s and %s'
                          % (entry['file'], digest, size, entry.get('sha256'), entry.get('size')), step=ROLES)
    stages = []
    age = identity.decryptor(entry)
    if age is not None:
        stages.append(age)
    if entry.get('compression') not in (None, 'none'):
        argv = {'zstd': ['zstd', '-q', '-d', '-c'], 'gzip': ['gzip', '-d', '-c'],
                'lz4': ['lz4', '-q', '-d', '-c']}[entry['compression']]
        stages.append(Stage(argv[0], [module.get_bin_path(argv[0], required=True)] + argv[1:]))
    if not stages:
        stages.append(Stage('cat', [module.get_bin_path('cat', required=True)]))
    data = run_to_bytes(stages, env, ROLES, stdin_path=path, label='reading the globals dump %s' % entry['file'])
    return data.decode('utf-8', 'replace')


def existing_roles(session, names):
    if not names:
        return []
    array = 'ARRAY[%s]::text[]' % ', '.join(quote_literal(n) for n in names)
    return session.query_json(EXISTING_SQL % array) or []


class RolePlan(object):
    """What a restore of backup ``meta`` does about roles on the server of ``session``: nothing (all there, or
    the backup records none), create some from the linked globals dump, or refuse naming the missing ones."""

    def __init__(self, meta, missing, globals_meta=None, script=None, existing=()):
        self.meta = meta
        self.missing = list(missing)
        self.globals_meta = globals_meta
        self.create, self.statements, self.dropped, self.absent = ([], [], {}, list(missing))
        if script is not None:
            self.create, self.statements, self.dropped, self.absent = script.plan(self.missing, existing)

    def describe(self):
        """The plan's step, or None when there is nothing to create."""
        if not self.create:
            return None
        return 'create role%s %s from globals dump %s (an existing role is never altered%s)' % (
            's' if len(self.create) > 1 else '', ', '.join(self.create), self.globals_meta['id'],
            '; not given: %s' % ', '.join('%s to %s' % ('/'.join(v), k) for k, v in sorted(self.dropped.items()))
            if self.dropped else '')


def plan_roles(module, target, identity, session, meta, directory):
    """The RolePlan of restoring ``meta`` on the server of ``session`` (checked in check mode too)."""
    needed = meta.get('roles')
    if not needed:
        return RolePlan(meta, [])
    have = existing_roles(session, needed)
    missing = sorted(set(needed) - set(have))
    if not missing:
        return RolePlan(meta, [])
    entry = globals_entry(directory, meta)
    if entry is None:
        link = meta.get('globals') or {}
        why = ('its globals dump %s is not in %s' % (link.get('id'), directory) if link.get('id') else
               'no globals dump was taken with it')
        raise PgOpsError('backup %s needs role%s %s that this server lacks, and %s: create %s first (or restore '
                         'the globals of the server it came from); nothing was changed'
                         % (meta['id'], 's' if len(missing) > 1 else '', ', '.join(missing), why,
                            'them' if len(missing) > 1 else 'it'), step=ROLES)
    sql = read_globals(module, identity, entry, directory, target.env())
    try:
        script = GlobalsScript(sql)
    except ValueError as e:
        raise BackupFault('the globals dump %s cannot be read: %s' % (entry['file'], e), step=ROLES)
    everything = set(script.create)
    for group, member, dummy in script.grants:
        everything.update((group, member))
    have_all = existing_roles(session, sorted(everything | set(missing)))
    plan = RolePlan(meta, missing, entry, script, have_all)
    for secret in secrets_of(plan.statements):
        module.no_log_values.add(secret)
    if plan.absent:
        raise PgOpsError('backup %s needs role%s %s that this server lacks and that its globals dump %s does not '
                         'hold: create %s first; nothing was changed'
                         % (meta['id'], 's' if len(plan.absent) > 1 else '', ', '.join(plan.absent), entry['id'],
                            'them' if len(plan.absent) > 1 else 'it'), step=ROLES)
    return plan


def restore_plan(module, target, identity, session, meta, directory, drill, checks, warnings):
    """What a restore of ``meta`` does about roles: None when the server has them all (``checks`` says so), the
    RolePlan to carry out otherwise (``warnings`` name the attributes a created role does not get). A ``drill``
    never creates roles on the server it runs on: a missing role fails it, naming the role (inconclusive)."""
    plan = plan_roles(module, target, identity, session, meta, directory)
    if not plan.create:
        if meta.get('roles'):
            checks['roles'] = 'present (%d)' % len(meta['roles'])
        return None
    if drill:
        raise PgOpsError('backup %s needs role%s %s that this server lacks; a drill does not create roles on the '
                         'server it runs on: restore with mode=new (which creates them from globals dump %s), or '
                         'create them' % (meta['id'], 's' if len(plan.create) > 1 else '', ', '.join(plan.create),
                                          plan.globals_meta['id']), step=ROLES)
    checks['roles'] = plan.describe()
    for role, attrs in sorted(plan.dropped.items()):
        warnings.append('role %s is created without %s (a restore never creates privileged roles): grant it by '
                        'hand if it needs it' % (role, ', '.join(attrs)))
    return plan


def create_roles(session, plan):
    """Create the roles of ``plan`` in one transaction (nothing is created when a statement fails)."""
    session.query('BEGIN')
    try:
        for st in plan.statements:
            session.query(st)
        session.query('COMMIT')
    except PgOpsError as e:
        # the session is gone with its transaction (psql exits on the error): nothing was created
        raise PgOpsError('creating role%s %s from globals dump %s failed, none was created: %s'
                         % ('s' if len(plan.create) > 1 else '', ', '.join(plan.create), plan.globals_meta['id'],
                            e.msg), step=ROLES)


def drop_created(session, roles):
    """Drop the roles a restore created before it failed (one statement: all or none); the error, or None."""
    try:
        session.query('DROP ROLE IF EXISTS %s' % ', '.join(quote_ident(r) for r in roles))
    except PgOpsError as e:
        return e.msg
    return None


def link(entry):
    """What a database backup's metadata records of the globals dump of its run."""
    return dict(id=entry['id'], file=entry.get('file') or os.path.basename(entry.get('path') or ''),
                sha256=entry.get('sha256'))


def tablespace_statements(names, location_of):
    """``CREATE TABLESPACE`` of each of ``names`` at ``location_of(name)``: the tablespaces of a globals dump mapped
    into a throwaway instance (their owners left out: the instance's superuser owns them)."""
    return ['CREATE TABLESPACE %s LOCATION %s' % (quote_ident(n), quote_literal(location_of(n))) for n in names]
