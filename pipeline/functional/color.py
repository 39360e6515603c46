"""Keras's pixel transforms: channel shift and brightness, on float images and as uint8 lookup tables.

Keras's brightness goes through PIL: the image is cast to uint8 by truncation (rescaled to 0-255
first when it leaves that range) and multiplied by the factor with truncation again. Both paths here
reproduce that, so the output is quantised to 256 levels exactly as Keras's is.
"""

from __future__ import annotations

import cv2
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


def pixel_lut(intensity: float | None, factor: float | None, low: int, high: int) -> np.ndarray:
    """The uint8 lookup table of channel shift then brightness, for an image spanning [low, high]."""
    lut = _LEVELS
    if intensity is not None:
        lut = np.clip(lut + np.float32(intensity), low, high)
    if factor is not None:
        lut = np.clip(np.floor(np.floor(lut) * np.float32(factor)), 0, 255)
    else:
        lut = np.rint(lut)
    return lut.astype(np.uint8)


def apply_pixel_uint8(image: np.ndarray, intensity: float | None, factor: float | None) -> np.ndarray:
    """Channel shift and brightness on a uint8 (H, W, C) image, in place, with one LUT."""
    if intensity is None and factor is None:
        return image
    low, high = 0, 255
    if intensity is not None:
        flat = image.reshape(image.shape[0], -1)
        low, high, _, _ = cv2.minMaxLoc(flat)
    lut = pixel_lut(intensity, factor, int(low), int(high))
    if factor is not None and image.shape[-1] == 4:
        # PIL keeps the alpha band out of the brightness blend; the channel shift still applies.
        alpha_lut = _LEVELS if intensity is None else np.clip(_LEVELS + np.float32(intensity), low, high)
        alpha = cv2.LUT(image[..., 3].copy(), np.floor(alpha_lut).astype(np.uint8))
        cv2.LUT(image, lut, dst=image)
        image[..., 3] = alpha
        return image
    cv2.LUT(image, lut, dst=image)
    return image
