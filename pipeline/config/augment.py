"""AugmentConfig: every ImageDataGenerator option under Keras's names, with bounds on each range."""

from __future__ import annotations

import math
import numbers
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import ConfigDict, Field, ValidationError, field_validator, model_validator

from pipeline.config.base import Validated
from pipeline.config.extras import PixelTransform
from pipeline.config.messages import config_error
from pipeline.io import write_atomic

FillMode = Literal["nearest", "reflect", "wrap", "constant"]
FILL_MODES: tuple[str, ...] = ("nearest", "reflect", "wrap", "constant")

# Generous bounds on magnitudes, documented in the messages. Past MAX_MAGNITUDE no option means
# anything new (angles repeat every 360 degrees, pixel shifts clip to one colour, a zoom shows only
# fill) and float arithmetic starts to overflow: a rotation_range or brightness of 1e308 draws NaN.
MAX_MAGNITUDE = 1_000_000
# A shift is a fraction of the image size below 1 and pixels from 1 on. The size is not known here,
# so this bound is on pixels: far beyond any image, while 1e30 crashed mid-run.
MAX_SHIFT_PIXELS = 10_000


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
    return v  # type: ignore[return-value]  # numbers.Real: a float, an int or a numpy scalar of one


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


# Keras's random options, by what they change; pipeline.params says which parameters each draws.
GEOMETRY_OPTIONS = (
    "rotation_range",
    "width_shift_range",
    "height_shift_range",
    "shear_range",
    "zoom_range",
    "horizontal_flip",
    "vertical_flip",
)
PIXEL_OPTIONS = ("channel_shift_range", "brightness_range")
# Keras's standardisation options: each rescales inputs by statistics, so one that is on states the
# scale the model sees, as ``rescale`` does.
STANDARDISATION_OPTIONS = (
    "featurewise_center",
    "featurewise_std_normalization",
    "samplewise_center",
    "samplewise_std_normalization",
    "zca_whitening",
)


class AugmentConfig(Validated):
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
            raise config_error(cls, err) from None

    @classmethod
    def from_yaml(cls, path: str | Path) -> AugmentConfig:
        """Options from a YAML file: the mapping itself, or its ``augment:`` section."""
        return cls._from_yaml(path, "augment", {})

    def to_yaml(self, path: str | Path | None = None) -> str:
        text = yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)
        if path is not None:
            write_atomic(path, text.encode())
        return text

    # ---- derived facts the engine uses -------------------------------------------------------
    @property
    def has_geometry(self) -> bool:
        return any(self.is_on(option) for option in GEOMETRY_OPTIONS)

    def is_on(self, option: str) -> bool:
        """Whether Keras option ``option`` (one of GEOMETRY_OPTIONS or PIXEL_OPTIONS) draws anything."""
        value = getattr(self, option)
        if option in ("width_shift_range", "height_shift_range"):
            return shift_is_set(value)
        if option == "zoom_range":
            return bool(value != (1.0, 1.0))
        if option == "brightness_range":
            return value is not None
        return bool(value)

    def options_off_device(self) -> list[str]:
        """The options set here that the on-device path (augment_on_device) does not implement."""
        names = [f"{option}={getattr(self, option)}" for option in PIXEL_OPTIONS if self.is_on(option)]
        if self.extras:
            names.append(f"extras={[e.name for e in self.extras]}")
        if self.interpolation_order > 1:
            names.append(f"interpolation_order={self.interpolation_order} (device path supports 0 and 1)")
        return names

    @property
    def states_normalisation(self) -> bool:
        """Whether this config says how inputs are scaled: ``rescale`` given (``None`` included), or a
        standardisation option on. One that does not takes its user's default (training: 1/255)."""
        return "rescale" in self.model_fields_set or any(getattr(self, o) for o in STANDARDISATION_OPTIONS)

    @property
    def needs_fit(self) -> bool:
        return self.featurewise_center or self.featurewise_std_normalization or self.zca_whitening


def shift_is_set(v: float | int | list[float | int]) -> bool:
    """Whether a shift range draws anything: a non-zero fraction or pixel count, or a non-empty list."""
    return bool(v) if not isinstance(v, list) else len(v) > 0
