"""Followed topics: who follows what, which new articles still wait to be searched for them, and
which articles each topic has already been sent. In DATA_DIR/follows.sqlite (SqliteFollowStore), or
with CITEBOT_DATABASE_URL in PostgreSQL (PostgresFollowStore, migration 3), where every replica sees
every follow: `open_follows` chooses. Both are the `FollowStore` below, so the bot and the CLI do
not know which.

A refresh that added articles queues their files for every user with active follows (`queue`);
a delivery pass takes a user's queue (`take`: whoever takes it owns it, so two replicas never
deliver the same alert), searches each of their topics among those articles only, sends one
message, and records each (follow, article) sent (`mark_sent`), so an article is never sent twice
for the same topic. A user the bot can no longer reach (they blocked it) is paused: nothing is
queued for them until they use /follow or /following again.
"""
from __future__ import annotations

import logging
import sqlite3
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Protocol, Sequence

from index.errors import CitebotError

if TYPE_CHECKING:
    from index.store.database import Database

log = logging.getLogger(__name__)

MAX_TOPICS = 10  # per user
TOPIC_MIN, TOPIC_MAX = 3, 200  # characters
CONSOLE_USER = 0  # the console's user (`citebot follow`): Telegram's user ids are positive
FOLLOWS_FILE = "follows.sqlite"

SCHEMA = """
CREATE TABLE IF NOT EXISTS follows (
    id INTEGER PRIMARY KEY AUTOINCREMENT, user_id INTEGER NOT NULL, topic TEXT NOT NULL,
    paused INTEGER NOT NULL DEFAULT 0, at REAL NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS follows_topic ON follows (user_id, lower(topic));
CREATE TABLE IF NOT EXISTS follow_sent (
    follow_id INTEGER NOT NULL REFERENCES follows (id) ON DELETE CASCADE, doc_id TEXT NOT NULL, at REAL NOT NULL,
    PRIMARY KEY (follow_id, doc_id)
);
CREATE TABLE IF NOT EXISTS follow_pending (
    user_id INTEGER NOT NULL, path TEXT NOT NULL, at REAL NOT NULL, PRIMARY KEY (user_id, path)
);
"""


class FollowRefused(CitebotError, ValueError):
    """A follow that is not kept: too short, too long, one too many, or already followed (one sentence)."""


class FollowsUnavailable(CitebotError, RuntimeError):
    """follows.sqlite cannot be read or written just now; nothing half-written."""


@dataclass(frozen=True)
class Follow:
    id: int
    user_id: int
    topic: str


def clean_topic(topic: str) -> str:
    """The topic as kept: spaces collapsed; FollowRefused when too short or too long."""
    topic = " ".join((topic or "").split())
    if len(topic) < TOPIC_MIN:
        raise FollowRefused(f"A topic needs at least {TOPIC_MIN} characters, like: /follow copper prices")
    if len(topic) > TOPIC_MAX:
        raise FollowRefused(f"A topic can be at most {TOPIC_MAX} characters; yours has {len(topic)}.")
    return topic


def _too_many() -> FollowRefused:
    return FollowRefused(f"You already follow {MAX_TOPICS} topics, the most I keep; /unfollow one first.")


def _already(topic: str) -> FollowRefused:
    return FollowRefused(f"You already follow “{topic}”.")


class FollowStore(Protocol):
    """Follows, their queue of new articles and what was sent, whichever the store. Every method is
    one transaction; failures are CitebotError sentences."""

    def add(self, user_id: int, topic: str) -> Follow: ...
    def list(self, user_id: int) -> list[Follow]: ...
    def remove(self, user_id: int, n: int) -> Follow | None: ...
    def queue(self, paths: Sequence[str], user_id: int | None = None) -> int: ...
    def waiting(self, limit: int) -> list[int]: ...
    def take(self, user_id: int) -> list[str]: ...
    def unsent(self, follow_id: int, doc_ids: Sequence[str]) -> list[str]: ...
    def mark_sent(self, follow_id: int, doc_ids: Sequence[str]) -> None: ...
    def pause(self, user_id: int) -> int: ...
    def resume(self, user_id: int) -> int: ...
    def close(self) -> None: ...


