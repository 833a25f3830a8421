"""The index in PostgreSQL (pgvector): the IndexView contract (index/store/interface.py) over SQL.

One database holds the index for every replica: chunks with their vector (HNSW, inner product on
unit vectors = cosine), their lexical postings (a tsvector of the same stemmed tokens the file
store's BM25 reads, scored as BM25 in SQL from term statistics kept beside them), their sentence
vectors and their documents' citation fields. An update is one transaction (apply): removed and
changed documents are deleted (their chunks cascade), new ones inserted, term statistics and the
generation updated; a replica sees the new articles on its next question, and a crash mid-update
leaves the previous generation whole. docs/storage.md says why the contract has this shape.
"""
from __future__ import annotations

import json
import logging
import re
import threading
from dataclasses import dataclass
from datetime import date
from typing import Iterable, Sequence

import numpy as np

from ..encoders.multilingual import ENCODER_ID
from ..errors import IndexMismatch, IndexMissing
from ..search.query import bm25_idf
from .database import Database
from .interface import ChunkFilter, ChunkRecord

log = logging.getLogger(__name__)

DIM = 384  # the vector columns' width: the default model's; another model's index stays in files
K1, B = 1.5, 0.75  # BM25 as bm25s computes it (its "lucene" variant), so fusion sees the same scores
# A sentence's id: its chunk's id x SENTENCE_SLOTS + its place in the chunk (a chunk holds far fewer).
SENTENCE_SLOTS = 1024


_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def published_day(published: str) -> date | None:
    if not _DAY.match(published or ""):
        return None
    try:
        return date.fromisoformat(published[:10])
    except ValueError:
        return None


def source_key(source: str, url: str) -> str:
    """What a source: filter is matched against: "aljazeera" finds "Al Jazeera" and aljazeera.com."""
    return re.sub(r"[\s.-]+", "", f"{source}\n{url}".lower())


def _vector_text(v: np.ndarray) -> str:
    return "[" + ",".join(f"{x:.7g}" for x in np.asarray(v, dtype=np.float32)) + "]"


@dataclass
class IndexedDocument:
    """One document of an update, ready to write: its fields, its chunks and their vectors."""

    doc_id: str
    title: str
    source: str
    url: str
    published: str
    path: str
    text: str
    signature: str
    chunks: list[dict]  # ordinal, chunk_id, start, end, text, hash, spans, tokens, vector, sentence_vectors,
    #                     and multilingual (the multilingual encoder's vector, or None) when that is on


@dataclass
class MultilingualVectors:
    """What an update writes of the multilingual column (CITEBOT_MULTILINGUAL): the encoder the new
    documents' vectors come from, and vectors for chunks already stored, by (doc_id, ordinal)."""

    encoder: str
    backfill: dict[tuple[str, int], np.ndarray]


def _where(where: ChunkFilter | None, alias: str = "c") -> tuple[str, list]:
    """A ChunkFilter as SQL predicates (joined with AND) and their parameters."""
    if not where:
        return "TRUE", []
    parts, args = [], []
    if where.since:
        parts.append(f"{alias}.published_day >= %s")
        args.append(date.fromisoformat(where.since))
    if where.until:
        parts.append(f"{alias}.published_day <= %s")
        args.append(date.fromisoformat(where.until))
    if where.sources:
        parts.append("(" + " OR ".join([f"strpos({alias}.source_key, %s) > 0"] * len(where.sources)) + ")")
        args += [re.sub(r"[\s.-]+", "", s.lower()) for s in where.sources]
    if where.doc_ids:
        parts.append(f"{alias}.doc_id = ANY(%s)")
        args.append(list(where.doc_ids))
    if where.paths:
        parts.append(f"{alias}.doc_id IN (SELECT doc_id FROM index_documents WHERE path = ANY(%s))")
        args.append(list(where.paths))
    if where.published_by:
        parts.append(f"({alias}.published_day IS NULL OR {alias}.published_day <= %s)")
        args.append(date.fromisoformat(where.published_by))
    return " AND ".join(parts), args


class _SentenceVectors:
    """Sentence vectors by id, read with their chunks (the view keeps the last ones read)."""

    def __init__(self, view: "PostgresView"):
        self._view = view

    def __getitem__(self, ids) -> np.ndarray:
        ids = [int(i) for i in np.asarray(ids).reshape(-1)]
        return self._view._sentence_rows(ids)


