# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgops.postgresql contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Every list variable of every role (issue 21): what its argument spec accepts - a list, a comma-separated string
(-e disaster_recovery_databases=shop), a list written as JSON - reaches the tasks as a list, through the one filter
pgops.postgresql.role_list read in the role's vars/main.yml; a list of mappings given as a string is refused by the
spec, naming the variable; and no task reads a list variable itself."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import glob
import os
import re

import jinja2
import jinja2.nodes
import pytest
import yaml

from ansible.errors import AnsibleFilterError
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.pgops.postgresql.plugins.filter.role_list import FilterModule, role_list

ROLES = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', '..', '..', 'roles')
EXPRESSION_KEYS = ('when', 'that', 'failed_when', 'changed_when', 'until')


def list_options():
    """(role, entry point, name, option spec) of every ``type: list`` option, suboptions included."""
    out = []

    def walk(role, entry, options, prefix=''):
        for name, spec in sorted((options or {}).items()):
            if spec.get('type') == 'list':
                out.append((role, entry, prefix + name, spec))
            walk(role, entry, spec.get('options'), prefix + name + '.')

    for path in sorted(glob.glob(os.path.join(ROLES, '*', 'meta', 'argument_specs.yml'))):
        role = path.split(os.sep)[-3]
        with open(path) as f:
            for entry, spec in yaml.safe_load(f)['argument_specs'].items():
                walk(role, entry, spec.get('options'))
    return out


LISTS = list_options()
SCALAR_LISTS = sorted(set((r, n) for r, e, n, s in LISTS if s.get('elements', 'str') not in ('dict', 'list')))
MAPPING_LISTS = sorted(set((r, n) for r, e, n, s in LISTS if s.get('elements') == 'dict'))
SPECS = dict(((r, n), s) for r, e, n, s in LISTS)


def role_vars(role):
    path = os.path.join(ROLES, role, 'vars', 'main.yml')
    with open(path) as f:
        return yaml.safe_load(f) or {}


def kind_of(role, name):
    """The kind the role's vars/main.yml reads ``name`` with (names unless it says otherwise)."""
    text = role_vars(role).get('__' + name)
    assert text, 'roles/%s/vars/main.yml has no __%s' % (role, name)
    m = re.search(r"^\s*\{\{\s*%s\s*\|\s*pgops\.postgresql\.role_list\('%s'(?:, kind='(\w+)')?\)" % (name, name), text)
    assert m, 'roles/%s/vars/main.yml: __%s does not read %s through pgops.postgresql.role_list: %s' % (
        role, name, name, text)
    return m.group(1) or 'names'


def referenced_names(role):
    """{variable name: [file, ...]} of every variable a task, a template or a role var reads."""
    env = jinja2.Environment()
    found = {}

    def note(source, where):
        names = set(n.name for n in env.parse(source).find_all(jinja2.nodes.Name) if n.ctx == 'load')
        for n in sorted(names):
            found.setdefault(n, []).append(where)

    def walk(node, where, key=None):
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, where, k)
        elif isinstance(node, list):
            for v in node:
                walk(v, where, key)
        elif isinstance(node, str):
            if key in EXPRESSION_KEYS and '{{' not in node:
                note('{{ %s }}' % node, where)
            elif '{{' in node or '{%' in node:
                note(node, where)

    base = os.path.join(ROLES, role)
    for path in glob.glob(os.path.join(base, 'tasks', '*.yml')) + glob.glob(os.path.join(base, 'handlers', '*.yml')):
        with open(path) as f:
            walk(yaml.safe_load(f), os.path.relpath(path, base))
    for path in glob.glob(os.path.join(base, 'templates', '*')):
        with open(path) as f:
            note(f.read(), os.path.relpath(path, base))
    for name, value in role_vars(role).items():
        walk(value, 'vars/main.yml:%s' % name)
    return found


def test_every_list_option_is_found():
    names = [n for r, n in SCALAR_LISTS]
    assert 'disaster_recovery_databases' in names and 'backup_databases' in names and len(names) >= 29
    assert ('schedule', 'schedule_entries') in MAPPING_LISTS


# Jinja's lexer warns of the regular expressions in some templates ('\\.' in a string): not ours to judge here
@pytest.mark.filterwarnings('ignore::DeprecationWarning')
@pytest.mark.parametrize('role, name', SCALAR_LISTS, ids=['%s.%s' % rn for rn in SCALAR_LISTS])
def test_the_role_reads_its_list_variable_only_through_the_filter(role, name):
    kind_of(role, name)
    readers = referenced_names(role).get(name, [])
    assert readers == ['vars/main.yml:__%s' % name], (
        'roles/%s reads %s itself (%s): read __%s instead' % (role, name, readers, name))


