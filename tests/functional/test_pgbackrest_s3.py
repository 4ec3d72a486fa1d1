# -*- coding: utf-8 -*-
"""pgBackRest (the host's 2.45) with an S3 repository: the same local object store as the off-site tests
(SeaweedFS, plain HTTP on loopback, tests/functional/s3server.py) behind a TLS terminator (stunnel4 with a
throwaway CA, tests/functional/tlsproxy.py), repository encryption on (aes-256-cbc) and repo1-bundle=y.

Proven: stanza-create, WAL archived into S3 (pg_switch_wal + check), a full backup that ``info`` then shows, the
objects in the bucket are ciphertext, no secret ever on a command line; and what bundling buys for a small full
backup (timings printed, run pytest with -s to see them).
"""
from __future__ import absolute_import, division, print_function

import json
import os
import subprocess
import time
import uuid

import pytest

from conftest import argv_while_running
from pgbackrest_cluster import CIPHER_ENV, PgBackRestCluster, pgbackrest_bin
from s3server import ACCESS_KEY, SECRET_KEY, S3Server
from tlsproxy import TlsProxy

BUCKET = 'pgops-pgbackrest'
CIPHER_PASS = 'pgops-Cipher-pass-7c1e-not-on-argv'


@pytest.fixture(scope='module')
def s3_tls():
    """SeaweedFS with the bucket, and stunnel in front of it: (server, proxy)."""
    server = S3Server().start()
    try:
        server.client().create_bucket(Bucket=BUCKET)
        proxy = TlsProxy(int(server.endpoint.rsplit(':', 1)[1])).start()
        try:
            yield server, proxy
        finally:
            proxy.stop()
    finally:
        server.stop()


def s3_options(proxy, path, bundle='y'):
    """repo1 on S3 through the terminator (endpoint localhost: the name in the certificate)."""
    return {
        'repo1-type': 's3', 'repo1-path': path, 'repo1-s3-bucket': BUCKET, 'repo1-s3-endpoint': 'localhost',
        'repo1-s3-region': 'us-east-1', 'repo1-s3-uri-style': 'path', 'repo1-storage-port': str(proxy.port),
        'repo1-storage-ca-file': proxy.ca_file, 'repo1-s3-key': ACCESS_KEY, 'repo1-s3-key-secret': SECRET_KEY,
        'repo1-bundle': bundle, 'repo1-retention-full': '4', 'compress-type': 'zst',
    }


@pytest.fixture
def s3_cluster(s3_tls):
    """A PG15 cluster archiving into an encrypted, bundled S3 repository of its own (a fresh repo1-path)."""
    server, proxy = s3_tls
    path = '/pgbackrest-%s' % uuid.uuid4().hex[:8]
    cluster = PgBackRestCluster(cipher_pass=CIPHER_PASS, global_options=s3_options(proxy, path),
                                prefix='pgops-pgbr-s3-')
    try:
        cluster.init()
        cluster.start()
        yield cluster, server, path
    finally:
        cluster.destroy()


def timed_pgbackrest(cluster, *args):
    """``pgbackrest ARGS`` as the cluster's user, sampling every command line while it runs; (seconds, argvs)."""
    argv = cluster.as_user() + [pgbackrest_bin(), '--stanza=%s' % cluster.stanza, '--config=%s' % cluster.config]
    start = time.time()
    proc = subprocess.Popen(argv + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=cluster.env())
    seen = argv_while_running(proc)
    out, err = proc.communicate()
    assert proc.returncode == 0, (args, out, err)
    return time.time() - start, seen


def assert_no_secret(seen):
    for cmdline in seen:
        for secret in (SECRET_KEY, CIPHER_PASS):
            assert secret.encode() not in cmdline, cmdline


