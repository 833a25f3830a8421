"""The PostgreSQL foundation (index/store/database.py) against a real server: the schema's versions,
one sentence for each way a database cannot be used, transactions, and the advisory lock."""
from __future__ import annotations

import subprocess
import sys
import threading
import time

import psycopg
import pytest

from index.store.database import (MIGRATIONS, Database, DatabaseAuthFailed, DatabaseLost, DatabaseMissing,
                                  DatabaseUnreachable, Migration, NoPgvector, SchemaMismatch, connect, describe,
                                  latest_version, migrate, schema_version, validate_url)
from index.errors import ConfigurationError
from index.store.local_postgres import free_port

pytestmark = pytest.mark.postgres


def test_the_schema_is_created_once_and_a_second_init_changes_nothing(new_database):
    url = new_database(vector=False)  # created by the migration, as the superuser may
    assert migrate(url) == (0, latest_version())
    with connect(url) as conn:
        tables = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
        applied = conn.execute("SELECT version, applied_at FROM schema_version ORDER BY version").fetchall()
    assert {"schema_version", "bot_answers", "bot_votes", "rate_limits", "feeds", "feed_items"} <= tables
    assert migrate(url) == (latest_version(), latest_version())
    with connect(url) as conn:
        assert conn.execute("SELECT version, applied_at FROM schema_version ORDER BY version").fetchall() == applied
        assert conn.execute("SELECT extname FROM pg_extension WHERE extname = 'vector'").fetchone() == ("vector",)


def test_replicas_starting_at_once_migrate_once(new_database):
    url = new_database()
    results, errors = [], []

    def start():
        try:
            results.append(migrate(url))
        except Exception as exc:  # pragma: no cover - the assertion below shows it
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(results) == [(0, latest_version())] + [(latest_version(), latest_version())] * 3
    with connect(url) as conn:
        assert conn.execute("SELECT count(*) FROM schema_version").fetchone() == (latest_version(),)


def test_a_later_migration_is_one_more_entry_and_a_failing_one_leaves_nothing_half_done(new_database):
    url = new_database()
    migrate(url)
    bad = MIGRATIONS + [Migration(latest_version() + 1, "broken", "CREATE TABLE half (x int); SELECT 1/0;")]
    with pytest.raises(psycopg.errors.DivisionByZero):
        migrate(url, bad)
    with connect(url) as conn:
        assert schema_version(conn) == latest_version()
        assert conn.execute("SELECT to_regclass('half')").fetchone() == (None,), "all of a migration or none"
    good = MIGRATIONS + [Migration(latest_version() + 1, "more", "CREATE TABLE more_things (x int);")]
    assert migrate(url, good) == (latest_version(), latest_version() + 1)


def test_a_schema_newer_than_the_code_is_refused_with_one_sentence(new_database):
    url = new_database()
    migrate(url)
    with connect(url) as conn:
        conn.execute("INSERT INTO schema_version (version, name) VALUES (99, 'from the future')")
        conn.commit()
    where = describe(url)
    sentence = (f"The database at {where} has schema version 99, newer than this citebot knows ({latest_version()}); "
                "upgrade citebot, or point CITEBOT_DATABASE_URL at another database.")
    with pytest.raises(SchemaMismatch) as raised:
        migrate(url)
    assert str(raised.value) == sentence
    with pytest.raises(SchemaMismatch) as raised:
        Database(url).open()
    assert str(raised.value) == sentence


def test_a_schema_behind_the_code_is_migrated_or_named(new_database):
    url = new_database()
    with pytest.raises(SchemaMismatch, match=r"has schema version 0 and this citebot needs \d+; run `citebot db init`"):
        Database(url, migrate=False).open()
    db = Database(url).open()  # the bot's way: migrate when behind
    try:
        with db.transaction() as conn:
            assert schema_version(conn) == latest_version()
    finally:
        db.close()


def test_a_database_without_pgvector_gives_one_sentence(postgres_server, new_database):
    postgres_server.create_role("owner_without_vector", "s3cret-pw")
    plain = new_database(vector=False, owner="owner_without_vector")
    url = plain.replace(f"postgres:{postgres_server.password}@", "owner_without_vector:s3cret-pw@")
    sentence = f"The database at {describe(url)} has no pgvector extension; run CREATE EXTENSION vector as its owner."
    with pytest.raises(NoPgvector) as raised:  # not a superuser: it may not create the extension itself
        Database(url).open()
    assert str(raised.value) == sentence
    # A database whose extension was dropped after its schema was made: the same sentence.
    dropped = new_database()
    migrate(dropped)
    postgres_server.execute("DROP EXTENSION vector CASCADE", database=dropped.rsplit("/", 1)[1])
    with pytest.raises(NoPgvector, match="has no pgvector extension; run CREATE EXTENSION vector as its owner"):
        Database(dropped, migrate=False).open()
    with pytest.raises(NoPgvector):
        connect(dropped, vectors=True)


