"""Scale: index builds over the BBC articles, and serving at 10k / 100k synthetic chunks (FAISS alone to 1M).

1. Build: a fresh index over every BBC article (real model, default settings) in a child process:
   seconds, chunks/s, the child's peak memory. Then an unchanged rebuild, and one new article.
2. Synthetic indexes of N chunks made from the real one: chunk texts, titles and sentence vectors
   reused, chunk vectors = real vector + Gaussian noise (cosine ~0.85 to its source), renormalised.
   Written with the engine's own IndexWriter, so the engine serves them like any build.
3. Serving, each in a fresh child process (so its memory is the serving process's alone):
   process start to first answered question, then 500 questions (news-dev + SQuAD dev questions):
   the engine's time per question (embed + search + fuse + re-rank + excerpts) p50/p95, its parts,
   and resident memory (VmRSS after, VmHWM peak).
4. FAISS alone at real BBC size, 100k and 1M vectors: exact search (the baseline) against HNSW
   and IVF-SQ8: recall@10 against exact, latency per question, bytes per chunk.

    python bench/scale.py ../shared/data/bbc-news --squad ../shared/data/squad-v1.1-dev.json
"""
from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from index.config import Settings  # noqa: E402
from index.store.files import IndexSnapshot, IndexWriter  # noqa: E402
from index.search.tokenize import tokenize  # noqa: E402

NOISE = 0.03  # per dimension: |noise|^2 ~ 384 * 0.03^2 = 0.35, so cosine to the source ~0.85


def vm(field: str) -> float:
    """A /proc/self/status memory figure in MB: VmRSS (resident now), VmHWM (peak), RssAnon (the
    process's own memory), RssFile (pages of memory-mapped index files: shared, and reclaimable)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def pct(values, q) -> float:
    return float(np.percentile(values, q)) if len(values) else float("nan")


# -- 1. the real build ---------------------------------------------------------------------------

def timed_build(data: Path, corpus: Path) -> dict:
    """`citebot build` in a child process: wall seconds, its report line, the child's peak RSS."""
    env = {**os.environ, "CITEBOT_DATA_DIR": str(data)}
    began = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "bot.cli", "-q", "build", str(corpus)], cwd=ROOT, env=env,
                          capture_output=True, text=True)
    seconds = time.perf_counter() - began
    if done.returncode:
        sys.exit(f"build failed: {done.stderr[-2000:]}")
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # the largest child so far
    return {"seconds": seconds, "summary": done.stdout.strip().splitlines()[0], "peak_rss_mb_children": peak}


# -- 2. synthetic indexes --------------------------------------------------------------------------

