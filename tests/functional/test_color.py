"""pipeline.functional.color: Keras's channel shift and brightness, and their lookup tables."""

import numpy as np
import pytest
from keras.src.legacy.preprocessing import image as keras_image
from kernels import CHANNELS, Kernel, check_kernel, with_channels

from pipeline.functional import color


@pytest.mark.parametrize("intensity", [-60.0, 25.5])
def test_channel_shift_keeps_the_kernel_contract(intensity, photo_batch_u8):
    check_kernel(
        Kernel(f"channel_shift {intensity}", lambda x, _: color.channel_shift(x, intensity)), photo_batch_u8
    )


@pytest.mark.parametrize("factor", [0.4, 1.3])
def test_brightness_keeps_the_kernel_contract(factor, photo_batch_u8):
    check_kernel(Kernel(f"brightness {factor}", lambda x, _: color.brightness(x, factor)), photo_batch_u8)


@pytest.mark.parametrize("scale", [1.0, 1 / 255, -2.0], ids=["0-255", "0-1", "negative"])
@pytest.mark.parametrize("factor", [0.45, 1.6])
def test_brightness_matches_keras(factor, scale, photo_batch_u8):
    # Keras goes through PIL (uint8, truncating); images off the 0-255 scale are rescaled first.
    image = photo_batch_u8[4].astype(np.float32) * np.float32(scale)
    want = keras_image.apply_brightness_shift(image, factor, scale=False)
    np.testing.assert_allclose(color.brightness(image, factor), want, rtol=1e-5, atol=1e-4)


def test_channel_shift_matches_keras(photo_batch_u8):
    image = photo_batch_u8[5].astype(np.float32)
    want = keras_image.apply_channel_shift(image, 37.0, channel_axis=2)
    np.testing.assert_allclose(color.channel_shift(image, 37.0), want, rtol=0, atol=1e-4)


def _per_channel(table: np.ndarray, channels: int) -> np.ndarray:
    """A (256,) table shared by every channel or a (256, C) one, as (256, C)."""
    return np.broadcast_to(table[:, None], (256, channels)) if table.ndim == 1 else table


@pytest.mark.parametrize("dtype", [np.float32, np.uint8])
def test_lookup_tables_are_per_sample(dtype):
    rng = np.random.default_rng(1)
    n = 6
    intensity = np.where(rng.random(n) < 0.3, np.nan, rng.uniform(-50, 50, n))
    factor = np.where(rng.random(n) < 0.3, np.nan, rng.uniform(0.3, 1.7, n))
    low, high = rng.uniform(0, 40, n), rng.uniform(200, 255, n)
    for channels in CHANNELS:
        batch = color.pixel_luts(intensity, factor, low, high, channels, np.dtype(dtype))
        assert batch.dtype == dtype and batch.shape[:2] == (n, 256)
        for i in range(n):
            alone = color.pixel_luts(
                intensity[i : i + 1],
                factor[i : i + 1],
                low[i : i + 1],
                high[i : i + 1],
                channels,
                np.dtype(dtype),
            )
            np.testing.assert_array_equal(_per_channel(batch[i], channels), _per_channel(alone[0], channels))


@pytest.mark.parametrize("channels", [1, 3, 4])
@pytest.mark.parametrize(("intensity", "factor"), [(30.0, np.nan), (np.nan, 0.7), (-45.0, 1.4)])
def test_float_lookup_table_equals_the_float_kernels(intensity, factor, channels, photo_batch_u8):
    # A uint8 image through its float table is channel_shift then brightness on the float image.
    image = with_channels(photo_batch_u8[0], channels)
    x = image.astype(np.float32)
    want = x
    if not np.isnan(intensity):
        want = color.channel_shift(want, intensity)
    if not np.isnan(factor):
        want = color.brightness(want, factor)
    lut = color.pixel_luts(
        np.array([intensity]),
        np.array([factor]),
        np.array([x.min()]),
        np.array([x.max()]),
        channels,
        np.dtype(np.float32),
    )[0]
    got = np.stack([_per_channel(lut, channels)[image[..., k], k] for k in range(channels)], axis=-1)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-4)


# ---- the engine's shortcuts equal Keras's path bit for bit -------------------------------------------
def _keras_path(image: np.ndarray, intensity: float, factor: float) -> np.ndarray:
    out = image
    if not np.isnan(intensity):
        out = color.channel_shift(out, intensity)
    if not np.isnan(factor):
        out = color.brightness(out, factor)
    return out


