"""Re-rank candidate chunks by their best excerpt, and choose each chunk's excerpt.

Fusion ranks whole chunks; a question is usually answered by a sentence or two. Each candidate's
best excerpt is found (index/read/excerpt.py: idf share of the question + cosine of the stored sentence
vectors) and its score added to the chunk's fused score. On SQuAD dev this lifted excerpt
recall@1 from 0.757 to 0.807 (bench/README.md, "Excerpts and re-ranking").
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..search.query import Query
from ..search.retrieval import Hit
from ..search.tokenize import tokenize
from ..store.interface import ChunkRecord
from .excerpt import select_excerpt, sentence_words

RERANK_DEPTH = 20  # fused candidates whose sentences are read
# Weight of the best excerpt's score next to the fused score. Tuned with convex fusion (scores
# 0..1); reciprocal rank fusion scores are ~0.03, so with CITEBOT_FUSION=rrf the excerpt decides.
SENTENCE_WEIGHT = 1.0
# Question words in the article's title are the story's context, not what picks the sentence:
# "Why are shopkeepers against the cycle lanes?" asked of "Council backs new cycle lanes".
TITLE_WORD_WEIGHT = 0.5


@dataclass(frozen=True)
class Ranked:
    """A candidate chunk after re-ranking: its excerpt span (offsets in chunk.text) and scores."""

    hit: Hit
    chunk: ChunkRecord
    span: tuple[int, int]
    support: float  # score of its excerpt
    score: float
    words: frozenset[str]  # the question's indexed tokens found in the chunk (for relevance)


def rerank(
    hits: Sequence[Hit],
    records: dict[int, ChunkRecord],
    query: Query,
    sentence_vectors: np.ndarray,
    reorder: bool = True,
) -> list[Ranked]:
    """Excerpt and support of each hit; with reorder, hits sorted by fused score + excerpt score.

    reorder=False keeps the retriever's order (the plain dense and BM25 baselines).
    """
    chunks = [records[h.row] for h in hits]
    rows = sorted({r for c in chunks for _, _, r in c.sentences})
    # One read of the (memory-mapped) sentence vectors for all candidates.
    cosines = dict(zip(rows, (np.asarray(sentence_vectors[rows], dtype=np.float32) @ query.vector).tolist()))
    # Overlapping chunks share sentences: each sentence's question words are read once.
    words_of: dict[str, frozenset[str]] = {}
    by_title: dict[str, dict[str, float]] = {}
    out = []
    for hit, chunk in zip(hits, chunks):
        if chunk.title not in by_title:
            in_title = set(tokenize(chunk.title))
            by_title[chunk.title] = {t: w * (TITLE_WORD_WEIGHT if t in in_title else 1.0)
                                     for t, w in query.weights.items()}
        spans = [(s, e) for s, e, _ in chunk.sentences]
        sentence_tokens = []
        for s, e in spans:
            sentence = chunk.text[s:e]
            if sentence not in words_of:
                words_of[sentence] = sentence_words(sentence, query.weights)
            sentence_tokens.append(words_of[sentence])
        span, support = select_excerpt(
            chunk.text, spans, [cosines[r] for *_, r in chunk.sentences], by_title[chunk.title], sentence_tokens
        )
        score = hit.score + SENTENCE_WEIGHT * support if reorder else hit.score
        out.append(Ranked(hit, chunk, span, support, score, frozenset().union(*sentence_tokens)))
    if reorder:
        out.sort(key=lambda r: (-r.score, r.hit.row))
    return out