@pytest.mark.parametrize('role, name', SCALAR_LISTS, ids=['%s.%s' % rn for rn in SCALAR_LISTS])
def test_what_the_spec_accepts_is_a_list(role, name):
    spec = dict(SPECS[(role, name)])
    spec.pop('description', None)
    kind = kind_of(role, name)
    validator = ArgumentSpecValidator({name: spec})
    a, b = (spec['choices'] + spec['choices'])[:2] if spec.get('choices') else ('shop', 'crm')
    cases = {
        'names': [(a, [a]), ('%s,%s' % (a, b), [a, b]), ('%s, %s' % (a, b), [a, b]),
                  ('["%s", "%s"]' % (a, b), [a, b]), ('[%s]' % a, [a]), ('', []), ([a], [a])],
        'items': [('SELECT count(*) > 0 FROM a, b', ['SELECT count(*) > 0 FROM a, b']),
                  ('["SELECT 1", "SELECT 2"]', ['SELECT 1', 'SELECT 2']), ('', []), (['x, y'], ['x, y'])],
        'argv': [('pg_ctlcluster 15 main restart', ['pg_ctlcluster', '15', 'main', 'restart']),
                 ("-e 'a b'", ['-e', 'a b']), ('["--check", "-v"]', ['--check', '-v']), ('', []),
                 (['a b'], ['a b'])],
    }[kind]
    for given, expected in cases:
        errors = validator.validate({name: given}).error_messages
        if errors:      # refused by the spec (a choice with a space before it), naming the variable
            assert spec.get('choices') and name in ' '.join(errors), (name, given, errors)
            continue
        assert role_list(given, name, kind=kind) == expected, (name, given)     # the role gets a list


@pytest.mark.filterwarnings('ignore::DeprecationWarning')
@pytest.mark.parametrize('role, name', MAPPING_LISTS, ids=['%s.%s' % rn for rn in MAPPING_LISTS])
def test_a_list_of_mappings_given_as_a_string_is_refused_naming_it(role, name):
    """The spec refuses most strings; one it lets through (``name=x`` is a mapping to check_type_dict) is refused
    by the filter, both naming the variable; a real list, and a list written as JSON, are lists."""
    assert kind_of(role, name) == 'mappings'
    readers = referenced_names(role).get(name, [])
    assert readers == ['vars/main.yml:__%s' % name], readers
    spec = dict(SPECS[(role, name)])
    validator = ArgumentSpecValidator({name: spec})
    for given in ('backup', '[{"name": "x", "playbook": "backup.yml"}]', 'name=x', 'name=x,playbook=backup.yml'):
        errors = validator.validate({name: given}).error_messages
        if errors:
            assert name in ' '.join(errors), (given, errors)
            continue
        with pytest.raises(AnsibleFilterError) as e:
            role_list(given, name, kind='mappings')
        assert name in str(e.value) and 'JSON' in str(e.value)
    entries = [{'name': 'x', 'playbook': 'backup.yml'}]
    assert role_list(entries, name, kind='mappings') == entries
    assert role_list('[{"name": "x", "playbook": "backup.yml"}]', name, kind='mappings') == entries


@pytest.mark.parametrize('value, kind, expected', [
    (None, 'names', []),
    (('a', 'b'), 'names', ['a', 'b']),
    ([1, {'k': 'v'}], 'items', [1, {'k': 'v'}]),       # a list is the caller's, as it is
    (5432, 'names', ['5432']),                        # a number: its text, as check_type_list
    (' a ,, b , ', 'names', ['a', 'b']),
    ('[a, b]', 'items', ['a', 'b']),
    ('[not closed', 'names', ['[not closed']),
])
def test_role_list_values(value, kind, expected):
    assert role_list(value, 'x', kind=kind) == expected


@pytest.mark.parametrize('value, kind, words', [
    ({'a': 1}, 'names', ['backup_databases', 'mapping']),
    (True, 'names', ['backup_databases', 'must be a list']),
    ('[a, [b]', 'names', ['backup_databases', 'not valid JSON or YAML']),
    ("it's", 'argv', ['backup_databases', 'not a command line']),
    ('a', 'other', ['kind must be one of']),
])
def test_role_list_refuses_naming_the_variable(value, kind, words):
    with pytest.raises(AnsibleFilterError) as e:
        role_list(value, 'backup_databases', kind=kind)
    for word in words:
        assert word in str(e.value)


def test_the_filter_is_registered():
    assert FilterModule().filters() == {'role_list': role_list}
