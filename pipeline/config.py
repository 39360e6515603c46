"""Validated configuration: the ImageDataGenerator options under Keras's names, plus pixel extras.

Validation happens once, here; everything below trusts these values.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from pipeline.errors import ConfigError

FillMode = Literal["nearest", "reflect", "wrap", "constant"]
FILL_MODES: tuple[str, ...] = ("nearest", "reflect", "wrap", "constant")


def _format_validation_error(cls: type[BaseModel], err: ValidationError) -> str:
    model = cls.__name__
    lines = []
    for e in err.errors():
        field = ".".join(str(p) for p in e["loc"]) or "(config)"
        inner = e.get("ctx", {}).get("error")
        if isinstance(inner, ConfigError):
            # pydantic runs a model's own __init__ when validating it, so the ConfigError that
            # _Validated raises comes back wrapped here: keep its message, do not format it twice.
            lines.append(f"{model}.{field}: {inner}" if e["loc"] else str(inner))
            continue
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = f"unknown option; accepted: {', '.join(cls.model_fields)}"
        given = e.get("input")
        lines.append(f"{model}.{field}: {msg} (got {given!r})")
    return "; ".join(lines)


def _yaml_section(path: str | Path, section: str) -> dict[str, Any]:
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of option names, got {type(data).__name__}")
    return data.get(section, data)


class _Validated(BaseModel):
    """Raises :class:`ConfigError` (one line per bad field) instead of pydantic's ValidationError."""

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as err:
            raise ConfigError(_format_validation_error(type(self), err)) from None

    def __setattr__(self, name: str, value: Any) -> None:
        try:
            super().__setattr__(name, value)
        except ValidationError as err:
            raise ConfigError(_format_validation_error(type(self), err)) from None


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
                f"unknown extra transform {name!r}; accepted: {', '.join(sorted(EXTRA_TRANSFORMS))}"
            )
        return name

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


def _check_range(value: float | int | list[float | int], field: str) -> None:
    values = value if isinstance(value, list) else [value]
    if any(v < 0 for v in values):
        raise ValueError(f"{field} must be >= 0")


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

    @field_validator("rotation_range", "shear_range", "channel_shift_range")
    @classmethod
    def _non_negative(cls, v: float, info: Any) -> float:
        _check_range(v, info.field_name)
        return v

    @field_validator("width_shift_range", "height_shift_range", mode="before")
    @classmethod
    def _shift(cls, v: Any, info: Any) -> Any:
        if isinstance(v, tuple):
            v = list(v)
        if isinstance(v, bool) or v is None:
            raise ValueError(f"{info.field_name} must be a float, an int or a list of numbers")
        if isinstance(v, list) and not v:
            raise ValueError(f"{info.field_name} must not be an empty list")
        if isinstance(v, int | float):  # a list holds choices, signed or not, as in Keras
            _check_range(v, info.field_name)
        return v

    @field_validator("brightness_range", mode="before")
    @classmethod
    def _brightness(cls, v: Any) -> Any:
        if v is None:
            return v
        if not isinstance(v, list | tuple) or len(v) != 2:
            raise ValueError("brightness_range must be a pair [low, high] of floats, or null")
        lo, hi = (float(x) for x in v)
        if lo < 0 or hi < lo:
            raise ValueError("brightness_range must satisfy 0 <= low <= high")
        return (lo, hi)

    @field_validator("zoom_range", mode="before")
    @classmethod
    def _zoom(cls, v: Any) -> Any:
        if isinstance(v, bool):
            raise ValueError("zoom_range must be a float or a pair [low, high]")
        if isinstance(v, int | float):
            v = (1.0 - v, 1.0 + v)
        if not isinstance(v, list | tuple) or len(v) != 2:
            raise ValueError("zoom_range must be a float or a pair [low, high]")
        lo, hi = (float(x) for x in v)
        if lo <= 0 or hi <= 0:
            raise ValueError("zoom factors must be > 0 (a scalar zoom_range must be < 1)")
        if hi < lo:
            raise ValueError("zoom_range must satisfy low <= high")
        return (lo, hi)

    @field_validator("validation_split")
    @classmethod
    def _split(cls, v: float) -> float:
        if v and not 0 < v < 1:
            raise ValueError("validation_split must be strictly between 0 and 1 (or 0 for none)")
        return v

    @field_validator("rescale")
    @classmethod
    def _rescale(cls, v: float | None) -> float | None:
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
            raise ConfigError(_format_validation_error(cls, err)) from None

    @classmethod
    def from_yaml(cls, path: str | Path) -> AugmentConfig:
        """Options from a YAML file: the mapping itself, or its ``augment:`` section."""
        return cls.parse(_yaml_section(path, "augment"))

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
            or _nonzero(self.width_shift_range)
            or _nonzero(self.height_shift_range)
            or self.shear_range
            or self.zoom_range != (1.0, 1.0)
            or self.horizontal_flip
            or self.vertical_flip
        )

    @property
    def needs_fit(self) -> bool:
        return self.featurewise_center or self.featurewise_std_normalization or self.zca_whitening


