"""An index that grows in place: a base build plus small segments, searched as one (issue 24).

An update writes only what is new: the new and changed articles go into a segment (a folder in
the base build's `segments/`, in the same format as a build: chunk rows, vectors, a FAISS index,
postings), and the articles it removes or replaces are masked by a deletion list, never
rewritten. `segments.json` in the base build's folder lists the live segments and the deletions;
it is replaced atomically (write, fsync, rename), so a kill at any point leaves either the list
before the update or the one after it, and a segment folder that no list names is swept by the
next update. A merge is a whole build (index/store/builder.py), made live by moving CURRENT as
always; the new base has no segments.

The view over the base and its segments (SegmentedView) is the file store's IndexView. One set of
corpus statistics serves every segment: BM25 takes document frequencies and the mean chunk length
over all live chunks (index/store/postings.py), so a chunk scores the same in whichever segment
it sits, and what the deletion list masks counts nowhere. A chunk's id is its segment's number
(0 for the base) times 2**32 plus its row there, so ids of a base build alone are its rows, and
an id never changes while its segment lives.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import threading
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import IndexCorrupt, IndexMissing, IndexUnavailable
from .files import IndexSnapshot, _fsync_dir, current_build_dir, top_k
from .interface import ChunkFilter, ChunkRecord
from .postings import CorpusStatistics

log = logging.getLogger(__name__)

SEGMENTS_FILE = "segments.json"
SEGMENTS_DIR = "segments"
SHIFT = 32  # id = segment number << SHIFT | row
ROW_MASK = (1 << SHIFT) - 1
_SELECTOR_LOCK = threading.Lock()


@dataclass(frozen=True)
class MergePolicy:
    """When the segments are merged into a new base (a whole build, in the background): past
    max_segments segments, or when the segments or the masked chunks pass a share of the base.
    An update changing more than whole_build_share of the articles is a whole build at once."""

    max_segments: int = 8
    max_segment_share: float = 0.25
    max_deleted_share: float = 0.10
    whole_build_share: float = 0.25


@dataclass
class SegmentList:
    """What segments.json holds: the live segments, oldest first, and the masked articles."""

    generation: int = 0  # bumped by every update; with the base's name it says "has the index changed"
    next_number: int = 1
    segments: list[dict] = field(default_factory=list)  # {"number": n, "name": folder, "chunks": c}
    deleted: dict[int, list[str]] = field(default_factory=dict)  # segment number (0: base) -> doc ids
    corpus: dict = field(default_factory=dict)  # the latest update's manifest fields about the corpus

    def folders(self, base_dir: Path) -> list[tuple[int, Path]]:
        """(number, folder) of the base build (0) and of each live segment, oldest first."""
        return [(0, base_dir)] + [(s["number"], base_dir / SEGMENTS_DIR / s["name"]) for s in self.segments]

    def to_json(self) -> str:
        return json.dumps({"generation": self.generation, "next_number": self.next_number,
                           "segments": self.segments, "deleted": {str(k): v for k, v in self.deleted.items()},
                           "corpus": self.corpus}, indent=1)


def read_segments(build_dir: Path) -> SegmentList:
    """The base build's segment list (empty when it has none). Raises IndexCorrupt when damaged."""
    try:
        raw = json.loads((build_dir / SEGMENTS_FILE).read_text())
    except FileNotFoundError:
        return SegmentList()
    except (json.JSONDecodeError, UnicodeDecodeError, OSError):
        raw = None
    try:
        return SegmentList(int(raw["generation"]), int(raw["next_number"]),
                           [{"number": int(s["number"]), "name": str(s["name"]), "chunks": int(s["chunks"])}
                            for s in raw["segments"]],
                           {int(k): [str(d) for d in v] for k, v in raw["deleted"].items()}, dict(raw["corpus"]))
    except (TypeError, KeyError, ValueError, AttributeError):
        raise IndexCorrupt(f"The list of index updates {build_dir / SEGMENTS_FILE} is damaged; run "
                           "`citebot build` to rebuild the index.") from None


def write_segments(build_dir: Path, segments: SegmentList) -> None:
    """Replace segments.json atomically and durably: readers see the old list or the new one."""
    tmp = build_dir / (SEGMENTS_FILE + ".tmp")
    with open(tmp, "w") as f:
        f.write(segments.to_json())
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, build_dir / SEGMENTS_FILE)
    _fsync_dir(build_dir)


