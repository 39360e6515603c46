"""Validated configuration: the ImageDataGenerator options under Keras's names, plus pixel extras.

Validation happens once, here; everything below trusts these values.
"""

from __future__ import annotations

import difflib
import math
import numbers
import re
import reprlib
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, Self, get_args

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from pipeline.errors import ConfigError, ConfigProblem
from pipeline.ingest.formats import DEFAULT_MAX_PIXELS

FillMode = Literal["nearest", "reflect", "wrap", "constant"]
FILL_MODES: tuple[str, ...] = ("nearest", "reflect", "wrap", "constant")


# Bounds on what a config file may cost before it is refused: configs are a few hundred bytes and a
# few dozen values, so these leave room for any real one and refuse a hostile one at once.
MAX_CONFIG_BYTES = 1 << 20
MAX_YAML_NODES = 10_000  # scalars, sequences and mappings, counted with every alias expanded
MAX_YAML_DEPTH = 64
# Error messages quote what they got, cut to these lengths: a value may be a megabyte of YAML.
MAX_GOT_CHARS = 200
MAX_ERROR_LINE_CHARS = 600
MAX_ERRORS_LISTED = 10
MAX_ERROR_CHARS = 4000

_repr = reprlib.Repr()
_repr.maxlevel, _repr.maxlist, _repr.maxtuple, _repr.maxdict = 3, 8, 8, 8
_repr.maxstring, _repr.maxlong, _repr.maxother = 80, 40, 80


def _cut(text: str, limit: int) -> str:
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
    return _cut(_one_line(_repr.repr(value)), MAX_GOT_CHARS)


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
    return _cut(".".join(parts), MAX_GOT_CHARS)


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
            # _Validated raises comes back wrapped here: locate its problems from this model down.
            problems += [ConfigProblem(loc + p.loc, p.text) for p in inner.problems]
            problems += [] if inner.problems else [ConfigProblem(loc, str(inner))]
        elif len(problems) >= MAX_ERRORS_LISTED:  # counted, not shown (_message): named by type only
            problems.append(ConfigProblem(loc, error["type"]))
        elif error["type"] == "extra_forbidden":  # its value says nothing: the closest name does
            hint = did_you_mean(loc[-1], cls.model_fields)
            if not hint and list_accepted:
                hint, list_accepted = f"; accepted: {', '.join(cls.model_fields)}", False
            problems.append(ConfigProblem(loc, "unknown option" + hint))
        else:
            problems.append(ConfigProblem(loc, _bad_value(cls, error)))
    return problems


