"""The Engine: the one object the CLI and the bot talk to. Thread-safe; swaps in new builds live."""
from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Sequence

import numpy as np

from .read.answer import Answer, collapse_near_duplicates, make_citation
from .store.builder import Announce, BuildReport, Progress, build_database_index, build_index
from .config import Settings
from .encoders.embedder import Embedder, UpdateEmbedder
from .encoders.multilingual import load_shared
from .ingest.language import detect_language, question_language
from .read.excerpt import READER_MAX_CHARS, excerpt_around, excerpt_by_mass
from .errors import QuestionError
from .read.question import clean_question
from .read.reader import READER_DIR, Reader, Reading, ReaderUnavailable
from .search.relevance import coverage, relevance
from .search.query import Query
from .read.rerank import RERANK_DEPTH, Ranked, rerank
from .search.retrieval import MODES, Hit, Retriever
from .store.files import IndexUnavailable
from .store.interface import ChunkFilter, IndexView
from .store.segments import MergePolicy, SegmentedView, live_state
from .search.timeframe import LATEST, TimeFrame, parse_timeframe, say_iso

log = logging.getLogger(__name__)

# The one sentence of an abstention, in the CLI, the console, the bot and the JSON's "reason".
NO_ANSWER = "I could not find this in the articles I know. Try rephrasing, or ask about something they cover."
# Look deeper than we show: near-duplicates are folded away after excerpts are chosen.
OVERFETCH = 2
# The passages the reader read are ordered by its confidence + this weight x their re-rank score:
# confidence alone lost 1.7 points of recall@1 on SQuAD (bench/reader_sweep.py, bench/README.md).
READER_PRIOR_WEIGHT = 0.25
# "Latest" questions: passages the reader finds at least this share as likely to answer as its
# best come newest first (without the reader: passages scoring this share of the best).
LATEST_KEEP_CONFIDENCE = 0.5
LATEST_KEEP_SCORE = 0.85
# A question in another language than the articles' is answered with the best passages found
# (the models read English, so their doubt says little), unless the reader all but rules them out.
FOREIGN_MIN_CONFIDENCE = 0.02
# With multilingual vectors (CITEBOT_MULTILINGUAL), such a question is also searched across
# languages: the multilingual encoder's nearest chunks fused with hybrid's by reciprocal rank,
# hybrid's ranks weighing FOREIGN_HYBRID_WEIGHT of the multilingual ones' times the share of the
# question's words the index knows (a Chinese question's words are none of an English index's,
# and hybrid's ranking of it is noise). The reader does not reorder these passages (it reads
# English: reordering cut German R@1 from 0.60 to 0.20); the first passages are ordered by their
# sentence nearest to the question by the multilingual encoder, and their excerpts start there.
# The variants measured and dropped (the multilingual ranking alone, the reader's order and
# excerpts, hybrid unscaled) are in bench/README.md and docs/quality.md.
FOREIGN_HYBRID_WEIGHT = 0.5
FOREIGN_RRF_K = 60
FOREIGN_EXCERPT_PASSAGES = 10  # the first passages the multilingual encoder orders and excerpts
LANGUAGE_NAMES = {"en": "English", "fr": "French", "de": "German", "es": "Spanish", "it": "Italian",
                  "pt": "Portuguese", "nl": "Dutch", "ru": "Russian", "uk": "Ukrainian", "pl": "Polish"}
STALE_DAYS = 7  # a "latest" answer older than this says how old the newest article is


def _day(published: str) -> date | None:
    try:
        return date.fromisoformat(published[:10])
    except (TypeError, ValueError):
        return None


def newest_first_order(items: list, strengths: list[float], keep: float) -> list[int]:
    """Positions of items with those within keep x the strongest first, newest first (undated
    last), then the rest in their order."""
    top = max(strengths)
    strong = [i for i, v in enumerate(strengths) if v >= keep * top]
    strong.sort(key=lambda i: (_day(items[i].chunk.published) or date.min), reverse=True)
    return strong + [i for i in range(len(items)) if i not in strong]


