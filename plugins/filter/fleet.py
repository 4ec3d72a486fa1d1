# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgops.postgresql contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The fleet summary of a run over many servers (documented in plugins/filter/fleet_summary.yml and
plugins/filter/fleet_html.yml). The logic is plugins/module_utils/_fleet.py and _report.py: this file only reads
every host's report out of hostvars (a run_once or final-play aggregation, which no module can do) and calls it."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
from collections.abc import Mapping

from ansible.errors import AnsibleFilterError

from ansible_collections.pgops.postgresql.plugins.module_utils import _fleet
from ansible_collections.pgops.postgresql.plugins.module_utils._report import render_fleet_html


def _plain(value):
    """Ansible's own types (lazy containers, tagged strings) as plain JSON data."""
    return json.loads(json.dumps(value, default=str))


def fleet_summary(hostvars, hosts, var='list_backups_fleet_report'):
    """The fleet record of ``hosts`` from each one's ``var`` in ``hostvars``."""
    if not isinstance(hostvars, Mapping):
        raise AnsibleFilterError('fleet_summary: the input must be hostvars (a mapping of host to variables), got %s'
                                 % type(hostvars).__name__)
    if isinstance(hosts, str) or not isinstance(hosts, (list, tuple)):
        raise AnsibleFilterError('fleet_summary: hosts must be a list of inventory host names, got %r' % (hosts,))
    reports = {}
    for host in hosts:
        found = hostvars[host] if host in hostvars else {}
        reports[str(host)] = _plain(found.get(var)) if var in found else None
    return _fleet.summary(reports)


def fleet_html(summary):
    """The self-contained HTML page of a fleet record."""
    if not isinstance(summary, Mapping) or 'servers' not in summary:
        raise AnsibleFilterError('fleet_html: the input must be the record of pgops.postgresql.fleet_summary')
    return render_fleet_html(_plain(summary))


class FilterModule(object):
    """pgops.postgresql.fleet_summary, pgops.postgresql.fleet_html"""

    def filters(self):
        return {'fleet_summary': fleet_summary, 'fleet_html': fleet_html}
