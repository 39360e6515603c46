"""The studio's controls: one per ImageDataGenerator option and extra, with Keras's names and defaults;
the page's values to an :class:`AugmentConfig` (with the engine's message for each bad one); YAML out
and in.

The page sends shift ranges and ``rescale`` as the text typed: Keras's meaning of a shift hangs on
int versus float (``15`` picks from ``range(15)``, ``15.0`` draws uniformly), which a JSON number
loses in the browser.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pipeline.config import FILL_MODES, MAX_CONFIG_BYTES, AugmentConfig, ConfigError

ControlKind = Literal["number", "bool", "choice", "text", "pair", "optional_pair"]
TEXT_FIELDS = ("width_shift_range", "height_shift_range", "rescale")
GROUPS = ("geometry", "pixel", "normalisation", "extras")


@dataclass(frozen=True)
class Control:
    """One option's control: ``min``/``max``/``step`` bound its slider (the engine's own bounds are
    wider and are what is checked); ``default`` is Keras's."""

    name: str
    group: str
    kind: ControlKind
    default: Any
    help: str
    min: float | None = None
    max: float | None = None
    step: float | None = None
    choices: tuple[Any, ...] = ()


@dataclass(frozen=True)
class ExtraControl:
    """One pixel extra: its name, whether it needs RGB images, and whether it changes the image size."""

    name: str
    needs_rgb: bool
    crop: bool
    default_params: dict[str, Any] = field(default_factory=dict)


CONTROLS: tuple[Control, ...] = (
    Control("rotation_range", "geometry", "number", 0.0, "degrees, drawn from [-r, r]", 0, 180, 1),
    Control(
        "width_shift_range", "geometry", "text", "0.0",
        "< 1: fraction of the width; >= 1: pixels; an int n: from range(n); a list: one of its values; "
        "each with a random sign",
    ),
    Control("height_shift_range", "geometry", "text", "0.0", "as width_shift_range, for the height"),
    Control("shear_range", "geometry", "number", 0.0, "shear angle in degrees, from [-s, s]", 0, 90, 1),
    Control(
        "zoom_range", "geometry", "pair", [1.0, 1.0], "zoom factors [low, high]; < 1 zooms in", 0.1, 3, 0.01
    ),
    Control("horizontal_flip", "geometry", "bool", False, "flip left-right with probability 0.5"),
    Control("vertical_flip", "geometry", "bool", False, "flip top-bottom with probability 0.5"),
    Control("fill_mode", "geometry", "choice", "nearest", "points outside the image", choices=FILL_MODES),
    Control("cval", "geometry", "number", 0.0, "the value outside for fill_mode constant", 0, 255, 1),
    Control(
        "interpolation_order", "geometry", "choice", 1, "spline order of the warp (0 nearest, 1 bilinear)",
        choices=(0, 1, 2, 3, 4, 5),
    ),
    Control(
        "keras_shift_axes", "geometry", "bool", True,
        "Keras's swap of the shift axes (height_shift_range moves along the width); off: as documented",
    ),
    Control(
        "brightness_range", "pixel", "optional_pair", None, "brightness factors [low, high]; off: none",
        0, 3, 0.01,
    ),
    Control("channel_shift_range", "pixel", "number", 0.0, "added to each channel, from [-c, c]", 0, 255, 1),
    Control("rescale", "normalisation", "text", "", "factor on pixels after augmentation, e.g. 1/255"),
    Control("featurewise_center", "normalisation", "bool", False, "subtract the dataset mean (needs a fit)"),
    Control("samplewise_center", "normalisation", "bool", False, "subtract each image's mean"),
    Control(
        "featurewise_std_normalization", "normalisation", "bool", False,
        "divide by the dataset std (needs a fit)",
    ),
    Control("samplewise_std_normalization", "normalisation", "bool", False, "divide by each image's std"),
    Control("zca_whitening", "normalisation", "bool", False, "ZCA whitening (needs a fit)"),
    Control("zca_epsilon", "normalisation", "number", 1e-6, "ZCA's epsilon", 0, 1, None),
    Control(
        "validation_split", "normalisation", "number", 0.0, "fraction held out by the drop-in", 0, 0.99,
        0.01,
    ),
)  # fmt: skip


