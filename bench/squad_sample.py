"""What the SQuAD sweeps share: a fixed sample of dev questions, the evaluation engine over the
SQuAD paragraphs (the index `citebot eval` builds), and each question's vector and tokens."""
from __future__ import annotations

import random
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from index.config import Settings  # noqa: E402
from index.engine import Engine  # noqa: E402
from index.evaluate import EvalQuestion, prepare  # noqa: E402
from index.search.query import Query  # noqa: E402
from index.search.retrieval import Retriever  # noqa: E402


@dataclass
class SquadSample:
    questions: list[EvalQuestion]
    engine: Engine
    retriever: Retriever
    queries: list[Query]  # one per question, as the engine builds them


def squad_sample(squad: Path, size: int) -> SquadSample:
    """The same `size` questions every run (fixed shuffle), with what searching them needs."""
    questions, engine = prepare(squad, Settings.from_env())
    random.Random(1).shuffle(questions)
    questions = questions[:size]
    return SquadSample(questions, engine, engine.retriever, [engine.query(q.question) for q in questions])
