"""Affine geometry with Keras's conventions, applied by one OpenCV call per image.

Matrices here are *inverse* maps in OpenCV's (x=column, y=row) frame: an output pixel (x, y) takes
its value from input coordinate ``M @ (x, y, 1)``, exactly like ``scipy.ndimage.affine_transform``
as Keras's ``apply_affine_transform`` uses it. Fill modes reproduce scipy's semantics, which are not
OpenCV's border modes for ``wrap`` (period N-1) and ``constant`` (no blending with cval at the edge).
"""

from __future__ import annotations

import functools
import threading

import cv2
import numpy as np
import scipy.ndimage

_BORDER = {"nearest": cv2.BORDER_REPLICATE, "reflect": cv2.BORDER_REFLECT}
_INTERP = {0: cv2.INTER_NEAREST, 1: cv2.INTER_LINEAR}
_IDENTITY = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
# Source coordinates of wrap and constant are computed for several images at once up to this many
# pixels: vectorised over the batch for small images, one image at a time for large ones.
_COORD_PIXELS = 1 << 16
# The constant fill's masks from spans (larger images) are made for this many pixels at once: a
# whole batch of 32 at 224x224, whose spans' setup then costs Python once per batch, not per image.
_SPAN_PIXELS = 1 << 21
# Up to this many pixels per image, the constant fill's mask is computed on the full grid (at 28x28
# a third cheaper than the spans; at 224x224 four times dearer).
_GRID_PIXELS = 1 << 12
# Where a span's estimated end is looked for: the exact end is within a pixel of the estimate unless
# the map is nearly degenerate along the row, which falls back to evaluating the whole row.
_WINDOW = np.arange(-2, 3)
_local = threading.local()


def keras_matrices(
    theta: np.ndarray,
    tx: np.ndarray,
    ty: np.ndarray,
    shear: np.ndarray,
    zx: np.ndarray,
    zy: np.ndarray,
    flip_horizontal: np.ndarray,
    flip_vertical: np.ndarray,
    height: int,
    width: int,
    keras_shift_axes: bool = True,
) -> np.ndarray:
    """Inverse affine maps of shape (batch, 2, 3) for per-sample parameter vectors of shape (batch,).

    Composition follows Keras: rotation @ shift @ shear @ zoom about the centre, then the flips
    that Keras applies after the warp are folded in. With ``keras_shift_axes`` Keras's frame is
    kept as is: ``tx`` moves columns, ``ty`` rows, and the centre is (h/2 - 0.5, w/2 - 0.5) in
    (x, y), which is off-centre on non-square images. Without it, ``tx`` moves rows, ``ty``
    columns, and the centre is the image's true centre.
    """
    theta = np.deg2rad(np.asarray(theta, dtype=np.float64))
    shear = np.deg2rad(np.asarray(shear, dtype=np.float64))
    n = theta.shape[0]
    c, s = np.cos(theta), np.sin(theta)
    eye = np.broadcast_to(np.eye(3), (n, 3, 3))

    rot = eye.copy()
    rot[:, 0, 0], rot[:, 0, 1], rot[:, 1, 0], rot[:, 1, 1] = c, -s, s, c
    shift = eye.copy()
    shear_m = eye.copy()
    shear_m[:, 0, 1], shear_m[:, 1, 1] = -np.sin(shear), np.cos(shear)
    zoom = eye.copy()
    zoom[:, 0, 0], zoom[:, 1, 1] = zx, zy
    if keras_shift_axes:
        shift[:, 0, 2], shift[:, 1, 2] = tx, ty
        ox, oy = height / 2 - 0.5, width / 2 - 0.5
    else:
        shift[:, 0, 2], shift[:, 1, 2] = ty, tx
        ox, oy = width / 2 - 0.5, height / 2 - 0.5
    offset = np.array([[1.0, 0, ox], [0, 1.0, oy], [0, 0, 1.0]])
    reset = np.array([[1.0, 0, -ox], [0, 1.0, -oy], [0, 0, 1.0]])
    m = offset @ rot @ shift @ shear_m @ zoom @ reset

    # Keras flips the warped image; as inverse maps that is x -> W-1-x applied to output coords.
    fh = np.asarray(flip_horizontal, dtype=bool)
    fv = np.asarray(flip_vertical, dtype=bool)
    if fh.any() or fv.any():
        flip = eye.copy()
        flip[fh, 0, 0], flip[fh, 0, 2] = -1.0, width - 1
        flip[fv, 1, 1], flip[fv, 1, 2] = -1.0, height - 1
        m = m @ flip
    return np.ascontiguousarray(m[:, :2, :])


