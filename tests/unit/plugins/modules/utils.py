# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgops.postgresql contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Running a module's main() in-process, as community.general's tests/unit/plugins/modules/utils.py does:
``set_module_args`` hands the arguments to AnsibleModule, exit_json/fail_json raise instead of exiting."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import contextlib
import json

from ansible.module_utils import basic
from ansible.module_utils.common.text.converters import to_bytes

try:  # ansible-core 2.19 and newer
    from ansible.module_utils.testing import patch_module_args
except ImportError:  # pragma: no cover - older ansible-core
    patch_module_args = None


class AnsibleExitJson(Exception):
    """Raised instead of exit_json; ``result`` is what the module returned."""

    def __init__(self, result):
        super(AnsibleExitJson, self).__init__(result)
        self.result = result


class AnsibleFailJson(Exception):
    """Raised instead of fail_json; ``result`` holds msg and whatever the module returned with it."""

    def __init__(self, result):
        super(AnsibleFailJson, self).__init__(result.get('msg'))
        self.result = result


def exit_json(*args, **kwargs):
    kwargs.setdefault('changed', False)
    raise AnsibleExitJson(kwargs)


def fail_json(*args, **kwargs):
    kwargs['failed'] = True
    raise AnsibleFailJson(kwargs)


@contextlib.contextmanager
def set_module_args(args):
    """Expose ``args`` to the AnsibleModule created inside the block."""
    args = dict(args)
    if patch_module_args is not None:
        with patch_module_args(args):
            yield
        return
    args.setdefault('_ansible_remote_tmp', '/tmp')
    args.setdefault('_ansible_keep_remote_files', False)
    old = basic._ANSIBLE_ARGS
    basic._ANSIBLE_ARGS = to_bytes(json.dumps({'ANSIBLE_MODULE_ARGS': args}))
    try:
        yield
    finally:
        basic._ANSIBLE_ARGS = old
