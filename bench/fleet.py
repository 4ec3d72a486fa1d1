#!/usr/bin/env python
# -*- coding: utf-8 -*-
"""A fleet in one run: N PostgreSQL containers (small seeded databases) backed up and drilled by one
playbooks/backup.yml and one playbooks/restore_drill.yml, with forks 1 and forks N.

One container is stopped and one is asked for a database it does not have, as in a real fleet: their hosts fail
with clear messages, the others are backed up and drilled. Reports the wall time of each run, the ratio of forks
N to forks 1, the hosts that failed, and the controller's peak memory (the largest resident set of the
ansible-playbook processes, from getrusage of the waited-for children). Ratios of one run on this machine; no
timed assertion anywhere. usage: bench/fleet.py [--servers 8] [--major 15] [--json out.json]
"""
from __future__ import absolute_import, division, print_function

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from container_restore import docker, free_port, image_for  # noqa: E402  pylint: disable=wrong-import-position
from run import REPO  # noqa: E402  pylint: disable=wrong-import-position

SEED = os.path.join(REPO, 'scripts', 'seed', 'pim.sql')


def start(name, image, port):
    docker('run', '-d', '--name', name, '--network', 'host', '--label', 'pgops.bench=fleet',
           '-e', 'POSTGRES_USER=pim_user', '-e', 'POSTGRES_HOST_AUTH_METHOD=trust', '-e', 'POSTGRES_DB=pim_dev',
           '-e', 'PGPORT=%d' % port, image, 'postgres')


def wait_ready(name, port):
    deadline = time.time() + 120
    while time.time() < deadline:
        ready = subprocess.run(['docker', 'exec', name, 'pg_isready', '-h', '127.0.0.1', '-p', str(port),
                                '-U', 'pim_user'], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        if ready.returncode == 0:
            return
        time.sleep(0.5)
    raise RuntimeError('%s is not ready' % name)


def seed(name):
    with open(SEED, 'rb') as f:
        subprocess.run(['docker', 'exec', '-i', name, 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-U', 'pim_user',
                        '-d', 'pim_dev'], stdin=f, check=True, stdout=subprocess.DEVNULL)


def inventory(path, hosts, backups):
    data = {'postgres_servers': {'hosts': {}, 'vars': {
        'ansible_connection': 'local', 'ansible_python_interpreter': sys.executable,
        'pgops_login_user': 'pim_user', 'pgops_databases': ['pim_dev']}}}
    for h in hosts:
        data['postgres_servers']['hosts'][h['host']] = {
            'pgops_container': h['container'], 'pgops_server': h['host'],
            'pgops_backup_dir': os.path.join(backups, h['host']),
            'pgops_databases': h.get('databases', ['pim_dev'])}
    with open(path, 'w') as f:
        json.dump(data, f)


def playbook(name, inv, forks, env):
    """(seconds, rc, hosts that failed) of one ansible-playbook run."""
    t = time.time()
    proc = subprocess.run([os.path.join(os.path.dirname(sys.executable), 'ansible-playbook'), '-i', inv,
                           '-f', str(forks), os.path.join(REPO, 'playbooks', name)], env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True, check=False)
    seconds = time.time() - t
    if 'PLAY RECAP' not in proc.stdout or 'no hosts matched' in proc.stdout:
        raise RuntimeError('%s played no host:\n%s' % (name, proc.stdout[-2000:]))
    failed = []
    recap = proc.stdout[proc.stdout.rfind('PLAY RECAP'):]
    for line in recap.splitlines()[1:]:
        parts = line.split()
        if len(parts) > 2 and parts[1] == ':':
            counts = dict(p.split('=') for p in parts[2:] if '=' in p)
            if int(counts.get('failed', 0)) or int(counts.get('unreachable', 0)):
                failed.append(parts[0])
    return seconds, proc.returncode, sorted(failed), proc.stdout


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n', maxsplit=1)[0])
    ap.add_argument('--servers', type=int, default=8)
    ap.add_argument('--major', type=int, default=15)
    ap.add_argument('--json')
    opts = ap.parse_args()
    image = image_for(opts.major)
    work = tempfile.mkdtemp(prefix='pgops-fleet-')
    backups = os.path.join(work, 'backups')
    hosts = []
    for i in range(opts.servers):
        hosts.append(dict(host='db%02d' % i, container='pgops-fleet-%d-%02d' % (os.getpid(), i), port=free_port()))
    hosts[-1]['databases'] = ['pim_dev', 'no_such_db']          # a host asked for a database it does not have
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=os.path.join(REPO, '.cache', 'collections'),
               ANSIBLE_FORCE_COLOR='0', ANSIBLE_HOST_KEY_CHECKING='False')
    results = dict(servers=opts.servers, image=image, runs=[])
    try:
        for h in hosts:
            start(h['container'], image, h['port'])
        for h in hosts:
            wait_ready(h['container'], h['port'])
            seed(h['container'])
        docker('stop', hosts[0]['container'])                     # a stopped server
        inv = os.path.join(work, 'inventory.json')
        inventory(inv, hosts, backups)
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        for forks in (1, opts.servers):
            for name in ('backup.yml', 'restore_drill.yml'):
                seconds, rc, failed, out = playbook(name, inv, forks, env)
                peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
                run = dict(playbook=name, forks=forks, seconds=round(seconds, 2), rc=rc, failed_hosts=failed,
                           peak_rss_mib=round(max(peak, before) / 1024.0, 1))
                results['runs'].append(run)
                print('%-18s forks %2d  %7.2f s  rc %d  failed: %s  peak RSS %s MiB'
                      % (name, forks, seconds, rc, ', '.join(failed) or '-', run['peak_rss_mib']), flush=True)
        by = dict(((r['playbook'], r['forks']), r['seconds']) for r in results['runs'])
        results['ratios'] = dict((name, round(by[(name, opts.servers)] / by[(name, 1)], 2))
                                 for name in ('backup.yml', 'restore_drill.yml'))
        ratios = results['ratios']
        print('forks %d / forks 1: backup %.2f, drill %.2f'
              % (opts.servers, ratios['backup.yml'], ratios['restore_drill.yml']))
    finally:
        for h in hosts:
            subprocess.run(['docker', 'rm', '-f', h['container']], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           check=False)
        shutil.rmtree(work, ignore_errors=True)
    if opts.json:
        with open(opts.json, 'w') as f:
            json.dump(results, f, indent=2)
    return 0


if __name__ == '__main__':
    sys.exit(main())
