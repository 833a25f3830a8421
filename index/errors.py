"""citebot's errors: one family, so front ends catch CitebotError and show its message.

str(error) is one sentence for the person who caused or met it, saying what to do; detail goes to
the log. Anything that is not a CitebotError is a bug and keeps its traceback. Each class also
derives from the built-in it refines, so `except ValueError` in older callers still works.
"""
from __future__ import annotations

import errno
import sqlite3


class CitebotError(Exception):
    """Base of every error whose message is meant for a user."""


class ConfigurationError(CitebotError, ValueError):
    """A setting is missing or out of range; the message names it and what is allowed."""


class QuestionError(CitebotError, ValueError):
    """The question cannot be searched."""


class EvaluationError(CitebotError, ValueError):
    """A question file for `citebot eval` cannot be used; the message names the file and line."""


class IndexUnavailable(CitebotError, RuntimeError):
    """The index cannot be used; the message says what to run."""


class IndexMissing(IndexUnavailable):
    pass


class IndexCorrupt(IndexUnavailable):
    pass


class IndexMismatch(IndexUnavailable):
    pass


class BuildError(CitebotError, RuntimeError):
    """The build cannot produce an index; the previous index is untouched."""


class BuildInProgress(BuildError):
    """Another build holds the lock."""


class ModelError(CitebotError, RuntimeError):
    """A model cannot be found or loaded; the message says what to do."""


class ReaderUnavailable(ModelError):
    """The reading model cannot be loaded; answers go on without it."""


class FetchError(CitebotError, RuntimeError):
    """A URL cannot be fetched or is refused; the message names it and says why."""


class UploadRefused(CitebotError, ValueError):
    """An article file sent to be added is of a kind or size the corpus does not take."""


class DiskFull(CitebotError, RuntimeError):
    """A write failed for want of space; the message names the disk and what could not be written."""


def is_disk_full(exc: BaseException) -> bool:
    """Whether a write failed for want of space: ENOSPC or a quota, SQLite's SQLITE_FULL, or numpy's
    short write ("N requested and M written")."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    if isinstance(exc, sqlite3.Error):
        return getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL or "disk is full" in str(exc)
    text = str(exc)
    return isinstance(exc, OSError) and "requested and" in text and "written" in text
