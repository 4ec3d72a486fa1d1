# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgops.postgresql contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The scratch DATABASE of a logical restore (_scratch; the throwaway INSTANCE is _instance's): its names within
PostgreSQL's 63 bytes, and the pgops mark by which the next run knows a scratch database is ours to drop."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json

import pytest

from ansible_collections.pgops.postgresql.plugins.module_utils.restore.scratch import (
    NAMEDATALEN, SCRATCH_MARK, derived_name, rollback_name, rollback_prefix, scratch_info, scratch_name,
    scratch_prefix,
)


def test_short_names_are_the_base_and_the_suffix():
    assert scratch_name('shop', '20261128_223553') == 'shop__restore_20261128_223553'
    assert rollback_name('shop', '20261128_223553') == 'shop__rollback_20261128_223553'


@pytest.mark.parametrize('base', ['x' * 63, 'ä' * 40, 'shop_' + 'y' * 50])
def test_long_names_are_cut_within_63_bytes_with_a_hash(base):
    name = scratch_name(base, '20261128_223553')
    assert len(name.encode('utf-8')) <= NAMEDATALEN
    assert name.endswith('__restore_20261128_223553') and '~' in name
    assert name.startswith(scratch_prefix(base))
    assert rollback_name(base, '20261128_223553').startswith(rollback_prefix(base))
    # the cut depends only on the base: two bases with the same start get different names
    assert derived_name(base, '_s') != derived_name(base + 'z', '_s')
    assert name.encode('utf-8').decode('utf-8') == name   # never a multibyte character cut in half


def test_the_mark_says_whose_scratch_it_is():
    info = dict(target='shop', backup='20261128_223553', host='db1', pid=42)
    assert scratch_info(SCRATCH_MARK + json.dumps(info)) == info
    for comment in (None, '', 'an application comment', SCRATCH_MARK + '{not json', SCRATCH_MARK + '[1]',
                    SCRATCH_MARK + json.dumps(dict(backup='x'))):
        assert scratch_info(comment) is None
