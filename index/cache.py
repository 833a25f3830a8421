"""What a build can skip next time: cleaned documents by file, chunks by document.

Cleaning and language identification cost ~3 ms an article and chunking, sentence splitting and
tokenising another ~1 ms: 8 of the 10 s that a rebuild of 2,225 BBC articles took to add one
article. The cache keeps their results in `<index>/cache.sqlite`, keyed by what they depend on
(a file's size, mtime and inode; a document's id and the chunk settings), so adding a few articles
costs a pass over the new ones only. It is only a cache: a damaged file is deleted and rebuilt,
and a build never trusts it for anything it cannot recompute.
"""
from __future__ import annotations

import json
import logging
import os
import sqlite3
from dataclasses import asdict
from pathlib import Path

from .documents import Document, Paragraph, SkippedFile

log = logging.getLogger(__name__)

# Bump when cleaning, chunking, sentence splitting or tokenising change what they produce.
CACHE_VERSION = 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS files (path TEXT PRIMARY KEY, stamp TEXT NOT NULL, outcome TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS chunks (key TEXT PRIMARY KEY, data TEXT NOT NULL);
"""

FileOutcome = list[Document | SkippedFile]


def file_stamp(path: Path) -> str:
    """What says a file is unchanged without reading it (as make and git do)."""
    st = path.stat()
    return f"{st.st_size}:{st.st_mtime_ns}:{st.st_ino}"


class BuildCache:
    """Cleaned documents and chunks from earlier builds. One writer: builds hold the build lock."""

    def __init__(self, path: Path):
        self.path = path
        self._seen_files: set[str] = set()
        self._seen_chunks: set[str] = set()
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

    def _write(self, sql: str, values: tuple) -> None:
        """A failed write (a full disk) stops the caching, never the build; the build says why it stops."""
        if not self._writable:
            return
        try:
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
                stored = {r[0] for r in self._db.execute(f"SELECT {column} FROM {table}")}
                self._db.executemany(f"DELETE FROM {table} WHERE {column} = ?", ((k,) for k in stored - seen))
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