def _message(
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
        lines.append(_cut(line, MAX_ERROR_LINE_CHARS))
    if len(problems) > MAX_ERRORS_LISTED:
        lines.append(f"and {len(problems) - MAX_ERRORS_LISTED} more")
    return _cut("; ".join(lines), MAX_ERROR_CHARS)


def _config_error(cls: type[BaseModel], err: ValidationError) -> ConfigError:
    problems = _problems(cls, err)
    return ConfigError(_message(cls.__name__, problems), problems=problems)


class YamlRefused(yaml.YAMLError):
    """A YAML document refused for its shape (alias expansion, nesting), not for its syntax."""


class BoundedLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a document whose aliases expand past :data:`MAX_YAML_NODES`
    nodes, nest deeper than :data:`MAX_YAML_DEPTH`, or refer to themselves.

    PyYAML builds an alias as a shared reference, so a 300-byte "billion laughs" loads in
    milliseconds; the cost comes later, from everything that walks the value (validation, repr):
    91 s and 6.5 GB measured. The expanded size is counted on the composed node graph, each
    distinct node once, before any Python object is constructed. Nodes and depth are also counted
    while composing, so a dense or deep file stops parsing at the bound, not at its end (PyYAML
    composes recursively: 300 levels overflow the stack).
    """

    composed = 0  # nodes composed so far, aliases counted once
    _depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        self.composed += 1
        if self.composed > MAX_YAML_NODES:
            raise YamlRefused(f"more than {MAX_YAML_NODES:,} values; a config has a few dozen")
        if self._depth > MAX_YAML_DEPTH:
            raise YamlRefused(f"nested deeper than {MAX_YAML_DEPTH} levels ({_where(self.peek_event())})")
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def get_single_node(self) -> yaml.Node | None:
        node = super().get_single_node()
        if node is not None:
            _expanded_size(node)
        return node


def _expanded_size(root: yaml.Node) -> int:
    """Nodes in ``root`` with every alias expanded; raises :class:`YamlRefused` past the bounds."""
    sizes: dict[int, int] = {}
    open_: set[int] = set()

    def size(node: yaml.Node, depth: int) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in open_:
            raise YamlRefused(f"an alias refers to a node that contains it ({_where(node)})")
        if depth > MAX_YAML_DEPTH:
            raise YamlRefused(f"nested deeper than {MAX_YAML_DEPTH} levels ({_where(node)})")
        total = 1
        if isinstance(node, yaml.SequenceNode | yaml.MappingNode):
            open_.add(key)
            children = (
                node.value if isinstance(node, yaml.SequenceNode) else [n for kv in node.value for n in kv]
            )
            for child in children:
                total += size(child, depth + 1)
                if total > MAX_YAML_NODES:
                    raise YamlRefused(
                        f"its aliases expand to more than {MAX_YAML_NODES:,} values (an alias bomb?); "
                        "a config has a few dozen"
                    )
            open_.discard(key)
        sizes[key] = total
        return total

    return size(root, 0)


def _where(node: yaml.Node | yaml.Event) -> str:
    """``line L, column C`` of ``node``: one line, unlike PyYAML's marks with their snippet."""
    mark = node.start_mark
    return f"line {mark.line + 1}, column {mark.column + 1}"


def _yaml_problem(err: yaml.YAMLError) -> str:
    """PyYAML's error on one line: its own message quotes the offending line with a caret under it."""
    if isinstance(err, yaml.MarkedYAMLError) and err.problem_mark is not None:
        what = "; ".join(str(p) for p in (err.context, err.problem) if p)
        mark = err.problem_mark
        return f"{what} (line {mark.line + 1}, column {mark.column + 1})"
    return " ".join(str(err).split())


def load_yaml(path: str | Path) -> Any:
    """The YAML document in ``path``, read with the bounds above; refusals raise :class:`ConfigError`
    naming the file."""
    path = Path(path)
    try:
        st = path.stat()
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    if not path.is_file():  # a FIFO would block the read forever, a device never end
        raise ConfigError(f"{path}: not a regular file, so not a config file")
    if st.st_size > MAX_CONFIG_BYTES:
        raise ConfigError(
            f"{path}: {st.st_size} bytes is too large for a config file (at most {MAX_CONFIG_BYTES})"
        )
    with path.open("rb") as f:
        raw = f.read(MAX_CONFIG_BYTES + 1)  # the file may have grown since stat
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path}: too large for a config file (more than {MAX_CONFIG_BYTES} bytes)")
    try:
        return yaml.load(raw, Loader=BoundedLoader)  # a SafeLoader: no tags run code
    except YamlRefused as err:
        raise ConfigError(_cut(f"{path}: refused: {err}", MAX_ERROR_CHARS)) from None
    except yaml.YAMLError as err:
        raise ConfigError(_cut(f"{path}: not valid YAML: {_yaml_problem(err)}", MAX_ERROR_CHARS)) from None


def _yaml_section(path: str | Path, section: str) -> dict[str, Any]:
    data = load_yaml(path) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of option names, got {type(data).__name__}")
    data = data.get(section, data)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: {section}: expected a mapping of option names, got {type(data).__name__}")
    keys = [k for k in data if not isinstance(k, str)]
    if keys:
        raise ConfigError(f"{path}: option names must be strings, but got {short_repr(keys[0])}")
    return data


