"""A replica's health and metrics, on a port of their own (CITEBOT_METRICS_PORT):

    GET /healthz   200 {"status": "ok", ...} when the index is loaded and the database (if any)
                   answers; 503 with the sentence of what is wrong otherwise: for a load balancer
    GET /metrics   Prometheus text: questions, abstentions, answer latency, refreshes, index size

A small threaded HTTP server beside the bot (python-telegram-bot's webhook server serves only
the webhook path), so a load balancer or Prometheus never waits behind Telegram's updates.
"""
from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily

from index.errors import CitebotError

if TYPE_CHECKING:
    from index.engine import Engine
    from index.store.database import Database

log = logging.getLogger(__name__)

LATENCY_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class _IndexSize:
    """Collected at each scrape from the live index's manifest (nothing when there is none)."""

    def __init__(self, engine: "Engine"):
        self.engine = engine

    def collect(self):
        try:
            manifest = self.engine.snapshot.manifest
        except CitebotError:
            return
        for name, key, what in (("citebot_index_documents", "documents", "Documents in the live index"),
                                ("citebot_index_chunks", "chunks", "Passages (chunks) in the live index")):
            family = GaugeMetricFamily(name, what)
            family.add_metric([], float(manifest.get(key, 0)))
            yield family


class Metrics:
    """The bot's counters, in a registry of its own (one per Application, so tests can run several)."""

    def __init__(self, engine: "Engine"):
        self.registry = CollectorRegistry()
        self.questions = Counter("citebot_questions", "Questions answered, abstentions included", ["chat_type"],
                                 registry=self.registry)
        self.abstentions = Counter("citebot_abstentions", "Questions answered by saying the articles do not hold "
                                   "the answer", ["chat_type"], registry=self.registry)
        self.latency = Histogram("citebot_answer_seconds", "Time to answer a question (search and reading, "
                                 "not sending)", buckets=LATENCY_BUCKETS, registry=self.registry)
        self.refreshes = Counter("citebot_refreshes", "Scheduled feed refreshes by result: ok, failed, or skipped "
                                 "(another replica had the turn)", ["result"], registry=self.registry)
        self.new_articles = Counter("citebot_refresh_new_articles", "Articles added by scheduled refreshes",
                                    registry=self.registry)
        self.registry.register(_IndexSize(engine))

    def answered(self, chat_type: str, abstained: bool, seconds: float) -> None:
        self.questions.labels(chat_type).inc()
        if abstained:
            self.abstentions.labels(chat_type).inc()
        self.latency.observe(seconds)

    def refreshed(self, result: str, new: int = 0) -> None:
        self.refreshes.labels(result).inc()
        if new:
            self.new_articles.inc(new)


def health(engine: "Engine", database: "Database | None") -> tuple[int, dict]:
    """(HTTP status, body): 200 when the index is loaded and the database answers, else 503 with
    the sentence of each check that failed."""
    checks, ok = {}, True
    try:
        manifest = engine.snapshot.manifest
        checks["index"] = f"ok: {manifest.get('documents', 0)} documents, {manifest.get('chunks', 0)} chunks"
    except CitebotError as exc:
        checks["index"], ok = str(exc), False
    if database is not None:
        try:
            with database.connection() as conn:
                conn.execute("SELECT 1")
            checks["database"] = f"ok: {database.where}"
        except CitebotError as exc:
            checks["database"], ok = str(exc), False
    return (200 if ok else 503), {"status": "ok" if ok else "unavailable", "checks": checks}


class ObserveServer:
    """GET /healthz and GET /metrics on (host, port), in a daemon thread; start() and stop()."""

    def __init__(self, host: str, port: int, engine: "Engine", database: "Database | None", metrics: Metrics):
        self.engine, self.database, self.metrics = engine, database, metrics
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # probes every few seconds: not worth a log line each
                pass

            def do_GET(self):
                path = self.path.split("?", 1)[0]
                if path == "/healthz":
                    status, body = health(outer.engine, outer.database)
                    self._send(status, "application/json", json.dumps(body).encode())
                elif path == "/metrics":
                    self._send(200, CONTENT_TYPE_LATEST, generate_latest(outer.metrics.registry))
                else:
                    self._send(404, "text/plain; charset=utf-8", b"GET /healthz or /metrics\n")

            def _send(self, status: int, kind: str, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer((host, port), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self._thread: threading.Thread | None = None

    def start(self) -> "ObserveServer":
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="observe", daemon=True)
        self._thread.start()
        log.info("Health and metrics on port %d: GET /healthz, GET /metrics", self.port)
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
