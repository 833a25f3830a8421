"""What the bot remembers: the answers it sent (for "More", follow-ups and votes), the votes, and a
log of questions for /stats and `citebot report`. In DATA_DIR/bot.sqlite (SqliteHistory), or with
CITEBOT_DATABASE_URL in PostgreSQL (PostgresHistory), where every replica sees every answer:
`open_history` chooses. Both are the `History` below, so the handlers do not know which.

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
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Protocol

from index.errors import CitebotError

if TYPE_CHECKING:
    from index.store.database import Database

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


class HistoryUnavailable(CitebotError, RuntimeError):
    """The memory cannot be read or written just now (a full disk, a locked file, a lost database
    connection); nothing half-written. The bot answers without it."""


@dataclass(frozen=True)
class Remembered:
    """An answer the bot sent: the question, the citations it had, how many were shown."""

    qid: str
    question: str
    citations: tuple[dict, ...]  # {"doc_id", "title"} of each citation, best first
    shown: int


def _now() -> float:
    """The time answers and log lines are stamped with (a function, so tests can move it)."""
    return time.time()


def new_qid() -> str:
    return secrets.token_urlsafe(9)  # 12 characters: "vote:<id>:u" stays far inside 64 bytes


def normalise_question(text: str) -> str:
    """Questions counted as one in the report: case, punctuation and spacing ignored."""
    return " ".join(re.findall(r"\w+", text.casefold()))


class History(Protocol):
    """The bot's memory, whichever the store. Every method is one transaction; failures are
    CitebotError sentences (HistoryUnavailable, index.store.database.DatabaseError)."""

    history_days: int
    log_days: int
    log_questions: bool

    def remember(self, question: str, citations: tuple[dict, ...] = (), shown: int = 0) -> str: ...
    def sent(self, qid: str, chat_id: int, message_ids: list[int]) -> None: ...
    def question(self, qid: str) -> str | None: ...
    def recall(self, qid: str) -> Remembered | None: ...
    def answer_to(self, chat_id: int, message_id: int) -> Remembered | None: ...
    def vote(self, qid: str, user_id: int, up: bool, chat_type: str) -> bool: ...
    def log(self, question: str, chat_type: str, abstained: bool) -> None: ...
    def report(self, days: int = 7, now: float | None = None) -> dict: ...
    def prune(self) -> None: ...
    def close(self) -> None: ...


def open_history(data_dir: Path, database: "Database | str | None" = None, history_days: int = 7, log_days: int = 30,
                 log_questions: bool = True, repair: bool = False) -> History:
    """The memory the settings name: in PostgreSQL when database is given (a Database, or a URL for
    the process's shared one), else DATA_DIR/bot.sqlite (repair: a damaged file is set aside, see
    SqliteHistory)."""
    if database:
        from index.store.database import Database

        db = Database.shared(database) if isinstance(database, str) else database
        return PostgresHistory(db, history_days, log_days, log_questions)
    return SqliteHistory(Path(data_dir) / "bot.sqlite", history_days, log_days, log_questions, repair=repair)


def _report(days: int, day: int, total: int, abstained: int, up: int, down: int, missed: list[str],
            log_questions: bool) -> dict:
    """The report's dictionary, the same from either store."""
    counts: dict[str, int] = {}
    for q in missed:
        key = normalise_question(q)
        if key:
            counts[key] = counts.get(key, 0) + 1
    top = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:10]
    return {"days": days, "questions_24h": day, "questions": total,
            "abstention_rate": round(abstained / total, 3) if total else 0.0,
            "votes_up": up, "votes_down": down,
            "top_abstained": [{"question": q, "times": n} for q, n in top],
            "logging_questions": log_questions}


