"""Abstention and bold, measured per kind of question: answerable, off-topic, near miss.

    python bench/answerability.py ../shared/data/squad-v1.1-dev.json ../shared/data/bbc-news \
        [--reader DIR]... [--odd 1000] [--dump FILE]

Question sets (all test-only): the SQuAD dev odd half (a sample, answerable) and
bench/data/unanswerable.jsonl (60 off-topic, 60 near misses) against SQuAD dev's paragraphs;
bench/data/news-dev.jsonl (answerable) and bench/data/news-nearmiss.jsonl against SQuAD + BBC.
For each reader given (the committed one by default), prints per set: abstained, first-excerpt
recall@1, and of the first excerpts that show a bold span, the share whose bold holds a gold
answer, and (as the bold was before it was decided) how often the reader's span in the first
excerpt holds a gold answer. --dump writes every question's readings.
"""
from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from index.config import Settings  # noqa: E402
from index.engine import Engine  # noqa: E402
from index.evaluate import EvalQuestion, bold_holds_answer, contains_answer, load_jsonl, prepare, squad_half  # noqa: E402
from index.read.reader import READER_DIR, Reader  # noqa: E402


class RecordingReader:
    """A Reader that keeps what it read for the current question (for --dump)."""

    def __init__(self, reader: Reader):
        self.reader = reader
        self.config = reader.config
        self.threshold = reader.threshold
        self.min_relevance = reader.min_relevance
        self.last: list = []

    def __getattr__(self, name):
        return getattr(self.reader, name)

    def read(self, question, passages):
        readings = self.reader.read(question, passages)
        self.last.extend(zip(passages, readings))
        return readings


def kinds_of(questions: list[EvalQuestion]) -> list[str]:
    return [q.kind or ("answerable" if q.answers else "unanswerable") for q in questions]


def run(engine: Engine, questions: list[EvalQuestion], kinds: list[str], dump) -> dict:
    by_kind: dict[str, dict] = {}
    for q, kind in zip(questions, kinds):
        engine.reader.last = []
        answer = engine.ask(q.question, k=5, abstain=False)
        row = by_kind.setdefault(kind, {"n": 0, "abstained": 0, "r1": 0, "r5": 0, "bold": 0, "bold_right": 0,
                                        "span_right": 0})
        row["n"] += 1
        row["abstained"] += answer.abstained
        first = answer.citations[0] if answer.citations else None
        if q.answers and answer.citations:
            ranks = [c.rank for c in answer.citations if contains_answer(c.excerpt, q.answers)]
            row["r1"] += bool(ranks) and ranks[0] == 1
            row["r5"] += bool(ranks) and ranks[0] <= 5
            # Before bold was decided, the reader's span was bold whenever it lay in the excerpt.
            read = {text: r for (_, text), r in engine.reader.last}.get(first.chunk_text)
            if read is not None and read.span is not None:
                row["span_right"] += bold_holds_answer(first.chunk_text[read.span[0]:read.span[1]], q.answers)
            if first.highlight:
                row["bold"] += 1
                a, b = first.highlight
                row["bold_right"] += bold_holds_answer(first.excerpt[a:b], q.answers)
        elif first is not None and first.highlight:
            row["bold"] += 1
        if dump is not None:
            dump.write(json.dumps({
                "question": q.question, "kind": kind, "answers": list(q.answers),
                "abstained": answer.abstained, "relevance": answer.relevance, "confidence": answer.confidence,
                "passages": [{
                    "text": text, "holds": contains_answer(text, q.answers) if q.answers else False,
                    "confidence": r.confidence, "span_score": r.span_score, "null_score": r.null_score,
                    "span_probability": r.span_probability,
                    "span": text[r.span[0]:r.span[1]] if r.span else "",
                } for (title, text), r in engine.reader.last],
            }) + "\n")
    return by_kind


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("squad", type=Path)
    ap.add_argument("bbc", type=Path)
    ap.add_argument("--reader", type=Path, action="append", help="a reader folder (repeatable; default the committed one)")
    ap.add_argument("--odd", type=int, default=1000, help="SQuAD odd-half questions sampled (default %(default)s)")
    ap.add_argument("--dump", type=Path, help="write every question's readings here (JSONL)")
    ap.add_argument("--data-dir", type=Path, default=ROOT / "var",
                    help="where the evaluation indexes live (default: var/, shared with `citebot eval`)")
    args = ap.parse_args()
    settings = Settings(data_dir=args.data_dir)
    data = ROOT / "bench" / "data"
    squad_qs, squad_engine = prepare(args.squad, settings)
    odd_file = squad_half(args.squad, "odd", args.data_dir / "eval" / "halves")
    odd_qs, _ = prepare(odd_file, settings)  # questions only; asked of the whole SQuAD dev corpus
    odd_qs = random.Random(7).sample(odd_qs, min(args.odd, len(odd_qs)))
    news_dev = load_jsonl(data / "news-dev.jsonl")
    _, news_engine = prepare(data / "news-dev.jsonl", settings, [args.squad, args.bbc])
    unanswerable = load_jsonl(data / "unanswerable.jsonl")
    sets = [("squad-odd", squad_engine, odd_qs, kinds_of(odd_qs)),
            ("unanswerable", squad_engine, unanswerable, kinds_of(unanswerable)),
            ("news-dev", news_engine, news_dev, kinds_of(news_dev))]
    if (data / "news-nearmiss.jsonl").exists():
        nearmiss = load_jsonl(data / "news-nearmiss.jsonl")
        sets.append(("news-nearmiss", news_engine, nearmiss, kinds_of(nearmiss)))
    dump = open(args.dump, "w") if args.dump else None
    print("| reader | set | kind | n | abstained | R@1 | R@5 | bold shown | bold holds answer | span holds answer |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for folder in args.reader or [READER_DIR]:
        reader = RecordingReader(Reader(folder))
        for name, engine, questions, kinds in sets:
            eng = Engine(engine.settings, engine.embedder, reader=reader)
            for kind, row in run(eng, questions, kinds, dump).items():
                n = row["n"]
                answerable = kind == "answerable"
                print(f"| {folder.name} | {name} | {kind} | {n} | {row['abstained'] / n:.3f} | "
                      + (f"{row['r1'] / n:.3f} | {row['r5'] / n:.3f} | " if answerable else "- | - | ")
                      + f"{row['bold'] / n:.3f} | "
                      + (f"{row['bold_right'] / max(row['bold'], 1):.3f} | {row['span_right'] / n:.3f} |"
                         if answerable else "- | - |"), flush=True)
    if dump:
        dump.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
