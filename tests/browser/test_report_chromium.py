# -*- coding: utf-8 -*-
"""The maintenance report in headless Chromium: it renders without JavaScript errors, the charts exist, and every
number shown equals the record's. Screenshots go to tests/output/browser/ (and, with PGOPS_DOCS_IMAGE=1, to
docs/images/report.png)."""
from __future__ import absolute_import, division, print_function

import json
import os
import re

import pytest

import sample
from conftest import Dom, resolve, screenshot, tampered_dom
from ansible_collections.pgops.postgresql.plugins.module_utils._report import FORMATS, render_html


def render(output_dir, name, record):
    html_path = os.path.join(output_dir, name + '.html')
    with open(html_path, 'w') as f:
        f.write(render_html(record))
    with open(os.path.join(output_dir, name + '.json'), 'w') as f:
        json.dump(record, f, indent=2, sort_keys=True)
    return html_path


@pytest.fixture(scope='module')
def report(output_dir, chromium):
    record = sample.record()
    path = render(output_dir, 'report', record)
    dom_text, log = chromium.dump_dom('file://' + path)
    dom = Dom()
    dom.feed(dom_text)
    return dict(record=record, path=path, dom=dom, log=log)


def test_page_renders_without_javascript_errors(report):
    html = report['dom'].html
    assert html.get('data-rendered') == 'ok', html
    assert 'data-js-error' not in html
    assert not re.search(r'Uncaught|SyntaxError|TypeError|ReferenceError', report['log']), report['log']
    assert html.get('data-consistent') == 'true', html.get('data-inconsistent')   # the page's own check


def test_charts_exist_with_their_data(report):
    record, charts = report['record'], dict((c['id'], c) for c in report['dom'].charts)
    assert int(report['dom'].html['data-charts']) == len(charts) == 2 + len(record['databases'])
    points = sum(len(db['size_series']) for db in record['databases'])
    assert charts['chart-db-size']['data-chart'] == 'line'
    assert int(charts['chart-db-size']['data-point-count']) == charts['chart-db-size']['circles'] == points
    backups = sum(len(db['backup_series']) for db in record['databases'])
    assert int(charts['chart-backup-size']['data-point-count']) == charts['chart-backup-size']['circles'] == backups
    assert int(charts['chart-db-size']['data-series-count']) == len(record['databases'])
    for i, db in enumerate(record['databases']):
        bars = charts['chart-tables-%d' % i]
        assert int(bars['data-bar-count']) == min(len(db['tables']), 10)
        assert bars['rects'] == sum(1 for t in db['tables'][:10] for k in ('heap_bytes', 'indexes_bytes', 'toast_bytes')
                                    if t[k])


def test_every_number_shown_equals_the_json(report):
    record, values = report['record'], report['dom'].values
    assert len(values) > 400
    for el in values:
        want = resolve(record, el['data-path'])
        shown = el['data-value']
        if want is None:
            assert shown == '', el
        elif isinstance(want, str):
            assert shown == want, el
        else:
            assert float(shown) == float(want), el
        if el['tag'] not in ('circle', 'rect'):
            assert el['text'].strip() == FORMATS[el['data-format']](want), el


def test_key_facts_are_on_the_page(report):
    text = ' '.join(el['text'] for el in report['dom'].values)
    db = report['record']['databases'][0]
    assert FORMATS['bytes'](db['size_bytes']) in text
    with open(report['path']) as f:
        html = f.read()
    assert 'missing <b>public.orders</b>' in html and 'products_legacy_code_idx' in html
    assert html.count('class="alert ') == len(report['record']['alerts'])
    assert not re.search(r'(src|href)=["\']?(https?:)?//', html)   # self-contained: nothing fetched


def test_a_wrong_number_is_caught_by_the_page(output_dir, chromium):
    record = sample.record()
    path = render(output_dir, 'tampered', record)
    dom = tampered_dom(chromium, path, 'data-path="databases.0.size_bytes" data-format="bytes" data-value="%d"'
                       % record['databases'][0]['size_bytes'])
    assert dom.html['data-rendered'] == 'ok' and dom.html['data-consistent'] == 'false'
    assert dom.html['data-inconsistent'] == 'databases.0.size_bytes'


def test_an_empty_first_run_renders(output_dir, chromium):
    record = sample.record()
    for db in record['databases']:
        db.update(size_series=[db['size_series'][-1]], backup_series=[], unused_indexes=[])
    record.update(alerts=[], verifications=[], backups=None, actions=[], history_runs=0)
    dom = Dom()
    dom.feed(chromium.dump_dom('file://' + render(output_dir, 'first-run', record))[0])
    assert dom.html['data-rendered'] == 'ok' and dom.html['data-consistent'] == 'true'


def test_screenshot(report, output_dir, chromium):
    screenshot(chromium, report['path'], os.path.join(output_dir, 'report.png'))
