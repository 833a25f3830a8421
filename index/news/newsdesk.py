"""The news desk: feeds, links and uploaded files go into the corpus folder, then into the index.

    desk = Newsdesk(engine)
    desk.add_feed("https://example.org/rss")   # checked, stored (feeds.sqlite or the database), its items added
    desk.add_url("https://example.org/story")  # one page, extracted and added
    desk.refresh()                             # every feed; new items added, index updated

Everything fetched is written into CORPUS_DIR as ordinary article files (the folder stays the one
source of truth) and the index is updated by an ordinary build, which re-embeds only new text.
One update runs at a time; questions keep being answered from the live index meanwhile.
"""
from __future__ import annotations

import contextlib
import logging
import re
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterator

from ..store.builder import Announce, BuildReport
from ..engine import Engine
from ..ingest.documents import SkippedFile, UnreadableFile, file_documents, read_articles
from ..errors import BuildInProgress, DiskFull, FetchError, UploadRefused, is_disk_full
from .feeds import (FEEDS_FILE, AddResult, FeedState, FeedStore, PostgresFeedStore, RefreshReport, add_url, fetch_feed,
                    open_feed_store, refresh_feeds, validate_url)
from .fetch import Fetcher, FetchPolicy

log = logging.getLogger(__name__)

UPLOAD_SUFFIXES = (".txt", ".md", ".html", ".htm", ".json", ".jsonl")
MAX_UPLOAD_BYTES = 20 * 2**20  # Telegram's getFile limit for bots
UPLOAD_DIR = "uploads"


@dataclass
class DeskReport:
    """What an update did: articles written to the corpus, problems met, and the index update."""

    added: list[str] = field(default_factory=list)  # corpus paths
    articles: int = 0  # articles in them, when that is not one a path (an upload of many)
    errors: list[tuple[str, str]] = field(default_factory=list)  # (address, one sentence)
    notes: list[str] = field(default_factory=list)  # e.g. "already known"
    build: BuildReport | None = None
    refresh: RefreshReport | None = None

    def summary(self) -> str:
        lines = []
        if self.refresh is not None:
            lines.append(self.refresh.summary().splitlines()[0])
        elif self.added:
            n = self.articles or len(self.added)
            lines.append(f"Added {n:,} article{'s' if n != 1 else ''}{' from ' if n != len(self.added) else ': '}"
                         + ", ".join(self.added[:5]) + (" …" if len(self.added) > 5 else ""))
        lines += self.notes
        lines += [f"{where}: {message}" for where, message in self.errors]
        if self.build is not None:
            lines.append(self.build.summary().splitlines()[0])
        return "\n".join(lines) or "Nothing to do."

    def to_json(self) -> dict:
        out: dict = {"added": self.added, "articles": self.articles or len(self.added),
                     "errors": [{"url": u, "message": m} for u, m in self.errors], "notes": self.notes}
        if self.refresh is not None:
            out["feeds"] = self.refresh.feeds
            out["items"] = self.refresh.items
        if self.build is not None:
            b = self.build
            out["index"] = {"documents": b.documents, "chunks": b.chunks, "embedded": b.embedded,
                            "reused": b.reused, "seconds": round(b.seconds, 2), "unchanged": b.unchanged}
        return out


def _upload_name(name: str) -> str:
    """A safe file name for an upload: its last path part, odd characters replaced."""
    base = Path(name.replace("\\", "/")).name
    stem, dot, suffix = base.rpartition(".")
    stem = re.sub(r"[^\w.-]+", "-", stem if dot else base).strip(".-")[:80] or "upload"
    return f"{stem}.{suffix.lower()}" if dot else stem