def write_synthetic(real: IndexSnapshot, n: int, root: Path, rng: np.random.Generator) -> float:
    """An index of n chunks cycled from the real ones (texts reused, vectors perturbed); seconds taken."""
    began = time.perf_counter()
    shutil.rmtree(root, ignore_errors=True)
    rows = real.manifest["chunks"]
    records = real.chunks(list(range(rows)))
    docs = {r.doc_id for r in records.values()}
    with real._db_lock:
        doc_rows = {d[0]: d for d in real._db.execute("SELECT * FROM documents") if d[0] in docs}
    tokens = [tokenize(f"{records[r].title}\n\n{records[r].text}") for r in range(rows)]
    copies = -(-n // rows)
    writer = IndexWriter(root)
    writer.add_documents(
        (f"{d}#{c}", t, s, u, p, path, f"synthetic{c}", text)
        for c in range(copies) for d, (_, t, s, u, p, path, _sig, text) in doc_rows.items()
    )
    with real._db_lock:
        sentence_json = dict(real._db.execute("SELECT row, sentences FROM chunks"))
    writer.add_chunks(
        (i, f"{records[i % rows].chunk_id}#{i // rows}", f"{records[i % rows].doc_id}#{i // rows}", 0,
         records[i % rows].start, records[i % rows].end, records[i % rows].text, f"syn{i}", sentence_json[i % rows])
        for i in range(n)
    )
    with real._db_lock:
        writer.add_sentences(real._db.execute("SELECT row, hash FROM sentences"))
    vectors = synthetic_vectors(np.asarray(real.vectors, dtype=np.float32), n, rng)
    description = writer.write_vectors(vectors)
    writer.write_sentence_vectors(np.asarray(real.sentence_vectors))
    writer.write_postings([tokens[i % rows] for i in range(n)])
    manifest = {k: real.manifest[k] for k in ("model", "dim", "language", "chunk_words", "overlap_words")}
    writer.commit({**manifest, "documents": len(doc_rows) * copies, "chunks": n, "dense_index": description,
                   "sentences": real.manifest["sentences"], "synthetic": True, "built_at": "synthetic",
                   "corpus_fingerprint": f"synthetic-{n}"})
    return time.perf_counter() - began


# -- 3. serving, in a child process ----------------------------------------------------------------

def serve_child(data: Path, questions_file: Path) -> None:
    """Child mode: start the engine, answer every question, print figures as JSON."""
    from index.engine import Engine

    engine = Engine(Settings(data_dir=data))
    questions = json.loads(questions_file.read_text())
    engine.ask(questions[0])
    first_answer = time.time()  # the parent subtracts its launch time: interpreter start-up included
    torch_loaded = "torch" in sys.modules
    retriever = engine.retriever
    total, embed, dense, bm25 = [], [], [], []
    for q in questions:
        t0 = time.perf_counter()
        query = engine.query(q)  # the embedding, with the tokens and their weights (microseconds)
        t1 = time.perf_counter()
        retriever.dense(query, engine.settings.candidates)
        t2 = time.perf_counter()
        retriever.bm25(query, engine.settings.candidates)
        t3 = time.perf_counter()
        embed.append(t1 - t0), dense.append(t2 - t1), bm25.append(t3 - t2)
        total.append(engine.ask(q).elapsed_ms)
    ms = lambda xs: [1000 * x for x in xs]  # noqa: E731
    print(json.dumps({
        "chunks": engine.snapshot.manifest["chunks"], "dense_index": engine.snapshot.manifest["dense_index"]["type"],
        "answered_at": first_answer, "torch_loaded": torch_loaded, "questions": len(questions),
        "p50_ms": pct(total, 50), "p95_ms": pct(total, 95),
        "embed_p50_ms": pct(ms(embed), 50), "dense_p50_ms": pct(ms(dense), 50), "dense_p95_ms": pct(ms(dense), 95),
        "bm25_p50_ms": pct(ms(bm25), 50), "bm25_p95_ms": pct(ms(bm25), 95),
        "rss_mb": vm("VmRSS"), "peak_rss_mb": vm("VmHWM"), "anon_mb": vm("RssAnon"), "file_mb": vm("RssFile"),
    }))


def serve(data: Path, questions_file: Path) -> dict:
    launched = time.time()
    done = subprocess.run([sys.executable, __file__, "--serve-child", str(data), str(questions_file)],
                          cwd=ROOT, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"serving failed: {done.stderr[-2000:]}")
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    figures["first_answer_s"] = figures.pop("answered_at") - launched
    return figures


# -- 4. FAISS alone --------------------------------------------------------------------------------

def faiss_sweep(base: np.ndarray, queries: np.ndarray, label: str) -> list[dict]:
    """Exact search, HNSW and IVF-SQ8 over base: recall@10 against exact, ms per question, bytes per chunk."""
    import faiss

    n, dim = base.shape
    exact = faiss.IndexFlatIP(dim)
    exact.add(base)
    _, truth = exact.search(queries, 10)

    def measure(index, name, setting, build_s):
        _, found = index.search(queries, 10)
        recall = float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(found, truth)]))
        times = []
        for q in queries[:200]:
            t0 = time.perf_counter()
            index.search(q[None], 50)
            times.append(1000 * (time.perf_counter() - t0))
        size = faiss.serialize_index(index).nbytes
        row = {"n": n, "vectors": label, "index": name, "setting": setting, "recall10": recall,
               "p50_ms": pct(times, 50), "p95_ms": pct(times, 95), "bytes_per_chunk": size / n, "build_s": build_s}
        print(f"  {label:>9} {n:>9,} {name:<8} {setting:<11} recall@10 {recall:.3f}  p50 {row['p50_ms']:6.2f} ms"
              f"  p95 {row['p95_ms']:6.2f} ms  {row['bytes_per_chunk']:6.0f} B/chunk  build {build_s:5.1f} s",
              flush=True)
        return row

    rows = [measure(exact, "flat", "exact", 0.0)]
    t0 = time.perf_counter()
    hnsw = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
    hnsw.hnsw.efConstruction = 80
    hnsw.add(base)
    built = time.perf_counter() - t0
    for ef in (64, 128, 256, 512):
        hnsw.hnsw.efSearch = ef
        rows.append(measure(hnsw, "hnsw32", f"ef={ef}", built))
    del hnsw
    t0 = time.perf_counter()
    lists = int(4 * np.sqrt(n))
    ivf = faiss.IndexIVFScalarQuantizer(faiss.IndexFlatIP(dim), dim, lists, faiss.ScalarQuantizer.QT_8bit,
                                        faiss.METRIC_INNER_PRODUCT)
    ivf.train(base[np.random.default_rng(0).choice(n, min(n, 40 * lists), replace=False)])
    ivf.add(base)
    built = time.perf_counter() - t0
    for probe in (16, 64):
        ivf.nprobe = probe
        rows.append(measure(ivf, "ivf-sq8", f"nprobe={probe}", built))
    return rows


