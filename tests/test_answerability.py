"""Saying only what the articles say, without the model: the kind of answer a question asks for,
when a span may be shown in bold, how the reader's features become a confidence, and the training
pairs that teach near misses (`make check`)."""
from __future__ import annotations

import random

import numpy as np

from index.read.answer import make_citation
from index.read.answer_type import AMOUNT, DATE, NAME, NUMBER, PERCENT, expected_kind, span_fits
from index.evaluate import bold_holds_answer
from index.models.reader_data import news_questions, swapped_question, without_answer_sentence
from index.models.train_reader import FALSE_ABSTENTION, fit_abstention, fit_logistic
from index.read.reader import Calibration, Reader, Reading, evidence
from index.store.interface import ChunkRecord


def test_a_question_says_what_kind_of_answer_it_wants():
    assert expected_kind("How much did BA's profits fall?") == AMOUNT
    assert expected_kind("What percentage of voters backed the plan?") == PERCENT
    assert expected_kind("How many jobs will go at the plant?") == NUMBER
    assert expected_kind("What was Dibaba's time in the 10,000m?") == NUMBER
    assert expected_kind("When will the bridge open?") == DATE
    assert expected_kind("In what year was the club founded?") == DATE
    assert expected_kind("Who directed the 1964 Mary Poppins film?") == NAME
    assert expected_kind("Why did BA's profits drop?") == ""


def test_a_span_of_the_wrong_kind_does_not_fit():
    assert span_fits(NUMBER, "14:32.93")
    assert not span_fits(NUMBER, "Ethiopia")
    assert span_fits(AMOUNT, "£1.2bn")
    assert not span_fits(AMOUNT, "the chief executive")
    assert span_fits(PERCENT, "40%") and not span_fits(PERCENT, "Heathrow")
    assert span_fits(DATE, "March 2022") and span_fits(DATE, "last Tuesday")
    assert not span_fits(DATE, "Julie Andrews")
    assert span_fits(NAME, "Alexander Payne") and not span_fits(NAME, "14:39.29")
    assert span_fits("", "anything at all")
    assert not span_fits(NUMBER, "   ")


def _reading(logit: float, margin: float, probability: float, span=(0, 8)) -> Reading:
    return Reading(confidence=0.0, span=span, span_score=margin, null_score=0.0, span_probability=probability,
                   answer_logit=logit)


def test_the_calibration_weighs_the_span_heads_doubt_and_the_answers_kind():
    calibration = Calibration(bias=-1.0, answer_logit=1.0, span_margin=0.5, fits=2.0, bold_probability=0.4)
    passage = "Ethiopia won the race in 14:32.93."
    sure = calibration.judge(_reading(3.0, 6.0, 0.8, (25, 33)), NUMBER, passage)
    wrong_kind = calibration.judge(_reading(3.0, 6.0, 0.8, (0, 8)), NUMBER, passage)
    doubtful_span = calibration.judge(_reading(3.0, -4.0, 0.8, (25, 33)), NUMBER, passage)
    assert sure.fits and sure.bold and sure.confidence > 0.99
    assert not wrong_kind.fits and not wrong_kind.bold  # "Ethiopia" is no time: never bold
    assert wrong_kind.confidence < sure.confidence
    assert doubtful_span.confidence < sure.confidence  # "no answer here" beats the span: less sure
    unsure = calibration.judge(_reading(3.0, 6.0, 0.2, (25, 33)), NUMBER, passage)
    assert unsure.fits and not unsure.bold  # the right kind, but the span head hedges: no bold
    doubted = calibration.judge(_reading(-6.0, 6.0, 0.8, (25, 33)), NUMBER, passage)
    assert doubted.fits and not doubted.bold  # a sure span in a passage unlikely to state the answer
    # A reader.json fitted before bold weighed the passage's answerability is read as it was fitted.
    before = Calibration.from_config({"answerability": {"bias": -1.0, "answer_logit": 1.0, "span_margin": 0.5,
                                                        "fits": 2.0}, "bold_probability": 0.4})
    assert not before.bold_weighs_answerability
    assert before.judge(_reading(-6.0, 6.0, 0.8, (25, 33)), NUMBER, passage).bold


def test_a_model_without_fitted_weights_keeps_the_answer_heads_probability():
    judged = Calibration().judge(_reading(0.0, 1.0, 0.9), "", "Somebody said something.")
    assert abs(judged.confidence - 0.5) < 1e-9


def test_only_a_sure_span_is_shown_in_bold():
    chunk = ChunkRecord(0, "c", "d", 0, 40, "BA said profits fell 40% last year.", "BA", "", "", "")
    reading = Reading(0.9, (21, 24), 5.0, bold=False)
    assert make_citation(1, chunk, 1.0, 0.5, (0, 35), reading).highlight is None
    bold = make_citation(1, chunk, 1.0, 0.5, (0, 35), Reading(0.9, (21, 24), 5.0, bold=True))
    assert bold.excerpt[bold.highlight[0]:bold.highlight[1]] == "40%"


