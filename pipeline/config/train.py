"""TrainConfig: what ``augpipe train`` trains, on what, and where it records the run."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import ConfigDict, Field, ValidationInfo, field_validator, model_validator

from models.catalog import names as model_names
from pipeline.config.augment import AugmentConfig
from pipeline.config.base import Validated, check_finite_inside
from pipeline.config.messages import did_you_mean
from pipeline.config.prepare import PrepareConfig

# The scale the models are built for: uint8 pixels to 0..1. A training augmentation config that does
# not state its normalisation (AugmentConfig.states_normalisation) gets it, from YAML or Python alike.
DEFAULT_RESCALE = 1 / 255
CLASS_WEIGHT_ACCEPTED = (
    "'balanced', a mapping of class name or index to a weight > 0, or 'name=weight,...' (e.g. '0=1.0,1=2.5')"
)


class TrainConfig(Validated):
    """What ``augpipe train`` trains, on what, and where it records the run.

    ``dataset`` is a prepared dataset folder (``augpipe prepare``'s ``--out``) or any source
    ``augpipe prepare`` accepts (``digits``, a class-folder tree, a manifest, IDX, .npz,
    ``keras:<name>``), which is then prepared into ``<runs_dir>/datasets/`` first (unchanged input
    is not decoded again). ``augment`` is applied to training batches only; its normalisation
    options (``rescale``, featurewise and samplewise ones) apply to every split, as
    ImageDataGenerator's ``standardize`` would. An ``augment`` that states no normalisation (no
    ``rescale``, not even ``None``, and no standardisation option on) gets ``rescale=1/255``.

    ``max_train_samples``: a class-proportional sample of the training split, drawn with ``seed``.
    ``restore_best_weights``: the test split and ``model.keras`` get the weights of the epoch with
    the lowest validation loss (the last epoch's without a validation split). ``class_weight``:
    ``"balanced"`` (n_samples / (n_classes * count) on the training split trained on) or
    {class name or index: weight}; unnamed classes weigh 1. ``gpus``: the GPU indices to use (sets
    ``CUDA_VISIBLE_DEVICES`` before TensorFlow is imported); ``[]`` trains on the CPU.
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
    augment: AugmentConfig = Field(default_factory=lambda: AugmentConfig(rescale=DEFAULT_RESCALE))
    augment_on_device: bool = False
    seed: int = 0
    deterministic: bool = True
    workers: int = Field(default=2, ge=0)
    prefetch: int = Field(default=4, ge=1)
    mixed_precision: bool = False
    distribute: Literal["auto", "none", "mirrored"] = "auto"
    early_stopping_patience: int | None = Field(default=None, ge=1)
    max_train_samples: int | None = Field(default=None, ge=1)
    restore_best_weights: bool = True
    class_weight: Literal["balanced"] | dict[str, float] | None = None
    label_smoothing: float = Field(default=0.0, ge=0, lt=1)
    gpus: list[int] | None = None
    runs_dir: str = "runs"
    run_name: str | None = None
    resume: bool = True
    tensorboard: bool = True
    mlflow: bool = True
    mlflow_tracking_uri: str | None = None

    @field_validator("model_options", "prepare_options")
    @classmethod
    def _options_finite(cls, v: dict[str, Any], info: Any) -> dict[str, Any]:
        check_finite_inside(v, info.field_name)
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

    @field_validator("augment")
    @classmethod
    def _default_rescale(cls, v: AugmentConfig) -> AugmentConfig:
        # An augmentation file written for its geometry lost the default 1/255 and trained on 0-255
        # inputs (15.1% test accuracy instead of 63.8% on 2,062 photos): only a stated scale wins.
        return v if v.states_normalisation else v.model_copy(update={"rescale": DEFAULT_RESCALE})

    @field_validator("class_weight", mode="before")
    @classmethod
    def _class_weight(cls, v: Any) -> Any:
        if isinstance(v, str) and v != "balanced":
            if "=" not in v:
                raise ValueError(f"class_weight must be {CLASS_WEIGHT_ACCEPTED}")
            pairs = [item.partition("=") for item in v.split(",") if item.strip()]
            v = {name.strip(): _number(weight.strip(), v) for name, _, weight in pairs}
        if isinstance(v, dict):
            if not v:
                raise ValueError(f"class_weight must not be empty; it must be {CLASS_WEIGHT_ACCEPTED}")
            out: dict[str, float] = {}
            for name, weight in v.items():
                if isinstance(name, bool) or not isinstance(name, str | int) or str(name) in ("", "-"):
                    raise ValueError(f"class_weight keys must be class names or indices, but got {name!r}")
                if isinstance(weight, bool) or not isinstance(weight, int | float) or not 0 < weight < 1e6:
                    raise ValueError(
                        f"class_weight[{str(name)!r}] must be a number > 0 and below 1e6, but got {weight!r}"
                    )
                out[str(name)] = float(weight)
            return out
        return v

    @field_validator("gpus", mode="before")
    @classmethod
    def _gpus(cls, v: Any) -> Any:
        if isinstance(v, int) and not isinstance(v, bool):
            v = [v]
        elif isinstance(v, str):
            text = v.strip().lower()
            if text in ("", "none", "cpu"):
                return []
            try:
                v = [int(i) for i in text.split(",")]
            except ValueError:
                raise ValueError(
                    "gpus must be GPU indices such as '0,1' (as nvidia-smi numbers them), or 'none' for "
                    "the CPU only"
                ) from None
        if isinstance(v, list):
            if any(isinstance(i, bool) or not isinstance(i, int) or i < 0 for i in v):
                raise ValueError("gpus must be GPU indices >= 0, such as [0, 1]")
            if len(set(v)) != len(v):
                raise ValueError("gpus must not name a GPU twice")
        return v

    @field_validator("model")
    @classmethod
    def _model_known(cls, v: str) -> str:
        if v not in model_names():
            raise ValueError(
                f"unknown model {v!r}{did_you_mean(v, model_names())}; "
                f"the models are: {', '.join(model_names())}"
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


def _number(text: str, given: str) -> float:
    """``text`` as a float, or ValueError quoting the option as ``given``."""
    try:
        return float(text)
    except ValueError:
        raise ValueError(
            f"class_weight: {text!r} (in {given!r}) is not a number; class_weight must be "
            f"{CLASS_WEIGHT_ACCEPTED}"
        ) from None