def synthetic_vectors(real: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    out = np.empty((n, real.shape[1]), dtype=np.float32)
    for first in range(0, n, len(real)):
        block = real[: min(len(real), n - first)]
        if first:
            block = block + rng.normal(0, NOISE, block.shape).astype(np.float32)
        out[first : first + len(block)] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


# -- the run ---------------------------------------------------------------------------------------

def questions_for(squad: Path, news: Path, count: int) -> list[str]:
    """news-dev questions first, then SQuAD dev questions (fixed shuffle) up to count."""
    asked = [json.loads(line)["question"] for line in news.read_text().splitlines() if line.strip()]
    if squad.is_file():
        data = json.loads(squad.read_text())["data"]
        pool = [qa["question"] for a in data for p in a["paragraphs"] for qa in p["qas"]]
        random.Random(1).shuffle(pool)
        asked += pool
    return asked[:count]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("bbc", type=Path, help="the BBC articles folder (../shared/data/bbc-news)")
    p.add_argument("--squad", type=Path, default=Path("../shared/data/squad-v1.1-dev.json"),
                   help="SQuAD dev JSON: its questions fill the question set up to --questions")
    p.add_argument("--work", type=Path, default=ROOT / "var" / "bench", help="where indexes are written")
    p.add_argument("--sizes", default="10000,100000", help="synthetic index sizes the engine serves")
    p.add_argument("--faiss-sizes", default="100000,1000000", help="synthetic sizes for FAISS alone")
    p.add_argument("--questions", type=int, default=500)
    p.add_argument("--reuse-build", action="store_true", help="keep an existing BBC build (skip the fresh build)")
    p.add_argument("--json", type=Path, help="also write every figure here")
    args = p.parse_args()

    figures: dict = {}
    rng = np.random.default_rng(0)
    work = args.work.resolve()
    data = work / "bbc"
    # The BBC folder itself, read in place (a folder of links to its categories is refused since
    # issue 21: links out of a corpus are not followed); README.TXT is skipped as a note.
    corpus = args.bbc.resolve()

    print("== build: every BBC article, real model, default settings (child process)")
    if not args.reuse_build:
        shutil.rmtree(data / "index", ignore_errors=True)
    fresh = timed_build(data, corpus)
    real = IndexSnapshot.load(Settings(data_dir=data).index_root)
    chunks = real.manifest["chunks"]
    fresh["chunks"] = chunks
    fresh["chunks_per_s"] = chunks / fresh["seconds"]
    print(f"  {fresh['summary']}\n  {fresh['seconds']:.1f} s wall, {fresh['chunks_per_s']:.1f} chunks/s, "
          f"peak RSS {fresh['peak_rss_mb_children']:.0f} MB")
    unchanged = timed_build(data, corpus)
    print(f"  unchanged corpus: {unchanged['seconds']:.1f} s ({unchanged['summary']})")
    extra = corpus / "zz-new"
    extra.mkdir()
    (extra / "new.txt").write_text("Bank holiday traffic\n\nMotorists faced long queues on the M25 on Friday as "
                                   "the bank holiday getaway began, with a crash near Heathrow closing two lanes.\n")
    one_more = timed_build(data, corpus)
    print(f"  one new article: {one_more['seconds']:.1f} s ({one_more['summary']})")
    figures["build"] = {"fresh": fresh, "unchanged": unchanged, "one_new_article": one_more}
    real.close()
    real = IndexSnapshot.load(Settings(data_dir=data).index_root)

    questions = questions_for(args.squad, ROOT / "bench" / "data" / "news-dev.jsonl", args.questions)
    qfile = work / "questions.json"
    qfile.write_text(json.dumps(questions))

    print(f"\n== serving: {len(questions)} questions, fresh process each (synthetic = real texts, vectors + noise)")
    figures["serve"] = []
    for n, label in [(real.manifest["chunks"], "real")] + [(int(s), "synthetic") for s in args.sizes.split(",") if s]:
        target = data if label == "real" else work / f"syn-{n}"
        if label == "synthetic":
            seconds = write_synthetic(real, n, Settings(data_dir=target).index_root, rng)
            print(f"  wrote a {n:,}-chunk synthetic index in {seconds:.0f} s")
            shutil.copytree(data / "models", target / "models", dirs_exist_ok=True)  # the ONNX export
        row = serve(target, qfile) | {"vectors": label}
        figures["serve"].append(row)
        print(f"  {label:>9} {row['chunks']:>8,} chunks ({row['dense_index']}): first answer {row['first_answer_s']:.2f} s "
              f"after process start; engine p50 {row['p50_ms']:.1f} ms p95 {row['p95_ms']:.1f} ms "
              f"(embed {row['embed_p50_ms']:.1f}, dense {row['dense_p50_ms']:.2f}, bm25 p50 {row['bm25_p50_ms']:.1f} "
              f"p95 {row['bm25_p95_ms']:.1f}); RSS {row['rss_mb']:.0f} MB ({row['anon_mb']:.0f} own + {row['file_mb']:.0f} "
              f"mapped index files), peak {row['peak_rss_mb']:.0f} MB; "
              f"torch loaded: {row['torch_loaded']}", flush=True)

    print("\n== FAISS alone: exact search is the baseline; recall@10 against it, one question at a time")
    from index.encoders.embedder import Embedder

    embedder = Embedder(cache_dir=data / "models")
    qvecs = np.stack([embedder.queries.embed(q) for q in questions]).astype(np.float32)
    base = np.asarray(real.vectors, dtype=np.float32)
    figures["faiss"] = faiss_sweep(base, qvecs, "real")
    for n in [int(s) for s in args.faiss_sizes.split(",") if s]:
        figures["faiss"] += faiss_sweep(synthetic_vectors(base, n, rng), qvecs, "synthetic")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--serve-child":
        serve_child(Path(sys.argv[2]), Path(sys.argv[3]))
    else:
        main()
