"""An index that grows in place: a few new articles become a segment, searched with the base as one
index (same scores as a fresh build of the same articles), merged into a new base by a whole build;
a kill at any point of an update or a merge leaves an index that answers and loses no article."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import replace

import numpy as np
import pytest

from index.config import Settings
from index.engine import Engine
from index.errors import IndexCorrupt
from index.store.files import current_build_dir
from index.store.segments import SEGMENTS_DIR, SEGMENTS_FILE, MergePolicy, read_segments

from .conftest import ROOT, write_corpus

pytestmark = pytest.mark.model

STORIES = {
    "rates.txt": ("Central bank raises rates", "The central bank raised its main rate to 5.25% on Thursday to fight "
                  "inflation. Mortgage lenders said repayments would rise within weeks."),
    "wheat.txt": ("Wheat harvest shrinks", "Drought cut the wheat harvest by a fifth this summer, farmers said, "
                  "pushing bread prices to a record."),
    "rail.txt": ("Rail strike called off", "Train drivers called off Monday's strike after the operator offered a 6% "
                 "pay rise over two years."),
    "film.txt": ("Festival prize for debut film", "A debut film about a fishing village won the festival's top prize, "
                 "the jury said on Saturday."),
    "chess.txt": ("Teenager wins chess title", "A 15-year-old from Madras won the national chess title after a "
                  "seven-hour final game."),
    "port.txt": ("Port expansion approved", "Regulators approved a third container terminal at the port, which will "
                 "double its capacity by 2027."),
    "flu.txt": ("Flu cases rise early", "Doctors reported twice as many flu cases as usual for November and urged "
                "older people to get vaccinated."),
    "bridge.txt": ("Old bridge to reopen", "The Victorian footbridge closed since the floods will reopen in May after "
                   "a repair costing 3 million pounds."),
    "solar.txt": ("Solar farm switched on", "The country's largest solar farm began supplying power to 40,000 homes "
                  "on Tuesday."),
    "zoo.txt": ("Zoo welcomes panda cubs", "Two giant panda cubs were born at the city zoo, the first births there "
                "in 30 years."),
}
NEW = {
    "copper.txt": ("Copper hits a high", "Copper prices hit an all-time high as mines in Chile cut output after "
                   "strikes, traders said."),
    "ferry.txt": ("Ferry service resumes", "The island ferry resumed sailings after a six-week halt for engine "
                  "repairs, its owner said."),
}
HOLD = MergePolicy(max_segments=100, max_segment_share=10.0, max_deleted_share=10.0)  # no merge by itself
QUESTIONS = ("What did the central bank do to rates?", "Why did copper prices rise?", "When will the bridge reopen?",
             "How many homes does the solar farm supply?", "Why was the ferry halted?", "panda cubs zoo")


def article(title: str, body: str) -> str:
    return f"Title: {title}\nSource: Wire\nDate: 2024-03-0{len(title) % 9 + 1}\n\n{body}"


def corpus_of(folder, stories: dict) -> None:
    for old in folder.glob("*.txt") if folder.exists() else []:
        if old.name not in stories:
            old.unlink()
    write_corpus(folder, {name: article(*story) for name, story in stories.items()})


def searched(engine: Engine, question: str) -> dict:
    """What the live index finds for a question, by chunk (ids differ between builds, chunk ids do not)."""
    view, query = engine.snapshot, engine.query(question)
    lexical, dense = view.lexical(query.tokens, 8), view.dense(query.vector, 8)
    records = view.chunks([i for i, _ in lexical + dense])
    return {"lexical": [(records[i].chunk_id, round(s, 4)) for i, s in lexical],
            "dense": [(records[i].chunk_id, round(s, 4)) for i, s in dense],
            "answer": [(c.title, c.excerpt) for c in engine.ask(question).citations[:3]]}


def fresh_build(tmp_path, corpus, embedder, name: str) -> Engine:
    """A whole build of the corpus folder in a data folder of its own."""
    engine = Engine(Settings(data_dir=tmp_path / name, corpus_dir=corpus), embedder)
    engine.build()
    return engine


def built(tmp_path, embedder, stories: dict, policy: MergePolicy | None = HOLD) -> tuple[Engine, object]:
    """An engine over a corpus of these stories, built, with this merge policy (None: the default)."""
    corpus = tmp_path / "corpus"
    corpus_of(corpus, stories)
    engine = Engine(Settings(data_dir=tmp_path / "data", corpus_dir=corpus), embedder)
    if policy is not None:
        engine.merge_policy = policy
    engine.build()
    return engine, corpus


def test_updates_are_segments_that_search_exactly_as_a_fresh_build_of_the_same_articles(tmp_path, embedder):
    engine, corpus = built(tmp_path, embedder, STORIES)
    base = current_build_dir(engine.settings.index_root)
    steps = {
        "two articles added": {**STORIES, **NEW},
        "one article changed": {**STORIES, **NEW, "bridge.txt": ("Old bridge to reopen", "The Victorian footbridge "
                                "will now reopen in June, a month late, after the repair cost rose to 4 million.")},
        "one article removed": {**{k: v for k, v in STORIES.items() if k != "zoo.txt"}, **NEW,
                                "bridge.txt": ("Old bridge to reopen", "The Victorian footbridge will now reopen in "
                                               "June, a month late, after the repair cost rose to 4 million.")},
    }
    for n, (step, stories) in enumerate(steps.items(), 1):
        corpus_of(corpus, stories)
        report = engine.build()
        assert report.segment and not report.unchanged, step
        assert current_build_dir(engine.settings.index_root) == base, f"{step}: the base build was not rewritten"
        assert read_segments(base).generation == n
        fresh = fresh_build(tmp_path, corpus, embedder, f"fresh-{n}")
        assert engine.stats()["documents"] == fresh.stats()["documents"] == len(stories), step
        assert engine.stats()["chunks"] == fresh.stats()["chunks"], step
        for question in QUESTIONS:
            assert searched(engine, question) == searched(fresh, question), f"{step}: {question}"
    assert "4 million" in engine.ask("How much did the bridge repair cost?").citations[0].excerpt
    assert all(c.title != "Zoo welcomes panda cubs" for c in engine.ask("panda cubs zoo", abstain=False).citations)
    assert engine.build().unchanged, "an update that went live is not done again"


def test_many_masked_chunks_are_skipped_by_the_dense_index_itself(tmp_path, embedder):
    """Past a few masked chunks the dense search stops over-fetching and gives FAISS a bitmap of
    the live rows: the nearest live chunk is still the fresh build's."""
    engine, corpus = built(tmp_path, embedder, {**STORIES, **NEW}, replace(HOLD, whole_build_share=1.0))
    gone = ["rates.txt", "wheat.txt", "rail.txt", "film.txt", "chess.txt"]
    corpus_of(corpus, {k: v for k, v in {**STORIES, **NEW}.items() if k not in gone})
    assert engine.build().segment == "(masks only)"
    fresh = fresh_build(tmp_path, corpus, embedder, "fresh")
    assert engine.snapshot.parts[0].masked >= 4  # dense(n=1) takes the bitmap path
    for question in QUESTIONS + ("What did the central bank do to rates?", "wheat harvest drought"):
        mine, theirs = engine.snapshot, fresh.snapshot
        query = engine.query(question)
        (a, sa), = mine.dense(query.vector, 1)
        (b, sb), = theirs.dense(query.vector, 1)
        assert mine.chunks([a])[a].chunk_id == theirs.chunks([b])[b].chunk_id and abs(sa - sb) < 1e-5, question
        assert mine.count() == theirs.count() and mine.coverage() == theirs.coverage()


