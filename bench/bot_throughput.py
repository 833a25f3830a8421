"""Bot throughput: questions answered per second, end to end, with many users asking at once.

Starts the real Application (bot/app.py) against the fake Bot API server of the tests
(tests/fake_telegram.py) on 127.0.0.1, and times each question from the moment its update is
queued to the moment the server accepts the sendMessage that replies to it.

- closed loop (the issue's load): USERS users each ask, wait for the answer, and ask again,
  QUESTIONS times; reported: questions answered per second, p50/p95 reply time.
- paced: the same USERS x QUESTIONS questions arriving at a steady --rate a second (30, the issue's
  load) from the same users; p95 reply time at that rate is the latency users would see.

Each runs twice: with Telegram's broadcast limit (AIORateLimiter, 30 messages a second overall,
as deployed) and with that cap off, which shows the bot's own capacity behind the limit.
Baseline, in the same run: the same questions asked of the engine directly, one after another
(engine time only, no Telegram), so the ratio shows what the bot layer adds.

    python bench/bot_throughput.py [--corpus corpus] [--users 50] [--questions 4]
"""
from __future__ import annotations

import argparse
import asyncio
import json
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


def question(chat: int, message_id: int, text: str) -> dict:
    return {"message_id": message_id, "date": int(time.time()), "text": text,
            "chat": {"id": chat, "type": "private", "first_name": f"user{chat}"},
            "from": {"id": chat, "is_bot": False, "first_name": f"user{chat}"}}


async def measure_bot(engine: Engine, users: int, per_user: int, closed_loop: bool, flood_rate: float,
                      rate: float = 30.0):
    """(questions per second, reply times in ms, questions answered)."""
    with TimedFakeTelegram() as fake:
        config = BotConfig(token=fake.token, api_url=fake.base_url, admin_ids=frozenset(),
                           rate_limit=per_user + 1, rate_window=60, flood_rate=flood_rate)
        app = build_application(config, engine)
        await app.initialize()
        await app.post_init(app)
        await app.updater.start_polling(poll_interval=0.0, timeout=1, allowed_updates=Update.ALL_TYPES)
        await app.start()
        asked: dict[tuple[int, int], float] = {}
        deadline = time.perf_counter() + 300

        async def user(u: int) -> None:
            """Ask per_user questions, each after the answer to the one before."""
            chat = 10_000 + u
            for round_ in range(per_user):
                key = (chat, 1_000 * u + round_ + 1)
                asked[key] = time.perf_counter()
                fake.push(message=question(chat, key[1], QUESTIONS[(u + round_) % len(QUESTIONS)]))
                while key not in fake.replied_at and time.perf_counter() < deadline:
                    await asyncio.sleep(0.002)

        try:
            began = time.perf_counter()
            if closed_loop:
                await asyncio.gather(*(user(u) for u in range(users)))
            else:
                for n in range(users * per_user):
                    await asyncio.sleep(max(0.0, began + n / rate - time.perf_counter()))
                    u, round_ = n % users, n // users
                    key = (10_000 + u, 1_000 * u + round_ + 1)
                    asked[key] = time.perf_counter()
                    fake.push(message=question(key[0], key[1], QUESTIONS[(u + round_) % len(QUESTIONS)]))
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
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--rate", type=float, default=30.0, help="questions a second in the paced run")
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

    print(f"{args.users} users x {args.questions} questions = {total}, corpus {args.corpus} "
          f"({engine.stats()['chunks']} chunks)\n")
    print("| path | questions/s | p50 ms | p95 ms | answered |\n|---|---|---|---|---|")
    print(f"| engine alone, sequential (baseline) | {engine_rate:.1f} | {np.percentile(engine_ms, 50):.1f} "
          f"| {np.percentile(engine_ms, 95):.1f} | {total} |")
    figures = {"engine": {"rate": engine_rate, "p50_ms": float(np.percentile(engine_ms, 50)),
                          "p95_ms": float(np.percentile(engine_ms, 95))}}
    for closed_loop in (True, False):
        for flood_rate in (30.0, 0.0):
            rate, waits, answered = asyncio.run(
                measure_bot(engine, args.users, args.questions, closed_loop, flood_rate, args.rate))
            name = (f"bot, {args.users} users {'in a closed loop' if closed_loop else f'at {args.rate:g} q/s'}, "
                    f"{'30 msg/s Telegram cap' if flood_rate else 'no cap'}")
            p50, p95 = (float(np.percentile(waits, q)) for q in (50, 95)) if answered else (float("nan"),) * 2
            print(f"| {name} | {rate:.1f} | {p50:.1f} | {p95:.1f} | {answered} |", flush=True)
            figures[name] = {"rate": rate, "p50_ms": p50, "p95_ms": p95, "answered": answered,
                             "ratio_to_engine": rate / engine_rate}
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))

if __name__ == "__main__":
    main()
