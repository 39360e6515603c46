"""Affine geometry with Keras's conventions, applied by one OpenCV call per image.

Matrices here are *inverse* maps in OpenCV's (x=column, y=row) frame: an output pixel (x, y) takes
its value from input coordinate ``M @ (x, y, 1)``, exactly like ``scipy.ndimage.affine_transform``
as Keras's ``apply_affine_transform`` uses it. Fill modes reproduce scipy's semantics, which are not
OpenCV's border modes for ``wrap`` (period N-1) and ``constant`` (no blending with cval at the edge).
"""

from __future__ import annotations

import cv2
import numpy as np
import scipy.ndimage

_BORDER = {"nearest": cv2.BORDER_REPLICATE, "reflect": cv2.BORDER_REFLECT}
_INTERP = {0: cv2.INTER_NEAREST, 1: cv2.INTER_LINEAR}


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


def _source_coords(matrix: np.ndarray, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    ys, xs = np.mgrid[0:height, 0:width]
    sx = matrix[0, 0] * xs + matrix[0, 1] * ys + matrix[0, 2]
    sy = matrix[1, 0] * xs + matrix[1, 1] * ys + matrix[1, 2]
    return sx, sy


def _wrap(coord: np.ndarray, size: int) -> np.ndarray:
    # scipy's legacy 'wrap': period size-1, the first and last samples coincide. Coordinates
    # inside [0, size-1] are left alone (so size-1 stays the last sample, not 0), and one that is
    # an exact negative multiple of the period maps to size-1, as in scipy's map_coordinate.
    if size <= 1:
        return np.zeros_like(coord)
    period = size - 1
    out = np.where(coord > period, coord - period * np.floor(coord / period), coord)
    return np.where(coord < 0, coord + period * (np.floor(-coord / period) + 1), out)


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
    h, w, ch = image.shape
    if out is None:
        out = np.empty_like(image)
    if order > 1:
        _warp_scipy(image, matrix, fill_mode, cval, order, out)
        return out
    if ch > 4:  # OpenCV warps at most 4 channels at once
        for start in range(0, ch, 4):
            out[..., start : start + 4] = warp(
                np.ascontiguousarray(image[..., start : start + 4]), matrix, fill_mode, cval, order
            )
        return out
    dst = out[..., 0] if ch == 1 else out
    src = image[..., 0] if ch == 1 else image
    interp = _INTERP[order]
    if fill_mode == "wrap":
        sx, sy = _source_coords(matrix, h, w)
        map_x = _wrap(sx, w).astype(np.float32)
        map_y = _wrap(sy, h).astype(np.float32)
        cv2.remap(src, map_x, map_y, interp, dst=dst, borderMode=cv2.BORDER_REPLICATE)
        return out
    border = _BORDER.get(fill_mode, cv2.BORDER_REPLICATE)
    cv2.warpAffine(src, matrix, (w, h), dst=dst, flags=interp | cv2.WARP_INVERSE_MAP, borderMode=border)
    if fill_mode == "constant":
        # scipy gives cval exactly where the source coordinate leaves [0, N-1], and never blends.
        sx, sy = _source_coords(matrix, h, w)
        outside = (sx < 0) | (sx > w - 1) | (sy < 0) | (sy > h - 1)
        dst[outside] = _cval_for(dst.dtype, cval)
    return out


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
