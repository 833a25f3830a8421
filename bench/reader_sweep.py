"""The reading model's knobs, measured: how deep it reads, how its confidence and the re-rank
score combine to order citations, and the excerpt's length. Each passage is read once per
question and cached, so every variant after the first costs only the engine's own work.

    python bench/reader_sweep.py ../shared/data/squad-v1.1-dev.json ../shared/data/bbc-news [--odd 1000]
        [--fewer-passages]

Question sets: the odd (test) half of SQuAD dev against its own paragraphs (a sample), and
bench/data/news-dev.jsonl against SQuAD + BBC. Prints excerpt recall@1/@5 per variant, with the
engine without the reader as the baseline from the same run, and abstention at the model's threshold.
"""
from __future__ import annotations

import argparse
import json
import random
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import index.engine as engine_module  # noqa: E402
import index.read.excerpt as excerpt_module  # noqa: E402
from index.config import Settings  # noqa: E402
from index.engine import Engine  # noqa: E402
from index.evaluate import contains_answer, prepare  # noqa: E402
from index.read.reader import READER_DIR, Reader  # noqa: E402


class CachedReader:
    """A Reader that reads each (question, passage) pair once; config can be overridden per variant."""

    def __init__(self, reader: Reader):
        self.reader = reader
        self.config = dict(reader.config)
        self.threshold = reader.threshold
        self.min_relevance = reader.min_relevance
        self.cache: dict = {}

    def abstains(self, confidence, relevance):
        return self.reader.abstains(confidence, relevance)

    def read(self, question, passages):
        todo = [p for p in dict.fromkeys(passages) if (question, p) not in self.cache]
        for p, r in zip(todo, self.reader.read(question, todo)):
            self.cache[(question, p)] = r
        return [self.cache[(question, p)] for p in passages]


def score(engine: Engine, questions, kinds=None) -> dict:
    hits1 = hits5 = answerable = abstained_ok = abstained_bad = 0
    by_kind: dict[str, list[bool]] = {}
    for n, q in enumerate(questions):
        answer = engine.ask(q.question, k=5, abstain=False)
        if kinds:
            by_kind.setdefault(kinds[n], []).append(answer.abstained)
        if q.answers:
            answerable += 1
            ranks = [c.rank for c in answer.citations if contains_answer(c.excerpt, q.answers)]
            hits1 += bool(ranks) and ranks[0] == 1
            hits5 += bool(ranks) and ranks[0] <= 5
            abstained_bad += answer.abstained
        else:
            abstained_ok += answer.abstained
    n_un = len(questions) - answerable
    return {**{f"abstain({k})": round(sum(v) / len(v), 3) for k, v in by_kind.items()},
        "R@1": round(hits1 / answerable, 3) if answerable else None,
        "R@5": round(hits5 / answerable, 3) if answerable else None,
        "abstain(answerable)": round(abstained_bad / answerable, 3) if answerable else None,
        "abstain(unanswerable)": round(abstained_ok / n_un, 3) if n_un else None,
    }


original_rerank = engine_module.rerank
# (depth, prior weight, excerpt characters, neighbours of the best passage read). Excerpts from the
# span's sentence instead of the start-mass run, and ordering by the excerpt's share of the start
# mass, were measured and rejected (bench/README.md, "The reading model") and are gone from the engine.
VARIANTS = [
    (3, 0.25, 500, 1), (5, 0.25, 500, 1), (6, 0.25, 500, 1), (4, 0.25, 500, 0), (4, 0.25, 500, 2),
    (4, 0.0, 500, 1), (4, 0.1, 500, 1), (4, 0.5, 500, 1), (4, 1.0, 500, 1),
    (4, 0.25, 350, 1), (4, 0.25, 600, 1),
]


