"""Answers as Telegram HTML: escaped text, bot-written tags only, within Telegram's 4096 UTF-16 units."""
from __future__ import annotations

import re
from html import escape, unescape
from urllib.parse import urlsplit

from index.read.answer import Answer, Citation
from index.engine import NO_ANSWER

MAX_MESSAGE_UTF16 = 4096
MAX_ALSO_IN = 5  # with the caps below, one citation stays far inside a message


def describe_coverage(cover: dict) -> str:
    """What the articles cover, in a sentence: how many, from which sources, from when to when."""
    from index.search.timeframe import say_iso

    n = cover["articles"]
    text = f"I know {n:,} news article{'s' if n != 1 else ''}"
    names = [x["source"] for x in cover["sources"]]
    if names:
        shown = ", ".join(names[:3])
        rest = len(names) - 3
        text += f" from {shown}" + (f" and {rest} other source{'s' if rest != 1 else ''}" if rest > 0 else "")
    if cover["first"]:
        if cover["first"] == cover["last"]:
            text += f", published on {say_iso(cover['first'])}"
        else:
            text += f", published from {say_iso(cover['first'])} to {say_iso(cover['last'])}"
    return text + "."


def report_lines(report: dict) -> list[str]:
    """The usage report as plain lines: questions, abstention, votes, what the bot could not answer."""
    lines = [f"Questions: {report['questions_24h']} in the last 24 h, {report['questions']} in {report['days']} days",
             f"Abstained on: {report['abstention_rate']:.0%}",
             f"Votes: {report['votes_up']} 👍, {report['votes_down']} 👎"]
    if report["top_abstained"]:
        lines.append("Most asked without an answer:")
        lines += [f"  {x['times']}× {x['question']}" for x in report["top_abstained"]]
    elif not report["logging_questions"]:
        lines.append("Question texts are not logged (CITEBOT_LOG_QUESTIONS=0).")
    return lines


def render_report(report: dict) -> str:
    """The usage report as Telegram HTML, for /stats."""
    head, *rest = report_lines(report)
    return "\n".join([f"<b>Usage</b> ({report['days']} days)", escape(head)] + [escape(x) for x in rest])


def feed_lines(feed) -> str:
    """One feed as plain text: address and title, the last fetch and what it gave; the last fetch
    that returned items (when that was an earlier one) and the last error, each with its time."""
    def when(iso: str) -> str:
        return iso.replace("T", " ").replace("+00:00", " UTC")

    line = feed.url + (f" ({feed.title})" if feed.title else "")
    if not feed.last_fetched:
        return line + "\n  never fetched"
    items = f"{feed.last_items} items, {feed.last_new} new"
    earlier = feed.last_status in ("not modified", "failed")  # the items came from an earlier fetch
    line += f"\n  last fetched {when(feed.last_fetched)}: {feed.last_status if earlier else items}"
    if earlier and feed.items_at:
        line += f"\n  last items {when(feed.items_at)}: {items}"
    if feed.last_error:
        line += f"\n  last error {when(feed.error_at)}: {feed.last_error}" if feed.error_at else \
            f"\n  last error: {feed.last_error}"
    return line


def utf16_len(text: str) -> int:
    """Length as Telegram counts it: UTF-16 code units (an emoji outside the BMP counts 2)."""
    return len(text.encode("utf-16-le")) // 2


def _visible_len(html: str) -> int:
    """UTF-16 length of the text Telegram shows for bot-written HTML (tags dropped, entities decoded)."""
    return utf16_len(unescape(re.sub(r"<[^>]+>", "", html)))


def _cap(text: str, limit: int) -> str:
    """text cut to at most limit UTF-16 units at a word boundary, with an ellipsis."""
    if utf16_len(text) <= limit:
        return text
    units, end = 0, 0
    for end, ch in enumerate(text):
        units += 2 if ord(ch) > 0xFFFF else 1
        if units > limit - 1:
            break
    cut = text[:end]
    space = cut.rfind(" ")
    return (cut[:space] if space > len(cut) // 2 else cut).rstrip() + "…"


def linkable(url: str) -> bool:
    """Whether Telegram will take url as a link: http(s) with a host. Anything else (a scraped
    "javascript:" or a malformed address) would get the whole answer rejected."""
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname) and not any(ch.isspace() for ch in url.strip())


def render_citation_line(c: Citation) -> str:
    """The citation: title (a link when there is a usable URL), source and date; other copies noted."""
    title = escape(_cap(c.title, 300))
    link = linkable(c.url) if c.url else False
    parts = [f'<a href="{escape(c.url.strip(), quote=True)}">{title}</a>' if link else f"<i>{title}</i>"]
    parts += [escape(_cap(x, 120)) for x in (c.source, c.published) if x]
    if not (c.source or c.published or c.url) and c.path:  # nothing else says where it is from
        parts.append(escape(_cap(c.path, 200)))
    line = "— " + " · ".join(parts)
    if c.also_in:
        names = [escape(_cap(r.source or r.title, 80)) for r in c.also_in[:MAX_ALSO_IN]]
        more = len(c.also_in) - MAX_ALSO_IN
        line += f"\n<i>also in: {', '.join(names)}{f' and {more} more' if more > 0 else ''}</i>"
    return line


