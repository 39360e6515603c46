"""Hints in a preparation's summary: what the data suggests changing, noticed while decoding it."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from pipeline.prepare.records import ChunkRecord
from pipeline.prepare.sources import shadowed_path_notice

if TYPE_CHECKING:
    from pipeline.config import PrepareConfig

# OpenCV's nearest, bilinear, bicubic and lanczos resizes read a fixed few source pixels per output
# pixel, whatever the scale: stripes of a 3-pixel period shrunk 4x, 8x and 30x keep a standard
# deviation of 66.5 with bilinear (90 with lanczos), against 30.8, 13.1 and 2.1 with area, which
# averages every source pixel. At 2x both give 66.5: from 4x on, area is visibly better.
DOWNSCALE_HINT = 4.0


def count_gray_in_color(images: np.ndarray) -> int:
    """How many of uint8 (n, H, W, C) images with C of 3 or 4 are grayscale: equal colour channels,
    and any alpha fully opaque. 0 for other C."""
    if images.ndim != 4 or images.shape[-1] not in (3, 4) or not len(images):
        return 0
    pixels = images.reshape(len(images), -1, images.shape[-1])
    gray = (pixels[..., 0] == pixels[..., 1]).all(axis=1) & (pixels[..., 0] == pixels[..., 2]).all(axis=1)
    if images.shape[-1] == 4:
        gray &= (pixels[..., 3] == 255).all(axis=1)
    return int(gray.sum())


def hints(cfg: PrepareConfig, records: list[ChunkRecord], images: int) -> list[str]:
    """One line per hint: the source's name was read, not the path of that name here; every image is
    grayscale but stored in colour; images shrank so much that the interpolation aliases."""
    notice = shadowed_path_notice(cfg)
    found = [notice] if notice else []
    gray = sum(r.gray_in_color for r in records)
    if images and gray == images and cfg.color_mode != "grayscale":
        channels = 3 if cfg.color_mode == "rgb" else 4
        found.append(
            f"all {images:,} images are grayscale (equal red, green and blue, any alpha opaque) but are "
            f"stored as {cfg.color_mode}, {channels} channels: --color-mode grayscale (color_mode: "
            f"grayscale in a config file) stores 1 channel, 1/{channels} of the memory"
        )
    shrunk = sum(r.downscaled for r in records)
    if shrunk and cfg.interpolation != "area" and cfg.target_size is not None:
        largest = max(r.largest_downscale for r in records)
        height, width = cfg.target_size
        found.append(
            f"{shrunk:,} images decoded in this run shrank {DOWNSCALE_HINT:g}x or more (up to "
            f"{largest:.1f}x) to {height}x{width} with {cfg.interpolation} interpolation, which reads a "
            "few pixels per output pixel and aliases (moire, jagged edges): --interpolation area "
            "(interpolation: area in a config file) averages every pixel"
        )
    return found
