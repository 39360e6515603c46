"""Keras's pixel transforms: channel shift and brightness, on float images and as uint8 lookup tables.

Keras's brightness goes through PIL: the image is cast to uint8 by truncation (rescaled to 0-255
first when it leaves that range) and multiplied by the factor with truncation again. Both paths here
reproduce that, so the output is quantised to 256 levels exactly as Keras's is.
"""

from __future__ import annotations

import numpy as np

_LEVELS = np.arange(256, dtype=np.float32)


def channel_shift(image: np.ndarray, intensity: float) -> np.ndarray:
    """Add ``intensity`` to every channel, clipped to the image's own min and max (Keras)."""
    lo, hi = image.min(), image.max()
    return np.clip(image + intensity, lo, hi).astype(image.dtype, copy=False)


def brightness(image: np.ndarray, factor: float) -> np.ndarray:
    """Keras's ``apply_brightness_shift(x, factor, scale=False)`` for float images."""
    lo, hi = float(image.min()), float(image.max())
    rescaled = lo < 0 or hi > 255
    x = image.astype(np.float32)
    if rescaled:
        x = x - lo
        if hi - lo != 0:
            x /= hi - lo
        x *= 255
    x = _pil_brightness(x.astype(np.uint8).astype(np.float32), factor, image.shape[-1])
    if rescaled:
        x = x / 255 * (hi - lo) + lo
    return x.astype(image.dtype, copy=False)


def _pil_brightness(levels: np.ndarray, factor: float, channels: int) -> np.ndarray:
    out = np.clip(np.floor(levels * np.float32(factor)), 0, 255)
    if channels == 4:  # PIL keeps the alpha band of RGBA images
        out[..., 3] = levels[..., 3]
    return out


def pixel_luts(
    intensity: np.ndarray,
    factor: np.ndarray,
    low: np.ndarray,
    high: np.ndarray,
    channels: int,
    dtype: np.dtype,
) -> np.ndarray:
    """Lookup tables of channel shift then brightness for a batch, shape (N, 256) or (N, 256, 4).

    ``intensity`` and ``factor`` hold NaN where a sample has no such shift; ``low``/``high`` are each
    warped image's min and max (Keras clips the channel shift to them). Float tables hold Keras's
    exact float values, so a uint8 image is shifted and converted to float in one ``cv2.LUT``; uint8
    tables round the channel shift.
    """
    levels = _LEVELS[None, :]
    shift = np.nan_to_num(intensity).astype(np.float32)[:, None]
    shifted = np.where(
        np.isnan(intensity)[:, None],
        levels,
        np.clip(levels + shift, low[:, None].astype(np.float32), high[:, None].astype(np.float32)),
    )
    has_factor = ~np.isnan(factor)
    scale = np.nan_to_num(factor, nan=1.0).astype(np.float32)[:, None]
    bright = np.clip(np.floor(np.floor(shifted) * scale), 0, 255)
    luts = np.where(has_factor[:, None], bright, shifted)
    if np.dtype(dtype) == np.uint8:
        luts = np.rint(luts)
    if channels == 4 and has_factor.any():
        # PIL keeps the alpha band out of the brightness blend; only the channel shift (truncated
        # to uint8 on the way into PIL) reaches it.
        alpha = np.where(has_factor[:, None], np.floor(shifted), luts)
        luts = np.stack([luts, luts, luts, alpha], axis=-1)
    return luts.astype(dtype)
