"""Fetching and feeds against a local HTTP server on 127.0.0.1 (no internet, no model)."""
from __future__ import annotations

import json
import time

import pytest

from index.errors import CitebotError, FetchError
from index.news.feeds import SqliteFeedStore, add_url, refresh_feeds
from index.news.fetch import Fetcher, FetchPolicy

from .news_server import TRAM_JA, news_server

@pytest.fixture(scope="module")
def server():
    with news_server() as running:
        yield running


@pytest.fixture
def fetcher():
    with Fetcher(FetchPolicy(allow_private=True, timeout_s=5, max_bytes=100_000)) as f:
        yield f


def test_private_address_refused_by_default(server):
    _, base = server
    with Fetcher() as f, pytest.raises(FetchError) as info:
        f.get(base + "/a1")
    assert base + "/a1" in str(info.value) and "private" in str(info.value)


def test_allowed_with_allow_private_and_user_agent(server, fetcher):
    httpd, base = server
    got = fetcher.get(base + "/moved")
    assert got.url == base + "/a1" and got.status == 200 and b"tram" in got.body
    assert httpd.agents[-1].startswith("citebot/")


@pytest.mark.parametrize("path, says", [
    ("/loop", "redirects more than 5"),
    ("/huge", "limit"),
    ("/image", "image/png, not a web page or feed"),
    ("/nope", "404"),
])
def test_refused_responses(server, fetcher, path, says):
    with pytest.raises(FetchError, match=says):
        fetcher.get(server[1] + path)


@pytest.mark.parametrize("path", [
    "/drip?head=20",             # the headers one byte at a time: every read is quick, the whole is not
    "/drip?head=0.8&body=20",    # slow headers, then a slow body: one deadline covers both
    "/drip?body=20",             # the body one byte at a time
])
def test_every_fetch_ends_by_one_total_deadline_from_connect_to_last_byte(server, path):
    with Fetcher(FetchPolicy(allow_private=True, timeout_s=1.0)) as slow_client:
        began = time.monotonic()
        with pytest.raises(FetchError, match=r"within 1 s"):
            slow_client.get(server[1] + path)
        assert time.monotonic() - began < 1.7


def test_conditional_get(server, fetcher):
    first = fetcher.get(server[1] + "/etag", kinds=("text",))
    assert first.etag == '"v1"' and first.body == b"hello"
    second = fetcher.get(server[1] + "/etag", kinds=("text",), etag=first.etag)
    assert second.not_modified and second.body == b""


def test_fetch_many(server, fetcher):
    results = fetcher.fetch_many([server[1] + "/a1", server[1] + "/image"], kinds=("html",))
    assert results[0].status == 200 and isinstance(results[1], FetchError)


def test_feed_store(tmp_path, backend):
    store = backend.feed_store()
    assert store.add("https://example.com/rss")
    assert not store.add("https://example.com/rss")
    assert [f.url for f in store.list()] == ["https://example.com/rss"]
    with pytest.raises(FetchError):
        store.add("ftp://example.com/x")
    assert store.remove("https://example.com/rss") and not store.remove("https://example.com/rss")
    assert store.list() == []


def test_corrupt_store(tmp_path):
    path = tmp_path / "feeds.sqlite"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(CitebotError):
        SqliteFeedStore(path)


def test_refresh(server, fetcher, tmp_path, backend):
    _, base = server
    store = backend.feed_store()
    corpus = tmp_path / "corpus"
    for path in ("/rss", "/atom", "/bad-feed"):
        store.add(base + path)
    report = refresh_feeds(store, corpus, fetcher)
    assert len(report.new) == 3, report.summary()
    files = sorted((corpus / "fetched" / "127.0.0.1").glob("*.json"))
    assert len(files) == 3
    data = json.loads(files[-1].read_text())
    assert set(data) == {"title", "text", "url", "source", "published", "fetched_at"}
    assert [e[0] for e in report.errors] == [base + "/bad-feed"]
    states = {f.url: f for f in store.list()}
    assert states[base + "/rss"].last_items == 2 and states[base + "/rss"].last_new == 2
    assert states[base + "/rss"].last_error == ""
    assert "not an RSS or Atom feed" in states[base + "/bad-feed"].last_error
    again = refresh_feeds(store, corpus, fetcher)
    assert again.new == [] and again.items == 3
    assert states[base + "/atom"].last_fetched
    # add_url of an article already taken from a feed, and of a page twice
    assert not add_url(base + "/a1", corpus, store, fetcher).added


def test_slow_feeds_delay_neither_the_other_feeds_nor_the_refresh(server, tmp_path, backend):
    _, base = server
    store = backend.feed_store()
    for n in range(3):
        store.add(f"{base}/drip?head=6&kind=feed&n={n}")
    store.add(base + "/rss")
    began = time.monotonic()
    with Fetcher(FetchPolicy(allow_private=True, timeout_s=1.0)) as slow_client:
        report = refresh_feeds(store, tmp_path / "corpus", slow_client)
    assert time.monotonic() - began < 2.8, "the feeds are fetched at once, each within its deadline"
    assert len(report.new) == 2 and report.feeds == 4
    assert sorted(u for u, _ in report.errors) == [f"{base}/drip?head=6&kind=feed&n={n}" for n in range(3)]
    assert all("did not answer within 1 s" in m for _, m in report.errors)


