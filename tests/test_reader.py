"""The reading model in the answer path: the committed int8 ONNX model, the real engine."""
from __future__ import annotations

import json
import shutil
from dataclasses import replace

import pytest

import index.engine as engine_module
from index.config import Settings
from index.engine import Engine
from index.read.reader import CONFIG_FILE, MODEL_FILE, READER_DIR, Reader, ReaderUnavailable

from .test_answers import BATTLEGROUPS


def test_the_committed_model_is_small_and_described_by_its_card():
    assert (READER_DIR / MODEL_FILE).stat().st_size <= 30 * 2**20
    card = (READER_DIR / "README.md").read_text()
    config = json.loads((READER_DIR / CONFIG_FILE).read_text())
    assert 0.0 < config["threshold"] < 1.0
    assert str(config["threshold"]) in card and "even" in card and "sha256" in card


def test_the_first_excerpt_marks_the_answer_the_reader_found(sample_engine):
    answer = sample_engine.ask(BATTLEGROUPS)
    first = answer.citations[0]
    assert answer.confidence is not None and answer.confidence >= Reader(READER_DIR).threshold
    assert first.confidence is not None and any(c in first.excerpt for c in ("Bulgaria", "four"))
    # Bold only when the reader is sure of a span of the asked kind (a number for "how many"):
    # when it is shown, it is that answer.
    if first.highlight is not None:
        a, b = first.highlight
        assert any(c in first.excerpt[a:b] for c in ("Bulgaria", "four"))


def test_the_reader_tells_a_passage_that_answers_from_one_that_does_not():
    reader = Reader(READER_DIR)
    answering, unrelated = reader.read(
        "How many new battlegroups did NATO agree to deploy?",
        [("NATO summit", "Leaders agreed to deploy four new battlegroups in Bulgaria, Hungary, Romania and Slovakia."),
         ("Bakery news", "The shop sells sourdough bread baked every morning with flour from a local mill.")],
    )
    assert answering.confidence > unrelated.confidence
    s, e = answering.span
    assert "four" in "Leaders agreed to deploy four new battlegroups in Bulgaria"[s:e]


def test_with_the_reader_off_answers_are_chosen_as_before(sample_engine):
    off = Engine(replace(sample_engine.settings, reader=False), sample_engine.embedder)
    answer = off.ask(BATTLEGROUPS)
    assert answer.confidence is None and all(c.highlight is None for c in answer.citations)
    assert not answer.abstained and "Bulgaria" in answer.citations[0].excerpt
    assert Settings.from_env().reader is True


def test_a_damaged_reader_is_named_in_one_sentence_and_answers_go_on(sample_engine, tmp_path, monkeypatch, caplog):
    damaged = tmp_path / "reader"
    shutil.copytree(READER_DIR, damaged)
    (damaged / MODEL_FILE).write_bytes((damaged / MODEL_FILE).read_bytes()[:4096])
    with pytest.raises(ReaderUnavailable) as failure:
        Reader(damaged)
    assert str(damaged) in str(failure.value) and "CITEBOT_READER=0" in str(failure.value)
    assert "\n" not in str(failure.value)

    monkeypatch.setattr(engine_module, "READER_DIR", damaged)
    engine = Engine(sample_engine.settings, sample_engine.embedder)
    answer = engine.ask(BATTLEGROUPS)
    assert not answer.abstained and answer.confidence is None and "Bulgaria" in answer.citations[0].excerpt
    assert "Answering without it" in caplog.text
