"""Retrieval evaluation: recall@k of cited excerpts, MRR, abstention and latency, per retriever.

QUESTIONS is a SQuAD-format JSON file (its paragraphs become the corpus, one document per article
title) or a JSONL file of {"question": ..., "answers": [...]} lines; an empty answers list marks
a question the corpus cannot answer, where the right result is to abstain.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from .config import Settings
from .engine import Engine
from .errors import EvaluationError
from .read.question import QuestionError

log = logging.getLogger(__name__)

KS = (1, 5, 10)


@dataclass(frozen=True)
class EvalQuestion:
    question: str
    answers: tuple[str, ...]
    kind: str = ""  # a JSONL row's "kind" ("off-topic", "near-miss", ...): abstention is reported per kind


def normalize(text: str) -> str:
    """Case- and whitespace-insensitive form used to decide whether an excerpt holds an answer."""
    return re.sub(r"\s+", " ", text.casefold()).strip()


def contains_answer(text: str, answers: tuple[str, ...]) -> bool:
    haystack = normalize(text)
    return any(normalize(a) and normalize(a) in haystack for a in answers)


def squad_normalize(text: str) -> str:
    """SQuAD's answer normalisation: lower case, no punctuation, no articles, single spaces."""
    text = re.sub(r"[^\w\s]", " ", text.casefold())
    return " ".join(w for w in text.split() if w not in ("a", "an", "the"))


def bold_holds_answer(bold: str, answers: tuple[str, ...]) -> bool:
    """A bold span is right when it holds a gold answer or lies inside one ("14:32.93" for
    "14:32.93 seconds"), compared as SQuAD compares answers."""
    b = squad_normalize(bold)
    golds = [g for g in map(squad_normalize, answers) if g]
    return bool(b) and any(g in b or b in g for g in golds)


def load_squad(path: Path) -> tuple[list[EvalQuestion], list[dict]]:
    """Questions and corpus records (one per article title, paragraphs in order) of a SQuAD file."""
    text = _read_text(path)
    try:
        questions, records = _parse_squad(json.loads(text))
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise EvaluationError(f"{path} is not a SQuAD v1.1 file ({type(exc).__name__}: {str(exc)[:100]})") from None
    if not questions:
        raise EvaluationError(f"{path} holds no questions")
    return questions, records


def _parse_squad(data: dict) -> tuple[list[EvalQuestion], list[dict]]:
    questions, records = [], []
    for article in data["data"]:
        title = article["title"].replace("_", " ")
        paragraphs = [p["context"] for p in article["paragraphs"]]
        records.append({"title": title, "text": "\n\n".join(paragraphs), "source": "Wikipedia (SQuAD v1.1)"})
        for p in article["paragraphs"]:
            for qa in p["qas"]:
                answers = tuple(dict.fromkeys(a["text"] for a in qa["answers"]))
                questions.append(EvalQuestion(qa["question"], answers))
    return questions, records


def _question_record(row: object, where: str) -> EvalQuestion:
    """One checked question record, or ValueError naming where it is and what is wrong."""
    if not isinstance(row, dict):
        raise EvaluationError(f'{where} is not a question record (an object with "question" and "answers")')
    question = row.get("question")
    if not isinstance(question, str) or not question.strip():
        raise EvaluationError(f'{where}: "question" must be non-empty text')
    answers = row.get("answers", [])
    if answers is None:
        answers = []
    if not isinstance(answers, list) or not all(isinstance(a, str) for a in answers):
        raise EvaluationError(f'{where}: "answers" must be a list of strings (empty for an unanswerable question)')
    kind = row.get("kind", "")
    return EvalQuestion(question, tuple(answers), kind if isinstance(kind, str) else "")


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise EvaluationError(f"{path} does not exist") from None
    except IsADirectoryError:
        raise EvaluationError(f"{path} is a folder, not a question file") from None
    except UnicodeDecodeError:
        raise EvaluationError(f"{path} is not UTF-8 text (a JSONL question file or a SQuAD JSON file is)") from None


