# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgops.postgresql contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type


class ModuleDocFragment(object):
    # Which databases a module works on: pg_backup, pg_maintenance and pg_maintenance_info
    # (argument spec and rules in module_utils/_options.py).
    # all_databases states "default: null" so that it wins over an older fragment that still says "false" when
    # a module extends both (ansible-doc merges the keys of an option; this fragment must then come first).
    DOCUMENTATION = r'''
options:
  databases:
    description:
      - Databases to work on. Names may hold spaces, quotes and unicode. Each name may appear once; an empty list
        or an empty name is refused.
      - One of O(databases) and O(all_databases=true) is required; M(pgops.postgresql.pg_backup) also takes
        C(globals=true) alone.
      - Mutually exclusive with O(all_databases=true); O(all_databases=false) may be given with it.
    type: list
    elements: str
    aliases: [ database, db ]
  all_databases:
    description:
      - Work on every database that accepts connections and is not a template.
      - Mutually exclusive with O(databases). O(all_databases=false) needs O(databases). Has no default, so
        that leaving out both O(databases) and O(all_databases) is refused before anything is done.
    type: bool
    default: null
  maintenance_db:
    description:
      - Database to connect to when listing databases for O(all_databases).
    type: str
    default: postgres
'''
