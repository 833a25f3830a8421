"""The Engine: the one object the CLI and the bot talk to. Thread-safe; swaps in new builds live."""
from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path

from .answer import Answer, collapse_near_duplicates, make_citation
from .builder import BuildReport, Progress, build_index
from .config import Settings
from .embedding import Embedder
from .question import clean_question
from .relevance import coverage, relevance
from .rerank import RERANK_DEPTH, rerank
from .retrieval import MODES, Retriever
from .store import IndexSnapshot, IndexUnavailable, current_build_dir
from .tokenize import tokenize

log = logging.getLogger(__name__)

NO_ANSWER = "The corpus does not seem to hold the answer to this question."
# Look deeper than we show: near-duplicates are folded away after excerpts are chosen.
OVERFETCH = 2


@dataclass(frozen=True)
class _Loaded:
    snapshot: IndexSnapshot
    retriever: Retriever
    pointer: str  # CURRENT's content when loaded, to notice a build made by another process


class Engine:
    """Answers questions from the live index. Share one Engine between threads."""

    def __init__(self, settings: Settings | None = None, embedder: Embedder | None = None):
        self.settings = settings or Settings.from_env()
        s = self.settings
        self.embedder = embedder or Embedder(
            s.model, cache_dir=s.model_cache, precision=s.precision, query_backend=s.query_backend
        )
        self._loaded: _Loaded | None = None
        self._swap_lock = threading.Lock()
        self.questions_answered = 0
        self._count_lock = threading.Lock()

    # -- the index -------------------------------------------------------------------------------

    def _pointer(self) -> str:
        build = current_build_dir(self.settings.index_root)
        return build.name if build else ""

    def _current(self) -> _Loaded:
        """The loaded index, (re)loading it if a newer build went live. Raises IndexUnavailable."""
        loaded = self._loaded
        if loaded is not None and loaded.pointer == self._pointer():
            return loaded
        with self._swap_lock:
            pointer = self._pointer()
            if self._loaded is None or self._loaded.pointer != pointer:
                try:
                    snapshot = IndexSnapshot.load(self.settings.index_root, self.settings.model)
                except IndexUnavailable as exc:
                    if self._loaded is None:
                        raise
                    # A live build that cannot be loaded must not take down a working engine.
                    log.warning("Still serving %s: %s", self._loaded.snapshot.build_dir.name, exc)
                    self._loaded = replace(self._loaded, pointer=pointer)
                    return self._loaded
                s = self.settings
                retriever = Retriever(snapshot, s.candidates, s.fusion, s.alpha, s.rrf_k)
                # Queries still running on the old snapshot keep their reference; its files stay readable.
                self._loaded = _Loaded(snapshot, retriever, snapshot.build_dir.name)
                log.info("Serving index %s", pointer)
            return self._loaded

    @property
    def snapshot(self) -> IndexSnapshot:
        return self._current().snapshot

    def build(self, corpus_dir: Path | None = None, progress: Progress | None = None, force: bool = False) -> BuildReport:
        """Rebuild the index from the corpus; queries keep using the old one until the new one is live."""
        report = build_index(self.settings, corpus_dir, self.embedder, progress, force)
        self.embedder.prepare_queries()  # export for ONNX Runtime now, while torch is loaded anyway
        self._current()
        return report

    # -- questions -------------------------------------------------------------------------------

    def ask(self, question: str, k: int = 5, retriever: str = "hybrid", abstain: bool = True) -> Answer:
        """Cited excerpts answering question, best first, or an abstention. Raises QuestionError.

        abstain=False keeps the citations of a question the engine would abstain on (for evaluation);
        Answer.abstained still says what the engine would have done.
        """
        began = time.perf_counter()
        question = clean_question(question)
        if retriever not in MODES:
            raise ValueError(f"unknown retriever {retriever!r}; choose one of {', '.join(MODES)}")
        if k < 1:
            raise ValueError(f"k must be at least 1, not {k}")
        loaded = self._current()
        vector = self.embedder.embed_query(question)
        tokens = tokenize(question)
        # Hybrid re-ranks a deeper pool by best excerpt; the single retrievers stay plain baselines.
        reorder = retriever == "hybrid" and self.settings.rerank
        depth = max(k * OVERFETCH, RERANK_DEPTH) if reorder else k * OVERFETCH
        hits, best = loaded.retriever.search(vector, tokens, k=depth, mode=retriever)
        weights = loaded.retriever.idf(tokens)
        records = loaded.snapshot.chunks([h.row for h in hits])
        ranked = rerank(hits, records, vector, loaded.snapshot.sentence_vectors, weights, reorder)[: k * OVERFETCH]
        score = relevance(best, coverage(tokens, weights, [r.words for r in ranked], loaded.snapshot.dense.ntotal))
        support = ranked[0].support if ranked else 0.0
        abstained = score < self.settings.min_relevance
        if abstained and abstain:
            self._count()
            elapsed = (time.perf_counter() - began) * 1000
            return Answer(question, True, (), retriever, NO_ANSWER, elapsed, best, score, support)
        citations = [
            make_citation(rank, r.chunk, r.score, r.hit.similarity, r.span) for rank, r in enumerate(ranked, 1)
        ]
        citations = collapse_near_duplicates(citations)[:k]
        self._count()
        elapsed = (time.perf_counter() - began) * 1000
        reason = NO_ANSWER if abstained else ""
        return Answer(question, abstained, tuple(citations), retriever, reason, elapsed, best, score, support)

    def _count(self) -> None:
        with self._count_lock:
            self.questions_answered += 1

    def stats(self) -> dict:
        """Facts about the live index, for `citebot stats` and the bot's /stats."""
        snapshot = self.snapshot
        m = snapshot.manifest
        size = sum(p.stat().st_size for p in snapshot.build_dir.rglob("*") if p.is_file())
        return {
            "documents": m["documents"],
            "chunks": m["chunks"],
            "sentences": m.get("sentences", 0),
            "skipped_files": m.get("skipped_files", []),
            "duplicate_documents": m.get("duplicate_documents", []),
            "foreign_paragraphs": m.get("foreign_paragraphs", 0),
            "model": m["model"],
            "dim": m["dim"],
            "language": m.get("language", ""),
            "built_at": m["built_at"],
            "build_id": m["build_id"],
            "corpus_dir": m.get("corpus_dir", ""),
            "index_bytes": size,
            "index_dir": os.fspath(snapshot.build_dir),
            "questions_answered": self.questions_answered,
        }
