"""Shared fixtures: the real model (loaded once), real corpora written to temporary folders."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from index.config import Settings
from index.encoders.embedder import Embedder
from index.engine import Engine

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_CORPUS = ROOT / "corpus"


@pytest.fixture(scope="session")
def embedder(tmp_path_factory) -> Embedder:
    """The default model, loaded once for the whole session; questions go through its ONNX export."""
    return Embedder(cache_dir=tmp_path_factory.mktemp("models"))


def write_corpus(folder: Path, files: dict[str, str | bytes]) -> Path:
    """Write {relative path: content} into folder and return it."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
    return folder


@pytest.fixture
def make_engine(tmp_path, embedder):
    """Build an engine over a corpus folder, with its own data directory."""

    def make(corpus_dir: Path, data_dir: Path | None = None, **settings) -> Engine:
        s = Settings(data_dir=data_dir or tmp_path / "data", corpus_dir=corpus_dir, **settings)
        engine = Engine(s, embedder)
        engine.build()
        return engine

    return make


@pytest.fixture(scope="session")
def sample_engine(tmp_path_factory, embedder) -> Engine:
    """An engine over a copy of the sample corpus (the two NATO summit articles)."""
    base = tmp_path_factory.mktemp("sample")
    corpus = base / "corpus"
    shutil.copytree(SAMPLE_CORPUS, corpus)
    engine = Engine(Settings(data_dir=base / "data", corpus_dir=corpus), embedder)
    engine.build()
    return engine


MODEL_FIXTURES = {"embedder", "make_engine", "sample_engine", "engine"}


def pytest_configure(config):
    config.addinivalue_line("markers", "model: loads the real model or builds an index (not in `make check`)")
    config.addinivalue_line("markers", "slow: a real process that waits on timers (not in `make check`)")


def pytest_collection_modifyitems(config, items):
    """Mark every test that needs the model, so `make check` (-m "not model") runs in seconds."""
    for item in items:
        if MODEL_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.model)
