"""Excerpt choice and re-ranking with sentence vectors, on a sample of SQuAD dev questions.

Candidates are the convex fusion's top chunks. Each variant picks an excerpt in every candidate
and may add its score to the chunk's fused score (re-rank γ); it prints the share of questions
whose answer is in the first excerpt (ex@1), in one of the first five (ex@5), and in the first
chunk. Two families of excerpt:
  - "sentence": the best sentence (a × idf share + b × cosine), then neighbours by score, up to
    3 sentences / 350 characters in its paragraph, optionally with an answer-type bonus
    (a number for how many / when, a new capitalised name for who) or a bias to the next sentence;
  - "run": every run of 1-3 sentences in one paragraph scored as a whole (words counted once,
    best cosine), with a credit or penalty per extra sentence and title words weighted down;
and last the engine's own choice (index/read/excerpt.py), which also crosses paragraph breaks.
Sentence vectors come from the index, or with --title-context are embedded after their article
title (cached under var/bench/).

    python bench/excerpt_sweep.py ../shared/data/squad-v1.1-dev.json [--sample 1500] [--title-context]
"""
from __future__ import annotations

import argparse
import hashlib
import logging
import re
from pathlib import Path

import numpy as np
from squad_sample import ROOT, squad_sample  # also puts the project root on sys.path

from index.evaluate import contains_answer
from index.read.excerpt import select_excerpt
from index.search.fusion import convex_combination
from index.read.rerank import TITLE_WORD_WEIGHT
from index.search.tokenize import tokenize

MAX_CHARS = 350
NUMBER_Q = re.compile(r"\b(how (many|much|long|old|far|large|big|tall|high|often|fast)|what (year|percentage|percent|"
                      r"number|amount|age|decade|century|date)|which (year|decade|century)|when)\b", re.I)
WHO_Q = re.compile(r"\b(who|whom|whose)\b", re.I)
NUMBER = re.compile(r"\d|\b(one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|twenty|thirty|forty|fifty|"
                    r"hundred|thousand|million|billion|january|february|march|april|may|june|july|august|"
                    r"september|october|november|december)\b", re.I)
