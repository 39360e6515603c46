"""Drawing a preview: its cells as a grid of images, each with its caption below, in one picture."""

from __future__ import annotations

import math
from typing import NamedTuple

import cv2
import numpy as np

from pipeline.preview.cells import Cell, Layout

_FONT, _FONT_SCALE, _THICKNESS = cv2.FONT_HERSHEY_SIMPLEX, 0.4, 1
_MARGIN = 4  # pixels around a caption line
_TEXT = (30, 30, 30)
_ORIGINAL = (20, 70, 160)


class Rendered(NamedTuple):
    """A drawn preview: the picture (uint8 RGB) and where its cells are."""

    picture: np.ndarray
    layout: Layout


def _text_width(text: str) -> int:
    return cv2.getTextSize(text, _FONT, _FONT_SCALE, _THICKNESS)[0][0]


def _line_metrics() -> tuple[int, int]:
    """The height of a caption line and the ascent of its text."""
    (_, h), baseline = cv2.getTextSize("Ag", _FONT, _FONT_SCALE, _THICKNESS)
    return h + baseline + 3, h


def _fit_two_lines(tokens: tuple[str, ...]) -> int:
    """The narrowest width at which ``tokens`` fit on at most two lines."""
    widths = [_text_width(" ".join(tokens))]
    for cut in range(1, len(tokens)):
        widths.append(max(_text_width(" ".join(tokens[:cut])), _text_width(" ".join(tokens[cut:]))))
    return min(widths)


def wrap(tokens: tuple[str, ...], width: int) -> list[str]:
    """Greedy line breaks between tokens at ``width`` pixels (a token is never split)."""
    lines: list[str] = []
    for token in tokens:
        if lines and _text_width(f"{lines[-1]} {token}") <= width:
            lines[-1] = f"{lines[-1]} {token}"
        else:
            lines.append(token)
    return lines


def render(rows: list[list[Cell]], min_cell: int = 96, max_cell: int = 256, pad: int = 6) -> Rendered:
    """Draw cells as a grid with captions below each image; small images are upscaled (nearest) to
    at least ``min_cell`` pixels, and further to fill their caption's width; large ones are shrunk
    (area) to at most ``max_cell``."""
    h = max(c.image.shape[0] for row in rows for c in row)
    w = max(c.image.shape[1] for row in rows for c in row)
    text_w = max(_fit_two_lines(c.tokens) for row in rows for c in row) + 2 * _MARGIN
    side = max(h, w)
    if side > max_cell:
        scale = max_cell / side
    else:
        scale = min(max(math.ceil(min_cell / side), text_w // w), max(1, max_cell // side))
    img_h, img_w = max(1, round(h * scale)), max(1, round(w * scale))
    cell_w = max(img_w, text_w)
    lines = [[wrap(c.tokens, cell_w - 2 * _MARGIN) for c in row] for row in rows]
    line_h, ascent = _line_metrics()
    caption_h = max(len(ls) for row in lines for ls in row) * line_h + 2 * _MARGIN
    layout = Layout(len(rows), max(len(r) for r in rows), cell_w, img_h, caption_h, pad)
    canvas = np.full(layout.shape, 255, np.uint8)
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_NEAREST
    for r, row in enumerate(rows):
        for c, cell in enumerate(row):
            ys, xs = layout.image_box(r, c)
            ch, cw = cell.image.shape[:2]
            size = (max(1, round(cw * scale)), max(1, round(ch * scale)))
            shown = cv2.resize(cell.image, size, interpolation=interp)
            y0, x0 = ys.start + (img_h - size[1]) // 2, xs.start + (cell_w - size[0]) // 2
            canvas[y0 : y0 + size[1], x0 : x0 + size[0]] = shown
            color = _ORIGINAL if cell.params is None else _TEXT
            for k, line in enumerate(lines[r][c]):
                x = xs.start + (cell_w - _text_width(line)) // 2
                y = ys.stop + _MARGIN + k * line_h + ascent + 1
                cv2.putText(canvas, line, (x, y), _FONT, _FONT_SCALE, color, _THICKNESS, cv2.LINE_AA)
    return Rendered(canvas, layout)
