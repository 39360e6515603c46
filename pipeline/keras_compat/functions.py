"""The free functions of Keras's legacy image module, with its signatures and semantics.

>>> np.random.seed(1)
>>> rotated = random_rotation(image, 30, row_axis=0, col_axis=1, channel_axis=2)

The affine ones warp on the engine's OpenCV kernel with scipy's fill modes (Keras calls scipy), so
they agree with Keras up to the warp's 1/32-pixel coordinate precision; what OpenCV cannot do (a fill
mode other than nearest, reflect, wrap and constant, or an 8-bit signed, 32/64-bit integer or
float16 image) runs on scipy exactly as Keras runs it. The ``random_*`` functions draw from numpy's
global generator with Keras's calls in Keras's order, so after the same ``np.random.seed`` they make
Keras's draws; the generator's own randomness is keyed and never touches it. ``img_to_array``,
``array_to_img``, ``save_img`` and ``smart_resize`` are Keras's own; ``load_img`` adds tf.keras's
deprecated ``grayscale`` argument to Keras's.
"""

from __future__ import annotations

import io
import os
import pathlib
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import scipy.ndimage
from keras.preprocessing.image import smart_resize
from keras.utils import array_to_img, img_to_array, save_img
from keras.utils import load_img as _keras_load_img
from numpy.lib.array_utils import normalize_axis_index
from PIL import Image, ImageEnhance

from pipeline.functional import color, geometry

__all__ = [
    "apply_affine_transform",
    "apply_brightness_shift",
    "apply_channel_shift",
    "array_to_img",
    "flip_axis",
    "img_to_array",
    "list_pictures",
    "load_img",
    "random_brightness",
    "random_channel_shift",
    "random_rotation",
    "random_shear",
    "random_shift",
    "random_zoom",
    "save_img",
    "smart_resize",
    "transform_matrix_offset_center",
]

# What geometry.warp runs on OpenCV at spline order 0 or 1 (orders 2 to 5 it hands to scipy itself).
_OPENCV_DTYPES = tuple(np.dtype(t) for t in (np.uint8, np.uint16, np.int16, np.float32, np.float64))
_OPENCV_FILL_MODES = ("nearest", "reflect", "wrap", "constant")
_PICTURE_EXTENSIONS = ("jpg", "jpeg", "bmp", "png", "ppm", "tif", "tiff")


# ---- files ---------------------------------------------------------------------------------------------
def load_img(
    path: str | pathlib.Path | bytes | io.BytesIO,
    grayscale: bool = False,
    color_mode: str = "rgb",
    target_size: Sequence[int] | None = None,
    interpolation: str = "nearest",
    keep_aspect_ratio: bool = False,
) -> Image.Image:
    """``keras.utils.load_img``, also taking tf.keras's deprecated ``grayscale=True`` (a warning, then
    ``color_mode="grayscale"``)."""
    if grayscale:
        warnings.warn('grayscale is deprecated. Please use color_mode = "grayscale"', stacklevel=2)
        color_mode = "grayscale"
    return _keras_load_img(
        path,
        color_mode=color_mode,
        target_size=target_size,
        interpolation=interpolation,
        keep_aspect_ratio=keep_aspect_ratio,
    )


def list_pictures(
    directory: str | os.PathLike[str], ext: str | Sequence[str] = _PICTURE_EXTENSIONS
) -> list[str]:
    """Paths of the files under ``directory``, subfolders included, whose extension (any case) is in
    ``ext`` (one extension or several), in ``os.walk``'s order as in Keras."""
    suffixes = tuple(f".{e}" for e in ((ext,) if isinstance(ext, str) else ext))
    return [
        os.path.join(root, name)
        for root, _, files in os.walk(directory)
        for name in files
        if name.lower().endswith(suffixes)
    ]


# ---- geometry -----------------------------------------------------------------------------------------
def transform_matrix_offset_center(matrix: np.ndarray, x: float, y: float) -> np.ndarray:
    """``matrix`` (3x3) moved to act about the centre of an image of ``x`` rows and ``y`` columns, in
    Keras's frame (see :func:`apply_affine_transform`)."""
    o_x, o_y = float(x) / 2 - 0.5, float(y) / 2 - 0.5
    offset = np.array([[1, 0, o_x], [0, 1, o_y], [0, 0, 1]])
    reset = np.array([[1, 0, -o_x], [0, 1, -o_y], [0, 0, 1]])
    return offset @ np.asarray(matrix) @ reset


def flip_axis(x: Any, axis: int) -> np.ndarray:
    """``x`` reversed along ``axis`` (a view, as Keras's)."""
    return np.flip(np.asarray(x), axis)


