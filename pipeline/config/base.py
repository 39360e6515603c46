"""The base of every config model: pydantic's rejections raised as one-line :class:`ConfigError`\\ s,
and options read from a YAML file."""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, ValidationError

from pipeline.config.messages import config_error, format_problems
from pipeline.config.yaml_loading import yaml_section
from pipeline.errors import ConfigError


class Validated(BaseModel):
    """Raises :class:`ConfigError` (one line per bad field) instead of pydantic's ValidationError.

    No float field accepts NaN or an infinity, inside lists and tuples too: each turns every image
    into NaN or one flat colour, or crashes later, mid-run.
    """

    model_config = ConfigDict(allow_inf_nan=False)  # subclasses' model_config is merged with this

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as err:
            raise config_error(type(self), err) from None

    def __setattr__(self, name: str, value: Any) -> None:
        try:
            super().__setattr__(name, value)
        except ValidationError as err:
            raise config_error(type(self), err) from None

    @classmethod
    def _from_yaml(cls, path: str | Path, section: str, overrides: Mapping[str, Any]) -> Self:
        """Options from ``path`` (the mapping, or its ``section``), then ``overrides``; a bad option
        names the file, unless it is one of ``overrides``."""
        try:
            return cls(**{**yaml_section(path, section), **overrides})
        except ConfigError as err:
            if not err.problems:  # the file itself was refused, and the message names it
                raise
            message = format_problems(cls.__name__, err.problems, path, given=overrides)
            raise ConfigError(message, problems=err.problems) from None


def check_finite_inside(value: Any, field: str) -> None:
    """Raise ValueError naming ``field`` if a NaN or an infinity is anywhere inside ``value``: the
    free-form options (dicts of anything) that ``allow_inf_nan`` does not reach."""
    stack, seen = [value], set()
    while stack:
        v = stack.pop()
        if isinstance(v, dict | list | tuple):
            if id(v) in seen:  # shared or self-containing (Python callers can build either)
                continue
            seen.add(id(v))
            stack.extend(v.values() if isinstance(v, dict) else v)
        elif isinstance(v, numbers.Real) and not isinstance(v, numbers.Integral) and not math.isfinite(v):
            raise ValueError(f"{field} must hold finite numbers only, but holds {v}")
