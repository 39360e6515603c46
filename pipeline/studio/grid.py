"""The studio's grid: each sample, then what training gives it in epochs k, k+1, ..., as one PNG, with
each cell's drawn parameters beside it (the page shows them on hover, so nothing is drawn as text).

Small images are sent at their own size and scaled up by the browser (``image-rendering:
pixelated``); large ones are shrunk to ``max_cell`` pixels a side, since a 9 x 8 grid of 224-pixel
cells is wider than a screen and PNG-encoding it alone takes longer than the whole re-render should
(bench/studio.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from pipeline.augment import Augmenter
from pipeline.config import AugmentConfig
from pipeline.params import keys_drawn
from pipeline.preview import caption_tokens

PAD = 2  # pixels between cells
BACKGROUND = 255
MAX_COPIES = 16
MAX_CELL_CHOICES = (96, 128, 192, 256, 1024)


@dataclass(frozen=True)
class GridCell:
    """One augmented cell: its row and column (column 0 is the original), the epoch and sample index
    that keyed it, the Keras params dict it was rendered with, and its caption."""

    row: int
    col: int
    epoch: int
    index: int
    params: dict[str, Any]
    caption: str


@dataclass(frozen=True)
class GridLayout:
    """Cells of ``cell_width`` x ``cell_height`` pixels, ``pad`` apart and from the border."""

    rows: int
    cols: int
    cell_width: int
    cell_height: int
    pad: int

    @property
    def width(self) -> int:
        return self.pad + self.cols * (self.cell_width + self.pad)

    @property
    def height(self) -> int:
        return self.pad + self.rows * (self.cell_height + self.pad)

    def origin(self, row: int, col: int) -> tuple[int, int]:
        """The (y, x) of cell (row, col)'s top-left pixel."""
        return self.pad + row * (self.cell_height + self.pad), self.pad + col * (self.cell_width + self.pad)


@dataclass(frozen=True)
class Grid:
    """The grid as PNG bytes, where its cells are, and each augmented cell's parameters."""

    png: bytes
    layout: GridLayout
    cells: list[GridCell]
    scale: float  # of the images in the picture, against their own size


def encode_png(picture: np.ndarray) -> bytes:
    """``picture`` (uint8, (H, W) or (H, W, 3) RGB) as PNG, fast rather than small: zlib level 1
    takes a third of level 9's time on photographs, and the bytes only cross the loopback."""
    image = picture if picture.ndim == 2 else cv2.cvtColor(picture, cv2.COLOR_RGB2BGR)
    ok, data = cv2.imencode(".png", image, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:
        raise ValueError(f"could not encode a picture of shape {picture.shape} as PNG")
    return data.tobytes()


def display(image: np.ndarray) -> np.ndarray:
    """An augmented image as uint8 for display: (H, W) for one channel, (H, W, 3) RGB otherwise."""
    x = image if image.dtype == np.uint8 else np.clip(np.rint(image), 0, 255).astype(np.uint8)
    if x.ndim == 3 and x.shape[-1] == 1:
        return x[..., 0]
    if x.ndim == 3 and x.shape[-1] != 3:
        return np.ascontiguousarray(x[..., :3]) if x.shape[-1] > 3 else np.repeat(x[..., :1], 3, axis=-1)
    return x


def tile(images: list[list[np.ndarray]], max_cell: int) -> tuple[np.ndarray, GridLayout, float]:
    """Rows of uint8 images drawn as a grid: each centred in its cell, shrunk (area) so that the
    largest side is at most ``max_cell``; one or three channels, as the images have."""
    h = max(im.shape[0] for row in images for im in row)
    w = max(im.shape[1] for row in images for im in row)
    scale = min(1.0, max_cell / max(h, w))
    cell_h, cell_w = max(1, round(h * scale)), max(1, round(w * scale))
    layout = GridLayout(len(images), max(len(r) for r in images), cell_w, cell_h, PAD)
    color = any(im.ndim == 3 for row in images for im in row)
    shape = (layout.height, layout.width, 3) if color else (layout.height, layout.width)
    canvas = np.full(shape, BACKGROUND, np.uint8)
    for r, row in enumerate(images):
        for c, im in enumerate(row):
            if scale < 1:
                size = (max(1, round(im.shape[1] * scale)), max(1, round(im.shape[0] * scale)))
                im = cv2.resize(im, size, interpolation=cv2.INTER_AREA)
            if color and im.ndim == 2:
                im = np.repeat(im[..., None], 3, axis=-1)
            y, x = layout.origin(r, c)
            y += (cell_h - im.shape[0]) // 2
            x += (cell_w - im.shape[1]) // 2
            canvas[y : y + im.shape[0], x : x + im.shape[1]] = im
    return canvas, layout, scale


def render_grid(
    images: np.ndarray,
    indices: list[int],
    config: AugmentConfig,
    *,
    seed: int = 0,
    epoch: int = 0,
    copies: int = 8,
    max_cell: int = 128,
) -> Grid:
    """One row per image: the original, then ``copies`` augmented copies, copy c keyed by
    (``seed``, ``epoch`` + c, index): exactly what training gives that sample in that epoch."""
    if not 1 <= copies <= MAX_COPIES:
        raise ValueError(f"copies must be between 1 and {MAX_COPIES}, but got {copies}")
    if epoch < 0:
        raise ValueError(f"epoch must be >= 0, but got {epoch}")
    augmenter = Augmenter(config)
    keys = keys_drawn(config)
    rows: list[list[np.ndarray]] = [[display(im)] for im in images]
    cells: list[GridCell] = []
    for c in range(copies):
        out, params = augmenter.augment_batch(images, indices, epoch=epoch + c, seed=seed, standardize=False)
        for r in range(len(images)):
            p = params[r]
            rows[r].append(display(out[r]))
            cells.append(GridCell(r, c + 1, epoch + c, indices[r], p, " ".join(caption_tokens(p, keys))))
    picture, layout, scale = tile(rows, max_cell)
    cells.sort(key=lambda cell: (cell.row, cell.col))
    return Grid(encode_png(picture), layout, cells, scale)
