#!/usr/bin/env bash
# Every speed and scale figure in one run (docs/performance.md), each with its baseline from
# the same run; about 40 minutes on two cores. Usage: bench/run.sh [../shared/data]
set -euo pipefail
cd "$(dirname "$0")/.."
DATA="${1:-../shared/data}"
OUT=var/bench/results
PY=.venv/bin/python
mkdir -p "$OUT"
[ -d "$DATA/bbc-news" ] || { echo "bench/run.sh: no $DATA/bbc-news (pass the shared data folder)" >&2; exit 2; }
began=$(date +%s)

echo "### 1/3 embedding runtimes (bench/embedders.py)"
$PY bench/embedders.py "$DATA/bbc-news" --squad "$DATA/squad-v1.1-dev.json" --chunks 600 --paragraphs 400 \
    --json "$OUT/embedders.json"

echo; echo "### 2/3 builds, serving at 10k/100k chunks, FAISS to 1M (bench/scale.py)"
$PY bench/scale.py "$DATA/bbc-news" --squad "$DATA/squad-v1.1-dev.json" --json "$OUT/scale.json"

echo; echo "### 3/3 the bot end to end against the fake Bot API (bench/bot_throughput.py)"
$PY bench/bot_throughput.py --users 50 --questions 4 --json "$OUT/bot.json"

echo; echo "### live news: updates as segments, merges, recall after 20 updates (bench/incremental.py)"
$PY bench/incremental.py "$DATA/bbc-news" --squad "$DATA/squad-v1.1-dev.json" --synthetic 100000 \
    --json "$OUT/incremental.json"

echo; echo "### time in questions (bench/dated.py) and follow-ups (bench/followups.py)"
$PY bench/dated.py --haystack "$DATA/bbc-news" --json "$OUT/dated.json"
$PY bench/followups.py "$DATA/bbc-news" --json "$OUT/followups.json"

echo; echo "### summary (bench/summary.py)"
$PY bench/summary.py "$OUT"
echo; echo "bench/run.sh took $(( ($(date +%s) - began) / 60 )) min"
