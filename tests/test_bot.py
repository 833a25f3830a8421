"""The Telegram bot end to end: the real Application over real HTTP against a fake Bot API server."""
from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pytest

from bot.app import ALLOWED_UPDATES, build_application, webhook_options
from bot.config import BotConfig, ConfigError
from bot.handlers import app_state
from bot.render import render_answer, render_citation, render_page
from index.read.answer import Answer, Citation, SourceRef
from index.config import Settings
from index.engine import Engine
from index.store.files import current_build_dir

from .conftest import SAMPLE_CORPUS, ROOT, write_corpus
from .fake_telegram import FakeTelegram, parse_telegram_html, utf16_len

ADMIN = 4242
ALICE = 1001
GROUP = -100123
CHANNEL = -100777
BATTLEGROUPS = "How many new battlegroups did NATO agree to deploy, and where?"
_ids = itertools.count(1)


def user(uid: int, name: str = "Alice") -> dict:
    return {"id": uid, "is_bot": False, "first_name": name}


def message(text: str, chat_id: int = ALICE, uid: int = ALICE, **extra) -> dict:
    """A Bot API Message as Telegram sends it; commands and @mentions get their entities."""
    chat = {"id": chat_id, "type": "private", "first_name": "Alice"} if chat_id > 0 else \
        {"id": chat_id, "type": "supergroup", "title": "News fans"}
    entities = []
    if text.startswith("/"):
        entities.append({"type": "bot_command", "offset": 0, "length": len(text.split()[0])})
    for word in text.split():
        if word.startswith("@"):
            start = text.index(word)
            entities.append({"type": "mention", "offset": utf16_len(text[:start]), "length": utf16_len(word)})
    msg = {"message_id": next(_ids), "date": int(time.time()), "chat": chat, "from": user(uid), "text": text, **extra}
    if entities:
        msg["entities"] = entities
    return msg


def answer_text(call: dict) -> str:
    return parse_telegram_html(call["text"])


@contextlib.asynccontextmanager
async def running_bot(fake: FakeTelegram, engine: Engine, **config):
    """Start the real Application against the fake server, as run_polling would, and stop it after."""
    app = build_application(
        BotConfig(token=fake.token, api_url=fake.base_url, admin_ids=frozenset({ADMIN}), **config), engine
    )
    await app.initialize()
    await app.post_init(app)
    await app.updater.start_polling(poll_interval=0.0, timeout=1, allowed_updates=ALLOWED_UPDATES)
    await app.start()
    try:
        yield app
    finally:
        await app.updater.stop()
        await app.stop()
        await app.shutdown()
        await app.post_shutdown(app)


def run(coro):
    return asyncio.run(coro)


