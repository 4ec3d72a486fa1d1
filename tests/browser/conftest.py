# -*- coding: utf-8 -*-
"""Browser tests: the HTML report in a real headless Chromium (Debian's chromium; scripts/browser-packages.sh)."""
from __future__ import absolute_import, division, print_function

import os
import shutil
import subprocess
import sys
import tempfile

try:
    from html.parser import HTMLParser
except ImportError:  # pragma: no cover
    from HTMLParser import HTMLParser

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUTPUT = os.path.join(REPO, 'tests', 'output', 'browser')

# the collection is imported as ansible_collections.pgops.postgresql, through a link to this checkout
_ROOT = tempfile.mkdtemp(prefix='pgops-coll-')
os.makedirs(os.path.join(_ROOT, 'ansible_collections', 'pgops'))
os.symlink(REPO, os.path.join(_ROOT, 'ansible_collections', 'pgops', 'postgresql'))
sys.path.insert(0, _ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
         '--disable-background-networking', '--disable-component-update', '--disable-sync', '--hide-scrollbars',
         '--enable-logging=stderr', '--v=0']


class Chromium(object):
    def __init__(self, binary):
        self.binary = binary

    def run(self, url, *extra):
        profile = tempfile.mkdtemp(prefix='pgops-chromium-')
        try:
            return subprocess.run([self.binary] + FLAGS + ['--user-data-dir=%s' % profile] + list(extra) + [url],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                                  timeout=120, check=False)
        finally:
            shutil.rmtree(profile, ignore_errors=True)

    def dump_dom(self, url):
        proc = self.run(url, '--virtual-time-budget=5000', '--dump-dom')
        assert proc.returncode == 0, proc.stderr
        return proc.stdout, proc.stderr

    def screenshot(self, url, path, width=1280, height=2400):
        proc = self.run(url, '--window-size=%d,%d' % (width, height), '--screenshot=%s' % path,
                        '--virtual-time-budget=5000')
        assert proc.returncode == 0 and os.path.getsize(path) > 10000, proc.stderr
        return path


@pytest.fixture(scope='session')
def chromium():
    binary = shutil.which('chromium') or shutil.which('chromium-browser')
    if not binary:
        pytest.fail('chromium not found: run scripts/browser-packages.sh (make test does)')
    return Chromium(binary)


@pytest.fixture(scope='session')
def output_dir():
    if not os.path.isdir(OUTPUT):
        os.makedirs(OUTPUT)
    return OUTPUT


class Dom(HTMLParser):
    """Elements with data-path (their attributes and text), the <html> attributes and every SVG chart."""

    def __init__(self):
        HTMLParser.__init__(self, convert_charrefs=True)
        self.html, self.values, self.charts, self.stack = {}, [], [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == 'html':
            self.html = attrs
        if tag == 'svg' and 'data-chart' in attrs:
            self.charts.append(dict(attrs, circles=0, rects=0))
        if self.charts and tag in ('circle', 'rect') and 'data-path' in attrs:
            self.charts[-1]['circles' if tag == 'circle' else 'rects'] += 1
        if 'data-path' in attrs:
            el = dict(attrs, tag=tag, text='')
            self.values.append(el)
            if tag not in ('circle', 'rect'):
                self.stack.append(el)

    def handle_endtag(self, tag):
        if self.stack and self.stack[-1]['tag'] == tag:
            self.stack.pop()

    def handle_data(self, data):
        if self.stack:
            self.stack[-1]['text'] += data


def resolve(record, path):
    """The value at ``path`` (a page's data-path: keys and list indexes joined by dots) of ``record``."""
    v = record
    for key in path.split('.'):
        v = v[int(key)] if isinstance(v, list) else v[key]
    return v[1] if isinstance(v, list) else v   # a chart point [time, value, source]


def tampered_dom(chromium, path, shown):
    """The page ``path`` as Chromium renders it once the attributes ``shown`` (which must be there) hold a number
    one off in its last digit: the page's own check must then report the element inconsistent."""
    with open(path) as f:
        html = f.read()
    assert shown in html
    with open(path, 'w') as f:
        f.write(html.replace(shown, shown[:-1] + '1"'))
    dom = Dom()
    dom.feed(chromium.dump_dom('file://' + path)[0])
    return dom


def screenshot(chromium, page_path, png_path, height=2400):
    """A PNG of the page at ``png_path``; with PGOPS_DOCS_IMAGE=1 also copied to docs/images/ under that name."""
    shot = chromium.screenshot('file://' + page_path, png_path, height=height)
    with open(shot, 'rb') as f:
        assert f.read(8) == b'\x89PNG\r\n\x1a\n'
    if os.environ.get('PGOPS_DOCS_IMAGE') == '1':
        shutil.copyfile(shot, os.path.join(REPO, 'docs', 'images', os.path.basename(png_path)))
    return shot


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(_ROOT, ignore_errors=True)
