# -*- coding: utf-8 -*-
"""AWX as code (playbooks/awx/job_templates.yml, playbooks/awx_configure.yml) and the execution environment
(playbooks/awx/execution-environment.yml, meta/execution-environment.yml) against the repository: every playbook
a team runs has a job template, every survey variable and schedule extra var is an option of the role that
playbook runs (or a play var), survey types fit the option types, a backup id is asked together with the
database(s) it applies to, restore and disaster recovery ask for the production confirmation, notifications
are attached and their secrets come from variables, the AWX calendar is the cron calendar of the schedule role;
awx_configure.yml run for real against a small recording stand-in for the AWX API; the EE build context
rendered offline by ansible-builder and checked for every collection the playbooks and roles use and for
the Python and system dependencies.

Not tested here (no AWX server, no base image): that a real AWX accepts every payload, and the image build."""
from __future__ import absolute_import, division, print_function

import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

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
    'multiselect': ('list', 'raw'),
}
BYDAY = {'MO': '1', 'TU': '2', 'WE': '3', 'TH': '4', 'FR': '5', 'SA': '6', 'SU': '0'}


def load(path):
    with open(path) as f:
        return yaml.safe_load(f)


RAW = load(DATA)
AWX_DATABASES = RAW['awx_databases']


def render(value):
    """The data file's whole-value templates the surveys use ("{{ awx_databases }}"); the rest stays as written.
    The real templating is what test_awx_configure_against_a_recording_api sees arrive."""
    if value == '{{ awx_databases }}':
        return list(AWX_DATABASES)
    if isinstance(value, dict):
        return dict((k, render(v)) for k, v in value.items())
    if isinstance(value, list):
        return [render(v) for v in value]
    return value


TEMPLATES = render(RAW['awx_job_templates'])
CONFIGURE = load(os.path.join(REPO, 'playbooks', 'awx_configure.yml'))[0]


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
        assert {'variable', 'question_name', 'type', 'required'} <= set(q), q
        assert 'default' in q or q['type'] == 'multiselect', q
        var = q['variable']
        assert var in accepted, '%s: survey variable %s is no option of the roles of %s nor a play var' % (
            jt['name'], var, jt['playbook'])
        spec = accepted[var]
        argtype = spec.get('type', 'str')
        assert argtype in SURVEY_TYPES[q['type']], '%s: survey type %s cannot feed %s (%s)' % (
            jt['name'], q['type'], var, argtype)
        if q['type'] == 'multiplechoice':
            # a default among the choices, or none on a required question (the operator must choose)
            assert str(q['default']) in [str(c) for c in q['choices']] or (q['default'] == '' and q['required']), q
            if argtype == 'bool':
                assert sorted(q['choices']) == ['false', 'true'], q
            if spec.get('choices'):
                assert set(q['choices']) <= set(spec['choices']), (q['choices'], spec['choices'])
        if q['type'] == 'multiselect':
            # AWX hands a multiselect answer over as a list; its default (a newline-separated string) is not
            # applied to launches without the answer (schedules), so none is set: unanswered means the role default
            assert isinstance(q['choices'], list) and q['choices'], q
            assert q.get('default', '') == '', q
            assert spec.get('elements', 'str') == 'str', (var, spec)
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


def test_configure_play_uses_the_awx_inventory():
    """In AWX the jobs SSH to the Docker host: the inventory source is awx.yml, not the local pim.yml."""
    assert CONFIGURE['vars']['awx_inventory_source_path'] == 'playbooks/inventory/awx.yml'
    awx = load(os.path.join(REPO, 'playbooks', 'inventory', 'awx.yml'))
    local = load(os.path.join(REPO, 'playbooks', 'inventory', 'pim.yml'))
    for host in awx['postgres_servers']['hosts'].values():
        assert host.get('ansible_connection', 'ssh') == 'ssh' and host['ansible_host'] not in ('localhost', '127.0.0.1')
    # the same team set-up, only the way there differs
    assert awx['postgres_servers']['vars'] == local['postgres_servers']['vars']
    assert AWX_DATABASES == awx['postgres_servers']['vars']['pgops_databases']
    assert 'inventory/awx.yml' in open(os.path.join(REPO, 'playbooks', 'inventory', 'pim.yml')).read()


