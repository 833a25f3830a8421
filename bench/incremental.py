"""Incremental updates: adding a few articles to an indexed corpus, while questions keep coming.

The BBC corpus minus N articles is indexed (the baseline: that full build's time, same run); then
the N articles are added to the corpus folder and the same Engine updates the index, as the bot
does after /add or a feed refresh (model already loaded). Printed: the update's seconds, the part
spent embedding the new chunks and sentences (time inside the embedder's embed_into), the
rest (the target: at most 3 s for 10 articles on BBC), and the questions answered from the live
index during the update (count, errors, slowest).

    python bench/incremental.py ../shared/data/bbc-news [--new 10] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from index.config import Settings  # noqa: E402
from index.engine import Engine  # noqa: E402

QUESTIONS = ["What did the chancellor say about the economy?", "Who won the match on Saturday?",
             "How many jobs will be cut?", "What is the new mobile phone able to do?",
             "Which film won the award?"]


class EmbedClock:
    """Wraps a BulkEmbedder's embed_into (where a build embeds new chunks and sentences) and adds up
    the seconds spent inside it."""

    def __init__(self, embedder) -> None:
        self.seconds = 0.0
        inner = embedder.embed_into

        def timed(*args, **kwargs):
            began = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - began

        embedder.embed_into = timed


def ask_meanwhile(engine: Engine, stop: threading.Event, out: dict) -> None:
    """Ask questions back to back until stop is set; record how many, how slow, any failure."""
    i = 0
    while not stop.is_set():
        began = time.perf_counter()
        try:
            engine.ask(QUESTIONS[i % len(QUESTIONS)])
            out["answered"] += 1
        except Exception as exc:  # the figure to report: any failure while the index is updated
            out["errors"].append(repr(exc))
        out["slowest_ms"] = max(out["slowest_ms"], (time.perf_counter() - began) * 1000)
        i += 1


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("articles", type=Path, help="a folder of articles, e.g. ../shared/data/bbc-news")
    p.add_argument("--new", type=int, default=10, help="articles added in the update (default 10)")
    p.add_argument("--json", type=Path, help="also write the figures here")
    args = p.parse_args()
    files = sorted(f for f in args.articles.rglob("*.txt") if f.is_file())
    if len(files) <= args.new:
        print(f"bench/incremental.py: {args.articles} has {len(files)} articles; need more than {args.new}",
              file=sys.stderr)
        return 2
    held_out = files[:: len(files) // args.new][: args.new]
    kept = [f for f in files if f not in set(held_out)]
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "corpus"
        for f in kept:  # links, so nothing from ../shared is copied
            link = corpus / f.relative_to(args.articles)
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(f.resolve())
        # corpus_links_out: the corpus is links to the shared articles, which lie outside it.
        engine = Engine(Settings.from_env(data_dir=Path(tmp) / "data", corpus_dir=corpus, corpus_links_out=True))
        began = time.perf_counter()
        full = engine.build()
        full_s = time.perf_counter() - began
        print(f"baseline, full build of {len(kept)} articles: {full_s:.1f} s ({full.chunks} chunks)")
        engine.ask(QUESTIONS[0])  # the serving side warm, as in a running bot

        for f in held_out:
            link = corpus / f.relative_to(args.articles)
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(f.resolve())
        stop, meanwhile = threading.Event(), {"answered": 0, "errors": [], "slowest_ms": 0.0}
        asker = threading.Thread(target=ask_meanwhile, args=(engine, stop, meanwhile))
        asker.start()
        clock = EmbedClock(engine.embedder.bulk)
        began = time.perf_counter()
        update = engine.build()
        update_s = time.perf_counter() - began
        stop.set()
        asker.join()
        embed_s = clock.seconds
    result = {
        "articles": len(files), "new": args.new, "full_build_s": round(full_s, 2),
        "update_s": round(update_s, 2), "embed_s": round(embed_s, 2), "overhead_s": round(update_s - embed_s, 2),
        "chunks_embedded": update.embedded, "sentences_embedded": update.sentences_embedded,
        "questions_during_update": meanwhile["answered"], "errors_during_update": meanwhile["errors"],
        "slowest_question_ms": round(meanwhile["slowest_ms"], 1),
    }
    print(f"update with {args.new} new articles: {update_s:.2f} s = {embed_s:.2f} s embedding "
          f"{update.embedded} chunks and {update.sentences_embedded} sentences + {update_s - embed_s:.2f} s "
          f"the rest (target: at most 3 s)")
    print(f"questions answered during the update: {meanwhile['answered']}, errors: {len(meanwhile['errors'])}, "
          f"slowest {meanwhile['slowest_ms']:.0f} ms")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
