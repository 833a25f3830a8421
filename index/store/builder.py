"""Build the index: corpus folder -> documents -> chunks -> vectors (reused when unchanged) -> store."""
from __future__ import annotations

import hashlib
import json
import logging
import shutil
import sqlite3
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import numpy as np

from ..ingest.cache import BuildCache, cache_path
from ..ingest.chunking import Chunk, chunk_document, embedding_text
from ..config import Settings
from ..ingest.documents import Corpus, SkippedFile, load_corpus
from ..encoders.embedding import BulkEmbedder
from ..encoders.multilingual import ENCODER_ID, load_shared
from ..errors import BuildError, is_disk_full
from ..ingest.language import main_language
from .files import (BuildLock, IndexSnapshot, IndexUnavailable, IndexWriter, current_build_dir, intact_builds,
                    prune_builds, read_manifest)
from .segments import (SEGMENTS_DIR, MergePolicy, SegmentedView, indexed_paths, read_segments, sweep_segments,
                       write_segments)
from ..search.tokenize import tokenize

log = logging.getLogger(__name__)

# progress(stage, done, total): stage is "read", "embed" or "write".
Progress = Callable[[str, int, int], None]
# announce(sentence): said once, early, when the embedding will take long (EmbeddingWatch).
Announce = Callable[[str], None]


@dataclass
class BuildReport:
    """What a build did, for the build summary, `citebot stats` and the bot's /reindex."""

    build_dir: Path | None
    documents: int
    chunks: int
    embedded: int  # chunks through the model
    reused: int  # chunks whose vectors came from the previous build
    seconds: float
    sentences_embedded: int = 0  # distinct sentences through the model (they re-score and pick excerpts)
    multilingual_embedded: int = 0  # chunks through the multilingual encoder (CITEBOT_MULTILINGUAL)
    multilingual_note: str = ""  # why a build asked for multilingual vectors has none
    duplicate_chunks: int = 0  # chunks whose text another new chunk has: embedded once, copied
    unchanged: bool = False
    skipped: list[SkippedFile] = field(default_factory=list)
    duplicates: list[SkippedFile] = field(default_factory=list)
    foreign_paragraphs: int = 0
    segment: str = ""  # the update went into this new segment (a few articles), not a whole build
    written: int = 0  # articles the update wrote into its segment (new, or a new version)
    removed: int = 0  # articles masked by the update (removed from the corpus, or replaced by a new version)
    merge_due: bool = False  # the segments have passed the merge policy: a whole build should follow

    def summary(self) -> str:
        if self.unchanged:
            head = f"Index is up to date: {self.documents} documents, {self.chunks} chunks (nothing to embed)."
        elif self.segment:
            head = (
                f"Indexed {self.documents} documents as {self.chunks} chunks in {self.seconds:.1f} s, as an update: "
                f"{self.written} article(s) written ({self.embedded} chunks embedded, {self.reused} reused), "
                f"{self.removed} old version(s) or removed article(s) left out."
            )
        else:
            head = (
                f"Indexed {self.documents} documents as {self.chunks} chunks in {self.seconds:.1f} s "
                f"({self.embedded} embedded, {self.reused} reused; {self.sentences_embedded} new sentences embedded)."
            )
        lines = [head]
        if self.multilingual_embedded:
            lines.append(f"{self.multilingual_embedded} chunk(s) embedded for questions in other languages.")
        if self.multilingual_note:
            lines.append(self.multilingual_note)
        if self.duplicate_chunks:
            lines.append(f"{self.duplicate_chunks} chunk(s) repeat another chunk's text: embedded once.")
        if self.duplicates:
            lines.append(f"{len(self.duplicates)} duplicate document(s) indexed once.")
        if self.foreign_paragraphs:
            lines.append(f"{self.foreign_paragraphs} paragraph(s) not in the corpus language left out of search.")
        if self.skipped:
            lines.append(f"Skipped {len(self.skipped)} file(s):")
            lines += [f"  {s.path}: {s.reason}" for s in self.skipped]
        return "\n".join(lines)


def chunk_hash(model: str, text: str) -> str:
    """Identity of a chunk's vector: the same text through the same model gives the same vector."""
    return hashlib.sha256(f"{model}\0{text}".encode()).hexdigest()[:32]


def _fingerprint(settings: Settings, language: str, corpus: Corpus) -> str:
    h = hashlib.sha256(
        f"{settings.model}|{settings.chunk_words}|{settings.overlap_words}|{language}|{settings.dense_index}".encode()
        + (b"|multilingual" if settings.multilingual and multilingual_encoder() is not None else b"")
    )
    for doc in corpus.documents:
        h.update(f"\n{doc.doc_id}|{doc.source}|{doc.url}|{doc.published}".encode())
    for left_out in corpus.skipped + corpus.duplicates:
        h.update(f"\nleft out|{left_out.path}|{left_out.reason}".encode())
    return h.hexdigest()[:32]


