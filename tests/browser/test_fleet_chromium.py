# -*- coding: utf-8 -*-
"""The fleet page (pgops.postgresql.fleet_html) in headless Chromium: it renders without JavaScript errors, every
server has its section with its state, every number shown equals the record's, a tampered number is caught by the
page, and nothing is fetched. Screenshot: tests/output/browser/fleet.png (and, with PGOPS_DOCS_IMAGE=1,
docs/images/fleet.png)."""
from __future__ import absolute_import, division, print_function

import datetime
import json
import os
import re

import pytest

from conftest import Dom, resolve, screenshot, tampered_dom
from ansible_collections.pgops.postgresql.plugins.module_utils._catalog import catalog_stats
from ansible_collections.pgops.postgresql.plugins.module_utils._fleet import summary
from ansible_collections.pgops.postgresql.plugins.module_utils._report import FORMATS, render_fleet_html

NOW = datetime.datetime(2026, 12, 7, 8, 0, 0, tzinfo=datetime.timezone.utc)


def backups(server, database, sizes, failed=(), verified=()):
    """Daily backups at 02:00, oldest first in ``sizes``; newest first as the catalog lists them."""
    out = []
    for i, size in enumerate(reversed(sizes)):
        t = NOW - datetime.timedelta(hours=6 + 24 * i)
        m = dict(id=t.strftime('%Y%m%d_%H%M%S'), server=server, database=database, kind='full',
                 started_at=t.isoformat(),
                 status='failed' if i in failed else 'success', size=size, format='custom', compression='zstd',
                 database_size=size * 4)
        if i in verified:
            m['verifications'] = [dict(result='passed')]
        out.append(m)
    return out


def record():
    ok = dict(server=dict(version='16.4'))
    hosts = {}
    for n in range(1, 5):
        name = 'pg-%02d' % n
        entries = (backups(name, 'shop', [40e6 + k * 1e5 for k in range(10)], verified=(2,)) +
                   backups(name, 'crm', [5e6] * 9 + ([12e6] if n == 2 else [5.1e6]), failed=(1,) if n == 3 else ()))
        entries.sort(key=lambda m: m['started_at'], reverse=True)
        hosts['db%d' % n] = dict(server=name, path='/backups/' + name, probe=ok, error='', task='',
                                 info=dict(stats=catalog_stats(entries, NOW), path_exists=True))
    hosts['db2']['probe'] = dict(failed=True, msg='connection to server at "10.0.0.2", port 5432 failed: refused')
    hosts['db5'] = dict(server='pg-05', path='/backups/pg-05', probe=ok, error='', task='',
                        info=dict(stats=catalog_stats([], NOW), path_exists=False))
    hosts['db6'] = None
    return json.loads(json.dumps(summary(hosts, now=NOW)))


def render(output_dir, name, fleet):
    path = os.path.join(output_dir, name + '.html')
    with open(path, 'w') as f:
        f.write(render_fleet_html(fleet))
    return path


@pytest.fixture(scope='module')
def page(output_dir, chromium):
    fleet = record()
    path = render(output_dir, 'fleet', fleet)
    dom_text, log = chromium.dump_dom('file://' + path)
    dom = Dom()
    dom.feed(dom_text)
    return dict(fleet=fleet, path=path, dom=dom, text=dom_text, log=log)


def test_page_renders_without_javascript_errors(page):
    html = page['dom'].html
    assert html.get('data-rendered') == 'ok' and 'data-js-error' not in html, html
    assert not re.search(r'Uncaught|SyntaxError|TypeError|ReferenceError', page['log']), page['log']
    assert html.get('data-consistent') == 'true', html.get('data-inconsistent')


def test_every_server_has_its_section_and_state(page):
    states = dict(re.findall(r'<section class="server" data-server="([^"]+)" data-state="([^"]+)"', page['text']))
    assert states == dict((s['name'], s['state']) for s in page['fleet']['servers'])
    assert states['pg-02'] == 'down' and states['pg-05'] == 'failed' and states['(host db6)'] == 'no_result'
    assert states['pg-01'] == 'ok'
    assert 'refused' in page['text'] and 'does not exist' in page['text']
    assert page['text'].count('data-chart="spark"') == sum(
        1 for s in page['fleet']['servers'] for d in s['databases'] if d['size_series'])


def test_every_number_shown_equals_the_json(page):
    fleet, values = page['fleet'], page['dom'].values
    assert len(values) > 100
    for el in values:
        want = resolve(fleet, el['data-path'])
        shown = el['data-value']
        if want is None:
            assert shown == '', el
        else:
            assert float(shown) == float(want), el
        if el['tag'] != 'circle':
            assert el['text'].strip() == FORMATS[el['data-format']](want), el


def test_nothing_is_fetched(page):
    with open(page['path']) as f:
        assert not re.search(r'(src|href)=["\']?(https?:)?//', f.read())


def test_a_wrong_number_is_caught_by_the_page(output_dir, chromium):
    fleet = record()
    path = render(output_dir, 'fleet-tampered', fleet)
    dom = tampered_dom(chromium, path, 'data-path="servers.0.databases.0.newest_size" data-format="bytes" '
                       'data-value="%d"' % fleet['servers'][0]['databases'][0]['newest_size'])
    assert dom.html['data-rendered'] == 'ok' and dom.html['data-consistent'] == 'false'
    assert dom.html['data-inconsistent'] == 'servers.0.databases.0.newest_size'


def test_screenshot(page, output_dir, chromium):
    screenshot(chromium, page['path'], os.path.join(output_dir, 'fleet.png'), height=1800)