def test_private_question_gets_cited_excerpts_and_a_more_button(sample_engine):
    async def scenario():
        with FakeTelegram() as fake:
            async with running_bot(fake, sample_engine):
                assert fake.sent("setMyCommands"), "commands are registered at start"
                asked = message(BATTLEGROUPS)
                fake.push(message=asked)
                (reply,) = await fake.wait_for(lambda: fake.replies_to(ALICE, asked["message_id"]))
                text = answer_text(reply)
                assert "Bulgaria" in text and "Hungary" in text and "Romania" in text and "Slovakia" in text
                assert "Nato summit in Brussels: live updates" in text
                assert "1." in text and "3." in text and "4." not in text, "three citations at first"
                assert reply["link_preview_options"]["is_disabled"] is True
                button = next(b for b in reply["reply_markup"]["inline_keyboard"][0] if b["text"] == "More ›")
                assert len(button["callback_data"].encode()) <= 64

                # The "More" button edits the message to show the next citations.
                sent = fake.messages[(ALICE, max(m for c, m in fake.messages if c == ALICE))]
                fake.push(callback_query={"id": "cb1", "from": user(ALICE), "chat_instance": "ci",
                                          "data": button["callback_data"], "message": {**sent, "chat": {"id": ALICE, "type": "private"}}})
                (edit,) = await fake.wait_for(lambda: fake.sent("editMessageText"))
                assert "4." in answer_text(edit) and "1." not in answer_text(edit)
                rows = edit["reply_markup"]["inline_keyboard"]
                assert [b["text"] for b in rows[0][:2]] == ["👍", "👎"] and rows[-1][0]["text"] == "Share ↗", \
                    "the edited message keeps its votes and its Share button"
                await fake.wait_for(lambda: fake.sent("answerCallbackQuery"))

                # Pressing the same button twice: Telegram refuses the identical edit; the user sees no error.
                fake.push(callback_query={"id": "cb1b", "from": user(ALICE), "chat_instance": "ci",
                                          "data": button["callback_data"], "message": {**sent, "chat": {"id": ALICE, "type": "private"}}})
                await fake.wait_for(lambda: len(fake.sent("answerCallbackQuery")) == 2)
                await asyncio.sleep(0.3)
                assert not [c for c in fake.sent("sendMessage") if "went wrong" in c["text"]]
                return button["callback_data"], sent

    data, sent = run(scenario())

    async def after_restart():
        with FakeTelegram() as fake:
            async with running_bot(fake, sample_engine):
                fake.push(callback_query={"id": "cb2", "from": user(ALICE), "chat_instance": "ci", "data": data,
                                          "message": {**sent, "chat": {"id": ALICE, "type": "private"}}})
                fake.messages[(ALICE, sent["message_id"])] = sent
                (edit,) = await fake.wait_for(lambda: fake.sent("editMessageText"))
                assert "4." in answer_text(edit), "the button survives a restart"
                fake.push(callback_query={"id": "cb3", "from": user(ALICE), "chat_instance": "ci",
                                          "data": "more:unknownid000:3", "message": {**sent, "chat": {"id": ALICE, "type": "private"}}})
                expired = await fake.wait_for(lambda: [c for c in fake.sent("answerCallbackQuery") if c.get("text")])
                assert "expired" in expired[0]["text"]

    run(after_restart())


def test_abstention_says_so_in_one_sentence_without_citations(sample_engine):
    async def scenario():
        with FakeTelegram() as fake:
            async with running_bot(fake, sample_engine):
                asked = message("What is the capital of Peru?")
                fake.push(message=asked)
                (reply,) = await fake.wait_for(lambda: fake.replies_to(ALICE, asked["message_id"]))
                assert "could not find" in answer_text(reply) and "rephras" in answer_text(reply)
                assert "—" not in answer_text(reply)
                # Only the vote buttons: a 👎 on "I don't know" tells the admins what to add.
                assert [b["text"] for b in reply["reply_markup"]["inline_keyboard"][0]] == ["👍", "👎"]

    run(scenario())


def test_group_answers_ask_mentions_and_replies_but_ignores_chatter(sample_engine):
    async def scenario():
        with FakeTelegram() as fake:
            async with running_bot(fake, sample_engine):
                ask = message(f"/ask@{fake.username} {BATTLEGROUPS}", chat_id=GROUP)
                mention = message(f"@{fake.username} what did Zelenskyy accuse Russia of?", chat_id=GROUP)
                chatter = message("lol did anyone watch the match", chat_id=GROUP)
                for update in (ask, mention, chatter):
                    fake.push(message=update)
                (a,) = await fake.wait_for(lambda: fake.replies_to(GROUP, ask["message_id"]))
                (m,) = await fake.wait_for(lambda: fake.replies_to(GROUP, mention["message_id"]))
                assert "Bulgaria" in answer_text(a) and "Zelenskyy" in answer_text(m)

                bot_message = fake.messages[(GROUP, max(k[1] for k in fake.messages if k[0] == GROUP))]
                follow_up = message("And what will NATO do at sea?", chat_id=GROUP,
                                    reply_to_message={**bot_message, "chat": {"id": GROUP, "type": "supergroup"}})
                fake.push(message=follow_up)
                (f,) = await fake.wait_for(lambda: fake.replies_to(GROUP, follow_up["message_id"]))
                assert "submarines" in answer_text(f)
                await asyncio.sleep(0.5)
                assert not fake.replies_to(GROUP, chatter["message_id"]), "ordinary chatter is ignored"

    run(scenario())