def test_every_playbook_has_a_job_template():
    playbooks = set(os.path.relpath(p, REPO) for p in glob.glob(os.path.join(REPO, 'playbooks', '*.yml')))
    playbooks.discard('playbooks/awx_configure.yml')   # runs against AWX, not in it
    assert playbooks - set(jt['playbook'] for jt in TEMPLATES) == set()


def _database_question(jt):
    return [q for q in jt['survey'] if re.search(r'_databases?$', q['variable'])]


@pytest.mark.parametrize('jt', [t for t in TEMPLATES if any(q['variable'].endswith('backup_id') for q in t['survey'])],
                         ids=lambda t: t['name'])
def test_backup_id_is_asked_with_its_databases(jt):
    """A backup id belongs to one database's backup: the same survey asks which database(s), required and without
    a default, so an id never applies to every database by omission."""
    [db] = _database_question(jt)
    assert db['required'] is True and db.get('default', '') == '', db
    assert db['type'] in ('multiplechoice', 'multiselect') and db['choices'] == AWX_DATABASES, db
    [bid] = [q for q in jt['survey'] if q['variable'].endswith('backup_id')]
    assert bid['default'] == 'latest' and bid['type'] == 'text'
    assert jt['survey'].index(db) < jt['survey'].index(bid)     # asked first, as the id refers to it


def test_restore_and_dr_can_choose_databases_and_backup():
    by_playbook = dict((jt['playbook'], jt) for jt in TEMPLATES)
    restore = dict((q['variable'], q) for q in by_playbook['playbooks/restore.yml']['survey'])
    dr = dict((q['variable'], q) for q in by_playbook['playbooks/disaster_recovery.yml']['survey'])
    assert restore['restore_database']['type'] == 'multiplechoice'              # the role restores one database
    assert dr['disaster_recovery_databases']['type'] == 'multiselect'          # the role takes a list
    assert {'restore_backup_id', 'restore_mode'} <= set(restore)
    assert 'disaster_recovery_backup_id' in dr


@pytest.mark.parametrize('playbook,var', [('playbooks/restore.yml', 'restore_confirm'),
                                          ('playbooks/disaster_recovery.yml', 'disaster_recovery_confirm')])
def test_production_confirmation_is_asked(playbook, var):
    [jt] = [t for t in TEMPLATES if t['playbook'] == playbook]
    [q] = [q for q in jt['survey'] if q['variable'] == var]
    assert q['type'] == 'multiplechoice' and sorted(q['choices']) == ['false', 'true']
    assert q['default'] == 'false' and q['required'] is True
    assert accepted_vars(playbook)[var]['type'] == 'bool'
    assert accepted_vars(playbook)[var].get('default') is False
    assert not any(var in s['extra_data'] for s in jt['schedules'])


def test_notification_templates_are_attached_and_their_secrets_are_variables():
    notifications = RAW['awx_notification_templates']
    assert {'webhook', 'email'} <= set(n['notification_type'] for n in notifications)
    secrets = {'webhook': ('url', 'password'), 'email': ('password', 'username')}
    play_vars = CONFIGURE['vars']
    for n in notifications:
        for key in secrets[n['notification_type']]:
            value = n['notification_configuration'][key]
            m = re.match(r'^\{\{ (awx_notify_[a-z_]+) \}\}$', value)
            assert value == '' or m, '%s: %s must come from a variable, not be written here' % (n['name'], key)
            if m:
                assert play_vars[m.group(1)] == '', '%s has a default value in awx_configure.yml' % m.group(1)
        assert n['enabled'].startswith('{{ ') and 'awx_notify_' in n['enabled'], n   # only created when configured
    [task] = [t for t in CONFIGURE['tasks'] if 'awx.awx.job_template' in t]
    params = task['awx.awx.job_template']
    assert params['notification_templates_error'] == '{{ __awx_notifications }}'
    assert 'notify_success' in params['notification_templates_success']
    [nt] = [t for t in CONFIGURE['tasks'] if 'awx.awx.notification_template' in t and t.get('loop') != '{{ awx_notification_templates }}']
    assert nt['no_log'] is True
    # success notifications where a human waits for the outcome
    assert set(jt['playbook'] for jt in TEMPLATES if jt.get('notify_success')) == {
        'playbooks/restore.yml', 'playbooks/disaster_recovery.yml', 'playbooks/pitr_restore.yml'}


