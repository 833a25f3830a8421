"""What the engine needs from an index store, whichever stores it: the contract (docs/storage.md).

A store hands out read-only views of the index (IndexView); everything above a view (the query,
fusion, re-ranking, the reader, excerpts, abstention, time words, follow-ups) is shared by every
store. Filters are values (ChunkFilter) that each store turns into what it searches with: row
arrays for the files, a WHERE clause for a database, one per segment for a segmented index.
Chunk ids are opaque integers, unique within one view.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence

import numpy as np


@dataclass(frozen=True)
class ChunkRecord:
    """A chunk with the citation fields of its document, as stored."""

    row: int  # the chunk's id in its view
    chunk_id: str
    doc_id: str
    start: int
    end: int
    text: str
    title: str
    source: str
    url: str
    published: str
    sentences: tuple[tuple[int, int, int], ...] = ()  # (start, end, sentence vector id), offsets into text
    path: str = ""  # the article's file, relative to the corpus folder


@dataclass(frozen=True)
class ChunkFilter:
    """Which chunks a search may return; an empty filter allows all.

    since/until: ISO days, inclusive, on the article's publication date (undated articles never
    match a date window); sources: the article's source or web address contains one of these
    (case-insensitive, ignoring spaces, dots and dashes); doc_ids: only these articles;
    published_by: no article dated after this ISO day (undated articles pass); paths: only the
    articles of these files, relative to the corpus folder (ChunkRecord.path: what a refresh just
    added, for topic alerts)."""

    since: str = ""
    until: str = ""
    sources: tuple[str, ...] = ()
    doc_ids: tuple[str, ...] = ()
    published_by: str = ""
    paths: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.since or self.until or self.sources or self.doc_ids or self.published_by or self.paths)


class SentenceVectors(Protocol):
    """Sentence vectors by id: vectors[[id, ...]] is an array with one row per id."""

    def __getitem__(self, ids) -> np.ndarray: ...


class IndexView(Protocol):
    """One consistent, read-only view of the index, shared by the threads answering questions."""

    manifest: dict  # model, dim, language, chunks, sentences, built_at ...
    sentence_vectors: SentenceVectors

    @property
    def chunk_count(self) -> int: ...

    def dense(self, vector: np.ndarray, n: int, where: ChunkFilter | None = None) -> list[tuple[int, float]]:
        """(id, cosine) of the n chunks nearest to a unit vector, best first."""

    def lexical(self, tokens: Sequence[str], n: int, where: ChunkFilter | None = None) -> list[tuple[int, float]]:
        """(id, score) of the n best lexical matches for the query's tokens (positive scores only)."""

    def cosines(self, vector: np.ndarray, ids: Sequence[int]) -> dict[int, float]:
        """Cosine of a unit vector to each chunk."""

    def count(self, where: ChunkFilter | None = None) -> int:
        """How many chunks a filter allows."""

    def chunks(self, ids: Sequence[int]) -> dict[int, ChunkRecord]:
        """Chunk records by id (ids not in the view are left out)."""

    def neighbours(self, id: int, reach: int) -> dict[int, ChunkRecord]:
        """The chunks within reach of this one in the same article, by id, without itself."""

    def document_frequencies(self, tokens: Sequence[str]) -> dict[str, int]:
        """How many chunks hold each token the lexical index knows."""

    def leads(self, where: ChunkFilter | None = None) -> list[ChunkRecord]:
        """The first chunk of each article the filter allows (a story's lead), newest first."""

    def vectors_of(self, ids: Sequence[int]) -> np.ndarray:
        """The chunks' vectors, one row per id, in order."""

    def coverage(self) -> dict:
        """articles, sources (by number of articles), first and last date."""

    def close(self) -> None: ...

    # Optional (issue 25, CITEBOT_MULTILINGUAL): a view whose build stored the multilingual
    # encoder's chunk vectors (index/encoders/multilingual.py) has these; the engine asks
    # getattr(view, "has_multilingual", False) first, so a store without them needs neither.
    #
    # has_multilingual: bool  -- whether multilingual_dense can search
    #
    # def multilingual_dense(self, vector: np.ndarray, n: int, where: ChunkFilter | None = None
    #                        ) -> list[tuple[int, float]]:
    #     """(id, cosine) of the n chunks whose multilingual vectors are nearest to a unit vector
    #     of the same encoder, best first, among the chunks the filter allows."""