def _one_line(text: str) -> str:
    return " ".join(text.split())


def render_excerpt(c: Citation, limit: int) -> str:
    """The excerpt as escaped HTML on one line, the answer the reader marked in bold."""
    plain = _cap(_one_line(c.excerpt), limit)
    if c.highlight is None:
        return escape(plain)
    a, b = c.highlight
    # Whitespace is collapsed piece by piece so the bold lands on the same words.
    before, marked, after = c.excerpt[:a], _one_line(c.excerpt[a:b]), c.excerpt[b:]
    lead = _one_line(before) + (" " if before[-1:].isspace() and before.strip() else "")
    tail = (" " if after[:1].isspace() and after.strip() else "") + _one_line(after)
    if not marked or utf16_len(lead + marked + tail) > limit:
        return escape(plain)  # a cut excerpt keeps no bold: the cut could fall inside it
    return f"{escape(lead)}<b>{escape(marked)}</b>{escape(tail)}"


def render_citation(c: Citation, max_excerpt: int = 1500) -> str:
    """One numbered citation block: the excerpt, then where it comes from."""
    return f"<b>{c.rank}.</b> {render_excerpt(c, max_excerpt)}\n{render_citation_line(c)}"


def abstain_text(answer: Answer) -> str:
    """Plain text of an abstention: why, when the engine says something more specific than "not
    found" (a date or source filter that matched nothing), and any note about dates."""
    text = answer.reason or NO_ANSWER
    return f"{text} {answer.note}" if answer.note else text


def render_answer(answer: Answer, start: int = 0, count: int = 3, searched: str = "") -> list[str]:
    """Telegram HTML messages for citations [start, start+count) of an answer.

    Usually one message; when the citations do not fit in 4096 UTF-16 units they are split
    between citations, never inside a tag or an entity. A note about dates opens the first one;
    searched (what a follow-up was searched as) closes the last one when it fits.
    """
    messages = _render_pages(answer, start, count)
    tail = f"\n\n<i>{escape(searched)}</i>" if searched else ""
    if tail and _visible_len(messages[-1] + tail) <= MAX_MESSAGE_UTF16:
        messages[-1] += tail
    return messages


def _render_pages(answer: Answer, start: int, count: int) -> list[str]:
    if answer.abstained or not answer.citations:
        return [escape(abstain_text(answer))]
    messages = []
    end = min(start + count, len(answer.citations))
    note = f"<i>{escape(answer.note)}</i>\n\n" if answer.note and start == 0 else ""
    while start < end:
        html, shown = render_page(answer, start, end - start, reserve=_visible_len(note))
        messages.append(note + html)
        note = ""
        start += shown
    return messages


def render_page(answer: Answer, start: int, count: int, reserve: int = 0) -> tuple[str, int]:
    """One message with as many of citations [start, start+count) as fit (at least one) in
    4096 - reserve UTF-16 units, and how many."""
    blocks = [render_citation(c) for c in answer.citations[start : start + count]]
    page = blocks[0]
    shown = 1
    for block in blocks[1:]:
        candidate = f"{page}\n\n{block}"
        if _visible_len(candidate) > MAX_MESSAGE_UTF16 - reserve:
            break
        page, shown = candidate, shown + 1
    return page, shown


def render_inline_message(c: Citation) -> str:
    """What an inline result sends into the chat: the excerpt with its citation."""
    return f"{render_excerpt(c, 2000)}\n{render_citation_line(c)}"


def render_digest(stories, since: str) -> str:
    """The daily digest: each story's lead excerpt under its title (a link), with how many articles
    carried it; kept within one message (stories past the limit are left out)."""
    head = f"<b>The main stories since {escape(since)}</b>"
    parts = [head]
    for n, story in enumerate(stories, 1):
        lead = story.lead
        title = escape(_cap(lead.title, 200))
        if lead.url and linkable(lead.url):
            title = f'<a href="{escape(lead.url.strip(), quote=True)}">{title}</a>'
        carried = f" ({len(story.articles)} articles)" if len(story.articles) > 1 else ""
        meta = " · ".join(x for x in (escape(_cap(lead.source, 80)), escape(lead.published[:10])) if x)
        part = f"{n}. <b>{title}</b>{carried}\n{escape(_cap(_one_line(story.excerpt), 400))}" + (f"\n— {meta}" if meta else "")
        if _visible_len("\n\n".join(parts + [part])) > 3800:
            break
        parts.append(part)
    return "\n\n".join(parts)
