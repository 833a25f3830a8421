"""Feeds and the items taken from them, and pages turned into article files the corpus loader reads.

A `FeedStore` remembers feeds and the items already taken from them: in DATA_DIR/feeds.sqlite
(SqliteFeedStore), or with CITEBOT_DATABASE_URL in PostgreSQL (PostgresFeedStore), shared by every
replica; `open_feed_store` chooses. `add_url` fetches one page and
`refresh_feeds` every feed, writing each new article as corpus_dir/fetched/<site>/<date>-<slug>.json
with the keys index/ingest/documents.py reads (title, text, url, source, published, fetched_at).
"""
from __future__ import annotations

import json
import logging
import os
import re
import sqlite3
import tempfile
import threading
import unicodedata
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

import feedparser
import lxml.etree
import lxml.html
import trafilatura

from ..ingest.documents import iso_date, text_key, web_address
from ..errors import CitebotError, DiskFull, FetchError, is_disk_full
from .fetch import Fetched, Fetcher, host_of

if TYPE_CHECKING:
    from ..config import Settings
    from ..store.database import Database

log = logging.getLogger(__name__)

FEEDS_FILE = "feeds.sqlite"
MIN_SUMMARY_WORDS = 40
MAX_SLUG = 60


class FeedStoreError(CitebotError, RuntimeError):
    """The feed database cannot be opened or used."""


class NoArticleText(CitebotError, ValueError):
    """A page has no article text that can be extracted."""


SCHEMA = """
CREATE TABLE IF NOT EXISTS feeds (
    url TEXT PRIMARY KEY,
    title TEXT NOT NULL DEFAULT '',
    added_at TEXT NOT NULL DEFAULT '',
    etag TEXT NOT NULL DEFAULT '',
    last_modified TEXT NOT NULL DEFAULT '',
    last_fetched TEXT NOT NULL DEFAULT '',
    last_items INTEGER NOT NULL DEFAULT 0,
    last_new INTEGER NOT NULL DEFAULT 0,
    last_error TEXT NOT NULL DEFAULT '',
    items_at TEXT NOT NULL DEFAULT '',
    error_at TEXT NOT NULL DEFAULT '',
    last_status TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS items (
    key TEXT PRIMARY KEY,
    feed_url TEXT NOT NULL DEFAULT '',
    url TEXT NOT NULL DEFAULT '',
    content_hash TEXT NOT NULL DEFAULT '',
    path TEXT NOT NULL DEFAULT '',
    added_at TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS items_hash ON items(content_hash);
CREATE TABLE IF NOT EXISTS failures (
    key TEXT PRIMARY KEY,
    tries INTEGER NOT NULL DEFAULT 0,
    last_error TEXT NOT NULL DEFAULT ''
);
"""
MAX_ITEM_TRIES = 3  # an item whose article cannot be had is tried on this many refreshes, then left
MAX_FEED_ITEMS = 100  # new items taken from one feed in one refresh (Settings.max_feed_items)


def _utc_iso(now: datetime | None = None) -> str:
    now = now or datetime.now(timezone.utc)
    if now.tzinfo is None:
        now = now.replace(tzinfo=timezone.utc)
    return now.astimezone(timezone.utc).isoformat(timespec="seconds")


def validate_url(url: str) -> str:
    """The URL stripped, if it is an absolute http/https address; FetchError otherwise."""
    url = (url or "").strip()
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        raise FetchError(f"{url} is not a valid web address.") from None
    if parts.scheme.lower() not in ("http", "https") or not host:
        raise FetchError(f"{url or 'An empty address'} is not an http or https address.")
    return url


def canonical_key(url: str) -> str:
    """The URL as an item key: stripped, without its #fragment."""
    return url.strip().split("#", 1)[0]


def content_hash(text: str) -> str:
    """The key copies of one article share (index.ingest.documents.text_key), of the text stripped."""
    return text_key(text.strip())


@dataclass
class FeedState:
    url: str
    title: str = ""
    added_at: str = ""
    etag: str = ""
    last_modified: str = ""
    last_fetched: str = ""
    last_items: int = 0
    last_new: int = 0
    last_error: str = ""
    # A "not modified" fetch or an error keeps these: the last fetch that returned items (last_items,
    # last_new) and the last error, each with its time.
    items_at: str = ""
    error_at: str = ""
    last_status: str = ""  # what the last fetch gave: "items", "not modified" or "failed"


FEED_COLUMNS = ("url", "title", "added_at", "etag", "last_modified", "last_fetched", "last_items",
                "last_new", "last_error", "items_at", "error_at", "last_status")


