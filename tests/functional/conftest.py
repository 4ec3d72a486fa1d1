# -*- coding: utf-8 -*-
"""Functional tests: the real modules, run as Ansible runs them (a module file and an args file), against a
real PostgreSQL started from the host's binaries (initdb + pg_ctl) and, where Docker answers, real containers.
"""
from __future__ import absolute_import, division, print_function

import contextlib
import glob
import json
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SEED = os.path.join(REPO, 'scripts', 'seed', 'pim.sql')


def free_port():
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
    s.close()
    return port


def pg_bin(name):
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob('/usr/lib/postgresql/*/bin/%s' % name))
    if not candidates:
        pytest.fail('%s not found: install postgresql (make test does)' % name)
    return candidates[-1]


@pytest.fixture(scope='session')
def collection_root():
    """A directory holding ansible_collections/pgops/postgresql -> this repository."""
    base = tempfile.mkdtemp(prefix='pgops-coll-')
    os.makedirs(os.path.join(base, 'ansible_collections', 'pgops'))
    os.symlink(REPO, os.path.join(base, 'ansible_collections', 'pgops', 'postgresql'))
    yield base
    shutil.rmtree(base)


class Postgres(object):
    def __init__(self, port, socket_dir):
        self.port = port
        self.socket_dir = socket_dir
        self.user = 'postgres'

    def conn(self):
        return dict(login_host='127.0.0.1', port=self.port, login_user=self.user)

    def psql(self, database, sql, check=True):
        proc = subprocess.run([pg_bin('psql'), '-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-h', '127.0.0.1',
                               '-p', str(self.port), '-U', self.user, '-d', "dbname='%s'" % database.replace(
                                   "'", "\\'"), '-c', sql],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, check=False)
        if check and proc.returncode != 0:
            raise AssertionError('psql failed: %s' % proc.stderr)
        return proc.stdout.strip()

    def psql_file(self, database, path):
        subprocess.run([pg_bin('psql'), '-X', '-q', '-h', '127.0.0.1', '-p', str(self.port), '-U', self.user,
                        '-d', database, '-f', path], check=True, stdout=subprocess.DEVNULL)

    def create_db(self, name, seed=True):
        self.psql('postgres', 'DROP DATABASE IF EXISTS "%s"' % name.replace('"', '""'))
        self.psql('postgres', 'CREATE DATABASE "%s"' % name.replace('"', '""'))
        if seed:
            self.psql_file(name, SEED)

    def row_counts(self, database):
        sql = ("SELECT string_agg(format('%s.%s=%s', n.nspname, c.relname, (xpath('/row/c/text()', query_to_xml("
               "format('select count(*) as c from %I.%I', n.nspname, c.relname), false, true, '')))[1]::text), ',' "
               "ORDER BY n.nspname, c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
               "WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema')")
        out = self.psql(database, sql)
        return dict((k, int(v)) for k, v in (item.rsplit('=', 1) for item in out.split(',') if item))


@pytest.fixture(scope='session')
def postgres():
    """A throwaway PostgreSQL cluster owned by the postgres user, on a free loopback port."""
    with cluster() as pg:
        yield pg


@contextlib.contextmanager
def cluster():
    """A new PostgreSQL cluster from the host's binaries (initdb, start; stopped and removed after)."""
    base = tempfile.mkdtemp(prefix='pgops-pg-')
    os.chmod(base, 0o755)
    data = os.path.join(base, 'data')
    sock = os.path.join(base, 'sock')
    os.makedirs(sock)
    as_user = []
    if os.geteuid() == 0:
        pw = pwd.getpwnam('postgres')
        os.chown(base, pw.pw_uid, pw.pw_gid)
        os.chown(sock, pw.pw_uid, pw.pw_gid)
        as_user = ['runuser', '-u', 'postgres', '--']
    subprocess.run(as_user + [pg_bin('initdb'), '-D', data, '-U', 'postgres', '--auth=trust', '-E', 'UTF8',
                              '--locale=C.UTF-8'], check=True, stdout=subprocess.DEVNULL)
    port = free_port()
    subprocess.run(as_user + [pg_bin('pg_ctl'), '-D', data, '-l', os.path.join(base, 'log'), '-w', '-o',
                              '-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off -c max_prepared_transactions=5' % (port, sock), 'start'],
                   check=True, stdout=subprocess.DEVNULL)
    try:
        yield Postgres(port, sock)
    finally:
        subprocess.run(as_user + [pg_bin('pg_ctl'), '-D', data, '-m', 'immediate', 'stop'],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        shutil.rmtree(base, ignore_errors=True)


def meta_of(dest, backup_id, database):
    """The metadata record of backup ``backup_id`` of ``database`` in ``dest``."""
    for name in os.listdir(dest):
        if name.endswith('.meta.json'):
            with open(os.path.join(dest, name)) as f:
                meta = json.load(f)
            if meta['id'] == backup_id and meta['database'] == database:
                return meta
    raise AssertionError('no metadata for %s of %s' % (backup_id, database))


@pytest.fixture
def dest():
    d = tempfile.mkdtemp(prefix='pgops-dest-')
    yield os.path.join(d, 'backups')
    shutil.rmtree(d, ignore_errors=True)


class ModuleRunner(object):
    """Runs a module file of this collection the way Ansible does: python module.py args.json -> JSON."""

    def __init__(self, root):
        self.root = root

    def popen(self, module, args, check_mode=False):
        fd, path = tempfile.mkstemp(prefix='pgops-args-', suffix='.json')
        payload = dict(args, _ansible_check_mode=check_mode, _ansible_tmpdir=tempfile.gettempdir(),
                       _ansible_remote_tmp=tempfile.gettempdir(), _ansible_keep_remote_files=False)
        with os.fdopen(fd, 'w') as f:
            json.dump({'ANSIBLE_MODULE_ARGS': payload}, f)
        env = dict(os.environ, PYTHONPATH=self.root)
        proc = subprocess.Popen([sys.executable, os.path.join(REPO, 'plugins', 'modules', module + '.py'), path],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, universal_newlines=True)
        proc.args_path = path
        return proc

    def result(self, proc):
        out, err = proc.communicate()
        os.unlink(proc.args_path)
        try:
            return json.loads(out[out.index('{'):])
        except ValueError:
            raise AssertionError('module printed no JSON (rc %s): %s %s' % (proc.returncode, out, err))

    def __call__(self, module, args, check_mode=False):
        return self.result(self.popen(module, args, check_mode))


@pytest.fixture(scope='session')
def run_module(collection_root):
    return ModuleRunner(collection_root)


def wait_for(predicate, timeout=30, interval=0.05):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError('timed out waiting')


def argv_while_running(proc):
    """Every process's command line on the machine, sampled every 10 ms until ``proc`` exits."""
    seen = []
    while proc.poll() is None:
        for pid in os.listdir('/proc'):
            if pid.isdigit():
                try:
                    with open('/proc/%s/cmdline' % pid, 'rb') as f:
                        seen.append(f.read())
                except (IOError, OSError):
                    continue   # the process ended meanwhile
        time.sleep(0.01)
    return seen
