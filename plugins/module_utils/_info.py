# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgops.postgresql contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# PRIVATE to the collection: this is not a public API and may change without notice.
"""backup_info's logic: the catalog, filtered, each backup's file checked, and the statistics; never writes."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import datetime
import os

from ansible_collections.pgops.postgresql.plugins.module_utils import _catalog as catalog
from ansible_collections.pgops.postgresql.plugins.module_utils import _integrity as integrity
from ansible_collections.pgops.postgresql.plugins.module_utils._server import of_server, server_of


def limited(entries, limit, per_database=False):
    """The first ``limit`` entries (newest first), of each database with ``per_database``; all for 0."""
    if not limit or limit < 0:
        return entries
    if not per_database:
        return entries[:limit]
    seen = {}
    out = []
    for m in entries:
        n = seen.get(m.get('database'), 0)
        if n < limit:
            out.append(m)
            seen[m.get('database')] = n + 1
    return out


def run_backup_info(module):
    """backup_info's main: read the catalog, filter, check each backup's file, compute stats; never writes."""
    p = module.params
    now = datetime.datetime.now().astimezone()
    if not (p['path'] or '').strip():
        module.fail_json(msg='path must not be empty: set it to the backup directory, e.g. /backups/database')
    for name, low in (('limit', 0), ('max_age_days', 0), ('window_days', 1), ('growth_days', 1),
                      ('size_change_threshold', 0), ('growth_threshold', 0), ('offsite_max_age_days', 0),
                      ('no_success_hours', 0)):
        if p[name] is not None and p[name] < low:
            module.fail_json(msg='%s must be %d or more (got %s)' % (name, low, p[name]))
    if not os.path.isdir(p['path']) and os.path.exists(p['path']):
        module.fail_json(msg='path %s is not a directory' % p['path'])
    try:
        entries, warnings = catalog.load_catalog(p['path'])
    except OSError as e:
        module.fail_json(msg='cannot read the backup directory %s (path): %s' % (p['path'], e))
    for m in entries:
        m['server'] = server_of(m)
    if p.get('server'):
        entries = of_server(entries, p['server'])
    selected = catalog.filter_entries(entries, database=p['database'], kind=p['kind'], label=p['label'],
                                      status=p['status'], max_age_days=p['max_age_days'], now=now,
                                      databases=p.get('databases'), scope=p.get('scope') or 'any')
    listed = limited(selected, p['limit'], p.get('limit_per_database'))
    # the cheap check (exists, size) for every backup the stats count; sha256 only for the listed ones
    integrity.annotate(selected if p['stats'] else listed, p['path'],
                       checksum_entries=listed if p['verify_checksums'] else ())
    result = dict(changed=False, catalog_warnings=warnings, path_exists=os.path.isdir(p['path']))
    if p['stats']:
        result['stats'] = catalog.catalog_stats(selected, now, p['window_days'], p['size_change_threshold'],
                                                p['growth_threshold'], p['growth_days'], p['offsite_max_age_days'],
                                                p['no_success_hours'],
                                                (p.get('expected_databases') or []) + (p.get('databases') or [])
                                                + ([p['database']] if p.get('database') else []))
        result['stats']['integrity'], alerts = integrity.summary(selected)
        result['stats']['alerts'].extend(alerts)
    for m in listed:
        m['verified'] = catalog.is_verified(m)
    result['backups'] = listed
    module.exit_json(**result)
