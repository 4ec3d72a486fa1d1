# -*- coding: utf-8 -*-
"""Functional tests: the real modules, run as Ansible runs them (a module file and an args file), against a
real PostgreSQL started from the host's binaries (initdb + pg_ctl) and, where Docker answers, real containers.
"""
from __future__ import absolute_import, division, print_function

import contextlib
import glob
import hashlib
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
import yaml

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


def sha256(path):
    """The SHA-256 of the file ``path`` (hex)."""
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            h.update(chunk)
    return h.hexdigest()


def metas(dest):
    """Every metadata record in ``dest``, newest first."""
    out = []
    for name in os.listdir(dest):
        if name.endswith('.meta.json'):
            with open(os.path.join(dest, name)) as f:
                out.append(json.load(f))
    return sorted(out, key=lambda m: m.get('started_at') or '', reverse=True)


def meta_file_of(dest, backup_id, database):
    """(path, record) of the metadata of backup ``backup_id`` of ``database`` in ``dest``."""
    for name in os.listdir(dest):
        if name.endswith('.meta.json'):
            path = os.path.join(dest, name)
            with open(path) as f:
                meta = json.load(f)
            if meta['id'] == backup_id and meta['database'] == database:
                return path, meta
    raise AssertionError('no metadata for %s of %s' % (backup_id, database))


def meta_of(dest, backup_id, database):
    """The metadata record of backup ``backup_id`` of ``database`` in ``dest``."""
    return meta_file_of(dest, backup_id, database)[1]


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


# -- ansible-playbook, as an operator runs it ---------------------------------------------------------------------
def playbook_runner(collection_root, inventory, cwd, env_more=None):
    """``run(playbook, *args) -> (rc, output)``: ansible-playbook of this collection's ``playbooks/<playbook>``
    over ``inventory`` (a dict, written to ``<cwd>/inventory.yml``), run in ``cwd`` with stderr in the output;
    ``env_more``: more environment (ANSIBLE_SHOW_CUSTOM_STATS...)."""
    inv = os.path.join(str(cwd), 'inventory.yml')
    with open(inv, 'w') as f:
        f.write(yaml.safe_dump(inventory))
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=collection_root, ANSIBLE_FORCE_COLOR='0',
               ANSIBLE_STDOUT_CALLBACK='default', ANSIBLE_NOCOLOR='1',
               PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ['PATH'])
    env.update(env_more or {})

    def run(playbook, *args):
        proc = subprocess.run([os.path.join(os.path.dirname(sys.executable), 'ansible-playbook'), '-i', inv,
                               os.path.join(REPO, 'playbooks', playbook)] + list(args),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True, env=env,
                              cwd=str(cwd), check=False)
        return proc.returncode, proc.stdout

    return run


def run_playbook(collection_root, playbook, extra, cwd):
    """ansible-playbook ``playbook`` over one local host (localhost), its variables ``extra`` given as -e JSON, in
    ``cwd``: (rc, output)."""
    run = playbook_runner(collection_root, {'postgres_servers': {'hosts': {'localhost': {
        'ansible_connection': 'local', 'ansible_python_interpreter': sys.executable}}}}, cwd)
    return run(playbook, '-e', json.dumps(extra))


# -- PostgreSQL in a container ----------------------------------------------------------------------------------
def docker(*args, **kw):
    """``docker args...`` with its output captured; the CompletedProcess (never raises on a non-zero exit)."""
    return subprocess.run(['docker'] + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, check=False, **kw)


def image(major):
    """The test image of PostgreSQL ``major``: $PGOPS_IMAGE_<major>, else .cache/images.txt (make images)."""
    override = os.environ.get('PGOPS_IMAGE_%d' % major)
    if override:
        return override
    path = os.path.join(REPO, '.cache', 'images.txt')
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                parts = line.split()
                if parts and parts[0] == str(major):
                    return parts[1]
    return 'pgops/postgres:%d' % major


def wait_container_ready(name):
    """Until PostgreSQL in container ``name`` accepts pim_user's connections to pim_dev (60 s at most)."""
    wait_for(lambda: docker('exec', name, 'pg_isready', '-q', '-U', 'pim_user', '-d', 'pim_dev').returncode == 0,
             timeout=60, interval=0.3)


@contextlib.contextmanager
def seeded_container(name, image_name, options, env=None, extra_sql=''):
    """PostgreSQL in a new container ``name`` (``docker run -d`` with ``options``, e.g. the network) whose user
    pim_user owns database pim_dev, seeded with scripts/seed/pim.sql and then ``extra_sql``; removed afterwards.
    ``env``: the environment of the docker command (for ``-e NAME`` options that pass a value by name)."""
    if docker('version').returncode != 0:
        pytest.fail('docker does not answer: run make test (it starts dockerd)')
    run = docker(*(['run', '-d', '--name', name, '-e', 'POSTGRES_USER=pim_user', '-e', 'POSTGRES_DB=pim_dev']
                   + list(options) + [image_name, 'postgres']), env=env)
    assert run.returncode == 0, run.stderr
    try:
        wait_container_ready(name)
        with open(SEED) as f:
            seeded = docker('exec', '-i', name, 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-U', 'pim_user',
                            '-d', 'pim_dev', input=f.read() + extra_sql)
        assert seeded.returncode == 0, seeded.stderr
        yield name
    finally:
        docker('rm', '-f', name)


# -- Prometheus textfiles -------------------------------------------------------------------------------------------
def prom_samples(path):
    """The textfile ``path`` parsed by prometheus_client: (text, {(name, sorted label pairs): value})."""
    from prometheus_client.parser import text_string_to_metric_families

    with open(path) as f:
        text = f.read()
    samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return text, samples


def series(samples, name, **labels):
    """{server: value} of the samples of ``name`` whose other labels are ``labels``."""
    out = {}
    for (n, ls), v in samples.items():
        ls = dict(ls)
        if n == name and dict((k, x) for k, x in ls.items() if k != 'server') == labels:
            assert ls['server'] not in out, (name, labels)
            out[ls['server']] = v
    return out


def value(samples, name, **labels):
    """The one sample of ``name`` with these labels; its ``server`` label (one server here) is not compared."""
    [found] = list(series(samples, name, **labels).values())
    return found


# -- row counts ---------------------------------------------------------------------------------------------------
def only_counts(postgres, database):
    """Each table's own rows (FROM ONLY: an inheritance parent without its children's), by schema.name."""
    out = postgres.psql(database, r"""
        SELECT string_agg(format('%s.%s=%s', n.nspname, c.relname, (xpath('/row/c/text()', query_to_xml(
               format('SELECT count(*) AS c FROM ONLY %I.%I', n.nspname, c.relname), false, true, '')))[1]::text),
               E'\n' ORDER BY n.nspname, c.relname)
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema')
          AND n.nspname NOT LIKE 'pg\_toast%' AND n.nspname NOT LIKE 'pg\_temp%'""")
    return dict((k, int(v)) for k, v in (line.rsplit('=', 1) for line in out.splitlines() if line))
