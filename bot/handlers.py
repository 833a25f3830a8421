"""Telegram handlers: when to answer, what to say, and who may rebuild the index."""
from __future__ import annotations

import asyncio
import contextlib
import functools
import html
import logging
import re
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from telegram import (
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InlineQueryResultArticle,
    InlineQueryResultsButton,
    InputTextMessageContent,
    SwitchInlineQueryChosenChat,
    LinkPreviewOptions,
    Message,
    MessageEntity,
    Update,
)
from telegram.constants import ChatAction, ParseMode
from telegram.error import BadRequest, TelegramError
from telegram.ext import Application, CallbackContext, ExtBot

from index.read.answer import Answer
from index.engine import Engine
from index.errors import BuildError, BuildInProgress, CitebotError, IndexUnavailable, QuestionError
from index.search.timeframe import say_iso
from index.store.database import Database, DatabaseError
from index.news.newsdesk import MAX_UPLOAD_BYTES, UPLOAD_SUFFIXES, DeskReport, Newsdesk

from . import alerts
from .config import BotConfig
from .follows import MAX_TOPICS, FollowRefused, FollowStore
from .conversation import ALL_SHOWN, answer_turn, remember_turn
from .digests import Digest, DigestStore, parse_schedule
from .history import History, Remembered, callback_data, parse_callback_data, parse_vote_data, vote_data
from .observe import Metrics, ObserveServer
from .ratelimit import RateLimiter, Verdict
from .render import describe_coverage, render_digest, render_report, feed_lines, render_answer, render_inline_message, render_page

log = logging.getLogger(__name__)

NO_PREVIEW = LinkPreviewOptions(is_disabled=True)
APOLOGY = "Sorry, something went wrong on my side. Please try again in a moment."
NOT_READY = "My index is not ready yet; an admin needs to run /reindex."
DATABASE_AWAY = "I cannot reach my article database just now; please try again in a minute."
TEXT_ONLY = "I read text only: send your question as a message."
REFUSED = "Sorry, only the bot's admins can do that."
MEMORY_AWAY = "I cannot reach my memory of that answer just now; please try again in a moment."
PROGRESS_WORDS = {"read": "files read", "embed": "passages embedded",
                  "multilingual": "passages embedded for other languages"}
SHARE_MAX = 256  # an inline query holds at most 256 characters
TYPING_AFTER = 0.5  # seconds before a slow answer shows "typing…"
PROGRESS_EVERY = 3.5  # seconds between /reindex progress edits: Telegram allows ~20 a minute in a group


@dataclass
class BotState:
    """What the handlers share, kept in application.bot_data[STATE_KEY] (CitebotContext.citebot)."""

    engine: Engine
    config: BotConfig
    history: History  # answers (for "More", follow-ups, votes) and the question log: bot.sqlite or the database
    limiter: RateLimiter
    inline_limiter: RateLimiter  # inline queries arrive per keystroke: a budget of their own
    more_limiter: RateLimiter  # "More" presses: a budget of their own, so paging never blocks asking
    executor: ThreadPoolExecutor  # engine calls for questions; builds run on asyncio's default pool
    desk: Newsdesk  # feeds, links and uploads into the corpus and the index
    reindexing: asyncio.Lock = field(default_factory=asyncio.Lock)
    answered: int = 0  # questions answered since start, for /stats (the event loop's thread only)
    database: Database | None = None  # CITEBOT_DATABASE_URL's, shared by the stores above; None: files
    metrics: Metrics | None = None  # Prometheus counters (CITEBOT_METRICS_PORT); None: not kept
    observer: ObserveServer | None = None  # the /healthz and /metrics server, while it runs
    digests: DigestStore | None = None  # chats' daily digests (bot/digests.py)
    follows: FollowStore | None = None  # followed topics (bot/follows.py): follows.sqlite or the database
    alerting: asyncio.Lock = field(default_factory=asyncio.Lock)  # one alert delivery at a time here


STATE_KEY = "citebot"  # application.bot_data[STATE_KEY] holds the BotState


def app_state(application: Application) -> BotState:
    return application.bot_data[STATE_KEY]


class CitebotContext(CallbackContext[ExtBot, dict, dict, dict]):
    """The context every handler and job receives (PTB's contexttypesbot example): the bot's
    shared state, typed."""

    @property
    def citebot(self) -> BotState:
        return app_state(self.application)


async def _ask(context: CitebotContext, question: str, k: int, language: str = "") -> Answer:
    """Run the engine in a worker thread so the event loop keeps serving other chats."""
    s = context.citebot
    call = functools.partial(s.engine.ask, question, k=k, language=language)
    return await asyncio.get_running_loop().run_in_executor(s.executor, call)