def test_channel_posts_starting_with_ask_are_answered_in_the_channel(sample_engine):
    async def scenario():
        with FakeTelegram() as fake:
            async with running_bot(fake, sample_engine):
                channel = {"id": CHANNEL, "type": "channel", "title": "Newsroom"}
                post = {"message_id": next(_ids), "date": int(time.time()), "chat": channel, "sender_chat": channel,
                        "text": f"/ask {BATTLEGROUPS}", "entities": [{"type": "bot_command", "offset": 0, "length": 4}]}
                other = {**post, "message_id": next(_ids), "text": "Today's newsletter is out", "entities": []}
                fake.push(channel_post=post)
                fake.push(channel_post=other)
                (reply,) = await fake.wait_for(lambda: fake.replies_to(CHANNEL, post["message_id"]))
                assert "Bulgaria" in answer_text(reply)
                await asyncio.sleep(0.5)
                assert not fake.replies_to(CHANNEL, other["message_id"])

    run(scenario())


def test_inline_query_returns_one_result_per_excerpt(sample_engine):
    async def scenario():
        with FakeTelegram() as fake:
            async with running_bot(fake, sample_engine):
                fake.push(inline_query={"id": "iq1", "from": user(ALICE), "query": BATTLEGROUPS, "offset": ""})
                (call,) = await fake.wait_for(lambda: fake.sent("answerInlineQuery"))
                results = call["results"]
                assert 1 <= len(results) <= 10
                assert call["is_personal"] is False and call["cache_time"] > 0
                first = results[0]
                assert first["type"] == "article" and "Bulgaria" in first["description"]
                assert first["title"] in {"Nato summit in Brussels: live updates",
                                          "NATO allies agree to bolster the eastern flank and send more help to Ukraine"}
                assert "—" in parse_telegram_html(first["input_message_content"]["message_text"])

    run(scenario())


def test_hostile_unusual_and_non_text_messages(tmp_path, embedder):
    corpus = write_corpus(tmp_path / "corpus", {
        "xss.txt": "Title: Hackers use <script> tags & <b>bold</b> claims\nSource: Sec & Co <i>\n\n"
                   "Attackers hid <script>alert(1)</script> in comments & used <b>fake</b> bold text, "
                   "researchers at Example Labs said on Monday.",
    })
    engine = Engine(Settings(data_dir=tmp_path / "data", corpus_dir=corpus), embedder)
    engine.build()

    async def scenario():
        with FakeTelegram() as fake:
            async with running_bot(fake, engine):
                hostile = message("What did attackers hide in <script> comments & <b>where</b>?")
                huge = message("why " * 2500)
                emoji = message("🚀🚀 What did the attackers hide 🕵️‍♀️🔥 in comments? 🎉🎉")
                rtl = message("ماذا أخفى المهاجمون في التعليقات؟")
                sticker = message("", sticker={"file_id": "s", "file_unique_id": "u", "type": "regular",
                                               "width": 512, "height": 512, "is_animated": False, "is_video": False})
                sticker.pop("text")
                edited = message("What did the attackers hide?")
                for update in (hostile, huge, emoji, rtl):
                    fake.push(message=update)
                fake.push(message=sticker)
                fake.push(edited_message={**edited, "edit_date": int(time.time())})
                h = (await fake.wait_for(lambda: fake.replies_to(ALICE, hostile["message_id"])))[0]
                assert "<script>alert(1)</script>" in answer_text(h), "shown literally, escaped on the wire"
                assert "Sec & Co <i>" in answer_text(h)
                big = (await fake.wait_for(lambda: fake.replies_to(ALICE, huge["message_id"])))[0]
                assert "under 1000 characters" in answer_text(big)
                e = (await fake.wait_for(lambda: fake.replies_to(ALICE, emoji["message_id"])))[0]
                assert "alert(1)" in answer_text(e)
                r = (await fake.wait_for(lambda: fake.replies_to(ALICE, rtl["message_id"])))[0]
                assert answer_text(r)
                hint = await fake.wait_for(lambda: [c for c in fake.sent("sendMessage") if "read text only" in c["text"]])
                assert hint[0]["chat_id"] == ALICE
                # Updates are handled in order of arrival: once a later question is answered, an
                # answer to the edit (or an apology) would have been sent already.
                last = message("What did the attackers hide in comments?")
                fake.push(message=last)
                await fake.wait_for(lambda: fake.replies_to(ALICE, last["message_id"]))
                await asyncio.sleep(0.3)
                assert not [c for c in fake.sent("sendMessage") if "went wrong" in c["text"]]
                assert not fake.replies_to(ALICE, edited["message_id"]), "edited messages get no answer"

    run(scenario())


