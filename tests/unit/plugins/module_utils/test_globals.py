# -*- coding: utf-8 -*-
"""The reading of a globals dump (pg_dumpall --globals-only): statements, role statements, the creation plan."""
from __future__ import absolute_import, division, print_function

import pytest

from ansible_collections.pgops.postgresql.plugins.module_utils._globals import (
    GlobalsScript, secrets_of, split_statements, tablespace_statements, unquote,
)

DUMP = r'''--
-- PostgreSQL database cluster dump
--

\restrict abc
SET default_transaction_read_only = off;
SET standard_conforming_strings = on;

--
-- Roles
--

CREATE ROLE app_group;
ALTER ROLE app_group WITH NOSUPERUSER INHERIT NOCREATEROLE NOCREATEDB NOLOGIN NOREPLICATION NOBYPASSRLS;
CREATE ROLE "Odd ""Role""";
ALTER ROLE "Odd ""Role""" WITH NOSUPERUSER INHERIT NOCREATEROLE NOCREATEDB LOGIN NOREPLICATION NOBYPASSRLS CONNECTION LIMIT 7;
CREATE ROLE power;
ALTER ROLE power WITH SUPERUSER INHERIT NOCREATEROLE NOCREATEDB NOLOGIN REPLICATION BYPASSRLS PASSWORD 'SCRAM-SHA-256$4096:x;SUPERUSER''y';
CREATE ROLE reader;
ALTER ROLE reader WITH NOSUPERUSER INHERIT NOCREATEROLE NOCREATEDB NOLOGIN NOREPLICATION NOBYPASSRLS;
COMMENT ON ROLE reader IS 'reads;
everything';
ALTER ROLE reader SET search_path TO 'app', 'public';

--
-- Role memberships
--

GRANT app_group TO reader WITH INHERIT TRUE GRANTED BY postgres;
GRANT app_group TO "Odd ""Role""" GRANTED BY postgres;

CREATE TABLESPACE fast OWNER postgres LOCATION '/srv/fast';
'''


def test_statements_keep_literals_and_quoted_names_whole_and_drop_comments_and_meta_commands():
    st = split_statements(DUMP)
    assert st[0] == 'SET default_transaction_read_only = off'
    assert "COMMENT ON ROLE reader IS 'reads;\neverything'" in st
    assert 'CREATE ROLE "Odd ""Role"""' in st
    assert not [s for s in st if s.startswith(('--', '\\'))]


@pytest.mark.parametrize('bad', ["CREATE ROLE a; COMMENT ON ROLE a IS 'open", 'CREATE ROLE "open'])
def test_an_unterminated_literal_is_an_error(bad):
    with pytest.raises(ValueError):
        split_statements(bad)


@pytest.mark.parametrize('ident, name', [('reader', 'reader'), ('"Odd ""Role"""', 'Odd "Role"'), ('"a;b"', 'a;b')])
def test_unquote(ident, name):
    assert unquote(ident) == name


def test_plan_creates_the_missing_roles_with_their_groups_and_without_privileges():
    script = GlobalsScript(DUMP)
    create, statements, dropped, absent = script.plan(['power', 'reader', 'ghost'], existing=['postgres'])
    assert create == ['app_group', 'power', 'reader'] and absent == ['ghost']
    assert statements[:3] == ['CREATE ROLE app_group', 'CREATE ROLE power', 'CREATE ROLE reader']
    power = [s for s in statements if s.startswith('ALTER ROLE power WITH')][0]
    assert ' NOSUPERUSER ' in power and ' NOREPLICATION ' in power and ' NOBYPASSRLS ' in power
    assert "x;SUPERUSER''y'" in power                     # the password literal is not touched
    assert dropped == {'power': ['BYPASSRLS', 'REPLICATION', 'SUPERUSER']}
    assert 'GRANT app_group TO reader WITH INHERIT TRUE' in statements     # GRANTED BY left out
    assert not [s for s in statements if 'Odd' in s]                       # not needed, not created
    assert not [s for s in statements if 'TABLESPACE' in s]
    assert statements.index('GRANT app_group TO reader WITH INHERIT TRUE') > statements.index('CREATE ROLE reader')


def test_privileged_words_in_quoted_names_are_names():
    script = GlobalsScript('CREATE ROLE "SUPERUSER fan";\nALTER ROLE "SUPERUSER fan" WITH SUPERUSER LOGIN;\n')
    dummy, statements, dropped, dummy2 = script.plan(['SUPERUSER fan'], existing=[])
    assert statements == ['CREATE ROLE "SUPERUSER fan"', 'ALTER ROLE "SUPERUSER fan" WITH NOSUPERUSER LOGIN']
    assert dropped == {'SUPERUSER fan': ['SUPERUSER']}


def test_an_existing_role_is_never_altered_nor_given_memberships():
    create, statements, dummy, absent = GlobalsScript(DUMP).plan(['power'], existing=['postgres', 'reader'])
    assert create == ['power'] and not absent
    assert not [s for s in statements if 'reader' in s]


def test_the_passwords_of_the_statements_are_secrets():
    dummy, statements, dummy2, dummy3 = GlobalsScript(DUMP).plan(['power'], existing=[])
    assert secrets_of(statements) == ["SCRAM-SHA-256$4096:x;SUPERUSER'y"]


TABLESPACES = r'''--
-- Tablespaces
--

CREATE TABLESPACE ts_hot OWNER app LOCATION '/srv/pg/hot';
CREATE TABLESPACE "Cold; ""Archive""" OWNER postgres LOCATION '/srv/it''s cold';
ALTER TABLESPACE ts_hot SET (random_page_cost='1.1');
'''


def test_the_tablespaces_of_a_globals_dump_are_read_in_order():
    assert GlobalsScript(TABLESPACES).tablespaces == ['ts_hot', 'Cold; "Archive"']
    assert GlobalsScript(DUMP).tablespaces == ['fast']


def test_tablespaces_are_mapped_to_new_locations_without_their_owners():
    names = GlobalsScript(TABLESPACES).tablespaces
    assert tablespace_statements(names, lambda n: '/tmp/i/%d' % names.index(n)) == [
        'CREATE TABLESPACE "ts_hot" LOCATION \'/tmp/i/0\'',
        'CREATE TABLESPACE "Cold; ""Archive""" LOCATION \'/tmp/i/1\'',
    ]