def _keyboard(qid: str, more_from: int | None, share: str = "") -> InlineKeyboardMarkup:
    """👍 👎 and, when there are more citations, "More ›", in one row; "Share" (the question typed
    as an inline query in a chat the user picks, where its excerpts can be posted) below."""
    row = [InlineKeyboardButton("👍", callback_data=vote_data(qid, True)),
           InlineKeyboardButton("👎", callback_data=vote_data(qid, False))]
    if more_from is not None:
        row.append(InlineKeyboardButton("More ›", callback_data=callback_data(qid, more_from)))
    rows = [row]
    if share and len(share) <= SHARE_MAX:
        rows.append([InlineKeyboardButton("Share ↗", switch_inline_query_chosen_chat=SwitchInlineQueryChosenChat(
            query=share, allow_user_chats=True, allow_group_chats=True, allow_channel_chats=True))])
    return InlineKeyboardMarkup(rows)


async def _typing_later(context: CitebotContext, message: Message) -> None:
    """Show "typing…" only if the answer is slow: most take milliseconds, and every call counts
    against Telegram's ~30 requests a second (bench/bot_throughput.py). In a forum it goes to the
    question's topic, not to General."""
    await asyncio.sleep(TYPING_AFTER)
    thread = message.message_thread_id if message.is_topic_message else None
    try:
        await context.bot.send_chat_action(message.chat_id, ChatAction.TYPING, message_thread_id=thread)
    except TelegramError as exc:  # a nicety: never lose the answer over it
        log.info("No typing indicator: %s", exc)


async def _previous_answer(update: Update, context: CitebotContext) -> Remembered | None:
    """The bot's earlier answer this message replies to, if the bot still remembers it (and can
    reach its memory: if not, the reply is answered as a question of its own)."""
    replied = update.effective_message.reply_to_message
    if replied is None or replied.from_user is None or replied.from_user.id != context.bot.id:
        return None
    try:
        return await asyncio.to_thread(context.citebot.history.answer_to, replied.chat_id, replied.message_id)
    except CitebotError as exc:
        log.warning("A reply is answered as a new question: %s", exc)
        return None


async def _limit(limiter: RateLimiter, user_id: int) -> Verdict:
    """The limiter's verdict, off the event loop (it may ask the database)."""
    return await asyncio.to_thread(limiter.check, user_id)


async def answer_question(update: Update, context: CitebotContext, question: str,
                          previous: Remembered | None = None) -> None:
    """Answer a question in the chat it came from, replying to the asking message; a reply to an
    earlier answer (previous) is a follow-up."""
    s = context.citebot
    message = update.effective_message
    age = (datetime.now(timezone.utc) - message.date).total_seconds() if message.date else 0.0
    if s.config.backlog_minutes and age > s.config.backlog_minutes * 60:
        # Asked while the bot was down, long ago: an answer now would surprise more than help.
        log.info("Dropped a question %.0f min old (CITEBOT_BACKLOG_MINUTES=%d)", age / 60, s.config.backlog_minutes)
        return
    asker = update.effective_user.id if update.effective_user else update.effective_chat.id
    verdict = await _limit(s.limiter, asker)
    if verdict is Verdict.SILENT:
        return
    if verdict is Verdict.NOTIFY:
        wait = await asyncio.to_thread(s.limiter.retry_in, asker)
        await message.reply_text(f"You are asking faster than I can answer; please wait {wait} s.")
        return
    typing = asyncio.create_task(_typing_later(context, message))
    language = (update.effective_user.language_code if update.effective_user else "") or ""
    try:
        # A reply to an earlier answer (previous) is a follow-up: the conversation the console holds too.
        call = functools.partial(answer_turn, s.engine, question, previous, s.config.max_citations, language)
        began = time.perf_counter()
        turn = await asyncio.get_running_loop().run_in_executor(s.executor, call)
        if s.metrics is not None:
            s.metrics.answered(message.chat.type, turn.answer.abstained, time.perf_counter() - began)
        if turn.exhausted:
            await message.reply_text(ALL_SHOWN)
            return
    except QuestionError as exc:
        await message.reply_text(html.escape(str(exc)))
        return
    except IndexUnavailable:
        log.exception("The index cannot be loaded")
        await message.reply_text(NOT_READY)
        return
    finally:
        typing.cancel()
    answer = turn.answer
    parts = render_answer(answer, turn.start, s.config.first_citations, searched=turn.searched_note)
    # The memory serves "More", votes and follow-ups; if it cannot be written just now (a full disk, a
    # lost database), the answer still goes, without its buttons.
    try:
        remembered = await asyncio.to_thread(remember_turn, s.history, turn, s.config.first_citations)
    except CitebotError as exc:
        log.warning("An answer goes without its buttons: %s", exc)
        remembered = None
    markup = None
    if remembered is not None:
        shown = remembered.shown
        markup = _keyboard(remembered.qid, shown if len(answer.citations) > shown and not answer.abstained else None,
                           "" if answer.abstained else turn.searched)
    sent = []
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        sent.append(await message.reply_text(part, reply_markup=markup if last else None))
    s.answered += 1
    try:
        if remembered is not None:
            await asyncio.to_thread(s.history.sent, remembered.qid, message.chat_id, [m.message_id for m in sent])
        await asyncio.to_thread(s.history.log, question, message.chat.type, answer.abstained)
    except CitebotError as exc:  # the answer is out; only the memory of it is missing
        log.warning("An answer sent is not remembered: %s", exc)


