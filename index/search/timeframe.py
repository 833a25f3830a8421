"""Time in a question: "latest", "yesterday", "in March 2022", "since:2022-03-01", "source:bbc".

    question, frame = parse_timeframe("What happened in Kyiv yesterday?", today=date(2022, 3, 25))
    frame.since == frame.until == date(2022, 3, 24); question == "What happened in Kyiv yesterday?"

Natural phrases stay in the question (they are words the articles may use too); the explicit
tokens `since:`, `until:` and `source:` are taken out. Dates are calendar days, relative to
`today`, which callers inject (the engine uses the current UTC date). Written by hand rather than
with a date-parsing library: the phrases news questions use are few, and a general parser
(dateparser, 200+ languages) reads words like "may" or "march on" as dates.
"""
from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import date, timedelta

from ..errors import QuestionError

MONTHS = {name.lower(): i for i, name in enumerate(calendar.month_name) if name}
MONTHS.update({name.lower(): i for i, name in enumerate(calendar.month_abbr) if name})
MONTHS["sept"] = 9
MONTH = r"(?P<month>" + "|".join(sorted(MONTHS, key=len, reverse=True)) + r")\.?"
DAY = r"(?P<day>[0-3]?\d)(?:st|nd|rd|th)?"
YEAR = r"(?P<year>(?:19|20)\d\d)"
# The same without group names, to find a written date inside a question.
_D = r"[0-3]?\d(?:st|nd|rd|th)?"
_M = r"(?:" + "|".join(sorted(MONTHS, key=len, reverse=True)) + r")\.?"
_Y = r"(?:19|20)\d\d"
WRITTEN_DATE = rf"(?:(?:{_D}\s+)?{_M}(?:\s+{_D})?,?(?:\s+{_Y})?|{_Y}|\d{{4}}-\d\d-\d\d)"

# Phrases that ask for the newest state of a story: ranked by date among the relevant passages.
LATEST = re.compile(
    r"\b(latest|most recent(?:ly)?|newest|recent(?:ly)?|so far|to date|currently|current|right now|"
    r"at the moment|at present|these days|nowadays|now|still|update on)\b", re.IGNORECASE)
EXPLICIT = re.compile(r"(?<!\S)(since|until|source):(\S+)", re.IGNORECASE)
WORD_NUMBERS = {"a": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
                "ten": 10, "few": 3, "couple of": 2}


@dataclass(frozen=True)
class TimeFrame:
    """When (and from where) the answer should come. since/until are inclusive days."""

    since: date | None = None
    until: date | None = None
    latest: bool = False
    sources: tuple[str, ...] = ()
    label: str = ""  # how to say the window: "since 1 March 2022", "from BBC"
    # Explicit dates (since:, --since) are kept even when nothing matches; a window read from the
    # question's words ("in 2019") may be about the event rather than the articles' dates, so the
    # engine falls back to all dates, saying so, when nothing in the window answers. Sources are
    # always kept.
    strict: bool = False

    @property
    def window(self) -> bool:
        return self.since is not None or self.until is not None

    @property
    def filters(self) -> bool:
        return self.window or bool(self.sources)

    def with_(self, **changes) -> "TimeFrame":
        values = {**self.__dict__, **changes}
        values["label"] = describe(values["since"], values["until"], values["sources"])
        return TimeFrame(**values)


def say_date(day: date) -> str:
    """24 March 2022."""
    return f"{day.day} {calendar.month_name[day.month]} {day.year}"


def say_iso(day: str) -> str:
    """An ISO day as 24 March 2022 (the text itself when it is not one)."""
    try:
        return say_date(date.fromisoformat(day[:10]))
    except ValueError:
        return day