def extra_controls() -> list[ExtraControl]:
    """Every extra the engine knows, with the defaults that restrict it to its named effect."""
    from pipeline.functional.pixel import CROPS, EXTRA_TRANSFORMS  # albumentations: on first use

    return [
        ExtraControl(name, needs_rgb, name in CROPS, _plain(defaults))
        for name, (_, defaults, needs_rgb) in EXTRA_TRANSFORMS.items()
    ]


def _plain(value: Any) -> Any:
    """Tuples as lists, for JSON."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


@dataclass(frozen=True)
class FormResult:
    """The config the page's values make, or the engine's message for each bad field (``""``: the
    config as a whole)."""

    config: AugmentConfig | None
    errors: dict[str, str]


def _parse_text(name: str, text: Any) -> Any:
    """A text field's value: JSON (``15``, ``0.1``, ``[4, 9]``), ``a/b`` for rescale, ``""`` for none."""
    if not isinstance(text, str):
        return text
    text = text.strip()
    if name == "rescale":
        if not text:
            return None
        if "/" in text:
            num, _, den = text.partition("/")
            try:
                value = float(num) / float(den)
            except (ValueError, ZeroDivisionError):
                raise ValueError(
                    f"rescale must be a number or a fraction such as 1/255 (got {text[:80]!r})"
                ) from None
            if not math.isfinite(value):
                raise ValueError(f"rescale must be finite (got {text[:80]!r})")
            return value
    try:
        return json.loads(text)
    except ValueError:
        raise ValueError(
            f"{name} must be a number or a list of numbers such as [4, 9] (got {text[:80]!r})"
        ) from None


def parse_form(values: Mapping[str, Any]) -> FormResult:
    """The config the page's ``values`` make (an option left out keeps Keras's default)."""
    data: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for name, value in values.items():
        if name in TEXT_FIELDS:
            try:
                data[name] = _parse_text(name, value)
            except ValueError as err:
                errors[name] = f"AugmentConfig.{name}: {err}"
        else:
            data[name] = value
    try:
        config = AugmentConfig.parse(data)
        return FormResult(None if errors else config, errors)
    except ConfigError as err:
        for problem in err.problems or ():
            where = str(problem.loc[0]) if problem.loc else ""
            if where == "extras" and len(problem.loc) > 1:
                where = f"extras.{problem.loc[1]}"
            line = f"AugmentConfig.{'.'.join(str(p) for p in problem.loc)}: {problem.text}"
            errors[where] = f"{errors[where]}; {line}" if where in errors else line
        return FormResult(None, errors or {"": str(err)})


def form_values(config: AugmentConfig) -> dict[str, Any]:
    """The page's values that make ``config`` again (the inverse of :func:`parse_form`)."""
    data = config.model_dump(mode="json")
    for name in ("width_shift_range", "height_shift_range"):
        data[name] = json.dumps(data[name])  # 15 stays 15, 15.0 stays 15.0
    data["rescale"] = "" if config.rescale is None else repr(config.rescale)
    return data


def export_yaml(config: AugmentConfig) -> str:
    """The YAML that ``AugmentConfig.from_yaml`` loads back into ``config``."""
    return config.to_yaml()


def import_yaml(text: str, name: str = "imported YAML") -> AugmentConfig:
    """A config from YAML text (the mapping or its ``augment:`` section), read by
    ``AugmentConfig.from_yaml`` itself, with its bounds; messages name ``name``, not a temporary file."""
    if len(text.encode()) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{name}: too large for a config file (more than {MAX_CONFIG_BYTES} bytes)")
    fd, tmp = tempfile.mkstemp(suffix=".yaml", prefix="augpipe-studio-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        try:
            return AugmentConfig.from_yaml(tmp)
        except ConfigError as err:
            raise ConfigError(str(err).replace(tmp, name), problems=err.problems) from None
    finally:
        Path(tmp).unlink(missing_ok=True)