GREETING = ("Hello! I answer questions about the news with cited excerpts. Ask with /ask your question, "
            "mention @{me}, or reply to one of my answers.")
START_PAYLOADS = {
    "inline": "You came from an inline search that found nothing to share. Ask the question here and I "
              "will say what my articles hold, or that they do not.",
}


async def added_to_chat(update: Update, context: CitebotContext) -> None:
    """my_chat_member: greet a group or channel that has just added the bot, with how to ask."""
    change = update.my_chat_member
    was, now = change.old_chat_member.status, change.new_chat_member.status
    if was in ("left", "kicked") and now in ("member", "administrator") and change.chat.type != "private":
        try:
            await context.bot.send_message(change.chat.id, GREETING.format(me=html.escape(context.bot.username)))
        except TelegramError as exc:  # a channel where the bot may not post, say
            log.info("No greeting in %s: %s", change.chat.id, exc)


async def start(update: Update, context: CitebotContext) -> None:
    """Say what the bot knows and how to ask, in a few lines; a deep-link payload says why the user came."""
    s = context.citebot
    payload = (context.args or [""])[0] if update.effective_message.text.startswith("/start") else ""
    if payload and payload in START_PAYLOADS:
        await update.effective_message.reply_text(START_PAYLOADS[payload])
    try:
        known = describe_coverage(await asyncio.to_thread(s.engine.coverage))
    except IndexUnavailable:
        known = "My article index is not built yet."
    me = context.bot.username
    await update.effective_message.reply_text(
        f"{known} Ask me a question and I answer with cited excerpts, or tell you the articles do not say.\n"
        f"Example: <i>How many new battlegroups did NATO agree to deploy?</i>\n"
        f"In groups: /ask your question, mention @{html.escape(me)}, or reply to my answer. "
        f"Anywhere: type @{html.escape(me)} and a question.\n"
        f"Time works too: <i>latest</i>, <i>yesterday</i>, <i>this week</i>, <i>in March 2022</i>, "
        f"or filters like since:2022-03-01 source:bbc.\n"
        f"Here in private: /follow <i>topic</i> and I send you new articles about it after each refresh."
    )


async def private_text(update: Update, context: CitebotContext) -> None:
    """In a private chat every text message is a question; a reply to an answer is a follow-up."""
    await answer_question(update, context, update.effective_message.text, await _previous_answer(update, context))


async def ask_command(update: Update, context: CitebotContext) -> None:
    """/ask <question>, in any chat."""
    question = " ".join(context.args or [])
    if not question.strip():
        await update.effective_message.reply_text(
            "Put your question after the command, like: /ask How many battlegroups did NATO agree to?"
        )
        return
    await answer_question(update, context, question)


def _mentions_bot(message: Message, username: str) -> bool:
    entities = message.parse_entities([MessageEntity.MENTION]) if message.text else \
        message.parse_caption_entities([MessageEntity.MENTION])
    return any(text.lstrip("@").lower() == username.lower() for text in entities.values())


def _strip_mention(text: str, username: str) -> str:
    return re.sub(rf"@{re.escape(username)}\b", " ", text, flags=re.IGNORECASE).strip()


async def group_message(update: Update, context: CitebotContext) -> None:
    """In groups: answer a message that mentions the bot or replies to it; ignore other chatter."""
    message = update.effective_message
    username = context.bot.username
    replied = message.reply_to_message
    if _mentions_bot(message, username):
        await answer_question(update, context, _strip_mention(message.text, username),
                              await _previous_answer(update, context))
    elif replied is not None and replied.from_user is not None and replied.from_user.id == context.bot.id:
        await answer_question(update, context, message.text, await _previous_answer(update, context))


async def caption_question(update: Update, context: CitebotContext) -> None:
    """A photo or document whose caption asks: always in a private chat, on a mention in a group."""
    message = update.effective_message
    username = context.bot.username
    if message.chat.type == "private":
        await answer_question(update, context, _strip_mention(message.caption, username))
    elif _mentions_bot(message, username):
        await answer_question(update, context, _strip_mention(message.caption, username))


