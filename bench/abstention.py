"""Measure where to set the abstention threshold (CITEBOT_MIN_RELEVANCE).

Builds an index over most SQuAD dev articles, holds the rest out, and prints, for a range of
thresholds, how often the engine would abstain on
  - answerable questions (their article is indexed): should be rare,
  - near misses (SQuAD questions whose article was held out: same style, other topics): should be common,
  - plainly off-topic questions (bench/data/offtopic.jsonl).

    python bench/abstention.py ../shared/data/squad-v1.1-dev.json [--held-out 8] [--sample 2000]
"""
from __future__ import annotations

import argparse
import json
import logging
import random
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from index.config import Settings  # noqa: E402
from index.engine import Engine  # noqa: E402


def scores(engine: Engine, questions: list[str]) -> dict[str, np.ndarray]:
    """The closest passage's cosine alone, and the relevance that the engine compares (index/relevance.py)."""
    answers = [engine.ask(q, k=5, abstain=False) for q in questions]
    return {"cosine": np.array([a.best_similarity for a in answers]),
            "relevance": np.array([a.relevance for a in answers])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("squad", type=Path)
    parser.add_argument("--held-out", type=int, default=8, help="articles left out of the index")
    parser.add_argument("--sample", type=int, default=2000, help="questions sampled from each SQuAD set")
    parser.add_argument("--data-dir", type=Path, default=ROOT / "var" / "bench" / "abstention")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    data = json.loads(args.squad.read_text())["data"]
    kept, held = data[: -args.held_out], data[-args.held_out :]
    corpus = args.data_dir / "corpus"
    corpus.mkdir(parents=True, exist_ok=True)
    with open(corpus / "squad.jsonl", "w") as f:
        for a in kept:
            f.write(json.dumps({"title": a["title"].replace("_", " "),
                                "text": "\n\n".join(p["context"] for p in a["paragraphs"])}) + "\n")
    engine = Engine(Settings(data_dir=args.data_dir, corpus_dir=corpus))
    print(engine.build().summary())

    def questions(articles):
        qs = [qa["question"] for a in articles for p in a["paragraphs"] for qa in p["qas"]]
        random.Random(0).shuffle(qs)
        return qs[: args.sample]

    offtopic = [json.loads(line)["question"] for line in open(ROOT / "bench" / "data" / "offtopic.jsonl")]
    sets = {
        "answerable": scores(engine, questions(kept)),
        "near miss (held-out articles)": scores(engine, questions(held)),
        "off-topic": scores(engine, offtopic),
    }
    print(f"\nIndexed {len(kept)} articles; held out: {', '.join(a['title'] for a in held)}")
    for signal, thresholds in (("cosine", np.arange(0.25, 0.46, 0.05)), ("relevance", np.arange(0.35, 0.61, 0.025))):
        print(f"\nAbstention rate when {signal} < threshold:\n")
        print(f"| {signal} threshold | " + " | ".join(f"{name} (n={len(v[signal])})" for name, v in sets.items()) + " |")
        print("|---" * (len(sets) + 1) + "|")
        for threshold in thresholds:
            cells = [f"{np.mean(v[signal] < threshold):.3f}" for v in sets.values()]
            print(f"| {threshold:.3f} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
