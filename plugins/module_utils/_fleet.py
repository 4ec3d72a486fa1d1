# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgops.postgresql contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# PRIVATE to the collection: this is not a public API and may change without notice.
"""The fleet summary: every host's list_backups result, one table per server and database.

Each inventory host reports what it saw (``host_report``): the server it is (``pgops_server``, or the one server
its catalog holds), whether PostgreSQL answered (the probe), and backup_info's ``stats.servers``. ``summary``
merges the reports of a run into one record - a server reported by several hosts (a shared backup directory) is
counted once - and marks the servers whose host failed or whose PostgreSQL did not answer, so that one stopped
server or one missing directory is a line of the summary, not the end of the run. Pure functions of plain data:
the filter plugin pgops.postgresql.fleet_summary calls them on the controller.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import datetime

from ansible_collections.pgops.postgresql.plugins.module_utils._catalog import GLOBALS

FORMAT_VERSION = 1
# a host's state, worst last: the summary's and each server's state is the worst of its hosts'
STATES = ('ok', 'alerts', 'no_result', 'down', 'failed')
STATE_TEXT = {'ok': 'ok', 'alerts': 'alerts', 'down': 'server down', 'failed': 'catalog not read',
              'no_result': 'no result (unreachable, or the run stopped before it)'}
ROW_KEYS = ('newest_id', 'newest_age_seconds', 'newest_size', 'newest_verified_id', 'newest_verified_age_seconds',
            'success_rate', 'count', 'failed', 'size_change_pct', 'size_change_flag', 'growth_pct', 'growth_flag',
            'size_series')


def _worst(states):
    return max(states, key=STATES.index) if states else 'ok'


def host_report(host, report):
    """One host's entry from what the playbook recorded (``report``: server, path, probe, info, error, task)."""
    report = report or {}
    probe, info = report.get('probe') or {}, report.get('info') or {}
    out = dict(host=host, server=report.get('server') or None, path=report.get('path'), error=None,
               failed_task=None, up=None, version=None, servers={})
    if not report:
        out.update(state='no_result', error=STATE_TEXT['no_result'])
        return out
    if probe and not probe.get('skipped'):
        out['up'] = not probe.get('failed')
        out['version'] = (probe.get('server') or {}).get('version')
        if probe.get('failed'):
            out['error'] = u'the connection check failed: %s' % (probe.get('msg') or 'no message')
    stats = info.get('stats') if not info.get('failed') else None
    if stats is not None and info.get('path_exists') is False:
        out.update(state='failed', failed_task=report.get('task') or None,
                   error=u'; '.join(x for x in (out['error'], u'the backup directory %s does not exist'
                                                % out['path']) if x))
        return out
    if stats is None:
        out['state'] = 'failed'
        out['failed_task'] = report.get('task') or None
        out['error'] = u'; '.join(x for x in (out['error'], info.get('msg') or report.get('error') or
                                              'the catalog was not read') if x)
        return out
    out['servers'] = stats.get('servers') or {}
    if not out['server'] and len(out['servers']) == 1:
        out['server'] = list(out['servers'])[0]          # its catalog holds one server: that is the host's
    own = out['servers'].get(out['server']) if out['server'] else None
    out['alerts'] = list((own or stats).get('alerts') or [])       # its own server's, in a shared directory
    out['state'] = 'down' if out['up'] is False else ('alerts' if out['alerts'] else 'ok')
    return out


