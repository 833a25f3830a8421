"""Console mode: the bot in a terminal, for `make run` without a Telegram token: the same answer
path and the same conversation (bot/conversation.py) as a private chat with the bot."""
from __future__ import annotations

import shutil
import sys
import textwrap

from index.read.answer import Answer
from index.engine import Engine
from index.errors import QuestionError

from .config import BotConfig
from .conversation import ALL_SHOWN, answer_turn, open_history, remember_turn
from .render import abstain_text

BOLD, PLAIN = "\x1b[1m", "\x1b[0m"


def _width() -> int:
    """The terminal's width (88 when it is not a terminal), kept between 40 and 120 columns."""
    return max(40, min(120, shutil.get_terminal_size((88, 24)).columns))


def _wrap(text: str, lead: str) -> str:
    """A citation line wrapped for a terminal under its excerpt; words and addresses stay whole,
    and a line never starts with the " · " between two parts (held by a no-break space meanwhile)."""
    return textwrap.fill(text.replace(" · ", "\u00a0· "), width=_width(), initial_indent=lead,
                         subsequent_indent="      ", break_long_words=False, break_on_hyphens=False
                         ).replace("\u00a0", " ")


def _excerpt_text(rank: int, excerpt: str, highlight: tuple[int, int] | None, bold: bool) -> str:
    """The numbered excerpt wrapped for a terminal; with bold, the answer the reader marked in bold."""
    words = excerpt.split()
    prefix, indent = f"[{rank}] ", "    "
    wrapped = textwrap.fill(" ".join(words), width=_width(), initial_indent=prefix, subsequent_indent=indent,
                            break_long_words=False, break_on_hyphens=False)
    if not (bold and highlight):
        return wrapped
    a, b = highlight
    marked, pos = [], 0
    for word in words:
        at = excerpt.index(word, pos)
        pos = at + len(word)
        marked.append(at < b and pos > a)
    # Wrapped first, bolded after: escape codes must not count towards the width.
    out, i = [], 0
    for n, line in enumerate(wrapped.split("\n")):
        lead = prefix if n == 0 else indent
        tokens = line[len(lead):].split(" ")
        styled = []
        for token in tokens:
            styled.append(f"{BOLD}{token}{PLAIN}" if marked[i] else token)
            i += 1
        out.append(lead + " ".join(styled))
    return "\n".join(out)


def render_text(answer: Answer, bold: bool = False, start: int = 0, count: int | None = None,
                searched: str = "") -> str:
    """An answer as plain text: numbered excerpts (citations [start, start+count), all by default),
    each followed by its citation; searched (what a follow-up was searched as) closes it.

    bold=True marks the answer the reading model found with terminal bold (for a terminal only)."""
    tail = [searched] if searched else []
    if answer.abstained:
        return "\n\n".join([abstain_text(answer)] + tail)
    blocks = [answer.note] if answer.note and start == 0 else []
    for c in answer.citations[start : None if count is None else start + count]:
        excerpt = _excerpt_text(c.rank, c.excerpt, c.highlight, bold)
        # With no source, date or link, the file (relative to the corpus folder) says where it is from.
        where = (c.source, c.published, c.url) if c.source or c.published or c.url else (c.path,)
        meta = _wrap(" · ".join(x for x in (c.title, *where) if x), "    — ")
        also = "".join("\n" + _wrap(" · ".join(x for x in (r.title, r.source, r.url) if x), "    also in: ")
                       for r in c.also_in)
        blocks.append(f"{excerpt}\n{meta}{also}")
    return "\n\n".join(blocks + tail)


def run_console(engine: Engine, config: BotConfig | None = None, input_fn=input, print_fn=print) -> None:
    """Read questions until EOF or 'quit' and answer each as the bot answers a private chat: the
    answer before is the next line's context unless the line is a new question, "more" shows its
    next citations, and every question is logged for `citebot report`."""
    config = config or BotConfig()
    if input_fn is input:
        try:
            import readline  # noqa: F401  (line editing and history for input(), where the platform has it)
        except ImportError:
            pass
    stats = engine.stats()
    engine.embedder.queries.warm()  # load the model now, not in the middle of the first answer
    print_fn(
        f"citebot console: {stats['documents']} articles, {stats['chunks']} passages. "
        "Ask a question (Ctrl-D or 'quit' to leave)."
    )
    history = open_history(engine, config)
    previous = None  # the answer before: in a terminal, every line replies to it
    try:
        while True:
            try:
                line = input_fn("? ").strip()
            except (EOFError, KeyboardInterrupt):
                print_fn("")
                return
            if line.lower() in {"quit", "exit", ":q"}:
                return
            if not line:
                continue
            try:
                turn = answer_turn(engine, line, previous, config.max_citations)
            except QuestionError as exc:
                print_fn(str(exc))
                continue
            if turn.exhausted:
                print_fn(ALL_SHOWN)
                continue
            print_fn(render_text(turn.answer, bold=sys.stdout.isatty(), start=turn.start,
                                 count=config.first_citations, searched=turn.searched_note))
            previous = remember_turn(history, turn, config.first_citations)
            history.log(line, "console", turn.answer.abstained)
    finally:
        history.close()