# --- awx_configure.yml against a recording stand-in for the AWX API ----------------------------------------

class FakeAWX(object):
    """Just enough of AWX's REST API (/api/v2/) for the awx.awx modules: named lists with filters, create, update,
    delete, sub-lists for associations and survey_spec. Records every write."""

    def __init__(self):
        self.objects = {'organizations': {1: {'id': 1, 'name': 'Default'}},
                        'credentials': {1: {'id': 1, 'name': 'pim-docker-host-ssh'}}}
        self.subs = {}
        self.writes = []
        self.next_id = 100
        self.lock = threading.Lock()
        self.host = None                # http://127.0.0.1:<port>, set by the fixture

    def url(self, kind, oid):
        return '/api/v2/%s/%d/' % (kind, oid)

    def listing(self, kind, query):
        kinds = ('job_templates', 'projects', 'inventory_sources') if kind == 'unified_job_templates' else (kind,)
        found = []
        for k in kinds:
            for obj in self.objects.get(k, {}).values():
                ors = [(key[4:], val) for key, val in query.items() if key.startswith('or__')]
                if ors and not any(str(obj.get(f)) == v for f, v in ors):
                    continue
                if all(str(obj.get(key)) == val for key, val in query.items()
                       if not key.startswith('or__') and key not in ('page_size', 'page', 'order_by')):
                    found.append(obj)
        return {'count': len(found), 'next': None, 'previous': None, 'results': found}

    def handle(self, method, path, query, body):
        parts = path[len('/api/v2/'):].strip('/').split('/')
        with self.lock:
            if method != 'GET':
                self.writes.append((method, '/'.join(parts), body))
            if method == 'GET' and len(parts) == 1:
                return 200, self.listing(parts[0], query)
            kind, oid = parts[0], int(parts[1]) if len(parts) > 1 else None
            if method == 'GET' and len(parts) == 2:
                return (200, self.objects[kind][oid]) if oid in self.objects.get(kind, {}) else (404, {'detail': 'Not found'})
            if method == 'GET' and len(parts) == 3:
                sub = self.subs.get((kind, oid, parts[2]))
                if parts[2] == 'survey_spec':
                    return 200, sub or {}
                ids = sub or []
                return 200, {'count': len(ids), 'next': None, 'results': [{'id': i} for i in ids]}
            if method == 'POST' and len(parts) == 1:
                self.next_id += 1
                obj = dict(body, id=self.next_id, url=self.url(kind, self.next_id), type=kind[:-1], summary_fields={},
                           scm_revision='', related={'survey_spec': self.url(kind, self.next_id) + 'survey_spec/'})
                self.objects.setdefault(kind, {})[self.next_id] = obj
                return 201, obj
            if method == 'POST' and len(parts) == 3:
                key = (kind, oid, parts[2])
                if parts[2] == 'survey_spec':
                    self.subs[key] = body
                    return 200, {}
                ids = self.subs.setdefault(key, [])
                if body.get('disassociate'):
                    ids.remove(body['id'])
                else:
                    ids.append(body['id'])
                return 204, None
            if method == 'PATCH' and len(parts) == 2:
                self.objects[kind][oid].update(body)
                return 200, self.objects[kind][oid]
            if method == 'DELETE' and len(parts) == 2:
                self.objects[kind].pop(oid, None)
                return 204, None
        return 404, {'detail': 'not in the stand-in'}

    def named(self, kind):
        return dict((o['name'], o) for o in self.objects.get(kind, {}).values())


