# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgops.postgresql contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# PRIVATE to the collection: this is not a public API and may change without notice.
"""The closed set of step names a failure can carry (``failed_step`` in results, metadata and the audit log).

A step says where a job failed; it is never free text (a command's label goes in the message). Every
PgOpsError is checked against ALL_STEPS when it is made, and each job normalises the steps of its failures to its
own set with ``job_step``: a session's own step (``query``, ``connect``) becomes the step in progress.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

# -- the names ----------------------------------------------------------------------------------------------
OPTIONS = 'options'
PREFLIGHT = 'preflight'
CONNECT = 'connect'
QUERY = 'query'                 # a psql session failed: only ever a session's own step, never a job's
LOCK = 'lock'
DUMP = 'dump'
COUNT = 'count'
WRITE = 'write'
GUARD = 'guard'
CHOOSE = 'choose'
FILE_CHECK = 'file_check'
SCRATCH = 'scratch'
PRE_RESTORE_BACKUP = 'pre_restore_backup'
RESTORE = 'restore'
VERIFY = 'verify'
ROLES = 'roles'                 # roles a restore needs, created from the backup's globals dump
SETTINGS = 'settings'
SWAP = 'swap'
ROLLBACK = 'rollback'
INTERNAL = 'internal'
PLAN = 'plan'
DROP = 'drop'
LIST = 'list'
UPLOAD = 'upload'
CHECK_UPLOAD = 'check_upload'
DOWNLOAD = 'download'
CHECKSUM = 'checksum'
DELETE = 'delete'
RECORD = 'record'
IO = 'io'
CATALOG = 'catalog'
COLLECT = 'collect'
MAINTAIN = 'maintain'
STANZA = 'stanza'               # pgBackRest: stanza-create / check
BACKUP = 'backup'               # pgBackRest: the physical backup itself
INFO = 'info'                   # pgBackRest: reading the repository (info --output=json)
TARGET = 'target'               # a point-in-time target checked against the recoverable window
START = 'start'                 # starting a (scratch or switched) PostgreSQL instance
RECOVERY = 'recovery'           # waiting for recovery to reach its target and promote
INSTANCE = 'instance'           # a drill's throwaway instance: made, initialised, started (or removed)

# -- one set per job kind -------------------------------------------------------------------------------------
BACKUP_STEPS = frozenset((OPTIONS, PREFLIGHT, CONNECT, LOCK, DUMP, COUNT, WRITE))
RESTORE_STEPS = frozenset((OPTIONS, GUARD, CHOOSE, LOCK, PREFLIGHT, INSTANCE, FILE_CHECK, ROLES, SCRATCH,
                           PRE_RESTORE_BACKUP, RESTORE, VERIFY, SETTINGS, SWAP, ROLLBACK, INTERNAL))
ROTATE_STEPS = frozenset((OPTIONS, PLAN, PREFLIGHT, CONNECT, DROP))
OFFSITE_STEPS = frozenset((OPTIONS, CONNECT, LIST, PLAN, UPLOAD, CHECK_UPLOAD, DOWNLOAD, CHECKSUM, DELETE, RECORD,
                           LOCK, IO))
MAINTENANCE_STEPS = frozenset((OPTIONS, PREFLIGHT, CONNECT, CATALOG, COLLECT, MAINTAIN, WRITE))
# what a psql session or a tool probe raises on its own, before a job names the step it was in
SESSION_STEPS = frozenset((QUERY, CONNECT, PREFLIGHT))
PGBACKREST_STEPS = frozenset((OPTIONS, PREFLIGHT, CONNECT, SETTINGS, STANZA, BACKUP, INFO, TARGET, SCRATCH, RESTORE,
                              START, RECOVERY, VERIFY, SWAP, ROLLBACK, INTERNAL))

ALL_STEPS = frozenset(BACKUP_STEPS | RESTORE_STEPS | ROTATE_STEPS | OFFSITE_STEPS | MAINTENANCE_STEPS |
                      SESSION_STEPS | PGBACKREST_STEPS)


def check_step(step):
    """``step`` itself when it is one of ALL_STEPS (or None: not known yet); ValueError otherwise."""
    if step is not None and step not in ALL_STEPS:
        raise ValueError('%r is not a step name (one of %s)' % (step, ', '.join(sorted(ALL_STEPS))))
    return step


def job_step(step, steps, in_progress):
    """The step of a job of kind ``steps`` that a failure named ``step`` belongs to: ``step`` when the job knows
    it, else ``in_progress`` (the step the job was in: a lost session, an unnamed failure)."""
    if in_progress not in steps:
        raise ValueError('%r is not a step of this job (one of %s)' % (in_progress, ', '.join(sorted(steps))))
    return step if step in steps else in_progress
