# -*- coding: utf-8 -*-
"""After a DELETE by mistake, the moment before it was restored into a scratch container (verified, never over the
server), the deleted rows copied back; the repository holds the full and the incremental; no scratch is left."""
from __future__ import absolute_import, division, print_function

import json
import os

CONTAINER = os.environ.get('PGOPS_PG_CONTAINER', 'postgres-pim-pitr-molecule')


def psql(host, sql):
    return host.check_output('docker exec %s psql -X -A -t -U pim_user -d pim_dev -c "%s"' % (CONTAINER, sql))


def restore(host):
    return json.loads(host.file('/tmp/pgops-pitr-restore.json').content_string)


def test_the_deleted_rows_are_back(host):
    res = restore(host)
    assert int(psql(host, 'SELECT count(*) FROM product_attributes WHERE product_id > 1000')) > 0
    assert psql(host, "SELECT count(*) FROM categories WHERE name = 'after the full'") == '1'
    # the same rows as before the mistake: the verified scratch had exactly that many
    assert res['result'] == 'passed' and res['mode'] == 'new', res


def test_the_restore_was_verified_in_a_scratch_container_and_reached_its_target(host):
    res = restore(host)
    assert res['scratch']['container'].startswith(CONTAINER + '-pgops-'), res['scratch']
    assert res['scratch']['container'] != CONTAINER
    # the scratch accepted connections, had the expected tables, and the assertions (exactly the attributes of the
    # moment before the DELETE, and the category added after the full backup) held
    assert res['verification'] == dict(connections='passed', expected_tables='passed', assertions='passed')
    assert res['recovered_to'] and res['rto_seconds'] > 0
    window = res['recoverable_window']
    assert window['start'] <= res['recovered_to'] <= window['end']


def test_no_scratch_is_left(host):
    left = host.check_output("docker ps -a --filter name=%s-pgops- --format '{{.Names}}'" % CONTAINER)
    assert left.strip() == ''


def test_the_repository_holds_the_full_and_the_incremental(host):
    out = host.check_output('docker exec -u postgres %s pgbackrest --stanza=pim info --output=json' % CONTAINER)
    backups = json.loads(out)[0]['backup']
    assert [b['type'] for b in backups][:2] == ['full', 'incr'], backups
    assert all(not b.get('error') for b in backups)


def test_the_server_archives_into_pgbackrest(host):
    assert psql(host, 'SHOW archive_mode') == 'on'
    assert 'archive-push' in psql(host, 'SHOW archive_command')
    assert psql(host, 'SELECT failed_count FROM pg_stat_archiver') == '0'


def test_replace_took_the_cluster_back_and_rollback_undid_it(host):
    res = json.loads(host.file('/tmp/pgops-pitr-replace.json').content_string)
    replace, rollback = res['replace'], res['rollback']
    assert replace['result'] == 'passed' and replace['mode'] == 'replace', replace
    assert replace['verification']['switched']['assertions'] == 'passed'
    assert res['after_replace'] == 0      # the category added after the target was gone
    kept = replace['rollback']['volume']
    assert kept.startswith('pgops-molecule-pitr-pgdata-pgops-rollback-'), kept
    assert rollback['result'] == 'passed' and rollback['rollback']['volume'] == kept, rollback
    assert res['after_rollback'] == 1     # and back
    volumes = host.check_output('docker volume ls -q').split()
    assert kept not in volumes and rollback['rollback']['replaced_volume'] in volumes


def test_disaster_recovery_replaced_data_that_did_not_start_with_the_end_of_the_archive(host):
    """pg_control deleted, the container stopped: disaster_recovery.yml with disaster_recovery_pitr found the server
    not ready and replaced its data by pgBackRest (latest, verified); the last change before the disaster is there."""
    assert json.loads(host.file('/tmp/pgops-pitr-dr.json').content_string)['after_dr'] == 1
    report = json.loads(host.file('/tmp/pgops-pitr-dr-report.json').content_string)
    assert report['pitr']['recovered_to'] and report['pitr']['rollback_volume'].startswith(
        'pgops-molecule-pitr-pgdata-pgops-rollback-'), report
    assert [(d['database'], d['result']) for d in report['databases']] == [('pim_dev', 'pitr')], report
    assert int(report['databases'][0]['tables_found']) > 0
    # the damaged data is kept, not deleted
    assert report['pitr']['rollback_volume'] in host.check_output('docker volume ls -q').split()
