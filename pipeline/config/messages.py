"""Config error messages: pydantic's ValidationError as one bounded line per rejected field, naming
the field, the value it got and what is accepted."""

from __future__ import annotations

import difflib
import re
import reprlib
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any, get_args

from pydantic import BaseModel, ValidationError

from pipeline.errors import ConfigError, ConfigProblem

# Error messages quote what they got, cut to these lengths: a value may be a megabyte of YAML.
MAX_GOT_CHARS = 200
MAX_ERROR_LINE_CHARS = 600
MAX_ERRORS_LISTED = 10
MAX_ERROR_CHARS = 4000

_repr = reprlib.Repr()
_repr.maxlevel, _repr.maxlist, _repr.maxtuple, _repr.maxdict = 3, 8, 8, 8
_repr.maxstring, _repr.maxlong, _repr.maxother = 80, 40, 80


def cut(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, ending with an ellipsis when it was cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


_LINE_BREAKS = re.compile(r"\s*[\n\r\v\f\x1c-\x1e\x85\u2028\u2029]+\s*")  # str.splitlines's breaks
_PYDANTIC_LINK = re.compile(r"\s*For further information visit https://errors\.pydantic\.dev/\S*")


def _one_line(text: str) -> str:
    """``text`` with each line break, and the indentation around it, made one space; pydantic's
    links to its error pages (quoted from a library's own validation) left out."""
    return _LINE_BREAKS.sub(" ", _PYDANTIC_LINK.sub("", text))


def short_repr(value: Any) -> str:
    """A one-line repr of at most :data:`MAX_GOT_CHARS` characters that never walks a whole large value."""
    return cut(_one_line(_repr.repr(value)), MAX_GOT_CHARS)


def closest(name: Any, choices: Collection[str]) -> str | None:
    """The choice closest to ``name`` (a typo of it, by difflib), or None when none is close."""
    if not isinstance(name, str) or len(name) > MAX_GOT_CHARS:  # no typo of a name; difflib is quadratic
        return None
    close = difflib.get_close_matches(name, list(choices), n=1)
    return close[0] if close else None


def did_you_mean(name: Any, choices: Collection[str]) -> str:
    """`` (did you mean 'x'?)`` for the choice closest to ``name``, or "" when none is close."""
    close = closest(name, choices)
    return "" if close is None else f" (did you mean {close!r}?)"


def _field_path(loc: Sequence[str | int]) -> str:
    """``augment.extras.0.p``: a key that is not a plain name is quoted, so the path stays one line."""
    parts = (str(p) if isinstance(p, int) or re.fullmatch(r"\w+", p) else short_repr(p) for p in loc)
    return cut(".".join(parts), MAX_GOT_CHARS)


def _bad_value(cls: type[BaseModel], error: Mapping[str, Any]) -> str:
    """What is wrong in one of pydantic's errors for ``cls``: the value, short, and what is accepted."""
    loc, value = error["loc"], error.get("input")
    text = _one_line(error["msg"].removeprefix("Value error, "))
    if not loc:  # a model validator: its message says what is wrong, and its input is the whole config
        return text
    got = short_repr(value)
    if isinstance(value, str) and got in text:  # the message quotes it already
        return text
    if error["type"] == "literal_error" and len(loc) == 1:
        close = closest(value, [str(c) for c in get_args(cls.model_fields[str(loc[0])].annotation)])
        got += "" if close is None else f"; did you mean {close!r}?"
    return f"{text} (got {got})"


def _problems(cls: type[BaseModel], err: ValidationError) -> list[ConfigProblem]:
    """Each field pydantic rejected for ``cls``, located from ``cls`` down."""
    problems: list[ConfigProblem] = []
    list_accepted = True  # the accepted option names, listed once
    for error in err.errors():
        loc = tuple(error["loc"])
        inner = error.get("ctx", {}).get("error")
        if isinstance(inner, ConfigError):
            # pydantic runs a model's own __init__ when validating it, so the ConfigError that
            # Validated raises comes back wrapped here: locate its problems from this model down.
            problems += [ConfigProblem(loc + p.loc, p.text) for p in inner.problems]
            problems += [] if inner.problems else [ConfigProblem(loc, str(inner))]
        elif len(problems) >= MAX_ERRORS_LISTED:  # counted, not shown (format_problems): named by type only
            problems.append(ConfigProblem(loc, error["type"]))
        elif error["type"] == "extra_forbidden":  # its value says nothing: the closest name does
            hint = did_you_mean(loc[-1], cls.model_fields)
            if not hint and list_accepted:
                hint, list_accepted = f"; accepted: {', '.join(cls.model_fields)}", False
            problems.append(ConfigProblem(loc, "unknown option" + hint))
        else:
            problems.append(ConfigProblem(loc, _bad_value(cls, error)))
    return problems


def format_problems(
    model: str, problems: Sequence[ConfigProblem], path: str | Path | None = None, given: Collection[str] = ()
) -> str:
    """One line naming each problem, ``[path: ]Model.field.path: what is wrong``; ``path`` names the
    file for the problems in fields that ``given`` (options over the file's) does not name."""
    lines = []
    for problem in problems[:MAX_ERRORS_LISTED]:
        field = _field_path(problem.loc)
        line = f"{model}.{field}: {problem.text}" if field else f"{model}: {problem.text}"
        if path is not None and not (problem.loc and problem.loc[0] in given):
            line = f"{path}: {line}"
        lines.append(cut(line, MAX_ERROR_LINE_CHARS))
    if len(problems) > MAX_ERRORS_LISTED:
        lines.append(f"and {len(problems) - MAX_ERRORS_LISTED} more")
    return cut("; ".join(lines), MAX_ERROR_CHARS)


def config_error(cls: type[BaseModel], err: ValidationError) -> ConfigError:
    """pydantic's rejection of ``cls`` as a :class:`ConfigError` holding each problem."""
    problems = _problems(cls, err)
    return ConfigError(format_problems(cls.__name__, problems), problems=problems)