def test_rate_limit_notifies_once_then_stays_silent(sample_engine):
    async def scenario():
        with FakeTelegram() as fake:
            async with running_bot(fake, sample_engine, rate_limit=2, rate_window=60):
                asked = [message(f"Question {i}: where are the new battlegroups?") for i in range(5)]
                for m in asked:
                    fake.push(message=m)
                    await asyncio.sleep(0.05)
                await fake.wait_for(lambda: len(fake.sent("sendMessage")) >= 3)
                await asyncio.sleep(1.0)
                texts = [answer_text(c) for c in fake.sent("sendMessage")]
                assert len(texts) == 3
                assert sum("faster than I can answer" in t for t in texts) == 1
                assert sum("Bulgaria" in t for t in texts) == 2

    run(scenario())


def test_a_429_from_telegram_is_retried_after_retry_after(sample_engine):
    async def scenario():
        with FakeTelegram() as fake:
            async with running_bot(fake, sample_engine):
                fake.fail_next("sendMessage", times=1, retry_after=1)
                asked = message(BATTLEGROUPS)
                fake.push(message=asked)
                await fake.wait_for(lambda: fake.replies_to(ALICE, asked["message_id"]))
                attempts = [at for name, _, at in fake.calls if name == "sendMessage"]
                assert len(attempts) == 2 and attempts[1] - attempts[0] >= 1.0

    run(scenario())


def test_a_bot_that_cannot_set_its_menu_at_start_still_answers(sample_engine, caplog):
    async def scenario():
        with FakeTelegram() as fake:
            fake.break_next("setMyCommands")
            async with running_bot(fake, sample_engine):
                asked = message(BATTLEGROUPS)
                fake.push(message=asked)
                (reply,) = await fake.wait_for(lambda: fake.replies_to(ALICE, asked["message_id"]))
                assert "Bulgaria" in answer_text(reply)

    run(scenario())
    assert any("Could not set the commands menu" in r.getMessage() for r in caplog.records)


@pytest.mark.postgres
def test_a_bot_whose_database_goes_away_says_so_in_one_sentence_and_answers_when_it_is_back(tmp_path, embedder,
                                                                                             caplog):
    from index.store.database import Database
    from index.store.local_postgres import LocalPostgres

    kept = Path(tempfile.mkdtemp(prefix="citebot-pg-away-"))  # in /tmp, where the server's account may go
    server = LocalPostgres(folder=kept, durable=True).start()
    url = server.create_database("away")
    engine = Engine(Settings(data_dir=tmp_path / "data", corpus_dir=SAMPLE_CORPUS, database_url=url), embedder)
    engine.build()

    async def ask(fake) -> str:
        asked = message(BATTLEGROUPS)
        fake.push(message=asked)
        (reply,) = await fake.wait_for(lambda: fake.replies_to(ALICE, asked["message_id"]), timeout=60)
        return answer_text(reply)

    async def scenario():
        with FakeTelegram() as fake:
            async with running_bot(fake, engine, rate_limit=100):
                assert "Bulgaria" in await ask(fake)
                server.stop()
                assert await ask(fake) == "I cannot reach my article database just now; please try again in a minute."
                server.start()
                assert "Bulgaria" in await ask(fake), "the pool reconnects when the database is back"

    try:
        run(scenario())
    finally:
        Database.close_shared()
        server.stop()
        shutil.rmtree(kept, ignore_errors=True)
    logged = [r.getMessage() for r in caplog.records]
    assert any("cannot be reached" in m or "lost" in m for m in logged)
    assert not any("Error while handling" in m for m in logged)
    assert not any(server.password in m for m in logged)


