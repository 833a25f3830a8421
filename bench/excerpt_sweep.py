"""Excerpt choice and re-ranking with sentence vectors, on a sample of SQuAD dev questions.

Every sentence of every chunk is embedded once (cached under var/bench/); candidates are the
convex fusion's top chunks. Variants differ in how a chunk's sentences are scored (idf overlap,
cosine to the question, both) and whether the best sentence's score re-ranks the chunks.

    python bench/excerpt_sweep.py ../shared/data/squad-v1.1-dev.json [--sample 1500]
"""
from __future__ import annotations

import argparse
import hashlib
import logging
import random
import re
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from index.config import Settings  # noqa: E402
from index.evaluate import contains_answer, prepare  # noqa: E402
from index.fusion import convex_combination  # noqa: E402
from index.sentences import sentence_spans  # noqa: E402
from index.tokenize import tokenize  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("squad", type=Path)
    parser.add_argument("--sample", type=int, default=1500)
    parser.add_argument("--depth", type=int, default=20)
    parser.add_argument("--title-context", action="store_true", help="embed each sentence after its article title")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    questions, engine = prepare(args.squad, Settings.from_env())
    random.Random(1).shuffle(questions)
    questions = questions[: args.sample]
    retriever = engine._current().retriever
    snap = engine.snapshot
    n_chunks = snap.dense.ntotal
    chunks = snap.chunks(list(range(n_chunks)))

    # Sentences of every chunk, embedded once.
    spans = {r: sentence_spans(chunks[r].text) for r in range(n_chunks)}
    def skey(row, sentence):
        """What the model reads for a sentence: alone, or after its article title (--title-context)."""
        return f"{chunks[row].title}\n{sentence}" if args.title_context else sentence

    texts = sorted({skey(r, chunks[r].text[s:e]) for r in spans for s, e in spans[r]})
    key = hashlib.sha256("\0".join(texts).encode()).hexdigest()[:12]
    cache = ROOT / "var" / "bench" / f"sentences-{key}.npy"
    if cache.exists():
        svec = np.load(cache)
    else:
        print(f"embedding {len(texts)} sentences...", flush=True)
        svec = engine.embedder.embed(texts)
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.save(cache, svec)
    sid = {t: i for i, t in enumerate(texts)}

    vectors = engine.embedder.embed([q.question for q in questions])
    tokens = [tokenize(q.question) for q in questions]
    cands = []
    for v, t in zip(vectors, tokens):
        dense = retriever.dense(v, 50)
        lexical = retriever.bm25(t, 50)
        cos = dict(dense)
        cos.update(retriever.cosine(v, [r for r, _ in lexical if r not in cos]))
        fused = convex_combination(cos, dict(lexical), 0.5)[: args.depth]
        cands.append((fused, cos))

    def sentence_features(i, row):
        text = chunks[row].text
        sp = spans[row]
        weights = retriever.idf(tokens[i])
        total = sum(weights.values()) or 1.0
        lex = np.array([sum(weights.get(t, 0.0) for t in set(tokenize(text[s:e]))) / total for s, e in sp])
        cos = np.array([svec[sid[skey(row, text[s:e])]] @ vectors[i] for s, e in sp]) if sp else np.zeros(0)
        return text, sp, lex, cos

    def window(text, sp, scores, best, max_chars=350):
        para = [text.count("\n\n", 0, s) for s, _ in sp]
        s, e = sp[best]
        if e - s > max_chars:
            return text[s:s + max_chars]
        first = last = best
        while last - first < 2:
            opts = []
            if first > 0 and para[first - 1] == para[best]:
                opts.append((scores[first - 1], 0, first - 1))
            if last + 1 < len(sp) and para[last + 1] == para[best]:
                opts.append((scores[last + 1], 1, last + 1))
            opts = [o for o in opts if sp[max(o[2], last)][1] - sp[min(o[2], first)][0] <= max_chars]
            if not opts:
                break
            _, _, pick = max(opts)
            first, last = min(first, pick), max(last, pick)
        return text[sp[first][0]:sp[last][1]]

    def run(name, a_lex, b_cos, gamma=0.0):
        ex1 = ex5 = ch1 = 0
        for i, q in enumerate(questions):
            fused, _ = cands[i]
            scored = []
            for row, fscore in fused:
                text, sp, lex, cos = sentence_features(i, row)
                if not sp:
                    continue
                s = a_lex * lex + b_cos * cos
                best = int(np.argmax(s))
                ex = window(text, sp, s, best)
                scored.append((fscore + gamma * float(s[best]), row, ex))
            scored.sort(key=lambda x: -x[0])
            hits = [contains_answer(ex, q.answers) for _, _, ex in scored[:5]]
            ex1 += bool(hits and hits[0])
            ex5 += any(hits)
            ch1 += bool(scored and contains_answer(chunks[scored[0][1]].text, q.answers))
        n = len(questions)
        print(f"| {name} | {ex1 / n:.3f} | {ex5 / n:.3f} | {ch1 / n:.3f} |", flush=True)

    NUMBER_Q = re.compile(r"\b(how (many|much|long|old|far|large|big|tall|high|often|fast)|what (year|percentage|percent|number|amount|age|decade|century|date)|which (year|decade|century)|when)\b", re.I)
    WHO_Q = re.compile(r"\b(who|whom|whose)\b", re.I)
    NUMBER = re.compile(r"\d|\b(one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|twenty|thirty|forty|fifty|hundred|thousand|million|billion|january|february|march|april|may|june|july|august|september|october|november|december)\b", re.I)
    CAP = re.compile(r"(?<![.!?]\s)(?<!^)\b[A-Z][a-z]+")

    def typed(i, text):
        qtext = questions[i].question
        qset = set(tokenize(qtext))
        if NUMBER_Q.search(qtext):
            return any(not set(tokenize(m.group())) <= qset or m.group().isdigit() and m.group() not in qtext for m in NUMBER.finditer(text))
        if WHO_Q.search(qtext):
            return any(not set(tokenize(m.group())) <= qset for m in CAP.finditer(text))
        return True

    def best_window(i, row, b_cos, t_bonus, max_chars=350, length_bonus=-0.01, title_discount=1.0):
        text = chunks[row].text
        sp = spans[row]
        weights = retriever.idf(tokens[i])
        if title_discount != 1.0:
            in_title = set(tokenize(chunks[row].title))
            weights = {t: w * (title_discount if t in in_title else 1.0) for t, w in weights.items()}
        total = sum(weights.values()) or 1.0
        toks = [set(tokenize(text[s:e])) & weights.keys() for s, e in sp]
        cos = [float(svec[sid[skey(row, text[s:e])]] @ vectors[i]) for s, e in sp]
        para = [text.count("\n\n", 0, s) for s, _ in sp]
        best = (-1.0, 0, 0)
        for a in range(len(sp)):
            for z in range(a, min(a + 3, len(sp))):
                if para[z] != para[a] or (z > a and sp[z][1] - sp[a][0] > max_chars):
                    break
                cover = set().union(*toks[a:z + 1])
                score = sum(weights[t] for t in cover) / total + b_cos * max(cos[a:z + 1])
                if t_bonus:
                    score += t_bonus * typed(i, text[sp[a][0]:sp[z][1]])
                score += length_bonus * (z - a)
                if score > best[0]:
                    best = (score, a, z)
        score, a, z = best
        s, e = sp[a][0], sp[z][1]
        if e - s > max_chars:
            e = s + max_chars
        return score, text[s:e]

    def fill_window(i, row, b_cos, t_bonus, next_bias, max_chars=350):
        text = chunks[row].text
        sp = spans[row]
        weights = retriever.idf(tokens[i])
        total = sum(weights.values()) or 1.0
        toks = [set(tokenize(text[s:e])) & weights.keys() for s, e in sp]
        lex = [sum(weights[t] for t in ts) / total for ts in toks]
        cos = [float(svec[sid[skey(row, text[s:e])]] @ vectors[i]) for s, e in sp]
        score = [l + b_cos * c for l, c in zip(lex, cos)]
        para = [text.count("\n\n", 0, s) for s, _ in sp]
        best = max(range(len(sp)), key=lambda j: (score[j], -j))
        top = score[best]
        s, e = sp[best]
        if e - s > max_chars:
            return top, text[s:s + max_chars]
        need_type = t_bonus and not typed(i, text[s:e])
        first = last = best
        while last - first < 2:
            opts = []
            for j, after in ((first - 1, 0), (last + 1, 1)):
                if 0 <= j < len(sp) and para[j] == para[best] and sp[max(j, last)][1] - sp[min(j, first)][0] <= max_chars:
                    bonus = next_bias * after + (t_bonus if need_type and typed(i, text[sp[j][0]:sp[j][1]]) else 0)
                    opts.append((score[j] + bonus, after, j))
            if not opts:
                break
            _, _, pick = max(opts)
            first, last = min(first, pick), max(last, pick)
        return top, text[sp[first][0]:sp[last][1]]

    def run_fill(name, b_cos, t_bonus, next_bias, gamma):
        ex1 = ex5 = ch1 = 0
        for i, q in enumerate(questions):
            fused, _ = cands[i]
            scored = []
            for row, fscore in fused:
                if not spans[row]:
                    continue
                score, ex = fill_window(i, row, b_cos, t_bonus, next_bias)
                scored.append((fscore + gamma * score, row, ex))
            scored.sort(key=lambda x: -x[0])
            hits = [contains_answer(ex, q.answers) for _, _, ex in scored[:5]]
            ex1 += bool(hits and hits[0])
            ex5 += any(hits)
            ch1 += bool(scored and contains_answer(chunks[scored[0][1]].text, q.answers))
        n = len(questions)
        print(f"| {name} | {ex1 / n:.3f} | {ex5 / n:.3f} | {ch1 / n:.3f} |", flush=True)

    def run_windows(name, b_cos, t_bonus, gamma, length_bonus=-0.01, title_discount=1.0):
        ex1 = ex5 = ch1 = 0
        for i, q in enumerate(questions):
            fused, _ = cands[i]
            scored = []
            for row, fscore in fused:
                if not spans[row]:
                    continue
                score, ex = best_window(i, row, b_cos, t_bonus, length_bonus=length_bonus,
                                        title_discount=title_discount)
                scored.append((fscore + gamma * score, row, ex))
            scored.sort(key=lambda x: -x[0])
            hits = [contains_answer(ex, q.answers) for _, _, ex in scored[:5]]
            ex1 += bool(hits and hits[0])
            ex5 += any(hits)
            ch1 += bool(scored and contains_answer(chunks[scored[0][1]].text, q.answers))
        n = len(questions)
        print(f"| {name} | {ex1 / n:.3f} | {ex5 / n:.3f} | {ch1 / n:.3f} |", flush=True)

    print(f"{len(questions)} questions, {n_chunks} chunks, {len(texts)} sentences\n")
    print("| variant | ex@1 | ex@5 | chunk@1 |\n|---|---|---|---|")
    run_windows("union windows, title words weigh 0.5", 1, 0, 1, 0.001, 0.5)
    return
    run("lex only window", 1, 0)
    run("cos only", 0, 1)
    for b in (0.5, 1.0, 2.0):
        run(f"lex + {b} cos", 1, b)
    for g in (0.2, 0.5, 1.0):
        run(f"lex + 1 cos, rerank gamma {g}", 1, 1, g)


if __name__ == "__main__":
    main()
