"""How the digest groups articles into stories: BBC articles at several thresholds.

    python bench/digest.py [--data-dir var/eval/d4325eea8b7f] [--corpus-prefix bbc]

Runs index/news/digest.stories() over every BBC article of an index `citebot eval` built (they are
undated, so all of them, as if added in one day) at several SAME_STORY thresholds, and prints how
many stories of two or more articles it finds, the share of joined article pairs whose BBC
category (the folder: business, sport, ...) agrees (a pair of one story should), and a few joined
titles to read.
"""
from __future__ import annotations

import argparse
import sys
from itertools import combinations
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from index.config import Settings  # noqa: E402
from index.news.digest import stories  # noqa: E402
from index.store.files import IndexSnapshot  # noqa: E402


class BbcOnly:
    """The view, its leads limited to the BBC articles."""

    def __init__(self, view, marker: str):
        self.view, self.marker = view, marker

    def leads(self, where=None):
        return [c for c in self.view.leads(where) if self.marker in c.path]

    def vectors_of(self, ids):
        return self.view.vectors_of(ids)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", type=Path, default=ROOT / "var" / "eval" / "d4325eea8b7f")
    ap.add_argument("--corpus-prefix", default="bbc", help="a path part that marks the BBC articles")
    args = ap.parse_args()
    view = BbcOnly(IndexSnapshot.load(Settings(data_dir=args.data_dir).index_root), args.corpus_prefix)
    print(f"{len(view.leads())} BBC articles")
    print("| threshold | stories of 2+ | articles in them | joined pairs, same category |")
    print("|---|---|---|---|")
    samples = {}
    for threshold in (0.6, 0.7, 0.8, 0.9):
        found = [s for s in stories(view, None, limit=10**6, same_story=threshold) if len(s.articles) > 1]
        pairs = [(a, b) for s in found for a, b in combinations(s.articles, 2)]
        same = sum(Path(a.path).parent.name == Path(b.path).parent.name for a, b in pairs)
        print(f"| {threshold} | {len(found)} | {sum(len(s.articles) for s in found)} | "
              f"{same / max(len(pairs), 1):.3f} of {len(pairs)} |")
        samples[threshold] = found[:4]
    for threshold, found in samples.items():
        print(f"\nAt {threshold}, the largest stories:")
        for s in found:
            print(f"  {len(s.articles)}: " + " | ".join(c.title[:50] for c in s.articles[:4]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
