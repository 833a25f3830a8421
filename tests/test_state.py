"""The bot's state behind its interfaces, once in SQLite and once in PostgreSQL (the `backend`
fixture): the memory of answers and votes, the rate limits, the feeds; then what only a shared
database gives, two replicas seeing one state; then the bot itself, end to end, on PostgreSQL."""
from __future__ import annotations

import json
import logging
import threading
import time
from types import SimpleNamespace

import pytest

from bot import history as history_module
from bot.history import HistoryUnavailable, PostgresHistory, SqliteHistory, open_history
from bot.ratelimit import PostgresRateLimiter, UserRateLimiter, Verdict, make_limiter
from index.config import Settings
from index.errors import ConfigurationError
from index.news.feeds import PostgresFeedStore, SqliteFeedStore, open_feed_store
from index.news.newsdesk import Newsdesk
from index.store.database import Database, DatabaseError, describe

CITED = ({"doc_id": "d1", "title": "Summit"}, {"doc_id": "d2", "title": "Battlegroups"},
         {"doc_id": "d3", "title": "Eastern flank"}, {"doc_id": "d4", "title": "Aftermath"})


# -- the memory: the same tests for both stores ---------------------------------------------------------


def test_an_answer_is_remembered_with_its_citations_and_the_messages_that_carried_it(backend):
    history = backend.history()
    qid = history.remember("How many battlegroups?", CITED, 3)
    assert len(qid) == 12 and history.question(qid) == "How many battlegroups?"
    assert history.recall(qid) == history_module.Remembered(qid, "How many battlegroups?", CITED, 3)
    history.sent(qid, 1001, [10, 11])
    history.sent(qid, 1001, [11])  # recorded twice (a retried call): still one row, still this answer
    assert history.answer_to(1001, 11).qid == qid and history.answer_to(1001, 10).shown == 3
    assert history.answer_to(1001, 12) is None and history.answer_to(1002, 10) is None
    assert history.recall("forgotten") is None and history.question("forgotten") is None
    later = history.remember("Where?", CITED[:1], 1)
    history.sent(later, 1001, [11])  # the same message id for another answer: the later one wins
    assert history.answer_to(1001, 11).qid == later
    history.close()


def test_a_vote_counts_once_per_voter_and_a_second_replaces_the_first(backend):
    history = backend.history()
    qid = history.remember("Who won?", CITED[:1], 1)
    assert history.vote(qid, 42, True, "private") and history.vote(qid, 42, False, "private")
    assert history.vote(qid, 43, True, "group") and not history.vote("forgotten", 42, True, "private")
    report = history.report()
    assert (report["votes_up"], report["votes_down"]) == (1, 1)
    history.close()


def test_the_report_counts_questions_abstentions_and_the_questions_most_often_missed(backend):
    history = backend.history()
    for question, abstained in [("What's the capital of PERU?!", True), ("what is the capital of peru", True),
                                ("What's the capital of Peru", True), ("How many battlegroups?", False)]:
        history.log(question, "private", abstained)
    report = history.report(7)
    assert (report["questions_24h"], report["questions"], report["abstention_rate"]) == (4, 4, 0.75)
    assert report["top_abstained"][0] == {"question": "what s the capital of peru", "times": 2}
    assert history.report(7, now=time.time() + 8 * 86400)["questions"] == 0, "outside the period"
    history.close()


def test_without_question_logging_no_question_text_is_kept(backend):
    history = backend.history(log_questions=False)
    history.log("What is the capital of Peru?", "private", True)
    qid = history.remember("What is the capital of Peru?")
    history.vote(qid, 1, False, "private")
    report = history.report()
    assert report["questions"] == 1 and report["top_abstained"] == [] and not report["logging_questions"]
    if backend.postgres:
        with history.db.connection() as conn:
            rows = conn.execute("SELECT question FROM bot_asked UNION ALL SELECT question FROM bot_votes").fetchall()
    else:
        rows = list(history._db.execute("SELECT question FROM asked UNION ALL SELECT question FROM votes"))
    assert rows == [(None,), (None,)]
    history.close()


def test_old_answers_and_old_log_lines_are_forgotten(backend, monkeypatch):
    history = backend.history(history_days=7, log_days=30)
    now = time.time()
    monkeypatch.setattr(history_module, "_now", lambda: now - 8 * 86400)
    old = history.remember("Old question", CITED[:1], 1)
    history.sent(old, 1001, [5])
    history.vote(old, 42, True, "private")
    history.log("Old question", "private", False)
    monkeypatch.setattr(history_module, "_now", lambda: now)
    new = history.remember("New question", CITED[:1], 1)
    history.prune()
    assert history.recall(old) is None and history.answer_to(1001, 5) is None and history.recall(new)
    report = history.report(30)
    assert report["questions"] == 1 and report["votes_up"] == 1, "the log and votes are kept 30 days"
    monkeypatch.setattr(history_module, "_now", lambda: now + 31 * 86400)
    history.prune()
    assert history.report(30, now=now + 31 * 86400)["questions"] == 0
    history.close()


