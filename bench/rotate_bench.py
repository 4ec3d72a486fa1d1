#!/usr/bin/env python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgops.postgresql contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark (not a test): backup_rotate's logic on a synthetic catalog of 10,000 backups.

Builds realistic metadata files (20 tables, object names, verifications on some) plus a small dummy dump for each
in a temporary directory, then times load_catalog + plan (check mode: nothing is deleted) and prints seconds.

    cd /work/main && PYTHONPATH=.cache/collections .venv/bin/python bench/rotate_bench.py [--count 10000]
"""

from __future__ import absolute_import, division, print_function

import argparse
import datetime
import json
import os
import shutil
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, '.cache', 'collections'))

from ansible_collections.pgops.postgresql.plugins.module_utils import _catalog as catalog  # noqa: E402
from ansible_collections.pgops.postgresql.plugins.module_utils._rotate import Rotation, make_policy  # noqa: E402

KINDS = ('full', 'full', 'full', 'snapshot', 'pre_deploy', 'manual', 'pre_restore')


def build(directory, count, databases):
    now = datetime.datetime.now().astimezone().replace(microsecond=0)
    tables = [{'schema': 'public', 'name': 'table_%02d' % i, 'rows': 1000 * i} for i in range(20)]
    per_db = count // databases
    for d in range(databases):
        database = 'pim_db_%02d' % d
        for i in range(per_db):
            started = now - datetime.timedelta(hours=6 * i, minutes=d)
            kind = KINDS[i % len(KINDS)]
            status = 'failed' if i % 23 == 5 else 'success'
            backup_id = catalog.make_id(started)
            entry_stem = catalog.stem(database, kind, None, backup_id)
            name = entry_stem + '.sql.zst' if status == 'success' else None
            meta = {
                'format_version': 1, 'id': backup_id, 'scope': 'database', 'database': database, 'kind': kind, 'label': None,
                'status': status, 'file': name, 'format': 'plain', 'compression': 'zstd', 'compression_level': 3,
                'compressed_by': 'external', 'size': 4096, 'sha256': '0' * 64,
                'started_at': started.isoformat(), 'finished_at': (started + datetime.timedelta(seconds=3)).isoformat(),
                'duration_seconds': 3.0, 'server_version': '15.18', 'pg_dump_version': 'pg_dump (PostgreSQL) 15.18',
                'database_size': 9131823, 'encoding': 'UTF8', 'snapshot': '00000004-00000002-1', 'tables': tables,
                'rows_total': sum(t['rows'] for t in tables),
                'objects': {'tables': 20, 'views': 1, 'materialized_views': 0, 'sequences': 3, 'functions': 1,
                            'indexes': 8, 'schemas': 1, 'extensions': 1},
                'object_names': {'views': ['public.v'], 'sequences': ['public.s1', 'public.s2', 'public.s3'],
                                 'functions': ['public.f()'], 'schemas': ['public'], 'extensions': ['plpgsql'],
                                 'partitioned_tables': [], 'materialized_views': []},
                'host': 'bench', 'container': None, 'collection_version': '0.1.0',
                'verifications': [{'result': 'passed', 'mode': 'test'}] if i % 50 == 7 else [],
            }
            if status == 'failed':
                meta.update(error='pg_dump exited 1', failed_step='dump')
            with open(os.path.join(directory, entry_stem + catalog.META_SUFFIX), 'w') as f:
                json.dump(meta, f, indent=2, sort_keys=True)
            if name:
                with open(os.path.join(directory, name), 'wb') as f:
                    f.write(b'x' * 64)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--count', type=int, default=10000)
    parser.add_argument('--databases', type=int, default=10)
    parser.add_argument('--repeat', type=int, default=3)
    args = parser.parse_args()
    base = tempfile.mkdtemp(prefix='pgops-rotate-bench-')
    try:
        build(base, args.count, args.databases)
        policy = make_policy(keep_daily=7, keep_weekly=4, keep_monthly=6)
        best = None
        for dummy in range(args.repeat):
            t0 = time.perf_counter()
            t_load = time.perf_counter()
            entries, warnings = catalog.load_catalog(base)
            load = time.perf_counter() - t_load
            rotation = Rotation(base, policy).plan()          # load + plan, as the module runs it in check mode
            total = time.perf_counter() - t0 - load
            best = total if best is None else min(best, total)
            print('load_catalog alone %.3fs; rotation (load + plan, check mode) %.3fs: %d records (%d unreadable), '
                  '%d to delete, %d kept, %d bytes' % (load, total, len(entries), len(warnings), len(rotation.deleted),
                                                       len(rotation.kept), rotation.bytes_freed))
        print('%.3f' % best)
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == '__main__':
    main()
