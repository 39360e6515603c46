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


class TrainConfig(Validated):
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