CAPITALISED = re.compile(r"(?<![.!?]\s)(?<!^)\b[A-Z][a-z]+")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("squad", type=Path)
    parser.add_argument("--sample", type=int, default=1500)
    parser.add_argument("--depth", type=int, default=20, help="fused candidates per question")
    parser.add_argument("--title-context", action="store_true", help="embed each sentence after its article title")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    sample = squad_sample(args.squad, args.sample)
    questions, retriever, queries = sample.questions, sample.retriever, sample.queries
    snapshot = sample.engine.snapshot
    chunks = snapshot.chunks(list(range(snapshot.chunk_count)))
    spans = {r: [(s, e) for s, e, _ in c.sentences] for r, c in chunks.items()}

    if args.title_context:
        texts = sorted({f"{c.title}\n{c.text[s:e]}" for c in chunks.values() for s, e, _ in c.sentences})
        cache = ROOT / "var" / "bench" / f"sentences-{hashlib.sha256(chr(0).join(texts).encode()).hexdigest()[:12]}.npy"
        if not cache.exists():
            print(f"embedding {len(texts)} sentences after their titles...", flush=True)
            cache.parent.mkdir(parents=True, exist_ok=True)
            np.save(cache, sample.engine.embedder.bulk.embed(texts))
        row_of = {t: i for i, t in enumerate(texts)}
        by_text = np.load(cache)
        sentence_vectors = {r: by_text[[row_of[f"{c.title}\n{c.text[s:e]}"] for s, e, _ in c.sentences]]
                            for r, c in chunks.items()}
    else:
        sentence_vectors = {r: np.asarray(snapshot.sentence_vectors[[v for *_, v in c.sentences]], dtype=np.float32)
                            for r, c in chunks.items()}

    candidates = []
    for query in queries:
        dense = retriever.dense(query, 50)
        lexical = retriever.bm25(query, 50)
        cosine = dict(dense)
        cosine.update(retriever.cosine(query, [r for r, _ in lexical if r not in cosine]))
        candidates.append(convex_combination(cosine, dict(lexical), 0.5)[: args.depth])

    def typed(i, text):
        """Whether text holds what the question asks for: a number, a name (others: always)."""
        asked = questions[i].question
        known = set(tokenize(asked))
        if NUMBER_Q.search(asked):
            return any(not set(tokenize(m.group())) <= known for m in NUMBER.finditer(text))
        if WHO_Q.search(asked):
            return any(not set(tokenize(m.group())) <= known for m in CAPITALISED.finditer(text))
        return True

    def features(i, row, title_weight=1.0):
        """Per sentence: its text span, question words it holds, cosine; the weights and their sum."""
        weights = queries[i].weights
        if title_weight != 1.0:
            in_title = set(tokenize(chunks[row].title))
            weights = {t: w * (title_weight if t in in_title else 1.0) for t, w in weights.items()}
        text, sp = chunks[row].text, spans[row]
        words = [set(tokenize(text[s:e])) & weights.keys() for s, e in sp]
        cosines = (sentence_vectors[row] @ queries[i].vector).tolist()
        paragraph = [text.count("\n\n", 0, s) for s, _ in sp]
        return text, sp, words, cosines, paragraph, weights, sum(weights.values()) or 1.0

    def sentence_excerpt(i, row, a_lex=1.0, b_cos=1.0, type_bonus=0.0, next_bias=0.0):
        text, sp, words, cosines, paragraph, weights, total = features(i, row)
        score = [a_lex * sum(weights[t] for t in w) / total + b_cos * c for w, c in zip(words, cosines)]
        best = max(range(len(sp)), key=lambda j: (score[j], -j))
        s, e = sp[best]
        if e - s > MAX_CHARS:
            return score[best], text[s:s + MAX_CHARS]
        wants_type = type_bonus and not typed(i, text[s:e])
        first = last = best
        while last - first < 2:
            options = []
            for j, after in ((first - 1, 0), (last + 1, 1)):
                if 0 <= j < len(sp) and paragraph[j] == paragraph[best] \
                        and sp[max(j, last)][1] - sp[min(j, first)][0] <= MAX_CHARS:
                    bonus = next_bias * after + (type_bonus if wants_type and typed(i, text[sp[j][0]:sp[j][1]]) else 0)
                    options.append((score[j] + bonus, after, j))
            if not options:
                break
            _, _, pick = max(options)
            first, last = min(first, pick), max(last, pick)
        return score[best], text[sp[first][0]:sp[last][1]]

    def run_excerpt(i, row, per_sentence=0.001, title_weight=1.0):
        text, sp, words, cosines, paragraph, weights, total = features(i, row, title_weight)
        best = (float("-inf"), 0, 0)
        for a in range(len(sp)):
            for z in range(a, min(a + 3, len(sp))):
                if paragraph[z] != paragraph[a] or (z > a and sp[z][1] - sp[a][0] > MAX_CHARS):
                    break
                score = sum(weights[t] for t in set().union(*words[a:z + 1])) / total + max(cosines[a:z + 1])
                score += per_sentence * (z - a)
                best = max(best, (score, a, z), key=lambda b: b[0])
        score, a, z = best
        return score, text[sp[a][0]:min(sp[z][1], sp[a][0] + MAX_CHARS)]

    def engine_excerpt(i, row):
        _, sp, _, cosines, _, weights, _ = features(i, row, TITLE_WORD_WEIGHT)
        (s, e), score = select_excerpt(chunks[row].text, sp, cosines, weights)
        return score, chunks[row].text[s:e]

    def report(name, excerpt, gamma):
        ex1 = ex5 = ch1 = 0
        for i, q in enumerate(questions):
            scored = []
            for row, fused in candidates[i]:
                if spans[row]:
                    score, text = excerpt(i, row)
                    scored.append((fused + gamma * score, row, text))
            scored.sort(key=lambda x: -x[0])
            hits = [contains_answer(text, q.answers) for _, _, text in scored[:5]]
            ex1 += bool(hits and hits[0])
            ex5 += any(hits)
            ch1 += bool(scored and contains_answer(chunks[scored[0][1]].text, q.answers))
        n = len(questions)
        print(f"| {name} | {ex1 / n:.3f} | {ex5 / n:.3f} | {ch1 / n:.3f} |", flush=True)

    sentences = "sentence vectors after titles" if args.title_context else "sentence vectors from the index"
    print(f"{len(questions)} questions, {len(chunks)} chunks, {sentences}\n")
    print("| variant | ex@1 | ex@5 | chunk@1 |\n|---|---|---|---|")
    report("sentence = lex (before issue 4)", lambda i, r: sentence_excerpt(i, r, b_cos=0), 0)
    report("sentence = cos only", lambda i, r: sentence_excerpt(i, r, a_lex=0), 0)
    for b in (0.5, 1, 2):
        report(f"sentence = lex + {b} cos", lambda i, r, b=b: sentence_excerpt(i, r, b_cos=b), 0)
    for g in (0.5, 1):
        report(f"sentence = lex only, rerank γ {g}", lambda i, r: sentence_excerpt(i, r, b_cos=0), g)
    for g in (0.2, 0.7, 1):
        report(f"sentence = lex + 1 cos, rerank γ {g}", sentence_excerpt, g)
    report("sentence = lex + 2 cos, rerank γ 1", lambda i, r: sentence_excerpt(i, r, b_cos=2), 1)
    report("sentence = lex + 1.5 cos, rerank γ 1.5", lambda i, r: sentence_excerpt(i, r, b_cos=1.5), 1.5)
    report("sentence, type bonus 0.3, rerank γ 1", lambda i, r: sentence_excerpt(i, r, type_bonus=0.3), 1)
    report("sentence, next-sentence bias 0.3, rerank γ 1", lambda i, r: sentence_excerpt(i, r, next_bias=0.3), 1)
    report("run, -0.01 per extra sentence, no rerank", lambda i, r: run_excerpt(i, r, -0.01), 0)
    report("run, -0.01 per extra sentence, rerank γ 1", lambda i, r: run_excerpt(i, r, -0.01), 1)
    report("run, +0.001 per extra sentence, rerank γ 1", run_excerpt, 1)
    for w in (0.3, 0.6):
        report(f"run, title words weigh {w}, rerank γ 1", lambda i, r, w=w: run_excerpt(i, r, title_weight=w), 1)
    report("the engine's excerpt (index/read/excerpt.py), rerank γ 1", engine_excerpt, 1)


if __name__ == "__main__":
    main()