def test_an_admins_refresh_while_another_replica_fetches_says_so_and_fetches_nothing(tmp_path, embedder,
                                                                                     new_database):
    from index.store.database import Database

    url = new_database()
    engine = Engine(Settings(data_dir=tmp_path / "data", corpus_dir=SAMPLE_CORPUS, database_url=url), embedder)

    async def scenario():
        with FakeTelegram() as fake:
            async with running_bot(fake, engine):
                with Database.shared(url).try_lock("citebot:refresh") as mine:  # the other replica's refresh
                    assert mine
                    asked = message("/refresh", uid=ADMIN, chat_id=ADMIN)
                    fake.push(message=asked)
                    await fake.wait_for(lambda: [m for (c, _), m in fake.messages.items()
                                                 if c == ADMIN and "Another replica" in m["text"]])

    run(scenario())


def test_only_admins_may_reindex_and_see_stats(tmp_path, embedder):
    corpus = write_corpus(tmp_path / "corpus", {"a.txt": "Title: Rates\n\nThe central bank raised rates to 5.25% on Thursday."})
    engine = Engine(Settings(data_dir=tmp_path / "data", corpus_dir=corpus), embedder)
    engine.build()
    build = current_build_dir(engine.settings.index_root)

    async def scenario():
        with FakeTelegram() as fake:
            async with running_bot(fake, engine):
                (corpus / "b.txt").write_text("Title: Copper\n\nCopper hit a record as Chilean mines cut output.")
                for text in ("/reindex", "/stats"):
                    m = message(text)
                    fake.push(message=m)
                    (reply,) = await fake.wait_for(lambda: fake.replies_to(ALICE, m["message_id"]))
                    assert "only the bot's admins" in answer_text(reply)
                stats = message("/stats", chat_id=ADMIN, uid=ADMIN)
                fake.push(message=stats)
                (reply,) = await fake.wait_for(lambda: fake.replies_to(ADMIN, stats["message_id"]))
                assert "1 documents" in answer_text(reply) and "Questions answered" in answer_text(reply)

                for f in corpus.iterdir():
                    f.unlink()
                failing = message("/reindex", chat_id=ADMIN, uid=ADMIN)
                fake.push(message=failing)
                failed = await fake.wait_for(lambda: [e for e in fake.sent("editMessageText") if "failed" in e["text"]])
                assert "No readable articles" in answer_text(failed[-1])
                assert "previous index is still answering" in answer_text(failed[-1])
                question = message("What did the central bank do?")
                fake.push(message=question)
                (reply,) = await fake.wait_for(lambda: fake.replies_to(ALICE, question["message_id"]))
                assert "5.25%" in answer_text(reply)

    run(scenario())
    assert current_build_dir(engine.settings.index_root) == build, "a refused /reindex builds nothing"


