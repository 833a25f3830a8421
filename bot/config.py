"""Bot configuration from the environment, validated at start with one clear message per problem."""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

from index.config import env_flag, env_int
from index.errors import ConfigurationError

DEFAULT_API_URL = "https://api.telegram.org/bot"
# Every CITEBOT_* setting of the bot (read by BotConfig.from_env; `citebot serve --help` lists them).
BOT_SETTINGS = frozenset({
    "CITEBOT_ADMIN_IDS", "CITEBOT_TELEGRAM_API_URL", "CITEBOT_WEBHOOK_URL", "CITEBOT_WEBHOOK_SECRET",
    "CITEBOT_LISTEN", "CITEBOT_RATE_LIMIT", "CITEBOT_RATE_WINDOW", "CITEBOT_WORKERS", "CITEBOT_BOOTSTRAP_RETRIES",
    "CITEBOT_REFRESH_MINUTES", "CITEBOT_HISTORY_DAYS", "CITEBOT_LOG_QUESTIONS", "CITEBOT_LOG_DAYS",
    "CITEBOT_BACKLOG_MINUTES", "CITEBOT_METRICS_PORT",
})


class ConfigError(ConfigurationError):
    """A setting is missing or malformed; the message names the variable and what to put there."""


def parse_admin_ids(raw: str) -> frozenset[int]:
    """Numeric Telegram user ids separated by commas or spaces (usernames change hands; ids do not)."""
    ids = set()
    for part in raw.replace(",", " ").split():
        if not part.lstrip("-").isdigit():
            raise ConfigError(
                f"CITEBOT_ADMIN_IDS holds numeric Telegram user ids separated by commas; {part!r} is not one "
                "(ask @userinfobot for yours)."
            )
        ids.add(int(part))
    return frozenset(ids)


@dataclass(frozen=True)
class BotConfig:
    """Everything the Telegram side needs; the engine has its own Settings."""

    token: str = ""
    admin_ids: frozenset[int] = field(default_factory=frozenset)
    api_url: str = DEFAULT_API_URL
    webhook_url: str = ""
    webhook_secret: str = ""
    listen: str = "0.0.0.0"
    port: int = 8443
    rate_limit: int = 10  # questions per user ...
    rate_window: int = 60  # ... per this many seconds
    workers: int = 4  # engine calls running at once
    first_citations: int = 3
    max_citations: int = 10
    # Tries to reach the Bot API at start before giving up (PTB backs off 1 s, x1.5, up to 30 s):
    # 6 is about 20 s, enough for a network that comes up with the bot.
    bootstrap_retries: int = 6
    # Messages a second across all chats: Telegram's broadcast limit. 0 turns the limiter's overall cap off
    # (bench/bot_throughput.py uses it to measure the bot's own capacity behind that limit).
    flood_rate: float = 30.0
    # Fetch every feed and update the index this often (JobQueue); 0 turns the schedule off.
    refresh_minutes: int = 30
    history_days: int = 7  # answers remembered for "More", follow-ups and votes
    log_days: int = 30  # the question log and votes, for /stats and `citebot report`
    log_questions: bool = True  # False: the log keeps no question text
    backlog_minutes: int = 10  # questions older than this when they arrive (after downtime) are dropped; 0 = keep all
    metrics_port: int = 0  # GET /healthz and /metrics on CITEBOT_LISTEN:this port (bot/observe.py); 0 = none

    @property
    def file_url(self) -> str:
        """Where uploaded files are downloaded: Telegram's /file/bot next to the API's /bot."""
        if self.api_url.rstrip("/").endswith("/bot"):
            return self.api_url.rstrip("/")[: -len("/bot")] + "/file/bot"
        return self.api_url.rstrip("/") + "/file/bot"

    @classmethod
    def from_env(cls) -> "BotConfig":
        token = os.environ.get("TELEGRAM_BOT_TOKEN", "").strip()
        if token and ":" not in token:
            raise ConfigError("TELEGRAM_BOT_TOKEN does not look like a token from @BotFather (123456:ABC-...).")
        webhook_url = os.environ.get("CITEBOT_WEBHOOK_URL", "").strip()
        if webhook_url and not webhook_url.startswith("https://"):
            raise ConfigError("CITEBOT_WEBHOOK_URL must be an https:// address that Telegram can reach.")
        secret = os.environ.get("CITEBOT_WEBHOOK_SECRET", "").strip()
        if secret and not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", secret):
            raise ConfigError("CITEBOT_WEBHOOK_SECRET may hold only letters, digits, _ and - (1-256 characters).")
        return cls(
            token=token,
            admin_ids=parse_admin_ids(os.environ.get("CITEBOT_ADMIN_IDS", "")),
            api_url=os.environ.get("CITEBOT_TELEGRAM_API_URL", "").strip() or DEFAULT_API_URL,
            webhook_url=webhook_url,
            webhook_secret=secret,
            listen=os.environ.get("CITEBOT_LISTEN", "").strip() or "0.0.0.0",
            port=env_int("PORT", 8443, 1),
            rate_limit=env_int("CITEBOT_RATE_LIMIT", 10, 1),
            rate_window=env_int("CITEBOT_RATE_WINDOW", 60, 1),
            workers=env_int("CITEBOT_WORKERS", 4, 1),
            bootstrap_retries=env_int("CITEBOT_BOOTSTRAP_RETRIES", 6, 0),
            refresh_minutes=env_int("CITEBOT_REFRESH_MINUTES", 30, 0),
            history_days=env_int("CITEBOT_HISTORY_DAYS", 7, 1),
            log_days=env_int("CITEBOT_LOG_DAYS", 30, 1),
            log_questions=env_flag("CITEBOT_LOG_QUESTIONS", True),
            backlog_minutes=env_int("CITEBOT_BACKLOG_MINUTES", 10, 0),
            metrics_port=env_int("CITEBOT_METRICS_PORT", 0, 0),
        )
