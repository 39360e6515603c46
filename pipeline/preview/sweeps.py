"""Sweeps: one option at evenly spaced values with every other option off, or each fill mode."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from pipeline.augment import Augmenter
from pipeline.config import FILL_MODES, AugmentConfig
from pipeline.errors import ConfigError
from pipeline.params import OPTION_KEYS, SHIFTS, BatchParams, columns_from_dicts, shift_extent
from pipeline.preview.batch import display_mapping, take
from pipeline.preview.captions import caption_tokens, fill_token
from pipeline.preview.cells import Cell, Preview
from pipeline.preview.drawing import render

# Ranges swept when the config has the option off, so a sweep always shows something.
DEFAULT_SWEEP_RANGES: dict[str, Any] = {
    "rotation_range": 30.0,
    "width_shift_range": 0.2,
    "height_shift_range": 0.2,
    "shear_range": 20.0,
    "zoom_range": (0.8, 1.2),
    "brightness_range": (0.5, 1.5),
    "channel_shift_range": 50.0,
}
SWEEPABLE = (*DEFAULT_SWEEP_RANGES, "fill_mode")
# The transform that shows the border in a fill_mode sweep: rotated and zoomed out.
FILL_REVEAL = {"theta": 25.0, "zx": 1.6, "zy": 1.6}


class SweepSteps(NamedTuple):
    """A sweep's Keras params dicts, one per step, the keys its captions show and a note on its range."""

    records: list[dict[str, Any]]
    keys: tuple[str, ...]
    note: str


def sweep_option(option: str) -> str:
    """The Keras option name for ``option`` (``rotation`` is ``rotation_range``); ValueError if it
    cannot be swept."""
    name = option.strip().lower().replace("-", "_")
    name = name if name in SWEEPABLE else f"{name}_range"
    if name not in SWEEPABLE:
        raise ConfigError(f"cannot sweep option {option!r}; accepted: {', '.join(SWEEPABLE)}")
    return name


def sweep(
    images: np.ndarray,
    config: AugmentConfig,
    option: str,
    steps: int = 7,
    samples: int | None = None,
    *,
    indices: Sequence[int] | None = None,
    labels: Sequence[str] | None = None,
    seed: int = 0,
    min_cell: int = 96,
    max_cell: int = 256,
) -> Preview:
    """One row per image: the original, then ``option`` at ``steps`` evenly spaced values across its
    range (the config's, or :data:`DEFAULT_SWEEP_RANGES` when it is off) with every other option off.

    ``fill_mode`` shows each fill mode, side by side, on a transform that reveals the border
    (:data:`FILL_REVEAL`). ``seed`` is only recorded: a sweep draws nothing.
    """
    name = sweep_option(option)
    if steps < 1:
        raise ConfigError(f"steps must be >= 1, but got {steps}")
    batch = take(images, samples, indices, labels)
    images = batch.images
    # Only how warps are computed survives: the swept option is set through the params, not the config.
    base = AugmentConfig(
        fill_mode=config.fill_mode,
        cval=config.cval,
        interpolation_order=config.interpolation_order,
        keras_shift_axes=config.keras_shift_axes,
    )
    to_u8 = display_mapping(images)
    rows = [[Cell(("original",), None, None, to_u8(im))] for im in images]
    if name == "fill_mode":
        note = f"each fill mode on rotation {FILL_REVEAL['theta']:g} and zoom {FILL_REVEAL['zx']:g}"
        params = BatchParams(columns=columns_from_dicts([FILL_REVEAL] * len(images)))
        for mode in FILL_MODES:
            out = Augmenter(base.model_copy(update={"fill_mode": mode})).transform_batch(images, params)
            for r in range(len(images)):
                rows[r].append(Cell((fill_token(mode, config.cval),), params[0], mode, to_u8(out[r])))
    else:
        plan = _sweep_steps(name, config, images.shape[1:3], steps)
        note = plan.note
        params = BatchParams(columns=columns_from_dicts(plan.records))
        augmenter = Augmenter(base)
        for r in range(len(images)):
            out = augmenter.transform_batch(np.repeat(images[r : r + 1], len(plan.records), axis=0), params)
            for k in range(len(plan.records)):
                p = params[k]
                rows[r].append(Cell(caption_tokens(p, plan.keys), p, base.fill_mode, to_u8(out[k])))
    picture, layout = render(rows, min_cell=min_cell, max_cell=max_cell)
    return Preview(
        picture, rows, layout, config, seed, [int(i) for i in batch.indices], batch.labels, name, note
    )


def _sweep_steps(name: str, config: AugmentConfig, size: Sequence[int], steps: int) -> SweepSteps:
    """``steps`` values of option ``name`` (not ``fill_mode``) on images of ``size`` (rows, cols)."""
    on = config.is_on(name)
    spec = getattr(config, name) if on else DEFAULT_SWEEP_RANGES[name]
    keys = OPTION_KEYS[name]
    if name in SHIFTS:
        extent = shift_extent(name, spec, size)
        lo, hi = -extent, extent
    elif name in ("zoom_range", "brightness_range"):
        lo, hi = spec
    else:
        lo, hi = -float(spec), float(spec)
    records = [{k: float(v) for k in keys} for v in np.linspace(lo, hi, steps)]
    unit = " pixels" if name in SHIFTS else ""
    origin = "config" if on else "default"
    note = f"{name} from {lo:g} to {hi:g}{unit} in {steps} steps ({origin} range), every other option off"
    return SweepSteps(records, keys, note)
