"""Pick the sentences of a passage that answer the question, so the reader sees the answer first.

With the reading model (index/read/reader.py): the run of sentences holding most of its answer-start
probability (excerpt_by_mass). Without it: the best 1-3 sentences by the question's idf share +
sentence cosine (select_excerpt), whose score also re-ranks candidate chunks (index/read/rerank.py).
Chosen with bench/reader_sweep.py and bench/excerpt_sweep.py (bench/README.md).
"""
from __future__ import annotations

import math
import re
from typing import Collection, Mapping, Sequence

from ..search.tokenize import tokenize

MAX_CHARS = 350
# With the reading model: the run of whole sentences holding most of the probability that the answer
# starts there, within 500 characters (about 80 words; the answer shown in bold). bench/reader_sweep.py
# chose the shape: 350 characters lost 1.4 points of recall@1 on SQuAD and 5.9 on news (bench/README.md).
READER_MAX_CHARS = 500
# Extra weight of a run's first sentence's answer-start probability, and the probability below
# which leading sentences are dropped from the chosen run (bench/reader_sweep.py).
LEAD_WEIGHT = 0.0
TRIM_BELOW = 0.01
HEADING_WORDS = 12  # an unfinished "sentence" shorter than this is a heading, never an excerpt alone
MAX_SENTENCES = 3
LENGTH_CREDIT = 0.001  # per extra sentence: of two equal excerpts, show the fuller one
_FINISHED = re.compile(r"""[.!?…]["'”’»)\]]*$""")


def lexical_share(tokens: Collection[str], weights: Mapping[str, float], total: float) -> float:
    """Share (0..1) of the question's idf weight present among tokens.

    fsum is exact whatever the order: a set's order changes between processes, and a plain sum
    could then break a tie between two excerpts differently from one run to the next."""
    return math.fsum(weights.get(t, 0.0) for t in tokens) / total if total > 0 else 0.0


def sentence_words(sentence: str, weights: Mapping[str, float]) -> frozenset[str]:
    """The question's weighted tokens that sentence holds."""
    return frozenset(tokenize(sentence)).intersection(weights)


