"""One turn of the bot's conversation, the same in Telegram and in the console: a question, or a
follow-up to the answer before it (index/read/followup.py), answered, then remembered (bot/history.py:
DATA_DIR/bot.sqlite, or the database) so the next line can follow it up.

    turn = answer_turn(engine, "Where will they go?", previous, k=10)
    turn.searched  ->  "Where will they go? new battlegroups NATO agree deploy"
    previous = remember_turn(history, turn, first=3)
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from index.read.answer import Answer
from index.engine import Engine
from index.read.followup import Turn, answer_followup

from .config import BotConfig
from .history import History, Remembered
from .history import open_history as history_store

ALL_SHOWN = "That is all I have on this; ask another question."


@dataclass(frozen=True)
class Reply:
    """What one line gets: the answer, the first of its citations to show, and what was searched."""

    question: str  # as asked
    answer: Answer
    searched: str  # the question, or a follow-up with the earlier question's words added
    start: int = 0  # "more" continues the earlier answer after the citations it showed
    more: bool = False  # the line asked for more of the earlier answer
    leaned: bool = False  # the earlier question's words were added: say what was searched

    @property
    def exhausted(self) -> bool:
        """"more" with nothing left to show."""
        return self.more and self.start >= len(self.answer.citations)

    @property
    def searched_note(self) -> str:
        """'(searched as "...")' for a follow-up read with the earlier question's words, else ''."""
        return f'(searched as "{self.searched}")' if self.leaned else ""

    def shown(self, first: int) -> int:
        """How many of the answer's citations have been shown once this reply shows up to first more."""
        if self.answer.abstained:
            return self.start
        return self.start + min(first, len(self.answer.citations) - self.start)


def open_history(engine: Engine, config: BotConfig, database=None, repair: bool = False) -> History:
    """The bot's memory for this engine's settings (its data folder, or CITEBOT_DATABASE_URL's
    database: `database` when the caller has it open), kept as the settings say."""
    return history_store(Path(engine.settings.data_dir), database or engine.settings.database_url,
                         config.history_days, config.log_days, config.log_questions, repair=repair)


def answer_turn(engine: Engine, question: str, previous: Remembered | None, k: int, language: str = "") -> Reply:
    """Answer a line; with previous (the answer it follows), as a follow-up. Raises QuestionError."""
    if previous is None:
        return Reply(question, engine.ask(question, k=k, language=language), question)
    # The articles the earlier answer showed, best first: a follow-up may search them first.
    turn = Turn(previous.question, tuple(dict.fromkeys(c["doc_id"] for c in previous.citations[: previous.shown])))
    answer, follow = answer_followup(engine, question, turn, k=k, language=language)
    more = follow.kind == "more"
    return Reply(question, answer, follow.query, previous.shown if more else 0, more, follow.kind == "leaning")


def remember_turn(history: History, reply: Reply, first: int) -> Remembered:
    """Keep the answer (what was searched, its citations, how many are shown) for the next line."""
    cited = tuple({"doc_id": c.doc_id, "title": c.title} for c in reply.answer.citations)
    shown = reply.shown(first)
    return Remembered(history.remember(reply.searched, cited, shown), reply.searched, cited, shown)
