"""Check a near-miss question file (bench/data/news-nearmiss.jsonl) against the BBC corpus.

Each line must be a JSON object with the keys question, answers, kind, subkind, article, about,
checked (in that order); "answers" must be an empty list (unanswerable), "kind" "near-miss",
"subkind" one of the known kinds, and "article" an existing file of the BBC folder that is not a
training article (listed in bbc-train.txt, by default next to the BBC folder) nor a story of the
news dev set (bench/data/news-dev.jsonl, when present). Prints counts by subkind and by category;
exits 1 on any problem. Whether the corpus really lacks each answer is checked by hand (see the
"checked" field), not here.

    python bench/check_nearmiss.py ../shared/data/bbc-news bench/data/news-nearmiss.jsonl
"""
from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

KEYS = ["question", "answers", "kind", "subkind", "article", "about", "checked"]
SUBKINDS = {"later-development", "amount", "date", "person", "number", "place", "reason", "result",
            "swapped-detail", "other"}
DEV = Path(__file__).resolve().parent / "data" / "news-dev.jsonl"


def read_list(path: Path) -> set[str]:
    """Article paths, one a line; '#' lines and blank lines skipped."""
    return {line.strip() for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip() and not line.lstrip().startswith("#")}


def dev_articles(path: Path) -> set[str]:
    if not path.is_file():
        return set()
    return {json.loads(line).get("article", "") for line in path.read_text(encoding="utf-8").splitlines() if line.strip()}


def check(bbc: Path, questions: Path, train: Path, dev: Path) -> tuple[list[str], list[dict]]:
    """The problems found (empty when the file is fine) and the rows that parsed."""
    problems: list[str] = []
    training = read_list(train)
    in_dev = dev_articles(dev)
    rows: list[dict] = []
    seen: dict[str, int] = {}
    try:
        lines = questions.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        return [f"{questions}: cannot read as UTF-8 text ({e})"], []
    for number, line in enumerate(lines, 1):
        where = f"line {number}"
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            problems.append(f"{where}: not JSON ({e.msg})")
            continue
        if not isinstance(row, dict):
            problems.append(f"{where}: not a JSON object")
            continue
        if list(row) != KEYS:
            problems.append(f"{where}: keys {list(row)}, expected {KEYS}")
        for key in ("question", "about", "checked", "article", "subkind"):
            if not isinstance(row.get(key), str) or not row.get(key, "").strip():
                problems.append(f"{where}: {key!r} must be non-empty text")
        if row.get("answers") != []:
            problems.append(f"{where}: 'answers' must be an empty list, got {row.get('answers')!r}")
        if row.get("kind") != "near-miss":
            problems.append(f"{where}: 'kind' must be 'near-miss', got {row.get('kind')!r}")
        if row.get("subkind") not in SUBKINDS:
            problems.append(f"{where}: unknown subkind {row.get('subkind')!r}")
        article = row.get("article")
        if isinstance(article, str) and article:
            if not (bbc / article).is_file():
                problems.append(f"{where}: article {article} not found under {bbc}")
            if article in training:
                problems.append(f"{where}: article {article} is a training article ({train.name})")
            if article in in_dev:
                problems.append(f"{where}: article {article} is already used by {dev.name}")
        question = row.get("question")
        if isinstance(question, str):
            key = " ".join(question.lower().split())
            if key in seen:
                problems.append(f"{where}: same question as line {seen[key]}")
            seen.setdefault(key, number)
        rows.append(row)
    if not rows:
        problems.append(f"{questions}: no questions")
    return problems, rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("bbc", type=Path, help="the BBC folder (business/, entertainment/, ... of NNN.txt)")
    parser.add_argument("jsonl", type=Path, help="the near-miss question file")
    parser.add_argument("--train", type=Path, help="training article list (default: BBC/../bbc-train.txt)")
    parser.add_argument("--dev", type=Path, default=DEV,
                        help="question file whose articles must not be reused (default: bench/data/news-dev.jsonl)")
    args = parser.parse_args(argv)
    train = args.train or args.bbc.resolve().parent / "bbc-train.txt"
    if not args.bbc.is_dir():
        print(f"check_nearmiss: {args.bbc} is not a folder", file=sys.stderr)
        return 2
    if not train.is_file():
        print(f"check_nearmiss: training list {train} does not exist (give --train)", file=sys.stderr)
        return 2
    problems, rows = check(args.bbc, args.jsonl, train, args.dev)
    subkinds = Counter(r.get("subkind") for r in rows)
    categories = Counter(str(r.get("article", "")).split("/")[0] for r in rows)
    articles = {r.get("article") for r in rows}
    print(f"{len(rows)} questions on {len(articles)} articles")
    print("by subkind:  " + ", ".join(f"{k} {n}" for k, n in sorted(subkinds.items(), key=lambda kv: (-kv[1], str(kv[0])))))
    print("by category: " + ", ".join(f"{k} {n}" for k, n in sorted(categories.items())))
    for problem in problems:
        print(f"PROBLEM {problem}", file=sys.stderr)
    if problems:
        print(f"{len(problems)} problem(s)", file=sys.stderr)
        return 1
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
