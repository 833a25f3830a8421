"""`citebot eval` on small question sets of its own: the documented JSON, with numbers that mean something."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from index.evaluate import load_jsonl

from .conftest import ROOT, write_corpus

METRICS = {"recall@1", "recall@5", "recall@10", "chunk_recall@1", "chunk_recall@5", "chunk_recall@10", "mrr", "abstain_rate_answerable",
           "abstain_rate_unanswerable", "bold_shown", "bold_holds_answer", "bold_exact_match", "latency_ms_p50",
           "latency_ms_p95"}

SQUAD = {"version": "1.1", "data": [
    {"title": "Port_of_Rotterdam", "paragraphs": [
        {"context": "The Port of Rotterdam is the largest seaport in Europe. In 2023 it handled 439 million "
                    "tonnes of cargo. The port stretches over 40 kilometres along the river Maas.",
         "qas": [{"id": "1", "question": "What is the largest seaport in Europe?",
                  "answers": [{"text": "The Port of Rotterdam", "answer_start": 0}]},
                 {"id": "2", "question": "How much cargo did the port handle in 2023?",
                  "answers": [{"text": "439 million tonnes", "answer_start": 70}]}]}]},
    {"title": "Alpine_skiing", "paragraphs": [
        {"context": "Alpine skiing became an Olympic sport in 1936 at the Garmisch-Partenkirchen games. "
                    "Racers descend gates on a course set on a snowy slope.",
         "qas": [{"id": "3", "question": "When did alpine skiing become an Olympic sport?",
                  "answers": [{"text": "1936", "answer_start": 41}]}]}]},
]}


def _eval(tmp_path, *args):
    env = {**os.environ, "CITEBOT_DATA_DIR": str(tmp_path / "data")}
    result = subprocess.run([sys.executable, "-m", "bot.cli", "-q", "eval", *args, "--json"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.mark.model
def test_eval_on_a_squad_file_prints_the_documented_json(tmp_path):
    squad = tmp_path / "mini-squad.json"
    squad.write_text(json.dumps(SQUAD))
    result = _eval(tmp_path, str(squad))
    assert result["questions"] == 3 and result["answerable"] == 3
    # hybrid-no-reader: the default hybrid with the reading model off, measured in the same run
    assert set(result["retrievers"]) == {"dense", "bm25", "hybrid", "hybrid-no-reader"}
    for metrics in result["retrievers"].values():
        assert set(metrics) == METRICS
        assert metrics["recall@1"] == 1.0 and metrics["mrr"] == 1.0
        assert metrics["abstain_rate_unanswerable"] is None
        assert metrics["latency_ms_p50"] > 0


@pytest.mark.model
def test_eval_on_jsonl_against_a_corpus_counts_abstentions(tmp_path):
    corpus = write_corpus(tmp_path / "corpus", {
        "rotterdam.txt": "Title: Rotterdam record\n\nThe port of Rotterdam handled 439 million tonnes of cargo in 2023.",
        "skiing.txt": "Title: Skiing history\n\nAlpine skiing became an Olympic sport in 1936.",
    })
    questions = tmp_path / "questions.jsonl"
    questions.write_text("\n".join(json.dumps(q) for q in [
        {"question": "How much cargo did Rotterdam handle in 2023?", "answers": ["439 million tonnes"], "id": 7},
        {"question": "When did alpine skiing join the Olympics?", "answers": ["1936"]},
        {"question": "What is the capital of Peru?", "answers": []},
        {"question": "How do I bake sourdough bread?", "answers": []},
    ]))
    result = _eval(tmp_path, str(questions), "--corpus", str(corpus), "--retriever", "hybrid")
    hybrid = result["retrievers"]["hybrid"]
    assert result["questions"] == 4 and result["answerable"] == 2
    assert hybrid["recall@1"] == 1.0
    assert hybrid["abstain_rate_unanswerable"] == 1.0 and hybrid["abstain_rate_answerable"] == 0.0


@pytest.mark.model
def test_eval_adds_distractor_folders_and_takes_a_squad_file_as_corpus(tmp_path):
    squad = tmp_path / "mini-squad.json"
    squad.write_text(json.dumps(SQUAD))
    distractors = write_corpus(tmp_path / "news", {
        "ferries.txt": "Title: Ferry strike\n\nFerry crews at the port of Dover walked out on Monday over pay.",
    })
    with_news = _eval(tmp_path, str(squad), "--corpus", str(distractors), "--retriever", "hybrid")
    assert with_news["retrievers"]["hybrid"]["recall@1"] == 1.0

    questions = tmp_path / "questions.jsonl"
    questions.write_text("\n".join(json.dumps(q) for q in [
        {"question": "Why did the ferry crews strike?", "answers": ["over pay"]},
        {"question": "How much cargo did the port handle in 2023?", "answers": ["439 million tonnes"]},
    ]))
    # The same two sources in the same order reuse the index built above.
    result = _eval(tmp_path, str(questions), "--corpus", str(squad), "--corpus", str(distractors),
                   "--retriever", "hybrid")
    assert result["retrievers"]["hybrid"]["recall@1"] == 1.0
    assert len(list((tmp_path / "data" / "eval").iterdir())) == 1


@pytest.mark.model
def test_eval_on_one_half_of_a_squad_file_asks_only_that_half(tmp_path):
    squad = tmp_path / "mini-squad.json"
    squad.write_text(json.dumps(SQUAD))
    odd = _eval(tmp_path, str(squad), "--articles", "odd", "--retriever", "hybrid")
    assert odd["questions"] == 1 and odd["retrievers"]["hybrid"]["recall@1"] == 1.0  # the skiing article


@pytest.mark.parametrize("content, expected", [
    ('{"question": "Capital of Peru?", "answers": "Lima"}', '"answers" must be a list of strings'),
    ('{"question": 42, "answers": []}', '"question" must be non-empty text'),
    ('{"foo": "bar"}', '"question" must be non-empty text'),
    ("[1, 2, 3]", "is not a question record"),
    ("{not json", "line 1 is not JSON"),
    ("", "holds no questions"),
    (b"\xff\xfe\x00binary", "is not UTF-8 text"),
])
def test_a_bad_question_file_gets_one_line_naming_the_file_and_line(tmp_path, content, expected):
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(ValueError) as failure:
        load_jsonl(bad)
    assert expected in str(failure.value) and str(bad) in str(failure.value)


def test_eval_of_a_missing_file_says_so_from_the_command_line(tmp_path):
    env = {**os.environ, "CITEBOT_DATA_DIR": str(tmp_path / "data")}
    done = subprocess.run([sys.executable, "-m", "bot.cli", "-q", "eval", str(tmp_path / "nope.jsonl")], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stderr.strip() == f"citebot: {tmp_path / 'nope.jsonl'} does not exist"
