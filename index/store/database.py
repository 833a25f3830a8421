"""The PostgreSQL database that bot replicas share (CITEBOT_DATABASE_URL): connecting, with one
sentence for each way that fails; the versioned schema, migrated under an advisory lock; a pool
of connections whose failures are sentences too; and advisory locks for work that one replica
at a time should do (the scheduled feed refresh).

    db = Database(url).open()          # connects, migrates the schema if it is behind, checks pgvector
    with db.transaction() as conn:     # one transaction: committed at the end, rolled back on error
        conn.execute("INSERT ...")
    with db.try_lock("refresh") as mine:
        if mine: ...                   # no other process holds it until this block ends

The schema is MIGRATIONS, applied in order and recorded in schema_version; a database whose
schema is newer than this code knows is refused. Adding a table is one more entry at the end.
"""
from __future__ import annotations

import contextlib
import hashlib
import logging
import re
import threading
import time
from dataclasses import dataclass
from typing import Iterator

import psycopg
from psycopg.conninfo import conninfo_to_dict

from ..errors import CitebotError, ConfigurationError

log = logging.getLogger(__name__)

URL_SCHEMES = ("postgresql://", "postgres://")


class DatabaseError(CitebotError, RuntimeError):
    """The database cannot be used; the message says why, and never shows the password."""


class DatabaseUnreachable(DatabaseError):
    pass


class DatabaseAuthFailed(DatabaseError):
    pass


class DatabaseMissing(DatabaseError):
    pass


class NoPgvector(DatabaseError):
    pass


class SchemaMismatch(DatabaseError):
    """The database's schema is of another version than this code's (newer, or not yet migrated)."""


class DatabaseLost(DatabaseError):
    """A statement did not complete (the connection was lost, the server restarted); its
    transaction was rolled back, so nothing of it was written."""


# -- the schema ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


# Times are timestamptz; ids Telegram gives are bigint. Tables are those of the SQLite files they
# replace (bot.sqlite: bot/history.py; feeds.sqlite: index/news/feeds.py), one per concern.
BOT_STATE = """
-- The bot's memory (bot/history.py): answers for "More", follow-ups and votes; the question log; votes.
CREATE TABLE bot_meta (key text PRIMARY KEY, value text NOT NULL);
CREATE TABLE bot_answers (
    qid text PRIMARY KEY, question text NOT NULL, citations jsonb NOT NULL DEFAULT '[]',
    shown integer NOT NULL DEFAULT 0, at timestamptz NOT NULL
);
CREATE INDEX bot_answers_at ON bot_answers (at);
CREATE TABLE bot_sent (
    chat_id bigint NOT NULL, message_id bigint NOT NULL,
    qid text NOT NULL REFERENCES bot_answers (qid) ON DELETE CASCADE, at timestamptz NOT NULL,
    PRIMARY KEY (chat_id, message_id)
);
CREATE INDEX bot_sent_qid ON bot_sent (qid);
-- One vote per voter and answer (a second replaces the first); voters are salted hashes (bot_meta.salt).
CREATE TABLE bot_votes (
    qid text NOT NULL, voter text NOT NULL, vote smallint NOT NULL CHECK (vote IN (-1, 1)),
    question text, citations jsonb, chat_type text, at timestamptz NOT NULL,
    PRIMARY KEY (qid, voter)
);
CREATE INDEX bot_votes_at ON bot_votes (at);
-- origin: where an imported row came from (`citebot db import`), so a second import adds nothing.
CREATE TABLE bot_asked (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, at timestamptz NOT NULL, chat_type text,
    question text, abstained boolean NOT NULL, origin text UNIQUE
);
CREATE INDEX bot_asked_at ON bot_asked (at);
-- Per-user question limits across replicas (bot/ratelimit.py): a count per fixed window.
CREATE TABLE rate_limits (
    scope text NOT NULL, user_id bigint NOT NULL, window_start double precision NOT NULL,
    count integer NOT NULL, PRIMARY KEY (scope, user_id, window_start)
);
-- Feeds, items taken from them and items that failed (index/news/feeds.py); the columns of feeds.sqlite.
CREATE TABLE feeds (
    url text PRIMARY KEY, title text NOT NULL DEFAULT '', added_at text NOT NULL DEFAULT '',
    etag text NOT NULL DEFAULT '', last_modified text NOT NULL DEFAULT '', last_fetched text NOT NULL DEFAULT '',
    last_items integer NOT NULL DEFAULT 0, last_new integer NOT NULL DEFAULT 0, last_error text NOT NULL DEFAULT '',
    items_at text NOT NULL DEFAULT '', error_at text NOT NULL DEFAULT '', last_status text NOT NULL DEFAULT ''
);
CREATE TABLE feed_items (
    key text PRIMARY KEY, feed_url text NOT NULL DEFAULT '', url text NOT NULL DEFAULT '',
    content_hash text NOT NULL DEFAULT '', path text NOT NULL DEFAULT '', added_at text NOT NULL DEFAULT ''
);
CREATE INDEX feed_items_hash ON feed_items (content_hash);
CREATE TABLE feed_failures (key text PRIMARY KEY, tries integer NOT NULL DEFAULT 0, last_error text NOT NULL DEFAULT '');
"""