def apply_affine_transform(
    x: Any,
    theta: float = 0,
    tx: float = 0,
    ty: float = 0,
    shear: float = 0,
    zx: float = 1,
    zy: float = 1,
    row_axis: int = 1,
    col_axis: int = 2,
    channel_axis: int = 0,
    fill_mode: str = "nearest",
    cval: float = 0.0,
    order: int = 1,
) -> np.ndarray:
    """Keras's affine transform of one image: rotation ``theta`` and ``shear`` in degrees, shift
    ``tx``/``ty`` in pixels, zoom ``zx``/``zy``, about the image's centre.

    Keras's frame is kept: ``tx`` moves along the columns and ``ty`` along the rows, and the centre
    is (rows/2 - 0.5, cols/2 - 0.5) read as (column, row). ``fill_mode`` and ``cval`` are scipy's;
    ``order`` is the spline order. The result has ``x``'s dtype and layout; with nothing to do, ``x``
    itself is returned, as in Keras.
    """
    x = np.asarray(x)
    _check_axes(x, row_axis, col_axis, channel_axis)
    if theta == 0 and tx == 0 and ty == 0 and shear == 0 and zx == 1 and zy == 1:
        return x
    rows, cols = x.shape[row_axis], x.shape[col_axis]
    one = np.ones(1)
    no_flip = np.zeros(1, dtype=bool)
    matrix = geometry.keras_matrices(
        theta * one, tx * one, ty * one, shear * one, zx * one, zy * one, no_flip, no_flip, rows, cols
    )[0]
    image = np.ascontiguousarray(np.moveaxis(x, (row_axis, col_axis), (0, 1)))  # (rows, cols, channels)
    return np.moveaxis(_warp(image, matrix, fill_mode, cval, order), (0, 1), (row_axis, col_axis))


def _check_axes(x: np.ndarray, row_axis: int, col_axis: int, channel_axis: int) -> None:
    """Keras's checks of ``apply_affine_transform``'s axes, in its order and with its messages."""
    axes = {row_axis, col_axis, channel_axis}
    if len(axes) != 3:
        raise ValueError("'row_axis', 'col_axis', and 'channel_axis' must be distinct")
    if axes != {0, 1, 2}:
        raise ValueError(f"Invalid axis' indices: {axes - {0, 1, 2}}")
    if x.ndim != 3:
        raise ValueError("Input arrays must be multi-channel 2D images.")
    if channel_axis not in (0, 2):
        raise ValueError("Channels are allowed and the first and last dimensions.")


def _warp(image: np.ndarray, matrix: np.ndarray, fill_mode: str, cval: float, order: int) -> np.ndarray:
    """Warp an (H, W, C) image by an inverse map in OpenCV's frame: on the engine's kernel where it
    can, else on scipy channel by channel, as Keras does (its errors for a bad mode or order too)."""
    opencv = order in (0, 1) and image.dtype in _OPENCV_DTYPES and fill_mode in _OPENCV_FILL_MODES
    if opencv or order in (2, 3, 4, 5):
        return geometry.warp(image, matrix, fill_mode, cval, order)
    rc = matrix[::-1][:, [1, 0, 2]]  # scipy indexes (row, column): swap the axes and the offsets
    channels = [
        scipy.ndimage.affine_transform(
            image[..., k], rc[:, :2], rc[:, 2], order=order, mode=fill_mode, cval=cval
        )
        for k in range(image.shape[2])
    ]
    return np.stack(channels, axis=-1)


def random_rotation(
    x: Any,
    rg: float,
    row_axis: int = 1,
    col_axis: int = 2,
    channel_axis: int = 0,
    fill_mode: str = "nearest",
    cval: float = 0.0,
    interpolation_order: int = 1,
) -> np.ndarray:
    """Rotate by an angle drawn uniformly from [-rg, rg] degrees."""
    theta = np.random.uniform(-rg, rg)  # noqa: NPY002  (Keras's global draws, see the module docstring)
    return apply_affine_transform(
        x, theta=theta, row_axis=row_axis, col_axis=col_axis, channel_axis=channel_axis,
        fill_mode=fill_mode, cval=cval, order=interpolation_order,
    )  # fmt: skip