class FeedStore(Protocol):
    """Feeds and the items already taken from them, whichever the store. Each call is one
    transaction; failures are CitebotError sentences."""

    def add(self, url: str, title: str = "") -> bool: ...
    def remove(self, url: str) -> bool: ...
    def list(self) -> list[FeedState]: ...
    def get(self, url: str) -> FeedState | None: ...
    def record_fetch(self, url: str, *, etag: str, last_modified: str, items: int | None, new: int,
                     error: str, title: str | None = None, fetched_at: str | None = None) -> None: ...
    def known(self, key: str) -> bool: ...
    def known_hash(self, content_hash: str) -> bool: ...
    def failed(self, key: str, error: str) -> int: ...
    def tries(self, key: str) -> int: ...
    def remember(self, keys: str | list[str], feed_url: str, url: str, content_hash: str, path: str) -> None: ...
    def close(self) -> None: ...
    def __enter__(self) -> "FeedStore": ...
    def __exit__(self, *exc_info: object) -> None: ...


def open_feed_store(settings: "Settings") -> FeedStore:
    """The feeds the settings name: PostgreSQL when CITEBOT_DATABASE_URL is set (the process's shared
    pool), else DATA_DIR/feeds.sqlite."""
    if settings.database_url:
        from ..store.database import Database

        return PostgresFeedStore(Database.shared(settings.database_url))
    return SqliteFeedStore(settings.data_dir / FEEDS_FILE)


def _fetch_sets(etag: str, last_modified: str, items: int | None, new: int, error: str, title: str | None,
                fetched_at: str | None, mark: str) -> tuple[str, list]:
    """record_fetch's SET clause and its arguments, the same for either store (mark: ? or %s)."""
    at = fetched_at or _utc_iso()
    status = "failed" if error else "not modified" if items is None else "items"
    sets, args = ["etag = ?", "last_modified = ?", "last_fetched = ?", "title = COALESCE(?, title)",
                  "last_status = ?"], [etag, last_modified, at, title, status]
    if items is not None:
        sets.append("last_items = ?, last_new = ?, items_at = ?")
        args += [items, new, at]
    if error:
        sets.append("last_error = ?, error_at = ?")
        args += [error, at]
    return ", ".join(sets).replace("?", mark), args


def _item_rows(keys: str | list[str], feed_url: str, url: str, content_hash: str, path: str) -> list[tuple]:
    now = _utc_iso()
    return [(canonical_key(k), feed_url, url, content_hash, str(path), now)
            for k in dict.fromkeys([keys] if isinstance(keys, str) else keys) if k.strip()]


