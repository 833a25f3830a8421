"""Live updates (issue 24): new articles as segments, merges in the background, recall unchanged.

    python bench/incremental.py ../shared/data/bbc-news [--squad ../shared/data/squad-v1.1-dev.json]
        [--cache-from var/eval/d4325eea8b7f] [--synthetic 100000] [--updates 20] [--json out.json]

One run, printed as a table with its same-run baselines:

1. Speed at BBC size. The BBC corpus less the held-out articles (every article of
   bench/data/news-dev.jsonl, then others, --updates x 10 in all) is indexed (a whole build: the
   baseline). Then, as the bot does after a feed refresh with its Engine warm:
   - 10 new articles, no questions meanwhile: seconds from Engine.build() to a question about one
     of them citing it ("answerable"), and the part spent embedding;
   - 10 more while a thread asks questions back to back: the same, plus questions answered,
     errors and p95;
   - 10 more in a fresh process (what is imported: torch must not be);
   - the merge of all segments (a whole build from reused vectors: what every update cost before
     segments, the same-run baseline), in the background while a thread asks questions: seconds,
     questions answered, errors, p50/p95 during the merge.
2. Recall after --updates small updates equals a fresh build's. news-dev over BBC: after the
   updates (segments live, nothing merged), a fresh whole build of the same corpus in another
   folder (the build cache copied: the same vectors), and after the merge; recall@1/@5 and
   abstained to 3 decimals. With --squad: the same over SQuAD dev's odd half (its paragraphs,
   --updates x 10 of them held out and added back 10 at a time), on a fixed sample of 400
   of its questions.
3. With --synthetic N: 10 new articles into an N-chunk synthetic index (bench/scale.py's: the
   BBC chunks cycled, vectors perturbed), as a segment (index/store/builder.py append_segment),
   with and without questions meanwhile.

--cache-from DATA copies DATA/index/cache.sqlite (a build cache holding the corpus's vectors, e.g.
the one `citebot eval bench/data/news-dev.jsonl` made) so the baseline build embeds nothing; the
updates' articles are embedded either way (their vectors are taken out of the copy).
"""
from __future__ import annotations

import argparse
import json
import platform
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from index.config import Settings  # noqa: E402
from index.engine import Engine  # noqa: E402
from index.evaluate import evaluate, load_jsonl, load_squad, squad_half  # noqa: E402
from index.store.segments import MergePolicy  # noqa: E402

NEWS_DEV = ROOT / "bench" / "data" / "news-dev.jsonl"
QUESTIONS = ["What did the chancellor say about the economy?", "Who won the match on Saturday?",
             "How many jobs will be cut?", "What is the new mobile phone able to do?",
             "Which film won the award?"]
HOLD = MergePolicy(max_segments=10_000, max_segment_share=10.0, max_deleted_share=10.0)  # never merge by itself


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def pct(values: list[float], p: float) -> float:
    return float(np.percentile(values, p)) if values else float("nan")


class Asker:
    """Asks questions back to back in a thread; records latencies and failures."""

    def __init__(self, engine: Engine):
        self.engine, self.stop, self.ms, self.errors = engine, threading.Event(), [], []
        self.thread = threading.Thread(target=self._run)

    def _run(self) -> None:
        i = 0
        while not self.stop.is_set():
            began = time.perf_counter()
            try:
                self.engine.ask(QUESTIONS[i % len(QUESTIONS)])
                self.ms.append((time.perf_counter() - began) * 1000)
            except Exception as exc:  # the figure to report: any failure while the index changes
                self.errors.append(repr(exc))
            i += 1

    def __enter__(self) -> "Asker":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join()

    def figures(self) -> dict:
        return {"answered": len(self.ms), "errors": len(self.errors), "p50_ms": round(pct(self.ms, 50), 1),
                "p95_ms": round(pct(self.ms, 95), 1)}


def link(files: list[Path], source: Path, corpus: Path) -> None:
    for f in files:  # links, so nothing from ../shared is copied
        target = corpus / f.relative_to(source)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to(f.resolve())


def title_of(path: Path) -> str:
    return path.read_text(encoding="utf-8", errors="replace").strip().splitlines()[0].strip()


def patch_clock() -> tuple[dict, callable]:
    """Time UpdateEmbedder.embed_into (class-wide) until the returned undo is called."""
    from index.encoders.embedder import UpdateEmbedder

    inner = UpdateEmbedder.embed_into
    spent = {"s": 0.0}

    def timed(self, *args, **kwargs):
        began = time.perf_counter()
        try:
            return inner(self, *args, **kwargs)
        finally:
            spent["s"] += time.perf_counter() - began

    UpdateEmbedder.embed_into = timed
    return spent, lambda: setattr(UpdateEmbedder, "embed_into", inner)


