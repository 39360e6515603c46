"""The images a preview starts from: checked, cut to ``samples``, indexed and labelled, and one
mapping of them to uint8 RGB for display."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np

from pipeline.errors import ConfigError, DataError


class Batch(NamedTuple):
    """(N, H, W, C) images, their sample indices in their dataset, and their labels (or None)."""

    images: np.ndarray
    indices: np.ndarray
    labels: list[str] | None


def take(
    images: np.ndarray,
    samples: int | None,
    indices: Sequence[int] | None,
    labels: Sequence[str] | None,
) -> Batch:
    """The first ``samples`` images (default all), (H, W) images given one channel; indices default
    to 0, 1, ..."""
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4 or not len(images):
        raise DataError(f"expected a non-empty batch of (N, H, W, C) images, but got shape {images.shape}")
    if samples is not None:
        if samples < 1:
            raise ConfigError(f"samples must be >= 1, but got {samples}")
        images = images[:samples]
    n = len(images)
    idx = np.arange(n) if indices is None else np.asarray(indices, dtype=np.int64)[:n]
    if idx.shape != (n,):
        raise ValueError(f"indices must give one index per image ({n}), but got {len(idx)}")
    return Batch(np.ascontiguousarray(images), idx, None if labels is None else [str(v) for v in labels][:n])


def display_mapping(images: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """One mapping to uint8 RGB for a whole preview, so that brightness changes stay visible (a
    per-cell min-max scaling would undo them). Float images within 0-1 are taken as 0-1."""
    scale = 255.0 if images.dtype.kind == "f" and float(images.max()) <= 1.0 else 1.0

    def to_u8(image: np.ndarray) -> np.ndarray:
        x = image if image.dtype == np.uint8 else np.clip(np.rint(image * scale), 0, 255).astype(np.uint8)
        if x.shape[-1] < 3:
            return np.repeat(x[..., :1], 3, axis=-1)
        return np.ascontiguousarray(x[..., :3])

    return to_u8
