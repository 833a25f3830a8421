"""Live news as an admin adds it: feeds, pages and files into the corpus and the index, from the
command line and from Telegram, against a local news site on 127.0.0.1."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from bot.app import build_application
from bot.config import BotConfig
from index.config import Settings
from index.engine import Engine
from index.errors import DiskFull, FetchError, UploadRefused
from index.news.feeds import FEEDS_FILE, SqliteFeedStore
from index.news.fetch import FetchPolicy
from index.news.newsdesk import DeskReport, Newsdesk, _upload_name

from .conftest import ROOT, SAMPLE_CORPUS, write_corpus
from .fake_telegram import FakeTelegram
from .news_server import articles_jsonl, news_server
from .test_bot import ADMIN, ALICE, answer_text, message, run, running_bot

TRAM = "When is the first section of the tram line expected to open?"
ALLOW = FetchPolicy(allow_private=True, timeout_s=5)


@pytest.fixture(scope="module")
def news():
    with news_server() as running:
        yield running


@pytest.fixture(scope="module")
def site(news):
    return news[1]


def citebot_env(data_dir, corpus_dir, private: bool = True, **settings: str) -> dict:
    env = {**os.environ, "CITEBOT_DATA_DIR": str(data_dir), "CITEBOT_CORPUS_DIR": str(corpus_dir), **settings}
    env.pop("TELEGRAM_BOT_TOKEN", None)
    env.pop("CITEBOT_FETCH_ALLOW_PRIVATE", None)
    if private:
        env["CITEBOT_FETCH_ALLOW_PRIVATE"] = "1"
    return env


def citebot(*args: str, data_dir, corpus_dir, private: bool = True, timeout: int = 300,
            **settings: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bot.cli", "-q", *args], cwd=ROOT,
                          env=citebot_env(data_dir, corpus_dir, private, **settings),
                          capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


# -- pure logic ----------------------------------------------------------------------------------

@pytest.mark.parametrize("name, safe", [
    ("story.txt", "story.txt"),
    ("../../etc/passwd.md", "passwd.md"),
    ("C:\\Users\\me\\Report 2026.HTML", "Report-2026.html"),
    ("..json", "upload.json"),
])
def test_an_uploaded_file_name_cannot_leave_the_uploads_folder(name, safe):
    assert _upload_name(name) == safe


def test_the_file_address_sits_next_to_the_bot_api():
    assert BotConfig().file_url == "https://api.telegram.org/file/bot"
    assert BotConfig(api_url="http://127.0.0.1:8081/bot").file_url == "http://127.0.0.1:8081/file/bot"


def test_a_report_says_what_was_added_and_what_failed():
    report = DeskReport(added=["fetched/site/2026-03-03-tram.json"], errors=[("https://x/y", "404 Not Found.")])
    assert report.summary().splitlines() == ["Added 1 article: fetched/site/2026-03-03-tram.json",
                                             "https://x/y: 404 Not Found."]
    assert DeskReport().summary() == "Nothing to do."


@pytest.mark.parametrize("name, data, says", [
    ("photo.png", b"\x89PNG", "ending in"),
    ("empty.txt", b"   ", "empty"),
    ("binary.txt", bytes(range(256)) * 10, "cannot be read"),
    ("big.txt", b"x" * (20 * 2**20 + 1), "20 MB"),
])
def test_an_unusable_upload_is_refused_in_one_sentence_and_leaves_nothing(tmp_path, name, data, says):
    desk = Newsdesk(Engine(Settings(data_dir=tmp_path / "data", corpus_dir=tmp_path / "corpus")), ALLOW)
    with pytest.raises(UploadRefused, match=says):
        desk.add_file(name, data, build=False)
    assert not list((tmp_path / "corpus").rglob("*.*"))


def test_an_upload_over_the_article_limit_is_refused_at_once_and_one_within_it_is_counted(tmp_path):
    settings = Settings(data_dir=tmp_path / "data", corpus_dir=tmp_path / "corpus", max_upload_articles=1000)
    desk = Newsdesk(Engine(settings), ALLOW)
    huge = articles_jsonl(200_000)
    assert 15 * 2**20 < len(huge) < 20 * 2**20
    began = time.monotonic()
    with pytest.raises(UploadRefused) as refused:
        desk.add_file("archive.jsonl", huge, build=False)
    assert str(refused.value) == ("'archive.jsonl' holds 200,000 articles; uploads of up to 1,000 are taken "
                                  "(CITEBOT_MAX_UPLOAD_ARTICLES): split it, or put it in the corpus folder and "
                                  "run `citebot build`.")
    assert time.monotonic() - began < 30, "counted, not cleaned article by article"
    assert not list((tmp_path / "corpus").rglob("*.jsonl")), "nothing is left of it"
    report = desk.add_file("week.jsonl", articles_jsonl(30), build=False)
    assert report.summary() == "Added 30 articles from uploads/week.jsonl"
    assert report.to_json()["articles"] == 30


def test_the_desk_takes_at_most_the_configured_items_from_a_feed_and_says_so(tmp_path, site):
    settings = Settings(data_dir=tmp_path / "data", corpus_dir=tmp_path / "corpus", max_feed_items=3)
    report = Newsdesk(Engine(settings), ALLOW).add_feed(site + "/many?n=50", build=False)
    assert len(report.added) == 3 and report.refresh.waiting == 47
    assert report.summary().splitlines()[0] == ("1 feed, 50 items, 3 new articles, 0 errors; 47 more new items wait "
                                                "for the next refreshes (at most 3 a feed each time: "
                                                "CITEBOT_MAX_FEED_ITEMS).")


def test_a_page_that_is_not_a_feed_is_not_kept(tmp_path, site):
    desk = Newsdesk(Engine(Settings(data_dir=tmp_path / "data", corpus_dir=tmp_path / "corpus")), ALLOW)
    with pytest.raises(FetchError, match="not an RSS or Atom feed"):
        desk.add_feed(site + "/bad-feed", build=False)
    with pytest.raises(FetchError, match="404"):
        desk.add_feed(site + "/nothing-here", build=False)
    assert desk.feeds() == []


# -- the command line ----------------------------------------------------------------------------

@pytest.mark.parametrize("command", [["add", "/a3", "--no-build"], ["feed", "add", "/rss", "--no-build"]])
def test_a_refused_address_is_said_in_one_sentence_and_nothing_else(tmp_path, site, command):
    args = [site + a if a.startswith("/") else a for a in command]
    refused = citebot(*args, data_dir=tmp_path / "data", corpus_dir=tmp_path / "corpus", private=False)
    assert refused.returncode == 2
    assert refused.stderr.splitlines() == [f"citebot: {site}{command[-2]} is refused: 127.0.0.1 is a private or "
                                           "local address (set CITEBOT_FETCH_ALLOW_PRIVATE=1 to allow it)."]


def test_a_feed_add_killed_while_the_feed_drips_keeps_no_feed_and_refresh_does_not_hang(tmp_path, news):
    httpd, site = news
    corpus, data = tmp_path / "corpus", tmp_path / "data"
    drip = f"{site}/drip?head=25&kind=feed&n=killed"
    adding = subprocess.Popen([sys.executable, "-m", "bot.cli", "-q", "feed", "add", drip, "--no-build"], cwd=ROOT,
                              env=citebot_env(data, corpus), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        waited = time.monotonic()
        while drip.removeprefix(site) not in httpd.paths and time.monotonic() - waited < 60:
            time.sleep(0.1)
        assert drip.removeprefix(site) in httpd.paths, "the feed was never asked for"
        time.sleep(0.5)  # well inside the feed's first fetch
    finally:
        adding.kill()
        adding.wait()
    assert "No feeds yet" in citebot("feed", "list", data_dir=data, corpus_dir=corpus).stdout

    # A feed that turned slow after it was added (as one kept by an older version) costs one deadline.
    with SqliteFeedStore(data / FEEDS_FILE) as store:
        store.add(f"{site}/drip?head=25&kind=feed&n=kept")
        store.add(site + "/rss")
    began = time.monotonic()
    refreshed = citebot("refresh", "--no-build", data_dir=data, corpus_dir=corpus, timeout=60,
                        CITEBOT_FETCH_TIMEOUT="1")
    assert time.monotonic() - began < 15
    assert refreshed.returncode == 0, refreshed.stderr
    assert "2 feeds, 2 items, 2 new articles, 1 error" in refreshed.stdout
    assert "did not answer within 1 s" in refreshed.stdout


@pytest.mark.model
def test_feeds_and_pages_from_the_command_line_reach_the_answers(tmp_path, site):
    corpus, data = tmp_path / "corpus", tmp_path / "data"
    shutil.copytree(SAMPLE_CORPUS, corpus)
    assert citebot("build", data_dir=data, corpus_dir=corpus).returncode == 0

    refused = citebot("add", site + "/a3", data_dir=data, corpus_dir=corpus, private=False)
    assert refused.returncode == 2 and "private" in refused.stderr and "Traceback" not in refused.stderr

    added = citebot("feed", "add", site + "/rss", data_dir=data, corpus_dir=corpus)
    assert added.returncode == 0, added.stderr
    assert "2 new articles" in added.stdout and "Indexed 4 documents" in added.stdout
    written = sorted(p.relative_to(corpus).as_posix() for p in (corpus / "fetched").rglob("*.json"))
    assert written == ["fetched/127.0.0.1/2026-03-02-council-passes-budget-bond.json",
                       "fetched/127.0.0.1/2026-03-03-council-approves-tram-extension.json"]

    asked = citebot("ask", "--json", TRAM, data_dir=data, corpus_dir=corpus)
    answer = json.loads(asked.stdout)
    assert not answer["abstained"] and "2029" in answer["citations"][0]["excerpt"]
    assert answer["citations"][0]["published"] in ("2026-03-02", "2026-03-03")

    listed = citebot("feed", "list", data_dir=data, corpus_dir=corpus)
    assert site + "/rss (Local RSS)" in listed.stdout and "2 items, 2 new" in listed.stdout

    bad = citebot("feed", "add", site + "/bad-feed", data_dir=data, corpus_dir=corpus)
    assert bad.returncode == 2 and "is not an RSS or Atom feed" in bad.stderr

    page = citebot("add", site + "/a3", data_dir=data, corpus_dir=corpus)
    assert page.returncode == 0 and "Added 1 article" in page.stdout and "Indexed 5 documents" in page.stdout
    again = citebot("add", site + "/a3", data_dir=data, corpus_dir=corpus)
    assert again.returncode == 0 and "already known, nothing added" in again.stdout

    refreshed = citebot("refresh", "--json", data_dir=data, corpus_dir=corpus)
    assert refreshed.returncode == 0, refreshed.stderr
    assert json.loads(refreshed.stdout)["added"] == [] and json.loads(refreshed.stdout)["feeds"] == 1

    removed = citebot("feed", "remove", site + "/rss", data_dir=data, corpus_dir=corpus)
    assert removed.returncode == 0 and "its articles stay" in removed.stdout
    assert citebot("feed", "remove", site + "/rss", data_dir=data, corpus_dir=corpus).returncode == 2
    assert len(list((corpus / "fetched").rglob("*.json"))) == 3


def test_feed_list_keeps_the_last_items_and_the_last_error_with_their_times(tmp_path):
    corpus, data = tmp_path / "corpus", tmp_path / "data"
    with news_server() as (httpd, base):
        feed = base + "/live-feed"
        assert citebot("feed", "add", feed, "--no-build", data_dir=data, corpus_dir=corpus).returncode == 0
        httpd.live_feed = "gone"
        failed = citebot("refresh", "--no-build", data_dir=data, corpus_dir=corpus)
        assert failed.returncode == 0 and "404" in failed.stdout
        httpd.live_feed = "ok"
        assert citebot("refresh", "--no-build", data_dir=data, corpus_dir=corpus).returncode == 0  # 304
        listed = citebot("feed", "list", data_dir=data, corpus_dir=corpus).stdout.splitlines()
    assert listed[0] == f"{feed} (Local RSS)"
    fetched, items, error = listed[1:4]
    assert fetched.startswith("  last fetched 20") and fetched.endswith(" UTC: not modified")
    assert items.startswith("  last items 20") and items.endswith(" UTC: 2 items, 2 new")
    assert error.startswith("  last error 20") and "404" in error
    times = [line.split(" UTC")[0].split(" ", 4)[-1] for line in (fetched, items, error)]
    assert times[1] <= times[2] <= times[0], "each with its own time"


def test_refresh_says_its_summary_once(tmp_path, site):
    corpus, data = tmp_path / "corpus", tmp_path / "data"
    assert citebot("feed", "add", site + "/atom", "--no-build", data_dir=data, corpus_dir=corpus).returncode == 0
    env = {**os.environ, "CITEBOT_DATA_DIR": str(data), "CITEBOT_CORPUS_DIR": str(corpus),
           "CITEBOT_FETCH_ALLOW_PRIVATE": "1"}
    done = subprocess.run([sys.executable, "-m", "bot.cli", "refresh", "--no-build"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)  # not -q: what a user sees
    assert done.returncode == 0, done.stderr
    assert (done.stdout + done.stderr).count("1 feed, 1 item, 0 new articles, 0 errors.") == 1, done.stderr


@pytest.fixture
def small_disk(tmp_path):
    """A 1 MB tmpfs (root only, as the build's full-disk test); filled with fill()."""
    disk = tmp_path / "small-disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(disk)], capture_output=True).returncode:
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)


