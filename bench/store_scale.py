"""The two index stores at scale, one run: the files (FAISS + bm25s) against PostgreSQL (pgvector).

    python bench/store_scale.py var/eval/d4325eea8b7f [--sizes 100000] [--questions 200] \
        [--squad ../shared/data/squad-v1.1-dev.json] [--work var/bench-stores] [--database-url URL]

SOURCE is a data folder holding an existing file build and its corpus folder (the one `citebot
eval` makes for news-dev, SQuAD dev + BBC, 12k chunks): it is only read. Its build, build cache
and model files are copied into --work, so nothing is embedded again for the stores' first fill.

At the real size and at each synthetic size (bench/scale.py's synthetic indexes: the real chunks'
texts cycled, chunk vectors = real vector + noise), for each store:
- engine p50/p95 per question (the Engine with the reader, news-dev then SQuAD dev questions), in a
  fresh child process per store and size, with that process's resident memory (VmRSS, VmHWM);
- dense recall@10 against exact search over the same vectors (numpy over the store's own vectors:
  the build's vectors.npy, the database's embedding column), as the engine searches (top 10 of
  `candidates`) and for a search of 10 alone;
- the time to fill the store from existing vectors (no embedding) and the space it takes
  (the build folder; pg_total_relation_size of the index_* tables).
  Real size: PostgreSQL filled by `Engine.build()` (the builder, vectors lent by the file build).
  Synthetic: the files written with IndexWriter (bench/scale.py), PostgreSQL bulk-loaded with COPY
  into the schema Database.open() creates (indexes dropped during the load and built after).
- updates: 10 new articles (bench/data/update-articles.json; embedding included, torch loaded
  beforehand, the time to load it not counted). Real size: `Engine.build()` on the corpus + 10
  articles for each store (the files: a whole new build from reused parts; PostgreSQL: one
  transaction with only the new documents). Synthetic PostgreSQL: the same 10 articles read,
  chunked, embedded and applied as one transaction (PostgresIndex.apply). A synthetic file index
  has no corpus to rebuild from: its update would be a whole rewrite, which the time to write it
  bounds from below.

--sizes 1000000 runs 1M chunks too: expect roughly 10x the 100k times (the HNSW builds dominate);
the 100k line of a run says what that is on the machine at hand.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.scale import pct, questions_for, synthetic_vectors, vm, write_synthetic  # noqa: E402
from index.config import Settings  # noqa: E402
from index.store.database import Database  # noqa: E402
from index.store.files import IndexSnapshot, current_build_dir  # noqa: E402
from index.store.postgres import PostgresIndex, PostgresView, _tsvector, _vector_text, published_day  # noqa: E402,F401

UPDATE_ARTICLES = ROOT / "bench" / "data" / "update-articles.json"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


def database_bytes(db: Database) -> int:
    return PostgresIndex(db).size_bytes()


# -- serving, in a child process ----------------------------------------------------------------------

def serve_child(data: Path, url: str, questions_file: Path) -> None:
    from index.engine import Engine

    engine = Engine(Settings(data_dir=data, database_url="" if url == "-" else url))
    questions = json.loads(questions_file.read_text())
    engine.ask(questions[0])
    retriever = engine.retriever
    total, dense, lexical = [], [], []
    for q in questions:
        query = engine.query(q)
        t1 = time.perf_counter()
        retriever.dense(query, engine.settings.candidates)
        t2 = time.perf_counter()
        retriever.bm25(query, engine.settings.candidates)
        t3 = time.perf_counter()
        dense.append(1000 * (t2 - t1)), lexical.append(1000 * (t3 - t2))
        total.append(engine.ask(q).elapsed_ms)
    print(json.dumps({
        "questions": len(questions), "torch_loaded": "torch" in sys.modules,
        "p50_ms": pct(total, 50), "p95_ms": pct(total, 95),
        "dense_p50_ms": pct(dense, 50), "dense_p95_ms": pct(dense, 95),
        "lexical_p50_ms": pct(lexical, 50), "lexical_p95_ms": pct(lexical, 95),
        "rss_mb": vm("VmRSS"), "peak_rss_mb": vm("VmHWM"), "anon_mb": vm("RssAnon"), "file_mb": vm("RssFile"),
    }))
    Database.close_shared()


def serve(data: Path, url: str, questions_file: Path) -> dict:
    done = subprocess.run([sys.executable, __file__, "--serve-child", str(data), url or "-", str(questions_file)],
                          cwd=ROOT, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"serving failed: {done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# -- recall against exact search ----------------------------------------------------------------------

def recall(search, ids: np.ndarray, vectors: np.ndarray, queries: np.ndarray, n: int) -> float:
    """Mean overlap of search(q, n)[:10] with the exact top 10 over (ids, vectors)."""
    hits = []
    for q in queries:
        exact = set(ids[np.argpartition(-(vectors @ q), 10)[:10]].tolist())
        found = {i for i, _ in search(q, n)[:10]}
        hits.append(len(exact & found) / 10)
    return float(np.mean(hits))


def pg_vectors(db: Database) -> tuple[np.ndarray, np.ndarray]:
    with db.transaction() as conn:
        rows = conn.execute("SELECT id, embedding::text FROM index_chunks").fetchall()
    ids = np.array([r[0] for r in rows], dtype=np.int64)
    vectors = np.stack([np.fromstring(r[1][1:-1], sep=",", dtype=np.float32) for r in rows])
    return ids, vectors


def recalls(files: IndexSnapshot, db: Database, queries: np.ndarray, candidates: int) -> dict:
    file_vectors = np.asarray(files.vectors, dtype=np.float32)
    file_ids = np.arange(len(file_vectors))
    view = PostgresView(db)
    ids, vectors = pg_vectors(db)
    return {
        "files_recall10": recall(files.dense, file_ids, file_vectors, queries, candidates),
        "files_recall10_k10": recall(files.dense, file_ids, file_vectors, queries, 10),
        "pg_recall10": recall(view.dense, ids, vectors, queries, candidates),
        "pg_recall10_k10": recall(view.dense, ids, vectors, queries, 10),
    }


# -- a synthetic index in PostgreSQL ------------------------------------------------------------------

INDEXES = {  # the HNSW and GIN indexes of migration 2 (index/store/database.py), built after the load
    "index_chunks_embedding": "CREATE INDEX index_chunks_embedding ON index_chunks USING hnsw (embedding vector_ip_ops)",
    "index_chunks_lexical": "CREATE INDEX index_chunks_lexical ON index_chunks USING gin (lexical)",
}


def fill_synthetic_pg(real_db: Database, real: IndexSnapshot, vectors: np.ndarray, db: Database) -> dict:
    """The synthetic file index's chunks (same texts, same vectors, same order) into an empty database:
    COPY with the HNSW and GIN indexes dropped, then built; term statistics and state as apply() keeps."""
    n, rows = len(vectors), real.manifest["chunks"]
    records = real.chunks(list(range(rows)))
    copies = -(-n // rows)
    with real_db.transaction() as conn:
        docs = conn.execute("SELECT doc_id, title, source, url, published, published_day, path, text, signature "
                            "FROM index_documents").fetchall()
        chunk_rows = {r[0]: r[1:] for r in conn.execute(
            "SELECT chunk_id, doc_id, ordinal, start_at, end_at, text, spans::text, sentence_vectors, lexical::text, "
            "length, published_day, source_key FROM index_chunks")}
        manifest = conn.execute("SELECT value FROM index_state WHERE key = 'manifest'").fetchone()[0]
    times = {}
    began = time.perf_counter()
    with db.transaction() as conn:
        for name in INDEXES:
            conn.execute(f"DROP INDEX {name}")
        with conn.cursor() as cur:
            with cur.copy("COPY index_documents (doc_id, title, source, url, published, published_day, path, text, "
                          "signature) FROM STDIN") as copy:
                for c in range(copies):
                    for d in docs:
                        copy.write_row((f"{d[0]}#{c}", d[1], d[2], d[3], d[4], d[5], f"{d[6]}#{c}", d[7], d[8]))
            with cur.copy("COPY index_chunks (doc_id, ordinal, chunk_id, start_at, end_at, text, hash, spans, "
                          "embedding, sentence_vectors, lexical, length, published_day, source_key) FROM STDIN") as copy:
                for i in range(n):
                    c = i // rows
                    cid = records[i % rows].chunk_id
                    (doc, ordinal, start, end, text, spans, blob, lexical, length, day, key) = chunk_rows[cid]
                    copy.write_row((f"{doc}#{c}", ordinal, f"{cid}#{c}", start, end, text, f"syn{i}", spans,
                                    _vector_text(vectors[i]), blob, lexical, length, day, key))
        times["copy_s"] = time.perf_counter() - began
        conn.execute("SET LOCAL maintenance_work_mem = '2GB'")
        for name, sql in INDEXES.items():
            t0 = time.perf_counter()
            conn.execute(sql)
            times[f"{name}_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        conn.execute("INSERT INTO index_terms (token, df) SELECT u, count(*) FROM index_chunks, "
                     "unnest(tsvector_to_array(lexical)) u GROUP BY u")
        chunks, total = conn.execute("SELECT count(*), sum(length) FROM index_chunks").fetchone()
        (sentences,) = conn.execute("SELECT sum(jsonb_array_length(spans)) FROM index_chunks").fetchone()
        manifest = {**manifest, "chunks": int(chunks), "documents": len(docs) * copies, "sentences": int(sentences),
                    "generation": 1, "synthetic": True, "corpus_fingerprint": f"synthetic-{n}"}
        state = {"manifest": manifest, "generation": 1, "chunks": int(chunks), "avg_length": float(total) / chunks}
        for key, value in state.items():
            conn.execute("INSERT INTO index_state (key, value) VALUES (%s, %s::jsonb)", [key, json.dumps(value)])
        times["terms_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    with db.connection() as conn:
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE index_chunks")
        conn.execute("VACUUM ANALYZE index_documents")
        conn.execute("VACUUM ANALYZE index_terms")
    times["analyze_s"] = time.perf_counter() - t0
    times["seconds"] = time.perf_counter() - began
    return times


# -- updates --------------------------------------------------------------------------------------------

def write_update_articles(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i, a in enumerate(json.loads(UPDATE_ARTICLES.read_text())):
        (folder / f"{i:03d}.txt").write_text(f"{a['title']}\n\n{a['text']}\n")


def update_database_directly(settings: Settings, db: Database, corpus: Path, bulk) -> dict:
    """The 10 articles read, chunked, embedded (a fresh build cache: nothing reused) and applied as one
    transaction to an index that has no corpus folder (the synthetic one)."""
    from index.store.builder import (BuildCache, _indexed_documents, build_vectors, document_signature,
                                     plan_build, read_corpus)

    began = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        cache = BuildCache(Path(tmp) / "cache.sqlite")
        read = read_corpus(corpus, settings, None, cache, keep=frozenset())
        plan = plan_build(read, settings, cache)
        vectors = build_vectors(plan, settings, None, bulk, None, None, cache)
        embedded = time.perf_counter() - began
        signature = {d.doc_id: document_signature(d, read.language, settings) for d in read.corpus.documents}
        documents = _indexed_documents(plan, vectors, signature)
        store = PostgresIndex(db)
        manifest = store.manifest()
        t0 = time.perf_counter()
        store.apply(documents, [], {k: v for k, v in manifest.items() if k not in ("chunks", "documents",
                                                                                   "sentences", "generation")})
        applied = time.perf_counter() - t0
        cache.close()
    return {"seconds": time.perf_counter() - began, "embed_s": embedded, "apply_s": applied,
            "documents": len(documents), "chunks": sum(len(d.chunks) for d in documents)}


# -- the run ----------------------------------------------------------------------------------------------

def copy_source(source: Path, target: Path) -> None:
    """The source's live build, build cache and model files, so builds here reuse its vectors."""
    shutil.rmtree(target, ignore_errors=True)
    build = current_build_dir(source / "index")
    (target / "index" / "builds").mkdir(parents=True)
    shutil.copytree(build, target / "index" / "builds" / build.name)
    shutil.copy2(source / "index" / "CURRENT", target / "index" / "CURRENT")
    if (source / "index" / "cache.sqlite").exists():
        shutil.copy2(source / "index" / "cache.sqlite", target / "index" / "cache.sqlite")
    shutil.copytree(source / "models", target / "models")


