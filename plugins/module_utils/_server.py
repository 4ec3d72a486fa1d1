# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgops.postgresql contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# PRIVATE to the collection: this is not a public API and may change without notice.
"""Which PostgreSQL server a backup belongs to.

The catalog knew databases; two servers with a database of the same name, sharing a backup directory, were one
database to it (a restore brought back the other server's data). Every backup now records ``server``, a name,
and ``server_identity``, the evidence beside it; every choice among backups is made among one server's.

The name is the identity: it survives a logical disaster recovery, which gives the server a new system
identifier. It is the ``server`` option (``pgops_server`` in the inventory) or, unset, derived from where the
module runs and what it connects to, so that the backups and the restores of one server agree without any
setting: ``<host>/<container>`` for PostgreSQL in a container, ``<host>`` natively, with ``/<login_host>`` for
a server on another host and ``:<port>`` for a port other than 5432. The system identifier
(``pg_control_system()``) is a check: a restore says when it differs from the server's (a server rebuilt, or
another server given the same name).

Records made before 0.5.0 have no ``server``: theirs is derived the same way from the ``host`` and ``container``
they recorded (a native server on another host or port is then just ``<host>``: name it with ``source_server``).
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import socket

from ansible_collections.pgops.postgresql.plugins.module_utils._errors import PgOpsError
from ansible_collections.pgops.postgresql.plugins.module_utils._steps import OPTIONS

DEFAULT_PORT = 5432
LOCAL_HOSTS = ('', 'localhost', '127.0.0.1', '::1')
NAME_MAX = 200

# The evidence recorded beside the name; the system identifier and the data directory only where the user may
# read them (pg_control_system() is for superusers and pg_monitor; data_directory for pg_read_all_settings)
PRIVILEGES_SQL = """
SELECT jsonb_build_object(
  'control', has_function_privilege('pg_control_system()', 'EXECUTE'),
  'settings', (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)
              OR pg_has_role(current_user, 'pg_read_all_settings', 'USAGE'))::text
"""
SYSTEM_IDENTIFIER_SQL = "SELECT system_identifier::text FROM pg_control_system()"
DATA_DIRECTORY_SQL = "SELECT current_setting('data_directory')"


def derived_name(container=None, login_host=None, port=None, host=None):
    """The server's name when none is given (see the module's docstring)."""
    name = host or socket.gethostname()
    if container:
        return '%s/%s' % (name, container)
    if login_host and not login_host.startswith('/') and login_host not in LOCAL_HOSTS:
        name += '/' + login_host
    if port and int(port) != DEFAULT_PORT:
        name += ':%d' % int(port)
    return name


def check_name(name, option='server'):
    """``name`` itself when it can name a server; a PgOpsError naming ``option`` otherwise."""
    if name is None:
        return None
    if not name.strip() or len(name) > NAME_MAX or any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise PgOpsError('%s must be a name of 1 to %d printable characters (got %r): a server name such as '
                         'db1/postgres-pim' % (option, NAME_MAX, name[:80]), step=OPTIONS)
    return name


def server_of(meta):
    """The server a catalog record belongs to: its ``server``, or for a record made before 0.5.0 the name
    derived from the host and container it recorded (None when it recorded neither)."""
    if meta.get('server'):
        return meta['server']
    if not meta.get('host') or meta.get('origin') == 'adopted':
        return None   # nothing says which server (an adopted dump says where it was adopted, not of what)
    return derived_name(meta.get('container'), host=meta['host'])


def identity(session, target):
    """``server_identity``: the system identifier and data directory (where readable), host, container, port."""
    out = dict(host=socket.gethostname(), container=target.container or None, login_host=target.host or None,
               port=target.port or None, system_identifier=None, data_directory=None)
    rights = session.query_json(PRIVILEGES_SQL) or {}
    if rights.get('control'):
        out['system_identifier'] = (session.query(SYSTEM_IDENTIFIER_SQL) or [None])[0]
    if rights.get('settings'):
        out['data_directory'] = (session.query(DATA_DIRECTORY_SQL) or [None])[0]
    return out


def of_server(entries, server):
    """The records of ``server`` (records whose server cannot be told belong to every server, as before 0.5.0)."""
    return [m for m in entries if server_of(m) in (server, None)]


def compare_cluster(session, target, meta, own=True):
    """(check, warning) of the server's system identifier against the one backup ``meta`` recorded: the name is
    the identity, the identifier a check - a difference is expected after a logical disaster recovery onto a new
    cluster (a warning says so when the backup is the server's ``own``), never a refusal."""
    recorded = (meta.get('server_identity') or {}).get('system_identifier')
    if not recorded:
        return None, None
    now = identity(session, target).get('system_identifier')
    if now is None:
        return 'not readable here (pg_control_system needs superuser or pg_monitor)', None
    if now == recorded:
        return 'same cluster (%s)' % now, None
    check = ('another cluster: the backup was made on %s, this server is %s (a rebuilt server, or another server '
             'of the same name)' % (recorded, now))
    warning = None
    if own:
        warning = ('backup %s of server %s was made on cluster %s; this server is cluster %s: expected after a '
                   'disaster recovery onto a new cluster, a surprise otherwise' % (meta['id'], target.server,
                                                                                   recorded, now))
    return check, warning


def elsewhere(entries, source, database, backup_id, choosers):
    """The end of a "no such backup" message when another server has what was asked for ('' otherwise)."""
    others = sorted(set(str(server_of(m)) for m in entries if server_of(m) not in (source, None)
                        and m.get('scope', 'database') == 'database' and m.get('status') == 'success'
                        and (database is None or m.get('database') == database)
                        and (backup_id in choosers or m.get('id') == backup_id)))
    if not others:
        return ''
    return (' for server %s; %s of %s exists for server %s: another server\'s backup is restored only when '
            'named by source_server' % (source, 'backup %s' % backup_id if backup_id not in choosers else 'a backup',
                                        'database %s' % database if database else 'this database',
                                        ', '.join(others)))
