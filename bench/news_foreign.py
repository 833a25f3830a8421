"""News questions in French, German and Spanish, and the English ones, with and without cross-lingual search.

    python bench/news_foreign.py ../shared/data/squad-v1.1-dev.json ../shared/data/bbc-news \
        [--foreign bench/data/news-foreign.jsonl] [--english bench/data/news-dev.jsonl] [--json out.json]

Builds (or reuses) the index `citebot eval QUESTIONS --corpus SQUAD --corpus BBC` builds, with
multilingual vectors (CITEBOT_MULTILINGUAL=1), and asks every question of two engines over that same
index in the same run: today's (the setting off: the vectors are not searched) and the one searching
across languages. Prints `citebot eval`'s figures (recall@1/@5, abstained, latency p50/p95) for each
question file and engine; English questions must not change.
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from index.config import Settings  # noqa: E402
from index.engine import Engine  # noqa: E402
from index.evaluate import evaluate, load_jsonl, prepare  # noqa: E402

KEYS = ("recall@1", "recall@5", "chunk_recall@5", "abstain_rate_answerable", "bold_shown", "latency_ms_p50",
        "latency_ms_p95")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("corpus", type=Path, nargs="+", help="the --corpus sources of `citebot eval`")
    ap.add_argument("--foreign", type=Path, default=ROOT / "bench/data/news-foreign.jsonl")
    ap.add_argument("--english", type=Path, default=ROOT / "bench/data/news-dev.jsonl")
    ap.add_argument("--data-dir", type=Path, default=ROOT / "var")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    _, engine = prepare(args.foreign, Settings(data_dir=args.data_dir, multilingual=True), corpus=args.corpus)
    view = engine.snapshot
    print(f"index: {view.chunk_count} chunks, multilingual vectors: {view.has_multilingual}", file=sys.stderr)
    today = Engine(replace(engine.settings, multilingual=False), engine.embedder)
    out = {}
    for path in (args.foreign, args.english):
        questions = load_jsonl(path)
        for name, eng in (("today", today), ("multilingual", engine)):
            row = evaluate(eng, questions)
            out[f"{path.name} {name}"] = {k: row[k] for k in KEYS}
            print(f"{path.name} {name}: {out[f'{path.name} {name}']}", file=sys.stderr, flush=True)
    print("| questions | engine | " + " | ".join(KEYS) + " |")
    print("|---|---|" + "---|" * len(KEYS))
    for key, row in out.items():
        questions, name = key.rsplit(" ", 1)
        print(f"| {questions} | {name} | " + " | ".join("-" if row[k] is None else f"{row[k]:.3f}" if k[0] != "l"
                                                         else f"{row[k]:.0f}" for k in KEYS) + " |")
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
