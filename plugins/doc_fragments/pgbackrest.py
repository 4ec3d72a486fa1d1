# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgops.postgresql contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type


class ModuleDocFragment(object):
    # Which pgBackRest stanza, configuration and secrets; where pgBackRest runs. Shared by every pgbackrest_* module.
    DOCUMENTATION = r'''
options:
  stanza:
    description:
      - The pgBackRest stanza - the name of this PostgreSQL cluster's section in C(pgbackrest.conf) and of its
        backups and WAL archive in the repositories.
      - Letters, digits, C(_), C(.) and C(-).
    type: str
    required: true
  config:
    description:
      - The C(pgbackrest.conf) to use (C(--config)), where pgBackRest runs - on the managed host, or inside
        O(container).
      - When unset, pgBackRest's default C(/etc/pgbackrest/pgbackrest.conf).
    type: path
  pgbackrest_env:
    description:
      - pgBackRest options given in its own environment variables, C(PGBACKREST_<OPTION>) - for secrets such as
        the repository passphrase (E(PGBACKREST_REPO1_CIPHER_PASS)) or S3 keys (E(PGBACKREST_REPO1_S3_KEY),
        E(PGBACKREST_REPO1_S3_KEY_SECRET)) that should not be in C(pgbackrest.conf).
      - The values never appear in argv, logs or task output; with O(container), C(docker exec -e NAME) names the
        variables and the docker client passes their values through.
      - The server's C(archive_command) runs pgBackRest too, without these variables; it needs the secrets from
        C(pgbackrest.conf) (mode 0640, owned by O(os_user)) or from the server's own environment.
    type: dict
    default: {}
  os_user:
    description:
      - The operating system user pgBackRest runs as - the owner of the data directory (C(runuser -u) when the
        module runs as root, C(docker exec -u) with O(container)).
    type: str
    default: postgres
notes:
  - pgBackRest runs where the server's data directory is - natively on the managed host, or inside O(container)
    (C(docker exec)), whose image must contain pgBackRest (a derived image adding the distribution's
    C(pgbackrest) package).
  - pgBackRest 2.45 (Debian 12) supports PostgreSQL up to 15.
seealso:
  - name: pgBackRest user guide
    description: Stanzas, repositories, backup types, retention and restore.
    link: https://pgbackrest.org/user-guide.html
  - name: pgBackRest configuration reference
    description: Every option of C(pgbackrest.conf) and its E(PGBACKREST_*) environment variable.
    link: https://pgbackrest.org/configuration.html
'''