async def channel_post(update: Update, context: CitebotContext) -> None:
    """In channels where the bot is an admin: answer posts that start with /ask or mention the bot."""
    post = update.channel_post
    text = post.text or ""
    username = context.bot.username
    command = re.match(rf"^/ask(?:@{re.escape(username)})?(?:\s+|$)", text, flags=re.IGNORECASE)
    if command:
        question = text[command.end():]
    elif _mentions_bot(post, username):
        question = _strip_mention(text, username)
    else:
        return
    if question.strip():
        await answer_question(update, context, question)


async def not_text(update: Update, context: CitebotContext) -> None:
    """Stickers, photos, voice and the like in a private chat: a one-line hint."""
    await update.effective_message.reply_text(TEXT_ONLY)


INLINE_HINT = "Type a question about the news"
INLINE_NOT_FOUND = "Not in my articles: ask me in a chat"
INLINE_TOO_FAST = "Too many questions: wait a moment"


async def inline_query(update: Update, context: CitebotContext) -> None:
    """@bot question in any chat: one result per cited excerpt."""
    query = update.inline_query
    results = []
    allowed = await _limit(context.citebot.inline_limiter, query.from_user.id) is Verdict.ALLOW
    hint = INLINE_HINT if not query.query.strip() else INLINE_TOO_FAST if not allowed else INLINE_NOT_FOUND
    if query.query.strip() and allowed:
        try:
            answer = await _ask(context, query.query, 10)
        except QuestionError:
            answer = None
        for c in answer.citations if answer and not answer.abstained else ():
            results.append(
                InlineQueryResultArticle(
                    id=f"{c.chunk_id}:{c.char_start}"[-64:],
                    title=c.title[:200],
                    description=" ".join(c.excerpt.split())[:300],
                    input_message_content=InputTextMessageContent(
                        render_inline_message(c), parse_mode=ParseMode.HTML, link_preview_options=NO_PREVIEW
                    ),
                )
            )
    if results:
        await query.answer(results[:10], cache_time=30, is_personal=False)
        return
    # No answer to share: say why on a button that opens the private chat, and cache it for no one
    # (a refusal or an abstention must not be served to everyone who types the same words).
    button = InlineQueryResultsButton(text=hint, start_parameter="inline")
    await query.answer([], cache_time=0, is_personal=True, button=button)


async def more(update: Update, context: CitebotContext) -> None:
    """The "More" button: show the next citations by editing the message."""
    s = context.citebot
    query = update.callback_query
    parsed = parse_callback_data(query.data)
    try:
        question = await asyncio.to_thread(s.history.question, parsed[0]) if parsed else None
    except CitebotError as exc:
        log.warning("A More press finds no memory: %s", exc)
        await query.answer(MEMORY_AWAY, show_alert=True)
        return
    if question is None:
        await query.answer("These results have expired; please ask again.", show_alert=True)
        return
    if await _limit(s.more_limiter, query.from_user.id) is not Verdict.ALLOW:
        wait = await asyncio.to_thread(s.more_limiter.retry_in, query.from_user.id)
        await query.answer(f"Too many requests; please wait {wait} s.")
        return
    qid, offset = parsed
    answer = await _ask(context, question, s.config.max_citations)
    if answer.abstained or offset >= len(answer.citations):
        await query.answer("The index has changed since; please ask again.", show_alert=True)
        return
    await query.answer()
    page, shown = render_page(answer, offset, s.config.first_citations)
    following = offset + shown
    markup = _keyboard(qid, following if len(answer.citations) > following else None, question)
    try:
        await query.edit_message_text(page, reply_markup=markup)
    except BadRequest as exc:  # "message is not modified" when pressed twice
        log.info("Not editing: %s", exc)


async def vote(update: Update, context: CitebotContext) -> None:
    """👍 / 👎 under an answer: stored (a second vote replaces the first), thanked at once."""
    s = context.citebot
    query = update.callback_query
    parsed = parse_vote_data(query.data)
    chat_type = query.message.chat.type if query.message else "inline"
    try:
        stored = parsed is not None and await asyncio.to_thread(s.history.vote, parsed[0], query.from_user.id,
                                                                 parsed[1], chat_type)
    except CitebotError as exc:
        log.warning("A vote is not stored: %s", exc)
        await query.answer(MEMORY_AWAY)
        return
    await query.answer("Thanks!" if stored else "This answer is too old to rate; please ask again.")


def _is_admin(update: Update, context: CitebotContext) -> bool:
    user = update.effective_user
    return user is not None and user.id in context.citebot.config.admin_ids