def _previous(root: Path, model: str, reuse: SegmentedView | None = None
              ) -> tuple[dict | None, SegmentedView | IndexSnapshot | None]:
    """The live index's manifest and view (base and segments), if it loads. Loading it whole (not
    just reading its manifest) proves it intact as far as serving checks (shapes, a sample of
    norms): a damaged index is rebuilt, never reported up to date. The vectors' checksums are
    checked only where vectors are copied from it (lender()).

    When the live build or the CURRENT pointer is damaged, the newest intact build still lends its
    vectors to the rebuild (its manifest is not returned: the rebuild must happen)."""
    live = None
    try:
        build_dir = live = current_build_dir(root)
        if build_dir is None:
            return None, None
        read_manifest(build_dir)
        snapshot = SegmentedView.open(root, model, reuse=reuse)  # reuse: a serving engine's parts, not reloaded
        return snapshot.manifest, snapshot
    except IndexUnavailable as exc:
        log.warning("Not reusing the live index: %s", exc)
    return None, _intact_build(root, model, skip=live)


def _intact_build(root: Path, model: str, skip: Path | None = None) -> IndexSnapshot | None:
    """The newest build folder that loads and whose vectors match their checksums (skip: one
    already found wanting), to lend its vectors to a rebuild."""
    for build_dir in intact_builds(root):
        if build_dir == skip:
            continue
        try:
            snapshot = IndexSnapshot.load(root, model, build_dir)
        except IndexUnavailable:
            continue
        if snapshot.vector_damage() is not None:
            snapshot.close()
            continue
        log.info("Reusing vectors from the intact build %s", build_dir.name)
        return snapshot
    return None


def _lender(root: Path, model: str, previous):
    """What a whole build copies vectors from: the live view when its vectors match their
    checksums, else the newest intact build (or nothing)."""
    if isinstance(previous, SegmentedView):
        damage = previous.vector_damage()
        if damage is None:
            return previous
        log.warning("Not reusing the live index's vectors: %s; what no intact build holds is embedded again", damage)
        live = previous.build_dir
        previous.close()
        return _intact_build(root, model, skip=live)
    return previous


def build_index(
    settings: Settings,
    corpus_dir: Path | None = None,
    embedder: BulkEmbedder | None = None,
    progress: Progress | None = None,
    force: bool = False,
    announce: Announce | None = None,
    policy: MergePolicy = MergePolicy(),
    live: SegmentedView | None = None,
) -> BuildReport:
    """Bring the index up to date with a corpus folder; what is new goes live atomically.

    Unchanged corpora are detected by fingerprint and left alone (unless force). A few new,
    changed or removed articles become a new segment and a deletion list (index/store/segments.py);
    more, or force, make a whole build, in which only chunks whose text is new are embedded, the
    rest reuse the live index's vectors. The report says when the segments should be merged
    (a whole build: build_index(force=True)). live: the view a serving engine has loaded; the
    parts it holds are shared rather than loaded again (and left open).
    """
    began = time.perf_counter()
    root = settings.index_root
    corpus_dir = Path(corpus_dir or settings.corpus_dir)
    with BuildLock(root):
        cache = BuildCache(cache_path(root))
        try:
            return _build(settings, corpus_dir, embedder, progress, force, cache, began, announce, policy, live)
        finally:
            cache.save()
            cache.close()


@dataclass
class CorpusRead:
    """Stage 1a, read: the corpus's documents, its main language, and the fingerprint that says
    whether a build would change anything."""

    corpus_dir: Path
    corpus: Corpus
    language: str
    foreign_paragraphs: int  # paragraphs in another language, left out of search
    fingerprint: str


@dataclass
class BuildPlan:
    """Stage 1b, plan: the chunks to index, with their BM25 tokens, the texts the model reads for
    them and for each distinct sentence, and those texts' identities (vectors are reused by them)."""

    read: CorpusRead
    chunks: list[Chunk]
    tokens: list[list[str]]
    texts: list[str]
    hashes: list[str]
    sentence_row: dict[str, int]  # each distinct sentence text -> its row (overlapping chunks share them)
    sentence_hashes: list[str]

    @property
    def sentence_texts(self) -> list[str]:
        return list(self.sentence_row)


@dataclass
class BuildVectors:
    """Stage 2, vectors: one per chunk and one per distinct sentence, and how each was obtained."""

    chunks: np.ndarray
    sentences: np.ndarray
    embedded: int  # chunks through the model
    reused: int  # chunks whose vectors came from an earlier build
    duplicate_chunks: int  # chunks repeating another new chunk's text: embedded once, copied
    sentences_embedded: int
    multilingual: np.ndarray | None = None  # the multilingual encoder's chunk vectors (CITEBOT_MULTILINGUAL)
    multilingual_hashes: list[str] = field(default_factory=list)
    multilingual_embedded: int = 0


