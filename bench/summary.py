"""The speed-and-scale table of docs/performance.md, from the JSON that bench/run.sh's three scripts wrote.

    python bench/summary.py var/bench/results
"""
from __future__ import annotations

import json
import sys
from pathlib import Path


def row(figure: str, measured: str, baseline: str, target: str) -> str:
    return f"| {figure} | {measured} | {baseline} | {target} |"


def main() -> None:
    folder = Path(sys.argv[1] if len(sys.argv) > 1 else "var/bench/results")
    emb = json.loads((folder / "embedders.json").read_text())
    scale = json.loads((folder / "scale.json").read_text())
    bot = json.loads((folder / "bot.json").read_text())
    fp32, bf16, ort, int8 = (emb[k] for k in ("torch fp32", "torch bf16", "onnxruntime fp32", "onnxruntime int8"))
    cold = emb["cold_start"]
    build = scale["build"]
    lines = ["| figure | measured | baseline (same run) | target |", "|---|---|---|---|"]
    lines.append(row("bulk embedding, texts/s (bf16 where the CPU has it)",
                     f"{bf16['texts_per_s']:.1f} ({bf16['ratio']:.2f}x), recall@5 {bf16['recall5_delta_points']:+.1f} pt",
                     f"torch fp32 {fp32['texts_per_s']:.1f}", ">= 1.5x, recall@5 within 0.5 pt"))
    lines.append(row("ONNX Runtime fp32 / int8, texts/s",
                     f"{ort['texts_per_s']:.1f} ({ort['ratio']:.2f}x) / {int8['texts_per_s']:.1f} ({int8['ratio']:.2f}x), "
                     f"int8 recall@5 {int8['recall5_delta_points']:+.1f} pt",
                     f"torch fp32 {fp32['texts_per_s']:.1f}", "int8 chosen only if it pays"))
    lines.append(row("question embedding p50", f"{ort['query_ms_p50']:.1f} ms (ONNX Runtime fp32)",
                     f"torch fp32 {fp32['query_ms_p50']:.1f} ms", ""))
    fresh = build["fresh"]
    lines.append(row("BBC build, every article (fresh)",
                     f"{fresh['chunks']:,} chunks in {fresh['seconds']:.0f} s = {fresh['chunks_per_s']:.1f} chunks/s "
                     f"(sentences too), peak RSS {fresh['peak_rss_mb_children']:.0f} MB", "", ""))
    lines.append(row("rebuild, unchanged corpus / one new article",
                     f"{build['unchanged']['seconds']:.1f} s / {build['one_new_article']['seconds']:.1f} s",
                     f"fresh build {fresh['seconds']:.0f} s", "seconds, no model call"))
    for s in scale["serve"]:
        n = f"{s['chunks']:,} chunks ({s['vectors']}, {s['dense_index']})"
        lines.append(row(f"engine per question, {n}", f"p50 {s['p50_ms']:.1f} ms, p95 {s['p95_ms']:.1f} ms",
                         f"embed {s['embed_p50_ms']:.1f}, dense {s['dense_p50_ms']:.2f}, BM25 {s['bm25_p50_ms']:.1f} "
                         f"(p95 {s['bm25_p95_ms']:.1f}) ms", "p50 <= 10, p95 <= 25 ms at 100k"))
        lines.append(row(f"serving process, {n}",
                         f"RSS {s['rss_mb']:.0f} MB ({s['anon_mb']:.0f} own + {s['file_mb']:.0f} mapped files); "
                         f"first answer {s['first_answer_s']:.2f} s after start; torch loaded: {s['torch_loaded']}",
                         f"torch import alone {cold['torch_import_s']:.1f} s", "<= 600 MB, <= 2 s at 100k"))
    exact = {f["n"]: f for f in scale["faiss"] if f["index"] == "flat"}
    for f in scale["faiss"]:
        if f["index"] == "flat" or f["setting"] not in ("ef=256", "nprobe=64"):
            continue
        base = exact[f["n"]]
        lines.append(row(f"{f['index']} {f['setting']}, {f['n']:,} {f['vectors']} vectors",
                         f"recall@10 {f['recall10']:.3f}, p50 {f['p50_ms']:.2f} ms, {f['bytes_per_chunk']:.0f} B/chunk, "
                         f"build {f['build_s']:.0f} s",
                         f"exact p50 {base['p50_ms']:.2f} ms, {base['bytes_per_chunk']:.0f} B/chunk", "recall@10 >= 0.98"))
    engine = bot["engine"]
    for name, b in bot.items():
        if name != "engine":
            lines.append(row(name, f"{b['rate']:.1f} q/s, p50 {b['p50_ms']:.0f} ms, p95 {b['p95_ms']:.0f} ms",
                             f"engine alone {engine['rate']:.0f} q/s", ">= 30 q/s, p95 < 500 ms"))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