def test_a_bold_span_is_right_when_it_holds_or_lies_inside_a_gold_answer():
    assert bold_holds_answer("14:32.93", ("14:32.93 seconds",))
    assert bold_holds_answer("in 14:32.93", ("14:32.93",))
    assert not bold_holds_answer("14:39.29", ("14:32.93",))
    assert not bold_holds_answer("", ("x",))


def test_the_fitted_weights_separate_what_they_were_fitted_on():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 3))
    y = (x[:, 0] + 2 * x[:, 1] > 0).astype(float)
    w = fit_logistic(x, y)
    p = 1 / (1 + np.exp(-(w[0] + x @ w[1:])))
    assert np.mean((p > 0.5) == (y > 0.5)) > 0.95
    assert w[2] > w[1] > 0


def test_near_miss_pairs_keep_the_story_and_lose_the_fact():
    text = "The council met on Monday. The bridge will cost £5m to build. Work starts in spring."
    a = text.index("£5m")
    cut = without_answer_sentence(text, (a, a + 3), ["£5m"])
    assert cut is not None and "£5m" not in cut and "council" in cut
    assert without_answer_sentence("Only £5m. Here £5m again.", (5, 8), ["£5m"]) is None  # still stated
    pool = {"name": ["Robert Zemeckis", "Tom Hanks"], "number": ["1964", "12"]}
    swapped = swapped_question("Who directed the film Tom Hanks made in 2004?", "Tom Hanks starred in 2004.",
                               pool, random.Random(1))
    assert swapped and swapped != "Who directed the film Tom Hanks made in 2004?"
    assert "2004" not in swapped or "Tom Hanks" not in swapped


def test_news_questions_ask_for_a_fact_their_sentence_states():
    text = ("Airline profits fall\n\nBritish Airways said profits fell 40% in the three months to December. "
            "The airline blamed fuel costs, which rose to £1.2bn over the year.")
    made = news_questions(text, random.Random(3), per_article=2)
    assert made
    for g in made:
        assert g.question.endswith("?")
        assert text[g.answer_start:g.answer_end] not in g.question
        assert g.sentence[0] <= g.answer_start < g.answer_end <= g.sentence[1]


def _rule(config: dict) -> Reader:
    """A Reader's abstention rule from a reader.json, without loading the model."""
    reader = Reader.__new__(Reader)
    reader.config = config
    reader._set_rule()
    return reader


def test_a_question_is_refused_when_the_reader_and_the_search_are_both_unsure():
    rule = _rule({"threshold": 0.05, "min_relevance": 0.3, "evidence": {"relevance_weight": 6.0, "threshold": 0.6}})
    assert not rule.abstains(0.9, 0.8)  # a likely passage, words all over it
    assert rule.abstains(0.03, 0.9)  # the reader rules every passage out
    assert rule.abstains(0.9, 0.2)  # nothing found is near the question
    # Middling on both (0.15 > 0.05, 0.35 > 0.3): each passes its own threshold, together too weak.
    assert evidence(0.15, 0.35, 6.0) < 0.6 and rule.abstains(0.15, 0.35)
    assert not rule.abstains(0.15, 0.8)  # the same doubt about a question whose words are found
    # A reader.json from before the joint line keeps the two thresholds alone.
    old = _rule({"threshold": 0.05, "min_relevance": 0.3})
    assert not old.abstains(0.15, 0.35) and old.abstains(0.04, 0.9)


def test_the_joint_line_is_fitted_only_when_it_catches_more_stand_ins():
    rng = np.random.default_rng(1)
    n = 1000
    # Answerable: the reader sure, or the question's words found (or both); off-topic stand-ins: both
    # middling, neither alone below what answerable questions reach.
    sure = rng.random(n) < 0.5
    answerable = (True, np.where(sure, rng.uniform(0.8, 0.99, n), rng.uniform(0.3, 0.99, n)),
                  np.where(sure, rng.uniform(0.5, 1.0, n), rng.uniform(0.75, 1.0, n)))
    off_topic = (False, rng.uniform(0.3, 0.6, n), rng.uniform(0.5, 0.65, n))
    rule, refused, caught = fit_abstention({"answerable": answerable, "off-topic": off_topic})
    assert refused["answerable"] <= FALSE_ABSTENTION
    assert rule["evidence"]["relevance_weight"] > 0 and caught["off-topic"] > 0.5
    fitted = _rule(rule)
    assert np.mean([fitted.abstains(c, r) for c, r in zip(*answerable[1:])]) <= FALSE_ABSTENTION
    # Stand-ins that the reader alone rules out need no joint line.
    doubted = (False, rng.uniform(0.0, 0.2, n), rng.uniform(0.5, 1.0, n))
    answerable_sure = (True, rng.uniform(0.5, 0.99, n), rng.uniform(0.5, 1.0, n))
    rule, _, caught = fit_abstention({"answerable": answerable_sure, "near miss": doubted})
    assert rule["evidence"]["relevance_weight"] == 0.0 and caught["near miss"] > 0.9
