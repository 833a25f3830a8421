"""Pick the 1-3 sentences of a passage that answer the question, so the reader sees the answer first."""
from __future__ import annotations

import re

from .sentences import sentence_spans
from .tokenize import tokenize

MAX_CHARS = 350
MAX_SENTENCES = 3


def _sentence_score(text: str, weights: dict[str, float]) -> float:
    return sum(weights.get(t, 0.0) for t in set(tokenize(text)))


def _trim(text: str, start: int, end: int, weights: dict[str, float], max_chars: int) -> tuple[int, int]:
    """Cut an over-long sentence to max_chars at word boundaries, keeping the first matched word."""
    anchor = start
    for m in re.finditer(r"\w+", text[start:end]):
        if any(weights.get(token) for token in tokenize(m.group())):
            anchor = start + m.start()
            break
    begin = max(start, min(anchor - max_chars // 3, end - max_chars))
    if begin > start:
        space = text.find(" ", begin)
        begin = space + 1 if 0 <= space < anchor else begin
    stop = min(end, begin + max_chars)
    if stop < end:
        space = text.rfind(" ", begin, stop)
        stop = space if space > begin else stop
    return begin, stop


def select_excerpt(
    text: str,
    start: int,
    end: int,
    weights: dict[str, float],
    max_chars: int = MAX_CHARS,
    max_sentences: int = MAX_SENTENCES,
) -> tuple[int, int]:
    """Span of text[start:end] holding its best-matching sentence and, room permitting, its best neighbours.

    weights maps question tokens to their importance (BM25 idf); a sentence scores the summed
    weight of the question tokens it contains. The span is contiguous, so it can be cited by offsets.
    """
    spans = sentence_spans(text, start, end)
    if not spans:
        return start, start
    scores = [_sentence_score(text[s:e], weights) for s, e in spans]
    # Paragraph number of each sentence: an excerpt stays inside its best sentence's paragraph.
    para = [text.count("\n\n", start, s) for s, _ in spans]
    best = max(range(len(spans)), key=lambda i: (scores[i], -i))
    s, e = spans[best]
    if e - s > max_chars:
        return _trim(text, s, e, weights, max_chars)
    first = last = best
    while last - first + 1 < max_sentences:
        options = []
        if first > 0 and para[first - 1] == para[best]:
            options.append((scores[first - 1], 0, first - 1))
        if last + 1 < len(spans) and para[last + 1] == para[best]:
            options.append((scores[last + 1], 1, last + 1))  # after the best sentence reads more naturally
        options = [o for o in options if spans[max(o[2], last)][1] - spans[min(o[2], first)][0] <= max_chars]
        if not options:
            break
        score, _, pick = max(options)
        # Add context only if it matches the question too, or the excerpt is still very short.
        if score <= 0 and spans[last][1] - spans[first][0] >= 120:
            break
        first, last = min(first, pick), max(last, pick)
    return spans[first][0], spans[last][1]