def _build(settings, corpus_dir, embedder, progress, force, cache: BuildCache, began: float,
           announce: Announce | None = None, policy: MergePolicy = MergePolicy(),
           live: SegmentedView | None = None) -> BuildReport:
    """build_index under the lock: read -> (up to date?) -> (a segment?) -> plan -> vectors -> write."""
    root = settings.index_root
    read = read_corpus(corpus_dir, settings, progress, cache)
    previous_manifest, previous = _previous(root, settings.model, live)
    corpus = read.corpus
    report = BuildReport(
        build_dir=None, documents=len(corpus.documents), chunks=0, embedded=0, reused=0, seconds=0.0,
        skipped=corpus.skipped, duplicates=corpus.duplicates, foreign_paragraphs=read.foreign_paragraphs,
    )
    try:
        if previous_manifest is not None and not force and previous_manifest.get("corpus_fingerprint") == read.fingerprint:
            report.build_dir, report.chunks, report.unchanged = previous.build_dir, previous_manifest["chunks"], True
            prune_builds(root)
            report.seconds = time.perf_counter() - began
            return report
        if isinstance(previous, SegmentedView) and not force and _same_layout(previous.manifest, settings, read):
            update = plan_update(previous, read, settings)
            if update.size <= policy.whole_build_share * max(previous.manifest["documents"], 1):
                append_segment(settings, read, previous, update, cache, embedder, progress, announce, policy, report)
                cache.keep_chunkings()
                report.seconds = time.perf_counter() - began
                return report
            log.info("%d of %d articles changed: a whole build", update.size, previous.manifest["documents"])
        previous = _lender(root, settings.model, previous)
        if previous is not None:
            _keep_in_cache(previous, cache)
        plan = plan_build(read, settings, cache)
        vectors = build_vectors(plan, settings, previous, embedder, progress, announce, cache)
        if settings.multilingual:
            report.multilingual_note = add_multilingual(vectors, plan, previous, progress, cache, announce)
    finally:
        if previous is not None:
            previous.close()
    report.embedded, report.reused = vectors.embedded, vectors.reused
    report.duplicate_chunks, report.sentences_embedded = vectors.duplicate_chunks, vectors.sentences_embedded
    report.chunks = len(plan.chunks)
    report.build_dir = write_build(root, plan, vectors, settings, progress, began)
    # Live now: the cache keeps this build's vectors and forgets older ones.
    cache.keep_vectors("chunk", plan.hashes)
    cache.keep_vectors("sentence", plan.sentence_hashes)
    if vectors.multilingual is not None:
        cache.keep_vectors("multilingual", vectors.multilingual_hashes)
    report.multilingual_embedded = vectors.multilingual_embedded
    report.seconds = time.perf_counter() - began
    log.info("Built index %s", report.build_dir.name)
    return report


def _same_layout(manifest: dict, settings: Settings, read: CorpusRead) -> bool:
    """Whether new chunks can join the live index as a segment: same model, chunking and language
    (anything else changes every chunk: a whole build)."""
    return (manifest.get("model") == settings.model and manifest.get("chunk_words") == settings.chunk_words
            and manifest.get("overlap_words") == settings.overlap_words and manifest.get("language") == read.language
            and manifest.get("dense_index_setting") == settings.dense_index
            and bool(manifest.get("multilingual")) == bool(settings.multilingual and multilingual_encoder() is not None))


@dataclass
class SegmentUpdate:
    """What an update changes in the live index: articles to write (new, or a new version) and
    articles to mask (removed from the corpus, or replaced), each by the number of the part
    holding it live."""

    changed: list  # Documents
    masked: dict[str, int]  # doc_id -> number of its part (0: the base)

    @property
    def size(self) -> int:
        return len(self.changed) + sum(1 for _ in self.masked)


def plan_update(live: SegmentedView, read: CorpusRead, settings: Settings, removals: bool = True) -> SegmentUpdate:
    """Compare the corpus with the live index by document signature. removals=False: the corpus
    read holds only new articles (nothing indexed is taken as removed)."""
    signature = {d.doc_id: document_signature(d, read.language, settings) for d in read.corpus.documents}
    indexed = live.signatures()
    changed = [d for d in read.corpus.documents if indexed.get(d.doc_id, (0, ""))[1] != signature[d.doc_id]]
    masked = {d.doc_id: indexed[d.doc_id][0] for d in changed if d.doc_id in indexed}
    if removals:
        masked.update({doc_id: number for doc_id, (number, _) in indexed.items() if doc_id not in signature})
    return SegmentUpdate(changed, masked)


