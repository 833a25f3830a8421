"""The `citebot` command: build the index, ask questions, show stats, evaluate, serve."""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from dataclasses import replace
from pathlib import Path

from tqdm import tqdm

DESCRIPTION = """\
citebot answers questions about a folder of news articles with cited excerpts.

  citebot build [CORPUS_DIR]     (re)build the search index (only new text is embedded)
  citebot ask "QUESTION"         print the best cited excerpts, or say the corpus lacks the answer
  citebot stats                  documents, chunks, model, index size and age
  citebot eval QUESTIONS         measure retrieval on SQuAD JSON or question JSONL
  citebot feed add|list|remove   the RSS and Atom feeds that `refresh` fetches
  citebot add URL|FILE           add one web page or article file to the corpus and the index
  citebot refresh                fetch every feed, add the new articles, update the index
  citebot report                 what users asked the bot, its abstentions and votes
  citebot db init|import|status  the PostgreSQL database of CITEBOT_DATABASE_URL (replicas share it)
  citebot serve                  run the Telegram bot (no TELEGRAM_BOT_TOKEN: the console)

-q and -v go before or after the command. Settings come from the environment (the bot's are in
`citebot serve --help`; a CITEBOT_ name that is no setting is warned about):
"""


def _settings_help() -> str:
    """The engine's settings, one per line, for `citebot --help`."""
    import textwrap

    from index.config import ENGINE_SETTINGS

    width = max(map(len, ENGINE_SETTINGS)) + 4
    return "\n".join(textwrap.fill(meaning, 100, initial_indent=f"  {name:<{width - 2}}",
                                    subsequent_indent=" " * width) for name, meaning in ENGINE_SETTINGS.items())


SERVE_HELP = """\
Run the Telegram bot over the built index. Without TELEGRAM_BOT_TOKEN, open the interactive
console instead: the same bot as a private chat (each line follows up the answer before unless it
is a new question, "more" shows the next citations, questions are logged for `citebot report`).

  TELEGRAM_BOT_TOKEN        the token from @BotFather
  CITEBOT_ADMIN_IDS         numeric Telegram user ids allowed to /reindex and /stats, comma-separated
  CITEBOT_WEBHOOK_URL       https address Telegram should post updates to (default: long polling)
  CITEBOT_WEBHOOK_SECRET    secret Telegram sends in X-Telegram-Bot-Api-Secret-Token (default: random)
  PORT, CITEBOT_LISTEN      where the webhook server listens (default 0.0.0.0:8443)
  CITEBOT_TELEGRAM_API_URL  another Bot API server (default https://api.telegram.org/bot)
  CITEBOT_RATE_LIMIT, CITEBOT_RATE_WINDOW   questions per user per window in seconds (default 10 per 60)
  CITEBOT_WORKERS           questions answered at once (default 4)
  CITEBOT_BOOTSTRAP_RETRIES tries to reach the Bot API at start, backing off (default 6, about 20 s)
  CITEBOT_REFRESH_MINUTES   fetch the feeds and update the index this often (default 30; 0 = never)
  CITEBOT_HISTORY_DAYS      answers remembered for More, follow-up replies and votes (default 7)
  CITEBOT_LOG_QUESTIONS     0: log no question texts (only time, chat type, abstained) (default 1)
  CITEBOT_LOG_DAYS          days the question log and votes are kept (default 30)
  CITEBOT_BACKLOG_MINUTES   questions older than this when they arrive (after downtime) are dropped
                            (default 10; 0 answers all)
  CITEBOT_METRICS_PORT      serve GET /healthz (index loaded, database reachable: 200, else 503) and
                            GET /metrics (Prometheus) on CITEBOT_LISTEN:this port (default 0: off)

Admins also manage the corpus from Telegram: /feeds, /addfeed URL, /removefeed URL, /add URL, and
an article file (.txt .md .html .json .jsonl, up to 20 MB) sent to the bot in a private chat.
"""


DB_HELP = """\
With CITEBOT_DATABASE_URL=postgresql://USER:PASSWORD@HOST:PORT/DATABASE the index (`citebot build`
writes it there: new and changed articles only, one transaction per update) and the bot's answers
(for More, follow-ups and votes), votes, question log, per-user rate limits and feeds live in that
PostgreSQL database instead of files in DATA_DIR, so several replicas of the bot can share them;
one replica runs each scheduled feed refresh. The database needs the pgvector extension.

  citebot db init     create the schema, or migrate it to this citebot's version; run it again and
                      nothing changes. Prints the schema version. (`citebot serve` also migrates a
                      schema that is behind; a schema newer than this citebot is refused.)
  citebot db import   copy DATA_DIR/bot.sqlite, feeds.sqlite, follows.sqlite, digests.sqlite and the file
                      index (its corpus, with the index's vectors: nothing is embedded again) into the
                      database (creating
                      the schema first). Rows already there are kept: importing twice adds nothing.
                      Prints what was added. Run it before the bot's first start on the database.
  citebot db status   the server, pgvector, the schema's version and the rows in each table; exits 1
                      when the database is not ready (no schema, an old one, no pgvector).

Exits 2 with one sentence when the database cannot be used: it cannot be reached, the login is
refused, the database does not exist, it has no pgvector, its schema is newer than citebot.
The password is never printed. docs/operations.md, "PostgreSQL", has the whole setup.
"""


