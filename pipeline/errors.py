"""augpipe's exceptions, in a module of their own so that any layer can raise them without importing
pydantic (decoding workers start without it)."""

from __future__ import annotations

from pathlib import Path


class ConfigError(ValueError):
    """A configuration value was rejected; the message names the field, the value and what is accepted."""


class SourceNotFoundError(ConfigError, FileNotFoundError):
    """A source or dataset path that does not exist; the message gives it as given and as resolved.
    A ConfigError too: trying again cannot help, so flows do not retry it."""

    def __init__(self, source: str | Path, expected: str = "") -> None:
        resolved = Path(source).resolve()
        where = "" if str(resolved) == str(source) else f" (resolved as {resolved})"
        tail = f"; expected {expected}" if expected else ""
        super().__init__(f"source not found: {source}{where}{tail}")
