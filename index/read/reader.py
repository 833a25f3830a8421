"""The reading model: reads a passage against the question, says whether it holds the answer and where.

One forward pass per (question, passage) pair, `[CLS] question [SEP] title + passage [SEP]`, gives
  * answer_logit: P(the passage holds the answer), read from [CLS];
  * start/end logits over the passage's tokens: the span the reader takes for the answer.
The answer-start probabilities choose the excerpt (index/read/excerpt.py excerpt_by_mass) and the span is
shown in bold; the passage probability orders the citations and decides abstention. Trained here from MiniLM-L6 on the even half of SQuAD dev
(index/models/train_reader.py, model card in index/models/reader/README.md) and served by
ONNX Runtime (int8), so the serving process never imports torch.
"""
from __future__ import annotations

import json
import logging
import math
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Sequence

import numpy as np

from .answer_type import expected_kind, span_fits
from ..errors import ReaderUnavailable
from ..encoders.onnx_encoder import cpu_session

log = logging.getLogger(__name__)

READER_DIR = Path(__file__).parent.parent / "models" / "reader"
MODEL_FILE = "model.onnx"
TOKENIZER_FILE = "tokenizer.json"
CONFIG_FILE = "reader.json"
MAX_TOKENS = 256  # question + passage: a 120-word chunk with its title fits
MAX_QUESTION_TOKENS = 64
MAX_ANSWER_TOKENS = 30
MARGIN_CLIP = 20.0  # span margins beyond this say nothing more, and would swamp the other features


@dataclass(frozen=True)
class Reading:
    """What the reader made of one passage."""

    # P(the passage states the answer), 0..1: the answer head's logit, the span head's margin over
    # "no answer" and whether the span is of the kind the question asks for, weighed as fitted on
    # the training half (reader.json "answerability"; the answer head alone without it).
    confidence: float
    span: tuple[int, int] | None  # the answer it marks: offsets into the passage text, None if none
    span_score: float  # start + end logit of that span
    # Where the answer may start: (offset into the passage text, probability) for the passage's
    # tokens, the probabilities summing to 1 over the passage (tiny ones left out).
    starts: tuple[tuple[int, float], ...] = ()
    # The span head's own view (SQuAD 2.0's null score): its score for "no answer here" ([CLS] as
    # start and end), and P(start) x P(end) of the marked span with [CLS] competing as a position.
    null_score: float = 0.0
    span_probability: float = 0.0
    answer_logit: float = 0.0  # the answer head's own logit, before the features are weighed
    fits: bool = True  # the span is of the kind the question asks for (index/read/answer_type.py)
    bold: bool = False  # the span is sure enough to be shown in bold

    @property
    def span_margin(self) -> float:
        """How much the best span beats "no answer here" in the span head (logits; > 0: a span)."""
        return self.span_score - self.null_score

    @property
    def answer_probability(self) -> float:
        """The answer head's own P(the passage holds the answer), before the features are weighed."""
        return _sigmoid(self.answer_logit)

    @property
    def features(self) -> tuple[float, float, float]:
        """What the fitted answerability weighs: the answer logit, the span margin (clipped; no span
        is the floor) and whether the span fits the question's kind."""
        margin = max(min(self.span_margin, MARGIN_CLIP), -MARGIN_CLIP) if self.span is not None else -MARGIN_CLIP
        return self.answer_logit, margin, float(self.fits)


@dataclass(frozen=True)
class Features:
    """A tokenised batch of (question, passage) pairs, padded to the longest."""

    input_ids: np.ndarray
    attention_mask: np.ndarray
    token_type_ids: np.ndarray
    passage_mask: np.ndarray  # True on the tokens of the passage text (not the title, not specials)
    offsets: list[list[tuple[int, int]]]  # per token: character offsets into the passage text


def passage_input(title: str, text: str) -> tuple[str, int]:
    """What the reader reads for a passage, and where the passage text starts in it."""
    prefix = f"{title}\n" if title else ""
    return prefix + text, len(prefix)


def load_tokenizer(path: Path):
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(path))
    tokenizer.no_padding()
    tokenizer.no_truncation()
    return tokenizer


