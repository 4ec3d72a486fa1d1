# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgops.postgresql contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for the schedule role's quoting filters (plugins/filter/schedule.py): hostile arguments go through
cron's % handling and the real sh, and through systemd's unquoting, and come out as they went in; what cannot be
written is refused; and the role's existing command lines come out byte for byte as before."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import re
import shlex
import shutil
import subprocess

import pytest

from ansible.errors import AnsibleFilterError

from ansible_collections.pgops.postgresql.plugins.filter import schedule
from ansible_collections.pgops.postgresql.plugins.filter.schedule import (
    FilterModule, cron_quote_argv, systemd_quote_argv, systemd_specifier_escape,
)

# Arguments a schedule entry can carry: playbook paths, environment values, extra arguments, extra vars as JSON.
HOSTILE = [
    'plain', '', ' ', 'a b', '  lead and trail  ', "it's", "'", '"', 'say "hi"', "'\\''", '$HOME', '${HOME}',
    '$$', '$(id)', '`id`', '100%', '%', '%%', '%h', '%n%%', '\\', 'back\\slash', 'trail\\', '\\%', 'a\\%b',
    '\\\\%', '50\\% off', '\\\\', ';', '&&', 'a;b&c|d', '*', '?', '~', '#comment', '!', '-e', '--tags=a,b',
    'x=1', 'a\tb', 'é ü 漢字', '{"a": "b\\"c", "pct": "50%", "like": "50\\\\%"}', 'key=it\'s "50%" $x \\%',
]
# Characters a crontab line cannot carry: cron's line end, NUL, and what str.splitlines() splits on (the way
# ansible.builtin.cron reads the crontab back).
CRON_LINE_BREAKS = ['\n', '\r', '\x00', '\x0b', '\x0c', '\x1c', '\x1d', '\x1e', '\x85', '\u2028', '\u2029']
# Control characters systemd's double quotes carry as C escapes.
CONTROL = ['two\nlines', 'cr\rlf', 'tab\t', 'bell\a', 'esc\x1b[0m', 'del\x7f', '\b\f\v', 'x\x01y']


def cron_unescape(field):
    """What cron hands to sh -c for a crontab command field (cronie and Vixie cron do_command.c): \\% is a %,
    any other backslash stays, and a bare % ends the command (the rest becomes its stdin). Returns the command
    and whether a bare % cut it."""
    out, escaped = [], False
    for ch in field:
        if escaped:
            if ch == '%':
                out[-1] = '%'
            else:
                out.append(ch)
            escaped = False
            continue
        if ch == '%':
            return ''.join(out), True
        out.append(ch)
        escaped = ch == '\\'
    return ''.join(out), False


def sh_words(command):
    """The argv the real sh builds from a command line."""
    run = subprocess.run(['sh', '-c', 'f() { printf "%s\\0" "$@"; }; f ' + command],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False)
    assert run.returncode == 0, run.stderr
    return run.stdout.decode('utf-8', 'surrogateescape').split('\0')[:-1]


_SYSTEMD_UNESCAPE = {'\\': '\\', '"': '"', "'": "'", 'a': '\a', 'b': '\b', 'f': '\f', 'n': '\n', 'r': '\r',
                     't': '\t', 'v': '\v', 's': ' '}


def systemd_argv(value):
    """The argv of ExecStart=<value> by systemd.service(5) and systemd.syntax(7): %% is a % (specifiers, on the
    whole line), words split on whitespace, double quotes removed with C escapes undone inside them, then $$ is a $
    (environment substitution). Only what the filter writes is accepted: anything else fails the test."""
    assert not re.search(r'%[^%]', value.replace('%%', '')), 'a lone %% in %r' % value
    value = value.replace('%%', '%')
    words, i = [], 0
    while i < len(value):
        if value[i] == ' ':
            i += 1
            continue
        if value[i] == '"':
            word, i = [], i + 1
            while value[i] != '"':
                if value[i] == '\\':
                    esc = value[i + 1]
                    if esc == 'x':
                        word.append(chr(int(value[i + 2:i + 4], 16)))
                        i += 4
                        continue
                    assert esc in _SYSTEMD_UNESCAPE, 'unknown escape \\%s in %r' % (esc, value)
                    word.append(_SYSTEMD_UNESCAPE[esc])
                    i += 2
                    continue
                word.append(value[i])
                i += 1
            i += 1
            assert i == len(value) or value[i] == ' ', 'a quoted word runs into the next in %r' % value
            words.append(''.join(word))
        else:
            end = value.find(' ', i)
            end = len(value) if end < 0 else end
            word = value[i:end]
            assert re.match(r'[A-Za-z0-9_./:=@+,-]+\Z', word), 'bare word %r needs quoting' % word
            words.append(word)
            i = end
    assert '$' not in re.sub(r'\$\$', '', ''.join(words)), 'a lone $ in %r' % value
    return [re.sub(r'\$\$', '$', w) for w in words]