class SqliteFeedStore:
    """Feeds and items already taken, in SQLite (normally DATA_DIR/feeds.sqlite). Thread-safe."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(self.path), check_same_thread=False)
            self._db.executescript(SCHEMA)
            have = {row[1] for row in self._db.execute("PRAGMA table_info(feeds)")}
            if "items_at" not in have:  # a feeds.sqlite from before the times were kept
                self._db.executescript(
                    "ALTER TABLE feeds ADD COLUMN items_at TEXT NOT NULL DEFAULT '';"
                    "ALTER TABLE feeds ADD COLUMN error_at TEXT NOT NULL DEFAULT '';"
                    "ALTER TABLE feeds ADD COLUMN last_status TEXT NOT NULL DEFAULT '';"
                    "UPDATE feeds SET items_at = last_fetched WHERE last_items > 0;"
                    "UPDATE feeds SET error_at = last_fetched, last_status = 'failed' WHERE last_error != '';")
            self._db.commit()
        except (sqlite3.DatabaseError, OSError) as exc:
            if is_disk_full(exc):
                log.info("cannot create feed database %s: %r", self.path, exc)
                raise self._full() from None
            log.error("cannot open feed database %s: %r", self.path, exc)
            raise FeedStoreError(f"The feed database {self.path} cannot be opened; move it "
                                 "away and add the feeds again.") from None

    def _full(self) -> DiskFull:
        # The database is fine; the disk is not: moving it away would be the wrong advice.
        return DiskFull(f"The disk holding {self.path.parent} is full, so the feed database {self.path.name} "
                        "cannot be written; free some space and try again.")

    def __enter__(self) -> "SqliteFeedStore":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _run(self, sql: str, args: tuple = (), many: bool = False) -> sqlite3.Cursor:
        """One statement (or one statement over many rows, `many`) in one transaction."""
        with self._lock:
            try:
                cursor = self._db.executemany(sql, args) if many else self._db.execute(sql, args)
                self._db.commit()
                return cursor
            except sqlite3.DatabaseError as exc:
                if self._db.in_transaction:
                    self._db.rollback()
                if is_disk_full(exc):
                    log.info("feed database %s: %r on %s", self.path, exc, sql)
                    raise self._full() from None
                log.error("feed database %s: %r on %s", self.path, exc, sql)
                raise FeedStoreError(f"The feed database {self.path} cannot be used; move it "
                                     "away and add the feeds again.") from None

    def add(self, url: str, title: str = "") -> bool:
        url = validate_url(url)
        cursor = self._run("INSERT OR IGNORE INTO feeds(url, title, added_at) VALUES (?, ?, ?)",
                           (url, title, _utc_iso()))
        return cursor.rowcount > 0

    def remove(self, url: str) -> bool:
        return self._run("DELETE FROM feeds WHERE url = ?", (url.strip(),)).rowcount > 0

    def list(self) -> list[FeedState]:
        rows = self._run(f"SELECT {', '.join(FEED_COLUMNS)} FROM feeds ORDER BY added_at, url")
        return [FeedState(*row) for row in rows.fetchall()]

    def get(self, url: str) -> FeedState | None:
        row = self._run(f"SELECT {', '.join(FEED_COLUMNS)} FROM feeds WHERE url = ?",
                        (url.strip(),)).fetchone()
        return FeedState(*row) if row else None

    def record_fetch(self, url: str, *, etag: str, last_modified: str, items: int | None, new: int,
                     error: str, title: str | None = None, fetched_at: str | None = None) -> None:
        """A fetch of the feed: items None (not modified, failed) keeps the last items, and no
        error keeps the last error, each with its time."""
        sets, args = _fetch_sets(etag, last_modified, items, new, error, title, fetched_at, "?")
        self._run(f"UPDATE feeds SET {sets} WHERE url = ?", (*args, url))

    def known(self, key: str) -> bool:
        return self._run("SELECT 1 FROM items WHERE key = ?", (canonical_key(key),)).fetchone() is not None

    def known_hash(self, content_hash: str) -> bool:
        return self._run("SELECT 1 FROM items WHERE content_hash = ?",
                         (content_hash,)).fetchone() is not None

    def failed(self, key: str, error: str) -> int:
        """Count one more failed try of an item; returns the tries so far."""
        self._run("INSERT INTO failures(key, tries, last_error) VALUES (?, 1, ?) ON CONFLICT(key) DO UPDATE "
                  "SET tries = tries + 1, last_error = excluded.last_error", (canonical_key(key), error))
        return self.tries(key)

    def tries(self, key: str) -> int:
        row = self._run("SELECT tries FROM failures WHERE key = ?", (canonical_key(key),)).fetchone()
        return row[0] if row else 0

    def remember(self, keys: str | list[str], feed_url: str, url: str, content_hash: str, path: str) -> None:
        """Record an item as taken under each of its keys, all or none."""
        self._run("INSERT OR REPLACE INTO items(key, feed_url, url, content_hash, path, added_at) "
                  "VALUES (?, ?, ?, ?, ?, ?)", _item_rows(keys, feed_url, url, content_hash, path), many=True)


class PostgresFeedStore:
    """Feeds and items already taken, in PostgreSQL (CITEBOT_DATABASE_URL), shared by every replica:
    an item one replica took is known to all. Each call is one transaction. Thread-safe."""

    def __init__(self, db: "Database", own: bool = False) -> None:
        """own: close() closes db too (the bot's and the commands' stores share the process's pool)."""
        self.db = db
        self.where = db.where
        self._own = own

    def __enter__(self) -> "PostgresFeedStore":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        if self._own:
            self.db.close()

    def _one(self, sql: str, args: tuple = ()) -> tuple | None:
        with self.db.connection() as conn:
            return conn.execute(sql, args).fetchone()

    def add(self, url: str, title: str = "") -> bool:
        url = validate_url(url)
        with self.db.connection() as conn:
            cursor = conn.execute("INSERT INTO feeds (url, title, added_at) VALUES (%s, %s, %s) "
                                  "ON CONFLICT (url) DO NOTHING", (url, title, _utc_iso()))
            return cursor.rowcount > 0

    def remove(self, url: str) -> bool:
        with self.db.connection() as conn:
            return conn.execute("DELETE FROM feeds WHERE url = %s", (url.strip(),)).rowcount > 0

    def list(self) -> list[FeedState]:
        with self.db.connection() as conn:
            rows = conn.execute(f"SELECT {', '.join(FEED_COLUMNS)} FROM feeds ORDER BY added_at, url").fetchall()
        return [FeedState(*row) for row in rows]

    def get(self, url: str) -> FeedState | None:
        row = self._one(f"SELECT {', '.join(FEED_COLUMNS)} FROM feeds WHERE url = %s", (url.strip(),))
        return FeedState(*row) if row else None

    def record_fetch(self, url: str, *, etag: str, last_modified: str, items: int | None, new: int,
                     error: str, title: str | None = None, fetched_at: str | None = None) -> None:
        sets, args = _fetch_sets(etag, last_modified, items, new, error, title, fetched_at, "%s")
        with self.db.connection() as conn:
            conn.execute(f"UPDATE feeds SET {sets} WHERE url = %s", (*args, url))

    def known(self, key: str) -> bool:
        return self._one("SELECT 1 FROM feed_items WHERE key = %s", (canonical_key(key),)) is not None

    def known_hash(self, content_hash: str) -> bool:
        return self._one("SELECT 1 FROM feed_items WHERE content_hash = %s LIMIT 1", (content_hash,)) is not None

    def failed(self, key: str, error: str) -> int:
        (tries,) = self._one(
            "INSERT INTO feed_failures AS f (key, tries, last_error) VALUES (%s, 1, %s) ON CONFLICT (key) DO UPDATE "
            "SET tries = f.tries + 1, last_error = excluded.last_error RETURNING f.tries", (canonical_key(key), error))
        return tries

    def tries(self, key: str) -> int:
        row = self._one("SELECT tries FROM feed_failures WHERE key = %s", (canonical_key(key),))
        return row[0] if row else 0

    def remember(self, keys: str | list[str], feed_url: str, url: str, content_hash: str, path: str) -> None:
        """Record an item as taken under each of its keys, all or none (one transaction)."""
        rows = _item_rows(keys, feed_url, url, content_hash, path)
        if not rows:
            return
        with self.db.transaction() as conn:
            conn.cursor().executemany(
                "INSERT INTO feed_items (key, feed_url, url, content_hash, path, added_at) "
                "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (key) DO UPDATE SET feed_url = excluded.feed_url, "
                "url = excluded.url, content_hash = excluded.content_hash, path = excluded.path, "
                "added_at = excluded.added_at", rows)

    def import_sqlite(self, path: Path) -> dict:
        """Copy a feeds.sqlite into the database in one transaction: feeds (with their fetch state),
        items taken and items that failed. Rows already here stay as they are, so a second import
        adds nothing. Returns the rows added and read per table."""
        read = _read_feeds_sqlite(Path(path))
        added = {}
        with self.db.transaction() as conn:
            cur = conn.cursor()
            for table, columns, key in (("feeds", FEED_COLUMNS, "url"), ("feed_items", ITEM_COLUMNS, "key"),
                                        ("feed_failures", FAILURE_COLUMNS, "key")):
                rows = read[table]
                if rows:
                    cur.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES "
                                    f"({', '.join(['%s'] * len(columns))}) ON CONFLICT ({key}) DO NOTHING", rows)
                added[table] = cur.rowcount if rows else 0
        return {"added": added, "read": {table: len(rows) for table, rows in read.items()}}


