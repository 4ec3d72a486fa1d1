# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgops.postgresql contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The throwaway instance's rules: the settings it starts with (loopback only, its own socket, optionally tuned for
a restore), the marks by which a later run finds what a killed run left (a marker file natively, labels on a
container), the argv of its container, and a native instance made, configured and removed for real in a temporary
directory."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
import os
import socket
import stat
import subprocess

import pytest

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.pgops.postgresql.plugins.module_utils._errors import PgOpsError
from ansible_collections.pgops.postgresql.plugins.module_utils._instance import (
    CONF_NOTE, ContainerInstance, Docker, NativeInstance, check_free_space, hba_text, is_leftover, label_args,
    labels_of, mark_from_labels, mark_of, native_tool, server_settings, tail_of_log,
)
from ansible_collections.pgops.postgresql.tests.unit.plugins.modules.utils import set_module_args


@pytest.fixture
def module():
    with set_module_args({}):
        yield AnsibleModule(argument_spec={})


def dead_pid():
    proc = subprocess.Popen(['true'])
    proc.wait()
    return proc.pid


def settings(args):
    """-c name=value pairs of a postgres argv, as a dict (and -p)."""
    pairs = dict(a.split('=', 1) for a in args[3::2])
    assert args[:2] == ['-p', '5999'] and set(args[2::2]) == {'-c'}
    return pairs


# -- settings ------------------------------------------------------------------------------------------------
def test_an_instance_listens_on_loopback_and_its_private_socket_only():
    got = settings(server_settings('/w/run', '/w/pgops_hba.conf', 5999))
    assert got == {'listen_addresses': '127.0.0.1', 'unix_socket_directories': '/w/run',
                   'hba_file': '/w/pgops_hba.conf', 'archive_mode': 'off', 'logging_collector': 'off',
                   'synchronous_standby_names': '', 'cluster_name': 'pgops-scratch'}


def test_restore_tuned_settings_and_the_users_come_after_ours():
    got = server_settings('/w/run', '/w/h', 5999, ident='/w/i', settings={'work_mem': '8MB', 'fsync': 'on'},
                          restore_tuned=True)
    pairs = settings(got)
    assert pairs['ident_file'] == '/w/i'
    assert pairs['full_page_writes'] == 'off' and pairs['wal_level'] == 'minimal' and pairs['max_wal_senders'] == '0'
    # the user's setting wins: postgres takes the last -c of a name
    assert got.index('fsync=on') > got.index('fsync=off')
    assert pairs['work_mem'] == '8MB'


def test_hba_trusts_the_private_socket_first():
    text = hba_text('/w/run', 'host all all 0.0.0.0/0 scram-sha-256\n')
    assert text.splitlines()[1] == 'local all all trust'
    assert text.endswith('host all all 0.0.0.0/0 scram-sha-256\n')
    assert hba_text('/w/run').endswith('trust\n')


def test_a_log_tail_prefers_errors():
    log = 'LOG: starting\nFATAL: recovery ended before target\nLOG: shut down\n'
    assert tail_of_log(log) == 'FATAL: recovery ended before target'
    assert tail_of_log('LOG: a\nLOG: b\n', lines=1) == 'LOG: b'


def test_free_space(tmp_path):
    assert check_free_space(str(tmp_path / 'not' / 'yet'), 0, 'the drill instance') > 0
    with pytest.raises(PgOpsError) as e:
        check_free_space(str(tmp_path), 1 << 62, 'the drill instance')
    assert 'not enough free space for the drill instance' in e.value.msg and e.value.step == 'preflight'


def test_a_missing_server_tool_names_the_fix(tmp_path):
    with pytest.raises(PgOpsError) as e:
        native_tool(str(tmp_path), 15, 'pg_ctl')
    assert 'pg_ctl of PostgreSQL 15 not found' in e.value.msg and 'pg_bin_dir' in e.value.msg


# -- marks and labels ----------------------------------------------------------------------------------------
def test_labels_round_trip_and_mode_new_is_kept_from_birth():
    mark = mark_of('drill', 'test', of='pim-db')
    labels = labels_of('drill', dict(mark, volume='v1'))
    assert labels == sorted(['pgops.drill.host=%s' % socket.gethostname(), 'pgops.drill.mode=test',
                             'pgops.drill.of=pim-db', 'pgops.drill.pid=%d' % os.getpid(), 'pgops.drill.volume=v1'])
    assert label_args(labels[:1]) == ['--label', labels[0]]
    parsed = mark_from_labels('drill', dict(label.split('=', 1) for label in labels + ['other=1']))
    assert parsed == dict(host=socket.gethostname(), mode='test', of='pim-db', pid=str(os.getpid()), volume='v1',
                          kept=False)
    assert mark_from_labels('drill', {'pgops.drill.mode': 'new'})['kept'] is True
    assert mark_from_labels('restore', dict(label.split('=', 1) for label in labels)) is None


@pytest.mark.parametrize('change, leftover', [
    (dict(), True),                                   # its run died on this host
    (dict(pid='alive'), False),                       # its run is still going
    (dict(host='elsewhere'), False),                  # another host's: its pid says nothing here
    (dict(kept=True), False),                         # left on purpose (mode=new)
    (dict(kept='true'), False),
    (dict(pid='not a pid'), True),
])
def test_is_leftover(change, leftover):
    mark = dict(mark_of('restore', 'test'), pid=dead_pid())
    if change.get('pid') == 'alive':
        change = dict(pid=str(os.getpid()))
    mark.update(change)
    assert is_leftover(mark) is leftover
    assert is_leftover(None) is False


