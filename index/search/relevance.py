"""Whether the corpus holds an answer at all: the score that abstention compares with a threshold.

relevance = cosine of the closest passage + COVERAGE_WEIGHT * coverage, where coverage is the
share of the question's idf weight found in one of the top passages. Cosine alone confuses
"same topic" with "answers the question"; coverage notices when the question's rarest words
(a name, a place) are nowhere in what was found. Weights and threshold: bench/abstention.py.
"""
from __future__ import annotations

import math
from typing import Collection, Sequence

from .query import Query

COVERAGE_WEIGHT = 0.2
TOP_PASSAGES = 3


def coverage(query: Query, passage_tokens: Sequence[Collection[str]]) -> float:
    """Largest share of the question's idf weight present in one of the top passages (0..1).

    passage_tokens holds each top passage's tokens (it is enough that they include the
    question's tokens the index knows: the search already tokenised them).

    Words the index has never seen get the highest possible idf (query.unseen_weight): a
    question about "sourdough" asked of a corpus without the word is mostly not covered.
    """
    weights = {t: query.weights.get(t, query.unseen_weight) for t in set(query.tokens)}
    total = math.fsum(weights.values())  # exact, so independent of the set's order
    if total <= 0:
        return 0.0
    best = 0.0
    for present in passage_tokens[:TOP_PASSAGES]:
        best = max(best, math.fsum(w for t, w in weights.items() if t in present) / total)
    return best


def relevance(best_similarity: float, coverage_share: float) -> float:
    return best_similarity + COVERAGE_WEIGHT * coverage_share