def update_and_answer(engine: Engine, new: list[Path], source: Path, corpus: Path) -> dict:
    spent, undo = patch_clock()
    try:
        link(new, source, corpus)
        began = time.perf_counter()
        report = engine.build(merge="now")
        title = title_of(new[0])
        citations = engine.ask(title + "?", abstain=False).citations
        seconds = time.perf_counter() - began
    finally:
        undo()
    cited = [c.title for c in citations]
    return {"seconds": round(seconds, 2), "embed_s": round(spent["s"], 2), "segment": report.segment,
            "chunks_embedded": report.embedded, "sentences_embedded": report.sentences_embedded,
            "asked": title, "cited": title in cited, **({} if title in cited else {"cited_instead": cited[:3]})}


FRESH_PROCESS = """
import json, sys, time
from pathlib import Path
from index.config import Settings
from index.engine import Engine
from index.store.segments import MergePolicy
engine = Engine(Settings.from_env(data_dir=Path(sys.argv[1]), corpus_dir=Path(sys.argv[2]), corpus_links_out=True))
engine.merge_policy = MergePolicy(max_segments=10_000, max_segment_share=10.0, max_deleted_share=10.0)
engine.ask("What did the chancellor say about the economy?")  # a warm bot: its question side loaded
began = time.perf_counter()
report = engine.build()
print(json.dumps({"seconds": round(time.perf_counter() - began, 2), "segment": report.segment,
                  "torch_loaded": "torch" in sys.modules}))
"""


def recall(engine: Engine, questions) -> dict:
    r = evaluate(engine, questions)
    return {"recall@1": round(r["recall@1"], 3), "recall@5": round(r["recall@5"], 3),
            "refused": round(r["abstain_rate_answerable"], 3), "bold_shown": r["bold_shown"]}


def fresh_copy(engine: Engine, folder: Path) -> Engine:
    """A whole build of the same corpus in another folder, its build cache copied (same vectors)."""
    settings = replace(engine.settings, data_dir=folder)
    settings.index_root.mkdir(parents=True, exist_ok=True)
    shutil.copy(engine.settings.index_root / "cache.sqlite", settings.index_root / "cache.sqlite")
    fresh = Engine(settings, engine.embedder)
    fresh.build()
    return fresh


def copy_cache(source: Path | None, settings: Settings, leave_out: list[Path], articles: Path, tmp: Path) -> None:
    """The build cache of another data folder, less the vectors of the updates' articles (they are
    embedded during the updates, as in a real refresh)."""
    if source is None:
        return
    from index.ingest.cache import BuildCache, cache_path
    from index.store.builder import plan_build, read_corpus

    settings.index_root.mkdir(parents=True, exist_ok=True)
    shutil.copy(cache_path(source / "index"), cache_path(settings.index_root))
    if not leave_out:
        return
    held = tmp / "held-out"
    link(leave_out, articles, held)
    cache = BuildCache(cache_path(settings.index_root))
    try:
        plan = plan_build(read_corpus(held, replace(settings, corpus_dir=held), None, cache, keep=frozenset()),
                          settings, cache)
    finally:
        cache.save()
        cache.close()
    db = sqlite3.connect(cache_path(settings.index_root))
    try:
        db.executemany("DELETE FROM vectors WHERE kind = ? AND hash = ?",
                       [("chunk", h) for h in plan.hashes] + [("sentence", h) for h in plan.sentence_hashes])
        db.commit()
    finally:
        db.close()
    log(f"  build cache copied from {source}, less the vectors of the {len(leave_out)} held-out articles")


def distinct_articles(folder: Path) -> list[Path]:
    """The article files less the copies the loader would leave out as duplicates: which copy of
    a story stays depends on which the live index already holds, so an index grown by updates and
    a fresh build of the same folder could keep different copies (titles differ), and their
    answers would differ for that reason alone."""
    from index.ingest.documents import load_corpus

    corpus = load_corpus(folder)
    dropped = {d.path for d in corpus.duplicates}
    return sorted(f for f in folder.rglob("*.txt") if f.is_file() and f.relative_to(folder).as_posix() not in dropped)