class ProgressBars:
    """Progress of long work (build stages, eval rows): tqdm bars on a terminal; elsewhere (a log
    file, CI, a pipe) a line every 10%, never thousands of carriage returns."""

    LABELS = {"read": "reading files", "embed": "embedding passages and sentences", "write": "writing index",
              "multilingual": "embedding passages for questions in other languages"}

    def __init__(self, enabled: bool = True, terminal: bool | None = None):
        self.enabled = enabled
        self.terminal = sys.stderr.isatty() if terminal is None else terminal
        self.bars: dict[str, tqdm] = {}
        self.reported: dict[str, int] = {}  # stage -> last tenth reported (non-terminal)

    def __call__(self, stage: str, done: int, total: int) -> None:
        if not self.enabled or total <= 0:
            return
        if not self.terminal:
            tenth = done * 10 // total
            if tenth > self.reported.get(stage, -1):
                self.reported[stage] = tenth
                logging.getLogger("bot.cli").info("%s: %d%% (%s of %s)", self.LABELS.get(stage, stage), tenth * 10,
                                                  f"{done:,}", f"{total:,}")
            return
        bar = self.bars.get(stage)
        if bar is None:
            self.close()  # the previous stage is over
            bar = self.bars[stage] = tqdm(total=total, desc=self.LABELS.get(stage, stage), unit="", leave=True)
        bar.update(done - bar.n)
        if done >= total:  # closed now: what comes next (loading the model) is not this stage's time
            bar.close()

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()


def _settings(args):
    from index.config import Settings

    return Settings.from_env(data_dir=args.data_dir, model=args.model, fusion=getattr(args, "fusion", None))


def _engine(args):
    from index.engine import Engine

    return Engine(_settings(args))


def cmd_build(args) -> int:
    """Build or refresh the index over the corpus folder."""
    engine = _engine(args)
    bars = ProgressBars(enabled=not args.quiet)
    try:
        report = engine.build(Path(args.corpus_dir) if args.corpus_dir else None, progress=bars, force=args.force)
    finally:
        bars.close()
    print(report.summary())
    return 0


# Citations `ask` shows at most: the passages the engine re-ranks by their best excerpt (index/search/rerank.py's
# RERANK_DEPTH); further down they are ranked by fusion alone and soon unrelated.
MAX_K = 20


def cmd_ask(args) -> int:
    """Answer one question."""
    from bot.console import render_text

    if args.k > MAX_K:
        print(f"citebot: showing at most {MAX_K} citations (--k {args.k} asked for more).", file=sys.stderr)
    try:
        answer = _engine(args).ask(" ".join(args.question), k=min(args.k, MAX_K), retriever=args.retriever,
                                   since=args.since, until=args.until, sources=tuple(args.source or ()),
                                   today=args.today)
    except Exception as exc:
        from index.errors import CitebotError

        if args.json and isinstance(exc, CitebotError):  # scripts read errors as JSON too
            print(json.dumps({"error": str(exc)}, ensure_ascii=False))
            return 2
        raise
    if args.json:
        print(json.dumps(answer.to_dict(), ensure_ascii=False, indent=2))
    else:
        print(render_text(answer, bold=sys.stdout.isatty()))
    return 0


def cmd_stats(args) -> int:
    """Describe the live index."""
    stats = _engine(args).stats()
    if args.json:
        print(json.dumps(stats, indent=2))
        return 0
    print(f"documents:          {stats['documents']}")
    print(f"chunks:             {stats['chunks']}")
    print(f"sentences:          {stats['sentences']}")
    print(f"model:              {stats['model']} ({stats['dim']} dimensions)")
    print(f"language:           {stats['language']} ({stats['foreign_paragraphs']} foreign paragraph(s) not indexed)")
    print(f"built:              {stats['built_at']} from {stats['corpus_dir']}")
    print(f"index size:         {stats['index_bytes'] / 2**20:.1f} MiB in {stats['index_dir']}")
    if stats.get("segments"):
        print(f"updates:            {stats['segments']} segment(s) not merged yet, "
              f"{stats['masked_chunks']} replaced or removed chunk(s) masked")
    print(f"reading model:      {stats['reader']}")
    print(f"other languages:    {stats['multilingual']} (CITEBOT_MULTILINGUAL: multilingual vectors)")
    cover = stats["coverage"]
    if cover["first"]:
        print(f"published:          {cover['first']} to {cover['last']}")
    sources = ", ".join(f"{x['source']} ({x['articles']})" for x in cover["sources"][:10])
    more = len(cover["sources"]) - 10
    print(f"sources:            {len(cover['sources'])}" + (f": {sources}" if sources else "")
          + (f" and {more} more" if more > 0 else ""))
    print(f"duplicates dropped: {len(stats['duplicate_documents'])}")
    print(f"skipped files:      {len(stats['skipped_files'])}")
    for s in stats["skipped_files"]:
        print(f"  {s['path']}: {s['reason']}")
    return 0


