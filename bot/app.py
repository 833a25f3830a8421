"""The Application, built in one place: handlers, rate limiting, commands menu, polling or webhook."""
from __future__ import annotations

import asyncio
import logging
import secrets
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlparse

from telegram import BotCommand, BotCommandScopeAllGroupChats, BotCommandScopeChat, LinkPreviewOptions, Update
from telegram.constants import ParseMode
from telegram.error import TelegramError
from telegram.ext import (
    AIORateLimiter,
    Application,
    CallbackQueryHandler,
    ChatMemberHandler,
    CommandHandler,
    ContextTypes,
    Defaults,
    InlineQueryHandler,
    MessageHandler,
    filters,
)

from index.engine import Engine
from index.errors import IndexUnavailable
from index.news.newsdesk import Newsdesk

from . import handlers
from .config import BotConfig
from .conversation import open_history
from .digests import open_digests
from .follows import open_follows
from .history import MORE, VOTE
from .observe import Metrics, ObserveServer
from .render import describe_coverage
from .ratelimit import make_limiter

log = logging.getLogger(__name__)
REFRESH_FIRST_S = 30  # seconds after start of the first scheduled feed refresh

COMMANDS = [
    BotCommand("ask", "Ask a question about the news articles"),
    BotCommand("help", "What I know and how to ask"),
    BotCommand("digest", "The day's main stories every day: /digest 07:30 [Europe/Berlin] or off"),
    BotCommand("follow", "Get new articles about a topic: /follow TOPIC"),
    BotCommand("following", "The topics you follow"),
    BotCommand("unfollow", "Stop following a topic: /unfollow N"),
]
ADMIN_COMMANDS = COMMANDS + [
    BotCommand("reindex", "Rebuild the index from the corpus (admins)"),
    BotCommand("stats", "Index size, age and usage (admins)"),
    BotCommand("feeds", "The feeds I fetch, and how each last went (admins)"),
    BotCommand("addfeed", "Add an RSS or Atom feed: /addfeed URL (admins)"),
    BotCommand("removefeed", "Stop fetching a feed: /removefeed URL (admins)"),
    BotCommand("add", "Add one article page: /add URL (admins)"),
    BotCommand("refresh", "Fetch every feed now (admins)"),
]


GROUP_COMMANDS = [BotCommand("ask", "Ask a question about the news articles")]


async def start_up(app: Application) -> None:
    """After the bot has met Telegram: the health and metrics server (if asked for), the commands
    menu and the profile."""
    state = handlers.app_state(app)
    if state.config.metrics_port and state.metrics is not None:
        state.observer = ObserveServer(state.config.listen, state.config.metrics_port, state.engine, state.database,
                                       state.metrics).start()
    try:
        await register_commands(app)
    except TelegramError as exc:
        # The menu and profile are niceties: a bot that cannot set them just now still answers.
        log.warning("Could not set the commands menu and profile (%s); the next start tries again", exc)


async def register_commands(app: Application) -> None:
    """Show the commands in Telegram's menu (groups get /ask alone); admins also see theirs (where
    they have a chat with the bot); and say in the bot's profile what it knows."""
    await app.bot.set_my_commands(COMMANDS)
    await app.bot.set_my_commands(GROUP_COMMANDS, scope=BotCommandScopeAllGroupChats())
    await describe_bot(app)
    for admin in handlers.app_state(app).config.admin_ids:
        try:
            await app.bot.set_my_commands(ADMIN_COMMANDS, scope=BotCommandScopeChat(admin))
        except TelegramError as exc:
            log.info("No admin menu for %s yet (%s); it appears once they message the bot", admin, exc)


