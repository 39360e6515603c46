"""Sweeps in the studio: one option from its minimum to its maximum, or the fill modes side by side,
drawn by the preview engine with each cell's caption."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.config import AugmentConfig
from pipeline.preview import sweep
from pipeline.studio.grid import encode_png

MAX_STEPS = 16


@dataclass(frozen=True)
class SweepPicture:
    """A sweep as PNG bytes, the option swept, and the note on its range."""

    png: bytes
    option: str
    note: str


def render_sweep(
    images: np.ndarray,
    indices: list[int],
    labels: list[str],
    config: AugmentConfig,
    option: str,
    steps: int = 7,
) -> SweepPicture:
    """``option`` (one of ``pipeline.preview.SWEEPABLE``, or ``rotation`` for ``rotation_range``) at ``steps``
    values, every other option off; ``fill_mode`` shows each fill mode."""
    if not 1 <= steps <= MAX_STEPS:
        raise ValueError(f"steps must be between 1 and {MAX_STEPS}, but got {steps}")
    shown = sweep(images, config, option, steps, indices=indices, labels=labels, min_cell=64, max_cell=160)
    return SweepPicture(encode_png(shown.picture), shown.sweep or option, shown.note)