def source_coords(matrices: np.ndarray, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Source (x, y) of every output pixel under each of ``matrices`` (k, 2, 3): two (k, H, W)
    float64 arrays, each ``(m[0] * x + m[1] * y) + m[2]`` evaluated in that order for every pixel."""
    shape = (len(matrices), height, width)
    sx, sy = np.empty(shape), np.empty(shape)
    _coords_into(matrices, 0, sx)
    _coords_into(matrices, 1, sy)
    return sx, sy


def _coords_into(matrices: np.ndarray, row: int, out: np.ndarray) -> None:
    m = matrices[:, row, :, None, None]
    np.multiply(m[:, 0], np.arange(out.shape[2], dtype=np.float64), out=out)
    out += m[:, 1] * np.arange(out.shape[1], dtype=np.float64)[:, None]
    out += m[:, 2]


def _wrap(coord: np.ndarray, size: int) -> np.ndarray:
    # scipy's legacy 'wrap': period size-1, the first and last samples coincide. Coordinates
    # inside [0, size-1] are left alone (so size-1 stays the last sample, not 0), and one that is
    # an exact negative multiple of the period maps to size-1, as in scipy's map_coordinate.
    if size <= 1:
        return np.zeros_like(coord)
    period = size - 1
    out = np.where(coord > period, coord - period * np.floor(coord / period), coord)
    return np.where(coord < 0, coord + period * (np.floor(-coord / period) + 1), out)


def _wrap_into(coord: np.ndarray, size: int, out: np.ndarray) -> None:
    """:func:`_wrap` into ``out`` in a third of its passes, bit for bit.

    ``coord - period * floor(coord / period)`` is scipy's own formula outside [0, period] and leaves
    the coordinates inside it unchanged, except where the quotient is a whole number (an exact
    multiple, or one that rounds to it): those few are redone with :func:`_wrap`.
    """
    if size <= 1:
        out[...] = 0.0
        return
    period = size - 1
    quotient = _buffer("quotient", coord.shape, np.float64)
    np.divide(coord, period, out=quotient)
    whole = _buffer("whole", coord.shape, np.float64)
    np.floor(quotient, out=whole)
    redo = np.equal(whole, quotient, out=_buffer("redo", coord.shape, np.bool_))
    whole *= period
    np.subtract(coord, whole, out=quotient)
    if redo.any():
        quotient[redo] = _wrap(coord[redo], size)
    np.copyto(out, quotient, casting="same_kind")


def wrap_maps(matrices: np.ndarray, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """OpenCV remap tables, two (k, H, W) float32 arrays, that reproduce scipy's ``wrap``."""
    shape = (len(matrices), height, width)
    maps = np.empty(shape, np.float32), np.empty(shape, np.float32)
    _wrap_maps_into(matrices, maps)
    return maps


def _wrap_maps_into(matrices: np.ndarray, maps: tuple[np.ndarray, np.ndarray]) -> None:
    coord = _buffer("coord", maps[0].shape, np.float64)
    for row, size in ((0, maps[0].shape[2]), (1, maps[0].shape[1])):
        _coords_into(matrices, row, coord)
        _wrap_into(coord, size, maps[row])


def _first_above(a: np.ndarray, b: np.ndarray, c: np.ndarray, bound: np.ndarray, width: int) -> np.ndarray:
    """For each row, the first column x in [0, width] where ``(a * x + b) + c > bound``, or ``width``.

    ``a`` (>= 0), ``c`` and ``bound`` have one value per map, ``b`` one per row (a trailing H axis);
    they broadcast together. The value is evaluated as :func:`source_coords` evaluates it and never
    decreases along a row (every rounding is monotone), so the test is False then True: its first
    True is found exactly from an estimate, checked on a few columns around it; where a nearly
    degenerate map leaves the estimate unsure, the row is evaluated in full.
    """
    a, c, bound = a[..., None], c[..., None], bound[..., None]
    with np.errstate(divide="ignore", invalid="ignore"):
        estimate = (bound - b - c) / a
    estimate = np.fmin(np.fmax(estimate, -3.0), width + 3.0)  # fmax turns a == 0's NaN into -3
    cols = estimate.astype(np.int64) + _WINDOW.reshape(-1, *([1] * estimate.ndim))  # window first
    hit = (a * cols + b) + c > bound
    first = cols[0] + (_WINDOW.size - hit.sum(axis=0))
    # A window all True (all False) bounds the first True from above (below) only: exact once
    # clipped to the row where the window reaches past the row's start (end).
    settled = (~hit[0] | (cols[0] <= 0)) & (hit[-1] | (cols[-1] >= width - 1))
    if not settled.all():
        xs = np.arange(width, dtype=np.float64)
        a, b, c, bound = np.broadcast_arrays(a, b, c, bound)
        for at in zip(*np.nonzero(~settled), strict=True):
            first[at] = np.count_nonzero(~((a[at] * xs + b[at]) + c[at] > bound[at]))
    return np.clip(first, 0, width)


def inside_spans(matrices: np.ndarray, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Per output row, the columns [start, stop) whose source lies inside the image: (k, H) int
    arrays holding exactly the pixels where both coordinates of :func:`source_coords` are within
    [0, W-1] and [0, H-1] (a convex region, so one run per row)."""
    m = matrices.transpose(1, 2, 0)  # (axis, coefficient, k)
    # Negating a, b and c negates the rounded value exactly: a decreasing row becomes an increasing
    # one, and the interval [0, limit] becomes [-limit, 0].
    sign = np.where(m[:, 0] < 0, -1.0, 1.0)
    a, c = m[:, 0] * sign, m[:, 2] * sign
    b = (m[:, 1, :, None] * np.arange(height, dtype=np.float64)) * sign[..., None]
    limit = np.array([[width - 1.0], [height - 1.0]]) * sign
    low, high = np.minimum(limit, 0.0), np.maximum(limit, 0.0)
    # Both axes, and value >= low (value > the float just below low) with value > high, at once.
    first = _first_above(a, b, c, np.stack([np.nextafter(low, -np.inf), high]), width)
    start, stop = first[0].max(axis=0), first[1].min(axis=0)
    return start, np.maximum(stop, start)


def outside_masks(matrices: np.ndarray, height: int, width: int) -> np.ndarray:
    """(k, H, W) uint8 masks, 1 where the source of an output pixel leaves the image (scipy's
    ``constant`` gives exactly those cval)."""
    if height * width <= _GRID_PIXELS:  # small images: the whole grid costs less than the spans' setup
        sx, sy = source_coords(matrices, height, width)
        outside = sx < 0
        outside |= sx > width - 1
        outside |= sy < 0
        outside |= sy > height - 1
        return outside.view(np.uint8)
    start, stop = inside_spans(matrices, height, width)
    runs = np.stack([start, stop - start, width - stop], axis=-1).ravel()
    flags = np.tile(np.array([1, 0, 1], np.uint8), start.size)
    return np.repeat(flags, runs).reshape(len(matrices), height, width)


def warp(
    image: np.ndarray,
    matrix: np.ndarray,
    fill_mode: str = "nearest",
    cval: float = 0.0,
    order: int = 1,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Warp an (H, W, C) image by an inverse 2x3 map with scipy's fill-mode semantics.

    ``order`` 0 and 1 run on OpenCV; higher spline orders fall back to scipy (Keras's own path).
    ``out``, if given, must be a C-contiguous (H, W, C) array of the image's dtype.
    """
    if out is None:
        out = np.empty_like(image)
    warp_batch(image[None], np.asarray(matrix)[None], fill_mode, cval, order, out=out[None])
    return out


def warp_batch(
    images: np.ndarray,
    matrices: np.ndarray,
    fill_mode: str = "nearest",
    cval: float = 0.0,
    order: int = 1,
    out: np.ndarray | None = None,
    staging: np.ndarray | None = None,
    rows: np.ndarray | None = None,
) -> np.ndarray:
    """:func:`warp` each image of an (N, H, W, C) batch by its own map of ``matrices`` (N, 2, 3).

    ``rows``, if given, picks the images: ``images[rows[i]]`` is warped by ``matrices[i]``, read in
    place (a batch drawn from a whole data set needs no copy). ``out``, if given, is a C-contiguous
    batch of the warped images' shape and dtype. ``staging``, an
    (H, W, C) buffer of their dtype, receives each source before its warp: OpenCV reads the source
    in a rotated order, about a third faster from a small, hot copy than from inside a big batch on
    large images (measured in bench/augment.py).
    """
    _, h, w, ch = images.shape
    rows = np.arange(len(images)) if rows is None else rows
    n = len(rows)
    if out is None:
        out = np.empty((n, h, w, ch), images.dtype)
    if order > 1:
        for i in range(n):
            _warp_scipy(images[rows[i]], matrices[i], fill_mode, cval, order, out[i])
        return out
    identity = np.all(matrices == _IDENTITY, axis=(1, 2))
    interp = _INTERP[order]
    border = _BORDER.get(fill_mode, cv2.BORDER_REPLICATE)
    fill = None
    if fill_mode == "constant":
        fill = _filled((h, w, ch), images.dtype.str, _cval_for(images.dtype, cval))
        if images.dtype == np.uint8:
            # Same bytes (the pixels it blends at the edge are all refilled), and OpenCV's uint8
            # warp runs about a quarter faster with a constant border than with a replicated one.
            border = cv2.BORDER_CONSTANT
    spans = fill_mode == "constant" and h * w > _GRID_PIXELS
    group = max(1, (_SPAN_PIXELS if spans else _COORD_PIXELS) // (h * w))
    for g in range(0, n, group):
        todo = []
        for i in range(g, min(n, g + group)):
            if identity[i]:
                np.copyto(out[i], images[rows[i]])
            else:
                todo.append(i)
        if not todo:
            continue
        mats = matrices[todo]
        maps = None
        if fill_mode == "wrap":
            shape = (len(mats), h, w)
            maps = _buffer("map0", shape, np.float32), _buffer("map1", shape, np.float32)
            _wrap_maps_into(mats, maps)
        masks = outside_masks(mats, h, w) if fill is not None else None
        if ch > 4 or maps is not None:
            for j, i in enumerate(todo):
                src = images[rows[i]]
                if staging is not None:
                    np.copyto(staging, src)
                    src = staging
                _warp_image(
                    src, out[i], mats[j], interp, border, None if maps is None else (maps[0][j], maps[1][j])
                )
        else:  # the common case, kept lean: at 28x28 Python's share of a warp is about a third
            srcs, dsts = (images[..., 0], out[..., 0]) if ch == 1 else (images, out)
            hot = None if staging is None else staging[..., 0] if ch == 1 else staging
            flags = interp | cv2.WARP_INVERSE_MAP
            for j, i in enumerate(todo):
                src = srcs[rows[i]]
                if hot is not None:
                    np.copyto(hot, src)
                    src = hot
                cv2.warpAffine(src, mats[j], (w, h), dsts[i], flags, border)
        if fill is not None and masks is not None:
            # scipy gives cval exactly where the source coordinate leaves [0, N-1], never blending.
            fill_src, dsts = (fill[..., 0], out[..., 0]) if ch == 1 else (fill, out)
            for j, i in enumerate(todo):
                cv2.copyTo(fill_src, masks[j], dsts[i])
    return out


def _warp_image(
    src: np.ndarray,
    dst: np.ndarray,
    matrix: np.ndarray,
    interp: int,
    border: int,
    maps: tuple[np.ndarray, np.ndarray] | None,
) -> None:
    """One OpenCV warp by ``matrix``, or remap through ``maps``, of an (H, W, C) image into ``dst``."""
    h, w, ch = src.shape
    if ch > 4:  # OpenCV warps at most 4 channels at once
        for lo in range(0, ch, 4):
            part = np.ascontiguousarray(src[..., lo : lo + 4])
            result = np.empty_like(part)
            _warp_image(part, result, matrix, interp, border, maps)
            dst[..., lo : lo + 4] = result
        return
    s2, d2 = (src[..., 0], dst[..., 0]) if ch == 1 else (src, dst)  # OpenCV's (H, W) for one channel
    if maps is not None:
        cv2.remap(s2, maps[0], maps[1], interp, dst=d2, borderMode=cv2.BORDER_REPLICATE)
    else:
        cv2.warpAffine(s2, matrix, (w, h), dst=d2, flags=interp | cv2.WARP_INVERSE_MAP, borderMode=border)


def _buffer(name: str, shape: tuple[int, ...], dtype: type) -> np.ndarray:
    # Per-thread scratch reused from call to call: a fresh array of a few hundred KiB costs a page
    # fault per 4 KiB, which at 224x224 took longer than the arithmetic done in it.
    buffers: dict[str, np.ndarray] = _local.__dict__.setdefault("buffers", {})
    size = int(np.prod(shape))
    buf = buffers.get(name)
    if buf is None or buf.dtype != dtype or buf.size < size:
        buf = buffers[name] = np.empty(size, dtype)
    return buf[:size].reshape(shape)


@functools.lru_cache(maxsize=8)
def _filled(shape: tuple[int, int, int], dtype: str, value: float) -> np.ndarray:
    # Read-only and cached: a fresh image-sized array per call costs a page fault per 4 KiB.
    image = np.full(shape, value, np.dtype(dtype))
    image.flags.writeable = False
    return image


def _cval_for(dtype: np.dtype, cval: float) -> float:
    # scipy writes cval into an integer output rounded half up and clipped to the dtype's range.
    if dtype.kind not in "ui":
        return cval
    info = np.iinfo(dtype)
    return float(np.clip(np.floor(cval + 0.5), info.min, info.max))


def _warp_scipy(
    image: np.ndarray, matrix: np.ndarray, fill_mode: str, cval: float, order: int, out: np.ndarray
) -> None:
    # scipy works in (row, col): swap both the axes and the offset.
    rc = matrix[::-1][:, [1, 0, 2]]
    for k in range(image.shape[2]):
        out[..., k] = scipy.ndimage.affine_transform(
            image[..., k], rc[:, :2], rc[:, 2], order=order, mode=fill_mode, cval=cval
        )
