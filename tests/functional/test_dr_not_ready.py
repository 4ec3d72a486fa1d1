# -*- coding: utf-8 -*-
"""disaster_recovery.yml against a container whose PostgreSQL exits at once (data or settings that do not start):
the wait ends early on the container's own error (not at the end of its 60 s), the run fails saying so and pointing
to disaster_recovery_pitr, and nothing is restored. (The pgBackRest path itself, with a stanza, is Molecule scenario pitr.)"""
from __future__ import absolute_import, division, print_function

import os
import subprocess
import sys

from conftest import image, playbook_runner

NAME = 'pgops-functional-drnr-%d' % os.getpid()


def test_a_container_that_does_not_start_fails_the_run_with_its_reason(collection_root, tmp_path):
    # a setting PostgreSQL refuses: the container starts, its postgres exits at once, as with damaged data
    subprocess.run(['docker', 'create', '--name', NAME, '--network', 'none', image(15), 'postgres', '-c',
                    'shared_buffers=bogus'], check=True, stdout=subprocess.DEVNULL)
    try:
        run = playbook_runner(collection_root, {'postgres_servers': {
            'hosts': {'pim-db': {'ansible_connection': 'local', 'ansible_python_interpreter': sys.executable}},
            'vars': {'pgops_container': NAME, 'pgops_login_user': 'postgres', 'pgops_databases': ['pim_dev'],
                     'pgops_backup_dir': str(tmp_path / 'backups'), 'pgops_log_file': str(tmp_path / 'db-backup.log'),
                     'metrics_enabled': False, 'disaster_recovery_ready_timeout': 60}}}, tmp_path)
        rc, out = run('disaster_recovery.yml')
        out = ' '.join(out.split())
        assert rc != 0, out[-3000:]
        assert 'did not accept connections (the container does not keep running:' in out, out[-3000:]
        assert 'is not running' in out, out[-3000:]
        # given up at the fifth attempt, not after the 30 the 60 s timeout allows
        assert out.count('FAILED - RETRYING: [pim-db]: Wait until PostgreSQL accepts connections (in the container)') == 4, \
            out[-3000:]
        assert 'disaster_recovery_pitr=true' in out, out[-3000:]
        # stopped at the server step: nothing restored, no pgBackRest restore tried without the option
        assert 'Restore each database' not in out and 'pgbackrest_restore' not in out, out[-3000:]
        state = subprocess.run(['docker', 'inspect', '--format', '{{.State.Running}}', NAME], check=True,
                               stdout=subprocess.PIPE, universal_newlines=True).stdout.strip()
        assert state == 'false'
    finally:
        subprocess.run(['docker', 'rm', '-f', NAME], check=False, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
