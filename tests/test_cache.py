"""The build cache: unchanged files are not read again, changed ones are, a damaged cache is rebuilt."""
from __future__ import annotations

import os

from index import documents
from index.cache import BuildCache, file_stamp
from index.documents import load_corpus

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
