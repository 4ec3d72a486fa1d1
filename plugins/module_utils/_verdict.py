# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgops.postgresql contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# PRIVATE to the collection: this is not a public API and may change without notice.
"""The verdict of a failed restore: a BackupFault when the failure is evidence about the backup itself, the error
unchanged (inconclusive) when it is about the environment."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import re
import signal

from ansible_collections.pgops.postgresql.plugins.module_utils._errors import PgOpsError

# What a failed restore says about the backup. Only evidence about the backup itself marks it failed: its file
# (missing, sha256, unreadable archive), a restore error caused by the dump's content, row counts or objects
# that differ, an assertion that runs and returns false. Anything else - a killed client, a full disk, a lost
# connection, a missing role, an assertion that cannot run - is inconclusive and leaves its verdict as it was.
ENV_SQLSTATE_CLASSES = ('08', '25', '28', '3D', '40', '53', '55', '57', '58', 'F0', 'HV', 'XX')
ENV_SQLSTATES = ('42501',)          # insufficient privilege
ENV_PATTERNS = (
    'no space left on device', 'could not extend file', 'could not write to file', 'out of memory',
    'server closed the connection', 'connection to server', 'terminating connection', 'could not connect',
    'too many connections', 'the database system is', 'canceling statement', 'deadlock detected',
    'could not obtain lock', 'permission denied', 'must be owner', 'could not open extension control file',
    'could not access file', 'error response from daemon', 'no such container', 'is not running',
    'oci runtime', 'cannot connect to the docker daemon', 'read error', 'input/output error',
)
# a truncated compressed stream: zstd says "Read error (39) : premature end", which is about the file's content
# (it ends too early), not an I/O error, although it holds "read error"
CONTENT_PATTERNS = ('premature end',)
# a global object the server lacks (pg_dump's SET default_tablespace fails as an invalid value): not the backup's
MISSING_GLOBAL_RE = re.compile(r'(role|tablespace) "[^"]*" does not exist|invalid value for parameter "default_tablespace"')
SQLSTATE_RE = re.compile(r'(?:ERROR|FATAL|PANIC):\s+([0-9A-Z]{5}):')
KILLED_CODES = (128 + signal.SIGKILL, 128 + signal.SIGTERM, 128 + signal.SIGINT, 128 + signal.SIGHUP)
RUNTIME_CODES = (125, 126, 127)     # docker/podman exec could not run the command


class BackupFault(PgOpsError):
    """A failure that is evidence about the backup itself: the backup's verdict becomes ``failed``."""


# age -d's words when no stanza of the header opens with the identities given
AGE_NO_MATCH = 'no identity matched any of the recipients'


def judge(err, identity_matches=None):
    """``err`` as a BackupFault when its cause is the backup's content, unchanged (inconclusive) otherwise.

    ``identity_matches``: the public keys of the age identity given that are recipients of the backup (its
    metadata's ``encryption.recipients``), as the run's own check found; empty or None when that is not known."""
    stages = getattr(err, 'stages', None)
    if not stages:
        return err                 # a program that could not start, a session error: nothing about the backup
    by_age = _judge_age(err, stages, identity_matches)
    if by_age is not None:
        return by_age
    for name, rc, text in stages:
        low = text.lower()
        if rc is None or rc < 0 or rc in KILLED_CODES or rc in RUNTIME_CODES:
            return err
        if name in ('zstd', 'gzip', 'lz4') and any(p in low for p in CONTENT_PATTERNS):
            continue
        if any(p in low for p in ENV_PATTERNS) or MISSING_GLOBAL_RE.search(text):
            return err
        if name == 'psql' and rc in (1, 2):
            return err             # psql: 2 = the connection was lost, 1 = a fatal error of its own
        for code in SQLSTATE_RE.findall(text):
            if code[:2] in ENV_SQLSTATE_CLASSES or code in ENV_SQLSTATES:
                return err
    fault = BackupFault(err.msg, step=err.step)
    fault.stages = stages
    return fault


def _judge_age(err, stages, identity_matches=None):
    """The verdict when ``age -d`` failed: its failure decides (the stages after it only saw its stream end).
    A key that does not fit, or an identity that cannot be read, says nothing about the backup (inconclusive);
    a ciphertext that does not decrypt - after its sha256 matched the metadata - is the backup's fault, and so is
    a header that no identity opens when the identity is one of the recipients the backup records: the file key
    wrapped for it no longer unwraps (a damaged header, or metadata that does not describe the file)."""
    for name, rc, text in stages:
        if name != 'age' or rc in (0, None):
            continue
        low = text.lower()
        if rc < 0 or rc in KILLED_CODES or rc in RUNTIME_CODES or any(p in low for p in ENV_PATTERNS):
            return err
        if AGE_NO_MATCH in low and identity_matches:
            fault = BackupFault('%s - the identity given (public key %s) is a recipient of this backup by its '
                                'metadata, so the age header is damaged (the file key wrapped for that recipient '
                                'no longer opens) or the file is not encrypted to the recipients its metadata '
                                'records' % (err.msg, ', '.join(identity_matches)), step=err.step)
            fault.stages = stages
            return fault
        if 'identit' in low:
            return err
        fault = BackupFault(err.msg, step=err.step)
        fault.stages = stages
        return fault
    return None
