"""Fast checks of pure logic, no model and no index: the reader's spans and excerpts, bold, settings."""
from __future__ import annotations

import numpy as np
import pytest

from bot.console import BOLD, PLAIN, render_text
from bot.render import render_excerpt
from index.read.answer import Answer, Citation
from index.config import ConfigurationError, Settings
from index.read.excerpt import excerpt_around
from index.read.reader import READER_DIR, Features, best_span, decode, encode, load_tokenizer, passage_input
from index.ingest.sentences import sentence_spans

LEAD = ("ONGC says it is in talks to buy the former assets of Yukos. The Indian firm wants "
        "15% of Yukos' former key oil production unit. Talks began in March. Analysts were surprised.")


def test_the_excerpt_starts_at_the_sentence_holding_the_answer_not_at_the_lead():
    spans = sentence_spans(LEAD)
    a = LEAD.index("15%")
    start, end = excerpt_around(LEAD, spans, (a, a + 3), max_chars=350)
    assert LEAD[start:end].startswith("The Indian firm wants 15%")
    assert LEAD[start:end].endswith("Analysts were surprised.")  # runs forward while it fits


def test_the_excerpt_stops_before_the_character_cap_and_keeps_the_answer():
    spans = sentence_spans(LEAD)
    a = LEAD.index("15%")
    start, end = excerpt_around(LEAD, spans, (a, a + 3), max_chars=80)
    assert end - start <= 80 and start <= a < a + 3 <= end


def test_one_long_sentence_is_cut_around_the_answer():
    text = "Word " * 200 + "the answer is 42 " + "more " * 200
    a = text.index("42")
    start, end = excerpt_around(text, [(0, len(text))], (a, a + 2), max_chars=120)
    assert end - start <= 120 and start <= a and a + 2 <= end


def test_best_span_stays_in_the_passage_and_within_the_length_limit():
    start = np.array([9.0, 1, 2, 8, 0, 0])
    end = np.array([9.0, 0, 0, 1, 7, 0])
    mask = np.array([False, False, True, True, True, True])  # [CLS] and a question token are excluded
    assert best_span(start, end, mask) == (3, 4, 15.0)
    assert best_span(start, end, mask, max_len=1)[:2] == (3, 3)
    assert best_span(start, end, np.zeros(6, dtype=bool)) is None


def test_pairs_are_encoded_with_offsets_into_the_passage_text():
    tokenizer = load_tokenizer(READER_DIR / "tokenizer.json")
    f = encode(tokenizer, "How much did ONGC want?", [("Oil deal", LEAD), ("", "Short.")])
    assert f.input_ids.shape[0] == 2 and f.input_ids.shape == f.passage_mask.shape
    tokens = np.flatnonzero(f.passage_mask[0])
    first = f.offsets[0][tokens[0]]
    assert first[0] == 0 and LEAD[first[0]:first[1]].lower() in "ongc"  # the title's tokens are not passage
    spans = [f.offsets[0][t] for t in tokens]
    assert any(LEAD[s:e] == "15" for s, e in spans)
    assert f.attention_mask[1].sum() < f.attention_mask[0].sum()  # padded to the longest
    assert passage_input("Oil deal", LEAD)[1] == len("Oil deal\n")


def test_decode_turns_logits_into_a_confident_span():
    f = Features(np.zeros((1, 4), np.int64), np.ones((1, 4), np.int64), np.zeros((1, 4), np.int64),
                 np.array([[False, True, True, True]]), [[(0, 0), (0, 3), (4, 9), (10, 12)]])
    reading = decode(f, np.array([[0, 0, 5.0, 0]]), np.array([[0, 0, 0, 5.0]]), np.array([2.0]))[0]
    assert reading.span == (4, 12) and round(reading.confidence, 3) == 0.881


def _citation(excerpt: str, highlight=None) -> Citation:
    return Citation(1, excerpt, 1.0, 0.5, "T", "S", "", "", "d", "d:0", 0, len(excerpt), highlight=highlight)


def test_telegram_shows_the_marked_answer_in_bold_and_escapes_around_it():
    excerpt = "Prices <rose>\n 15% & more,   said AT&T."
    a = excerpt.index("15%")
    html = render_excerpt(_citation(excerpt, (a, a + len("15% & more"))), 1500)
    assert html == "Prices &lt;rose&gt; <b>15% &amp; more</b>, said AT&amp;T."
    assert render_excerpt(_citation(excerpt), 1500) == "Prices &lt;rose&gt; 15% &amp; more, said AT&amp;T."


