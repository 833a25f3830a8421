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


# -- citebot db init | import | status ------------------------------------------------------------------


def _citebot(capsys, *argv) -> tuple[int, str, str]:
    from bot.cli import main

    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def test_db_init_twice_is_a_no_op_and_says_the_version(new_database, monkeypatch, capsys):
    url = new_database()
    monkeypatch.setenv("CITEBOT_DATABASE_URL", url)
    assert _citebot(capsys, "db", "init") == (0, f"{describe(url)}: schema version {latest_version()} (was empty).\n", "")
    assert _citebot(capsys, "db", "init") == (
        0, f"{describe(url)}: schema version {latest_version()}, up to date; nothing to do.\n", "")
    status, out, _ = _citebot(capsys, "db", "status", "--json")
    assert status == 0
    report = __import__("json").loads(out)
    assert report["schema_version"] == report["citebot_schema_version"] == latest_version()
    assert report["pgvector"].startswith("0.8") and report["rows"]["bot_answers"] == 0
    status, out, _ = _citebot(capsys, "db", "status")
    assert status == 0 and f"schema version:  {latest_version()} (up to date" in out


def test_db_commands_say_in_one_sentence_why_a_database_cannot_be_used(postgres_server, new_database, monkeypatch,
                                                                       capsys):
    monkeypatch.delenv("CITEBOT_DATABASE_URL", raising=False)
    status, out, err = _citebot(capsys, "db", "init")
    assert status == 2 and err.startswith("citebot: CITEBOT_DATABASE_URL is not set;") and len(err.splitlines()) == 1
    url = new_database()
    wrong = url.replace(postgres_server.password, "Wr0ng-pass")
    monkeypatch.setenv("CITEBOT_DATABASE_URL", wrong)
    status, out, err = _citebot(capsys, "db", "init")
    assert status == 2 and len(err.splitlines()) == 1 and "refused the login of postgres" in err
    assert "Wr0ng-pass" not in err + out and postgres_server.password not in err + out
    monkeypatch.setenv("CITEBOT_DATABASE_URL", url)
    _citebot(capsys, "db", "init")
    with connect(url) as conn:
        conn.execute("INSERT INTO schema_version (version, name) VALUES (%s, 'later')", (latest_version() + 1,))
        conn.commit()
    status, out, err = _citebot(capsys, "db", "init")
    assert status == 2 and err == (f"citebot: The database at {describe(url)} has schema version {latest_version() + 1}, "
                                   f"newer than this citebot knows ({latest_version()}); upgrade citebot, or point "
                                   "CITEBOT_DATABASE_URL at another database.\n")
    postgres_server.create_role("cli_owner", "cli-pw")
    plain = new_database(vector=False, owner="cli_owner")
    monkeypatch.setenv("CITEBOT_DATABASE_URL", plain.replace(f"postgres:{postgres_server.password}@", "cli_owner:cli-pw@"))
    status, out, err = _citebot(capsys, "db", "init")
    assert status == 2 and err == (f"citebot: The database at {describe(plain)} has no pgvector extension; run CREATE "
                                   "EXTENSION vector as its owner.\n")
    status, out, err = _citebot(capsys, "db", "status")
    assert status == 1 and "pgvector:        not installed in this database" in out


def _old_files(folder):
    """A bot.sqlite with answers, messages, votes and a question log, and a feeds.sqlite with feeds."""
    from bot.history import SqliteHistory
    from index.news.feeds import SqliteFeedStore

    history = SqliteHistory(folder / "bot.sqlite")
    qid = history.remember("How many battlegroups?", ({"doc_id": "d1", "title": "Summit"},), 1)
    history.sent(qid, 1001, [7, 8])
    history.vote(qid, 42, True, "private")
    history.vote(qid, 43, False, "group")
    for n in range(5):
        history.log(f"Question {n}?", "private", n % 2 == 0)
    history.close()
    with SqliteFeedStore(folder / "feeds.sqlite") as feeds:
        feeds.add("https://example.com/rss", "Example")
        feeds.add("https://example.org/atom")
        feeds.record_fetch("https://example.com/rss", etag='"v7"', last_modified="", items=3, new=3, error="",
                           fetched_at="2026-03-01T08:00:00+00:00")
        feeds.remember(["https://example.com/a", "https://example.com/a?x=1"], "https://example.com/rss",
                       "https://example.com/a", "hash-a", "fetched/example.com/a.json")
        feeds.failed("https://example.com/gone", "404")
    return qid


