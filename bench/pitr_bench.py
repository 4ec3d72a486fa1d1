#!/usr/bin/env python
# -*- coding: utf-8 -*-
"""pgBackRest's physical backups against our logical backup, on the bench's data, as ratios in one run (issue 14).

Starts its own PostgreSQL (the host's, initdb + pg_ctl) with WAL archiving into a local pgBackRest repository,
generates the bench's database (prose or catalogue data), then times, one after the other:

- pg_backup with its defaults (the logical backup, zstd level 1);
- ``pgbackrest backup --type=full`` through pgops.postgresql.pgbackrest_backup (zstd level 1 too, 2 processes);
- a day's change of 1 % of the rows where the newest rows are, then pg_backup again and
  ``pgbackrest backup --type=incr`` through the module (only the files that changed since the last backup);
- the same after 1 % of the rows changed all over the table (pgBackRest 2.45 copies a changed file whole).

usage: bench/pitr_bench.py [--size-mb 400] [--kind prose|catalogue] [--json FILE]
"""
from __future__ import absolute_import, division, print_function

import argparse
import json
import os
import pwd
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run import REPO, Cluster, generate, pg_bin, run_module, sh  # noqa: E402  pylint: disable=wrong-import-position

STANZA = 'bench'
# the day's change: 1 % of the rows, either where the newest rows are (a catalogue's recent items, appended events)
# or spread over the whole table (every 100th row: nearly every page and every 1 GB segment file touched)
CHANGES = {
    'prose': {
        'recent': ("UPDATE products SET price = price + 1, updated_at = now() WHERE id > (SELECT max(id) * 0.99 FROM "
                   "products); INSERT INTO events SELECT id + 10000000, product_id, 'edit', '{}', now() FROM events "
                   "WHERE id % 100 = 0"),
        'spread': "UPDATE products SET price = price + 1, updated_at = now() WHERE id % 100 = 0",
    },
    'catalogue': {
        'recent': ("UPDATE items SET stock = stock + 1, updated_at = now() WHERE id > (SELECT max(id) * 0.99 FROM "
                   "items); INSERT INTO price_history SELECT id + 10000000, item_uuid, currency, price, checksum, "
                   "now() FROM price_history WHERE id % 100 = 0"),
        'spread': "UPDATE items SET stock = stock + 1, updated_at = now() WHERE id % 100 = 0",
    },
}


