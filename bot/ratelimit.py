"""Per-user question limits: a flooding user is told once, then ignored until the window passes.

UserRateLimiter counts in this process (one bot); PostgresRateLimiter counts in the database that
CITEBOT_DATABASE_URL names, so a user is limited across every replica. `make_limiter` chooses.
"""
from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from enum import Enum
from typing import TYPE_CHECKING, Protocol

from index.errors import CitebotError

if TYPE_CHECKING:
    from index.store.database import Database

log = logging.getLogger(__name__)


class Verdict(Enum):
    ALLOW = "allow"
    NOTIFY = "notify"  # the first refused question in a window: say why, once
    SILENT = "silent"  # further refused questions: say nothing


class RateLimiter(Protocol):
    """At most `limit` questions per user per `window` seconds."""

    limit: int
    window: float

    def check(self, user_id: int) -> Verdict: ...
    def retry_in(self, user_id: int) -> int: ...


def make_limiter(scope: str, limit: int, window: float, database: "Database | None" = None) -> RateLimiter:
    """A limiter for one kind of request (scope: "questions", "inline", "more"): in the database when
    one is given (shared by replicas), else in this process."""
    if database is not None:
        return PostgresRateLimiter(database, scope, limit, window)
    return UserRateLimiter(limit, window)


class UserRateLimiter:
    """At most `limit` questions per user in any `window` seconds (a sliding window), in this process."""

    def __init__(self, limit: int, window: float, clock=time.monotonic):
        self.limit = limit
        self.window = window
        self._clock = clock
        self._asked: dict[int, deque[float]] = {}
        self._notified: dict[int, float] = {}
        self._lock = threading.Lock()

    def check(self, user_id: int) -> Verdict:
        now = self._clock()
        with self._lock:
            asked = self._asked.setdefault(user_id, deque())
            while asked and now - asked[0] >= self.window:
                asked.popleft()
            if len(asked) < self.limit:
                asked.append(now)
                self._notified.pop(user_id, None)
                return Verdict.ALLOW
            if user_id in self._notified:
                return Verdict.SILENT
            self._notified[user_id] = now
            return Verdict.NOTIFY

    def retry_in(self, user_id: int) -> int:
        """Seconds until this user may ask again."""
        with self._lock:
            asked = self._asked.get(user_id)
            if not asked or len(asked) < self.limit:
                return 0
            return max(1, int(self.window - (self._clock() - asked[0]) + 0.999))


PRUNE_EVERY = 200  # checks between deletions of this scope's finished windows
WARN_EVERY_S = 60.0  # a database that cannot be reached is said once a minute, not once a question


class PostgresRateLimiter:
    """At most `limit` questions per user per window, counted in PostgreSQL: every replica adds to one
    count. Windows are fixed (they start at multiples of `window` seconds of the Unix epoch) and one
    statement (INSERT ... ON CONFLICT DO UPDATE ... RETURNING) counts a question and reads the count,
    so two replicas checking at once both see the other's question. The first question over the limit
    is told, the rest are not, until the next window. If the database cannot be reached the question
    is allowed (a limit must not stop the bot) and that is logged."""

    def __init__(self, db: "Database", scope: str, limit: int, window: float, clock=time.time):
        self.db = db
        self.scope = scope
        self.limit = limit
        self.window = window
        self._clock = clock  # wall-clock time: replicas on different machines share it, not a monotonic one
        self._checks = 0
        self._warned = -math.inf

    def _start(self, now: float) -> float:
        return math.floor(now / self.window) * self.window

    def check(self, user_id: int) -> Verdict:
        now = self._clock()
        start = self._start(now)
        self._checks += 1
        try:
            with self.db.connection() as conn:
                (count,) = conn.execute(
                    "INSERT INTO rate_limits AS r (scope, user_id, window_start, count) VALUES (%s, %s, %s, 1) "
                    "ON CONFLICT (scope, user_id, window_start) DO UPDATE SET count = r.count + 1 RETURNING r.count",
                    (self.scope, user_id, start)).fetchone()
                if self._checks % PRUNE_EVERY == 0:
                    conn.execute("DELETE FROM rate_limits WHERE scope = %s AND window_start < %s", (self.scope, start))
        except CitebotError as exc:
            self._warn(exc)
            return Verdict.ALLOW
        if count <= self.limit:
            return Verdict.ALLOW
        return Verdict.NOTIFY if count == self.limit + 1 else Verdict.SILENT

    def retry_in(self, user_id: int) -> int:
        now = self._clock()
        start = self._start(now)
        try:
            with self.db.connection() as conn:
                row = conn.execute("SELECT count FROM rate_limits WHERE scope = %s AND user_id = %s AND "
                                   "window_start = %s", (self.scope, user_id, start)).fetchone()
        except CitebotError as exc:
            self._warn(exc)
            return 0
        if row is None or row[0] < self.limit:
            return 0
        return max(1, int(start + self.window - now + 0.999))

    def _warn(self, exc: Exception) -> None:
        now = time.monotonic()
        if now - self._warned >= WARN_EVERY_S:
            self._warned = now
            log.warning("Rate limits are not applied while the database cannot be used: %s", exc)