def test_a_cut_excerpt_loses_its_bold_rather_than_a_closing_tag():
    excerpt = "word " * 100 + "answer"
    html = render_excerpt(_citation(excerpt, (len(excerpt) - 6, len(excerpt))), 50)
    assert "<b>" not in html and html.endswith("…")


def test_the_console_bolds_the_answer_only_on_a_terminal():
    excerpt = "The Indian firm wants 15% of the unit."
    a = excerpt.index("15%")
    answer = Answer("q", False, (_citation(excerpt, (a, a + 3)),), "hybrid")
    assert f"{BOLD}15%{PLAIN}" in render_text(answer, bold=True)
    assert BOLD not in render_text(answer) and "wants 15% of" in render_text(answer)


@pytest.mark.parametrize("columns", [70, 120])
def test_the_console_wraps_the_citation_line_too(monkeypatch, columns):
    from dataclasses import replace

    monkeypatch.setenv("COLUMNS", str(columns))  # what shutil.get_terminal_size reads first
    url = "https://www.aljazeera.com/news/2022/3/24/nato-allies-agree-to-bolster-the-eastern-flank"
    cited = replace(_citation("Allies agreed to send four more battlegroups.", None),
                    title="NATO allies agree to bolster the eastern flank and send more help to Ukraine",
                    source="Al Jazeera (machine-paraphrased republication)", published="2022-03-24", url=url)
    text = render_text(Answer("q", False, (cited,), "hybrid"))
    lines = text.splitlines()
    meta = lines[lines.index(next(x for x in lines if x.startswith("    — "))):]
    assert all(len(x) <= columns or x.strip() == url for x in meta), "no line runs past the terminal"
    assert all(x.startswith("      ") for x in meta[1:]), "continued lines keep the indent, the URL too"
    words = " ".join(x.strip() for x in meta).split()
    assert "republication)" in words and url in words, "no word or address broken in two"


@pytest.mark.parametrize("env, expected", [
    ({"CITEBOT_FUSION": "bogus"}, "CITEBOT_FUSION must be one of convex, rrf, not 'bogus'"),
    ({"CITEBOT_ALPHA": "7"}, "CITEBOT_ALPHA must be between 0 and 1"),
    ({"CITEBOT_MIN_RELEVANCE": "-3"}, "CITEBOT_MIN_RELEVANCE must be between 0 and 1.2"),
    ({"CITEBOT_CHUNK_WORDS": "5"}, "CITEBOT_CHUNK_WORDS must be 0 (one chunk per paragraph) or at least 10"),
    ({"CITEBOT_DENSE_INDEX": "ivf"}, "CITEBOT_DENSE_INDEX must be one of auto, flat, hnsw"),
    ({"CITEBOT_READER": "maybe"}, "CITEBOT_READER must be 1 or 0, not 'maybe'"),
    ({"CITEBOT_ALPHA": "half"}, "CITEBOT_ALPHA must be a number, not 'half'"),
    ({"CITEBOT_MAX_FILE_MB": "0"}, "CITEBOT_MAX_FILE_MB must be a size in MB above 0"),
    ({"CITEBOT_FETCH_TIMEOUT": "0"}, "CITEBOT_FETCH_TIMEOUT must be a number of seconds above 0 and at most 600"),
    ({"CITEBOT_FETCH_TIMEOUT": "soon"}, "CITEBOT_FETCH_TIMEOUT must be a number, not 'soon'"),
    ({"CITEBOT_MAX_FEED_ITEMS": "0"}, "CITEBOT_MAX_FEED_ITEMS must be a whole number of at least 1, not 0"),
    ({"CITEBOT_MAX_FEED_ITEMS": "all"}, "CITEBOT_MAX_FEED_ITEMS must be a whole number, not 'all'"),
    ({"CITEBOT_MAX_UPLOAD_ARTICLES": "-5"}, "CITEBOT_MAX_UPLOAD_ARTICLES must be a whole number of at least 1, not -5"),
])
def test_a_wrong_setting_is_refused_when_settings_are_made(monkeypatch, env, expected):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigurationError) as failure:
        Settings.from_env()
    assert str(failure.value).startswith(expected)


