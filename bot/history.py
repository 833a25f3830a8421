"""What the bot remembers, in DATA_DIR/bot.sqlite: the answers it sent (for "More", follow-ups
and votes), the votes, and a log of questions for /stats and `citebot report`.

Kept: answers CITEBOT_HISTORY_DAYS (default 7); the question log and votes CITEBOT_LOG_DAYS
(default 30). With CITEBOT_LOG_QUESTIONS=0 the log keeps no question text (only time, chat type
and whether the bot abstained) and votes keep none either. Voters are stored as salted hashes of
their user ids, never the ids; the salt lives in the same database and never leaves it.
"""
from __future__ import annotations

import hashlib
import json
import logging
import re
import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from index.errors import CitebotError

log = logging.getLogger(__name__)

DAY = 24 * 3600
MORE, VOTE = "more", "vote"

SCHEMA = """
CREATE TABLE IF NOT EXISTS questions (id TEXT PRIMARY KEY, question TEXT, at REAL);
CREATE INDEX IF NOT EXISTS questions_at ON questions (at);
CREATE TABLE IF NOT EXISTS answers (
    chat_id INTEGER NOT NULL, message_id INTEGER NOT NULL, qid TEXT NOT NULL, at REAL NOT NULL,
    PRIMARY KEY (chat_id, message_id)
);
CREATE TABLE IF NOT EXISTS cited (qid TEXT PRIMARY KEY, citations TEXT NOT NULL, shown INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS votes (
    qid TEXT NOT NULL, voter TEXT NOT NULL, vote INTEGER NOT NULL, question TEXT, citations TEXT,
    chat_type TEXT, at REAL NOT NULL, PRIMARY KEY (qid, voter)
);
CREATE TABLE IF NOT EXISTS asked (at REAL NOT NULL, chat_type TEXT, question TEXT, abstained INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS asked_at ON asked (at);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
"""


class HistoryDamaged(CitebotError, RuntimeError):
    """bot.sqlite cannot be read as a database; the message says how it is repaired."""


@dataclass(frozen=True)
class Remembered:
    """An answer the bot sent: the question, the citations it had, how many were shown."""

    qid: str
    question: str
    citations: tuple[dict, ...]  # {"doc_id", "title"} of each citation, best first
    shown: int


def normalise_question(text: str) -> str:
    """Questions counted as one in the report: case, punctuation and spacing ignored."""
    return " ".join(re.findall(r"\w+", text.casefold()))


