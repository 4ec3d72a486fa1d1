# -*- coding: utf-8 -*-
"""Notifications without AWX (pgops.postgresql.notify), end to end: the real playbooks run with ansible-playbook
against a real PostgreSQL, and real listeners on 127.0.0.1 record what arrives - an HTTP server for the webhook
and the healthcheck pings, an SMTP server (aiosmtpd) that requires STARTTLS and AUTH for the mail."""
from __future__ import absolute_import, division, print_function

import glob
import json
import os
import subprocess
import sys

import pytest
import yaml

from listeners import HttpRecorder, SmtpRecorder, closed_port, self_signed_cert

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SMTP_PASSWORD = 'sm7p-S3cret-never-shown'
HOST = 'pim-db'


@pytest.fixture(scope='module')
def tls(tmp_path_factory):
    return self_signed_cert(str(tmp_path_factory.mktemp('tls')))


@pytest.fixture
def http():
    recorder = HttpRecorder()
    yield recorder
    recorder.close()


@pytest.fixture
def smtp(tls):
    recorder = SmtpRecorder(tls[0], tls[1], 'pgops', SMTP_PASSWORD)
    yield recorder
    recorder.close()


@pytest.fixture
def notify_play(postgres, collection_root, tmp_path, http, smtp, tls):
    postgres.create_db('nt_prod')
    backups = tmp_path / 'backups'

    def run(playbook, *args, **notify):
        variables = {'pgops_login_host': '127.0.0.1', 'pgops_port': postgres.port, 'pgops_login_user': 'postgres',
                     'pgops_databases': ['nt_prod'], 'pgops_backup_dir': str(backups),
                     'pgops_log_file': str(tmp_path / 'db-backup.log'), 'metrics_enabled': False,
                     'pgops_notify_ping_urls': {'backup': http.url + '/ping/b4ck-uuid',
                                                'list_backups': http.url + '/ping/l1st-uuid'},
                     'pgops_notify_webhook_url': http.url + '/hook/T000/B000/XXXX',
                     'pgops_notify_email_to': ['dba@example.test'],
                     'pgops_notify_email_from': 'pgops@example.test',
                     'pgops_notify_email_smtp_host': '127.0.0.1',
                     'pgops_notify_email_smtp_port': smtp.port,
                     'pgops_notify_email_smtp_user': 'pgops',
                     'pgops_notify_email_smtp_password': SMTP_PASSWORD,
                     'pgops_notify_email_ca_file': tls[0]}
        variables.update(notify)
        inventory = {'postgres_servers': {'hosts': {HOST: {'ansible_connection': 'local',
                                                           'ansible_python_interpreter': sys.executable}},
                                          'vars': variables}}
        inv = tmp_path / 'inventory.yml'
        inv.write_text(yaml.safe_dump(inventory))
        env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=collection_root, ANSIBLE_FORCE_COLOR='0',
                   ANSIBLE_STDOUT_CALLBACK='default', ANSIBLE_NOCOLOR='1',
                   PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ['PATH'])
        proc = subprocess.run([os.path.join(os.path.dirname(sys.executable), 'ansible-playbook'), '-i', str(inv),
                               os.path.join(REPO, 'playbooks', playbook)] + list(args),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True, env=env,
                              cwd=str(tmp_path), check=False)
        assert SMTP_PASSWORD not in proc.stdout, 'the SMTP password was shown'
        # the webhook URL and the ping URLs are credentials too (no_log on their tasks)
        assert 'T000/B000' not in proc.stdout and 'b4ck-uuid' not in proc.stdout, 'a webhook or ping URL was shown'
        return proc.returncode, proc.stdout

    return dict(run=run, backups=str(backups))


def backup_ids(backups, database, status='success'):
    ids = []
    for path in glob.glob(os.path.join(backups, '*.meta.json')):
        with open(path) as f:
            meta = json.load(f)
        if meta.get('database') == database and meta.get('status') == status:
            ids.append(meta['id'])
    return ids


def test_successful_backup_pings_start_and_success_and_sends_no_message(notify_play, http, smtp):
    rc, out = notify_play['run']('backup.yml')
    assert rc == 0, out[-3000:]
    assert http.paths() == ['/ping/b4ck-uuid/start', '/ping/b4ck-uuid'], http.requests
    assert [r['method'] for r in http.requests] == ['POST', 'POST']
    assert backup_ids(notify_play['backups'], 'nt_prod')[0] in http.requests[1]['body']
    assert smtp.mails == [] and smtp.logins == []
    assert 'NOTIFICATION FAILED' not in out