# The index (index/store/postgres.py): 384-d vectors, the default model's; another model's index stays in files.
INDEX_SQL = """
CREATE TABLE index_documents (
    doc_id text PRIMARY KEY, title text NOT NULL, source text NOT NULL, url text NOT NULL,
    published text NOT NULL, published_day date, path text NOT NULL, text text NOT NULL,
    signature text NOT NULL  -- what the document was indexed from: a changed one is replaced
);
CREATE TABLE index_chunks (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    doc_id text NOT NULL REFERENCES index_documents ON DELETE CASCADE,
    ordinal integer NOT NULL, chunk_id text NOT NULL, start_at integer NOT NULL, end_at integer NOT NULL,
    text text NOT NULL, hash text NOT NULL,
    spans jsonb NOT NULL,             -- [[start, end], ...] of its sentences, offsets into text
    embedding vector(384) NOT NULL,
    sentence_vectors bytea NOT NULL,  -- float16, one row of 384 per sentence, in spans' order
    lexical tsvector NOT NULL,        -- the stemmed tokens (index/search/tokenize.py), with positions
    length integer NOT NULL,          -- tokens, for BM25's length normalisation
    published_day date, source_key text NOT NULL  -- the document's, repeated for filtering in one table
);
CREATE INDEX index_chunks_embedding ON index_chunks USING hnsw (embedding vector_ip_ops);
CREATE INDEX index_chunks_lexical ON index_chunks USING gin (lexical);
CREATE INDEX index_chunks_doc ON index_chunks (doc_id, ordinal);
CREATE INDEX index_chunks_day ON index_chunks (published_day);
CREATE INDEX index_chunks_hash ON index_chunks (hash);
CREATE TABLE index_terms (token text PRIMARY KEY, df integer NOT NULL);  -- chunks holding each token
CREATE TABLE index_state (key text PRIMARY KEY, value jsonb NOT NULL);  -- manifest, generation, totals
"""

# Daily digests (bot/digests.py).
DIGESTS_SQL = """
CREATE TABLE digests (
    chat_id bigint PRIMARY KEY, at text NOT NULL, tz text NOT NULL,
    last_sent text NOT NULL DEFAULT '', last_docs text NOT NULL DEFAULT '[]'
);
"""

# Followed topics (bot/follows.py): a user's topics (at most 10), the articles each was sent (never twice),
# and the new articles' files queued for each user until a delivery pass takes them.
FOLLOWS_SQL = """
CREATE TABLE follows (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, user_id bigint NOT NULL, topic text NOT NULL,
    paused boolean NOT NULL DEFAULT false, at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX follows_topic ON follows (user_id, lower(topic));
CREATE TABLE follow_sent (
    follow_id bigint NOT NULL REFERENCES follows ON DELETE CASCADE, doc_id text NOT NULL,
    at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (follow_id, doc_id)
);
CREATE TABLE follow_pending (
    user_id bigint NOT NULL, path text NOT NULL, at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (user_id, path)
);
"""

# Questions in other languages (issue 25, CITEBOT_MULTILINGUAL): the multilingual encoder's vector of
# each chunk, NULL until a build with the setting on fills it (index/store/builder.py); half precision,
# as the file store keeps them. The HNSW index leaves NULL rows out.
MULTILINGUAL_SQL = """
ALTER TABLE index_chunks ADD COLUMN multilingual halfvec(384);
CREATE INDEX index_chunks_multilingual ON index_chunks USING hnsw (multilingual halfvec_ip_ops);
"""

# In order, each applied once in its own transaction. Never edit an entry that has shipped: add one.
# The index (documents, chunks, vectors, term statistics) is entry 2: index/store/postgres.py reads it.
MIGRATIONS: list[Migration] = [
    Migration(1, "bot state: answers, votes, question log, rate limits, feeds", BOT_STATE),
    Migration(2, "index: documents, chunks (pgvector HNSW, tsvector GIN), term statistics", INDEX_SQL),
    Migration(3, "daily digests: chats, times, what the last one told", DIGESTS_SQL),
    Migration(4, "follows: followed topics, articles sent for each, new articles queued per user", FOLLOWS_SQL),
    Migration(5, "index: multilingual chunk vectors for questions in other languages", MULTILINGUAL_SQL),
]

