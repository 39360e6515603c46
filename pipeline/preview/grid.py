"""Augmented copies: one row per image, the original then what training gives it in epochs 0, 1, ..."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from pipeline.augment import Augmenter
from pipeline.config import AugmentConfig
from pipeline.errors import ConfigError
from pipeline.params import keys_drawn
from pipeline.preview.batch import display_mapping, take
from pipeline.preview.captions import caption_tokens, fill_token
from pipeline.preview.cells import Cell, Preview
from pipeline.preview.drawing import render


def preview(
    images: np.ndarray,
    config: AugmentConfig,
    samples: int | None = None,
    copies: int = 7,
    seed: int = 0,
    *,
    indices: Sequence[int] | None = None,
    labels: Sequence[str] | None = None,
    min_cell: int = 96,
    max_cell: int = 256,
) -> Preview:
    """One row per image (the first ``samples``, default all): the original, then ``copies``
    augmented versions, each captioned with its drawn parameters.

    ``indices``: the images' sample indices in their dataset (default 0, 1, ...); copy k of index i
    uses key (seed, epoch k, index i), exactly what training draws for it.
    """
    batch = take(images, samples, indices, labels)
    if copies < 1:
        raise ConfigError(f"copies must be >= 1, but got {copies}")
    augmenter = Augmenter(config)
    keys = keys_drawn(config)
    fill = (
        fill_token(config.fill_mode, config.cval)
        if config.has_geometry and config.fill_mode != "nearest"
        else None
    )
    to_u8 = display_mapping(batch.images)
    rows = [[Cell(("original",), None, None, to_u8(im))] for im in batch.images]
    for k in range(copies):
        out, params = augmenter.augment_batch(
            batch.images, batch.indices, epoch=k, seed=seed, standardize=False
        )
        for r in range(len(batch.images)):
            p = params[r]
            rows[r].append(Cell(caption_tokens(p, keys, fill), p, config.fill_mode, to_u8(out[r])))
    picture, layout = render(rows, min_cell=min_cell, max_cell=max_cell)
    return Preview(picture, rows, layout, config, seed, [int(i) for i in batch.indices], batch.labels)