def test_db_import_copies_the_bots_files_and_a_second_import_adds_nothing(new_database, tmp_path, monkeypatch,
                                                                         capsys):
    from bot.history import PostgresHistory
    from index.news.feeds import PostgresFeedStore

    qid = _old_files(tmp_path)
    url = new_database()
    monkeypatch.setenv("CITEBOT_DATABASE_URL", url)
    status, out, err = _citebot(capsys, "--data-dir", str(tmp_path), "db", "import")
    assert status == 0, err
    where = describe(url)
    assert out.splitlines() == [
        f"bot.sqlite into {where}: added 1 of 1 answers, 2 of 2 sent messages, 2 of 2 votes, 5 of 5 questions logged "
        "(the rest were there already).",
        f"feeds.sqlite into {where}: added 2 of 2 feeds, 2 of 2 feed items, 1 of 1 feed failures (the rest were "
        "there already)."]
    status, out, err = _citebot(capsys, "--data-dir", str(tmp_path), "db", "import")
    assert status == 0 and out.splitlines()[0].startswith(f"bot.sqlite into {where}: added 0 of 1 answers, 0 of 2 sent "
                                                          "messages, 0 of 2 votes, 0 of 5 questions logged")
    assert "added 0 of 2 feeds, 0 of 2 feed items, 0 of 1 feed failures" in out.splitlines()[1]

    db = Database(url).open()
    try:
        history = PostgresHistory(db)
        assert history.answer_to(1001, 8).question == "How many battlegroups?"
        report = history.report()
        assert (report["questions"], report["votes_up"], report["votes_down"]) == (5, 1, 1)
        assert history.vote(qid, 42, False, "private"), "a voter of the old file votes again on the same answer"
        report = history.report()
        assert (report["votes_up"], report["votes_down"]) == (0, 2), "the vote was replaced, not added"
        feeds = PostgresFeedStore(db)
        states = {f.url: f for f in feeds.list()}
        assert states["https://example.com/rss"].etag == '"v7"' and states["https://example.com/rss"].last_items == 3
        assert feeds.known("https://example.com/a?x=1") and feeds.tries("https://example.com/gone") == 1
    finally:
        db.close()
    monkeypatch.setenv("CITEBOT_DATABASE_URL", url)
    status, out, _ = _citebot(capsys, "--data-dir", str(tmp_path / "elsewhere"), "report", "--json")
    assert status == 0 and __import__("json").loads(out)["questions"] == 5, "report reads the database"
    status, out, err = _citebot(capsys, "--data-dir", str(tmp_path / "elsewhere"), "db", "import")
    assert status == 2 and "nothing to import" in err


def test_db_help_is_complete(capsys):
    from bot.cli import main

    with pytest.raises(SystemExit):
        main(["db", "--help"])
    out = capsys.readouterr().out
    for words in ("citebot db init", "citebot db import", "citebot db status", "CITEBOT_DATABASE_URL", "pgvector",
                  "importing twice adds nothing", "--json"):
        assert words in out


# -- the local server itself ----------------------------------------------------------------------------

ORPHAN = """
import os, signal
from index.store.local_postgres import LocalPostgres
server = LocalPostgres().start()
print(server.folder, server.port, flush=True)
os.kill(os.getpid(), signal.SIGKILL)  # a test run killed: no finaliser, no atexit
"""


def test_a_temporary_server_goes_when_the_process_that_started_it_is_killed(postgres_server):
    import os
    import socket
    from pathlib import Path

    run = subprocess.run([sys.executable, "-c", ORPHAN], capture_output=True, text=True, timeout=120)
    folder, port = run.stdout.split()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and Path(folder).exists():
        time.sleep(0.5)
    assert not Path(folder).exists(), "the watchdog stopped the server and removed its folder"
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", int(port))) != 0, "nothing listens on its port any more"
    if hasattr(os, "geteuid") and os.geteuid() == 0:  # as root, the test server runs as another account
        with connect(postgres_server.url(), autocommit=True) as conn:
            directory = conn.execute("SHOW data_directory").fetchone()[0]
        assert os.stat(directory).st_uid != 0


def test_db_import_copies_followed_topics_and_digests_and_a_second_import_adds_nothing(new_database, tmp_path,
                                                                                      monkeypatch, capsys):
    from datetime import datetime, timezone

    from bot.digests import PostgresDigests, SqliteDigests
    from bot.follows import PostgresFollowStore, SqliteFollowStore

    follows = SqliteFollowStore(tmp_path / "follows.sqlite")
    copper = follows.add(7, "copper prices")
    follows.add(7, "Chilean mines")
    follows.mark_sent(copper.id, ["doc-1", "doc-2"])
    follows.queue(["fetched/new.json"])
    follows.close()
    digests = SqliteDigests(tmp_path / "digests.sqlite")
    digests.set(-100, "07:30", "Europe/Berlin")
    digests.sent(-100, datetime(2026, 12, 2, 6, 30, tzinfo=timezone.utc), ["doc-1"])
    url = new_database()
    monkeypatch.setenv("CITEBOT_DATABASE_URL", url)
    status, out, err = _citebot(capsys, "--data-dir", str(tmp_path), "db", "import")
    assert status == 0, err
    assert "follows.sqlite into" in out and "added 2 of 2 topics, 2 of 2 articles sent" in out
    assert "1 new article(s) waiting for their alerts were queued again." in out
    assert "digests.sqlite into" in out and "added 1 of 1 digests" in out
    status, out, err = _citebot(capsys, "--data-dir", str(tmp_path), "db", "import")
    assert "added 0 of 2 topics" in out and "added 0 of 1 digests" in out

    db = Database(url).open()
    try:
        store = PostgresFollowStore(db)
        topics = {f.topic: f for f in store.list(7)}
        assert set(topics) == {"copper prices", "Chilean mines"}
        assert store.unsent(topics["copper prices"].id, ["doc-1", "doc-3"]) == ["doc-3"], "sent stays sent"
        assert store.take(7) == ["fetched/new.json"]
        digest = PostgresDigests(db).get(-100)
        assert (digest.at, digest.tz, digest.last_docs) == ("07:30", "Europe/Berlin", ("doc-1",))
    finally:
        db.close()
