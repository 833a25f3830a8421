"""Topic alerts: after a refresh that added articles, each followed topic is searched among the new
articles only (the engine's own retrieval and reader, by meaning, not keywords; a topic asks no fact,
so whether an article is on it is the search's relevance, not the reader's answerability), and
each user gets at most one message holding the new cited excerpts for every topic of theirs that
matched. An article is never sent twice for the same topic (FollowStore.mark_sent).

    store.queue(report.added)                       # after the refresh: the new files, for every follower
    await deliver(bot, engine, store)               # the bot: one message per user, at most MAX_MESSAGES
    alerts = find_alerts(engine, store, user, paths)  # the console: the same search, printed
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field, replace
from html import escape
from typing import Sequence

from index.engine import Engine
from index.errors import CitebotError, QuestionError
from index.read.answer import Answer, Citation

from .follows import Follow, FollowStore
from .render import MAX_MESSAGE_UTF16, _visible_len, render_citation

log = logging.getLogger(__name__)

MAX_MESSAGES = 200  # alert messages per delivery pass; users not reached keep their queue for the next one
PER_TOPIC = 3  # cited excerpts per topic in one alert


@dataclass(frozen=True)
class Alert:
    """A followed topic and its new cited excerpts (articles not sent for it before)."""

    follow: Follow
    citations: tuple[Citation, ...]


@dataclass
class Delivery:
    """What a delivery pass did."""

    sent: int = 0  # messages
    users: int = 0  # users whose queue was searched
    paused: list[int] = field(default_factory=list)  # users who blocked the bot
    left: int = 0  # users still queued (the cap was reached)


def _search(engine: Engine, topic: str, cache: dict, paths: Sequence[str] = (), doc: str = "") -> Answer | None:
    """The engine's answer to the topic among these files' articles (or this one article); None when
    the engine cannot take the topic as a question."""
    key = (topic.casefold(), tuple(paths), doc)
    if key not in cache:
        try:
            cache[key] = engine.ask(topic, k=PER_TOPIC if paths else 1, within_paths=tuple(paths),
                                    within_docs=(doc,) if doc else (), topic=True)
        except QuestionError as exc:
            log.info("Topic %r not searched: %s", topic, exc)
            cache[key] = None
    return cache[key]


def _stands_alone(engine: Engine, topic: str, citation: Citation, cache: dict) -> bool:
    """Whether the engine answers the topic from this article alone. Abstention judges an answer by
    its best passage; the citations after it are the next best, however weak (a football report
    under "copper prices" when the copper story is the only match), so each must pass on its own."""
    answer = _search(engine, topic, cache, doc=citation.doc_id)
    return answer is not None and not answer.abstained and bool(answer.citations)


def find_alerts(engine: Engine, store: FollowStore, user_id: int, paths: Sequence[str],
                cache: dict | None = None) -> list[Alert]:
    """The user's topics searched among the articles of these files: one Alert per topic the engine
    answers (does not abstain on) with articles not yet sent for it. Nothing is recorded as sent."""
    if not paths:
        return []
    cache = {} if cache is None else cache
    alerts = []
    for follow in store.list(user_id):
        answer = _search(engine, follow.topic, cache, paths)
        if answer is None or answer.abstained or not answer.citations:
            continue
        fresh = set(store.unsent(follow.id, [c.doc_id for c in answer.citations]))
        kept, seen = [], set()
        for i, c in enumerate(answer.citations):
            if c.doc_id in fresh and c.doc_id not in seen and (i == 0 or _stands_alone(engine, follow.topic, c, cache)):
                seen.add(c.doc_id)
                kept.append(c)
        if kept:
            alerts.append(Alert(follow, tuple(replace(c, rank=i) for i, c in enumerate(kept, 1))))
    return alerts


def render_alerts(alerts: Sequence[Alert]) -> tuple[str, list[Alert]]:
    """One Telegram HTML message (within 4096 UTF-16 units) and the alerts it holds in full: a
    topic whose excerpts no longer fit is left out (and not recorded as sent)."""
    text, shown = "<b>New on the topics you follow</b>", []
    for alert in alerts:
        block = f"\n\n<b>{escape(alert.follow.topic)}</b>\n" + "\n\n".join(render_citation(c, 800)
                                                                           for c in alert.citations)
        if _visible_len(text + block) > MAX_MESSAGE_UTF16:
            continue
        text += block
        shown.append(alert)
    return text, shown


def render_alerts_text(alerts: Sequence[Alert]) -> str:
    """The alerts as plain text, for the console (`citebot refresh`)."""
    from .console import render_text

    parts = []
    for alert in alerts:
        answer = Answer(question=alert.follow.topic, abstained=False, citations=alert.citations, retriever="hybrid")
        parts.append(f"New on “{alert.follow.topic}”:\n{render_text(answer)}")
    return "\n\n".join(parts)


def record(store: FollowStore, alerts: Sequence[Alert]) -> None:
    for alert in alerts:
        store.mark_sent(alert.follow.id, [c.doc_id for c in alert.citations])


async def deliver(bot, engine: Engine, store: FollowStore, max_messages: int = MAX_MESSAGES,
                  skip: Sequence[int] = ()) -> Delivery:
    """Search every queued user's topics among their queued articles and send each at most one
    message, through the bot (PTB's rate limiter keeps to Telegram's flood limits), until
    max_messages are sent; users not reached stay queued for the next pass. A user who blocked the
    bot is paused. skip: users not delivered here (the console's, whose alerts `citebot refresh` prints)."""
    from telegram.error import BadRequest, Forbidden, TelegramError

    done = Delivery()
    cache: dict = {}
    skipped = set(skip)  # and the users this pass has taken (one whose send failed is queued again)
    while done.sent < max_messages:
        users = [u for u in await asyncio.to_thread(store.waiting, max_messages + len(skipped)) if u not in skipped]
        if not users:
            break
        for user_id in users:
            if done.sent >= max_messages:
                break
            skipped.add(user_id)
            paths = await asyncio.to_thread(store.take, user_id)
            done.users += 1
            try:
                alerts = await asyncio.to_thread(find_alerts, engine, store, user_id, paths, cache)
            except CitebotError as exc:  # the index or the store is away: put the queue back, try next time
                log.warning("Topic alerts wait for the next refresh: %s", exc)
                await asyncio.to_thread(store.queue, paths, user_id)
                return done
            if not alerts:
                continue
            text, shown = render_alerts(alerts)
            try:
                await bot.send_message(user_id, text)
            except Forbidden as exc:
                paused = await asyncio.to_thread(store.pause, user_id)
                done.paused.append(user_id)
                log.info("User %s cannot be sent alerts (%s): their %d followed topic(s) are paused until they "
                         "use /follow or /following again", user_id, exc, paused)
                continue
            except BadRequest as exc:  # this message will never go: not kept for another try
                log.warning("An alert to %s was refused (%s); it is dropped", user_id, exc)
                continue
            except TelegramError as exc:  # a network error or a flood limit past the retries: next time
                log.warning("An alert to %s did not go (%s); it is tried after the next refresh", user_id, exc)
                await asyncio.to_thread(store.queue, paths, user_id)
                continue
            done.sent += 1
            await asyncio.to_thread(record, store, shown)
    done.left = len([u for u in await asyncio.to_thread(store.waiting, max_messages + len(skipped) + 1)
                     if u not in skip])
    if done.sent or done.paused or done.left:
        log.info("Topic alerts: %d message(s) to %d user(s) searched; %d paused; %d user(s) wait for the next pass",
                 done.sent, done.users, len(done.paused), done.left)
    return done