SCHEMA_VERSION_TABLE = """
CREATE TABLE IF NOT EXISTS schema_version (
    version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now()
)"""


def latest_version(migrations: list[Migration] | None = None) -> int:
    migrations = MIGRATIONS if migrations is None else migrations
    versions = [m.version for m in migrations]
    assert versions == list(range(1, len(versions) + 1)), f"migrations must be numbered 1, 2, 3...: {versions}"
    return versions[-1] if versions else 0


def lock_key(name: str) -> int:
    """A stable signed 64-bit key for pg_advisory_lock, from a name ("citebot:refresh")."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


MIGRATE_LOCK = "citebot:migrate"
CHECK_IDLE_S = 2.0  # a pooled connection idle longer than this is tried before it is used


# -- addresses and errors -----------------------------------------------------------------------------


def validate_url(url: str) -> str:
    """url, if it is a postgresql:// address libpq can read; ConfigurationError (without the url,
    which may hold a password) otherwise."""
    url = (url or "").strip()
    if not url.startswith(URL_SCHEMES):
        raise ConfigurationError("CITEBOT_DATABASE_URL must be a postgresql:// address "
                                 "(postgresql://USER:PASSWORD@HOST:PORT/DATABASE).")
    try:
        conninfo_to_dict(url)
    except psycopg.Error as exc:
        reason = _scrub(str(exc).splitlines()[0], url)
        raise ConfigurationError(f"CITEBOT_DATABASE_URL is not an address PostgreSQL's client can read "
                                 f"({reason}).") from None
    return url


def describe(url: str) -> str:
    """Where a URL points, without user or password: HOST:PORT/DATABASE."""
    try:
        parts = conninfo_to_dict(url)
    except psycopg.Error:
        return "CITEBOT_DATABASE_URL"
    host = str(parts.get("host") or parts.get("hostaddr") or "localhost").split(",")[0]
    port = str(parts.get("port") or "5432").split(",")[0]
    name = parts.get("dbname") or parts.get("user") or "postgres"
    if host.startswith("/"):
        return f"{name} (socket in {host})"
    return f"{host}:{port}/{name}"


def _password(url: str) -> str:
    try:
        return str(conninfo_to_dict(url).get("password") or "")
    except psycopg.Error:  # an address libpq cannot read (its error quotes the whole address)
        found = re.match(r"^[a-z]+://[^:/@?#]*:([^@]*)@", url.strip())
        return found.group(1) if found else ""


def _scrub(text: str, url: str) -> str:
    password = _password(url)
    return text.replace(password, "***") if password else text


def _reason(exc: BaseException, url: str) -> str:
    """libpq's reason, short: 'Connection refused', 'password authentication failed for user "x"'."""
    text = str(exc).strip()
    text = re.sub(r'^connection failed:\s*', "", text)
    text = re.sub(r'^connection to server (at|on) .*? failed:\s*', "", text, flags=re.S)
    text = re.sub(r'^(FATAL|ERROR):\s*', "", text).strip()
    first = text.splitlines()[0].strip() if text else type(exc).__name__
    return _scrub(first, url)


def connection_error(exc: psycopg.Error, url: str) -> DatabaseError:
    """The one sentence for a failed connect."""
    where = describe(url)
    reason = _reason(exc, url)
    low = reason.lower()
    parts = conninfo_to_dict(url)
    user, name = parts.get("user") or "(your user name)", parts.get("dbname") or parts.get("user") or "postgres"
    if "password" in low or "authentication failed" in low or ("role" in low and "does not exist" in low):
        return DatabaseAuthFailed(f"The database at {where} refused the login of {user} ({reason}); check the user "
                                  "and password in CITEBOT_DATABASE_URL.")
    if re.search(r'database ".*" does not exist', reason):
        return DatabaseMissing(f"The database {name} does not exist at {where.rsplit('/', 1)[0]}; create it "
                               f"(CREATE DATABASE {name}) or correct CITEBOT_DATABASE_URL.")
    return DatabaseUnreachable(f"The database at {where} cannot be reached ({reason}); check that PostgreSQL "
                               "is running there and that CITEBOT_DATABASE_URL names it.")