def test_admin_reindex_while_twenty_questions_are_in_flight(tmp_path, embedder):
    corpus = write_corpus(tmp_path / "corpus", {
        "rates.txt": "Title: Central bank raises rates\nSource: Wire\n\nThe central bank raised its main rate to 5.25% "
                     "on Thursday to fight inflation.",
    })
    engine = Engine(Settings(data_dir=tmp_path / "data", corpus_dir=corpus), embedder)
    engine.build()
    # The new corpus changes the answer (5.25% -> 5.50%) and holds enough new text that the build
    # takes seconds, so the questions below are answered while it runs.
    (corpus / "rates.txt").write_text("Title: Central bank raises rates\nSource: Wire\n\nThe central bank raised "
                                      "its main rate to 5.50% on Thursday to fight inflation.")
    for i in range(150):
        (corpus / f"filler{i}.txt").write_text(
            f"Title: Harbour report {i}\n\n" + " ".join(f"Ship {i}-{j} docked at berth {j} after a calm crossing."
                                                      for j in range(12)))
    (corpus / "copper.txt").write_text("Title: Copper hits a high\nSource: Wire\n\nCopper prices hit an all-time high "
                                       "as mines in Chile cut output after strikes.")

    async def scenario():
        with FakeTelegram() as fake:
            async with running_bot(fake, engine, rate_limit=100):
                command = message("/reindex", chat_id=ADMIN, uid=ADMIN)
                fake.push(message=command)
                (status,) = await fake.wait_for(lambda: fake.replies_to(ADMIN, command["message_id"]))
                assert "Reindexing" in answer_text(status)
                again = message("/reindex", chat_id=ADMIN, uid=ADMIN)
                fake.push(message=again)
                questions = [message("What did the central bank do to rates?", chat_id=2000 + i, uid=2000 + i) for i in range(20)]
                for q in questions:
                    fake.push(message=q)
                (busy,) = await fake.wait_for(lambda: fake.replies_to(ADMIN, again["message_id"]))
                assert "already running" in answer_text(busy)
                replies = []
                for q in questions:
                    (reply,) = await fake.wait_for(lambda q=q: fake.replies_to(q["chat"]["id"], q["message_id"]))
                    replies.append(reply)
                done = await fake.wait_for(lambda: [e for e in fake.sent("editMessageText") if "Reindex done" in e["text"]],
                                           timeout=240, what="the reindex to finish")
                assert "152 documents" in answer_text(done[-1])
                for reply in replies:
                    assert fake.position(reply) < fake.position(done[-1]), "answered while the build ran"
                    assert "5.25%" in answer_text(reply), "from the old index"
                progress = [e for e in fake.sent("editMessageText") if e["message_id"] == done[-1]["message_id"]]
                assert progress[-1] is done[-1], "no progress edit lands after the final one"
                after = message("What did the central bank do to rates?", chat_id=3000, uid=3000)
                fake.push(message=after)
                (reply,) = await fake.wait_for(lambda: fake.replies_to(3000, after["message_id"]))
                assert "5.50%" in answer_text(reply), "the new index answers without a restart"

    run(scenario())


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_webhook_mode_accepts_only_telegrams_secret_token(sample_engine):
    async def scenario():
        with FakeTelegram() as fake:
            config = BotConfig(token=fake.token, api_url=fake.base_url, webhook_url="https://bot.example/citebot-hook",
                               webhook_secret="s3cret-token", listen="127.0.0.1", port=_free_port())
            app = build_application(config, sample_engine)
            await app.initialize()
            await app.updater.start_webhook(**webhook_options(config))
            await app.start()
            try:
                (hook,) = fake.sent("setWebhook")
                assert hook["url"] == "https://bot.example/citebot-hook" and hook["secret_token"] == "s3cret-token"
                allowed = hook["allowed_updates"]
                allowed = json.loads(allowed) if isinstance(allowed, str) else allowed
                assert set(allowed) == {"message", "channel_post", "inline_query", "callback_query", "my_chat_member"}
                asked = message(BATTLEGROUPS)
                update = json.dumps({"update_id": 1, "message": asked})
                url = f"http://127.0.0.1:{config.port}/citebot-hook"
                async with httpx.AsyncClient() as client:
                    forged = await client.post(url, content=update, headers={
                        "Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": "guess"})
                    assert forged.status_code == 403
                    real = await client.post(url, content=update, headers={
                        "Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": "s3cret-token"})
                    assert real.status_code == 200
                (reply,) = await fake.wait_for(lambda: fake.replies_to(ALICE, asked["message_id"]))
                assert "Bulgaria" in answer_text(reply)
            finally:
                await app.updater.stop()
                await app.stop()
                await app.shutdown()

    run(scenario())