# -- a native instance, for real -----------------------------------------------------------------------------
def native(module, work, **kw):
    return NativeInstance(module, str(work), os.getuid(), os.getgid(), os_user='me', major=15,
                          mark=mark_of('restore', 'test', stanza='main'), **kw)


def test_a_native_instance_is_made_marked_configured_and_removed(module, tmp_path):
    inst = native(module, tmp_path / 'pg.pgops-restore-1', settings={'work_mem': '8MB'}, restore_tuned=True)
    inst.make()
    for path in (inst.work, inst.data, inst.run_dir, inst.tablespaces):
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o700
    with open(inst.marker) as f:
        assert json.load(f)['stanza'] == 'main'
    inst.prepare_config(lambda: 'host all all 127.0.0.1/32 md5\n')
    assert inst.created_conf and inst.read_file(os.path.join(inst.data, 'postgresql.conf')) == CONF_NOTE
    assert inst.read_file(inst.hba) == hba_text(inst.run_dir, 'host all all 127.0.0.1/32 md5\n')
    assert inst.ident == os.path.join(inst.work, 'pgops_ident.conf')
    assert stat.S_IMODE(os.stat(inst.hba).st_mode) == 0o600
    assert 'unix_socket_directories=%s' % inst.run_dir in inst.options()
    assert 'fsync=off' in inst.options() and 'ident_file=%s' % inst.ident in inst.options()
    assert not inst.alive()
    assert inst.describe(False, removed=True)['directory'] == inst.work
    assert inst.remove() == [] and not os.path.exists(inst.work)
    assert inst.remove() == []


def test_the_data_directorys_own_hba_rules_come_first(module, tmp_path):
    inst = native(module, tmp_path / 'x')
    inst.make()
    inst.write_file(os.path.join(inst.data, 'pg_hba.conf'), 'local all postgres peer\n')
    inst.write_file(os.path.join(inst.data, 'pg_ident.conf'), '')
    inst.prepare_config(lambda: 'never read\n')
    assert inst.read_file(inst.hba).endswith('local all postgres peer\n')
    assert inst.ident is None and inst.created_conf


def test_leftovers_of_dead_runs_are_found_and_kept_ones_are_not(module, tmp_path):
    dead = native(module, tmp_path / 'pg.pgops-restore-1')
    dead.mark['pid'] = dead_pid()
    dead.make()
    kept = native(module, tmp_path / 'pg.pgops-restore-2')
    kept.mark['pid'] = dead_pid()
    kept.make()
    kept.keep()
    running = native(module, tmp_path / 'pg.pgops-restore-3')
    running.make()
    (tmp_path / 'pg.pgops-restore-4').mkdir()            # no marker: not ours
    native(module, tmp_path / 'other.pgops-restore-1').make()
    assert NativeInstance.leftovers(str(tmp_path), 'pg.pgops-restore-') == [dead.work]
    dead.remove_leftover()
    assert not os.path.exists(dead.work) and os.path.exists(kept.work)


# -- a container instance: its argv -------------------------------------------------------------------------
def test_a_container_instance_has_the_given_network_its_volume_and_secrets_by_name(module):
    inst = ContainerInstance(module, Docker('/usr/bin/docker', env={}), 'pim-db-pgops-drill-1', 'pgops/postgres:15',
                             '/var/lib/postgresql/data', mounts=['type=bind,source=/srv/r,target=/r,readonly'],
                             env={'PGBACKREST_REPO1_CIPHER_PASS': 's3cret'}, port=5999, major=15,
                             purpose='drill', mark=mark_of('drill', 'test', of='pim-db'))
    argv = inst.run_argv()
    assert argv[:6] == ['run', '-d', '--name', 'pim-db-pgops-drill-1', '--network', 'none']
    assert 'pgops.drill.of=pim-db' in argv and 'pgops.drill.volume=pim-db-pgops-drill-1' in argv
    assert 'type=volume,source=pim-db-pgops-drill-1,target=/var/lib/postgresql/data' in argv
    assert argv[argv.index('-e') + 1] == 'PGBACKREST_REPO1_CIPHER_PASS' and 's3cret' not in ' '.join(argv)
    assert 's3cret' in module.no_log_values
    assert argv[-4:] == ['--entrypoint', 'sleep', 'pgops/postgres:15', 'infinity']
    assert inst.tool('pg_ctl') == '/usr/lib/postgresql/15/bin/pg_ctl'
    assert inst.target_params('postgres') == dict(login_user='postgres', login_unix_socket='/tmp/pgops-scratch/run',
                                                  login_port=5999, connect_timeout=5,
                                                  container='pim-db-pgops-drill-1',
                                                  container_runtime='/usr/bin/docker', container_user='postgres')
    running = inst.describe(True, login_user='postgres')
    assert running['stop_command'] == ['/usr/bin/docker', 'rm', '-f', 'pim-db-pgops-drill-1']
    assert running['connect'].startswith('docker exec -it -u postgres pim-db-pgops-drill-1 psql -h')
