"""pipeline.functional.geometry: Keras's affine matrices and the fused warp, as pure kernels."""

import numpy as np
import pytest
import scipy.ndimage
from kernels import Kernel, check_kernel, with_channels

from pipeline.functional import geometry

FILL_MODES = ("nearest", "reflect", "wrap", "constant")


def _matrix(height: int, width: int, **params: float) -> np.ndarray:
    p = dict(theta=0.0, tx=0.0, ty=0.0, shear=0.0, zx=1.0, zy=1.0, flip_horizontal=False, flip_vertical=False)
    p.update(params)
    return geometry.keras_matrices(*(np.array([v]) for v in p.values()), height=height, width=width)[0]


# rotation, shift, shear and zoom at once, leaving part of the output outside the source
MOVE = dict(theta=23.0, tx=7.0, ty=-11.0, shear=12.0, zx=0.8, zy=1.15)


@pytest.mark.parametrize("order", [0, 1, 3])
@pytest.mark.parametrize("fill_mode", FILL_MODES)
def test_warp_keeps_the_kernel_contract(fill_mode, order, photo_batch_u8):
    h, w = photo_batch_u8.shape[1:3]
    m = _matrix(h, w, **MOVE)
    kernel = Kernel(
        f"warp {fill_mode} order {order}",
        lambda x, out: geometry.warp(x, m, fill_mode, 40.0, order, out=out),
        takes_out=True,
    )
    check_kernel(kernel, photo_batch_u8[:1])


@pytest.mark.parametrize("order", [0, 1])
@pytest.mark.parametrize("fill_mode", FILL_MODES)
def test_channels_are_warped_independently(fill_mode, order, photo_batch_u8):
    # Five channels take OpenCV's >4-channel branch (four at a time, then one): each channel must
    # come out exactly as it does warped alone.
    image = with_channels(photo_batch_u8[2], 5)
    m = _matrix(*image.shape[:2], **MOVE)
    together = geometry.warp(image, m, fill_mode, 40.0, order)
    for k in range(5):
        alone = geometry.warp(np.ascontiguousarray(image[..., k : k + 1]), m, fill_mode, 40.0, order)
        np.testing.assert_array_equal(together[..., k : k + 1], alone, err_msg=f"channel {k}")


@pytest.mark.parametrize("fill_mode", FILL_MODES)
def test_warp_follows_scipy_affine_transform(fill_mode, photo_batch_u8):
    # The OpenCV path reproduces scipy.ndimage.affine_transform (Keras's warp), fill modes included,
    # up to OpenCV's bilinear weights, which are quantised to 1/32 of a pixel.
    image = photo_batch_u8[0].astype(np.float64)
    m = _matrix(*image.shape[:2], **MOVE)
    ours = geometry.warp(image, m, fill_mode, 40.0, order=1)
    rc = m[::-1][:, [1, 0, 2]]
    for k in range(3):
        ref = scipy.ndimage.affine_transform(
            image[..., k], rc[:, :2], rc[:, 2], order=1, mode=fill_mode, cval=40.0
        )
        diff = np.abs(ours[..., k] - ref)
        assert diff.mean() < 0.25 and np.percentile(diff, 99) < 1.5, f"channel {k}"
        # Pixels whose source lies outside the image (where fill modes differ) match too.
        assert np.abs(ours[..., k] - ref)[:3].max() < 3.0


def test_identity_matrix_returns_the_image(photo_batch_u8):
    image = photo_batch_u8[1]
    for fill_mode in FILL_MODES:
        out = geometry.warp(image, _matrix(*image.shape[:2]), fill_mode)
        np.testing.assert_array_equal(out, image)


def test_flips_reverse_the_axes(photo_batch_u8):
    image = photo_batch_u8[3]
    h, w = image.shape[:2]
    np.testing.assert_array_equal(geometry.warp(image, _matrix(h, w, flip_horizontal=True)), image[:, ::-1])
    np.testing.assert_array_equal(geometry.warp(image, _matrix(h, w, flip_vertical=True)), image[::-1])


def test_matrices_are_per_sample():
    # A batch of parameter vectors gives each sample the matrix it gets alone.
    rng = np.random.default_rng(0)
    n = 5
    params = dict(
        theta=rng.uniform(-40, 40, n), tx=rng.uniform(-9, 9, n), ty=rng.uniform(-9, 9, n),
        shear=rng.uniform(-20, 20, n), zx=rng.uniform(0.7, 1.3, n), zy=rng.uniform(0.7, 1.3, n),
        flip_horizontal=rng.random(n) < 0.5, flip_vertical=rng.random(n) < 0.5,
    )  # fmt: skip
    for keras_axes in (True, False):
        batch = geometry.keras_matrices(*params.values(), height=30, width=44, keras_shift_axes=keras_axes)
        assert batch.shape == (n, 2, 3) and batch.flags.c_contiguous
        for i in range(n):
            alone = geometry.keras_matrices(
                *(v[i : i + 1] for v in params.values()), height=30, width=44, keras_shift_axes=keras_axes
            )
            np.testing.assert_allclose(batch[i], alone[0], rtol=0, atol=1e-12)


