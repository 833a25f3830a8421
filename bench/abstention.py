"""Measure where to set the abstention threshold (CITEBOT_MIN_SIMILARITY).

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


def best_similarities(engine: Engine, questions: list[str]) -> np.ndarray:
    return np.array([engine.ask(q, k=10, abstain=False).best_similarity for q in questions])


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
        "answerable": best_similarities(engine, questions(kept)),
        "near miss (held-out articles)": best_similarities(engine, questions(held)),
        "off-topic": best_similarities(engine, offtopic),
    }
    print(f"\nIndexed {len(kept)} articles; held out: {', '.join(a['title'] for a in held)}")
    print("\n| threshold | " + " | ".join(f"abstain: {name} (n={len(v)})" for name, v in sets.items()) + " |")
    print("|---" * (len(sets) + 1) + "|")
    for threshold in np.arange(0.15, 0.56, 0.05):
        cells = [f"{np.mean(v < threshold):.3f}" for v in sets.values()]
        print(f"| {threshold:.2f} | " + " | ".join(cells) + " |")
    for name, v in sets.items():
        print(f"{name}: best-similarity percentiles 3/50/97: " + ", ".join(f"{np.percentile(v, p):.3f}" for p in (3, 50, 97)))


if __name__ == "__main__":
    main()