@pytest.mark.parametrize('verbosity', [[], ['-vvv']])
def test_failed_backup_pings_fail_posts_and_mails_then_fails_with_its_own_error(notify_play, http, smtp, verbosity):
    # nt_prod backs up, nt_missing does not exist: pg_backup records both runs, then fails the job
    rc, out = notify_play['run']('backup.yml', *verbosity, pgops_databases=['nt_prod', 'nt_missing'])
    assert rc != 0, out[-3000:]
    # the play still fails with the backup's own error, after the notifications
    tail = out[out.index('TASK [Fail with the original error]'):]
    assert 'backup of nt_missing failed' in tail, tail
    good = backup_ids(notify_play['backups'], 'nt_prod')
    assert len(good) == 1

    assert http.paths() == ['/ping/b4ck-uuid/start', '/ping/b4ck-uuid/fail', '/hook/T000/B000/XXXX'], http.requests
    fail_body = http.requests[1]['body']
    assert 'backup FAILED on %s' % HOST in fail_body and 'nt_missing' in fail_body and good[0] in fail_body

    [hook] = http.json_bodies('/hook/T000/B000/XXXX')
    assert hook['status'] == 'failure' and hook['job'] == 'backup' and hook['host'] == HOST
    assert hook['databases'] == ['nt_prod', 'nt_missing']
    assert good[0] in hook['backup_ids']
    assert hook['error']['task'].startswith('Back up') and 'backup of nt_missing failed' in hook['error']['msg']
    assert 'failed: nt_missing' in hook['details']
    assert hook['text'].startswith('backup FAILED on %s (nt_prod, nt_missing)' % HOST)
    assert 'backup of nt_missing failed' in hook['text']

    [mail] = smtp.mails
    assert mail['tls'] and mail['rcpt_tos'] == ['dba@example.test'] and mail['mail_from'] == 'pgops@example.test'
    assert smtp.logins and all(login['ok'] and login['tls'] for login in smtp.logins)
    assert mail['message']['Subject'] == '[pgops] backup FAILED on %s (nt_prod, nt_missing)' % HOST
    assert mail['message']['X-Pgops-Status'] == 'failure'
    body = mail['message'].get_content()
    assert HOST in body and 'nt_missing' in body and good[0] in body and 'backup of nt_missing failed' in body


def test_dead_endpoints_never_fail_a_successful_backup(notify_play, http, smtp):
    dead = 'http://127.0.0.1:%d' % closed_port()
    rc, out = notify_play['run']('backup.yml', pgops_notify_ping_urls={'backup': dead + '/ping'},
                                 pgops_notify_webhook_url=dead + '/hook',
                                 pgops_notify_email_smtp_port=closed_port(),
                                 pgops_notify_events=['failure', 'alert', 'success'])
    assert rc == 0, out[-3000:]
    assert len(backup_ids(notify_play['backups'], 'nt_prod')) == 1
    assert 'NOTIFICATION FAILED: the healthcheck ping for backup start' in out
    assert 'NOTIFICATION FAILED: the healthcheck ping for backup success' in out
    assert 'NOTIFICATION FAILED: the webhook for backup success' in out
    assert 'NOTIFICATION FAILED: the mail for backup success was not sent: SMTP connect' in out
    assert http.requests == [] and smtp.mails == []


def test_dead_endpoints_never_hide_the_original_error(notify_play, http, smtp):
    dead = 'http://127.0.0.1:%d' % closed_port()
    rc, out = notify_play['run']('backup.yml', pgops_databases=['nt_missing'],
                                 pgops_notify_ping_urls={'backup': dead + '/ping'},
                                 pgops_notify_webhook_url=dead + '/hook', pgops_notify_email_smtp_port=closed_port())
    assert rc != 0
    assert 'NOTIFICATION FAILED: the webhook for backup failure' in out
    assert 'NOTIFICATION FAILED: the mail for backup failure' in out
    tail = out[out.index('TASK [Fail with the original error]'):]
    assert 'backup of nt_missing failed' in tail, tail


def test_wrong_notify_settings_never_hide_the_original_error(notify_play, http, smtp):
    rc, out = notify_play['run']('backup.yml', pgops_databases=['nt_missing'], pgops_notify_ping_style='carrier-pigeon')
    assert rc != 0
    tail = out[out.index('TASK [Fail with the original error]'):]
    assert 'backup of nt_missing failed' in tail, tail


def test_no_channel_no_traffic(notify_play, http, smtp):
    rc, out = notify_play['run']('backup.yml', pgops_notify_ping_urls={}, pgops_notify_webhook_url='',
                                 pgops_notify_email_to=[], pgops_databases=['nt_missing'])
    assert rc != 0 and 'backup of nt_missing failed' in out
    assert http.requests == [] and smtp.mails == [] and smtp.logins == []


