# -*- coding: utf-8 -*-
"""After converge: the plan's calendar is in root's crontab, every job under flock with its own log, and the
backup entry's command, run as cron runs it, backs up, logs and writes the metrics."""
from __future__ import absolute_import, division, print_function

import json
import re
import shlex

EXPECTED = {
    # name: (minute hour day month weekday, playbook, extra vars)
    'backup': ('0 2 * * *', 'pgops.postgresql.backup', None),
    'stats': ('0 7 * * 1', 'pgops.postgresql.list_backups', {'list_backups_fail_on_alert': True}),
    'verify': ('30 3 * * 3', 'pgops.postgresql.restore_drill', {'restore_drill_count': 3}),
    'drill': ('30 3 * * 5', 'pgops.postgresql.restore_drill', {'restore_drill_count': 1, 'restore_drill_per_database': True}),
    'clean': ('0 4 1 * *', 'pgops.postgresql.rotate', {'rotate_older_than_days': 30}),
    'maintenance': ('0 5 15 * *', 'pgops.postgresql.maintenance', None),
}


def entries(host):
    """{name: crontab line} of the pgops entries in root's crontab."""
    lines = host.check_output('crontab -l -u root').splitlines()
    out = {}
    for marker, line in zip(lines, lines[1:]):
        if marker.startswith('#Ansible: pgops '):
            out[marker[len('#Ansible: pgops '):]] = line
    return out


def test_crontab_file(host):
    f = host.file('/var/spool/cron/crontabs/root')
    assert f.exists and f.user == 'root' and f.mode == 0o600


def test_calendar_entries(host):
    got = entries(host)
    assert set(got) == set(EXPECTED)                      # old-job (enabled: false) is not there
    for name, (when, playbook, extra) in EXPECTED.items():
        line = got[name]
        fields = line.split(' ', 5)
        assert ' '.join(fields[:5]) == when, line
        argv = shlex.split(fields[5])
        assert argv[:3] == ['flock', '-n', '/var/lib/pgops/locks/pgops-%s.lock' % name], line
        assert argv[-3:] == ['>>', '/var/log/pgops/%s.log' % name, '2>&1'], line
        i = argv.index('/opt/pgops/venv/bin/ansible-playbook')
        assert argv[i + 1:i + 4] == ['-i', '/etc/pgops/inventory.yml', playbook], line
        if extra:
            assert argv[i + 4] == '-e' and json.loads(argv[i + 5]) == extra, line
        else:
            assert '-e' not in argv, line


def test_lock_and_log_directories(host):
    for path in ('/var/lib/pgops/locks', '/var/log/pgops'):
        d = host.file(path)
        assert d.is_directory and d.mode == 0o750


def backups(host):
    out = host.run('ls -1 /backups/database')
    # the database backups (each run's globals dump left out)
    return sorted(n for n in out.stdout.split() if n.endswith('.meta.json') and not n.startswith('_globals_'))


def test_backup_entry_runs_as_cron_runs_it(host):
    command = entries(host)['backup'].split(' ', 5)[5].replace('\\%', '%')
    before = backups(host)
    run = host.run('sh -c %s' % shlex.quote(command))
    assert run.rc == 0, host.file('/var/log/pgops/backup.log').content_string[-3000:]
    after = backups(host)
    assert len(after) == len(before) + 1
    meta = json.loads(host.file('/backups/database/%s' % sorted(set(after) - set(before))[0]).content_string)
    assert meta['status'] == 'success' and meta['database'] == 'pim_dev' and meta['kind'] == 'full'
    log = host.file('/var/log/pgops/backup.log').content_string
    assert 'PLAY RECAP' in log and 'failed=0' in log
    prom = host.file('/var/lib/node_exporter/textfile_collector/pgops_backup.prom')
    assert prom.mode == 0o644
    assert re.search(r'^pgops_backup_count\{database="pim_dev",kind="full",server="[^"]+"\} %d$' % len(after),
                     prom.content_string, re.M), prom.content_string


def test_a_running_job_is_not_started_twice(host):
    command = entries(host)['backup'].split(' ', 5)[5]
    before = backups(host)
    holder = host.run('flock /var/lib/pgops/locks/pgops-backup.lock sh -c %s'
                      % shlex.quote('sh -c %s; echo rc=$?' % shlex.quote(command)))
    assert 'rc=1' in holder.stdout                        # flock -n refused: the lock was held
    assert backups(host) == before