# -- rate limits: the same tests for both stores ---------------------------------------------------------


def test_a_flooding_user_is_told_once_then_ignored_until_the_window_passes(backend):
    now = [6000.0]  # a window's start: in PostgreSQL windows are fixed, here that is the same
    limiter = backend.limiter(2, 60, clock=lambda: now[0])
    assert [limiter.check(7) for _ in range(4)] == [Verdict.ALLOW, Verdict.ALLOW, Verdict.NOTIFY, Verdict.SILENT]
    assert limiter.check(8) is Verdict.ALLOW, "limits are per user"
    assert limiter.retry_in(7) == 60 and limiter.retry_in(8) == 0
    now[0] += 60.0
    assert limiter.check(7) is Verdict.ALLOW and limiter.retry_in(7) == 0


def test_each_kind_of_request_has_a_budget_of_its_own(pg_backend):
    backend = pg_backend
    now = [6000.0]
    questions = backend.limiter(1, 60, clock=lambda: now[0], scope="questions")
    more = backend.limiter(1, 60, clock=lambda: now[0], scope="more")
    assert questions.check(7) is Verdict.ALLOW and more.check(7) is Verdict.ALLOW
    assert questions.check(7) is Verdict.NOTIFY


# -- feeds: the tests of tests/test_feeds.py take `backend` too; here what the store itself keeps ---------


def test_a_feeds_fetch_state_and_items_are_kept(backend):
    with backend.feed_store() as store:
        assert store.add("https://example.com/rss", "Example") and store.get("https://example.com/rss").title == "Example"
        store.record_fetch("https://example.com/rss", etag='"v1"', last_modified="", items=5, new=2, error="",
                           title="Example news", fetched_at="2026-03-01T08:00:00+00:00")
        store.record_fetch("https://example.com/rss", etag='"v1"', last_modified="", items=None, new=0,
                           error="The feed did not answer.", fetched_at="2026-03-01T09:00:00+00:00")
        (feed,) = store.list()
        assert (feed.title, feed.last_items, feed.last_new, feed.items_at) == (
            "Example news", 5, 2, "2026-03-01T08:00:00+00:00")
        assert (feed.last_status, feed.last_error, feed.error_at) == (
            "failed", "The feed did not answer.", "2026-03-01T09:00:00+00:00")
        store.remember(["https://example.com/a#top", "https://example.com/a?utm=x"], feed.url,
                       "https://example.com/a", "hash-a", "fetched/a.json")
        assert store.known("https://example.com/a") and store.known("https://example.com/a?utm=x")
        assert store.known_hash("hash-a") and not store.known_hash("hash-b") and not store.known("https://x.org/")
        assert [store.failed("https://example.com/b", "404") for _ in range(3)] == [1, 2, 3]
        assert store.tries("https://example.com/b") == 3 and store.tries("https://example.com/c") == 0
        assert store.remove(feed.url) and store.list() == []


def test_the_settings_choose_the_store(tmp_path, database_url):
    assert isinstance(open_feed_store(Settings(data_dir=tmp_path)), SqliteFeedStore)
    assert isinstance(open_history(tmp_path), SqliteHistory)
    assert isinstance(make_limiter("questions", 3, 60), UserRateLimiter)
    settings = Settings(data_dir=tmp_path, database_url=database_url)
    assert isinstance(open_feed_store(settings), PostgresFeedStore)
    assert isinstance(open_history(tmp_path, database_url), PostgresHistory)
    assert isinstance(make_limiter("questions", 3, 60, Database.shared(database_url)), PostgresRateLimiter)
    assert "database_url" not in repr(settings) and settings.database_url.split("@")[0] not in repr(settings)
    Database.close_shared()


def test_a_database_setting_that_is_no_postgresql_address_is_refused_without_its_value():
    with pytest.raises(ConfigurationError) as raised:
        Settings(database_url="mysql://root:hunter2@db/citebot")
    assert "hunter2" not in str(raised.value) and "must be a postgresql:// address" in str(raised.value)


# -- two replicas on one database ------------------------------------------------------------------------


