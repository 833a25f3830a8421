"""Sentence-aware chunks: windows of whole sentences with a small overlap, offsets into the document."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterator

from .documents import Document
from .sentences import sentence_spans


@dataclass(frozen=True)
class Chunk:
    """A passage of one document: document.text[start:end] == text."""

    chunk_id: str
    doc_id: str
    ordinal: int
    start: int
    end: int
    text: str
    # Its sentences as (start, end) offsets into text: what excerpts are chosen from.
    sentences: tuple[tuple[int, int], ...] = ()


def embedding_text(title: str, text: str) -> str:
    """What the model reads for a chunk: its article title gives the passage its context."""
    return f"{title}\n{text}" if title else text


def _words(text: str) -> int:
    return len(text.split())


def _split_long(text: str, start: int, end: int, max_words: int) -> Iterator[tuple[int, int]]:
    """Cut a run-on 'sentence' (a table row, a list without stops) at word boundaries."""
    words = [m.span() for m in re.finditer(r"\S+", text[start:end])]
    for i in range(0, len(words), max_words):
        piece = words[i : i + max_words]
        yield start + piece[0][0], start + piece[-1][1]


def _segments(doc: Document, main_language: str) -> Iterator[list[tuple[int, int]]]:
    """Sentence spans of consecutive main-language paragraphs; a foreign paragraph breaks the run."""
    run: list[tuple[int, int]] = []
    for para in doc.paragraphs:
        if para.language and para.language != main_language:
            if run:
                yield run
            run = []
            continue
        run.extend(sentence_spans(doc.text, para.start, para.end))
    if run:
        yield run


def chunk_document(
    doc: Document, main_language: str = "en", max_words: int = 120, overlap_words: int = 30
) -> list[Chunk]:
    """Pack whole sentences into chunks of at most max_words, repeating up to overlap_words.

    max_words=0 makes each main-language paragraph one chunk, whatever its length (the passage
    unit of SQuAD-style evaluations).
    """
    if max_words == 0:
        return _paragraph_chunks(doc, main_language)
    if max_words < 10:
        raise ValueError("chunk size must be 0 (one per paragraph) or at least 10 words")
    chunks: list[Chunk] = []
    for sentences in _segments(doc, main_language):
        units = []
        for s, e in sentences:
            if _words(doc.text[s:e]) > max_words:
                units.extend(_split_long(doc.text, s, e, max_words))
            else:
                units.append((s, e))
        sizes = [_words(doc.text[s:e]) for s, e in units]
        first = 0
        while first < len(units):
            last, total = first, sizes[first]
            while last + 1 < len(units) and total + sizes[last + 1] <= max_words:
                last += 1
                total += sizes[last]
            start, end = units[first][0], units[last][1]
            spans = tuple((s - start, e - start) for s, e in units[first : last + 1])
            chunks.append(
                Chunk(f"{doc.doc_id}:{len(chunks)}", doc.doc_id, len(chunks), start, end, doc.text[start:end], spans)
            )
            if last + 1 >= len(units):
                break
            # Step back over trailing sentences that fit in the overlap, but always move forward.
            nxt, carried = last + 1, 0
            while nxt - 1 > first and carried + sizes[nxt - 1] <= overlap_words:
                nxt -= 1
                carried += sizes[nxt]
            first = nxt
    return chunks


def _paragraph_chunks(doc: Document, main_language: str) -> list[Chunk]:
    chunks: list[Chunk] = []
    for para in doc.paragraphs:
        if para.language and para.language != main_language:
            continue
        start, end = para.start, para.end
        if doc.text[start:end].strip():
            spans = tuple((s - start, e - start) for s, e in sentence_spans(doc.text, start, end))
            chunks.append(
                Chunk(f"{doc.doc_id}:{len(chunks)}", doc.doc_id, len(chunks), start, end, doc.text[start:end], spans))
    return chunks