class ArchivingCluster(Cluster):
    """The bench's cluster, archiving its WAL into a pgBackRest repository beside it."""

    def __init__(self, base):
        super(ArchivingCluster, self).__init__(base)
        self.config = os.path.join(base, 'pgbackrest.conf')
        self.repo = os.path.join(base, 'repo')

    def start(self):
        os.makedirs(self.repo)
        for sub in ('pgbr-log', 'pgbr-lock', 'pgbr-spool'):
            os.makedirs(os.path.join(self.base, sub))
        with open(self.config, 'w') as f:
            f.write('[global]\nrepo1-path=%s\nrepo1-retention-full=2\nstart-fast=y\ncompress-type=zst\n'
                    'compress-level=1\nprocess-max=2\nlog-path=%s\nlock-path=%s\nspool-path=%s\n'
                    'log-level-console=warn\n\n[%s]\npg1-path=%s\npg1-port=%d\npg1-socket-path=%s\n'
                    % (self.repo, os.path.join(self.base, 'pgbr-log'), os.path.join(self.base, 'pgbr-lock'),
                       os.path.join(self.base, 'pgbr-spool'), STANZA, self.data, self.port, self.base))
        if os.geteuid() == 0:
            pw = pwd.getpwnam('postgres')
            for path in (self.repo, self.config, os.path.join(self.base, 'pgbr-log'),
                         os.path.join(self.base, 'pgbr-lock'), os.path.join(self.base, 'pgbr-spool')):
                os.chown(path, pw.pw_uid, pw.pw_gid)
        super(ArchivingCluster, self).start()
        self.psql('postgres', "ALTER SYSTEM SET wal_level = 'replica'")
        self.psql('postgres', "ALTER SYSTEM SET archive_mode = 'on'")
        self.psql('postgres', "ALTER SYSTEM SET archive_command = 'pgbackrest --config=%s --stanza=%s archive-push "
                              "%%p'" % (self.config, STANZA))
        # archive_mode needs a restart; pg_ctl restart keeps the options the server was started with
        sh(self.as_user + [pg_bin('pg_ctl'), '-D', self.data, '-l', os.path.join(self.base, 'log'), '-w', '-m',
                           'fast', 'restart'])
        sh(self.as_user + ['pgbackrest', '--config=' + self.config, '--stanza=' + STANZA, 'stanza-create'])

    def repo_bytes(self):
        total = 0
        for root, dummy, names in os.walk(self.repo):
            total += sum(os.path.getsize(os.path.join(root, n)) for n in names)
        return total


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n', maxsplit=1)[0])
    ap.add_argument('--size-mb', type=float, default=400)
    ap.add_argument('--kind', choices=sorted(CHANGES), default='prose')
    ap.add_argument('--json')
    opts = ap.parse_args()
    work = tempfile.mkdtemp(prefix='pgops-pitrbench-')
    os.chmod(work, 0o755)
    root = os.path.join(work, 'coll')
    os.makedirs(os.path.join(root, 'ansible_collections', 'pgops'))
    os.symlink(REPO, os.path.join(root, 'ansible_collections', 'pgops', 'postgresql'))
    cluster = ArchivingCluster(os.path.join(work, 'pg'))
    os.makedirs(cluster.base)
    rows = []

    def add(name, seconds, size=None, note=''):
        rows.append(dict(name=name, seconds=round(seconds, 3), size=size, note=note))
        print('%-52s %8.2f s %12s  %s' % (name, seconds, size if size is not None else '', note), flush=True)

    try:
        cluster.start()
        t = time.time()
        size = generate(cluster, 'benchdb', opts.size_mb, opts.kind)
        print('benchdb (%s): %.0f MiB, generated in %.0f s' % (opts.kind, size / 2 ** 20, time.time() - t), flush=True)
        conn = dict(login_host='127.0.0.1', port=cluster.port, login_user='postgres')
        dest = os.path.join(work, 'backups')
        logical = dict(conn, databases=['benchdb'], dest=dest, free_space_ratio=0)
        physical = dict(conn, stanza=STANZA, config=cluster.config)
        # a settled database, as one that has run for a while: frozen, hint bits set, visibility map written (a just
        # loaded one has every page rewritten by its first vacuum, and any incremental copies it all)
        cluster.psql('benchdb', 'VACUUM (FREEZE, ANALYZE)')
        cluster.psql('benchdb', 'CHECKPOINT')
        res, secs, dummy = run_module(root, 'pg_backup', logical)
        add('pg_backup (logical, defaults)', secs, res['size'])
        res, secs, dummy = run_module(root, 'pgbackrest_backup', dict(physical, type='full'))
        add('pgbackrest_backup full', secs, res['backup']['repo_delta'], 'copied %s bytes' % res['backup']['delta'])
        for change in ('recent', 'spread'):
            cluster.psql('benchdb', CHANGES[opts.kind][change])
            cluster.psql('benchdb', 'CHECKPOINT')
            res, secs, dummy = run_module(root, 'pg_backup', logical)
            add('pg_backup (logical) after a 1 %% %s change' % change, secs, res['size'])
            res, secs, dummy = run_module(root, 'pgbackrest_backup', dict(physical, type='incr'))
            add('pgbackrest_backup incr after the %s change' % change, secs, res['backup']['repo_delta'],
                'copied %s bytes' % res['backup']['delta'])
        add('WAL archived meanwhile, in the repository', 0, cluster.repo_bytes(), 'whole repository')
    finally:
        cluster.stop()
        shutil.rmtree(work, ignore_errors=True)
    by = dict((r['name'], r) for r in rows)
    logical = by['pg_backup (logical, defaults)']
    full = by['pgbackrest_backup full']
    ratios = dict(full_time_vs_logical=round(full['seconds'] / logical['seconds'], 3),
                  full_size_vs_logical=round(full['size'] / float(logical['size']), 3))
    for change in ('recent', 'spread'):
        incr = by['pgbackrest_backup incr after the %s change' % change]
        again = by['pg_backup (logical) after a 1 %% %s change' % change]
        ratios['incr_%s_time_vs_logical' % change] = round(incr['seconds'] / again['seconds'], 3)
        ratios['incr_%s_size_vs_logical' % change] = round(incr['size'] / float(again['size']), 3)
    print(json.dumps(ratios, indent=2))
    if opts.json:
        with open(opts.json, 'w') as f:
            json.dump(dict(kind=opts.kind, database_size=size, rows=rows, ratios=ratios), f, indent=2)
    return 0


if __name__ == '__main__':
    sys.exit(main())