def summary(reports, now=None):
    """The fleet record from ``reports``: {host: report}; see the module docstring."""
    now = now or datetime.datetime.now().astimezone()
    hosts = [host_report(h, reports[h]) for h in sorted(reports)]
    servers = {}
    for h in hosts:
        own = h['server']
        for name, s in sorted(h['servers'].items()):
            entry = servers.setdefault(name, dict(name=name, hosts=[], reported_by=[], databases={},
                                                  success_rate=s.get('success_rate'), alerts=[]))
            entry['reported_by'].append(h['host'])
            if not entry['databases']:        # the same catalog seen from two hosts: counted once
                entry['databases'] = dict((db, dict((k, d.get(k)) for k in ROW_KEYS + ('alerts',)))
                                          for db, d in (s.get('databases') or {}).items())
                entry['alerts'] = list(s.get('alerts') or [])
        if own:
            entry = servers.setdefault(own, dict(name=own, hosts=[], reported_by=[], databases={},
                                                 success_rate=None, alerts=[]))
            entry['hosts'].append(h['host'])
    out_servers = []
    for name in sorted(servers):
        s = servers[name]
        mine = [h for h in hosts if h['host'] in s['hosts']]
        state = _worst([h['state'] for h in mine if h['state'] != 'alerts'] + (['alerts'] if s['alerts'] else []))
        s['state'] = state
        s['errors'] = [u'%s: %s' % (h['host'], h['error']) for h in mine if h['error']]
        order = sorted(s['databases'].items(), key=lambda x: (x[0] == GLOBALS, x[0]))   # the globals last
        s['databases'] = [dict(d, name=db) for db, d in order]
        out_servers.append(s)
    # hosts whose own server is not known (failed before the catalog said, no pgops_server): a line of their own
    for h in hosts:
        if not h['server']:
            out_servers.append(dict(name=u'(host %s)' % h['host'], hosts=[h['host']], reported_by=[], databases=[],
                                    success_rate=None, alerts=[], state=h['state'] if h['state'] != 'ok' else 'ok',
                                    errors=[u'%s: %s' % (h['host'], h['error'])] if h['error'] else []))
    alerts = []
    for s in out_servers:
        alerts.extend(s['errors'])
        alerts.extend(s['alerts'])
    counts = dict(hosts=len(hosts), servers=len(out_servers),
                  databases=sum(len(s['databases']) for s in out_servers), alerts=len(alerts))
    for state in STATES:
        counts['hosts_' + state] = len([h for h in hosts if h['state'] == state])
    return dict(format_version=FORMAT_VERSION, generated_at=now.isoformat(timespec='seconds'),
                state=_worst([s['state'] for s in out_servers]), counts=counts,
                hosts=[dict((k, v) for k, v in h.items() if k != 'servers') for h in hosts],
                servers=out_servers, alerts=alerts, lines=lines(out_servers))


def _age(seconds):
    if seconds is None:
        return u'-'
    if seconds < 7200:
        return u'%d min' % (seconds // 60)
    if seconds < 172800:
        return u'%.1f h' % (seconds / 3600.0)
    return u'%.1f d' % (seconds / 86400.0)


def _pct(value):
    return u'-' if value is None else u'%+.1f%%' % value


def lines(servers):
    """The summary as text, one table per server (for the job's output)."""
    out = []
    head = u'  %-20s %-16s %8s %-16s %8s %7s %8s %8s  %s' % (
        'database', 'newest', 'age', 'newest verified', 'age', 'success', 'size chg', 'growth', 'alerts')
    for s in servers:
        out.append(u'%s [%s] hosts: %s' % (s['name'], STATE_TEXT.get(s['state'], s['state']),
                                           u', '.join(s['hosts'] or s['reported_by']) or u'-'))
        for e in s['errors']:
            out.append(u'  ! ' + u' '.join(e.split()))
        if s['databases']:
            out.append(head)
        for d in s['databases']:
            out.append(u'  %-20s %-16s %8s %-16s %8s %7s %8s %8s  %d' % (
                d['name'], d['newest_id'] or u'none', _age(d['newest_age_seconds']), d['newest_verified_id'] or
                u'never', _age(d['newest_verified_age_seconds']),
                u'-' if d['success_rate'] is None else u'%.0f%%' % d['success_rate'], _pct(d['size_change_pct']),
                _pct(d['growth_pct']), len(d.get('alerts') or [])))
        for a in s['alerts']:
            out.append(u'  alert: ' + a)
    return out
