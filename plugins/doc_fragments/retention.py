# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgops.postgresql contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type


class ModuleDocFragment(object):
    # The maximum age per kind of backup_rotate and backup_offsite (state=rotated): argument spec
    # max_age_days_argument_spec() in module_utils/_options.py, defaults in _rotate.DEFAULT_MAX_AGE_DAYS.
    DOCUMENTATION = r'''
options:
  max_age_days:
    description:
      - Maximum age in days per kind, merged over the defaults C(full=30), C(pre_deploy=7), C(snapshot=3),
        C(pre_restore=7), C(manual=7). Fractions are allowed. Ages count from a backup's start (its recovery point).
      - Keys must be kinds (C(full), C(manual), C(snapshot), C(pre_deploy), C(pre_restore)); another key is
        refused.
      - M(pgops.postgresql.backup_offsite) applies it to the off-site copies, with
        O(pgops.postgresql.backup_offsite#module:state=rotated).
    type: dict
    suboptions:
      full:
        description: Days for C(full) backups (default 30).
        type: float
      manual:
        description: Days for C(manual) backups (default 7).
        type: float
      snapshot:
        description: Days for C(snapshot) backups (default 3).
        type: float
      pre_deploy:
        description: Days for C(pre_deploy) backups (default 7).
        type: float
      pre_restore:
        description: Days for C(pre_restore) backups (default 7).
        type: float
'''