class _Validated(BaseModel):
    """Raises :class:`ConfigError` (one line per bad field) instead of pydantic's ValidationError.

    No float field accepts NaN or an infinity, inside lists and tuples too: each turns every image
    into NaN or one flat colour, or crashes later, mid-run.
    """

    model_config = ConfigDict(allow_inf_nan=False)  # subclasses' model_config is merged with this

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as err:
            raise _config_error(type(self), err) from None

    def __setattr__(self, name: str, value: Any) -> None:
        try:
            super().__setattr__(name, value)
        except ValidationError as err:
            raise _config_error(type(self), err) from None

    @classmethod
    def _from_yaml(cls, path: str | Path, section: str, overrides: Mapping[str, Any]) -> Self:
        """Options from ``path`` (the mapping, or its ``section``), then ``overrides``; a bad option
        names the file, unless it is one of ``overrides``."""
        try:
            return cls(**{**_yaml_section(path, section), **overrides})
        except ConfigError as err:
            if not err.problems:  # the file itself was refused, and the message names it
                raise
            message = _message(cls.__name__, err.problems, path, given=overrides)
            raise ConfigError(message, problems=err.problems) from None


class PixelTransform(_Validated):
    """One pixel-level extra: ``{name, params, p}``, applied after Keras's own transforms."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    params: dict[str, Any] = Field(default_factory=dict)
    p: float = Field(default=1.0, ge=0.0, le=1.0)

    @field_validator("name")
    @classmethod
    def _known(cls, name: str) -> str:
        from pipeline.functional.pixel import EXTRA_TRANSFORMS

        if name not in EXTRA_TRANSFORMS:
            raise ValueError(
                f"unknown extra transform {name!r}{did_you_mean(name, EXTRA_TRANSFORMS)}; "
                f"accepted: {', '.join(sorted(EXTRA_TRANSFORMS))}"
            )
        return name

    @field_validator("params")
    @classmethod
    def _params_finite(cls, params: dict[str, Any]) -> dict[str, Any]:
        _check_finite_inside(params, "params")
        return params

    @model_validator(mode="after")
    def _params_accepted(self) -> PixelTransform:
        from pipeline.functional.pixel import CROPS, build_extra

        if self.name in CROPS and self.p != 1.0:
            raise ValueError(
                f"extra {self.name!r} changes the image size, so p must be 1 (got {self.p}): "
                "every image of a batch must come out the same size"
            )
        build_extra(self.name, self.params)  # raises ValueError naming the bad parameter
        return self


# Generous bounds on magnitudes, documented in the messages. Past MAX_MAGNITUDE no option means
# anything new (angles repeat every 360 degrees, pixel shifts clip to one colour, a zoom shows only
# fill) and float arithmetic starts to overflow: a rotation_range or brightness of 1e308 draws NaN.
MAX_MAGNITUDE = 1_000_000
# A shift is a fraction of the image size below 1 and pixels from 1 on. The size is not known here,
# so this bound is on pixels: far beyond any image, while 1e30 crashed mid-run.
MAX_SHIFT_PIXELS = 10_000


def _check_finite_inside(value: Any, field: str) -> None:
    """Raise ValueError naming ``field`` if a NaN or an infinity is anywhere inside ``value``."""
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


def _real(v: Any, field: str, accepted: str) -> float | int:
    """``v`` if it is a finite real number (a bool is not one), else ValueError saying ``accepted``."""
    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        raise ValueError(f"{field} must be {accepted}")
    try:
        finite = math.isfinite(v)
    except OverflowError:  # an int too large for a float
        finite = False
    if not finite:
        raise ValueError(f"{field} must be finite ({accepted})")
    return v


def _number(x: Any) -> Any:
    """A numeric string as a float (PyYAML reads ``1e-3``, without a dot, as a string); else ``x``."""
    if isinstance(x, str):
        try:
            return float(x)
        except ValueError:
            return x
    return x


def _check_range(value: float | int, field: str, high: float, unit: str = "") -> None:
    """A range drawn from as [-value, value]: 0 <= value <= high."""
    if value < 0:
        raise ValueError(f"{field} must be >= 0")
    if abs(value) > high:
        raise ValueError(f"{field} must be at most {high:,}{unit} (larger draws nothing new)")


class AugmentConfig(_Validated):
    """Every ``ImageDataGenerator`` option, with Keras's names, defaults and normalisation rules.

    Differences from the Keras constructor: ``zoom_range`` is stored normalised as ``[low, high]``;
    ``preprocessing_function`` and ``dtype``/``data_format`` live on the drop-in
    :class:`pipeline.ImageDataGenerator`, not here, since a config must round-trip through YAML.

    ``keras_shift_axes`` (default True) reproduces Keras's swap of the shift axes: Keras's
    ``height_shift_range`` moves images horizontally and ``width_shift_range`` vertically, each
    scaled by the other side's length. Set it to False for the documented meaning.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    featurewise_center: bool = False
    samplewise_center: bool = False
    featurewise_std_normalization: bool = False
    samplewise_std_normalization: bool = False
    zca_whitening: bool = False
    zca_epsilon: float = Field(default=1e-6, gt=0)
    rotation_range: float = 0.0
    width_shift_range: float | int | list[float | int] = 0.0
    height_shift_range: float | int | list[float | int] = 0.0
    brightness_range: tuple[float, float] | None = None
    shear_range: float = 0.0
    zoom_range: float | tuple[float, float] = (1.0, 1.0)
    channel_shift_range: float = 0.0
    fill_mode: FillMode = "nearest"
    cval: float = 0.0
    horizontal_flip: bool = False
    vertical_flip: bool = False
    rescale: float | None = None
    validation_split: float = 0.0
    interpolation_order: int = Field(default=1, ge=0, le=5)
    keras_shift_axes: bool = True
    extras: list[PixelTransform] = Field(default_factory=list)

    @field_validator("rotation_range", "shear_range")
    @classmethod
    def _degrees(cls, v: float, info: Any) -> float:
        _check_range(v, info.field_name, MAX_MAGNITUDE, " degrees")
        return v

    @field_validator("channel_shift_range")
    @classmethod
    def _channel_shift(cls, v: float, info: Any) -> float:
        _check_range(v, info.field_name, MAX_MAGNITUDE)
        return v

    @field_validator("width_shift_range", "height_shift_range", mode="before")
    @classmethod
    def _shift(cls, v: Any, info: Any) -> Any:
        field = info.field_name
        if isinstance(v, tuple):
            v = list(v)
        if isinstance(v, list) and not v:
            raise ValueError(f"{field} must not be an empty list")
        # A string is refused rather than parsed: Keras's meaning hangs on int versus float.
        accepted = "a float, an int or a list of numbers"
        for x in v if isinstance(v, list) else [v]:
            _real(x, field, accepted)
            if abs(x) > MAX_SHIFT_PIXELS:
                raise ValueError(
                    f"{field} must be at most {MAX_SHIFT_PIXELS:,} pixels in magnitude "
                    "(below 1 it is a fraction of the image size)"
                )
        if not isinstance(v, list):  # a list holds choices, signed or not, as in Keras
            _check_range(v, field, MAX_SHIFT_PIXELS, " pixels")
        return v

    @field_validator("brightness_range", mode="before")
    @classmethod
    def _brightness(cls, v: Any) -> Any:
        if v is None:
            return v
        accepted = "a pair [low, high] of floats, or null"
        if not isinstance(v, list | tuple) or len(v) != 2:
            raise ValueError(f"brightness_range must be {accepted}")
        lo, hi = (float(_real(_number(x), "brightness_range", accepted)) for x in v)
        if lo < 0 or hi < lo:
            raise ValueError("brightness_range must satisfy 0 <= low <= high")
        if hi > MAX_MAGNITUDE:
            raise ValueError(f"brightness_range must be at most {MAX_MAGNITUDE:,} (larger is all white)")
        return (lo, hi)

    @field_validator("zoom_range", mode="before")
    @classmethod
    def _zoom(cls, v: Any) -> Any:
        accepted = "a float or a pair [low, high]"
        if isinstance(v, bool):
            raise ValueError(f"zoom_range must be {accepted}")
        if isinstance(v, numbers.Real):
            if abs(_real(v, "zoom_range", accepted)) >= 1:
                raise ValueError("zoom factors must be > 0 (a scalar zoom_range must be < 1)")
            v = (1.0 - v, 1.0 + v)
        if not isinstance(v, list | tuple) or len(v) != 2:
            raise ValueError(f"zoom_range must be {accepted}")
        lo, hi = (float(_real(_number(x), "zoom_range", accepted)) for x in v)
        if lo <= 0 or hi <= 0:
            raise ValueError("zoom factors must be > 0 (a scalar zoom_range must be < 1)")
        if hi < lo:
            raise ValueError("zoom_range must satisfy low <= high")
        if hi > MAX_MAGNITUDE:
            raise ValueError(f"zoom factors must be at most {MAX_MAGNITUDE:,} (larger shows only fill)")
        return (lo, hi)

    @field_validator("cval")
    @classmethod
    def _cval(cls, v: float) -> float:
        if abs(v) > MAX_MAGNITUDE:
            raise ValueError(f"cval must be at most {MAX_MAGNITUDE:,} in magnitude (a pixel value)")
        return v

    @field_validator("validation_split")
    @classmethod
    def _split(cls, v: float) -> float:
        if v and not 0 < v < 1:
            raise ValueError("validation_split must be strictly between 0 and 1 (or 0 for none)")
        return v

    @field_validator("rescale")
    @classmethod
    def _rescale(cls, v: float | None) -> float | None:
        if v is not None and abs(v) > MAX_MAGNITUDE:
            raise ValueError(f"rescale must be at most {MAX_MAGNITUDE:,} in magnitude (a factor on pixels)")
        return v or None  # Keras treats 0 and None alike: no rescaling

    @model_validator(mode="after")
    def _keras_overrides(self) -> AugmentConfig:
        # Keras's constructor rules, applied silently here (the drop-in warns like Keras does).
        if self.zca_whitening:
            object.__setattr__(self, "featurewise_center", True)
            object.__setattr__(self, "featurewise_std_normalization", False)
        if self.featurewise_std_normalization:
            object.__setattr__(self, "featurewise_center", True)
        if self.samplewise_std_normalization:
            object.__setattr__(self, "samplewise_center", True)
        return self

    # ---- construction helpers -------------------------------------------------------------
    @classmethod
    def parse(cls, data: dict[str, Any] | None = None, **kwargs: Any) -> AugmentConfig:
        """Build from a mapping and/or keyword arguments, raising :class:`ConfigError` on bad values."""
        merged = {**(data or {}), **kwargs}
        try:
            return cls.model_validate(merged)
        except ValidationError as err:
            raise _config_error(cls, err) from None

    @classmethod
    def from_yaml(cls, path: str | Path) -> AugmentConfig:
        """Options from a YAML file: the mapping itself, or its ``augment:`` section."""
        return cls._from_yaml(path, "augment", {})

    def to_yaml(self, path: str | Path | None = None) -> str:
        text = yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)
        if path is not None:
            Path(path).write_text(text)
        return text

    # ---- derived facts the engine uses -------------------------------------------------------
    @property
    def has_geometry(self) -> bool:
        return bool(
            self.rotation_range
            or shift_is_set(self.width_shift_range)
            or shift_is_set(self.height_shift_range)
            or self.shear_range
            or self.zoom_range != (1.0, 1.0)
            or self.horizontal_flip
            or self.vertical_flip
        )

    def options_off_device(self) -> list[str]:
        """The options set here that the on-device path (augment_on_device) does not implement."""
        names = []
        if self.channel_shift_range:
            names.append(f"channel_shift_range={self.channel_shift_range}")
        if self.brightness_range is not None:
            names.append(f"brightness_range={self.brightness_range}")
        if self.extras:
            names.append(f"extras={[e.name for e in self.extras]}")
        if self.interpolation_order > 1:
            names.append(f"interpolation_order={self.interpolation_order} (device path supports 0 and 1)")
        return names

    @property
    def needs_fit(self) -> bool:
        return self.featurewise_center or self.featurewise_std_normalization or self.zca_whitening