def test_monday_stats_notify_their_alerts_and_fail(notify_play, http, smtp):
    rc, out = notify_play['run']('backup.yml', pgops_notify_ping_urls={})
    assert rc == 0, out[-3000:]
    [meta] = glob.glob(os.path.join(notify_play['backups'], 'nt_prod_*.meta.json'))
    with open(meta) as f:
        dump = os.path.join(notify_play['backups'], json.load(f)['file'])
    with open(dump, 'ab') as f:       # the dump no longer matches its metadata: backup_info raises an alert
        f.write(b'garbage')
    rc, out = notify_play['run']('list_backups.yml', '-e', 'list_backups_fail_on_alert=true')
    assert rc != 0, out[-3000:]
    assert http.paths() == ['/ping/l1st-uuid/start', '/ping/l1st-uuid/fail', '/hook/T000/B000/XXXX'], http.requests
    [hook] = http.json_bodies('/hook/T000/B000/XXXX')
    assert hook['job'] == 'list_backups' and hook['status'] == 'failure' and hook['alerts']
    assert any('nt_prod' in alert for alert in hook['alerts'])
    [mail] = smtp.mails
    assert 'alert: ' in mail['message'].get_content()

    # without fail_on_alert the job succeeds and the alerts are still sent
    rc, out = notify_play['run']('list_backups.yml')
    assert rc == 0, out[-3000:]
    assert http.paths()[-2:] == ['/ping/l1st-uuid', '/hook/T000/B000/XXXX']
    assert http.json_bodies('/hook/T000/B000/XXXX')[-1]['status'] == 'alert'
    assert len(smtp.mails) == 2


def test_failed_drill_names_each_failed_backup(notify_play, http, smtp):
    rc, out = notify_play['run']('backup.yml', pgops_notify_ping_urls={})
    assert rc == 0, out[-3000:]
    [good] = backup_ids(notify_play['backups'], 'nt_prod')
    [meta] = glob.glob(os.path.join(notify_play['backups'], 'nt_prod_*.meta.json'))
    with open(meta) as f:
        dump = os.path.join(notify_play['backups'], json.load(f)['file'])
    with open(dump, 'r+b') as f:      # same size, damaged content: only a restore finds it
        f.seek(10)
        f.write(b'\x00\x01\x02')
    rc, out = notify_play['run']('restore_drill.yml',
                                 pgops_notify_ping_urls={'restore_drill': http.url + '/ping/dr1ll'})
    assert rc != 0 and 'The restore drill failed' in out[out.index('TASK [Fail with the original error]'):], out[-3000:]
    assert http.paths() == ['/ping/dr1ll/start', '/ping/dr1ll/fail', '/hook/T000/B000/XXXX'], http.requests
    [hook] = http.json_bodies('/hook/T000/B000/XXXX')
    assert hook['job'] == 'restore_drill' and hook['backup_ids'] == [good] and hook['databases'] == ['nt_prod']
    assert [d for d in hook['details'] if d.startswith('FAIL nt_prod %s ' % good)], hook['details']
    assert 'The restore drill failed' in hook['error']['msg']
    [mail] = smtp.mails
    assert 'FAIL nt_prod %s' % good in mail['message'].get_content()


def test_uptime_kuma_push_and_teams_card(notify_play, http, smtp):
    kuma = http.url + '/api/push/kUmA?status=up&msg=OK&ping='
    rc, out = notify_play['run']('backup.yml', pgops_notify_ping_style='uptime_kuma',
                                 pgops_notify_ping_urls={'backup': kuma}, pgops_notify_webhook_format='teams',
                                 pgops_notify_email_to=[])
    assert rc == 0, out[-3000:]
    [ping] = http.requests        # no start signal in Kuma
    assert ping['method'] == 'GET' and ping['path'].startswith('/api/push/kUmA?status=up&msg=backup%20succeeded')
    rc, out = notify_play['run']('backup.yml', pgops_notify_ping_style='uptime_kuma',
                                 pgops_notify_ping_urls={'backup': kuma}, pgops_notify_webhook_format='teams',
                                 pgops_notify_email_to=[], pgops_databases=['nt_missing'])
    assert rc != 0
    assert http.requests[1]['path'].startswith('/api/push/kUmA?status=down&msg=error%3A%20Back%20up%20nt_missing')
    [card] = http.json_bodies('/hook/T000/B000/XXXX')
    assert card['type'] == 'message'
    content = card['attachments'][0]['content']
    assert content['type'] == 'AdaptiveCard' and content['body'][0]['text'] == 'backup FAILED on %s (nt_missing)' % HOST
    assert 'backup of nt_missing failed' in content['body'][1]['text']


