"""The "More" button: remember which question a message answered, across restarts, in SQLite."""
from __future__ import annotations

import secrets
import sqlite3
import threading
import time
from pathlib import Path

KEEP_SECONDS = 7 * 24 * 3600
PREFIX = "more"


class PageStore:
    """Question ids for callback data ("more:<id>:<offset>", well inside Telegram's 64 bytes)."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False)
        self._db.execute("CREATE TABLE IF NOT EXISTS questions (id TEXT PRIMARY KEY, question TEXT, at REAL)")
        self._db.execute("CREATE INDEX IF NOT EXISTS questions_at ON questions (at)")
        self._lock = threading.Lock()

    def remember(self, question: str) -> str:
        qid = secrets.token_urlsafe(9)  # 12 characters
        now = time.time()
        with self._lock, self._db:
            self._db.execute("DELETE FROM questions WHERE at < ?", (now - KEEP_SECONDS,))
            self._db.execute("INSERT INTO questions VALUES (?, ?, ?)", (qid, question, now))
        return qid

    def question(self, qid: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT question FROM questions WHERE id = ?", (qid,)).fetchone()
        return row[0] if row else None

    def close(self) -> None:
        with self._lock:
            self._db.close()


def callback_data(qid: str, offset: int) -> str:
    return f"{PREFIX}:{qid}:{offset}"


def parse_callback_data(data: str) -> tuple[str, int] | None:
    """(question id, offset) from callback data, or None if it is not ours or malformed."""
    parts = (data or "").split(":")
    if len(parts) != 3 or parts[0] != PREFIX or not parts[2].isdigit():
        return None
    return parts[1], int(parts[2])
