# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgops.postgresql contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Quoting for the schedule role, in one place: a command (a list of arguments) as the command field of a crontab
line, the same command as a systemd ExecStart=, and a plain value in a systemd unit setting that expands
specifiers (Description=, StandardOutput=append:). Each filter is documented in plugins/filter/<name>.yml."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import re
import shlex
from collections.abc import Mapping, Sequence

from ansible.errors import AnsibleFilterError
from ansible.module_utils.common.text.converters import to_text

# Characters that end a crontab line, or a line as ansible.builtin.cron reads the crontab back (str.splitlines),
# and NUL, which ends cron's C string: none of them can be escaped in a crontab entry.
_CRON_LINE_BREAKS = re.compile(u'[\x00\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]')

# Arguments systemd takes unquoted as they are (the set the role has always left bare); anything else, and the
# empty argument, goes in double quotes.
_SYSTEMD_BARE = re.compile(r'[A-Za-z0-9_./:=@+,-]+\Z')
# Inside double quotes systemd unescapes C-style sequences: backslash, quote and control characters are written so
_SYSTEMD_C_ESCAPES = {
    u'\\': u'\\\\', u'"': u'\\"',
    u'\a': u'\\a', u'\b': u'\\b', u'\f': u'\\f', u'\n': u'\\n', u'\r': u'\\r', u'\t': u'\\t', u'\v': u'\\v',
}
_SYSTEMD_TO_ESCAPE = re.compile(u'[\\\\"\x01-\x1f\x7f]')
# Read by systemd from the executable (the first argument, after unquoting) as ExecStart= prefixes.
_SYSTEMD_PREFIXES = u'-@:+!|'
# Characters that end a line of a unit file.
_SYSTEMD_LINE_BREAKS = re.compile(u'[\x00\n\r]')


def _words(argv, name):
    """The arguments as a list of text, or AnsibleFilterError naming the filter and the bad argument."""
    if isinstance(argv, (str, bytes, Mapping)) or not isinstance(argv, Sequence):
        raise AnsibleFilterError(
            '%s: expects a list of arguments, got %s %r (a single string: put it in a list)'
            % (name, type(argv).__name__, argv))
    if len(argv) == 0:
        raise AnsibleFilterError('%s: expects a list of arguments, got an empty list' % name)
    words = []
    for i, word in enumerate(argv):
        if isinstance(word, bool) or not isinstance(word, (str, int, float)):
            raise AnsibleFilterError(
                '%s: argument %d is %s %r; every argument must be a string (or a number)'
                % (name, i, type(word).__name__, word))
        words.append(to_text(word, errors='surrogate_or_strict'))
    return words


def cron_quote_argv(argv):
    """A list of arguments as one crontab command field: each argument one POSIX sh word, % escaped for cron.

    Example:
        ['flock', '-n', '/l', 'echo', 'a b', '50%']  ->  "flock -n /l echo 'a b' 50\\%"
    """
    words = _words(argv, 'cron_quote_argv')
    for i, word in enumerate(words):
        if _CRON_LINE_BREAKS.search(word):
            raise AnsibleFilterError(
                'cron_quote_argv: argument %d (%r) holds a line break or NUL: a crontab entry is a single line and '
                'cron has no escape for them; use the systemd backend or pass the value another way' % (i, word))
    line = u' '.join(shlex.quote(word) for word in words)
    # shlex.quote leaves only [\w@%+=:,./-] bare and puts anything else in single quotes, so a backslash in its
    # output is always a literal one inside single quotes. Cron reads a backslash right before % as its escape and
    # drops it, and no cron escape yields a lone backslash before %: end the quotes between the two ('a\''%b').
    line = line.replace(u'\\%', u"\\''%")
    # cron turns a bare % into a newline (the rest of the line becomes the command's stdin); \% gives a %.
    return line.replace(u'%', u'\\%')


def _systemd_word(word):
    if _SYSTEMD_BARE.match(word):
        return word
    quoted = _SYSTEMD_TO_ESCAPE.sub(lambda m: _SYSTEMD_C_ESCAPES.get(m.group(0), u'\\x%02x' % ord(m.group(0))), word)
    return u'"%s"' % quoted


def systemd_quote_argv(argv):
    """A list of arguments as the value of a systemd ExecStart= (ExecStartPre=, ...) that runs exactly them.

    Example:
        ['flock', '-n', '/l', 'echo', 'a "b"', '50%', '$HOME']  ->  'flock -n /l echo "a \\"b\\"" "50%%" "$$HOME"'
    """
    words = _words(argv, 'systemd_quote_argv')
    for i, word in enumerate(words):
        if u'\x00' in word:
            raise AnsibleFilterError(
                'systemd_quote_argv: argument %d (%r) holds a NUL, which no ExecStart= argument can carry' % (i, word))
    if not words[0] or words[0][0] in _SYSTEMD_PREFIXES:
        raise AnsibleFilterError(
            'systemd_quote_argv: the executable %r is empty or starts with one of %s, which systemd reads as an '
            'ExecStart= prefix even when quoted; give its absolute path'
            % (words[0], _SYSTEMD_PREFIXES))
    line = u' '.join(_systemd_word(word) for word in words)
    # Specifiers (%n, %h, ...) are expanded in the whole line at load time and $VAR / ${VAR} in the arguments at
    # run time; %% and $$ are the literal characters. Bare words never hold either.
    return line.replace(u'%', u'%%').replace(u'$', u'$$')


def systemd_specifier_escape(value):
    """A value for a unit setting that expands specifiers but is not a command line (Description=,
    StandardOutput=append:<path>): % doubled; line breaks, NUL and a trailing backslash (a continuation) refused.

    Example:
        'backup 50%.yml'  ->  'backup 50%%.yml'
    """
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise AnsibleFilterError(
            'systemd_specifier_escape: expects a string, got %s %r' % (type(value).__name__, value))
    text = to_text(value, errors='surrogate_or_strict')
    if _SYSTEMD_LINE_BREAKS.search(text) or text.endswith(u'\\'):
        raise AnsibleFilterError(
            'systemd_specifier_escape: %r holds a line break or NUL, or ends in a backslash (which continues the '
            'line): it cannot be a value in a unit file' % (text,))
    return text.replace(u'%', u'%%')


class FilterModule(object):
    """pgops.postgresql quoting filters for cron and systemd (the schedule role)"""

    def filters(self):
        return {
            'cron_quote_argv': cron_quote_argv,
            'systemd_quote_argv': systemd_quote_argv,
            'systemd_specifier_escape': systemd_specifier_escape,
        }