def format_table(result: dict) -> str:
    """The eval result as a Markdown table, one row per retriever."""
    cols = ["recall@1", "recall@5", "recall@10", "chunk_recall@1", "chunk_recall@5", "chunk_recall@10", "mrr",
            "abstain_rate_answerable", "abstain_rate_unanswerable", "bold_shown", "bold_holds_answer",
            "latency_ms_p50", "latency_ms_p95"]
    heads = ["R@1", "R@5", "R@10", "chunk R@1", "chunk R@5", "chunk R@10", "MRR", "abstain (answerable)", "abstain (unanswerable)",
             "bold shown", "bold right", "p50 ms", "p95 ms"]
    lines = [
        f"{result['questions']} questions, {result['answerable']} answerable",
        "",
        "| retriever | " + " | ".join(heads) + " |",
        "|---" * (len(cols) + 1) + "|",
    ]
    for name, metrics in result["retrievers"].items():
        cells = ["-" if metrics[c] is None else f"{metrics[c]:.3f}" if not c.startswith("latency") else f"{metrics[c]:.1f}"
                 for c in cols]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    kinds = {name: m["abstain_rate_by_kind"] for name, m in result["retrievers"].items() if m.get("abstain_rate_by_kind")}
    for name, by_kind in kinds.items():
        lines.append(f"{name}, abstained by kind: " + ", ".join(f"{k} {v:.3f}" for k, v in by_kind.items()))
    return "\n".join(lines)


def cmd_eval(args) -> int:
    """Measure retrieval quality, abstention and latency."""
    from index.evaluate import evaluate_retrievers, prepare
    from index.search.retrieval import MODES

    bars = ProgressBars(enabled=not args.quiet)
    try:
        settings = _settings(args)
        if args.chunk_words is not None:
            settings = replace(settings, chunk_words=args.chunk_words)
        if args.no_rerank:
            settings = replace(settings, rerank=False)
        if args.no_reader:
            settings = replace(settings, reader=False)
        questions, engine = prepare(Path(args.questions), settings, args.corpus, progress=bars,
                                    articles=args.articles)
    finally:
        bars.close()
    if args.limit:
        questions = questions[: args.limit]
    modes = MODES if args.retriever == "all" else (args.retriever,)
    rows = ProgressBars(enabled=not args.quiet)
    try:
        result = evaluate_retrievers(engine, questions, modes,
                                     on_question=lambda row, done, total: rows(f"eval {row}", done, total))
    finally:
        rows.close()
    print(json.dumps(result, indent=2) if args.json else format_table(result))
    return 0


def _desk(args):
    from index.news.newsdesk import Newsdesk

    return Newsdesk(_engine(args))


def _print_desk(report, as_json: bool) -> int:
    if as_json:
        print(json.dumps(report.to_json(), ensure_ascii=False, indent=2))
    else:
        print(report.summary())
    return 0


def cmd_feed(args) -> int:
    """Add, list or remove feeds."""
    desk = _desk(args)
    if args.action == "list":
        feeds = desk.feeds()
        if args.json:
            from dataclasses import asdict

            print(json.dumps([asdict(f) for f in feeds], ensure_ascii=False, indent=2))
        elif not feeds:
            print("No feeds yet: citebot feed add URL")
        from bot.render import feed_lines

        for f in feeds if not args.json else ():
            print(feed_lines(f))
        return 0
    if not args.url:
        print(f"citebot: feed {args.action} needs the feed's address (URL).", file=sys.stderr)
        return 2
    if args.action == "remove":
        if desk.remove_feed(args.url):
            print(f"Removed {args.url}; its articles stay in the corpus.")
            return 0
        print(f"citebot: {args.url} is not one of the feeds (citebot feed list).", file=sys.stderr)
        return 2
    return _print_desk(desk.add_feed(args.url, build=not args.no_build), args.json)


def cmd_add(args) -> int:
    """Add a web page or a local article file."""
    desk = _desk(args)
    target = args.target
    if target.lower().startswith(("http://", "https://")):
        report = desk.add_url(target, build=not args.no_build)
    else:
        path = Path(target)
        if not path.is_file():
            print(f"citebot: {target} is neither a web address (http/https) nor a file.", file=sys.stderr)
            return 2
        report = desk.add_file(path.name, path.read_bytes(), build=not args.no_build)
    return _print_desk(report, args.json)


