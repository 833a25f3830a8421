"""Per-user question limits: a flooding user is told once, then ignored until the window passes."""
from __future__ import annotations

import threading
import time
from collections import deque
from enum import Enum


class Verdict(Enum):
    ALLOW = "allow"
    NOTIFY = "notify"  # the first refused question in a window: say why, once
    SILENT = "silent"  # further refused questions: say nothing


class UserRateLimiter:
    """At most `limit` questions per user in any `window` seconds (a sliding window)."""

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
