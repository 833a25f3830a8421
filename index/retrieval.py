"""The Retriever: dense (FAISS inner product), BM25 (bm25s), or both fused (convex combination or RRF)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .fusion import FUSIONS, convex_combination, reciprocal_rank_fusion
from .store import IndexSnapshot

MODES = ("dense", "bm25", "hybrid")


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

    def dense(self, query_vector: np.ndarray, n: int) -> list[tuple[int, float]]:
        """(row, cosine) of the n nearest chunks."""
        n = min(n, self.snapshot.dense.ntotal)
        scores, ids = self.snapshot.dense.search(query_vector.reshape(1, -1).astype(np.float32), n)
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i >= 0]

    def bm25(self, tokens: list[str], n: int) -> list[tuple[int, float]]:
        """(row, BM25 score) of the n best lexical matches; empty when no token is in the index."""
        bm25 = self.snapshot.bm25
        ids = bm25.get_tokens_ids(tokens)
        if not ids:
            return []
        scores = np.asarray(bm25.get_scores_from_ids(ids))
        return [(int(i), float(scores[i])) for i in top_k(scores, n)]

    def search(
        self, query_vector: np.ndarray, tokens: list[str], k: int = 10, mode: str = "hybrid"
    ) -> tuple[list[Hit], float]:
        """The k best chunks for a question, given its vector and lexical tokens, and the cosine of
        the closest chunk in the whole index (what abstention looks at, whichever mode ranks)."""
        if mode not in MODES:
            raise ValueError(f"unknown retriever {mode!r}; choose one of {', '.join(MODES)}")
        depth = max(self.candidates, k)
        dense = self.dense(query_vector, k if mode == "dense" else depth if mode == "hybrid" else 1)
        closest = dense[0][1] if dense else 0.0
        cosine = dict(dense)  # FAISS already gave these; compute the rest only
        if mode == "dense":
            ranked = dense
        elif mode == "bm25":
            ranked = self.bm25(tokens, k)
        else:
            lexical = self.bm25(tokens, depth)
            if self.fusion == "rrf":
                ranked = reciprocal_rank_fusion([[r for r, _ in dense], [r for r, _ in lexical]], self.rrf_k)[:k]
            else:
                cosine.update(self.cosine(query_vector, [r for r, _ in lexical if r not in cosine]))
                ranked = convex_combination(cosine, dict(lexical), self.alpha)[:k]
        cosine.update(self.cosine(query_vector, [row for row, _ in ranked if row not in cosine]))
        return [Hit(row, score, cosine[row]) for row, score in ranked], closest

    def cosine(self, query_vector: np.ndarray, rows: list[int]) -> dict[int, float]:
        """Cosine of the question to each chunk row (vectors are normalised)."""
        if not rows:
            return {}
        ordered = np.sort(rows)  # sorted reads are kinder to a memory-mapped file
        return dict(zip(ordered.tolist(), (np.asarray(self.snapshot.vectors[ordered]) @ query_vector).tolist()))

    def idf(self, tokens: list[str]) -> dict[str, float]:
        """BM25 inverse document frequency of each known token (unknown tokens are left out)."""
        bm25 = self.snapshot.bm25
        indptr = bm25.scores["indptr"]
        n = bm25.scores["num_docs"]
        out = {}
        for token in set(tokens):
            tid = bm25.vocab_dict.get(token)
            if tid is not None and tid + 1 < len(indptr):
                df = int(indptr[tid + 1] - indptr[tid])
                out[token] = float(np.log(1 + (n - df + 0.5) / (df + 0.5)))
        return out