def admins_only(handler):
    """Run the command only for the bot's admins; anyone else gets one polite sentence."""
    @functools.wraps(handler)
    async def guarded(update: Update, context: CitebotContext) -> None:
        if not _is_admin(update, context):
            await update.effective_message.reply_text(REFUSED)
            return
        await handler(update, context)
    return guarded


@admins_only
async def stats(update: Update, context: CitebotContext) -> None:
    """/stats for admins: the index and how busy the bot has been."""
    s = context.citebot
    info = await asyncio.to_thread(s.engine.stats)
    skipped = ", ".join(html.escape(x["path"]) for x in info["skipped_files"][:10]) or "none"
    await update.effective_message.reply_text(
        f"<b>Index</b>: {info['documents']} documents, {info['chunks']} chunks\n"
        f"{html.escape(describe_coverage(info['coverage']))}\n"
        f"Skipped files: {len(info['skipped_files'])} ({skipped})\n"
        f"Model: {html.escape(info['model'])}\n"
        f"Built: {html.escape(info['built_at'])}\n"
        f"Questions answered since start: {s.answered}\n\n"
        + render_report(await asyncio.to_thread(s.history.report, 7))
    )


@admins_only
async def reindex(update: Update, context: CitebotContext) -> None:
    """/reindex for admins: rebuild in the background while answering from the old index."""
    s = context.citebot
    if s.reindexing.locked():
        await update.effective_message.reply_text("A reindex is already running; I will report when it is done.")
        return
    async with s.reindexing:
        status = await update.effective_message.reply_text("Reindexing: reading the corpus…")
        loop = asyncio.get_running_loop()
        shown = {"at": 0.0, "text": status.text}
        pending: list[Future] = []

        async def show(text: str) -> None:
            if text != shown["text"]:
                shown["text"] = text
                await status.edit_text(text)

        def progress(stage: str, done: int, total: int) -> None:
            now = time.monotonic()
            if now - shown["at"] < PROGRESS_EVERY or (pending and not pending[-1].done()):
                return  # too soon, or the last edit is still on its way: skip, never queue up
            shown["at"] = now
            if stage == "write":
                text = "Reindexing: writing the index…"
            else:
                text = f"Reindexing: {done}/{total} {PROGRESS_WORDS.get(stage, stage)}…"
            pending.append(asyncio.run_coroutine_threadsafe(show(text), loop))

        try:
            report = await asyncio.to_thread(s.engine.build, None, progress)
            final = f"Reindex done. {html.escape(report.summary())}"
        except (BuildError, BuildInProgress) as exc:
            final = f"Reindex failed: {html.escape(str(exc))} The previous index is still answering."
        except Exception:
            log.exception("Reindex failed")
            final = "Reindex failed with an internal error (see the log). The previous index is still answering."
        # Progress edits still in flight must land before the final word, not after it.
        await asyncio.gather(*map(asyncio.wrap_future, pending), return_exceptions=True)
        await show(final)


# -- the news desk (admins) ----------------------------------------------------------------------

UPDATE_FAILED = "That did not work because of an internal error (see the log); nothing else changed."
REFRESH_BUSY = ("Another replica is fetching the feeds right now; what it finds reaches the index in a moment, "
                "so there is nothing to do twice.")


async def _desk_update(update: Update, context: CitebotContext, working: str, call) -> None:
    """Say what is being done, run the news-desk call in a thread, then edit in its result. A long
    index update is announced with its estimate as soon as the build has measured its rate."""
    status = await update.effective_message.reply_text(working)
    loop = asyncio.get_running_loop()
    pending: list[Future] = []

    def announce(sentence: str) -> None:  # called from the build's thread
        pending.append(asyncio.run_coroutine_threadsafe(status.edit_text(html.escape(f"{working} {sentence}")), loop))

    report = None
    try:
        report: DeskReport | None = await asyncio.to_thread(functools.partial(call, announce=announce))
        text = html.escape(report.summary()) if report is not None else REFRESH_BUSY
    except CitebotError as exc:
        text = html.escape(str(exc))
    except Exception:
        log.exception("News desk update failed")
        text = UPDATE_FAILED
    await asyncio.gather(*map(asyncio.wrap_future, pending), return_exceptions=True)  # the result comes last
    await status.edit_text(text[:4000])
    if report is not None:
        await send_alerts(context, report)


