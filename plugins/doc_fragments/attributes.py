# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgops.postgresql contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type


class ModuleDocFragment(object):
    # What the attributes every module of the collection declares mean; each module states its own support.
    DOCUMENTATION = r'''
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
  idempotent:
    description: When run twice in a row outside check mode, with the same arguments, the second invocation indicates no change.
'''

    # The modules that connect: one connection for all of them with module_defaults.
    ACTIONGROUP_CONNECT = r'''
attributes:
  action_group:
    description: Use C(group/pgops.postgresql.connect) in C(module_defaults) to set the connection options for this
      module and every other pgops module that connects (the roles do it with the lookup
      C(pgops.postgresql.connection)).
    support: full
    membership:
      - pgops.postgresql.connect
'''