def test_long_answers_split_between_citations_within_telegrams_limit():
    excerpt = ("Troops 🚀 & <tanks> moved east, officials said. " * 30).strip()
    citations = tuple(
        Citation(rank=i, excerpt=excerpt, score=1.0, similarity=0.9, title=f"Report <{i}> & more", source="Wire",
                 url=f"https://news.example/{i}?a=1&b=2", published="2024-01-01", doc_id="d", chunk_id=f"d:{i}",
                 char_start=0, char_end=len(excerpt))
        for i in range(1, 11)
    )
    parts = render_answer(Answer("q", False, citations, "hybrid"), 0, 10)
    assert len(parts) > 1
    shown = [parse_telegram_html(p) for p in parts]  # raises if Telegram would reject the HTML
    assert all(utf16_len(text) <= 4096 for text in shown)
    numbers = [int(line.split(".")[0]) for text in shown for line in text.split("\n") if line[:2].rstrip(".").isdigit()]
    assert numbers == list(range(1, 11)), "every citation once, in order, none cut in two"
    assert "<tanks>" in shown[0] and "Report <1> & more" in shown[0]

    page, count = render_page(Answer("q", False, citations, "hybrid"), 3, 3)  # what "More" shows
    assert count == len(parts[0].split("\n\n<b>")), "a page holds what fits; the button continues from there"
    assert utf16_len(parse_telegram_html(page)) <= 4096

    syndicated = Citation(**{**citations[0].__dict__, "also_in": tuple(
        SourceRef(f"Copy {i}", "", "", "", f"d{i}") for i in range(20))})
    shown_one = parse_telegram_html(render_citation(syndicated))
    assert "and 15 more" in shown_one and utf16_len(shown_one) <= 4096


def test_bad_configuration_gets_one_clear_sentence(monkeypatch):
    monkeypatch.setenv("CITEBOT_ADMIN_IDS", "12345, @bob")
    with pytest.raises(ConfigError, match="numeric Telegram user ids"):
        BotConfig.from_env()
    monkeypatch.setenv("CITEBOT_ADMIN_IDS", "12345,678")
    assert BotConfig.from_env().admin_ids == {12345, 678}
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "not-a-token")
    with pytest.raises(ConfigError, match="BotFather"):
        BotConfig.from_env()

    env = {**os.environ, "TELEGRAM_BOT_TOKEN": "1:x", "CITEBOT_WEBHOOK_URL": "http://insecure.example/hook"}
    result = subprocess.run([sys.executable, "-m", "bot.cli", "serve"], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert result.returncode == 2 and "CITEBOT_WEBHOOK_URL must be an https://" in result.stderr
    assert "Traceback" not in result.stderr


def test_typing_shows_only_while_an_answer_is_slow(sample_engine, monkeypatch):
    import bot.handlers

    async def scenario(typing_after: float) -> list[tuple[str, dict]]:
        monkeypatch.setattr(bot.handlers, "TYPING_AFTER", typing_after)
        with FakeTelegram() as fake:
            async with running_bot(fake, sample_engine):
                asked = message(BATTLEGROUPS)
                fake.push(message=asked)
                (reply,) = await fake.wait_for(lambda: fake.replies_to(ALICE, asked["message_id"]))
                await asyncio.sleep(0.2)  # a late "typing" would show up here
                return [("reply", reply)] + [("typing", t) for t in fake.sent("sendChatAction")]

    # An answer slower than the delay (here: any answer) shows "typing…" as well as the answer.
    assert sorted(c for c, _ in run(scenario(0.0))) == ["reply", "typing"]
    # A quick answer spends no request on it (each one counts against Telegram's flood limit).
    assert [c for c, _ in run(scenario(60.0))] == ["reply"]


def test_a_slow_answer_in_a_forum_topic_shows_typing_in_that_topic(sample_engine, monkeypatch):
    import bot.handlers

    monkeypatch.setattr(bot.handlers, "TYPING_AFTER", 0.0)  # every answer counts as slow here

    async def scenario():
        with FakeTelegram() as fake:
            async with running_bot(fake, sample_engine):
                asked = message(f"@{fake.username} {BATTLEGROUPS}", chat_id=GROUP, message_thread_id=77,
                                is_topic_message=True)
                fake.push(message=asked)
                await fake.wait_for(lambda: fake.replies_to(GROUP, asked["message_id"]))
                (typing,) = await fake.wait_for(lambda: fake.sent("sendChatAction"))
                assert typing["action"] == "typing" and int(typing["message_thread_id"]) == 77

    run(scenario())


def test_a_citation_links_only_web_addresses():
    from bot.render import linkable

    for url, ok in [("https://example.org/a?b=1", True), ("http://x.y/", True), ("javascript:alert(1)", False),
                    ("ftp://files.example.org/a", False), ("https://", False), ("http://exa mple.org", False)]:
        assert linkable(url) is ok, url
    bad = Citation(1, "Prices rose.", 1.0, 0.5, "Prices", "Wire", "javascript:alert(1)", "", "d", "d:0", 0, 12)
    assert "<a " not in render_citation(bad) and "<i>Prices</i>" in render_citation(bad)


def test_a_webhook_secret_over_256_characters_is_refused_at_start(monkeypatch):
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "123:abc")
    monkeypatch.setenv("CITEBOT_WEBHOOK_SECRET", "a" * 257)
    with pytest.raises(ConfigError, match="1-256 characters"):
        BotConfig.from_env()
    monkeypatch.setenv("CITEBOT_WEBHOOK_SECRET", "é" * 10)
    with pytest.raises(ConfigError):
        BotConfig.from_env()
    monkeypatch.setenv("CITEBOT_WEBHOOK_SECRET", "a" * 256)
    assert BotConfig.from_env().webhook_secret == "a" * 256


