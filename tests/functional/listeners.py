# -*- coding: utf-8 -*-
"""Real listeners on 127.0.0.1 for the notification tests: an HTTP server that records every request (webhooks and
healthcheck pings) and an SMTP server (aiosmtpd) with STARTTLS and AUTH that records every mail. Nothing here
talks to any other address."""
from __future__ import absolute_import, division, print_function

import email
import email.policy
import json
import os
import ssl
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class HttpRecorder(object):
    """Records (method, path, headers, body) of every request; answers ``status`` (200 by default)."""

    def __init__(self, status=200):
        self.requests = []
        self.status = status
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def _record(self):
                length = int(self.headers.get('Content-Length') or 0)
                body = self.rfile.read(length) if length else b''
                recorder.requests.append(dict(method=self.command, path=self.path, headers=dict(self.headers),
                                              body=body.decode('utf-8', 'replace')))
                self.send_response(recorder.status)
                self.send_header('Content-Type', 'text/plain')
                self.send_header('Content-Length', '2')
                self.end_headers()
                self.wfile.write(b'OK')

            do_GET = do_POST = _record

            def log_message(self, *args):   # quiet
                pass

        self.server = ThreadingHTTPServer(('127.0.0.1', 0), Handler)
        self.port = self.server.server_address[1]
        self.url = 'http://127.0.0.1:%d' % self.port
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def paths(self):
        return [r['path'] for r in self.requests]

    def json_bodies(self, path):
        return [json.loads(r['body']) for r in self.requests if r['path'] == path]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def self_signed_cert(directory):
    """A throwaway certificate for 127.0.0.1 / localhost (openssl, about 0.1 s); returns (cert, key) paths."""
    cert, key = os.path.join(directory, 'smtp.crt'), os.path.join(directory, 'smtp.key')
    subprocess.run(['openssl', 'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1',
                    '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=localhost',
                    '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost'],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return cert, key


class SmtpRecorder(object):
    """aiosmtpd on 127.0.0.1: STARTTLS required, AUTH (PLAIN/LOGIN, only over TLS) required with ``user`` /
    ``password``; records every accepted mail as (mail_from, rcpt_tos, message) and every login attempt.
    With ``tls=False``: no STARTTLS offered, AUTH in clear accepted (what the client must refuse)."""

    def __init__(self, cert, key, user, password, tls=True):
        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import AuthResult, LoginPassword

        self.mails = []
        self.logins = []
        recorder = self

        class Handler(object):
            async def handle_DATA(self, server, session, envelope):
                msg = email.message_from_bytes(envelope.original_content or envelope.content,
                                               policy=email.policy.default)
                recorder.mails.append(dict(mail_from=envelope.mail_from, rcpt_tos=list(envelope.rcpt_tos),
                                           message=msg, tls=session.ssl is not None))
                return '250 OK'

        def authenticator(server, session, envelope, mechanism, auth_data):
            ok = (isinstance(auth_data, LoginPassword) and auth_data.login.decode() == user
                  and auth_data.password.decode() == password)
            recorder.logins.append(dict(mechanism=mechanism, ok=ok, tls=session.ssl is not None))
            return AuthResult(success=ok)

        if tls:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(cert, key)
            options = dict(tls_context=context, require_starttls=True, auth_require_tls=True)
        else:   # a server without STARTTLS, that would take a password in clear
            options = dict(auth_require_tls=False)
        port = _free_port()
        self.controller = Controller(Handler(), hostname='127.0.0.1', port=port, authenticator=authenticator,
                                     auth_required=True, **options)
        self.controller.start()
        self.port = port

    def close(self):
        self.controller.stop()


def _free_port():
    import socket
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
    s.close()
    return port


def closed_port():
    """A loopback port nothing listens on (bound then released)."""
    return _free_port()