class SqliteHistory:
    """The bot's SQLite memory (DATA_DIR/bot.sqlite). Thread-safe; one connection shared under a lock."""

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

    @contextmanager
    def _guard(self) -> Iterator[None]:
        """A read or write that fails at run time (a full disk, a file locked by another process)
        as HistoryUnavailable; the transaction (`with self._db`) has been rolled back."""
        try:
            yield
        except sqlite3.Error as exc:
            log.warning("bot memory %s: %r", self.path, exc)
            raise HistoryUnavailable(f"The bot's memory {self.path} cannot be used just now ({exc}); "
                                     "nothing was half-written.") from None

    # -- answers ---------------------------------------------------------------------------------

    def remember(self, question: str, citations: tuple[dict, ...] = (), shown: int = 0) -> str:
        """Keep an answer's question (and citations); returns its id for callback data."""
        qid = new_qid()
        now = _now()
        with self._guard(), self._lock, self._db:
            self._db.execute("INSERT INTO questions VALUES (?, ?, ?)", (qid, question, now))
            self._db.execute("INSERT INTO cited VALUES (?, ?, ?)", (qid, json.dumps(list(citations)), shown))
        return qid

    def sent(self, qid: str, chat_id: int, message_ids: list[int]) -> None:
        """The messages that carried an answer: a reply to any of them is a follow-up."""
        now = _now()
        with self._guard(), self._lock, self._db:
            self._db.executemany("INSERT OR REPLACE INTO answers VALUES (?, ?, ?, ?)",
                                 [(chat_id, m, qid, now) for m in message_ids])

    def question(self, qid: str) -> str | None:
        with self._guard(), self._lock:
            row = self._db.execute("SELECT question FROM questions WHERE id = ?", (qid,)).fetchone()
        return row[0] if row else None

    def recall(self, qid: str) -> Remembered | None:
        with self._guard(), self._lock:
            row = self._db.execute(
                "SELECT q.question, c.citations, c.shown FROM questions q LEFT JOIN cited c ON c.qid = q.id "
                "WHERE q.id = ?", (qid,)).fetchone()
        if row is None:
            return None
        return Remembered(qid, row[0], tuple(json.loads(row[1] or "[]")), row[2] or 0)

    def answer_to(self, chat_id: int, message_id: int) -> Remembered | None:
        """The answer a bot message carried, if it is one the bot still remembers."""
        with self._guard(), self._lock:
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
        with self._guard(), self._lock, self._db:
            self._db.execute("INSERT OR REPLACE INTO votes VALUES (?, ?, ?, ?, ?, ?, ?)",
                             (qid, self.voter(user_id), 1 if up else -1, question, citations, chat_type, _now()))
        return True

    def log(self, question: str, chat_type: str, abstained: bool) -> None:
        with self._guard(), self._lock, self._db:
            self._db.execute("INSERT INTO asked VALUES (?, ?, ?, ?)",
                             (_now(), chat_type, question if self.log_questions else None, int(abstained)))

    def report(self, days: int = 7, now: float | None = None) -> dict:
        """Questions in the last 24 h and `days` days, abstention rate, votes, and the questions
        most often abstained on (normalised), for /stats and `citebot report`."""
        now = now or _now()
        since = now - days * DAY
        with self._guard(), self._lock:
            (day,) = self._db.execute("SELECT count(*) FROM asked WHERE at >= ?", (now - DAY,)).fetchone()
            total, abstained = self._db.execute(
                "SELECT count(*), coalesce(sum(abstained), 0) FROM asked WHERE at >= ?", (since,)).fetchone()
            up, down = self._db.execute(
                "SELECT coalesce(sum(vote > 0), 0), coalesce(sum(vote < 0), 0) FROM votes WHERE at >= ?",
                (since,)).fetchone()
            missed = self._db.execute(
                "SELECT question FROM asked WHERE abstained = 1 AND question IS NOT NULL AND at >= ?",
                (since,)).fetchall()
        return _report(days, day, total, abstained, up, down, [q for (q,) in missed], self.log_questions)

    def prune(self) -> None:
        """Forget answers after history_days, the question log and votes after log_days."""
        now = _now()
        keep, log_keep = now - self.history_days * DAY, now - self.log_days * DAY
        with self._guard(), self._lock, self._db:
            self._db.execute("DELETE FROM cited WHERE qid IN (SELECT id FROM questions WHERE at < ?)", (keep,))
            self._db.execute("DELETE FROM questions WHERE at < ?", (keep,))
            self._db.execute("DELETE FROM answers WHERE at < ?", (keep,))
            self._db.execute("DELETE FROM asked WHERE at < ?", (log_keep,))
            self._db.execute("DELETE FROM votes WHERE at < ?", (log_keep,))

    def close(self) -> None:
        with self._lock:
            self._db.close()