class Newsdesk:
    """Adds feeds, pages and files to the corpus and updates the engine's index. Thread-safe."""

    def __init__(self, engine: Engine, policy: FetchPolicy | None = None, database=None,
                 merge: str = "now") -> None:
        """database: the open index.store.database.Database to keep feeds in (the bot's); None: the
        settings say (CITEBOT_DATABASE_URL's, shared in this process, or DATA_DIR/feeds.sqlite).
        merge: how an update that makes the segments due for a merge runs it (Engine.build): "now",
        or "background" (the bot: its answer to /add does not wait for the merge)."""
        self.engine = engine
        self.merge = merge
        self.database = database
        self.policy = policy or replace(FetchPolicy.from_env(), timeout_s=engine.settings.fetch_timeout)
        self._update = threading.Lock()  # one update at a time: a refresh and an /add never interleave

    @property
    def corpus_dir(self) -> Path:
        return self.engine.settings.corpus_dir

    @property
    def feeds_path(self) -> Path:
        return self.engine.settings.data_dir / FEEDS_FILE

    def _store(self) -> FeedStore:
        if self.database is not None:
            return PostgresFeedStore(self.database)
        return open_feed_store(self.engine.settings)

    @contextlib.contextmanager
    def exclusive(self, name: str) -> Iterator[bool]:
        """Whether this process may do `name` now and no other replica meanwhile: with
        CITEBOT_DATABASE_URL an advisory lock on the database (False at once when another process
        holds it, released when the block ends or the process dies); with SQLite files always True,
        as before replicas."""
        if self.database is None and not self.engine.settings.database_url:
            yield True
            return
        from ..store.database import Database

        db = self.database or Database.shared(self.engine.settings.database_url)
        with db.try_lock(f"citebot:{name}") as mine:
            yield mine

    # -- feeds -----------------------------------------------------------------------------------

    def feeds(self) -> list[FeedState]:
        with self._store() as store:
            return store.list()

    def add_feed(self, url: str, build: bool = True, announce: Announce | None = None) -> DeskReport:
        """Check that URL is a feed (fetch and parse it), keep it, and add its items' articles.

        A feed that cannot be fetched or parsed is not kept: FetchError says why. The feed is saved
        only once its first fetch has succeeded, so a fetch that is killed midway leaves nothing."""
        url = validate_url(url)
        with self._update, self._store() as store:
            if store.get(url) is not None:
                report = DeskReport(notes=[f"{url} is already one of my feeds."])
                return report
            with Fetcher(self.policy) as fetcher:
                first = fetch_feed(url, fetcher)
                if first.error:
                    raise FetchError(first.error)
                store.add(url)
                try:
                    refresh = refresh_feeds(store, self.corpus_dir, fetcher, only=[url], fetched={url: first},
                                            max_items=self.engine.settings.max_feed_items)
                except BaseException:
                    store.remove(url)
                    raise
            report = DeskReport(added=[self._rel(p) for p in refresh.new], errors=refresh.errors,
                                refresh=refresh)
            return self._index(report, build, announce)

    def remove_feed(self, url: str) -> bool:
        """Stop fetching URL; articles already added stay in the corpus."""
        with self._store() as store:
            return store.remove(url)

    def refresh(self, build: bool = True, announce: Announce | None = None) -> DeskReport:
        """Fetch every feed, write the new items' articles and update the index if the corpus
        differs from it (new articles, or articles an interrupted update left unindexed)."""
        with self._update:
            with self._store() as store, Fetcher(self.policy) as fetcher:
                refresh = refresh_feeds(store, self.corpus_dir, fetcher,
                                        max_items=self.engine.settings.max_feed_items)
            report = DeskReport(added=[self._rel(p) for p in refresh.new], errors=refresh.errors,
                                refresh=refresh)
            return self._index(report, build, announce)

    def refresh_if_free(self, build: bool = True, announce: Announce | None = None) -> DeskReport | None:
        """refresh(), unless another replica is refreshing: then None at once (the scheduled
        refresh: one replica fetches the feeds, not every one of them)."""
        with self.exclusive("refresh") as mine:
            if not mine:
                return None
            return self.refresh(build, announce)

    # -- single articles -------------------------------------------------------------------------

    def add_url(self, url: str, build: bool = True, announce: Announce | None = None) -> DeskReport:
        """Fetch one page, extract its article and add it unless its address or text is known."""
        with self._update:
            with self._store() as store, Fetcher(self.policy) as fetcher:
                result: AddResult = add_url(url, self.corpus_dir, store, fetcher)
            if not result.added:
                what = f"“{result.title}”" if result.title else result.url
                return self._index(DeskReport(notes=[f"{what}: {result.reason}, nothing added."]), build, announce)
            return self._index(DeskReport(added=[self._rel(Path(result.path))]), build, announce)

    def add_file(self, name: str, data: bytes, build: bool = True, announce: Announce | None = None) -> DeskReport:
        """Write an uploaded article file into CORPUS_DIR/uploads/ and index it.

        The file is read the way the corpus loader reads any file; one that yields no article is
        removed again and refused with the loader's reason."""
        safe = _upload_name(name)
        if not safe.lower().endswith(UPLOAD_SUFFIXES):
            raise UploadRefused(f"I take article files ending in {', '.join(UPLOAD_SUFFIXES)}; "
                                f"{name!r} is not one.")
        if len(data) > MAX_UPLOAD_BYTES:
            raise UploadRefused(f"{name!r} is {len(data) / 2**20:.1f} MB; files up to "
                                f"{MAX_UPLOAD_BYTES // 2**20} MB are taken.")
        if not data.strip():
            raise UploadRefused(f"{name!r} is empty.")
        with self._update:
            folder = self.corpus_dir / UPLOAD_DIR
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / safe
            n = 1
            while path.exists():
                if path.read_bytes() == data:
                    return self._index(DeskReport(notes=[f"{safe} is already in the corpus, nothing added."]), build,
                                       announce)
                n += 1
                path = folder / f"{Path(safe).stem}-{n}{Path(safe).suffix}"
            tmp = path.with_name(f".{path.name}.part")  # the loader skips dot files: no half file is read
            try:
                tmp.write_bytes(data)
                tmp.replace(path)
            except OSError as exc:
                tmp.unlink(missing_ok=True)
                if is_disk_full(exc):
                    raise DiskFull(f"The disk holding {self.corpus_dir} is full, so {safe} cannot be written; "
                                   "free some space and try again.") from None
                raise
            limit = self.engine.settings.max_upload_articles
            try:
                # Counted before any is cleaned (milliseconds each): 200,000 would take minutes to refuse.
                count = len(read_articles(path, self._rel(path), self.engine.settings.max_file_bytes))
                if count > limit:
                    path.unlink(missing_ok=True)
                    raise UploadRefused(f"{name!r} holds {count:,} articles; uploads of up to {limit:,} are taken "
                                        "(CITEBOT_MAX_UPLOAD_ARTICLES): split it, or put it in the corpus folder "
                                        "and run `citebot build`.")
                documents = file_documents(path, self._rel(path), self.engine.settings.max_file_bytes)
            except (UnreadableFile, OSError) as exc:
                path.unlink(missing_ok=True)
                raise UploadRefused(f"{name!r} cannot be read as an article file ({exc}).") from None
            usable = [d for d in documents if not isinstance(d, SkippedFile)]
            if not usable:
                reason = next((d.reason for d in documents if isinstance(d, SkippedFile)), "no article text")
                path.unlink(missing_ok=True)
                raise UploadRefused(f"{name!r} holds no article I can use ({reason}).")
            report = DeskReport(added=[self._rel(path)], articles=len(usable))
            if len(usable) < len(documents):
                report.notes.append(f"{len(documents) - len(usable)} of its articles had no text left after "
                                    "cleaning and were left out.")
            return self._index(report, build, announce)

    # -- helpers ---------------------------------------------------------------------------------

    def _rel(self, path: Path) -> str:
        try:
            return str(Path(path).relative_to(self.corpus_dir))
        except ValueError:
            return str(path)

    def _index(self, report: DeskReport, build: bool, announce: Announce | None = None) -> DeskReport:
        """Update the index whenever the corpus differs from it, not only when this call added
        something: articles written by an update whose build was killed (or run with --no-build)
        are taken by the next one. An unchanged corpus costs a fingerprint check, no new build.
        announce hears the build's estimate when its embedding will take long."""
        if build:
            try:
                report.build = self.engine.build(announce=announce, merge=self.merge)
            except BuildInProgress:  # the articles are saved; that build or the next one takes them
                report.notes.append("Another index update is running; the next one includes these articles."
                                    if report.added else "Another index update is running.")
        return report


__all__ = ["DeskReport", "MAX_UPLOAD_BYTES", "Newsdesk", "UPLOAD_SUFFIXES", "UploadRefused"]
