"""Captions: a cell's drawn parameters as short tokens, and the legend that explains them."""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import Any

# In caption order; a key absent here (a flip) has a token of its own.
_FORMATS = {
    "theta": "rot {:+.1f}",
    "tx": "tx {:+.1f}",
    "ty": "ty {:+.1f}",
    "shear": "sh {:+.1f}",
    "zx": "zx {:.2f}",
    "zy": "zy {:.2f}",
    "brightness": "br {:.2f}",
    "channel_shift_intensity": "ch {:+.1f}",
}
LEGEND = (
    "rot: rotation (degrees); tx, ty: shifts (pixels, Keras's axes); sh: shear (degrees); zx, zy: zoom "
    "factors; flipH, flipV: flips; br: brightness factor; ch: channel shift; +name: a pixel extra applied"
)


def caption_tokens(params: dict[str, Any], keys: Collection[str], fill: str | None = None) -> tuple[str, ...]:
    """Compact caption of a Keras params dict: the values of ``keys`` (those drawn), flips that
    happened, the fill mode if given and the extras applied."""
    tokens = [
        re.sub(r" -(0\.0+)$", r" +\1", fmt.format(params[k]))  # no "-0.0"
        for k, fmt in _FORMATS.items()
        if k in keys and params.get(k) is not None
    ]
    if "flip_horizontal" in keys and params.get("flip_horizontal"):
        tokens.append("flipH")
    if "flip_vertical" in keys and params.get("flip_vertical"):
        tokens.append("flipV")
    if fill:
        tokens.append(fill)
    tokens += [f"+{e['name']}" for e in params.get("extras") or () if e.get("applied")]
    return tuple(tokens) or ("no change",)


def fill_token(fill_mode: str, cval: float) -> str:
    """The caption token of a fill mode (with its value when constant)."""
    return f"fill={fill_mode} cval={cval:g}" if fill_mode == "constant" else f"fill={fill_mode}"
