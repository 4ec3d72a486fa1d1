# -*- coding: utf-8 -*-
"""After the total loss of the container and its volume, the data is back (row counts equal the metadata);
the corrupted-data path kept the corrupted state and restored the known good backup; after the loss of the
backup directory too, the encrypted off-site copies came back from the bucket and were proven before use."""
from __future__ import absolute_import, division, print_function

import json
import os

DEST = '/backups/database'
# the backup directory of the phases before the loss of the host's data (moved aside by converge, for this)
LOST = '/var/tmp/pgops-lost-backups'
CONTAINER = os.environ.get('PGOPS_PG_CONTAINER', 'postgres-pim-molecule')
COUNT_SQL = ("SELECT coalesce(jsonb_object_agg(c.relname, (xpath('/row/c/text()', query_to_xml(format("
             "'SELECT count(*) AS c FROM %I.%I', n.nspname, c.relname), false, true, '')))[1]::text::bigint), '{}')"
             " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind = 'r' AND n.nspname = 'public'")


def counts(host, db):
    return json.loads(host.check_output('docker exec %s psql -X -A -t -U pim_user -d %s -c "%s"' % (CONTAINER, db, COUNT_SQL)))


def catalog(host, where=LOST):
    out = []
    for name in host.check_output('ls -1 %s' % where).splitlines():
        if name.endswith('.meta.json'):
            out.append(json.loads(host.file('%s/%s' % (where, name)).content_string))
    return out


def before_offsite(host):
    """The catalog of the first phases: the off-site phase's backups are the encrypted ones."""
    return [m for m in catalog(host) if not m.get('encrypted')]


def by_id(host, database, backup_id, where=LOST):
    return [m for m in catalog(host, where) if m['database'] == database and m['id'] == backup_id][0]


def test_container_is_back_on_a_new_volume(host):
    assert host.check_output("docker inspect -f '{{.State.Running}}' %s" % CONTAINER) == 'true'
    report = json.loads(host.file('/tmp/pgops-dr-total-loss.json').content_string)
    assert report['container_recreated'] is True
    assert report['rto_seconds'] < report['rto_target_seconds'] == 300


ROLES_SQL = ("SELECT pg_get_userbyid(relowner) || ',' || has_table_privilege('pim_reader', 'categories', 'SELECT')"
             " || ',' || pg_has_role('pim_owner', 'pim_reader', 'MEMBER') FROM pg_class WHERE relname = 'product_attributes'")


def owner_and_grant(host, db):
    return host.check_output('docker exec %s psql -X -A -t -U pim_user -d %s -c "%s"' % (CONTAINER, db, ROLES_SQL))


def test_the_roles_of_the_databases_came_back_with_them(host):
    # the container is a blank one of the same image (twice: the second after the bucket recovery): the roles
    # were created from each backup's globals dump, with their membership, before the restores
    for db in ('pim_dev', 'pim_prod'):
        assert owner_and_grant(host, db) == 'pim_owner,true,true'
    for where in (LOST, DEST):
        audit = [json.loads(x) for x in host.file('%s/restore-audit.jsonl' % where).content_string.splitlines()]
        created = [a for a in audit if a.get('roles_created')]
        assert created[0]['roles_created'] == ['pim_owner', 'pim_reader'] and created[0]['database'] == 'pim_dev'
        assert len(created) == 1                                  # pim_prod found them there


def test_a_healthy_server_was_left_alone(host):
    report = json.loads(host.file('/tmp/pgops-dr-healthy.json').content_string)
    assert report['container_recreated'] is False
    assert [(d['database'], d['result']) for d in report['databases']] == [('pim_dev', 'kept'), ('pim_prod', 'kept')]
    assert all('disaster_recovery_confirm=true' in d['note'] for d in report['databases'])


