"""Lexical tokens for BM25 and excerpt scoring: lower-cased words, no stop words, Snowball stems."""
from __future__ import annotations

import re
import threading

import Stemmer
from bm25s.stopwords import STOPWORDS_EN_PLUS

# Question words and auxiliaries carry no topic; "how many" must not match every "many".
STOPWORDS = frozenset(STOPWORDS_EN_PLUS) | {"many", "much", "also", "would", "could", "said", "says"}
_WORD = re.compile(r"\w+(?:['’]\w+)*")
_local = threading.local()  # PyStemmer objects are not safe to share between threads


def _stemmer() -> Stemmer.Stemmer:
    stemmer = getattr(_local, "stemmer", None)
    if stemmer is None:
        stemmer = _local.stemmer = Stemmer.Stemmer("english")
    return stemmer


def words(text: str) -> list[str]:
    """The words of text as written (case kept, apostrophes inside words kept)."""
    return _WORD.findall(text)


def tokenize(text: str) -> list[str]:
    """Stemmed content words of text, in order (repeats kept: BM25 counts them)."""
    found = [w.replace("’", "'") for w in words(text.casefold())]
    found = [w.removesuffix("'s") for w in found if w not in STOPWORDS]
    return _stemmer().stemWords([w for w in found if w and w not in STOPWORDS])
