"""Engine time per question with the reading model, against the same engine without it (same run).

    python bench/reader_latency.py ../shared/data/squad-v1.1-dev.json ../shared/data/bbc-news [--questions 400]

The index is the SQuAD + BBC corpus of `citebot eval bench/data/news-dev.jsonl --corpus ...` (a
BBC-size index: ~12k chunks), built once and reused. Serving runs in a fresh child process, as the
bot does: it must answer without importing torch. Questions alternate between the engine with and
without the reader, so both see the same machine load. Prints p50/p95 of Answer.elapsed_ms.
"""
from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def child(data: Path, questions_file: Path) -> None:
    from index.config import Settings
    from index.engine import Engine

    with_reader = Engine(Settings(data_dir=data))
    without = Engine(Settings(data_dir=data, reader=False), with_reader.embedder)
    questions = json.loads(questions_file.read_text())
    with_reader.ask(questions[0]), without.ask(questions[0])  # load everything before timing
    on, off = [], []
    for q in questions:
        on.append(with_reader.ask(q).elapsed_ms)
        off.append(without.ask(q).elapsed_ms)
    pct = lambda xs, p: round(float(np.percentile(xs, p)), 1)  # noqa: E731
    print(json.dumps({
        "chunks": with_reader.snapshot.manifest["chunks"], "questions": len(questions),
        "reader_p50_ms": pct(on, 50), "reader_p95_ms": pct(on, 95),
        "no_reader_p50_ms": pct(off, 50), "no_reader_p95_ms": pct(off, 95),
        "torch_loaded": "torch" in sys.modules,
    }))


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(Path(sys.argv[2]), Path(sys.argv[3]))
        return 0
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("squad", type=Path)
    ap.add_argument("bbc", type=Path)
    ap.add_argument("--questions", type=int, default=400)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    from index.config import Settings
    from index.evaluate import load_jsonl, load_squad, prepare

    news = ROOT / "bench/data/news-dev.jsonl"
    _, engine = prepare(news, Settings.from_env(), [args.squad, args.bbc])
    squad_questions, _ = load_squad(args.squad)
    random.Random(3).shuffle(squad_questions)
    questions = [q.question for q in load_jsonl(news)] + [q.question for q in squad_questions]
    questions = questions[: args.questions]
    qfile = engine.settings.data_dir / "latency-questions.json"
    qfile.write_text(json.dumps(questions))
    began = time.time()
    done = subprocess.run([sys.executable, __file__, "--child", str(engine.settings.data_dir), str(qfile)],
                          cwd=ROOT, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"serving failed: {done.stderr[-2000:]}")
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    figures["seconds"] = round(time.time() - began, 1)
    print(f"engine per question, {figures['chunks']:,} chunks, {figures['questions']} questions: "
          f"reader p50 {figures['reader_p50_ms']} ms, p95 {figures['reader_p95_ms']} ms; "
          f"without reader (same run) p50 {figures['no_reader_p50_ms']} ms, p95 {figures['no_reader_p95_ms']} ms; "
          f"torch loaded: {figures['torch_loaded']}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
