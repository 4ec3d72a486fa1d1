# -*- coding: utf-8 -*-
"""A realistic maintenance record, shaped exactly as pg_maintenance writes it: six months of monthly runs and
daily backups of pim_dev and pim_prod, a fast-growing week, a missing table, unused indexes, an idle session."""
from __future__ import absolute_import, division, print_function

import datetime

from ansible_collections.pgops.postgresql.plugins.module_utils._report import fmt_bytes

TZ = datetime.timezone(datetime.timedelta(hours=1))
NOW = datetime.datetime(2026, 12, 15, 3, 0, 0, tzinfo=TZ)
MiB = 1024 * 1024


def iso(dt):
    return dt.isoformat(timespec='seconds')


def table(schema, name, heap, idx, toast, live, dead, analyzed=True, bloat=None):
    t = dict(schema=schema, name=name, kind='table', heap_bytes=heap, indexes_bytes=idx, toast_bytes=toast,
             total_bytes=heap + idx + toast, live_tuples=live, dead_tuples=dead,
             dead_pct=round(dead * 100.0 / (live + dead), 1) if live + dead else None,
             last_vacuum=None, last_autovacuum=iso(NOW - datetime.timedelta(days=2, hours=5)),
             last_analyze=iso(NOW) if analyzed else None,
             last_autoanalyze=iso(NOW - datetime.timedelta(days=1, hours=3)),
             vacuum_count=0, autovacuum_count=14, analyze_count=6, autoanalyze_count=21,
             relpages=heap // 8192, reltuples=live, expected_pages=None, block_size=8192,
             bloat_bytes=bloat, bloat_pct=round(bloat * 100.0 / heap, 1) if bloat is not None else None)
    return t


def database(name, scale, i):
    size_series, backup_series = [], []
    for day in range(180, 0, -1):
        t = NOW - datetime.timedelta(days=day, hours=1)
        grow = 1.0 + (180 - day) * 0.0025 + (0.30 if (name == 'pim_prod' and day <= 6) else 0.0)
        db_size = int(scale * 310 * MiB * grow)
        size_series.append([iso(t), db_size, 'backup'])
        backup_series.append([iso(t), int(db_size * 0.085), t.strftime('%Y%m%d_%H%M%S')])
        if day % 30 == 0:
            size_series.append([iso(t + datetime.timedelta(hours=2)), db_size + 3 * MiB, 'maintenance'])
    size_now = int(size_series[-1][1] * 1.01)
    size_series.append([iso(NOW), size_now, 'maintenance'])
    tables = [
        table('public', 'product_attributes', int(scale * 96 * MiB), int(scale * 41 * MiB), 0, int(scale * 1600000), 41000,
              bloat=int(scale * 9 * MiB)),
        table('public', 'products', int(scale * 64 * MiB), int(scale * 38 * MiB), int(scale * 22 * MiB),
              int(scale * 150000), 3100, bloat=int(scale * 4 * MiB)),
        table('public', 'product_media', int(scale * 18 * MiB), int(scale * 5 * MiB), int(scale * 61 * MiB),
              int(scale * 90000), 120, bloat=0),
        table('audit', 'change_log', int(scale * 33 * MiB), int(scale * 7 * MiB), int(scale * 2 * MiB),
              int(scale * 410000), 52000, bloat=int(scale * 12 * MiB)),
        table('public', 'categories', 245760, 114688, 8192, 2400, 12, bloat=0),
        table('public', 'attributes', 57344, 49152, 8192, 310, 0, bloat=0),
        table('public', 'channels', 16384, 32768, 0, 12, 0, analyzed=False),
    ]
    tables.sort(key=lambda t: t['total_bytes'], reverse=True)
    growth = dict(pct=None, flag=False, note='')
    ref = [p for p in size_series if (NOW - datetime.datetime.fromisoformat(p[0])).days >= 7][-1]
    pct = round((size_now - ref[1]) * 100.0 / ref[1], 1)
    growth = dict(pct=pct, flag=pct > 20, since=ref[0], reference_bytes=ref[1], bytes=size_now,
                  days=round((NOW - datetime.datetime.fromisoformat(ref[0])).total_seconds() / 86400.0, 1),
                  note='%+.1f%% since %s' % (pct, ref[0][:10]))
    missing = ['public.orders'] if name == 'pim_dev' else []
    expected = ['public.attributes', 'public.categories', 'public.channels', 'public.orders', 'public.product_attributes',
                'public.product_media', 'public.products', 'audit.change_log']
    return dict(
        name=name, size_bytes=size_now, stats_reset=iso(NOW - datetime.timedelta(days=92)),
        cache=dict(hit_pct=99.3 if name == 'pim_prod' else 87.6, blocks=int(scale * 48000000), blks_hit=1, blks_read=1,
                   stats_reset=iso(NOW - datetime.timedelta(days=92))),
        tables=tables, table_count=len(tables), bloat_bytes=sum(t['bloat_bytes'] or 0 for t in tables),
        unused_indexes=[
            dict(schema='public', table='products', name='products_legacy_code_idx', idx_scan=0,
                 size_bytes=int(scale * 11 * MiB), definition='CREATE INDEX products_legacy_code_idx ON public.products USING btree (legacy_code)'),
            dict(schema='public', table='product_media', name='product_media_created_idx', idx_scan=0,
                 size_bytes=int(scale * 2 * MiB), definition='CREATE INDEX product_media_created_idx ON public.product_media USING btree (created_at)'),
        ],
        expected_tables=dict(source='verified_backup', backup_id='20261214_020000',
                             note='tables of the newest verified backup 20261214_020000', checked=True,
                             expected=expected if name == 'pim_dev' else [e for e in expected if e != 'public.orders'],
                             missing=missing),
        size_series=size_series, backup_series=backup_series, growth=growth)


