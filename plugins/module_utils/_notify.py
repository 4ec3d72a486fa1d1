# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgops.postgresql contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Mail for the notify role (module notify_email). PRIVATE to the collection: no stable API."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate, make_msgid


class NotifyError(Exception):
    """A mail that could not be sent; ``step`` names where: connect, starttls, login, send."""

    def __init__(self, step, msg):
        Exception.__init__(self, msg)
        self.step = step
        self.msg = msg


def build_message(sender, to, subject, body, headers=None):
    msg = EmailMessage()
    msg['From'] = sender
    msg['To'] = ', '.join(to)
    msg['Subject'] = subject
    msg['Date'] = formatdate(localtime=False, usegmt=True)
    msg['Message-ID'] = make_msgid(domain=sender.rpartition('@')[2] or None)
    for name, value in (headers or {}).items():
        msg[name] = value
    msg.set_content(body)
    return msg


def tls_context(validate_certs=True, ca_file=None):
    ctx = ssl.create_default_context(cafile=ca_file or None)
    if not validate_certs:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def send_mail(message, host, port, security='starttls', username=None, password=None, timeout=10,
              validate_certs=True, ca_file=None):
    """Send ``message`` (an EmailMessage); returns the refused recipients (dict). Raises NotifyError.

    ``security``: starttls (plain connection upgraded, refused when the server does not offer it), tls (implicit
    TLS, port 465) or none. The password is only ever sent over TLS unless security is none.
    """
    step = 'connect'
    try:
        if security == 'tls':
            client = smtplib.SMTP_SSL(host, port, timeout=timeout, context=tls_context(validate_certs, ca_file))
        else:
            client = smtplib.SMTP(host, port, timeout=timeout)
        try:
            client.ehlo()
            if security == 'starttls':
                step = 'starttls'
                if not client.has_extn('starttls'):
                    raise NotifyError(step, 'the SMTP server %s:%s does not offer STARTTLS (set starttls to false only '
                                            'for a trusted local relay)' % (host, port))
                client.starttls(context=tls_context(validate_certs, ca_file))
                client.ehlo()
            if username:
                step = 'login'
                client.login(username, password or '')
            step = 'send'
            refused = client.send_message(message)
        finally:
            try:
                client.quit()
            except (smtplib.SMTPException, OSError):
                client.close()
    except NotifyError:
        raise
    except (smtplib.SMTPException, ssl.SSLError, OSError) as e:
        raise NotifyError(step, 'SMTP %s to %s:%s failed: %s' % (step, host, port, e))
    return refused
