# -*- coding: utf-8 -*-
"""What converge left: one history record (check mode wrote none) that reports the unused index and the missing
table, ANALYZE really run, the HTML report beside it."""
from __future__ import absolute_import, division, print_function

import json

import pytest

HIST = '/backups/database/maintenance'


def psql(host, sql):
    return host.check_output("psql -X -A -t -U pim_user -d pim_dev -c \"%s\"" % sql)


@pytest.fixture(scope='module')
def records(host):
    names = sorted(n for n in host.check_output('ls -1 %s' % HIST).splitlines() if n.endswith('.json'))
    return [(n, json.loads(host.file('%s/%s' % (HIST, n)).content_string)) for n in names]


def test_one_record_per_real_run_and_none_from_check_mode(records):
    assert len(records) == 1, [r[0] for r in records]
    assert records[0][1]['check_mode'] is False


def test_the_unused_index_is_reported(records):
    db = records[0][1]['databases'][0]
    unused = [ix['name'] for ix in db['unused_indexes']]
    assert 'products_unused_idx' in unused
    assert not [n for n in unused if n.endswith('_pkey') or n.endswith('_key')]


def test_the_missing_table_is_reported_from_the_newest_backup(records):
    rec = records[0][1]
    exp = rec['databases'][0]['expected_tables']
    assert exp['missing'] == ['public.orders']
    assert exp['source'] == 'newest_backup' and 'no verified backup' in exp['note']
    assert [a['check'] for a in rec['alerts'] if a['level'] == 'critical'] == ['expected_tables']


def test_analyze_ran(host, records):
    rec = records[0][1]
    assert [(a['sql'], a['status']) for a in rec['actions']] == [('ANALYZE', 'done')]
    backup = [json.loads(host.file('/backups/database/%s' % n).content_string)
              for n in host.check_output('ls -1 /backups/database').splitlines()
              if n.endswith('.meta.json') and not n.startswith('_globals_')][0]
    # the seed's own ANALYZE ran before the backup; maintenance's after it
    assert psql(host, "SELECT bool_and(last_analyze > '%s'::timestamptz) FROM pg_stat_user_tables "
                      "WHERE relname IN ('products', 'categories', 'attributes', 'product_attributes')"
                % backup['finished_at']) == 't'
    tables = dict((t['name'], t) for t in rec['databases'][0]['tables'])
    assert tables['products']['last_analyze'] is not None


def test_html_report_exists_and_is_self_contained(host, records):
    name = records[0][0]
    for path in ('%s/%s' % (HIST, name[:-5] + '.html'), '%s/latest.html' % HIST):
        f = host.file(path)
        assert f.exists and f.mode == 0o640
        html = f.content_string
        assert html.startswith('<!DOCTYPE html>') and 'products_unused_idx' in html and 'public.orders' in html
        assert 'id="chart-db-size"' in html and 'id="chart-backup-size"' in html
    assert host.file(HIST).mode == 0o750