def fill(disk) -> None:
    """Write to the disk until not one more byte fits."""
    with open(disk / "filler", "wb", buffering=0) as filler:
        try:
            while True:
                filler.write(b"\0" * 4096)
        except OSError:
            pass
        try:
            while True:
                filler.write(b"\0")
        except OSError:
            pass


@pytest.mark.parametrize("full", ["data", "corpus"])
def test_a_full_disk_during_a_refresh_is_one_sentence_a_failure_and_leaves_no_unrecorded_article(
        tmp_path, site, small_disk, full):
    data = small_disk / "data" if full == "data" else tmp_path / "data"
    corpus = small_disk / "corpus" if full == "corpus" else tmp_path / "corpus"
    with SqliteFeedStore(data / FEEDS_FILE) as store:
        store.add(site + "/many?n=30")
    (corpus / "fetched").mkdir(parents=True)
    fill(small_disk)
    result = citebot("refresh", "--no-build", data_dir=data, corpus_dir=corpus, timeout=120)
    assert result.returncode == 2, (result.stdout, result.stderr)
    where = data if full == "data" else corpus
    assert result.stderr.splitlines() == [f"citebot: The disk holding {where} is full, so "
                                          + ("the feed database feeds.sqlite" if full == "data" else "a new article")
                                          + " cannot be written; free some space and try again."]
    written = sorted((corpus / "fetched").rglob("*.json"))
    assert not list((corpus / "fetched").rglob(".tmp-*")), "no half-written article"
    with SqliteFeedStore(data / FEEDS_FILE) as store:
        unrecorded = [p for p in written if not store.known(json.loads(p.read_text())["url"])]
    assert unrecorded == [], "every article file left is recorded as taken"


