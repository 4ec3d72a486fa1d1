# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgops.postgresql contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fixtures for the modules' argument tests: exit_json/fail_json raise, and the module's job is replaced by a
recorder, so a test sees whether a run would have started any work at all."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import pytest

from ansible.module_utils import basic

from ansible_collections.pgops.postgresql.tests.unit.plugins.modules.utils import (
    AnsibleExitJson, AnsibleFailJson, exit_json, fail_json, set_module_args,
)


@pytest.fixture(autouse=True)
def module_exits(monkeypatch):
    monkeypatch.setattr(basic.AnsibleModule, 'exit_json', exit_json)
    monkeypatch.setattr(basic.AnsibleModule, 'fail_json', fail_json)


class Job(object):
    """Stands in for a module's ``run_*`` function: records that work would have started, then exits."""

    def __init__(self):
        self.calls = []

    def __call__(self, module):
        self.calls.append(dict(module.params))
        module.exit_json(changed=False, job_ran=True)


@pytest.fixture
def run_args(monkeypatch):
    """``run_args(module, args, job='run_pg_backup')`` runs ``module.main()`` with ``args`` and the job replaced;
    returns ``(result, failed, job)``, where ``job.calls`` is empty unless the options were accepted."""

    def run(module, args, job):
        recorder = Job()
        monkeypatch.setattr(module, job, recorder)
        with set_module_args(args):
            try:
                module.main()
            except AnsibleFailJson as e:
                return e.result, True, recorder
            except AnsibleExitJson as e:
                return e.result, False, recorder
        raise AssertionError('main() neither exited nor failed')   # pragma: no cover

    return run
