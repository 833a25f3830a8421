"""Embedder: one model's two encoders, bulk for builds (torch) and questions (ONNX Runtime)."""
from __future__ import annotations

from pathlib import Path

from ..config import DEFAULT_MODEL
from .embedding import BulkEmbedder
from .query_encoder import QueryEncoder


class Embedder:
    """One model's two embedders: bulk (builds, torch) and queries (questions, ONNX Runtime).

    cache_dir holds the ONNX export used for questions; without one, questions go through torch.
    """

    def __init__(
        self, model: str = DEFAULT_MODEL, batch_size: int = 32, cache_dir: Path | None = None,
        precision: str = "auto", query_backend: str = "onnx",
    ):
        self.bulk = BulkEmbedder(model, batch_size, precision)
        self.queries = QueryEncoder(self.bulk, cache_dir, query_backend)


# An update with at most this many texts to embed (chunks, and separately sentences) goes through
# the ONNX export that serves questions: no torch to load for a refresh of a few articles.
SMALL_UPDATE_TEXTS = 512
ONNX_BATCH = 16  # texts of similar length per ONNX Runtime call


class UpdateEmbedder:
    """What a build embeds with: ONNX Runtime for small updates (when the question export is
    there), torch (bulk, bfloat16 where the CPU has it) for everything larger. Same model, same
    vectors: bench/onnx_updates.py measures their agreement on the BBC chunks."""

    def __init__(self, embedder: Embedder, small: int = SMALL_UPDATE_TEXTS):
        self.embedder = embedder
        self.small = small

    @property
    def bulk(self):
        return self.embedder.bulk

    @property
    def dim(self) -> int:
        onnx = self.embedder.queries.onnx
        return onnx.dim if onnx is not None else self.bulk.dim

    def embed_into(self, texts, out, rows, progress=None) -> None:
        onnx = self.embedder.queries.onnx if len(texts) <= self.small else None
        if onnx is None:
            self.bulk.embed_into(texts, out, rows, progress)
            return
        import numpy as np

        order = np.argsort([len(t) for t in texts], kind="stable")
        rows = np.asarray(rows, dtype=np.int64)
        for first in range(0, len(order), ONNX_BATCH):
            ids = order[first : first + ONNX_BATCH]
            out[rows[ids]] = onnx.encode([texts[i] for i in ids])
            if progress:
                progress(min(first + ONNX_BATCH, len(order)), len(order))
