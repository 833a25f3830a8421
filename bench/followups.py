"""Follow-up questions: recall@1 and @5 of the second turn of two-turn conversations, with and
without the first turn as context (index/read/followup.py's strategies), over the BBC articles.

bench/data/followups.jsonl: conversations whose second turn is a fragment ("elliptical": "And
how much did it cost?"), a question about the first one's subject ("pronoun": "Who runs it?"), a
request for more ("more"), or a new question on another story ("new"). The first turn is asked
as a user would; its cited articles are the context. A hit: an excerpt among the first 1 (or 5)
citations holds one of the second turn's answers. "more" is scored as: the next page (citations
4-6 of the first answer) exists.

    python bench/followups.py ../shared/data/bbc-news [--data-dir var/bench/followups] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from index.config import Settings  # noqa: E402
from index.engine import Engine  # noqa: E402
from index.evaluate import contains_answer  # noqa: E402
from index.read.followup import STRATEGIES, Turn, answer_followup  # noqa: E402

DATA = ROOT / "bench" / "data" / "followups.jsonl"
SHOWN = 3  # citations in the first message; "More" shows the next ones


def hit(answer, answers, depth: int) -> int:
    if answer.abstained:
        return 0
    return int(any(contains_answer(c.excerpt, tuple(answers)) for c in answer.citations[:depth]))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("articles", type=Path, help="the BBC folder, e.g. ../shared/data/bbc-news")
    p.add_argument("--conversations", type=Path, default=DATA)
    p.add_argument("--data-dir", type=Path, help="where to build (and reuse) the index (default: temporary)")
    p.add_argument("--json", type=Path, help="also write the figures here")
    args = p.parse_args()
    conversations = [json.loads(line) for line in args.conversations.read_text().splitlines() if line.strip()]
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = args.data_dir or Path(tmp)
        engine = Engine(Settings.from_env(data_dir=data_dir, corpus_dir=args.articles))
        print(engine.build().summary().splitlines()[0])
        scores: dict[str, dict[str, list[int]]] = {s: defaultdict(list) for s in STRATEGIES}
        first_turn = []
        for conv in conversations:
            one, two = conv["turns"]
            first = engine.ask(one["question"], k=10)
            first_turn.append(hit(first, one["answers"], 1))
            previous = Turn(one["question"], tuple(dict.fromkeys(c.doc_id for c in first.citations[:SHOWN])))
            for strategy in STRATEGIES:
                kind = conv["kind"]
                if kind == "more":
                    answer, follow = answer_followup(engine, two["question"], previous, k=10, strategy=strategy)
                    got = int(follow.kind == "more" and len(answer.citations) > SHOWN) if strategy != "none" else 0
                    scores[strategy][f"{kind}@1"].append(got)
                    continue
                answer, _ = answer_followup(engine, two["question"], previous, k=5, strategy=strategy)
                for depth in (1, 5):
                    scores[strategy][f"{kind}@{depth}"].append(hit(answer, two["answers"], depth))
                    if kind in ("elliptical", "pronoun"):
                        scores[strategy][f"follow-ups@{depth}"].append(hit(answer, two["answers"], depth))
    table = {s: {k: round(sum(v) / len(v), 3) for k, v in sorted(cols.items())} for s, cols in scores.items()}
    result = {"conversations": len(conversations), "first_turn_recall@1": round(sum(first_turn) / len(first_turn), 3),
              "by_strategy": table}
    columns = list(table["expand"])
    print(f"\n{len(conversations)} conversations; first turns: recall@1 {result['first_turn_recall@1']:.3f}")
    print("| context | " + " | ".join(columns) + " |")
    print("|---|" + "---|" * len(columns))
    for strategy in STRATEGIES:
        print(f"| {strategy} | " + " | ".join(f"{table[strategy].get(c, 0):.3f}" for c in columns) + " |")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
