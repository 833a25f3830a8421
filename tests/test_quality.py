"""Retrieval quality on a small fixed question set: guards the excerpt gains measured on SQuAD.

A user asks the questions of tests/data/regression/questions.jsonl; what they see first must be
an excerpt holding the answer, and off-topic questions must get the honest "no answer".
"""
from __future__ import annotations

from pathlib import Path

import pytest

from index.evaluate import contains_answer, evaluate, load_jsonl

DATA = Path(__file__).parent / "data" / "regression"


@pytest.fixture(scope="module")
def engine(tmp_path_factory, embedder):
    from index.config import Settings
    from index.engine import Engine

    engine = Engine(Settings(data_dir=tmp_path_factory.mktemp("quality"), corpus_dir=DATA / "corpus"), embedder)
    engine.build()
    return engine


def test_the_first_excerpt_answers_when_the_answer_is_a_paragraph_away_from_the_topic(engine):
    answer = engine.ask("Why are shopkeepers against the cycle lanes?")
    assert "losing roadside parking" in answer.citations[0].excerpt
    answer = engine.ask("When does Celvora expect the vaccine to be approved?")
    assert "next spring" in answer.citations[0].excerpt


def test_first_cited_excerpt_recall_on_the_fixed_set(engine):
    result = evaluate(engine, load_jsonl(DATA / "questions.jsonl"), "hybrid")
    # 15 of 15 since the reader also reads the chunks next to the best one (10 before; 8 before
    # excerpts were scored with sentence vectors and title-aware weights).
    assert result["recall@1"] >= 0.93
    assert result["chunk_recall@1"] == 1.0


def test_off_topic_questions_get_no_answer_and_answerable_ones_do(engine):
    result = evaluate(engine, load_jsonl(DATA / "questions.jsonl"), "hybrid")
    assert result["abstain_rate_by_kind"]["off-topic"] == 1.0
    assert result["abstain_rate_answerable"] == 0.0
    # The near misses (the story is here, the asked fact is not) are asked too: today the engine
    # answers all 8 of them (docs/quality.md); this set is where that work is measured.
    assert "near-miss" in result["abstain_rate_by_kind"]


def test_a_bold_answer_is_a_right_one(engine):
    """Bold only when the reader is sure and the span is of the asked kind: what is bold is right."""
    result = evaluate(engine, load_jsonl(DATA / "questions.jsonl"), "hybrid")
    assert result["bold_shown"] > 0
    assert result["bold_holds_answer"] == 1.0
    answer = engine.ask("How many bronze statues is the Brussels museum giving back?")
    first = answer.citations[0]
    assert first.excerpt[first.highlight[0]:first.highlight[1]] == "14"


def test_the_excerpt_is_the_answering_sentences_not_the_whole_article(engine):
    answer = engine.ask("How many properties were damaged in the 2013 flood?")
    first = answer.citations[0]
    assert contains_answer(first.excerpt, ("3,000 properties",))
    # Not the whole passage: its opening sentences, which hold no number, are left out. The reader
    # may hedge onto the neighbouring sentences with other numbers ("18 steel gates", "40,000
    # homes") when it gives them a few percent: that hedge measured better than cutting them
    # (docs/quality.md, "Shorter excerpts, tried").
    assert len(first.excerpt) < len(first.chunk_text) and "tidal barrier" not in first.excerpt
