"""Fetching and feeds against a local HTTP server on 127.0.0.1 (no internet, no model)."""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from index.errors import CitebotError, FetchError
from index.feeds import FeedStore, add_url, refresh_feeds
from index.fetch import Fetcher, FetchPolicy

PROSE = [
    "The city council voted on Tuesday to expand the tram network to the northern districts, "
    "ending a debate that had lasted almost three years and divided residents of the old town.",
    "Supporters said the new line would cut commuting times by a third and take thousands of cars "
    "off the ring road, while opponents worried about the cost and years of construction noise.",
    "The first section, running from the central station to the university hospital, is expected "
    "to open in 2029, the transport department said in a statement published after the vote.",
    "Funding will come partly from a regional infrastructure fund and partly from a bond issue "
    "that the council approved in the same session by a narrow margin of twenty-six to twenty-two.",
]


def page(title: str, date: str, extra: str) -> bytes:
    body = "".join(f"<p>{p} {extra}</p>" for p in PROSE)
    return f"""<!doctype html><html><head><title>{title}</title>
<meta property="og:site_name" content="Local News">
<meta property="article:published_time" content="{date}T08:00:00Z">
</head><body><article><h1>{title}</h1>{body}</article></body></html>""".encode()


def rss(base: str) -> bytes:
    return f"""<?xml version="1.0"?><rss version="2.0"><channel><title>Local RSS</title>
<link>{base}/</link><description>d</description>
<item><title>Tram vote</title><link>{base}/a1</link><guid>a1</guid>
<pubDate>Tue, 03 Mar 2026 08:00:00 GMT</pubDate></item>
<item><title>Budget</title><link>{base}/a2</link><guid>a2</guid></item>
</channel></rss>""".encode()


def atom(base: str) -> bytes:
    return f"""<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom">
<title>Local Atom</title><id>urn:x</id><updated>2026-03-04T00:00:00Z</updated>
<entry><title>Harbour works</title><link href="{base}/a3"/><id>urn:a3</id>
<updated>2026-03-04T00:00:00Z</updated></entry></feed>""".encode()


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def send(self, code, body=b"", ctype="text/html; charset=utf-8", headers=()):
        self.send_response(code)
        if ctype:
            self.send_header("Content-Type", ctype)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        base = f"http://127.0.0.1:{self.server.server_port}"
        self.server.agents.append(self.headers.get("User-Agent", ""))
        p = self.path
        if p == "/rss":
            self.send(200, rss(base), "application/rss+xml")
        elif p == "/atom":
            self.send(200, atom(base), "application/atom+xml")
        elif p == "/a1":
            self.send(200, page("Council approves tram extension", "2026-03-03", "Trams."))
        elif p == "/a2":
            self.send(200, page("Council passes budget bond", "2026-03-02", "Bonds."))
        elif p == "/a3":
            self.send(200, page("Harbour works begin in spring", "2026-03-04", "Harbour."))
        elif p.startswith("/loop"):
            n = int(p[5:] or 0)
            self.send(302, ctype="", headers=[("Location", f"/loop{n + 1}")])
        elif p == "/moved":
            self.send(301, ctype="", headers=[("Location", "/a1")])
        elif p == "/huge":
            self.send(200, b"<p>" + b"x" * 300_000 + b"</p>")
        elif p == "/image":
            self.send(200, b"\x89PNG....", "image/png")
        elif p == "/bad-feed":
            self.send(200, b"<rss><channel><title>broken", "application/rss+xml")
        elif p == "/etag":
            if self.headers.get("If-None-Match") == '"v1"':
                self.send(304, ctype="", headers=[("ETag", '"v1"')])
            else:
                self.send(200, b"hello", "text/plain", headers=[("ETag", '"v1"')])
        else:
            self.send(404, b"not found")


@pytest.fixture(scope="module")
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.agents = []
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd, f"http://127.0.0.1:{httpd.server_port}"
    httpd.shutdown()
    httpd.server_close()


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


def test_conditional_get(server, fetcher):
    first = fetcher.get(server[1] + "/etag", kinds=("text",))
    assert first.etag == '"v1"' and first.body == b"hello"
    second = fetcher.get(server[1] + "/etag", kinds=("text",), etag=first.etag)
    assert second.not_modified and second.body == b""


def test_fetch_many(server, fetcher):
    results = fetcher.fetch_many([server[1] + "/a1", server[1] + "/image"], kinds=("html",))
    assert results[0].status == 200 and isinstance(results[1], FetchError)


def test_feed_store(tmp_path):
    store = FeedStore(tmp_path / "feeds.sqlite")
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
        FeedStore(path)


def test_refresh(server, fetcher, tmp_path):
    _, base = server
    store = FeedStore(tmp_path / "feeds.sqlite")
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


def test_add_url_twice(server, fetcher, tmp_path):
    store = FeedStore(tmp_path / "feeds.sqlite")
    first = add_url(server[1] + "/a2", tmp_path / "c", store, fetcher)
    second = add_url(server[1] + "/a2", tmp_path / "c", store, fetcher)
    assert first.added and not second.added
    assert len(list((tmp_path / "c").rglob("*.json"))) == 1