def open_follows(data_dir: Path, database: "Database | str | None" = None) -> FollowStore:
    """The follows the settings name: in PostgreSQL when database is given (a Database, or a URL for
    the process's shared one), else DATA_DIR/follows.sqlite."""
    if database:
        from index.store.database import Database

        db = Database.shared(database) if isinstance(database, str) else database
        return PostgresFollowStore(db)
    return SqliteFollowStore(Path(data_dir) / FOLLOWS_FILE)


class SqliteFollowStore:
    """Follows in DATA_DIR/follows.sqlite. Thread-safe; one connection shared under a lock."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        with self._guard():
            self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=10)
            self._db.execute("PRAGMA foreign_keys = ON")
            self._db.executescript(SCHEMA)

    @contextmanager
    def _guard(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.IntegrityError:
            raise
        except sqlite3.Error as exc:
            log.warning("follows %s: %r", self.path, exc)
            raise FollowsUnavailable(f"The followed topics in {self.path} cannot be used just now ({exc}); "
                                     "nothing was half-written.") from None

    def add(self, user_id: int, topic: str) -> Follow:
        topic = clean_topic(topic)
        with self._guard(), self._lock, self._db:
            self._db.execute("UPDATE follows SET paused = 0 WHERE user_id = ?", (user_id,))
            (n,) = self._db.execute("SELECT count(*) FROM follows WHERE user_id = ?", (user_id,)).fetchone()
            same = self._db.execute("SELECT topic FROM follows WHERE user_id = ? AND lower(topic) = lower(?)",
                                    (user_id, topic)).fetchone()
            if same:
                raise _already(same[0])
            if n >= MAX_TOPICS:
                raise _too_many()
            cur = self._db.execute("INSERT INTO follows (user_id, topic, at) VALUES (?, ?, ?)",
                                   (user_id, topic, time.time()))
            return Follow(cur.lastrowid, user_id, topic)

    def list(self, user_id: int) -> list[Follow]:
        with self._guard(), self._lock:
            rows = self._db.execute("SELECT id, topic FROM follows WHERE user_id = ? ORDER BY id",
                                    (user_id,)).fetchall()
        return [Follow(i, user_id, t) for i, t in rows]

    def remove(self, user_id: int, n: int) -> Follow | None:
        """The user's n-th follow (1-based, as `list` numbers them), removed; None when there is none."""
        with self._guard(), self._lock, self._db:
            rows = self._db.execute("SELECT id, topic FROM follows WHERE user_id = ? ORDER BY id",
                                    (user_id,)).fetchall()
            if not 1 <= n <= len(rows):
                return None
            fid, topic = rows[n - 1]
            self._db.execute("DELETE FROM follows WHERE id = ?", (fid,))
            if len(rows) == 1:
                self._db.execute("DELETE FROM follow_pending WHERE user_id = ?", (user_id,))
        return Follow(fid, user_id, topic)

    def queue(self, paths: Sequence[str], user_id: int | None = None) -> int:
        """New articles' files, queued for every user with active follows (or only user_id);
        returns how many users."""
        if not paths:
            return 0
        now = time.time()
        with self._guard(), self._lock, self._db:
            users = [u for (u,) in self._db.execute(
                "SELECT DISTINCT user_id FROM follows WHERE paused = 0" + (" AND user_id = ?" if user_id is not None
                                                                           else ""),
                () if user_id is None else (user_id,))]
            self._db.executemany("INSERT OR IGNORE INTO follow_pending VALUES (?, ?, ?)",
                                 [(u, p, now) for u in users for p in dict.fromkeys(paths)])
        return len(users)

    def waiting(self, limit: int) -> list[int]:
        """Users with queued articles, those waiting longest first."""
        with self._guard(), self._lock:
            return [u for (u,) in self._db.execute(
                "SELECT user_id FROM follow_pending GROUP BY user_id ORDER BY min(at), user_id LIMIT ?", (limit,))]

    def take(self, user_id: int) -> list[str]:
        """A user's queued files, removed from the queue: whoever takes them delivers them."""
        with self._guard(), self._lock, self._db:
            paths = [p for (p,) in self._db.execute(
                "SELECT path FROM follow_pending WHERE user_id = ? ORDER BY at, path", (user_id,))]
            self._db.execute("DELETE FROM follow_pending WHERE user_id = ?", (user_id,))
        return paths

    def unsent(self, follow_id: int, doc_ids: Sequence[str]) -> list[str]:
        """doc_ids not yet sent for this follow, in their order."""
        with self._guard(), self._lock:
            sent = {d for (d,) in self._db.execute("SELECT doc_id FROM follow_sent WHERE follow_id = ?", (follow_id,))}
        return [d for d in dict.fromkeys(doc_ids) if d not in sent]

    def mark_sent(self, follow_id: int, doc_ids: Sequence[str]) -> None:
        now = time.time()
        with self._guard(), self._lock, self._db:
            if self._db.execute("SELECT 1 FROM follows WHERE id = ?", (follow_id,)).fetchone():
                self._db.executemany("INSERT OR IGNORE INTO follow_sent VALUES (?, ?, ?)",
                                     [(follow_id, d, now) for d in doc_ids])

    def pause(self, user_id: int) -> int:
        """Stop queueing for a user (they blocked the bot); returns their follows paused."""
        with self._guard(), self._lock, self._db:
            self._db.execute("DELETE FROM follow_pending WHERE user_id = ?", (user_id,))
            return self._db.execute("UPDATE follows SET paused = 1 WHERE user_id = ? AND paused = 0",
                                    (user_id,)).rowcount

    def resume(self, user_id: int) -> int:
        with self._guard(), self._lock, self._db:
            return self._db.execute("UPDATE follows SET paused = 0 WHERE user_id = ? AND paused = 1",
                                    (user_id,)).rowcount

    def close(self) -> None:
        with self._lock:
            self._db.close()