async def send_alerts(context: CitebotContext, report: DeskReport | None) -> None:
    """After a news-desk update: queue the articles it added for everyone following a topic, then
    send the alerts (at most alerts.MAX_MESSAGES; the rest next time). Never raises: the update
    itself is done and said."""
    s = context.citebot
    if s.follows is None:
        return
    try:
        if report is not None and report.added:
            await asyncio.to_thread(s.follows.queue, report.added)
        async with s.alerting:
            await alerts.deliver(context.bot, s.engine, s.follows)
    except CitebotError as exc:
        log.warning("Topic alerts wait for the next refresh: %s", exc)
    except Exception:
        log.exception("Topic alerts failed")


def _refresh_note(context: CitebotContext) -> str:
    minutes = context.citebot.config.refresh_minutes
    jobs = context.job_queue.get_jobs_by_name(REFRESH_JOB) if context.job_queue else ()
    if not minutes or not jobs:
        return "Feeds are fetched only when an admin sends /refresh."
    following = jobs[0].next_t
    when = f", next at {following:%H:%M} UTC" if following else ""
    return f"Feeds are fetched every {minutes} min{when}."


@admins_only
async def feeds(update: Update, context: CitebotContext) -> None:
    """/feeds for admins: every feed, when it was last fetched, its items and its last error."""
    listed = await asyncio.to_thread(context.citebot.desk.feeds)
    if not listed:
        await update.effective_message.reply_text("No feeds yet. Add one with /addfeed URL (RSS or Atom).")
        return
    lines = [f"<b>{len(listed)} feed{'s' if len(listed) != 1 else ''}</b>. {_refresh_note(context)}"]
    lines += [html.escape(feed_lines(f)) for f in listed]
    text = "\n\n".join(lines)
    await update.effective_message.reply_text(text if len(text) < 4000 else text[:3990] + "…")


async def _url_argument(update: Update, context: CitebotContext, usage: str) -> str | None:
    """The command's one argument (an address), or None after replying how to use the command."""
    args = context.args or []
    if len(args) == 1:
        return args[0]
    await update.effective_message.reply_text(usage)
    return None


@admins_only
async def addfeed(update: Update, context: CitebotContext) -> None:
    """/addfeed URL for admins: check the feed, keep it and add its articles."""
    url = await _url_argument(update, context, "Put the feed's address after the command: /addfeed https://…/rss")
    if url is None:
        return
    desk = context.citebot.desk
    await _desk_update(update, context, "Fetching the feed…", functools.partial(desk.add_feed, url))


@admins_only
async def removefeed(update: Update, context: CitebotContext) -> None:
    """/removefeed URL for admins: stop fetching a feed (its articles stay)."""
    url = await _url_argument(update, context, "Put the feed's address after the command: /removefeed https://…/rss")
    if url is None:
        return
    removed = await asyncio.to_thread(context.citebot.desk.remove_feed, url)
    await update.effective_message.reply_text(
        f"Removed {html.escape(url)}; its articles stay in the corpus." if removed
        else f"{html.escape(url)} is not one of my feeds (see /feeds).")


@admins_only
async def add_page(update: Update, context: CitebotContext) -> None:
    """/add URL for admins: fetch one article page and add it."""
    url = await _url_argument(update, context, "Put the article's address after the command: /add https://…")
    if url is None:
        return
    desk = context.citebot.desk
    await _desk_update(update, context, "Fetching the page…", functools.partial(desk.add_url, url))


@admins_only
async def refresh(update: Update, context: CitebotContext) -> None:
    """/refresh for admins: fetch every feed now."""
    desk = context.citebot.desk
    # With replicas on one database, one fetches at a time (the scheduled refresh's lock).
    await _desk_update(update, context, "Fetching the feeds…", desk.refresh_if_free)


async def document(update: Update, context: CitebotContext) -> None:
    """A file in a private chat: an admin's article file is added; anyone else's caption is a question."""
    message = update.effective_message
    if not _is_admin(update, context):
        if message.caption:
            await caption_question(update, context)
        else:
            await message.reply_text(TEXT_ONLY)
        return
    doc = message.document
    name = doc.file_name or "upload"
    if not name.lower().endswith(UPLOAD_SUFFIXES):
        await message.reply_text(f"I add article files ending in {', '.join(UPLOAD_SUFFIXES)}; "
                                 f"{html.escape(name)} is not one.")
        return
    if doc.file_size and doc.file_size > MAX_UPLOAD_BYTES:
        await message.reply_text(f"{html.escape(name)} is over Telegram's 20 MB download limit for bots.")
        return
    file = await doc.get_file()
    data = bytes(await file.download_as_bytearray())
    desk = context.citebot.desk
    await _desk_update(update, context, f"Adding {html.escape(name)}…", functools.partial(desk.add_file, name, data))


REFRESH_JOB = "refresh-feeds"


# -- followed topics ---------------------------------------------------------------------------------

