"""Load articles from the corpus folder (.txt, .md, .html, .json, .jsonl) into clean Documents."""
from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import re
import stat
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Iterator
from urllib.parse import urlsplit

from .cleaning import clean_paragraphs, clean_title, normalize_text
from .language import detect_language

log = logging.getLogger(__name__)

TEXT_SUFFIXES = {".txt", ".md", ".markdown"}
HTML_SUFFIXES = {".html", ".htm"}
JSON_SUFFIXES = {".json", ".jsonl"}
SUFFIXES = TEXT_SUFFIXES | HTML_SUFFIXES | JSON_SUFFIXES
MAX_FILE_BYTES = 50 * 1024 * 1024
HEADER_KEYS = {"title", "url", "link", "source", "published", "date"}
# A folder's notes for its articles and its sub-folders' (corpus/README.md): what they leave out.
FOLDER_DEFAULTS = "_source.json"
DEFAULT_KEYS = {"source": str, "published": str, "date_from_name": bool}
NAME_DATE = re.compile(r"(?<!\d)((?:19|20)\d\d)-?(\d\d)-?(\d\d)(?!\d)")  # 2022-03-24-slug.txt, 20220324.txt
PARAGRAPH_SEPARATOR = "\n\n"


@dataclass(frozen=True)
class Paragraph:
    """A paragraph's span in its document's cleaned text, and its language ('' if unsure)."""

    start: int
    end: int
    language: str = ""


@dataclass(frozen=True)
class Document:
    """One cleaned article. `text` is the cleaned body; offsets everywhere point into it."""

    doc_id: str
    title: str
    text: str
    paragraphs: tuple[Paragraph, ...]
    path: str
    source: str = ""
    url: str = ""
    published: str = ""

    @property
    def content_key(self) -> str:
        """Hash of the body alone: two copies of one article share it, whatever their titles."""
        return text_key(self.text)


def text_key(text: str) -> str:
    """sha256 of a text casefolded with its whitespace collapsed: what makes two copies one."""
    return hashlib.sha256(re.sub(r"\s+", " ", text.casefold()).encode()).hexdigest()


@dataclass(frozen=True)
class SkippedFile:
    path: str
    reason: str


@dataclass
class Corpus:
    """What loading a corpus folder gave: documents, and what was left out and why."""

    documents: list[Document] = field(default_factory=list)
    skipped: list[SkippedFile] = field(default_factory=list)
    duplicates: list[SkippedFile] = field(default_factory=list)
    files_read: int = 0


@dataclass
class RawArticle:
    title: str
    body: str
    url: str = ""
    source: str = ""
    published: str = ""


class UnreadableFile(Exception):
    """A corpus file that cannot be read or parsed; the message says why."""


def size_refusal(size: int, max_bytes: int) -> str | None:
    """Why a file of size bytes is refused (sizes that show the difference), or None."""
    if size <= max_bytes:
        return None
    return (f"file is {size / 2**20:.2f} MiB ({size:,} bytes), over the {max_bytes / 2**20:g} MiB limit "
            f"({max_bytes:,} bytes; CITEBOT_MAX_FILE_MB sets it)")


def read_text(path: Path, max_bytes: int = MAX_FILE_BYTES) -> str:
    """File contents as text: UTF-8 if it is, else Windows-1252/Latin-1; binary files refused."""
    refusal = size_refusal(path.stat().st_size, max_bytes)
    if refusal:
        raise UnreadableFile(refusal)
    data = path.read_bytes()
    if b"\x00" in data[:4096]:
        raise UnreadableFile("looks like a binary file, not text")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        log.info("%s is not UTF-8; reading it as Windows-1252", path)
        try:
            return data.decode("cp1252")
        except UnicodeDecodeError:
            return data.decode("latin-1")


