"""Follow-up questions: a reply to an earlier answer, read with that answer's question as context.

    previous = Turn("How many battlegroups did NATO agree to?", doc_ids=("a1b2",))
    followup_query("And where will they go?", previous)  ->  FollowUp(kind="leaning", query=...)

A follow-up that leans on the earlier question (a fragment, "and ...", "what about ...", a pronoun
for the story's subject) is searched with the earlier question's content words added; one that
stands on its own is searched as it is, and only if that finds nothing is the context tried.
"more" / "tell me more" asks for the next citations of the earlier answer.
bench/followups.py measures the choices (docs/quality.md, "Follow-up questions").
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..search.tokenize import STOPWORDS, tokenize, words

MORE_REQUESTS = re.compile(
    r"^\s*(?:(?:please\s+)?(?:tell|show|give)\s+me\s+more|more(?:\s+please)?|anything\s+else|what\s+else|"
    r"go\s+on|continue|keep\s+going|next)\s*[?.!]*\s*$", re.IGNORECASE)
LEANING_START = re.compile(
    r"^\s*(?:and|but|so|also|then|what\s+about|how\s+about|and\s+what\s+about|what\s+of|same\s+for)\b", re.IGNORECASE)
# Words that point back at the earlier answer's subject.
BACK_REFERENCES = frozenset(
    "it its it's they them their theirs he him his she her hers this that these those there".split())
BACK_PHRASE = re.compile(
    r"\bthe\s+(?:company|firm|minister|government|film|band|club|team|player|country|deal|report|bank|group|"
    r"album|show|singer|actor|chancellor|chief|boss|plan|bill|match|game|star)\b", re.IGNORECASE)
SHORT = 3  # a follow-up with at most this many content words is a fragment of the conversation


@dataclass(frozen=True)
class Turn:
    """The earlier exchange a follow-up replies to."""

    question: str
    doc_ids: tuple[str, ...] = field(default=())  # the articles its answer cited, best first


@dataclass(frozen=True)
class FollowUp:
    kind: str  # "more", "leaning" (needs the context) or "standalone"
    query: str  # what to search: the follow-up, with the context's words when it leans on it


def content_words(text: str) -> list[str]:
    return [w for w in words(text) if w.casefold() not in STOPWORDS]


def leans_on_context(question: str) -> bool:
    """Whether a follow-up needs the earlier question to be understood."""
    found = words(question.casefold())
    if LEANING_START.match(question) or BACK_PHRASE.search(question):
        return True
    if any(w in BACK_REFERENCES for w in found):
        return True
    return len(tokenize(question)) <= SHORT


def with_context(question: str, previous: Turn) -> str:
    """The follow-up followed by the earlier question's content words it does not already hold."""
    have = set(tokenize(question))
    extra = []
    for word in content_words(previous.question):
        stems = tokenize(word)
        if stems and not set(stems) <= have:
            extra.append(word)
            have.update(stems)
    return f"{question.strip()} {' '.join(extra)}".strip()


def followup_query(question: str, previous: Turn) -> FollowUp:
    if MORE_REQUESTS.match(question):
        return FollowUp("more", previous.question)
    if leans_on_context(question):
        return FollowUp("leaning", with_context(question, previous))
    return FollowUp("standalone", question)


STRATEGIES = ("none", "expand", "articles", "both")


def answer_followup(engine, question: str, previous: Turn, k: int = 5, strategy: str = "expand", **ask):
    """(Answer, FollowUp) for a reply to an earlier answer. strategy, for what leans on the context:
    "expand" searches with the earlier question's words added; "articles" searches the earlier
    cited articles first (then everything); "both" does both; "none" ignores the context (the
    baseline). A standalone follow-up is asked as it is and, if that finds nothing, with the context."""
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown follow-up strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}")
    follow = followup_query(question, previous)
    if strategy == "none" or follow.kind == "more":
        return engine.ask(question if strategy == "none" else follow.query, k=k, **ask), follow
    if follow.kind == "standalone":
        answer = engine.ask(question, k=k, **ask)
        if answer.abstained:
            wider = engine.ask(with_context(question, previous), k=k, **ask)
            if not wider.abstained:
                return wider, FollowUp("leaning", with_context(question, previous))
        return answer, follow
    query = follow.query if strategy in ("expand", "both") else question
    if strategy in ("articles", "both") and previous.doc_ids:
        within = engine.ask(query, k=k, within_docs=previous.doc_ids, **ask)
        if not within.abstained:
            return within, follow
    return engine.ask(query, k=k, **ask), follow


__all__ = ["answer_followup", "FollowUp", "Turn", "followup_query", "leans_on_context", "with_context"]