def encode(tokenizer, question: str, passages: Sequence[tuple[str, str]], max_tokens: int = MAX_TOKENS) -> Features:
    """Token ids for each (title, text) passage paired with the question; the passage is cut to fit."""
    q_ids = tokenizer.encode(question, add_special_tokens=False).ids[:MAX_QUESTION_TOKENS]
    cls_id, sep_id = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    room = max_tokens - len(q_ids) - 3
    rows, masks, offsets = [], [], []
    for title, text in passages:
        reader_text, shift = passage_input(title, text)
        enc = tokenizer.encode(reader_text, add_special_tokens=False)
        ids, spans = enc.ids[:room], enc.offsets[:room]
        head = len(q_ids) + 2  # [CLS] question [SEP]
        rows.append([cls_id, *q_ids, sep_id, *ids, sep_id])
        mask = [False] * head + [s >= shift and e > s for s, e in spans] + [False]
        masks.append(mask)
        offsets.append([(0, 0)] * head + [(max(s - shift, 0), max(e - shift, 0)) for s, e in spans] + [(0, 0)])
    width = max(len(r) for r in rows)
    n = len(rows)
    input_ids = np.zeros((n, width), dtype=np.int64)
    attention = np.zeros((n, width), dtype=np.int64)
    types = np.zeros((n, width), dtype=np.int64)
    passage_mask = np.zeros((n, width), dtype=bool)
    for i, (row, mask) in enumerate(zip(rows, masks)):
        input_ids[i, : len(row)] = row
        attention[i, : len(row)] = 1
        types[i, len(q_ids) + 2 : len(row)] = 1
        passage_mask[i, : len(mask)] = mask
    return Features(input_ids, attention, types, passage_mask, offsets)


def best_span(start: np.ndarray, end: np.ndarray, mask: np.ndarray, max_len: int = MAX_ANSWER_TOKENS):
    """(start token, end token, score) of the best span with start <= end < start + max_len, or None."""
    idx = np.flatnonzero(mask)
    if idx.size == 0:
        return None
    s, e = start[idx], end[idx]
    # scores[i, j] = s[i] + e[j] for i <= j < i + max_len, over passage tokens only
    scores = s[:, None] + e[None, :]
    i, j = np.indices(scores.shape)
    allowed = (j >= i) & (j - i < max_len) & ((idx[j] - idx[i]) < max_len)
    scores = np.where(allowed, scores, -np.inf)
    flat = int(np.argmax(scores))
    a, b = divmod(flat, scores.shape[1])
    return int(idx[a]), int(idx[b]), float(scores[a, b])


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x > -60 else 0.0


def _log_softmax(x: np.ndarray) -> np.ndarray:
    top = x.max()
    return x - top - math.log(float(np.exp(x - top).sum()))


def decode(features: Features, start: np.ndarray, end: np.ndarray, logits: np.ndarray) -> list[Reading]:
    """Readings from the model's outputs for a batch."""
    out = []
    for i in range(len(features.offsets)):
        found = best_span(start[i], end[i], features.passage_mask[i])
        span, score, starts, probability = None, float("-inf"), (), 0.0
        null = float(start[i][0] + end[i][0])
        if found is not None:
            a, b, score = found
            span = (features.offsets[i][a][0], features.offsets[i][b][1])
            idx = np.flatnonzero(features.passage_mask[i])
            p = np.exp(start[i][idx] - start[i][idx].max())
            p /= p.sum()
            starts = tuple((features.offsets[i][t][0], float(q)) for t, q in zip(idx.tolist(), p) if q >= 1e-3)
            # [CLS] (the model's "no answer" position) competes with the passage's tokens.
            positions = np.concatenate(([0], idx))
            log_start, log_end = _log_softmax(start[i][positions]), _log_softmax(end[i][positions])
            at_a, at_b = int(np.searchsorted(idx, a)) + 1, int(np.searchsorted(idx, b)) + 1
            probability = float(math.exp(log_start[at_a] + log_end[at_b]))
        out.append(Reading(_sigmoid(float(logits[i])), span, score, starts, null, probability, float(logits[i])))
    return out


def evidence(confidence, relevance, relevance_weight: float):
    """How strongly a question is answered: the logit of the best passage's answerability plus the
    search's relevance, weighed as fitted (reader.json "evidence"). Numbers or numpy arrays."""
    p = np.clip(confidence, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p)) + relevance_weight * np.asarray(relevance)


