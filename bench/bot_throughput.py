"""Bot throughput: questions answered per second, end to end, with many users asking at once.

Starts the real Application (bot/app.py) against the fake Bot API server of the tests
(tests/fake_telegram.py) on 127.0.0.1, pushes USERS x QUESTIONS private messages at once, and
times each from the moment its update is queued to the moment the server accepts the
sendMessage that replies to it. Reported: questions answered per second, p50/p95 reply time.
Baseline, in the same run: the same questions asked of the engine directly, one after another
(engine time only, no Telegram), so the ratio shows what the bot layer adds.

Telegram's own flood limits apply: the bot's AIORateLimiter allows about 30 messages a second
overall, and each question also sends a "typing" action.

    python bench/bot_throughput.py [--corpus corpus] [--users 50] [--questions 4]
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from telegram import Update  # noqa: E402

from bot.app import build_application  # noqa: E402
from bot.config import BotConfig  # noqa: E402
from index.config import Settings  # noqa: E402
from index.engine import Engine  # noqa: E402
from tests.fake_telegram import FakeTelegram  # noqa: E402

QUESTIONS = [
    "How many new battlegroups did NATO agree to deploy, and where?",
    "What did Zelensky ask NATO for?",
    "Where was the NATO summit held?",
    "What did Biden say about chemical weapons?",
    "Which countries will host the new battlegroups?",
    "What did Stoltenberg say about the eastern flank?",
]


class TimedFakeTelegram(FakeTelegram):
    """The tests' fake server, noting when each reply is accepted."""

    def __init__(self):
        super().__init__()
        self.replied_at: dict[tuple[int, int], float] = {}

    def _api_sendMessage(self, params):
        message = super()._api_sendMessage(params)
        reply = params.get("reply_parameters") or {}
        if reply:
            self.replied_at[(params["chat_id"], reply["message_id"])] = time.perf_counter()
        return message


async def measure_bot(engine: Engine, users: int, per_user: int) -> tuple[float, np.ndarray, int]:
    """(questions per second, reply times in ms, questions answered)."""
    with TimedFakeTelegram() as fake:
        config = BotConfig(token=fake.token, api_url=fake.base_url, admin_ids=frozenset(),
                           rate_limit=per_user + 1, rate_window=60)
        app = build_application(config, engine)
        await app.initialize()
        await app.post_init(app)
        await app.updater.start_polling(poll_interval=0.0, timeout=1, allowed_updates=Update.ALL_TYPES)
        await app.start()
        try:
            asked: dict[tuple[int, int], float] = {}
            message_id = 0
            began = time.perf_counter()
            for round_ in range(per_user):
                for u in range(users):
                    chat = 10_000 + u
                    message_id += 1
                    text = QUESTIONS[(u + round_) % len(QUESTIONS)]
                    msg = {"message_id": message_id, "date": int(time.time()), "text": text,
                           "chat": {"id": chat, "type": "private", "first_name": f"user{u}"},
                           "from": {"id": chat, "is_bot": False, "first_name": f"user{u}"}}
                    asked[(chat, message_id)] = time.perf_counter()
                    fake.push(message=msg)
            deadline = time.perf_counter() + 300
            while len(fake.replied_at) < len(asked) and time.perf_counter() < deadline:
                await asyncio.sleep(0.01)
            finished = max(fake.replied_at.values(), default=began)
            waits = np.array([(fake.replied_at[k] - t) * 1000 for k, t in asked.items() if k in fake.replied_at])
            return len(waits) / (finished - began), waits, len(waits)
        finally:
            await app.updater.stop()
            await app.stop()
            await app.shutdown()
            await app.post_shutdown(app)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=ROOT / "corpus")
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--questions", type=int, default=4, help="questions per user")
    parser.add_argument("--data-dir", type=Path, default=ROOT / "var" / "bench" / "bot")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    engine = Engine(Settings(data_dir=args.data_dir, corpus_dir=args.corpus))
    engine.build()
    total = args.users * args.questions
    asked = [QUESTIONS[i % len(QUESTIONS)] for i in range(total)]
    engine.ask(asked[0])  # load the model and index before timing anything
    began = time.perf_counter()
    engine_ms = np.array([engine.ask(q).elapsed_ms for q in asked])
    engine_rate = total / (time.perf_counter() - began)

    rate, waits, answered = asyncio.run(measure_bot(engine, args.users, args.questions))
    print(f"{args.users} users x {args.questions} questions = {total}, corpus {args.corpus} "
          f"({engine.stats()['chunks']} chunks)\n")
    print("| path | questions/s | p50 ms | p95 ms |\n|---|---|---|---|")
    print(f"| engine alone, sequential (baseline) | {engine_rate:.1f} | {np.percentile(engine_ms, 50):.1f} "
          f"| {np.percentile(engine_ms, 95):.1f} |")
    if answered:
        print(f"| bot end to end, {args.users} users at once | {rate:.1f} | {np.percentile(waits, 50):.1f} "
              f"| {np.percentile(waits, 95):.1f} |")
    print(f"\nanswered {answered} of {total}; bot / engine throughput ratio {rate / engine_rate:.2f}")


if __name__ == "__main__":
    main()
