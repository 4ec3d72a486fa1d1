# -*- coding: utf-8 -*-
"""After converge: the drill's result is in the metadata, replace restored the backup's exact content and kept
the damaged database as a rollback, rollback brought the damaged content back, and every restore is audited."""
from __future__ import absolute_import, division, print_function

import json

DEST = '/backups/database'


def psql(host, db, sql):
    return host.check_output('psql -X -A -t -U pim_user -d %s -c %s' % (db, json.dumps(sql)))


def catalog(host):
    """The database backups (each run's globals dump left out)."""
    out = []
    for name in host.check_output('ls -1 %s' % DEST).splitlines():
        if name.endswith('.meta.json'):
            out.append(json.loads(host.file('%s/%s' % (DEST, name)).content_string))
    return [m for m in out if m['scope'] == 'database']


def test_drill_result_recorded_in_metadata(host):
    [full] = [m for m in catalog(host) if m['kind'] == 'full']
    drills = [v for v in full['verifications'] if v['mode'] == 'test']
    assert drills and drills[0]['result'] == 'passed' and drills[0]['checks']['row_counts'] == 'passed'
    assert 0 < drills[0]['rto_seconds'] < 300


def test_replace_restored_the_backup_and_kept_a_rollback(host):
    replace = json.loads(host.file('/tmp/pgops-replace.json').content_string)
    [full] = [m for m in catalog(host) if m['kind'] == 'full']
    assert replace['result'] == 'passed' and replace['backup_id'] == full['id']
    assert replace['checks']['rows_verified'] == full['rows_total']
    assert replace['checks']['assertions'] == 'passed'
    assert replace['sessions_terminated'] >= 1
    assert replace['rollback_database'].startswith('pim_dev__rollback_')
    pre = [m for m in catalog(host) if m['kind'] == 'pre_restore']
    assert len(pre) == 1 and pre[0]['id'] == replace['pre_restore_backup']['id']
    # the pre-restore backup holds the damaged state
    assert dict((t['name'], t['rows']) for t in pre[0]['tables'])['product_attributes'] < \
        dict((t['name'], t['rows']) for t in full['tables'])['product_attributes']


def test_rollback_brought_the_previous_content_back(host):
    rollback = json.loads(host.file('/tmp/pgops-rollback.json').content_string)
    replace = json.loads(host.file('/tmp/pgops-replace.json').content_string)
    [full] = [m for m in catalog(host) if m['kind'] == 'full']
    assert rollback['result'] == 'passed' and rollback['rollback_database'] == replace['rollback_database']
    assert psql(host, 'pim_dev', "SELECT count(*) FROM products WHERE name = 'damaged'") == '10'
    restored = rollback['replaced_database']
    assert psql(host, restored, "SELECT count(*) FROM products WHERE name = 'damaged'") == '0'
    want = dict((t['name'], t['rows']) for t in full['tables'])
    assert int(psql(host, restored, 'SELECT count(*) FROM product_attributes')) == want['product_attributes']


def test_every_restore_is_audited(host):
    lines = [json.loads(line) for line in host.file('%s/restore-audit.jsonl' % DEST).content_string.splitlines()]
    assert [a['mode'] for a in lines] == ['test', 'replace', 'rollback', 'replace']
    assert [a['result'] for a in lines] == ['passed', 'passed', 'passed', 'failed']
    assert all(a['who']['user'] for a in lines)
    # the rollback says where the replaced content went; the refusal is audited with its reason
    assert lines[2]['replaced_database'].startswith('pim_dev__rollback_')
    assert lines[3]['failed_step'] == 'guard' and lines[3]['protected'] is True and lines[3]['confirmed'] is False


def test_production_replace_needs_confirmation(host):
    msg = host.file('/tmp/pgops-refusal.txt').content_string
    assert 'pim_dev is a protected database' in msg and 'confirm=true' in msg


def test_rotation_deleted_exactly_what_check_mode_listed(host):
    check = json.loads(host.file('/tmp/pgops-rotate-check.json').content_string)
    real = json.loads(host.file('/tmp/pgops-rotate-real.json').content_string)
    listed = sorted((d['database'], d['id'], d['kind']) for d in check['deleted'])
    done = sorted((d['database'], d['id'], d['kind']) for d in real['deleted'])
    assert listed == done, (listed, done)
    # the two old manual backups, and the globals dumps of their runs (linked by nothing kept)
    assert [d[2] for d in done if d[0] != '@globals'] == ['manual', 'manual'], done
    assert len([d for d in done if d[0] == '@globals']) == 2, done
    # check mode deleted nothing: every file it listed was still there after it
    after_check = host.file('/tmp/pgops-files-after-check.txt').content_string.split()
    now = host.check_output('ls -1 %s' % DEST).split()
    for d in real['deleted']:
        stem = d['meta_path'].rsplit('/', 1)[1] if d.get('meta_path') else None
        if stem:
            assert stem in after_check and stem not in now
    # what stays: the verified full backup, the pre-restore backup and the newest manual one (min_keep 1)
    kinds = sorted(m['kind'] for m in catalog(host))
    assert kinds == ['full', 'manual', 'pre_restore']
