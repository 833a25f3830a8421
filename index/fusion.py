"""Rank fusion: combine ranked lists from different retrievers without calibrating their scores."""
from __future__ import annotations

from collections import defaultdict
from typing import Sequence


def reciprocal_rank_fusion(rankings: Sequence[Sequence[int]], k: int = 60) -> list[tuple[int, float]]:
    """Items by descending sum of 1/(k + rank) over the rankings (Cormack et al., 2009)."""
    scores: dict[int, float] = defaultdict(float)
    for ranking in rankings:
        for rank, item in enumerate(ranking, 1):
            scores[item] += 1.0 / (k + rank)
    return sorted(scores.items(), key=lambda pair: (-pair[1], pair[0]))
