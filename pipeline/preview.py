"""Image grids for checking what an augmentation does: the original first, then augmented copies."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


def to_display(image: np.ndarray) -> np.ndarray:
    """An (H, W, C) image of any range as displayable uint8 RGB, min-max scaled if outside 0-255."""
    x = np.asarray(image, dtype=np.float32)
    lo, hi = float(x.min()), float(x.max())
    if lo < 0 or hi > 255:
        x = (x - lo) * (255.0 / max(hi - lo, 1e-12))
    x = np.clip(np.rint(x), 0, 255).astype(np.uint8)
    if x.shape[-1] == 1:
        x = np.repeat(x, 3, axis=-1)
    return x[..., :3]


def grid(rows: list[list[np.ndarray]], min_cell: int = 96, pad: int = 4) -> np.ndarray:
    """Tile rows of images into one uint8 RGB picture; small images are upscaled (nearest) so that
    a 28x28 digit stays readable."""
    h = max(img.shape[0] for row in rows for img in row)
    w = max(img.shape[1] for row in rows for img in row)
    scale = max(1, int(np.ceil(min_cell / max(h, w))))
    ch, cw = h * scale, w * scale
    ncols = max(len(r) for r in rows)
    canvas = np.full((len(rows) * (ch + pad) + pad, ncols * (cw + pad) + pad, 3), 255, np.uint8)
    for r, row in enumerate(rows):
        for c, img in enumerate(row):
            cell = cv2.resize(to_display(img), None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
            y, x = pad + r * (ch + pad), pad + c * (cw + pad)
            canvas[y : y + cell.shape[0], x : x + cell.shape[1]] = cell
    return canvas


def save_png(image: np.ndarray, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR)):
        raise OSError(f"could not write {path}")
    return path