def cmd_refresh(args) -> int:
    """Fetch every feed and update the index; then the console user's followed topics searched
    among the new articles (`citebot follow`), printed; the bot's users get theirs from the bot."""
    desk = _desk(args)
    report = desk.refresh(build=not args.no_build)
    found = []
    if report.added and report.build is not None:
        from bot.alerts import find_alerts, record
        from bot.follows import CONSOLE_USER

        store = _follows(desk.engine.settings)
        try:
            store.queue(report.added)
            found = find_alerts(desk.engine, store, CONSOLE_USER, store.take(CONSOLE_USER))
            record(store, found)
        finally:
            store.close()
    if args.json:
        out = report.to_json()
        out["alerts"] = [{"topic": a.follow.topic, "citations": [c.to_dict() for c in a.citations]} for a in found]
        print(json.dumps(out, ensure_ascii=False, indent=2))
        return 0
    print(report.summary())
    if found:
        from bot.alerts import render_alerts_text

        print()
        print(render_alerts_text(found))
    return 0


def _follows(settings):
    from bot.follows import open_follows

    return open_follows(settings.data_dir, settings.database_url or None)


def cmd_follow(args) -> int:
    """Follow a topic as the console user, list the topics, or stop following one."""
    from bot.follows import CONSOLE_USER, MAX_TOPICS, FollowRefused

    store = _follows(_settings(args))
    try:
        if args.action == "list":
            listed = store.list(CONSOLE_USER)
            if not listed:
                print("You follow no topics yet: citebot follow add TOPIC")
            for i, f in enumerate(listed, 1):
                print(f"{i}. {f.topic}")
            return 0
        if not args.value:
            what = "the topic" if args.action == "add" else "the topic's number (citebot follow list)"
            print(f"citebot: follow {args.action} needs {what}.", file=sys.stderr)
            return 2
        if args.action == "add":
            try:
                added = store.add(CONSOLE_USER, " ".join(args.value))
            except FollowRefused as exc:
                print(f"citebot: {exc}", file=sys.stderr)
                return 2
            print(f"Following “{added.topic}” ({len(store.list(CONSOLE_USER))} of at most {MAX_TOPICS}). "
                  "`citebot refresh` prints the new articles about it.")
            return 0
        number = args.value[0]
        removed = store.remove(CONSOLE_USER, int(number)) if len(args.value) == 1 and number.isdigit() else None
        if removed is None:
            print(f"citebot: there is no topic number {' '.join(args.value)} (citebot follow list).", file=sys.stderr)
            return 2
        print(f"No longer following “{removed.topic}”.")
        return 0
    finally:
        store.close()


def cmd_report(args) -> int:
    """Usage of the bot from its question log."""
    from bot.config import BotConfig
    from bot.history import open_history
    from bot.render import report_lines

    config = BotConfig.from_env()
    settings = _settings(args)
    path = settings.data_dir / "bot.sqlite"
    if not settings.database_url and not path.exists():
        print(f"citebot: the bot has not run with this data folder yet ({path} does not exist).", file=sys.stderr)
        return 2
    history = open_history(settings.data_dir, settings.database_url, config.history_days, config.log_days,
                           config.log_questions)
    try:
        report = history.report(args.days)
    finally:
        history.close()
    if args.json:
        print(json.dumps(report, ensure_ascii=False, indent=2))
    else:
        print("\n".join(report_lines(report)))
    return 0


def cmd_serve(args) -> int:
    """Run the Telegram bot, or the console when no token is set."""
    from bot.config import BotConfig

    config = BotConfig.from_env()
    engine = _engine(args)
    engine.stats()  # fail now, with one sentence, if there is no usable index
    if not config.token:
        from bot.console import run_console

        print("TELEGRAM_BOT_TOKEN is not set: starting the console instead of Telegram.", file=sys.stderr)
        run_console(engine, config)
        return 0
    from bot.app import run

    from telegram.error import InvalidToken, NetworkError

    engine.embedder.queries.warm()  # the first question should not wait for the model to load
    mode = f"webhook at {config.webhook_url}" if config.webhook_url else "long polling"
    logging.getLogger("bot").info("Starting the Telegram bot (%s, %d admin(s))", mode, len(config.admin_ids))
    try:
        run(config, engine)
    except InvalidToken:
        print("citebot: Telegram refused TELEGRAM_BOT_TOKEN; get the bot's token from @BotFather.", file=sys.stderr)
        return 2
    except NetworkError as exc:  # TimedOut too
        print(f"citebot: the Bot API at {config.api_url} cannot be reached ({exc}), "
              f"{config.bootstrap_retries} retries; check the network or CITEBOT_TELEGRAM_API_URL.", file=sys.stderr)
        return 2
    return 0


STATE_TABLES = ("bot_answers", "bot_sent", "bot_votes", "bot_asked", "rate_limits", "feeds", "feed_items",
                "feed_failures", "index_documents", "index_chunks")


