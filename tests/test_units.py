"""The search's pure logic, without the model or an index: fusion, top-k, the Query and its idf,
relevance, re-ranking, near-duplicate folding, the rate limiter and callback data (`make check`)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from bot.history import callback_data, parse_callback_data, parse_vote_data, vote_data
from bot.ratelimit import UserRateLimiter, Verdict
from index.read.answer import Citation, collapse_near_duplicates
from index.store.builder import LONG_BUILD_S, EmbeddingWatch
from index.ingest.documents import load_corpus
from index.search.fusion import convex_combination, reciprocal_rank_fusion
from index.search.query import Query, bm25_idf
from index.search.relevance import COVERAGE_WEIGHT, coverage, relevance
from index.read.rerank import Ranked, rerank
from index.search.retrieval import Hit
from index.store.files import top_k
from index.store.interface import ChunkRecord


def test_a_build_that_will_take_long_is_announced_once_with_its_estimate(caplog):
    now = [0.0]
    told: list[str] = []
    watch = EmbeddingWatch(total=100_000, clock=lambda: now[0], announce=told.append)
    now[0] = 2.0
    watch.update(40)  # too early to trust the rate
    now[0] = 10.0
    watch.update(100)  # 10 a second: 99,900 left is about 2 h 46 min
    now[0] = 20.0
    watch.update(200)
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "100,000 passages and sentences" in warnings[0]
    assert "about 2 h 46 min more at the measured 10 a second" in warnings[0] and "Ctrl-C" in warnings[0]
    assert told == ["This index update embeds 100,000 passages and sentences: about 2 h 46 min more at the "
                    "measured 10 a second; questions are answered from the current index meanwhile."]
    quick = EmbeddingWatch(total=1_000, clock=lambda: now[0])
    now[0] += 10
    quick.update(500)  # 50 a second: 10 s left
    assert not quick.warned and LONG_BUILD_S >= 60
    # Vectors for questions in other languages (CITEBOT_MULTILINGUAL) are watched and named too.
    other = EmbeddingWatch(total=20_000, clock=lambda: now[0], announce=told.append,
                           what="passages for questions in other languages")
    now[0] += 100
    other.update(1_000)  # 10 a second: 19,000 left is about 31 min
    assert told[-1].startswith("This index update embeds 20,000 passages for questions in other languages: "
                               "about 32 min more")


def test_a_corpus_file_over_the_configured_size_is_skipped_with_both_sizes(tmp_path):
    (tmp_path / "small.txt").write_text("Council backs cycle lanes\n\nThe council approved the lanes on Monday.")
    (tmp_path / "big.txt").write_text("Big story\n\n" + "word " * 300_000)
    corpus = load_corpus(tmp_path, max_bytes=1_000_000)
    assert [d.path for d in corpus.documents] == ["small.txt"]
    (skipped,) = corpus.skipped
    assert skipped.path == "big.txt" and "file is 1.43 MiB (1,500,011 bytes), over the 0.953674 MiB limit" in skipped.reason
    assert "CITEBOT_MAX_FILE_MB" in skipped.reason


def _query(text: str, weights: dict[str, float], tokens=None, unseen: float = 5.0) -> Query:
    vector = np.array([1.0, 0.0], dtype=np.float32)
    return Query(text, vector, tuple(tokens if tokens is not None else weights), weights, unseen)


def test_convex_fusion_keeps_how_much_better_a_candidate_is():
    # 3 is second by cosine but far ahead by BM25: with alpha 0.5 it wins.
    ranked = convex_combination({1: 0.80, 2: 0.70, 3: 0.75}, {3: 12.0, 1: 1.0}, alpha=0.5)
    assert [item for item, _ in ranked] == [3, 1, 2]
    assert ranked[0][1] == pytest.approx(0.5 * 0.75 + 0.5 * 1.0)
    # alpha 1 is the dense ranking alone; a missing BM25 score counts as 0
    assert [i for i, _ in convex_combination({1: 0.8, 2: 0.7, 3: 0.75}, {3: 12.0}, alpha=1.0)] == [1, 3, 2]


def test_reciprocal_rank_fusion_rewards_agreement_and_breaks_ties_by_row():
    ranked = reciprocal_rank_fusion([[5, 7, 9], [7, 5, 8]], k=60)
    assert [item for item, _ in ranked[:2]] == [5, 7]  # equal sums: the lower row first, every run
    assert ranked[0][1] == pytest.approx(1 / 61 + 1 / 62)
    assert {item for item, _ in ranked} == {5, 7, 8, 9}


def test_top_k_returns_the_best_positive_scores_in_order():
    scores = np.array([0.1, 0.0, 0.9, -1.0, 0.5, 0.9])
    assert top_k(scores, 3).tolist() == [2, 5, 4]
    assert top_k(scores, 10).tolist() == [2, 5, 4, 0], "zero and negative scores are never results"
    assert top_k(np.zeros(4), 2).tolist() == []


def test_idf_is_bm25s_lucene_form_and_an_unseen_word_weighs_most():
    assert bm25_idf(1, 100) == pytest.approx(math.log(1 + 99.5 / 1.5))
    assert bm25_idf(0, 100) > bm25_idf(1, 100) > bm25_idf(50, 100) > 0


def test_a_query_is_built_once_with_the_weights_of_the_words_the_index_knows():
    frequencies = {"battlegroup": 2, "nato": 40}
    query = Query.build("How many battlegroups will NATO deploy?", lambda text: np.ones(3, dtype=np.float32),
                        lambda tokens: {t: frequencies[t] for t in tokens if t in frequencies}, documents=100)
    assert set(query.tokens) == {"battlegroup", "nato", "deploy"}
    assert query.weights == {"battlegroup": pytest.approx(bm25_idf(2, 100)), "nato": pytest.approx(bm25_idf(40, 100))}
    assert query.unseen_weight == pytest.approx(bm25_idf(0, 100))
    assert query.vector.shape == (3,)


def test_coverage_notices_a_rare_question_word_missing_from_the_passages():
    query = _query("sourdough bread", {"bread": 1.0}, tokens=["sourdough", "bread"], unseen=4.0)
    assert coverage(query, [{"bread"}]) == pytest.approx(1.0 / 5.0), "the unknown word weighs 4 of 5"
    assert coverage(query, [{"bread"}, {"sourdough", "bread"}]) == 1.0
    assert coverage(query, [set(), set(), set(), {"sourdough", "bread"}]) == 0.0, "only the top 3 passages count"
    assert relevance(0.5, 1.0) == pytest.approx(0.5 + COVERAGE_WEIGHT)


def _record(row: int, text: str, title: str = "Story") -> ChunkRecord:
    spans, start = [], 0
    for sentence in text.split(". "):
        end = text.index(sentence, start) + len(sentence)
        spans.append((start, end + (1 if text[end:end + 1] == "." else 0)))
        start = end + 2
    return ChunkRecord(row, f"d{row}:0", f"d{row}", 0, len(text), text, title, "Wire", "", "2022-03-24",
                       tuple((s, e, 2 * row + i) for i, (s, e) in enumerate(spans)))


def test_rerank_orders_chunks_by_fused_score_plus_their_best_excerpt():
    records = {0: _record(0, "The weather was mild. Markets were calm."),
               1: _record(1, "Leaders met in Madrid. NATO agreed four new battlegroups.")}
    hits = [Hit(0, 0.60, 0.5), Hit(1, 0.55, 0.5)]
    sentence_vectors = np.zeros((4, 2), dtype=np.float16)
    query = _query("battlegroups NATO", {"battlegroup": 2.0, "nato": 1.0})
    ranked = rerank(hits, records, query, sentence_vectors)
    assert [r.hit.row for r in ranked] == [1, 0], "the chunk holding the question's words rises"
    best = ranked[0]
    assert isinstance(best, Ranked) and "NATO agreed four new battlegroups." in best.chunk.text[slice(*best.span)]
    assert best.support == pytest.approx(1.0, abs=0.01), "the excerpt holds all of the question's weight"
    assert best.score == pytest.approx(0.55 + best.support)
    assert best.words == frozenset({"battlegroup", "nato"}) and ranked[1].words == frozenset()
    kept = rerank(hits, records, query, sentence_vectors, reorder=False)
    assert [r.hit.row for r in kept] == [0, 1] and kept[0].score == 0.60, "a baseline keeps the retriever's order"


def _cited(rank: int, excerpt: str, doc: str, url: str = "") -> Citation:
    return Citation(rank, excerpt, 1.0 / rank, 0.5, f"Title {doc}", "Wire" if url else "", url, "", doc, f"{doc}:0",
                    0, len(excerpt))


def test_syndicated_copies_fold_into_the_better_sourced_citation():
    text = "NATO agreed to deploy four new battlegroups to Bulgaria, Hungary, Romania and Slovakia."
    folded = collapse_near_duplicates([
        _cited(1, text, "a"), _cited(2, text.replace("deploy", "send"), "b", url="https://example.org/b"),
        _cited(3, "Copper prices rose on the news.", "c"),
    ])
    assert [c.doc_id for c in folded] == ["b", "c"] and [c.rank for c in folded] == [1, 2]
    assert [ref.doc_id for ref in folded[0].also_in] == ["a"], "the copy without a link is noted, not lost"


def test_a_flooding_user_is_told_once_then_ignored_until_the_window_passes():
    now = [0.0]
    limiter = UserRateLimiter(limit=2, window=60, clock=lambda: now[0])
    assert [limiter.check(7) for _ in range(4)] == [Verdict.ALLOW, Verdict.ALLOW, Verdict.NOTIFY, Verdict.SILENT]
    assert limiter.check(8) is Verdict.ALLOW, "limits are per user"
    assert limiter.retry_in(7) == 60
    now[0] = 60.0
    assert limiter.check(7) is Verdict.ALLOW and limiter.retry_in(7) == 0


def test_button_data_round_trips_and_foreign_data_is_refused():
    assert parse_callback_data(callback_data("q1", 3)) == ("q1", 3)
    assert parse_vote_data(vote_data("q1", True)) == ("q1", True)
    assert parse_vote_data(vote_data("q1", False)) == ("q1", False)
    for bad in ("", "more:q1", "more:q1:-1", "vote:q1:x", "other:q1:3", None):
        assert parse_callback_data(bad) is None and parse_vote_data(bad) is None
    assert len(callback_data("0123456789abcdef", 10).encode()) <= 64, "Telegram's callback data limit"


def test_eval_latency_leaves_out_the_first_question_which_loads_everything():
    from index.read.answer import Answer
    from index.evaluate import EvalQuestion, evaluate

    class TimedEngine:
        """Answers every question with its excerpt; the first call costs what loading does."""

        def __init__(self):
            self.calls = 0

        def ask(self, question, k, retriever, abstain):
            self.calls += 1
            cited = _cited(1, f"The answer to {question} is copper.", "a")
            return Answer(question=question, abstained=False, citations=(cited,), retriever=retriever,
                          elapsed_ms=900.0 if self.calls == 1 else 10.0)

    engine = TimedEngine()
    result = evaluate(engine, [EvalQuestion(f"q{i}", ("copper",)) for i in range(5)], "hybrid")
    assert engine.calls == 6, "one warm-up, then each question once"
    assert result["latency_ms_p95"] == 10.0 and result["recall@1"] == 1.0


@pytest.mark.parametrize("written, iso", [
    ("2022-03-24", "2022-03-24"), ("2022-03-24T10:15:00Z", "2022-03-24"), ("24 March 2022", "2022-03-24"),
    ("March 24, 2022", "2022-03-24"), ("24/03/2022", "2022-03-24"), ("Spring 2022", ""), (None, ""),
])
def test_page_and_article_dates_are_read_by_one_rule(written, iso):
    from index.ingest.documents import iso_date, normalize_date

    assert iso_date(written) == iso
    # An article file's unparseable date is still shown as written; a page's is dropped.
    assert normalize_date(written or "") == (iso or (written or ""))
