"""Lexical postings: for each token, the chunks holding it and how often, plus each chunk's length.

BM25 is computed at question time from these raw counts rather than stored as scores (as bm25s
stores them): a segmented index (index/store/segments.py) scores every segment with one set of
corpus statistics (document frequencies and the mean length over all live chunks), so a chunk's
score does not depend on which segment holds it, and a chunk masked as deleted counts nowhere.
The formula is bm25s's "lucene" variant (k1 1.5, b 0.75), so a single build scores as before.

Files in a build folder: postings/ (indptr, rows, counts and lengths as .npy, memory-mapped when
loaded: a question reads only its tokens' postings) and postings/vocabulary.json.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

K1, B = 1.5, 0.75
POSTINGS_DIR = "postings"
VOCABULARY_FILE = "vocabulary.json"
ARRAYS = ("indptr", "rows", "counts", "lengths")


@dataclass(frozen=True)
class CorpusStatistics:
    """What BM25 needs to know about the whole live corpus: its size, its mean chunk length, and
    the document frequency of each query token (tokens no chunk holds are left out)."""

    chunks: int
    mean_length: float
    frequencies: dict[str, int]


class Postings:
    """A token's chunks are rows[indptr[t]:indptr[t + 1]] (sorted), with their counts alongside."""

    def __init__(self, vocabulary: dict[str, int], indptr: np.ndarray, rows: np.ndarray, counts: np.ndarray,
                 lengths: np.ndarray):
        self.vocabulary = vocabulary
        self.indptr = indptr
        self.rows = rows
        self.counts = counts
        self.lengths = lengths  # tokens in each chunk, title included

    @classmethod
    def build(cls, corpus_tokens: Sequence[Sequence[str]]) -> "Postings":
        from array import array
        from collections import Counter

        vocabulary: dict[str, int] = {}
        # One entry per distinct token of a chunk, in compact arrays (a Python list of ints would
        # take ~8x the memory at a million chunks).
        token_ids, chunk_rows, counts = array("i"), array("i"), array("i")
        lengths = np.zeros(len(corpus_tokens), dtype=np.float32)
        for row, tokens in enumerate(corpus_tokens):
            lengths[row] = len(tokens)
            for token, count in Counter(tokens).items():
                token_ids.append(vocabulary.setdefault(token, len(vocabulary)))
                chunk_rows.append(row)
                counts.append(count)
        tokens_of = np.frombuffer(token_ids, dtype=np.int32)
        order = np.argsort(tokens_of, kind="stable")  # by token; rows stay ascending within one
        indptr = np.zeros(len(vocabulary) + 1, dtype=np.int64)
        np.cumsum(np.bincount(tokens_of, minlength=len(vocabulary)), out=indptr[1:])
        rows = np.frombuffer(chunk_rows, dtype=np.int32)[order]
        tfs = np.minimum(np.frombuffer(counts, dtype=np.int32)[order], 65535).astype(np.uint16)
        return cls(vocabulary, indptr, rows, tfs, lengths)

    def save(self, folder: Path) -> None:
        (folder / POSTINGS_DIR).mkdir()
        for name in ARRAYS:
            np.save(folder / POSTINGS_DIR / f"{name}.npy", getattr(self, name))
        words = sorted(self.vocabulary, key=self.vocabulary.__getitem__)
        (folder / POSTINGS_DIR / VOCABULARY_FILE).write_text(json.dumps(words, ensure_ascii=False))

    @classmethod
    def load(cls, folder: Path) -> "Postings":
        """Raises OSError, ValueError or KeyError for a missing or damaged file."""
        indptr, rows, counts, lengths = (np.load(folder / POSTINGS_DIR / f"{name}.npy", mmap_mode="r")
                                         for name in ARRAYS)
        words = json.loads((folder / POSTINGS_DIR / VOCABULARY_FILE).read_text())
        if not isinstance(words, list) or len(words) + 1 != len(indptr) or len(rows) != len(counts) \
                or (len(indptr) and indptr[-1] != len(rows)):
            raise ValueError("the postings and the vocabulary disagree")
        return cls({w: i for i, w in enumerate(words)}, indptr, rows, counts, lengths)

    @property
    def chunk_count(self) -> int:
        return len(self.lengths)

    def chunks_with(self, token: str) -> np.ndarray:
        """The sorted rows of the chunks holding token (none for a token never seen)."""
        t = self.vocabulary.get(token)
        if t is None:
            return self.rows[:0]
        return self.rows[self.indptr[t]:self.indptr[t + 1]]

    def frequency(self, token: str, deleted: np.ndarray | None = None) -> int:
        """How many chunks hold token, leaving out the rows marked in deleted (a bool per row)."""
        rows = self.chunks_with(token)
        if deleted is None or not len(rows):
            return len(rows)
        return int(len(rows) - np.count_nonzero(deleted[rows]))

    def total_length(self, deleted: np.ndarray | None = None) -> float:
        if deleted is None:
            return float(self.lengths.sum(dtype=np.float64))
        return float(self.lengths[~deleted].sum(dtype=np.float64))

    def statistics(self, tokens: Sequence[str]) -> CorpusStatistics:
        """This build's own statistics, when it is searched alone."""
        n = self.chunk_count
        frequencies = {t: f for t in set(tokens) if (f := self.frequency(t))}
        return CorpusStatistics(n, self.total_length() / n if n else 1.0, frequencies)

    def scores(self, tokens: Sequence[str], stats: CorpusStatistics) -> np.ndarray:
        """BM25 of every row for the query's tokens (a repeated token counts again, as in bm25s),
        with the corpus statistics given."""
        from ..search.query import bm25_idf

        out = np.zeros(self.chunk_count, dtype=np.float32)
        mean = np.float32(stats.mean_length)
        for token in tokens:
            t = self.vocabulary.get(token)
            df = stats.frequencies.get(token, 0)
            if t is None or not df:
                continue
            a, b = self.indptr[t], self.indptr[t + 1]
            rows, counts = self.rows[a:b], self.counts[a:b].astype(np.float32)
            norm = K1 * ((1 - B) + B * self.lengths[rows] / mean)  # k1 (1 - b + b l / mean l)
            out[rows] += np.float32(bm25_idf(df, stats.chunks)) * counts / (counts + norm)
        return out
