"""One exception hierarchy: the CLI turns any `AdvmnistError` into one line and exit code 2.

Everything else that escapes a command is a bug in advmnist and keeps its traceback. User
mistakes found while a command checks its inputs become `UsageError` (also a `ValueError`, so
library callers that catch `ValueError` keep working); OS failures while writing outputs become
`OutputError` (also an `OSError`) naming the path and the cause.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


class AdvmnistError(Exception):
    """Base class of every project-specific failure a user can cause or fix."""


class UsageError(AdvmnistError, ValueError):
    """A value given by the user is malformed or out of range (an option, a setting, a spec)."""


class DataError(AdvmnistError):
    """A data file is missing, corrupt, truncated or has the wrong checksum."""


class ConfigError(AdvmnistError):
    """A configuration file or value makes no sense."""


class CheckpointError(AdvmnistError):
    """A checkpoint is unreadable, tampered with, or holds another architecture."""


class ModelError(AdvmnistError):
    """A model cannot be evaluated: wrong output shape, NaN or infinite outputs, a failing forward pass."""


class RunDirError(AdvmnistError):
    """An output folder already holds a run, is in use by another process, or holds another configuration."""


class FactoryError(AdvmnistError):
    """A user's model factory (`package.module:function`) could not be imported, or raised.

    Raised `from` the original exception, so `--debug` can show the user's traceback.
    """


class OutputError(AdvmnistError, OSError):
    """An output cannot be written: a read-only place, a file where a folder should be, a full disk."""


def os_cause(exc: OSError) -> str:
    """The short cause of an OS error ('No space left on device'), without the path it repeats."""
    return exc.strerror or str(exc) or type(exc).__name__


@contextlib.contextmanager
def user_input(what: str = "") -> Iterator[None]:
    """Turn a `ValueError`/`TypeError` raised while checking user input into a `UsageError`.

    Commands check every input before they create anything; inside this block a bad value is the
    user's mistake (one line, exit code 2). Outside such blocks the same exceptions are bugs.
    """
    try:
        yield
    except AdvmnistError:
        raise
    except (ValueError, TypeError) as exc:
        raise UsageError(f"{what}: {exc}" if what else str(exc)) from exc