def news_phase(args, tmp: Path) -> dict:
    files = distinct_articles(args.articles)
    dev_articles = {json.loads(line)["article"] for line in NEWS_DEV.read_text().splitlines() if line.strip()}
    wanted = args.updates * 10 + 31  # the speed updates' 30, the recall updates, one for the merge
    held = [f for f in files if str(f.relative_to(args.articles)) in dev_articles]
    rng = random.Random(7)
    others = [f for f in files if f not in set(held)]
    rng.shuffle(others)
    held = (held + others)[:wanted]
    rng.shuffle(held)
    merge_article = held.pop()
    kept = [f for f in files if f not in set(held) and f != merge_article]
    corpus = tmp / "news" / "corpus"
    link(kept, args.articles, corpus)
    settings = Settings.from_env(data_dir=tmp / "news" / "data", corpus_dir=corpus, corpus_links_out=True)
    copy_cache(args.cache_from, settings, held, args.articles, tmp / "news")
    engine = Engine(settings)
    engine.merge_policy = HOLD
    out: dict = {"articles": len(files), "held_out": len(held)}
    began = time.perf_counter()
    base = engine.build()
    out["baseline_build_s"] = round(time.perf_counter() - began, 1)
    out["base_chunks"] = base.chunks
    log(f"base: {len(kept)} articles, {base.chunks} chunks, built in {out['baseline_build_s']} s")
    engine.ask(QUESTIONS[0])
    # Warm the update embedder as a running bot has it (its first update loads ONNX Runtime's session).
    from index.encoders.embedder import UpdateEmbedder

    UpdateEmbedder(engine.embedder).embed_into(["warm up"], np.zeros((1, 384), np.float32), [0])
    batches = [held[i:i + 10] for i in range(0, len(held), 10)]
    out["update_quiet"] = update_and_answer(engine, batches[0], args.articles, corpus)
    log(f"10 new articles, no questions meanwhile: {out['update_quiet']}")
    with Asker(engine) as asker:
        out["update_busy"] = update_and_answer(engine, batches[1], args.articles, corpus)
    out["update_busy"]["questions"] = asker.figures()
    log(f"10 new articles, questions meanwhile: {out['update_busy']}")
    link(batches[2], args.articles, corpus)
    child = subprocess.run([sys.executable, "-c", FRESH_PROCESS, str(settings.data_dir), str(corpus)], cwd=ROOT,
                           capture_output=True, text=True)
    out["update_fresh_process"] = json.loads(child.stdout.strip().splitlines()[-1]) if child.returncode == 0 \
        else {"error": child.stderr[-500:]}
    log(f"10 new articles, a fresh process: {out['update_fresh_process']}")
    for batch in batches[3:]:
        r = update_and_answer(engine, batch, args.articles, corpus)
        out.setdefault("later_updates_s", []).append(r["seconds"])
    out["segments_live"] = engine.stats()["segments"]
    questions = load_jsonl(NEWS_DEV)
    log(f"news dev after {len(batches)} updates ({out['segments_live']} segments)...")
    out["news_dev_segments"] = recall(engine, questions)
    fresh = fresh_copy(engine, tmp / "news" / "fresh")
    out["news_dev_fresh_build"] = recall(fresh, questions)
    log(f"  segments {out['news_dev_segments']}, fresh build {out['news_dev_fresh_build']}")
    engine.merge_policy = MergePolicy(max_segments=0)
    with Asker(engine) as asker:
        link([merge_article], args.articles, corpus)
        began = time.perf_counter()
        engine.build(merge="background")
        engine.wait_for_merge()
        out["merge_s"] = round(time.perf_counter() - began, 1)
    out["merge_questions"] = asker.figures()
    log(f"merge (one more article, then a whole build from reused vectors): {out['merge_s']} s, "
        f"questions meanwhile {out['merge_questions']}")
    out["news_dev_merged"] = recall(engine, questions)
    fresh2 = fresh_copy(engine, tmp / "news" / "fresh2")
    out["news_dev_fresh_after_merge"] = recall(fresh2, questions)
    log(f"  merged {out['news_dev_merged']}, fresh build of the same {out['news_dev_fresh_after_merge']}")
    engine.merge_policy = HOLD
    if args.synthetic:
        out["synthetic"] = synthetic_phase(args, engine, others[-20:], tmp)
    return out