def test_an_upload_to_a_full_corpus_disk_is_one_sentence_and_leaves_no_part_file(tmp_path, small_disk):
    corpus = small_disk / "corpus"
    (corpus / "uploads").mkdir(parents=True)
    fill(small_disk)
    desk = Newsdesk(Engine(Settings(data_dir=tmp_path / "data", corpus_dir=corpus)), ALLOW)
    with pytest.raises(DiskFull) as full:
        desk.add_file("week.jsonl", articles_jsonl(3000), build=False)
    assert str(full.value) == (f"The disk holding {corpus} is full, so week.jsonl cannot be written; free some "
                               "space and try again.")
    assert [p.name for p in (corpus / "uploads").iterdir()] == []


def test_a_scheduled_refresh_that_fails_says_so_in_one_log_line_and_the_bot_goes_on(caplog):
    import logging
    from types import SimpleNamespace

    from bot.handlers import scheduled_refresh
    from index.errors import DiskFull

    class FullDesk:
        def feeds(self):
            return ["a feed"]

        def refresh_if_free(self):
            raise DiskFull("The disk holding var is full, so a new article cannot be written; free some space "
                           "and try again.")

    with caplog.at_level(logging.INFO):
        run(scheduled_refresh(SimpleNamespace(citebot=SimpleNamespace(desk=FullDesk()))))
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == [
        "Scheduled refresh failed: The disk holding var is full, so a new article cannot be written; free some "
        "space and try again."]