def test_tags_and_check_mode(notify_play, http, smtp):
    # a run limited by tags still fails with its error (the notifications and the final failure are tagged always)
    rc, out = notify_play['run']('backup.yml', '--tags', 'backup_run', pgops_databases=['nt_missing'])
    assert rc != 0 and 'backup of nt_missing failed' in out[out.index('TASK [Fail with the original error]'):]
    assert http.paths() == ['/ping/b4ck-uuid/start', '/ping/b4ck-uuid/fail', '/hook/T000/B000/XXXX']
    # check mode sends nothing
    rc, out = notify_play['run']('rotate.yml', '--check', pgops_notify_ping_urls={'rotate': http.url + '/ping/r0t'},
                                 pgops_notify_events=['failure', 'alert', 'success'])
    assert rc == 0, out[-3000:]
    assert len(http.requests) == 3 and len(smtp.mails) == 1


def test_monday_stats_notice_backups_that_silently_stopped(notify_play, http, smtp):
    """The daily backup stopped three days ago (its last run backdated): the Monday job pings /fail and sends the
    'no successful backup' alert, naming the database and the host."""
    rc, out = notify_play['run']('backup.yml', pgops_notify_ping_urls={})
    assert rc == 0, out[-3000:]
    [path] = glob.glob(os.path.join(notify_play['backups'], 'nt_prod_*.meta.json'))
    with open(path) as f:
        meta = json.load(f)
    for key in ('started_at', 'finished_at'):
        meta[key] = '2020-01-01T02:00:00+00:00'
    with open(path, 'w') as f:
        json.dump(meta, f)
    rc, out = notify_play['run']('list_backups.yml', '-e', 'list_backups_fail_on_alert=true')
    assert rc != 0, out[-3000:]
    assert http.paths() == ['/ping/l1st-uuid/start', '/ping/l1st-uuid/fail', '/hook/T000/B000/XXXX'], http.requests
    assert 'nt_prod: no successful backup for' in http.requests[1]['body']
    [hook] = http.json_bodies('/hook/T000/B000/XXXX')
    assert hook['host'] == HOST and any(a.startswith('nt_prod: no successful backup for') for a in hook['alerts'])
    [mail] = smtp.mails
    assert 'nt_prod: no successful backup for' in mail['message'].get_content()


# -- the module notify_email on its own -------------------------------------------------------------------------
def mail_args(smtp, tls, **kw):
    args = dict(to=['dba@example.test'], sender='pgops@example.test', subject='s', body='b', host='127.0.0.1',
                port=smtp.port, username='pgops', password=SMTP_PASSWORD, ca_file=tls[0], timeout=5)
    args.update(kw)
    return args


def test_notify_email_checks_and_never_shows_the_password(run_module, smtp, tls):
    res = run_module('notify_email', mail_args(smtp, tls), check_mode=True)
    assert res['changed'] and not res.get('failed') and smtp.mails == [] and smtp.logins == []

    res = run_module('notify_email', mail_args(smtp, tls, password='wrong-' + SMTP_PASSWORD))
    assert res['failed'] and res['failed_step'] == 'login' and smtp.mails == []
    assert SMTP_PASSWORD not in json.dumps(res)

    logins = len(smtp.logins)
    res = run_module('notify_email', mail_args(smtp, tls, ca_file=None))     # the self-signed cert is not trusted
    assert res['failed'] and res['failed_step'] == 'starttls' and 'CERTIFICATE_VERIFY_FAILED' in res['msg']
    assert len(smtp.logins) == logins and smtp.mails == []

    res = run_module('notify_email', mail_args(smtp, tls))
    assert res['changed'] and not res.get('failed') and res['refused'] == {}
    assert len(smtp.mails) == 1 and smtp.mails[0]['tls'] and smtp.logins[-1]['ok']


@pytest.mark.filterwarnings('ignore:Requiring AUTH while not requiring TLS')
def test_notify_email_refuses_a_server_without_starttls(run_module, tls):
    plain = SmtpRecorder(tls[0], tls[1], 'pgops', SMTP_PASSWORD, tls=False)
    try:
        res = run_module('notify_email', mail_args(plain, tls))
        assert res['failed'] and res['failed_step'] == 'starttls' and 'does not offer STARTTLS' in res['msg']
        assert plain.logins == [] and plain.mails == []          # the password was never sent
        res = run_module('notify_email', mail_args(plain, tls, security='none'))   # a trusted relay, on request
        assert res['changed'] and not res.get('failed') and len(plain.mails) == 1 and not plain.mails[0]['tls']
    finally:
        plain.close()