def _at(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, timezone.utc)


class PostgresHistory:
    """The bot's memory in PostgreSQL (CITEBOT_DATABASE_URL), shared by every replica: an answer
    remembered by one is recalled, followed up and voted on through any other. Each method is one
    transaction; votes are one row per answer and voter (a primary key), so a vote counts once
    whichever replica takes it. The voters' salt is one row every replica reads."""

    def __init__(self, db: "Database", history_days: int = 7, log_days: int = 30, log_questions: bool = True,
                 own: bool = False):
        """own: close() closes db too (a command's own connection; the bot's is shared)."""
        self.db = db
        self.where = db.where
        self.history_days = history_days
        self.log_days = log_days
        self.log_questions = log_questions
        self._own = own
        with db.transaction() as conn:
            conn.execute("INSERT INTO bot_meta VALUES ('salt', %s) ON CONFLICT (key) DO NOTHING",
                         (secrets.token_hex(16),))
            (self._salt,) = conn.execute("SELECT value FROM bot_meta WHERE key = 'salt'").fetchone()
        self.prune()

    # -- answers ---------------------------------------------------------------------------------

    def remember(self, question: str, citations: tuple[dict, ...] = (), shown: int = 0) -> str:
        from psycopg.types.json import Jsonb

        qid = new_qid()
        with self.db.connection() as conn:
            conn.execute("INSERT INTO bot_answers (qid, question, citations, shown, at) VALUES (%s, %s, %s, %s, %s)",
                         (qid, question, Jsonb(list(citations)), shown, _at(_now())))
        return qid

    def sent(self, qid: str, chat_id: int, message_ids: list[int]) -> None:
        """Idempotent: the same message recorded twice is one row (the later answer wins, as in SQLite)."""
        now = _at(_now())
        with self.db.transaction() as conn:
            conn.cursor().executemany(
                "INSERT INTO bot_sent (chat_id, message_id, qid, at) VALUES (%s, %s, %s, %s) "
                "ON CONFLICT (chat_id, message_id) DO UPDATE SET qid = excluded.qid, at = excluded.at",
                [(chat_id, m, qid, now) for m in message_ids])

    def question(self, qid: str) -> str | None:
        with self.db.connection() as conn:
            row = conn.execute("SELECT question FROM bot_answers WHERE qid = %s", (qid,)).fetchone()
        return row[0] if row else None

    def recall(self, qid: str) -> Remembered | None:
        with self.db.connection() as conn:
            row = conn.execute("SELECT question, citations, shown FROM bot_answers WHERE qid = %s", (qid,)).fetchone()
        return Remembered(qid, row[0], tuple(row[1] or ()), row[2] or 0) if row else None

    def answer_to(self, chat_id: int, message_id: int) -> Remembered | None:
        with self.db.connection() as conn:
            row = conn.execute(
                "SELECT a.qid, a.question, a.citations, a.shown FROM bot_sent s JOIN bot_answers a ON a.qid = s.qid "
                "WHERE s.chat_id = %s AND s.message_id = %s", (chat_id, message_id)).fetchone()
        return Remembered(row[0], row[1], tuple(row[2] or ()), row[3] or 0) if row else None

    # -- votes and the question log --------------------------------------------------------------

    def voter(self, user_id: int) -> str:
        return hashlib.sha256(f"{self._salt}:{user_id}".encode()).hexdigest()[:32]

    def vote(self, qid: str, user_id: int, up: bool, chat_type: str) -> bool:
        """Store (or replace) a user's vote on an answer; False when the answer is forgotten."""
        from psycopg.types.json import Jsonb

        with self.db.transaction() as conn:
            row = conn.execute("SELECT question, citations, shown FROM bot_answers WHERE qid = %s", (qid,)).fetchone()
            if row is None:
                return False
            question, citations, shown = row
            kept = Jsonb(list(citations or ())[: max(shown or 0, 1)]) if self.log_questions else None
            conn.execute(
                "INSERT INTO bot_votes (qid, voter, vote, question, citations, chat_type, at) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (qid, voter) DO UPDATE SET vote = excluded.vote, "
                "question = excluded.question, citations = excluded.citations, chat_type = excluded.chat_type, "
                "at = excluded.at",
                (qid, self.voter(user_id), 1 if up else -1, question if self.log_questions else None, kept, chat_type,
                 _at(_now())))
        return True

    def log(self, question: str, chat_type: str, abstained: bool) -> None:
        with self.db.connection() as conn:
            conn.execute("INSERT INTO bot_asked (at, chat_type, question, abstained) VALUES (%s, %s, %s, %s)",
                         (_at(_now()), chat_type, question if self.log_questions else None, abstained))

    def report(self, days: int = 7, now: float | None = None) -> dict:
        now = now or _now()
        since = _at(now - days * DAY)
        with self.db.connection() as conn:
            (day,) = conn.execute("SELECT count(*) FROM bot_asked WHERE at >= %s", (_at(now - DAY),)).fetchone()
            total, abstained = conn.execute(
                "SELECT count(*), count(*) FILTER (WHERE abstained) FROM bot_asked WHERE at >= %s", (since,)).fetchone()
            up, down = conn.execute(
                "SELECT count(*) FILTER (WHERE vote > 0), count(*) FILTER (WHERE vote < 0) FROM bot_votes "
                "WHERE at >= %s", (since,)).fetchone()
            missed = conn.execute("SELECT question FROM bot_asked WHERE abstained AND question IS NOT NULL "
                                  "AND at >= %s", (since,)).fetchall()
        return _report(days, day, total, abstained, up, down, [q for (q,) in missed], self.log_questions)

    def prune(self) -> None:
        now = _now()
        keep, log_keep = _at(now - self.history_days * DAY), _at(now - self.log_days * DAY)
        with self.db.transaction() as conn:
            conn.execute("DELETE FROM bot_answers WHERE at < %s", (keep,))  # and their bot_sent rows (cascade)
            conn.execute("DELETE FROM bot_sent WHERE at < %s", (keep,))
            conn.execute("DELETE FROM bot_asked WHERE at < %s", (log_keep,))
            conn.execute("DELETE FROM bot_votes WHERE at < %s", (log_keep,))

    def close(self) -> None:
        if self._own:
            self.db.close()

    # -- `citebot db import` ---------------------------------------------------------------------

    def import_sqlite(self, path: Path) -> dict:
        """Copy a bot.sqlite into the database in one transaction: answers, the messages that carried
        them, votes and the question log. Rows already here stay as they are, so a second import adds
        nothing (logged questions carry their origin, the file's salt and row). Returns the rows added
        per table, and a note when the votes' voters cannot be matched with new votes."""
        from psycopg.types.json import Jsonb

        rows = _read_bot_sqlite(Path(path))
        salt, note = rows["salt"], ""
        origin = salt or str(Path(path).resolve())  # which file a logged question came from
        with self.db.transaction() as conn:
            here = conn.execute("SELECT value FROM bot_meta WHERE key = 'salt'").fetchone()
            if salt and here and here[0] != salt:
                if conn.execute("SELECT count(*) FROM bot_votes").fetchone()[0] == 0:
                    # No vote here yet: take the file's salt, so its voters voting again replace their votes.
                    conn.execute("UPDATE bot_meta SET value = %s WHERE key = 'salt'", (salt,))
                    self._salt = salt
                else:
                    note = ("The database already had votes under its own salt: a user who voted in "
                            f"{Path(path).name} and votes again on the same answer counts twice.")
            cur = conn.cursor()
            added = {}
            text = self.log_questions
            added["answers"] = _insert_many(cur, "INSERT INTO bot_answers (qid, question, citations, shown, at) "
                                            "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (qid) DO NOTHING",
                                            [(q, question, Jsonb(json.loads(c or "[]")), shown or 0, _at(at))
                                             for q, question, at, c, shown in rows["answers"]])
            added["sent messages"] = _insert_many(
                cur, "INSERT INTO bot_sent (chat_id, message_id, qid, at) SELECT %s, %s, %s, %s "
                "WHERE EXISTS (SELECT 1 FROM bot_answers WHERE qid = %s) ON CONFLICT (chat_id, message_id) DO NOTHING",
                [(chat, message, qid, _at(at), qid) for chat, message, qid, at in rows["sent"]])
            added["votes"] = _insert_many(
                cur, "INSERT INTO bot_votes (qid, voter, vote, question, citations, chat_type, at) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (qid, voter) DO NOTHING",
                [(qid, voter, vote, question if text else None,
                  Jsonb(json.loads(citations)) if citations and text else None, chat_type, _at(at))
                 for qid, voter, vote, question, citations, chat_type, at in rows["votes"]])
            added["questions logged"] = _insert_many(
                cur, "INSERT INTO bot_asked (at, chat_type, question, abstained, origin) VALUES (%s, %s, %s, %s, %s) "
                "ON CONFLICT (origin) DO NOTHING",
                [(_at(at), chat_type, question if text else None, bool(abstained), f"bot.sqlite:{origin}:{rowid}")
                 for rowid, at, chat_type, question, abstained in rows["asked"]])
        return {"added": added, "read": {k: len(rows[v]) for k, v in (("answers", "answers"),
                ("sent messages", "sent"), ("votes", "votes"), ("questions logged", "asked"))}, "note": note}


