"""Embedding runtimes for the default model (all-MiniLM-L6-v2), compared in one run on the same texts.

Runtimes: sentence-transformers on torch in fp32 (the baseline: every ratio is to it) and with
precision "auto" (bf16 where the CPU multiplies bfloat16 natively); ONNX Runtime on the model
exported by index/encoders/onnx_export.py, as is (fp32) and dynamically quantised to int8.

For each: bulk throughput (texts/s) on news chunks (150-word windows, step 120, of the BBC
articles in sorted file order), p50 latency of one short question, cosine of its vectors to the
fp32 ones on the same chunks, and SQuAD dense recall@5 (passage level, on a sample: the first P
paragraphs, "title\\n\\ncontext", and all their questions, ranked by inner product). Cold starts
(imports, model load, first encode) are timed once inside fresh subprocesses.

    python bench/embedders.py [../shared/data/bbc-news] [--chunks 1000] [--paragraphs 600] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from index.encoders.embedding import BulkEmbedder, resolve_model  # noqa: E402
from index.encoders.onnx_encoder import CONFIG_FILE, MODEL_FILE, TOKENIZER_FILE, OnnxEncoder  # noqa: E402
from index.encoders.onnx_export import export, is_exported  # noqa: E402

MODEL = "all-MiniLM-L6-v2"
BATCH = 32  # as BulkEmbedder.embed
LATENCY_QUESTIONS = 50


def bbc_chunks(folder: Path, count: int, size: int = 150, step: int = 120) -> list[str]:
    chunks = []
    for path in sorted(folder.glob("*/*.txt")):
        words = path.read_text(encoding="utf-8", errors="replace").split()
        for start in range(0, len(words), step):
            chunks.append(" ".join(words[start : start + size]))
            if len(chunks) == count:
                return chunks
            if start + size >= len(words):
                break  # the window reached the end: no tail made only of words already seen
    return chunks


def squad_passages(path: Path, count: int) -> tuple[list[str], list[str], np.ndarray]:
    """The first count paragraphs as passages, all their questions, and each question's passage."""
    passages, questions, owners = [], [], []
    for article in json.loads(path.read_text(encoding="utf-8"))["data"]:
        for paragraph in article["paragraphs"]:
            if len(passages) == count:
                return passages, questions, np.array(owners)
            for qa in paragraph["qas"]:
                questions.append(qa["question"])
                owners.append(len(passages))
            passages.append(f"{article['title'].replace('_', ' ')}\n\n{paragraph['context']}")
    return passages, questions, np.array(owners)


def onnx_embed(encoder: OnnxEncoder, texts: list[str]) -> np.ndarray:
    """Batched as BulkEmbedder.embed does (similar lengths together), so throughputs compare."""
    out = np.empty((len(texts), encoder.dim), dtype=np.float32)
    order = np.argsort([len(t) for t in texts], kind="stable")
    for first in range(0, len(order), BATCH):
        ids = order[first : first + BATCH]
        out[ids] = encoder.encode([texts[i] for i in ids])
    return out