def record():
    dbs = [database('pim_prod', 1.6, 0), database('pim_dev', 1.0, 1)]
    alerts = [
        dict(level='critical', check='expected_tables', database='pim_dev',
             message='missing public.orders (expected from tables of the newest verified backup 20261214_020000)'),
        dict(level='warning', check='growth', database='pim_prod',
             message='database grew %.1f%% in %.1f days (threshold 20.0%% in 7 days)'
             % (dbs[0]['growth']['pct'], dbs[0]['growth']['days'])),
        dict(level='warning', check='cache_hit', database='pim_dev', message='cache hit ratio 87.6% (threshold 90.0%)'),
        dict(level='warning', check='idle_in_transaction', database='pim_prod',
             message='session 48211 (pim_app@pim_prod) idle in transaction for 1260 s'),
    ] + [dict(level='info', check='unused_index', database=db['name'],
              message='index public.%s on %s has never been scanned (%s)' % (ix['name'], ix['table'], fmt_bytes(ix['size_bytes'])))
         for db in dbs for ix in db['unused_indexes']]
    return dict(
        format_version=1, id='20261215_030000', collected_at=iso(NOW), host='pim-docker-host', container='postgres-pim',
        collection_version='0.1.0', history_dir='/backups/database/maintenance', backup_dir='/backups/database',
        check_mode=False, gather=['bloat', 'cache', 'connections', 'expected_tables', 'indexes', 'sessions', 'tables'],
        thresholds=dict(long_running_seconds=300, idle_in_transaction_seconds=60, connections_pct=80.0, cache_hit_pct=90.0,
                        cache_min_blocks=1000, dead_tuples_pct=20.0, dead_tuples_min=1000, bloat_pct=50.0,
                        bloat_min_bytes=8388608, growth_pct=20.0, growth_days=7, backup_size_change_pct=50.0),
        server=dict(version='15.18 (Debian 15.18-0+deb12u1)', version_num=150018, max_connections=100,
                    superuser_reserved_connections=3, now=iso(NOW),
                    connections=dict(total=23, pct=23.0, by_database=dict(pim_dev=4, pim_prod=18, postgres=1)),
                    long_running=[],
                    idle_in_transaction=[dict(pid=48211, database='pim_prod', user='pim_app', application='pim-engine',
                                              client='172.18.0.5', state='idle in transaction',
                                              since=iso(NOW - datetime.timedelta(seconds=1260)), seconds=1260,
                                              query='UPDATE products SET price = $1 WHERE id = $2')]),
        databases=dbs, alerts=alerts,
        backups=dict(count=362, failed=1, total_size=int(9.2 * 1024 * MiB), success_rate=99.7, alerts=[],
                     databases=dict(pim_dev=dict(newest_id='20261215_020000', newest_age_seconds=3600,
                                                 newest_size=dbs[1]['backup_series'][-1][1], size_change_pct=0.4),
                                    pim_prod=dict(newest_id='20261215_020000', newest_age_seconds=3600,
                                                  newest_size=dbs[0]['backup_series'][-1][1], size_change_pct=3.1))),
        verifications=[dict(backup_id='20261214_020000', database='pim_prod', kind='full', verified_at=iso(NOW - datetime.timedelta(hours=20)),
                            result='passed', mode='test', rto_seconds=41.7, error=None),
                       dict(backup_id='20261207_020000', database='pim_prod', kind='full', verified_at=iso(NOW - datetime.timedelta(days=7, hours=20)),
                            result='passed', mode='test', rto_seconds=39.2, error=None),
                       dict(backup_id='20261130_020000', database='pim_dev', kind='full', verified_at=iso(NOW - datetime.timedelta(days=14, hours=20)),
                            result='failed', mode='test', rto_seconds=12.0, error='row count of public.products: 1499, metadata 1500')],
        history_runs=6,
        actions=[dict(database='pim_prod', action='analyze', target='(all tables)', sql='ANALYZE', status='done', duration_seconds=4.812),
                 dict(database='pim_dev', action='analyze', target='(all tables)', sql='ANALYZE', status='done', duration_seconds=2.104)],
        collect_seconds=1.3)