PRIVATE_ONLY = "I follow topics in a private chat only: message me directly and send /follow TOPIC there."
FOLLOW_USAGE = ("Put the topic after the command, like: /follow copper prices. After each feed refresh I "
                "send you the new articles about it, with cited excerpts.")


async def _private(update: Update) -> bool:
    """Whether the command came in a private chat; elsewhere one sentence saying so."""
    if update.effective_chat is not None and update.effective_chat.type == "private":
        return True
    await update.effective_message.reply_text(PRIVATE_ONLY)
    return False


def _numbered(follows) -> str:
    return "\n".join(f"{i}. {html.escape(f.topic)}" for i, f in enumerate(follows, 1))


async def follow(update: Update, context: CitebotContext) -> None:
    """/follow TOPIC (private chats): alerts with cited excerpts when new articles match it."""
    if not await _private(update):
        return
    store = context.citebot.follows
    topic = " ".join(context.args or [])
    if not topic.strip():
        await update.effective_message.reply_text(FOLLOW_USAGE)
        return
    try:
        added = await asyncio.to_thread(store.add, update.effective_user.id, topic)
    except FollowRefused as exc:
        await update.effective_message.reply_text(html.escape(str(exc)))
        return
    await update.effective_message.reply_text(
        f"Following “{html.escape(added.topic)}”. After each refresh that brings new articles about it I send "
        "you their cited excerpts, each article once. /following lists your topics.")


async def following(update: Update, context: CitebotContext) -> None:
    """/following: the user's topics, numbered for /unfollow N."""
    if not await _private(update):
        return
    store = context.citebot.follows
    uid = update.effective_user.id
    await asyncio.to_thread(store.resume, uid)
    listed = await asyncio.to_thread(store.list, uid)
    if not listed:
        await update.effective_message.reply_text("You follow no topics yet. Start with /follow TOPIC.")
        return
    await update.effective_message.reply_text(
        f"<b>You follow {len(listed)} of at most {MAX_TOPICS} topics</b>\n{_numbered(listed)}\n\n"
        "Stop one with /unfollow N.")


async def unfollow(update: Update, context: CitebotContext) -> None:
    """/unfollow N: stop following the N-th topic of /following."""
    if not await _private(update):
        return
    store = context.citebot.follows
    args = context.args or []
    if len(args) != 1 or not args[0].isdigit():
        await update.effective_message.reply_text("Put the topic's number from /following after the command, "
                                                  "like: /unfollow 2")
        return
    removed = await asyncio.to_thread(store.remove, update.effective_user.id, int(args[0]))
    if removed is None:
        await update.effective_message.reply_text(f"You have no topic number {int(args[0])}; see /following.")
        return
    await update.effective_message.reply_text(f"No longer following “{html.escape(removed.topic)}”.")


async def scheduled_refresh(context: CitebotContext) -> None:
    """JobQueue: fetch every feed and update the index; the result goes to the log. With replicas
    sharing a database, the one that takes the refresh lock does it and the others skip this turn."""
    desk: Newsdesk = context.citebot.desk
    metrics = getattr(context.citebot, "metrics", None)
    try:
        if not await asyncio.to_thread(desk.feeds):
            return
        report = await asyncio.to_thread(desk.refresh_if_free)
    except CitebotError as exc:  # a full disk, a damaged feed database: one line, tried again next time
        log.warning("Scheduled refresh failed: %s", exc)
        if metrics is not None:
            metrics.refreshed("failed")
        return
    if report is None:
        log.info("Scheduled refresh: another replica is refreshing the feeds; this one skips its turn.")
        if metrics is not None:
            metrics.refreshed("skipped")
        return
    if metrics is not None:
        metrics.refreshed("ok", len(report.added))
    log.info("Scheduled refresh: %s", report.summary().replace("\n", "; "))
    await send_alerts(context, report)


# -- the daily digest ----------------------------------------------------------------------------

DIGEST_HELP = ("No digest here yet: /digest 07:30 sends the main stories of the new articles every day at 07:30 "
               "UTC (or /digest 07:30 Europe/Berlin); /digest off stops it.")
DIGEST_FIRST_DAYS = 1  # a first digest tells the articles published since yesterday
DIGEST_GAP = timedelta(hours=20)  # a digest sent this recently (by another replica) is not sent again


def digest_job_name(chat_id: int) -> str:
    return f"digest:{chat_id}"


def schedule_digest(job_queue, digest: Digest) -> None:
    """(Re)schedule one chat's digest on the JobQueue, every day at its time in its time zone."""
    if job_queue is None:
        return
    for job in job_queue.get_jobs_by_name(digest_job_name(digest.chat_id)):
        job.schedule_removal()
    job_queue.run_daily(send_digest, time=digest.time, chat_id=digest.chat_id, name=digest_job_name(digest.chat_id))