def test_segments_past_the_policy_are_merged_into_a_new_base_embedding_nothing(tmp_path, embedder):
    engine, corpus = built(tmp_path, embedder, STORIES, MergePolicy(max_segments=1))
    base = current_build_dir(engine.settings.index_root)
    corpus_of(corpus, {**STORIES, "copper.txt": NEW["copper.txt"]})
    assert not engine.build().merge_due  # one segment: within the policy
    corpus_of(corpus, {**STORIES, **NEW})
    report = engine.build()
    assert report.merge_due
    merged = current_build_dir(engine.settings.index_root)
    assert merged != base and not (merged / SEGMENTS_FILE).exists(), "the merge is a new base without segments"
    assert engine.stats()["documents"] == 12
    fresh = fresh_build(tmp_path, corpus, embedder, "fresh")
    for question in QUESTIONS:
        assert searched(engine, question) == searched(fresh, question), question
    assert engine.build().unchanged


def test_questions_are_answered_while_the_segments_merge_in_the_background(tmp_path, embedder):
    engine, corpus = built(tmp_path, embedder, STORIES, MergePolicy(max_segments=0))
    answers, failures, stop = [], [], threading.Event()

    def keep_asking():
        while not stop.is_set():
            try:
                answers.append(engine.ask("Why did copper prices rise?", abstain=False).citations[0].title)
            except Exception as exc:  # noqa: BLE001 - any failure is what this test looks for
                failures.append(repr(exc))

    asker = threading.Thread(target=keep_asking)
    asker.start()
    try:
        corpus_of(corpus, {**STORIES, "copper.txt": NEW["copper.txt"]})
        report = engine.build(merge="background")
        assert report.segment and report.merge_due
        engine.wait_for_merge()
        answers_after_merge = len(answers)
        deadline = time.monotonic() + 60
        while len(answers) < answers_after_merge + 3 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        asker.join()
    assert not failures, failures[:3]
    assert answers[-1] == "Copper hits a high"
    assert not (current_build_dir(engine.settings.index_root) / SEGMENTS_FILE).exists(), "merged"