def test_total_loss_restores_the_newest_backup_with_its_recovery_point(host):
    report = json.loads(host.file('/tmp/pgops-dr-total-loss.json').content_string)
    assert [d['database'] for d in report['databases']] == ['pim_dev', 'pim_prod']
    for d in report['databases']:
        assert d['result'] == 'passed' and str(d['tables_found']) == str(d['tables_expected'])
        meta = by_id(host, d['database'], d['backup_id'])
        newest = max((m for m in before_offsite(host) if m['database'] == d['database'] and m['status'] == 'success'
                      and m['kind'] == 'full'), key=lambda m: m['started_at'])
        assert meta['id'] == newest['id']                                # last night's, not the older drilled one
        # proven by the recovery itself (pim_prod's again by the corrupted-data path, which restores it too)
        assert [v['result'] for v in meta['verifications']] == ['passed'] * (1 if d['database'] == 'pim_dev' else 2)
        assert d['data_as_of'] == meta['started_at'] and float(d['data_age_hours']) < 1
        if d['database'] == 'pim_dev':   # pim_prod was corrupted and recovered again afterwards
            assert counts(host, 'pim_dev') == dict((t['name'], t['rows']) for t in meta['tables'])
            assert counts(host, 'pim_dev')['categories'] == 1 + min(
                dict((t['name'], t['rows']) for t in m['tables'])['categories']
                for m in before_offsite(host) if m['database'] == 'pim_dev' and m['status'] == 'success'
                and m['kind'] == 'full')
            # the recreated container's empty pim_dev held nothing: no pre_restore backup of it
            assert not [m for m in catalog(host) if m['database'] == 'pim_dev' and m['kind'] == 'pre_restore']


def test_corrupted_path_kept_the_corrupted_state_and_restored_the_good_backup(host):
    report = json.loads(host.file('/tmp/pgops-dr-corrupted.json').content_string)
    [d] = report['databases']
    good = by_id(host, 'pim_prod', d['backup_id'])
    assert good['kind'] == 'full'
    assert counts(host, 'pim_prod') == dict((t['name'], t['rows']) for t in good['tables'])
    [corrupted] = [m for m in catalog(host) if m.get('label') == 'corrupted-state' and m['scope'] == 'database']
    assert corrupted['kind'] == 'manual' and corrupted['database'] == 'pim_prod'
    assert dict((t['name'], t['rows']) for t in corrupted['tables'])['product_attributes'] < \
        dict((t['name'], t['rows']) for t in good['tables'])['product_attributes']


def test_every_restore_is_audited(host):
    lines = [json.loads(x) for x in host.file('%s/restore-audit.jsonl' % LOST).content_string.splitlines()]
    # the drill, the two refusals on the healthy server, the two recoveries, the corrupted-data path, the drill
    # of the encrypted backups
    assert [a['mode'] for a in lines] == ['test', 'test'] + ['replace'] * 5 + ['test', 'test']
    assert [a['result'] for a in lines] == ['passed', 'passed', 'failed', 'failed'] + ['passed'] * 5
    assert [a['failed_step'] for a in lines[2:4]] == ['guard', 'guard']
    assert lines[6]['confirmed'] is True and lines[6]['protected'] is True
    assert lines[6]['context']['purpose'] == 'disaster recovery'


def test_total_loss_of_the_backups_too_recovered_from_the_bucket(host):
    report = json.loads(host.file('/tmp/pgops-dr-offsite.json').content_string)
    assert report['container_recreated'] is True
    assert report['rto_seconds'] < report['rto_target_seconds'] == 300
    assert [d['database'] for d in report['databases']] == ['pim_dev', 'pim_prod']
    # the database backups (their globals dumps, linked, went with them)
    pushed = [m for m in catalog(host) if m.get('encrypted') and m.get('offsite') and m['scope'] == 'database']
    assert sorted(m['database'] for m in pushed) == ['pim_dev', 'pim_prod']
    for d in report['databases']:
        assert d['result'] == 'passed' and str(d['tables_found']) == str(d['tables_expected'])
        # the only copy on the host now is the one fetched from the bucket: the encrypted, drilled backup
        [fetched] = [m for m in catalog(host, DEST) if m['database'] == d['database'] and m.get('fetched_from')]
        [original] = [m for m in pushed if m['database'] == d['database']]
        assert fetched['id'] == original['id'] == d['backup_id'] and fetched['encrypted'] is True
        assert fetched['sha256'] == original['sha256'] and fetched['file'].endswith('.age')
        assert fetched['verifications'][-1]['result'] == 'passed'
        assert counts(host, d['database']) == dict((t['name'], t['rows']) for t in original['tables'])
        assert d['data_as_of'] == original['started_at']
    # the restores read the identity; nothing the host keeps holds it
    secret = host.file('/tmp/pgops-dr-offsite.json').content_string
    for m in catalog(host, DEST):
        assert 'AGE-SECRET-KEY' not in json.dumps(m)
    assert 'AGE-SECRET-KEY' not in secret
    audit = [json.loads(x) for x in host.file('%s/restore-audit.jsonl' % DEST).content_string.splitlines()]
    assert [(a['mode'], a['result']) for a in audit] == [('replace', 'passed')] * 2