async def _is_chat_admin(context: CitebotContext, chat_id: int, user_id: int) -> bool:
    if user_id in context.citebot.config.admin_ids:
        return True
    try:
        member = await context.bot.get_chat_member(chat_id, user_id)
    except TelegramError as exc:
        log.info("Cannot tell whether %s is an admin of %s: %s", user_id, chat_id, exc)
        return False
    return member.status in ("creator", "administrator")


async def digest(update: Update, context: CitebotContext) -> None:
    """/digest HH:MM [TIME ZONE] | off: the day's main stories in this chat every day (group admins only)."""
    s = context.citebot
    message, chat = update.effective_message, update.effective_chat
    user = update.effective_user
    if chat.type != "private" and (user is None or not await _is_chat_admin(context, chat.id, user.id)):
        await message.reply_text("In a group only its admins can set the digest.")
        return
    args = context.args or []
    if not args:
        current = await asyncio.to_thread(s.digests.get, chat.id)
        await message.reply_text(f"The digest comes every day at {current.at} ({html.escape(current.tz)}); "
                                 "/digest off stops it." if current else DIGEST_HELP)
        return
    if args[0].lower() == "off":
        removed = await asyncio.to_thread(s.digests.off, chat.id)
        for job in context.job_queue.get_jobs_by_name(digest_job_name(chat.id)) if context.job_queue else ():
            job.schedule_removal()
        await message.reply_text("The digest is stopped." if removed else "There was no digest here to stop.")
        return
    try:
        at, tz = parse_schedule(args)
    except ValueError as exc:
        await message.reply_text(html.escape(str(exc)))
        return
    stored = await asyncio.to_thread(s.digests.set, chat.id, at, tz)
    schedule_digest(context.job_queue, stored)
    await message.reply_text(f"Every day at {at} ({html.escape(tz)}) I will send the main stories of the articles "
                             "published since the last digest, each with its lead. /digest off stops it.")


def _digest_now(s: BotState, chat_id: int):
    """(stories, since) for a chat's digest now, or None when it was just sent (by another replica)."""
    from index.news.digest import stories

    current = s.digests.get(chat_id)
    if current is None:
        return None
    now = datetime.now(timezone.utc)
    last = datetime.fromisoformat(current.last_sent) if current.last_sent else None
    if last is not None and now - last < DIGEST_GAP:
        return None
    since = (last or now - timedelta(days=DIGEST_FIRST_DAYS)).date()
    return stories(s.engine.snapshot, since, exclude=frozenset(current.last_docs)), since


async def send_digest(context: CitebotContext) -> None:
    """JobQueue: one chat's daily digest, if its articles hold new stories (else nothing is sent)."""
    s, chat_id = context.citebot, context.job.chat_id
    lock = s.database.try_lock(f"citebot:digest:{chat_id}") if s.database is not None else contextlib.nullcontext(True)
    with lock as mine:
        if not mine:
            return  # another replica is sending it
        found = await asyncio.to_thread(_digest_now, s, chat_id)
        if found is None:
            return
        told, since = found
        if not told:
            log.info("Digest for %s: no new stories since %s", chat_id, since)
            return
        await context.bot.send_message(chat_id, render_digest(told, say_iso(since.isoformat())))
        docs = [a.doc_id for story in told for a in story.articles]
        await asyncio.to_thread(s.digests.sent, chat_id, datetime.now(timezone.utc), docs)


async def prune_history(context: CitebotContext) -> None:
    """JobQueue: forget answers after CITEBOT_HISTORY_DAYS, questions and votes after CITEBOT_LOG_DAYS."""
    await asyncio.to_thread(context.citebot.history.prune)


async def error_handler(update: object, context: CitebotContext) -> None:
    """Log the traceback; tell the user only that something went wrong (or that the database is away)."""
    apology = APOLOGY
    if isinstance(context.error, DatabaseError):
        # Not a bug: the database (CITEBOT_DATABASE_URL) cannot be reached; its sentence says where.
        log.warning("Could not answer: %s", context.error)
        apology = DATABASE_AWAY
    else:
        log.error("Error while handling an update", exc_info=context.error)
    if isinstance(update, Update) and update.callback_query is not None:
        try:  # a button press must never leave the user's spinner running
            await update.callback_query.answer(apology, show_alert=True)
        except Exception:  # already answered, or too old
            log.info("Could not answer the callback query", exc_info=True)
        return
    if isinstance(update, Update) and update.effective_message is not None:
        try:
            await update.effective_message.reply_text(apology)
        except Exception:  # the apology itself failed; the log already has the cause
            log.warning("Could not send the apology", exc_info=True)