def append_segment(settings: Settings, read: CorpusRead, live: SegmentedView, update: SegmentUpdate,
                   cache: BuildCache, embedder, progress: Progress | None, announce: Announce | None,
                   policy: MergePolicy, report: BuildReport | None = None) -> BuildReport:
    """Write the update's articles as a new segment and mask the ones it removes or replaces, then
    publish the new segment list atomically (under the build lock). Vectors are reused from the
    live index and the build cache by content hash; the rest are embedded."""
    began = time.perf_counter()
    corpus = read.corpus
    report = report or BuildReport(build_dir=None, documents=len(corpus.documents), chunks=0, embedded=0,
                                   reused=0, seconds=0.0)
    base_dir = live.build_dir
    segments = read_segments(base_dir)
    sweep_segments(base_dir, segments)
    if update.changed:
        plan = plan_build(_part(read, update.changed), settings, cache)
        # The build cache holds every live vector (whole builds keep theirs, updates add theirs): no
        # need to read, or checksum, the live index's vector files for a few articles.
        vectors = build_vectors(plan, settings, None, embedder, progress, announce, cache)
        if settings.multilingual:
            report.multilingual_note = add_multilingual(vectors, plan, None, progress, cache, announce)
            report.multilingual_embedded = vectors.multilingual_embedded
        number = segments.next_number
        name = f"{number:06d}-{uuid.uuid4().hex[:6]}"
        folder = write_build(settings.index_root, plan, vectors, settings, progress, began,
                             segment=(base_dir / SEGMENTS_DIR, name))
        segments.segments.append({"number": number, "name": folder.name, "chunks": len(plan.chunks)})
        segments.next_number += 1
        report.embedded, report.reused = vectors.embedded, vectors.reused
        report.duplicate_chunks, report.sentences_embedded = vectors.duplicate_chunks, vectors.sentences_embedded
        report.segment = folder.name
    else:
        report.segment = "(masks only)"
    for doc_id, number in update.masked.items():
        segments.deleted.setdefault(number, []).append(doc_id)
    segments.generation += 1
    segments.corpus = {
        "corpus_fingerprint": read.fingerprint, "corpus_dir": str(read.corpus_dir), "files_read": corpus.files_read,
        "skipped_files": [{"path": s.path, "reason": s.reason} for s in corpus.skipped],
        "duplicate_documents": [{"path": s.path, "reason": s.reason} for s in corpus.duplicates],
        "foreign_paragraphs": read.foreign_paragraphs, "embedded": report.embedded, "reused": report.reused,
        "updated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    write_segments(base_dir, segments)
    report.written, report.removed = len(update.changed), len(update.masked)
    report.build_dir = base_dir
    view = SegmentedView.open(settings.index_root, settings.model, reuse=live)
    report.chunks, report.documents = view.chunk_count, view.manifest["documents"]
    report.merge_due = view.merge_due(policy)
    view.close()  # only the new segment's part: the others are the live view's
    report.seconds = time.perf_counter() - began
    log.info("Index update %s: %d article(s) written, %d masked (%d segment(s) live)", report.segment,
             len(update.changed), len(update.masked), len(view.parts) - 1)
    return report


def read_corpus(corpus_dir: Path, settings: Settings, progress: Progress | None, cache: BuildCache,
                keep: frozenset[str] | None = None) -> CorpusRead:
    """Stage 1a: the documents of corpus_dir (files unchanged since the last build come from the cache).
    keep: the paths the live index holds (default: the file index's)."""
    try:
        # Of two copies, the one the live index holds stays: a new copy never replaces it.
        keep = indexed_paths(settings.index_root) if keep is None else keep
        corpus = load_corpus(corpus_dir, progress=lambda d, t: progress and progress("read", d, t), cache=cache,
                             max_bytes=settings.max_file_bytes, keep=keep,
                             links_out=settings.corpus_links_out)
    except FileNotFoundError as exc:
        raise BuildError(str(exc)) from None
    if not corpus.documents:
        raise BuildError(
            f"No readable articles in {corpus_dir} ({corpus.files_read} file(s) read); "
            "see corpus/README.md for the accepted formats."
        )
    language = main_language((p.language, p.end - p.start) for d in corpus.documents for p in d.paragraphs)
    foreign = sum(1 for d in corpus.documents for p in d.paragraphs if p.language and p.language != language)
    return CorpusRead(corpus_dir, corpus, language, foreign, _fingerprint(settings, language, corpus))


def plan_build(read: CorpusRead, settings: Settings, cache: BuildCache) -> BuildPlan:
    """Stage 1b: chunk every document and name every text the model must read."""
    titles = {d.doc_id: d.title for d in read.corpus.documents}
    chunks: list[Chunk] = []
    tokens: list[list[str]] = []
    for d in read.corpus.documents:
        for chunk, chunk_tokens in _doc_chunks(d, read.language, settings, cache):
            chunks.append(chunk)
            tokens.append(chunk_tokens)
    if not chunks:
        raise BuildError(f"The articles in {read.corpus_dir} hold no text to index.")
    texts = [embedding_text(titles[c.doc_id], c.text) for c in chunks]
    # Sentences re-score candidates and pick excerpts. Overlapping chunks share sentences:
    # each distinct sentence is stored and embedded once.
    sentence_row: dict[str, int] = {}
    for c in chunks:
        for s, e in c.sentences:
            sentence_row.setdefault(c.text[s:e], len(sentence_row))
    return BuildPlan(
        read, chunks, tokens, texts, [chunk_hash(settings.model, t) for t in texts],
        sentence_row, [chunk_hash(settings.model, t) for t in sentence_row],
    )


def write_build(root: Path, plan: BuildPlan, vectors: BuildVectors, settings: Settings,
                progress: Progress | None, began: float, segment: tuple[Path, str] | None = None) -> Path:
    """Stage 3: write every part of the build and make it live (atomically); returns its folder.
    segment (folder, name): write a segment there instead, finished but not live (the caller
    publishes it in the segment list)."""
    corpus = plan.read.corpus
    try:
        writer = IndexWriter(root, *segment) if segment else IndexWriter(root)
    except (OSError, sqlite3.Error) as exc:
        if is_disk_full(exc):
            raise _disk_full_error(root, vectors, corpus) from exc
        raise
    try:
        if progress:
            progress("write", 0, 1)
        language = plan.read.language
        writer.add_documents(
            (d.doc_id, d.title, d.source, d.url, d.published, d.path, document_signature(d, language, settings),
             d.text) for d in corpus.documents
        )
        writer.add_chunks(
            (row, c.chunk_id, c.doc_id, c.ordinal, c.start, c.end, c.text, h,
             json.dumps([[s, e, plan.sentence_row[c.text[s:e]]] for s, e in c.sentences]))
            for row, (c, h) in enumerate(zip(plan.chunks, plan.hashes))
        )
        writer.add_sentences(enumerate(plan.sentence_hashes))
        dense_index = writer.write_vectors(vectors.chunks, settings.dense_index)
        writer.write_sentence_vectors(vectors.sentences)
        writer.write_postings(plan.tokens)
        manifest = _manifest(plan, vectors, settings, dense_index, time.perf_counter() - began)
        if vectors.multilingual is not None:
            writer.write_multilingual(vectors.multilingual)
            manifest["multilingual"] = {"encoder": ENCODER_ID, "dim": int(vectors.multilingual.shape[1])}
        build_dir = writer.seal(manifest) if segment else writer.commit(manifest)
        if progress:
            progress("write", 1, 1)
        return build_dir
    except BaseException as exc:
        writer.abort()
        if is_disk_full(exc):
            raise _disk_full_error(root, vectors, corpus) from exc
        raise


def _manifest(plan: BuildPlan, vectors: BuildVectors, settings: Settings, dense_index: dict, seconds: float) -> dict:
    read, corpus = plan.read, plan.read.corpus
    return {
        "model": settings.model,
        "dim": int(vectors.chunks.shape[1]),
        "dense_index": dense_index,
        "dense_index_setting": settings.dense_index,  # auto, flat or hnsw: another setting is a whole build
        "documents": len(corpus.documents),
        "chunks": len(plan.chunks),
        "sentences": len(plan.sentence_row),
        "files_read": corpus.files_read,
        "skipped_files": [{"path": s.path, "reason": s.reason} for s in corpus.skipped],
        "duplicate_documents": [{"path": s.path, "reason": s.reason} for s in corpus.duplicates],
        "foreign_paragraphs": read.foreign_paragraphs,
        "language": read.language,
        "chunk_words": settings.chunk_words,
        "overlap_words": settings.overlap_words,
        "corpus_dir": str(read.corpus_dir),
        "corpus_fingerprint": read.fingerprint,
        "embedded": vectors.embedded,
        "reused": vectors.reused,
        "built_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "build_seconds": round(seconds, 2),
    }


def _doc_chunks(doc, language: str, settings: Settings, cache: BuildCache) -> list[tuple[Chunk, list[str]]]:
    """A document's chunks (with their sentences) and BM25 tokens, from the cache when this
    document was chunked with these settings before."""
    key = f"{doc.doc_id}|{doc.title}|{language}|{settings.chunk_words}|{settings.overlap_words}"
    cached = cache.chunks(key)
    if cached is not None:
        return [
            (Chunk(chunk_id, doc.doc_id, ordinal, start, end, doc.text[start:end], tuple(tuple(s) for s in spans)),
             tokens)
            for chunk_id, ordinal, start, end, spans, tokens in cached
        ]
    out = [
        (c, tokenize(embedding_text(doc.title, c.text)))
        for c in chunk_document(doc, language, settings.chunk_words, settings.overlap_words)
    ]
    cache.put_chunks(key, [[c.chunk_id, c.ordinal, c.start, c.end, c.sentences, tk] for c, tk in out])
    return out


def _disk_full_error(root: Path, vectors: "BuildVectors", corpus: Corpus) -> BuildError:
    """One sentence: which disk, about how much the build needs, how much is free."""
    # vectors.npy and dense.faiss, float16 sentences, and the text in SQLite and BM25 (about 3x).
    need = 2 * vectors.chunks.nbytes + vectors.sentences.size * 2 + 3 * sum(len(d.text) for d in corpus.documents)
    try:
        free = shutil.disk_usage(root).free
    except OSError:
        free = 0
    return BuildError(
        f"The disk holding {root.resolve()} is full: this build needs about {need / 2**20:.1f} MB and "
        f"{free / 2**20:.1f} MB are free. Free some space and run `citebot build` again; the previous "
        "index is untouched."
    )


def _keep_in_cache(previous: IndexSnapshot, cache: BuildCache) -> None:
    """Put the vectors of an intact build that the cache lacks into it (once: a build from before
    the cache kept vectors, or a cache that was damaged and started again)."""
    for kind, (known, old) in (("chunk", previous.vectors_by_hash()),
                               ("sentence", previous.sentence_vectors_by_hash())):
        have = cache.vector_hashes(kind)
        missing = sorted((row, h) for h, row in known.items() if h not in have)
        if missing:
            log.info("Keeping %d %s vectors of %s in the build cache", len(missing), kind, previous.build_dir.name)
            for first in range(0, len(missing), 4096):  # bounded reads, whole blocks at a time
                block = missing[first:first + 4096]
                vectors = old[np.asarray([row for row, _ in block], dtype=np.int64)]
                cache.put_vectors(kind, ((h, v) for (_, h), v in zip(block, vectors)))


def build_vectors(plan: BuildPlan, settings: Settings, previous: IndexSnapshot | None,
                  embedder: BulkEmbedder | None, progress: Progress | None,
                  announce: Announce | None = None, cache: BuildCache | None = None) -> BuildVectors:
    """Stage 2: vectors for every chunk and sentence: copied from an earlier build when the text's
    hash matches, else from the build cache, else embedded once per distinct text, straight into
    the final arrays (one progress bar covers chunks and sentences)."""
    hashes, sentence_hashes = plan.hashes, plan.sentence_hashes
    known: dict[str, int] = {}
    known_sentences: dict[str, int] = {}
    old = old_sentences = None
    if previous is not None:
        known, old = previous.vectors_by_hash()
        known_sentences, old_sentences = previous.sentence_vectors_by_hash()
    dim_hint = old.shape[1] if old is not None else None
    cached = cache.vectors("chunk", (h for h in hashes if h not in known), dim_hint) if cache else {}
    cached_sentences = cache.vectors("sentence", (h for h in sentence_hashes if h not in known_sentences),
                                     dim_hint) if cache else {}
    todo, copies = _plan(hashes, known.keys() | cached.keys())
    todo_sentences, _ = _plan(sentence_hashes, known_sentences.keys() | cached_sentences.keys())  # distinct already
    if todo or todo_sentences:
        embedder = embedder or BulkEmbedder(settings.model, precision=settings.precision)
        dim = embedder.dim
        if any(len(v) != dim for v in (*cached.values(), *cached_sentences.values())):  # another model's
            cached, cached_sentences = {}, {}
            todo, copies = _plan(hashes, known.keys())
            todo_sentences, _ = _plan(sentence_hashes, known_sentences.keys())
    elif old is not None:
        dim = old.shape[1]
    elif cached:
        dim = len(next(iter(cached.values())))
    else:
        raise BuildError("There is nothing to embed and no previous index to copy vectors from.")
    reused = len(hashes) - len(todo) - len(copies)
    vectors = np.empty((len(hashes), dim), dtype=np.float32)
    sentence_vectors = np.empty((len(sentence_hashes), dim), dtype=np.float32)
    _copy_known(vectors, hashes, known, old)
    _copy_known(sentence_vectors, sentence_hashes, known_sentences, old_sentences)
    for out, wanted, found in ((vectors, hashes, cached), (sentence_vectors, sentence_hashes, cached_sentences)):
        for row, h in enumerate(wanted):
            if h in found:
                out[row] = found[h]
    if cached or cached_sentences:
        log.info("%d chunk and %d sentence vectors came from the build cache", len(cached), len(cached_sentences))
    total = len(todo) + len(todo_sentences)
    if total:
        log.info("Embedding %d new chunks (%d reused, %d duplicates) and %d new sentences",
                 len(todo), reused, len(copies), len(todo_sentences))
        watch = EmbeddingWatch(total, announce=announce)

        def step(offset: int):
            def report(done: int, _: int) -> None:
                watch.update(offset + done)
                if progress:
                    progress("embed", offset + done, total)
            return report

        embedder.embed_into([plan.texts[i] for i in todo], vectors, todo, step(0))
        sentence_texts = plan.sentence_texts
        embedder.embed_into([sentence_texts[i] for i in todo_sentences], sentence_vectors, todo_sentences,
                            step(len(todo)))
    elif progress:
        progress("embed", 0, 0)
    for row, first in copies:
        vectors[row] = vectors[first]
    if cache is not None:  # the new vectors outlive this build: a damaged build is rewritten, not re-embedded
        cache.put_vectors("chunk", ((hashes[i], vectors[i]) for i in todo))
        cache.put_vectors("sentence", ((sentence_hashes[i], sentence_vectors[i]) for i in todo_sentences))
    return BuildVectors(vectors, sentence_vectors, len(todo), reused, len(copies), len(todo_sentences))


def multilingual_encoder():
    """The multilingual encoder, or None (said once in the log) when it cannot be loaded."""
    return load_shared()[0]


def load_multilingual():
    """(the multilingual encoder, "") or, when it cannot be loaded, (None, the sentence saying why a
    build has no vectors for questions in other languages; English search is built as usual)."""
    encoder, why = load_shared()
    return encoder, f"No vectors for questions in other languages: {why}" if why else ""


def add_multilingual(vectors: BuildVectors, plan: BuildPlan, previous: IndexSnapshot | None,
                     progress: Progress | None, cache: BuildCache | None, announce: Announce | None = None) -> str:
    """CITEBOT_MULTILINGUAL: the multilingual encoder's vector of every chunk into vectors
    (multilingual_vectors). Returns "" or the sentence saying why this build has none."""
    encoder, note = load_multilingual()
    if encoder is not None:
        vectors.multilingual, vectors.multilingual_hashes, vectors.multilingual_embedded = multilingual_vectors(
            encoder, plan, previous, progress, cache, announce)
    return note


def multilingual_vectors(encoder, plan: BuildPlan, previous: IndexSnapshot | None, progress: Progress | None,
                         cache: BuildCache | None, announce: Announce | None = None
                         ) -> tuple[np.ndarray, list[str], int]:
    """The multilingual encoder's vector of every chunk of the plan, copied from the previous build
    (by the chunk's content hash) or the build cache when its text was embedded before, else
    embedded: (vectors, their content hashes, how many were embedded)."""
    hashes = [chunk_hash(ENCODER_ID, t) for t in plan.texts]
    out = np.empty((len(hashes), encoder.dim), dtype=np.float32)
    done = np.zeros(len(hashes), dtype=bool)
    old = None
    if previous is not None and (previous.manifest.get("multilingual") or {}).get("encoder") == ENCODER_ID:
        old = previous.multilingual
    if old is not None:  # rows of the previous build by its chunks' (English model's) hashes
        known, _ = previous.vectors_by_hash()
        _copy_known(out, plan.hashes, known, old)
        done[[i for i, h in enumerate(plan.hashes) if h in known]] = True
    if cache is not None:
        found = cache.vectors("multilingual", (h for h, d in zip(hashes, done) if not d), encoder.dim)
        for i, h in enumerate(hashes):
            if not done[i] and h in found:
                out[i], done[i] = found[h], True
    todo, copies = _plan([h if not d else "" for h, d in zip(hashes, done)], {""})
    if todo:
        log.info("Embedding %d chunks for questions in other languages (%d reused)", len(todo), int(done.sum()))
        # This encoder is 5-10 times slower than the English model: a long run is announced too.
        watch = EmbeddingWatch(len(todo), announce=announce, what="passages for questions in other languages")

        def step(done_now: int, total: int) -> None:
            watch.update(done_now)
            if progress:
                progress("multilingual", done_now, total)

        out[todo] = encoder.passages([plan.texts[i] for i in todo], step)
        if cache is not None:
            cache.put_vectors("multilingual", ((hashes[i], out[i]) for i in todo))
    for row, first in copies:
        out[row] = out[first]
    return out, hashes, len(todo)


LONG_BUILD_S = 1800  # embedding estimated to take longer than this is announced (a BBC-sized build is not)
RATE_AFTER_S = 5.0  # seconds of embedding before the rate is trusted


class EmbeddingWatch:
    """Measures the embedding rate as a build goes and warns once, early, when the rest will take
    long (a 50 MB file of unique text is many hours on two cores): the admin can stop it then."""

    def __init__(self, total: int, clock=time.perf_counter, announce: Announce | None = None,
                 what: str = "passages and sentences"):
        self.total = total
        self.what = what  # what is embedded, as the warning names it
        self.clock = clock
        self.began = clock()
        self.warned = False
        self.announce = announce  # also told (the bot edits its status message with it)

    def update(self, done: int) -> None:
        elapsed = self.clock() - self.began
        if self.warned or done <= 0 or elapsed < RATE_AFTER_S:
            return
        rate = done / elapsed
        left = (self.total - done) / rate
        if left > LONG_BUILD_S:
            self.warned = True
            log.warning("This build embeds %s %s: about %s more at the measured %.0f a second. "
                        "Stop it with Ctrl-C if that is not what you meant (the live index is untouched); "
                        "CITEBOT_MAX_FILE_MB caps the size of a corpus file.", f"{self.total:,}", self.what,
                        say_duration(left), rate)
            if self.announce is not None:
                self.announce(f"This index update embeds {self.total:,} {self.what}: about "
                              f"{say_duration(left)} more at the measured {rate:.0f} a second; questions are "
                              "answered from the current index meanwhile.")


def say_duration(seconds: float) -> str:
    """'2 h 5 min', '14 min', '40 s'."""
    if seconds >= 3600:
        return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60)} min"
    if seconds >= 60:
        return f"{round(seconds / 60)} min"
    return f"{round(seconds)} s"