def machine() -> str:
    flags = sorted({f for f in ("avx512_bf16", "amx_tile", "amx_bf16") if f in Path("/proc/cpuinfo").read_text()})
    load = os.getloadavg()[0]
    return (f"{os.cpu_count()} cores ({platform.processor() or platform.machine()}; {', '.join(flags) or 'no bf16 flags'}), "
            f"load average {load:.1f} at start")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("source", type=Path, help="a data folder with a file build and its corpus (read only)")
    ap.add_argument("--sizes", default="100000", help="synthetic sizes, comma-separated ('' for none)")
    ap.add_argument("--questions", type=int, default=200)
    ap.add_argument("--squad", type=Path, default=Path("../shared/data/squad-v1.1-dev.json"))
    ap.add_argument("--work", type=Path, default=ROOT / "var" / "bench-stores")
    ap.add_argument("--database-url", help="a PostgreSQL server to use (databases citebot_bench_* are created "
                                           "there); default: one started here in a temporary folder")
    ap.add_argument("--json", type=Path, help="also write every figure here")
    args = ap.parse_args()

    from index.encoders.embedder import Embedder
    from index.engine import Engine

    source, work = args.source.resolve(), args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    print(f"machine: {machine()}", flush=True)
    files_dir, pg_dir, corpus = work / "real-files", work / "real-pg", work / "corpus"
    for target in (files_dir, pg_dir):
        copy_source(source, target)
    shutil.rmtree(corpus, ignore_errors=True)
    corpus.mkdir()
    for entry in sorted((source / "corpus").iterdir()):  # copied: links out of a corpus are not followed
        if entry.resolve().is_dir():
            shutil.copytree(entry.resolve(), corpus / entry.name)
        else:
            shutil.copy2(entry.resolve(), corpus / entry.name)

    server = None
    if args.database_url:
        base = args.database_url.rsplit("/", 1)[0]
        url_for = lambda name: f"{base}/{name}"  # noqa: E731  (empty databases created beforehand)
    else:
        from index.store.local_postgres import LocalPostgres

        shutil.rmtree(work / "postgres", ignore_errors=True)  # a fresh server: nothing cached from a last run
        server = LocalPostgres(folder=work / "postgres").start()
        url_for = server.create_database
    figures: dict = {"machine": machine(), "rows": []}
    try:
        files_settings = Settings(data_dir=files_dir)
        pg_url = url_for("citebot_bench_real")
        pg_settings = replace(Settings(data_dir=pg_dir), database_url=pg_url)
        embedder = Embedder(files_settings.model, cache_dir=files_settings.model_cache)
        real = IndexSnapshot.load(files_settings.index_root)
        rows_real = real.manifest["chunks"]

        log(f"filling PostgreSQL from the file build's vectors ({rows_real:,} chunks)")
        pg_engine = Engine(pg_settings, embedder)
        t0 = time.perf_counter()
        report = pg_engine.build(corpus)
        fill_real = time.perf_counter() - t0
        log(f"  {report.summary().splitlines()[0]} ({fill_real:.1f} s)")
        real_db = pg_engine.database

        questions = questions_for(args.squad, ROOT / "bench" / "data" / "news-dev.jsonl", args.questions)
        qfile = work / "questions.json"
        qfile.write_text(json.dumps(questions))
        queries = np.stack([embedder.queries.embed(q) for q in questions]).astype(np.float32)
        candidates = files_settings.candidates

        def measure(label: str, data_files: Path, data_pg: Path, url: str, snapshot: IndexSnapshot, db: Database,
                    fill: dict) -> dict:
            row = {"index": label, "chunks": snapshot.manifest["chunks"], **fill}
            log(f"{label}: recall against exact search")
            row |= recalls(snapshot, db, queries, candidates)
            row["files_bytes"] = folder_bytes(current_build_dir(Settings(data_dir=data_files).index_root))
            row["pg_bytes"] = database_bytes(db)
            log(f"{label}: serving, files")
            row["files_serve"] = serve(data_files, "", qfile)
            log(f"{label}: serving, PostgreSQL")
            row["pg_serve"] = serve(data_pg, url, qfile)
            log(json.dumps(row))
            figures["rows"].append(row)
            return row

        real_row = measure("real (SQuAD dev + BBC)", files_dir, pg_dir, pg_url, real, real_db,
                           {"files_fill_s": None, "files_source_build_s": real.manifest.get("build_seconds"),
                            "pg_fill_s": fill_real})

        base_vectors = np.asarray(real.vectors, dtype=np.float32)
        synthetic = []
        for n in [int(s) for s in args.sizes.split(",") if s.strip()]:
            syn_dir = work / f"syn-{n}"
            log(f"synthetic {n:,}: files")
            # write_synthetic draws its vectors with synthetic_vectors from the generator it is given:
            # the same seed gives these same vectors to both stores.
            vectors = synthetic_vectors(base_vectors, n, np.random.default_rng(n))
            shutil.rmtree(syn_dir, ignore_errors=True)
            files_s = write_synthetic(real, n, Settings(data_dir=syn_dir).index_root, np.random.default_rng(n))
            shutil.copytree(files_dir / "models", syn_dir / "models")
            log(f"  written in {files_s:.1f} s; PostgreSQL")
            url = url_for(f"citebot_bench_syn{n}")
            db = Database.shared(url)
            fill = fill_synthetic_pg(real_db, real, vectors, db)
            log(f"  {json.dumps(fill)}")
            snapshot = IndexSnapshot.load(Settings(data_dir=syn_dir).index_root)
            row = measure(f"synthetic {n:,}", syn_dir, syn_dir, url, snapshot, db,
                          {"files_fill_s": files_s, "files_fill_note": "IndexWriter, vectors given",
                           "pg_fill_s": fill["seconds"], "pg_fill_parts": fill})
            synthetic.append((n, syn_dir, url, db, row))
            snapshot.close()

        log("updates: 10 new articles (torch loaded first)")
        embedder.bulk.embed(["Warming up the model before the timed updates."])
        write_update_articles(corpus / "zz-update")
        for store, settings in (("files", files_settings), ("pg", pg_settings)):
            engine = Engine(settings, embedder)
            t0 = time.perf_counter()
            report = engine.build(corpus)
            seconds = time.perf_counter() - t0
            real_row[f"{store}_update_s"] = seconds
            real_row[f"{store}_update_summary"] = report.summary().splitlines()[0]
            log(f"  {store} at real size: {seconds:.1f} s ({real_row[f'{store}_update_summary']})")
        only_new = work / "update-only"
        shutil.rmtree(only_new, ignore_errors=True)
        write_update_articles(only_new / "zz-update")
        for n, syn_dir, url, db, row in synthetic:
            up = update_database_directly(replace(pg_settings, data_dir=syn_dir, database_url=url), db, only_new,
                                          embedder.bulk)
            row["pg_update_s"], row["pg_update_parts"] = up["seconds"], up
            row["files_update_s"], row["files_update_note"] = None, "whole rewrite, >= the fill time"
            log(f"  pg at {n:,}: {json.dumps(up)}")
        figures["torch_loaded"] = "torch" in sys.modules
    finally:
        Database.close_shared()
        if server is not None:
            server.stop()

    print_table(figures)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2, default=str))
    return 0


