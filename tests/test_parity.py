"""Pixel parity with Keras's legacy ImageDataGenerator.apply_transform, option by option.

Parameters are drawn by our engine and replayed through Keras, so the comparison isolates the
kernels (OpenCV warps with scipy fill modes, the uint8 pixel path) from the draws. Tolerances are
on the 0-255 scale: OpenCV's bilinear weights are quantised to 1/32 pixel and the uint8 path rounds
where Keras keeps floats, so outputs agree closely but not bit for bit.
"""

import numpy as np
import pytest
from keras.src.legacy.preprocessing.image import ImageDataGenerator

from pipeline import AugmentConfig, Augmenter

MAX_MEAN_ABS_DIFF = 0.5
MAX_P99_ABS_DIFF = 4.0
KINDS = ("rgb", "rgb_square", "gray", "gray_square")
SAMPLES = 4

SINGLE_OPTIONS = {
    "rotation": dict(rotation_range=40),
    "width_shift_fraction": dict(width_shift_range=0.2),
    "height_shift_fraction": dict(height_shift_range=0.2),
    "width_shift_pixels": dict(width_shift_range=12.5),
    "height_shift_pixels": dict(height_shift_range=12.5),
    "width_shift_int": dict(width_shift_range=15),
    "height_shift_int": dict(height_shift_range=15),
    "width_shift_list": dict(width_shift_range=[4, 9, 17]),
    "height_shift_list_fractions": dict(height_shift_range=[0.05, 0.1, 0.2]),
    "shear": dict(shear_range=25),
    "zoom_scalar": dict(zoom_range=0.3),
    "zoom_pair": dict(zoom_range=(0.6, 1.3)),
    "horizontal_flip": dict(horizontal_flip=True),
    "vertical_flip": dict(vertical_flip=True),
    "channel_shift": dict(channel_shift_range=60.0),
    "brightness": dict(brightness_range=(0.4, 1.6)),
}
ALL_OPTIONS = dict(
    rotation_range=25, width_shift_range=0.1, height_shift_range=0.1, shear_range=10, zoom_range=0.2,
    horizontal_flip=True, vertical_flip=True, channel_shift_range=30.0, brightness_range=(0.6, 1.4),
)  # fmt: skip
FILL_MODES = {"nearest": 0.0, "reflect": 0.0, "wrap": 0.0, "constant": 90.0}  # fill mode -> cval
IDENTITY = dict(theta=0.0, tx=0.0, ty=0.0, shear=0.0, zx=1.0, zy=1.0, flip_horizontal=False,
                flip_vertical=False, channel_shift_intensity=None, brightness=None)  # fmt: skip


def _differences(options: dict, images: dict[str, np.ndarray], seed: int) -> list[str]:
    """Compare our apply_transform with Keras's on every image kind; return the failures."""
    ours = Augmenter(AugmentConfig(**options))
    keras = ImageDataGenerator(**options)
    failures = []
    for kind in KINDS:
        x = images[kind]
        params = ours.draw(x.shape, range(SAMPLES), seed=seed)
        # The case must exercise the option: at least one draw differs from the identity.
        assert any(p != IDENTITY for p in params), f"no sample of {options} transforms anything"
        for i, p in enumerate(params):
            got = ours.apply_transform(x, p)
            assert got.dtype == x.dtype and got.shape == x.shape
            want = keras.apply_transform(x.copy(), p)
            diff = np.abs(got.astype(np.float64) - np.asarray(want, dtype=np.float64))
            mean, p99 = diff.mean(), np.percentile(diff, 99)
            if mean > MAX_MEAN_ABS_DIFF or p99 > MAX_P99_ABS_DIFF:
                failures.append(f"{kind} sample {i} {p}: mean {mean:.3f}, p99 {p99:.2f}")
    return failures


