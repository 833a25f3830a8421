"""Training pairs that teach the reader "does this passage state the asked fact", not "is it on topic".

Three makers, all from text the training rule allows (SQuAD dev's even half, the BBC articles
listed in bbc-train.txt):
  * `without_answer_sentence`: the gold passage with the sentence that states the answer cut out.
    Same story, same names, same wording, only the fact is missing: the near miss in its purest form.
  * `swapped_question`: the question with one name or number replaced by another that the passage
    does not hold (SQuAD 2.0's commonest unanswerable kind): the passage answers a different question.
  * `news_questions`: questions made from news sentences by putting a question phrase in place of a
    number, an amount, a year or a name (cloze questions, the words left where they stand), so the
    reader sees news prose and news-style facts; the other passages of the same article are near-miss
    negatives for them.
"""
from __future__ import annotations

import random
import re
from dataclasses import dataclass
from pathlib import Path

from index.ingest.sentences import sentence_spans

_WORD = re.compile(r"\w+", re.UNICODE)
# A name: two or more capitalised words (inner "of", "de", "van" allowed), or one with an inner capital.
_NAME = re.compile(r"\b[A-Z][\w'’-]+(?:\s+(?:(?:of|de|da|van|von|al|the)\s+)?[A-Z][\w'’-]+)+")
_NUMBER = re.compile(r"(?<![\w.,])\d[\d,]*(?:\.\d+)?(?![\w,]*\d)")
_MONEY = re.compile(r"[£$€]\s?\d[\d,]*(?:\.\d+)?(?:\s?(?:bn|m|billion|million|trillion|k)\b)?")
_PERCENT = re.compile(r"\d[\d,]*(?:\.\d+)?\s?(?:%|per\s?cent\b)")
_YEAR = re.compile(r"\b(?:19|20)\d\d\b")
_COUNTED = re.compile(r"(?<![\w.,£$€])(\d[\d,]*(?:\.\d+)?|two|three|four|five|six|seven|eight|nine|ten|"
                      r"eleven|twelve|twenty|thirty|forty|fifty|hundred|thousand)\s+([a-z]{3,}s)\b")
# Sentences that are mostly quotation carry opinions, not facts worth asking about.
_QUOTE = re.compile(r"[\"“”]")
_SAID = re.compile(r",?\s*(?:he|she|they|it|[A-Z]\w+)\s+(?:said|says|added|told \w+)\.?$")


@dataclass(frozen=True)
class Generated:
    """A question made from a sentence, with where its answer sits in the article text."""

    question: str
    answer_start: int
    answer_end: int
    sentence: tuple[int, int]
    kind: str


def without_answer_sentence(text: str, span: tuple[int, int], answers: list[str]) -> str | None:
    """text with the sentence(s) holding span cut out, or None when an answer is still there."""
    a, b = span
    keep = [(s, e) for s, e in sentence_spans(text) if e <= a or s >= b]
    if len(keep) < 2:
        return None
    cut = " ".join(text[s:e] for s, e in keep)
    folded = cut.casefold()
    if any(x.strip() and x.strip().casefold() in folded for x in answers):
        return None
    return cut


def _terms(question: str) -> list[tuple[int, int, str]]:
    """Names and numbers in a question that a swap may replace: (start, end, kind)."""
    found = [(m.start(), m.end(), "number") for m in _NUMBER.finditer(question)]
    for m in _NAME.finditer(question):
        if m.start() == 0 and len(m.group().split()) < 2:
            continue  # a capitalised first word is just the sentence's start
        if not any(s < m.end() and m.start() < e for s, e, _ in found):
            found.append((m.start(), m.end(), "name"))
    return found


def term_pool(texts: list[str], limit: int = 20000) -> dict[str, list[str]]:
    """Names and numbers seen in texts, by kind: what swapped questions draw their replacements from."""
    pool: dict[str, set[str]] = {"name": set(), "number": set()}
    for text in texts:
        pool["name"].update(m.group() for m in _NAME.finditer(text) if len(m.group()) < 40 and "'" not in m.group())
        pool["number"].update(m.group() for m in _NUMBER.finditer(text))
        if len(pool["name"]) > limit and len(pool["number"]) > limit:
            break
    return {k: sorted(v) for k, v in pool.items()}