def newest_first(ranked: list, strengths: list[float], keep: float) -> list:
    return [ranked[i] for i in newest_first_order(ranked, strengths, keep)]


def stale_note(citations, today: date) -> str:
    """For a "latest" question: say how old the newest cited article is when it is not recent."""
    days = [d for d in (_day(c.published) for c in citations) if d]
    if not days:
        return "The articles I found on this carry no dates."
    newest = max(days)
    if (today - newest).days <= STALE_DAYS:
        return ""
    return f"The newest article I have on this is from {say_iso(newest.isoformat())}."


@dataclass(frozen=True)
class _Loaded:
    snapshot: IndexView  # the files (SegmentedView: a build and its segments) or the database (PostgresView)
    retriever: Retriever
    pointer: str  # the live build and segment list (or the database's generation) when loaded, to notice updates


class Engine:
    """Answers questions from the live index. Share one Engine between threads."""

    def __init__(self, settings: Settings | None = None, embedder: Embedder | None = None, reader: Reader | None = None,
                 today=None):
        self.settings = settings or Settings.from_env()
        # What "today" is for questions about time; injectable for tests and dated evaluations.
        self.today = today or (lambda: datetime.now(timezone.utc).date())
        s = self.settings
        self.embedder = embedder or Embedder(
            s.model, cache_dir=s.model_cache, precision=s.precision, query_backend=s.query_backend
        )
        self._loaded: _Loaded | None = None
        self._swap_lock = threading.Lock()
        self.merge_policy = MergePolicy()
        self._merger: threading.Thread | None = None
        self._merge_lock = threading.Lock()
        self._reader: Reader | None = reader  # None: the committed model, loaded on first use
        self._reader_failed = False
        self._reader_lock = threading.Lock()

    @property
    def multilingual(self):
        """The multilingual encoder (index/encoders/multilingual.py), or None when it cannot be
        loaded (said once in the log; English search does not need it)."""
        return load_shared()[0]

    @property
    def database(self):
        """The PostgreSQL database holding the index (CITEBOT_DATABASE_URL), or None for the files."""
        if not self.settings.database_url:
            return None
        from .store.database import Database

        return Database.shared(self.settings.database_url)

    # -- the index -------------------------------------------------------------------------------

    def _pointer(self) -> str:
        if self.settings.database_url:
            from .store.postgres import PostgresIndex

            return f"generation {PostgresIndex(self.database).generation()}"
        return live_state(self.settings.index_root)  # "(damaged)": loading says so; a loaded index keeps serving

    def _current(self) -> _Loaded:
        """The loaded index, (re)loading it if a newer build went live. Raises IndexUnavailable."""
        loaded = self._loaded
        if loaded is not None and loaded.pointer == self._pointer():
            return loaded
        with self._swap_lock:
            pointer = self._pointer()
            if self._loaded is None or self._loaded.pointer != pointer:
                try:
                    snapshot = self._open_view()
                except IndexUnavailable as exc:
                    if self._loaded is None:
                        raise
                    # A live build that cannot be loaded must not take down a working engine.
                    log.warning("Still serving %s: %s", self._loaded.pointer, exc)
                    self._loaded = replace(self._loaded, pointer=pointer)
                    return self._loaded
                s = self.settings
                retriever = Retriever(snapshot, s.candidates, s.fusion, s.alpha, s.rrf_k)
                # Queries still running on the old snapshot keep their reference; its files stay readable.
                self._loaded = _Loaded(snapshot, retriever, pointer)
                log.info("Serving index %s", pointer)
            return self._loaded

    def _open_view(self) -> IndexView:
        if self.settings.database_url:
            from .store.postgres import PostgresView

            return PostgresView(self.database, self.settings.model)
        # An update adds a segment: the parts already loaded are shared with the new view, not loaded again.
        return SegmentedView.open(self.settings.index_root, self.settings.model, reuse=self._served_files())

    def _served_files(self) -> SegmentedView | None:
        """The file view being served (its loaded parts are shared by updates), or None."""
        loaded = self._loaded.snapshot if self._loaded is not None else None
        return loaded if isinstance(loaded, SegmentedView) else None

    @property
    def snapshot(self) -> IndexView:
        return self._current().snapshot

    def build(self, corpus_dir: Path | None = None, progress: Progress | None = None, force: bool = False,
              announce: Announce | None = None, merge: str = "now") -> BuildReport:
        """Bring the index up to date with the corpus; queries keep using the old one until the new
        one is live. A few new articles become a segment (index/store/segments.py); when the
        segments pass the merge policy they are merged into a new base by a whole build: at once
        (merge="now"), or in a background thread (merge="background": the bot, which answers
        meanwhile; the next build waits for it). announce hears, once and early, how long the
        embedding will take when that is long."""
        if merge not in ("now", "background"):
            raise ValueError(f"merge must be 'now' or 'background', not {merge!r}")
        self.wait_for_merge()
        embedder = UpdateEmbedder(self.embedder)  # a few articles: through ONNX Runtime, no torch
        if self.settings.database_url:
            report = build_database_index(self.settings, self.database, corpus_dir, embedder, progress, force,
                                          announce)
        else:
            report = build_index(self.settings, corpus_dir, embedder, progress, force, announce, self.merge_policy,
                                 self._served_files())
        self._current()
        if report.merge_due:
            if merge == "background":
                with self._merge_lock:
                    if self._merger is None or not self._merger.is_alive():
                        self._merger = threading.Thread(target=self._merge_quietly, args=(corpus_dir,),
                                                        name="index-merge", daemon=True)
                        self._merger.start()
            else:
                self._merge(corpus_dir)
        if not report.segment:
            self.embedder.queries.prepare()  # export for ONNX Runtime now, while torch is loaded anyway
        return report

    def _merge(self, corpus_dir: Path | None) -> None:
        """Merge the segments into a new base: a whole build, reusing every vector."""
        began = time.perf_counter()
        report = build_index(self.settings, corpus_dir, UpdateEmbedder(self.embedder), force=True,
                             policy=self.merge_policy)
        self._current()
        log.info("Merged the index's segments into %s in %.1f s", report.build_dir.name, time.perf_counter() - began)

    def _merge_quietly(self, corpus_dir: Path | None) -> None:
        """_merge in the background: a failure is logged, the segments keep serving, and the next
        update that finds them due tries again."""
        try:
            self._merge(corpus_dir)
        except Exception:
            log.exception("Merging the index's segments failed; the updates keep serving unmerged")

    def wait_for_merge(self) -> None:
        """Return when no merge started by this engine is running."""
        with self._merge_lock:
            merger = self._merger
        if merger is not None and merger.is_alive():
            log.info("Waiting for the index merge to finish")
            merger.join()

    # -- the reading model -----------------------------------------------------------------------

    @property
    def reader(self) -> Reader | None:
        """The reading model, loaded on first use; None when turned off or when it cannot be loaded."""
        if not self.settings.reader or self._reader_failed:
            return None
        if self._reader is None:
            with self._reader_lock:
                if self._reader is None and not self._reader_failed:
                    try:
                        self._reader = Reader(READER_DIR)
                    except ReaderUnavailable as exc:
                        # Answers stay available, chosen as before the reader existed; say so once.
                        log.warning("%s Answering without it.", exc)
                        self._reader_failed = True
        return self._reader

    def _read(self, question: str, ranked: list, reader: Reader, loaded: _Loaded, query: Query,
              newest_first: bool = False, across_languages: bool = False) -> tuple[list, list[Reading]]:
        """The reader's view of the top passages: them reordered by its confidence, and its readings.

        Besides the top passages across articles, the passages next to the best one in its article
        are read (reader.json "neighbours"): a story's lead restates the question's words while the
        asked fact is often a paragraph further on. newest_first (a "latest" question): twice as
        many passages are read, and those the reader finds nearly as likely to answer as the best
        come newest first. across_languages (a foreign question searched with the multilingual
        encoder): the reader, which reads English, only judges abstention; the passages keep their
        order and excerpts, and no neighbours join them."""
        depth = int(reader.config.get("depth", 4)) * (2 if newest_first else 1)
        head, tail = ranked[:depth], ranked[depth:]
        if not across_languages:
            head, tail = self._with_neighbours(head, tail, int(reader.config.get("neighbours", 0)), loaded, query)
        readings = reader.read(question, [(r.chunk.title, r.chunk.text) for r in head])
        read = []
        for r, reading in zip(head, readings):
            if reading.span is not None and not across_languages:
                spans = [(s, e) for s, e, _ in r.chunk.sentences]
                span = excerpt_by_mass(r.chunk.text, spans, reading.starts, reading.span, READER_MAX_CHARS)
                r = replace(r, span=span)
            # P(the excerpt holds the answer) ~ P(the passage does), with the search's score as a prior
            read.append((reading.confidence + READER_PRIOR_WEIGHT * r.score, r, reading))
        if not across_languages:
            read.sort(key=lambda x: (-x[0], x[1].hit.row))
        if newest_first and read:
            order = newest_first_order([r for _, r, _ in read], [x.confidence for _, _, x in read],
                                       LATEST_KEEP_CONFIDENCE)
            read = [read[i] for i in order]
        return [r for _, r, _ in read] + tail, [x for _, _, x in read]

    @staticmethod
    def _with_neighbours(head: list[Ranked], tail: list[Ranked], reach: int, loaded: _Loaded, query: Query
                         ) -> tuple[list[Ranked], list[Ranked]]:
        """head plus the chunks within reach of its first one in the same article (taken from tail
        when retrieval found them too); they carry the first one's retrieval score and their own
        excerpt's."""
        if not reach or not head:
            return head, tail
        top = head[0]
        near = loaded.snapshot.neighbours(top.hit.row, reach)
        taken = {r.hit.row for r in head}
        wanted = [row for row in sorted(near) if row not in taken]
        found = {r.hit.row: r for r in tail if r.hit.row in wanted}
        records = {row: near[row] for row in wanted if row not in found}
        if records:
            hits = [Hit(row, top.hit.score, top.hit.similarity) for row in sorted(records)]
            for r in rerank(hits, records, query, loaded.snapshot.sentence_vectors, True):
                found[r.hit.row] = r
        extra = [found[row] for row in wanted if row in found]
        return head + extra, [r for r in tail if r.hit.row not in found]

    # -- questions -------------------------------------------------------------------------------

    def ask(self, question: str, k: int = 5, retriever: str = "hybrid", abstain: bool = True, *,
            since: date | None = None, until: date | None = None, sources: Sequence[str] = (),
            today: date | None = None, within_docs: Sequence[str] = (), within_paths: Sequence[str] = (),
            language: str = "", topic: bool = False) -> Answer:
        """Cited excerpts answering question, best first, or an abstention. Raises QuestionError.

        Time in the question ("latest", "yesterday", "in March 2022", since:/until:/source:) or in
        since/until/sources limits or orders what is cited (index/search/timeframe.py), relative to today
        (default: the current UTC date). within_docs limits the search to those documents (a
        follow-up searching the articles an earlier answer cited); within_paths to the articles of
        those files, relative to the corpus folder (a followed topic searched in what a refresh
        added). language: the asker's language
        as their client reports it (Telegram's language_code), a hint when the question is too
        short to identify.
        abstain=False keeps the citations of a question the engine would abstain on (for evaluation);
        Answer.abstained still says what the engine would have done.
        topic=True reads question as a followed topic ("Chilean mines"), not a question: it asks no
        fact for the reader's answerability to find, so only the search's relevance decides.
        """
        began = time.perf_counter()
        question = clean_question(question)
        if retriever not in MODES:
            raise ValueError(f"unknown retriever {retriever!r}; choose one of {', '.join(MODES)}")
        if k < 1:
            raise ValueError(f"k must be at least 1, not {k}")
        given_today = today is not None
        today = today or self.today()
        text, frame = parse_timeframe(question, today, since, until, tuple(sources))
        if not text.strip():
            raise QuestionError("Ask a question besides the since:, until: and source: filters.")
        loaded = self._current()
        query = self._query(loaded, text)
        # A question about time ("latest", "since 1 March") cannot cite articles published after its
        # today; the clock's today allows a day more, for articles dated in time zones ahead of UTC.
        bound = today + timedelta(days=0 if given_today else 1)
        published_by = bound.isoformat() if frame.latest else ""
        view = loaded.snapshot
        note = ""
        where = ChunkFilter(since=frame.since.isoformat() if frame.since else "",
                            until=frame.until.isoformat() if frame.until else "",
                            sources=tuple(frame.sources), published_by=published_by)
        if frame.filters and not view.count(where) and not frame.strict and frame.window:
            # The window came from the question's words and holds nothing: answer from all dates
            # (saying so only where articles have dates: an undated corpus has no other dates).
            if view.coverage()["first"]:
                note = f"I have no articles {frame.label}; these are from other dates."
            frame = TimeFrame(latest=frame.latest, sources=frame.sources, label="")
            where = ChunkFilter(sources=tuple(frame.sources), published_by=published_by)
        if where and not view.count(where):
            what = frame.label or f"published by {say_iso(bound.isoformat())}"
            reason = f"I have no articles {what}. {self._coverage_sentence(loaded, frame)}".strip()
            return Answer(question=question, abstained=True, citations=(), retriever=retriever,
                          reason=reason, elapsed_ms=(time.perf_counter() - began) * 1000,
                          timeframe=frame.label)
        if within_docs:
            where = replace(where, doc_ids=tuple(within_docs))
        if within_paths:
            where = replace(where, paths=tuple(within_paths))
        ranked, best, score = self._retrieve(loaded, query, k, retriever, where)
        if frame.window and not frame.strict and ranked and score < self._min_relevance():
            # Nothing in the words' window is relevant: the dates may be the event's, not the articles'.
            wide, wide_best, wide_score = self._retrieve(loaded, query, k, retriever,
                                                         ChunkFilter(published_by=published_by))
            if wide_score > score:
                note = f"I found nothing on this {frame.label}; these are from other dates."
                ranked, best, score = wide, wide_best, wide_score
                frame = TimeFrame(latest=frame.latest, sources=frame.sources)
        support = ranked[0].support if ranked else 0.0
        corpus_language = loaded.snapshot.manifest.get("language") or "en"
        # With multilingual search on, short questions and less certain ones are identified too.
        identify = question_language if self.settings.multilingual else detect_language
        asked_in = identify(text) or (language or "").split("-")[0].lower()
        foreign = self.settings.answer_foreign and bool(asked_in) and asked_in != corpus_language
        if foreign and not note:
            name = LANGUAGE_NAMES.get(corpus_language, corpus_language)
            note = f"My articles are in {name}; questions in {name} work best."
        crossed = (foreign and retriever == "hybrid" and self.settings.multilingual
                   and getattr(view, "has_multilingual", False))
        if crossed:
            found = self._cross_lingual(loaded, query, text, k, where, ranked)
            crossed = found is not None
            ranked = found if crossed else ranked
        reader = self.reader if retriever == "hybrid" else None
        readings: list[Reading] = []
        # Newest first only means something among dated passages (news, not an undated archive).
        latest = frame.latest and any(_day(r.chunk.published) for r in ranked)
        if reader is not None and ranked:
            ranked, readings = self._read(text, ranked, reader, loaded, query, newest_first=latest,
                                          across_languages=crossed)
            confidence = max(r.confidence for r in readings)
            # The rule fitted with the model (index/models/train_reader.py): the reader's doubt, a
            # question whose words and meaning are far from everything found, or both together.
            # A topic asks no fact: the reader, trained on questions, doubts "Chilean mines" over an
            # article about strikes at two Chilean mines (0.07); whether an article is on it is relevance.
            abstained = score < reader.min_relevance if topic else reader.abstains(confidence, score)
            if foreign:
                # The model reads English: its doubt about another language says little, so only the
                # answer head's own probability (not the rule fitted on English features) can rule the
                # passages out; and a span it cannot judge is not bold.
                abstained = max(r.answer_probability for r in readings) < FOREIGN_MIN_CONFIDENCE
                readings = [replace(r, bold=False) for r in readings]
        else:
            confidence = None
            if latest:
                ranked = newest_first(ranked, [r.score for r in ranked], LATEST_KEEP_SCORE)
            abstained = score < self.settings.min_relevance and not (foreign and ranked)
        measured = dict(question=question, retriever=retriever, best_similarity=best, relevance=score,
                        support=support, confidence=confidence, timeframe=frame.label, note=note)
        if abstained and abstain:
            return Answer(abstained=True, citations=(), reason=NO_ANSWER,
                          elapsed_ms=(time.perf_counter() - began) * 1000, **measured)
        citations = [
            make_citation(rank, r.chunk, r.score, r.hit.similarity, r.span,
                          readings[rank - 1] if rank <= len(readings) else None)
            for rank, r in enumerate(ranked, 1)
        ]
        citations = collapse_near_duplicates(citations)[:k]
        if latest and LATEST.search(text) and citations and not note:  # the note is for "latest" words only
            measured["note"] = stale_note(citations, today)
        return Answer(abstained=abstained, citations=tuple(citations), reason=NO_ANSWER if abstained else "",
                      elapsed_ms=(time.perf_counter() - began) * 1000, **measured)

    def _cross_lingual(self, loaded: _Loaded, query: Query, text: str, k: int, where: ChunkFilter,
                       ranked: list[Ranked]) -> list[Ranked] | None:
        """A foreign question's candidates: the multilingual encoder's nearest chunks fused with
        hybrid's ranked ones by reciprocal rank, each with its excerpt; None without the encoder."""
        encoder = self.multilingual
        if encoder is None:
            return None
        depth = max(k * OVERFETCH, RERANK_DEPTH)
        vector = encoder.query(text)
        found = loaded.snapshot.multilingual_dense(vector, depth, where)
        if not found:
            return None
        cosine = dict(found)
        scores: dict[int, float] = {}
        for rank, (row, _) in enumerate(found, 1):
            scores[row] = 1.0 / (FOREIGN_RRF_K + rank)
        words = set(query.tokens)
        weight = FOREIGN_HYBRID_WEIGHT * (len(words & set(query.weights)) / len(words) if words else 0.0)
        for rank, r in enumerate(ranked, 1):
            scores[r.hit.row] = scores.get(r.hit.row, 0.0) + weight / (FOREIGN_RRF_K + rank)
        order = sorted(scores, key=lambda row: (-scores[row], row))[: k * OVERFETCH]
        known = {r.hit.row: r for r in ranked}
        new = [row for row in order if row not in known]
        if new:
            records = loaded.snapshot.chunks(new)
            hits = [Hit(row, scores[row], cosine[row]) for row in new]
            known.update({r.hit.row: r for r in rerank(hits, records, query, loaded.snapshot.sentence_vectors, False)})
        out = [replace(known[row], score=scores[row]) for row in order]
        return self._multilingual_excerpts(encoder, vector, out)

    @staticmethod
    def _multilingual_excerpts(encoder, vector: np.ndarray, ranked: list[Ranked]) -> list[Ranked]:
        """The first passages ordered by their sentence nearest to the question by the multilingual
        encoder, each excerpt from that sentence (forward from it within READER_MAX_CHARS); the rest
        keep their place and excerpt."""
        head = ranked[:FOREIGN_EXCERPT_PASSAGES]
        spans = [[(s, e) for s, e, _ in r.chunk.sentences] for r in head]
        texts = [r.chunk.text[s:e] for r, ss in zip(head, spans) for s, e in ss]
        if not texts:
            return ranked
        cosines = encoder.passages(texts) @ vector
        out, at = [], 0
        for r, ss in zip(head, spans):
            nearest = -np.inf
            if ss:
                i = int(np.argmax(cosines[at:at + len(ss)]))
                nearest = float(cosines[at + i])
                r = replace(r, span=excerpt_around(r.chunk.text, ss, ss[i], READER_MAX_CHARS))
            at += len(ss)
            out.append((nearest, r))
        # The passage holding the sentence nearest in meaning first: a chunk's own vector blurs the
        # one sentence that answers (issue 25: XQuAD R@1 +0.09; docs/quality.md).
        out.sort(key=lambda x: -x[0])
        return [r for _, r in out] + ranked[len(head):]

    def _min_relevance(self) -> float:
        reader = self.reader if self.settings.reader else None
        return reader.min_relevance if reader is not None else self.settings.min_relevance

    def _query(self, loaded: _Loaded, text: str) -> Query:
        snapshot = loaded.snapshot
        return Query.build(text, self.embedder.queries.embed, snapshot.document_frequencies, snapshot.chunk_count)

    def query(self, text: str) -> Query:
        """The Query the live index would search for text (for evaluations that drive the stages)."""
        return self._query(self._current(), text)

    @property
    def retriever(self) -> Retriever:
        """The live index's Retriever."""
        return self._current().retriever

    def _retrieve(self, loaded: _Loaded, query: Query, k: int, retriever: str, where: ChunkFilter
                  ) -> tuple[list[Ranked], float, float]:
        """Candidates re-ranked by their best excerpt, the closest cosine, and their relevance."""
        # Hybrid re-ranks a deeper pool by best excerpt; the single retrievers stay plain baselines.
        reorder = retriever == "hybrid" and self.settings.rerank
        depth = max(k * OVERFETCH, RERANK_DEPTH) if reorder else k * OVERFETCH
        hits, best = loaded.retriever.search(query, k=depth, mode=retriever, where=where)
        records = loaded.snapshot.chunks([h.row for h in hits])
        ranked = rerank(hits, records, query, loaded.snapshot.sentence_vectors, reorder)[: k * OVERFETCH]
        score = relevance(best, coverage(query, [r.words for r in ranked]))
        return ranked, best, score

    def _coverage_sentence(self, loaded: _Loaded, frame: TimeFrame) -> str:
        """What the corpus does cover, for a filter that matched nothing."""
        cover = loaded.snapshot.coverage()
        said = []
        if frame.window and cover["first"]:
            said.append(f"My articles run from {say_iso(cover['first'])} to {say_iso(cover['last'])}.")
        if frame.sources and cover["sources"]:
            names = [x["source"] for x in cover["sources"][:8]]
            said.append("My sources: " + ", ".join(names) + (" and others." if len(cover["sources"]) > 8 else "."))
        return " ".join(said)

    def stats(self) -> dict:
        """Facts about the live index, for `citebot stats` and the bot's /stats."""
        snapshot = self.snapshot
        m = snapshot.manifest
        size = m.get("index_bytes")
        if snapshot.build_dir is None:  # the database: its tables' size
            from .store.postgres import PostgresIndex

            size = PostgresIndex(self.database).size_bytes()
        elif size is None:  # a build from before the manifest said its size
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
            "build_id": m.get("build_id") or f"generation {m.get('generation', 0)}",
            "corpus_dir": m.get("corpus_dir", ""),
            "index_bytes": size,
            "segments": m.get("segments", 0),  # updates not merged yet (files; the database has none)
            "masked_chunks": m.get("masked_chunks", 0),
            "index_dir": os.fspath(snapshot.build_dir) if snapshot.build_dir is not None else
            f"PostgreSQL at {self.database.where}",
            "reader": self.reader_status(),
            "multilingual": self.multilingual_status(),
            "coverage": snapshot.coverage(),
        }

    def coverage(self) -> dict:
        """What the live index covers: articles, sources by size, first and last publication day."""
        return self.snapshot.coverage()

    def multilingual_status(self) -> str:
        """Whether questions in other languages are searched across languages: 'on', 'off'
        (CITEBOT_MULTILINGUAL=0), 'not built' (the live index has no multilingual vectors) or
        'unavailable' (the encoder cannot be loaded; the log says why)."""
        if not self.settings.multilingual:
            return "off"
        if not getattr(self.snapshot, "has_multilingual", False):
            return "not built"
        return "on" if self.multilingual is not None else "unavailable"

    def reader_status(self) -> str:
        """'on', 'off' (CITEBOT_READER=0) or 'unavailable' (the model could not be loaded)."""
        if not self.settings.reader:
            return "off"
        return "on" if self.reader is not None else "unavailable"