def cmd_db(args) -> int:
    """The PostgreSQL database of CITEBOT_DATABASE_URL: set it up, fill it from the SQLite files, describe it."""
    from index.store.database import connect, describe, has_vector, latest_version, migrate, schema_version

    settings = _settings(args)
    url = settings.database_url
    if not url:
        print("citebot: CITEBOT_DATABASE_URL is not set; set it to the database's address, "
              "postgresql://USER:PASSWORD@HOST:PORT/DATABASE (docs/operations.md, \"PostgreSQL\").", file=sys.stderr)
        return 2
    where = describe(url)
    if args.action == "init":
        before, after = migrate(url)
        if args.json:
            print(json.dumps({"database": where, "schema_version": after, "was": before}))
        elif before == after:
            print(f"{where}: schema version {after}, up to date; nothing to do.")
        else:
            print(f"{where}: schema version {after} (was {before or 'empty'}).")
        return 0
    if args.action == "status":
        with connect(url, autocommit=True) as conn:
            version = schema_version(conn)
            vector = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone() \
                if has_vector(conn) else None
            server = conn.execute("SHOW server_version").fetchone()[0]
            counts = {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in STATE_TABLES
                      if conn.execute("SELECT to_regclass(%s)", (t,)).fetchone()[0]} if version >= 1 else {}
        status = {"database": where, "server": server, "pgvector": vector[0] if vector else None,
                  "schema_version": version, "citebot_schema_version": latest_version(), "rows": counts}
        if args.json:
            print(json.dumps(status, indent=2))
            return 0
        state = ("up to date" if version == latest_version() else "empty: run `citebot db init`" if version == 0
                 else "behind: run `citebot db init`" if version < latest_version() else "newer than this citebot")
        print(f"database:        {where} (PostgreSQL {server})")
        print(f"pgvector:        {status['pgvector'] or 'not installed in this database'}")
        print(f"schema version:  {version} ({state}; this citebot's is {latest_version()})")
        for table, n in counts.items():
            print(f"  {table + ':':<15}{n:,}")
        return 0 if version == latest_version() and vector else 1
    return _db_import(settings, args)


def _db_import(settings, args) -> int:
    """citebot db import: the bot's SQLite files in DATA_DIR copied into the database (creating the schema
    first); a second import adds nothing. The index's own import comes here too, as one more step."""
    from bot.config import BotConfig
    from bot.digests import DIGESTS_FILE, PostgresDigests, import_digests
    from bot.follows import FOLLOWS_FILE, PostgresFollowStore, import_follows
    from bot.history import PostgresHistory
    from index.news.feeds import FEEDS_FILE, PostgresFeedStore
    from index.store.database import Database

    from index.store.files import current_build_dir, read_manifest

    sources = [(settings.data_dir / "bot.sqlite", "bot's memory"), (settings.data_dir / FEEDS_FILE, "feeds"),
               (settings.data_dir / FOLLOWS_FILE, "followed topics"), (settings.data_dir / DIGESTS_FILE, "digests")]
    present = [(path, what) for path, what in sources if path.is_file()]
    build = current_build_dir(settings.index_root)
    if not present and build is None:
        print(f"citebot: nothing to import: there is no index in {settings.index_root.absolute()} and neither "
              f"{sources[0][0]} nor {sources[1][0]} exists (--data-dir names the folder they are in).", file=sys.stderr)
        return 2
    config = BotConfig.from_env()
    db = Database(settings.database_url).open()  # creates or migrates the schema when it is behind
    results = {}
    try:
        for path, what in present:
            if path.name == "bot.sqlite":
                history = PostgresHistory(db, config.history_days, config.log_days, config.log_questions)
                results[path.name] = history.import_sqlite(path)
            elif path.name == FOLLOWS_FILE:
                results[path.name] = import_follows(path, PostgresFollowStore(db))
            elif path.name == DIGESTS_FILE:
                results[path.name] = import_digests(path, PostgresDigests(db))
            else:
                results[path.name] = PostgresFeedStore(db).import_sqlite(path)
    finally:
        db.close()
    if build is not None:
        # The file index's corpus, written into the database with the file index's vectors: nothing is embedded.
        corpus = Path(read_manifest(build).get("corpus_dir") or settings.corpus_dir)
        report = _engine(args).build(corpus)
        results["index"] = {"documents": report.documents, "chunks": report.chunks, "embedded": report.embedded,
                            "unchanged": report.unchanged, "corpus": str(corpus)}
    if args.json:
        print(json.dumps({"database": db.where, "imported": results}, indent=2))
        return 0
    index = results.pop("index", None)
    if index is not None:
        print(f"index of {index['corpus']} into {db.where}: " + ("already there." if index["unchanged"] else
              f"{index['documents']:,} documents, {index['chunks']:,} chunks ({index['embedded']:,} embedded)."))
    for name, result in results.items():
        parts = [f"{result['added'][table]:,} of {result['read'][table]:,} {table.replace('_', ' ')}"
                 for table in result["read"]]
        print(f"{name} into {db.where}: added " + ", ".join(parts) + " (the rest were there already).")
        if result.get("note"):
            print(result["note"])
    return 0