async def describe_bot(app: Application) -> None:
    """setMyDescription / setMyShortDescription from the index: what the empty chat and the
    profile show before anyone asks. A failure here costs the bot nothing else."""
    engine = handlers.app_state(app).engine
    try:
        known = describe_coverage(await asyncio.to_thread(engine.coverage))
    except IndexUnavailable:
        known = "My article index is not built yet."
    description = (f"{known} Ask me a question about the news and I answer with cited excerpts (title, "
                   "source, date, link), or say plainly that my articles do not hold the answer.")
    short = f"News answers with cited excerpts. {known}"
    try:
        await app.bot.set_my_description(description[:512])
        await app.bot.set_my_short_description(short[:120])
    except TelegramError as exc:
        log.info("Could not set the bot's description: %s", exc)


async def close_state(app: Application) -> None:
    state = handlers.app_state(app)
    state.executor.shutdown(wait=False, cancel_futures=True)
    if state.observer is not None:
        await asyncio.to_thread(state.observer.stop)
        state.observer = None
    if state.follows is not None:
        state.follows.close()
    state.history.close()  # the database's pool is the process's (the engine's too): it goes with the process


def build_application(config: BotConfig, engine: Engine) -> Application:
    """The bot's Application with every handler registered; start it with polling or a webhook."""
    app = (
        Application.builder()
        .token(config.token)
        .base_url(config.api_url)
        .base_file_url(config.file_url)
        # Replies quote the asking message, so answers stay attached to questions in busy chats.
        # An answer still arrives if the question was deleted meanwhile.
        .defaults(Defaults(parse_mode=ParseMode.HTML, link_preview_options=LinkPreviewOptions(is_disabled=True),
                           do_quote=True, allow_sending_without_reply=True))
        .rate_limiter(AIORateLimiter(overall_max_rate=config.flood_rate, max_retries=3))
        .concurrent_updates(64)
        .post_init(start_up)
        .post_shutdown(close_state)
        .context_types(ContextTypes(context=handlers.CitebotContext))
        .build()
    )
    # CITEBOT_DATABASE_URL: the index, answers, votes, limits and feeds in one database that every replica
    # shares, through the process's one pool (connected, migrated if behind, or refused with one sentence,
    # here before anything starts).
    database = engine.database
    app.bot_data[handlers.STATE_KEY] = handlers.BotState(
        engine=engine,
        config=config,
        # repair: a damaged bot.sqlite is set aside rather than keep the bot down
        history=open_history(engine, config, database, repair=True),
        limiter=make_limiter("questions", config.rate_limit, config.rate_window, database),
        inline_limiter=make_limiter("inline", 3 * config.rate_limit, config.rate_window, database),
        more_limiter=make_limiter("more", config.rate_limit, config.rate_window, database),
        executor=ThreadPoolExecutor(config.workers, thread_name_prefix="engine"),
        desk=Newsdesk(engine, database=database, merge="background"),
        database=database,
        metrics=Metrics(engine) if config.metrics_port else None,
        digests=open_digests(engine.settings.data_dir, database),
        follows=open_follows(engine.settings.data_dir, database),
    )
    new_text = filters.UpdateType.MESSAGE & filters.TEXT & ~filters.COMMAND
    app.add_handler(CommandHandler(["start", "help"], handlers.start, filters.UpdateType.MESSAGE))
    app.add_handler(CommandHandler("ask", handlers.ask_command, filters.UpdateType.MESSAGE))
    app.add_handler(CommandHandler("reindex", handlers.reindex, filters.UpdateType.MESSAGE))
    app.add_handler(CommandHandler("stats", handlers.stats, filters.UpdateType.MESSAGE))
    app.add_handler(CommandHandler("feeds", handlers.feeds, filters.UpdateType.MESSAGE))
    app.add_handler(CommandHandler("addfeed", handlers.addfeed, filters.UpdateType.MESSAGE))
    app.add_handler(CommandHandler("removefeed", handlers.removefeed, filters.UpdateType.MESSAGE))
    app.add_handler(CommandHandler("add", handlers.add_page, filters.UpdateType.MESSAGE))
    app.add_handler(CommandHandler("refresh", handlers.refresh, filters.UpdateType.MESSAGE))
    app.add_handler(CommandHandler("digest", handlers.digest, filters.UpdateType.MESSAGE))
    app.add_handler(CommandHandler("follow", handlers.follow, filters.UpdateType.MESSAGE))
    app.add_handler(CommandHandler("following", handlers.following, filters.UpdateType.MESSAGE))
    app.add_handler(CommandHandler("unfollow", handlers.unfollow, filters.UpdateType.MESSAGE))
    app.add_handler(MessageHandler(filters.ChatType.PRIVATE & new_text, handlers.private_text))
    app.add_handler(MessageHandler(filters.ChatType.GROUPS & new_text, handlers.group_message))
    app.add_handler(MessageHandler(filters.UpdateType.CHANNEL_POST & filters.TEXT, handlers.channel_post))
    app.add_handler(MessageHandler(filters.ChatType.PRIVATE & filters.UpdateType.MESSAGE & filters.Document.ALL,
                                   handlers.document))
    app.add_handler(MessageHandler(filters.UpdateType.MESSAGE & filters.CAPTION, handlers.caption_question))
    app.add_handler(
        MessageHandler(filters.ChatType.PRIVATE & filters.UpdateType.MESSAGE & ~filters.TEXT, handlers.not_text)
    )
    app.add_handler(InlineQueryHandler(handlers.inline_query))
    app.add_handler(ChatMemberHandler(handlers.added_to_chat, ChatMemberHandler.MY_CHAT_MEMBER))
    app.add_handler(CallbackQueryHandler(handlers.more, pattern=f"^{MORE}:"))
    app.add_handler(CallbackQueryHandler(handlers.vote, pattern=f"^{VOTE}:"))
    app.add_error_handler(handlers.error_handler)
    if app.job_queue is not None:  # forget old answers and questions as the settings say, every 6 h
        app.job_queue.run_repeating(handlers.prune_history, interval=6 * 3600, first=6 * 3600, name="prune")
    if app.job_queue is not None:  # restart-proof: every chat's stored digest, at its time in its zone
        for stored in app_state_digests(app):
            handlers.schedule_digest(app.job_queue, stored)
    if config.refresh_minutes and app.job_queue is not None:
        # The first run soon after start catches up on what the feeds published during downtime.
        app.job_queue.run_repeating(handlers.scheduled_refresh, interval=config.refresh_minutes * 60,
                                    first=REFRESH_FIRST_S, name=handlers.REFRESH_JOB)
    return app