def squad_phase(args, tmp: Path) -> dict:
    """SQuAD dev's odd half, one corpus record per paragraph (an article is one record in `citebot
    eval`; here the updates need more than its 24 articles), --updates x 10 paragraphs held out."""
    odd = squad_half(args.squad, "odd", tmp / "halves")
    questions, _ = load_squad(odd)
    records = [{"title": a["title"].replace("_", " "), "text": p["context"], "source": "Wikipedia (SQuAD v1.1)"}
               for a in json.loads(odd.read_text())["data"] for p in a["paragraphs"]]
    rng = random.Random(11)
    held_ids = set(rng.sample(range(len(records)), args.updates * 10))
    held = [r for i, r in enumerate(records) if i in held_ids]
    corpus = tmp / "squad" / "corpus"
    corpus.mkdir(parents=True)
    (corpus / "base.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n"
                                               for i, r in enumerate(records) if i not in held_ids))
    settings = Settings.from_env(data_dir=tmp / "squad" / "data", corpus_dir=corpus)
    copy_cache(args.cache_from, settings, [], args.articles, tmp / "squad")
    engine = Engine(settings)
    engine.merge_policy = HOLD
    engine.build()
    for n in range(args.updates):
        (corpus / f"update-{n:02d}.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n"
                                                              for r in held[n * 10:(n + 1) * 10]))
        assert engine.build().segment, "each update is a segment"
    sample = random.Random(5).sample(questions, min(400, len(questions)))
    out = {"paragraphs": len(records), "held_out": len(held), "questions": len(sample),
           "segments_live": engine.stats()["segments"]}
    out["segments"] = recall(engine, sample)
    out["fresh_build"] = recall(fresh_copy(engine, tmp / "squad" / "fresh"), sample)
    engine.build(force=True)
    out["merged"] = recall(engine, sample)
    log(f"SQuAD odd half ({len(sample)} questions): {out}")
    return out


def synthetic_phase(args, engine: Engine, new: list[Path], tmp: Path) -> dict:
    """10 articles appended to an N-chunk synthetic base, as a segment."""
    from bench.scale import write_synthetic
    from index.encoders.embedder import UpdateEmbedder
    from index.ingest.documents import Corpus
    from index.ingest.cache import BuildCache, cache_path
    from index.store.builder import CorpusRead, _fingerprint, append_segment, plan_update, read_corpus
    from index.store.files import IndexSnapshot
    from index.store.segments import SegmentedView

    syn = replace(engine.settings, data_dir=tmp / "synthetic")
    real = IndexSnapshot.load(engine.settings.index_root)
    write_seconds = write_synthetic(real, args.synthetic, syn.index_root, np.random.default_rng(3))
    real.close()
    log(f"synthetic base of {args.synthetic} chunks written in {write_seconds:.0f} s")
    out = {"chunks": args.synthetic, "write_s": round(write_seconds, 1)}
    syn_engine = Engine(syn, engine.embedder)
    syn_engine.ask(QUESTIONS[0])
    for label, batch in (("quiet", new[:10]), ("busy", new[10:20])):
        folder = tmp / f"synthetic-new-{label}"
        link(batch, args.articles, folder)

        def update():
            began = time.perf_counter()
            cache = BuildCache(cache_path(syn.index_root))
            try:
                read = read_corpus(folder, syn, None, cache, keep=frozenset())
                live = SegmentedView.open(syn.index_root, syn.model)
                update = plan_update(live, read, syn, removals=False)
                report = append_segment(syn, read, live, update, cache, UpdateEmbedder(engine.embedder), None, None,
                                        HOLD)
            finally:
                cache.close()
            syn_engine.ask(title_of(batch[0]) + "?")
            return round(time.perf_counter() - began, 2), report

        if label == "busy":
            with Asker(syn_engine) as asker:
                seconds, report = update()
            out["busy_questions"] = asker.figures()
        else:
            seconds, report = update()
        out[f"update_{label}_s"] = seconds
        log(f"  synthetic {label}: {seconds} s ({report.summary().splitlines()[0]})")
    return out


def machine() -> str:
    flags = Path("/proc/cpuinfo").read_text()
    simd = [f for f in ("amx_bf16", "avx512_bf16", "avx2") if f in flags]
    import os

    return f"{os.cpu_count()} cores, {platform.processor() or platform.machine()}, {'/'.join(simd)}"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("articles", type=Path, help="the BBC articles, e.g. ../shared/data/bbc-news")
    p.add_argument("--squad", type=Path, help="SQuAD dev: also measure recall over its odd half")
    p.add_argument("--cache-from", type=Path, help="a data folder whose build cache holds the corpus's vectors")
    p.add_argument("--synthetic", type=int, default=0, help="also append to a synthetic index of this many chunks")
    p.add_argument("--updates", type=int, default=20, help="small updates of 10 before the recall check (20)")
    p.add_argument("--json", type=Path, help="also write the figures here")
    args = p.parse_args()
    figures = {"machine": machine(), "date": time.strftime("%Y-%m-%d")}
    with tempfile.TemporaryDirectory() as tmp:
        figures["news"] = news_phase(args, Path(tmp))
        if args.squad:
            figures["squad_odd"] = squad_phase(args, Path(tmp))
    print(json.dumps(figures, indent=2))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
