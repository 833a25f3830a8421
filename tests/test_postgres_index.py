"""The index in PostgreSQL: an update writes only what changed, in one transaction, and every
replica sharing the database answers from it on its next question."""
from __future__ import annotations

from datetime import date

import pytest

from index.config import Settings
from index.engine import Engine
from index.store import postgres
from index.store.postgres import PostgresIndex

from .conftest import write_corpus

pytestmark = pytest.mark.postgres

HARBOUR = ("Harbour bridge opens", "The new harbour bridge in Varna opened on Monday after four years of work. "
           "It cost 310 million euros and carries 40,000 cars a day. The mayor cut the ribbon at noon.")
ORCHARD = ("Orchard harvest fails", "Apple growers in Kent lost half of this year's harvest to a late frost in "
           "April. The growers' union asked the government for 12 million pounds of help.")
COMET = ("Comet seen over Chile", "Astronomers in Chile photographed a bright green comet on Tuesday. The comet "
         "passes closest to the Sun in March and will be visible without a telescope for a week.")


def article(title: str, body: str, published: str = "2026-11-20", source: str = "Test Wire") -> str:
    return f'{{"title": "{title}", "text": "{body}", "published": "{published}", "source": "{source}"}}\n'


@pytest.fixture
def replicas(tmp_path, embedder, new_database):
    """(writer, reader): two engines with data folders of their own on one new database."""
    url = new_database()
    corpus = write_corpus(tmp_path / "corpus", {"harbour.json": article(*HARBOUR), "orchard.json": article(*ORCHARD)})
    writer = Engine(Settings(data_dir=tmp_path / "a", corpus_dir=corpus, database_url=url), embedder)
    reader = Engine(Settings(data_dir=tmp_path / "b", corpus_dir=corpus, database_url=url), embedder)
    writer.build()
    return writer, reader, corpus


def test_a_new_article_is_embedded_alone_and_the_other_replica_answers_from_it(replicas):
    writer, reader, corpus = replicas
    assert reader.ask("When will the green comet pass closest to the Sun?").abstained
    first = reader.snapshot.manifest["generation"]

    write_corpus(corpus, {"comet.json": article(*COMET)})
    report = writer.build()
    assert report.embedded == 1 and report.documents == 3, "only the new article's chunk is embedded"

    answer = reader.ask("When will the green comet pass closest to the Sun?")
    assert not answer.abstained and answer.citations[0].title == "Comet seen over Chile"
    assert "March" in answer.citations[0].excerpt
    assert reader.snapshot.manifest["generation"] == first + 1
    assert writer.build().unchanged, "a second build of the same corpus writes nothing"
    stats = reader.stats()  # `citebot stats` and /stats: the database's tables, not a folder
    assert stats["index_bytes"] > 0 and stats["index_dir"].startswith("PostgreSQL at") and stats["chunks"] == 3


def test_a_removed_article_is_never_cited_again_and_its_words_leave_the_statistics(replicas):
    writer, reader, corpus = replicas
    assert reader.ask("How much did the Varna harbour bridge cost?").citations[0].title == "Harbour bridge opens"
    (corpus / "harbour.json").unlink()
    writer.build()

    answer = reader.ask("How much did the Varna harbour bridge cost?")
    assert all(c.title != "Harbour bridge opens" for c in answer.citations)
    assert reader.snapshot.document_frequencies(["varna", "harbour", "kent"]) == {"kent": 1}
    assert reader.snapshot.coverage()["articles"] == 1


def test_a_changed_article_replaces_its_old_text(replicas):
    writer, reader, corpus = replicas
    write_corpus(corpus, {"harbour.json": article(HARBOUR[0], HARBOUR[1].replace("310 million", "355 million"))})
    writer.build()
    answer = reader.ask("How much did the Varna harbour bridge cost?")
    assert "355 million" in answer.citations[0].excerpt
    assert all("310 million" not in c.excerpt for c in answer.citations)
    assert reader.snapshot.chunk_count == 2


def test_an_update_that_fails_midway_leaves_the_previous_index_whole(replicas, monkeypatch):
    writer, reader, corpus = replicas
    before = reader.ask("How much did the Varna harbour bridge cost?")
    index = PostgresIndex(writer.database)
    indexed = index.signatures()
    write_corpus(corpus, {"comet.json": article(*COMET)})
    (corpus / "orchard.json").unlink()

    def broken(tokens):
        raise RuntimeError("the connection dropped while writing chunks")

    monkeypatch.setattr(postgres, "_tsvector", broken)
    with pytest.raises(RuntimeError):
        writer.build()
    assert index.generation() == 1 and index.signatures() == indexed, "nothing of the failed update is visible"
    assert reader.snapshot.coverage()["articles"] == 2
    assert reader.ask("How much did the Varna harbour bridge cost?").citations[0].excerpt == before.citations[0].excerpt
    assert reader.ask("What did the apple growers ask the government for?").citations[0].title == "Orchard harvest fails"

    monkeypatch.undo()
    writer.build()  # the next update does it all
    assert reader.snapshot.coverage()["articles"] == 2
    assert reader.ask("When will the green comet pass closest to the Sun?").citations[0].title == "Comet seen over Chile"