def test_inline_without_an_answer_says_why_and_is_not_cached_for_everyone(sample_engine):
    async def scenario():
        with FakeTelegram() as fake:
            async with running_bot(fake, sample_engine):
                fake.push(inline_query={"id": "iq2", "from": user(ALICE), "query": "What is the capital of Peru?",
                                        "offset": ""})
                fake.push(inline_query={"id": "iq3", "from": user(ALICE), "query": "  ", "offset": ""})
                calls = await fake.wait_for(lambda: len(fake.sent("answerInlineQuery")) == 2 and
                                            fake.sent("answerInlineQuery"))
                by_id = {c["inline_query_id"]: c for c in calls}
                for call in by_id.values():
                    assert call["results"] == [] and call["is_personal"] is True and int(call["cache_time"]) == 0
                    assert call["button"]["start_parameter"] == "inline"
                assert "Not in my articles" in by_id["iq2"]["button"]["text"]
                assert "Type a question" in by_id["iq3"]["button"]["text"]

    run(scenario())


def test_a_more_button_whose_answer_fails_still_stops_the_spinner(tmp_path, embedder):
    from bot.history import callback_data

    engine = Engine(Settings(data_dir=tmp_path / "empty"), embedder)  # no index: every answer fails

    async def scenario():
        with FakeTelegram() as fake:
            async with running_bot(fake, engine) as app:
                qid = app_state(app).history.remember(BATTLEGROUPS)
                shown = {"message_id": 5, "date": int(time.time()), "chat": {"id": ALICE, "type": "private"},
                         "text": "1. an earlier answer"}
                fake.push(callback_query={"id": "cbx", "from": user(ALICE), "chat_instance": "ci",
                                          "data": callback_data(qid, 3), "message": shown})
                (call,) = await fake.wait_for(lambda: fake.sent("answerCallbackQuery"))
                assert call["callback_query_id"] == "cbx" and "went wrong" in call["text"]

    run(scenario())


def test_a_photo_whose_caption_mentions_the_bot_is_a_question(sample_engine):
    async def scenario():
        with FakeTelegram() as fake:
            async with running_bot(fake, sample_engine):
                caption = f"@{fake.username} {BATTLEGROUPS}"
                photo = {"message_id": next(_ids), "date": int(time.time()), "from": user(ALICE),
                         "chat": {"id": GROUP, "type": "supergroup", "title": "News fans"},
                         "photo": [{"file_id": "p1", "file_unique_id": "u1", "width": 90, "height": 60}],
                         "caption": caption,
                         "caption_entities": [{"type": "mention", "offset": 0, "length": len(fake.username) + 1}]}
                fake.push(message=photo)
                (reply,) = await fake.wait_for(lambda: fake.replies_to(GROUP, photo["message_id"]))
                assert "Bulgaria" in answer_text(reply)

    run(scenario())