# The role's expressions before the filters (roles/schedule/tasks/plan.yml), in Python: the filters must give
# the same bytes for every argument these handled right.
def old_cron(argv):
    return ' '.join(shlex.quote(a) for a in argv).replace('%', '\\%')


def old_exec_start(argv):
    quoted = [re.sub(r'^(.*[^A-Za-z0-9_./:=@+,-].*|)$', r'"\1"', a) for a in argv]
    quoted = [re.sub(r'(?<=.)"(?=.)', r'\\"', a) for a in quoted]
    return ' '.join(quoted).replace('%', '%%').replace('$', '$$')


ROLE_ARGV = [
    # the stats entry with the Molecule scenario's settings
    ['flock', '-n', '/var/lib/pgops/locks/pgops-stats.lock', 'env',
     'ANSIBLE_COLLECTIONS_PATH=/work/main/.cache/collections', '/opt/pgops/venv/bin/ansible-playbook',
     '-i', '/etc/pgops/inventory.yml', 'pgops.postgresql.list_backups', '-e', '{"list_backups_fail_on_alert": true}'],
    # an extra entry with a schedule_ansible_args, a %, a $ and spaces
    ['flock', '-n', '/var/lib/pgops/locks/pgops-nightly_2.lock', '/opt/pgops/venv/bin/ansible-playbook', '-i',
     '/etc/pgops/inventory.yml', '/srv/x/backup.yml', '--vault-password-file', '/etc/pgops/vault-pass', '-e',
     '{"cost": "$5", "label": "weekly run", "pct": "50%", "pgops_databases": ["a", "b"]}'],
]


def test_filters_are_registered():
    assert FilterModule().filters() == {
        'cron_quote_argv': cron_quote_argv,
        'systemd_quote_argv': systemd_quote_argv,
        'systemd_specifier_escape': systemd_specifier_escape,
    }


# cron


@pytest.mark.parametrize('word', HOSTILE)
def test_cron_round_trip(word):
    argv = ['cmd', word, 'x%s' % word, 'tail']
    command, cut = cron_unescape(cron_quote_argv(argv))
    assert not cut
    assert sh_words(command) == argv


def test_cron_round_trip_all_at_once():
    command, cut = cron_unescape(cron_quote_argv(['cmd'] + HOSTILE))
    assert not cut
    assert sh_words(command) == ['cmd'] + HOSTILE


@pytest.mark.parametrize('word, expected', [
    ('50%', '50\\%'),                              # a bare % would end the command: escaped
    ('%h', '\\%h'),
    ('a b', "'a b'"),
    ("it's", "'it'\"'\"'s'"),
    ('$HOME', "'$HOME'"),                          # no expansion by sh
    ('back\\slash', "'back\\slash'"),              # a backslash not before % is left to sh's single quotes
    ('a\\%b', "'a\\''\\%b'"),                      # cron would eat the backslash of \%: quotes closed between
    ('', "''"),
])
def test_cron_quoting(word, expected):
    assert cron_quote_argv([word]) == expected


@pytest.mark.parametrize('argv', ROLE_ARGV + [[w] for w in HOSTILE if '\\%' not in w])
def test_cron_same_bytes_as_the_role_before(argv):
    assert cron_quote_argv(argv) == old_cron(argv)


def test_cron_role_line():
    assert cron_quote_argv(ROLE_ARGV[0]) == (
        "flock -n /var/lib/pgops/locks/pgops-stats.lock env ANSIBLE_COLLECTIONS_PATH=/work/main/.cache/collections "
        "/opt/pgops/venv/bin/ansible-playbook -i /etc/pgops/inventory.yml pgops.postgresql.list_backups "
        "-e '{\"list_backups_fail_on_alert\": true}'")