def _insert_many(cursor, sql: str, rows: list[tuple]) -> int:
    """Rows inserted: executemany's rowcount is the sum, and ON CONFLICT DO NOTHING skips count nothing."""
    if not rows:
        return 0
    cursor.executemany(sql, rows)
    return cursor.rowcount


def _read_bot_sqlite(path: Path) -> dict:
    """Everything `db import` copies from a bot.sqlite, read without writing to it."""
    if not path.is_file():
        raise HistoryUnavailable(f"There is no bot memory to import at {path}.")
    try:
        src = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise HistoryUnavailable(f"The bot's memory {path} cannot be opened ({exc}).") from None
    try:
        (verdict,) = src.execute("PRAGMA quick_check").fetchone()
        if verdict != "ok":
            raise sqlite3.DatabaseError(verdict)
        tables = {r[0] for r in src.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}

        def rows(sql: str, *needs: str) -> list[tuple]:  # a table an older bot.sqlite lacks holds nothing
            return src.execute(sql).fetchall() if set(needs) <= tables else []

        salt = rows("SELECT value FROM meta WHERE key = 'salt'", "meta")
        answers = rows("SELECT q.id, coalesce(q.question, ''), q.at, c.citations, c.shown FROM questions q "
                       "LEFT JOIN cited c ON c.qid = q.id", "questions", "cited") or \
            rows("SELECT id, coalesce(question, ''), at, NULL, 0 FROM questions", "questions")
        return {"salt": salt[0][0] if salt else "", "answers": answers,
                "sent": rows("SELECT chat_id, message_id, qid, at FROM answers", "answers"),
                "votes": rows("SELECT qid, voter, vote, question, citations, chat_type, at FROM votes", "votes"),
                "asked": rows("SELECT rowid, at, chat_type, question, abstained FROM asked", "asked")}
    except sqlite3.DatabaseError as exc:
        log.info("bot memory %s: %r", path, exc)
        raise HistoryDamaged(f"The bot's memory {path} is damaged (it cannot be read as a database), so it "
                             "cannot be imported.") from None
    finally:
        src.close()


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