def test_articles_written_before_a_killed_build_are_indexed_by_the_next_refresh(tmp_path, embedder, site):
    corpus = write_corpus(tmp_path / "corpus", {"a.txt": "Title: Rates\n\nThe central bank raised rates to 5.25% on Thursday."})
    settings = Settings(data_dir=tmp_path / "data", corpus_dir=corpus)
    engine = Engine(settings, embedder)
    engine.build()
    with SqliteFeedStore(settings.data_dir / FEEDS_FILE) as store:
        store.add(site + "/rss")
    # A real refresh, killed with SIGKILL once its articles are written and its build has begun.
    script = textwrap.dedent(f"""
        import os, signal
        from index.store import builder
        from index.config import Settings
        from index.engine import Engine
        from index.news.fetch import FetchPolicy
        from index.news.newsdesk import Newsdesk
        builder.read_corpus = lambda *args, **kwargs: os.kill(os.getpid(), signal.SIGKILL)
        settings = Settings(data_dir={str(settings.data_dir)!r}, corpus_dir={str(corpus)!r})
        Newsdesk(Engine(settings), FetchPolicy(allow_private=True, timeout_s=5)).refresh()
    """)
    killed = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, timeout=120)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert len(list((corpus / "fetched").rglob("*.json"))) == 2 and engine.stats()["documents"] == 1

    desk = Newsdesk(engine, ALLOW)
    report = desk.refresh()
    assert report.refresh.new == [], "the articles were taken before"
    assert report.build is not None and report.build.documents == 3, report.summary()
    assert engine.stats()["documents"] == 3
    assert "2029" in engine.ask(TRAM).citations[0].excerpt
    again = desk.refresh()  # nothing new, the index up to date: said so, nothing written
    assert again.build.unchanged and "Index is up to date" in again.summary()