def _plan(hashes: list[str], known) -> tuple[list[int], list[tuple[int, int]]]:
    """Rows to embed (the first of each new text) and (row, first row) pairs that repeat a new text."""
    first_row: dict[str, int] = {}
    todo, copies = [], []
    for i, h in enumerate(hashes):
        if h in known:
            continue
        if h in first_row:
            copies.append((i, first_row[h]))
        else:
            first_row[h] = i
            todo.append(i)
    return todo, copies


def _copy_known(out: np.ndarray, hashes: list[str], known: dict[str, int], old: np.ndarray | None) -> None:
    """Fill the rows whose text the previous build already embedded, in the old file's order."""
    pairs = sorted((known[h], i) for i, h in enumerate(hashes) if h in known)
    if pairs:
        source, target = map(np.asarray, zip(*pairs))
        for first in range(0, len(pairs), 4096):  # bounded reads from the memory-mapped file
            out[target[first : first + 4096]] = old[source[first : first + 4096]]


# -- the same stages into PostgreSQL: only what changed is embedded and written ------------------------


def document_signature(doc, language: str, settings: Settings) -> str:
    """What a document is indexed from: a document whose signature changed is indexed again."""
    h = hashlib.sha256()
    for part in (settings.model, str(settings.chunk_words), str(settings.overlap_words), language, doc.title,
                 doc.source, doc.url, doc.published, doc.path, doc.text):
        h.update(part.encode("utf-8", "surrogatepass") + b"\0")
    return h.hexdigest()[:32]


