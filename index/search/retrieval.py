"""The Retriever: dense, lexical (BM25), or both fused (convex combination or RRF), over any index view.

The searches themselves belong to the store (index/store/interface.py): FAISS and bm25s for the
files; fusion is the same for every store."""
from __future__ import annotations

from dataclasses import dataclass


from .fusion import FUSIONS, convex_combination, reciprocal_rank_fusion
from .query import Query
from ..store.interface import ChunkFilter, IndexView

MODES = ("dense", "bm25", "hybrid")


@dataclass(frozen=True)
class Hit:
    """A retrieved chunk: its id, its score in the chosen mode, and its cosine to the question."""

    row: int
    score: float
    similarity: float


class Retriever:
    """Searches one index view. Stateless between calls, so safe to share between threads."""

    def __init__(
        self, view: IndexView, candidates: int = 50, fusion: str = "convex", alpha: float = 0.5, rrf_k: int = 60
    ):
        if fusion not in FUSIONS:
            raise ValueError(f"unknown fusion {fusion!r}; choose one of {', '.join(FUSIONS)}")
        self.view = view
        self.candidates = candidates
        self.fusion = fusion
        self.alpha = alpha
        self.rrf_k = rrf_k

    def dense(self, query: Query, n: int, where: ChunkFilter | None = None) -> list[tuple[int, float]]:
        """(id, cosine) of the n nearest chunks (among those the filter allows)."""
        return self.view.dense(query.vector, n, where)

    def bm25(self, query: Query, n: int, where: ChunkFilter | None = None) -> list[tuple[int, float]]:
        """(id, score) of the n best lexical matches; empty when no token is in the index."""
        return self.view.lexical(query.tokens, n, where)

    def search(
        self, query: Query, k: int = 10, mode: str = "hybrid", where: ChunkFilter | None = None,
    ) -> tuple[list[Hit], float]:
        """The k best chunks for a query, and the cosine of the closest chunk searched (what
        abstention looks at, whichever mode ranks), among the chunks the filter allows."""
        if mode not in MODES:
            raise ValueError(f"unknown retriever {mode!r}; choose one of {', '.join(MODES)}")
        depth = max(self.candidates, k)
        dense = self.dense(query, k if mode == "dense" else depth if mode == "hybrid" else 1, where)
        closest = dense[0][1] if dense else 0.0
        cosine = dict(dense)  # FAISS already gave these; compute the rest only
        if mode == "dense":
            ranked = dense
        elif mode == "bm25":
            ranked = self.bm25(query, k, where)
        else:
            lexical = self.bm25(query, depth, where)
            if self.fusion == "rrf":
                ranked = reciprocal_rank_fusion([[r for r, _ in dense], [r for r, _ in lexical]], self.rrf_k)[:k]
            else:
                cosine.update(self.cosine(query, [r for r, _ in lexical if r not in cosine]))
                ranked = convex_combination(cosine, dict(lexical), self.alpha)[:k]
        cosine.update(self.cosine(query, [row for row, _ in ranked if row not in cosine]))
        return [Hit(row, score, cosine[row]) for row, score in ranked], closest

    def cosine(self, query: Query, rows: list[int]) -> dict[int, float]:
        """Cosine of the question to each chunk."""
        return self.view.cosines(query.vector, rows)