def _nonzero(v: float | int | list[float | int]) -> bool:
    return bool(v) if not isinstance(v, list) else len(v) > 0


SPLIT_NAMES = ("train", "validation", "test")


class PrepareConfig(_Validated):
    """What ``augpipe prepare`` reads, how it decodes and splits it, and where it writes.

    ``source`` is ``digits`` (scikit-learn's bundled digits), ``keras:<name>`` (mnist, fashion_mnist,
    cifar10, cifar100, from the Keras cache) or a path: a class-folder tree, a ``.csv`` manifest, an
    ``.npz`` file, or an IDX images file (its labels file beside it).
    """

    model_config = ConfigDict(extra="forbid")

    source: str
    out: str
    kind: Literal["auto", "folders", "manifest", "idx", "npz", "keras", "digits"] = "auto"
    color_mode: Literal["grayscale", "rgb", "rgba"] = "rgb"
    target_size: tuple[int, int] | None = None
    interpolation: Literal["nearest", "bilinear", "bicubic", "area", "lanczos"] = "bilinear"
    keep_aspect_ratio: bool = False
    splits: dict[str, float] = Field(default_factory=lambda: {"train": 0.8, "validation": 0.1, "test": 0.1})
    shard_size: int = Field(default=8192, ge=1)
    chunk_size: int = Field(default=512, ge=1)
    max_pixels: int = Field(default=89_478_485, ge=1)
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
            raise ValueError(f"unknown split {', '.join(unknown)}; accepted: {', '.join(SPLIT_NAMES)}")
        if any(f < 0 for f in v.values()) or abs(sum(v.values()) - 1.0) > 1e-6 or v.get("train", 0) <= 0:
            raise ValueError("split fractions must be >= 0, include train > 0, and sum to 1")
        return {k: float(v[k]) for k in SPLIT_NAMES if v.get(k)}

    @classmethod
    def from_yaml(cls, path: str | Path, **overrides: Any) -> PrepareConfig:
        """Options from a YAML file (the mapping, or its ``prepare:`` section), then ``overrides``."""
        return cls(**{**_yaml_section(path, "prepare"), **overrides})

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

    @field_validator("run_name")
    @classmethod
    def _run_name(cls, v: str | None) -> str | None:
        if v is not None and (not v or v in (".", "..") or "/" in v or "\\" in v):
            raise ValueError("run_name must be a plain folder name (no path separators)")
        return v

    @model_validator(mode="after")
    def _model_known(self) -> TrainConfig:
        from models.registry import names

        if self.model not in names():
            raise ValueError(f"unknown model {self.model!r}; the models are: {', '.join(names())}")
        if self.fine_tune_epochs and self.model != "xception_transfer":
            raise ValueError(
                "fine_tune_epochs is the second phase of xception_transfer (frozen base, then all "
                f"layers); model {self.model!r} has no pretrained base to unfreeze"
            )
        if self.prepare_options:
            PrepareConfig(source=self.dataset, out=self.runs_dir, **self.prepare_options)
        if self.augment_on_device:
            from pipeline.functional.tf_geometry import unsupported_options

            unsupported = unsupported_options(self.augment)
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
        return cls(**{**_yaml_section(path, "train"), **overrides})

    @property
    def total_epochs(self) -> int:
        return self.epochs + self.fine_tune_epochs
