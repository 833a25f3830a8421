"""The Retriever: dense (FAISS inner product), BM25 (bm25s), or both fused (convex combination or RRF)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .fusion import FUSIONS, convex_combination, reciprocal_rank_fusion
from .query import Query
from ..store.files import IndexSnapshot

MODES = ("dense", "bm25", "hybrid")
# A filtered dense search over at most this many chunks is exact, from the stored vectors (about
# 10 ms at 20k); a wider one asks the index, which skips the rows outside the filter.
EXACT_WINDOW = 20_000


@dataclass(frozen=True)
class Hit:
    """A retrieved chunk: its row, its score in the chosen mode, and its cosine to the question."""

    row: int
    score: float
    similarity: float


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k largest positive scores, best first."""
    k = min(k, int(np.count_nonzero(scores > 0)))
    if k <= 0:
        return np.zeros(0, dtype=np.int64)
    part = np.argpartition(-scores, k - 1)[:k]
    return part[np.argsort(-scores[part], kind="stable")]


class Retriever:
    """Searches one index snapshot. Stateless between calls, so safe to share between threads."""

    def __init__(
        self, snapshot: IndexSnapshot, candidates: int = 50, fusion: str = "convex", alpha: float = 0.5, rrf_k: int = 60
    ):
        if fusion not in FUSIONS:
            raise ValueError(f"unknown fusion {fusion!r}; choose one of {', '.join(FUSIONS)}")
        self.snapshot = snapshot
        self.candidates = candidates
        self.fusion = fusion
        self.alpha = alpha
        self.rrf_k = rrf_k

    def dense(self, query: Query, n: int, allowed: np.ndarray | None = None) -> list[tuple[int, float]]:
        """(row, cosine) of the n nearest chunks (among the rows in allowed, when given)."""
        import faiss

        total = self.snapshot.chunk_count if allowed is None else len(allowed)
        n = min(n, total)
        if n <= 0:
            return []
        vector = query.vector.reshape(1, -1).astype(np.float32)
        if allowed is None:
            scores, ids = self.snapshot.dense.search(vector, n)
        elif len(allowed) <= EXACT_WINDOW:  # a window of days: exact, from the stored vectors
            cosines = np.asarray(self.snapshot.vectors[allowed], dtype=np.float32) @ vector[0]
            best = top_k(cosines + 2.0, n)  # top_k keeps positive scores; cosines are >= -1
            return [(int(allowed[i]), float(cosines[i])) for i in best]
        else:  # a wide window: the index itself, told which rows it may return
            index = faiss.downcast_index(self.snapshot.dense)
            selector = faiss.IDSelectorBatch(np.ascontiguousarray(allowed, dtype=np.int64))
            if hasattr(index, "hnsw"):
                params = faiss.SearchParametersHNSW(sel=selector, efSearch=max(index.hnsw.efSearch, n))
            else:
                params = faiss.SearchParameters(sel=selector)
            scores, ids = index.search(vector, n, params=params)
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i >= 0]

    def bm25(self, query: Query, n: int, allowed: np.ndarray | None = None) -> list[tuple[int, float]]:
        """(row, BM25 score) of the n best lexical matches (among allowed rows, when given); empty
        when no token is in the index."""
        bm25 = self.snapshot.bm25
        ids = bm25.get_tokens_ids(list(query.tokens))
        if not ids:
            return []
        scores = np.asarray(bm25.get_scores_from_ids(ids))
        if allowed is not None:
            kept = np.zeros_like(scores)
            kept[allowed] = scores[allowed]
            scores = kept
        return [(int(i), float(scores[i])) for i in top_k(scores, n)]

    def search(
        self, query: Query, k: int = 10, mode: str = "hybrid", allowed: np.ndarray | None = None,
    ) -> tuple[list[Hit], float]:
        """The k best chunks for a query, and the cosine of the closest chunk searched (what
        abstention looks at, whichever mode ranks). allowed, when given, holds the only rows that
        may be returned (a date or source filter)."""
        if mode not in MODES:
            raise ValueError(f"unknown retriever {mode!r}; choose one of {', '.join(MODES)}")
        depth = max(self.candidates, k)
        dense = self.dense(query, k if mode == "dense" else depth if mode == "hybrid" else 1, allowed)
        closest = dense[0][1] if dense else 0.0
        cosine = dict(dense)  # FAISS already gave these; compute the rest only
        if mode == "dense":
            ranked = dense
        elif mode == "bm25":
            ranked = self.bm25(query, k, allowed)
        else:
            lexical = self.bm25(query, depth, allowed)
            if self.fusion == "rrf":
                ranked = reciprocal_rank_fusion([[r for r, _ in dense], [r for r, _ in lexical]], self.rrf_k)[:k]
            else:
                cosine.update(self.cosine(query, [r for r, _ in lexical if r not in cosine]))
                ranked = convex_combination(cosine, dict(lexical), self.alpha)[:k]
        cosine.update(self.cosine(query, [row for row, _ in ranked if row not in cosine]))
        return [Hit(row, score, cosine[row]) for row, score in ranked], closest

    def cosine(self, query: Query, rows: list[int]) -> dict[int, float]:
        """Cosine of the question to each chunk row (vectors are normalised)."""
        if not rows:
            return {}
        ordered = np.sort(rows)  # sorted reads are kinder to a memory-mapped file
        return dict(zip(ordered.tolist(), (np.asarray(self.snapshot.vectors[ordered]) @ query.vector).tolist()))
