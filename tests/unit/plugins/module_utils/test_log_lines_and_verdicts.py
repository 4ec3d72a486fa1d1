# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgops.postgresql contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Issue 21: a log line is one line whatever its text holds (the human lines escaped, the JSON audit lines left
valid and equal), and an age header that will not open with an identity the backup records as a recipient is the
backup's fault."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json

import pytest

from ansible_collections.pgops.postgresql.plugins.module_utils._errors import PgOpsError
from ansible_collections.pgops.postgresql.plugins.module_utils._fsutil import append_log_line, one_line
from ansible_collections.pgops.postgresql.plugins.module_utils._verdict import BackupFault, judge

# every character that ends a line for some reader (grep, less, Python's splitlines) or rewrites it on a terminal
BREAKERS = [chr(c) for c in range(0x20)] + ['\x7f'] + [chr(c) for c in range(0x80, 0xa0)] + ['\u2028', '\u2029']


@pytest.mark.parametrize('char', BREAKERS, ids=lambda c: 'U+%04X' % ord(c))
def test_a_human_line_stays_one_line(tmp_path, char):
    log = tmp_path / 'pgops.log'
    append_log_line(str(log), '2026-11-28 02:00:05 pgops backup of new%sline completed successfully' % char)
    text = log.read_bytes().decode('utf-8')
    assert text.endswith('\n') and len(text.splitlines()) == 1 and text.count('\n') == 1, repr(text)
    assert char not in text[:-1]
    assert text.startswith('2026-11-28 02:00:05 pgops backup of new\\') and 'line completed successfully' in text


def test_escapes_are_json_notation_and_readable():
    assert one_line('a\nb\rc\td') == 'a\\nb\\rc\\td'
    assert one_line('\x1b[2K\x00\x7f\x85\u2028') == '\\u001b[2K\\u0000\\u007f\\u0085\\u2028'
    assert one_line('plain Übergabe 漢字 \\ "quoted"') == 'plain Übergabe 漢字 \\ "quoted"'


@pytest.mark.parametrize('value', ['new\nline', 'tab\there', 'del\x7f', 'nel\x85', 'ls\u2028ps\u2029', 'esc\x1b[2K',
                                   'back\\slash "q"', 'Übergabe'])
def test_a_json_audit_line_stays_valid_and_equal(tmp_path, value):
    log = tmp_path / 'restore-audit.jsonl'
    entry = dict(database=value, error='failed: %s' % value, context={'k': [value]})
    line = json.dumps(entry, sort_keys=True, ensure_ascii=False)
    append_log_line(str(log), line)
    text = log.read_bytes().decode('utf-8')
    assert len(text.splitlines()) == 1
    assert json.loads(text) == entry
    if not any(c in value for c in '\x7f\x85\u2028\u2029'):
        assert text == line + '\n'          # what JSON escapes already is written byte for byte as it was


KEY = 'age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p'


def age_failure(text):
    err = PgOpsError('age header check failed: %s' % text, step='file_check')
    err.stages = [('age', 1, text)]
    return err


def test_a_header_that_does_not_open_with_a_recorded_recipient_is_the_backups_fault():
    text = 'age: error: no identity matched any of the recipients'
    judged = judge(age_failure(text), identity_matches=[KEY])
    assert isinstance(judged, BackupFault) and judged.step == 'file_check'
    assert 'header' in judged.msg and KEY in judged.msg
    # without that knowledge (no age-keygen, an identity it cannot read): a key that does not fit, inconclusive
    assert not isinstance(judge(age_failure(text)), BackupFault)
    # an identity file that cannot be read is never the backup's fault
    unreadable = 'age: error: reading "/k.txt": failed to read identity file'
    assert not isinstance(judge(age_failure(unreadable), identity_matches=[KEY]), BackupFault)
    # a killed age says nothing either
    killed = PgOpsError('killed', step='file_check')
    killed.stages = [('age', -9, text)]
    assert not isinstance(judge(killed, identity_matches=[KEY]), BackupFault)
