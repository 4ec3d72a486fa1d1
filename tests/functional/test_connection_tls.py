# -*- coding: utf-8 -*-
"""TLS to a remote server, as community.postgresql users expect it: a server with ssl=on whose pg_hba.conf refuses
every connection without TLS, a throwaway CA, a server certificate for localhost, and a client certificate for
certificate authentication. The connection options (ssl_mode, ca_cert, ssl_cert, ssl_key) reach every client
tool of a backup and a verified restore; a wrong CA is refused; login_port is the option, port its alias."""
from __future__ import absolute_import, division, print_function

import os
import pwd
import shutil
import subprocess
import tempfile

import pytest

from conftest import free_port, pg_bin


def openssl(*args):
    subprocess.run(['openssl'] + list(args), check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def make_ca(directory, name):
    key, crt = os.path.join(directory, name + '.key'), os.path.join(directory, name + '.crt')
    openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=%s' % name,
            '-keyout', key, '-out', crt)
    return key, crt


def sign(directory, name, ca, subject, san=None):
    key, csr, crt = (os.path.join(directory, name + ext) for ext in ('.key', '.csr', '.crt'))
    openssl('req', '-newkey', 'rsa:2048', '-nodes', '-subj', subject, '-keyout', key, '-out', csr)
    ext = os.path.join(directory, name + '.ext')
    with open(ext, 'w') as f:
        f.write('subjectAltName=%s\n' % san if san else 'basicConstraints=CA:FALSE\n')
    openssl('x509', '-req', '-in', csr, '-CA', ca[1], '-CAkey', ca[0], '-CAcreateserial', '-days', '2',
            '-extfile', ext, '-out', crt)
    os.chmod(key, 0o600)
    return key, crt