class PostgresFollowStore:
    """Follows in PostgreSQL (CITEBOT_DATABASE_URL, migration 3), shared by every replica. A user's
    adds are serialised by an advisory lock on their id, so the cap holds across replicas; `take`
    is one DELETE ... RETURNING, so exactly one replica delivers each queued article."""

    def __init__(self, db: "Database", own: bool = False):
        self.db = db
        self._own = own

    def add(self, user_id: int, topic: str) -> Follow:
        topic = clean_topic(topic)
        with self.db.transaction() as conn:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (user_id,))
            conn.execute("UPDATE follows SET paused = false WHERE user_id = %s", (user_id,))
            (n,) = conn.execute("SELECT count(*) FROM follows WHERE user_id = %s", (user_id,)).fetchone()
            same = conn.execute("SELECT topic FROM follows WHERE user_id = %s AND lower(topic) = lower(%s)",
                                (user_id, topic)).fetchone()
            if same:
                raise _already(same[0])
            if n >= MAX_TOPICS:
                raise _too_many()
            (fid,) = conn.execute("INSERT INTO follows (user_id, topic) VALUES (%s, %s) RETURNING id",
                                  (user_id, topic)).fetchone()
        return Follow(fid, user_id, topic)

    def list(self, user_id: int) -> list[Follow]:
        with self.db.connection() as conn:
            rows = conn.execute("SELECT id, topic FROM follows WHERE user_id = %s ORDER BY id", (user_id,)).fetchall()
        return [Follow(i, user_id, t) for i, t in rows]

    def remove(self, user_id: int, n: int) -> Follow | None:
        with self.db.transaction() as conn:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (user_id,))
            rows = conn.execute("SELECT id, topic FROM follows WHERE user_id = %s ORDER BY id", (user_id,)).fetchall()
            if not 1 <= n <= len(rows):
                return None
            fid, topic = rows[n - 1]
            conn.execute("DELETE FROM follows WHERE id = %s", (fid,))  # and its follow_sent rows (cascade)
            if len(rows) == 1:
                conn.execute("DELETE FROM follow_pending WHERE user_id = %s", (user_id,))
        return Follow(fid, user_id, topic)

    def queue(self, paths: Sequence[str], user_id: int | None = None) -> int:
        if not paths:
            return 0
        with self.db.transaction() as conn:
            users = [u for (u,) in conn.execute(
                "SELECT DISTINCT user_id FROM follows WHERE NOT paused" + (" AND user_id = %s" if user_id is not None
                                                                           else ""),
                () if user_id is None else (user_id,)).fetchall()]
            if users:
                conn.execute("INSERT INTO follow_pending (user_id, path) SELECT u, p FROM unnest(%s::bigint[]) u "
                             "CROSS JOIN unnest(%s::text[]) p ON CONFLICT DO NOTHING",
                             (users, list(dict.fromkeys(paths))))
        return len(users)

    def waiting(self, limit: int) -> list[int]:
        with self.db.connection() as conn:
            return [u for (u,) in conn.execute(
                "SELECT user_id FROM follow_pending GROUP BY user_id ORDER BY min(at), user_id LIMIT %s",
                (limit,)).fetchall()]

    def take(self, user_id: int) -> list[str]:
        with self.db.transaction() as conn:
            rows = conn.execute("DELETE FROM follow_pending WHERE user_id = %s RETURNING path, at",
                                (user_id,)).fetchall()
        return [p for p, _ in sorted(rows, key=lambda r: (r[1], r[0]))]

    def unsent(self, follow_id: int, doc_ids: Sequence[str]) -> list[str]:
        with self.db.connection() as conn:
            sent = {d for (d,) in conn.execute("SELECT doc_id FROM follow_sent WHERE follow_id = %s AND "
                                               "doc_id = ANY(%s)", (follow_id, list(doc_ids))).fetchall()}
        return [d for d in dict.fromkeys(doc_ids) if d not in sent]

    def mark_sent(self, follow_id: int, doc_ids: Sequence[str]) -> None:
        with self.db.transaction() as conn:
            conn.execute("INSERT INTO follow_sent (follow_id, doc_id) SELECT f.id, d FROM follows f "
                         "CROSS JOIN unnest(%s::text[]) d WHERE f.id = %s ON CONFLICT DO NOTHING",
                         (list(doc_ids), follow_id))

    def pause(self, user_id: int) -> int:
        with self.db.transaction() as conn:
            conn.execute("DELETE FROM follow_pending WHERE user_id = %s", (user_id,))
            return conn.execute("UPDATE follows SET paused = true WHERE user_id = %s AND NOT paused",
                                (user_id,)).rowcount

    def resume(self, user_id: int) -> int:
        with self.db.transaction() as conn:
            return conn.execute("UPDATE follows SET paused = false WHERE user_id = %s AND paused",
                                (user_id,)).rowcount

    def close(self) -> None:
        if self._own:
            self.db.close()


