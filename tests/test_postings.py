"""BM25 from raw postings: the scores bm25s gave, and the same scores however the chunks are split
into segments or masked (fast: no model, no index on disk beyond a temporary folder)."""
from __future__ import annotations

import bm25s
import numpy as np
import pytest

from index.store.postings import CorpusStatistics, Postings

CHUNKS = [
    ["bank", "rais", "rate", "inflat", "bank"],
    ["wheat", "harvest", "drought", "bread", "price"],
    ["rail", "strike", "pay", "rise"],
    ["copper", "price", "high", "chile", "strike", "mine"],
    ["bank", "rate", "mortgag", "repay"],
    ["ferri", "island", "repair", "engin"],
]
QUERIES = [["bank", "rate"], ["strike", "price", "price"], ["unknown"], ["copper", "bank", "ferri"]]


def test_scores_are_bm25s_scores_and_survive_a_save_and_load(tmp_path):
    reference = bm25s.BM25()
    reference.index(CHUNKS, show_progress=False)
    Postings.build(CHUNKS).save(tmp_path)
    postings = Postings.load(tmp_path)
    for query in QUERIES:
        ids = reference.get_tokens_ids(query)
        expected = np.asarray(reference.get_scores_from_ids(ids)) if ids else np.zeros(len(CHUNKS))
        ours = postings.scores(query, postings.statistics(query))
        assert np.allclose(ours, expected, atol=1e-5), query


def test_chunks_split_into_segments_score_as_one_index_with_shared_statistics():
    whole = Postings.build(CHUNKS)
    first, second = Postings.build(CHUNKS[:4]), Postings.build(CHUNKS[4:])
    for query in QUERIES:
        frequencies = {t: first.frequency(t) + second.frequency(t) for t in set(query)}
        stats = CorpusStatistics(len(CHUNKS), (first.total_length() + second.total_length()) / len(CHUNKS),
                                 {t: f for t, f in frequencies.items() if f})
        split = np.concatenate([first.scores(query, stats), second.scores(query, stats)])
        assert np.allclose(split, whole.scores(query, whole.statistics(query)), atol=1e-6), query


def test_a_masked_chunk_counts_nowhere():
    without = Postings.build(CHUNKS[:2] + CHUNKS[3:])
    masked = Postings.build(CHUNKS)
    deleted = np.zeros(len(CHUNKS), dtype=bool)
    deleted[2] = True
    for query in QUERIES:
        stats = CorpusStatistics(len(CHUNKS) - 1, masked.total_length(deleted) / (len(CHUNKS) - 1),
                                 {t: f for t in set(query) if (f := masked.frequency(t, deleted))})
        scores = masked.scores(query, stats)
        scores[deleted] = 0
        assert np.allclose(np.delete(scores, 2), without.scores(query, without.statistics(query)), atol=1e-6)


def test_damaged_postings_are_refused(tmp_path):
    Postings.build(CHUNKS).save(tmp_path)
    (tmp_path / "postings" / "vocabulary.json").write_text('["bank"]')
    with pytest.raises(ValueError, match="disagree"):
        Postings.load(tmp_path)