def test_when_the_reader_hesitates_the_excerpt_covers_the_likelier_sentences():
    from index.read.excerpt import excerpt_by_mass

    spans = sentence_spans(LEAD)
    first, second, third, fourth = (s for s, _ in spans)
    # Most of the start probability on sentences 3 and 4, a little on 1: the run from 3 wins.
    starts = [(first + 2, 0.2), (third + 6, 0.45), (fourth, 0.35)]
    start, end = excerpt_by_mass(LEAD, spans, starts, (third + 6, third + 11), max_chars=60)
    assert LEAD[start:end] == "Talks began in March. Analysts were surprised."
    # With room for everything, the excerpt still starts where the probability does.
    start, _ = excerpt_by_mass(LEAD, spans, [(second + 22, 1.0)], (second + 22, second + 25), max_chars=350)
    assert start == second


def test_a_heading_alone_is_not_an_excerpt_even_where_the_reader_looks():
    from index.read.excerpt import excerpt_by_mass

    text = "Nato agrees to strengthen eastern defences\n\nLeaders agreed to send four battlegroups east."
    spans = sentence_spans(text)
    assert len(spans) == 2
    start, end = excerpt_by_mass(text, spans, [(0, 0.7), (spans[1][0] + 25, 0.3)], (0, 4), max_chars=350)
    assert text[start:end] == "Leaders agreed to send four battlegroups east."


def test_without_the_reader_a_bare_headline_is_never_the_excerpt():
    from index.read.excerpt import select_excerpt
    from index.ingest.sentences import sentence_spans
    from index.search.tokenize import tokenize

    text = ("Nato agrees to strengthen eastern defences\n\n"
            "Leaders meeting in Brussels on Thursday agreed to send four more battlegroups to the alliance's "
            "eastern members, officials said.")
    spans = sentence_spans(text)
    weights = {t: 1.0 for t in tokenize("Did Nato agree to strengthen its eastern defences?")}
    (start, end), _ = select_excerpt(text, spans, [0.9, 0.4][: len(spans)], weights)
    assert text[start:end].startswith("Leaders meeting in Brussels")


@pytest.mark.parametrize("name, value, expected", [
    ("CITEBOT_LOG_QUESTIONS", "maybe", "CITEBOT_LOG_QUESTIONS must be 1 or 0, not 'maybe'"),
    ("CITEBOT_HISTORY_DAYS", "0", "CITEBOT_HISTORY_DAYS must be at least 1, not 0"),
    ("CITEBOT_REFRESH_MINUTES", "often", "CITEBOT_REFRESH_MINUTES must be a whole number, not 'often'"),
])
def test_the_bot_settings_share_the_engines_checks(monkeypatch, name, value, expected):
    from bot.config import BotConfig

    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigurationError) as failure:
        BotConfig.from_env()
    assert str(failure.value) == expected + "."


def test_every_setting_the_code_reads_is_a_known_one():
    """A setting the code reads but the lists lack would be called a typo (and left out of --help)."""
    import re

    from bot.config import BOT_SETTINGS
    from index.config import ENGINE_SETTINGS

    from .conftest import ROOT

    read = {name for folder in ("index", "bot") for path in (ROOT / folder).rglob("*.py")
            for name in re.findall(r"CITEBOT_[A-Z][A-Z_]*[A-Z]", path.read_text(encoding="utf-8"))}
    assert read and read <= set(ENGINE_SETTINGS) | BOT_SETTINGS, read - set(ENGINE_SETTINGS) - BOT_SETTINGS


def test_a_finished_stage_closes_its_bar_so_the_next_wait_is_not_blamed_on_it(monkeypatch, capsys):
    """`make run`: loading the model after the files are read must not show as time spent reading."""
    from bot.cli import ProgressBars

    clock = [1000.0]
    monkeypatch.setattr("tqdm.std.time", lambda: clock[0])
    bars = ProgressBars(terminal=True)
    bars("read", 1, 2)
    bars("read", 2, 2)
    clock[0] += 7  # the embedding model loads
    bars("embed", 1, 10)
    bars.close()
    reading = [x for x in capsys.readouterr().err.replace("\r", "\n").splitlines() if x.startswith("reading files")]
    assert reading and all("00:07" not in x for x in reading), reading[-1]


@pytest.mark.parametrize("path", ["corpus/fetched/example.org/2026-03-03-tram.json", "corpus/uploads/copper.txt"])
def test_what_feeds_and_uploads_write_into_the_default_corpus_is_not_part_of_the_clone(path):
    import shutil
    import subprocess

    from .conftest import ROOT

    if shutil.which("git") is None or subprocess.run(["git", "rev-parse"], cwd=ROOT, capture_output=True).returncode:
        pytest.skip("not a git checkout")
    assert subprocess.run(["git", "check-ignore", "-q", path], cwd=ROOT).returncode == 0, f"{path} would dirty the clone"
