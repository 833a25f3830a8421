"""Checking a question before the engine sees it: one clear sentence for input it cannot use."""
from __future__ import annotations

import re

from ..ingest.cleaning import normalize_text
from ..errors import QuestionError  # noqa: F401  (str(error) is a short message for the person who asked)

MAX_QUESTION_CHARS = 1000


def clean_question(text: str | None) -> str:
    """The question normalised to one line, or QuestionError if it is empty or too long."""
    question = re.sub(r"\s+", " ", normalize_text(text or "")).strip()
    if not re.search(r"\w", question):
        raise QuestionError("Please ask a question in words; the message has none.")
    if len(question) > MAX_QUESTION_CHARS:
        raise QuestionError(
            f"Please keep questions under {MAX_QUESTION_CHARS} characters (this one has {len(question)})."
        )
    return question