class PostgresView:
    """The index in one database, as the engine reads it. Thread-safe (a pool of connections).

    Unlike a file build it is not frozen: each call reads the committed state, and `generation`
    says which update that is (the engine reloads caches when it moves)."""

    CACHE_CHUNKS = 4096  # sentence vectors of recently read chunks, for re-ranking right after

    def __init__(self, db: Database, model: str | None = None):
        self.db = db
        state = self._state()
        if "manifest" not in state:
            raise IndexMissing(f"There is no index in the database at {db.where} yet; run `citebot build` to "
                               "create it (or `citebot db import` to copy a file index there).")
        self.manifest = state["manifest"]
        if model is not None and self.manifest.get("model") != model:
            raise IndexMismatch(
                f"The index in the database was built with the model {self.manifest.get('model')!r} but "
                f"CITEBOT_MODEL is {model!r}; run `citebot build` to rebuild it with the configured model.")
        self.generation = int(state.get("generation", 0))
        self._chunk_count = int(state.get("chunks", 0))
        self._avg_length = float(state.get("avg_length", 1.0)) or 1.0
        self.sentence_vectors = _SentenceVectors(self)
        self._sentences: dict[int, np.ndarray] = {}  # chunk id -> its sentence vectors
        self._lock = threading.Lock()
        self._coverage: dict | None = None
        self._dfs: dict[str, int] = {}  # token -> chunks holding it (0: none), for this generation
        self.build_dir = None  # no folder: the database is the build

    def _state(self) -> dict:
        with self.db.connection() as conn:
            return {k: v for k, v in conn.execute("SELECT key, value FROM index_state")}

    @property
    def chunk_count(self) -> int:
        return self._chunk_count

    # -- searching ------------------------------------------------------------------------------------

    def dense(self, vector: np.ndarray, n: int, where: ChunkFilter | None = None) -> list[tuple[int, float]]:
        return self._nearest("embedding", "vector", vector, n, where)

    @property
    def has_multilingual(self) -> bool:
        """Whether every chunk has the current multilingual encoder's vector (the build sets it)."""
        return (self.manifest.get("multilingual") or {}).get("encoder") == ENCODER_ID

    def multilingual_dense(self, vector: np.ndarray, n: int, where: ChunkFilter | None = None
                           ) -> list[tuple[int, float]]:
        """(id, cosine) of the n chunks nearest by the multilingual encoder's vectors, best first."""
        return self._nearest("multilingual", "halfvec", vector, n, where) if self.has_multilingual else []

    def _nearest(self, column: str, kind: str, vector: np.ndarray, n: int, where: ChunkFilter | None
                 ) -> list[tuple[int, float]]:
        """(id, cosine) of the n chunks whose vector in column (HNSW, inner product) is nearest."""
        if n <= 0:
            return []
        sql, args = _where(where)
        with self.db.transaction() as conn:
            # A filter can leave an HNSW scan short of n rows: iterative scans keep looking.
            conn.execute(f"SET LOCAL hnsw.ef_search = {max(100, min(int(n) * 4, 1000))}")
            conn.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")
            rows = conn.execute(
                f"SELECT id, -({column} <#> %s::{kind}) AS cosine FROM index_chunks c WHERE {sql} "
                f"ORDER BY {column} <#> %s::{kind} LIMIT %s",
                [_vector_text(vector), *args, _vector_text(vector), int(n)]).fetchall()
        # relaxed_order may return neighbours slightly out of order: order them exactly.
        return sorted(((int(i), float(s)) for i, s in rows), key=lambda x: -x[1])

    # The lexical search's first pass scores the chunks holding the query's rarest tokens, until
    # they number this many times n (by document frequency); see lexical().
    FIRST_PASS_DF = 4

    def lexical(self, tokens: Sequence[str], n: int, where: ChunkFilter | None = None) -> list[tuple[int, float]]:
        """BM25 over every chunk holding a query token, computed exactly but without scoring them all
        (MaxScore): a first pass scores the chunks holding the rarest tokens, and its n-th score is a
        floor for the n best. A token adds at most its idf to a chunk's score, so the chunks holding
        only common tokens whose idfs sum to no more than that floor cannot be among the n best; the
        others (those holding a rarer token) are scored. At 100k chunks an OR of a question's tokens
        matches a third of the index: scoring every match took 0.3-0.7 s (bench/store_scale.py)."""
        tokens = [t for t in tokens if t]
        if not tokens or n <= 0:
            return []
        dfs = self.document_frequencies(tokens)
        known = [t for t in tokens if t in dfs]
        if not known:
            return []
        idf = {t: bm25_idf(dfs[t], self._chunk_count) for t in set(known)}
        by_rarity = sorted(idf, key=lambda t: (dfs[t], t))
        first, seen = [], 0
        for t in by_rarity:
            first.append(t)
            seen += dfs[t]
            if seen >= self.FIRST_PASS_DF * n:
                break
        if len(first) == len(by_rarity) or min(idf.values()) <= 0:
            return self._bm25(known, idf, by_rarity, n, where)
        rows = self._bm25(known, idf, first, n, where)
        if len(rows) < n:
            return self._bm25(known, idf, by_rarity, n, where)
        floor = rows[n - 1][1]
        # The most common tokens whose idfs (as often as the query repeats them) sum to at most the floor.
        bound, essential = 0.0, list(by_rarity)
        while essential:
            weight = idf[essential[-1]] * known.count(essential[-1])
            if bound + weight > floor:
                break
            bound += weight
            essential.pop()
        if set(essential) <= set(first):
            return rows  # every chunk that can be among the n best was scored by the first pass
        return self._bm25(known, idf, sorted(set(essential) | set(first)), n, where)

    def _bm25(self, known: list[str], idf: dict[str, float], match: Sequence[str], n: int,
              where: ChunkFilter | None) -> list[tuple[int, float]]:
        """The n best chunks holding one of the tokens in match, by BM25 over all the query's tokens."""
        sql, args = _where(where)
        query = " | ".join("'" + t.replace("'", "''").replace("\\", "\\\\") + "'" for t in match)
        with self.db.connection() as conn:
            rows = conn.execute(
                "WITH q(token, idf) AS (SELECT * FROM unnest(%s::text[], %s::float8[])) "
                "SELECT c.id, sum(q.idf * cardinality(u.positions)::float8 / (cardinality(u.positions) "
                "  + %s * (1 - %s + %s * c.length / %s))) AS score "
                "FROM index_chunks c CROSS JOIN LATERAL unnest(c.lexical) u JOIN q ON q.token = u.lexeme "
                f"WHERE c.lexical @@ %s::tsquery AND {sql} GROUP BY c.id ORDER BY score DESC, c.id LIMIT %s",
                [known, [idf[t] for t in known], K1, B, B, self._avg_length, query, *args, int(n)]).fetchall()
        return [(int(i), float(s)) for i, s in rows if s > 0]

    def cosines(self, vector: np.ndarray, ids: Sequence[int]) -> dict[int, float]:
        ids = [int(i) for i in ids]
        if not ids:
            return {}
        with self.db.connection() as conn:
            rows = conn.execute("SELECT id, -(embedding <#> %s::vector) FROM index_chunks WHERE id = ANY(%s)",
                                [_vector_text(vector), ids]).fetchall()
        return {int(i): float(s) for i, s in rows}

    def count(self, where: ChunkFilter | None = None) -> int:
        if not where:
            return self._chunk_count
        sql, args = _where(where)
        with self.db.connection() as conn:
            (n,) = conn.execute(f"SELECT count(*) FROM index_chunks c WHERE {sql}", args).fetchone()
        return int(n)

    # -- records ------------------------------------------------------------------------------------

    _CHUNK_SQL = ("SELECT c.id, c.chunk_id, c.doc_id, c.start_at, c.end_at, c.text, d.title, d.source, d.url, "
                  "d.published, c.spans, d.path, c.sentence_vectors FROM index_chunks c JOIN index_documents d "
                  "USING (doc_id) ")

    def _records(self, rows) -> dict[int, ChunkRecord]:
        out = {}
        with self._lock:
            for (id_, chunk_id, doc_id, start, end, text, title, source, url, published, spans, path, blob) in rows:
                id_ = int(id_)
                spans = spans if isinstance(spans, list) else json.loads(spans)
                sentences = tuple((int(s), int(e), id_ * SENTENCE_SLOTS + i) for i, (s, e) in enumerate(spans))
                out[id_] = ChunkRecord(id_, chunk_id, doc_id, start, end, text, title, source, url, published,
                                       sentences, path)
                if len(self._sentences) >= self.CACHE_CHUNKS:
                    self._sentences.pop(next(iter(self._sentences)))
                self._sentences[id_] = np.frombuffer(bytes(blob), dtype=np.float16).reshape(-1, DIM)
        return out

    def chunks(self, ids: Sequence[int]) -> dict[int, ChunkRecord]:
        ids = [int(i) for i in ids]
        if not ids:
            return {}
        with self.db.connection() as conn:
            return self._records(conn.execute(self._CHUNK_SQL + "WHERE c.id = ANY(%s)", [ids]).fetchall())

    def neighbours(self, id: int, reach: int) -> dict[int, ChunkRecord]:
        with self.db.connection() as conn:
            rows = conn.execute(
                self._CHUNK_SQL + "JOIN index_chunks me ON me.doc_id = c.doc_id WHERE me.id = %s AND c.id <> %s "
                "AND c.ordinal BETWEEN me.ordinal - %s AND me.ordinal + %s", [int(id), int(id), reach, reach]).fetchall()
        return self._records(rows)

    def _sentence_rows(self, ids: list[int]) -> np.ndarray:
        chunks = sorted({i // SENTENCE_SLOTS for i in ids})
        with self._lock:
            missing = [c for c in chunks if c not in self._sentences]
        if missing:
            self.chunks(missing)
        with self._lock:
            out = np.zeros((len(ids), DIM), dtype=np.float16)
            for k, i in enumerate(ids):
                vectors = self._sentences.get(i // SENTENCE_SLOTS)
                if vectors is not None and i % SENTENCE_SLOTS < len(vectors):
                    out[k] = vectors[i % SENTENCE_SLOTS]
        return out

    def document_frequencies(self, tokens: Sequence[str]) -> dict[str, int]:
        """Kept per view (one generation of the index): the question's query and its lexical search
        ask for the same tokens."""
        tokens = sorted(set(tokens))
        with self._lock:
            missing = [t for t in tokens if t not in self._dfs]
        if missing:
            with self.db.connection() as conn:
                found = {t: int(df) for t, df in conn.execute(
                    "SELECT token, df FROM index_terms WHERE token = ANY(%s) AND df > 0", [missing])}
            with self._lock:
                if len(self._dfs) > 100_000:
                    self._dfs.clear()
                self._dfs.update({t: found.get(t, 0) for t in missing})
        with self._lock:
            return {t: self._dfs[t] for t in tokens if self._dfs.get(t)}

    def coverage(self) -> dict:
        if self._coverage is None:
            with self.db.transaction() as conn:
                (articles,) = conn.execute("SELECT count(*) FROM index_documents").fetchone()
                first, last = conn.execute(
                    "SELECT min(published_day)::text, max(published_day)::text FROM index_documents").fetchone()
                sources = conn.execute(
                    "SELECT source, count(*) AS n FROM index_documents WHERE source <> '' GROUP BY source "
                    "ORDER BY n DESC, source").fetchall()
            self._coverage = {"articles": int(articles), "first": first or "", "last": last or "",
                              "sources": [{"source": s, "articles": int(n)} for s, n in sources]}
        return self._coverage

    def leads(self, where: ChunkFilter | None = None) -> list[ChunkRecord]:
        sql, args = _where(where)
        with self.db.connection() as conn:
            rows = conn.execute(self._CHUNK_SQL + f"WHERE c.ordinal = 0 AND {sql}", args).fetchall()
        return sorted(self._records(rows).values(), key=lambda c: (c.published, c.row), reverse=True)

    def vectors_of(self, ids: Sequence[int]) -> np.ndarray:
        ids = [int(i) for i in ids]
        if not ids:
            return np.zeros((0, DIM), dtype=np.float32)
        with self.db.connection() as conn:
            found = {int(i): v for i, v in conn.execute(
                "SELECT id, embedding::text FROM index_chunks WHERE id = ANY(%s)", [ids])}
        return np.asarray([np.asarray(json.loads(found[i]), dtype=np.float32) for i in ids], dtype=np.float32)

    def close(self) -> None:
        """The database's pool belongs to the process (Database.shared): nothing of the view's to close."""


class PostgresIndex:
    """The write side: what is indexed, and updates applied as one transaction each."""

    def __init__(self, db: Database):
        self.db = db

    def generation(self) -> int:
        with self.db.connection() as conn:
            row = conn.execute("SELECT value FROM index_state WHERE key = 'generation'").fetchone()
        return int(row[0]) if row else 0

    def manifest(self) -> dict | None:
        with self.db.connection() as conn:
            row = conn.execute("SELECT value FROM index_state WHERE key = 'manifest'").fetchone()
        return row[0] if row else None

    def size_bytes(self) -> int:
        """Disk used by the index's tables and their indexes."""
        with self.db.connection() as conn:
            (size,) = conn.execute(
                "SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c WHERE c.relkind = 'r' "
                "AND c.relname LIKE 'index\\_%'").fetchone()
        return int(size or 0)

    def signatures(self) -> dict[str, str]:
        """doc_id -> the signature it was indexed with."""
        with self.db.connection() as conn:
            return dict(conn.execute("SELECT doc_id, signature FROM index_documents"))

    def paths(self) -> frozenset[str]:
        with self.db.connection() as conn:
            return frozenset(p for (p,) in conn.execute("SELECT path FROM index_documents"))

    def multilingual_encoder(self) -> str | None:
        """The encoder whose vectors the multilingual column holds (None: no build has written any)."""
        with self.db.connection() as conn:
            return self._stored(conn, "multilingual_encoder")

    def lacking_multilingual(self, encoder: str) -> frozenset[str]:
        """The documents with a chunk that has no vector of this multilingual encoder."""
        with self.db.connection() as conn:
            if self._stored(conn, "multilingual_encoder") != encoder:
                return frozenset(d for (d,) in conn.execute("SELECT doc_id FROM index_documents"))
            return frozenset(d for (d,) in conn.execute(
                "SELECT DISTINCT doc_id FROM index_chunks WHERE multilingual IS NULL"))

    def apply(self, documents: Iterable[IndexedDocument], removed: Sequence[str], manifest: dict,
              multilingual: MultilingualVectors | None = None) -> int:
        """Replace the removed and re-indexed documents and insert the new ones in one transaction;
        returns the new generation. Nothing of it is visible until it commits. multilingual: the
        encoder of the new chunks' multilingual vectors and those of stored chunks that lack one; the
        manifest names the encoder only when every chunk then has its vector."""
        documents = list(documents)
        gone = sorted(set(removed) | {d.doc_id for d in documents})
        with self.db.transaction() as conn:
            # One writer at a time: a second build waits here instead of interleaving its counts.
            conn.execute("SELECT pg_advisory_xact_lock(hashtext('citebot:index'))")
            if multilingual is not None:
                if self._stored(conn, "multilingual_encoder") != multilingual.encoder:  # never two encoders mixed
                    conn.execute("UPDATE index_chunks SET multilingual = NULL WHERE multilingual IS NOT NULL")
            if gone:
                # Term statistics lose the tokens of the chunks about to go (each chunk counts a token once).
                conn.execute(
                    "UPDATE index_terms t SET df = t.df - g.n FROM (SELECT u AS token, count(*) AS n FROM index_chunks c, "
                    "unnest(tsvector_to_array(c.lexical)) u WHERE c.doc_id = ANY(%s) GROUP BY u) g WHERE t.token = g.token",
                    [gone])
                conn.execute("DELETE FROM index_documents WHERE doc_id = ANY(%s)", [gone])
            terms: dict[str, int] = {}
            with conn.cursor() as cur:
                with cur.copy("COPY index_documents (doc_id, title, source, url, published, published_day, path, "
                              "text, signature) FROM STDIN") as copy:
                    for d in documents:
                        copy.write_row((d.doc_id, d.title, d.source, d.url, d.published, published_day(d.published),
                                        d.path, d.text, d.signature))
                with cur.copy("COPY index_chunks (doc_id, ordinal, chunk_id, start_at, end_at, text, hash, spans, "
                              "embedding, sentence_vectors, lexical, length, published_day, source_key, multilingual) "
                              "FROM STDIN") as copy:
                    for d in documents:
                        day, key = published_day(d.published), source_key(d.source, d.url)
                        for c in d.chunks:
                            for t in set(c["tokens"]):
                                terms[t] = terms.get(t, 0) + 1
                            other = c.get("multilingual") if multilingual is not None else None
                            copy.write_row((
                                d.doc_id, c["ordinal"], c["chunk_id"], c["start"], c["end"], c["text"], c["hash"],
                                json.dumps(c["spans"]), _vector_text(c["vector"]),
                                np.ascontiguousarray(c["sentence_vectors"], dtype=np.float16).tobytes(),
                                _tsvector(c["tokens"]), len(c["tokens"]), day, key,
                                None if other is None else _vector_text(other)))
                if multilingual is not None and multilingual.backfill:
                    cur.execute("CREATE TEMPORARY TABLE multilingual_backfill (doc_id text, ordinal integer, "
                                "vector halfvec(384)) ON COMMIT DROP")
                    with cur.copy("COPY multilingual_backfill FROM STDIN") as copy:
                        for (doc_id, ordinal), v in multilingual.backfill.items():
                            copy.write_row((doc_id, ordinal, _vector_text(v)))
                    cur.execute("UPDATE index_chunks c SET multilingual = b.vector FROM multilingual_backfill b "
                                "WHERE c.doc_id = b.doc_id AND c.ordinal = b.ordinal")
            if terms:
                conn.execute(
                    "INSERT INTO index_terms (token, df) SELECT * FROM unnest(%s::text[], %s::int[]) "
                    "ON CONFLICT (token) DO UPDATE SET df = index_terms.df + excluded.df",
                    [list(terms), list(terms.values())])
            conn.execute("DELETE FROM index_terms WHERE df <= 0")
            chunks, total = conn.execute("SELECT count(*), coalesce(sum(length), 0) FROM index_chunks").fetchone()
            (documents_n,) = conn.execute("SELECT count(*) FROM index_documents").fetchone()
            (sentences,) = conn.execute(
                "SELECT coalesce(sum(jsonb_array_length(spans)), 0) FROM index_chunks").fetchone()
            row = conn.execute("SELECT value FROM index_state WHERE key = 'generation'").fetchone()
            generation = (int(row[0]) if row else 0) + 1
            manifest = {**manifest, "chunks": int(chunks), "documents": int(documents_n), "sentences": int(sentences),
                        "generation": generation}
            manifest.pop("multilingual", None)
            state = {"manifest": manifest, "generation": generation, "chunks": int(chunks),
                     "avg_length": (float(total) / chunks) if chunks else 1.0}
            if multilingual is not None:
                state["multilingual_encoder"] = multilingual.encoder
            encoder = state.get("multilingual_encoder") or self._stored(conn, "multilingual_encoder")
            (lacking,) = conn.execute("SELECT count(*) FROM index_chunks WHERE multilingual IS NULL").fetchone()
            if encoder and chunks and not lacking:  # questions in other languages are searched only then
                manifest["multilingual"] = {"encoder": encoder, "dim": DIM}
            for key, value in state.items():
                conn.execute("INSERT INTO index_state (key, value) VALUES (%s, %s::jsonb) "
                             "ON CONFLICT (key) DO UPDATE SET value = excluded.value", [key, json.dumps(value)])
        log.info("Index generation %d: %d documents written, %d removed", generation, len(documents),
                 len(set(removed)))
        return generation


    @staticmethod
    def _stored(conn, key: str):
        row = conn.execute("SELECT value FROM index_state WHERE key = %s", [key]).fetchone()
        return row[0] if row else None


def _tsvector(tokens: Sequence[str]) -> str:
    """The tokens as a tsvector literal with positions (so a token's count is its number of positions)."""
    positions: dict[str, list[int]] = {}
    for i, t in enumerate(tokens, 1):
        positions.setdefault(t, []).append(min(i, 16383))  # PostgreSQL's largest position
    return " ".join("'" + t.replace("\\", "\\\\").replace("'", "''") + "':" + ",".join(map(str, p[:256]))
                    for t, p in positions.items())
