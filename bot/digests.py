"""Daily digests: which chats asked for one, when (a time of day in a time zone), and what the last one told.

Kept where the bot's other state is: DATA_DIR/digests.sqlite, or PostgreSQL (CITEBOT_DATABASE_URL,
migration 3) for replicas. The schedule survives restarts: the bot schedules every stored digest
at start (bot/app.py).
"""
from __future__ import annotations

import json
import re
import sqlite3
import threading
from dataclasses import dataclass
from datetime import datetime, time, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

if TYPE_CHECKING:
    from index.store.database import Database

DIGESTS_FILE = "digests.sqlite"
_TIME = re.compile(r"([01]?[0-9]|2[0-3]):([0-5][0-9])")


@dataclass(frozen=True)
class Digest:
    """One chat's digest: when it is sent, and what the last one held (not told again)."""

    chat_id: int
    at: str  # "HH:MM"
    tz: str  # an IANA time zone, "UTC" by default
    last_sent: str = ""  # ISO time of the last digest, "" before the first
    last_docs: tuple[str, ...] = ()  # the articles it told

    @property
    def time(self) -> time:
        hours, minutes = map(int, self.at.split(":"))
        return time(hours, minutes, tzinfo=ZoneInfo(self.tz))


def parse_schedule(args: list[str]) -> tuple[str, str]:
    """("HH:MM", time zone) from `/digest 07:30 Europe/Berlin`; ValueError with one sentence."""
    if not args or not _TIME.fullmatch(args[0]):
        raise ValueError("Say when, as a time of day: /digest 07:30 (UTC), or /digest 07:30 Europe/Berlin; "
                         "/digest off stops it.")
    hours, minutes = args[0].split(":")
    tz = args[1] if len(args) > 1 else "UTC"
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"I do not know the time zone {tz[:40]!r}; use a name like Europe/Berlin or "
                         "America/New_York.") from None
    return f"{int(hours):02d}:{minutes}", tz


class DigestStore(Protocol):
    def set(self, chat_id: int, at: str, tz: str) -> Digest: ...
    def off(self, chat_id: int) -> bool: ...
    def get(self, chat_id: int) -> Digest | None: ...
    def all(self) -> list[Digest]: ...
    def sent(self, chat_id: int, when: datetime, doc_ids: list[str]) -> None: ...


SQLITE_SCHEMA = """
CREATE TABLE IF NOT EXISTS digests (
    chat_id INTEGER PRIMARY KEY, at TEXT NOT NULL, tz TEXT NOT NULL,
    last_sent TEXT NOT NULL DEFAULT '', last_docs TEXT NOT NULL DEFAULT '[]'
)"""


def _digest(row) -> Digest:
    return Digest(int(row[0]), row[1], row[2], row[3] or "", tuple(json.loads(row[4] or "[]")))


class SqliteDigests:
    """Digests in DATA_DIR/digests.sqlite. Thread-safe."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False)
        self._lock = threading.Lock()
        with self._lock, self._db:
            self._db.execute(SQLITE_SCHEMA)

    def set(self, chat_id: int, at: str, tz: str) -> Digest:
        with self._lock, self._db:
            self._db.execute("INSERT INTO digests (chat_id, at, tz) VALUES (?, ?, ?) ON CONFLICT (chat_id) "
                             "DO UPDATE SET at = excluded.at, tz = excluded.tz", (chat_id, at, tz))
        return self.get(chat_id)

    def off(self, chat_id: int) -> bool:
        with self._lock, self._db:
            return self._db.execute("DELETE FROM digests WHERE chat_id = ?", (chat_id,)).rowcount > 0

    def get(self, chat_id: int) -> Digest | None:
        with self._lock:
            row = self._db.execute("SELECT chat_id, at, tz, last_sent, last_docs FROM digests WHERE chat_id = ?",
                                   (chat_id,)).fetchone()
        return _digest(row) if row else None

    def all(self) -> list[Digest]:
        with self._lock:
            return [_digest(r) for r in self._db.execute(
                "SELECT chat_id, at, tz, last_sent, last_docs FROM digests ORDER BY chat_id")]

    def sent(self, chat_id: int, when: datetime, doc_ids: list[str]) -> None:
        with self._lock, self._db:
            self._db.execute("UPDATE digests SET last_sent = ?, last_docs = ? WHERE chat_id = ?",
                             (when.astimezone(timezone.utc).isoformat(timespec="seconds"), json.dumps(doc_ids),
                              chat_id))


class PostgresDigests:
    """Digests in the shared database (table digests, migration 3)."""

    def __init__(self, db: "Database"):
        self.db = db

    def set(self, chat_id: int, at: str, tz: str) -> Digest:
        with self.db.transaction() as conn:
            conn.execute("INSERT INTO digests (chat_id, at, tz) VALUES (%s, %s, %s) ON CONFLICT (chat_id) "
                         "DO UPDATE SET at = excluded.at, tz = excluded.tz", (chat_id, at, tz))
        return self.get(chat_id)

    def off(self, chat_id: int) -> bool:
        with self.db.transaction() as conn:
            return conn.execute("DELETE FROM digests WHERE chat_id = %s", (chat_id,)).rowcount > 0

    def get(self, chat_id: int) -> Digest | None:
        with self.db.transaction() as conn:
            row = conn.execute("SELECT chat_id, at, tz, last_sent, last_docs FROM digests WHERE chat_id = %s",
                               (chat_id,)).fetchone()
        return _digest(row) if row else None

    def all(self) -> list[Digest]:
        with self.db.transaction() as conn:
            return [_digest(r) for r in conn.execute(
                "SELECT chat_id, at, tz, last_sent, last_docs FROM digests ORDER BY chat_id")]

    def sent(self, chat_id: int, when: datetime, doc_ids: list[str]) -> None:
        with self.db.transaction() as conn:
            conn.execute("UPDATE digests SET last_sent = %s, last_docs = %s WHERE chat_id = %s",
                         (when.astimezone(timezone.utc).isoformat(timespec="seconds"), json.dumps(doc_ids), chat_id))


def open_digests(data_dir: Path, database: "Database | None" = None) -> DigestStore:
    """The digests the settings name: in the database when there is one, else DATA_DIR/digests.sqlite."""
    if database is not None:
        return PostgresDigests(database)
    return SqliteDigests(Path(data_dir) / DIGESTS_FILE)


def import_digests(path: Path, store: DigestStore) -> dict:
    """`citebot db import`: the digests of a digests.sqlite into store (the database's); a chat that
    already has one there keeps it: importing twice adds nothing."""
    old = SqliteDigests(path)
    try:
        digests = old.all()
    finally:
        old._db.close()
    added = 0
    for d in digests:
        if store.get(d.chat_id) is not None:
            continue
        store.set(d.chat_id, d.at, d.tz)
        if d.last_sent:
            store.sent(d.chat_id, datetime.fromisoformat(d.last_sent), list(d.last_docs))
        added += 1
    return {"read": {"digests": len(digests)}, "added": {"digests": added}}
