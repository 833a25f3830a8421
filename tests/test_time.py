"""Time in questions: the words and filters a user types, and the dates the answers come from."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date

import pytest

from index.config import Settings
from index.engine import Engine
from index.errors import QuestionError
from index.search.timeframe import parse_timeframe

from .conftest import ROOT, write_corpus

TODAY = date(2022, 3, 25)  # a Friday


@pytest.mark.parametrize("question, since, until, latest", [
    ("What happened in Kyiv yesterday?", date(2022, 3, 24), date(2022, 3, 24), True),
    ("What did NATO decide today?", TODAY, TODAY, True),
    ("What did NATO decide this week?", date(2022, 3, 21), TODAY, True),
    ("What happened last week?", date(2022, 3, 14), date(2022, 3, 20), True),
    ("What was agreed last month?", date(2022, 2, 1), date(2022, 2, 28), True),
    ("What happened in March 2022?", date(2022, 3, 1), date(2022, 3, 31), True),
    ("What happened in December?", date(2021, 12, 1), date(2021, 12, 31), True),
    ("What changed since 1 March?", date(2022, 3, 1), None, True),
    ("What was decided before 2022?", None, date(2021, 12, 31), True),
    ("What did Biden say on March 24, 2022?", date(2022, 3, 24), date(2022, 3, 24), True),
    ("What happened in the past 3 days?", date(2022, 3, 23), TODAY, True),
    ("What is the latest on the refugees?", None, None, True),
    ("How many refugees have left Ukraine so far?", None, None, True),
    ("How many battlegroups did NATO agree?", None, None, False),
    ("When will the line open in 2029?", None, None, False),  # an event to come, not a publication date
    ("What did they say in may?", None, None, False),  # "may" alone is not a month
    ("What happened to the Zorblax festival in March?", date(2022, 3, 1), date(2022, 3, 31), True),
    ("What happened at the festival in Oct?", date(2021, 10, 1), date(2021, 10, 31), True),
])
def test_time_words_set_the_window(question, since, until, latest):
    text, frame = parse_timeframe(question, TODAY)
    assert (frame.since, frame.until, frame.latest) == (since, until, latest)
    assert text == question and not frame.strict


def test_explicit_filters_leave_the_question_and_win_over_its_words():
    text, frame = parse_timeframe("since:2022-03-01 until:2022-03 source:bbc,Reuters refugees in 2019", TODAY)
    assert text == "refugees in 2019"
    assert (frame.since, frame.until, frame.sources, frame.strict) == (date(2022, 3, 1), date(2022, 3, 31),
                                                                       ("bbc", "reuters"), True)
    assert frame.label == "in March 2022 from bbc or reuters"
    _, given = parse_timeframe("refugees", TODAY, since=date(2022, 1, 1))
    assert given.since == date(2022, 1, 1) and given.strict


@pytest.mark.parametrize("question, says", [
    ("since:yesterday refugees", "since:yesterday is not a date"),
    ("since:2022-03-10 until:2022-03-01 refugees", "ends before it starts"),
])
def test_a_bad_filter_gets_one_sentence(question, says):
    with pytest.raises(QuestionError, match=says):
        parse_timeframe(question, TODAY)


REPORTS = {
    "2022-03-02": "660,000 people", "2022-03-08": "2 million people", "2022-03-20": "3.4 million people",
}


@pytest.fixture(scope="module")
def dated_engine(tmp_path_factory, embedder):
    base = tmp_path_factory.mktemp("dated")
    files = {}
    for day, figure in REPORTS.items():
        files[f"reports/{day}.json"] = json.dumps({
            "title": f"Refugees leaving Ukraine: update of {day}", "source": "UN Wire", "published": day,
            "url": f"https://news.example/refugees/{day}",
            "text": f"The UN refugee agency said that {figure} had now fled Ukraine since the invasion began.\n\n"
                    "Most crossed into Poland, with others arriving in Romania, Moldova and Hungary."})
    files["other/harbour.txt"] = ("Title: Harbour works begin\nSource: Coastal Times\nDate: 2021-06-01\n\n"
                                  "Work on the new harbour wall began on Monday and will take two years.")
    corpus = write_corpus(base / "corpus", files)
    engine = Engine(Settings(data_dir=base / "data", corpus_dir=corpus), embedder, today=lambda: TODAY)
    engine.build()
    return engine


def test_a_latest_question_cites_the_newest_report(dated_engine):
    answer = dated_engine.ask("How many people have fled Ukraine so far?")
    assert "3.4 million" in answer.citations[0].excerpt and answer.citations[0].published == "2022-03-20"
    assert answer.note == ""  # five days old: recent enough to say nothing


def test_a_latest_answer_that_is_old_says_how_old(dated_engine):
    answer = dated_engine.ask("How many people have fled Ukraine so far?", today=date(2022, 6, 1))
    assert answer.note == "The newest article I have on this is from 20 March 2022."


def test_a_dated_question_cites_the_report_of_that_date(dated_engine):
    assert "660,000" in dated_engine.ask("How many people had fled Ukraine by 5 March?").citations[0].excerpt
    answer = dated_engine.ask("How many people had fled Ukraine, as reported yesterday?", today=date(2022, 3, 9))
    assert "2 million" in answer.citations[0].excerpt and answer.timeframe == "on 8 March 2022"
    cli_style = dated_engine.ask("How many people had fled Ukraine?", until=date(2022, 3, 10))
    assert "2 million" in cli_style.citations[0].excerpt


def test_a_filter_that_matches_nothing_says_what_the_corpus_covers(dated_engine):
    answer = dated_engine.ask("since:2023-01-01 How many people have fled Ukraine?")
    assert answer.abstained and answer.citations == ()
    assert answer.reason == ("I have no articles since 1 January 2023. "
                             "My articles run from 1 June 2021 to 20 March 2022.")
    by_source = dated_engine.ask("source:bbc How many people have fled Ukraine?")
    assert by_source.abstained and "My sources: UN Wire, Coastal Times." in by_source.reason
    assert not dated_engine.ask("source:unwire How many people have fled Ukraine?").abstained


def test_time_words_about_the_event_fall_back_to_all_dates_and_say_so(dated_engine):
    answer = dated_engine.ask("How many people had fled Ukraine in 2019?")
    assert not answer.abstained and answer.note.startswith("I have no articles in 2019")


def test_the_coverage_is_reported(dated_engine):
    cover = dated_engine.coverage()
    assert cover["articles"] == 4 and (cover["first"], cover["last"]) == ("2021-06-01", "2022-03-20")
    assert cover["sources"][0] == {"source": "UN Wire", "articles": 3}


def test_telegram_shows_the_date_note_first_and_a_filter_abstention_in_its_own_words():
    from bot.render import describe_coverage, render_answer
    from index.read.answer import Answer, Citation

    cited = Citation(1, "3.4 million people had now fled.", 1.0, 0.7, "Refugees", "UN Wire", "", "2022-03-20",
                     "d", "d:0", 0, 10)
    note = "The newest article I have on this is from 20 March 2022."
    (message,) = render_answer(Answer("q", False, (cited,), "hybrid", note=note))
    assert message.startswith(f"<i>{note}</i>\n\n<b>1.</b>")
    (refusal,) = render_answer(Answer("q", True, (), "hybrid", reason="I have no articles since 1 January 2023."))
    assert refusal == "I have no articles since 1 January 2023."
    assert describe_coverage({"articles": 4, "first": "2021-06-01", "last": "2022-03-20", "sources": [
        {"source": s, "articles": 1} for s in ("UN Wire", "Coastal Times", "BBC", "AP", "Reuters")]}) == (
        "I know 4 news articles from UN Wire, Coastal Times, BBC and 2 other sources, "
        "published from 1 June 2021 to 20 March 2022.")


# Running stories over four years: the Varna bridge's cost as it changed, and a festival in two seasons.
STORIES = {
    "varna/2022-03-15.json": ("2022-03-15", "Varna bridge budget approved",
                              "The new Varna bridge will cost 40 million euros, the city council said."),
    "varna/2023-06-01.json": ("2023-06-01", "Varna bridge costs rise",
                              "The Varna bridge will now cost 55 million euros after steel prices rose."),
    "varna/2026-12-01.json": ("2026-12-01", "Varna bridge opens",
                              "The Varna bridge opened on Monday; its final cost was 71 million euros."),
    "zorblax/2021-12-10.json": ("2021-12-10", "What happened to the Zorblax festival",
                                "What happened to the Zorblax festival? Its winter edition was called off "
                                "after heavy snow closed the roads to the valley."),
    "zorblax/2022-03-20.json": ("2022-03-20", "Zorblax festival draws crowds",
                                "The Zorblax festival drew 12,000 visitors to the valley for its spring edition."),
}


@pytest.fixture(scope="module")
def stories(tmp_path_factory, embedder):
    base = tmp_path_factory.mktemp("stories")
    corpus = write_corpus(base / "corpus", {
        name: json.dumps({"title": title, "source": "Black Sea Herald", "published": day, "text": text})
        for name, (day, title, text) in STORIES.items()})
    engine = Engine(Settings(data_dir=base / "data", corpus_dir=corpus), embedder, today=lambda: date(2026, 12, 2))
    engine.build()
    return engine


@pytest.mark.parametrize("question, asked", [
    ("What did the Varna bridge cost in March 2022?", {}),
    ("What did the Varna bridge cost in 2022?", {}),
    ("What did the Varna bridge cost last month?", {"today": date(2022, 4, 10)}),
    ("What did the Varna bridge cost?", {"since": date(2022, 3, 1), "until": date(2022, 3, 31)}),
])
def test_a_question_about_a_window_gets_no_note_about_the_latest_article(stories, question, asked):
    answer = stories.ask(question, **asked)
    assert "40 million" in answer.citations[0].excerpt
    assert answer.note == ""  # the newest article on the bridge is from 2026: "newest" would be untrue


def test_a_latest_question_still_says_how_old_its_newest_article_is(stories):
    answer = stories.ask("What is the latest cost of the Varna bridge?", today=date(2027, 6, 1))
    assert "71 million" in answer.citations[0].excerpt
    assert answer.note == "The newest article I have on this is from 1 December 2026."


def test_a_bare_month_is_the_last_one_not_in_the_future(stories):
    answer = stories.ask("What happened to the Zorblax festival in March?", today=date(2022, 4, 10))
    assert answer.timeframe == "in March 2022"
    assert answer.citations[0].published == "2022-03-20" and "12,000" in answer.citations[0].excerpt


def test_today_bounds_what_latest_and_since_can_cite(stories):
    latest = stories.ask("What is the latest cost of the Varna bridge?", today=date(2022, 3, 16))
    assert "40 million" in latest.citations[0].excerpt
    assert all(c.published <= "2022-03-16" for c in latest.citations)
    assert latest.note == ""  # a day old on that day
    since = stories.ask("What has the Varna bridge cost since 1 March?", today=date(2022, 3, 16))
    assert all(c.published <= "2022-03-16" for c in since.citations) and "40 million" in since.citations[0].excerpt
    mid = stories.ask("What is the latest cost of the Varna bridge?", today=date(2024, 1, 1))
    assert "55 million" in mid.citations[0].excerpt and all(c.published <= "2024-01-01" for c in mid.citations)
    # A question without time in it is not bounded: "today" is for time words.
    plain = stories.ask("How much did the Varna bridge finally cost when it opened?", today=date(2022, 3, 16))
    assert "71 million" in plain.citations[0].excerpt


def test_the_clocks_today_allows_a_day_for_time_zones_ahead_of_utc(stories):
    stories.today = lambda: date(2026, 11, 30)  # an article dated 1 December is already out in Sofia
    try:
        answer = stories.ask("What is the latest cost of the Varna bridge?")
    finally:
        stories.today = lambda: date(2026, 12, 2)
    assert "71 million" in answer.citations[0].excerpt


def test_citebot_ask_today_bounds_latest(stories):
    settings = stories.settings
    out = subprocess.run([sys.executable, "-m", "bot.cli", "ask", "--json", "--today", "2022-03-16",
                          "What is the latest cost of the Varna bridge?"], cwd=ROOT, capture_output=True, text=True,
                         env={**os.environ, "CITEBOT_DATA_DIR": str(settings.data_dir)}, timeout=120)
    assert out.returncode == 0, out.stderr
    cited = json.loads(out.stdout)["citations"]
    assert cited and all(c["published"] <= "2022-03-16" for c in cited)