def shift_is_set(v: float | int | list[float | int]) -> bool:
    """Whether a shift range draws anything: a non-zero fraction or pixel count, or a non-empty list."""
    return bool(v) if not isinstance(v, list) else len(v) > 0


SPLIT_NAMES = ("train", "validation", "test")


class PrepareConfig(_Validated):
    """What ``augpipe prepare`` reads, how it decodes and splits it, and where it writes.

    ``source`` is ``digits`` (scikit-learn's bundled digits), ``keras:<name>`` (mnist, fashion_mnist,
    cifar10, cifar100, from the Keras cache) or a path: a class-folder tree, a ``.csv`` manifest, an
    ``.npz`` file, or an IDX images file (its labels file beside it).
    ``download``: fetch a ``keras:<name>`` dataset that Keras's cache lacks (``--download``).
    """

    model_config = ConfigDict(extra="forbid")

    source: str
    download: bool = False
    out: str
    kind: Literal["auto", "folders", "manifest", "idx", "npz", "keras", "digits"] = "auto"
    color_mode: Literal["grayscale", "rgb", "rgba"] = "rgb"
    target_size: tuple[int, int] | None = None
    interpolation: Literal["nearest", "bilinear", "bicubic", "area", "lanczos"] = "bilinear"
    keep_aspect_ratio: bool = False
    splits: dict[str, float] = Field(default_factory=lambda: {"train": 0.8, "validation": 0.1, "test": 0.1})
    shard_size: int = Field(default=8192, ge=1)
    chunk_size: int = Field(default=512, ge=1)
    max_pixels: int = Field(default=DEFAULT_MAX_PIXELS, ge=1)
    allow_outside_root: bool = False
    follow_links: bool = False
    split_salt: str = "augpipe"

    @field_validator("target_size")
    @classmethod
    def _size(cls, v: tuple[int, int] | None) -> tuple[int, int] | None:
        if v is not None and min(v) < 1:
            raise ValueError("target_size must be (height, width) of positive integers")
        return v

    @field_validator("splits")
    @classmethod
    def _splits(cls, v: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(v) - set(SPLIT_NAMES))
        if unknown:
            hint = did_you_mean(unknown[0], SPLIT_NAMES) if len(unknown) == 1 else ""
            raise ValueError(f"unknown split {', '.join(unknown)}{hint}; accepted: {', '.join(SPLIT_NAMES)}")
        if any(f < 0 for f in v.values()) or abs(sum(v.values()) - 1.0) > 1e-6 or v.get("train", 0) <= 0:
            raise ValueError("split fractions must be >= 0, include train > 0, and sum to 1")
        return {k: float(v[k]) for k in SPLIT_NAMES if v.get(k)}

    @model_validator(mode="after")
    def _size_fits(self) -> PrepareConfig:
        # Every image is resized to target_size, so one above max_pixels is the bomb max_pixels refuses.
        if self.target_size is not None and self.target_size[0] * self.target_size[1] > self.max_pixels:
            h, w = self.target_size
            raise ValueError(
                f"target_size {h}x{w} is {h * w:,} pixels, more than max_pixels ({self.max_pixels:,}): "
                "choose a smaller size or raise max_pixels"
            )
        return self

    @classmethod
    def from_yaml(cls, path: str | Path, **overrides: Any) -> PrepareConfig:
        """Options from a YAML file (the mapping, or its ``prepare:`` section), then ``overrides``."""
        return cls._from_yaml(path, "prepare", overrides)

    def decode_fingerprint(self) -> str:
        """What decoded pixels depend on: reuse earlier pixels only when it is unchanged."""
        return repr((self.color_mode, self.target_size, self.interpolation, self.keep_aspect_ratio))


