# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgops.postgresql contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# PRIVATE to the collection: this is not a public API and may change without notice.
"""node_exporter textfiles: render Prometheus samples, and read and write the file (atomically, mode 0644).

Shared by backup_metrics (the catalog's families, _metrics) and pgbackrest_info (the PITR families, _pgbackrest).
A sample is ``dict(name=, labels={}, value=)``; a family is a (name, type, help) triple.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os

from ansible_collections.pgops.postgresql.plugins.module_utils._fsutil import write_file_atomic

FILE_MODE = 0o644     # node_exporter runs as its own user


def escape_label(value):
    return str(value).replace('\\', '\\\\').replace('"', '\\"').replace('\n', '\\n')


def format_value(value):
    if isinstance(value, bool):
        return '1' if value else '0'
    if isinstance(value, int):
        return str(value)
    value = float(value)
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def render(samples, families):
    """The textfile: HELP and TYPE for every family (``families``: (name, type, help) triples), then its samples
    sorted by labels."""
    lines = []
    for name, mtype, text in families:
        lines.append('# HELP %s %s' % (name, text))
        lines.append('# TYPE %s %s' % (name, mtype))
        mine = sorted((s for s in samples if s['name'] == name), key=lambda s: sorted(s['labels'].items()))
        for s in mine:
            labels = ','.join('%s="%s"' % (k, escape_label(v)) for k, v in sorted(s['labels'].items()))
            lines.append('%s%s %s' % (name, '{%s}' % labels if labels else '', format_value(s['value'])))
    return '\n'.join(lines) + '\n'


def textfile_dir_error(path, option):
    """The message naming ``option`` when the directory of the textfile ``path`` is missing, else None."""
    directory = os.path.dirname(path) or '.'
    if os.path.isdir(directory):
        return None
    return ('the directory of %s (%s) does not exist: create it (node_exporter\'s --collector.textfile.directory) '
            'or point %s elsewhere' % (option, directory, option))


def read_textfile(path):
    """The textfile as it is ('' when there is none), to compare before writing."""
    try:
        with open(path, 'rb') as f:
            return f.read().decode('utf-8', 'replace')
    except (IOError, OSError):
        return ''


def write_textfile(path, text):
    """Atomically, mode 0644: node_exporter runs as its own user. Raises OSError or PgOpsError."""
    write_file_atomic(path, text.encode('utf-8'), mode=FILE_MODE)