def test_a_feed_of_5000_items_gives_at_most_the_limit_per_refresh_and_says_how_many_wait(
        server, tmp_path, backend):
    httpd, base = server
    store = backend.feed_store()
    store.add(base + "/many?n=5000")
    asked = len(httpd.paths)
    with Fetcher(FetchPolicy(allow_private=True, timeout_s=5)) as fetcher:  # the feed is 0.4 MB
        report = refresh_feeds(store, tmp_path / "corpus", fetcher, max_items=20)
        pages = [p for p in httpd.paths[asked:] if p.startswith("/item/")]
        assert sorted(pages) == sorted(f"/item/{k}" for k in range(20)), "20 page requests, not 5,000"
        assert report.items == 5000 and len(report.new) == 20 and report.waiting == 4980
        assert report.summary().splitlines()[0] == (
            "1 feed, 5000 items, 20 new articles, 0 errors; 4,980 more new items wait for the next refreshes "
            "(at most 20 a feed each time: CITEBOT_MAX_FEED_ITEMS).")
        again = refresh_feeds(store, tmp_path / "corpus", fetcher, max_items=20)
        assert len(again.new) == 20 and again.waiting == 4960, "the next refresh takes the next items"


def test_add_url_twice(server, fetcher, tmp_path, backend):
    store = backend.feed_store()
    first = add_url(server[1] + "/a2", tmp_path / "c", store, fetcher)
    second = add_url(server[1] + "/a2", tmp_path / "c", store, fetcher)
    assert first.added and not second.added
    assert len(list((tmp_path / "c").rglob("*.json"))) == 1


def test_an_item_whose_page_is_gone_keeps_the_feeds_own_text(server, fetcher, tmp_path, backend):
    store = backend.feed_store()
    store.add(server[1] + "/summary-feed")
    report = refresh_feeds(store, tmp_path / "corpus", fetcher)
    (path,) = report.new
    data = json.loads(path.read_text())
    assert data["title"] == "Tram vote, in brief" and data["published"] == "2026-03-04"
    assert data["text"].startswith("The city council voted on Tuesday") and data["source"] == "Summaries"
    assert report.errors == []


def test_a_mislabelled_feed_is_read_in_its_real_encoding_without_control_characters_or_script_links(
        server, fetcher, tmp_path, backend):
    store = backend.feed_store()
    store.add(server[1] + "/mislabelled-feed")
    report = refresh_feeds(store, tmp_path / "corpus", fetcher)
    stored = {d["title"]: d for d in (json.loads(p.read_text()) for p in report.new)}
    assert set(stored) == {"路面電車の延伸を承認", "Script link", "Data link", "File link"}, report.summary()
    tram = stored["路面電車の延伸を承認"]
    assert tram["text"].startswith(TRAM_JA) and tram["source"] == "地方ニュース"
    assert tram["url"] == server[1] + "/gone-ja"
    assert [stored[t]["url"] for t in ("Script link", "Data link", "File link")] == ["", "", ""]
    assert store.list()[0].title == "地方ニュース"


def test_an_item_that_keeps_failing_is_given_up_after_three_refreshes(server, fetcher, tmp_path, backend):
    store = backend.feed_store()
    store.add(server[1] + "/broken-item-feed")
    errors = [refresh_feeds(store, tmp_path / "corpus", fetcher).errors for _ in range(4)]
    assert [len(e) for e in errors] == [1, 1, 1, 0]
    assert "404" in errors[0][0][1] and "not tried again" in errors[2][0][1]


def test_a_feed_list_from_before_the_times_were_kept_still_opens(tmp_path):
    import sqlite3

    path = tmp_path / "feeds.sqlite"
    old = sqlite3.connect(path)
    old.execute("CREATE TABLE feeds (url TEXT PRIMARY KEY, title TEXT NOT NULL DEFAULT '', added_at TEXT NOT NULL "
                "DEFAULT '', etag TEXT NOT NULL DEFAULT '', last_modified TEXT NOT NULL DEFAULT '', last_fetched "
                "TEXT NOT NULL DEFAULT '', last_items INTEGER NOT NULL DEFAULT 0, last_new INTEGER NOT NULL "
                "DEFAULT 0, last_error TEXT NOT NULL DEFAULT '')")
    old.execute("INSERT INTO feeds VALUES ('https://x.example/rss', 'X', '', '', '', '2026-03-01T08:00:00+00:00', "
                "6, 1, '')")
    old.commit()
    old.close()
    (feed,) = SqliteFeedStore(path).list()
    assert (feed.last_items, feed.items_at) == (6, "2026-03-01T08:00:00+00:00") and feed.error_at == ""