def iso_date(value) -> str:
    """The ISO date (YYYY-MM-DD) value names (ISO with or without a time, "24 March 2022",
    "March 24, 2022", "24/03/2022", "2022/03/24"), or "" when it names none."""
    value = str(value or "").strip()
    if not value:
        return ""
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).date().isoformat()
    except ValueError:
        pass
    for fmt in ("%d %B %Y", "%d %b %Y", "%B %d, %Y", "%b %d, %Y", "%d/%m/%Y", "%Y/%m/%d"):
        try:
            return datetime.strptime(value, fmt).date().isoformat()
        except ValueError:
            continue
    return ""


def web_address(url: str) -> str:
    """url stripped if it is an http(s) address with a host, else "": an article's link is shown
    and followed, and javascript:, data: and file: addresses must be neither."""
    url = (url or "").strip()
    try:
        parts = urlsplit(url)
    except ValueError:
        return ""
    return url if parts.scheme.lower() in ("http", "https") and parts.netloc else ""


def normalize_date(value: str) -> str:
    """An article's date as ISO when it parses as one, else as the file gives it (still shown)."""
    return iso_date(value) or (value or "").strip()


def parse_text_article(text: str) -> RawArticle:
    """A .txt/.md article: optional `Key: value` header or `---` front matter, else title on line 1.

    A header without a title leaves the title empty (the file name stands in): its body starts
    with the lead paragraph, which must not be taken for a headline and lost from the text.
    """
    lines = text.split("\n")
    meta: dict[str, str] = {}
    i = 0
    while i < len(lines) and not lines[i].strip():
        i += 1
    fenced = i < len(lines) and lines[i].strip() == "---"
    if fenced:
        i += 1
    while i < len(lines):
        if fenced and lines[i].strip() == "---":
            i += 1
            break
        m = re.match(r"^\s*([A-Za-z_-]+)\s*:\s*(.*?)\s*$", lines[i])
        if not m or (not fenced and m.group(1).lower() not in HEADER_KEYS):
            break  # front matter may hold other keys (author, tags); a plain header only ours
        if m.group(1).lower() in HEADER_KEYS:
            meta[m.group(1).lower()] = m.group(2).strip().strip('"')
        i += 1
    body_lines = lines[i:]
    title = meta.get("title", "")
    if not title and not meta:
        while body_lines and not body_lines[0].strip():
            body_lines = body_lines[1:]
        rest = [line for line in body_lines[1:] if line.strip()]
        if body_lines and rest:  # a lone line is the article itself, not a headline without a body
            title, body_lines = body_lines[0], body_lines[1:]
    return RawArticle(
        title=title,
        body="\n".join(body_lines),
        url=meta.get("url") or meta.get("link", ""),
        source=meta.get("source", ""),
        published=meta.get("published") or meta.get("date", ""),
    )


def parse_html_article(html: str) -> RawArticle:
    """Main content of a web page, by trafilatura (no menus, comments or footers)."""
    import trafilatura

    result = trafilatura.bare_extraction(
        html, include_comments=False, include_tables=False, with_metadata=True, favor_precision=True
    )
    if result is None or not (result.text or "").strip():
        raise UnreadableFile("no article text found in the HTML")
    return RawArticle(
        title=result.title or "",
        body=result.text,
        url=result.url or "",
        source=result.sitename or "",
        published=result.date or "",
    )


def _record_to_article(record: object) -> RawArticle:
    """One JSON record as an article; UnreadableFile says what is wrong (the caller says where)."""
    if not isinstance(record, dict):
        raise UnreadableFile('not an object with a "text" (a "title" and the rest are optional)')
    body = record.get("text") or record.get("body") or ""
    if isinstance(record.get("title"), (dict, list)):
        raise UnreadableFile("its 'title' is not text")
    if not isinstance(body, str) or not body.strip():
        raise UnreadableFile("no 'text' or 'body'")

    def field_text(key: str) -> str:
        return str(record.get(key) or "").strip()

    return RawArticle(
        title=field_text("title"),
        body=body,
        url=field_text("url"),
        source=field_text("source"),
        published=field_text("published") or field_text("date"),
    )


