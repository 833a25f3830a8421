"""The QueryEncoder: questions to vectors for serving, on ONNX Runtime, with torch as the fallback.

The model is exported to ONNX once per data directory (index/encoders/onnx_export.py), by a build, while
torch is loaded anyway; serving then loads only onnxruntime (about 0.1 s) and embeds a question
in about 2 ms (index/encoders/onnx_encoder.py). An export that cannot be written is tried once and
remembered; a damaged one is made again once; either way answers go on through torch.
"""
from __future__ import annotations

import logging
import shutil
import threading
from pathlib import Path

import numpy as np

from ..config import QUERY_BACKENDS
from .embedding import BulkEmbedder, resolve_model
from ..errors import ConfigurationError

log = logging.getLogger(__name__)


def _first_line(exc: Exception) -> str:
    return str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__


class QueryEncoder:
    """One question's vector at a time; thread-safe. Falls back to the bulk embedder's torch model
    when there is no export (no cache_dir, backend "torch", or an export that failed)."""

    def __init__(self, bulk: BulkEmbedder, cache_dir: Path | None = None, backend: str = "onnx"):
        if backend not in QUERY_BACKENDS:
            raise ConfigurationError(f"query backend must be one of {', '.join(QUERY_BACKENDS)}, not {backend!r}")
        self.bulk = bulk
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.backend = backend if cache_dir else "torch"
        self._encoder = None  # OnnxEncoder once loaded
        self._tried = False  # whether loading the export was tried (it is, once)
        self._lock = threading.Lock()

    def _folder(self) -> Path:
        from .onnx_export import export_folder

        return export_folder(self.cache_dir / "onnx", resolve_model(self.bulk.model_name))

    def _failure_note(self) -> Path:
        """Where a failed export is remembered, so that later processes do not retry it per question."""
        folder = self._folder()
        return folder.with_name(folder.name + ".failed")

    def prepare(self, retry: bool = True) -> None:
        """Make sure the question runtime is ready: export the model to ONNX now if it is not cached.
        Builds call this (retry=True), so the bot's first question never waits for torch; a question
        that finds no export tries once (retry=False), unless an earlier try failed."""
        if self.backend != "onnx":
            return
        from .onnx_export import NotExportable, export, is_exported

        folder, note = self._folder(), self._failure_note()
        if is_exported(folder):
            return
        if not retry and note.exists():
            log.warning("Questions use torch (seconds to start): exporting the model to ONNX failed before (%s). "
                        "Run `citebot build` to try again.", note.read_text(errors="replace").strip()[:200])
            return
        try:
            export(self.bulk.model, folder)
            note.unlink(missing_ok=True)
            return
        except NotExportable as exc:
            reason = f"the model cannot be exported: {exc}"
        except OSError as exc:
            reason = f"{exc.strerror or exc} in {self.cache_dir}"
        except Exception as exc:  # the exporter raises many types; a failed export must not stop answers
            reason = f"{type(exc).__name__}: {_first_line(exc)}"
        log.warning("Questions will use torch (seconds to start): exporting the model to ONNX failed (%s). "
                    "Free space in %s if it is full, then run `citebot build`.", reason, self.cache_dir)
        try:
            note.parent.mkdir(parents=True, exist_ok=True)
            note.write_text(reason + "\n")
        except OSError:
            log.debug("Could not remember the failed export in %s", note)

    @property
    def onnx(self):
        """The OnnxEncoder for questions, or None when questions use torch."""
        if not self._tried:
            with self._lock:
                if not self._tried:
                    self._encoder = self._load()
                    self._tried = True
        return self._encoder

    def _load(self):
        if self.backend != "onnx":
            return None
        from .onnx_encoder import OnnxEncoder
        from .onnx_export import is_exported

        folder = self._folder()
        if not is_exported(folder):
            self.prepare(retry=False)  # an index built before exports existed: once, with torch
            if not is_exported(folder):
                return None
        try:
            return OnnxEncoder(folder)
        except Exception as exc:  # a damaged export: made again once (torch is needed now anyway)
            log.warning("The ONNX export in %s does not load (%s); exporting it again", folder, _first_line(exc))
        shutil.rmtree(folder, ignore_errors=True)
        self.prepare(retry=False)
        try:
            return OnnxEncoder(folder) if is_exported(folder) else None
        except Exception as exc:  # still broken: answers go on through torch
            log.warning("Questions will use torch: the new ONNX export in %s does not load either (%s)", folder,
                        type(exc).__name__)
            return None

    def warm(self) -> None:
        """Load what answering a question needs, so the first answer is not slow."""
        if self.onnx is None:
            self.bulk.model

    @property
    def dim(self) -> int:
        return self.onnx.dim if self.onnx is not None else self.bulk.dim

    def embed(self, text: str) -> np.ndarray:
        """One question's vector, shape (dim,): ONNX Runtime when the export is there, else torch."""
        encoder = self.onnx
        if encoder is not None:
            return encoder.encode([text])[0]
        return self.bulk.encode([text])[0]
