# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgops.postgresql contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# PRIVATE to the collection: this is not a public API and may change without notice.
"""The age identity that decrypts encrypted backups: from a file, or from content (Vault style) written 0600 to
the module's temporary directory for the run and removed after it; the ``age -d`` stage; the check that the
identity is one of a backup's recipients before anything is read."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import tempfile
from contextlib import suppress

from ansible_collections.pgops.postgresql.plugins.module_utils._errors import PgOpsError
from ansible_collections.pgops.postgresql.plugins.module_utils._pipeline import Stage, run_checked
from ansible_collections.pgops.postgresql.plugins.module_utils._steps import FILE_CHECK, OPTIONS


def recipients(meta):
    """The age recipients a backup is encrypted to (its metadata's ``encryption.recipients``)."""
    return list((meta.get('encryption') or {}).get('recipients') or [])


class AgeIdentity(object):
    """``identity_file`` (a path) or ``identity`` (the content) given to a restore; remove() when done."""

    def __init__(self, module, identity_file=None, identity=None):
        self.module = module
        self.given_file = identity_file
        self.content = identity
        self.path = None
        self.tmp = None
        self.matched = []     # the identity's public keys that check() found among a backup's recipients

    def file(self, meta):
        """Path of the identity for encrypted backup ``meta``; a clear error (step options) when none was given."""
        if self.path:
            return self.path
        if self.given_file:
            path = os.path.abspath(self.given_file)
            if not os.path.isfile(path) or not os.access(path, os.R_OK):
                raise PgOpsError('age_identity_file: %s is not a readable file (backup %s is encrypted to %s)'
                                 % (path, meta['id'], ', '.join(recipients(meta))), step=OPTIONS)
            self.path = path
        elif self.content:
            fd, path = tempfile.mkstemp(prefix='pgops-identity-', suffix='.txt', dir=self.module.tmpdir)
            self.tmp = path
            with os.fdopen(fd, 'w') as f:
                os.fchmod(f.fileno(), 0o600)
                f.write(self.content.strip() + '\n')
            self.path = path
        else:
            raise PgOpsError('backup %s is encrypted with age to %s: set age_identity_file (or age_identity) to an '
                             'identity of one of these recipients; nothing was created'
                             % (meta['id'], ', '.join(recipients(meta)) or 'unknown recipients'), step=OPTIONS)
        return self.path

    def remove(self):
        if self.tmp:
            with suppress(OSError):
                os.unlink(self.tmp)
            self.tmp = self.path = None

    def decryptor(self, meta):
        """The ``age -d`` stage reading the ciphertext on stdin, for an encrypted backup (None otherwise)."""
        if not meta.get('encrypted'):
            return None
        age = self.module.get_bin_path('age', required=True)
        return Stage('age', [age, '--decrypt', '-i', self.file(meta)])

    def check(self, meta):
        """Refuse an identity none of whose public keys is a recipient of the backup (inconclusive: a wrong key says
        nothing about the backup); 'matches a recipient', or None when it could not be checked here (an identity
        age-keygen cannot read is left to ``age -d`` to judge). ``matched`` then holds the public keys of the
        identity that are recipients of ``meta`` (a header they cannot open is the backup's fault: _verdict)."""
        self.matched = []
        keygen = self.module.get_bin_path('age-keygen')
        wanted = recipients(meta)
        if not keygen or not wanted:
            return None
        try:
            out = run_checked([keygen, '-y', self.file(meta)], None, 'age-keygen', FILE_CHECK)
        except PgOpsError:
            return None
        mine = [line.strip() for line in out.splitlines() if line.strip()]
        self.matched = [key for key in mine if key in wanted]
        if mine and not self.matched:
            raise PgOpsError('the age identity given (public key %s) is not one of the recipients of backup %s (%s): '
                             'use the identity of one of them; this says nothing about the backup'
                             % (', '.join(mine), meta['id'], ', '.join(wanted)), step=FILE_CHECK)
        return 'matches a recipient'
