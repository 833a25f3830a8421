"""The `citebot` command as a user types it: help, build, ask (text and JSON), stats, and clear errors."""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys

import pytest

from .conftest import ROOT, SAMPLE_CORPUS


def citebot(*args: str, data_dir, timeout: int = 300, env: dict | None = None, cwd=ROOT) -> subprocess.CompletedProcess:
    env = {**os.environ, "CITEBOT_DATA_DIR": str(data_dir), **(env or {})}
    env.pop("TELEGRAM_BOT_TOKEN", None)
    return subprocess.run([sys.executable, "-m", "bot.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


@pytest.mark.parametrize("command", [[], ["build"], ["ask"], ["stats"], ["eval"], ["serve"], ["feed"], ["add"], ["refresh"], ["report"]])
def test_every_command_explains_itself(tmp_path, command):
    result = citebot(*command, "--help", data_dir=tmp_path)
    assert result.returncode == 0
    assert "usage: citebot" in result.stdout and len(result.stdout.splitlines()) > 5


def test_the_live_news_limits_are_listed_in_the_help(tmp_path):
    shown = citebot("--help", data_dir=tmp_path).stdout
    for name in ("CITEBOT_FETCH_TIMEOUT", "CITEBOT_MAX_FEED_ITEMS", "CITEBOT_MAX_UPLOAD_ARTICLES"):
        assert name in shown, name


def test_ask_before_build_says_what_to_run(tmp_path):
    result = citebot("ask", "Where are the battlegroups?", data_dir=tmp_path / "nothing")
    assert result.returncode == 2
    assert "run `citebot build`" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.model
def test_build_ask_and_stats_from_the_command_line(tmp_path):
    corpus = tmp_path / "corpus"
    shutil.copytree(SAMPLE_CORPUS, corpus)
    (corpus / "broken.json").write_text("{ not json")
    data = tmp_path / "data"

    built = citebot("-q", "build", str(corpus), data_dir=data)
    assert built.returncode == 0, built.stderr
    assert "Indexed 2 documents" in built.stdout and "broken.json" in built.stdout

    asked = citebot("ask", "--json", "How many new battlegroups did NATO agree to deploy, and where?", data_dir=data)
    assert asked.returncode == 0, asked.stderr
    answer = json.loads(asked.stdout)
    assert answer["abstained"] is False and "Bulgaria" in answer["citations"][0]["excerpt"]

    # The build exported the model for ONNX Runtime: answering never loads torch (seconds of cold start).
    env = {**os.environ, "CITEBOT_DATA_DIR": str(data)}
    traced = subprocess.run([sys.executable, "-X", "importtime", "-m", "bot.cli", "ask", "Where are the battlegroups?"],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    imported = {line.rsplit("|", 1)[-1].strip() for line in traced.stderr.splitlines() if line.startswith("import time")}
    assert traced.returncode == 0 and "Bulgaria" in traced.stdout
    assert "onnxruntime" in imported and "torch" not in imported and "sentence_transformers" not in imported

    text = citebot("ask", "What is the capital of Peru?", data_dir=data)
    assert text.returncode == 0 and "could not find this in the articles" in text.stdout

    stats = citebot("stats", data_dir=data)
    assert stats.returncode == 0
    assert "documents:          2" in stats.stdout and "skipped files:      1" in stats.stdout
    assert "broken.json" in stats.stdout


def test_console_answers_through_the_same_engine(tmp_path, sample_engine):
    from bot.console import run_console

    lines = iter(["How many new battlegroups did NATO agree to deploy?", "", "What is the capital of Peru?", "quit"])
    shown: list[str] = []
    run_console(sample_engine, input_fn=lambda prompt: next(lines), print_fn=shown.append)
    assert "2 articles" in shown[0]
    assert "[1]" in shown[1] and "Bulgaria" in shown[1] and "2022-03-24" in shown[1]
    assert "could not find this in the articles" in shown[2]


def test_bad_arguments_get_one_line_not_a_traceback(tmp_path):
    zero = citebot("ask", "--k", "0", "Where are the battlegroups?", data_dir=tmp_path)
    assert zero.returncode == 2 and "at least 1" in zero.stderr
    directory = citebot("eval", str(tmp_path), data_dir=tmp_path / "data")
    not_squad = tmp_path / "odd.json"
    not_squad.write_text('{"data": [1]}')
    odd = citebot("eval", str(not_squad), data_dir=tmp_path / "data")
    for result in (directory, odd):
        assert result.returncode == 2 and result.stderr.startswith("citebot: ")
        assert "Traceback" not in result.stderr
    assert "not a SQuAD" in odd.stderr


def test_citebot_alone_prints_its_help_and_says_its_version(tmp_path):
    alone = citebot(data_dir=tmp_path)
    assert alone.returncode == 0 and "usage: citebot" in alone.stdout and "COMMAND" in alone.stdout
    version = citebot("--version", data_dir=tmp_path)
    assert version.returncode == 0 and version.stdout.startswith("citebot ")


def test_ask_json_reports_errors_as_json(tmp_path):
    result = citebot("ask", "--json", "Where are the battlegroups?", data_dir=tmp_path / "nothing")
    assert result.returncode == 2
    assert "run `citebot build`" in json.loads(result.stdout)["error"]


def test_a_garbage_setting_is_refused_before_any_work(tmp_path):
    env_data = tmp_path / "data"
    result = subprocess.run([sys.executable, "-m", "bot.cli", "build", str(SAMPLE_CORPUS)], cwd=ROOT,
                            env={**os.environ, "CITEBOT_DATA_DIR": str(env_data), "CITEBOT_FUSION": "bogus"},
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "CITEBOT_FUSION must be one of convex, rrf" in result.stderr
    assert not (env_data / "index").exists(), "nothing was built"


@pytest.mark.slow  # it waits through the retries with backoff (30 s)
def test_serve_says_in_one_line_when_the_bot_api_cannot_be_reached(tmp_path):
    data = tmp_path / "data"
    assert citebot("-q", "build", str(SAMPLE_CORPUS), data_dir=data).returncode == 0
    with socket.socket() as free:  # a port nothing listens on
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    env = {**os.environ, "CITEBOT_DATA_DIR": str(data), "TELEGRAM_BOT_TOKEN": "123:abc",
           "CITEBOT_TELEGRAM_API_URL": f"http://127.0.0.1:{port}/bot", "CITEBOT_BOOTSTRAP_RETRIES": "1"}
    done = subprocess.run([sys.executable, "-m", "bot.cli", "-q", "serve"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert f"the Bot API at http://127.0.0.1:{port}/bot cannot be reached" in done.stderr


@pytest.mark.model
def test_a_build_logged_to_a_file_shows_a_few_progress_lines_not_carriage_returns(tmp_path):
    corpus = tmp_path / "corpus"
    shutil.copytree(SAMPLE_CORPUS, corpus)
    built = citebot("build", str(corpus), data_dir=tmp_path / "data")  # stderr is a pipe, as in a log file
    assert built.returncode == 0, built.stderr
    assert "\r" not in built.stderr and "%|" not in built.stderr  # text=True reads a \r as \n: look for a bar
    assert "embedding passages and sentences: 100%" in built.stderr
    progress = [line for line in built.stderr.splitlines() if "embedding passages and sentences" in line]
    assert 1 <= len(progress) <= 11


def test_the_data_folder_can_be_given_after_the_command_too(tmp_path):
    result = citebot("stats", "--data-dir", str(tmp_path / "elsewhere"), data_dir=tmp_path / "default")
    assert result.returncode == 2 and str(tmp_path / "elsewhere") in result.stderr


def test_a_misspelt_setting_is_named_once_with_the_closest_real_one(tmp_path):
    typos = {"CITEBOT_READR": "0", "CITEBOT_CHUNK_WORD": "10", "CITEBOT_WEBHOK_URL": "https://x", "CITEBOT_XYZZY": "1"}
    result = citebot("stats", data_dir=tmp_path / "nothing", env=typos)
    said = result.stderr
    assert "CITEBOT_READR is not a citebot setting and is ignored; did you mean CITEBOT_READER?" in said
    assert "did you mean CITEBOT_CHUNK_WORDS?" in said and "did you mean CITEBOT_WEBHOOK_URL?" in said
    assert "CITEBOT_XYZZY is not a citebot setting and is ignored (citebot --help and citebot serve --help " \
           "list them)." in said
    assert said.count("CITEBOT_READR") == 1, "once"
    real = citebot("stats", data_dir=tmp_path / "nothing", env={"CITEBOT_READER": "0", "CITEBOT_ADMIN_IDS": "1"})
    assert "not a citebot setting" not in real.stderr


def test_quiet_and_verbose_work_after_the_command_too(tmp_path):
    from bot.cli import parser

    assert parser().parse_args(["build", "-q"]).quiet and parser().parse_args(["-q", "build"]).quiet
    assert not parser().parse_args(["build"]).quiet and parser().parse_args(["ask", "x", "--verbose"]).verbose
    assert parser().parse_args(["-v", "stats"]).verbose and not parser().parse_args(["stats"]).verbose
    result = citebot("stats", "-q", data_dir=tmp_path / "nothing")
    assert "unrecognized arguments" not in result.stderr and "run `citebot build`" in result.stderr


@pytest.mark.model
def test_eval_logged_to_a_file_shows_a_few_progress_lines_not_carriage_returns(tmp_path):
    corpus = tmp_path / "corpus"
    shutil.copytree(SAMPLE_CORPUS, corpus)
    questions = tmp_path / "questions.jsonl"
    questions.write_text("\n".join(json.dumps(q) for q in [
        {"question": "How many new battlegroups did NATO agree to deploy?", "answers": ["four"]},
        {"question": "Where will the battlegroups go?", "answers": ["Slovakia"]},
        {"question": "What is the capital of Peru?", "answers": []}]) + "\n")
    result = citebot("eval", str(questions), "--corpus", str(corpus), "--retriever", "bm25", data_dir=tmp_path / "data")
    assert result.returncode == 0, result.stderr
    assert "%|" not in result.stderr, "no progress bar in a pipe (text=True has turned its \\r into \\n)"
    assert "eval bm25: 100% (3 of 3)" in result.stderr and "| bm25 |" in result.stdout


def test_from_another_folder_a_missing_corpus_is_named_absolutely_with_the_setting_to_change(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "CITEBOT_CORPUS_DIR"}
    result = subprocess.run([sys.executable, "-m", "bot.cli", "build"], cwd=tmp_path, capture_output=True, text=True,
                            env={**env, "CITEBOT_DATA_DIR": str(tmp_path / "data"), "PYTHONPATH": str(ROOT)},
                            timeout=120)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"Corpus folder {tmp_path / 'corpus'} does not exist" in result.stderr
    assert "CITEBOT_CORPUS_DIR" in result.stderr


@pytest.mark.model
def test_ask_caps_k_and_says_so(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for i in range(30):
        (corpus / f"{i:02d}.txt").write_text(f"Title: Report {i}\n\nThe harbour authority counted {100 + i} ships "
                                             f"in port number {i} on a calm morning.")
    assert citebot("-q", "build", str(corpus), data_dir=tmp_path / "data").returncode == 0
    asked = citebot("ask", "--json", "--k", "1000", "How many ships were in port?", data_dir=tmp_path / "data")
    assert asked.returncode == 0, asked.stderr
    assert 1 <= len(json.loads(asked.stdout)["citations"]) <= 20
    assert "citebot: showing at most 20 citations (--k 1000 asked for more)" in asked.stderr


def test_a_closed_pipe_ends_citebot_quietly(tmp_path):
    """`citebot ask ... | head -1`: the reader has gone; no 'Broken pipe', no traceback."""
    read, write = os.pipe()
    os.close(read)
    try:
        env = {**os.environ, "CITEBOT_DATA_DIR": str(tmp_path)}
        result = subprocess.run([sys.executable, "-m", "bot.cli", "feed", "list"], cwd=ROOT, env=env, stdout=write,
                                stderr=subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(write)
    assert result.stderr == "" and result.returncode == 141  # 128 + SIGPIPE, as `yes | head` reports


def test_ask_help_names_every_json_field_and_the_help_every_setting(tmp_path):
    import re

    from bot.config import BOT_SETTINGS
    from index.read.answer import Answer, Citation
    from index.config import ENGINE_SETTINGS

    fields = set(Answer("q", False, (), "hybrid").to_dict()) | set(
        Citation(1, "x", 1.0, 1.0, "t", "s", "u", "p", "d", "c", 0, 1).to_dict())
    ask = citebot("ask", "--help", data_dir=tmp_path).stdout
    assert fields - set(re.findall(r"\w+", ask)) == set()
    main, serve = citebot("--help", data_dir=tmp_path).stdout, citebot("serve", "--help", data_dir=tmp_path).stdout
    assert "CITEBOT_READER" in main and set(ENGINE_SETTINGS) - set(re.findall(r"CITEBOT_\w+", main)) == set()
    assert BOT_SETTINGS - set(re.findall(r"CITEBOT_\w+", serve)) == set()


def test_installing_citebot_draws_no_setuptools_warning(tmp_path):
    """The distribution's layout is explicit: two packages, index and bot, and the reader's files."""
    pytest.importorskip("setuptools")
    project = tmp_path / "project"
    project.mkdir()
    for name in ("pyproject.toml", "README.md", "index", "bot"):
        (project / name).symlink_to(ROOT / name)
    for build in ("build_editable", "build_wheel"):
        done = subprocess.run([sys.executable, "-c", f"import sys, setuptools.build_meta as b; b.{build}(sys.argv[1])",
                               str(tmp_path / build)], cwd=project, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        said = done.stdout + done.stderr
        assert "Warning" not in said and "careful" not in said and "!!" not in said, said
    import zipfile

    (wheel,) = (tmp_path / "build_wheel").glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "index/models/reader/model.onnx" in names and "bot/cli.py" in names
    assert not [n for n in names if n.startswith(("tests/", "bench/"))]