@pytest.mark.parametrize("dtype", [np.float32, np.uint8], ids=["float32", "uint8"])
@pytest.mark.parametrize("order", [0, 1])
@pytest.mark.parametrize("fill_mode", FILL_MODES)
@pytest.mark.parametrize("option", SINGLE_OPTIONS)
def test_single_option_matches_keras(option, fill_mode, order, dtype, photos_u8):
    options = dict(SINGLE_OPTIONS[option], fill_mode=fill_mode, cval=FILL_MODES[fill_mode])
    options["interpolation_order"] = order
    images = {k: v.astype(dtype) for k, v in photos_u8.items()}
    failures = _differences(options, images, seed=2024)
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("dtype", [np.float32, np.uint8], ids=["float32", "uint8"])
@pytest.mark.parametrize("order", [0, 1])
@pytest.mark.parametrize("fill_mode", FILL_MODES)
def test_all_options_together_match_keras(fill_mode, order, dtype, photos_u8):
    options = dict(ALL_OPTIONS, fill_mode=fill_mode, cval=FILL_MODES[fill_mode], interpolation_order=order)
    images = {k: v.astype(dtype) for k, v in photos_u8.items()}
    failures = _differences(options, images, seed=7)
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize(
    "options",
    [
        pytest.param(dict(rotation_range=40), id="rotation-float32"),
        pytest.param(dict(rotation_range=40, fill_mode="reflect"), id="rotation-reflect-float32"),
        pytest.param(ALL_OPTIONS, id="all-float32"),
    ],
)
def test_cubic_order_falls_back_to_scipy_like_keras(options, photos_f32):
    failures = _differences(dict(options, interpolation_order=3), photos_f32, seed=11)
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("options", [dict(rotation_range=40), ALL_OPTIONS], ids=["rotation", "all"])
def test_cubic_order_on_uint8_matches_keras(options, photos_u8):
    failures = _differences(dict(options, interpolation_order=3), photos_u8, seed=11)
    assert not failures, "\n".join(failures)


# ---- keras_shift_axes=False: the documented meaning of the shift ranges -------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.uint8], ids=["float32", "uint8"])
def test_height_shift_moves_rows_without_keras_axes(dtype, photos_u8):
    x = photos_u8["rgb"].astype(dtype)
    tx = 9
    p = dict(IDENTITY, tx=float(tx))
    fixed = Augmenter(AugmentConfig(height_shift_range=0.2, keras_shift_axes=False)).apply_transform(x, p)
    # Output row r shows input row r + tx: the content moved up by tx rows.
    interior = slice(0, x.shape[0] - tx)
    np.testing.assert_array_equal(fixed[interior], np.roll(x, -tx, axis=0)[interior])
    assert not np.array_equal(fixed[:, : x.shape[1] - tx], np.roll(x, -tx, axis=1)[:, : x.shape[1] - tx])

    # Keras's own convention (the default) moves the same tx along the columns instead.
    keras_like = Augmenter(AugmentConfig(height_shift_range=0.2)).apply_transform(x, p)
    interior_cols = slice(0, x.shape[1] - tx)
    np.testing.assert_array_equal(keras_like[:, interior_cols], np.roll(x, -tx, axis=1)[:, interior_cols])
    want = ImageDataGenerator(height_shift_range=0.2).apply_transform(x.copy(), p)
    np.testing.assert_allclose(keras_like.astype(np.float64), want, atol=1e-3)


def test_drawn_shifts_follow_their_own_axis_without_keras_axes(photos_f32):
    x = photos_f32["rgb"]  # 120x180: a fraction of the height differs from one of the width
    h, w = x.shape[:2]
    for options, axis, key, side in (
        (dict(height_shift_range=0.2), 0, "tx", h),
        (dict(width_shift_range=0.2), 1, "ty", w),
    ):
        aug = Augmenter(AugmentConfig(**options, keras_shift_axes=False))
        params = aug.draw(x.shape, range(40), seed=5)
        shifts = np.array([p[key] for p in params])
        assert np.abs(shifts).max() <= 0.2 * side and np.abs(shifts).max() > 0.1 * side
        for p in params[0], params[1], params[2]:
            s = int(round(p[key]))
            p = dict(p, **{key: float(s)})  # whole pixels, so the shift is an exact roll
            got = aug.apply_transform(x, p)
            keep = [slice(None)] * 3
            keep[axis] = slice(0, side - abs(s)) if s > 0 else slice(abs(s), side)
            keep_t = tuple(keep)
            np.testing.assert_array_equal(got[keep_t], np.roll(x, -s, axis=axis)[keep_t])


@pytest.mark.parametrize("kind", ["rgb", "gray"])
def test_rotation_centre_is_the_true_centre_without_keras_axes(kind, photos_f32):
    x = photos_f32[kind]  # non-square: Keras's centre is off by (h - w) / 2 in each axis
    p = dict(IDENTITY, theta=180.0)
    fixed = Augmenter(AugmentConfig(rotation_range=180, keras_shift_axes=False)).apply_transform(x, p)
    np.testing.assert_allclose(fixed, x[::-1, ::-1], atol=1e-2)
    keras_like = Augmenter(AugmentConfig(rotation_range=180)).apply_transform(x, p)
    assert np.abs(keras_like - x[::-1, ::-1]).mean() > 10
    want = ImageDataGenerator(rotation_range=180).apply_transform(x.copy(), p)
    assert np.abs(keras_like - want).mean() <= MAX_MEAN_ABS_DIFF