@dataclass(frozen=True)
class Calibration:
    """How a Reading's features become P(the passage states the answer), and when a span is bold.

    Fitted on the training half only (index/models/train_reader.py) and stored in reader.json."""

    bias: float = 0.0
    answer_logit: float = 1.0
    span_margin: float = 0.0
    fits: float = 0.0
    # A span is bold when it fits and P(it is the answer) reaches this: P(start) x P(end) times the
    # passage's answerability (reader.json "bold_answer_probability"); a reader.json from before
    # that has only "bold_probability", fitted on P(start) x P(end) alone, is read as it was fitted.
    bold_probability: float = 0.0
    bold_weighs_answerability: bool = True

    @classmethod
    def from_config(cls, config: dict) -> "Calibration":
        weights = config.get("answerability", {})
        joint = "bold_answer_probability" in config
        return cls(bias=float(weights.get("bias", 0.0)), answer_logit=float(weights.get("answer_logit", 1.0)),
                   span_margin=float(weights.get("span_margin", 0.0)), fits=float(weights.get("fits", 0.0)),
                   bold_probability=float(config.get("bold_answer_probability" if joint else "bold_probability", 0.0)),
                   bold_weighs_answerability=joint)

    def judge(self, reading: Reading, kind: str, passage: str) -> Reading:
        """The reading with its confidence, fit and bold decided for a question of this kind."""
        fits = reading.span is not None and span_fits(kind, passage[reading.span[0]:reading.span[1]])
        judged = replace(reading, fits=fits)
        logit, margin, fit = judged.features
        confidence = _sigmoid(self.bias + self.answer_logit * logit + self.span_margin * margin + self.fits * fit)
        sure = reading.span_probability * (confidence if self.bold_weighs_answerability else 1.0)
        return replace(judged, confidence=confidence, bold=fits and sure >= self.bold_probability)


class Reader:
    """The reading model on ONNX Runtime. Thread-safe; load once and share."""

    def __init__(self, folder: Path = READER_DIR):
        folder = Path(folder)
        try:
            self.config = json.loads((folder / CONFIG_FILE).read_text())
            self.tokenizer = load_tokenizer(folder / TOKENIZER_FILE)
            self.session = cpu_session(folder / MODEL_FILE)
        except Exception as exc:  # missing file, truncated model, bad JSON: one sentence, detail in the log
            log.debug("Reader load failed", exc_info=True)
            raise ReaderUnavailable(
                f"The reading model in {folder} cannot be loaded ({type(exc).__name__}); restore it with "
                "`git checkout -- index/models/reader`, or set CITEBOT_READER=0 to answer without it."
            ) from None
        self.max_tokens = int(self.config.get("max_tokens", MAX_TOKENS))
        self._set_rule()
        self.calibration = Calibration.from_config(self.config)
        self._lock = threading.Lock()  # tokenizers objects must not be shared between threads mid-call

    def _set_rule(self) -> None:
        self.threshold = float(self.config["threshold"])
        self.min_relevance = float(self.config.get("min_relevance", 0.0))
        # The joint line of the rule (reader.json "evidence"): a passage the reader finds only fairly
        # likely is enough when the question's words are all over it, not when they are far from it.
        joint = self.config.get("evidence", {})
        self.relevance_weight = float(joint.get("relevance_weight", 0.0))
        self.evidence_threshold = float(joint.get("threshold", float("-inf")))

    def abstains(self, confidence: float, relevance: float) -> bool:
        """The rule fitted with the model: abstain when the best passage's answerability, the search's
        relevance, or their joint evidence (logit of the one + a weight x the other) is too low."""
        return (confidence < self.threshold or relevance < self.min_relevance
                or bool(evidence(confidence, relevance, self.relevance_weight) < self.evidence_threshold))

    def read(self, question: str, passages: Sequence[tuple[str, str]]) -> list[Reading]:
        """One Reading per (title, text) passage, in order."""
        if not passages:
            return []
        with self._lock:
            features = encode(self.tokenizer, question, passages, self.max_tokens)
        start, end, logits = self.session.run(
            ["start_logits", "end_logits", "answer_logit"],
            {
                "input_ids": features.input_ids,
                "attention_mask": features.attention_mask,
                "token_type_ids": features.token_type_ids,
            },
        )
        kind = expected_kind(question)
        return [self.calibration.judge(r, kind, text)
                for r, (_, text) in zip(decode(features, start, end, logits.reshape(-1)), passages)]
