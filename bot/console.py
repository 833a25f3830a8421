"""Console mode: the bot's answer path in a terminal, for `make run` without a Telegram token."""
from __future__ import annotations

import shutil
import sys
import textwrap

from index.answer import Answer
from index.engine import Engine
from index.errors import QuestionError

from .render import abstain_text

BOLD, PLAIN = "\x1b[1m", "\x1b[0m"


def _width() -> int:
    """The terminal's width (88 when it is not a terminal), kept between 40 and 120 columns."""
    return max(40, min(120, shutil.get_terminal_size((88, 24)).columns))


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


def render_text(answer: Answer, bold: bool = False) -> str:
    """An answer as plain text: numbered excerpts, each followed by its citation.

    bold=True marks the answer the reading model found with terminal bold (for a terminal only)."""
    if answer.abstained:
        return abstain_text(answer)
    blocks = [answer.note] if answer.note else []
    for c in answer.citations:
        excerpt = _excerpt_text(c.rank, c.excerpt, c.highlight, bold)
        meta = " · ".join(x for x in (c.title, c.source, c.published, c.url) if x)
        also = "".join(f"\n    also in: {' · '.join(x for x in (r.title, r.source, r.url) if x)}" for r in c.also_in)
        blocks.append(f"{excerpt}\n    — {meta}{also}")
    return "\n\n".join(blocks)


def run_console(engine: Engine, k: int = 3, input_fn=input, print_fn=print) -> None:
    """Read questions until EOF or 'quit'; answer each with cited excerpts."""
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
            print_fn(render_text(engine.ask(line, k=k), bold=sys.stdout.isatty()))
        except QuestionError as exc:
            print_fn(str(exc))
