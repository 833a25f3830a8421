"""The model on its two runtimes: questions through ONNX Runtime, bulk text through torch, same vectors."""
from __future__ import annotations

import logging

import numpy as np

from index.encoders.embedding import BulkEmbedder
from index.encoders.embedder import Embedder
from index.config import Settings
from index.engine import Engine

TEXTS = [
    "Where will NATO deploy its new battlegroups?",
    "The alliance agreed to send four battlegroups to Bulgaria, Hungary, Romania and Slovakia.",
    "Ilirjan Celibashi tha se zgjedhjet do të mbahen në kohë.",
    "<b>HTML</b> & odd   spacing\n\nacross lines",
]


def test_questions_on_onnx_match_the_torch_vectors(embedder):
    assert embedder.queries.onnx is not None, "the default model exports to ONNX"
    bulk = embedder.bulk.embed(TEXTS)
    queries = np.stack([embedder.queries.embed(t) for t in TEXTS])
    assert queries.dtype == np.float32 and queries.shape == (len(TEXTS), embedder.queries.dim)
    assert np.allclose(np.linalg.norm(queries, axis=1), 1.0, atol=1e-5)
    # Same model, two runtimes (and bfloat16 bulk where the CPU has it): cosines agree to 1e-3.
    assert (bulk * queries).sum(axis=1).min() > 0.999


def test_bfloat16_and_float32_bulk_vectors_agree(embedder, tmp_path):
    fp32 = BulkEmbedder(precision="fp32").embed(TEXTS)
    bf16 = BulkEmbedder(precision="bf16").embed(TEXTS)
    assert (fp32 * bf16).sum(axis=1).min() > 0.999


def test_a_damaged_export_is_made_again_and_questions_stay_on_onnx(embedder, tmp_path, caplog):
    damaged = Embedder(cache_dir=tmp_path)
    folder = damaged.queries._folder()
    folder.mkdir(parents=True)
    for name in ("model.onnx", "tokenizer.json", "encoder.json"):
        (folder / name).write_text("not a model")
    with caplog.at_level(logging.WARNING):
        vector = damaged.queries.embed(TEXTS[0])
    assert "does not load" in caplog.text and "exporting it again" in caplog.text
    assert damaged.queries.onnx is not None, "repaired: the next process starts without torch"
    assert float(vector @ embedder.queries.embed(TEXTS[0])) > 0.999


def test_a_failed_export_is_tried_once_and_remembered(embedder, tmp_path, monkeypatch, caplog):
    import index.encoders.onnx_export

    calls = []

    def disk_full(model, folder):
        calls.append(folder)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(index.encoders.onnx_export, "export", disk_full)
    first = Embedder(cache_dir=tmp_path)
    first.bulk._model = embedder.bulk.model  # the loaded model: no second load in this test
    with caplog.at_level(logging.WARNING):
        first.queries.embed(TEXTS[0])
        first.queries.embed(TEXTS[1])
    assert len(calls) == 1 and "No space left on device" in caplog.text and "citebot build" in caplog.text
    later = Embedder(cache_dir=tmp_path)  # another process, another question
    later.bulk._model = embedder.bulk.model
    later.queries.embed(TEXTS[0])
    assert len(calls) == 1, "the failure was remembered: no export per question"
    assert "failed before" in caplog.text


def test_a_wrong_setting_says_what_is_allowed():
    for bad in (dict(precision="fp8"), dict(query_backend="tpu")):
        try:
            Embedder(**bad)
        except ValueError as exc:
            assert "must be one of" in str(exc)
        else:
            raise AssertionError(f"{bad} was accepted")


def test_importing_the_engine_leaves_the_environment_alone():
    import os
    import subprocess
    import sys

    code = "import os, index.engine, index.config; print(os.environ.get('HF_HUB_OFFLINE', 'unset'))"
    env = {k: v for k, v in os.environ.items() if k != "HF_HUB_OFFLINE"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == "unset"


def test_adding_a_few_articles_loads_no_torch_and_their_vectors_match_the_torch_models(tmp_path, embedder):
    import subprocess
    import sys

    from .conftest import ROOT, write_corpus

    corpus = write_corpus(tmp_path / "corpus", {
        "rates.txt": "Title: Rates\n\nThe central bank raised rates to 5.25% on Thursday, the highest in 22 years.",
    })
    data = tmp_path / "data"
    first = subprocess.run([sys.executable, "-m", "bot.cli", "-q", "--data-dir", str(data), "build", str(corpus)],
                           cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr[-2000:]  # the first build also exports the model for questions
    engine = Engine(Settings(data_dir=data, corpus_dir=corpus), embedder)
    write_corpus(corpus, {"copper.txt": "Title: Copper\n\nCopper prices rose 4% after a strike closed the "
                                        "largest mine in Chile for a week."})
    script = ("import sys\nfrom index.config import Settings\nfrom index.engine import Engine\n"
              f"engine = Engine(Settings(data_dir={str(engine.settings.data_dir)!r}, corpus_dir={str(corpus)!r}))\n"
              "report = engine.build()\n"
              "answer = engine.ask('Why did copper prices rise?')\n"
              "print(report.embedded, 'torch' in sys.modules, answer.citations[0].title)\n")
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["1", "False", "Copper"], "one chunk embedded through ONNX Runtime, no torch"

    from index.ingest.chunking import embedding_text

    view = Engine(engine.settings, engine.embedder).snapshot
    records = view.chunks(list(range(view.chunk_count)))
    by_torch = engine.embedder.bulk.embed([embedding_text(c.title, c.text) for c in records.values()])
    cosines = (np.asarray(view.vectors[list(records)], dtype=np.float32) * by_torch).sum(axis=1)
    assert len(cosines) == 2 and cosines.min() > 0.999, cosines