def print_table(figures: dict) -> None:
    f1 = lambda v: "-" if v is None else f"{v:.1f}"  # noqa: E731
    print(f"\nmachine: {figures['machine']}")
    print("\n| index | chunks | store | engine p50 ms | p95 ms | dense p50 ms | lexical p50 / p95 ms | recall@10 "
          "(engine's search / k=10) | fill s | update s (10 articles) | disk MB | RSS MB (peak) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in figures["rows"]:
        for store, name in (("files", "files"), ("pg", "PostgreSQL")):
            s = r[f"{store}_serve"]
            print(f"| {r['index']} | {r['chunks']:,} | {name} | {s['p50_ms']:.1f} | {s['p95_ms']:.1f} | "
                  f"{s['dense_p50_ms']:.2f} | {s['lexical_p50_ms']:.1f} / {s['lexical_p95_ms']:.1f} | "
                  f"{r[f'{store}_recall10']:.3f} / {r[f'{store}_recall10_k10']:.3f} | {f1(r.get(f'{store}_fill_s'))} | "
                  f"{f1(r.get(f'{store}_update_s'))} | {r[f'{store}_bytes'] / 1e6:.0f} | "
                  f"{s['rss_mb']:.0f} ({s['peak_rss_mb']:.0f}) |")


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--serve-child":
        serve_child(Path(sys.argv[2]), sys.argv[3], Path(sys.argv[4]))
    else:
        sys.exit(main())