# ---- the batch kernel, and the exact shortcuts behind wrap and constant ----------------------------
def _random_matrices(rng: np.random.Generator, n: int, h: int, w: int) -> np.ndarray:
    """Random maps, with the degenerate ones mixed in: identity, quarter turns, flips, whole shifts."""
    p = dict(
        theta=rng.uniform(-180, 180, n), tx=rng.uniform(-30, 30, n), ty=rng.uniform(-30, 30, n),
        shear=rng.uniform(-45, 45, n), zx=rng.uniform(0.3, 2, n), zy=rng.uniform(0.3, 2, n),
        flip_horizontal=rng.random(n) < 0.5, flip_vertical=rng.random(n) < 0.5,
    )  # fmt: skip
    plain = rng.random(n) < 0.4
    p["theta"][plain] = rng.choice([0.0, 90.0, -90.0, 180.0], plain.sum())
    for k in ("shear",):
        p[k][plain] = 0.0
    for k in ("zx", "zy"):
        p[k][plain] = 1.0
    for k in ("tx", "ty"):
        p[k][plain] = np.round(p[k][plain])
    p["theta"][0] = p["tx"][0] = p["ty"][0] = p["shear"][0] = 0.0
    p["zx"][0] = p["zy"][0] = 1.0
    p["flip_horizontal"][0] = p["flip_vertical"][0] = False
    return geometry.keras_matrices(*p.values(), height=h, width=w)


@pytest.mark.parametrize("dtype", [np.uint8, np.float32, np.float64])
@pytest.mark.parametrize("order", [0, 1, 3])
@pytest.mark.parametrize("fill_mode", FILL_MODES)
def test_warp_batch_equals_warp_image_by_image(fill_mode, order, dtype, photo_batch_u8):
    rng = np.random.default_rng(7)
    for channels in (1, 3, 5):
        x = np.stack([with_channels(p, channels) for p in photo_batch_u8]).astype(dtype)
        mats = _random_matrices(rng, len(x), *x.shape[1:3])
        out = np.full_like(x, 3)
        got = geometry.warp_batch(x, mats, fill_mode, 40.0, order, out=out, staging=np.empty_like(x[0]))
        assert got is out
        for i in range(len(x)):
            want = geometry.warp(x[i], mats[i], fill_mode, 40.0, order)
            assert want.tobytes() == got[i].tobytes(), f"{channels} channels, image {i}"
        # Rows read in place, repeated and out of order, warp as the gathered batch does.
        rows = np.array([3, 0, 3, 5, 1])
        picked = geometry.warp_batch(x, mats[: len(rows)], fill_mode, 40.0, order, rows=rows)
        gathered = geometry.warp_batch(x[rows], mats[: len(rows)], fill_mode, 40.0, order)
        assert picked.shape == gathered.shape and picked.tobytes() == gathered.tobytes()


@pytest.mark.parametrize("shape", [(1, 1), (1, 7), (9, 1), (2, 2), (37, 53), (96, 128)])
def test_inside_spans_are_exactly_scipys_inside(shape):
    # The spans come from an estimate checked around it; they must hold exactly the pixels whose
    # source coordinates, evaluated in full, lie within the image.
    h, w = shape
    rng = np.random.default_rng(h * 1000 + w)
    mats = _random_matrices(rng, 200, h, w)
    sx, sy = geometry.source_coords(mats, h, w)
    inside = (sx >= 0) & (sx <= w - 1) & (sy >= 0) & (sy <= h - 1)
    start, stop = geometry.inside_spans(mats, h, w)
    cols = np.arange(w)
    spans = (cols >= start[..., None]) & (cols < stop[..., None])
    np.testing.assert_array_equal(spans, inside)
    np.testing.assert_array_equal(geometry.outside_masks(mats, h, w), ~inside)


def test_wrap_maps_equal_scipys_wrap_bit_for_bit():
    rng = np.random.default_rng(3)
    for h, w in ((1, 5), (5, 1), (2, 3), (40, 60)):
        mats = _random_matrices(rng, 50, h, w)
        mats[1, :, 2] += np.array([3 * (w - 1), -2 * (h - 1)])  # exact multiples of the period
        sx, sy = geometry.source_coords(mats, h, w)
        mx, my = geometry.wrap_maps(mats, h, w)
        np.testing.assert_array_equal(mx, geometry._wrap(sx, w).astype(np.float32))
        np.testing.assert_array_equal(my, geometry._wrap(sy, h).astype(np.float32))
    coords = np.array([-1e7, -2.0, -1.0, -0.5, -0.0, 0.0, 0.5, 4.0, 4.5, 8.0, 1e7, 12345.678])
    out = np.empty(coords.shape, np.float32)
    geometry._wrap_into(coords, 5, out)
    np.testing.assert_array_equal(out, geometry._wrap(coords, 5).astype(np.float32))


def test_constant_gives_cval_exactly_outside_and_the_warp_inside(photo_batch_u8):
    x = photo_batch_u8.astype(np.float32)
    h, w = x.shape[1:3]
    mats = _random_matrices(np.random.default_rng(11), len(x), h, w)
    got = geometry.warp_batch(x, mats, "constant", 40.5, 1)
    near = geometry.warp_batch(x, mats, "nearest", 0.0, 1)
    outside = geometry.outside_masks(mats, h, w).astype(bool)
    assert np.all(got[outside] == 40.5)
    np.testing.assert_array_equal(got[~outside], near[~outside])