def fewer_passages(args, settings) -> int:
    """Recall and abstention when fewer passages are read, and the mean number read (the reader's
    time grows with it: about 97% of it is the model's forward pass)."""
    sets = {}
    questions, eng = prepare(args.squad, settings, articles="odd")
    random.Random(7).shuffle(questions)
    sets["squad-odd"] = (questions[: args.odd], eng)
    for name, corpus in (("news-dev", [args.squad, args.bbc]), ("news-nearmiss", [args.squad, args.bbc]),
                         ("unanswerable", [args.squad])):
        sets[name] = prepare(ROOT / f"bench/data/{name}.jsonl", settings, corpus)
    reader = CachedReader(Reader(args.reader))
    both = Engine._with_neighbours

    def next_only(head, tail, reach, loaded, query):
        """The engine's neighbours, less those before the best passage."""
        more, rest = both(head, tail, reach, loaded, query)
        extra = [r for r in more[len(head):] if r.chunk.start > head[0].chunk.start]
        kept = {r.hit.row for r in extra}
        return head + extra, [r for r in tail if r.hit.row not in kept]

    variants = [("depth 4, neighbours on both sides", 4, 1, both), ("depth 4, the next chunk only", 4, 1, next_only),
                ("depth 3, both sides", 3, 1, both), ("depth 3, the next chunk only", 3, 1, next_only),
                ("depth 4, no neighbours", 4, 0, both), ("depth 2, both sides", 2, 1, both)]
    rows = []
    for name, (qs, eng) in sets.items():
        for label, depth, reach, neighbours in variants:
            reader.config["depth"], reader.config["neighbours"] = depth, reach
            Engine._with_neighbours = staticmethod(neighbours)
            counted: list[int] = []
            real = reader.read

            def counting(question, passages, real=real):
                counted.append(len(passages))
                return real(question, passages)

            reader.read = counting
            scored = score(Engine(eng.settings, eng.embedder, reader=reader), qs)
            reader.read = real
            rows.append({"set": name, "variant": label,
                         "passages_read": round(sum(counted) / max(len(counted), 1), 2), **scored})
            print(json.dumps(rows[-1]), flush=True)
    Engine._with_neighbours = staticmethod(both)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("squad", type=Path)
    ap.add_argument("bbc", type=Path)
    ap.add_argument("--odd", type=int, default=1000, help="SQuAD odd-half questions sampled (default 1000)")
    ap.add_argument("--reader", type=Path, default=READER_DIR)
    ap.add_argument("--only-default", action="store_true",
                    help="only the engine's default variant (to compare reader files, e.g. int8 vs fp32)")
    ap.add_argument("--lead-weights", help="comma-separated excerpt LEAD_WEIGHT values to compare, "
                    "each with the default variant (instead of the variant list)")
    ap.add_argument("--trims", help="comma-separated excerpt TRIM_BELOW values to compare, likewise")
    ap.add_argument("--fewer-passages", action="store_true",
                    help="instead of the variant list: reading fewer passages (depth; the best passage's "
                    "neighbours on both sides, the next one only, or none), with how many are read per "
                    "question, on the sets above and the news near misses (issue 20's latency)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    settings = Settings.from_env()
    if args.fewer_passages:
        return fewer_passages(args, settings)
    sets = {}
    questions, eng = prepare(args.squad, settings, articles="odd")
    random.Random(7).shuffle(questions)
    sets["squad-odd"] = (questions[: args.odd], eng)
    news, eng = prepare(ROOT / "bench/data/news-dev.jsonl", settings, [args.squad, args.bbc])
    sets["news-dev"] = (news, eng)
    un, eng = prepare(ROOT / "bench/data/unanswerable.jsonl", settings, [args.squad])
    sets["unanswerable"] = (un, eng)
    lines = (ROOT / "bench/data/unanswerable.jsonl").read_text().splitlines()
    kinds = {"unanswerable": [json.loads(line).get("kind", "?") for line in lines if line.strip()]}
    reader = CachedReader(Reader(args.reader))
    default = (int(reader.config.get("depth", 4)), engine_module.READER_PRIOR_WEIGHT, engine_module.READER_MAX_CHARS,
               int(reader.config.get("neighbours", 0)))
    variants_all = [default] + [v for v in VARIANTS if v != default]
    rows = []
    for name, (qs, eng) in sets.items():
        base = Engine(replace(eng.settings, reader=False), eng.embedder)
        rows.append({"set": name, "variant": "no reader", **score(base, qs, kinds.get(name))})
        print(json.dumps(rows[-1]), flush=True)
        variants = [default] if args.only_default else variants_all if name != "unanswerable" else variants_all[:5]
        if args.lead_weights or args.trims:
            for knob, values in (("LEAD_WEIGHT", args.lead_weights), ("TRIM_BELOW", args.trims)):
                for value in (float(x) for x in (values or "").split(",") if x):
                    before = getattr(excerpt_module, knob)
                    setattr(excerpt_module, knob, value)
                    withr = Engine(eng.settings, eng.embedder, reader=reader)
                    rows.append({"set": name, "variant": f"default, {knob} {value}", **score(withr, qs, kinds.get(name))})
                    print(json.dumps(rows[-1]), flush=True)
                    setattr(excerpt_module, knob, before)
            continue
        for depth, weight, chars, neighbours in variants:
            reader.config["depth"], reader.config["neighbours"] = depth, neighbours
            engine_module.READER_PRIOR_WEIGHT = weight
            engine_module.READER_MAX_CHARS = chars
            withr = Engine(eng.settings, eng.embedder, reader=reader)
            rows.append({"set": name, "variant": f"depth {depth}, prior {weight}, {chars} chars, neighbours {neighbours}",
                         **score(withr, qs, kinds.get(name))})
            print(json.dumps(rows[-1]), flush=True)
        if args.only_default:
            continue
        # Would the reader make the stored sentence vectors unnecessary? Re-rank with their cosines at 0.
        (reader.config["depth"], engine_module.READER_PRIOR_WEIGHT, engine_module.READER_MAX_CHARS,
         reader.config["neighbours"]) = default
        zeros = {}

        def rerank_without_sentence_vectors(hits, records, query, sentence_vectors, reorder=True):
            if "z" not in zeros:
                zeros["z"] = np.zeros((sentence_vectors.shape[0], sentence_vectors.shape[1]), dtype=np.float16)
            return original_rerank(hits, records, query, zeros["z"], reorder)

        engine_module.rerank = rerank_without_sentence_vectors
        withr = Engine(eng.settings, eng.embedder, reader=reader)
        rows.append({"set": name, "variant": "default, no sentence vectors", **score(withr, qs, kinds.get(name))})
        print(json.dumps(rows[-1]), flush=True)
        engine_module.rerank = original_rerank
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
