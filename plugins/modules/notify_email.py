#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgops.postgresql contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
module: notify_email
short_description: Send a plain-text mail over SMTP, with STARTTLS (or TLS) and authentication
version_added: 0.3.0
description:
  - Sends one plain-text mail with Python's smtplib - the notify role's mail channel, because neither ansible-core
    nor the collections this one depends on ship a mail module (community.general's C(mail) is not a dependency).
  - With O(security=starttls) (the default) the connection is upgraded before anything else is sent and a server
    without STARTTLS is refused, so the password never crosses the network in clear.
  - Fails when the server cannot be reached, refuses the login or every recipient; a recipient refused while
    others were accepted is returned in RV(refused).
author:
  - pgops.postgresql maintainers (@pgops)
requirements:
  - Python 3.8 or newer on the managed host; the module uses the standard library only (no psycopg2).
  - An SMTP server the managed host can reach (O(host), O(port)).
extends_documentation_fragment:
  - pgops.postgresql.attributes
attributes:
  check_mode:
    support: full
    details: Sends nothing in check mode and reports C(changed=true).
  diff_mode:
    support: none
  idempotent:
    support: none
    details: Every run sends a mail.
options:
  to:
    description: Recipients.
    type: list
    elements: str
    required: true
  sender:
    description: The C(From) address.
    type: str
    required: true
  subject:
    description: The subject line.
    type: str
    required: true
  body:
    description: The plain-text body.
    type: str
    required: true
  headers:
    description: Extra headers, such as C(X-Pgops-Job).
    type: dict
    default: {}
  host:
    description: The SMTP server.
    type: str
    required: true
  port:
    description: The SMTP port (587 for submission with STARTTLS, 465 with O(security=tls), 25 for a local relay).
    type: int
    default: 587
  security:
    description:
      - C(starttls) upgrades the connection and fails when the server does not offer it; C(tls) connects with
        implicit TLS (port 465); C(none) sends in clear (a local relay only).
    type: str
    choices: [starttls, tls, none]
    default: starttls
  username:
    description: Log in as this user (SMTP AUTH); no login when empty.
    type: str
  password:
    description: The password of O(username); keep it in Ansible Vault.
    type: str
  validate_certs:
    description: Check the server's certificate and host name.
    type: bool
    default: true
  ca_file:
    description: A PEM file of CA certificates to trust instead of the system's (a private CA).
    type: path
  timeout:
    description: Seconds to wait for the server at each step.
    type: int
    default: 10
seealso:
  - module: ansible.builtin.uri
    description: The notify role's webhook and healthcheck-ping channels.
'''

EXAMPLES = r'''
- name: Tell the DBAs
  pgops.postgresql.notify_email:
    to: [dba@example.com]
    sender: pgops@example.com
    subject: "[pgops] backup FAILED on pim-db"
    body: "backup of pim_prod failed at dump: ..."
    host: smtp.example.com
    username: pgops@example.com
    password: "{{ vault_smtp_password }}"
  delegate_to: localhost
'''

RETURN = r'''
recipients:
  description: The recipients the mail was sent (or, in check mode, would be sent) to.
  returned: always
  type: list
  elements: str
refused:
  description: Recipients the server refused, with its answer, while it accepted others.
  returned: success
  type: dict
  sample: {}
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.pgops.postgresql.plugins.module_utils._notify import NotifyError, build_message, send_mail


def main():
    module = AnsibleModule(
        argument_spec=dict(
            to=dict(type='list', elements='str', required=True),
            sender=dict(type='str', required=True),
            subject=dict(type='str', required=True),
            body=dict(type='str', required=True),
            headers=dict(type='dict', default={}),
            host=dict(type='str', required=True),
            port=dict(type='int', default=587),
            security=dict(type='str', choices=['starttls', 'tls', 'none'], default='starttls'),
            username=dict(type='str'),
            password=dict(type='str', no_log=True),
            validate_certs=dict(type='bool', default=True),
            ca_file=dict(type='path'),
            timeout=dict(type='int', default=10),
        ),
        required_by={'password': 'username'},
        supports_check_mode=True,
    )
    p = module.params
    to = [t for t in p['to'] if t]
    if not to:
        module.fail_json(msg='to must name at least one recipient')
    if not p['sender']:
        module.fail_json(msg='sender must not be empty: set the From address (the notify role: pgops_notify_email_from)')
    if module.check_mode:
        module.exit_json(changed=True, recipients=to)
    message = build_message(p['sender'], to, p['subject'], p['body'], p['headers'])
    try:
        refused = send_mail(message, p['host'], p['port'], p['security'], p['username'], p['password'],
                            p['timeout'], p['validate_certs'], p['ca_file'])
    except NotifyError as e:
        module.fail_json(msg=e.msg, failed_step=e.step, recipients=to)
    module.exit_json(changed=True, recipients=to, refused=dict((k, str(v)) for k, v in refused.items()))


if __name__ == '__main__':
    main()
