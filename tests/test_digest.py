"""The daily digest: a chat asks for one, and each day it gets the main stories of the new
articles, one cited lead per story, the most carried first."""
from __future__ import annotations

import json
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from bot.digests import parse_schedule
from index.config import Settings
from index.engine import Engine
from index.news.digest import stories

from .conftest import write_corpus
from .fake_telegram import FakeTelegram, parse_telegram_html
from .test_bot import ALICE, GROUP, message, run, running_bot

TODAY = datetime.now(timezone.utc).date()
STRIKE = [
    ("Copper mine strike in Chile", "Workers at Escondida, the world's largest copper mine in Chile, went on strike on "
     "Monday over pay, halting production at the mine."),
    ("Strike halts Chile's Escondida copper mine", "A strike by workers over pay halted production at Escondida in "
     "Chile, the world's largest copper mine, on Monday."),
    ("Escondida copper mine workers strike over pay", "Production stopped at Chile's Escondida, the biggest copper "
     "mine in the world, as workers went on strike over pay on Monday."),
]
FOOTBALL = ("Late goal wins the derby", "A header in the last minute gave City a 2-1 win over United in the derby "
            "on Sunday, their first home win of the season.")
OLD = ("Harbour bridge opens", "The new harbour bridge in Varna opened after four years of work.")


def article(title: str, text: str, day: date) -> str:
    return json.dumps({"title": title, "text": text, "published": day.isoformat(), "source": "Wire"})


@pytest.fixture
def news_engine(tmp_path, make_engine):
    files = {f"strike-{i}.json": article(t, x, TODAY) for i, (t, x) in enumerate(STRIKE)}
    files["football.json"] = article(*FOOTBALL, TODAY)
    files["old.json"] = article(*OLD, date(2020, 5, 1))
    return make_engine(write_corpus(tmp_path / "corpus", files))


def test_new_articles_are_grouped_by_story_most_carried_first(news_engine):
    found = stories(news_engine.snapshot, TODAY - timedelta(days=1))
    assert [len(s.articles) for s in found] == [3, 1], "three reports of one strike, one match; the 2020 article is old"
    assert found[0].lead.title in {t for t, _ in STRIKE} and "Escondida" in found[0].excerpt
    assert found[1].lead.title == FOOTBALL[0]
    told = frozenset(a.doc_id for a in found[0].articles)
    assert [s.lead.title for s in stories(news_engine.snapshot, TODAY, exclude=told)] == [FOOTBALL[0]]


def test_a_schedule_is_a_time_of_day_and_a_known_time_zone():
    assert parse_schedule(["7:05"]) == ("07:05", "UTC")
    assert parse_schedule(["18:30", "Europe/Berlin"]) == ("18:30", "Europe/Berlin")
    for wrong in (["25:00"], ["noon"], []):
        with pytest.raises(ValueError, match="Say when"):
            parse_schedule(wrong)
    with pytest.raises(ValueError, match="I do not know the time zone 'Mars/Olympus'"):
        parse_schedule(["07:30", "Mars/Olympus"])


def test_a_chat_asks_for_a_digest_gets_the_main_stories_once_a_day_and_can_stop_it(news_engine):
    async def scenario():
        with FakeTelegram() as fake:
            async with running_bot(fake, news_engine) as app:
                asked = message("/digest 07:30 Europe/Berlin")
                fake.push(message=asked)
                (reply,) = await fake.wait_for(lambda: fake.replies_to(ALICE, asked["message_id"]))
                assert "Every day at 07:30 (Europe/Berlin)" in reply["text"]
                (job,) = app.job_queue.get_jobs_by_name(f"digest:{ALICE}")
                assert job.next_t.astimezone(ZoneInfo("Europe/Berlin")).time() == time(7, 30)

                before = len(fake.sent("sendMessage"))
                await job.run(app)  # the day's turn comes
                (sent,) = fake.sent("sendMessage")[before:]
                text = parse_telegram_html(sent["text"])
                assert text.startswith("The main stories since")
                assert "(3 articles)" in text and text.index("(3 articles)") < text.index(FOOTBALL[0])
                assert OLD[0] not in text
                await job.run(app)  # run again at once (another replica, a restart): nothing twice
                assert len(fake.sent("sendMessage")) == before + 1

                stop = message("/digest off")
                fake.push(message=stop)
                (reply,) = await fake.wait_for(lambda: fake.replies_to(ALICE, stop["message_id"]))
                assert reply["text"] == "The digest is stopped."
                await fake.wait_for(lambda: not app.job_queue.get_jobs_by_name(f"digest:{ALICE}"))

    run(scenario())


def test_in_groups_only_admins_set_the_digest_and_it_survives_a_restart(news_engine):
    async def scenario():
        with FakeTelegram() as fake:
            fake.chat_admins[GROUP] = {7}
            async with running_bot(fake, news_engine) as app:
                nobody = message("/digest 08:00", chat_id=GROUP, uid=55)
                fake.push(message=nobody)
                (reply,) = await fake.wait_for(lambda: fake.replies_to(GROUP, nobody["message_id"]))
                assert reply["text"] == "In a group only its admins can set the digest."
                owner = message("/digest 08:00", chat_id=GROUP, uid=7)
                fake.push(message=owner)
                (reply,) = await fake.wait_for(lambda: fake.replies_to(GROUP, owner["message_id"]))
                assert "Every day at 08:00 (UTC)" in reply["text"]
                assert app.job_queue.get_jobs_by_name(f"digest:{GROUP}")
            async with running_bot(fake, Engine(news_engine.settings, news_engine.embedder)) as again:
                (job,) = again.job_queue.get_jobs_by_name(f"digest:{GROUP}")
                assert job.next_t.astimezone(timezone.utc).time() == time(8, 0)

    run(scenario())


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_the_digest_store_keeps_schedules_and_what_the_last_digest_told(kind, tmp_path, request):
    from bot.digests import PostgresDigests, SqliteDigests
    from index.store.database import Database

    if kind == "sqlite":
        store = SqliteDigests(tmp_path / "digests.sqlite")
    else:
        store = PostgresDigests(Database(request.getfixturevalue("new_database")()).open())
    assert store.get(1) is None and store.all() == []
    assert store.set(1, "07:30", "Europe/Berlin").time == time(7, 30, tzinfo=ZoneInfo("Europe/Berlin"))
    store.set(1, "08:00", "UTC")  # a second /digest replaces the first
    store.set(-5, "19:00", "UTC")
    when = datetime(2026, 12, 3, 8, 0, tzinfo=timezone.utc)
    store.sent(1, when, ["doc-a", "doc-b"])
    one = store.get(1)
    assert (one.at, one.tz, one.last_sent, one.last_docs) == ("08:00", "UTC", "2026-12-03T08:00:00+00:00",
                                                               ("doc-a", "doc-b"))
    assert [d.chat_id for d in store.all()] == [-5, 1]
    assert store.off(1) and not store.off(1) and [d.chat_id for d in store.all()] == [-5]


@pytest.mark.postgres
def test_the_database_store_groups_the_same_stories(news_engine, new_database, tmp_path):
    database = Engine(Settings(data_dir=tmp_path / "pg", corpus_dir=news_engine.settings.corpus_dir,
                               database_url=new_database()), news_engine.embedder)
    database.build()
    since = TODAY - timedelta(days=1)
    on_files = [(s.lead.title, len(s.articles)) for s in stories(news_engine.snapshot, since)]
    assert [(s.lead.title, len(s.articles)) for s in stories(database.snapshot, since)] == on_files