def connect(url: str, *, autocommit: bool = False, vectors: bool = False, timeout: float = 10) -> psycopg.Connection:
    """A new connection; DatabaseError with one sentence when it cannot be had. vectors: the
    vector type is registered (numpy arrays in and out), NoPgvector when the database has none."""
    url = validate_url(url)
    try:
        conn = psycopg.connect(url, autocommit=autocommit, connect_timeout=max(1, int(timeout)))
    except psycopg.OperationalError as exc:
        log.info("cannot connect to %s: %s", describe(url), _scrub(str(exc), url))
        raise connection_error(exc, url) from None
    if vectors:
        try:
            require_vector(conn, url)
            from pgvector.psycopg import register_vector

            register_vector(conn)
        except BaseException:
            conn.close()
            raise
    return conn


def no_pgvector(url: str, available: bool = True) -> NoPgvector:
    where = describe(url)
    if not available:
        return NoPgvector(f"The database at {where} has no pgvector extension and its server cannot provide one; "
                          "install pgvector on that server (https://github.com/pgvector/pgvector), then run "
                          "CREATE EXTENSION vector as the database's owner.")
    return NoPgvector(f"The database at {where} has no pgvector extension; run CREATE EXTENSION vector as its owner.")


def has_vector(conn: psycopg.Connection) -> bool:
    return conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'vector'").fetchone() is not None


def require_vector(conn: psycopg.Connection, url: str) -> None:
    if not has_vector(conn):
        raise no_pgvector(url)


# -- the schema's version -----------------------------------------------------------------------------


def schema_version(conn: psycopg.Connection) -> int:
    """The version the database's schema is at; 0 for a database citebot has not set up."""
    if conn.execute("SELECT to_regclass('schema_version')").fetchone()[0] is None:
        return 0
    return conn.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()[0]


def newer_schema(url: str, found: int, known: int) -> SchemaMismatch:
    return SchemaMismatch(f"The database at {describe(url)} has schema version {found}, newer than this citebot "
                          f"knows ({known}); upgrade citebot, or point CITEBOT_DATABASE_URL at another database.")


def migrate(url: str, migrations: list[Migration] | None = None) -> tuple[int, int]:
    """Bring the schema up to date: (version before, version after). Idempotent; two processes
    migrating at once are serialised by an advisory lock, the second finding nothing to do. Each
    migration runs in its own transaction with its row in schema_version: all of it or none."""
    migrations = MIGRATIONS if migrations is None else migrations
    latest = latest_version(migrations)
    with connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (lock_key(MIGRATE_LOCK),))
        try:
            _create_vector(conn, url)
            conn.execute(SCHEMA_VERSION_TABLE)
            before = schema_version(conn)
            if before > latest:
                raise newer_schema(url, before, latest)
            for migration in migrations:
                if migration.version <= before:
                    continue
                log.info("database %s: migrating to schema version %d (%s)", describe(url), migration.version,
                         migration.name)
                with conn.transaction():
                    conn.execute(migration.sql)
                    conn.execute("INSERT INTO schema_version (version, name) VALUES (%s, %s)",
                                 (migration.version, migration.name))
            return before, max(before, latest)
        except psycopg.OperationalError as exc:
            raise lost(exc, url) from None
        finally:
            if not conn.closed and not conn.broken:
                conn.execute("SELECT pg_advisory_unlock(%s)", (lock_key(MIGRATE_LOCK),))


def _create_vector(conn: psycopg.Connection, url: str) -> None:
    """CREATE EXTENSION vector when the database lacks it and the user may; NoPgvector if not."""
    if has_vector(conn):
        return
    try:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        log.info("database %s: created the vector extension", describe(url))
    except psycopg.errors.InsufficientPrivilege:
        raise no_pgvector(url) from None
    except psycopg.errors.UndefinedFile:  # the server has no pgvector files
        raise no_pgvector(url, available=False) from None
    except psycopg.errors.FeatureNotSupported:
        raise no_pgvector(url, available=False) from None


def lost(exc: BaseException, url: str) -> DatabaseLost:
    return DatabaseLost(f"The database at {describe(url)} did not complete a change ({_reason(exc, url)}); "
                        "nothing of it was written, and the next try connects again.")


# -- a database in use: a pool of connections -----------------------------------------------------------


