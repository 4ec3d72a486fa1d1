# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgops.postgresql contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type


class ModuleDocFragment(object):
    # How to reach PostgreSQL, natively or inside a container. Shared by every module that connects.
    DOCUMENTATION = r'''
options:
  server:
    description:
      - The name of the PostgreSQL server in the backup catalog (E(pgops_server) in the inventory). Every backup
        records it, and every choice among backups (restore, fallback, drill, rotation) is made among this
        server's, so that two servers sharing a backup directory never take each other's backups.
      - Unset, it is derived from where the module runs and what it connects to - C(<host>/<container>) for
        O(container), else C(<host>), with C(/<login_host>) for a server on another host and C(:<port>) for a
        port other than 5432 - so that a server's backups and restores agree without any setting. Set it when
        the server moves (a new host, a renamed container) so that its backups stay its own.
      - Not used by the pgBackRest modules (their stanza names the cluster).
    type: str
    version_added: 0.5.0
  login_user:
    description:
      - The PostgreSQL role to connect as.
    type: str
    default: postgres
    aliases: [ login ]
  login_password:
    description:
      - The password of O(login_user).
      - It is passed to the client tools in their environment (never on a command line) and is never logged.
      - With O(container), C(docker exec -e PGPASSWORD) names the variable and the value stays out of argv.
    type: str
  login_host:
    description:
      - Host name or IP address of the server. Leave unset to use the local Unix socket.
    type: str
    aliases: [ host ]
  login_unix_socket:
    description:
      - Directory of the server's Unix socket, when it is not the client's default.
    type: str
    aliases: [ unix_socket ]
  login_port:
    description:
      - Server port, 1 to 65535. Leave unset for the client's default (or, in a container, the container's
        E(PGPORT)); C(0) or a value out of range is refused, never taken as "the default".
    type: int
    aliases: [ port ]
  connect_timeout:
    description:
      - Seconds to wait for a connection, 1 or more.
    type: int
    default: 10
  ssl_mode:
    description:
      - How the client tools negotiate TLS with the server (libpq C(sslmode), passed as E(PGSSLMODE)).
      - Use C(verify-full) with O(ca_cert) for a server reached over a network.
      - When unset, libpq's default (C(prefer)) applies, or E(PGSSLMODE) of the environment.
    type: str
    choices: [ disable, allow, prefer, require, verify-ca, verify-full ]
  ca_cert:
    description:
      - The CA certificate(s) that signed the server's certificate (libpq C(sslrootcert), E(PGSSLROOTCERT)).
      - With O(container), a path inside the container, where the client tools run.
    type: str
    aliases: [ ssl_rootcert ]
  ssl_cert:
    description:
      - Client certificate for certificate authentication (libpq C(sslcert), E(PGSSLCERT)).
      - With O(container), a path inside the container.
    type: str
  ssl_key:
    description:
      - The key of O(ssl_cert) (libpq C(sslkey), E(PGSSLKEY)); the file must be readable by the client only
        (mode 0600). With O(container), a path inside the container.
    type: str
  container:
    description:
      - Run the PostgreSQL client tools inside this running container (C(docker exec)), so that their version
        matches the server's and no client needs to be installed on the host. The container needs no Python
        (the official C(postgres) image works as it is).
      - Leave unset when PostgreSQL runs on the managed host or is reached over the network.
    type: str
  container_runtime:
    description:
      - The container command line to use with O(container).
    type: str
    choices: [ docker, podman ]
    default: docker
  container_user:
    description:
      - User to run the client tools as inside the container (C(docker exec -u)).
    type: str
  pg_bin_dir:
    description:
      - Directory holding C(psql), C(pg_dump) and C(pg_restore) on the managed host.
      - When unset, the tools of the server's major version under C(/usr/lib/postgresql/*/bin) are preferred
        (else the nearest newer ones), then those on E(PATH).
    type: path
notes:
  - The password never appears in argv, logs, metadata or task output.
  - These modules form the action group C(pgops.postgresql.connect). Set the connection once with
    C(module_defaults), as the roles do with the lookup P(pgops.postgresql.connection#lookup).
'''
