"""Keras's pixel transforms: channel shift and brightness, on float images and as uint8 lookup tables.

Keras's brightness goes through PIL: the image is cast to uint8 by truncation (rescaled to 0-255
first when it leaves that range) and multiplied by the factor with truncation again. Both paths here
reproduce that, so the output is quantised to 256 levels exactly as Keras's is.
"""

from __future__ import annotations

import numpy as np

_LEVELS = np.arange(256, dtype=np.float32)
_ZERO = np.zeros(1)


def channel_shift(image: np.ndarray, intensity: float) -> np.ndarray:
    """Add ``intensity`` to every channel, clipped to the image's own min and max (Keras)."""
    lo, hi = image.min(), image.max()
    return np.clip(image + intensity, lo, hi).astype(image.dtype, copy=False)


def channel_shift_into(image: np.ndarray, intensity: float, low: float, high: float, out: np.ndarray) -> None:
    """:func:`channel_shift` of a float image whose min and max are ``low`` and ``high``, into
    ``out`` of the image's dtype (``image`` itself allowed)."""
    np.add(image, intensity, out=out)
    # The shifted values only leave [low, high] on the side the shift goes to.
    if intensity >= 0:
        np.minimum(out, high, out=out)
    else:
        np.maximum(out, low, out=out)


def shifted_range(low: float, high: float, intensity: float, dtype: np.dtype) -> tuple[float, float]:
    """The min and max of :func:`channel_shift` (no shift for a NaN ``intensity``) of a ``dtype``
    image whose min and max are ``low`` and ``high``: the shift is monotone, so they are its ends'."""
    if np.isnan(intensity):
        return low, high
    lo, hi = dtype.type(low), dtype.type(high)
    return float(min(max(lo + intensity, lo), hi)), float(min(max(hi + intensity, lo), hi))


def brightness_levels(
    image: np.ndarray, intensity: float, low: float, high: float, out: np.ndarray
) -> np.ndarray:
    """The uint8 levels Keras's brightness cuts ``channel_shift(image, intensity)`` to (PIL's cast,
    truncating), into ``out``; :func:`brightness_lut` then gives the brightened values.

    For a float image with min ``low`` and max ``high`` that stays within 0-255 after the shift
    (:func:`shifted_range`; :func:`brightness` rescales the others); a NaN ``intensity`` is no shift.
    """
    x = image
    if not np.isnan(intensity):
        x = np.empty_like(image)
        channel_shift_into(image, intensity, low, high, x)
    np.copyto(out, x.astype(np.float32, copy=False), casting="unsafe")  # Keras's float32, then PIL's cast
    return out


def brightness(image: np.ndarray, factor: float) -> np.ndarray:
    """Keras's ``apply_brightness_shift(x, factor, scale=False)`` for float images."""
    lo, hi = float(image.min()), float(image.max())
    rescaled = lo < 0 or hi > 255
    x: np.ndarray = image.astype(np.float32)
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


def truncated_levels(
    images: np.ndarray,
    shift: np.ndarray,
    low: np.ndarray,
    high: np.ndarray,
    out: np.ndarray,
    scratch: np.ndarray,
) -> np.ndarray:
    """The uint8 levels Keras's brightness cuts each channel-shifted image of a float32 batch
    (N, H, W, C) to, into ``out``: ``images[i] + shift[i]`` (float32, 0 for no shift) clipped to
    [low[i], high[i]] (each image's min and max), truncated.

    For images whose clipped shifted values lie within 0-255 (Keras's condition for this path) and
    shifts below 30,000 in magnitude: the sums then fit ``scratch``, an int16 array of the batch's
    shape. Truncation and the clip are both non-decreasing, so truncating first and clipping to the
    truncated bounds gives the same levels, with the clip on 2-byte integers: the engine's float32
    path at 224x224x3 ran 8% faster than with the floats clipped, then cast.
    """
    shape = (-1, *([1] * (images.ndim - 1)))
    np.add(images, shift.reshape(shape), out=scratch, casting="unsafe")  # the cast truncates
    lo, hi = (np.trunc(b).astype(np.int16).reshape(shape) for b in (low, high))
    np.clip(scratch, lo, hi, out=out, casting="unsafe")
    return out


def brightness_lut(factor: float, channels: int) -> np.ndarray:
    """Keras's brightness of each uint8 level, float32, shape (256,) or (256, 4) for RGBA (PIL keeps
    the alpha band): :func:`brightness` of an image inside 0-255 is this table at its levels."""
    return pixel_luts(np.array([np.nan]), np.array([factor]), _ZERO, _ZERO, channels, np.dtype(np.float32))[0]


def clipped_luts(shifted: np.ndarray, unshifted: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """Per-image :func:`pixel_luts` tables from the batch's, for uint8 images of min ``low`` and
    max ``high`` (one per image).

    ``shifted`` are their rows of ``pixel_luts(intensity, factor, 0, 255)``, ``unshifted`` their rows
    of ``pixel_luts(nan, factor, ...)``. Keras clips the shifted levels to [low, high]; every later
    step of a table is non-decreasing for brightness factors >= 0, so clipping the finished table to
    its values at ``low`` and ``high`` gives the same table, and the batch's tables can be made
    before its images are warped. (An image without a shift has the same row in both: clipping
    changes it only outside [low, high], at levels the image does not have.)
    """
    rows = np.arange(len(low))
    return np.clip(shifted, unshifted[rows, low][:, None], unshifted[rows, high][:, None])


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
    # In place where it can be: the engine makes these tables for every batch.
    no_shift, has_factor = np.isnan(intensity), ~np.isnan(factor)
    shifted = _LEVELS + np.where(no_shift, 0.0, intensity).astype(np.float32)[:, None]
    np.maximum(shifted, low.astype(np.float32)[:, None], out=shifted)
    np.minimum(shifted, high.astype(np.float32)[:, None], out=shifted)
    if no_shift.any():
        shifted[no_shift] = _LEVELS
    luts = shifted
    if has_factor.any():
        luts = np.floor(shifted)
        luts *= np.where(has_factor, factor, 1.0).astype(np.float32)[:, None]
        np.floor(luts, out=luts)
        np.clip(luts, 0, 255, out=luts)  # not maximum/minimum: they differ on the sign of a zero
        if not has_factor.all():
            luts[~has_factor] = shifted[~has_factor]
    if np.dtype(dtype) == np.uint8:
        luts = np.rint(luts)
    if channels == 4 and has_factor.any():
        # PIL keeps the alpha band out of the brightness blend; only the channel shift (truncated
        # to uint8 on the way into PIL) reaches it.
        alpha = np.where(has_factor[:, None], np.floor(shifted), luts)
        luts = np.stack([luts, luts, luts, alpha], axis=-1)
    return luts.astype(dtype)
