"""What multilingual vectors (CITEBOT_MULTILINGUAL=1) cost a build: time and index size, on a sample of BBC articles.

    python bench/multilingual_build.py ../shared/data/bbc-news [--articles 200] [--full-chunks 9188]

Copies every n-th article of the BBC folder (--articles of them) into a temporary corpus, builds it
with the setting off into a new data folder (English model only, as today), then turns the setting
on and builds again in the same folder: the English vectors are reused, so that second build's time
is what the multilingual vectors add. Prints both, the index sizes, and the per-chunk rates
extrapolated to --full-chunks (the whole BBC set's chunks).
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from index.config import Settings  # noqa: E402
from index.engine import Engine  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bbc", type=Path)
    ap.add_argument("--articles", type=int, default=200)
    ap.add_argument("--full-chunks", type=int, default=9188, help="chunks of the whole BBC set (its build says)")
    args = ap.parse_args()
    files = sorted(p for p in args.bbc.rglob("*.txt") if p.name != "README.TXT")
    step = max(1, len(files) // args.articles)
    picked = files[::step][: args.articles]
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "corpus"
        for p in picked:
            target = corpus / p.relative_to(args.bbc)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(p, target)
        data = Path(tmp) / "data"
        off = Engine(Settings(data_dir=data, corpus_dir=corpus))
        began = time.perf_counter()
        report = off.build()
        off_s = time.perf_counter() - began
        off_bytes = off.snapshot.manifest["index_bytes"]
        chunks = report.chunks
        on = Engine(Settings(data_dir=data, corpus_dir=corpus, multilingual=True), off.embedder)
        began = time.perf_counter()
        report = on.build()
        on_s = time.perf_counter() - began
        view = on.snapshot
        on_bytes = view.manifest["index_bytes"]
        npy = (view.build_dir / "multilingual.npy").stat().st_size
        # Chunks repeating another's text (the BBC set has duplicate articles) are embedded once.
        assert view.has_multilingual and 0 < report.multilingual_embedded <= chunks
        embedded = report.multilingual_embedded
    scale = args.full_chunks / chunks
    print(f"{len(picked)} BBC articles, {chunks} chunks ({embedded} distinct texts through the multilingual encoder)")
    print("| build | seconds | index bytes | extrapolated to the full BBC set |")
    print("|---|---|---|---|")
    print(f"| setting off (English model only, fresh) | {off_s:.1f} | {off_bytes:,} | "
          f"{off_s * scale / 60:.1f} min, {off_bytes * scale / 2**20:.0f} MB |")
    print(f"| then setting on (multilingual vectors added, English reused) | {on_s:.1f} | {on_bytes:,} "
          f"(multilingual.npy {npy:,}) | +{on_s * scale / 60:.1f} min, +{(on_bytes - off_bytes) * scale / 2**20:.0f} MB |")
    print(f"multilingual: {1000 * on_s / chunks:.0f} ms a chunk (with the rewrite of the build); English build: "
          f"{1000 * off_s / chunks:.0f} ms a chunk (with loading the model)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