def import_follows(path: Path, store: FollowStore) -> dict:
    """`citebot db import`: the topics of a follows.sqlite, with what each was sent and what waits,
    into store (the database's). A topic already there is kept as it is: importing twice adds nothing."""
    import sqlite3

    read = {"topics": 0, "articles sent": 0}
    added = dict.fromkeys(read, 0)
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        follows = db.execute("SELECT id, user_id, topic, paused FROM follows ORDER BY id").fetchall()
        sent = db.execute("SELECT follow_id, doc_id FROM follow_sent").fetchall()
        pending = db.execute("SELECT user_id, path FROM follow_pending").fetchall()
    finally:
        db.close()
    paused = {user for _, user, _, p in follows if p}
    for old_id, user, topic, _ in follows:
        read["topics"] += 1
        docs = [doc for follow, doc in sent if follow == old_id]
        read["articles sent"] += len(docs)
        try:
            follow = store.add(user, topic)
        except FollowRefused:  # there already (or over the cap there): its record stays as it is
            continue
        added["topics"] += 1
        fresh = store.unsent(follow.id, docs)
        store.mark_sent(follow.id, fresh)
        added["articles sent"] += len(fresh)
    for user in {u for u, _ in pending}:  # queued again: a path already waiting is not queued twice
        store.queue([p for u, p in pending if u == user], user_id=user)
    for user in paused:
        store.pause(user)
    note = f"{len(pending)} new article(s) waiting for their alerts were queued again." if pending else ""
    return {"read": read, "added": added, "note": note}