def app_state_digests(app: Application) -> list:
    """The stored digests to schedule at start (none if their store cannot be read: logged)."""
    try:
        return handlers.app_state(app).digests.all()
    except Exception as exc:  # a damaged digests.sqlite must not keep the bot from answering
        log.warning("Could not read the daily digests (%s); none is scheduled until /digest sets one again", exc)
        return []


# Only what the handlers above take: Telegram then sends nothing else (edits, reactions, polls...).
ALLOWED_UPDATES = [Update.MESSAGE, Update.CHANNEL_POST, Update.INLINE_QUERY, Update.CALLBACK_QUERY,
                   Update.MY_CHAT_MEMBER]


def webhook_options(config: BotConfig) -> dict:
    """Arguments for run_webhook/start_webhook. PTB answers 403 to a POST whose
    X-Telegram-Bot-Api-Secret-Token header differs from secret_token."""
    return dict(
        listen=config.listen,
        port=config.port,
        url_path=urlparse(config.webhook_url).path.lstrip("/"),
        webhook_url=config.webhook_url,
        secret_token=config.webhook_secret or secrets.token_urlsafe(32),
        allowed_updates=ALLOWED_UPDATES,
    )


def run(config: BotConfig, engine: Engine) -> None:
    """Serve until interrupted: a webhook when CITEBOT_WEBHOOK_URL is set, else long polling."""
    app = build_application(config, engine)
    if config.webhook_url:
        app.run_webhook(**webhook_options(config), bootstrap_retries=config.bootstrap_retries)
    else:
        app.run_polling(allowed_updates=ALLOWED_UPDATES, bootstrap_retries=config.bootstrap_retries)
