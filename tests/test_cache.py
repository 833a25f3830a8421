"""The build cache: unchanged files are not read again, changed ones are, a damaged cache is rebuilt."""
from __future__ import annotations

import os

import numpy as np

from index.ingest import documents
from index.ingest.cache import BuildCache, file_stamp
from index.ingest.documents import load_corpus

ARTICLE = "Title: Trams return to the city\nPublished: 2022-03-24\n\nThe first tram in forty years ran on Monday. " \
          "Crowds lined the route to watch it pass.\n"


def _corpus(tmp_path):
    folder = tmp_path / "corpus"
    folder.mkdir()
    (folder / "trams.txt").write_text(ARTICLE)
    (folder / "broken.json").write_text("{not json")
    return folder


def test_an_unchanged_file_comes_from_the_cache(tmp_path, monkeypatch):
    folder = _corpus(tmp_path)
    cache = BuildCache(tmp_path / "cache.sqlite")
    first = load_corpus(folder, cache=cache)
    cache.save()
    monkeypatch.setattr(documents, "file_documents", lambda *a: (_ for _ in ()).throw(AssertionError("read again")))
    second = load_corpus(folder, cache=cache)
    assert second.documents == first.documents and second.documents[0].published == "2022-03-24"
    assert [s.path for s in second.skipped] == ["broken.json"]  # the reason it was unreadable is kept too


def test_a_changed_file_is_read_again(tmp_path):
    folder = _corpus(tmp_path)
    cache = BuildCache(tmp_path / "cache.sqlite")
    load_corpus(folder, cache=cache)
    path = folder / "trams.txt"
    path.write_text(ARTICLE.replace("forty", "fifty"))
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    assert "fifty years" in load_corpus(folder, cache=cache).documents[0].text


def test_a_damaged_cache_is_replaced_and_the_corpus_still_loads(tmp_path):
    folder = _corpus(tmp_path)
    (tmp_path / "cache.sqlite").write_bytes(b"\x00\xff" * 64)
    cache = BuildCache(tmp_path / "cache.sqlite")
    assert len(load_corpus(folder, cache=cache).documents) == 1
    cache.save()
    reopened = BuildCache(tmp_path / "cache.sqlite").file("trams.txt", file_stamp(folder / "trams.txt"))
    assert [d.title for d in reopened] == ["Trams return to the city"]  # the new cache works


def test_vectors_are_kept_by_content_hash_and_damaged_ones_are_not_handed_back(tmp_path):
    rng = np.random.default_rng(0)
    good = rng.normal(size=(2, 8)).astype(np.float32)
    good /= np.linalg.norm(good, axis=1, keepdims=True)
    cache = BuildCache(tmp_path / "cache.sqlite")
    cache.put_vectors("chunk", [("a", good[0]), ("b", good[1]), ("long", np.full(8, 7.0, dtype=np.float32)),
                                ("nan", np.full(8, np.nan, dtype=np.float32))])
    cache.put_vectors("sentence", [("a", good[0])])
    cache.save()
    cache.close()
    cache = BuildCache(tmp_path / "cache.sqlite")
    got = cache.vectors("chunk", ["a", "b", "long", "nan", "missing"])
    assert set(got) == {"a", "b"} and np.array_equal(got["a"], good[0]), "only unit vectors come back"
    assert set(cache.vectors("chunk", ["a"], dim=16)) == set(), "nor vectors of another length"
    sentence = cache.vectors("sentence", ["a"])["a"]
    assert sentence.dtype == np.float32 and np.allclose(sentence, good[0], atol=1e-3), "kept as float16, like sentences.npy"
    cache.keep_vectors("chunk", ["a"])  # what the build that just went live holds
    cache.save()
    assert set(BuildCache(tmp_path / "cache.sqlite").vectors("chunk", ["a", "b"])) == {"a"}


def test_a_build_that_planned_no_chunks_forgets_none(tmp_path):
    cache = BuildCache(tmp_path / "cache.sqlite")
    cache.put_chunks("doc|title|en|120|30", [["c1", 0, 0, 10, [], ["tram"]]])
    cache.save()
    cache.close()
    up_to_date = BuildCache(tmp_path / "cache.sqlite")  # found the corpus unchanged: it chunked nothing
    up_to_date.save()
    up_to_date.close()
    assert BuildCache(tmp_path / "cache.sqlite").chunks("doc|title|en|120|30") is not None
