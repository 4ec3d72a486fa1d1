# -*- coding: utf-8 -*-
"""Browser tests: the HTML report in a real headless Chromium (Debian's chromium; scripts/browser-packages.sh)."""
from __future__ import absolute_import, division, print_function

import os
import shutil
import subprocess
import sys
import tempfile

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


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(_ROOT, ignore_errors=True)
