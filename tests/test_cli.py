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


def citebot(*args: str, data_dir, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "CITEBOT_DATA_DIR": str(data_dir)}
    env.pop("TELEGRAM_BOT_TOKEN", None)
    return subprocess.run([sys.executable, "-m", "bot.cli", *args], cwd=ROOT, env=env,
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
    assert "\r" not in built.stderr
    assert "embedding passages and sentences: 100%" in built.stderr
    progress = [line for line in built.stderr.splitlines() if "embedding passages and sentences" in line]
    assert 1 <= len(progress) <= 11


def test_the_data_folder_can_be_given_after_the_command_too(tmp_path):
    result = citebot("stats", "--data-dir", str(tmp_path / "elsewhere"), data_dir=tmp_path / "default")
    assert result.returncode == 2 and str(tmp_path / "elsewhere") in result.stderr