def load_jsonl(path: Path) -> list[EvalQuestion]:
    questions = []
    for number, line in enumerate(_read_text(path).splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            raise EvaluationError(f"{path} line {number} is not JSON") from None
        questions.append(_question_record(row, f"{path} line {number}"))
    if not questions:
        raise EvaluationError(f"{path} holds no questions")
    return questions


def is_squad(path: Path) -> bool:
    if path.suffix.lower() != ".json" or not path.is_file():
        return False
    with open(path, encoding="utf-8", errors="replace") as f:
        head = f.read(4096)
    return '"data"' in head


def _eval_settings(settings: Settings, key: str) -> Settings:
    """A data directory of its own for an evaluation corpus, reused while the corpus is unchanged."""
    key += f"|{settings.chunk_words}|{settings.overlap_words}"
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    return replace(settings, data_dir=settings.data_dir / "eval" / digest, corpus_links_out=True)


def _assemble_corpus(target: Path, sources: list[Path]) -> None:
    """Make target hold the sources: SQuAD files as JSONL articles, folders as links to them."""
    target.mkdir(parents=True, exist_ok=True)
    wanted: dict[str, Path | str] = {}
    for n, source in enumerate(sources):
        if is_squad(source):
            _, records = load_squad(source)
            wanted[f"{n:02d}-{source.stem}.jsonl"] = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
        elif source.is_dir():
            wanted[f"{n:02d}-{source.name}"] = source.resolve()
        else:
            raise EvaluationError(f"{source} is neither a folder of articles nor a SQuAD JSON file")
    for entry in target.iterdir():
        if entry.name not in wanted and (entry.is_symlink() or entry.is_file()):
            entry.unlink()  # a source dropped since the last run
    for name, content in wanted.items():
        path = target / name
        if isinstance(content, Path):
            if not (path.is_symlink() and Path(os.readlink(path)) == content):
                path.unlink(missing_ok=True)
                path.symlink_to(content, target_is_directory=True)
        else:
            if path.is_symlink():
                path.unlink()  # was a folder source under the same name
            if not path.exists() or path.read_text(encoding="utf-8") != content:
                path.write_text(content, encoding="utf-8")


HALVES = ("all", "even", "odd")


def squad_half(path: Path, half: str, folder: Path) -> Path:
    """A SQuAD file holding only the articles at even or odd positions of path's `data` list.

    The reading model trains on the even half only (index/models/train_reader.py); the odd half
    is the test half, measured apart."""
    if half == "all":
        return path
    data = json.loads(path.read_text(encoding="utf-8"))
    articles = data["data"][0::2] if half == "even" else data["data"][1::2]
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / f"{path.stem}-{half}.json"
    text = json.dumps({**data, "data": articles})
    if not out.exists() or out.read_text(encoding="utf-8") != text:
        out.write_text(text, encoding="utf-8")
    return out


def prepare(
    questions_path: Path, settings: Settings, corpus: list[Path] | None = None, progress=None,
    articles: str = "all",
) -> tuple[list[EvalQuestion], Engine]:
    """Questions and an engine over their corpus.

    The corpus is a SQuAD file's own paragraphs, plus every --corpus source (a folder of articles
    or another SQuAD file's paragraphs); a JSONL question file without --corpus is asked of the
    built index. articles="even"/"odd" keeps only that half of a SQuAD question file's articles.
    """
    sources = [Path(p) for p in corpus or ()]
    if articles not in HALVES:
        raise EvaluationError(f"articles must be one of {', '.join(HALVES)}, not {articles!r}")
    if articles != "all":
        if not is_squad(questions_path):
            raise EvaluationError("--articles even/odd needs a SQuAD JSON question file")
        questions_path = squad_half(questions_path, articles, settings.data_dir / "eval" / "halves")
    if is_squad(questions_path):
        questions, _ = load_squad(questions_path)
        sources.insert(0, questions_path)
    else:
        questions = load_jsonl(questions_path)
    if not sources:
        return questions, Engine(settings)
    for source in sources:
        if not source.exists():
            raise EvaluationError(f"{source} does not exist")
    key = "|".join(str(s.resolve()) for s in sources)
    eval_settings = _eval_settings(settings, key)
    _assemble_corpus(eval_settings.data_dir / "corpus", sources)
    engine = Engine(eval_settings)
    engine.build(eval_settings.data_dir / "corpus", progress=progress)
    return questions, engine


def evaluate(
    engine: Engine,
    questions: list[EvalQuestion],
    retriever: str = "hybrid",
    on_question: Callable[[int, int], None] | None = None,
) -> dict:
    """Metrics for one retriever over the questions, with the key names of `citebot eval --json`."""
    hits = {k: 0 for k in KS}
    chunk_hits = {k: 0 for k in KS}
    reciprocal = 0.0
    abstained = {True: 0, False: 0}
    by_kind: dict[str, list[bool]] = {}
    bold = bold_right = bold_exact = 0
    latencies = []
    answerable = sum(1 for q in questions if q.answers)
    try:  # warm-up: loading the index and models on the first question is not a question's latency
        engine.ask(questions[0].question, k=max(KS), retriever=retriever, abstain=False)
    except (QuestionError, IndexError):
        pass
    for n, q in enumerate(questions, 1):
        try:
            answer = engine.ask(q.question, k=max(KS), retriever=retriever, abstain=False)
        except QuestionError as exc:
            log.warning("Question %d cannot be asked: %s", n, exc)
            abstained[bool(q.answers)] += 1
            continue
        latencies.append(answer.elapsed_ms)
        abstained[bool(q.answers)] += answer.abstained
        if q.kind:
            by_kind.setdefault(q.kind, []).append(answer.abstained)
        if q.answers and answer.citations and answer.citations[0].highlight:
            a, b = answer.citations[0].highlight
            shown = answer.citations[0].excerpt[a:b]
            bold += 1
            bold_right += bold_holds_answer(shown, q.answers)
            bold_exact += any(squad_normalize(shown) == squad_normalize(x) for x in q.answers)
        if q.answers:
            ranks = [c.rank for c in answer.citations if contains_answer(c.excerpt, q.answers)]
            first = ranks[0] if ranks else None
            for k in KS:
                hits[k] += first is not None and first <= k
            reciprocal += 1.0 / first if first else 0.0
            chunk_ranks = [c.rank for c in answer.citations if contains_answer(c.chunk_text, q.answers)]
            for k in KS:
                chunk_hits[k] += bool(chunk_ranks) and chunk_ranks[0] <= k
        if on_question:
            on_question(n, len(questions))
    unanswerable = len(questions) - answerable
    ratio = lambda x, n: round(x / n, 4) if n else None  # noqa: E731
    lat = np.array(latencies) if latencies else np.zeros(1)
    return {
        **{f"recall@{k}": ratio(hits[k], answerable) for k in KS},
        **{f"chunk_recall@{k}": ratio(chunk_hits[k], answerable) for k in KS},
        "mrr": ratio(reciprocal, answerable),
        "abstain_rate_answerable": ratio(abstained[True], answerable),
        "abstain_rate_unanswerable": ratio(abstained[False], unanswerable),
        **({"abstain_rate_by_kind": {k: ratio(sum(v), len(v)) for k, v in sorted(by_kind.items())}} if by_kind else {}),
        # The first excerpt's bold span: how often it is shown, and when shown, how often it holds a
        # gold answer (or lies inside one) and equals one exactly (SQuAD's normalisation).
        "bold_shown": ratio(bold, answerable),
        "bold_holds_answer": ratio(bold_right, bold),
        "bold_exact_match": ratio(bold_exact, bold),
        "latency_ms_p50": round(float(np.percentile(lat, 50)), 2),
        "latency_ms_p95": round(float(np.percentile(lat, 95)), 2),
    }


READERLESS = "hybrid-no-reader"  # the row for hybrid with the reading model off, from the same index


def evaluate_retrievers(
    engine: Engine, questions: list[EvalQuestion], retrievers: Sequence[str],
    on_question: Callable[[str, int, int], None] | None = None,
) -> dict:
    """The whole `citebot eval --json` result: question counts and one row of metrics per
    retriever; with hybrid and the reading model on, also READERLESS (the engine as it was
    before the reader) from the same index in the same run. on_question(row, done, total)."""
    runs = [(mode, mode, engine) for mode in retrievers]
    if "hybrid" in retrievers and engine.reader is not None:
        runs.append((READERLESS, "hybrid", Engine(replace(engine.settings, reader=False), engine.embedder)))
    result = {"questions": len(questions), "answerable": sum(1 for q in questions if q.answers), "retrievers": {}}
    for name, mode, eng in runs:
        progress = (lambda n, t, name=name: on_question(name, n, t)) if on_question else None
        result["retrievers"][name] = evaluate(eng, questions, mode, on_question=progress)
    return result