def test_cron_backslash_percent_was_broken_before():
    # what the role wrote before: cron cuts the command at the %, sh gets an unterminated quote
    command, cut = cron_unescape(old_cron(['cmd', 'a\\%b']))
    assert cut and command == "cmd 'a\\\\"


@pytest.mark.parametrize('char', CRON_LINE_BREAKS)
def test_cron_refuses_line_breaks(char):
    with pytest.raises(AnsibleFilterError, match='argument 2 .* line break or NUL'):
        cron_quote_argv(['cmd', 'ok', 'a%sb' % char])


def test_cron_line_breaks_are_what_splitlines_splits_on():
    splits = [chr(c) for c in range(0x3000) if len(('a' + chr(c) + 'b').splitlines()) > 1]
    assert sorted(splits + ['\x00']) == sorted(CRON_LINE_BREAKS)
    for char in CRON_LINE_BREAKS:
        assert schedule._CRON_LINE_BREAKS.search(char)


# systemd


@pytest.mark.parametrize('word', HOSTILE + CONTROL)
def test_systemd_round_trip(word):
    argv = ['/usr/bin/env', word, 'x%s' % word, 'tail']
    assert systemd_argv(systemd_quote_argv(argv)) == argv


def test_systemd_round_trip_all_at_once():
    argv = ['/usr/bin/env'] + HOSTILE + CONTROL
    assert systemd_argv(systemd_quote_argv(argv)) == argv


@pytest.mark.parametrize('word, expected', [
    ('plain-word_1.2:3=4@5+6,7/8', 'plain-word_1.2:3=4@5+6,7/8'),
    ('', '""'),
    ('a b', '"a b"'),
    ('say "hi"', '"say \\"hi\\""'),
    ("it's", '"it\'s"'),
    ('50%', '"50%%"'),
    ('%h', '"%%h"'),
    ('$HOME', '"$$HOME"'),
    ('${HOME}', '"$${HOME}"'),
    ('back\\slash', '"back\\\\slash"'),
    ('\\%', '"\\\\%%"'),
    ('two\nlines', '"two\\nlines"'),
    ('tab\t', '"tab\\t"'),
    ('esc\x1b', '"esc\\x1b"'),
    ('del\x7f', '"del\\x7f"'),
    (';', '";"'),                                  # only a bare ; separates commands
    ('é', '"é"'),
])
def test_systemd_quoting(word, expected):
    assert systemd_quote_argv(['/usr/bin/env', word]) == '/usr/bin/env ' + expected


@pytest.mark.parametrize('argv', ROLE_ARGV + [['flock', w] for w in HOSTILE if not re.search(r'[\\\x00-\x1f]', w)])
def test_systemd_same_bytes_as_the_role_before(argv):
    assert systemd_quote_argv(argv) == old_exec_start(argv)


def test_systemd_role_line():
    assert systemd_quote_argv(ROLE_ARGV[1]) == (
        'flock -n /var/lib/pgops/locks/pgops-nightly_2.lock /opt/pgops/venv/bin/ansible-playbook -i '
        '/etc/pgops/inventory.yml /srv/x/backup.yml --vault-password-file /etc/pgops/vault-pass -e '
        '"{\\"cost\\": \\"$$5\\", \\"label\\": \\"weekly run\\", \\"pct\\": \\"50%%\\", '
        '\\"pgops_databases\\": [\\"a\\", \\"b\\"]}"')


def test_systemd_backslash_was_broken_before():
    # JSON extra vars holding a quote: the role left JSON's backslash bare, systemd read \" as a quote
    argv = ['/usr/bin/env', '{"q": "say \\"hi\\""}']
    assert systemd_argv(systemd_quote_argv(argv)) == argv
    with pytest.raises(AssertionError, match='runs into the next'):
        systemd_argv(old_exec_start(argv))


@pytest.mark.parametrize('executable', ['', '-flock', '@flock', ':flock', '+flock', '!flock', '|flock'])
def test_systemd_refuses_an_executable_read_as_a_prefix(executable):
    with pytest.raises(AnsibleFilterError, match='ExecStart= prefix'):
        systemd_quote_argv([executable, 'arg'])


