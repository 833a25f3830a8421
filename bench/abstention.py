"""Measure abstention: which signal, which threshold (CITEBOT_MIN_RELEVANCE).

Corpus: the SQuAD dev paragraphs (the same evaluation index as `citebot eval`). Question sets:
  - answerable: a sample of SQuAD dev questions; abstaining on them is a mistake,
  - bench/data/unanswerable.jsonl: 60 off-topic questions and 60 near misses that name people,
    places and events the corpus covers but ask for facts it lacks (each checked against every
    paragraph); abstaining is right.

For each candidate signal it prints the abstention rates at a range of thresholds, and the
threshold that keeps wrongly abstained answerable questions at or under 3%, fitted on one half
of both sets and checked on the other half (the numbers on the held-out half are the honest ones).

    python bench/abstention.py ../shared/data/squad-v1.1-dev.json [--sample 3000]
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
from index.evaluate import load_jsonl, prepare  # noqa: E402
from index.search.relevance import COVERAGE_WEIGHT  # noqa: E402
from index.search.tokenize import tokenize  # noqa: E402

MAX_WRONG = 0.03


def features(engine, questions: list[str]) -> dict[str, np.ndarray]:
    rows = []
    for q in questions:
        a = engine.ask(q, k=5, abstain=False)
        cover = (a.relevance - a.best_similarity) / COVERAGE_WEIGHT
        query = engine.query(q)
        weights = {t: query.weights.get(t, query.unseen_weight) for t in set(query.tokens)}
        total = sum(weights.values()) or 1.0
        # Share of the question's weight in the first excerpt, and the weight of the rarest
        # question word missing from all of the first three passages.
        first = set(tokenize(a.citations[0].excerpt)) if a.citations else set()
        top = set().union(*(set(tokenize(c.chunk_text)) for c in a.citations[:3])) if a.citations else set()
        missing = max((w for t, w in weights.items() if t not in top), default=0.0) / (max(weights.values()) or 1)
        rows.append((a.best_similarity, cover, a.relevance, a.support,
                     sum(w for t, w in weights.items() if t in first) / total, missing))
    cos, cover, rel, support, ex_share, missing = map(np.array, zip(*rows))
    return {
        "excerpt share": ex_share,
        "cosine + 0.5 excerpt share": cos + 0.5 * ex_share,
        "relevance - 0.2 missing": rel - 0.2 * missing,
        "cosine + 0.5 excerpt share - 0.3 missing": cos + 0.5 * ex_share - 0.3 * missing,
        "cosine": cos,
        "relevance (cosine + 0.2 coverage)": rel,
        "support (best sentence)": support,
        "cosine + 0.5 coverage": cos + 0.5 * cover,
        "support + 0.5 cosine": support + 0.5 * cos,
        "support + cosine + 0.5 coverage": support + cos + 0.5 * cover,
    }


def threshold_for(answerable: np.ndarray, max_wrong: float = MAX_WRONG) -> float:
    """The largest threshold at which at most max_wrong of answerable scores fall below it."""
    return float(np.quantile(answerable, max_wrong, method="lower"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("squad", type=Path)
    parser.add_argument("--unanswerable", type=Path, default=ROOT / "bench" / "data" / "unanswerable.jsonl")
    parser.add_argument("--sample", type=int, default=3000, help="answerable SQuAD questions sampled")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    questions, engine = prepare(args.squad, Settings.from_env())
    random.Random(0).shuffle(questions)
    answerable = [q.question for q in questions[: args.sample]]
    rows = [json.loads(line) for line in args.unanswerable.read_text().splitlines() if line.strip()]
    assert len(load_jsonl(args.unanswerable)) == len(rows)
    kinds = np.array([r.get("kind", "") for r in rows])
    feats_a = features(engine, answerable)
    feats_u = features(engine, [r["question"] for r in rows])

    rng = np.random.default_rng(0)
    half_a = rng.permutation(len(answerable)) % 2 == 0
    half_u = rng.permutation(len(rows)) % 2 == 0
    print(f"{len(answerable)} answerable SQuAD questions; {len(rows)} unanswerable "
          f"({(kinds == 'off-topic').sum()} off-topic, {(kinds == 'near-miss').sum()} near misses)\n")
    print(f"Threshold fitted on half A so that <= {MAX_WRONG:.0%} of answerable questions abstain; "
          "rates on held-out half B (and on all):\n")
    print("| signal | threshold | answerable abstained (B) | unanswerable abstained (B) | off-topic (all) "
          "| near miss (all) | answerable (all) |")
    print("|---|---|---|---|---|---|---|")
    for name in feats_a:
        a, u = feats_a[name], feats_u[name]
        t = threshold_for(a[half_a])
        print(f"| {name} | {t:.3f} | {np.mean(a[~half_a] < t):.3f} | {np.mean(u[~half_u] < t):.3f} "
              f"| {np.mean(u[kinds == 'off-topic'] < t):.3f} | {np.mean(u[kinds == 'near-miss'] < t):.3f} "
              f"| {np.mean(a < t):.3f} |", flush=True)

    name = "relevance (cosine + 0.2 coverage)"
    print(f"\nThe engine's signal, {name}, at a range of thresholds (all questions):\n")
    print("| threshold | answerable | off-topic | near miss |\n|---|---|---|---|")
    a, u = feats_a[name], feats_u[name]
    for t in np.arange(0.30, 0.61, 0.025):
        print(f"| {t:.3f} | {np.mean(a < t):.3f} | {np.mean(u[kinds == 'off-topic'] < t):.3f} "
              f"| {np.mean(u[kinds == 'near-miss'] < t):.3f} |")


if __name__ == "__main__":
    main()
