"""Following a topic: /follow, /following, /unfollow; after a refresh that added articles, one
message per user with the new cited excerpts for their topics (searched among the new articles only,
by meaning, with the engine's abstention), never the same article twice for a topic; the store on
SQLite and PostgreSQL; the `paths` filter in both index stores; the CLI."""
from __future__ import annotations

import asyncio
import json
import logging
import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from bot import cli
from bot.follows import MAX_TOPICS, FollowRefused
from bot.handlers import app_state, scheduled_refresh
from index.config import Settings
from index.engine import Engine
from index.news.fetch import FetchPolicy
from index.news.newsdesk import Newsdesk
from index.store.interface import ChunkFilter

from .conftest import write_corpus
from .fake_telegram import FakeTelegram
from .test_bot import ADMIN, ALICE, GROUP, answer_text, message, run, running_bot

BOB = 1002

TRAM = ("Council approves tram extension", "The city council voted on Tuesday to expand the tram network to the "
        "northern districts. The first section, from the central station to the university hospital, is expected "
        "to open in 2029.")
COPPER = ("Copper hits a record high", "Copper prices rose to a record 11,000 dollars a tonne on Monday after "
          "strikes at two Chilean mines cut output. Traders expect the metal to stay expensive while the mines "
          "are closed.")
FOOTBALL = ("United beat City in derby", "Manchester United beat City 2-1 in the derby on Sunday, with a late goal "
            "from their captain. The win lifts United to third place in the league.")
HARBOUR = ("Harbour works begin in spring", "Dredging of the old harbour begins in April so that larger ferries can "
           "dock. The port authority said the works will cost 40 million euros and last two years.")
COPPER_AGAIN = ("Copper falls as mines reopen", "Copper prices fell 6 percent on Thursday after the two Chilean mines "
                "reopened and the strike ended with a wage deal. The metal now trades at 10,300 dollars a tonne.")


def article(title: str, body: str, published: str = "2026-03-05") -> str:
    return json.dumps({"title": title, "text": body, "published": published, "source": "Wire"}) + "\n"


# -- a news site whose feed grows during the test ----------------------------------------------------