def quantise(src: Path, dst: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    dst.mkdir(parents=True, exist_ok=True)
    # DefaultTensorType=1 (float): without it the quantiser crashes on this graph's untyped tensors.
    quantize_dynamic(src / MODEL_FILE, dst / MODEL_FILE, weight_type=QuantType.QInt8, per_channel=True,
                     extra_options={"DefaultTensorType": 1})
    for name in (TOKENIZER_FILE, CONFIG_FILE):
        shutil.copy(src / name, dst / name)


def measure(embed, embed_one, chunks, passages, questions, owners, latency_questions) -> dict:
    embed(chunks[:BATCH])  # warm-up: first calls allocate and pick kernels
    started = time.perf_counter()
    vectors = embed(chunks)
    seconds = time.perf_counter() - started
    embed_one(latency_questions[0])
    times = []
    for question in latency_questions:
        started = time.perf_counter()
        embed_one(question)
        times.append(time.perf_counter() - started)
    scores = embed(questions) @ embed(passages).T
    top5 = np.argsort(-scores, axis=1)[:, :5]
    return {"vectors": vectors, "texts_per_s": len(chunks) / seconds,
            "query_ms_p50": float(np.median(times) * 1000),
            "recall5": float(np.mean([owner in row for owner, row in zip(owners, top5)]))}


CHILD_TORCH = """
import json, time
t0 = time.perf_counter()
import torch, sentence_transformers
t1 = time.perf_counter()
sentence_transformers.SentenceTransformer({location!r}, device="cpu")
t2 = time.perf_counter()
print(json.dumps({{"torch_import_s": t1 - t0, "torch_model_load_s": t2 - t1}}))
"""
CHILD_ONNX = """
import json, sys, time
sys.path.insert(0, {root!r})
from index.encoders.onnx_encoder import OnnxEncoder  # the engine's own import, not the runtime's: untimed
t0 = time.perf_counter()
import onnxruntime
t1 = time.perf_counter()
encoder = OnnxEncoder({folder!r})
t2 = time.perf_counter()
encoder.encode(["Where was the NATO summit held?"])
t3 = time.perf_counter()
print(json.dumps({{"onnx_import_s": t1 - t0, "onnx_load_s": t2 - t1, "onnx_first_encode_s": t3 - t2}}))
"""


def cold_start(location: str, folder: Path) -> dict:
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    figures = {}
    for code in (CHILD_TORCH.format(location=location), CHILD_ONNX.format(root=str(ROOT), folder=str(folder))):
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
        figures.update(json.loads(done.stdout.strip().splitlines()[-1]))
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("bbc_path", nargs="?", type=Path, help="BBC articles folder (same as --bbc)")
    parser.add_argument("--bbc", type=Path, default=ROOT.parent / "shared" / "data" / "bbc-news")
    parser.add_argument("--squad", type=Path, default=ROOT.parent / "shared" / "data" / "squad-v1.1-dev.json")
    parser.add_argument("--chunks", type=int, default=1000, help="news chunks for throughput and cosine")
    parser.add_argument("--paragraphs", type=int, default=600, help="SQuAD paragraphs for recall@5")
    parser.add_argument("--cache", type=Path, help="keep the ONNX exports here (default: a temporary folder)")
    parser.add_argument("--json", type=Path, help="also write every figure to this file")
    args = parser.parse_args()

    chunks = bbc_chunks(args.bbc_path or args.bbc, args.chunks)
    passages, questions, owners = squad_passages(args.squad, args.paragraphs)
    latency_questions = [questions[i % len(questions)] for i in range(LATENCY_QUESTIONS)]
    print(f"{len(chunks)} news chunks, {len(passages)} SQuAD passages, {len(questions)} questions")

    with tempfile.TemporaryDirectory() as tmp:
        cache = args.cache or Path(tmp)
        fp32, auto = BulkEmbedder(MODEL, precision="fp32"), BulkEmbedder(MODEL, precision="auto")
        onnx_dir, int8_dir = cache / "onnx-fp32", cache / "onnx-int8"
        if not is_exported(onnx_dir):
            export(fp32.model, onnx_dir)
        if not is_exported(int8_dir):
            quantise(onnx_dir, int8_dir)
        onnx, int8 = OnnxEncoder(onnx_dir), OnnxEncoder(int8_dir)
        runtimes = {
            "torch fp32": (fp32.embed, lambda q: fp32.encode([q])[0]),  # a question through torch
            "torch bf16": (auto.embed, lambda q: auto.encode([q])[0]),
            "onnxruntime fp32": (lambda t: onnx_embed(onnx, t), lambda q: onnx.encode([q])),
            "onnxruntime int8": (lambda t: onnx_embed(int8, t), lambda q: int8.encode([q])),
        }
        results = {}
        for name, (embed, embed_one) in runtimes.items():  # one at a time: each gets every core
            print(f"measuring {name} ...", flush=True)
            results[name] = measure(embed, embed_one, chunks, passages, questions, owners, latency_questions)
        cold = cold_start(resolve_model(MODEL), onnx_dir)

    base = results["torch fp32"]
    base_vectors = base["vectors"]
    for row in results.values():
        cosines = np.sum(row.pop("vectors") * base_vectors, axis=1)  # rows are unit length
        row.update(ratio=row["texts_per_s"] / base["texts_per_s"], cos_mean=float(cosines.mean()),
                   cos_min=float(cosines.min()), recall5_delta_points=(row["recall5"] - base["recall5"]) * 100)

    print(f"\ntorch precision 'auto' resolved to {'bf16' if auto.bf16 else 'fp32 (no native bf16 on this CPU)'}")
    print(f"recall@5: passage-level dense recall on a sample ({len(passages)} paragraphs, {len(questions)} questions)\n")
    print(f"{'runtime':<18} {'texts/s':>8} {'vs fp32':>8} {'query p50':>10} {'cos mean':>9} {'cos min':>8} "
          f"{'recall@5':>9} {'Δ points':>9}")
    for name, r in results.items():
        print(f"{name:<18} {r['texts_per_s']:>8.1f} {r['ratio']:>7.2f}x {r['query_ms_p50']:>8.1f}ms "
              f"{r['cos_mean']:>9.5f} {r['cos_min']:>8.5f} {r['recall5']:>9.3f} {r['recall5_delta_points']:>+9.1f}")
    print("\ncold start (fresh process, seconds):")
    print(f"  torch: import torch + sentence_transformers {cold['torch_import_s']:.2f}, "
          f"model load {cold['torch_model_load_s']:.2f}")
    print(f"  onnxruntime: import {cold['onnx_import_s']:.2f}, OnnxEncoder load {cold['onnx_load_s']:.2f}, "
          f"first encode {cold['onnx_first_encode_s']:.3f}")

    q8 = results["onnxruntime int8"]
    int8_ok = q8["ratio"] >= 1.5 and abs(q8["recall5_delta_points"]) <= 0.5
    print(f"\nint8 rule (throughput >= 1.5x torch fp32, recall@5 within 0.5 points): "
          f"{'met' if int8_ok else 'not met'} ({q8['ratio']:.2f}x, {q8['recall5_delta_points']:+.1f} points)")
    print(f"chosen: bulk = {'torch bf16' if auto.bf16 else 'torch fp32 (no native bf16 here)'}, "
          "questions = onnxruntime fp32")

    if args.json:
        summary = dict(results, cold_start=cold, chunks=len(chunks), paragraphs=len(passages),
                       questions=len(questions), torch_auto_is_bf16=auto.bf16, int8_rule_met=int8_ok)
        args.json.write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
