# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgops.postgresql contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# PRIVATE to the collection: this is not a public API and may change without notice.
"""Options several modules share, with the rules that tie them together.

Choosing databases (pg_backup, pg_maintenance, pg_maintenance_info; documented in doc fragment ``databases``):
``databases`` names them, ``all_databases=true`` takes every database that accepts connections. ``all_databases``
has no default on purpose: only an option that is absent lets ``required_one_of`` see that nothing was chosen
(with ``default=False`` it was always "given", and a run with neither option crashed later on).

Maximum ages per kind (backup_rotate, backup_offsite): ``max_age_days`` takes the kinds as suboptions, so a key that
is not a kind, or a value that is not a number, is refused by AnsibleModule; the range is _rotate.make_policy's.

Each rule AnsibleModule can express is declared (``database_choice_rules``); what it cannot express - a value
that is there but chooses nothing - is checked by ``database_choice_errors``, which a module calls with its other
option checks, first thing in main(), before any work.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os

from ansible_collections.pgops.postgresql.plugins.module_utils._catalog import KINDS


def database_choice_argument_spec():
    """``databases``, ``all_databases`` and ``maintenance_db``."""
    return dict(
        databases=dict(type='list', elements='str', aliases=['database', 'db']),
        all_databases=dict(type='bool'),
        maintenance_db=dict(type='str', default='postgres'),
    )


def database_choice_rules(also=()):
    """``required_one_of`` and ``required_if`` for choosing databases, as keyword arguments of AnsibleModule.

    ``also`` names options that choose something to work on too, so that one of them alone is enough (pg_backup's
    ``globals``: roles and tablespaces only). ``databases`` with ``all_databases=false`` is fine.
    """
    either = ('databases', 'all_databases') + tuple(also)
    return dict(
        required_one_of=[either],
        required_if=[('all_databases', False, ('databases',) + tuple(also), True)],
    )


def database_choice_errors(params, also=()):
    """What the declarations cannot see, one message per broken rule (naming the option and the fix); [] if fine.

    - ``databases`` with ``all_databases=true``: one or the other (``all_databases=false`` is fine, so this is not
      ``mutually_exclusive``, which refuses the option being there at all);
    - options given with values that choose nothing (``all_databases: false`` and ``globals: false``, or null);
    - an empty ``databases`` list, or an empty name in it.
    """
    errors = []
    databases = params.get('databases')
    if params.get('all_databases') and databases is not None:
        errors.append('databases and all_databases=true are mutually exclusive: remove databases, or set '
                      'all_databases=false')
    elif databases is not None and (not databases or any(not d for d in databases)):
        errors.append('databases must name at least one database, and no empty name: list the databases, or '
                      'remove databases and set all_databases=true')
    elif databases is None and not params.get('all_databases') and not any(params.get(o) for o in also):
        errors.append('nothing chosen: set databases (a list of names) or all_databases=true%s'
                      % ''.join(' or %s=true' % o for o in also))
    return errors


def max_age_days_argument_spec():
    """``max_age_days``: days per kind (suboptions), merged over the retention policy's defaults."""
    return dict(type='dict', options=dict((kind, dict(type='float')) for kind in KINDS))


def drop_unset_suboptions(params, name):
    """AnsibleModule gives every suboption that was not set the value None: keep the ones that were set, so that
    ``max_age_days: {full: 60}`` changes the age of full backups only."""
    if params.get(name):
        params[name] = dict((k, v) for k, v in params[name].items() if v is not None)


def backup_dir_errors(path, name='path'):
    """Why ``path`` cannot be read as the backup directory of a module that reads a catalog (and writes beside it,
    as a restore's audit log): [] when it is an existing directory. Read-only, so a refusal writes nothing.

    AnsibleModule's ``type='path'`` keeps "" as "" (and os.path.abspath("") is the working directory), and
    creating a mistyped path would only hide the typo: an empty path, one that does not exist and one that is not
    a directory are each refused, naming the option."""
    if not (path or '').strip():
        return ['%s must not be empty: set it to the backup directory, e.g. /backups/database (an empty %s would '
                'mean the current directory)' % (name, name)]
    if not os.path.lexists(path):
        return ['%s %s does not exist: set %s to the backup directory that pg_backup writes (its dest); nothing '
                'was created' % (name, path, name)]
    if not os.path.isdir(path):
        return ['%s %s is not a directory: set %s to the backup directory that pg_backup writes (its dest)'
                % (name, path, name)]
    return []


def fail_on_errors(module, errors, **result):
    """Fail the module with every message of ``errors`` (joined by "; "); return when there is none."""
    if errors:
        module.fail_json(msg='; '.join(errors), **result)