def test_date_and_source_filters_are_searched_in_the_database(tmp_path, embedder, new_database):
    corpus = write_corpus(tmp_path / "corpus", {
        "march.json": article("Bridge toll set", "The Varna bridge toll was set at 3 euros a car.", "2022-03-10", "Black Sea News"),
        "june.json": article("Bridge toll raised", "The Varna bridge toll was raised to 4 euros a car.", "2022-06-10", "Coast Daily"),
    })
    engine = Engine(Settings(data_dir=tmp_path / "data", corpus_dir=corpus, database_url=new_database()), embedder)
    engine.build()
    question = "What is the toll on the Varna bridge?"
    assert engine.ask(question + " in March 2022").citations[0].title == "Bridge toll set"
    assert {c.title for c in engine.ask(question, sources=["coastdaily"]).citations} == {"Bridge toll raised"}
    latest = engine.ask("What is the latest toll on the Varna bridge?", today=date(2022, 4, 1))
    assert [c.title for c in latest.citations] == ["Bridge toll set"], "an article after 'today' is in the future"
    empty = engine.ask(question, since=date(2023, 1, 1))
    assert empty.abstained and "I have no articles" in empty.reason


def test_the_lexical_search_skips_chunks_of_common_words_only_and_finds_what_scoring_them_all_finds(
        tmp_path, embedder, new_database, monkeypatch):
    from index.search.tokenize import tokenize

    corpus = write_corpus(tmp_path / "corpus", {f"{i}.json": article(*a) for i, a in enumerate([
        HARBOUR, ORCHARD, COMET,
        ("Bridge repairs delayed", "Repairs to the old bridge in Varna were delayed by a week of rain."),
        ("Frost in April", "A late frost in April damaged vines and apple trees across the south of England."),
        ("New telescope in Chile", "A new telescope in Chile will look for comets and asteroids from next year."),
    ])})
    engine = Engine(Settings(data_dir=tmp_path / "data", corpus_dir=corpus, database_url=new_database()), embedder)
    engine.build()
    view = engine.snapshot
    monkeypatch.setattr(postgres.PostgresView, "FIRST_PASS_DF", 0)  # a first pass of the rarest token alone
    passes, pruned = [], 0
    scored = postgres.PostgresView._bm25
    monkeypatch.setattr(postgres.PostgresView, "_bm25", lambda self, *a: passes.append(a[2]) or scored(self, *a))
    for question in ("Was the new bridge in Varna delayed in April?", "the new comet telescope in Chile",
                     "frost in April in Kent, the new apple harvest", "bridge bridge in Chile"):
        tokens = tokenize(question)
        every = sorted(set(tokens))
        for n in (1, 2, 3, 10):
            known = [t for t in tokens if t in view.document_frequencies(tokens)]
            idf = {t: postgres.bm25_idf(df, view.chunk_count) for t, df in view.document_frequencies(tokens).items()}
            passes.clear()
            assert view.lexical(tokens, n) == scored(view, known, idf, every, n, None), (question, n)
            pruned += len(passes) == 1 and len(passes[0]) < len(idf)
    assert pruned, "some searches were answered by the first pass alone"


def test_db_import_moves_a_file_index_into_the_database_without_embedding_again(tmp_path, make_engine, new_database,
                                                                               monkeypatch, capsys):
    from bot.cli import main

    corpus = write_corpus(tmp_path / "corpus", {"harbour.json": article(*HARBOUR), "orchard.json": article(*ORCHARD)})
    files = make_engine(corpus, tmp_path / "data")
    url = new_database()
    monkeypatch.setenv("CITEBOT_DATABASE_URL", url)
    assert main(["--data-dir", str(tmp_path / "data"), "db", "import"]) == 0
    out = capsys.readouterr().out
    assert f"index of {corpus} into" in out and "2 documents, 2 chunks (0 embedded)." in out
    assert main(["--data-dir", str(tmp_path / "data"), "db", "import"]) == 0
    assert "already there." in capsys.readouterr().out

    database = Engine(Settings(data_dir=tmp_path / "elsewhere", corpus_dir=corpus, database_url=url), files.embedder)
    question = "How much did the Varna harbour bridge cost?"
    assert database.ask(question).citations[0].excerpt == files.ask(question).citations[0].excerpt