def swapped_question(question: str, passage: str, pool: dict[str, list[str]], rng: random.Random,
                     title: str = "") -> str | None:
    """The question with one name or number replaced by one the passage does not hold; None if it has none.

    Names in the article's title are left alone: swapping them makes an off-topic question, which
    the other negatives teach already."""
    terms = [t for t in _terms(question) if t[2] == "number" or question[t[0]:t[1]] not in title]
    if not terms:
        return None
    start, end, kind = rng.choice(terms)
    old = question[start:end]
    folded = passage.casefold()
    for _ in range(20):
        new = rng.choice(pool[kind])
        if new.casefold() != old.casefold() and new.casefold() not in folded:
            return question[:start] + new + question[end:]
    return None


_PERSON_BEFORE = re.compile(r"\b(?:Mr|Mrs|Ms|Dr|by|coach|manager|boss|chief|director|minister|leader|star|actor|"
                            r"actress|singer|president|chairman|executive|striker|captain|player|champion|"
                            r"winner|spokesman|spokeswoman|secretary)\s*$", re.I)
_PERSON_AFTER = re.compile(r"^\s*(?:said|says|told|added|, who\b|, the \d+-year-old)")


def _question_phrase(kind: str, counted: str = "", before: str = "") -> str:
    if kind == "year" and before.endswith((" in", " In")) or before == "In":
        return "what year"
    return {"money": "how much", "percent": "what percentage", "year": "in what year",
            "count": f"how many {counted}", "person": "who", "name": "what"}[kind]


def _candidates(sentence: str) -> list[tuple[int, int, str, str]]:
    """(start, end, kind, counted noun) of what a question could ask about in a sentence."""
    out: list[tuple[int, int, str, str]] = []

    def add(s: int, e: int, kind: str, noun: str = "") -> None:
        if not any(s < e2 and s2 < e for s2, e2, _, _ in out):
            out.append((s, e, kind, noun))

    for m in _MONEY.finditer(sentence):
        add(m.start(), m.end(), "money")
    for m in _PERCENT.finditer(sentence):
        add(m.start(), m.end(), "percent")
    for m in _COUNTED.finditer(sentence):
        add(m.start(1), m.end(2), "count", m.group(2))
    for m in _YEAR.finditer(sentence):
        add(m.start(), m.end(), "year")
    for m in _NAME.finditer(sentence):
        name = m.group()
        if m.start() == 0 or len(name.split()) not in (2, 3) or "'" in name or "’" in name:
            continue  # the sentence's first words, long names and possessives make poor questions
        person = _PERSON_BEFORE.search(sentence[: m.start()]) or _PERSON_AFTER.match(sentence[m.end():])
        add(m.start(), m.end(), "person" if person else "name")
    return out


def news_questions(text: str, rng: random.Random, per_article: int = 1) -> list[Generated]:
    """Cloze questions from an article's sentences: a question phrase stands where the fact stood.

    "Profits rose 8% to £1.2bn in 2004." -> "Profits rose 8% to how much in 2004?" (answer "£1.2bn").
    Sentences of 8-45 words, not quotations; at most 25 words of the sentence around the answer
    are kept, so the question is not the sentence whole."""
    spans = sentence_spans(text)
    choices = []
    for s, e in spans[1:]:  # the first sentence is the headline
        sentence = text[s:e]
        words = len(sentence.split())
        if not 8 <= words <= 45 or _QUOTE.search(sentence):
            continue
        for a, b, kind, noun in _candidates(sentence):
            choices.append((s, e, a, b, kind, noun))
    rng.shuffle(choices)
    out, used = [], set()
    for s, e, a, b, kind, noun in choices:
        if (s, e) in used:
            continue
        sentence = text[s:e]
        before, after = sentence[:a].strip(), sentence[b:].strip().rstrip(".!?").strip()
        after = _SAID.sub("", after).strip(" ,")
        before = " ".join(before.split()[-12:])
        after = " ".join(re.split(r"[,;:(]", after)[0].split()[:12]) if len(after.split()) > 12 else after
        phrase = _question_phrase(kind, noun, before)
        if not before:
            phrase = phrase[0].upper() + phrase[1:]
        question = " ".join(x for x in (before, phrase, after) if x).rstrip(" ,;:") + "?"
        if len(question.split()) < 5:
            continue
        used.add((s, e))
        out.append(Generated(question, s + a, s + b, (s, e), kind))
        if len(out) >= per_article:
            break
    return out


def read_bbc(folder: Path, listing: Path) -> list[tuple[str, str, str]]:
    """(path, title, text) of the BBC articles listed in listing (bbc-train.txt), in its order."""
    out = []
    for line in listing.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        raw = (folder / line).read_bytes().decode("utf-8", errors="replace")
        title, _, body = raw.strip().partition("\n")
        body = re.sub(r"\n\s*\n", "\n\n", body.strip())
        out.append((line, title.strip(), body))
    return out