def parse_json_articles(text: str, jsonl: bool, path: Path | str) -> Iterator[RawArticle]:
    """Records from a .json file (one object or a list) or a .jsonl file (one object a line).

    A bad record is skipped with one warning: `Skipping NAME line N: reason` (path as given)."""
    if jsonl:
        for number, line in enumerate(text.split("\n"), 1):
            if not line.strip():
                continue
            try:
                yield _record_to_article(json.loads(line))
            except (ValueError, RecursionError, UnreadableFile) as exc:  # JSONDecodeError is a ValueError
                log.warning("Skipping %s line %d: %s", path, number, str(exc)[:200])
        return
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise UnreadableFile(f"invalid JSON ({str(exc)[:200]})") from None
    records = data if isinstance(data, list) else [data]
    for number, record in enumerate(records, 1):
        try:
            yield _record_to_article(record)
        except UnreadableFile as exc:
            log.warning("Skipping %s record %d: %s", path, number, exc)


def read_articles(path: Path, name: str | None = None, max_bytes: int = MAX_FILE_BYTES) -> list[RawArticle]:
    """Every article in one corpus file; raises UnreadableFile with a reason. name (the path
    relative to the corpus) is how warnings about single records name the file."""
    suffix = path.suffix.lower()
    text = read_text(path, max_bytes)
    if suffix in TEXT_SUFFIXES:
        return [parse_text_article(text)]
    if suffix in HTML_SUFFIXES:
        return [parse_html_article(text)]
    return list(parse_json_articles(text, suffix == ".jsonl", name or path))


def make_document(article: RawArticle, path: str) -> Document | None:
    """Clean one article into a Document; None when nothing readable is left."""
    title = clean_title(article.title)
    paragraphs = clean_paragraphs(article.body, title)
    if not paragraphs:
        return None
    text = PARAGRAPH_SEPARATOR.join(paragraphs)
    spans, start = [], 0
    for para in paragraphs:
        spans.append(Paragraph(start, start + len(para), detect_language(para)))
        start += len(para) + len(PARAGRAPH_SEPARATOR)
    doc_id = hashlib.sha256(f"{path}\n{title}\n{text}".encode()).hexdigest()[:16]
    return Document(
        doc_id=doc_id,
        title=title or Path(path).stem,
        text=text,
        paragraphs=tuple(spans),
        path=path,
        source=normalize_text(article.source).strip(),
        url=web_address(article.url),
        published=normalize_date(article.published),
    )


def read_folder_defaults(path: Path) -> dict:
    """A folder's `_source.json`: the source, date and date rule for the articles that give none.
    Raises UnreadableFile saying what is wrong with it."""
    try:
        data = json.loads(read_text(path, 2**20))
    except (ValueError, RecursionError) as exc:
        raise UnreadableFile(f"invalid JSON ({str(exc)[:200]})") from None
    if not isinstance(data, dict):
        raise UnreadableFile('not an object like {"source": "BBC News", "published": "2005"}')
    unknown = sorted(set(data) - set(DEFAULT_KEYS))
    if unknown:
        raise UnreadableFile(f"unknown key(s) {', '.join(map(repr, unknown))}; it may hold "
                             + ", ".join(DEFAULT_KEYS))
    for key, kind in DEFAULT_KEYS.items():
        if key in data and not isinstance(data[key], kind):
            raise UnreadableFile(f"{key!r} must be {'true or false' if kind is bool else 'text'}")
    return data


def with_defaults(doc: Document, defaults: dict, name: str) -> Document:
    """doc with what it leaves out taken from its folders' defaults; name is its file's name, whose
    date counts when the defaults say date_from_name."""
    if not defaults or (doc.source and doc.published):
        return doc
    published = doc.published
    if not published and defaults.get("date_from_name"):
        m = NAME_DATE.search(name)
        published = iso_date("-".join(m.groups())) if m else ""
    return replace(doc, source=doc.source or normalize_text(defaults.get("source", "")).strip(),
                   published=published or normalize_date(defaults.get("published", "")))