# Where an update or a merge is killed (SIGKILL), patched into the process doing it.
UPDATE_KILL_POINTS = {
    "embedding the new articles": "from index.encoders.embedder import UpdateEmbedder as u; u.embed_into = die",
    "writing the segment's vectors": "m = store.IndexWriter; m.write_vectors = die",
    "segment written, before the list names it": "builder.write_segments = die",
    "list written, before it replaces the old one": "real = os.replace\n"
        "os.replace = lambda a, b: die() if str(b).endswith('segments.json') else real(a, b)",
    "merging: writing the new base's postings": "MERGE\nm = store.IndexWriter; real = m.write_postings\n"
        "m.write_postings = lambda self, t: die() if self.folder.name == 'builds' else real(self, t)",
    "merging: new base live, before pruning": "MERGE\nm = store.IndexWriter; m._prune = die",
}


def test_an_update_or_merge_killed_at_any_point_leaves_an_index_that_answers_and_loses_no_article(tmp_path,
                                                                                                   embedder):
    engine, corpus = built(tmp_path, embedder, STORIES, policy=None)
    data = engine.settings.data_dir
    stories = dict(STORIES)
    for n, (point, patch) in enumerate(UPDATE_KILL_POINTS.items()):
        merge = patch.startswith("MERGE\n")
        stories[f"new-{n}.txt"] = (f"Copper {n} hits a high", NEW["copper.txt"][1].replace("Chile", f"Chile {n}"))
        corpus_of(corpus, stories)
        script = (
            "import os, signal\nfrom index.store import builder, files as store\n"
            "def die(*args, **kwargs):\n    os.kill(os.getpid(), signal.SIGKILL)\n"
            + patch.removeprefix("MERGE\n") + "\n"
            "from index.engine import Engine\nfrom index.config import Settings\n"
            "from index.store.segments import MergePolicy\n"
            f"engine = Engine(Settings(data_dir={str(data)!r}, corpus_dir={str(corpus)!r}))\n"
            f"engine.merge_policy = MergePolicy(max_segments={0 if merge else 100}, max_segment_share=10.0, "
            "max_deleted_share=10.0, whole_build_share=1.0)\n"
            "engine.build()\n")
        result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, timeout=300)
        assert result.returncode == -signal.SIGKILL, (point, result.stderr[-2000:])
        after = Engine(engine.settings, embedder)
        assert "5.25%" in after.ask("What did the central bank do to rates?").citations[0].excerpt, point
    final = Engine(engine.settings, embedder)
    report = final.build()
    assert report.documents == len(stories) == final.stats()["documents"], "no article is lost"
    for n in range(len(UPDATE_KILL_POINTS)):
        assert final.ask(f"Why did Copper {n} prices hit a high in Chile {n}?").citations, n
    base = current_build_dir(engine.settings.index_root)
    named = {s["name"] for s in read_segments(base).segments}
    on_disk = {p.name for p in (base / SEGMENTS_DIR).iterdir()} if (base / SEGMENTS_DIR).is_dir() else set()
    assert on_disk == named, "half-written segments are swept"