class TrainConfig(_Validated):
    """What ``augpipe train`` trains, on what, and where it records the run.

    ``dataset`` is a prepared dataset folder (``augpipe prepare``'s ``--out``) or any source
    ``augpipe prepare`` accepts (``digits``, a class-folder tree, a manifest, IDX, .npz,
    ``keras:<name>``), which is then prepared into ``<runs_dir>/datasets/`` first (unchanged input
    is not decoded again). ``augment`` is applied to training batches only; its normalisation
    options (``rescale``, featurewise and samplewise ones) apply to every split, as
    ImageDataGenerator's ``standardize`` would.
    """

    model_config = ConfigDict(extra="forbid")

    dataset: str = "digits"
    prepare_options: dict[str, Any] = Field(default_factory=dict)
    model: str = "shapes_net"
    model_options: dict[str, Any] = Field(default_factory=dict)
    epochs: int = Field(default=5, ge=1)
    batch_size: int = Field(default=64, ge=1)
    optimizer: Literal["rmsprop", "adam", "adamw", "sgd"] = "rmsprop"
    learning_rate: float = Field(default=1e-3, gt=0)
    lr_schedule: Literal["constant", "cosine", "exponential"] = "constant"
    lr_decay_rate: float = Field(default=0.9, gt=0, le=1)
    fine_tune_epochs: int = Field(default=0, ge=0)
    fine_tune_learning_rate: float = Field(default=1e-5, gt=0)
    augment: AugmentConfig = Field(default_factory=lambda: AugmentConfig(rescale=1 / 255))
    augment_on_device: bool = False
    seed: int = 0
    deterministic: bool = True
    workers: int = Field(default=2, ge=0)
    prefetch: int = Field(default=4, ge=1)
    mixed_precision: bool = False
    distribute: Literal["auto", "none", "mirrored"] = "auto"
    early_stopping_patience: int | None = Field(default=None, ge=1)
    max_train_samples: int | None = Field(default=None, ge=1)
    runs_dir: str = "runs"
    run_name: str | None = None
    resume: bool = True
    tensorboard: bool = True
    mlflow: bool = True
    mlflow_tracking_uri: str | None = None

    @field_validator("model_options", "prepare_options")
    @classmethod
    def _options_finite(cls, v: dict[str, Any], info: Any) -> dict[str, Any]:
        _check_finite_inside(v, info.field_name)
        return v

    @field_validator("prepare_options")
    @classmethod
    def _prepare_options(cls, v: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        # Checked as a field, so that a bad option is named from here: prepare_options.color_mode.
        fixed = sorted({"source", "out"} & set(v))
        if fixed:
            raise ValueError(
                f"prepare_options cannot set {' or '.join(fixed)}: the source is dataset, and it is "
                "prepared under runs_dir"
            )
        if v:
            PrepareConfig(source=str(info.data.get("dataset", "")), out="", **v)  # raises ConfigError
        return v

    @field_validator("model")
    @classmethod
    def _model_known(cls, v: str) -> str:
        from models.catalog import names

        if v not in names():
            raise ValueError(
                f"unknown model {v!r}{did_you_mean(v, names())}; the models are: {', '.join(names())}"
            )
        return v

    @field_validator("run_name")
    @classmethod
    def _run_name(cls, v: str | None) -> str | None:
        if v is not None and (not v or v in (".", "..") or "/" in v or "\\" in v):
            raise ValueError("run_name must be a plain folder name (no path separators)")
        return v

    @model_validator(mode="after")
    def _options_agree(self) -> TrainConfig:
        if self.fine_tune_epochs and self.model != "xception_transfer":
            raise ValueError(
                "fine_tune_epochs is the second phase of xception_transfer (frozen base, then all "
                f"layers); model {self.model!r} has no pretrained base to unfreeze"
            )
        if self.augment_on_device:
            unsupported = self.augment.options_off_device()
            if unsupported:
                raise ValueError(
                    f"augment_on_device applies the affine options in TensorFlow; "
                    f"{', '.join(unsupported)} cannot run there (Keras applies them after the warp): "
                    "leave them out or train without augment_on_device"
                )
        return self

    @classmethod
    def from_yaml(cls, path: str | Path, **overrides: Any) -> TrainConfig:
        """Options from a YAML file (the mapping, or its ``train:`` section), then ``overrides``."""
        return cls._from_yaml(path, "train", overrides)

    @property
    def total_epochs(self) -> int:
        return self.epochs + self.fine_tune_epochs