@pytest.fixture(scope='module')
def tls_server():
    base = tempfile.mkdtemp(prefix='pgops-tls-')
    os.chmod(base, 0o755)
    certs = os.path.join(base, 'certs')
    os.makedirs(certs)
    ca = make_ca(certs, 'ca')
    other_ca = make_ca(certs, 'other-ca')
    server = sign(certs, 'server', ca, '/CN=localhost', san='DNS:localhost,IP:127.0.0.1')
    client = sign(certs, 'client', ca, '/CN=certuser')
    data, sock = os.path.join(base, 'data'), os.path.join(base, 'sock')
    os.makedirs(sock)
    as_user = []
    if os.geteuid() == 0:
        pw = pwd.getpwnam('postgres')
        for path in (base, sock, server[0], server[1]):
            os.chown(path, pw.pw_uid, pw.pw_gid)
        as_user = ['runuser', '-u', 'postgres', '--']
    subprocess.run(as_user + [pg_bin('initdb'), '-D', data, '-U', 'postgres', '--auth=trust', '-E', 'UTF8',
                              '--locale=C.UTF-8'], check=True, stdout=subprocess.DEVNULL)
    # TLS or nothing over TCP; the client certificate of certuser is its only credential
    with open(os.path.join(data, 'pg_hba.conf'), 'w') as f:
        f.write('local all all trust\n'
                'hostssl all certuser 127.0.0.1/32 cert\n'
                'hostssl all all 127.0.0.1/32 trust\n'
                'host all all 127.0.0.1/32 reject\n')
    port = free_port()
    subprocess.run(as_user + [pg_bin('pg_ctl'), '-D', data, '-l', os.path.join(base, 'log'), '-w', '-o',
                              '-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off -c ssl=on -c log_connections=on '
                              '-c ssl_cert_file=%s -c ssl_key_file=%s -c ssl_ca_file=%s'
                              % (port, sock, server[1], server[0], ca[1]), 'start'],
                   check=True, stdout=subprocess.DEVNULL)

    def psql(sql, db='postgres'):
        return subprocess.run([pg_bin('psql'), '-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-h', sock, '-p',
                               str(port), '-U', 'postgres', '-d', db, '-c', sql],
                              check=True, stdout=subprocess.PIPE, universal_newlines=True).stdout.strip()
    psql('CREATE ROLE certuser LOGIN SUPERUSER')
    psql('CREATE DATABASE tls_prod')
    psql('CREATE TABLE items AS SELECT g AS id, md5(g::text) AS sku FROM generate_series(1, 500) g', 'tls_prod')
    try:
        yield dict(port=port, ca=ca[1], other_ca=other_ca[1], client=client, psql=psql, log=os.path.join(base, 'log'))
    finally:
        subprocess.run(as_user + [pg_bin('pg_ctl'), '-D', data, '-m', 'immediate', 'stop'],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        shutil.rmtree(base, ignore_errors=True)


def tls(server, **extra):
    return dict(dict(login_host='localhost', login_port=server['port'], login_user='postgres',
                     ssl_mode='verify-full', ca_cert=server['ca']), **extra)


def test_backup_and_verified_restore_over_verified_tls(tls_server, run_module, dest):
    backup = run_module('pg_backup', dict(tls(tls_server), databases=['tls_prod'], dest=dest))
    assert not backup.get('failed'), backup
    b, g = backup['backups']          # the globals dump went over TLS too
    assert b['status'] == g['status'] == 'success' and g['scope'] == 'globals'
    restored = run_module('pg_restore_verified', dict(tls(tls_server), path=dest, database='tls_prod',
                                                      backup_id=b['id'], mode='test'))
    assert not restored.get('failed') and restored['result'] == 'passed', restored
    # the server refuses TCP without TLS (pg_hba.conf), and logged the TLS sessions of the dump and the restore
    with open(tls_server['log']) as f:
        authorized = [line for line in f if 'connection authorized' in line and 'application_name=pgops' in line]
    assert authorized and all('SSL enabled' in line for line in authorized), authorized


def test_without_tls_the_server_refuses_and_says_so(tls_server, run_module, dest):
    result = run_module('pg_backup', dict(tls(tls_server, ssl_mode='disable'), databases=['tls_prod'],
                                          dest=dest))
    assert result.get('failed')
    assert 'no encryption' in result['msg'] or 'rejects connection' in result['msg'], result['msg']


def test_a_server_certificate_from_another_ca_is_refused(tls_server, run_module, dest):
    result = run_module('pg_backup', dict(tls(tls_server, ca_cert=tls_server['other_ca']), databases=['tls_prod'],
                                          dest=dest))
    assert result.get('failed') and 'certificate verify failed' in result['msg'], result['msg']
    assert not [n for n in os.listdir(dest) if n.endswith('.sql.gz') or n.endswith('.dump')] \
        if os.path.isdir(dest) else True


def test_client_certificate_authentication(tls_server, run_module, dest):
    key, crt = tls_server['client']
    result = run_module('pg_backup', dict(tls(tls_server, login_user='certuser', ssl_cert=crt, ssl_key=key),
                                          databases=['tls_prod'], dest=dest))
    assert not result.get('failed') and result['backups'][0]['status'] == 'success', result
    # without its certificate, certuser has no way in
    refused = run_module('pg_backup', dict(tls(tls_server, login_user='certuser'), databases=['tls_prod'],
                                           dest=dest))
    assert refused.get('failed') and 'requires a valid client certificate' in refused['msg'], refused['msg']


def test_port_is_an_alias_of_login_port_and_a_key_needs_its_certificate(tls_server, run_module, dest):
    args = tls(tls_server)
    args['port'] = args.pop('login_port')
    assert not run_module('pg_backup', dict(args, databases=['tls_prod'], dest=dest)).get('failed')
    result = run_module('pg_backup', dict(tls(tls_server, ssl_key=tls_server['client'][0]), databases=['tls_prod'],
                                          dest=dest))
    assert result.get('failed') and 'ssl_key needs ssl_cert' in result['msg'], result
