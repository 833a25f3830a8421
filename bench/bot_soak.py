"""Soak: the real bot, unmodified (`citebot serve` in its own process), in a scripted conversation
with several users against the fake Bot API server, for some minutes; then a check that nothing
was lost or sent twice.

Users in private chats ask questions, reply to answers with follow-ups ("Where?", "tell me
more"), press More, vote 👍/👎 and change their minds; a group asks with /ask and mentions, and
chatters in between. Checked at the end: every question got exactly one reply, chatter got none,
every button press was answered exactly once, no reply went to a message twice, the bot logged
no error, and it stopped cleanly on SIGINT.

    python bench/bot_soak.py [--minutes 10] [--users 6] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.fake_telegram import FakeTelegram  # noqa: E402

QUESTIONS = [
    "How many new battlegroups did NATO agree to deploy?",
    "What did Zelensky ask NATO for?",
    "Where was the NATO summit held?",
    "What did Biden say about chemical weapons?",
    "What did Stoltenberg say about the eastern flank?",
    "What is the capital of Peru?",
]
FOLLOW_UPS = ["Where?", "tell me more", "Who said that?", "And what about Ukraine?"]
CHATTER = ["lol", "anyone watching the match tonight?", "good morning all"]
ADMIN = 4242
GROUP = -100500


def _env(data: Path, corpus: Path, fake: FakeTelegram) -> dict:
    env = {**os.environ, "CITEBOT_DATA_DIR": str(data), "CITEBOT_CORPUS_DIR": str(corpus),
           "TELEGRAM_BOT_TOKEN": fake.token, "CITEBOT_TELEGRAM_API_URL": fake.base_url,
           "CITEBOT_ADMIN_IDS": str(ADMIN), "CITEBOT_REFRESH_MINUTES": "0", "CITEBOT_RATE_LIMIT": "1000"}
    env.pop("CITEBOT_WEBHOOK_URL", None)
    return env


def _wait(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def soak(minutes: float = 10.0, users: int = 6, seed: int = 7, corpus: Path = ROOT / "corpus") -> dict:
    """Run the scripted conversation; returns the counts and the problems found (empty = none)."""
    rng = random.Random(seed)
    ids = iter(range(1, 10**9))
    with tempfile.TemporaryDirectory() as tmp, FakeTelegram() as fake:
        data = Path(tmp) / "data"
        env = _env(data, corpus, fake)
        cli = [sys.executable, "-m", "bot.cli"]
        subprocess.run(cli + ["-q", "build"], cwd=ROOT, env=env, check=True, capture_output=True, timeout=600)
        log = open(Path(tmp) / "serve.log", "w+")
        bot = subprocess.Popen(cli + ["serve"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        questions: list[tuple[int, int]] = []  # (chat, message id) that must get exactly one reply
        chatter: list[tuple[int, int]] = []  # that must get none
        presses: list[str] = []  # callback query ids that must be answered exactly once
        try:
            if not _wait(lambda: fake.sent("getUpdates"), 120):
                raise RuntimeError("the bot did not start polling")

            def msg(chat: int, uid: int, text: str, **extra) -> dict:
                chat_obj = {"id": chat, "type": "private", "first_name": f"u{uid}"} if chat > 0 else \
                    {"id": chat, "type": "supergroup", "title": "Soak group"}
                m = {"message_id": next(ids), "date": int(time.time()), "chat": chat_obj,
                     "from": {"id": uid, "is_bot": False, "first_name": f"u{uid}"}, "text": text, **extra}
                if text.startswith("/"):
                    m["entities"] = [{"type": "bot_command", "offset": 0, "length": len(text.split()[0])}]
                elif "@" in text:
                    at = text.index("@")
                    m["entities"] = [{"type": "mention", "offset": at, "length": len(text[at:].split()[0])}]
                return m

            def bot_answers(chat: int) -> list[dict]:
                return [m for (c, _), m in sorted(fake.messages.items()) if c == chat and m.get("reply_markup")]

            deadline = time.monotonic() + minutes * 60
            step = 0
            while time.monotonic() < deadline:
                step += 1
                uid = 1000 + rng.randrange(users)
                action = rng.random()
                answers = bot_answers(uid)
                if action < 0.45 or not answers:
                    m = msg(uid, uid, rng.choice(QUESTIONS))
                    questions.append((uid, m["message_id"]))
                elif action < 0.65:
                    m = msg(uid, uid, rng.choice(FOLLOW_UPS), reply_to_message={**answers[-1], "from": fake.bot_user})
                    questions.append((uid, m["message_id"]))
                elif action < 0.85:
                    row = answers[-1]["reply_markup"]["inline_keyboard"][0]
                    button = rng.choice(row)
                    press = f"cb{step}"
                    presses.append(press)
                    fake.push(callback_query={"id": press, "from": {"id": uid, "is_bot": False, "first_name": "u"},
                                              "chat_instance": "ci", "data": button["callback_data"],
                                              "message": {**answers[-1], "chat": {"id": uid, "type": "private"}}})
                    time.sleep(rng.uniform(0.2, 1.0))
                    continue
                elif action < 0.93:
                    m = msg(GROUP, uid, "/ask " + rng.choice(QUESTIONS))
                    questions.append((GROUP, m["message_id"]))
                else:
                    m = msg(GROUP, uid, rng.choice(CHATTER))
                    chatter.append((GROUP, m["message_id"]))
                fake.push(message=m)
                time.sleep(rng.uniform(0.2, 1.0))

            def settled() -> bool:
                answered = {p["callback_query_id"] for p in fake.sent("answerCallbackQuery")}
                return all(fake.replies_to(c, m) for c, m in questions) and set(presses) <= answered
            _wait(settled, 120)
            time.sleep(2)  # anything sent twice would arrive now
        finally:
            bot.send_signal(signal.SIGINT)
            try:
                code = bot.wait(60)
            except subprocess.TimeoutExpired:
                bot.kill()
                code = -9
        log.seek(0)
        logged = log.read()
        log.close()
        problems = []
        for c, m in questions:
            n = len(fake.replies_to(c, m))
            if n != 1:
                problems.append(f"question {m} in chat {c} got {n} replies")
        for c, m in chatter:
            if fake.replies_to(c, m):
                problems.append(f"chatter {m} in chat {c} got a reply")
        answered = [p["callback_query_id"] for p in fake.sent("answerCallbackQuery")]
        for press in presses:
            if answered.count(press) != 1:
                problems.append(f"button press {press} answered {answered.count(press)} times")
        if "Error while handling an update" in logged or "Traceback" in logged:
            problems.append("the bot logged an error:\n" + logged[-2000:])
        if code != 0:
            problems.append(f"the bot exited with status {code} on SIGINT")
        return {"minutes": minutes, "users": users, "questions": len(questions), "chatter": len(chatter),
                "button_presses": len(presses), "messages_sent": len(fake.sent("sendMessage")),
                "edits": len(fake.sent("editMessageText")), "problems": problems}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--users", type=int, default=6)
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    result = soak(args.minutes, args.users)
    print(f"{result['minutes']} min, {result['users']} users: {result['questions']} questions, "
          f"{result['button_presses']} button presses, {result['chatter']} chatter lines; "
          f"{result['messages_sent']} messages and {result['edits']} edits sent; "
          f"problems: {len(result['problems'])}")
    for problem in result["problems"]:
        print("  " + problem)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 1 if result["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
