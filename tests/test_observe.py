"""GET /healthz and GET /metrics (bot/observe.py): what a load balancer and Prometheus see of a replica."""
from __future__ import annotations

import json
import urllib.error
import urllib.request
from types import SimpleNamespace

from bot.observe import Metrics, health
from index.errors import IndexMissing
from index.store.database import Database
from index.store.local_postgres import free_port


def _get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


class NoIndex:
    settings = SimpleNamespace(database_url="")

    @property
    def snapshot(self):
        raise IndexMissing("No index has been built in /srv/var/index yet; run `citebot build`.")


def test_health_is_503_with_the_sentence_of_what_is_wrong():
    status, body = health(NoIndex(), None)
    assert status == 503 and body == {"status": "unavailable", "checks": {
        "index": "No index has been built in /srv/var/index yet; run `citebot build`."}}
    gone = Database(f"postgresql://citebot:pw@127.0.0.1:{free_port()}/citebot", timeout=1)
    status, body = health(NoIndex(), gone)
    assert status == 503 and body["checks"]["database"].startswith("The database at 127.0.0.1:")
    assert "cannot be reached (Connection refused)" in body["checks"]["database"] and "pw" not in json.dumps(body)


def test_refreshes_are_counted_by_result():
    from bot.handlers import scheduled_refresh
    from index.errors import DiskFull

    from .test_bot import run

    metrics = Metrics(NoIndex())

    class Desk:
        def __init__(self, result):
            self.result = result

        def feeds(self):
            return ["a feed"]

        def refresh_if_free(self):
            if isinstance(self.result, Exception):
                raise self.result
            return self.result

    done = SimpleNamespace(added=["fetched/a.json", "fetched/b.json"], summary=lambda: "1 feed, 2 new articles.")
    for result in (done, None, DiskFull("The disk is full."), done):
        run(scheduled_refresh(SimpleNamespace(citebot=SimpleNamespace(desk=Desk(result), metrics=metrics, follows=None))))
    text = __import__("prometheus_client").generate_latest(metrics.registry).decode()
    assert 'citebot_refreshes_total{result="ok"} 2.0' in text
    assert 'citebot_refreshes_total{result="skipped"} 1.0' in text and 'citebot_refreshes_total{result="failed"} 1.0' in text
    assert "citebot_refresh_new_articles_total 4.0" in text
    assert "citebot_index_chunks" not in text, "no index: no size"


def test_a_replica_serves_its_health_and_metrics_on_a_port_of_its_own(sample_engine):
    from .fake_telegram import FakeTelegram
    from .test_bot import ALICE, message, run, running_bot

    port = free_port()

    async def scenario():
        import asyncio

        with FakeTelegram() as fake:
            async with running_bot(fake, sample_engine, metrics_port=port):
                status, body = await asyncio.to_thread(_get, port, "/healthz")
                assert status == 200 and json.loads(body)["status"] == "ok"
                assert json.loads(body)["checks"]["index"].startswith("ok: 2 documents")
                for text in ("How many new battlegroups did NATO agree to deploy?", "What is the capital of Peru?"):
                    asked = message(text)
                    fake.push(message=asked)
                    await fake.wait_for(lambda: fake.replies_to(ALICE, asked["message_id"]))
                status, text = await asyncio.to_thread(_get, port, "/metrics")
                assert status == 200
                assert 'citebot_questions_total{chat_type="private"} 2.0' in text
                assert 'citebot_abstentions_total{chat_type="private"} 1.0' in text
                assert "citebot_answer_seconds_count 2.0" in text
                assert "citebot_index_documents 2.0" in text and "citebot_index_chunks " in text
                assert (await asyncio.to_thread(_get, port, "/other"))[0] == 404
        # Stopped with the bot: the port is free again.
        import socket

        with socket.socket() as sock:
            assert sock.connect_ex(("127.0.0.1", port)) != 0

    run(scenario())
