"""Answers: ranked, cited excerpts, with syndicated near-duplicates folded into one citation."""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, replace
from typing import Iterable

from .reader import Reading
from ..store.interface import ChunkRecord

# Two excerpts sharing this much of their vocabulary say the same thing (syndicated copies, overlaps).
NEAR_DUPLICATE_JACCARD = 0.6


@dataclass(frozen=True)
class SourceRef:
    """Another article that carries the same passage."""

    title: str
    source: str
    url: str
    published: str
    doc_id: str


@dataclass(frozen=True)
class Citation:
    """One cited excerpt: document.text[char_start:char_end] == excerpt."""

    rank: int
    excerpt: str
    score: float
    similarity: float
    title: str
    source: str
    url: str
    published: str
    doc_id: str
    chunk_id: str
    char_start: int
    char_end: int
    chunk_text: str = field(default="", repr=False)
    also_in: tuple[SourceRef, ...] = ()
    # The reading model's view, when it read this passage: P(it holds the answer), and the answer
    # it marks as offsets into excerpt (shown in bold), None when not read or outside the excerpt.
    confidence: float | None = None
    highlight: tuple[int, int] | None = None
    path: str = ""  # the article's file, relative to the corpus folder (cited when nothing else is)

    def to_dict(self) -> dict:
        data = asdict(self)
        data.pop("chunk_text")
        data["also_in"] = [asdict(ref) for ref in self.also_in]
        return data


@dataclass(frozen=True)
class Answer:
    """What the engine says to a question: cited excerpts, or an honest abstention."""

    question: str
    abstained: bool
    citations: tuple[Citation, ...]
    retriever: str
    reason: str = ""
    elapsed_ms: float = 0.0
    best_similarity: float = 0.0  # the closest passage's cosine to the question
    relevance: float = 0.0  # what abstention compares with its threshold (index/search/relevance.py)
    support: float = 0.0  # score of the first passage's best excerpt (index/read/excerpt.py)
    confidence: float | None = None  # the reading model's best P(holds the answer); None without it
    # Time: the window searched ("in March 2022"; "" for all dates) and a sentence about dates the
    # reader should know ("The newest article I have on this is from 24 March 2022.").
    timeframe: str = ""
    note: str = ""

    def to_dict(self) -> dict:
        return {
            "question": self.question,
            "abstained": self.abstained,
            "reason": self.reason,
            "note": self.note,
            "timeframe": self.timeframe,
            "retriever": self.retriever,
            "elapsed_ms": round(self.elapsed_ms, 2),
            "best_similarity": round(self.best_similarity, 4),
            "relevance": round(self.relevance, 4),
            "support": round(self.support, 4),
            "confidence": None if self.confidence is None else round(self.confidence, 4),
            "citations": [c.to_dict() for c in self.citations],
        }


def _word_set(text: str) -> set[str]:
    return set(re.findall(r"\w+", text.casefold()))


def _similar_words(wa: set[str], wb: set[str], threshold: float = NEAR_DUPLICATE_JACCARD) -> bool:
    """True when two excerpts' word sets mostly overlap, or one holds nearly all of the other."""
    if not wa or not wb:
        return False
    common = len(wa & wb)
    return common / len(wa | wb) >= threshold or common / min(len(wa), len(wb)) >= 0.9


def _sourcing(c: Citation) -> tuple[int, int, int]:
    """How well a citation is sourced: a link, a named source, a date."""
    return (bool(c.url), bool(c.source), bool(c.published))


def _ref(c: Citation) -> SourceRef:
    return SourceRef(c.title, c.source, c.url, c.published, c.doc_id)


def collapse_near_duplicates(citations: Iterable[Citation]) -> list[Citation]:
    """Keep one citation per passage: the better-sourced copy, noting the others in also_in."""
    kept: list[Citation] = []
    kept_words: list[set[str]] = []  # word sets computed once: this runs for every question
    for cand in citations:
        words = _word_set(cand.excerpt)
        twin_at = next((i for i, w in enumerate(kept_words) if _similar_words(w, words)), None)
        if twin_at is None:
            kept.append(cand)
            kept_words.append(words)
            continue
        twin = kept[twin_at]
        if twin.doc_id == cand.doc_id:
            continue  # overlapping chunks of one article: nothing new to note
        known = {twin.doc_id} | {r.doc_id for r in twin.also_in}
        if cand.doc_id in known:
            continue
        if _sourcing(cand) > _sourcing(twin):
            best, other = cand, twin
            kept_words[twin_at] = words
        else:
            best, other = twin, cand
        kept[twin_at] = replace(
            best, rank=twin.rank, score=twin.score, also_in=best.also_in + (_ref(other),) + other.also_in
        )
    return [replace(c, rank=i) for i, c in enumerate(kept, 1)]


def make_citation(
    rank: int, chunk: ChunkRecord, score: float, similarity: float, span: tuple[int, int],
    reading: Reading | None = None,
) -> Citation:
    """A citation for the excerpt at span (offsets in the chunk's text) of a chunk."""
    start, end = span
    highlight = None
    if reading is not None and reading.span is not None and reading.bold:
        a, b = reading.span
        if start <= a < b <= end and chunk.text[a:b].strip():
            highlight = (a - start, b - start)
    return Citation(
        rank=rank,
        excerpt=chunk.text[start:end],
        score=round(score, 6),
        similarity=round(similarity, 4),
        title=chunk.title,
        source=chunk.source,
        url=chunk.url,
        published=chunk.published,
        doc_id=chunk.doc_id,
        chunk_id=chunk.chunk_id,
        char_start=chunk.start + start,
        char_end=chunk.start + end,
        chunk_text=chunk.text,
        confidence=None if reading is None else round(reading.confidence, 4),
        highlight=highlight,
        path=chunk.path,
    )
