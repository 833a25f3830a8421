"""Compare ways of fusing dense and BM25 candidates, on a sample of SQuAD dev questions.

Prints, per variant, the share of questions whose answer is in the first cited excerpt (ex@1),
in one of the first five (ex@5), and the same for whole chunks. Candidates (top 100 of each
retriever) are computed once, so each variant costs only its fusion and excerpt selection.

    python bench/fusion_sweep.py ../shared/data/squad-v1.1-dev.json [--sample 1500]
"""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

from squad_sample import squad_sample  # also puts the project root on sys.path

from index.evaluate import contains_answer
from index.read.excerpt import select_excerpt
from index.search.fusion import convex_combination, reciprocal_rank_fusion


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("squad", type=Path)
    parser.add_argument("--sample", type=int, default=1500)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    sample = squad_sample(args.squad, args.sample)
    questions, engine, retriever = sample.questions, sample.engine, sample.retriever
    queries = sample.queries
    dense = [retriever.dense(q, 100) for q in queries]
    lexical = [retriever.bm25(q, 100) for q in queries]
    rows = sorted({r for lists in (dense, lexical) for ranking in lists for r, _ in ranking})
    chunks = engine.snapshot.chunks(rows)

    def report(name, rank):
        ex1 = ex5 = ch1 = ch5 = 0
        for i, q in enumerate(questions):
            top = rank(i)[:5]
            weights = queries[i].weights
            excerpts = []
            for row in top:
                text = chunks[row].text
                spans = [(s, e) for s, e, _ in chunks[row].sentences]
                # Lexical excerpt choice only (no sentence cosines): this sweep compares fusions.
                (s, e), _ = select_excerpt(text, spans, [0.0] * len(spans), weights)
                excerpts.append(text[s:e])
            hits = [contains_answer(x, q.answers) for x in excerpts]
            chunk_hits = [contains_answer(chunks[r].text, q.answers) for r in top]
            ex1 += bool(hits[:1] and hits[0])
            ex5 += any(hits)
            ch1 += bool(chunk_hits[:1] and chunk_hits[0])
            ch5 += any(chunk_hits)
        n = len(questions)
        print(f"| {name} | {ex1 / n:.3f} | {ex5 / n:.3f} | {ch1 / n:.3f} | {ch5 / n:.3f} |", flush=True)

    def rrf(i, k=60, dense_weight=1.0):
        scores = {}
        for weight, ranking in ((dense_weight, dense[i][:50]), (1.0, lexical[i][:50])):
            for rank, (row, _) in enumerate(ranking, 1):
                scores[row] = scores.get(row, 0.0) + weight / (k + rank)
        return sorted(scores, key=lambda r: -scores[r])

    def convex(i, alpha):
        cosine = dict(dense[i][:50])
        cosine.update(retriever.cosine(queries[i], [r for r, _ in lexical[i][:50] if r not in cosine]))
        return [r for r, _ in convex_combination(cosine, dict(lexical[i][:50]), alpha)]

    print(f"{len(questions)} SQuAD dev questions, {engine.stats()['chunks']} chunks\n")
    print("| variant | ex@1 | ex@5 | chunk@1 | chunk@5 |\n|---|---|---|---|---|")
    report("dense", lambda i: [r for r, _ in dense[i]])
    report("bm25", lambda i: [r for r, _ in lexical[i]])
    report("rrf k=60", lambda i: [r for r, _ in reciprocal_rank_fusion([[r for r, _ in dense[i][:50]],
                                                                          [r for r, _ in lexical[i][:50]]])])
    report("rrf k=10", lambda i: rrf(i, 10))
    report("rrf k=10, dense weight 0.5", lambda i: rrf(i, 10, 0.5))
    for alpha in (0.3, 0.5, 0.7):
        report(f"convex alpha={alpha}", lambda i, a=alpha: convex(i, a))


if __name__ == "__main__":
    main()