class _Site(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        site = self.server.site
        base = f"http://127.0.0.1:{self.server.server_port}"
        if self.path == "/rss":
            items = "".join(f"<item><title>{site[k][0]}</title><link>{base}/{k}</link><guid>{k}</guid></item>"
                            for k in site)
            body = (f'<?xml version="1.0"?><rss version="2.0"><channel><title>Wire</title><link>{base}/</link>'
                    f"<description>d</description>{items}</channel></rss>").encode()
            ctype = "application/rss+xml"
        elif self.path.lstrip("/") in site:
            title, text = site[self.path.lstrip("/")]
            paragraphs = "".join(f"<p>{s.strip()}.</p>" for s in text.split(". ") if s.strip())
            body = (f"<!doctype html><html><head><title>{title}</title><meta property='og:site_name' content='Wire'>"
                    "<meta property='article:published_time' content='2026-03-05T08:00:00Z'></head><body><article>"
                    f"<h1>{title}</h1>{paragraphs}</article></body></html>").encode()
            ctype = "text/html; charset=utf-8"
        else:
            self.send_response(404)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@contextmanager
def news_site(**articles):
    """(server, base): server.site is {slug: (title, text)}, in the feed in that order; add to it to publish."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Site)
    httpd.site = dict(articles)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield httpd, f"http://127.0.0.1:{httpd.server_port}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def alerts_to(fake: FakeTelegram, chat_id: int) -> list[dict]:
    return [c for c in fake.sent("sendMessage") if c["chat_id"] == chat_id and "New on the topics" in c["text"]]


# -- the store, on SQLite and PostgreSQL ---------------------------------------------------------------


def test_follows_are_numbered_capped_and_removed_by_number(backend):
    store = backend.follows()
    assert store.list(ALICE) == []
    first = store.add(ALICE, "  copper   prices ")
    assert first.topic == "copper prices" and store.list(ALICE) == [first]
    with pytest.raises(FollowRefused, match="already follow “copper prices”"):
        store.add(ALICE, "Copper Prices")
    with pytest.raises(FollowRefused, match="at least 3 characters"):
        store.add(ALICE, "ab")
    with pytest.raises(FollowRefused, match="at most 200 characters"):
        store.add(ALICE, "x" * 201)
    for i in range(2, MAX_TOPICS + 1):
        store.add(ALICE, f"topic number {i}")
    with pytest.raises(FollowRefused, match=f"already follow {MAX_TOPICS} topics"):
        store.add(ALICE, "one too many")
    assert len(store.list(ALICE)) == MAX_TOPICS and store.add(BOB, "one too many").user_id == BOB, "caps are per user"
    removed = store.remove(ALICE, 2)
    assert removed.topic == "topic number 2"
    assert [f.topic for f in store.list(ALICE)][:3] == ["copper prices", "topic number 3", "topic number 4"]
    assert store.remove(ALICE, 0) is None and store.remove(ALICE, MAX_TOPICS) is None
    store.add(ALICE, "one more fits again")
    store.close()


def test_new_articles_are_queued_per_follower_taken_once_and_sent_once_per_topic(backend):
    store = backend.follows()
    copper = store.add(ALICE, "copper prices")
    store.add(BOB, "football")
    assert store.queue([]) == 0 and store.waiting(10) == []
    assert store.queue(["a.json", "b.json", "a.json"]) == 2
    assert sorted(store.waiting(10)) == [ALICE, BOB] and len(store.waiting(1)) == 1
    assert sorted(store.take(ALICE)) == ["a.json", "b.json"] and store.take(ALICE) == [], "taken once"
    assert store.waiting(10) == [BOB]
    assert store.unsent(copper.id, ["d1", "d2", "d1"]) == ["d1", "d2"]
    store.mark_sent(copper.id, ["d1"])
    store.mark_sent(copper.id, ["d1"])  # twice is once
    assert store.unsent(copper.id, ["d1", "d2"]) == ["d2"]

    # A user who blocked the bot is paused: nothing queued for them until they come back.
    assert store.pause(BOB) == 1 and store.waiting(10) == []
    store.queue(["c.json"])
    assert store.waiting(10) == [ALICE]
    assert store.resume(BOB) == 1
    store.queue(["d.json"])
    assert sorted(store.waiting(10)) == [ALICE, BOB]

    # Unfollowing the last topic drops the queue; a topic followed again starts with nothing sent.
    store.remove(ALICE, 1)
    assert store.waiting(10) == [BOB]
    again = store.add(ALICE, "copper prices")
    assert store.unsent(again.id, ["d1"]) == ["d1"]
    store.close()


# -- the paths filter, in the file index and in PostgreSQL ----------------------------------------------


@pytest.mark.parametrize("where", ["files", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_the_paths_filter_searches_only_those_files_articles(where, tmp_path, embedder, request):
    corpus = write_corpus(tmp_path / "corpus", {"tram.json": article(*TRAM), "news/copper.json": article(*COPPER),
                                                "news/football.json": article(*FOOTBALL)})
    url = request.getfixturevalue("new_database")() if where == "postgres" else ""
    engine = Engine(Settings(data_dir=tmp_path / "data", corpus_dir=corpus, database_url=url), embedder)
    engine.build()
    view = engine.snapshot
    both = ChunkFilter(paths=("news/copper.json", "news/football.json"))
    assert view.count(both) == 2 and view.count(ChunkFilter(paths=("tram.json",))) == 1
    assert view.count(ChunkFilter(paths=("gone.json",))) == 0 and view.count(ChunkFilter()) == 3
    vector = np.random.default_rng(0).standard_normal(view.manifest["dim"]).astype(np.float32)
    hits = view.dense(vector / np.linalg.norm(vector), 5, both)
    assert {r.path for r in view.chunks([i for i, _ in hits]).values()} == {"news/copper.json", "news/football.json"}
    assert view.count(ChunkFilter(paths=("news/copper.json",), since="2026-03-06")) == 0, "with other filters: AND"

    answer = engine.ask("copper prices", within_paths=("news/copper.json", "news/football.json"))
    assert not answer.abstained and answer.citations[0].title == COPPER[0]
    assert engine.ask("When will the first tram section open?", within_paths=both.paths).abstained
    # A followed topic is not a question: the article is on "Chilean mines" though the reader, asked it as
    # a question, doubts it (0.07); a topic the articles are not about is still refused.
    on_topic = engine.ask("Chilean mines", within_paths=both.paths, topic=True)
    assert not on_topic.abstained and on_topic.citations[0].title == COPPER[0]
    assert engine.ask("elections in France", within_paths=both.paths, topic=True).abstained
    assert not engine.ask("When will the first tram section open?", within_paths=("tram.json",)).abstained


# -- the bot, end to end --------------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["files", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_a_follower_gets_one_message_citing_only_the_new_matching_article_and_never_twice(
        where, tmp_path, embedder, monkeypatch, caplog, request):
    """On the file index with follows.sqlite, then with the index, feeds and follows in PostgreSQL."""
    monkeypatch.setenv("CITEBOT_FETCH_ALLOW_PRIVATE", "1")
    corpus = write_corpus(tmp_path / "corpus", {"tram.json": article(*TRAM)})
    url = request.getfixturevalue("new_database")() if where == "postgres" else ""
    engine = Engine(Settings(data_dir=tmp_path / "data", corpus_dir=corpus, database_url=url), embedder)
    engine.build()

    async def say(fake, text, uid=ALICE, chat_id=None):
        m = message(text, chat_id=chat_id or uid, uid=uid)
        fake.push(message=m)
        (reply,) = await fake.wait_for(lambda: fake.replies_to(chat_id or uid, m["message_id"]), what=text)
        return answer_text(reply)

    async def refreshed(fake, app):
        """The admin's /refresh, until its result is edited in."""
        before = len(fake.sent("editMessageText"))
        await say(fake, "/refresh", uid=ADMIN)
        await fake.wait_for(lambda: len(fake.sent("editMessageText")) > before, what="the refresh's result")
        await asyncio.sleep(0.5)  # the alerts go after the result, in the same handler
        while app_state(app).alerting.locked():
            await asyncio.sleep(0.1)

    async def scenario(site, base):
        with FakeTelegram() as fake:
            async with running_bot(fake, engine, refresh_minutes=0) as app:
                assert "Following “copper prices”" in await say(fake, "/follow copper prices")
                assert "Following “Chilean mines”" in await say(fake, "/follow Chilean mines")
                assert "Following" in await say(fake, "/follow elections in France", uid=BOB)
                state = app_state(app)
                assert type(state.follows).__name__ == ("PostgresFollowStore" if url else "SqliteFollowStore")
                await asyncio.to_thread(Newsdesk(engine, FetchPolicy(allow_private=True, timeout_s=5),
                                                 database=state.database).add_feed, f"{base}/rss")

                # A refresh brings a copper story and a football report: one message, only the copper one.
                site.update(copper=COPPER, football=FOOTBALL)
                await refreshed(fake, app)
                (alert,) = alerts_to(fake, ALICE)
                text = answer_text(alert)
                assert COPPER[0] in text and "11,000 dollars" in text
                assert FOOTBALL[0] not in text and "derby" not in text
                assert "<b>copper prices</b>" in alert["text"] and "<b>Chilean mines</b>" in alert["text"], \
                    "both topics, in the one message"
                assert alerts_to(fake, BOB) == [], "a topic nothing matched sends nothing"

                # A refresh with nothing on copper, then one that finds nothing new: nothing sent.
                site.update(harbour=HARBOUR)
                await refreshed(fake, app)
                await refreshed(fake, app)
                # The copper article offered again (as if re-added): it was sent for these topics already.
                await asyncio.to_thread(state.follows.queue, ["fetched/" + p.relative_to(corpus / "fetched").as_posix()
                                                              for p in (corpus / "fetched").rglob("*.json")])
                await refreshed(fake, app)
                assert len(alerts_to(fake, ALICE)) == 1 and alerts_to(fake, BOB) == []

                # The scheduled refresh sends alerts too: a new copper story, the earlier one not repeated.
                site.update(again=COPPER_AGAIN)
                app.job_queue.run_once(scheduled_refresh, 0)
                second = (await fake.wait_for(lambda: alerts_to(fake, ALICE)[1:], what="the second alert"))[0]
                assert COPPER_AGAIN[0] in answer_text(second) and COPPER[0] not in answer_text(second)

                # A user who blocked the bot: their follows are paused, with a log line.
                fake.blocked.add(ALICE)
                site.update(third=("Copper smelter opens", "A new copper smelter opened in Zambia on Friday as "
                                   "copper prices stayed high, adding 300,000 tonnes a year of capacity."))
                with caplog.at_level(logging.INFO, logger="bot.alerts"):
                    app.job_queue.run_once(scheduled_refresh, 0)
                    await fake.wait_for(lambda: [r for r in caplog.records if "are paused" in r.getMessage()],
                                        what="the pause")
                await asyncio.sleep(0.3)
                assert state.follows.waiting(10) == [] and len(alerts_to(fake, ALICE)) == 2
                # Coming back (/following) resumes them.
                fake.blocked.clear()
                assert "1. copper prices" in await say(fake, "/following")

    with news_site() as (server, base):
        run(scenario(server.site, base))


def test_following_unfollow_the_eleventh_topic_and_groups(sample_engine):
    user = 5005

    async def scenario():
        with FakeTelegram() as fake:
            async with running_bot(fake, sample_engine):
                async def say(text, chat_id=user):
                    m = message(text, chat_id=chat_id, uid=user)
                    fake.push(message=m)
                    (reply,) = await fake.wait_for(lambda: fake.replies_to(chat_id, m["message_id"]), what=text)
                    return answer_text(reply)

                assert "You follow no topics yet" in await say("/following")
                assert "like: /follow copper prices" in await say("/follow")
                assert "at least 3 characters" in await say("/follow eu")
                for i in range(1, MAX_TOPICS + 1):
                    assert "Following" in await say(f"/follow topic {i}")
                assert await say("/follow one more") == \
                    f"You already follow {MAX_TOPICS} topics, the most I keep; /unfollow one first."
                listed = await say("/following")
                assert f"You follow {MAX_TOPICS} of at most {MAX_TOPICS} topics" in listed
                assert "1. topic 1\n2. topic 2" in listed and "10. topic 10" in listed
                assert await say("/unfollow 2") == "No longer following “topic 2”."
                assert "2. topic 3" in await say("/following")
                assert "no topic number 12" in await say("/unfollow 12")
                assert "like: /unfollow 2" in await say("/unfollow two")
                assert "Following “one more”" in await say("/follow one more")
                for command in ("/follow copper prices", "/following", "/unfollow 1"):
                    assert await say(command, chat_id=GROUP) == \
                        "I follow topics in a private chat only: message me directly and send /follow TOPIC there."
                commands = [c["command"] for c in fake.sent("setMyCommands")[0]["commands"]]
                assert {"follow", "following", "unfollow"} <= set(commands)

    run(scenario())


# -- the CLI --------------------------------------------------------------------------------------------


def test_the_cli_follows_as_the_console_user_and_refresh_prints_its_matches(tmp_path, embedder, monkeypatch, capsys):
    corpus = write_corpus(tmp_path / "corpus", {"tram.json": article(*TRAM)})
    data = tmp_path / "data"
    monkeypatch.setenv("CITEBOT_CORPUS_DIR", str(corpus))
    monkeypatch.setenv("CITEBOT_FETCH_ALLOW_PRIVATE", "1")
    monkeypatch.delenv("CITEBOT_DATABASE_URL", raising=False)
    monkeypatch.setattr(cli, "_engine", lambda args: Engine(cli._settings(args), embedder))
    Engine(Settings(data_dir=data, corpus_dir=corpus), embedder).build()

    def citebot(*args):
        code = cli.main([*args, "--data-dir", str(data), "-q"])
        out = capsys.readouterr()
        return code, out.out, out.err

    assert citebot("follow", "list")[1] == "You follow no topics yet: citebot follow add TOPIC\n"
    code, out, _ = citebot("follow", "add", "copper", "prices")
    assert code == 0 and out.startswith("Following “copper prices” (1 of at most 10)")
    citebot("follow", "add", "school holidays")
    assert citebot("follow", "add", "ab")[2] == "citebot: A topic needs at least 3 characters, like: /follow copper prices\n"
    assert citebot("follow", "list")[1] == "1. copper prices\n2. school holidays\n"
    assert citebot("follow", "remove", "2")[1] == "No longer following “school holidays”.\n"
    code, _, err = citebot("follow", "remove", "5")
    assert code == 2 and "no topic number 5" in err
    assert citebot("follow", "list")[1] == "1. copper prices\n"

    with news_site(tram=TRAM) as (server, base):
        Newsdesk(Engine(Settings(data_dir=data, corpus_dir=corpus), embedder),
                 FetchPolicy(allow_private=True, timeout_s=5)).add_feed(f"{base}/rss")
        server.site.update(copper=COPPER, football=FOOTBALL)
        code, out, err = citebot("refresh")
        assert code == 0, err
        head, _, alerts = out.partition("\n\nNew on “copper prices”:\n")
        assert "2 new articles" in head
        assert COPPER[0] in alerts and "11,000 dollars" in alerts and FOOTBALL[0] not in alerts
        code, out, _ = citebot("refresh", "--json")
        assert json.loads(out)["alerts"] == [], "nothing new: nothing printed again"
    with pytest.raises(SystemExit):
        cli.main(["follow", "--help"])
    assert "`follow add TOPIC` follows a topic" in " ".join(capsys.readouterr().out.split())


def test_a_delivery_pass_sends_at_most_its_cap_and_the_rest_wait_for_the_next(tmp_path, monkeypatch):
    from telegram.error import NetworkError

    from bot import alerts
    from bot.follows import SqliteFollowStore
    from index.read.answer import Citation

    store = SqliteFollowStore(tmp_path / "follows.sqlite")
    users = [2001, 2002, 2003]
    for uid in users:
        store.add(uid, "copper prices")
    store.queue(["news/copper.json"])
    cited = Citation(rank=1, excerpt="Copper rose.", score=1.0, similarity=0.7, title="Copper", source="Wire", url="",
                     published="2026-03-05", doc_id="d1", chunk_id="d1:0", char_start=0, char_end=12)
    monkeypatch.setattr(alerts, "find_alerts", lambda engine, store, uid, paths, cache=None: [
        alerts.Alert(f, (cited,)) for f in store.list(uid) if paths])

    class Bot:
        def __init__(self, failing=()):
            self.sent, self.failing = [], set(failing)

        async def send_message(self, chat_id, text):
            if chat_id in self.failing:
                raise NetworkError("connection reset")
            self.sent.append(chat_id)

    bot = Bot(failing={2003})
    first = run(alerts.deliver(bot, None, store, max_messages=1))
    assert (bot.sent, first.sent, first.left) == ([2001], 1, 2), "one message; two users wait"
    second = run(alerts.deliver(bot, None, store, max_messages=5))
    assert bot.sent == [2001, 2002] and second.left == 1, "the one whose send failed is queued again, once"
    bot.failing.clear()
    run(alerts.deliver(bot, None, store, max_messages=5))
    assert bot.sent == [2001, 2002, 2003] and store.waiting(10) == []
    store.close()
