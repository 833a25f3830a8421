"""What kind of answer a question asks for, and whether a marked span is of that kind.

"How much did it cost?" wants an amount, "When did it open?" a date, "Who directed it?" a name.
A span of the wrong kind ("Ethiopia" for a time, "40%" for a reason) is no answer to show in bold,
and a passage whose best span is of the wrong kind is weaker evidence that it states the fact.
Rules, not a model: question words are few and stable, and the checks are on surface forms.
"""
from __future__ import annotations

import re

NUMBER, AMOUNT, PERCENT, DATE, NAME, ANY = "number", "amount", "percent", "date", "name", ""

_MONTHS = ("january|february|march|april|may|june|july|august|september|october|november|december|"
           "jan|feb|mar|apr|jun|jul|aug|sep|sept|oct|nov|dec")
_DAYS = "monday|tuesday|wednesday|thursday|friday|saturday|sunday"
_NUMBER_WORDS = ("one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|fifteen|"
                 "sixteen|seventeen|eighteen|nineteen|twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety|"
                 "hundred|hundreds|thousand|thousands|million|millions|billion|billions|dozen|dozens|half|"
                 "a third|a quarter|single|double|twice|once|several|few|many|no|none|both|all")

# "what was Dibaba's time", "what is the club's new fee": what + linking words + the noun asked for
_WHAT = r"\bwhat(?:\s+(?:was|is|were|are|will|be|has|had|been|the|a|an|his|her|its|their|new|final|[\w-]+['’]s))*\s+"
_QUESTION_KINDS = [
    (re.compile(rf"\bhow much\b|{_WHAT}(?:cost|price|value|fee|fine|salary|wage|budget|bill|amount|sum|profit|"
                r"loss|revenue|turnover|deficit|debt|bonus|compensation|payout|damages)s?\b|"
                r"\bhow (?:expensive|costly)\b", re.I), AMOUNT),
    (re.compile(rf"{_WHAT}(?:percentage|percent|proportion|share|rate)\b|\bby how much\b", re.I), PERCENT),
    (re.compile(rf"\bhow (?:many|old|long|far|tall|high|fast|big|large|heavy|often)\b|"
                rf"{_WHAT}(?:number|age|score|time|distance|speed|height|size|margin|record|total|tally|"
                r"attendance|population|majority|ranking)\b", re.I), NUMBER),
    (re.compile(r"\bwhen\b|\bwhat (?:year|date|day|month|decade|century)\b|\bwhich (?:year|date|day|month)\b|"
                r"\bin what year\b|\bsince when\b", re.I), DATE),
    (re.compile(r"^\s*(?:and\s+)?who(?:m|se)?\b|\bwho (?:is|was|were|are|will|did|has|had|won|directed|wrote|"
                r"replaced|scored|said|leads|led|owns|bought)\b|\bby whom\b", re.I), NAME),
]

_HAS_DIGIT = re.compile(r"\d")
_NUMBERISH = re.compile(rf"\d|\b(?:{_NUMBER_WORDS})\b", re.I)
_AMOUNTISH = re.compile(rf"[£$€¥]|\d|\b(?:{_NUMBER_WORDS}|pounds?|dollars?|euros?|pence|cents?|yen|"
                        r"bn|m|free|nothing)\b", re.I)
_PERCENTISH = re.compile(r"%|per ?cent|\bpercentage points?\b|\bhalf\b|\bthird\b|\bquarter\b|\d", re.I)
_DATEISH = re.compile(rf"\b(?:1[0-9]|20)\d\d\b|\b\d{{1,2}}(?:st|nd|rd|th)?\b|\b(?:{_MONTHS}|{_DAYS})\b|"
                      r"\b(?:today|yesterday|tomorrow|tonight|week|month|year|century|decade|spring|summer|"
                      r"autumn|winter|morning|evening|night|ago|later|earlier|before|after|since|until|"
                      r"christmas|easter|season|\d+s)\b", re.I)
_CAPITALISED = re.compile(r"(?:^|[\s(\"'“‘-])[A-Z\u00C0-\u00DE]")


def expected_kind(question: str) -> str:
    """The kind of answer the question asks for: amount, percent, number, date, name, or "" (any)."""
    for pattern, kind in _QUESTION_KINDS:
        if pattern.search(question):
            return kind
    return ANY


def span_fits(kind: str, span: str) -> bool:
    """Whether a marked span can be an answer of that kind ("" fits everything)."""
    span = span.strip()
    if not span:
        return False
    if kind == AMOUNT:
        return bool(_AMOUNTISH.search(span))
    if kind == PERCENT:
        return bool(_PERCENTISH.search(span))
    if kind == NUMBER:
        return bool(_NUMBERISH.search(span))
    if kind == DATE:
        return bool(_DATEISH.search(span))
    if kind == NAME:
        # A name, or a description of someone ("a local farmer", "the prime minister").
        return bool(_CAPITALISED.search(span)) or not _HAS_DIGIT.search(span)
    return True
