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
