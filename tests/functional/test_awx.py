# -*- coding: utf-8 -*-
"""AWX as code (playbooks/awx/job_templates.yml) against the repository: every job template runs a playbook that
exists, every survey variable and schedule extra var is an option of the role that playbook runs (or a play var),
survey types fit the option types, and the AWX calendar is the cron calendar of the schedule role."""
from __future__ import absolute_import, division, print_function

import os
import re

import pytest
import yaml

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DATA = os.path.join(REPO, 'playbooks', 'awx', 'job_templates.yml')
# AWX survey type -> argument_specs types it can feed
SURVEY_TYPES = {
    'text': ('str', 'path', 'raw'),
    'textarea': ('str', 'raw'),
    'password': ('str', 'raw'),
    'integer': ('int', 'float', 'raw'),
    'float': ('float', 'raw'),
    'multiplechoice': ('str', 'bool', 'raw'),
}
BYDAY = {'MO': '1', 'TU': '2', 'WE': '3', 'TH': '4', 'FR': '5', 'SA': '6', 'SU': '0'}


def load(path):
    with open(path) as f:
        return yaml.safe_load(f)


TEMPLATES = load(DATA)['awx_job_templates']


def roles_in(tasks):
    """Role names (pgops.postgresql.X or X) of include_role / import_role tasks, in blocks too."""
    for task in tasks or []:
        for key in ('block', 'rescue', 'always'):
            yield from roles_in(task.get(key))
        for key in ('ansible.builtin.include_role', 'ansible.builtin.import_role', 'include_role', 'import_role'):
            if key in task:
                yield task[key]['name'], task[key].get('tasks_from', 'main')


def accepted_vars(playbook):
    """{variable: option spec} the playbook accepts: options of its roles' entry points, and play vars."""
    out = {}
    for play in load(os.path.join(REPO, playbook)):
        for var, value in (play.get('vars') or {}).items():
            out[var] = {'type': 'raw', 'play_var': True, 'default': value}
        roles = [((r['role'] if isinstance(r, dict) else r), 'main') for r in play.get('roles') or []]
        for section in ('pre_tasks', 'tasks', 'post_tasks'):
            roles += list(roles_in(play.get(section)))
        for name, entry in roles:
            short = name.split('.')[-1]
            specs = load(os.path.join(REPO, 'roles', short, 'meta', 'argument_specs.yml'))['argument_specs']
            out.update(specs[entry].get('options') or {})
    return out


def ids(templates):
    return [t['name'] for t in templates]


def test_names_unique():
    assert len(set(ids(TEMPLATES))) == len(TEMPLATES)
    schedules = [s['name'] for t in TEMPLATES for s in t['schedules']]
    assert len(set(schedules)) == len(schedules)


@pytest.mark.parametrize('jt', TEMPLATES, ids=ids(TEMPLATES))
def test_playbook_exists_and_runs_without_prompts(jt):
    path = os.path.join(REPO, jt['playbook'])
    assert jt['playbook'].startswith('playbooks/') and os.path.isfile(path), jt['playbook']
    for play in load(path):
        assert not play.get('vars_prompt'), '%s prompts: AWX runs it with extra vars only' % jt['playbook']


@pytest.mark.parametrize('jt', TEMPLATES, ids=ids(TEMPLATES))
def test_survey_variables_are_role_options(jt):
    accepted = accepted_vars(jt['playbook'])
    assert accepted, 'no role with argument_specs and no play vars in %s' % jt['playbook']
    for q in jt['survey']:
        assert {'variable', 'question_name', 'type', 'default', 'required'} <= set(q), q
        var = q['variable']
        assert var in accepted, '%s: survey variable %s is no option of the roles of %s nor a play var' % (
            jt['name'], var, jt['playbook'])
        spec = accepted[var]
        argtype = spec.get('type', 'str')
        assert argtype in SURVEY_TYPES[q['type']], '%s: survey type %s cannot feed %s (%s)' % (
            jt['name'], q['type'], var, argtype)
        if q['type'] == 'multiplechoice':
            assert str(q['default']) in [str(c) for c in q['choices']], q
            if argtype == 'bool':
                assert sorted(q['choices']) == ['false', 'true'], q
            if spec.get('choices'):
                assert set(q['choices']) <= set(spec['choices']), (q['choices'], spec['choices'])
        if q['type'] in ('integer', 'float'):
            assert q.get('min', q['default']) <= q['default'] <= q.get('max', q['default']), q
    for schedule in jt['schedules']:
        for var in schedule['extra_data']:
            assert var in accepted, '%s: schedule extra var %s unknown to %s' % (schedule['name'], var, jt['playbook'])


@pytest.mark.parametrize('jt', TEMPLATES, ids=ids(TEMPLATES))
def test_rrules(jt):
    for s in jt['schedules']:
        rrule = s['rrule'].replace('{{ awx_timezone }}', 'UTC')
        assert re.match(r'^DTSTART;TZID=UTC:\d{8}T\d{6} RRULE:FREQ=(DAILY|WEEKLY|MONTHLY)(;[A-Z]+=[A-Z0-9,]+)+$', rrule), rrule


def test_awx_calendar_is_the_cron_calendar():
    """The same jobs at the same times in AWX schedules and in the schedule role's cron entries."""
    cron = load(os.path.join(REPO, 'roles', 'schedule', 'defaults', 'main.yml'))['schedule_entries']
    want = set()
    for e in cron:
        want.add(('playbooks/' + e['playbook'], e.get('minute', '0'), e.get('hour', '*'), e.get('day', '*'),
                  e.get('weekday', '*'), tuple(sorted((e.get('extra_vars') or {}).items()))))
    got = set()
    for jt in TEMPLATES:
        for s in jt['schedules']:
            m = re.search(r'T(\d\d)(\d\d)\d\d RRULE:(.*)$', s['rrule'])
            parts = dict(p.split('=') for p in m.group(3).split(';'))
            weekday = BYDAY[parts['BYDAY']] if 'BYDAY' in parts else '*'
            extra = dict((k, (v == 'true') if v in ('true', 'false') else v) for k, v in s['extra_data'].items())
            got.add((jt['playbook'], str(int(m.group(2))), str(int(m.group(1))), parts.get('BYMONTHDAY', '*'), weekday,
                     tuple(sorted(extra.items()))))
    assert got == want


def test_configure_play_uses_the_data_file():
    [play] = load(os.path.join(REPO, 'playbooks', 'awx_configure.yml'))
    assert play['vars_files'] == ['awx/job_templates.yml']
    modules = set(k for t in play['tasks'] for k in t if k.startswith('awx.awx.'))
    assert {'awx.awx.project', 'awx.awx.inventory', 'awx.awx.job_template', 'awx.awx.schedule'} <= modules
