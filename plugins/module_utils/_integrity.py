# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgops.postgresql contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# PRIVATE to the collection: this is not a public API and may change without notice.
"""Is a backup on disk still what its metadata says? Read-only checks for backup_info.

The cheap check, always made: the dump exists with the size the metadata records (for format=directory: the
directory exists, holds every file the metadata lists, and its files add up to the recorded size). The full
check, on request (pgBackRest's ``verify``): the sha256 of the dump (for a directory, of every file and of the
manifest) against the metadata. Nothing here writes: a damaged backup is reported, never "fixed".
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os

from ansible_collections.pgops.postgresql.plugins.module_utils._catalog import last_verification
from ansible_collections.pgops.postgresql.plugins.module_utils._fsutil import sha256_file
from ansible_collections.pgops.postgresql.plugins.module_utils._pipeline import sha256_tree

OK = 'ok'
MISSING = 'missing'
SIZE_MISMATCH = 'size_mismatch'
CHECKSUM_MISMATCH = 'checksum_mismatch'
UNREADABLE = 'unreadable'
UNCHECKED = 'unchecked'
STATES = (OK, MISSING, SIZE_MISMATCH, CHECKSUM_MISMATCH, UNREADABLE, UNCHECKED)
DAMAGED = (MISSING, SIZE_MISMATCH, CHECKSUM_MISMATCH, UNREADABLE)
NAMES_SHOWN = 5


def tree_files(path):
    """Bytes of all files below ``path`` and their paths relative to it (what sha256_tree hashes), by stat only."""
    total = 0
    names = set()
    for root, dummy, files in os.walk(path):
        for name in files:
            full = os.path.join(root, name)
            total += os.path.getsize(full)
            names.add(os.path.relpath(full, path))
    return total, names


def _some(names):
    names = sorted(names)
    shown = ', '.join(names[:NAMES_SHOWN])
    return shown + (' and %d more' % (len(names) - NAMES_SHOWN) if len(names) > NAMES_SHOWN else '')


def _verdict(state, detail=None, checksum=None):
    return dict(integrity=state, integrity_detail=detail, checksum=checksum)


def check_backup(meta, directory, verify_checksums=False):
    """The integrity of one catalog entry: ``integrity`` (one of STATES), ``integrity_detail`` (why, or None) and
    ``checksum`` (``passed``, ``failed``, or None when no sha256 was computed)."""
    if meta.get('status') != 'success' or not meta.get('file'):
        return _verdict(UNCHECKED, 'no dump to check (status %s)' % meta.get('status'))
    path = os.path.join(directory, meta['file'])
    tree = meta.get('format') == 'directory'
    recorded = meta.get('size')
    try:
        if tree:
            if not os.path.isdir(path):
                return _verdict(MISSING, '%s is %s' % (path, 'not a directory' if os.path.lexists(path) else 'missing'))
            size, names = tree_files(path)
            gone = set(meta.get('files') or {}) - names
            if gone:
                return _verdict(MISSING, '%d of the %d files of %s are missing: %s'
                                % (len(gone), len(meta['files']), path, _some(gone)))
        else:
            if not os.path.isfile(path):
                return _verdict(MISSING, '%s is %s' % (path, 'not a file' if os.path.lexists(path) else 'missing'))
            size = os.path.getsize(path)
        if recorded is None:
            return _verdict(UNCHECKED, 'the metadata records no size for %s' % path)
        if size != recorded:
            return _verdict(SIZE_MISMATCH, '%s holds %d bytes, the metadata says %d' % (path, size, recorded))
        if not verify_checksums:
            return _verdict(OK)
        if not meta.get('sha256'):
            return _verdict(OK, 'the metadata records no sha256 for %s: only its size was checked' % path)
        if tree:
            dummy, digest, files = sha256_tree(path)
            if digest != meta['sha256']:
                changed = [k for k, v in (meta.get('files') or {}).items() if files.get(k) != v]
                extra = set(files) - set(meta.get('files') or {})
                why = []
                if changed:
                    why.append('%d file(s) differ: %s' % (len(changed), _some(changed)))
                if extra:
                    why.append('%d file(s) not in the metadata: %s' % (len(extra), _some(extra)))
                return _verdict(CHECKSUM_MISMATCH, 'sha256 of %s is %s, the metadata says %s%s'
                                % (path, digest, meta['sha256'], ' (%s)' % '; '.join(why) if why else ''), 'failed')
        else:
            dummy, digest = sha256_file(path)
            if digest != meta['sha256']:
                return _verdict(CHECKSUM_MISMATCH, 'sha256 of %s is %s, the metadata says %s'
                                % (path, digest, meta['sha256']), 'failed')
        return _verdict(OK, None, 'passed')
    except (IOError, OSError) as e:
        return _verdict(UNREADABLE, 'cannot read %s: %s' % (getattr(e, 'filename', None) or path, e.strerror or e))


def annotate(entries, directory, checksum_entries=()):
    """Add ``integrity``, ``integrity_detail``, ``checksum`` and ``damaged_after_verification`` to each entry.

    Every entry gets the cheap check; the entries in ``checksum_entries`` (the same objects) the full one.
    ``damaged_after_verification``: the entry's last conclusive restore verification passed, yet its dump no
    longer matches the metadata - the proof a restore gave is void.
    """
    full = set(id(m) for m in checksum_entries)
    for m in entries:
        m.update(check_backup(m, directory, id(m) in full))
        last = last_verification(m)
        m['damaged_after_verification'] = bool(m['integrity'] in DAMAGED and last and last.get('result') == 'passed')
    return entries


def summary(entries):
    """Counts per integrity state (plus ``damaged_after_verification`` and ``checksums_verified``) and one alert
    sentence per damaged backup, for backup_info's stats."""
    counts = dict((state, 0) for state in STATES)
    counts.update(damaged_after_verification=0, checksums_verified=0)
    alerts = []
    for m in entries:
        state = m.get('integrity') or UNCHECKED
        counts[state] += 1
        if m.get('checksum') == 'passed':
            counts['checksums_verified'] += 1
        if state not in DAMAGED:
            continue
        if m.get('damaged_after_verification'):
            counts['damaged_after_verification'] += 1
            alerts.append('%s: backup %s passed a verified restore on %s but is now damaged (%s): %s'
                          % (m.get('database'), m.get('id'), last_verification(m).get('verified_at'), state,
                             m.get('integrity_detail')))
        else:
            alerts.append('%s: backup %s is damaged (%s): %s'
                          % (m.get('database'), m.get('id'), state, m.get('integrity_detail')))
    return counts, alerts
