"""Paragraph language identification, so that a foreign line is never shown as an English answer."""
from __future__ import annotations

import threading
from collections import Counter
from typing import Iterable

# Short lines (headings, bylines) are too short to identify reliably; treat them as unknown.
MIN_CHARS = 20
MIN_CONFIDENCE = 0.90

_lock = threading.Lock()
_identifier = None


def _get_identifier():
    global _identifier
    with _lock:
        if _identifier is None:
            from py3langid.langid import MODEL_FILE, LanguageIdentifier

            _identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    return _identifier


def detect_language(text: str) -> str:
    """ISO 639-1 code of the text's language, or '' when it is too short or unclear."""
    if len(text) < MIN_CHARS:
        return ""
    language, confidence = _get_identifier().classify(text)
    return language if confidence >= MIN_CONFIDENCE else ""


# A question (CITEBOT_MULTILINGUAL on): identified however short (a Chinese question is often under
# 20 characters) and from this confidence: the lowest at which no English question of SQuAD dev's
# even half is taken for another language (0.65 took one, "How are ergänzungsschulen funded?").
QUESTION_MIN_CONFIDENCE = 0.7


def question_language(text: str) -> str:
    """ISO 639-1 code of a question's language, or '' when unclear: as detect_language, but for
    short text too and at QUESTION_MIN_CONFIDENCE (used when multilingual search is on). A question
    written mostly in letters beyond the Latin script's (Chinese, Arabic, Devanagari...) gets the
    identifier's best guess however unsure it is: it is not in a Latin-script language."""
    letters = [c for c in text if c.isalpha()]
    if len(letters) < 2:
        return ""
    language, confidence = _get_identifier().classify(text)
    beyond_latin = sum(ord(c) > 0x24F for c in letters) * 2 > len(letters)
    if confidence >= QUESTION_MIN_CONFIDENCE or beyond_latin:
        return language
    # Only Spanish (of the languages people ask in) opens a question with "¿": short Spanish
    # questions are otherwise too unsure (178 of XQuAD's 181 unidentified Spanish ones have it).
    return "es" if "¿" in text or "¡" in text else ""


def main_language(paragraphs: Iterable[tuple[str, int]]) -> str:
    """The language holding the most characters among (language, length) pairs; 'en' if none."""
    weight: Counter[str] = Counter()
    for language, length in paragraphs:
        if language:
            weight[language] += length
    return weight.most_common(1)[0][0] if weight else "en"