@pytest.fixture
def fake_awx():
    api = FakeAWX()

    class Handler(BaseHTTPRequestHandler):
        def _serve(self):
            url = urlsplit(self.path)
            length = int(self.headers.get('Content-Length') or 0)
            body = json.loads(self.rfile.read(length)) if length else {}
            status, payload = api.handle(self.command, url.path, dict(parse_qsl(url.query)), body)
            data = b'' if payload is None else json.dumps(payload).encode()
            self.send_response(status)
            self.send_header('Content-Type', 'application/json')
            self.send_header('X-API-Product-Name', 'AWX')
            self.send_header('X-API-Product-Version', '24.6.1')
            self.send_header('Content-Length', str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PATCH = do_DELETE = _serve

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(('127.0.0.1', 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    api.host = 'http://127.0.0.1:%d' % server.server_address[1]
    yield api
    server.shutdown()
    server.server_close()


def run_configure(api, *extra):
    env = dict(os.environ, CONTROLLER_HOST=api.host, CONTROLLER_OAUTH_TOKEN='test-token', ANSIBLE_FORCE_COLOR='0',
               PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ['PATH'])
    argv = [os.path.join(os.path.dirname(sys.executable), 'ansible-playbook'), '-i', 'localhost,',
            os.path.join(REPO, 'playbooks', 'awx_configure.yml'),
            '-e', 'awx_project_scm_url=https://git.example.com/ops/pim-ops.git', '-e', 'awx_credential=pim-docker-host-ssh',
            '-e', 'awx_timezone=Europe/Brussels', '-e', 'ansible_python_interpreter=%s' % sys.executable] + list(extra)
    return subprocess.run(argv, env=env, cwd=REPO, capture_output=True, text=True, timeout=600, check=False)


SECRETS = {'awx_notify_webhook_url': 'https://hooks.example.com/services/T0/B0/s3cr3t-hook',
           'awx_notify_email_host': 'smtp.example.com', 'awx_notify_email_username': 'pgops',
           'awx_notify_email_password': 's3cr3t-smtp-password', 'awx_notify_email_recipients': ['dba@example.com']}


def test_awx_configure_against_a_recording_api(fake_awx, tmp_path):
    """What awx_configure.yml really sends: the rendered surveys, the notification templates (secrets from the
    variables, never in the output), their attachment to every job template, the EE, inventory source, schedules."""
    secrets = tmp_path / 'awx-secrets.yml'
    secrets.write_text(yaml.safe_dump(SECRETS))
    r = run_configure(fake_awx, '-e', '@%s' % secrets, '-e', 'awx_execution_environment_image=registry.example.com/pgops-ee:0.4.0')
    assert r.returncode == 0, r.stdout[-6000:] + r.stderr[-3000:]
    for value in ('s3cr3t-hook', 's3cr3t-smtp-password'):
        assert value not in r.stdout + r.stderr

    nts = fake_awx.named('notification_templates')
    assert nts['pgops webhook']['notification_type'] == 'webhook'
    assert nts['pgops webhook']['notification_configuration']['url'] == SECRETS['awx_notify_webhook_url']
    email = nts['pgops email']['notification_configuration']
    assert email['password'] == SECRETS['awx_notify_email_password'] and email['recipients'] == ['dba@example.com']
    assert email['port'] == 587 and email['use_tls'] is True

    ee = fake_awx.named('execution_environments')['pgops']
    assert ee['image'] == 'registry.example.com/pgops-ee:0.4.0'
    [source] = fake_awx.objects['inventory_sources'].values()
    assert source['source_path'] == 'playbooks/inventory/awx.yml'

    jts = fake_awx.named('job_templates')
    assert set(jts) == set(jt['name'] for jt in TEMPLATES)
    nt_ids = set(o['id'] for o in nts.values())
    for jt in TEMPLATES:
        obj = jts[jt['name']]
        assert obj['playbook'] == jt['playbook'] and obj['execution_environment'] == ee['id']
        assert set(fake_awx.subs[('job_templates', obj['id'], 'notification_templates_error')]) == nt_ids
        success = set(fake_awx.subs.get(('job_templates', obj['id'], 'notification_templates_success'), []))
        assert success == (nt_ids if jt.get('notify_success') else set()), jt['name']
        assert fake_awx.subs[('job_templates', obj['id'], 'credentials')] == [1]
        spec = fake_awx.subs[('job_templates', obj['id'], 'survey_spec')]
        assert spec['spec'] == jt['survey'], jt['name']     # rendered: the database choices are real lists
        for q in spec['spec']:
            if q['type'] in ('multiselect', 'multiplechoice'):
                assert isinstance(q['choices'], list)
    schedules = fake_awx.named('schedules')
    assert set(schedules) == set(s['name'] for jt in TEMPLATES for s in jt['schedules'])
    assert all('TZID=Europe/Brussels' in s['rrule'] for s in schedules.values())
    assert schedules['pgops Saturday off-site copy']['enabled'] is False

    # as code: a second run against the same API changes no job template and writes no new object
    before = len(fake_awx.objects.get('job_templates', {}))
    again = run_configure(fake_awx, '-e', '@%s' % secrets, '-e', 'awx_execution_environment_image=registry.example.com/pgops-ee:0.4.0')
    assert again.returncode == 0, again.stdout[-4000:]
    assert len(fake_awx.objects['job_templates']) == before
    assert re.search(r'localhost\s+: ok=\d+\s+changed=0 ', again.stdout), again.stdout[-3000:]


def test_awx_configure_without_notification_secrets_then_absent(fake_awx, tmp_path):
    """No secret set: no notification template is created and none is attached (nothing half-configured).
    Then awx_state=absent removes the schedules, the job templates and the notification templates."""
    r = run_configure(fake_awx)
    assert r.returncode == 0, r.stdout[-6000:] + r.stderr[-3000:]
    assert not fake_awx.objects.get('notification_templates')
    assert not any(path.endswith('notification_templates_error') for dummy, path, dummy2 in fake_awx.writes)
    assert 'execution_environments' not in fake_awx.objects
    assert len(fake_awx.objects['job_templates']) == len(TEMPLATES)

    secrets = tmp_path / 'awx-secrets.yml'
    secrets.write_text(yaml.safe_dump({'awx_notify_webhook_url': SECRETS['awx_notify_webhook_url']}))
    r = run_configure(fake_awx, '-e', '@%s' % secrets)          # the webhook only
    assert r.returncode == 0, r.stdout[-6000:]
    assert set(fake_awx.named('notification_templates')) == {'pgops webhook'}

    r = run_configure(fake_awx, '-e', 'awx_state=absent')
    assert r.returncode == 0, r.stdout[-6000:] + r.stderr[-3000:]
    for kind in ('schedules', 'job_templates', 'notification_templates'):
        assert not fake_awx.objects.get(kind), kind


# --- the execution environment -----------------------------------------------------------------------------

COLLECTION_RE = re.compile(r'\b((?:community|containers|amazon|awx|ansible|kubernetes|cloud)\.[a-z0-9_]+)\.[a-z0-9_]+')


def collections_used():
    """Collections named by FQCN in playbooks/ and roles/ (modules, module_defaults groups, roles, lookups)."""
    used = set()
    for top in ('playbooks', 'roles'):
        for path in glob.glob(os.path.join(REPO, top, '**', '*.yml'), recursive=True) + \
                glob.glob(os.path.join(REPO, top, '**', '*.j2'), recursive=True):
            with open(path) as f:
                for line in f:
                    code = line.split('#', 1)[0]
                    used.update(m.group(1) for m in COLLECTION_RE.finditer(code))
    used.discard('ansible.builtin')
    return used


def pinned_collections():
    out = {}
    with open(os.path.join(REPO, 'requirements', 'collections.txt')) as f:
        for line in f:
            line = line.split('#', 1)[0].strip()
            if line:
                name, dummy, version = line.partition('==')
                out[name] = version
    return out


def test_collection_ee_metadata():
    meta = load(os.path.join(REPO, 'meta', 'execution-environment.yml'))
    assert meta['version'] == 1
    for key in ('python', 'system'):
        path = meta['dependencies'][key]
        assert not os.path.isabs(path) and os.path.isfile(os.path.join(REPO, path)), path   # relative to the root


@pytest.fixture(scope='module')
def ee_context(tmp_path_factory):
    """ansible-builder create on a copy of the EE definition beside a freshly built collection tarball, as in a
    clone after `ansible-galaxy collection build` (offline: create renders, it neither builds nor pulls)."""
    work = tmp_path_factory.mktemp('ee')
    bindir = os.path.dirname(sys.executable)
    subprocess.run([os.path.join(bindir, 'ansible-galaxy'), 'collection', 'build', '--force', '--output-path', str(work), REPO],
                   check=True, capture_output=True)
    os.makedirs(str(work / 'playbooks' / 'awx'))
    for name in ('execution-environment.yml', 'requirements.yml'):
        shutil.copy(os.path.join(REPO, 'playbooks', 'awx', name), str(work / 'playbooks' / 'awx'))
    r = subprocess.run([os.path.join(bindir, 'ansible-builder'), 'create', '-f', 'playbooks/awx/execution-environment.yml',
                        '-c', 'context', '-v', '3'], cwd=str(work), capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    assert 'No matches' not in r.stdout + r.stderr          # the tarball was found
    return work


def test_ee_context_holds_every_collection_used(ee_context):
    reqs = load(str(ee_context / 'context' / '_build' / 'requirements.yml'))['collections']
    names = dict((c['name'], c) for c in reqs)
    used = collections_used()
    assert 'community.docker' in used and 'awx.awx' in used     # the grep works
    assert used - set(names) == set()
    pins = pinned_collections()
    for name in used:
        assert str(names[name]['version']) == pins[name], '%s: not the version the tests run with' % name
    # the collection itself: this version's tarball, copied into the context, named by requirements.yml
    version = load(os.path.join(REPO, 'galaxy.yml'))['version']
    [local] = [c for c in reqs if c.get('type') == 'file']
    assert local['name'] == 'collections/pgops-postgresql-%s.tar.gz' % version
    tarball = ee_context / 'context' / '_build' / local['name']
    with tarfile.open(str(tarball)) as t:
        members = set(t.getnames())
    assert {'meta/execution-environment.yml', 'meta/requirements.txt', 'meta/bindep.txt', 'playbooks/backup.yml',
            'plugins/modules/pg_backup.py'} <= members
    containerfile = (ee_context / 'context' / 'Containerfile').read_text()
    assert 'ansible-galaxy collection install' in containerfile and 'introspect' in containerfile
    assert 'ansible-core==2.19.14' in containerfile


def test_ee_dependencies_introspected_from_the_collection(ee_context):
    """What the build's introspect step (the context's own introspect.py) finds in the installed collections:
    the collection's Python and system dependencies, from its meta/execution-environment.yml."""
    coll = ee_context / 'installed'
    tarball = glob.glob(str(ee_context / 'context' / '_build' / 'collections' / '*.tar.gz'))[0]
    # --force and outside the clone: its ansible.cfg's collections path already holds pgops.postgresql
    subprocess.run([os.path.join(os.path.dirname(sys.executable), 'ansible-galaxy'), 'collection', 'install', '--offline',
                    '--no-deps', '--force', '-p', str(coll), tarball], check=True, capture_output=True, cwd=str(ee_context))
    assert os.path.isfile(str(coll / 'ansible_collections' / 'pgops' / 'postgresql' / 'meta' / 'execution-environment.yml'))
    script = str(ee_context / 'context' / '_build' / 'scripts' / 'introspect.py')
    r = subprocess.run([sys.executable, script, 'introspect', str(coll), '--write-pip', str(ee_context / 'pip.txt'),
                        '--write-bindep', str(ee_context / 'bindep.txt')], capture_output=True, text=True,
                       check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    pip = [line.split()[0] for line in (ee_context / 'pip.txt').read_text().splitlines() if line.strip()]
    system = [line.split()[0] for line in (ee_context / 'bindep.txt').read_text().splitlines() if line.strip()]
    assert any(p.startswith('boto3') for p in pip) and any(p.startswith('requests') for p in pip)
    assert {'zstd', 'age', 'postgresql-client', 'postgresql', 'docker.io', 'podman'} <= set(system)