def sweep_segments(build_dir: Path, segments: SegmentList) -> None:
    """Remove segment folders no list names: an update killed before its list went live. Only
    under the build lock (a folder being written is not named yet either)."""
    folder = build_dir / SEGMENTS_DIR
    if not folder.is_dir():
        return
    named = {s["name"] for s in segments.segments}
    for path in folder.iterdir():
        if path.name not in named:
            log.info("Removing the unfinished index update %s", path.name)
            shutil.rmtree(path, ignore_errors=True)


def live_state(root: Path) -> str:
    """What is live, cheaply (asked before every question): the base build's name and the identity
    of its segment list file (an update replaces it: a new inode), "" when nothing is built,
    "(damaged)" when the pointer cannot be read. Loading the view reads and checks the list."""
    try:
        build = current_build_dir(root)
        if build is None:
            return ""
        stat = os.stat(build / SEGMENTS_FILE)
    except FileNotFoundError:
        return build.name
    except (IndexUnavailable, OSError):
        return "(damaged)"
    return f"{build.name}+{stat.st_ino}.{stat.st_mtime_ns}.{stat.st_size}"


@dataclass
class _Part:
    """The base (number 0) or one segment, with its masked rows."""

    number: int
    snapshot: IndexSnapshot
    deleted: np.ndarray | None  # bool per row, True: masked; None: nothing masked
    masked_docs: frozenset[str]
    masked: int = 0  # how many rows are masked
    _selector: object = None  # a FAISS selector of the live rows, made once, when many are masked
    _live: np.ndarray | None = None  # the live rows, made once (a foreign question's exact scan reads them)

    def __post_init__(self) -> None:
        self.masked = 0 if self.deleted is None else int(np.count_nonzero(self.deleted))

    def live_rows(self, allowed: np.ndarray | None) -> np.ndarray | None:
        """The allowed rows that are not masked (None: all rows, nothing masked)."""
        if self.deleted is None:
            return allowed
        if allowed is None:
            if self._live is None:  # racing threads make the same array: no lock needed
                self._live = np.flatnonzero(~self.deleted)
            return self._live
        return allowed[~self.deleted[allowed]]

    def live_selector(self):
        """The live rows as a FAISS bitmap selector, made once for this part (its bits must outlive
        every search that uses them, so the part keeps them)."""
        with _SELECTOR_LOCK:  # made once: a second one would free the bits the first is searching with
            if self._selector is None:
                import faiss

                bits = np.packbits(~self.deleted, bitorder="little")
                self._selector = (faiss.IDSelectorBitmap(len(self.deleted), faiss.swig_ptr(bits)), bits)
            return self._selector[0]


def _ids(number: int, rows) -> np.ndarray:
    return (np.int64(number) << SHIFT) | np.asarray(rows, dtype=np.int64)


class _ByIds:
    """Stored vectors of every part, indexed by global id (one id or an array of them): one of the
    parts' vector arrays, named by attribute (vectors, sentence_vectors, multilingual)."""

    def __init__(self, view: "SegmentedView", attribute: str):
        self._view = view
        self._attribute = attribute
        stored = getattr(view.parts[0].snapshot, attribute)
        self.dtype = stored.dtype  # as stored: float32 chunk vectors, float16 sentence and multilingual ones
        self.shape = (view.chunk_count, stored.shape[1])  # live ids, not consecutive

    def __getitem__(self, ids):
        if np.isscalar(ids):
            return self[np.asarray([ids])][0]
        ids = np.asarray(ids, dtype=np.int64)
        out = np.empty((len(ids), self.shape[1]), dtype=self.dtype)
        numbers = ids >> SHIFT
        for number in np.unique(numbers):
            part = self._view.part(int(number))
            at = np.flatnonzero(numbers == number)
            rows = ids[at] & ROW_MASK
            order = np.argsort(rows, kind="stable")  # sorted reads are kinder to a memory-mapped file
            source = getattr(part.snapshot, self._attribute)
            out[at[order]] = source[rows[order]]
        return out