def random_shift(
    x: Any,
    wrg: float,
    hrg: float,
    row_axis: int = 1,
    col_axis: int = 2,
    channel_axis: int = 0,
    fill_mode: str = "nearest",
    cval: float = 0.0,
    interpolation_order: int = 1,
) -> np.ndarray:
    """Shift by fractions drawn from [-hrg, hrg] of the height and [-wrg, wrg] of the width, in
    Keras's frame: the height fraction moves along the columns (see :func:`apply_affine_transform`)."""
    rows, cols = np.shape(x)[row_axis], np.shape(x)[col_axis]
    tx = np.random.uniform(-hrg, hrg) * rows  # noqa: NPY002
    ty = np.random.uniform(-wrg, wrg) * cols  # noqa: NPY002
    return apply_affine_transform(
        x, tx=tx, ty=ty, row_axis=row_axis, col_axis=col_axis, channel_axis=channel_axis,
        fill_mode=fill_mode, cval=cval, order=interpolation_order,
    )  # fmt: skip


def random_shear(
    x: Any,
    intensity: float,
    row_axis: int = 1,
    col_axis: int = 2,
    channel_axis: int = 0,
    fill_mode: str = "nearest",
    cval: float = 0.0,
    interpolation_order: int = 1,
) -> np.ndarray:
    """Shear by an angle drawn uniformly from [-intensity, intensity] degrees."""
    shear = np.random.uniform(-intensity, intensity)  # noqa: NPY002
    return apply_affine_transform(
        x, shear=shear, row_axis=row_axis, col_axis=col_axis, channel_axis=channel_axis,
        fill_mode=fill_mode, cval=cval, order=interpolation_order,
    )  # fmt: skip


def random_zoom(
    x: Any,
    zoom_range: Sequence[float],
    row_axis: int = 1,
    col_axis: int = 2,
    channel_axis: int = 0,
    fill_mode: str = "nearest",
    cval: float = 0.0,
    interpolation_order: int = 1,
) -> np.ndarray:
    """Zoom by factors drawn independently for each axis from ``zoom_range`` (low, high); (1, 1)
    draws nothing."""
    if len(zoom_range) != 2:
        raise ValueError(f"`zoom_range` should be a tuple or list of two floats. Received: {zoom_range}")
    if zoom_range[0] == 1 and zoom_range[1] == 1:
        zx, zy = 1.0, 1.0
    else:
        zx, zy = np.random.uniform(zoom_range[0], zoom_range[1], 2)  # noqa: NPY002
    return apply_affine_transform(
        x, zx=zx, zy=zy, row_axis=row_axis, col_axis=col_axis, channel_axis=channel_axis,
        fill_mode=fill_mode, cval=cval, order=interpolation_order,
    )  # fmt: skip


# ---- pixels --------------------------------------------------------------------------------------------
def apply_channel_shift(x: Any, intensity: float, channel_axis: int = 0) -> np.ndarray:
    """Add ``intensity`` to every channel, clipped to the image's overall min and max; the dtype is
    numpy's for ``x + intensity`` (float64 for a uint8 image and a float shift), as in Keras."""
    x = np.asarray(x)
    # The shift and the clip bounds are the same for every channel, so the layout does not change the
    # result; the axis is still checked, as Keras's np.rollaxis checks it.
    normalize_axis_index(channel_axis, x.ndim)
    return color.channel_shift(x.astype(np.result_type(x, intensity), copy=False), intensity)


def random_channel_shift(x: Any, intensity_range: float, channel_axis: int = 0) -> np.ndarray:
    """Channel shift by an intensity drawn uniformly from [-intensity_range, intensity_range]."""
    intensity = np.random.uniform(-intensity_range, intensity_range)  # noqa: NPY002
    return apply_channel_shift(x, intensity, channel_axis=channel_axis)


def apply_brightness_shift(x: Any, brightness: float, scale: bool = True) -> np.ndarray:
    """Keras's brightness change, through PIL: the image is cast to 8 bits (stretched to 0-255 first
    with ``scale``, or when it leaves that range), brightened, and returned as a float array; without
    ``scale`` a stretched image is mapped back to its own range."""
    low, high = np.min(x), np.max(x)
    out_of_range = bool(low < 0 or high > 255)
    img = array_to_img(x, scale=out_of_range or scale)
    brightened = img_to_array(ImageEnhance.Brightness(img).enhance(brightness))
    if out_of_range and not scale:
        return brightened / 255 * (high - low) + low
    return brightened


def random_brightness(x: Any, brightness_range: Sequence[float], scale: bool = True) -> np.ndarray:
    """Brightness change by a factor drawn uniformly from ``brightness_range`` (low, high)."""
    if len(brightness_range) != 2:
        raise ValueError(
            f"`brightness_range should be tuple or list of two floats. Received: {brightness_range}"
        )
    factor = np.random.uniform(brightness_range[0], brightness_range[1])  # noqa: NPY002
    return apply_brightness_shift(x, factor, scale)
