"""Conversations with the bot: follow-up replies, "tell me more", votes, and what admins see."""
from __future__ import annotations

import json
import logging
import shutil
import sqlite3

import pytest

from bot.cli import main as citebot
from bot.handlers import app_state
from bot.history import SqliteHistory, normalise_question
from index.read.followup import Turn, followup_query

from .fake_telegram import FakeTelegram
from .test_bot import ADMIN, ALICE, GROUP, answer_text, message, run, running_bot, user

NATO = Turn("How many new battlegroups did NATO agree to deploy?")


def test_a_fragment_or_a_pronoun_leans_on_the_earlier_question_and_a_new_question_does_not():
    assert followup_query("Where?", NATO).kind == "leaning"
    assert "battlegroups" in followup_query("And where will they go?", NATO).query
    assert followup_query("Who said that?", NATO).kind == "leaning"
    assert followup_query("tell me more", NATO).kind == "more"
    new = followup_query("What did the central bank decide about interest rates?", NATO)
    assert new.kind == "standalone" and new.query == "What did the central bank decide about interest rates?"


def test_votes_are_kept_per_voter_as_a_salted_hash_and_replaced(tmp_path):
    history = SqliteHistory(tmp_path / "bot.sqlite")
    qid = history.remember("Who won?", ({"doc_id": "d1", "title": "Final"},), 1)
    assert history.vote(qid, 42, True, "private") and history.vote(qid, 42, False, "private")
    assert history.vote(qid, 43, True, "group") and not history.vote("forgotten", 42, True, "private")
    report = history.report()
    assert (report["votes_up"], report["votes_down"]) == (1, 1)
    voters = [row[0] for row in history._db.execute("SELECT voter FROM votes")]
    import hashlib

    unsalted = hashlib.sha256(b"42").hexdigest()[:32]
    assert len(set(voters)) == 2 and all(len(v) == 32 and v != unsalted for v in voters)
    assert normalise_question("What's the capital of PERU?!") == "what s the capital of peru"


def test_without_question_logging_no_question_text_is_kept(tmp_path):
    history = SqliteHistory(tmp_path / "bot.sqlite", log_questions=False)
    history.log("What is the capital of Peru?", "private", True)
    qid = history.remember("What is the capital of Peru?")
    history.vote(qid, 1, False, "private")
    rows = list(history._db.execute("SELECT question FROM asked UNION ALL SELECT question FROM votes"))
    assert rows == [(None,), (None,)]
    assert history.report()["questions"] == 1 and history.report()["top_abstained"] == []


