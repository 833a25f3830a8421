"""The Query: a question as every stage of the search reads it, built once per question.

The engine turns the question's text into a Query (its vector, its lexical tokens, the BM25 idf
weight of each token the index knows); the retriever, the re-ranker and the relevance score take
it and return their results, so no stage recomputes or caches what another stage made.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Mapping

import numpy as np

from .tokenize import tokenize


def bm25_idf(document_frequency: int, documents: int) -> float:
    """BM25's inverse document frequency (the Lucene form bm25s uses), for a word found in
    document_frequency of documents chunks; a word never seen (0) gets the highest weight."""
    return math.log(1 + (documents - document_frequency + 0.5) / (document_frequency + 0.5))


@dataclass(frozen=True)
class Query:
    """A question's text, its unit vector, its stemmed content words (repeats kept, as BM25
    counts them) and the idf weight of each word the index knows."""

    text: str
    vector: np.ndarray = field(repr=False)
    tokens: tuple[str, ...]
    weights: Mapping[str, float]
    # The weight of a word the index has never seen: the highest idf (relevance.coverage).
    unseen_weight: float = 0.0

    @classmethod
    def build(
        cls, text: str, embed: Callable[[str], np.ndarray],
        document_frequencies: Callable[[list[str]], dict[str, int]], documents: int,
    ) -> "Query":
        """The Query for text: embed gives its vector, document_frequencies the number of chunks
        holding each known token (tokens the index lacks are left out), documents the chunk count."""
        tokens = tokenize(text)
        weights = {t: bm25_idf(df, documents) for t, df in document_frequencies(tokens).items()}
        return cls(text, embed(text), tuple(tokens), weights, bm25_idf(0, documents))
