"""Turn scraped article text into clean paragraphs: Unicode, whitespace, scraper junk, repeats."""
from __future__ import annotations

import re
import unicodedata

# Whole lines that scrapers pick up from comment forms, share bars, cookie and subscribe banners.
# Matched only against short lines, so an article that *discusses* cookies keeps its paragraph.
_BOILERPLATE = re.compile(
    r"""^(?:
        please\ enter\ your\ (?:comment|name|email|e-mail|website)\b.* |
        (?:leave\ a\ (?:reply|comment)|post\ a\ comment|add\ a\ comment|comments?\ \(\d+\))\b.* |
        your\ email\ address\ will\ not\ be\ published.* |
        save\ my\ name,?\ email.* |
        you\ must\ be\ logged\ in.* |
        (?:share|tweet|email|print)(?:\ (?:this|on|via)\b.*)? |
        share\ (?:this\ )?(?:article|story|page|post)\b.* |
        (?:follow|like)\ us\ on\b.* |
        (?:click\ here\ to\ )?(?:subscribe|sign\ up)\b.*(?:newsletter|updates|alerts|inbox|free|now|today)\W* |
        subscribe\ (?:now|today|here)\W* |
        .*\b(?:we|this\ (?:site|website))\ uses?\ cookies\b.* |
        (?:accept|reject|manage)\ (?:all\ )?cookies\W* |
        cookie\ (?:policy|settings|preferences)\W* |
        advertisement\W* | (?:sponsored|promoted)\ content\W* |
        (?:read\ more|related\ (?:articles|stories|topics|content)|see\ also|more\ on\ this\ story)\b\W*(?::.{0,120})? |
        (?:all\ rights\ reserved|copyright\ ©|©\ ?\d{4}).* |
        skip\ to\ (?:main\ )?content\W*
    )$""",
    re.IGNORECASE | re.VERBOSE,
)
_BOILERPLATE_MAX_CHARS = 160

# Zero-width characters, soft hyphens, BOMs and direction marks carry nothing a reader sees.
_INVISIBLE = dict.fromkeys(map(ord, "\u00ad\u200b\u200c\u200d\u2060\ufeff\u200e\u200f"), None)
_SPACES = re.compile(r"[^\S\n]+")
_TERMINAL = re.compile(r"""[.!?…:;"'”’)\]]$""")


def normalize_text(text: str) -> str:
    """NFKC-normalise, drop invisible and control characters, unify line ends and spaces."""
    text = unicodedata.normalize("NFKC", text).translate(_INVISIBLE)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = "".join(ch for ch in text if ch in "\n\t" or unicodedata.category(ch)[0] != "C")
    return _SPACES.sub(" ", text)


def is_boilerplate(line: str) -> bool:
    """True for a short line that is scraper junk rather than article text."""
    return len(line) <= _BOILERPLATE_MAX_CHARS and bool(_BOILERPLATE.match(line.strip()))


def _is_soft_wrap(previous: str, line: str, wrap_width: int, block_lines: int) -> bool:
    """Whether the break between two lines of a block only wraps a paragraph."""
    if _TERMINAL.search(previous):
        return False
    if line[:1].islower():
        return True  # a sentence carrying on
    return block_lines >= 3 and len(previous) >= 0.6 * wrap_width


def split_paragraphs(text: str) -> list[str]:
    """Split normalised text into paragraphs, re-joining hard-wrapped lines.

    Blank lines always separate paragraphs. Inside a block, a line break is kept as a
    paragraph break when the line before it ends a sentence, or is a short line followed by a
    capital (a heading, a one-line live-blog entry); otherwise the lines are joined.
    """
    paragraphs: list[str] = []
    for block in re.split(r"\n\s*\n", text):
        lines = [ln.strip() for ln in block.split("\n") if ln.strip()]
        if not lines:
            continue
        wrap_width = max(len(ln) for ln in lines)
        current = previous = lines[0]
        for line in lines[1:]:
            if _is_soft_wrap(previous, line, wrap_width, len(lines)):
                current = f"{current} {line}"
            else:
                paragraphs.append(current)
                current = line
            previous = line
        paragraphs.append(current)
    return paragraphs


def _line_key(line: str) -> str:
    return re.sub(r"\W+", " ", line.casefold()).strip()


def clean_paragraphs(text: str, title: str = "") -> list[str]:
    """Cleaned paragraphs of one article: no junk lines, no repeats, no copy of the title."""
    seen = {_line_key(title)} if title else set()
    kept: list[str] = []
    for para in split_paragraphs(normalize_text(text)):
        key = _line_key(para)
        if not key or key in seen or is_boilerplate(para):
            continue
        seen.add(key)
        kept.append(para)
    return kept


def clean_title(title: str) -> str:
    """One-line title without markdown heading marks or surrounding quotes."""
    title = normalize_text(title).replace("\n", " ").strip()
    return re.sub(r"^#+\s*", "", title).strip()