def test_a_wrong_password_gives_one_sentence_without_any_password(postgres_server, database_url):
    wrong = database_url.replace(postgres_server.password, "not-the-password-42")
    with pytest.raises(DatabaseAuthFailed) as raised:
        Database(wrong).open()
    message = str(raised.value)
    assert message == (f"The database at {describe(wrong)} refused the login of postgres (password authentication "
                       "failed for user \"postgres\"); check the user and password in CITEBOT_DATABASE_URL.")
    assert "not-the-password-42" not in message and postgres_server.password not in message
    assert "not-the-password-42" not in repr(Database(wrong))


def test_a_server_that_is_not_there_and_a_database_that_is_not_there(postgres_server):
    closed = f"postgresql://postgres:pw@127.0.0.1:{free_port()}/citebot"
    with pytest.raises(DatabaseUnreachable) as raised:
        connect(closed)
    assert str(raised.value) == (f"The database at {describe(closed)} cannot be reached (Connection refused); check "
                                 "that PostgreSQL is running there and that CITEBOT_DATABASE_URL names it.")
    with pytest.raises(DatabaseMissing) as raised:
        connect(postgres_server.url("no_such_db"))
    assert str(raised.value) == (f"The database no_such_db does not exist at 127.0.0.1:{postgres_server.port}; "
                                 "create it (CREATE DATABASE no_such_db) or correct CITEBOT_DATABASE_URL.")


def test_an_address_that_is_no_postgresql_url_is_a_setting_error_without_the_password():
    with pytest.raises(ConfigurationError, match=r"must be a postgresql:// address"):
        validate_url("mysql://root:hunter2@db/citebot")
    for unreadable in ("postgresql://root:hunter2@db/citebot?bogus=1", "postgresql://root:hunter2@[db/citebot"):
        with pytest.raises(ConfigurationError, match="is not an address PostgreSQL's client can read") as raised:
            validate_url(unreadable)
        assert "hunter2" not in str(raised.value)
    assert describe("postgresql://root:hunter2@db.example:6543/news") == "db.example:6543/news"


def test_a_connection_lost_mid_transaction_writes_nothing_and_the_next_call_reconnects(database_url):
    db = Database(database_url).open()
    try:
        with pytest.raises(DatabaseLost, match=r"did not complete a change \(.*\); nothing of it was written"):
            with db.transaction() as conn:
                conn.execute("INSERT INTO bot_meta VALUES ('lost-test', 'half')")
                with connect(database_url, autocommit=True) as other:  # the server ends this session
                    other.execute("SELECT pg_terminate_backend(%s)", (conn.info.backend_pid,))
                conn.execute("INSERT INTO bot_meta VALUES ('lost-test-2', 'other half')")
        with db.transaction() as conn:
            assert conn.execute("SELECT count(*) FROM bot_meta WHERE key LIKE 'lost-test%'").fetchone() == (0,)
    finally:
        db.close()


def test_a_server_gone_while_the_bot_runs_is_one_sentence(postgres_server):
    from index.store.local_postgres import LocalPostgres

    with LocalPostgres() as own:
        url = own.create_database("gone")
        db = Database(url, timeout=1).open()
        own.stop()
        began = time.monotonic()
        with pytest.raises(DatabaseUnreachable, match=r"cannot be reached \(no connection within 1 s\)"):
            with db.transaction() as conn:
                conn.execute("SELECT 1")
        assert time.monotonic() - began < 5
        db.close()


HOLD = """
import sys, time
from index.store.database import Database
with Database(sys.argv[1]).try_lock("citebot:refresh") as mine:
    print("held" if mine else "busy", flush=True)
    sys.stdin.readline()
"""


def test_only_one_of_two_processes_gets_the_refresh_lock(database_url):
    migrate(database_url)
    other = subprocess.Popen([sys.executable, "-c", HOLD, database_url], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    try:
        assert other.stdout.readline().strip() == "held"
        db = Database(database_url)
        with db.try_lock("citebot:refresh") as mine:
            assert not mine, "the other process holds it"
        with db.try_lock("citebot:other-work") as mine:
            assert mine, "locks are per name"
        other.stdin.write("\n")
        other.stdin.flush()
        assert other.wait(30) == 0
        with db.try_lock("citebot:refresh") as mine:
            assert mine, "released when the other process let go"
        with db.try_lock("citebot:refresh") as mine:
            assert mine, "and released by this one at the end of its block"
    finally:
        other.kill()
