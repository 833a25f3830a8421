"""Fusion: combine the dense and BM25 candidate lists into one ranking."""
from __future__ import annotations

from collections import defaultdict
from typing import Mapping, Sequence

FUSIONS = ("convex", "rrf")


def reciprocal_rank_fusion(rankings: Sequence[Sequence[int]], k: int = 60) -> list[tuple[int, float]]:
    """Items by descending sum of 1/(k + rank) over the rankings (Cormack et al., 2009)."""
    scores: dict[int, float] = defaultdict(float)
    for ranking in rankings:
        for rank, item in enumerate(ranking, 1):
            scores[item] += 1.0 / (k + rank)
    return sorted(scores.items(), key=lambda pair: (-pair[1], pair[0]))


def convex_combination(
    cosine: Mapping[int, float], lexical: Mapping[int, float], alpha: float = 0.5
) -> list[tuple[int, float]]:
    """Items by alpha * cosine + (1 - alpha) * BM25 / best BM25 of the query (Bruch et al., 2023).

    Unlike rank fusion it keeps how much better one candidate is than the next; cosine must be
    known for every candidate, a missing BM25 score counts as 0.
    """
    top = max(lexical.values(), default=0.0) or 1.0
    scores = {item: alpha * cos + (1 - alpha) * lexical.get(item, 0.0) / top for item, cos in cosine.items()}
    return sorted(scores.items(), key=lambda pair: (-pair[1], pair[0]))