def test_encrypted_bundled_s3_repository_through_tls(s3_cluster):
    cluster, server, path = s3_cluster
    cluster.psql('postgres', 'CREATE TABLE t AS SELECT g AS i, md5(g::text) AS v FROM generate_series(1, 20000) g')

    seconds_create, seen = timed_pgbackrest(cluster, 'stanza-create')
    assert_no_secret(seen)
    seconds_check, seen = timed_pgbackrest(cluster, 'check')   # archive-push of a switched segment, into S3
    assert_no_secret(seen)
    segment = cluster.switch_wal()                            # archive_command (as the server runs it) works
    seconds_full, seen = timed_pgbackrest(cluster, '--type=full', 'backup')
    assert_no_secret(seen)

    info = cluster.info()
    assert info['status']['code'] == 0, info['status']
    assert info['cipher'] == 'aes-256-cbc'
    assert [b['type'] for b in info['backup']] == ['full']
    archive = info['archive'][0]
    assert archive['min'] <= segment <= archive['max'], (segment, archive)

    # the repository is in the bucket, bundled (few objects) and encrypted (openssl "Salted__" ciphertext)
    client = server.client()
    keys = [o['Key'] for page in client.get_paginator('list_objects_v2').paginate(
        Bucket=BUCKET, Prefix=path.lstrip('/') + '/') for o in page.get('Contents', [])]
    label = info['backup'][0]['label']
    assert any('/bundle/' in k for k in keys if label in k), keys
    backup_info = client.get_object(Bucket=BUCKET, Key='%s/backup/%s/backup.info' % (path.lstrip('/'),
                                                                                     cluster.stanza))['Body'].read()
    assert backup_info.startswith(b'Salted__'), backup_info[:40]
    wal = [k for k in keys if '/archive/' in k and os.path.basename(k).startswith(segment)]
    assert wal, (segment, keys)
    assert client.get_object(Bucket=BUCKET, Key=wal[0])['Body'].read().startswith(b'Salted__')

    # without the passphrase the repository is unreadable
    # (bytes, strict=False: pgBackRest 2.45 puts what the wrong key "decrypted" into its JSON message, raw: control
    # characters and bytes that are not UTF-8)
    proc = subprocess.run(cluster.as_user() + [pgbackrest_bin(), '--stanza=%s' % cluster.stanza,
                                               '--config=%s' % cluster.config, '--output=json', 'info'],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=cluster.env({CIPHER_ENV: 'wrong'}),
                          check=False)
    status = json.loads(proc.stdout.decode('utf-8', 'replace'), strict=False)[0]['status']
    assert status['code'] != 0 and info['backup'][0]['label'] not in proc.stdout.decode('utf-8', 'replace')
    sizes = info['backup'][0]['info']
    print('\nS3 through stunnel (encrypted, bundled): stanza-create %.1f s, check %.1f s, full backup of %.0f MB '
          '%.1f s (%.1f MB in the repository)'
          % (seconds_create, seconds_check, sizes['size'] / 1e6, seconds_full, sizes['repository']['size'] / 1e6))


def test_bundle_makes_small_full_backups_fast(s3_cluster):
    """The same small cluster backed up in full without and with repo1-bundle (issue 14: 23 s -> 2.2 s)."""
    cluster, _server, _path = s3_cluster
    cluster.psql('postgres', 'CREATE TABLE t AS SELECT g AS i FROM generate_series(1, 1000) g')
    timed_pgbackrest(cluster, 'stanza-create')
    unbundled, _seen = timed_pgbackrest(cluster, '--type=full', '--repo1-bundle=n', 'backup')
    bundled, _seen = timed_pgbackrest(cluster, '--type=full', '--repo1-bundle=y', 'backup')
    print('\nsmall full backup to S3 through stunnel: repo1-bundle=n %.1f s, repo1-bundle=y %.1f s (x%.1f)'
          % (unbundled, bundled, unbundled / max(bundled, 0.001)))
    assert [b['type'] for b in cluster.info()['backup']] == ['full', 'full']
    assert bundled < unbundled, (bundled, unbundled)
