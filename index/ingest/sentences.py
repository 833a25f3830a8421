"""Sentence boundaries for news prose, as character spans (no model, no downloads)."""
from __future__ import annotations

import re

# Words that end in a full stop without ending the sentence.
_ABBREVIATIONS = {
    "mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "mt", "gen", "col", "lt", "sgt", "capt", "cmdr",
    "gov", "sen", "rep", "rev", "hon", "pres", "supt", "insp", "det", "no", "nos", "vs", "etc", "inc",
    "ltd", "co", "corp", "bros", "dept", "univ", "approx", "est", "fig", "vol", "ed", "al", "jan", "feb",
    "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec", "e.g", "i.e", "u.s", "u.k",
    "u.n", "a.m", "p.m",
}
# A candidate end: terminal punctuation, optional closing quotes/brackets, then whitespace.
_END = re.compile(r"""[.!?…]+["'”’»)\]]*(?=\s+)""")
_NEXT_STARTS_SENTENCE = re.compile(r"""\s+["'“‘«(\[]*[A-Z0-9À-ÖØ-Þ]""")
_PARAGRAPH = re.compile(r"(?:(?!\n\s*\n)[\s\S])+")  # a run of text without a blank line
_LAST_WORD = re.compile(r"""([\w.]+)\.["'”’»)\]]*$""")


def _is_abbreviation(text: str, end: int) -> bool:
    # Look only at the word before the stop: searching from the start would make splitting quadratic.
    m = _LAST_WORD.search(text, max(0, end - 64), end)
    if not m:
        return False
    word = m.group(1).lower()
    # Initials ("J. K. Rowling") and dotted acronyms ("U.S.") do not end sentences.
    return word in _ABBREVIATIONS or len(word) == 1 or bool(re.fullmatch(r"(?:\w\.)+\w?", word))


def sentence_spans(text: str, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
    """(start, end) spans of the sentences in text[start:end], trimmed of surrounding space.

    A blank line always ends a sentence, so a heading without a full stop stays on its own.
    """
    end = len(text) if end is None else end
    spans: list[tuple[int, int]] = []
    for m in _PARAGRAPH.finditer(text, start, end):
        spans.extend(_paragraph_sentences(text, m.start(), m.end()))
    return spans


def _paragraph_sentences(text: str, start: int, end: int) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    begin = start
    for m in _END.finditer(text, start, end):
        stop = m.end()
        if not _NEXT_STARTS_SENTENCE.match(text, stop, end):
            continue
        if text[m.start()] == "." and _is_abbreviation(text, m.start() + 1):
            continue
        spans.append((begin, stop))
        begin = stop
    spans.append((begin, end))
    trimmed = []
    for s, e in spans:
        while s < e and text[s].isspace():
            s += 1
        while e > s and text[e - 1].isspace():
            e -= 1
        if e > s:
            trimmed.append((s, e))
    return trimmed
