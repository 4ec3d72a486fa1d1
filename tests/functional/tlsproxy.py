# -*- coding: utf-8 -*-
"""A TLS terminator for the S3 tests: Debian's ``stunnel4`` with a throwaway CA, in front of a plain-HTTP server
on 127.0.0.1 (tests/functional/s3server.py's SeaweedFS).

pgBackRest 2.45 only talks TLS to S3 and failed to write through SeaweedFS's own TLS; stunnel in front of the
plain-HTTP port works. The CA and the server certificate (CN and SAN ``localhost``, SAN IP 127.0.0.1) are made
with the ``openssl`` CLI in a temp dir (no secret on argv: the keys are files, unencrypted, throwaway). The
proxy listens on a free loopback port; stopped with its whole process group and the temp dir removed::

    with TlsProxy(target_port).start() as proxy:
        proxy.port, proxy.ca_file          # repo1-storage-port, repo1-storage-ca-file (repo1-s3-endpoint=localhost)
"""
from __future__ import absolute_import, division, print_function

import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time

from conftest import free_port
from s3server import die_with_parent


def stunnel_binary():
    for name in ('stunnel4', 'stunnel'):
        found = shutil.which(name)
        if found:
            return found
    raise RuntimeError('stunnel not found: apt-get install stunnel4 (scripts/host-packages.sh does)')


def make_ca(base, hostname='localhost'):
    """A throwaway CA and a server certificate for ``hostname`` (+ IP 127.0.0.1) signed by it, in ``base``;
    (ca.crt, server.crt, server.key) paths."""
    openssl = shutil.which('openssl')
    if not openssl:
        raise RuntimeError('openssl not found: apt-get install openssl')
    ca_key, ca_crt = os.path.join(base, 'ca.key'), os.path.join(base, 'ca.crt')
    key, csr, crt = (os.path.join(base, 'server.' + ext) for ext in ('key', 'csr', 'crt'))
    ext = os.path.join(base, 'server.ext')
    with open(ext, 'w') as f:
        f.write('subjectAltName=DNS:%s,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n'
                'keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n' % hostname)

    def run(*argv):
        subprocess.run([openssl] + list(argv), check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    old = os.umask(0o077)
    try:
        run('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', ca_key, '-out', ca_crt, '-days', '2',
            '-subj', '/CN=pgops throwaway test CA', '-addext', 'basicConstraints=critical,CA:TRUE',
            '-addext', 'keyUsage=critical,keyCertSign,cRLSign')
        run('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', csr, '-subj', '/CN=%s' % hostname)
        run('x509', '-req', '-in', csr, '-CA', ca_crt, '-CAkey', ca_key, '-CAcreateserial', '-out', crt,
            '-days', '2', '-extfile', ext)
    finally:
        os.umask(old)
    os.chmod(ca_crt, 0o644)   # read by pgBackRest as the cluster's user
    return ca_crt, crt, key


class TlsProxy(object):
    """stunnel: TLS on 127.0.0.1:``port`` -> plain TCP to 127.0.0.1:``target_port``; it dies with the test process."""

    def __init__(self, target_port, hostname='localhost'):
        self.target_port = int(target_port)
        self.base = tempfile.mkdtemp(prefix='pgops-tls-')
        os.chmod(self.base, 0o755)
        self.hostname = hostname
        self.proc = None
        self.port = None
        self.ca_file = None
        self.out = None

    def start(self, timeout=20):
        self.ca_file, crt, key = make_ca(self.base, self.hostname)
        self.port = free_port()
        config = os.path.join(self.base, 'stunnel.conf')
        with open(config, 'w') as f:
            f.write('foreground = yes\npid =\nsyslog = no\ndebug = notice\n\n[s3]\n'
                    'accept = 127.0.0.1:%d\nconnect = 127.0.0.1:%d\ncert = %s\nkey = %s\n'
                    % (self.port, self.target_port, crt, key))
        argv = [stunnel_binary(), config]
        self.out = open(os.path.join(self.base, 'stunnel.out'), 'wb')
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self.out, stderr=subprocess.STDOUT,
                                     start_new_session=True, preexec_fn=die_with_parent)
        context = ssl.create_default_context(cafile=self.ca_file)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError('stunnel exited with %s: %s' % (self.proc.returncode, self.log_tail()))
            try:
                with socket.create_connection(('127.0.0.1', self.port), timeout=2) as raw:
                    with context.wrap_socket(raw, server_hostname=self.hostname):
                        return self   # handshake done: the certificate verifies for the host name
            except (OSError, ssl.SSLError):
                time.sleep(0.1)
        self.stop()
        raise RuntimeError('stunnel did not accept TLS on %d within %ss: %s' % (self.port, timeout, self.log_tail()))

    @property
    def endpoint(self):
        return 'https://%s:%d' % (self.hostname, self.port)

    def log_tail(self):
        try:
            with open(os.path.join(self.base, 'stunnel.out'), 'rb') as f:
                return f.read()[-3000:].decode('utf-8', 'replace')
        except (IOError, OSError):
            return ''

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(10)
            except (OSError, subprocess.TimeoutExpired):
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except OSError:
                    pass
                self.proc.wait(10)
        if self.out is not None:
            self.out.close()
            self.out = None
        shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