def _chunk_words(text: str) -> int:
    """argparse type: 0 (one chunk per paragraph) or a chunk size of at least 10 words."""
    value = int(text) if text.strip().lstrip("-").isdigit() else -1
    if value != 0 and value < 10:
        raise argparse.ArgumentTypeError(f"must be 0 (one chunk per paragraph) or at least 10, not {text!r}")
    return value


def _positive(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, not {value!r}")
    return number


def _day(value: str):
    """argparse type: a day as 2022-03-01 or 1 March 2022."""
    from index.search.timeframe import parse_day

    day = parse_day(value)
    if day is None:
        raise argparse.ArgumentTypeError(f"must be a date like 2022-03-01, not {value!r}")
    return day


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("citebot")
    except PackageNotFoundError:
        return "(not installed)"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="citebot", description=DESCRIPTION + _settings_help(),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", help="where the index lives (default: $CITEBOT_DATA_DIR or var/)")
    p.add_argument("--model", help="embedding model name or folder (default: $CITEBOT_MODEL or all-MiniLM-L6-v2)")
    p.add_argument("-v", "--verbose", action="store_true", help="log debugging detail")
    p.add_argument("--version", action="version", version=f"citebot {_version()}")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars, warnings only")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    # The same options after the command too (`citebot ask --data-dir X ...`, `citebot build -q`);
    # SUPPRESS keeps a value given before the command when none is given after it.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--data-dir", default=argparse.SUPPRESS, help="where the index lives")
    common.add_argument("--model", default=argparse.SUPPRESS, help="embedding model name or folder")
    common.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="log debugging detail")
    common.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS,
                        help="no progress bars, warnings only")

    b = sub.add_parser("build", parents=[common], help="build or refresh the index", description=
                       "Read the corpus folder, clean and chunk the articles, embed new chunks and write the index "
                       "atomically: the old index keeps answering until the new one is complete. An unchanged "
                       "corpus is detected and left alone. When only a few articles are new, changed or removed "
                       "(a quarter at most) they are written as a small update beside the index (a segment; "
                       "old versions masked); when updates pile up they are merged by a whole build. Changed "
                       "corpora re-embed only new text.")
    b.add_argument("corpus_dir", nargs="?", help="folder of articles (default: $CITEBOT_CORPUS_DIR or corpus/)")
    b.add_argument("--force", action="store_true",
                   help="write a whole new build even if the corpus is unchanged (merges any updates)")
    b.set_defaults(func=cmd_build)

    a = sub.add_parser("ask", parents=[common], help="answer a question with cited excerpts", description=
                       "Print the passages that answer QUESTION, each with its article's title, source, date and "
                       "link, or say that the corpus does not hold the answer. Time in the question is "
                       "understood: 'latest', 'today', 'yesterday', 'this week', 'last month', 'in March 2022', "
                       "'since 1 March', 'before 2022', and the filters since:2022-03-01 until:2022-03-31 "
                       "source:bbc. --json prints the Answer object: question, abstained, reason, note, "
                       "timeframe, retriever, elapsed_ms, best_similarity, relevance, support, confidence and "
                       "citations (rank, excerpt, score, similarity, title, source, url, published, doc_id, "
                       "chunk_id, char_start, char_end, also_in, confidence, highlight, path); README.md, "
                       "'The JSON answer', says what each means.")
    a.add_argument("question", nargs="+", help="the question (quote it, or not)")
    a.add_argument("--k", type=_positive, default=5, help=f"how many citations at most (default 5, up to {MAX_K})")
    a.add_argument("--retriever", choices=("dense", "bm25", "hybrid"), default="hybrid",
                   help="search method (default hybrid: dense and BM25 fused, see CITEBOT_FUSION)")
    a.add_argument("--since", type=_day, metavar="DAY", help="only articles published on or after DAY "
                   "(2022-03-01; the same as since:2022-03-01 in the question)")
    a.add_argument("--until", type=_day, metavar="DAY", help="only articles published on or before DAY")
    a.add_argument("--source", action="append", metavar="NAME",
                   help="only articles whose source or address contains NAME (e.g. bbc); repeatable")
    a.add_argument("--today", type=_day, metavar="DAY",
                   help="the day that 'today', 'yesterday', 'this week' and 'latest' count from; questions "
                   "with time in them cite nothing published after it (default: the current UTC date)")
    a.add_argument("--json", action="store_true", help="print the answer as JSON")
    a.set_defaults(func=cmd_ask)

    s = sub.add_parser("stats", parents=[common], help="describe the live index", description=
                       "Documents, chunks, skipped files, model, index size and build time of the live index.")
    s.add_argument("--json", action="store_true", help="print the stats as JSON")
    s.set_defaults(func=cmd_stats)

    e = sub.add_parser("eval", parents=[common], help="measure retrieval quality", description=
                       "Measure recall@1/5/10 of cited excerpts (a hit is an excerpt containing a gold answer, "
                       "ignoring case and whitespace), chunk recall@5, MRR, abstention rates and engine latency. "
                       "QUESTIONS is a SQuAD JSON file (its paragraphs become the corpus) or a JSONL file of "
                       '{"question": ..., "answers": [...]} lines (empty answers = unanswerable) evaluated '
                       "against --corpus or the built index. Evaluation indexes live under DATA_DIR/eval/ and are "
                       "reused while unchanged. Examples: SQuAD with BBC articles as distractors: "
                       "citebot eval squad.json --corpus bbc-news/; unanswerable questions against SQuAD's "
                       "paragraphs: citebot eval unanswerable.jsonl --corpus squad.json.")
    e.add_argument("questions", help="SQuAD .json or questions .jsonl")
    e.add_argument("--corpus", action="append", type=Path, metavar="PATH",
                   help="articles to search besides a SQuAD file's own paragraphs: a folder of articles or a "
                   "SQuAD JSON file (its paragraphs); repeatable")
    e.add_argument("--chunk-words", type=_chunk_words, metavar="N",
                   help="chunk size in words for the evaluation index (0 = one passage per paragraph; "
                   "default: $CITEBOT_CHUNK_WORDS or 120)")
    e.add_argument("--retriever", choices=("dense", "bm25", "hybrid", "all"), default="all",
                   help="which retriever(s) to measure (default all)")
    e.add_argument("--fusion", choices=("convex", "rrf"), help="how hybrid fuses dense and BM25 "
                   "(default: $CITEBOT_FUSION or convex; rrf = reciprocal rank fusion, k=60)")
    e.add_argument("--no-rerank", action="store_true",
                   help="hybrid without re-ranking its top candidates by their best excerpt (plain fusion)")
    e.add_argument("--no-reader", action="store_true",
                   help="answer without the reading model (excerpts by word overlap, abstention on relevance); "
                   "otherwise hybrid is also measured this way, as the row hybrid-no-reader")
    e.add_argument("--articles", choices=("all", "even", "odd"), default="all",
                   help="for a SQuAD question file: only the articles at even or odd positions (the reading "
                   "model trains on the even half; odd is its test half)")
    e.add_argument("--limit", type=_positive, default=None, help="use only the first N questions")
    e.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    e.set_defaults(func=cmd_eval)

    f = sub.add_parser("feed", parents=[common], help="add, list or remove RSS/Atom feeds", description=
                       "Feeds live in DATA_DIR/feeds.sqlite (or the database of CITEBOT_DATABASE_URL). `feed add URL` fetches the feed once to check it "
                       "(an address that is not an RSS or Atom feed is refused), keeps it and adds its items' "
                       "articles; `feed list` shows when each was last fetched, its items and its last error; "
                       "`feed remove URL` stops fetching it (its articles stay in the corpus).")
    f.add_argument("action", choices=("add", "list", "remove"))
    f.add_argument("url", nargs="?", help="the feed's address (for add and remove)")
    f.add_argument("--no-build", action="store_true", help="write the articles but do not update the index")
    f.add_argument("--json", action="store_true", help="print the result as JSON")
    f.set_defaults(func=cmd_feed)

    d = sub.add_parser("add", parents=[common], help="add a web page or an article file", description=
                       "URL: fetch the page, extract its article (title, source, date, canonical address) and "
                       "write it to CORPUS_DIR/fetched/<site>/<date>-<slug>.json. FILE: copy a .txt, .md, "
                       ".html, .json or .jsonl article file (up to 20 MB and CITEBOT_MAX_UPLOAD_ARTICLES articles) "
                       "to CORPUS_DIR/uploads/. Then update "
                       "the index (only the new text is embedded). Pages already added, by address or by "
                       "text, are not added twice. Private and loopback addresses are refused unless "
                       "CITEBOT_FETCH_ALLOW_PRIVATE=1.")
    d.add_argument("target", metavar="URL|FILE", help="http(s) address of an article, or a local article file")
    d.add_argument("--no-build", action="store_true", help="write the article but do not update the index")
    d.add_argument("--json", action="store_true", help="print the result as JSON")
    d.set_defaults(func=cmd_add)

    r = sub.add_parser("refresh", parents=[common], help="fetch every feed and update the index", description=
                       "Fetch every feed (conditional GET: unchanged feeds cost one small request), fetch the "
                       "pages of new items (at most CITEBOT_MAX_FEED_ITEMS a feed), write them to CORPUS_DIR/fetched/ "
                       "and update the index whenever the corpus differs from it. One feed's "
                       "failure stops no other; each is reported in one line. Then the topics followed with "
                       "`citebot follow` are searched among the new articles and their matches printed. The bot "
                       "does this every CITEBOT_REFRESH_MINUTES (default 30), and sends its users their alerts.")
    r.add_argument("--no-build", action="store_true", help="write the articles but do not update the index")
    r.add_argument("--json", action="store_true", help="print the result as JSON (with an \"alerts\" list)")
    r.set_defaults(func=cmd_refresh)

    fo = sub.add_parser("follow", parents=[common], help="follow topics: new articles about them after each refresh",
                        description=
                        "The console's followed topics, as /follow, /following and /unfollow are a Telegram user's "
                        "(in DATA_DIR/follows.sqlite, or the database of CITEBOT_DATABASE_URL). `follow add TOPIC` "
                        "follows a topic (3 to 200 characters, at most 10 topics); `follow list` numbers them; "
                        "`follow remove N` stops following the N-th. After a `citebot refresh` that added "
                        "articles, each topic is searched among the new articles only (by meaning, with the "
                        "engine's abstention) and the cited excerpts that match are printed, each article once "
                        "per topic.")
    fo.add_argument("action", choices=("add", "list", "remove"))
    fo.add_argument("value", nargs="*", metavar="TOPIC|N", help="the topic (add) or its number in the list (remove)")
    fo.set_defaults(func=cmd_follow)

    rp = sub.add_parser("report", parents=[common], help="what users asked the bot, and what it could not answer", description=
                        "From the bot's log in DATA_DIR/bot.sqlite (or the database of CITEBOT_DATABASE_URL): questions in the last 24 hours and the last "
                        "DAYS days, the share it abstained on, 👍 and 👎 votes, and the 10 questions most often "
                        "asked without an answer (case and punctuation ignored): what to add to the corpus. "
                        "Question texts are logged unless CITEBOT_LOG_QUESTIONS=0 and kept CITEBOT_LOG_DAYS "
                        "(default 30).")
    rp.add_argument("--days", type=_positive, default=7, help="the period, in days (default 7)")
    rp.add_argument("--json", action="store_true", help="print the report as JSON")
    rp.set_defaults(func=cmd_report)

    db = sub.add_parser("db", parents=[common], help="set up and fill the PostgreSQL database (CITEBOT_DATABASE_URL)",
                        formatter_class=argparse.RawDescriptionHelpFormatter, description=DB_HELP)
    db.add_argument("action", choices=("init", "import", "status"), help="see above")
    db.add_argument("--json", action="store_true", help="print the result as JSON")
    db.set_defaults(func=cmd_db)

    v = sub.add_parser("serve", parents=[common], help="run the bot (console without a token)", formatter_class=argparse.RawDescriptionHelpFormatter,
                       description=SERVE_HELP)
    v.set_defaults(func=cmd_serve)
    return p