def _damaged_memories(path) -> dict:
    """bot.sqlite damaged in the ways a crash, a bad disk or a stray copy leave it."""
    good = SqliteHistory(path)
    for n in range(200):
        good.log(f"Question number {n} about the tram line?", "private", n % 2 == 0)
    good.close()
    whole = path.read_bytes()
    path.unlink()
    return {"not a database": b"this is not sqlite" * 300, "truncated": whole[: len(whole) // 2],
            "its pages overwritten": whole[:4096] + b"\xff" * (len(whole) - 4096)}


DAMAGES = ["not a database", "truncated", "its pages overwritten"]


@pytest.mark.parametrize("damage", DAMAGES)
def test_a_damaged_memory_gets_one_sentence_from_report(tmp_path, capsys, damage):
    path = tmp_path / "bot.sqlite"
    path.write_bytes(_damaged_memories(tmp_path / "good.sqlite")[damage])
    assert citebot(["--data-dir", str(tmp_path), "report"]) == 2
    err = capsys.readouterr().err
    assert err.splitlines() == [f"citebot: The bot's memory {path} is damaged (it cannot be read as a database); "
                                "`citebot serve` sets it aside and starts a new one, or move it away yourself."]


@pytest.mark.parametrize("damage", DAMAGES)
def test_a_damaged_memory_is_set_aside_once_and_a_new_one_started(tmp_path, caplog, damage):
    path = tmp_path / "bot.sqlite"
    damaged = _damaged_memories(tmp_path / "good.sqlite")[damage]
    path.write_bytes(damaged)
    with caplog.at_level(logging.INFO):
        history = SqliteHistory(path, repair=True)
    qid = history.remember("Where will the trams run?")
    assert history.question(qid) == "Where will the trams run?" and history.report()["questions"] == 0
    history.close()
    (aside,) = tmp_path.glob("bot.sqlite.damaged-*")
    assert aside.read_bytes() == damaged, "the damaged file is kept, untouched"
    said = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(said) == 1 and "memory was reset" in said[0] and aside.name in said[0]
    SqliteHistory(path, repair=True).close()  # the new memory opens quietly
    assert len([r for r in caplog.records if r.levelno >= logging.WARNING]) == 1


def test_the_bot_starts_and_answers_with_a_damaged_memory(tmp_path, sample_engine, caplog):
    from index.config import Settings
    from index.engine import Engine

    data = tmp_path / "data"
    shutil.copytree(sample_engine.settings.data_dir / "index", data / "index")
    (data / "bot.sqlite").write_bytes(b"this is not sqlite" * 300)
    engine = Engine(Settings(data_dir=data, corpus_dir=sample_engine.settings.corpus_dir), sample_engine.embedder)

    async def scenario():
        with FakeTelegram() as fake:
            async with running_bot(fake, engine):
                asked = message("How many new battlegroups did NATO agree to deploy?")
                fake.push(message=asked)
                (reply,) = await fake.wait_for(lambda: fake.replies_to(ALICE, asked["message_id"]))
                assert "Bulgaria" in answer_text(reply) or "Slovakia" in answer_text(reply)

    with caplog.at_level(logging.INFO):
        run(scenario())
    assert len([r for r in caplog.records if "memory was reset" in r.getMessage()]) == 1
    assert list(data.glob("bot.sqlite.damaged-*")), "the damaged file is kept aside"
    with sqlite3.connect(data / "bot.sqlite") as db:
        assert db.execute("SELECT count(*) FROM asked").fetchone() == (1,)


def test_a_reply_to_an_answer_is_a_follow_up_and_votes_reach_the_admins(make_engine, tmp_path):
    import shutil

    from .conftest import SAMPLE_CORPUS

    shutil.copytree(SAMPLE_CORPUS, tmp_path / "corpus")
    sample_engine = make_engine(tmp_path / "corpus")  # its own bot.sqlite: the counts are this test's

    async def scenario():
        with FakeTelegram() as fake:
            async with running_bot(fake, sample_engine) as app:
                asked = message("How many new battlegroups did NATO agree to deploy?")
                fake.push(message=asked)
                (first,) = await fake.wait_for(lambda: fake.replies_to(ALICE, asked["message_id"]))
                sent = fake.messages[(ALICE, max(m for c, m in fake.messages if c == ALICE))]
                row = first["reply_markup"]["inline_keyboard"][0]
                assert [b["text"] for b in row] == ["👍", "👎", "More ›"]
                history = app_state(app).history  # the bot notes its message right after sending it
                await fake.wait_for(lambda: history.answer_to(ALICE, sent["message_id"]))

                # "Where?" alone means nothing; as a reply to the answer it asks where the battlegroups go.
                where = message("Where?", reply_to_message={**sent, "from": fake.bot_user})
                fake.push(message=where)
                (reply,) = await fake.wait_for(lambda: fake.replies_to(ALICE, where["message_id"]))
                assert "Bulgaria" in answer_text(reply) or "Slovakia" in answer_text(reply)
                assert answer_text(reply).endswith('(searched as "Where? new battlegroups NATO agree deploy")')

                who = message("Who announced them?", reply_to_message={**sent, "from": fake.bot_user})
                fake.push(message=who)
                (reply,) = await fake.wait_for(lambda: fake.replies_to(ALICE, who["message_id"]))
                assert "Stoltenberg" in answer_text(reply), "a pronoun for the battlegroups, read with the question"

                more = message("tell me more", reply_to_message={**sent, "from": fake.bot_user})
                fake.push(message=more)
                (page,) = await fake.wait_for(lambda: fake.replies_to(ALICE, more["message_id"]))
                assert answer_text(page).startswith("4."), "the next citations, after the three shown"

                # A vote, then a changed mind: one vote, the last one, answered at once.
                for i, button in enumerate((row[0], row[1])):
                    fake.push(callback_query={"id": f"v{i}", "from": user(ALICE), "chat_instance": "ci",
                                              "data": button["callback_data"],
                                              "message": {**sent, "chat": {"id": ALICE, "type": "private"}}})
                    await fake.wait_for(lambda: len([c for c in fake.sent("answerCallbackQuery")
                                                     if c.get("text") == "Thanks!"]) == i + 1)

                peru = message("What is the capital of Peru?")
                fake.push(message=peru)
                await fake.wait_for(lambda: fake.replies_to(ALICE, peru["message_id"]))
                stats = message("/stats", chat_id=ADMIN, uid=ADMIN)
                fake.push(message=stats)
                (shown,) = await fake.wait_for(lambda: fake.replies_to(ADMIN, stats["message_id"]))
                text = answer_text(shown)
                assert "Questions: 5 in the last 24 h" in text and "Votes: 0 👍, 1 👎" in text
                assert "1× what is the capital of peru" in text

    run(scenario())
    data_dir = sample_engine.settings.data_dir
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert citebot(["--data-dir", str(data_dir), "report", "--json"]) == 0
    report = json.loads(out.getvalue())
    assert report["votes_down"] == 1 and report["top_abstained"][0] == {"question": "what is the capital of peru",
                                                                       "times": 1}


def test_the_telegram_details_greeting_backlog_description_share_and_start_payload(sample_engine):
    import time

    async def scenario():
        with FakeTelegram() as fake:
            async with running_bot(fake, sample_engine, backlog_minutes=10):
                (described,) = fake.sent("setMyDescription")
                assert "I know 2 news articles" in described["description"]
                assert len(fake.sent("setMyShortDescription")[0]["short_description"]) <= 120
                scopes = [c.get("scope") for c in fake.sent("setMyCommands")]
                assert {"type": "all_group_chats"} in scopes

                # Added to a group: a short greeting with how to ask there.
                chat = {"id": GROUP, "type": "supergroup", "title": "News fans"}
                fake.push(my_chat_member={"chat": chat, "from": user(ALICE), "date": int(time.time()),
                                          "old_chat_member": {"status": "left", "user": fake.bot_user},
                                          "new_chat_member": {"status": "member", "user": fake.bot_user}})
                (hello,) = await fake.wait_for(lambda: [c for c in fake.sent("sendMessage") if c["chat_id"] == GROUP])
                assert "/ask" in hello["text"] and "@citebot_test_bot" in hello["text"]

                # A question from before a long downtime is dropped; a fresh one is answered.
                stale = message("How many new battlegroups did NATO agree to deploy?", date=int(time.time()) - 3600)
                fresh = message("How many new battlegroups did NATO agree to deploy?")
                fake.push(message=stale)
                fake.push(message=fresh)
                (reply,) = await fake.wait_for(lambda: fake.replies_to(ALICE, fresh["message_id"]))
                assert fake.replies_to(ALICE, stale["message_id"]) == []
                share = reply["reply_markup"]["inline_keyboard"][1][0]
                assert share["text"] == "Share ↗"
                assert share["switch_inline_query_chosen_chat"]["query"].startswith("How many new battlegroups")

                start = message("/start inline")
                fake.push(message=start)
                replies = await fake.wait_for(lambda: len(fake.replies_to(ALICE, start["message_id"])) == 2 and
                                              fake.replies_to(ALICE, start["message_id"]))
                assert "inline search that found nothing" in answer_text(replies[0])

    run(scenario())


def test_the_console_holds_the_bots_conversation_and_logs_it(make_engine, tmp_path, capsys):
    """`make run` without a token: the console, where the answer before is the next line's context."""
    import shutil

    from bot.console import run_console

    from .conftest import SAMPLE_CORPUS

    shutil.copytree(SAMPLE_CORPUS, tmp_path / "corpus")
    engine = make_engine(tmp_path / "corpus")
    lines = iter(["How many new battlegroups did NATO agree to deploy?", "Where will they go?", "tell me more",
                  "What is the capital of Peru?", "quit"])
    shown: list[str] = []
    run_console(engine, input_fn=lambda prompt: next(lines), print_fn=shown.append)
    first, where, more, peru = shown[1:5]
    assert first.startswith("[1]") and "[3]" in first and "[4]" not in first, "three citations, as in Telegram"
    assert "Bulgaria" in where or "Slovakia" in where
    assert where.rstrip().endswith('(searched as "Where will they go? new battlegroups NATO agree deploy")')
    assert more.startswith("[4]"), "'tell me more' shows the next citations of the answer before"
    assert "could not find this in the articles" in peru, "a new question is asked as one"

    # Questions the console answered are logged as the bot's are: `citebot report` has them.
    assert citebot(["--data-dir", str(engine.settings.data_dir), "report"]) == 0
    report = capsys.readouterr().out
    assert "Questions: 4 in the last 24 h" in report and "1× what is the capital of peru" in report
