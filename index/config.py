"""Engine settings, read from the environment with defaults that work out of the box."""
from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

DEFAULT_MODEL = "all-MiniLM-L6-v2"


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number, got {raw!r}") from None


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"{name} must be a whole number, got {raw!r}") from None


@dataclass(frozen=True)
class Settings:
    """Where the engine reads articles and writes its index, and how it searches."""

    data_dir: Path = Path("var")
    corpus_dir: Path = Path("corpus")
    model: str = DEFAULT_MODEL
    # Chunking: sentence-aware windows of at most this many words; all-MiniLM-L6-v2 reads
    # 256 word pieces, news averages ~1.3 pieces a word, so 120 words plus a title stays well inside.
    chunk_words: int = 120
    overlap_words: int = 30
    # Abstain when the relevance of what was found (index/relevance.py) is below this;
    # chosen with bench/abstention.py (README, "Abstention").
    min_relevance: float = 0.45
    candidates: int = 50  # per retriever, before fusion
    # Hybrid fusion: "convex" (alpha * cosine + (1 - alpha) * normalised BM25) beat reciprocal rank
    # fusion on SQuAD dev excerpts (README, "Retrieval quality"); "rrf" stays selectable.
    fusion: str = "convex"
    alpha: float = 0.5
    rrf_k: int = 60
    # Hybrid re-ranks its top candidates by their best excerpt (index/rerank.py); off = plain fusion.
    rerank: bool = True
    # Bulk embedding precision: "auto" uses bfloat16 where the CPU has it (index/embedding.py).
    precision: str = "auto"
    # Questions: "onnx" (ONNX Runtime, no torch in the serving process) or "torch".
    query_backend: str = "onnx"
    # Dense index: "auto" is exact search up to 50k chunks, an HNSW graph beyond (index/ann.py).
    dense_index: str = "auto"

    @classmethod
    def from_env(cls, **overrides) -> "Settings":
        """Read CITEBOT_* variables; keyword overrides win over the environment."""
        values = dict(
            data_dir=Path(os.environ.get("CITEBOT_DATA_DIR", "").strip() or "var"),
            corpus_dir=Path(os.environ.get("CITEBOT_CORPUS_DIR", "").strip() or "corpus"),
            model=os.environ.get("CITEBOT_MODEL", "").strip() or DEFAULT_MODEL,
            chunk_words=_env_int("CITEBOT_CHUNK_WORDS", cls.chunk_words),
            overlap_words=_env_int("CITEBOT_OVERLAP_WORDS", cls.overlap_words),
            min_relevance=_env_float("CITEBOT_MIN_RELEVANCE", cls.min_relevance),
            fusion=os.environ.get("CITEBOT_FUSION", "").strip() or cls.fusion,
            alpha=_env_float("CITEBOT_ALPHA", cls.alpha),
            rerank=os.environ.get("CITEBOT_RERANK", "1").strip().lower() not in ("0", "false", "no", "off"),
            precision=os.environ.get("CITEBOT_PRECISION", "").strip() or cls.precision,
            query_backend=os.environ.get("CITEBOT_QUERY_BACKEND", "").strip() or cls.query_backend,
            dense_index=os.environ.get("CITEBOT_DENSE_INDEX", "").strip() or cls.dense_index,
        )
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def __post_init__(self):
        for key in ("data_dir", "corpus_dir"):
            object.__setattr__(self, key, Path(getattr(self, key)).expanduser())

    def with_(self, **changes) -> "Settings":
        return replace(self, **changes)

    @property
    def index_root(self) -> Path:
        return self.data_dir / "index"

    @property
    def model_cache(self) -> Path:
        """Derived model files (the ONNX export), rebuilt from the model when missing."""
        return self.data_dir / "models"