def _not_a_file(path: Path) -> str | None:
    """Why a name that looks like an article is not one to read, or None for a regular file."""
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        if path.is_symlink():
            return "a link loop" if exc.errno == errno.ELOOP else "a link to nothing"
        return f"cannot be read ({exc.strerror})"
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "a folder named like an article file (its files are read as a folder's)"
    return "not a regular file (a pipe, socket or device)"


def corpus_files(corpus_dir: Path, problems: list[SkippedFile] | None = None, links_out: bool = False) -> list[Path]:
    """Article files under the corpus folder, in a stable order; README files are notes, not news.

    Links are followed only where they lead inside the corpus folder, each real folder once: a link
    out of it (to /etc/passwd, to a home folder) would put files nobody chose into the answers.
    Names that look like articles but are not regular files (pipes, dangling links, link loops,
    folders named x.txt) and links out of the folder are added to problems, relative to the corpus
    folder. links_out=True follows links out too (an evaluation corpus, made of links to the
    folders named on its command line).
    """
    found: list[Path] = []
    seen: set[str] = set()
    root = os.path.realpath(corpus_dir)

    def outside(path: str) -> bool:
        if links_out:
            return False
        real = os.path.realpath(path)
        return real != root and not real.startswith(root.rstrip(os.sep) + os.sep)

    def skip(path: Path, why: str) -> None:
        if problems is not None:
            problems.append(SkippedFile(path.relative_to(corpus_dir).as_posix(), why))

    for folder, dirs, files in os.walk(corpus_dir, followlinks=True):
        real = os.path.realpath(folder)
        if real in seen:
            dirs[:] = []  # a link loop, or the same folder linked twice
            continue
        seen.add(real)
        for d in [d for d in dirs if not d.startswith(".") and os.path.islink(os.path.join(folder, d))]:
            if outside(os.path.join(folder, d)):
                dirs.remove(d)
                skip(Path(folder) / d, "a link to a folder outside the corpus folder (not followed)")
        # Sorted, real folders before links: a folder reachable twice always gets the same path.
        dirs[:] = sorted((d for d in dirs if not d.startswith(".")), key=lambda d: (os.path.islink(os.path.join(folder, d)), d))
        looks_like_article = lambda n: (  # noqa: E731
            not n.startswith(".") and Path(n).suffix.lower() in SUFFIXES and not n.lower().startswith("readme")
            and n.lower() != FOLDER_DEFAULTS)
        for name in sorted(files) + [d for d in dirs if looks_like_article(d)]:
            p = Path(folder) / name
            if not looks_like_article(name):
                continue
            why = _not_a_file(p)
            if why is None and os.path.islink(p) and outside(str(p)):  # folders out were not entered
                why = "a link to a file outside the corpus folder"
            if why is None:
                found.append(p)
            else:
                skip(p, why)
    if problems is not None:
        problems.sort(key=lambda s: s.path)
    return sorted(found)


def file_documents(path: Path, rel: str, max_bytes: int = MAX_FILE_BYTES) -> list[Document | SkippedFile]:
    """The documents one corpus file gives, and a SkippedFile for each of its articles that is
    empty after cleaning; raises UnreadableFile (or OSError) when the file cannot be read."""
    articles = read_articles(path, rel, max_bytes)
    multi = len(articles) > 1
    out: list[Document | SkippedFile] = []
    for i, article in enumerate(articles):
        where = f"{rel}#{i + 1}" if multi else rel
        doc = make_document(article, where)
        out.append(doc if doc is not None else SkippedFile(where, "no article text left after cleaning"))
    return out


def file_stamp(path: Path) -> str:
    """What says a file is unchanged without reading it (as make and git do)."""
    st = path.stat()
    return f"{st.st_size}:{st.st_mtime_ns}:{st.st_ino}"