def describe(since: date | None, until: date | None, sources: tuple[str, ...] = ()) -> str:
    parts = []
    if since and until and since == until:
        parts.append(f"on {say_date(since)}")
    elif since and until and (since.month, since.day, until.month, until.day) == (1, 1, 12, 31) \
            and since.year == until.year:
        parts.append(f"in {since.year}")
    elif since and until and since.day == 1 and (since.year, since.month) == (until.year, until.month) \
            and until == _month_end(until.year, until.month):
        parts.append(f"in {calendar.month_name[since.month]} {since.year}")
    elif since and until:
        parts.append(f"from {say_date(since)} to {say_date(until)}")
    elif since:
        parts.append(f"since {say_date(since)}")
    elif until:
        parts.append(f"until {say_date(until)}")
    if sources:
        parts.append("from " + " or ".join(sources))
    return " ".join(parts)


def _month_end(year: int, month: int) -> date:
    return date(year, month, calendar.monthrange(year, month)[1])


def _safe_date(year: int, month: int, day: int) -> date | None:
    try:
        return date(year, month, day)
    except ValueError:
        return None


def parse_day(text: str, today: date | None = None) -> date | None:
    """A day written as 2022-03-01, 1 March 2022, March 1, 2022, 1 March (the last one not after
    today), or None."""
    text = text.strip().rstrip(".,;")
    m = re.fullmatch(r"(\d{4})-(\d{1,2})-(\d{1,2})", text)
    if m:
        return _safe_date(*map(int, m.groups()))
    for pattern in (rf"{DAY}\s+{MONTH},?\s+{YEAR}", rf"{MONTH}\s+{DAY},?\s+{YEAR}",
                    rf"{DAY}\s+{MONTH}", rf"{MONTH}\s+{DAY}"):
        m = re.fullmatch(pattern, text, re.IGNORECASE)
        if m:
            month, day = MONTHS[m.group("month").lower()], int(m.group("day"))
            year = int(m.groupdict().get("year") or 0)
            if year:
                return _safe_date(year, month, day)
            if today is None:
                return None
            found = _safe_date(today.year, month, day)
            if found and found > today:  # "since 1 December" asked in March: last December
                found = _safe_date(today.year - 1, month, day)
            return found
    return None


def _explicit_day(value: str, name: str) -> date:
    day = parse_day(value)
    if day is None:
        m = re.fullmatch(r"(\d{4})(?:-(\d{1,2}))?", value)
        if m and (not m.group(2) or 1 <= int(m.group(2)) <= 12):
            year, month = int(m.group(1)), int(m.group(2) or 0)
            if name == "since":
                return date(year, month or 1, 1)
            return _month_end(year, month) if month else date(year, 12, 31)
        raise QuestionError(f"{name}:{value} is not a date I can read; write it as {name}:2022-03-01.")
    return day


def _relative(question: str, today: date) -> tuple[date | None, date | None, str]:
    """The window a natural phrase sets, and the phrase; (None, None, '') when there is none."""
    q = question.lower()
    monday = today - timedelta(days=today.weekday())
    fixed = [
        (r"\btoday\b|\bthis morning\b|\btonight\b", today, today),
        (r"\byesterday\b", today - timedelta(days=1), today - timedelta(days=1)),
        (r"\bthis week\b", monday, today),
        (r"\blast week\b|\bpast week\b", monday - timedelta(days=7), monday - timedelta(days=1)),
        (r"\bthis month\b", today.replace(day=1), today),
        (r"\bthis year\b", date(today.year, 1, 1), today),
        (r"\blast year\b", date(today.year - 1, 1, 1), date(today.year - 1, 12, 31)),
    ]
    first = today.replace(day=1)
    previous = first - timedelta(days=1)
    fixed.append((r"\blast month\b|\bpast month\b", previous.replace(day=1), previous))
    m = re.search(r"\b(?:in the )?(?:last|past)\s+(\d+|a|one|two|three|four|five|six|seven|ten|few|couple of)"
                  r"\s+(day|week|month)s?\b", q)
    if m:
        n = int(m.group(1)) if m.group(1).isdigit() else WORD_NUMBERS[m.group(1)]
        days = n * {"day": 1, "week": 7, "month": 30}[m.group(2)]
        return today - timedelta(days=days - 1), today, m.group(0)
    for pattern, since, until in fixed:
        m = re.search(pattern, q)
        if m:
            return since, until, m.group(0)
    # since / after / before / until a day, a month or a year
    m = re.search(rf"\b(since|after|from|before|until|till|by|prior to)\s+({WRITTEN_DATE})(?!\w)", q)
    if m:
        word, what = m.group(1), m.group(2)
        start, end = _span_of(what, today)
        if start is not None:
            if word in ("since", "from"):
                return start, None, m.group(0)
            if word == "after":
                return end + timedelta(days=1), None, m.group(0)
            if word in ("by", "until", "till"):
                return None, end, m.group(0)
            return None, start - timedelta(days=1), m.group(0)  # before, prior to
    # in/during March 2022, in March, in 2022, on 24 March 2022
    m = re.search(rf"\b(?:in|during|on|of)\s+({WRITTEN_DATE})(?!\w)", q)
    if m:
        start, end = _span_of(m.group(1), today)
        if start is not None:
            return start, end, m.group(0)
    return None, None, ""


