"""A user asks the sample corpus a question and gets cited excerpts, or an honest "not in the corpus"."""
from __future__ import annotations

import re

import pytest

from index.ingest.documents import load_corpus
from index.config import Settings
from index.engine import NO_ANSWER, Engine
from index.errors import QuestionError
from index.read.excerpt import MAX_CHARS, READER_MAX_CHARS

from .conftest import write_corpus

BATTLEGROUPS = "How many new battlegroups did NATO agree to deploy, and where?"


@pytest.fixture(scope="module", params=["files", pytest.param("postgres", marks=pytest.mark.postgres)])
def sample_engine(request, sample_engine, tmp_path_factory, embedder):
    """The sample corpus's engine on each index store: the files, then PostgreSQL (the same answers)."""
    if request.param == "files":
        return sample_engine
    server = request.getfixturevalue("postgres_server")
    url = server.create_database("answers_sample")
    base = tmp_path_factory.mktemp("pg-sample")
    engine = Engine(Settings(data_dir=base / "data", corpus_dir=sample_engine.settings.corpus_dir,
                             database_url=url), embedder)
    engine.build()
    return engine


def test_battlegroup_question_cites_both_articles_naming_the_four_countries(sample_engine):
    answer = sample_engine.ask(BATTLEGROUPS)
    assert not answer.abstained
    naming_all = [c for c in answer.citations
                  if all(country in c.excerpt for country in ("Bulgaria", "Hungary", "Romania", "Slovakia"))]
    assert {c.title for c in naming_all} == {
        "Nato summit in Brussels: live updates",
        "NATO allies agree to bolster the eastern flank and send more help to Ukraine",
    }
    assert {c.rank for c in naming_all} == {1, 2}, "the answer comes first"
    assert all(c.published == "2022-03-24" and c.source for c in answer.citations)


def test_question_outside_the_corpus_abstains_without_citations(sample_engine):
    for question in ("What is the capital of Peru?", "How do I bake sourdough bread?", "Who won the 1998 World Cup?"):
        answer = sample_engine.ask(question)
        assert answer.abstained, question
        assert answer.citations == ()
        assert answer.reason == NO_ANSWER


def test_excerpts_are_short_and_found_at_their_offsets_in_the_document(sample_engine):
    # The offsets index the cleaned text of the article as the corpus gives it.
    documents = {d.doc_id: d.text for d in load_corpus(sample_engine.settings.corpus_dir).documents}
    for question in (BATTLEGROUPS, "What did Zelenskyy accuse Russia of?", "What will the alliance send to Ukraine?"):
        answer = sample_engine.ask(question, k=5)
        for c in answer.citations:
            assert documents[c.doc_id][c.char_start:c.char_end] == c.excerpt
            assert 0 < len(c.excerpt) <= max(MAX_CHARS, READER_MAX_CHARS)
            assert c.excerpt in c.chunk_text


def test_the_albanian_line_is_never_quoted(sample_engine):
    answer = sample_engine.ask("NATO premton më shumë furnizime ushtarake dhe mbështetje kibernetike për Ukrainën")
    assert not any("premton" in c.excerpt for c in answer.citations)


def test_json_answer_has_the_documented_fields(sample_engine):
    data = sample_engine.ask(BATTLEGROUPS, k=3).to_dict()
    assert set(data) == {"question", "abstained", "reason", "note", "timeframe", "retriever", "elapsed_ms",
                         "best_similarity", "relevance", "support", "confidence", "citations"}
    assert 0.0 <= data["confidence"] <= 1.0
    assert len(data["citations"]) == 3
    assert set(data["citations"][0]) == {
        "rank", "excerpt", "score", "similarity", "title", "source", "url", "published",
        "doc_id", "chunk_id", "char_start", "char_end", "also_in", "confidence", "highlight", "path",
    }
    first = data["citations"][0]
    if first["highlight"] is not None:  # the answer the reader marked, inside the excerpt
        a, b = first["highlight"]
        assert 0 <= a < b <= len(first["excerpt"])


@pytest.mark.parametrize("mode", ["dense", "bm25", "hybrid"])
def test_each_retriever_finds_the_battlegroups(sample_engine, mode):
    answer = sample_engine.ask(BATTLEGROUPS, retriever=mode)
    assert any("Bulgaria" in c.excerpt for c in answer.citations[:2])


def test_empty_and_huge_questions_get_a_clear_message(sample_engine):
    with pytest.raises(QuestionError, match="in words"):
        sample_engine.ask("   ?! ")
    with pytest.raises(QuestionError, match="under 1000 characters"):
        sample_engine.ask("why " * 2500)


def test_html_in_a_question_is_just_text(sample_engine):
    answer = sample_engine.ask("Where will the new <b>battlegroups</b> go & who agreed? </i>")
    assert not answer.abstained and "Bulgaria" in answer.citations[0].excerpt
    assert sample_engine.ask("<script>alert('x')</script>").abstained


def test_syndicated_copies_collapse_into_one_citation_noting_the_other(tmp_path, make_engine):
    shared = ("The port of Rotterdam handled a record 470 million tonnes of cargo last year, "
              "its operator said, thanks to a surge in liquefied natural gas imports.")
    corpus = write_corpus(tmp_path / "corpus", {
        "wire.txt": f"Title: Rotterdam sets cargo record\nSource: Wire Service\nURL: https://wire.example/rotterdam\n"
                    f"Published: 2024-01-10\n\n{shared}\n\nDredging of the harbour continues through spring.",
        "copy.txt": f"Title: Record year for Dutch port\nSource: Daily Paper\n\n{shared}\n\n"
                    "Local shops reported a busy holiday season in the city centre.",
        "other.txt": "Title: Antwerp expands\nSource: Wire Service\n\nAntwerp opened a new container terminal "
                     "able to handle the largest ships afloat.",
    })
    engine = make_engine(corpus)
    answer = engine.ask("How much cargo did the port of Rotterdam handle last year?")
    holding = [c for c in answer.citations if "470 million tonnes" in c.excerpt]
    assert len(holding) == 1, "one citation for the passage"
    (citation,) = holding
    assert citation.url == "https://wire.example/rotterdam", "the better-sourced copy is kept"
    assert [ref.title for ref in citation.also_in] == ["Record year for Dutch port"]
    assert citation.rank == 1
    ranks = [c.rank for c in answer.citations]
    assert ranks == list(range(1, len(ranks) + 1))
    for a in answer.citations:
        for b in answer.citations:
            if a is not b:
                assert set(re.findall(r"\w+", a.excerpt)) != set(re.findall(r"\w+", b.excerpt))


def test_a_question_in_another_language_gets_the_best_passages_and_a_hint(sample_engine):
    answer = sample_engine.ask("Wie viele neue Battlegroups will die NATO in der Slowakei und in Ungarn stationieren?")
    assert not answer.abstained and answer.citations
    assert answer.note == "My articles are in English; questions in English work best."
    english = sample_engine.ask(BATTLEGROUPS)
    assert english.note == ""