class SegmentedView:
    """The live base build and its segments, searched as one index: the file store's IndexView.
    Read-only and shared between threads; an update makes a new view (reusing the loaded parts)."""

    def __init__(self, parts: list[_Part], segments: SegmentList, borrowed: frozenset[int] = frozenset()):
        self.parts = parts
        self._borrowed = borrowed  # ids of the snapshots another view loaded and lent: not ours to close
        self._by_number = {p.number: p for p in parts}
        self.segments = segments
        base = parts[0].snapshot
        self.build_dir = base.build_dir
        live = sum(p.snapshot.chunk_count - p.masked for p in parts)
        self._chunk_count = live
        lengths = sum(p.snapshot.postings.total_length(p.deleted) for p in parts)
        self._mean_length = lengths / live if live else 1.0
        docs = [(doc_id, published, source) for p in parts for doc_id, published, source
                in p.snapshot.documents() if doc_id not in p.masked_docs]
        self._documents = docs
        self.manifest = {
            **base.manifest, **segments.corpus,
            "documents": len(docs), "chunks": live,
            "sentences": sum(p.snapshot.manifest.get("sentences", 0) for p in parts),
            "segments": len(parts) - 1, "generation": segments.generation,
            "masked_chunks": sum(p.masked for p in parts),
            "index_bytes": sum(p.snapshot.manifest.get("index_bytes", 0) for p in parts),
        }
        if len(parts) > 1:
            self.manifest["built_at"] = max(p.snapshot.manifest.get("built_at", "") for p in parts)
        self.sentence_vectors = _ByIds(self, "sentence_vectors")
        self.vectors = _ByIds(self, "vectors")
        # Questions in other languages (CITEBOT_MULTILINGUAL): only when every part has the vectors.
        self.has_multilingual = all(p.snapshot.has_multilingual for p in parts)
        self.multilingual = _ByIds(self, "multilingual") if self.has_multilingual else None
        self._coverage: dict | None = None

    @classmethod
    def open(cls, root: Path, model: str | None = None, reuse: "SegmentedView | None" = None) -> "SegmentedView":
        """The live view; parts already loaded by reuse (the previous view) are shared, not loaded
        again, so an update costs what it added. Raises IndexUnavailable."""
        base_dir = current_build_dir(root)
        if base_dir is None:
            raise IndexMissing(f"There is no index in {root.resolve()} yet; run `citebot build` to create it "
                               "(or set CITEBOT_DATA_DIR to where it is).")
        loaded = {p.snapshot.build_dir: p.snapshot for p in reuse.parts} if reuse is not None else {}
        segments = read_segments(base_dir) if base_dir.is_dir() else SegmentList()
        parts: list[_Part] = []
        try:
            for number, folder in segments.folders(base_dir):
                snapshot = loaded.get(folder)
                if snapshot is None:
                    if number and not folder.is_dir():
                        raise IndexCorrupt(f"The index update {folder.name} is missing from {folder.parent}; run "
                                           "`citebot build` to rebuild the index.")
                    snapshot = IndexSnapshot.load(root, model, folder)
                    if number and snapshot.manifest.get("model") != parts[0].snapshot.manifest.get("model"):
                        raise IndexCorrupt(f"The index update {folder.name} was built with another model; run "
                                           "`citebot build` to rebuild the index.")
                docs = segments.deleted.get(number, [])
                deleted = None
                if docs:
                    deleted = np.zeros(snapshot.chunk_count, dtype=bool)
                    deleted[snapshot.rows_of_documents(docs)] = True
                parts.append(_Part(number, snapshot, deleted, frozenset(docs)))
        except BaseException:
            for part in parts:
                if part.snapshot not in loaded.values():
                    part.snapshot.close()
            raise
        lent = {id(s) for s in loaded.values()}
        return cls(parts, segments, frozenset(id(p.snapshot) for p in parts if id(p.snapshot) in lent))

    def part(self, number: int) -> _Part:
        return self._by_number[number]

    def _split(self, ids: Sequence[int]) -> dict[int, list[int]]:
        """Rows by part number, for the ids of live parts."""
        out: dict[int, list[int]] = {}
        for i in ids:
            number = int(i) >> SHIFT
            if number in self._by_number:
                out.setdefault(number, []).append(int(i) & ROW_MASK)
        return out

    @property
    def chunk_count(self) -> int:
        return self._chunk_count

    # -- searching ---------------------------------------------------------------------------------

    def dense(self, vector: np.ndarray, n: int, where: ChunkFilter | None = None) -> list[tuple[int, float]]:
        found: list[tuple[int, float]] = []
        for p in self.parts:
            allowed = p.snapshot.rows(where)  # None: no filter left (e.g. "latest" asked today)
            if p.deleted is None:
                hits = p.snapshot.dense_within(vector, n, allowed)
            elif allowed is None and p.masked < n * 4:
                # Few masked rows: ask for that many more and drop them (the index stays unfiltered).
                hits = [(r, s) for r, s in p.snapshot.dense_within(vector, n + p.masked, None) if not p.deleted[r]][:n]
            elif allowed is None:  # many masked rows: the index skips them (one bitmap, made once)
                hits = p.snapshot.dense_within(vector, n, None, selector=p.live_selector())
            else:
                hits = p.snapshot.dense_within(vector, n, p.live_rows(allowed))
            found += [(int(_ids(p.number, r)), s) for r, s in hits]
        found.sort(key=lambda x: (-x[1], x[0]))
        return found[:n]

    def multilingual_dense(self, vector: np.ndarray, n: int, where: ChunkFilter | None = None
                           ) -> list[tuple[int, float]]:
        """(id, cosine) of the n chunks nearest by the multilingual encoder's vectors (exact), best
        first; empty unless every part has them."""
        if not self.has_multilingual:
            return []
        found: list[tuple[int, float]] = []
        for p in self.parts:
            hits = p.snapshot.multilingual_within(vector, n, p.live_rows(p.snapshot.rows(where)))
            found += [(int(_ids(p.number, r)), s) for r, s in hits]
        found.sort(key=lambda x: (-x[1], x[0]))
        return found[:n]

    def statistics(self, tokens: Sequence[str]) -> CorpusStatistics:
        """The live corpus's statistics for these tokens: over every part, masked chunks left out."""
        frequencies: Counter[str] = Counter()
        for token in set(tokens):
            for p in self.parts:
                frequencies[token] += p.snapshot.postings.frequency(token, p.deleted)
        return CorpusStatistics(self._chunk_count, self._mean_length, {t: f for t, f in frequencies.items() if f})

    def lexical(self, tokens: Sequence[str], n: int, where: ChunkFilter | None = None) -> list[tuple[int, float]]:
        stats = self.statistics(tokens)
        if not stats.frequencies:
            return []
        found: list[tuple[int, float]] = []
        for p in self.parts:
            scores = p.snapshot.postings.scores(tokens, stats)
            if p.deleted is not None:
                scores[p.deleted] = 0.0
            allowed = p.snapshot.rows(where)
            if allowed is not None:
                kept = np.zeros_like(scores)
                kept[allowed] = scores[allowed]
                scores = kept
            found += [(int(_ids(p.number, r)), float(scores[r])) for r in top_k(scores, n)]
        found.sort(key=lambda x: (-x[1], x[0]))
        return found[:n]

    def document_frequencies(self, tokens: Sequence[str]) -> dict[str, int]:
        return self.statistics(tokens).frequencies

    def cosines(self, vector: np.ndarray, ids: Sequence[int]) -> dict[int, float]:
        out: dict[int, float] = {}
        for number, rows in self._split(ids).items():
            for row, cosine in self.part(number).snapshot.cosines(vector, rows).items():
                out[int(_ids(number, row))] = cosine
        return out

    def count(self, where: ChunkFilter | None = None) -> int:
        if not where:
            return self._chunk_count
        total = 0
        for p in self.parts:
            rows = p.snapshot.rows(where)
            total += p.snapshot.chunk_count - p.masked if rows is None else len(p.live_rows(rows))
        return total

    def _global(self, number: int, record: ChunkRecord) -> ChunkRecord:
        if not number:
            return record
        return replace(record, row=int(_ids(number, record.row)),
                       sentences=tuple((s, e, int(_ids(number, v))) for s, e, v in record.sentences))

    def chunks(self, ids: Sequence[int]) -> dict[int, ChunkRecord]:
        out: dict[int, ChunkRecord] = {}
        for number, rows in self._split(ids).items():
            p = self.part(number)
            for row, record in p.snapshot.chunks(rows).items():
                if p.deleted is None or not p.deleted[row]:
                    out[int(_ids(number, row))] = self._global(number, record)
        return out

    def neighbours(self, id: int, reach: int) -> dict[int, ChunkRecord]:
        number, row = int(id) >> SHIFT, int(id) & ROW_MASK
        if number not in self._by_number:
            return {}
        p = self.part(number)
        return {int(_ids(number, r)): self._global(number, c) for r, c in p.snapshot.neighbours(row, reach).items()
                if p.deleted is None or not p.deleted[r]}

    def leads(self, where: ChunkFilter | None = None) -> list[ChunkRecord]:
        out = []
        for p in self.parts:
            out += [self._global(p.number, c) for c in p.snapshot.leads(where)
                    if c.doc_id not in p.masked_docs]
        return sorted(out, key=lambda c: (c.published, c.row), reverse=True)

    def vectors_of(self, ids: Sequence[int]) -> np.ndarray:
        return self.vectors[np.asarray(ids, dtype=np.int64)]

    def coverage(self) -> dict:
        if self._coverage is None:
            days = [p[:10] for _, p, _ in self._documents if len(p) >= 10 and p[:4].isdigit() and p[4] == "-"
                    and p[5:7].isdigit() and p[7] == "-" and p[8:10].isdigit()]
            sources = Counter(source for _, _, source in self._documents if source)
            self._coverage = {"articles": len(self._documents), "first": min(days, default=""),
                              "last": max(days, default=""),
                              "sources": [{"source": s, "articles": n}
                                          for s, n in sorted(sources.items(), key=lambda x: (-x[1], x[0]))]}
        return self._coverage

    # -- what the builder reads ----------------------------------------------------------------------

    def signatures(self) -> dict[str, tuple[int, str]]:
        """doc_id -> (the number of the part holding it live, its signature)."""
        out = {}
        for p in self.parts:
            for doc_id, signature in p.snapshot.signatures():
                if doc_id not in p.masked_docs:
                    out[doc_id] = (p.number, signature)
        return out

    def _by_hash(self, method: str) -> dict[str, int]:
        """Content hash -> global id, from each part's own map (IndexSnapshot.vectors_by_hash or
        sentence_vectors_by_hash); the first part holding a text lends it."""
        known: dict[str, int] = {}
        for p in self.parts:
            for h, row in getattr(p.snapshot, method)()[0].items():
                known.setdefault(h, int(_ids(p.number, row)))
        return known

    def vectors_by_hash(self) -> tuple[dict[str, int], "_ByIds"]:
        return self._by_hash("vectors_by_hash"), self.vectors

    def sentence_vectors_by_hash(self) -> tuple[dict[str, int], "_ByIds"]:
        return self._by_hash("sentence_vectors_by_hash"), self.sentence_vectors

    def vector_damage(self) -> str | None:
        for p in self.parts:
            damage = p.snapshot.vector_damage()
            if damage is not None:
                return f"{p.snapshot.build_dir.name}: {damage}"
        return None

    def merge_due(self, policy: MergePolicy) -> bool:
        """Whether the segments should now be merged into a new base."""
        base = self.parts[0].snapshot.chunk_count or 1
        segment_chunks = sum(p.snapshot.chunk_count for p in self.parts[1:])
        return (len(self.parts) - 1 > policy.max_segments or segment_chunks > policy.max_segment_share * base
                or sum(p.masked for p in self.parts) > policy.max_deleted_share * base)

    def close(self) -> None:
        """Close the parts this view loaded; parts lent by another view stay open for it."""
        for p in self.parts:
            if id(p.snapshot) not in self._borrowed:
                p.snapshot.close()


def indexed_paths(root: Path) -> frozenset[str]:
    """The corpus paths of the live documents (base and segments, masked ones left out); none
    when there is no readable index. Reads the metadata only, not the vectors."""
    import sqlite3

    try:
        base = current_build_dir(root)
        if base is None:
            return frozenset()
        segments = read_segments(base)
        out: set[str] = set()
        for number, folder in segments.folders(base):
            masked = set(segments.deleted.get(number, ()))
            db = sqlite3.connect(f"file:{folder / 'meta.sqlite'}?mode=ro", uri=True)
            try:
                out.update(path for doc_id, path in db.execute("SELECT doc_id, path FROM documents")
                           if doc_id not in masked)
            finally:
                db.close()
        return frozenset(out)
    except (IndexUnavailable, sqlite3.Error, OSError):
        return frozenset()