def test_votes_count_once_across_two_replicas_and_a_more_press_is_answered_by_the_other(pg_backend):
    backend = pg_backend
    first, second = backend.history(), backend.history()  # two pools, as two processes would have
    qid = first.remember("How many battlegroups?", CITED, 3)
    first.sent(qid, 1001, [77])
    assert second.question(qid) == "How many battlegroups?", "a More press on the other replica"
    assert second.answer_to(1001, 77).citations == CITED, "a follow-up reply on the other replica"
    assert first.vote(qid, 42, True, "private") and second.vote(qid, 42, True, "private")
    assert second.vote(qid, 42, False, "private"), "a changed mind, on the other replica"
    assert first.report()["votes_up"] == 0 and first.report()["votes_down"] == 1
    assert first.voter(42) == second.voter(42), "one salt for every replica"


def test_a_user_flooding_two_replicas_is_limited_across_both(pg_backend):
    backend = pg_backend
    now = [6000.0]
    one, two = backend.limiter(3, 60, clock=lambda: now[0]), backend.limiter(3, 60, clock=lambda: now[0])
    verdicts = [(one if n % 2 else two).check(7) for n in range(6)]
    assert verdicts == [Verdict.ALLOW] * 3 + [Verdict.NOTIFY, Verdict.SILENT, Verdict.SILENT]
    assert one.retry_in(7) == two.retry_in(7) == 60
    # At once, from many threads on both: exactly the limit gets through, and one refusal is told.
    now[0] = 9000.0
    got: list[Verdict] = []
    lock = threading.Lock()

    def ask(limiter):
        verdict = limiter.check(8)
        with lock:
            got.append(verdict)

    threads = [threading.Thread(target=ask, args=(one if n % 2 else two,)) for n in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert got.count(Verdict.ALLOW) == 3 and got.count(Verdict.NOTIFY) == 1 and got.count(Verdict.SILENT) == 16


def test_an_item_one_replica_took_is_known_to_the_other(pg_backend):
    backend = pg_backend
    with backend.feed_store() as first, backend.feed_store() as second:
        first.add("https://example.com/rss")
        first.remember("https://example.com/a", "https://example.com/rss", "https://example.com/a", "h", "a.json")
        assert second.known("https://example.com/a") and [f.url for f in second.list()] == ["https://example.com/rss"]


def test_one_scheduled_refresh_across_replicas(backend, tmp_path):
    settings = Settings(data_dir=tmp_path, database_url=backend.url)
    first = Newsdesk(SimpleNamespace(settings=settings))
    second = Newsdesk(SimpleNamespace(settings=settings), database=backend.database() if backend.postgres else None)
    with first.exclusive("refresh") as mine:
        assert mine
        with second.exclusive("refresh") as also:
            assert also is (not backend.postgres), "with files every process refreshes, as before replicas"
    if backend.postgres:
        with first.exclusive("refresh") as mine:
            assert second.refresh_if_free(build=False) is None, "the other replica skips its turn"
        report = second.refresh_if_free(build=False)  # free again: no feeds, nothing fetched
        assert report is not None and report.refresh.feeds == 0
    Database.close_shared()


# -- failures -------------------------------------------------------------------------------------------


def test_a_memory_that_cannot_be_written_is_one_sentence(tmp_path, monkeypatch):
    import sqlite3

    history = SqliteHistory(tmp_path / "bot.sqlite")

    class Full:
        def execute(self, *args):
            raise sqlite3.OperationalError("database or disk is full")

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    history._db = Full()
    with pytest.raises(HistoryUnavailable, match=r"cannot be used just now \(database or disk is full\)"):
        history.remember("Who won?")


def test_a_limiter_whose_database_is_gone_lets_questions_through_and_says_so_once(postgres_server, caplog):
    from index.store.local_postgres import LocalPostgres

    with LocalPostgres() as own:
        url = own.create_database("limits")
        db = Database(url, timeout=0.5).open()
        limiter = PostgresRateLimiter(db, "questions", 1, 60)
        assert limiter.check(7) is Verdict.ALLOW and limiter.check(7) is Verdict.NOTIFY
        own.stop()
        with caplog.at_level(logging.WARNING):
            assert [limiter.check(7) for _ in range(3)] == [Verdict.ALLOW] * 3
            assert limiter.retry_in(7) == 0
        said = [r.getMessage() for r in caplog.records if r.name == "bot.ratelimit"]
        assert len(said) == 1 and said[0].startswith("Rate limits are not applied while the database cannot be used:")
        db.close()


# -- the bot on PostgreSQL, end to end -------------------------------------------------------------------


def _engine_on(database_url: str, sample_engine, folder, build: bool = True):
    """An engine over the sample corpus whose index and bot state are in the database (built there
    unless an earlier engine, another replica, did)."""
    from index.engine import Engine

    engine = Engine(Settings(data_dir=folder / "data", corpus_dir=sample_engine.settings.corpus_dir,
                             database_url=database_url), sample_engine.embedder)
    if build:
        engine.build()
    return engine


def test_a_replica_pages_follows_up_and_counts_votes_on_an_answer_another_replica_gave(sample_engine, new_database, tmp_path):
    from .fake_telegram import FakeTelegram
    from .test_bot import ALICE, answer_text, message, run, running_bot, user

    url = new_database()
    first_engine = _engine_on(url, sample_engine, tmp_path / "one")
    second_engine = _engine_on(url, sample_engine, tmp_path / "two", build=False)  # the same index

    async def scenario():
        with FakeTelegram() as fake:
            async with running_bot(fake, first_engine):
                asked = message("How many new battlegroups did NATO agree to deploy?")
                fake.push(message=asked)
                (answer,) = await fake.wait_for(lambda: fake.replies_to(ALICE, asked["message_id"]))
                sent = fake.messages[(ALICE, max(m for c, m in fake.messages if c == ALICE))]
                row = answer["reply_markup"]["inline_keyboard"][0]
                assert [b["text"] for b in row] == ["👍", "👎", "More ›"]
            # That replica is gone; the other one takes the buttons and the replies to its answer.
            async with running_bot(fake, second_engine):
                chat = {**sent, "chat": {"id": ALICE, "type": "private"}}
                fake.push(callback_query={"id": "m1", "from": user(ALICE), "chat_instance": "ci",
                                          "data": row[2]["callback_data"], "message": chat})
                (edit,) = await fake.wait_for(lambda: fake.sent("editMessageText"))
                assert answer_text(edit).startswith("4."), "More pages the first replica's answer"
                where = message("Where?", reply_to_message={**sent, "from": fake.bot_user})
                fake.push(message=where)
                (reply,) = await fake.wait_for(lambda: fake.replies_to(ALICE, where["message_id"]))
                assert 'searched as "Where? new battlegroups NATO agree deploy"' in answer_text(reply)
                for i, button in enumerate((row[0], row[0], row[1])):
                    fake.push(callback_query={"id": f"v{i}", "from": user(ALICE), "chat_instance": "ci",
                                              "data": button["callback_data"], "message": chat})
                    await fake.wait_for(lambda: len([c for c in fake.sent("answerCallbackQuery")
                                                     if c.get("text") == "Thanks!"]) == i + 1)

    run(scenario())
    db = Database(url).open()
    try:
        with db.connection() as conn:
            assert conn.execute("SELECT vote FROM bot_votes").fetchall() == [(-1,)], "one voter, one vote: the last"
            assert conn.execute("SELECT count(*) FROM bot_asked").fetchone() == (2,)
    finally:
        db.close()


def test_an_answer_goes_out_even_when_the_memory_cannot_be_written(sample_engine, new_database, tmp_path,
                                                                    monkeypatch, caplog):
    from bot.handlers import app_state

    from .fake_telegram import FakeTelegram
    from .test_bot import ALICE, answer_text, message, run, running_bot

    engine = _engine_on(new_database(), sample_engine, tmp_path)

    def lost(*args, **kwargs):
        raise DatabaseError("The database at somewhere did not complete a change (terminating connection due to "
                            "administrator command); nothing of it was written, and the next try connects again.")

    async def scenario():
        with FakeTelegram() as fake:
            async with running_bot(fake, engine) as app:
                history = app_state(app).history
                monkeypatch.setattr(history, "remember", lost)
                monkeypatch.setattr(history, "log", lost)
                asked = message("How many new battlegroups did NATO agree to deploy?")
                fake.push(message=asked)
                (answer,) = await fake.wait_for(lambda: fake.replies_to(ALICE, asked["message_id"]))
                assert "Bulgaria" in answer_text(answer) or "Slovakia" in answer_text(answer)
                assert "reply_markup" not in answer, "no buttons: nothing remembered to page or vote on"

    with caplog.at_level(logging.WARNING):
        run(scenario())
    assert any("An answer goes without its buttons" in r.getMessage() for r in caplog.records)
    assert not any(r.levelno >= logging.ERROR for r in caplog.records), "no apology, no traceback"


def test_the_bot_does_not_start_on_a_database_it_cannot_use(sample_engine, postgres_server, database_url, tmp_path):
    from bot.app import build_application
    from bot.config import BotConfig

    wrong = database_url.replace(postgres_server.password, "wrong-password")
    engine = _engine_on(wrong, sample_engine, tmp_path, build=False)
    with pytest.raises(DatabaseError) as raised:
        build_application(BotConfig(token="123:abc"), engine)
    assert str(raised.value).startswith(f"The database at {describe(wrong)} refused the login of postgres")
    assert "wrong-password" not in str(raised.value)
    assert json.dumps(str(raised.value))  # one line