def load_corpus(corpus_dir: Path, progress=None, cache=None, max_bytes: int = MAX_FILE_BYTES,
                keep: frozenset[str] = frozenset(), links_out: bool = False) -> Corpus:
    """Read and clean every article; unreadable files are skipped with a warning, never fatal.

    cache (an index.ingest.cache.BuildCache) hands back what unchanged files gave last time; files over
    max_bytes are skipped, whatever the cache holds for them. Of two copies of an article the one
    whose path is in keep (the live index's) is kept, else the first by path."""
    corpus_dir = Path(corpus_dir)
    if not corpus_dir.is_dir():
        # Absolute: a relative default (corpus/) means nothing when run from another folder.
        what = "is not a folder" if corpus_dir.exists() else "does not exist"
        raise FileNotFoundError(f"Corpus folder {corpus_dir.absolute()} {what}; set CITEBOT_CORPUS_DIR to the "
                                "folder of your articles (or name it: citebot build FOLDER).")
    corpus = Corpus()
    by_content: dict[str, Document] = {}
    not_files: list[SkippedFile] = []
    files = corpus_files(corpus_dir, not_files, links_out)
    for skipped in not_files:
        log.warning("Skipping %s: %s", skipped.path, skipped.reason)
        corpus.skipped.append(skipped)
    folder_defaults: dict[str, dict] = {}

    def defaults_for(folder: Path) -> dict:
        """The defaults a folder's articles get: its own `_source.json` over its parents'."""
        key = folder.as_posix()
        if key not in folder_defaults:
            inherited = defaults_for(folder.parent) if folder != Path(".") else {}
            own, note = {}, corpus_dir / folder / FOLDER_DEFAULTS
            if note.is_file():
                try:
                    own = read_folder_defaults(note)
                except (UnreadableFile, OSError) as exc:
                    where = (folder / FOLDER_DEFAULTS).as_posix()
                    log.warning("Skipping %s: %s", where, exc)
                    corpus.skipped.append(SkippedFile(where, str(exc)))
            folder_defaults[key] = {**inherited, **own}
        return folder_defaults[key]

    for number, path in enumerate(files, 1):
        rel = path.relative_to(corpus_dir).as_posix()
        corpus.files_read += 1
        outcome = stamp = None
        try:
            outcome = size_refusal(path.stat().st_size, max_bytes)
        except OSError as exc:
            outcome = str(exc)
        if outcome is None and cache is not None:
            try:
                stamp = file_stamp(path)
                outcome = cache.file(rel, stamp)
            except OSError:
                stamp = None
        if outcome is None:
            try:
                outcome = file_documents(path, rel, max_bytes)
            except OSError as exc:  # permissions and the like change without touching mtime: not cached
                outcome, stamp = str(exc), None
            except (UnreadableFile, ValueError) as exc:
                outcome = str(exc)
            if stamp is not None:
                cache.put_file(rel, stamp, outcome)
        if isinstance(outcome, str):
            log.warning("Skipping %s: %s", rel, outcome)
            corpus.skipped.append(SkippedFile(rel, outcome))
            continue
        if not outcome:
            log.warning("Skipping %s: no article with text in it", rel)
            corpus.skipped.append(SkippedFile(rel, "no article with text in it"))
        for doc in outcome:
            if isinstance(doc, SkippedFile):
                log.warning("Skipping %s: %s", doc.path, doc.reason)
                corpus.skipped.append(doc)
                continue
            doc = with_defaults(doc, defaults_for(Path(rel).parent), path.name)
            twin = by_content.get(doc.content_key)
            if twin is not None and doc.path in keep and twin.path not in keep:
                # The copy already indexed stays the one cited; the new copy is the duplicate.
                corpus.documents[corpus.documents.index(twin)] = by_content[doc.content_key] = doc
                corpus.duplicates = [SkippedFile(d.path, f"duplicate of {doc.path}")
                                     if d.reason == f"duplicate of {twin.path}" else d for d in corpus.duplicates]
                doc, twin = twin, doc
            if twin is not None:
                log.info("%s duplicates %s; indexing it once", doc.path, twin.path)
                corpus.duplicates.append(SkippedFile(doc.path, f"duplicate of {twin.path}"))
                continue
            by_content[doc.content_key] = doc
            corpus.documents.append(doc)
        if progress:
            progress(number, len(files))
    return corpus