# -- Telegram ------------------------------------------------------------------------------------

def test_admins_add_feeds_pages_and_files_in_telegram_and_others_cannot(tmp_path, embedder, site, monkeypatch):
    from index.store import builder

    monkeypatch.setenv("CITEBOT_FETCH_ALLOW_PRIVATE", "1")
    # Every embedding counts as long here, so the admin is told its estimate as a long build would.
    monkeypatch.setattr(builder, "LONG_BUILD_S", -1)
    monkeypatch.setattr(builder, "RATE_AFTER_S", 0.0)
    corpus = write_corpus(tmp_path / "corpus", {"a.txt": "Title: Rates\n\nThe central bank raised rates to 5.25% on Thursday."})
    engine = Engine(Settings(data_dir=tmp_path / "data", corpus_dir=corpus), embedder)
    engine.build()

    async def say(fake, text, uid=ADMIN, **extra):
        m = message(text, chat_id=uid, uid=uid, **extra)
        fake.push(message=m)
        return m

    async def final_edit(fake, what):
        edits = await fake.wait_for(lambda: [e for e in fake.sent("editMessageText") if what in answer_text(e)],
                                    what=what)
        return answer_text(edits[-1])

    async def scenario():
        with FakeTelegram() as fake:
            async with running_bot(fake, engine, refresh_minutes=0):
                for text in ("/feeds", f"/addfeed {site}/rss", f"/add {site}/a3", "/refresh"):
                    m = await say(fake, text, uid=ALICE)
                    (reply,) = await fake.wait_for(lambda: fake.replies_to(ALICE, m["message_id"]))
                    assert "only the bot's admins" in answer_text(reply)

                m = await say(fake, "/feeds")
                (reply,) = await fake.wait_for(lambda: fake.replies_to(ADMIN, m["message_id"]))
                assert "No feeds yet" in answer_text(reply)

                await say(fake, f"/addfeed {site}/rss")
                assert "2 new articles" in await final_edit(fake, "new article")
                await say(fake, f"/addfeed {site}/bad-feed")
                assert "is not an RSS or Atom feed" in await final_edit(fake, "RSS or Atom")

                m = await say(fake, "/feeds")
                (reply,) = await fake.wait_for(lambda: fake.replies_to(ADMIN, m["message_id"]))
                assert f"{site}/rss (Local RSS)" in answer_text(reply) and "2 items, 2 new" in answer_text(reply)
                assert "only when an admin sends /refresh" in answer_text(reply)

                await say(fake, f"/add {site}/a3")
                assert "Indexed" in await final_edit(fake, "harbour")

                upload = {"file_name": "copper.txt", **fake.add_file(
                    b"Title: Copper hits a record\n\nCopper hit a record price as Chilean mines cut output.")}
                m = message("", chat_id=ADMIN, uid=ADMIN, document=upload)
                del m["text"]
                fake.push(message=m)
                assert "Indexed" in await final_edit(fake, "uploads/copper.txt")
                estimates = [answer_text(e) for e in fake.sent("editMessageText") if "This index update" in answer_text(e)]
                assert estimates and estimates[-1].startswith("Adding copper.txt… This index update embeds 2 passages")

                # Anyone else's file is not added; its caption is a question like any other.
                m = message("", chat_id=ALICE, uid=ALICE, document={"file_name": "x.txt", **fake.add_file(b"x")})
                del m["text"]
                fake.push(message=m)
                (reply,) = await fake.wait_for(lambda: fake.replies_to(ALICE, m["message_id"]))
                assert "I read text only" in answer_text(reply)

                m = await say(fake, "What did copper prices do?", uid=ALICE)
                (reply,) = await fake.wait_for(lambda: fake.replies_to(ALICE, m["message_id"]))
                assert "Chilean mines" in answer_text(reply)
                m = await say(fake, "Where will the first tram section run?", uid=ALICE)
                (reply,) = await fake.wait_for(lambda: fake.replies_to(ALICE, m["message_id"]))
                assert "university hospital" in answer_text(reply)

    run(scenario())
    assert not (corpus / "uploads" / "x.txt").exists()


