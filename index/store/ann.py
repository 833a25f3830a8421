"""The dense index: exact (flat) search while it is fast enough, HNSW graph search beyond.

Exact inner-product search reads every vector for every question: about 1 ms at 10k chunks and
15 ms at 100k on two cores, so past FLAT_LIMIT an HNSW graph takes over (under 1 ms at 100k,
recall@10 against exact measured by bench/scale.py). Vectors stay float32: they are the
index's ground truth, and at 384 dimensions they cost 1.5 KB a chunk (the graph adds ~0.3 KB).
"""
from __future__ import annotations

import logging

import numpy as np

from ..config import DENSE_INDEXES as KINDS

log = logging.getLogger(__name__)

FLAT_LIMIT = 50_000  # exact search costs ~8 ms a question here at this size
HNSW_M = 32  # links per node: recall vs memory (M * 8 bytes a chunk on the base layer)
HNSW_EF_CONSTRUCTION = 80
# Candidates explored per question (saved in the index file; FAISS explores at least k for a top k).
# bench/scale.py shows recall@10 against exact search for each value.
HNSW_EF_SEARCH = 256  # recall@10 0.992 on the real BBC vectors (0.971 at 128)


def choose_kind(kind: str, n: int) -> str:
    if kind not in KINDS:
        raise ValueError(f"dense index must be one of {', '.join(KINDS)}, not {kind!r}")
    if kind != "auto":
        return kind
    return "flat" if n <= FLAT_LIMIT else "hnsw"


def build_dense_index(vectors: np.ndarray, kind: str = "auto") -> tuple[object, dict]:
    """A FAISS inner-product index over normalised vectors, and its description for the manifest."""
    import faiss

    n, dim = vectors.shape
    kind = choose_kind(kind, n)
    if kind == "flat":
        index = faiss.IndexFlatIP(dim)
        description = {"type": "flat"}
    else:
        index = faiss.IndexHNSWFlat(dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        index.hnsw.efSearch = HNSW_EF_SEARCH
        description = {"type": "hnsw", "m": HNSW_M, "ef_construction": HNSW_EF_CONSTRUCTION,
                       "ef_search": HNSW_EF_SEARCH}
        log.info("Building an HNSW graph over %d vectors", n)
    index.add(np.ascontiguousarray(vectors, dtype=np.float32))
    return index, description

