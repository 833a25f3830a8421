"""Small updates through ONNX Runtime: do its vectors match the build's (torch) vectors, and how fast is it?

    python bench/onnx_updates.py [--data-dir var/eval/d4325eea8b7f] [--sample 2000]

Takes a sample of the chunks of an existing build (default: the SQuAD + BBC index `citebot eval`
builds), embeds their texts again with the ONNX export that serves questions (what a build of at
most index.encoders.embedder.SMALL_UPDATE_TEXTS texts now uses) and with torch as a bulk build
does (bfloat16 where the CPU has it, same run), and prints the cosine of each to the stored vector
(min, 1st percentile, mean) and the time per chunk of each. Target (issue 24): cosine > 0.999.
"""
from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from index.config import Settings  # noqa: E402
from index.encoders.embedder import Embedder  # noqa: E402
from index.ingest.chunking import embedding_text  # noqa: E402
from index.store.files import IndexSnapshot  # noqa: E402


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (np.asarray(a, dtype=np.float32) * np.asarray(b, dtype=np.float32)).sum(axis=1)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", type=Path, default=ROOT / "var" / "eval" / "d4325eea8b7f")
    ap.add_argument("--sample", type=int, default=2000)
    args = ap.parse_args()
    settings = Settings(data_dir=args.data_dir)
    view = IndexSnapshot.load(settings.index_root)
    rows = sorted(random.Random(3).sample(range(view.chunk_count), min(args.sample, view.chunk_count)))
    records = view.chunks(rows)
    texts = [embedding_text(records[r].title, records[r].text) for r in rows]
    stored = np.asarray(view.vectors[rows], dtype=np.float32)
    embedder = Embedder(settings.model, cache_dir=settings.model_cache)
    onnx = embedder.queries.onnx
    if onnx is None:
        print("No ONNX export in this data folder; run `citebot build` there first.")
        return 1
    results = {}
    began = time.perf_counter()
    by_onnx = np.concatenate([onnx.encode(texts[i:i + 16]) for i in range(0, len(texts), 16)])
    results["ONNX Runtime (fp32)"] = (by_onnx, time.perf_counter() - began)
    bulk = embedder.bulk
    bulk.model  # load torch before timing
    began = time.perf_counter()
    by_torch = bulk.embed(texts)
    results[f"torch ({'bfloat16' if bulk.bf16 else 'float32'}, as builds)"] = (by_torch, time.perf_counter() - began)
    print(f"{len(rows)} chunks of {view.chunk_count} in {args.data_dir} (built {view.manifest.get('built_at')}, "
          f"precision as built: {view.manifest.get('precision', 'not recorded')})")
    print("| embedded with | cosine to stored: min | 1st pct | mean | ms per chunk |")
    print("|---|---|---|---|---|")
    for name, (vectors, seconds) in results.items():
        c = cosines(vectors, stored)
        print(f"| {name} | {c.min():.5f} | {np.percentile(c, 1):.5f} | {c.mean():.5f} | "
              f"{seconds * 1000 / len(rows):.1f} |")
    c = cosines(by_onnx, by_torch)
    print(f"ONNX against torch in this run: min {c.min():.5f}, mean {c.mean():.5f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