def _trim(text: str, start: int, end: int, weights: Mapping[str, float], max_chars: int) -> tuple[int, int]:
    """Cut an over-long sentence to max_chars at word boundaries, keeping the first matched word."""
    anchor = start
    for m in re.finditer(r"\w+", text[start:end]):
        if any(weights.get(token) for token in tokenize(m.group())):
            anchor = start + m.start()
            break
    return _trim_around(text, start, end, anchor, max_chars, lead=max_chars // 3)


def _trim_around(
    text: str, start: int, end: int, anchor: int, max_chars: int, lead: int | None = None
) -> tuple[int, int]:
    """Cut [start, end) to max_chars at word boundaries, with up to lead characters (a quarter of
    max_chars unless given) before anchor."""
    lead = max_chars // 4 if lead is None else lead
    begin = max(start, min(anchor - lead, end - max_chars))
    if begin > start:
        space = text.find(" ", begin)
        begin = space + 1 if 0 <= space < anchor else begin
    stop = min(end, begin + max_chars)
    if stop < end:
        space = text.rfind(" ", begin, stop)
        stop = space if space > begin else stop
    return begin, stop


def excerpt_around(
    text: str, spans: Sequence[tuple[int, int]], answer: tuple[int, int], max_chars: int = READER_MAX_CHARS
) -> tuple[int, int]:
    """The excerpt for an answer the reader marked: from its sentence, forward while within max_chars."""
    a, b = answer
    if not spans:
        return _trim_around(text, 0, len(text), a, max_chars)
    first = max((i for i, (s, _) in enumerate(spans) if s <= a), default=0)
    last = first
    while last + 1 < len(spans) and spans[last][1] < b:
        last += 1  # an answer that runs over a sentence break
    while (
        last + 1 < len(spans)
        and spans[last + 1][1] - spans[first][0] <= max_chars
        and _can_join(text, spans[last], spans[last + 1])
    ):
        last += 1
    start, end = spans[first][0], spans[last][1]
    if end - start > max_chars:
        return _trim_around(text, start, end, a, max_chars)
    return start, end


def excerpt_by_mass(
    text: str, spans: Sequence[tuple[int, int]], starts: Sequence[tuple[int, float]], answer: tuple[int, int],
    max_chars: int = READER_MAX_CHARS,
) -> tuple[int, int]:
    """The run of sentences within max_chars holding the most of the reader's answer-start
    probability (a hedge when it hesitates between sentences); the one starting at the likelier
    sentence wins a tie. Falls back to excerpt_around when the sentences are unknown."""
    if not spans or not starts:
        return excerpt_around(text, spans, answer, max_chars)
    mass = [0.0] * len(spans)
    for offset, p in starts:
        i = max((j for j, (s, _) in enumerate(spans) if s <= offset), default=0)
        mass[i] += p
    joins = [False] + [_can_join(text, spans[i - 1], spans[i]) for i in range(1, len(spans))]
    # A heading is short and unfinished; a long unfinished piece is a run-on sentence cut to size.
    finished = [bool(_FINISHED.search(text[s:e])) or len(text[s:e].split()) >= HEADING_WORDS for s, e in spans]
    best, best_span = (False, -1.0, -1.0), None
    for first in range(len(spans)):
        last, total = first, mass[first]
        while last + 1 < len(spans) and joins[last + 1] and spans[last + 1][1] - spans[first][0] <= max_chars:
            last += 1
            total += mass[last]
        # A heading alone (no finished sentence: a live blog's "Nato agrees to strengthen eastern
        # defences") is not an answer; it wins only when the passage has nothing else.
        score = (any(finished[first : last + 1]), total + LEAD_WEIGHT * mass[first], mass[first])
        if score > best:
            best, best_span = score, (first, last)
    first, last = best_span
    while first < last and mass[first] < TRIM_BELOW:
        first += 1  # a lead-in sentence the reader all but rules out: open on the answer instead
    start, end = spans[first][0], spans[last][1]
    if end - start > max_chars:  # one over-long sentence
        a = answer[0] if start <= answer[0] < end else start
        return _trim_around(text, start, end, a, max_chars)
    return start, end


def _can_join(text: str, before: tuple[int, int], after: tuple[int, int]) -> bool:
    """Whether an excerpt may run from one sentence into the next. News puts a sentence or two in
    each paragraph, so a paragraph break may be crossed, but only between finished sentences: a
    heading or a caption never joins an excerpt."""
    if "\n\n" not in text[before[1] : after[0]]:
        return True
    return bool(_FINISHED.search(text[before[0] : before[1]]) and _FINISHED.search(text[after[0] : after[1]]))


def select_excerpt(
    text: str,
    spans: Sequence[tuple[int, int]],
    cosines: Sequence[float],
    weights: Mapping[str, float],
    sentence_tokens: Sequence[Collection[str]] | None = None,
    max_chars: int = MAX_CHARS,
    max_sentences: int = MAX_SENTENCES,
) -> tuple[tuple[int, int], float]:
    """The excerpt of text that best answers the question, as (span, score).

    Candidates are runs of 1 to max_sentences sentences within max_chars; a run
    scores the share of the question's idf weight it holds (words counted once across its
    sentences) plus the best cosine of its sentences' vectors to the question. Counting words
    across sentences finds the answer in "It was designed by..." after the sentence that names
    the barrier; a sliver of credit per sentence fills the room when scores tie.
    sentence_tokens, when given, holds each sentence's question words (sentence_words), read
    once by a caller that also needs them.
    """
    if not spans:  # never built so, but a citation must not come out empty
        return _trim(text, 0, len(text), weights, max_chars), 0.0
    tokens = sentence_tokens if sentence_tokens is not None else [
        sentence_words(text[s:e], weights) for s, e in spans]
    total = math.fsum(weights.values())
    joins = [False] + [_can_join(text, spans[i - 1], spans[i]) for i in range(1, len(spans))]
    # A heading alone (a live blog's "Nato agrees to strengthen eastern defences") is not an
    # answer: it is chosen only when the passage has no finished sentence.
    finished = [bool(_FINISHED.search(text[s:e])) or len(text[s:e].split()) >= HEADING_WORDS for s, e in spans]
    best_key, best_score, best_span = (False, float("-inf")), float("-inf"), (0, 0)
    for first in range(len(spans)):
        covered: set[str] = set()
        for last in range(first, min(first + max_sentences, len(spans))):
            start, end = spans[first][0], spans[last][1]
            if last > first and (not joins[last] or end - start > max_chars):
                break
            covered |= tokens[last]
            score = lexical_share(covered, weights, total) + max(cosines[first : last + 1])
            score += LENGTH_CREDIT * (last - first)
            key = (any(finished[first : last + 1]), score)
            if key > best_key:
                best_key, best_score, best_span = key, score, (start, end)
    start, end = best_span
    if end - start > max_chars:  # one over-long sentence
        return _trim(text, start, end, weights, max_chars), best_score
    return best_span, best_score
