"""What a build can skip next time: cleaned documents by file, chunks by document, and vectors by
the hash of their text.

Cleaning and language identification cost ~3 ms an article and chunking, sentence splitting and
tokenising another ~1 ms: 8 of the 10 s that a rebuild of 2,225 BBC articles took to add one
article. The cache keeps their results in `<index>/cache.sqlite`, keyed by what they depend on
(a file's size, mtime and inode; a document's id and the chunk settings), so adding a few articles
costs a pass over the new ones only. It is only a cache: a damaged file is deleted and rebuilt,
and a build never trusts it for anything it cannot recompute.

Vectors are kept here too, outside any one build, by the hash of the model and the text
(builder.chunk_hash): a build whose files are damaged costs a rewrite, not an embedding of the
whole corpus. Vectors cannot be recomputed cheaply, so only unit vectors of the expected length are
handed back (damage shows as other lengths), and the set kept is pruned only to what a build that
went live holds.
"""
from __future__ import annotations

import json
import logging
import os
import sqlite3
from dataclasses import asdict
from pathlib import Path
from typing import Iterable

import numpy as np

from .documents import Document, Paragraph, SkippedFile, file_stamp  # noqa: F401  (file_stamp: the cache's key)

log = logging.getLogger(__name__)

# Bump when cleaning, chunking, sentence splitting or tokenising change what they produce.
CACHE_VERSION = 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS files (path TEXT PRIMARY KEY, stamp TEXT NOT NULL, outcome TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS chunks (key TEXT PRIMARY KEY, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS vectors (kind TEXT NOT NULL, hash TEXT NOT NULL, data BLOB NOT NULL,
                                    PRIMARY KEY (kind, hash));
"""
# How each kind of vector is stored: chunk vectors as the build uses them, sentence vectors in
# half precision as sentences.npy keeps them.
VECTOR_DTYPES = {"chunk": np.float32, "sentence": np.float16, "multilingual": np.float16}
UNIT_TOLERANCE = 0.02

FileOutcome = list[Document | SkippedFile]


class BuildCache:
    """Cleaned documents and chunks from earlier builds. One writer: builds hold the build lock."""

    def __init__(self, path: Path):
        self.path = path
        self._seen_files: set[str] = set()
        self._seen_chunks: set[str] = set()
        self._keep_vectors: dict[str, set[str]] = {}  # kind -> hashes a live build holds (prune to them)
        self._writable = True
        try:
            self._db = self._open(path)
        except sqlite3.DatabaseError as exc:
            log.warning("The build cache %s is damaged (%s); starting a new one", path, exc)
            for leftover in (path, path.with_name(path.name + "-journal")):
                leftover.unlink(missing_ok=True)
            try:
                self._db = self._open(path)
            except sqlite3.Error as again:  # a full disk, most likely: build without a cache
                log.warning("Cannot create the build cache %s (%s); every file is read this time", path, again)
                self._db = self._open(Path(":memory:"))

    @staticmethod
    def _open(path: Path) -> sqlite3.Connection:
        if str(path) != ":memory:":
            path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(path)
        db.executescript(SCHEMA)
        row = db.execute("SELECT value FROM meta WHERE key = 'version'").fetchone()
        if row is None or row[0] != str(CACHE_VERSION):
            db.executescript("DELETE FROM files; DELETE FROM chunks;")
            db.execute("INSERT OR REPLACE INTO meta VALUES ('version', ?)", (str(CACHE_VERSION),))
        return db

    def file(self, rel: str, stamp: str) -> FileOutcome | str | None:
        """The documents (or the reason it was unreadable) a file gave when it had this stamp."""
        self._seen_files.add(rel)
        row = self._db.execute("SELECT stamp, outcome FROM files WHERE path = ?", (rel,)).fetchone()
        if row is None or row[0] != stamp:
            return None
        data = json.loads(row[1])
        if isinstance(data, str):
            return data
        return [_document(d) if "doc_id" in d else SkippedFile(**d) for d in data]

    def put_file(self, rel: str, stamp: str, outcome: FileOutcome | str) -> None:
        data = outcome if isinstance(outcome, str) else [asdict(d) for d in outcome]
        self._write("INSERT OR REPLACE INTO files VALUES (?, ?, ?)", (rel, stamp, json.dumps(data)))

    def chunks(self, key: str) -> list | None:
        self._seen_chunks.add(key)
        row = self._db.execute("SELECT data FROM chunks WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def put_chunks(self, key: str, data: list) -> None:
        self._write("INSERT OR REPLACE INTO chunks VALUES (?, ?)", (key, json.dumps(data)))

    def vector_hashes(self, kind: str) -> set[str]:
        return {h for (h,) in self._db.execute("SELECT hash FROM vectors WHERE kind = ?", (kind,))}

    def vectors(self, kind: str, hashes: Iterable[str], dim: int | None = None) -> dict[str, np.ndarray]:
        """The kept vectors (float32) among these hashes: unit vectors of length dim (when given;
        else the length most of them have) only."""
        dtype = np.dtype(VECTOR_DTYPES[kind])
        wanted = list(dict.fromkeys(hashes))
        found: dict[str, np.ndarray] = {}
        for first in range(0, len(wanted), 500):  # within SQLite's limit on parameters
            batch = wanted[first:first + 500]
            rows = self._db.execute(f"SELECT hash, data FROM vectors WHERE kind = ? AND hash IN "
                                    f"({','.join('?' * len(batch))})", [kind, *batch])
            for h, data in rows:
                if len(data) % dtype.itemsize == 0:
                    found[h] = np.frombuffer(data, dtype=dtype).astype(np.float32)
        if found and dim is None:
            lengths = [len(v) for v in found.values()]
            dim = max(set(lengths), key=lengths.count)
        kept = {}
        with np.errstate(all="ignore"):
            for h, v in found.items():
                if len(v) == dim and abs(float(np.linalg.norm(v)) - 1.0) <= UNIT_TOLERANCE:
                    kept[h] = v
        if len(kept) < len(found):
            log.warning("The build cache %s holds %d damaged vector(s); they are embedded again", self.path,
                        len(found) - len(kept))
        return kept

    def put_vectors(self, kind: str, items: Iterable[tuple[str, np.ndarray]]) -> None:
        dtype = VECTOR_DTYPES[kind]
        self._write("INSERT OR REPLACE INTO vectors VALUES (?, ?, ?)",
                    ((kind, h, np.asarray(v, dtype=dtype).tobytes()) for h, v in items), many=True)

    def keep_chunkings(self) -> None:
        """This build chunked only some documents (an update): save() forgets no chunking, or the
        next whole build would chunk every article again."""
        self._seen_chunks.clear()

    def keep_vectors(self, kind: str, hashes: Iterable[str]) -> None:
        """The vectors of a build that went live: save() forgets the others of this kind."""
        self._keep_vectors[kind] = set(hashes)

    def _write(self, sql: str, values, many: bool = False) -> None:
        """A failed write (a full disk) stops the caching, never the build; the build says why it stops."""
        if not self._writable:
            return
        try:
            if many:
                self._db.executemany(sql, values)
            else:
                self._db.execute(sql, values)
        except sqlite3.Error as exc:
            log.warning("Not caching this build's work in %s (%s)", self.path, exc)
            self._writable = False
            self._db.rollback()

    def save(self) -> None:
        """Forget what this build did not look at (deleted files, old settings), then commit."""
        if not self._writable:
            return
        try:
            for table, column, seen in (("files", "path", self._seen_files), ("chunks", "key", self._seen_chunks)):
                if not seen:  # a build that found the corpus up to date chunked nothing: nothing is stale
                    continue
                stored = {r[0] for r in self._db.execute(f"SELECT {column} FROM {table}")}
                self._db.executemany(f"DELETE FROM {table} WHERE {column} = ?", ((k,) for k in stored - seen))
            for kind, keep in self._keep_vectors.items():
                self._db.executemany("DELETE FROM vectors WHERE kind = ? AND hash = ?",
                                     ((kind, h) for h in self.vector_hashes(kind) - keep))
            self._db.commit()
        except sqlite3.Error as exc:  # a full disk must not fail a build that has committed
            log.warning("Could not save the build cache %s (%s); the next build reads every file again", self.path, exc)
            self._db.rollback()

    def close(self) -> None:
        self._db.close()


def _document(data: dict) -> Document:
    return Document(**{**data, "paragraphs": tuple(Paragraph(**p) for p in data["paragraphs"])})


def cache_path(index_root: Path) -> Path:
    return Path(os.fspath(index_root)) / "cache.sqlite"