ITEM_COLUMNS = ("key", "feed_url", "url", "content_hash", "path", "added_at")
FAILURE_COLUMNS = ("key", "tries", "last_error")


def _read_feeds_sqlite(path: Path) -> dict[str, list[tuple]]:
    """The rows of a feeds.sqlite, read without writing to it (one from before the fetch times were
    kept gets them as SqliteFeedStore would give them)."""
    if not path.is_file():
        raise FeedStoreError(f"There is no feed database to import at {path}.")
    try:
        src = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            have = {row[1] for row in src.execute("PRAGMA table_info(feeds)")}
            if not have:
                raise sqlite3.DatabaseError("no feeds table")
            defaults = {"items_at": "CASE WHEN last_items > 0 THEN last_fetched ELSE '' END",
                        "error_at": "CASE WHEN last_error != '' THEN last_fetched ELSE '' END",
                        "last_status": "CASE WHEN last_error != '' THEN 'failed' ELSE '' END"}
            columns = ", ".join(c if c in have else defaults[c] for c in FEED_COLUMNS)
            tables = {r[0] for r in src.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            return {
                "feeds": src.execute(f"SELECT {columns} FROM feeds").fetchall(),
                "feed_items": src.execute(f"SELECT {', '.join(ITEM_COLUMNS)} FROM items").fetchall()
                if "items" in tables else [],
                "feed_failures": src.execute(f"SELECT {', '.join(FAILURE_COLUMNS)} FROM failures").fetchall()
                if "failures" in tables else [],
            }
        finally:
            src.close()
    except sqlite3.DatabaseError as exc:
        log.info("feed database %s: %r", path, exc)
        raise FeedStoreError(f"The feed database {path} cannot be read, so it cannot be imported.") from None


# -- articles -------------------------------------------------------------------------------------

@dataclass
class PageArticle:
    title: str
    text: str
    url: str
    source: str = ""
    published: str = ""


def extract_article(html: bytes | str, url: str) -> PageArticle:
    """The page's main text and metadata; NoArticleText when it has none."""
    try:
        doc = trafilatura.bare_extraction(html, url=url, with_metadata=True, include_comments=False,
                                          include_tables=False, favor_precision=True)
    except Exception as exc:  # trafilatura/lxml raise many things on odd markup
        log.info("extraction failed for %s: %r", url, exc)
        doc = None
    text = (getattr(doc, "text", None) or "").strip() if doc is not None else ""
    if not text:
        raise NoArticleText(f"No article text found at {url}.")
    canonical = (getattr(doc, "url", None) or "").strip()
    if not canonical.lower().startswith(("http://", "https://")):
        canonical = url
    source = (getattr(doc, "sitename", None) or getattr(doc, "hostname", None) or host_of(canonical))
    return PageArticle(title=(getattr(doc, "title", None) or "").strip(), text=text,
                       url=canonical, source=str(source).strip(),
                       published=iso_date(getattr(doc, "date", None)))


def slugify(title: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode().lower()
    slug = ""
    for word in re.findall(r"[a-z0-9]+", ascii_text):
        candidate = f"{slug}-{word}" if slug else word
        if len(candidate) > MAX_SLUG:
            if not slug:
                slug = word[:MAX_SLUG]
            break
        slug = candidate
    return slug or "article"


def _site_dir(url: str) -> str:
    site = re.sub(r"[^a-z0-9.-]", "-", host_of(url)).strip(".-")
    return site or "unknown"


def _same_article(path: Path, url: str) -> bool:
    try:
        return json.loads(path.read_text(encoding="utf-8")).get("url") == url
    except (OSError, ValueError, AttributeError):
        return False


def _corpus_full(corpus_dir: Path) -> DiskFull:
    return DiskFull(f"The disk holding {corpus_dir} is full, so a new article cannot be written; "
                    "free some space and try again.")


def write_article(corpus_dir: Path, article: PageArticle, fetched_at: datetime) -> Path:
    """Write the article atomically as corpus_dir/fetched/<site>/<date>-<slug>.json; its path."""
    folder = Path(corpus_dir) / "fetched" / _site_dir(article.url)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        if is_disk_full(exc):
            raise _corpus_full(corpus_dir) from None
        raise
    date = article.published or fetched_at.date().isoformat()
    stem = f"{date}-{slugify(article.title)}"
    path = folder / f"{stem}.json"
    n = 2
    while path.exists() and not _same_article(path, article.url):
        path = folder / f"{stem}-{n}.json"
        n += 1
    payload = {"title": plain(article.title, one_line=True), "text": plain(article.text),
               "url": web_address(article.url), "source": plain(article.source, one_line=True),
               "published": article.published, "fetched_at": _utc_iso(fetched_at)}
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".json")
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(payload, out, ensure_ascii=False, indent=1)
        os.replace(tmp, path)
    except BaseException as exc:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass
        if is_disk_full(exc):
            raise _corpus_full(corpus_dir) from None
        raise
    return path


# -- adding pages and refreshing feeds ------------------------------------------------------------

@dataclass
class AddResult:
    url: str
    added: bool
    path: str = ""
    reason: str = ""     # why nothing was added: "already known", "same text as a known article"
    title: str = ""


def _store_article(article: PageArticle, key: str, feed_url: str, corpus_dir: Path,
                   store: FeedStore, now: datetime) -> tuple[Path | None, str]:
    """Write and remember the article unless known; (path, '') or (None, reason)."""
    digest = content_hash(article.text)
    if (article.url and store.known(article.url)) or store.known(key):
        return None, "already known"
    if store.known_hash(digest):
        store.remember(key, feed_url, article.url, digest, "")
        return None, "same text as a known article"
    path = write_article(corpus_dir, article, now)
    try:
        store.remember([key, article.url], feed_url, article.url, digest, str(path))
    except BaseException:
        # An article on disk but not recorded would be fetched and written again, and its record
        # would disagree with the corpus: without its record it goes.
        path.unlink(missing_ok=True)
        raise
    return path, ""


def add_url(url: str, corpus_dir: Path, store: FeedStore, fetcher: Fetcher,
            now: datetime | None = None) -> AddResult:
    """Fetch one page and add it to the corpus unless its URL or text is already there.

    Raises FetchError or NoArticleText (both CitebotError) when the page cannot be used."""
    now = now or datetime.now(timezone.utc)
    url = validate_url(url)
    if store.known(url):
        return AddResult(url, False, reason="already known")
    fetched = fetcher.get(url, kinds=("html",))
    article = extract_article(fetched.body, fetched.url)
    path, reason = _store_article(article, url, "", corpus_dir, store, now)
    if path is None:
        return AddResult(article.url, False, reason=reason, title=article.title)
    log.info("added %s as %s", article.url, path)
    return AddResult(article.url, True, path=str(path), title=article.title)


@dataclass
class RefreshReport:
    feeds: int = 0
    items: int = 0
    new: list[Path] = field(default_factory=list)
    errors: list[tuple[str, str]] = field(default_factory=list)
    waiting: int = 0  # new items over the per-feed limit, left for the next refreshes
    limit: int = 0  # that limit (CITEBOT_MAX_FEED_ITEMS)

    def summary(self) -> str:
        head = (f"{self.feeds} feed{'s' if self.feeds != 1 else ''}, {self.items} item"
                f"{'s' if self.items != 1 else ''}, {len(self.new)} new article"
                f"{'s' if len(self.new) != 1 else ''}, {len(self.errors)} error"
                f"{'s' if len(self.errors) != 1 else ''}")
        if self.waiting:
            head += (f"; {self.waiting:,} more new item{'s wait' if self.waiting != 1 else ' waits'} for the next "
                     f"refreshes (at most {self.limit:,} a feed each time: CITEBOT_MAX_FEED_ITEMS)")
        return "\n".join([head + "."] + [f"{url}: {message}" for url, message in self.errors])

    def to_json(self) -> dict:
        return {"feeds": self.feeds, "items": self.items, "new": [str(p) for p in self.new],
                "errors": [{"url": u, "message": m} for u, m in self.errors], "waiting": self.waiting}


def html_to_text(fragment: str) -> str:
    """Plain text of an HTML fragment, block elements separated by blank lines."""
    if not fragment or not fragment.strip():
        return ""
    try:
        root = lxml.html.fragment_fromstring(fragment, create_parent="div")
    except (lxml.etree.ParserError, ValueError):
        return re.sub(r"<[^>]+>", " ", fragment).strip()
    for bad in root.xpath(".//script|.//style"):
        bad.drop_tree()
    for element in root.iter():
        if isinstance(element.tag, str) and element.tag.lower() in {
                "p", "div", "br", "li", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "tr"}:
            element.tail = "\n\n" + (element.tail or "")
    text = root.text_content()
    paragraphs = [re.sub(r"[ \t\r\f\v\n]+", " ", p).strip() for p in re.split(r"\n\s*\n", text)]
    return "\n\n".join(p for p in paragraphs if p)


def _entry_date(entry: Any) -> str:
    for name in ("published_parsed", "updated_parsed"):
        value = entry.get(name)
        if value:
            try:
                return f"{value.tm_year:04d}-{value.tm_mon:02d}-{value.tm_mday:02d}"
            except AttributeError:
                continue
    return ""


def _entry_fallback(entry: Any, link: str, feed_title: str) -> PageArticle | None:
    value = ""
    content = entry.get("content") or []
    if content:
        value = content[0].get("value", "") or ""
    if not value:
        value = entry.get("summary", "") or ""
    text = html_to_text(value)
    if len(text.split()) < MIN_SUMMARY_WORDS:
        return None
    return PageArticle(title=(entry.get("title") or "").strip(), text=text, url=web_address(link),
                       source=feed_title or host_of(link), published=_entry_date(entry))


_CONTROLS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_XML_ENCODING = re.compile(rb"""^(\s*<\?xml[^>]*?encoding\s*=\s*["'])([A-Za-z0-9._:-]+)(["'])""")


def plain(text: str, one_line: bool = False) -> str:
    """text without control characters (a bell or a terminal escape in a title reaches terminals
    and chats); one_line also turns line breaks and tabs into spaces."""
    text = _CONTROLS.sub("", text or "")
    return re.sub(r"\s+", " ", text).strip() if one_line else text


def feed_as_utf8(body: bytes, content_type: str) -> tuple[bytes, str]:
    """The feed re-encoded as UTF-8, and a content type saying so. The charset the server or the
    XML declaration gives is used when the bytes really are in it; when they are not (Shift_JIS
    labelled UTF-8), the encoding is detected (charset-normalizer) instead of guessed as Latin-1."""
    media = content_type.split(";", 1)[0].strip() or "application/xml"
    header = re.search(r"charset\s*=\s*[\"']?([A-Za-z0-9._:-]+)", content_type or "", re.I)
    declared = _XML_ENCODING.match(body[:200])
    labels = [m.group(1) if isinstance(m.group(1), str) else m.group(1).decode("ascii")
              for m in (header, declared) if m] or ["utf-8"]
    text = None
    for label in dict.fromkeys(label.lower() for label in labels):
        try:
            text = body.decode(label)
            break
        except (LookupError, UnicodeDecodeError):
            continue
    if text is None:
        import charset_normalizer

        best = charset_normalizer.from_bytes(body).best()
        log.info("feed labelled %s is not; read as %s", "/".join(labels), best.encoding if best else "utf-8")
        text = str(best) if best is not None else body.decode("utf-8", errors="replace")
    data = text.lstrip("\ufeff").encode("utf-8")
    data = _XML_ENCODING.sub(rb"\1utf-8\3", data, count=1)
    return data, f"{media}; charset=utf-8"


@dataclass
class FeedFetch:
    """One feed's document, fetched and parsed: its entries, or the one sentence saying why not."""

    url: str
    fetched: Fetched | None = None
    entries: list[Any] = field(default_factory=list)
    title: str = ""
    error: str = ""


def fetch_feed(url: str, fetcher: Fetcher, etag: str = "", last_modified: str = "") -> FeedFetch:
    """Fetch and parse one feed (conditionally when etag or last_modified is given); never raises
    for what the site did: FeedFetch.error says it in one sentence."""
    try:
        fetched = fetcher.get(url, kinds=("xml", "html"), etag=etag, last_modified=last_modified)
    except FetchError as exc:
        return FeedFetch(url, error=str(exc))
    if fetched.not_modified:
        return FeedFetch(url, fetched)
    body, content_type = feed_as_utf8(fetched.body, fetched.content_type)
    parsed = feedparser.parse(body, response_headers={"content-location": fetched.url, "content-type": content_type})
    entries = list(parsed.get("entries") or [])
    if not entries and (parsed.get("bozo") or not parsed.get("feed")):
        log.info("feed %s unparseable: %r", url, parsed.get("bozo_exception"))
        return FeedFetch(url, fetched, error=f"{url} is not an RSS or Atom feed.")
    return FeedFetch(url, fetched, entries, plain(parsed.get("feed", {}).get("title") or "", one_line=True))


def _fetch_feeds(feeds: list[FeedState], fetcher: Fetcher) -> list[FeedFetch]:
    """Every feed's document at once (policy.concurrency at a time): a slow feed costs its own
    deadline, not the others' time."""
    if not feeds:
        return []
    with ThreadPoolExecutor(max_workers=max(1, min(fetcher.policy.concurrency, len(feeds)))) as pool:
        return list(pool.map(lambda f: fetch_feed(f.url, fetcher, f.etag, f.last_modified), feeds))


def _take_items(feed: FeedState, got: FeedFetch, todo: list[tuple[Any, str, str]], pages: dict[str, Any],
                store: FeedStore, corpus_dir: Path, now: datetime, report: RefreshReport) -> int:
    """Write the articles of a feed's new items (their pages already fetched); how many were new."""
    new = 0
    for entry, key, link in todo:
        try:
            article: PageArticle | None = None
            problem = ""
            page = pages.get(link)
            if isinstance(page, Fetched):
                try:
                    article = extract_article(page.body, page.url)
                except NoArticleText as exc:
                    problem = str(exc)
            elif isinstance(page, FetchError):
                problem = str(page)
            else:
                problem = f"The item {key} has no web address."
            if article is None:
                article = _entry_fallback(entry, link or key, got.title)
                if article is None:
                    message = problem or f"No article text for {key}."
                    if store.failed(key, message) >= MAX_ITEM_TRIES:
                        message += f" Tried {MAX_ITEM_TRIES} times; it is not tried again."
                    report.errors.append((link or key, message))
                    continue
                log.info("used the feed's own text for %s (%s)", key, problem)
            if not article.published:
                article.published = _entry_date(entry)
            if not article.title:
                article.title = (entry.get("title") or "").strip()
            if not article.source:
                article.source = got.title
            path, reason = _store_article(article, key, feed.url, corpus_dir, store, now)
            if path is not None:
                report.new.append(path)
                new += 1
            else:
                log.debug("skipped %s: %s", key, reason)
        except DiskFull:  # every later item would fail the same way: one sentence, not one per item
            raise
        except (CitebotError, OSError) as exc:
            log.warning("item %s of %s failed: %r", key, feed.url, exc)
            report.errors.append((link or key, str(exc) if isinstance(exc, CitebotError)
                                  else f"The article from {key} cannot be written."))
    return new


def refresh_feeds(store: FeedStore, corpus_dir: Path, fetcher: Fetcher, now: datetime | None = None,
                  only: list[str] | None = None, fetched: dict[str, FeedFetch] | None = None,
                  max_items: int = MAX_FEED_ITEMS) -> RefreshReport:
    """Fetch every feed (or those in `only`; `fetched` holds feeds already fetched) and write its new
    articles, at most max_items a feed (in the feed's order; the rest wait for the next refresh);
    one feed's or item's failure stops no other.

    The feeds are fetched at once, then the pages of every feed's new items in one pool, each
    within the fetcher's total deadline, so a slow site delays neither the others nor the build."""
    now = now or datetime.now(timezone.utc)
    fetched_at = _utc_iso(now)
    report = RefreshReport(limit=max_items)
    feeds = [f for f in store.list() if only is None or f.url in only]
    report.feeds = len(feeds)
    known = dict(fetched or {})
    for got in _fetch_feeds([f for f in feeds if f.url not in known], fetcher):
        known[got.url] = got
    plans: list[tuple[FeedState, FeedFetch, list[tuple[Any, str, str]]]] = []
    for feed in feeds:
        got = known[feed.url]
        try:
            if got.error:
                report.errors.append((feed.url, got.error))
                store.record_fetch(feed.url, etag=feed.etag, last_modified=feed.last_modified, items=None, new=0,
                                   error=got.error, fetched_at=fetched_at)
                continue
            assert got.fetched is not None
            if got.fetched.not_modified:
                log.info("feed %s not modified", feed.url)
                store.record_fetch(feed.url, etag=got.fetched.etag or feed.etag,
                                   last_modified=got.fetched.last_modified or feed.last_modified, items=None, new=0,
                                   error="", fetched_at=fetched_at)
                continue
            report.items += len(got.entries)
            todo: list[tuple[Any, str, str]] = []     # (entry, key, link)
            for entry in got.entries:
                link = (entry.get("link") or "").strip()
                key = link or (entry.get("id") or "").strip()
                if not key or store.known(key) or store.tries(key) >= MAX_ITEM_TRIES:
                    continue
                todo.append((entry, key, link))
            if len(todo) > max_items:
                log.info("feed %s: %d new items, %d taken now", feed.url, len(todo), max_items)
                report.waiting += len(todo) - max_items
                todo = todo[:max_items]
            plans.append((feed, got, todo))
        except DiskFull:
            raise
        except CitebotError as exc:
            log.warning("feed %s failed: %r", feed.url, exc)
            report.errors.append((feed.url, str(exc)))
    page_links = list(dict.fromkeys(link for _, _, todo in plans for _, _, link in todo
                                    if link.lower().startswith(("http://", "https://"))))
    pages = dict(zip(page_links, fetcher.fetch_many(page_links, kinds=("html",))))
    for feed, got, todo in plans:
        try:
            new = _take_items(feed, got, todo, pages, store, corpus_dir, now, report)
            assert got.fetched is not None
            store.record_fetch(feed.url, etag=got.fetched.etag, last_modified=got.fetched.last_modified,
                               items=len(got.entries), new=new, error="", title=got.title or None,
                               fetched_at=fetched_at)
        except DiskFull:
            raise
        except CitebotError as exc:
            log.warning("feed %s failed: %r", feed.url, exc)
            report.errors.append((feed.url, str(exc)))
    log.debug("refresh: %s", report.summary().splitlines()[0])  # the caller says it (CLI, /refresh, the job)
    return report


__all__ = ["AddResult", "FeedFetch", "FeedState", "FeedStore", "FeedStoreError", "NoArticleText", "PageArticle",
           "PostgresFeedStore", "RefreshReport", "SqliteFeedStore", "add_url", "content_hash", "extract_article",
           "fetch_feed", "html_to_text", "open_feed_store", "refresh_feeds", "slugify", "validate_url",
           "write_article"]