def test_systemd_prefix_characters_are_fine_after_the_executable():
    argv = ['/usr/bin/env', '-n', '@x', ':x', '+x', '!x', '|x']
    assert systemd_argv(systemd_quote_argv(argv)) == argv


def test_systemd_refuses_nul():
    with pytest.raises(AnsibleFilterError, match='argument 1 .* NUL'):
        systemd_quote_argv(['/usr/bin/env', 'a\x00b'])


@pytest.mark.skipif(shutil.which('systemd-analyze') is None, reason='systemd-analyze is not installed')
def test_systemd_analyze_verify_accepts_the_unit(tmp_path):
    """systemd's own parser (systemd-analyze verify reads the file, installs nothing) has no complaint about the
    hostile ExecStart=, Description= and log path: no unknown escape, no bad specifier, no unbalanced quote."""
    log = str(tmp_path / 'it\'s 100% "logged" $x.log')
    unit = tmp_path / 'pgops-hostile.service'
    unit.write_text(
        '[Unit]\nDescription=pgops hostile (%s)\n\n[Service]\nType=oneshot\nExecStart=%s\n'
        'StandardOutput=append:%s\nStandardError=append:%s\n' % (
            systemd_specifier_escape('/srv/it\'s 100% "here"/x%h.yml'),
            systemd_quote_argv(['/usr/bin/env'] + HOSTILE + CONTROL),
            systemd_specifier_escape(log), systemd_specifier_escape(log)),
        encoding='utf-8')
    run = subprocess.run(['systemd-analyze', 'verify', '--man=no', str(unit)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False)
    assert run.returncode == 0 and run.stderr == b'', run.stderr.decode()


@pytest.mark.skipif(shutil.which('systemd-analyze') is None, reason='systemd-analyze is not installed')
def test_systemd_analyze_verify_flags_the_old_quoting(tmp_path):
    # the same check catches what the role wrote before for a backslash
    unit = tmp_path / 'pgops-old.service'
    unit.write_text('[Service]\nType=oneshot\nExecStart=%s\n' % old_exec_start(['/usr/bin/env', 'pct=50\\%']))
    run = subprocess.run(['systemd-analyze', 'verify', '--man=no', str(unit)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False)
    assert b'escape' in run.stderr


@pytest.mark.parametrize('value, expected', [
    ('plain', 'plain'),
    ('50%', '50%%'),
    ('%h/%n', '%%h/%%n'),
    ('$HOME "q" \'s\' \\x', '$HOME "q" \'s\' \\x'),   # no quoting and no $ in these settings
    (42, '42'),
])
def test_specifier_escape(value, expected):
    assert systemd_specifier_escape(value) == expected


@pytest.mark.parametrize('value', ['a\nExecStartPre=/bin/evil', 'a\rb', 'a\x00b', 'continued\\'])
def test_specifier_escape_refuses_what_breaks_the_line(value):
    with pytest.raises(AnsibleFilterError, match='line break or NUL, or ends in a backslash'):
        systemd_specifier_escape(value)


# input types


@pytest.mark.parametrize('fn', [cron_quote_argv, systemd_quote_argv])
@pytest.mark.parametrize('bad, match', [
    ('flock -n x', 'expects a list of arguments, got str'),
    (b'flock', 'expects a list of arguments, got bytes'),
    ({'a': 'b'}, 'expects a list of arguments, got dict'),
    (None, 'expects a list of arguments, got NoneType'),
    ([], 'got an empty list'),
    (['/usr/bin/env', None], 'argument 1 is NoneType'),
    (['/usr/bin/env', True], 'argument 1 is bool'),
    (['/usr/bin/env', ['nested']], 'argument 1 is list'),
    (['/usr/bin/env', {'a': 1}], 'argument 1 is dict'),
])
def test_argv_types(fn, bad, match):
    with pytest.raises(AnsibleFilterError, match=match):
        fn(bad)


@pytest.mark.parametrize('fn', [cron_quote_argv, systemd_quote_argv])
def test_numbers_and_tuples_are_arguments(fn):
    assert fn(('/usr/bin/env', 3, 1.5)) == '/usr/bin/env 3 1.5'


@pytest.mark.parametrize('bad', [None, True, ['a'], {'a': 1}])
def test_specifier_escape_types(bad):
    with pytest.raises(AnsibleFilterError, match='expects a string'):
        systemd_specifier_escape(bad)
