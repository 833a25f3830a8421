"""The index on disk: versioned build folders, an atomic CURRENT pointer, and read-only snapshots.

Layout under <data_dir>/index/:
    CURRENT                  name of the live build (replaced atomically with os.replace)
    builds/<build-id>/       manifest.json, vectors.npy, dense.faiss, sentences.npy, meta.sqlite,
                             postings.npz, vocabulary.json (index/store/postings.py)
    builds/.tmp-<build-id>/  a build in progress; never read, swept by the next build
    builds/<build-id>/segments/, segments.json: what updates added since (index/store/segments.py)

Metadata lives in SQLite rather than JSON files: a query fetches a handful of chunks by row id
without loading the corpus into memory, the file is one self-checking unit, and it is in the
standard library.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
import sqlite3
import threading
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from ..errors import BuildInProgress, IndexCorrupt, IndexMismatch, IndexMissing, IndexUnavailable  # noqa: F401
from .interface import ChunkFilter, ChunkRecord
from .postings import Postings

log = logging.getLogger(__name__)

FORMAT_VERSION = 3  # 2: sentence vectors; 3: BM25 from raw postings, document signatures
KEEP_BUILDS = 2  # the live build and the one before it, for processes that have not reloaded yet

SCHEMA = """
CREATE TABLE documents (
    doc_id TEXT PRIMARY KEY, title TEXT NOT NULL, source TEXT NOT NULL, url TEXT NOT NULL,
    published TEXT NOT NULL, path TEXT NOT NULL,
    signature TEXT NOT NULL,  -- what it was indexed from (builder.document_signature): changed or not
    text TEXT NOT NULL  -- last: reading the columns before it skips its overflow pages
);
CREATE TABLE chunks (
    row INTEGER PRIMARY KEY, chunk_id TEXT NOT NULL, doc_id TEXT NOT NULL REFERENCES documents,
    ordinal INTEGER NOT NULL, start INTEGER NOT NULL, end INTEGER NOT NULL, text TEXT NOT NULL,
    hash TEXT NOT NULL,
    sentences TEXT NOT NULL  -- JSON [[start, end, row in sentences.npy], ...], offsets into text
);
CREATE TABLE sentences (row INTEGER PRIMARY KEY, hash TEXT NOT NULL);
"""


def _builds_dir(root: Path) -> Path:
    return root / "builds"


_BUILD_NAME = re.compile(r"[0-9]{8}T[0-9]{6}-[0-9a-f]{6}")


def current_build_dir(root: Path) -> Path | None:
    """The live build folder, or None when nothing has been built. Raises IndexCorrupt for a
    pointer that names no build (garbage bytes, a truncated write by something else)."""
    try:
        raw = (root / "CURRENT").read_bytes()
    except FileNotFoundError:
        return None
    name = raw.decode("ascii", errors="replace").strip()
    if not name:
        return None
    if not _BUILD_NAME.fullmatch(name):
        raise IndexCorrupt(
            f"The index pointer {root / 'CURRENT'} is damaged (it names no build); run `citebot build` to repair it."
        )
    return _builds_dir(root) / name


def intact_builds(root: Path) -> list[Path]:
    """Committed build folders, newest first (names start with their UTC build time)."""
    folder = _builds_dir(root)
    if not folder.is_dir():
        return []
    return sorted((p for p in folder.iterdir() if p.is_dir() and _BUILD_NAME.fullmatch(p.name)), reverse=True)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class BuildLock:
    """An exclusive, non-blocking lock on the index folder: one build at a time, across processes."""

    def __init__(self, root: Path):
        root.mkdir(parents=True, exist_ok=True)
        self._file = open(root / "build.lock", "a+")

    def __enter__(self) -> "BuildLock":
        try:
            fcntl.flock(self._file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._file.close()
            raise BuildInProgress("Another index build is running; wait for it to finish.") from None
        return self

    def __exit__(self, *exc) -> None:
        fcntl.flock(self._file, fcntl.LOCK_UN)
        self._file.close()


class IndexWriter:
    """Writes one build into a temporary folder; commit() makes it live with an atomic rename.
    A segment (index/store/segments.py) is written the same way into its base build's folder."""

    def __init__(self, root: Path, folder: Path | None = None, name: str | None = None):
        self.root = root
        self.folder = folder or _builds_dir(root)  # where the finished folder goes
        self.build_id = name or datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]
        self.folder.mkdir(parents=True, exist_ok=True)
        self._sweep_abandoned()
        self.tmp = self.folder / f".tmp-{self.build_id}"
        self.tmp.mkdir()
        try:
            self.db = sqlite3.connect(self.tmp / "meta.sqlite")
            self.db.executescript(SCHEMA)
        except BaseException:  # a full disk, most likely: leave nothing behind
            shutil.rmtree(self.tmp, ignore_errors=True)
            raise

    def _sweep_abandoned(self) -> None:
        """Remove temporary folders left by builds that crashed or were killed."""
        for path in self.folder.glob(".tmp-*"):
            log.info("Removing the unfinished build %s", path.name)
            shutil.rmtree(path, ignore_errors=True)

    def add_documents(self, rows: Iterable[tuple]) -> None:
        self.db.executemany("INSERT INTO documents VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)

    def add_chunks(self, rows: Iterable[tuple]) -> None:
        self.db.executemany("INSERT INTO chunks VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)

    def add_sentences(self, rows: Iterable[tuple[int, str]]) -> None:
        self.db.executemany("INSERT INTO sentences VALUES (?, ?)", rows)

    def write_sentence_vectors(self, vectors: np.ndarray) -> None:
        # Half precision: they only re-score a few dozen candidates, and it halves the file.
        np.save(self.tmp / "sentences.npy", vectors.astype(np.float16))

    def write_vectors(self, vectors: np.ndarray, kind: str = "auto") -> dict:
        """Store the chunk vectors and the dense index chosen for their number; returns its description."""
        import faiss

        from .ann import build_dense_index

        np.save(self.tmp / "vectors.npy", vectors)
        index, description = build_dense_index(vectors, kind)
        faiss.write_index(index, str(self.tmp / "dense.faiss"))
        return description

    def write_postings(self, corpus_tokens: list[list[str]]) -> None:
        Postings.build(corpus_tokens).save(self.tmp)

    def write_multilingual(self, vectors: np.ndarray) -> None:
        """The multilingual encoder's chunk vectors (CITEBOT_MULTILINGUAL), row i = chunk row i, in
        half precision: they are searched exactly, and it halves the file."""
        np.save(self.tmp / "multilingual.npy", np.asarray(vectors, dtype=np.float16))

    def seal(self, manifest: dict) -> Path:
        """Finish the folder durably under its final name (not live yet); returns it."""
        self.db.commit()
        self.db.close()
        # The next build copies these vectors instead of embedding again: it checks them first.
        checksums = {name: file_sha256(self.tmp / name) for name in VECTOR_FILES if (self.tmp / name).exists()}
        # Its size on disk, for /start and `citebot stats` (without walking the folder per call).
        size = sum(p.stat().st_size for p in self.tmp.rglob("*") if p.is_file())
        manifest = {"format_version": FORMAT_VERSION, "build_id": self.build_id, **manifest, "checksums": checksums,
                    "index_bytes": size}
        (self.tmp / "manifest.json").write_text(json.dumps(manifest, indent=2))
        for path in self.tmp.rglob("*"):
            if path.is_file():
                with open(path, "rb") as f:
                    os.fsync(f.fileno())
            else:
                _fsync_dir(path)
        _fsync_dir(self.tmp)
        final = self.folder / self.build_id
        os.rename(self.tmp, final)
        _fsync_dir(self.folder)  # the build is durable before anything names it
        return final

    def commit(self, manifest: dict) -> Path:
        """Finish the build and point CURRENT at it; the previous build stays intact until then."""
        final = self.seal(manifest)
        pointer = self.root / "CURRENT.tmp"
        pointer.write_text(self.build_id + "\n")
        with open(pointer, "rb") as f:
            os.fsync(f.fileno())
        os.replace(pointer, self.root / "CURRENT")
        _fsync_dir(self.root)
        self._prune()
        return final

    def abort(self) -> None:
        try:
            self.db.close()
        finally:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def _prune(self) -> None:
        prune_builds(self.root)


def prune_builds(root: Path) -> None:
    """Delete all but the newest KEEP_BUILDS builds (by commit time); never the live one. Also run
    by an up-to-date build, so a build killed after going live leaves no extra folder for long."""
    live = current_build_dir(root)
    builds = sorted(
        (p for p in _builds_dir(root).iterdir() if p.is_dir() and not p.name.startswith(".")),
        key=lambda p: p.stat().st_mtime_ns,
    )
    for old in builds[:-KEEP_BUILDS]:
        if old != live:
            shutil.rmtree(old, ignore_errors=True)


VECTOR_FILES = ("vectors.npy", "sentences.npy", "multilingual.npy")
SAMPLE_ROWS = 1000  # rows of each vector file whose length is checked when a build is loaded


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_manifest(build_dir: Path) -> dict:
    try:
        manifest = json.loads((build_dir / "manifest.json").read_text())
    except FileNotFoundError:
        raise IndexCorrupt(f"The index in {build_dir} has no manifest; run `citebot build` to rebuild it.") from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise IndexCorrupt(f"The index manifest in {build_dir} is damaged; run `citebot build` to rebuild it.") from None
    if not isinstance(manifest, dict) or manifest.get("format_version") != FORMAT_VERSION:
        raise IndexCorrupt(
            f"The index in {build_dir} is in an older or unknown format; run `citebot build` to rebuild it."
        )
    return manifest


# A filtered dense search over at most this many chunks is exact, from the stored vectors (about
# 10 ms at 20k); a wider one asks the index, which skips the rows outside the filter.
EXACT_WINDOW = 20_000
FILTERS_KEPT = 64  # resolved filters kept per snapshot (a question's filter is resolved once, not per search)


def _load_multilingual(build_dir: Path, manifest: dict) -> np.ndarray | None:
    """A build's multilingual.npy (memory-mapped), or None when it has none; one that does not fit
    its build is left unused with a warning (English search does not need it)."""
    path = build_dir / "multilingual.npy"
    if not path.exists():
        return None
    try:
        vectors = np.load(path, mmap_mode="r")
    except (OSError, ValueError) as exc:
        log.warning("Not searching across languages: %s cannot be read (%s); run `citebot build`", path, exc)
        return None
    expected = (manifest.get("chunks"), (manifest.get("multilingual") or {}).get("dim"))
    if vectors.ndim != 2 or vectors.shape != expected:
        log.warning("Not searching across languages: %s holds %s vectors, not %s; run `citebot build`", path,
                    vectors.shape, expected)
        return None
    return vectors


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k largest positive scores, best first."""
    k = min(k, int(np.count_nonzero(scores > 0)))
    if k <= 0:
        return np.zeros(0, dtype=np.int64)
    part = np.argpartition(-scores, k - 1)[:k]
    return part[np.argsort(-scores[part], kind="stable")]


class IndexSnapshot:
    """One build, loaded read-only: the file store's IndexView (index/store/interface.py), its ids
    the rows of the build. Safe to share between threads; never changes once loaded."""

    def __init__(
        self, build_dir: Path, manifest: dict, dense, vectors: np.ndarray, sentence_vectors: np.ndarray,
        postings: Postings,
        db: sqlite3.Connection,
    ):
        self.build_dir = build_dir
        self.manifest = manifest
        self.dense_index = dense  # the FAISS index (flat or HNSW), memory-mapped
        self.vectors = vectors  # memory-mapped, row i = chunk i
        self.sentence_vectors = sentence_vectors  # memory-mapped float16, rows named by ChunkRecord.sentences
        self.postings = postings  # lexical: token -> chunks and counts, and chunk lengths
        self._db = db
        self._db_lock = threading.Lock()
        self._coverage: dict | None = None
        self._documents: list[tuple[str, str, str]] | None = None
        self._resolved: dict[ChunkFilter, np.ndarray | None] = {}
        # The multilingual encoder's chunk vectors (memory-mapped float16), when the build has them.
        self.multilingual: np.ndarray | None = None

    @classmethod
    def load(cls, root: Path, model: str | None = None, build_dir: Path | None = None) -> "IndexSnapshot":
        """Load the live build (or build_dir), checking it against the configured model. Raises IndexUnavailable."""
        build_dir = build_dir or current_build_dir(root)
        if build_dir is None:
            raise IndexMissing(f"There is no index in {root.resolve()} yet; run `citebot build` to create it "
                               "(or set CITEBOT_DATA_DIR to where it is).")
        if not build_dir.is_dir():
            raise IndexCorrupt(f"The live index folder {build_dir} is missing; run `citebot build` to rebuild it.")
        manifest = read_manifest(build_dir)
        if model is not None and manifest.get("model") != model:
            raise IndexMismatch(
                f"The index was built with the model {manifest.get('model')!r} but CITEBOT_MODEL is {model!r}; "
                "run `citebot build` to rebuild it with the configured model."
            )
        broken = f"The index in {build_dir} is damaged ({{}}); run `citebot build` to rebuild it."
        import faiss

        def read(part: str, load):
            """One part of the build, or IndexCorrupt naming it; the library's own words go to the log."""
            try:
                return load()
            except (RuntimeError, OSError, ValueError, KeyError, sqlite3.DatabaseError, EOFError) as exc:
                log.warning("Cannot read %s: %s", build_dir / part, exc)
                raise IndexCorrupt(broken.format(f"{part} cannot be read")) from exc

        # Memory-mapped: a question touches a fraction of an HNSW graph's pages, and start-up reads nothing.
        dense = read("dense.faiss", lambda: faiss.read_index(
            str(build_dir / "dense.faiss"), faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY))
        vectors = read("vectors.npy", lambda: np.load(build_dir / "vectors.npy", mmap_mode="r"))
        sentence_vectors = read("sentences.npy", lambda: np.load(build_dir / "sentences.npy", mmap_mode="r"))
        postings = read("postings/", lambda: Postings.load(build_dir))

        def open_db():
            db = sqlite3.connect(f"file:{build_dir / 'meta.sqlite'}?mode=ro", uri=True, check_same_thread=False)
            (count,) = db.execute("SELECT count(*) FROM chunks").fetchone()
            (sentences,) = db.execute("SELECT count(*) FROM sentences").fetchone()
            return db, count, sentences

        db, count, sentences = read("meta.sqlite", open_db)
        expected = manifest.get("chunks")
        shapes = (dense.ntotal, count, vectors.shape[0], postings.chunk_count)
        if any(n != expected for n in shapes) or dense.d != manifest.get("dim") or vectors.shape[1:] != (dense.d,):
            raise IndexCorrupt(broken.format("its parts disagree on the number of chunks"))
        # Chunks name sentence rows the same build wrote; checking each reference here took a scan
        # of every chunk (over a second at 100k chunks), so the counts stand for them.
        if sentence_vectors.shape != (sentences, dense.d) or sentences != manifest.get("sentences"):
            raise IndexCorrupt(broken.format("its sentence vectors do not match its sentences"))
        snapshot = cls(build_dir, manifest, dense, vectors, sentence_vectors, postings, db)
        snapshot.multilingual = _load_multilingual(build_dir, manifest)
        # Numbers damaged under an intact header load fine and answer wrongly (the engine abstains
        # on what the index holds): a sample of each vector file must be unit vectors, as built.
        damage = snapshot.norm_damage()
        if damage is not None:
            snapshot.close()
            log.info("Refusing %s: %s", build_dir, damage)
            raise IndexCorrupt(broken.format(damage))
        return snapshot

    @property
    def chunk_count(self) -> int:
        return int(self.dense_index.ntotal)

    # -- searching (the IndexView contract) ---------------------------------------------------------

    def rows(self, where: ChunkFilter | None) -> np.ndarray | None:
        """The sorted rows a filter allows, or None for all of them."""
        if not where:
            return None
        with self._db_lock:
            if where in self._resolved:
                return self._resolved[where]
        rows = None
        if where.since or where.until or where.sources:
            rows = self.rows_matching(where.since, where.until, where.sources)
        if where.published_by:
            future = self.rows_published_after(where.published_by)
            if len(future):
                rows = np.setdiff1d(np.arange(self.chunk_count) if rows is None else rows, future, assume_unique=True)
        if where.doc_ids:
            docs = self.rows_of_documents(where.doc_ids)
            rows = docs if rows is None else np.intersect1d(rows, docs)
        if where.paths:
            files = self.rows_of_paths(where.paths)
            rows = files if rows is None else np.intersect1d(rows, files)
        with self._db_lock:
            if len(self._resolved) >= FILTERS_KEPT:
                self._resolved.pop(next(iter(self._resolved)))
            self._resolved[where] = rows
        return rows

    def count(self, where: ChunkFilter | None = None) -> int:
        rows = self.rows(where)
        return self.chunk_count if rows is None else len(rows)

    def dense(self, vector: np.ndarray, n: int, where: ChunkFilter | None = None) -> list[tuple[int, float]]:
        """(row, cosine) of the n nearest chunks (among the rows the filter allows)."""
        return self.dense_within(vector, n, self.rows(where))

    def dense_within(self, vector: np.ndarray, n: int, allowed: np.ndarray | None, selector=None
                     ) -> list[tuple[int, float]]:
        """(row, cosine) of the n nearest chunks among the sorted rows allowed (None: all), or among
        those a FAISS selector lets through (a segmented index's live rows)."""
        import faiss

        if selector is not None:
            index = faiss.downcast_index(self.dense_index)
            if hasattr(index, "hnsw"):
                params = faiss.SearchParametersHNSW(sel=selector, efSearch=max(index.hnsw.efSearch, n))
            else:
                params = faiss.SearchParameters(sel=selector)
            scores, ids = index.search(np.asarray(vector, dtype=np.float32).reshape(1, -1),
                                       min(n, self.chunk_count), params=params)
            return [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i >= 0]
        n = min(n, self.chunk_count if allowed is None else len(allowed))
        if n <= 0:
            return []
        vector = np.asarray(vector, dtype=np.float32).reshape(1, -1)
        if allowed is None:
            scores, ids = self.dense_index.search(vector, n)
        elif len(allowed) <= EXACT_WINDOW:  # a window of days: exact, from the stored vectors
            cosines = np.asarray(self.vectors[allowed], dtype=np.float32) @ vector[0]
            best = top_k(cosines + 2.0, n)  # top_k keeps positive scores; cosines are >= -1
            return [(int(allowed[i]), float(cosines[i])) for i in best]
        else:  # a wide window: the index itself, told which rows it may return
            index = faiss.downcast_index(self.dense_index)
            selector = faiss.IDSelectorBatch(np.ascontiguousarray(allowed, dtype=np.int64))
            if hasattr(index, "hnsw"):
                params = faiss.SearchParametersHNSW(sel=selector, efSearch=max(index.hnsw.efSearch, n))
            else:
                params = faiss.SearchParameters(sel=selector)
            scores, ids = index.search(vector, n, params=params)
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i >= 0]

    @property
    def has_multilingual(self) -> bool:
        """Whether this build holds multilingual vectors (multilingual_dense can search)."""
        return self.multilingual is not None

    def multilingual_dense(self, vector: np.ndarray, n: int, where: ChunkFilter | None = None
                           ) -> list[tuple[int, float]]:
        """(row, cosine) of the n chunks whose multilingual vectors are nearest to a unit vector of
        the same encoder, best first (among the rows the filter allows); exact. Empty without them."""
        return self.multilingual_within(vector, n, self.rows(where))

    def multilingual_within(self, vector: np.ndarray, n: int, allowed: np.ndarray | None) -> list[tuple[int, float]]:
        """multilingual_dense among the sorted rows allowed (None: all)."""
        if self.multilingual is None:
            return []
        total = self.chunk_count if allowed is None else len(allowed)
        n = min(n, total)
        if n <= 0:
            return []
        vector = np.asarray(vector, dtype=np.float32).reshape(-1)
        cosines = np.empty(total, dtype=np.float32)
        for first in range(0, total, 16384):  # bounded float32 copies of the memory-mapped rows
            rows = slice(first, first + 16384) if allowed is None else allowed[first:first + 16384]
            cosines[first:first + 16384] = np.asarray(self.multilingual[rows], dtype=np.float32) @ vector
        best = top_k(cosines + 2.0, n)  # top_k keeps positive scores; cosines are >= -1
        ids = best if allowed is None else allowed[best]
        return [(int(i), float(cosines[j])) for i, j in zip(ids, best)]

    def lexical(self, tokens: Sequence[str], n: int, where: ChunkFilter | None = None) -> list[tuple[int, float]]:
        """(row, BM25 score) of the n best matches (among the rows the filter allows); empty when no
        token is in the index."""
        stats = self.postings.statistics(tokens)
        if not stats.frequencies:
            return []
        scores = self.postings.scores(tokens, stats)
        allowed = self.rows(where)
        if allowed is not None:
            kept = np.zeros_like(scores)
            kept[allowed] = scores[allowed]
            scores = kept
        return [(int(i), float(scores[i])) for i in top_k(scores, n)]

    def cosines(self, vector: np.ndarray, ids: Sequence[int]) -> dict[int, float]:
        """Cosine of a unit vector to each chunk row (vectors are normalised)."""
        if not len(ids):
            return {}
        ordered = np.sort(np.asarray(ids, dtype=np.int64))  # sorted reads are kinder to a memory-mapped file
        return dict(zip(ordered.tolist(), (np.asarray(self.vectors[ordered]) @ vector).tolist()))

    def neighbours(self, id: int, reach: int) -> dict[int, ChunkRecord]:
        """The chunks within reach of row id in its article (rows of an article are consecutive)."""
        near = [id + d for d in range(-reach, reach + 1) if d and 0 <= id + d < self.chunk_count]
        found = self.chunks(near + [id])
        me = found.pop(id, None)
        return {row: c for row, c in found.items() if me is not None and c.doc_id == me.doc_id}

    def document_frequencies(self, tokens: Sequence[str]) -> dict[str, int]:
        """How many chunks hold each token the lexical index knows (tokens it lacks are left out)."""
        return self.postings.statistics(tokens).frequencies

    def chunks(self, rows: Sequence[int]) -> dict[int, ChunkRecord]:
        """Chunk records by row id, with their documents' citation fields."""
        if not rows:
            return {}
        marks = ",".join("?" * len(rows))
        with self._db_lock:
            found = self._db.execute(
                "SELECT c.row, c.chunk_id, c.doc_id, c.start, c.end, c.text, d.title, d.source, d.url, d.published, "
                f"c.sentences, d.path FROM chunks c JOIN documents d USING (doc_id) WHERE c.row IN ({marks})",
                [int(r) for r in rows],
            ).fetchall()
        return {r[0]: ChunkRecord(*r[:-2], tuple(map(tuple, json.loads(r[-2]))), r[-1]) for r in found}

    def rows_matching(self, since: str = "", until: str = "", sources: Sequence[str] = ()) -> np.ndarray:
        """Rows of the chunks whose article was published in [since, until] (ISO days, inclusive;
        articles without a date never match a date window) and whose source or web address contains
        one of sources (case-insensitive), sorted."""
        where, args = [], []
        if since or until:
            where.append("d.published GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]*'")
        if since:
            where.append("substr(d.published, 1, 10) >= ?")
            args.append(since)
        if until:
            where.append("substr(d.published, 1, 10) <= ?")
            args.append(until)
        if sources:
            # "aljazeera" finds "Al Jazeera" and aljazeera.com: compared without spaces, dots or dashes
            squash = "replace(replace(replace(lower({}), ' ', ''), '-', ''), '.', '')"
            one = f"instr({squash.format('d.source')}, ?) > 0 OR instr({squash.format('d.url')}, ?) > 0"
            where.append("(" + " OR ".join([one] * len(sources)) + ")")
            for name in sources:
                key = re.sub(r"[\s.-]+", "", name.lower())
                args += [key, key]
        sql = "SELECT c.row FROM chunks c JOIN documents d USING (doc_id)"
        if where:
            sql += " WHERE " + " AND ".join(where)
        with self._db_lock:
            rows = [r for (r,) in self._db.execute(sql + " ORDER BY c.row", args)]
        return np.asarray(rows, dtype=np.int64)

    def rows_published_after(self, day: str) -> np.ndarray:
        """Rows of the chunks whose article is dated after day (an ISO day), sorted; undated
        articles are never among them."""
        last = self.coverage()["last"]
        if not last or last <= day:  # the usual case, asked today: no SQL
            return np.zeros(0, dtype=np.int64)
        with self._db_lock:
            rows = [r for (r,) in self._db.execute(
                "SELECT c.row FROM chunks c JOIN documents d USING (doc_id) WHERE d.published GLOB "
                "'[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]*' AND substr(d.published, 1, 10) > ? ORDER BY c.row",
                (day,))]
        return np.asarray(rows, dtype=np.int64)

    def rows_of_documents(self, doc_ids: Sequence[str]) -> np.ndarray:
        """Rows of the chunks of these documents, sorted (documents no longer indexed give none)."""
        doc_ids = list(doc_ids)
        rows: list[int] = []
        for first in range(0, len(doc_ids), 10_000):  # within SQLite's limit on parameters
            batch = doc_ids[first:first + 10_000]
            with self._db_lock:
                rows += [r for (r,) in self._db.execute(
                    f"SELECT row FROM chunks WHERE doc_id IN ({','.join('?' * len(batch))})", batch)]
        return np.unique(np.asarray(rows, dtype=np.int64))

    def rows_of_paths(self, paths: Sequence[str]) -> np.ndarray:
        """Rows of the chunks of the articles in these files (relative to the corpus folder), sorted."""
        if not paths:
            return np.zeros(0, dtype=np.int64)
        marks = ",".join("?" * len(paths))
        with self._db_lock:
            rows = [r for (r,) in self._db.execute(
                f"SELECT c.row FROM chunks c JOIN documents d USING (doc_id) WHERE d.path IN ({marks}) "
                "ORDER BY c.row", list(paths))]
        return np.asarray(rows, dtype=np.int64)

    def documents(self) -> list[tuple[str, str, str]]:
        """(doc_id, published, source) of every document in this build (read once: a build never changes)."""
        if self._documents is None:
            with self._db_lock:
                self._documents = self._db.execute("SELECT doc_id, published, source FROM documents").fetchall()
        return self._documents

    def signatures(self) -> list[tuple[str, str]]:
        """(doc_id, signature) of every document: what the builder compares a corpus with."""
        with self._db_lock:
            return self._db.execute("SELECT doc_id, signature FROM documents").fetchall()

    def coverage(self) -> dict:
        """What the corpus covers: articles, sources by number of articles, first and last date."""
        if self._coverage is None:
            with self._db_lock:
                (articles,) = self._db.execute("SELECT count(*) FROM documents").fetchone()
                first, last = self._db.execute(
                    "SELECT min(substr(published, 1, 10)), max(substr(published, 1, 10)) FROM documents "
                    "WHERE published GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]*'").fetchone()
                sources = self._db.execute(
                    "SELECT source, count(*) AS n FROM documents WHERE source != '' GROUP BY source "
                    "ORDER BY n DESC, source").fetchall()
            self._coverage = {"articles": articles, "first": first or "", "last": last or "",
                              "sources": [{"source": name, "articles": n} for name, n in sources]}
        return self._coverage

    def vector_damage(self) -> str | None:
        """Why this build's vectors must not be reused, or None: checksums from its manifest (builds
        made before checksums were kept have none), then the norms of a sample (they are unit vectors)."""
        for name, digest in self.manifest.get("checksums", {}).items():
            if file_sha256(self.build_dir / name) != digest:
                return f"{name} does not match the checksum its build wrote"
        return self.norm_damage()

    def norm_damage(self) -> str | None:
        """Which vector file holds vectors that are not unit length, judged on up to SAMPLE_ROWS
        evenly spread rows of each (milliseconds, even at 100k chunks), or None."""
        step = max(1, self.chunk_count // SAMPLE_ROWS)
        try:
            stored = np.stack([self.dense_index.reconstruct(i) for i in range(0, self.chunk_count, step)]) \
                if self.chunk_count else np.zeros((0, self.dense_index.d), dtype=np.float32)
        except RuntimeError:  # an index type that cannot give its vectors back: nothing to sample
            stored = np.zeros((0, self.dense_index.d), dtype=np.float32)
        samples = (("vectors.npy", self.vectors[::step]), ("sentences.npy", self.sentence_vectors[
            :: max(1, len(self.sentence_vectors) // SAMPLE_ROWS)]), ("dense.faiss", stored))
        with np.errstate(all="ignore"):  # random numbers overflow; the verdict is what matters
            for name, rows in samples:
                norms = np.linalg.norm(np.asarray(rows, dtype=np.float32), axis=1)
                if len(norms) and not np.allclose(norms, 1.0, atol=0.02):
                    return f"{name} holds vectors that are not unit length"
        return None

    def vectors_by_hash(self) -> tuple[dict[str, int], np.ndarray]:
        """Content hash -> row, and the stored vectors (memory-mapped), for reuse by the next build."""
        with self._db_lock:
            rows = self._db.execute("SELECT hash, row FROM chunks").fetchall()
        return dict(rows), self.vectors

    def sentence_vectors_by_hash(self) -> tuple[dict[str, int], np.ndarray]:
        """The same for sentence vectors."""
        with self._db_lock:
            rows = self._db.execute("SELECT hash, row FROM sentences").fetchall()
        return dict(rows), self.sentence_vectors

    def leads(self, where: ChunkFilter | None = None) -> list[ChunkRecord]:
        with self._db_lock:
            rows = np.asarray([r for (r,) in self._db.execute("SELECT row FROM chunks WHERE ordinal = 0 ORDER BY row")],
                              dtype=np.int64)
        allowed = self.rows(where)
        if allowed is not None:
            rows = np.intersect1d(rows, allowed)
        found = self.chunks(rows.tolist())
        return sorted(found.values(), key=lambda c: (c.published, c.row), reverse=True)

    def vectors_of(self, ids: Sequence[int]) -> np.ndarray:
        return np.asarray(self.vectors[np.asarray(ids, dtype=np.int64)], dtype=np.float32)

    def close(self) -> None:
        with self._db_lock:
            self._db.close()