class _AboveTheBars(logging.StreamHandler):
    """Writes log lines through tqdm, so a line never lands inside a progress bar on a terminal."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            tqdm.write(self.format(record), file=self.stream)
        except Exception:
            self.handleError(record)


def configure_logging(level: int) -> None:
    """Our own loggers at level; libraries (faiss, bm25s, transformers...) only from WARNING up."""
    handler = _AboveTheBars(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    ours = ("index", "bot", "__main__")

    def keep(record: logging.LogRecord) -> bool:
        if record.name.startswith("telegram") and record.getMessage().startswith("Network Retry Loop"):
            return False  # PTB's start-up retries giving up, with tracebacks: `serve` says it in one line
        return record.name.split(".")[0] in ours or record.levelno >= logging.WARNING

    handler.addFilter(keep)
    logging.basicConfig(level=level, handlers=[handler], force=True)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv:  # `citebot` alone: what it can do, not an error about a missing command
        parser().print_help()
        return 0
    args = parser().parse_args(argv)
    # One-shot answers print the answer, not the engine's progress; long commands say what they do.
    chatty = args.command in ("build", "eval", "serve", "refresh")
    configure_logging(logging.DEBUG if args.verbose else logging.INFO if chatty and not args.quiet else logging.WARNING)
    from bot.config import BOT_SETTINGS
    from index.config import ENGINE_SETTINGS, warn_unknown_settings
    from index.errors import CitebotError

    warn_unknown_settings(set(ENGINE_SETTINGS) | BOT_SETTINGS)  # once, before any work

    try:
        status = args.func(args)
        sys.stdout.flush()  # a closed pipe is met here, not at exit where Python would print a traceback
        return status
    except BrokenPipeError:  # `citebot ask ... | head -1`: the reader has all it wants
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nothing more to flush at exit
        return 141  # 128 + SIGPIPE, what a shell reports for `yes | head`
    except CitebotError as exc:
        print(f"citebot: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # the machine, not citebot: a full disk, a folder without permission
        logging.getLogger("bot.cli").debug("OS error", exc_info=True)
        where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
        print(f"citebot: {exc.strerror or exc}{where}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("citebot: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
