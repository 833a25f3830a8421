"""Two replicas of the real bot (`citebot serve` in webhook mode, each its own process and data
folder) share one PostgreSQL database; Telegram (the fake Bot API, and this test posting updates
to their webhooks) reaches them alternately, and users see one bot."""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import psycopg
import pytest

from .fake_telegram import FakeTelegram, parse_telegram_html

pytestmark = [pytest.mark.postgres, pytest.mark.model, pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent
SECRET = "replica-secret"
ADMIN, ALICE, BOB, CAROL, DAN = 4242, 1001, 1002, 1003, 1004
BATTLEGROUPS = "How many new battlegroups did NATO agree to deploy, and where?"
GLACIER = ("Glacier lake drained", "A glacier lake above the village of Tarnow drained overnight on Friday, "
           "sending 2 million cubic metres of water into the valley. Nobody was hurt, the mayor said.")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait(predicate, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError("timed out waiting")


class Replica:
    """One `citebot serve` process: its webhook and health ports."""

    def __init__(self, name: str, env: dict, tmp: Path, fake: FakeTelegram):
        self.name, self.port, self.metrics, self.fake = name, _free_port(), _free_port(), fake
        self.log = open(tmp / f"{name}.log", "w+")
        self.env = {**env, "CITEBOT_DATA_DIR": str(tmp / name), "PORT": str(self.port),
                    "CITEBOT_METRICS_PORT": str(self.metrics)}
        self.process = subprocess.Popen([sys.executable, "-m", "bot.cli", "serve"], cwd=ROOT, env=self.env,
                                        stdout=self.log, stderr=subprocess.STDOUT)

    def listening(self) -> bool:
        """Healthy, and its webhook takes connections."""
        if not self.healthy():
            return False
        with socket.socket() as sock:
            return sock.connect_ex(("127.0.0.1", self.port)) == 0

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics}/healthz", timeout=2) as r:
                return r.status == 200
        except (OSError, urllib.error.URLError):
            return False

    def deliver(self, update: dict) -> int:
        """POST an update as Telegram does; the HTTP status (0: the replica could not be reached)."""
        self.fake.delivered(update)
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/hook", data=json.dumps(update).encode(), method="POST",
            headers={"Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": SECRET})
        try:
            with urllib.request.urlopen(request, timeout=5) as r:
                return r.status
        except urllib.error.HTTPError as exc:
            return exc.code
        except OSError:
            return 0

    def stop(self) -> str:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.log.seek(0)
        return self.log.read()


@pytest.fixture
def two_replicas(tmp_path, new_database):
    url = new_database()
    corpus = tmp_path / "corpus"
    shutil.copytree(ROOT / "corpus", corpus)
    with FakeTelegram() as fake:
        env = {**os.environ, "CITEBOT_DATABASE_URL": url, "CITEBOT_CORPUS_DIR": str(corpus),
               "TELEGRAM_BOT_TOKEN": fake.token, "CITEBOT_TELEGRAM_API_URL": fake.base_url,
               "CITEBOT_ADMIN_IDS": str(ADMIN), "CITEBOT_REFRESH_MINUTES": "0", "CITEBOT_RATE_LIMIT": "4",
               "CITEBOT_RATE_WINDOW": "600", "CITEBOT_WEBHOOK_URL": "https://bot.example/hook",
               "CITEBOT_WEBHOOK_SECRET": SECRET, "CITEBOT_LISTEN": "127.0.0.1"}
        # One build into the database; the replicas' own data folders hold no index.
        subprocess.run([sys.executable, "-m", "bot.cli", "-q", "build"], cwd=ROOT, check=True, timeout=600,
                       env={**env, "CITEBOT_DATA_DIR": str(tmp_path / "builder")}, capture_output=True)
        replicas = [Replica("a", env, tmp_path, fake), Replica("b", env, tmp_path, fake)]
        try:
            for r in replicas:
                _wait(r.listening, 120)
            yield fake, replicas, url, corpus
        finally:
            logs = [r.stop() for r in replicas]
            for name, logged in zip("ab", logs):
                assert "Traceback" not in logged and "Error while handling" not in logged, f"replica {name}:\n{logged[-3000:]}"


_ids = iter(range(10**6, 10**9))  # far from the fake's ids for the bot's messages


def message(text: str, uid: int = ALICE, **extra) -> dict:
    m = {"message_id": next(_ids), "date": int(time.time()), "chat": {"id": uid, "type": "private", "first_name": "u"},
         "from": {"id": uid, "is_bot": False, "first_name": "u"}, "text": text, **extra}
    if text.startswith("/"):
        m["entities"] = [{"type": "bot_command", "offset": 0, "length": len(text.split()[0])}]
    return m


def update(**content) -> dict:
    return {"update_id": next(_ids), **content}