def _draws(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    intensity = np.where(rng.random(n) < 0.3, np.nan, rng.uniform(-80, 80, n))
    factor = np.where(rng.random(n) < 0.3, np.nan, rng.uniform(0, 1.8, n))
    factor[0] = 0.0
    return intensity, factor


@pytest.mark.parametrize("dtype", [np.float32, np.uint8])
@pytest.mark.parametrize("channels", [1, 3, 4])
def test_clipped_tables_equal_the_tables_of_each_range(channels, dtype):
    rng = np.random.default_rng(channels)
    n = 40
    intensity, factor = _draws(rng, n)
    low = rng.integers(0, 120, n)
    high = np.maximum(low, rng.integers(100, 256, n))
    both = color.pixel_luts(
        np.concatenate([intensity, np.full(n, np.nan)]), np.concatenate([factor, factor]),
        np.zeros(2 * n), np.full(2 * n, 255.0), channels, np.dtype(dtype),
    )  # fmt: skip
    got = color.clipped_luts(both[:n], both[n:], low, high)
    want = color.pixel_luts(intensity, factor, low, high, channels, np.dtype(dtype))
    for i in range(n):  # only the levels an image of that range has are ever looked up
        np.testing.assert_array_equal(got[i][low[i] : high[i] + 1], want[i][low[i] : high[i] + 1])


@pytest.mark.parametrize("channels", [1, 3, 4])
def test_levels_and_brightness_table_equal_keras_path(channels, photo_batch_u8):
    # Float images off the integers, shifted both ways, some pushed against 0 or 255: the batch's
    # levels (truncated, then clipped on integers) and the single-image levels give Keras's bytes.
    rng = np.random.default_rng(channels)
    base = np.stack([with_channels(p, channels) for p in photo_batch_u8]).astype(np.float32)
    images = np.clip(base * np.float32(0.9) + rng.uniform(-3, 20, base.shape).astype(np.float32), 0, 255)
    n = len(images)
    intensity = np.array([np.nan, 30.5, -45.25, 7.0, -0.75, 200.0])[:n]
    factor = rng.uniform(0.2, 1.7, n)
    flat = images.reshape(n, -1)
    low, high = flat.min(axis=1), flat.max(axis=1)
    shift = np.nan_to_num(intensity).astype(np.float32)
    tables = np.stack([color.brightness_lut(f, channels) for f in factor])
    batch = color.truncated_levels(
        images, shift, low, high, np.empty(images.shape, np.uint8), np.empty(images.shape, np.int16)
    )
    for i in range(n):
        want = _keras_path(images[i], intensity[i], factor[i])
        levels = color.brightness_levels(
            images[i], intensity[i], low[i], high[i], np.empty(images[i].shape, np.uint8)
        )
        assert _lookup(tables[i], levels).tobytes() == want.tobytes(), f"single image {i}"
        assert _lookup(tables[i], batch[i]).tobytes() == want.tobytes(), f"batch levels {i}"
    # Below 0 before a shift that lifts every clipped value into 0-255: still Keras's levels.
    below = images - np.float32(10.0)
    lifted = np.full(n, 12.75)
    flat = below.reshape(n, -1)
    batch = color.truncated_levels(
        below, lifted.astype(np.float32), flat.min(axis=1), flat.max(axis=1),
        np.empty(images.shape, np.uint8), np.empty(images.shape, np.int16),
    )  # fmt: skip
    for i in range(n):
        want = _keras_path(below[i], lifted[i], factor[i])
        assert _lookup(tables[i], batch[i]).tobytes() == want.tobytes(), f"lifted levels {i}"


def _lookup(table: np.ndarray, levels: np.ndarray) -> np.ndarray:
    return table[levels] if table.ndim == 1 else table[levels, np.arange(levels.shape[-1])]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_shift_range_and_in_place_shift_equal_channel_shift(dtype, photo_batch_u8):
    image = (photo_batch_u8[2].astype(dtype) - dtype(40)) * dtype(1.3)
    for intensity in (-70.3, -0.5, 0.0, 12.25, 300.0, np.nan):
        want = image if np.isnan(intensity) else color.channel_shift(image, intensity)
        low, high = float(image.min()), float(image.max())
        assert color.shifted_range(low, high, intensity, image.dtype) == (
            float(want.min()),
            float(want.max()),
        )
        if not np.isnan(intensity):
            out = np.empty_like(image)
            color.channel_shift_into(image, intensity, low, high, out)
            assert out.tobytes() == want.tobytes()
