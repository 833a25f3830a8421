"""The bot's state in either store, for tests that run once against SQLite and once against
PostgreSQL (the `backend` fixture in conftest.py): the same calls, the same expectations."""
from __future__ import annotations

from pathlib import Path


class StateBackend:
    """Stores of one kind over one place: SQLite files in a folder, or one PostgreSQL database. Each
    PostgreSQL store gets a Database (a pool) of its own, as a replica in another process would."""

    def __init__(self, kind: str, folder: Path, url: str = ""):
        self.kind = kind
        self.folder = Path(folder)
        self.url = url
        self._opened = []

    def __repr__(self) -> str:
        return self.kind

    @property
    def postgres(self) -> bool:
        return self.kind == "postgres"

    def database(self):
        from index.store.database import Database

        db = Database(self.url).open()
        self._opened.append(db)
        return db

    def history(self, **settings):
        from bot.history import PostgresHistory, SqliteHistory

        if self.postgres:
            return PostgresHistory(self.database(), **settings)
        return SqliteHistory(self.folder / "bot.sqlite", **settings)

    def feed_store(self):
        from index.news.feeds import PostgresFeedStore, SqliteFeedStore

        return PostgresFeedStore(self.database()) if self.postgres else SqliteFeedStore(self.folder / "feeds.sqlite")

    def follows(self):
        from bot.follows import PostgresFollowStore, SqliteFollowStore

        return PostgresFollowStore(self.database()) if self.postgres else SqliteFollowStore(self.folder / "follows.sqlite")

    def limiter(self, limit: int, window: float, clock, scope: str = "questions"):
        from bot.ratelimit import PostgresRateLimiter, UserRateLimiter

        if self.postgres:
            return PostgresRateLimiter(self.database(), scope, limit, window, clock=clock)
        return UserRateLimiter(limit, window, clock=clock)

    def close(self) -> None:
        for db in self._opened:
            db.close()
