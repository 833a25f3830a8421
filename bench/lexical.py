"""BM25 from our postings (index/store/postings.py) against bm25s, which stored it before issue 24.

    python bench/lexical.py DATA_DIR [--questions bench/data/news-dev.jsonl]

DATA_DIR holds a built file index (e.g. the folder `citebot eval` made). Every chunk of its live
base build is tokenized again and indexed with bm25s in memory (the same tokens and the same
Lucene formula, k1 1.5, b 0.75); each question's top 50 is searched both ways. Printed: how
often the two top-50 lists agree (same chunks in the same order, and the largest score
difference) and the milliseconds per search, p50/p95, same run.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from index.config import Settings  # noqa: E402
from index.ingest.chunking import embedding_text  # noqa: E402
from index.search.tokenize import tokenize  # noqa: E402
from index.store.files import IndexSnapshot  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("data_dir", type=Path)
    p.add_argument("--questions", type=Path, default=ROOT / "bench" / "data" / "news-dev.jsonl")
    args = p.parse_args()
    import bm25s

    view = IndexSnapshot.load(Settings(data_dir=args.data_dir).index_root)
    records = view.chunks(list(range(view.chunk_count)))
    tokens = [tokenize(embedding_text(records[r].title, records[r].text)) for r in range(view.chunk_count)]
    bm25 = bm25s.BM25()
    bm25.index(tokens, show_progress=False)
    questions = [json.loads(line)["question"] for line in args.questions.read_text().splitlines() if line.strip()]
    ours_ms, theirs_ms, same, same_scores, worst = [], [], 0, 0, 0.0
    for q in questions:
        query = tokenize(q)
        t0 = time.perf_counter()
        ours = view.lexical(query, 50)
        t1 = time.perf_counter()
        ids = bm25.get_tokens_ids(query)
        scores = np.asarray(bm25.get_scores_from_ids(ids)) if ids else np.zeros(view.chunk_count)
        top = np.argsort(-scores, kind="stable")[:50]
        theirs = [(int(i), float(scores[i])) for i in top if scores[i] > 0]
        t2 = time.perf_counter()
        ours_ms.append((t1 - t0) * 1000)
        theirs_ms.append((t2 - t1) * 1000)
        same += [r for r, _ in ours] == [r for r, _ in theirs]
        # Equal scores come in either order: the same score at every rank is agreement too.
        same_scores += len(ours) == len(theirs) and all(abs(a - b) < 1e-4 for (_, a), (_, b) in zip(ours, theirs))
        if ours and theirs:
            worst = max(worst, max(abs(a - b) for (_, a), (_, b) in zip(ours, theirs)))
    print(f"{view.chunk_count:,} chunks, {len(questions)} questions")
    print(f"top 50 identical (chunks and order): {same} of {len(questions)}; the same score at every rank: "
          f"{same_scores} of {len(questions)}; largest score difference at a rank {worst:.2e}")
    for name, ms in (("postings (ours)", ours_ms), ("bm25s", theirs_ms)):
        print(f"{name}: p50 {np.percentile(ms, 50):.2f} ms, p95 {np.percentile(ms, 95):.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
