"""Keras beside augpipe: one cell's parameters replayed through Keras's own
``ImageDataGenerator.apply_transform``, with the difference as a heat map and its mean and 99th
percentile on the 0-255 scale, so that parity is seen rather than claimed.

Keras gets the image as float32, as its iterators hand it over; augpipe gets it as the grid did
(uint8 stays uint8 and is rounded where Keras keeps floats). Extras are beyond Keras: both sides
leave them out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from pipeline.augment import Augmenter
from pipeline.config import AugmentConfig
from pipeline.studio.grid import display, encode_png, tile

HEAT_FULL_SCALE = 32.0  # a difference of this many levels (of 255) or more is drawn at full heat
PANELS = ("augpipe", "Keras", "difference")


@dataclass(frozen=True)
class KerasComparison:
    """The three panels (augpipe, Keras, heat map of |augpipe - Keras|) as one PNG, and the numbers."""

    png: bytes
    mean: float
    p99: float
    max: float
    note: str


def keras_generator(config: AugmentConfig) -> Any:
    """Keras's legacy ImageDataGenerator with ``config``'s warp settings (what apply_transform reads)."""
    from pipeline.tf_import import import_tensorflow

    import_tensorflow()  # without TensorFlow's C++ start-up lines
    from keras.src.legacy.preprocessing.image import ImageDataGenerator

    return ImageDataGenerator(
        fill_mode=config.fill_mode, cval=config.cval, interpolation_order=config.interpolation_order
    )


def keras_params(params: dict[str, Any]) -> dict[str, Any]:
    """A cell's params dict with Keras's keys only (the extras left out)."""
    return {k: v for k, v in params.items() if k != "extras"}


def heat_map(diff: np.ndarray) -> np.ndarray:
    """|difference| (H, W[, C]) as an RGB heat map: black for none, white-yellow from
    :data:`HEAT_FULL_SCALE` levels on (the largest difference over channels)."""
    worst = diff.max(axis=-1) if diff.ndim == 3 else diff
    level = np.clip(worst * (255.0 / HEAT_FULL_SCALE), 0, 255).astype(np.uint8)
    return cv2.cvtColor(cv2.applyColorMap(level, cv2.COLORMAP_INFERNO), cv2.COLOR_BGR2RGB)


def compare_with_keras(image: np.ndarray, config: AugmentConfig, params: dict[str, Any]) -> KerasComparison:
    """augpipe's and Keras's ``apply_transform`` of ``image`` (H, W, C) for one Keras params dict."""
    keras_only = keras_params(params)
    ours = Augmenter(config.model_copy(update={"extras": []})).apply_transform(image, keras_only)
    theirs = np.asarray(
        keras_generator(config).apply_transform(image.astype(np.float32), dict(keras_only)), np.float64
    )
    diff = np.abs(ours.astype(np.float64) - theirs)
    notes = []
    if config.extras:
        notes.append("extras are beyond Keras: both sides without them")
    if not config.keras_shift_axes:
        notes.append("keras_shift_axes is off: Keras reads tx and ty along its own (swapped) axes")
    panels = [display(ours), display(np.clip(np.rint(theirs), 0, 255).astype(np.uint8)), heat_map(diff)]
    picture, _, _ = tile([panels], max_cell=1 << 16)
    return KerasComparison(
        encode_png(picture),
        float(diff.mean()),
        float(np.percentile(diff, 99)),
        float(diff.max()),
        "; ".join(notes),
    )