DAMAGES = {
    "truncated": lambda path: path.write_bytes(path.read_bytes()[: max(1, path.stat().st_size // 3)]),
    "random bytes": lambda path: path.write_bytes(os.urandom(max(64, path.stat().st_size))),
    "deleted": lambda path: path.unlink(),
}


@pytest.mark.parametrize("damage", list(DAMAGES))
def test_every_file_of_a_live_segment_damaged_is_named_and_a_build_repairs_it(tmp_path, embedder, damage):
    engine, corpus = built(tmp_path, embedder, STORIES)
    corpus_of(corpus, {**STORIES, **NEW})
    assert engine.build().segment

    def live_files():
        base = current_build_dir(engine.settings.index_root)
        names = read_segments(base).segments
        return base, [base / SEGMENTS_FILE] + sorted(p for s in names for p in (base / SEGMENTS_DIR / s["name"]).rglob("*")
                                                      if p.is_file())

    base, files = live_files()
    assert len(files) >= 8
    for index in range(len(files)):
        if index:  # after a repair the live files are the new build's: damage the next one of a new segment
            corpus_of(corpus, {**STORIES, **NEW, f"extra-{index}.txt": ("Extra story", f"Story number {index}.")})
            assert engine.build().segment
            base, files = live_files()
        name = files[index].relative_to(base)
        DAMAGES[damage](files[index])
        try:
            reply = Engine(engine.settings, embedder).ask("Why did copper prices rise?")
            noticed = None
        except IndexCorrupt as exc:
            noticed = str(exc)
        if noticed is None and str(name) == SEGMENTS_FILE and damage == "deleted":
            pass  # the list gone: the base answers alone, as before the update; the next build redoes it
        elif noticed is None:
            assert reply.citations[0].title == "Copper hits a high", name
        else:
            assert "run `citebot build`" in noticed and "Traceback" not in noticed, name
        repairing = Engine(engine.settings, embedder)
        repairing.merge_policy = HOLD
        report = repairing.build()
        assert not report.unchanged or noticed is None, f"{name} {damage}: the damaged index was taken as up to date"
        assert report.embedded == 0, f"{name} {damage}: the repair embedded again what the build cache holds"
        assert repairing.ask("Why did copper prices rise?").citations[0].title == "Copper hits a high", name
        engine = repairing


def test_stats_say_how_many_updates_are_live(tmp_path, embedder):
    engine, corpus = built(tmp_path, embedder, STORIES)
    corpus_of(corpus, {**STORIES, **NEW})
    engine.build()
    stats = engine.stats()
    assert stats["segments"] == 1 and stats["documents"] == 12
    assert json.loads(json.dumps(stats))["segments"] == 1
    assert np.isfinite(stats["index_bytes"]) and stats["index_bytes"] > 0


def test_questions_in_other_languages_search_every_segment_as_a_fresh_build_does(tmp_path, embedder):
    """CITEBOT_MULTILINGUAL: segments carry multilingual vectors, masked chunks are never found, and
    the multilingual nearest chunks equal a fresh build's."""
    engine, corpus = built(tmp_path, embedder, STORIES)
    engine = Engine(replace(engine.settings, multilingual=True), engine.embedder)
    engine.merge_policy = HOLD
    engine.build(force=True)  # the base with multilingual vectors
    bridge = ("Old bridge to reopen", "The Victorian footbridge will now reopen in June, a month late, after the "
              "repair cost rose to 4 million.")
    changed = {**STORIES, "bridge.txt": bridge}
    for stories in (changed, {**{k: v for k, v in changed.items() if k != "zoo.txt"}, "copper.txt": NEW["copper.txt"]}):
        corpus_of(corpus, stories)
        report = engine.build()
        assert report.segment and report.multilingual_embedded == 1, "only the new chunk, in both encoders"
    view = engine.snapshot
    assert view.has_multilingual and engine.stats()["masked_chunks"] == 2
    fresh = Engine(Settings(data_dir=tmp_path / "fresh", corpus_dir=corpus, multilingual=True), embedder)
    fresh.build()
    vector = engine.multilingual.query("Wie viel hat die Reparatur der Brücke gekostet?")

    def nearest(e: Engine) -> list:
        found = e.snapshot.multilingual_dense(vector, 20)
        records = e.snapshot.chunks([i for i, _ in found])
        return [(records[i].chunk_id, round(s, 4)) for i, s in found]

    assert nearest(engine) == nearest(fresh) and len(nearest(engine)) == view.chunk_count == 10
    answer = engine.ask("Wie viel hat die Reparatur der Brücke gekostet?")
    assert "4 million" in answer.citations[0].excerpt
    assert all("3 million" not in c.excerpt for c in answer.citations), "the old version is masked"