class History:
    """The bot's SQLite memory. Thread-safe; one connection shared under a lock."""

    def __init__(self, path: Path, history_days: int = 7, log_days: int = 30, log_questions: bool = True,
                 repair: bool = False):
        """Open (or create) the memory at path. A damaged file raises HistoryDamaged, or with repair
        (the bot) is set aside as bot.sqlite.damaged-<time> and a new, empty memory started."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self.history_days = history_days
        self.log_days = log_days
        self.log_questions = log_questions
        try:
            self._db, self._salt = self._open(path)
        except sqlite3.DatabaseError as exc:
            if not repair:
                log.info("bot memory %s: %r", path, exc)
                raise HistoryDamaged(f"The bot's memory {path} is damaged (it cannot be read as a database); "
                                     "`citebot serve` sets it aside and starts a new one, or move it away "
                                     "yourself.") from None
            aside = self._set_aside(path)
            log.warning("The bot's memory %s was damaged (%s); it is kept as %s and the memory was reset: "
                        "earlier answers, votes and the question log are not in the new one.", path, exc, aside.name)
            self._db, self._salt = self._open(path)
        self.prune()

    @staticmethod
    def _open(path: Path) -> tuple[sqlite3.Connection, str]:
        """The connection and the voters' salt; sqlite3.DatabaseError when the file is damaged
        (quick_check reads every page: a file whose header survived can still be broken)."""
        db = sqlite3.connect(path, check_same_thread=False)
        try:
            (verdict,) = db.execute("PRAGMA quick_check").fetchone()
            if verdict != "ok":
                raise sqlite3.DatabaseError(f"quick_check: {verdict}")
            db.executescript(SCHEMA)
            with db:
                row = db.execute("SELECT value FROM meta WHERE key = 'salt'").fetchone()
                if row is None:
                    row = (secrets.token_hex(16),)
                    db.execute("INSERT INTO meta VALUES ('salt', ?)", row)
        except BaseException:
            db.close()
            raise
        return db, row[0]

    @staticmethod
    def _set_aside(path: Path) -> Path:
        """Move the damaged file (and its journal) away, kept for whoever wants to look at it."""
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
        aside = path.with_name(f"{path.name}.damaged-{stamp}")
        path.replace(aside)
        for suffix in ("-journal", "-wal", "-shm"):
            leftover = path.with_name(path.name + suffix)
            if leftover.exists():
                leftover.replace(aside.with_name(aside.name + suffix))
        return aside

    # -- answers ---------------------------------------------------------------------------------

    def remember(self, question: str, citations: tuple[dict, ...] = (), shown: int = 0) -> str:
        """Keep an answer's question (and citations); returns its id for callback data."""
        qid = secrets.token_urlsafe(9)  # 12 characters: "vote:<id>:u" stays far inside 64 bytes
        now = time.time()
        with self._lock, self._db:
            self._db.execute("INSERT INTO questions VALUES (?, ?, ?)", (qid, question, now))
            self._db.execute("INSERT INTO cited VALUES (?, ?, ?)", (qid, json.dumps(list(citations)), shown))
        return qid

    def sent(self, qid: str, chat_id: int, message_ids: list[int]) -> None:
        """The messages that carried an answer: a reply to any of them is a follow-up."""
        now = time.time()
        with self._lock, self._db:
            self._db.executemany("INSERT OR REPLACE INTO answers VALUES (?, ?, ?, ?)",
                                 [(chat_id, m, qid, now) for m in message_ids])

    def question(self, qid: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT question FROM questions WHERE id = ?", (qid,)).fetchone()
        return row[0] if row else None

    def recall(self, qid: str) -> Remembered | None:
        with self._lock:
            row = self._db.execute(
                "SELECT q.question, c.citations, c.shown FROM questions q LEFT JOIN cited c ON c.qid = q.id "
                "WHERE q.id = ?", (qid,)).fetchone()
        if row is None:
            return None
        return Remembered(qid, row[0], tuple(json.loads(row[1] or "[]")), row[2] or 0)

    def answer_to(self, chat_id: int, message_id: int) -> Remembered | None:
        """The answer a bot message carried, if it is one the bot still remembers."""
        with self._lock:
            row = self._db.execute("SELECT qid FROM answers WHERE chat_id = ? AND message_id = ?",
                                   (chat_id, message_id)).fetchone()
        return self.recall(row[0]) if row else None

    # -- votes and the question log --------------------------------------------------------------

    def voter(self, user_id: int) -> str:
        return hashlib.sha256(f"{self._salt}:{user_id}".encode()).hexdigest()[:32]

    def vote(self, qid: str, user_id: int, up: bool, chat_type: str) -> bool:
        """Store (or replace) a user's vote on an answer; False when the answer is forgotten."""
        remembered = self.recall(qid)
        if remembered is None:
            return False
        question = remembered.question if self.log_questions else None
        citations = json.dumps(list(remembered.citations[: max(remembered.shown, 1)])) if self.log_questions else None
        with self._lock, self._db:
            self._db.execute("INSERT OR REPLACE INTO votes VALUES (?, ?, ?, ?, ?, ?, ?)",
                             (qid, self.voter(user_id), 1 if up else -1, question, citations, chat_type, time.time()))
        return True

    def log(self, question: str, chat_type: str, abstained: bool) -> None:
        with self._lock, self._db:
            self._db.execute("INSERT INTO asked VALUES (?, ?, ?, ?)",
                             (time.time(), chat_type, question if self.log_questions else None, int(abstained)))

    def report(self, days: int = 7, now: float | None = None) -> dict:
        """Questions in the last 24 h and `days` days, abstention rate, votes, and the questions
        most often abstained on (normalised), for /stats and `citebot report`."""
        now = now or time.time()
        since = now - days * DAY
        with self._lock:
            (day,) = self._db.execute("SELECT count(*) FROM asked WHERE at >= ?", (now - DAY,)).fetchone()
            total, abstained = self._db.execute(
                "SELECT count(*), coalesce(sum(abstained), 0) FROM asked WHERE at >= ?", (since,)).fetchone()
            up, down = self._db.execute(
                "SELECT coalesce(sum(vote > 0), 0), coalesce(sum(vote < 0), 0) FROM votes WHERE at >= ?",
                (since,)).fetchone()
            missed = self._db.execute(
                "SELECT question FROM asked WHERE abstained = 1 AND question IS NOT NULL AND at >= ?",
                (since,)).fetchall()
        counts: dict[str, int] = {}
        for (q,) in missed:
            key = normalise_question(q)
            if key:
                counts[key] = counts.get(key, 0) + 1
        top = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:10]
        return {"days": days, "questions_24h": day, "questions": total,
                "abstention_rate": round(abstained / total, 3) if total else 0.0,
                "votes_up": up, "votes_down": down,
                "top_abstained": [{"question": q, "times": n} for q, n in top],
                "logging_questions": self.log_questions}

    def prune(self) -> None:
        """Forget answers after history_days, the question log and votes after log_days."""
        now = time.time()
        keep, log_keep = now - self.history_days * DAY, now - self.log_days * DAY
        with self._lock, self._db:
            self._db.execute("DELETE FROM cited WHERE qid IN (SELECT id FROM questions WHERE at < ?)", (keep,))
            self._db.execute("DELETE FROM questions WHERE at < ?", (keep,))
            self._db.execute("DELETE FROM answers WHERE at < ?", (keep,))
            self._db.execute("DELETE FROM asked WHERE at < ?", (log_keep,))
            self._db.execute("DELETE FROM votes WHERE at < ?", (log_keep,))

    def close(self) -> None:
        with self._lock:
            self._db.close()


def callback_data(qid: str, offset: int) -> str:
    return f"{MORE}:{qid}:{offset}"


def vote_data(qid: str, up: bool) -> str:
    return f"{VOTE}:{qid}:{'u' if up else 'd'}"


def parse_callback_data(data: str) -> tuple[str, int] | None:
    """(question id, offset) from "More" callback data, or None if it is not ours or malformed."""
    parts = (data or "").split(":")
    if len(parts) != 3 or parts[0] != MORE or not parts[2].isdigit():
        return None
    return parts[1], int(parts[2])


def parse_vote_data(data: str) -> tuple[str, bool] | None:
    """(question id, up) from vote callback data, or None."""
    parts = (data or "").split(":")
    if len(parts) != 3 or parts[0] != VOTE or parts[2] not in ("u", "d"):
        return None
    return parts[1], parts[2] == "u"
