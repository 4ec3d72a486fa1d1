# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgops.postgresql contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# PRIVATE to the collection: this is not a public API and may change without notice.
"""The maintenance report: one self-contained HTML page (no network, no external CSS or JS) from a record.

Charts are inline SVG drawn here, at build time. Every number shown carries ``data-path`` (where it is in the
record, e.g. ``databases.0.size_bytes``) and ``data-value`` (the exact value), so tests - and the page's own
inline script, which then sets ``data-rendered`` and ``data-consistent`` on <html> - can prove that what the page
shows is what the JSON holds. The record itself is embedded as JSON (``<script type="application/json">``).
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import datetime
import json

from html import escape as _escape

from ansible_collections.pgops.postgresql.plugins.module_utils._catalog import parse_time

PALETTE = ('#2563eb', '#db2777', '#059669', '#d97706', '#7c3aed', '#0891b2', '#dc2626', '#4b5563')
PARTS = (('heap_bytes', 'heap', '#2563eb'), ('indexes_bytes', 'indexes', '#f59e0b'), ('toast_bytes', 'TOAST', '#10b981'))
LEVEL_LABEL = {'critical': 'Critical', 'warning': 'Warning', 'info': 'Info'}
UNITS = ('B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB')


def esc(value):
    return _escape(u'%s' % ('' if value is None else value), quote=True)


# -- formatting (the browser test uses the same functions to check what is shown) --------------------------------
def fmt_bytes(n):
    if n is None:
        return u'\u2013'
    n = float(n)
    for unit in UNITS:
        if abs(n) < 1024 or unit == UNITS[-1]:
            return (u'%d %s' % (n, unit)) if unit == 'B' else (u'%.1f %s' % (n, unit))
        n /= 1024.0


def fmt_tick(n):
    """Axis labels: like fmt_bytes, without a useless '.0'."""
    return fmt_bytes(n).replace('.0 ', ' ')


def fmt_int(n):
    return u'\u2013' if n is None else u'{:,}'.format(int(n))


def fmt_pct(n):
    return u'\u2013' if n is None else u'%.1f %%' % n


def fmt_age(seconds):
    if seconds is None:
        return u'\u2013'
    seconds = int(seconds)
    if seconds < 120:
        return u'%d s' % seconds
    if seconds < 7200:
        return u'%d min' % (seconds // 60)
    if seconds < 172800:
        return u'%.1f h' % (seconds / 3600.0)
    return u'%.1f d' % (seconds / 86400.0)


def fmt_time(value):
    """ISO timestamp -> 'YYYY-MM-DD HH:MM' (the writer's offset kept); None -> 'never'."""
    if not value:
        return u'never'
    return u'%s %s' % (value[:10], value[11:16])


FORMATS = {'bytes': fmt_bytes, 'int': fmt_int, 'pct': fmt_pct, 'age': fmt_age, 'time': fmt_time,
           'text': lambda v: u'\u2013' if v is None else u'%s' % v}


def num(value, path, kind='int', cls=''):
    """A shown value tied to its place in the record."""
    raw = '' if value is None else (json.dumps(value) if not isinstance(value, str) else value)
    return (u'<span class="v %s" data-path="%s" data-format="%s" data-value="%s">%s</span>'
            % (cls, esc(path), kind, esc(raw), esc(FORMATS[kind](value))))


# -- charts ---------------------------------------------------------------------------------------------------------
def _nice_ceiling(v):
    """A round upper bound for an axis in bytes (1, 2, 2.5, 5 x a power of 1024 or 10)."""
    if v <= 0:
        return 1.0
    unit = 1.0
    while v / unit >= 1024:
        unit *= 1024
    x = v / unit
    mag = 1.0
    while mag * 10 <= x:
        mag *= 10
    for step in (1, 2, 2.5, 5, 10):
        if step * mag >= x:
            return step * mag * unit
    return 10 * mag * unit


def line_chart(chart_id, title, series, width=560, height=260):
    """series: [(label, [(iso time, value, data-path, note), ...]), ...] -> SVG string (no script needed)."""
    pad_l, pad_r, pad_t, pad_b = 70, 16, 16, 34
    pts = [p for dummy, s in series for p in s]
    out = [u'<svg class="chart" id="%s" data-chart="line" data-series-count="%d" data-point-count="%d" '
           u'viewBox="0 0 %d %d" width="%d" height="%d" role="img" aria-label="%s">'
           % (esc(chart_id), len(series), len(pts), width, height, width, height, esc(title))]
    if not pts:
        out.append(u'<text class="empty" x="%d" y="%d" text-anchor="middle">no data yet</text></svg>'
                   % (width // 2, height // 2))
        return u''.join(out)
    times = [parse_time(p[0]) for p in pts]
    t_min, t_max = min(times), max(times)
    if (t_max - t_min).total_seconds() < 3600:
        t_min -= datetime.timedelta(days=1)
        t_max += datetime.timedelta(days=1)
    span = (t_max - t_min).total_seconds()
    y_max = _nice_ceiling(max(p[1] for p in pts) * 1.08)
    plot_w, plot_h = width - pad_l - pad_r, height - pad_t - pad_b

    def x_of(t):
        return pad_l + plot_w * (parse_time(t) - t_min).total_seconds() / span

    def y_of(v):
        return pad_t + plot_h * (1 - float(v) / y_max)

    for i in range(5):
        v = y_max * i / 4.0
        y = y_of(v)
        out.append(u'<line class="grid" x1="%d" x2="%d" y1="%.1f" y2="%.1f"/>' % (pad_l, width - pad_r, y, y))
        out.append(u'<text class="tick" x="%d" y="%.1f" text-anchor="end">%s</text>'
                   % (pad_l - 8, y + 4, esc(fmt_tick(v))))
    for i in range(4):
        t = t_min + datetime.timedelta(seconds=span * i / 3.0)
        x = pad_l + plot_w * i / 3.0
        anchor = 'start' if i == 0 else ('end' if i == 3 else 'middle')
        out.append(u'<text class="tick" x="%.1f" y="%d" text-anchor="%s">%s</text>'
                   % (x, height - 10, anchor, esc(t.strftime('%Y-%m-%d'))))
    for n, (label, points) in enumerate(series):
        color = PALETTE[n % len(PALETTE)]
        points = sorted(points, key=lambda p: parse_time(p[0]))
        if len(points) > 1:
            d = u' '.join(u'%s%.1f,%.1f' % ('M' if i == 0 else 'L', x_of(p[0]), y_of(p[1]))
                          for i, p in enumerate(points))
            out.append(u'<path class="line" d="%s" stroke="%s" data-series="%s"/>' % (d, color, esc(label)))
        radius = 4 if len(points) <= 40 else 2
        for p in points:
            out.append(u'<circle class="pt" cx="%.1f" cy="%.1f" r="%d" fill="%s" data-series="%s" data-t="%s" '
                       u'data-value="%d" data-path="%s" data-format="bytes"><title>%s %s: %s%s</title></circle>'
                       % (x_of(p[0]), y_of(p[1]), radius, color, esc(label), esc(p[0]), p[1], esc(p[2]), esc(label),
                          esc(fmt_time(p[0])), esc(fmt_bytes(p[1])), esc(p[3])))
    out.append(u'</svg>')
    return u''.join(out)


def legend(labels):
    return u'<div class="legend">%s</div>' % u''.join(
        u'<span><i style="background:%s"></i>%s</span>' % (PALETTE[n % len(PALETTE)], esc(label))
        for n, label in enumerate(labels))


def tables_chart(chart_id, tables, path_prefix, width=560, limit=10):
    """Horizontal stacked bars (heap, indexes, TOAST) of the biggest tables."""
    tables = tables[:limit]
    row_h, label_w, value_w = 26, 170, 74
    height = max(row_h * len(tables) + 10, 40)
    out = [u'<svg class="chart" id="%s" data-chart="bars" data-bar-count="%d" viewBox="0 0 %d %d" width="%d" '
           u'height="%d" role="img" aria-label="Top tables by total size">'
           % (esc(chart_id), len(tables), width, height, width, height)]
    if not tables:
        out.append(u'<text class="empty" x="%d" y="24" text-anchor="middle">no tables</text></svg>' % (width // 2))
        return u''.join(out)
    biggest = float(max(t['total_bytes'] for t in tables) or 1)
    bar_w = width - label_w - value_w
    for i, t in enumerate(tables):
        y = 5 + i * row_h
        name = u'%s.%s' % (t['schema'], t['name'])
        short = name if len(name) <= 24 else name[:23] + u'\u2026'
        out.append(u'<text class="label" x="%d" y="%d" text-anchor="end"><title>%s</title>%s</text>'
                   % (label_w - 8, y + 16, esc(name), esc(short)))
        x = float(label_w)
        for key, part, color in PARTS:
            w = bar_w * (t.get(key) or 0) / biggest
            if w <= 0:
                continue
            out.append(u'<rect class="seg" x="%.1f" y="%d" width="%.1f" height="%d" fill="%s" data-part="%s" '
                       u'data-value="%d" data-path="%s.%d.%s" data-format="bytes"><title>%s %s: %s</title></rect>'
                       % (x, y + 3, w, row_h - 8, color, part, t.get(key) or 0, path_prefix, i, key, esc(name),
                          part, esc(fmt_bytes(t.get(key)))))
            x += w
        out.append(u'<text class="value" x="%.1f" y="%d" data-value="%d" data-path="%s.%d.total_bytes" '
                   u'data-format="bytes">%s</text>' % (x + 6, y + 16, t['total_bytes'], path_prefix, i,
                                                       esc(fmt_bytes(t['total_bytes']))))
    out.append(u'</svg>')
    return u''.join(out)


# -- page sections ----------------------------------------------------------------------------------------------
def _table(headers, rows, cls=''):
    if not rows:
        return u''
    head = u''.join(u'<th%s>%s</th>' % (u' class="r"' if h.startswith('>') else u'', esc(h.lstrip('>')))
                    for h in headers)
    right = [h.startswith('>') for h in headers]

    def row(r):
        return u''.join(u'<td%s>%s</td>' % (u' class="r"' if right[i] else u'', c) for i, c in enumerate(r))
    body = u''.join(u'<tr>%s</tr>' % row(r) for r in rows)
    return u'<table class="%s"><thead><tr>%s</tr></thead><tbody>%s</tbody></table>' % (cls, head, body)


def _card(title, value_html, sub_html=u'', cls=u''):
    return (u'<div class="card %s"><div class="k">%s</div><div class="big">%s</div><div class="sub">%s</div></div>'
            % (cls, esc(title), value_html, sub_html))


def _cards(record):
    out = []
    server = record.get('server') or {}
    counts = dict((lvl, len([a for a in record.get('alerts') or [] if a['level'] == lvl]))
                  for lvl in ('critical', 'warning', 'info'))
    state = 'bad' if counts['critical'] else ('warn' if counts['warning'] else 'good')
    out.append(_card(u'Alerts', u'<span class="v" data-count="alerts">%d</span>' % len(record.get('alerts') or []),
                     u'%d critical \u00b7 %d warning \u00b7 %d info' % (counts['critical'], counts['warning'],
                                                                        counts['info']), state))
    for i, db in enumerate(record.get('databases') or []):
        g = db.get('growth') or {}
        out.append(_card(u'%s size' % db['name'], num(db['size_bytes'], 'databases.%d.size_bytes' % i, 'bytes'),
                         (u'growth ' + num(g.get('pct'), 'databases.%d.growth.pct' % i, 'pct')) if g.get('pct')
                         is not None else esc(g.get('note') or ''), 'warn' if g.get('flag') else ''))
        cache = db.get('cache')
        if cache:
            bad = cache['hit_pct'] is not None and cache['hit_pct'] < record['thresholds']['cache_hit_pct'] \
                and cache['blocks'] >= record['thresholds']['cache_min_blocks']
            hit = num(cache['hit_pct'], 'databases.%d.cache.hit_pct' % i, 'pct')
            out.append(_card(u'%s cache hit' % db['name'], hit,
                             u'%s blocks read or hit' % num(cache['blocks'], 'databases.%d.cache.blocks' % i),
                             'warn' if bad else ''))
    conn = server.get('connections')
    if conn:
        out.append(_card(u'Connections', num(conn['total'], 'server.connections.total'),
                         u'of %s max (%s)' % (num(server['max_connections'], 'server.max_connections'),
                                              num(conn['pct'], 'server.connections.pct', 'pct')),
                         'bad' if conn['pct'] >= record['thresholds']['connections_pct'] else ''))
    backups = record.get('backups') or {}
    for name, b in sorted((backups.get('databases') or {}).items()):
        out.append(_card(u'%s newest backup' % name,
                         num(b['newest_age_seconds'], 'backups.databases.%s.newest_age_seconds' % name, 'age'),
                         u'old \u00b7 %s \u00b7 %s'
                         % (esc(b['newest_id'] or 'none'),
                            num(b['newest_size'], 'backups.databases.%s.newest_size' % name, 'bytes'))))
    return u'<section class="cards">%s</section>' % u''.join(out)


def _alerts(record):
    alerts = record.get('alerts') or []
    if not alerts:
        return u'<p class="ok">No alerts: every check is within its threshold.</p>'
    rows = u''.join(u'<li class="alert %s" data-level="%s" data-check="%s"><b>%s</b><span class="chk">%s%s</span>'
                    u'<span class="msg">%s</span></li>'
                    % (a['level'], a['level'], esc(a['check']), LEVEL_LABEL[a['level']], esc(a['check']),
                       (u' \u00b7 ' + esc(a['database'])) if a.get('database') else u'', esc(a['message']))
                    for a in alerts)
    return u'<ul class="alerts">%s</ul>' % rows


def _db_sections(record):
    out = []
    for i, db in enumerate(record.get('databases') or []):
        p = 'databases.%d' % i
        out.append(u'<section class="db" data-database="%s"><h2>%s</h2>' % (esc(db['name']), esc(db['name'])))
        exp = db.get('expected_tables')
        if exp:
            if not exp['checked']:
                out.append(u'<p class="note">Expected tables: %s</p>' % esc(exp['note']))
            elif exp['missing']:
                out.append(u'<p class="bad-text">Expected tables: missing <b>%s</b> (%d expected, from %s)</p>'
                           % (esc(', '.join(exp['missing'])), len(exp['expected']), esc(exp['note'])))
            else:
                out.append(u'<p class="ok">Expected tables: all %d present (from %s)</p>'
                           % (len(exp['expected']), esc(exp['note'])))
        if 'tables' in db:
            out.append(u'<div class="grid2"><div class="panel"><h3>Top tables by total size</h3>%s%s</div>'
                       % (tables_chart('chart-tables-%d' % i, db['tables'], p + '.tables'),
                          u'<div class="legend">%s</div>' % u''.join(u'<span><i style="background:%s"></i>%s</span>'
                                                                     % (c, n) for dummy, n, c in PARTS)))
            ix = db.get('unused_indexes')
            rows = [[esc('%s.%s' % (x['schema'], x['name'])), esc(x['table']),
                     num(x['size_bytes'], '%s.unused_indexes.%d.size_bytes' % (p, j), 'bytes')]
                    for j, x in enumerate(ix or [])]
            reset = (db.get('cache') or {}).get('stats_reset')
            out.append(u'<div class="panel"><h3>Unused indexes <small>idx_scan = 0 since %s; unique and primary '
                       u'keys left out</small></h3>%s</div></div>'
                       % (esc(fmt_time(reset) if reset else 'the cluster started'),
                          _table(['index', 'table', '>size'], rows, 'unused') or
                          u'<p class="ok">None: every index has been used.</p>'))
            rows = []
            for j, t in enumerate(db['tables']):
                rows.append([esc('%s.%s' % (t['schema'], t['name'])),
                             num(t['heap_bytes'], '%s.tables.%d.heap_bytes' % (p, j), 'bytes'),
                             num(t['indexes_bytes'], '%s.tables.%d.indexes_bytes' % (p, j), 'bytes'),
                             num(t['toast_bytes'], '%s.tables.%d.toast_bytes' % (p, j), 'bytes'),
                             num(t['live_tuples'], '%s.tables.%d.live_tuples' % (p, j)),
                             num(t['dead_tuples'], '%s.tables.%d.dead_tuples' % (p, j)),
                             num(t['bloat_bytes'], '%s.tables.%d.bloat_bytes' % (p, j), 'bytes'),
                             num(max(t['last_vacuum'] or '', t['last_autovacuum'] or '') or None,
                                 '%s.tables.%d.%s' % (p, j, 'last_vacuum' if (t['last_vacuum'] or '') >=
                                                      (t['last_autovacuum'] or '') else 'last_autovacuum'), 'time'),
                             num(max(t['last_analyze'] or '', t['last_autoanalyze'] or '') or None,
                                 '%s.tables.%d.%s' % (p, j, 'last_analyze' if (t['last_analyze'] or '') >=
                                                      (t['last_autoanalyze'] or '') else 'last_autoanalyze'), 'time')])
            out.append(u'<div class="panel"><h3>Tables <small>%d of %d, biggest first; bloat is an estimate from '
                       u'pg_stats; times are the latest of manual and auto</small></h3>%s</div>'
                       % (len(db['tables']), db.get('table_count', len(db['tables'])),
                          _table(['table', '>heap', '>indexes', '>TOAST', '>live rows', '>dead rows', '>bloat est.',
                                  'last vacuum', 'last analyze'], rows, 'tables')))
        out.append(u'</section>')
    return u''.join(out)


def _sessions(record):
    server = record.get('server') or {}
    rows = []
    for key, what in (('long_running', 'long-running'), ('idle_in_transaction', 'idle in transaction')):
        for j, s in enumerate(server.get(key) or []):
            rows.append([esc(what), esc(s['pid']), esc(s['database']), esc(s['user']),
                         num(s['seconds'], 'server.%s.%d.seconds' % (key, j), 'age'), u'<code>%s</code>'
                         % esc(s['query'])])
    conn = server.get('connections') or {}
    by_db = u''.join(u'<span class="pill">%s %s</span>' % (esc(k), num(v, 'server.connections.by_database.%s' % k))
                     for k, v in sorted((conn.get('by_database') or {}).items()))
    return (u'<div class="panel"><h3>Sessions <small>long-running over %ss, idle in transaction over %ss</small>'
            u'</h3>%s<p class="pills">Connections per database: %s</p></div>'
            % (record['thresholds']['long_running_seconds'], record['thresholds']['idle_in_transaction_seconds'],
               _table(['kind', 'pid', 'database', 'user', '>for', 'query'], rows, 'sessions') or
               u'<p class="ok">No long-running or idle-in-transaction sessions.</p>', by_db or u'\u2013'))


def _verifications(record):
    rows = [[esc(v['backup_id']), esc(v['database']), esc(fmt_time(v['verified_at'])),
             u'<span class="badge %s">%s</span>' % ('good' if v['result'] == 'passed' else 'bad', esc(v['result'])),
             num(v['rto_seconds'], 'verifications.%d.rto_seconds' % j, 'text')]
            for j, v in enumerate(record.get('verifications') or [])]
    return (u'<div class="panel"><h3>Last restore verifications</h3>%s</div>'
            % (_table(['backup', 'database', 'verified', 'result', '>RTO s'], rows, 'verifications') or
               u'<p class="note">No backup has been verified yet: run a restore drill '
               u'(pgops.postgresql.pg_restore_verified).</p>'))


def _actions(record):
    rows = [[esc(a['database']), esc(a['action']), u'<code>%s</code>' % esc(a['sql']), esc(a['status']),
             num(a['duration_seconds'], 'actions.%d.duration_seconds' % j, 'text')]
            for j, a in enumerate(record.get('actions') or [])]
    return (u'<div class="panel"><h3>Maintenance run</h3>%s</div>'
            % (_table(['database', 'action', 'statement', 'status', '>seconds'], rows, 'actions') or
               u'<p class="note">No maintenance statement was run.</p>'))


CSS = u"""
:root{--fg:#0f172a;--mute:#64748b;--line:#e2e8f0;--bg:#f8fafc;--card:#fff;--good:#059669;--warn:#d97706;--bad:#dc2626}
*{box-sizing:border-box}body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;
color:var(--fg);background:var(--bg)}header{background:linear-gradient(120deg,#1e3a8a,#2563eb 60%,#0891b2);color:#fff;
padding:22px 32px}header h1{margin:0 0 4px;font-size:22px;font-weight:650}header .meta{opacity:.9;font-size:13px}
header .meta span{margin-right:18px}main{max-width:1220px;margin:0 auto;padding:20px 24px 40px}
h2{font-size:18px;margin:28px 0 10px;padding-bottom:6px;border-bottom:2px solid var(--line)}
h3{font-size:14px;margin:0 0 10px}h3 small{font-weight:400;color:var(--mute);margin-left:6px}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(180px,1fr));gap:12px}
.card{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:12px 14px;border-top:4px solid #94a3b8}
.card.good{border-top-color:var(--good)}.card.warn{border-top-color:var(--warn)}.card.bad{border-top-color:var(--bad)}
.card .k{color:var(--mute);font-size:12px;text-transform:uppercase;letter-spacing:.04em}
.card .big{font-size:24px;font-weight:650;margin:2px 0}.card .sub{color:var(--mute);font-size:12px}
.panel{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:14px 16px;margin:12px 0;overflow:auto}
.grid2{display:grid;grid-template-columns:1fr 1fr;gap:12px}.grid2 .panel{margin:0}
@media (max-width:900px){.grid2{grid-template-columns:1fr}}
.alerts{list-style:none;margin:0;padding:0}.alert{display:grid;grid-template-columns:80px 190px 1fr;gap:8px;
padding:8px 12px;margin:6px 0;border-radius:8px;background:#fff;border:1px solid var(--line);border-left:5px solid}
.alert.critical{border-left-color:var(--bad);background:#fef2f2}.alert.warning{border-left-color:var(--warn);background:#fffbeb}
.alert.info{border-left-color:#3b82f6}.alert .chk{color:var(--mute)}
table{border-collapse:collapse;width:100%;font-size:13px}th,td{text-align:left;padding:5px 8px;border-bottom:1px solid var(--line);
white-space:nowrap}th{color:var(--mute);font-weight:600;font-size:12px}td.r,th.r{text-align:right}tbody tr:hover{background:#f1f5f9}
code{font-size:12px;white-space:pre-wrap}.ok{color:var(--good)}.note{color:var(--mute)}.bad-text{color:var(--bad)}
.badge{padding:1px 8px;border-radius:9px;font-size:12px;color:#fff}.badge.good{background:var(--good)}.badge.bad{background:var(--bad)}
.pill{display:inline-block;background:#eef2ff;border-radius:9px;padding:1px 9px;margin:2px 4px 2px 0}
svg.chart{width:100%;height:auto;display:block}svg .grid{stroke:var(--line)}svg .tick{fill:var(--mute);font-size:11px}
svg .line{fill:none;stroke-width:2.5}svg .pt{stroke:#fff;stroke-width:1.5}svg .pt:hover{r:6}svg .label,svg .value{font-size:12px;fill:#334155}
svg .empty{fill:var(--mute);font-size:13px}svg .seg:hover{opacity:.8}
.legend{display:flex;flex-wrap:wrap;gap:14px;font-size:12px;color:#334155;margin-top:6px}
.legend i{display:inline-block;width:11px;height:11px;border-radius:3px;margin-right:5px;vertical-align:-1px}
#tip{position:fixed;pointer-events:none;background:#0f172a;color:#fff;font-size:12px;padding:4px 8px;border-radius:6px;display:none}
footer{color:var(--mute);font-size:12px;text-align:center;padding:16px}
.banner{background:#fef3c7;border:1px solid #f59e0b;padding:8px 12px;border-radius:8px;margin-bottom:12px}
"""

# Runs after the page is parsed: hover tips for chart elements, then a self-check that every shown number equals
# the embedded record; the outcome goes to <html data-rendered data-consistent data-charts>.
JS = u"""
(function () {
  var root = document.documentElement;
  try {
    var data = JSON.parse(document.getElementById('pgops-data').textContent);
    var tip = document.getElementById('tip');
    var bad = [];
    document.querySelectorAll('[data-path]').forEach(function (el) {
      var v = data;
      el.getAttribute('data-path').split('.').forEach(function (k) {
        v = (v === null || v === undefined) ? undefined : v[/^[0-9]+$/.test(k) && Array.isArray(v) ? +k : k];
      });
      if (Array.isArray(v)) { v = v[1]; }
      var shown = el.getAttribute('data-value');
      var want = (v === null || v === undefined) ? '' : (typeof v === 'string' ? v : JSON.stringify(v));
      if (shown !== want && !(shown !== '' && Number(shown) === Number(want))) { bad.push(el.getAttribute('data-path')); }
    });
    document.querySelectorAll('svg [data-value] title').forEach(function (t) {
      var el = t.parentNode, text = t.textContent;
      el.addEventListener('mousemove', function (e) {
        tip.textContent = text; tip.style.display = 'block';
        tip.style.left = (e.clientX + 12) + 'px'; tip.style.top = (e.clientY + 12) + 'px';
      });
      el.addEventListener('mouseleave', function () { tip.style.display = 'none'; });
    });
    root.setAttribute('data-charts', String(document.querySelectorAll('svg.chart').length));
    root.setAttribute('data-consistent', bad.length ? 'false' : 'true');
    if (bad.length) { root.setAttribute('data-inconsistent', bad.join(' ')); }
    root.setAttribute('data-rendered', 'ok');
  } catch (e) {
    root.setAttribute('data-rendered', 'error');
    root.setAttribute('data-js-error', String(e && e.message || e));
    throw e;
  }
})();
"""


def series_for_charts(record):
    size, backup = [], []
    for i, db in enumerate(record.get('databases') or []):
        size.append((db['name'], [(p[0], p[1], 'databases.%d.size_series.%d' % (i, j), u' (%s)' % p[2])
                                  for j, p in enumerate(db.get('size_series') or [])]))
        backup.append((db['name'], [(p[0], p[1], 'databases.%d.backup_series.%d' % (i, j), u' (backup %s)' % p[2])
                                    for j, p in enumerate(db.get('backup_series') or [])]))
    return size, backup


def render_html(record):
    """The whole page as text."""
    size, backup = series_for_charts(record)
    labels = [db['name'] for db in record.get('databases') or []]
    server = record.get('server') or {}
    data = json.dumps(record, sort_keys=True, ensure_ascii=True).replace('</', '<\\/')
    title = u'PostgreSQL maintenance \u2013 %s' % u', '.join(labels)
    banner = (u'<div class="banner">Check mode: nothing was run or written; this page shows what was read.</div>'
              if record.get('check_mode') else u'')
    body = [
        u'<header><h1>%s</h1><div class="meta"><span>%s</span><span>PostgreSQL %s</span><span>%s</span>'
        u'<span>collected %s</span></div></header>'
        % (esc(title), esc(record.get('host')), esc(server.get('version')),
           esc(u'container ' + record['container'] if record.get('container') else u'native server'),
           esc(fmt_time(record.get('collected_at')))),
        u'<main>', banner, _cards(record), u'<h2>Alerts</h2>', _alerts(record),
        u'<h2>Trends</h2><div class="grid2"><div class="panel"><h3>Database size over time <small>maintenance runs '
        u'and backups</small></h3>%s%s</div><div class="panel"><h3>Backup size over time <small>successful backups'
        u'</small></h3>%s%s</div></div>'
        % (line_chart('chart-db-size', 'Database size over time', size), legend(labels),
           line_chart('chart-backup-size', 'Backup size over time', backup), legend(labels)),
        _db_sections(record), u'<h2>Server</h2>', _sessions(record), _verifications(record), _actions(record),
        u'</main><footer>pgops.postgresql %s \u00b7 %d earlier runs in the history \u00b7 the data of this page is '
        u'embedded below as JSON</footer>' % (esc(record.get('collection_version')), record.get('history_runs') or 0),
        u'<div id="tip"></div>',
    ]
    return (u'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><meta name="viewport" '
            u'content="width=device-width, initial-scale=1"><title>%s</title><style>%s</style></head><body>%s'
            u'<script type="application/json" id="pgops-data">%s</script><script>%s</script></body></html>\n'
            % (esc(title), CSS, u''.join(body), data, JS))


# -- the fleet page (pgops.postgresql.fleet_html): the same look, one table per server -----------------------------
FLEET_CSS = u"""
.badge.warn{background:var(--warn)}.badge.mute{background:#94a3b8}
section.server{margin-top:8px}section.server h2 .badge{font-size:12px;vertical-align:3px;margin-left:8px}
.hosts{color:var(--mute);font-size:13px;margin:-4px 0 8px}svg.spark{display:inline-block;vertical-align:middle}
svg.spark polyline{fill:none;stroke:#2563eb;stroke-width:1.5}svg.spark circle{fill:#2563eb}
td.flag{color:var(--warn);font-weight:600}
"""
FLEET_BADGE = {'ok': 'good', 'alerts': 'warn', 'down': 'bad', 'failed': 'bad', 'no_result': 'mute'}
FLEET_STATE = {'ok': u'ok', 'alerts': u'alerts', 'down': u'server down', 'failed': u'catalog not read',
               'no_result': u'no result'}


def sparkline(points, path, width=120, height=26):
    """A backup-size trend: [[id, bytes], ...] oldest first -> a small inline SVG (each point tied to its path)."""
    if not points:
        return u'\u2013'
    top = float(max(p[1] for p in points) or 1)
    step = (width - 6) / float(max(len(points) - 1, 1))
    xy = [(3 + i * step, height - 3 - (height - 6) * p[1] / top) for i, p in enumerate(points)]
    out = [u'<svg class="spark" data-chart="spark" data-point-count="%d" viewBox="0 0 %d %d" width="%d" height="%d" '
           u'role="img" aria-label="backup size trend">' % (len(points), width, height, width, height)]
    if len(xy) > 1:
        out.append(u'<polyline points="%s"/>' % u' '.join(u'%.1f,%.1f' % c for c in xy))
    for i, (p, (x, y)) in enumerate(zip(points, xy)):
        out.append(u'<circle cx="%.1f" cy="%.1f" r="2" data-value="%d" data-path="%s.%d" data-format="bytes">'
                   u'<title>backup %s: %s</title></circle>'
                   % (x, y, p[1], esc(path), i, esc(p[0]), esc(fmt_bytes(p[1]))))
    out.append(u'</svg>')
    return u''.join(out)


def _fleet_cards(fleet):
    c = fleet.get('counts') or {}
    bad = sum(c.get('hosts_' + k) or 0 for k in ('down', 'failed', 'no_result'))
    return u'<section class="cards">%s</section>' % u''.join([
        _card(u'Servers', num(c.get('servers'), 'counts.servers'),
              u'%s databases' % num(c.get('databases'), 'counts.databases')),
        _card(u'Hosts', num(c.get('hosts'), 'counts.hosts'),
              u'%s ok \u00b7 %s with alerts' % (num(c.get('hosts_ok'), 'counts.hosts_ok'),
                                                num(c.get('hosts_alerts'), 'counts.hosts_alerts')),
              'good' if not bad else ''),
        _card(u'Not answering', u'<span class="v" data-count="hosts-bad">%d</span>' % bad,
              u'%s down \u00b7 %s failed \u00b7 %s no result'
              % (num(c.get('hosts_down'), 'counts.hosts_down'), num(c.get('hosts_failed'), 'counts.hosts_failed'),
                 num(c.get('hosts_no_result'), 'counts.hosts_no_result')),
              'bad' if bad else 'good'),
        _card(u'Alerts', num(c.get('alerts'), 'counts.alerts'), u'host failures and backup alerts',
              'warn' if fleet.get('alerts') else 'good'),
    ])


def _fleet_server(i, s):
    p = 'servers.%d' % i
    out = [u'<section class="server" data-server="%s" data-state="%s"><h2>%s<span class="badge %s">%s</span></h2>'
           % (esc(s['name']), esc(s['state']), esc(s['name']), FLEET_BADGE.get(s['state'], 'mute'),
              esc(FLEET_STATE.get(s['state'], s['state']))),
           u'<p class="hosts">hosts: %s%s \u00b7 success rate %s</p>'
           % (esc(u', '.join(s.get('hosts') or []) or u'\u2013'),
              (u' \u00b7 reported by ' + esc(u', '.join(s['reported_by']))) if s.get('reported_by') and
              s.get('reported_by') != s.get('hosts') else u'', num(s.get('success_rate'), p + '.success_rate', 'pct'))]
    if s.get('errors'):
        out.append(u'<ul class="alerts">%s</ul>' % u''.join(
            u'<li class="alert critical" data-level="critical" data-check="host"><b>Critical</b><span class="chk">'
            u'host</span><span class="msg">%s</span></li>' % esc(e) for e in s['errors']))
    rows = []
    for j, d in enumerate(s.get('databases') or []):
        q = '%s.databases.%d' % (p, j)
        rows.append([
            esc(d['name']), esc(d.get('newest_id') or u'none'),
            num(d.get('newest_age_seconds'), q + '.newest_age_seconds', 'age'),
            esc(d.get('newest_verified_id') or u'never'),
            num(d.get('newest_verified_age_seconds'), q + '.newest_verified_age_seconds', 'age'),
            num(d.get('success_rate'), q + '.success_rate', 'pct'),
            num(d.get('newest_size'), q + '.newest_size', 'bytes'),
            num(d.get('size_change_pct'), q + '.size_change_pct', 'pct', 'flag' if d.get('size_change_flag') else ''),
            num(d.get('growth_pct'), q + '.growth_pct', 'pct', 'flag' if d.get('growth_flag') else ''),
            sparkline(d.get('size_series') or [], q + '.size_series'),
            u'<span data-count="alerts">%d</span>' % len(d.get('alerts') or [])])
    out.append(u'<div class="panel">%s</div>' % (
        _table(['database', 'newest backup', '>age', 'newest verified', '>age', '>success', '>size', '>size change',
                '>growth', 'size trend', '>alerts'], rows, 'fleet') or
        u'<p class="note">No backup of this server was read.</p>'))
    if s.get('alerts'):
        out.append(u'<ul class="alerts">%s</ul>' % u''.join(
            u'<li class="alert warning" data-level="warning" data-check="backups"><b>Warning</b><span class="chk">'
            u'backups</span><span class="msg">%s</span></li>' % esc(a) for a in s['alerts']))
    out.append(u'</section>')
    return u''.join(out)


def render_fleet_html(fleet):
    """The fleet page as text: the record of _fleet.summary, embedded as JSON and checked by the page's script."""
    servers = fleet.get('servers') or []
    data = json.dumps(fleet, sort_keys=True, ensure_ascii=True).replace('</', '<\\/')
    title = u'PostgreSQL fleet \u2013 %d servers' % len(servers)
    c = fleet.get('counts') or {}
    body = [
        u'<header><h1>%s</h1><div class="meta"><span>%s hosts</span><span>state %s</span><span>generated %s</span>'
        u'</div></header>' % (esc(title), esc(c.get('hosts')),
                              esc(FLEET_STATE.get(fleet.get('state'), fleet.get('state'))),
                              esc(fmt_time(fleet.get('generated_at')))),
        u'<main>', _fleet_cards(fleet),
        u''.join(_fleet_server(i, s) for i, s in enumerate(servers)) or u'<p class="note">No server.</p>',
        u'</main><footer>pgops.postgresql \u00b7 list_backups fleet summary \u00b7 the data of this page is embedded '
        u'below as JSON</footer>', u'<div id="tip"></div>',
    ]
    return (u'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><meta name="viewport" '
            u'content="width=device-width, initial-scale=1"><title>%s</title><style>%s%s</style></head><body>%s'
            u'<script type="application/json" id="pgops-data">%s</script><script>%s</script></body></html>\n'
            % (esc(title), CSS, FLEET_CSS, u''.join(body), data, JS))