def build_database_index(
    settings: Settings,
    database,
    corpus_dir: Path | None = None,
    embedder: BulkEmbedder | None = None,
    progress: Progress | None = None,
    force: bool = False,
    announce: Announce | None = None,
) -> BuildReport:
    """Bring the index in the database up to date with a corpus folder, in one transaction: new and
    changed documents are embedded (vectors reused from the build cache by content hash) and
    written, removed ones deleted; replicas see the result on their next question."""
    from .postgres import IndexedDocument, MultilingualVectors, PostgresIndex

    began = time.perf_counter()
    root = settings.index_root
    corpus_dir = Path(corpus_dir or settings.corpus_dir)
    store = PostgresIndex(database)
    with BuildLock(root):  # the build cache is this machine's; the database serialises writers itself
        cache = BuildCache(cache_path(root))
        try:
            read = read_corpus(corpus_dir, settings, progress, cache, keep=store.paths())
            corpus = read.corpus
            report = BuildReport(
                build_dir=None, documents=len(corpus.documents), chunks=0, embedded=0, reused=0, seconds=0.0,
                skipped=corpus.skipped, duplicates=corpus.duplicates, foreign_paragraphs=read.foreign_paragraphs)
            previous = store.manifest()
            encoder, report.multilingual_note = load_multilingual() if settings.multilingual else (None, "")
            if previous is not None and not force and previous.get("corpus_fingerprint") == read.fingerprint \
                    and previous.get("model") == settings.model \
                    and (encoder is None or (previous.get("multilingual") or {}).get("encoder") == ENCODER_ID):
                report.chunks, report.unchanged = previous.get("chunks", 0), True
                report.seconds = time.perf_counter() - began
                return report
            indexed = {} if force else store.signatures()
            signature = {d.doc_id: document_signature(d, read.language, settings) for d in corpus.documents}
            changed = [d for d in corpus.documents if indexed.get(d.doc_id) != signature[d.doc_id]]
            removed = [doc_id for doc_id in (store.signatures() if force else indexed) if doc_id not in signature]
            documents: list[IndexedDocument] = []
            vectors = None
            if changed:
                plan = plan_build(_part(read, changed), settings, cache)
                # A file index in this data folder lends its vectors: moving it into the database embeds nothing.
                lender = _lender(root, settings.model, _previous(root, settings.model)[1])
                try:
                    vectors = build_vectors(plan, settings, lender, embedder, progress, announce, cache)
                    if encoder is not None:
                        vectors.multilingual, _, vectors.multilingual_embedded = multilingual_vectors(
                            encoder, plan, lender, progress, cache, announce)
                finally:
                    if lender is not None:
                        lender.close()
                documents = _indexed_documents(plan, vectors, signature)
                report.embedded, report.reused = vectors.embedded, vectors.reused
                report.duplicate_chunks, report.sentences_embedded = vectors.duplicate_chunks, vectors.sentences_embedded
                report.multilingual_embedded = vectors.multilingual_embedded
            multilingual = None
            if encoder is not None:
                # Stored articles without the encoder's vectors (the setting was off when they came,
                # or another encoder made theirs) get them now; their rows are updated, not rewritten.
                new = {d.doc_id for d in changed}
                lacking = store.lacking_multilingual(ENCODER_ID)
                stored = [d for d in corpus.documents if d.doc_id in lacking and d.doc_id not in new]
                multilingual = MultilingualVectors(ENCODER_ID, {})
                if stored:
                    plan = plan_build(_part(read, stored), settings, cache)
                    found, _, embedded = multilingual_vectors(encoder, plan, None, progress, cache, announce)
                    multilingual.backfill = {(c.doc_id, c.ordinal): found[i] for i, c in enumerate(plan.chunks)}
                    report.multilingual_embedded += embedded
            if progress:
                progress("write", 0, 1)
            manifest = {
                "model": settings.model, "dim": int(vectors.chunks.shape[1]) if vectors is not None else
                (previous or {}).get("dim", 0), "dense_index": {"type": "pgvector-hnsw"},
                "files_read": corpus.files_read, "language": read.language,
                "skipped_files": [{"path": s.path, "reason": s.reason} for s in corpus.skipped],
                "duplicate_documents": [{"path": s.path, "reason": s.reason} for s in corpus.duplicates],
                "foreign_paragraphs": read.foreign_paragraphs, "chunk_words": settings.chunk_words,
                "overlap_words": settings.overlap_words, "corpus_dir": str(read.corpus_dir),
                "corpus_fingerprint": read.fingerprint, "embedded": report.embedded, "reused": report.reused,
                "built_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "build_seconds": round(time.perf_counter() - began, 2),
            }
            store.apply(documents, removed, manifest, multilingual)
            if progress:
                progress("write", 1, 1)
            report.chunks = store.manifest()["chunks"]
            report.seconds = time.perf_counter() - began
            log.info("Database index updated: %d document(s) written, %d removed", len(documents), len(removed))
            return report
        finally:
            cache.save()
            cache.close()


