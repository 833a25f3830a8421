"""A local HTTP server of news pages and feeds on 127.0.0.1, for the feed and news-desk tests."""
from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterator
from urllib.parse import parse_qs, urlsplit

DRIP_CAP_S = 30.0  # a dripping answer never lasts longer than this, so a test that waits on one still ends

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


def summary_feed(base: str) -> bytes:
    """A feed whose item's page is gone (404) but which carries the story in its description."""
    text = " ".join(PROSE[:2])
    return f"""<?xml version="1.0"?><rss version="2.0"><channel><title>Summaries</title>
<link>{base}/</link><description>d</description>
<item><title>Tram vote, in brief</title><link>{base}/gone</link>
<pubDate>Wed, 04 Mar 2026 09:00:00 GMT</pubDate><description><![CDATA[<p>{text}</p>]]></description></item>
</channel></rss>""".encode()


TRAM_JA = "東京都は火曜日、新しい路面電車の路線を承認した。"


def mislabelled_feed(base: str) -> bytes:
    """A feed in Shift_JIS that calls itself UTF-8 (served with charset=utf-8 too), with control
    characters in its titles and items whose links are javascript:, data: and file: addresses."""
    english = " ".join(PROSE)
    items = [("路面電車の延伸を承認\x07", f"{base}/gone-ja", f"{TRAM_JA} {english}"),
             ("Script\x1f link", "javascript:alert(document.cookie)", f"Script. {english}"),
             ("Data link", "data:text/html,<b>x</b>", f"Data. {english}"),
             ("File link", "file:///etc/passwd", f"File. {english}")]
    body = "".join(f"<item><title>{t}</title><link>{link.replace('&', '&amp;').replace('<', '&lt;')}</link>"
                   f"<description>{d}</description></item>" for t, link, d in items)
    return (f"""<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>地方ニュース\x07</title>
<link>{base}/</link><description>d</description>{body}</channel></rss>""").encode("shift_jis")


def many_items_feed(base: str, n: int) -> bytes:
    """A feed of n items, each with its own page (/item/K), as a site that dumps its archive."""
    items = "".join(f"<item><title>Tram story {k}</title><link>{base}/item/{k}</link><guid>i{k}</guid></item>"
                    for k in range(n))
    return f"""<?xml version="1.0"?><rss version="2.0"><channel><title>Archive</title>
<link>{base}/</link><description>d</description>{items}</channel></rss>""".encode()


def articles_jsonl(n: int) -> bytes:
    """n distinct articles, one JSON object a line, about 95 bytes each (200,000 are about 19 MB): an
    archive someone sends as one upload."""
    import json

    return "".join(json.dumps({"title": f"Council note {k}", "text": f"The council approved motion {k} "
                               "on Monday."}) + "\n" for k in range(n)).encode()


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

    def drip(self, data: bytes, seconds: float) -> bool:
        """Write data one byte at a time over `seconds` (at most DRIP_CAP_S); False when the client left."""
        seconds = min(seconds, DRIP_CAP_S)
        try:
            if seconds <= 0:
                self.wfile.write(data)
                return True
            for i in range(len(data)):
                if self.server.closing.is_set():
                    return False
                self.wfile.write(data[i:i + 1])
                time.sleep(seconds / len(data))
        except OSError:  # the client gave up: that is what the test wants
            return False
        return True

    def send_dripped(self, base: str, query: dict) -> None:
        """/drip?head=S&body=S&kind=feed|page: the status line and headers dripped over head seconds,
        then the body over body seconds (a slow-loris server)."""
        head, body = float(query.get("head", ["0"])[0]), float(query.get("body", ["0"])[0])
        if query.get("kind", ["page"])[0] == "feed":
            content, ctype = rss(base), "application/rss+xml"
        else:
            content, ctype = page("Slow news", "2026-03-05", "Slowly."), "text/html; charset=utf-8"
        self.close_connection = True
        headers = (f"HTTP/1.1 200 OK\r\nContent-Type: {ctype}\r\nContent-Length: {len(content)}\r\n"
                   "Connection: close\r\n\r\n").encode()
        if self.drip(headers, head):
            self.drip(content, body)

    def do_GET(self):
        base = f"http://127.0.0.1:{self.server.server_port}"
        self.server.agents.append(self.headers.get("User-Agent", ""))
        self.server.paths.append(self.path)
        p = self.path
        if p.startswith("/drip"):
            self.send_dripped(base, parse_qs(urlsplit(p).query))
        elif p == "/mislabelled-feed":
            self.send(200, mislabelled_feed(base), "application/rss+xml; charset=utf-8")
        elif p.startswith("/many?"):
            self.send(200, many_items_feed(base, int(parse_qs(urlsplit(p).query)["n"][0])), "application/rss+xml")
        elif p.startswith("/item/"):
            k = p.removeprefix("/item/")
            self.send(200, page(f"Tram story {k}", "2026-03-01", f"Item number {k}."))
        elif p == "/rss":
            self.send(200, rss(base), "application/rss+xml")
        elif p == "/broken-item-feed":
            self.send(200, f"""<?xml version="1.0"?><rss version="2.0"><channel><title>B</title>
<link>{base}/</link><description>d</description><item><title>Gone</title><link>{base}/gone</link></item>
</channel></rss>""".encode(), "application/rss+xml")
        elif p == "/summary-feed":
            self.send(200, summary_feed(base), "application/rss+xml")
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
        elif p == "/live-feed":  # a feed that can go away (server.live_feed = "gone") and supports ETags
            if self.server.live_feed == "gone":
                self.send(404, b"not found")
            elif self.headers.get("If-None-Match") == '"f1"':
                self.send(304, ctype="", headers=[("ETag", '"f1"')])
            else:
                self.send(200, rss(base), "application/rss+xml", headers=[("ETag", '"f1"')])
        elif p == "/etag":
            if self.headers.get("If-None-Match") == '"v1"':
                self.send(304, ctype="", headers=[("ETag", '"v1"')])
            else:
                self.send(200, b"hello", "text/plain", headers=[("ETag", '"v1"')])
        else:
            self.send(404, b"not found")


@contextmanager
def news_server() -> Iterator[tuple[ThreadingHTTPServer, str]]:
    """(server, base address); server.agents lists the User-Agent of every request, server.paths
    every path asked for."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.agents = []
    httpd.live_feed = "ok"
    httpd.paths = []
    httpd.closing = threading.Event()  # set on the way out: dripping answers stop
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield httpd, f"http://127.0.0.1:{httpd.server_port}"
    finally:
        httpd.closing.set()
        httpd.shutdown()
        httpd.server_close()