def test_the_feeds_are_refreshed_on_a_schedule(tmp_path, embedder, site, monkeypatch):
    monkeypatch.setenv("CITEBOT_FETCH_ALLOW_PRIVATE", "1")
    corpus = write_corpus(tmp_path / "corpus", {"a.txt": "Title: Rates\n\nThe central bank raised rates to 5.25% on Thursday."})
    engine = Engine(Settings(data_dir=tmp_path / "data", corpus_dir=corpus), embedder)
    engine.build()
    with SqliteFeedStore(engine.settings.data_dir / FEEDS_FILE) as store:
        store.add(site + "/atom")

    async def scenario():
        with FakeTelegram() as fake:
            app = build_application(BotConfig(token=fake.token, api_url=fake.base_url, refresh_minutes=15), engine)
            (job,) = app.job_queue.get_jobs_by_name("refresh-feeds")
            assert job.job.trigger.interval.total_seconds() == 15 * 60
            await app.initialize()
            try:
                await job.run(app)
            finally:
                await app.shutdown()
        none = build_application(BotConfig(token="1:x", refresh_minutes=0), engine)
        assert none.job_queue.get_jobs_by_name("refresh-feeds") == ()

    run(scenario())
    assert engine.stats()["documents"] == 2
    assert engine.ask("What work begins in the harbour?").citations[0].title == "Harbour works begin in spring"