def _part(read: CorpusRead, documents: list) -> CorpusRead:
    """The read corpus narrowed to some of its documents (what an update writes)."""
    return CorpusRead(read.corpus_dir, Corpus(documents=documents, files_read=read.corpus.files_read),
                      read.language, read.foreign_paragraphs, read.fingerprint)


def _indexed_documents(plan: BuildPlan, vectors: BuildVectors, signature: dict[str, str]) -> list:
    """The plan's documents with their chunks, tokens and vectors, as the database store writes them."""
    from .postgres import IndexedDocument

    by_doc: dict[str, list[dict]] = {}
    for i, (c, tokens, h) in enumerate(zip(plan.chunks, plan.tokens, plan.hashes)):
        rows = [plan.sentence_row[c.text[s:e]] for s, e in c.sentences]
        by_doc.setdefault(c.doc_id, []).append(dict(
            ordinal=c.ordinal, chunk_id=c.chunk_id, start=c.start, end=c.end, text=c.text, hash=h,
            spans=[[s, e] for s, e in c.sentences], tokens=tokens, vector=vectors.chunks[i],
            sentence_vectors=vectors.sentences[rows] if rows else np.zeros((0, vectors.chunks.shape[1])),
            multilingual=vectors.multilingual[i] if vectors.multilingual is not None else None))
    return [IndexedDocument(d.doc_id, d.title, d.source, d.url, d.published, d.path, d.text, signature[d.doc_id],
                            by_doc.get(d.doc_id, [])) for d in plan.read.corpus.documents]
