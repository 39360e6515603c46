"""augpipe's exceptions, in a module of their own so that any layer can raise them without importing
pydantic (decoding workers start without it)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple


class AugpipeError(Exception):
    """The base of augpipe's own errors: ``except AugpipeError`` catches ours, not numpy's or pydantic's."""


class ConfigProblem(NamedTuple):
    """One rejected field of a config model: where it is below the model, and what is wrong with it."""

    loc: tuple[str | int, ...]  # () for the model as a whole
    text: str


class ConfigError(AugpipeError, ValueError):
    """A configuration value was rejected; the message names the file or field, the value and what is
    accepted, on one line (the CLI prints it as one).

    problems: for a config model's error, each rejected field, so that a model holding this one, or
    the file it came from, can name it from the top.
    """

    def __init__(self, message: str, *, problems: Sequence[ConfigProblem] = ()) -> None:
        super().__init__(" ".join(message.splitlines()))
        self.problems = tuple(problems)


class DataError(AugpipeError, ValueError):
    """The data cannot be used as asked: images of several sizes after decoding, a dataset without a
    train split, multi-label data for a softmax model, an empty split. The message names the source."""


class RunStateError(AugpipeError, ValueError):
    """A run folder's state forbids the request: the run has finished, was started with another
    configuration, or holds a checkpoint this augpipe cannot resume. The message names the folder."""


class SourceNotFoundError(ConfigError, FileNotFoundError):
    """A source or dataset path that does not exist; the message gives it as given and as resolved.
    A ConfigError too: trying again cannot help, so flows do not retry it."""

    def __init__(self, source: str | Path, expected: str = "") -> None:
        resolved = Path(source).resolve()
        where = "" if str(resolved) == str(source) else f" (resolved as {resolved})"
        tail = f"; expected {expected}" if expected else ""
        super().__init__(f"source not found: {source}{where}{tail}")
