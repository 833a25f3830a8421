"""The index on disk: rebuilds reuse vectors, crashes leave the old index answering, damage is explained."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
from dataclasses import replace

import numpy as np
import pytest

from index.config import Settings
from index.encoders.embedder import Embedder
from index.engine import Engine
from index.store.files import IndexCorrupt, IndexMismatch, IndexMissing, current_build_dir

from .conftest import ROOT, SAMPLE_CORPUS, write_corpus

MARKETS = {
    "rates.txt": "Title: Central bank raises rates\nSource: Wire\n\nThe central bank raised its main rate to 5.25% "
                 "on Thursday to fight inflation. Mortgage lenders said repayments would rise within weeks.",
    "wheat.txt": "Title: Wheat harvest shrinks\nSource: Wire\n\nDrought cut the wheat harvest by a fifth this summer, "
                 "farmers said, pushing bread prices to a record.",
}
NEW_ARTICLE = ("Title: Copper hits a high\nSource: Wire\n\nCopper prices hit an all-time high as mines in Chile "
               "cut output after strikes, traders said.")


def test_rebuilding_an_unchanged_corpus_embeds_nothing(tmp_path, make_engine):
    engine = make_engine(write_corpus(tmp_path / "corpus", MARKETS))
    first = current_build_dir(engine.settings.index_root)
    report = engine.build()
    assert report.unchanged and report.embedded == 0
    assert current_build_dir(engine.settings.index_root) == first

    forced = engine.build(force=True)
    assert not forced.unchanged and forced.embedded == 0 and forced.reused == forced.chunks
    assert forced.sentences_embedded == 0

    # A fresh process rebuilding the same corpus never loads the model.
    fresh = Engine(engine.settings, Embedder())
    assert fresh.build(force=True).reused == forced.chunks and not fresh.embedder.bulk.loaded


def test_a_story_repeated_across_articles_is_embedded_once(tmp_path, embedder):
    shared = " ".join(f"Storm Ciara closed the harbour at Dover for the {n}th hour as waves topped the wall."
                      for n in range(1, 12))
    corpus = write_corpus(tmp_path / "corpus", {
        "wire.txt": f"Title: Storm closes Dover harbour\nSource: Wire\n\n{shared}\n\nFerries were sent to Calais.",
        "local.txt": f"Title: Storm closes Dover harbour\nSource: Kent Daily\n\n{shared}\n\nSchools shut early.",
    })
    engine = Engine(Settings(data_dir=tmp_path / "data", corpus_dir=corpus), embedder)
    report = engine.build()
    assert report.documents == 2 and report.duplicate_chunks >= 1
    assert report.embedded + report.duplicate_chunks == report.chunks
    assert "embedded once" in report.summary()
    answer = engine.ask("Why did the ferries go to Calais?")
    assert "Calais" in answer.citations[0].excerpt or "Dover" in answer.citations[0].excerpt


def test_a_large_corpus_gets_a_graph_index_that_finds_the_same_passages(tmp_path, make_engine):
    corpus = write_corpus(tmp_path / "corpus", MARKETS | {"copper.txt": NEW_ARTICLE})
    flat = make_engine(corpus, data_dir=tmp_path / "flat")
    graph = make_engine(corpus, data_dir=tmp_path / "graph", dense_index="hnsw")
    assert flat.snapshot.manifest["dense_index"]["type"] == "flat"
    assert graph.snapshot.manifest["dense_index"]["type"] == "hnsw"
    for question in ("Why did copper prices hit a record?", "What happened to mortgage repayments?"):
        a, b = flat.ask(question), graph.ask(question)
        assert [c.excerpt for c in a.citations] == [c.excerpt for c in b.citations]
    with pytest.raises(ValueError, match="CITEBOT_DENSE_INDEX must be one of auto, flat, hnsw"):
        make_engine(corpus, data_dir=tmp_path / "odd", dense_index="ivf")


def test_adding_one_article_embeds_only_that_article(tmp_path, make_engine):
    corpus = write_corpus(tmp_path / "corpus", MARKETS)
    engine = make_engine(corpus)
    before = engine.stats()["chunks"]
    (corpus / "copper.txt").write_text(NEW_ARTICLE)
    report = engine.build()
    assert report.embedded == 1 and report.reused == before and report.chunks == before + 1
    assert report.sentences_embedded == 1  # the new article's one sentence; the others are reused
    answer = engine.ask("Why did copper prices hit a record?")
    assert "Chile" in answer.citations[0].excerpt


def test_a_build_killed_midway_leaves_the_old_index_answering(tmp_path, make_engine):
    corpus = write_corpus(tmp_path / "corpus", MARKETS)
    engine = make_engine(corpus)
    live = current_build_dir(engine.settings.index_root)
    (corpus / "copper.txt").write_text(NEW_ARTICLE)
    # A real process, killed with SIGKILL while it writes the new build's files.
    script = textwrap.dedent(f"""
        import os, signal
        from index.store import files as store
        from index.store.builder import build_index
        from index.config import Settings
        def die(self, tokens):
            os.kill(os.getpid(), signal.SIGKILL)
        store.IndexWriter.write_postings = die
        build_index(Settings(data_dir={str(engine.settings.data_dir)!r}, corpus_dir={str(corpus)!r}))
    """)
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, timeout=300)
    assert result.returncode == -signal.SIGKILL
    builds = engine.settings.index_root / "builds"
    assert any(p.name.startswith(".tmp-") for p in builds.iterdir()), "the kill left a half-written build"

    assert current_build_dir(engine.settings.index_root) == live
    fresh = Engine(engine.settings, engine.embedder)
    assert "5.25%" in fresh.ask("What did the central bank do to rates?").citations[0].excerpt
    assert fresh.stats()["documents"] == 2

    report = fresh.build()
    assert report.documents == 3 and report.embedded == 1
    assert not any(p.name.startswith(".tmp-") for p in builds.iterdir()), "the next build sweeps it away"


def test_a_failed_build_keeps_the_old_index_and_says_why(tmp_path, make_engine):
    corpus = write_corpus(tmp_path / "corpus", MARKETS)
    engine = make_engine(corpus)
    for f in corpus.iterdir():
        f.unlink()
    from index.store.builder import BuildError

    with pytest.raises(BuildError, match="No readable articles"):
        engine.build()
    assert engine.stats()["documents"] == 2


def test_missing_corrupt_and_mismatched_indexes_get_one_clear_sentence(tmp_path, make_engine, embedder):
    settings = Settings(data_dir=tmp_path / "empty", corpus_dir=SAMPLE_CORPUS)
    with pytest.raises(IndexMissing, match="run `citebot build`"):
        Engine(settings, embedder).ask("anything?")

    engine = make_engine(write_corpus(tmp_path / "corpus", MARKETS))
    build = current_build_dir(engine.settings.index_root)

    other_model = replace(engine.settings, model="some-other-model")
    with pytest.raises(IndexMismatch, match="built with the model 'all-MiniLM-L6-v2'.*run `citebot build`"):
        Engine(other_model, embedder).ask("rates?")

    vectors_file = build / "vectors.npy"
    saved = vectors_file.read_bytes()
    vectors_file.write_bytes(b"")
    with pytest.raises(IndexCorrupt, match=r"damaged \(vectors.npy cannot be read\); run `citebot build`"):
        Engine(engine.settings, embedder).ask("rates?")
    np.save(vectors_file, np.array([{"pickled": "object"}], dtype=object))
    with pytest.raises(IndexCorrupt, match=r"damaged \(vectors.npy cannot be read\)") as failure:
        Engine(engine.settings, embedder).ask("rates?")
    assert "pickle" not in str(failure.value), "the library's words go to the log, not to the user"
    vectors_file.write_bytes(saved)

    sentences_file = build / "sentences.npy"
    saved = sentences_file.read_bytes()
    count = engine.stats()["sentences"]
    np.save(sentences_file, np.zeros((count + 2, 384), dtype=np.float16))  # readable, but the wrong size
    with pytest.raises(IndexCorrupt, match="sentence vectors.*run `citebot build`"):
        Engine(engine.settings, embedder).ask("rates?")
    sentences_file.write_bytes(saved)

    faiss_file = build / "dense.faiss"
    faiss_file.write_bytes(faiss_file.read_bytes()[:100])
    with pytest.raises(IndexCorrupt, match=r"damaged \(dense.faiss cannot be read\); run `citebot build`") as failure:
        Engine(engine.settings, embedder).ask("rates?")
    assert "faiss::" not in str(failure.value)

    (build / "manifest.json").write_text("{ truncated")
    with pytest.raises(IndexCorrupt, match="manifest.*damaged"):
        Engine(engine.settings, embedder).ask("rates?")

    # Doing what the message says repairs it: the damaged build is not taken as up to date.
    repaired = Engine(engine.settings, embedder)
    report = repaired.build()
    assert not report.unchanged and report.embedded == 0, "the build cache lends its vectors: a rewrite, no embedding"
    assert "5.25%" in repaired.ask("What did the central bank do to rates?").citations[0].excerpt


def test_questions_keep_being_answered_while_the_index_is_swapped(tmp_path, make_engine):
    corpus = write_corpus(tmp_path / "corpus", MARKETS)
    engine = make_engine(corpus)
    (corpus / "copper.txt").write_text(NEW_ARTICLE)
    answers, errors = [], []

    def ask_many():
        try:
            for _ in range(15):
                answers.append(engine.ask("What did the central bank do to rates?"))
        except Exception as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=ask_many) for _ in range(4)]
    for t in threads:
        t.start()
    engine.build()
    for t in threads:
        t.join()
    assert not errors
    assert len(answers) == 60 and all("5.25%" in a.citations[0].excerpt for a in answers)
    assert engine.stats()["documents"] == 3
    assert "Chile" in engine.ask("Why did copper prices hit a record?").citations[0].excerpt


def test_another_process_build_is_picked_up_without_restart(tmp_path, make_engine, embedder):
    corpus = write_corpus(tmp_path / "corpus", MARKETS)
    engine = make_engine(corpus)
    assert engine.stats()["documents"] == 2
    (corpus / "copper.txt").write_text(NEW_ARTICLE)
    Engine(engine.settings, embedder).build()  # as `citebot build` would, from another process
    assert engine.stats()["documents"] == 3


def test_a_damaged_new_build_does_not_take_down_a_running_engine(tmp_path, make_engine, embedder):
    corpus = write_corpus(tmp_path / "corpus", MARKETS)
    engine = make_engine(corpus)
    (corpus / "copper.txt").write_text(NEW_ARTICLE)
    Engine(engine.settings, embedder).build()  # another process builds...
    (current_build_dir(engine.settings.index_root) / "manifest.json").write_text("garbage")  # ...and it is damaged
    answer = engine.ask("What did the central bank do to rates?")
    assert "5.25%" in answer.citations[0].excerpt
    assert engine.stats()["documents"] == 2, "still the old, working index"


def test_a_garbage_pointer_is_named_and_a_build_repairs_it_reusing_every_vector(tmp_path, make_engine, embedder):
    corpus = write_corpus(tmp_path / "corpus", MARKETS)
    engine = make_engine(corpus)
    (engine.settings.index_root / "CURRENT").write_bytes(b"\x00\xff")
    fresh = Engine(engine.settings, embedder)
    with pytest.raises(IndexCorrupt, match=r"index pointer .*CURRENT is damaged"):
        fresh.ask("What did the central bank do to rates?")
    report = fresh.build()
    assert report.embedded == 0 and report.reused > 0, "the intact build lent its vectors"
    assert "5.25%" in fresh.ask("What did the central bank do to rates?").citations[0].excerpt


def test_vectors_damaged_in_place_are_not_spread_by_the_next_build(tmp_path, make_engine, embedder):
    corpus = write_corpus(tmp_path / "corpus", MARKETS)
    engine = make_engine(corpus)
    vectors_file = current_build_dir(engine.settings.index_root) / "vectors.npy"
    good = np.load(vectors_file)
    garbage = np.random.default_rng(0).normal(size=good.shape).astype(np.float32)
    np.save(vectors_file, garbage)  # a valid header, the wrong numbers
    fresh = Engine(engine.settings, embedder)
    report = fresh.build(force=True)
    assert report.embedded == 0, "the build cache's copies, not the damaged file's"
    rebuilt = np.load(current_build_dir(engine.settings.index_root) / "vectors.npy")
    assert np.allclose(rebuilt, good, atol=1e-3)
    assert "5.25%" in fresh.ask("What did the central bank do to rates?").citations[0].excerpt

    # Damaged again, and the cache gone too: embedded again, never copied from the damage.
    vectors_file = current_build_dir(engine.settings.index_root) / "vectors.npy"
    np.save(vectors_file, garbage)
    (engine.settings.index_root / "cache.sqlite").unlink()
    report = Engine(engine.settings, embedder).build(force=True)
    assert report.embedded == report.chunks, "nothing reused from the damaged vectors"
    assert np.allclose(np.load(current_build_dir(engine.settings.index_root) / "vectors.npy"), good, atol=1e-3)


def test_a_full_disk_gets_one_sentence_leaves_nothing_behind_and_the_old_index_serving(tmp_path, embedder):
    from index.errors import BuildError

    disk = tmp_path / "small-disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(disk)], capture_output=True).returncode:
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    try:
        corpus = write_corpus(tmp_path / "corpus", MARKETS)
        engine = Engine(Settings(data_dir=disk / "data", corpus_dir=corpus), embedder)
        engine.build()
        free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
        (disk / "filler").write_bytes(b"\0" * max(0, free - 16 * 1024))  # leave 16 KB
        (corpus / "copper.txt").write_text(NEW_ARTICLE)
        with pytest.raises(BuildError, match=r"The disk holding .*data/index is full: this build needs about "
                                             r"[0-9.]+ MB and [0-9.]+ MB are free\. Free some space"):
            Engine(engine.settings, embedder).build()
        assert not list((disk / "data" / "index" / "builds").glob(".tmp-*")), "the half build was removed"
        assert "5.25%" in engine.ask("What did the central bank do to rates?").citations[0].excerpt
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)


KILL_POINTS = {
    "reading": "from index.ingest import documents as m; m.make_document = die",
    "embedding": "from index.encoders.embedding import BulkEmbedder as m; m.embed_into = die\n"
                 "from index.encoders.embedder import UpdateEmbedder as u; u.embed_into = die",
    "writing vectors": "m = store.IndexWriter; m.write_vectors = die",
    "writing postings": "m = store.IndexWriter; m.write_postings = die",
    "renamed, before CURRENT": "real = store._fsync_dir\n"
                               "store._fsync_dir = lambda p: die() if p.name == 'builds' else real(p)",
    "after CURRENT, before pruning": "m = store.IndexWriter; m._prune = die",
}


def test_a_build_killed_at_any_point_leaves_an_index_that_loads_and_no_growing_leftovers(tmp_path, make_engine):
    corpus = write_corpus(tmp_path / "corpus", MARKETS)
    engine = make_engine(corpus)
    data = engine.settings.data_dir
    for n, (point, patch) in enumerate(KILL_POINTS.items()):
        (corpus / f"new-{n}.txt").write_text(NEW_ARTICLE.replace("Copper", f"Copper {n}"))
        script = "import os, signal\nfrom index.store import files as store\n" \
                 "def die(*args, **kwargs):\n    os.kill(os.getpid(), signal.SIGKILL)\n" + patch + "\n" + \
                 "from index.engine import Engine\nfrom index.config import Settings\n" + \
                 f"Engine(Settings(data_dir={str(data)!r}, corpus_dir={str(corpus)!r})).build()\n"
        result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, timeout=300)
        assert result.returncode == -signal.SIGKILL, (point, result.stderr[-2000:])
        fresh = Engine(engine.settings, engine.embedder)
        answer = fresh.ask("What did the central bank do to rates?")
        assert "5.25%" in answer.citations[0].excerpt, f"killed while {point}: the index does not answer"
    report = Engine(engine.settings, engine.embedder).build()
    assert report.documents == 2 + len(KILL_POINTS)
    builds = engine.settings.index_root / "builds"
    assert not [p for p in builds.iterdir() if p.name.startswith(".tmp-")], "half-written builds are swept"
    assert len([p for p in builds.iterdir() if p.is_dir()]) <= 2, "old builds are pruned"


DAMAGES = {
    "truncated": lambda path: path.write_bytes(path.read_bytes()[: max(1, path.stat().st_size // 3)]),
    "random bytes": lambda path: path.write_bytes(os.urandom(max(64, path.stat().st_size))),
    "deleted": lambda path: path.unlink(),
}


@pytest.mark.parametrize("damage", list(DAMAGES))
def test_every_file_of_a_live_build_damaged_is_named_and_a_build_repairs_it(tmp_path, make_engine, embedder, damage):
    engine = make_engine(write_corpus(tmp_path / "corpus", MARKETS))
    build = current_build_dir(engine.settings.index_root)
    files = sorted(p.relative_to(build) for p in build.rglob("*") if p.is_file())
    assert len(files) >= 6
    for name in files:
        DAMAGES[damage](build / name)
        try:
            reply = Engine(engine.settings, embedder).ask("What did the central bank do to rates?")
            noticed = None
        except IndexCorrupt as exc:
            noticed = str(exc)
        if noticed is None:  # not needed to answer: it must still be noticed before it is reused
            assert "5.25%" in reply.citations[0].excerpt
        else:
            assert "run `citebot build`" in noticed and "Traceback" not in noticed, name
        repairing = Engine(engine.settings, embedder)
        report = repairing.build()
        assert not report.unchanged or noticed is None, f"{name} {damage}: the damaged build was taken as up to date"
        assert report.embedded == 0 and report.sentences_embedded == 0, \
            f"{name} {damage}: the repair embedded again what the build cache holds"
        assert "5.25%" in repairing.ask("What did the central bank do to rates?").citations[0].excerpt, name
        build = current_build_dir(engine.settings.index_root)  # the next file is damaged in a sound build


def test_a_copy_added_later_is_the_duplicate_whatever_its_name(tmp_path, make_engine):
    """The article already indexed stays cited; a copy that sorts before it does not replace it."""
    corpus = write_corpus(tmp_path / "corpus", {"wire/rates.txt": MARKETS["rates.txt"]})
    engine = make_engine(corpus)
    write_corpus(corpus, {"a-copies/rates-again.txt": MARKETS["rates.txt"].replace("Central bank raises rates",
                                                                                    "Rates go up")})
    engine.build()
    assert [d["path"] for d in engine.stats()["duplicate_documents"]] == ["a-copies/rates-again.txt"]
    cited = engine.ask("What did the central bank do to its main rate?").citations[0]
    assert cited.path == "wire/rates.txt" and cited.title == "Central bank raises rates"
    # A fresh build (nothing indexed yet) keeps the first by path, as before.
    fresh = Engine(replace(engine.settings, data_dir=tmp_path / "fresh"), engine.embedder)
    fresh.build()
    assert [d["path"] for d in fresh.stats()["duplicate_documents"]] == ["wire/rates.txt"]


def _random_numbers_under_the_header(path, rows: int, dim: int) -> None:
    """Keep the file's header (it still loads) and fill its vectors with random numbers."""
    data = path.read_bytes()
    if path.suffix == ".npy":
        dtype = np.load(path, mmap_mode="r").dtype
        body = np.random.default_rng(1).normal(size=(rows, dim)).astype(dtype).tobytes()
    else:  # dense.faiss: a flat index ends with its vectors
        body = np.random.default_rng(1).normal(size=(rows, dim)).astype(np.float32).tobytes()
    path.write_bytes(data[: len(data) - len(body)] + body)


@pytest.mark.parametrize("name", ["vectors.npy", "sentences.npy", "dense.faiss"])
def test_vectors_with_an_intact_header_and_random_numbers_are_refused_when_served(tmp_path, make_engine, embedder,
                                                                                 name):
    engine = make_engine(write_corpus(tmp_path / "corpus", MARKETS))
    stats = engine.stats()
    build = current_build_dir(engine.settings.index_root)
    _random_numbers_under_the_header(build / name, stats["sentences"] if name == "sentences.npy" else stats["chunks"],
                                     stats["dim"])
    with pytest.raises(IndexCorrupt, match=rf"damaged \({name} holds vectors that are not unit length\); "
                                           r"run `citebot build`"):
        Engine(engine.settings, embedder).ask("What did the central bank do to rates?")
    repairing = Engine(engine.settings, embedder)
    assert not repairing.build().unchanged
    assert "5.25%" in repairing.ask("What did the central bank do to rates?").citations[0].excerpt
