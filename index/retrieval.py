"""The Retriever: dense (FAISS inner product), BM25 (bm25s), or both fused by reciprocal rank."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .fusion import reciprocal_rank_fusion
from .store import IndexSnapshot
from .tokenize import tokenize

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

    def __init__(self, snapshot: IndexSnapshot, candidates: int = 50, rrf_k: int = 60):
        self.snapshot = snapshot
        self.candidates = candidates
        self.rrf_k = rrf_k
        self._vectors = np.load(snapshot.build_dir / "vectors.npy", mmap_mode="r")

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

    def search(self, query_vector: np.ndarray, tokens: list[str], k: int = 10, mode: str = "hybrid") -> list[Hit]:
        """The k best chunks for a question, given its vector and its lexical tokens."""
        if mode not in MODES:
            raise ValueError(f"unknown retriever {mode!r}; choose one of {', '.join(MODES)}")
        depth = max(self.candidates, k)
        if mode == "dense":
            ranked = self.dense(query_vector, k)
        elif mode == "bm25":
            ranked = self.bm25(tokens, k)
        else:
            dense, lexical = self.dense(query_vector, depth), self.bm25(tokens, depth)
            fused = reciprocal_rank_fusion([[r for r, _ in dense], [r for r, _ in lexical]], self.rrf_k)
            ranked = fused[:k]
        if not ranked:
            return []
        rows = np.sort([row for row, _ in ranked])  # sorted reads are kinder to a memory-mapped file
        similarity = dict(zip(rows.tolist(), (np.asarray(self._vectors[rows]) @ query_vector).tolist()))
        return [Hit(row, score, similarity[row]) for row, score in ranked]

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
