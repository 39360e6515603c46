"""PrepareConfig: what ``augpipe prepare`` reads, how it decodes and splits it, and where it writes."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from pipeline.config.base import Validated
from pipeline.config.messages import did_you_mean
from pipeline.ingest.formats import DEFAULT_MAX_PIXELS, SPLIT_NAMES


class PrepareConfig(Validated):
    """What ``augpipe prepare`` reads, how it decodes and splits it, and where it writes.

    ``source`` is ``digits`` (scikit-learn's bundled digits), ``keras:<name>`` (mnist, fashion_mnist,
    cifar10, cifar100, from the Keras cache) or a path: a class-folder tree, a ``.csv`` manifest, an
    ``.npz`` file, or IDX files (a folder of them, or an images file with its labels file beside it).
    A name wins over a path of that name (``./digits`` is the folder; the summary says when a path
    was passed over).
    ``download``: fetch a ``keras:<name>`` dataset that Keras's cache lacks (``--download``).
    ``splits``: the fractions the splits are cut at. A source that gives its own splits (split
    folders ``train/``, ``val/``, ``test/``; a manifest's ``split`` column; an IDX folder's ``train-``
    and ``t10k-`` or ``test-`` files; a Keras dataset's train and test; an ``.npz``'s ``x_train``,
    ``y_train``, ``x_test``, ``y_test``) keeps them, and only the splits it lacks are cut, from its
    train split; train is then the only split it must give.
    ``dedupe_across_splits``: identical images (same bytes) all go to one split, so that no test or
    validation image is also a training image (``--no-dedupe-across-splits`` turns it off).
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
    dedupe_across_splits: bool = True

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
        # Whether train is there is checked against the source: a source that gives its splits may be
        # asked only for test (``test=1.0``), and then keeps its own train.
        if any(f < 0 for f in v.values()) or abs(sum(v.values()) - 1.0) > 1e-6:
            raise ValueError("split fractions must be >= 0 and sum to 1")
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