class Database:
    """One database in use by this process: its schema checked (or migrated) once, then a pool of
    connections. Thread-safe. Errors are DatabaseError sentences; nothing is half-written."""

    _shared: dict[str, "Database"] = {}
    _shared_lock = threading.Lock()

    def __init__(self, url: str, *, migrate: bool = True, pool_size: int = 8, timeout: float = 5.0):
        self.url = validate_url(url)
        self.where = describe(self.url)
        self.auto_migrate = migrate
        self.pool_size = pool_size
        self.timeout = timeout
        self._pool = None
        self._lock = threading.Lock()
        self._used: dict[int, float] = {}  # id(connection) -> when it was last given back

    def __repr__(self) -> str:  # never the URL: it may hold the password
        return f"Database({self.where})"

    @classmethod
    def shared(cls, url: str) -> "Database":
        """The process's one Database for url (its pool shared by every store), opened."""
        with cls._shared_lock:
            db = cls._shared.get(url)
            if db is None:
                db = cls._shared[url] = cls(url)
        return db.open()

    @classmethod
    def close_shared(cls) -> None:
        with cls._shared_lock:
            for db in cls._shared.values():
                db.close()
            cls._shared.clear()

    def open(self) -> "Database":
        """Connect once (one sentence if that fails), bring the schema up to date or refuse it, check
        pgvector, and start the pool. Opening an open Database does nothing."""
        with self._lock:
            if self._pool is not None:
                return self
            if self.auto_migrate:
                migrate(self.url)
            with connect(self.url, autocommit=True) as conn:
                self.check_schema(conn)
                require_vector(conn, self.url)
            from psycopg_pool import ConnectionPool

            self._pool = ConnectionPool(self.url, min_size=1, max_size=self.pool_size, timeout=self.timeout,
                                        kwargs={"autocommit": True}, open=True, check=self._check,
                                        name=f"citebot {self.where}")
        return self

    def check_schema(self, conn: psycopg.Connection) -> int:
        found, known = schema_version(conn), latest_version()
        if found > known:
            raise newer_schema(self.url, found, known)
        if found < known:
            raise SchemaMismatch(f"The database at {self.where} has schema version {found} and this citebot needs "
                                 f"{known}; run `citebot db init` to migrate it.")
        return found

    def connect(self, autocommit: bool = False, vectors: bool = False) -> psycopg.Connection:
        """A connection of its own, outside the pool (a lock held for a long time, a bulk copy)."""
        return connect(self.url, autocommit=autocommit, vectors=vectors, timeout=max(self.timeout, 1))

    @contextlib.contextmanager
    def connection(self) -> Iterator[psycopg.Connection]:
        """A pooled connection in autocommit: each statement is its own transaction (one round trip
        for a read or a single upsert). A lost connection, or a server that cannot be reached, is a
        DatabaseError sentence; the pool replaces a broken connection."""
        from psycopg_pool import PoolTimeout

        if self._pool is None:
            self.open()
        try:
            with self._pool.connection() as conn:
                try:
                    yield conn
                finally:
                    self._used[id(conn)] = time.monotonic()
        except PoolTimeout:
            raise DatabaseUnreachable(f"The database at {self.where} cannot be reached (no connection within "
                                      f"{self.timeout:g} s); check that PostgreSQL is running there.") from None
        except psycopg.OperationalError as exc:
            log.info("database %s: %s", self.where, _scrub(str(exc), self.url))
            raise lost(exc, self.url) from None

    @contextlib.contextmanager
    def transaction(self) -> Iterator[psycopg.Connection]:
        """A pooled connection in a transaction: committed when the block ends, rolled back when it
        raises, so several statements are all written or none."""
        with self.connection() as conn, conn.transaction():
            yield conn

    def _check(self, conn: psycopg.Connection) -> None:
        """The pool's check before it lends a connection: one that has been idle a while (the server
        may have restarted, a proxy may have dropped it) is tried first; a busy one is not, which
        saves a round trip on every call."""
        if time.monotonic() - self._used.get(id(conn), 0.0) > CHECK_IDLE_S:
            from psycopg_pool import ConnectionPool

            ConnectionPool.check_connection(conn)

    @contextlib.contextmanager
    def try_lock(self, name: str) -> Iterator[bool]:
        """True while this process holds the advisory lock `name` (on a connection of its own: if the
        process dies the server releases it); False at once when another session holds it."""
        conn = self.connect(autocommit=True)
        try:
            (mine,) = conn.execute("SELECT pg_try_advisory_lock(%s)", (lock_key(name),)).fetchone()
            yield bool(mine)
        finally:
            conn.close()  # closing the session releases its locks

    def close(self) -> None:
        with self._lock:
            if self._pool is not None:
                self._pool.close(timeout=5)
                self._pool = None


__all__ = ["Database", "DatabaseAuthFailed", "DatabaseError", "DatabaseLost", "DatabaseMissing", "DatabaseUnreachable",
           "MIGRATIONS", "Migration", "NoPgvector", "SchemaMismatch", "connect", "describe", "latest_version",
           "lock_key", "migrate", "schema_version", "validate_url"]
