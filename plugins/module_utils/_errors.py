# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgops.postgresql contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# PRIVATE to the collection: this is not a public API and may change without notice.
"""The error every job raises: a message fit for the user and the step (a name of the closed set) it failed at."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible_collections.pgops.postgresql.plugins.module_utils._steps import check_step


class PgOpsError(Exception):
    """An error with a message fit for the user; ``step`` names where it happened (one of _steps.ALL_STEPS, or
    None until a job names it). Setting a step outside the closed set raises ValueError: a programming error."""

    def __init__(self, msg, step=None, **details):
        super(PgOpsError, self).__init__(msg)
        self.msg = msg
        self.step = step
        self.details = details

    @property
    def step(self):
        return self._step

    @step.setter
    def step(self, value):
        self._step = check_step(value)
