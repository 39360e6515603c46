"""What a preview holds: its cells, where they sit in the picture, and what made them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pipeline.config import AugmentConfig


@dataclass(frozen=True)
class Cell:
    """One image of a preview: its caption tokens, the Keras params dict it was rendered with (None
    for the original) and the fill mode of its warp."""

    tokens: tuple[str, ...]
    params: dict[str, Any] | None
    fill_mode: str | None = None
    image: np.ndarray = field(
        default_factory=lambda: np.zeros((0, 0, 3), np.uint8), repr=False, compare=False
    )

    @property
    def caption(self) -> str:
        return " ".join(self.tokens)


@dataclass(frozen=True)
class Layout:
    """Where the cells are in a preview picture: a regular grid of ``rows`` x ``cols`` cells, each an
    image area of ``image_height`` x ``cell_width`` above a caption area, ``pad`` pixels apart."""

    rows: int
    cols: int
    cell_width: int
    image_height: int
    caption_height: int
    pad: int

    @property
    def shape(self) -> tuple[int, int, int]:
        return (
            self.pad + self.rows * (self.image_height + self.caption_height + self.pad),
            self.pad + self.cols * (self.cell_width + self.pad),
            3,
        )

    def image_box(self, row: int, col: int) -> tuple[slice, slice]:
        """The (rows, columns) slices of cell (row, col)'s image area."""
        y = self.pad + row * (self.image_height + self.caption_height + self.pad)
        x = self.pad + col * (self.cell_width + self.pad)
        return slice(y, y + self.image_height), slice(x, x + self.cell_width)


@dataclass(frozen=True)
class Preview:
    """The picture (uint8 RGB), its cells row by row (the original first), and what made them."""

    picture: np.ndarray = field(repr=False)
    rows: list[list[Cell]]
    layout: Layout
    config: AugmentConfig
    seed: int
    indices: list[int]
    labels: list[str] | None = None
    sweep: str | None = None
    note: str = ""
