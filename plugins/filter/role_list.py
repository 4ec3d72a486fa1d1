# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgops.postgresql contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The value of a role's list variable as the list its argument spec let through, in one place (documented in
plugins/filter/role_list.yml).

A role's ``meta/argument_specs.yml`` only checks: ``type: list`` accepts a string (``-e disaster_recovery_databases=
shop`` on the command line, an AWX survey answer) because ansible's check_type_list splits it on commas, but the
role then gets the string itself, and ``loop:`` over it fails with "The `loop` value must resolve to a 'list', not
'str'" (or ``join`` spells it letter by letter). Each role's vars/main.yml therefore reads its list variables
through this filter, which applies the conversion the spec validated - and, where ansible-core before 2.19 turned
a string that looks like a list into one, that too."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import shlex
from collections.abc import Mapping

import yaml

from ansible.errors import AnsibleFilterError

# How a plain string (not a list written as JSON or YAML) becomes a list:
#   names: split on commas, as check_type_list does, each item stripped, empty items dropped ("" is no item)
#   items: the string is one item (SQL queries and message texts hold commas of their own)
#   argv:  split into words as a POSIX shell does (a command line)
#   mappings: refused (a list of mappings has no string form; its spec lets "name=x" through as {name: x})
KINDS = ('names', 'items', 'argv', 'mappings')


def role_list(value, name='the variable', kind='names'):
    """``value`` (a list, or a string the role's ``type: list`` spec accepted) as a list; a list as it is."""
    if kind not in KINDS:
        raise AnsibleFilterError('role_list: kind must be one of %s, got %r' % (', '.join(KINDS), kind))
    if value is None:
        return []
    if isinstance(value, str):
        text = str(value).strip()
        if text.startswith('[') and text.endswith(']'):
            # a list written as JSON or YAML (-e 'x=["shop", "crm"]'): what it says, not its text split on commas
            try:
                parsed = yaml.safe_load(text)
            except yaml.YAMLError as e:
                raise AnsibleFilterError('%s: %s looks like a list but is not valid JSON or YAML (%s); write it as '
                                         '["a", "b"] or as a comma-separated string' % (name, text, e))
            if isinstance(parsed, list):
                return parsed
        if kind == 'mappings':
            raise AnsibleFilterError('%s must be a list of mappings, not the string %s: give it as JSON, e.g. '
                                     '-e \'{"%s": [{"name": "...", ...}]}\'' % (name, text, name))
        if kind == 'argv':
            try:
                return shlex.split(text)
            except ValueError as e:
                raise AnsibleFilterError('%s: %s is not a command line (%s); give it as a list of arguments'
                                         % (name, text, e))
        if kind == 'items':
            return [text] if text else []
        return [item.strip() for item in text.split(',') if item.strip()]
    if isinstance(value, Mapping):
        raise AnsibleFilterError('%s must be a list (or a comma-separated string), not a mapping' % name)
    if isinstance(value, (list, tuple)):
        return list(value)
    if isinstance(value, bool):
        raise AnsibleFilterError('%s must be a list (or a comma-separated string), got %r' % (name, value))
    if isinstance(value, (int, float)):
        return [str(value)]          # as check_type_list: a number is a list of its text
    raise AnsibleFilterError('%s must be a list (or a comma-separated string), got %s' % (name, type(value).__name__))


class FilterModule(object):
    """pgops.postgresql.role_list"""

    def filters(self):
        return {'role_list': role_list}
