"""Console mode: the bot's answer path in a terminal, for `make run` without a Telegram token."""
from __future__ import annotations

import textwrap

from index.answer import Answer
from index.engine import Engine
from index.question import QuestionError

from .render import ABSTAIN_TEXT


def render_text(answer: Answer) -> str:
    """An answer as plain text: numbered excerpts, each followed by its citation."""
    if answer.abstained:
        return ABSTAIN_TEXT
    blocks = []
    for c in answer.citations:
        excerpt = textwrap.fill(" ".join(c.excerpt.split()), width=88, initial_indent=f"[{c.rank}] ",
                                subsequent_indent="    ")
        meta = " · ".join(x for x in (c.title, c.source, c.published, c.url) if x)
        also = "".join(f"\n    also in: {' · '.join(x for x in (r.title, r.source, r.url) if x)}" for r in c.also_in)
        blocks.append(f"{excerpt}\n    — {meta}{also}")
    return "\n\n".join(blocks)


def run_console(engine: Engine, k: int = 3, input_fn=input, print_fn=print) -> None:
    """Read questions until EOF or 'quit'; answer each with cited excerpts."""
    stats = engine.stats()
    engine.embedder.warm()  # load the model now, not in the middle of the first answer
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
            print_fn(render_text(engine.ask(line, k=k)))
        except QuestionError as exc:
            print_fn(str(exc))