def _span_of(what: str, today: date) -> tuple[date | None, date | None]:
    """The first and last day a written date stands for: a day, a month (of the last year it was
    not in the future) or a year."""
    what = what.strip().rstrip(",")
    day = parse_day(what, today)
    if day is not None:
        return day, day
    if re.fullmatch(r"(19|20)\d\d", what):
        year = int(what)
        return date(year, 1, 1), date(year, 12, 31)
    m = re.fullmatch(rf"{MONTH}(?:,?\s+{YEAR})?", what, re.IGNORECASE)
    if m:
        month = MONTHS[m.group("month").lower()]
        year = int(m.group("year") or 0) or (today.year if month <= today.month else today.year - 1)
        return date(year, month, 1), _month_end(year, month)
    return None, None


# A month name that is far more often an ordinary word after these prepositions ("in may be", "by
# may"): only a date when a day or a year goes with it. "in March" and "in Oct" are the month.
AMBIGUOUS_MONTHS = {"may"}


def parse_timeframe(question: str, today: date, since: date | None = None, until: date | None = None,
                    sources: tuple[str, ...] = ()) -> tuple[str, TimeFrame]:
    """The question without its explicit tokens, and the time frame it asks for.

    since/until/sources given by the caller (`citebot ask --since`) win over the question's own."""
    found_sources = list(sources)
    explicit: dict[str, date] = {}

    def take(m: re.Match) -> str:
        name, value = m.group(1).lower(), m.group(2)
        if name == "source":
            found_sources.extend(v for v in value.split(",") if v)
        else:
            explicit[name] = _explicit_day(value, name)
        return " "

    text = re.sub(r"\s+", " ", EXPLICIT.sub(take, question)).strip()
    start, end, phrase = _relative(text, today)
    if start is not None and start > today:
        start, end, phrase = None, None, ""  # "open in 2029": an event to come, not when articles appeared
    if phrase:
        month_word = re.fullmatch(rf"(?:in|during|on|of|since|after|from|before|until|till|by|prior to)\s+{MONTH}",
                                  phrase, re.IGNORECASE)
        if month_word and month_word.group("month").lower() in AMBIGUOUS_MONTHS:
            start, end, phrase = None, None, ""  # "in may" alone is more likely the verb's neighbour
    given = since is not None or until is not None or bool(explicit)
    if given:  # explicit dates replace the words' window and are kept even when nothing matches
        since = since or explicit.get("since")
        until = until or explicit.get("until")
    else:
        since, until = start, end
    if since and until and since > until:
        raise QuestionError(f"The dates ask for articles from {say_date(since)} to {say_date(until)}, "
                            "which ends before it starts.")
    # Within a window too, the newest of equally good answers is the one a news reader wants
    # ("How many had fled by 13 March?" asks for the figure as of that day).
    latest = bool(LATEST.search(text)) or since is not None or until is not None
    unique_sources = tuple(dict.fromkeys(s.strip().lower() for s in found_sources if s.strip()))
    return text, TimeFrame(since, until, latest, unique_sources, describe(since, until, unique_sources), given)


__all__ = ["TimeFrame", "describe", "parse_day", "parse_timeframe", "say_date", "say_iso"]