def press(fake: FakeTelegram, answer: dict, button: str, uid: int = ALICE) -> dict:
    data = next(b["callback_data"] for row in answer["reply_markup"]["inline_keyboard"] for b in row
                if b["text"].startswith(button))
    return update(callback_query={"id": f"cb{next(_ids)}", "from": {"id": uid, "is_bot": False, "first_name": "u"},
                                  "chat_instance": "ci", "data": data,
                                  "message": {**answer, "chat": {"id": uid, "type": "private"}}})


def replies(fake: FakeTelegram, m: dict) -> list[dict]:
    return fake.replies_to(m["chat"]["id"], m["message_id"])


def last_answer(fake: FakeTelegram, chat: int) -> dict:
    """The bot's latest message in a chat, as Telegram holds it (id, text, buttons)."""
    return fake.messages[(chat, max(m for c, m in fake.messages if c == chat))]


def test_two_replicas_on_one_database_answer_as_one_bot(two_replicas):
    fake, (a, b), url, corpus = two_replicas

    # A question answered by A; "More" and a follow-up reply handled by B, from the shared memory.
    asked = message(BATTLEGROUPS)
    assert a.deliver(update(message=asked)) == 200
    (reply,) = _wait(lambda: replies(fake, asked))
    assert "Bulgaria" in parse_telegram_html(reply["text"])
    answer = last_answer(fake, ALICE)
    more = press(fake, answer, "More")
    assert b.deliver(more) == 200
    _wait(lambda: [c for c in fake.sent("answerCallbackQuery") if c["callback_query_id"] == more["callback_query"]["id"]])
    assert _wait(lambda: fake.sent("editMessageText")), "B showed the next citations of A's answer"
    follow = message("Where will they be sent?", reply_to_message={**answer, "from": fake.bot_user})
    assert b.deliver(update(message=follow)) == 200
    (followed,) = _wait(lambda: replies(fake, follow))
    assert "searched as" in parse_telegram_html(followed["text"]), "B read the follow-up in A's answer's context"

    # A vote pressed on both replicas counts once.
    for replica in (a, b):
        vote = press(fake, answer, "👍")
        assert replica.deliver(vote) == 200
        _wait(lambda: [c for c in fake.sent("answerCallbackQuery")
                       if c["callback_query_id"] == vote["callback_query"]["id"]])
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT count(*) FROM bot_votes").fetchone()[0] == 1

    # A flooding user is limited across both replicas (4 questions per window in all).
    flood = [message("Where was the NATO summit held?", uid=BOB) for _ in range(6)]
    for i, m in enumerate(flood):
        assert (a, b)[i % 2].deliver(update(message=m)) == 200
        time.sleep(0.3)
    time.sleep(2)
    answered = [m for m in flood if any(r.get("reply_markup") for r in replies(fake, m))]
    told = [m for m in flood if any("faster than I can answer" in r["text"] for r in replies(fake, m))]
    assert len(answered) == 4 and len(told) == 1, "four answers, one warning, then silence"

    # An admin's /reindex on A: B answers from the new article on its next question.
    (corpus / "glacier.json").write_text(json.dumps({"title": GLACIER[0], "text": GLACIER[1],
                                                     "published": "2026-12-01", "source": "Alpine Post"}))
    reindex = message("/reindex", uid=ADMIN)
    assert a.deliver(update(message=reindex)) == 200
    done = _wait(lambda: [m for (c, _), m in fake.messages.items() if c == ADMIN and "Reindex" in m["text"]
                          and "Reindexing" not in m["text"]], 300)
    assert "Reindex done. Indexed 3 documents" in done[0]["text"] and "1 embedded" in done[0]["text"]
    asked = message("How much water did the glacier lake release?", uid=CAROL)
    assert b.deliver(update(message=asked)) == 200
    (glacier,) = _wait(lambda: replies(fake, asked))
    assert "2 million cubic metres" in parse_telegram_html(glacier["text"])

    # A killed mid-question: B keeps answering, and no question is answered twice.
    in_flight = message("What did Zelensky ask NATO for?", uid=DAN)
    a.deliver(update(message=in_flight))
    a.process.send_signal(signal.SIGKILL)
    a.process.wait(30)
    assert a.deliver(update(message=message("Where was the NATO summit held?", uid=CAROL))) == 0, "A is gone"
    after = [message(q, uid=DAN) for q in ("Where was the NATO summit held?", "What did Biden say about chemical weapons?")]
    for m in after:
        assert b.deliver(update(message=m)) == 200
    for m in after:
        assert len(_wait(lambda: replies(fake, m))) == 1
    assert b.healthy()
    time.sleep(2)
    assert len(replies(fake, in_flight)) <= 1, "never answered twice"
