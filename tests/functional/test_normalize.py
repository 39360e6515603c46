"""fit and standardize against Keras's ImageDataGenerator, the streaming fit, and the ZCA guards."""

import re
import tracemalloc

import numpy as np
import pytest
from keras.src.legacy.preprocessing.image import ImageDataGenerator
from kernels import Kernel, check_kernel, with_channels

from pipeline import AugmentConfig, Augmenter, ConfigError
from pipeline.functional import normalize

RTOL = 1e-5


@pytest.fixture(scope="module")
def images(photo_batch_u8) -> np.ndarray:
    """24 float32 crops (48x64x3, 0-255) of six different photographs."""
    rng = np.random.default_rng(0)
    crops = []
    for k in range(24):
        im = photo_batch_u8[k % len(photo_batch_u8)]
        r, c = rng.integers(0, im.shape[0] - 48), rng.integers(0, im.shape[1] - 64)
        crops.append(im[r : r + 48, c : c + 64])
    return np.stack(crops).astype(np.float32)


@pytest.fixture(scope="module")
def patches() -> np.ndarray:
    """3000 random 8x8x3 float32 crops of full-size photographs: more samples than features (192)."""
    from conftest import _sources

    photos = [_sources()[n] for n in ("china", "flower", "astronaut", "coffee", "chelsea", "rocket")]
    rng = np.random.default_rng(1)
    out = np.empty((3000, 8, 8, 3), np.float32)
    for k in range(len(out)):
        im = photos[k % len(photos)]
        r, c = rng.integers(0, im.shape[0] - 8), rng.integers(0, im.shape[1] - 8)
        out[k] = im[r : r + 8, c : c + 8]
    return out


def keras_fitted(options: dict, x: np.ndarray) -> ImageDataGenerator:
    gen = ImageDataGenerator(**options)
    if gen.featurewise_center or gen.featurewise_std_normalization or gen.zca_whitening:
        gen.fit(x)
    return gen


def keras_standardize(gen: ImageDataGenerator, x: np.ndarray) -> np.ndarray:
    """Keras's iterators standardize one image at a time (samplewise statistics are per image)."""
    return np.stack([gen.standardize(im.copy()) for im in x])


def assert_close(got: np.ndarray, want: np.ndarray, rtol: float = RTOL) -> None:
    want = np.asarray(want, dtype=np.float64)
    atol = rtol * max(1.0, float(np.abs(want).max()))
    np.testing.assert_allclose(np.asarray(got, dtype=np.float64), want, rtol=rtol, atol=atol)


CASES = {
    "featurewise_center": dict(featurewise_center=True),
    "featurewise_std": dict(featurewise_center=True, featurewise_std_normalization=True),
    "samplewise_center": dict(samplewise_center=True),
    "samplewise_std": dict(samplewise_center=True, samplewise_std_normalization=True),
    "rescale": dict(rescale=1 / 255),
    "rescale_featurewise": dict(rescale=1 / 255, featurewise_center=True, featurewise_std_normalization=True),
    "samplewise_and_featurewise": dict(
        rescale=1 / 127.5, samplewise_center=True, featurewise_center=True, featurewise_std_normalization=True
    ),
    "everything_samplewise": dict(
        rescale=0.5, samplewise_center=True, samplewise_std_normalization=True, featurewise_center=True
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_fit_and_standardize_match_keras(case, images):
    options = CASES[case]
    gen = keras_fitted(options, images)
    aug = Augmenter(AugmentConfig(**options))
    if aug.config.needs_fit:
        stats = aug.fit(images)
        if gen.featurewise_center:
            assert stats.mean.shape == (1, 1, 3)
            assert_close(stats.mean, gen.mean)
        if gen.featurewise_std_normalization:
            assert_close(stats.std, gen.std)
    got = aug.standardize_batch(images.copy())
    assert got.dtype == np.float32
    assert_close(got, keras_standardize(gen, images))


def test_standardized_values_have_the_promised_statistics(images):
    """Independently of Keras: featurewise std normalisation of the fitted data gives per-channel
    mean 0 and std 1; samplewise gives each image mean 0 and std 1."""
    aug = Augmenter(AugmentConfig(featurewise_center=True, featurewise_std_normalization=True))
    aug.fit(images)
    out = aug.standardize_batch(images.copy()).astype(np.float64)
    np.testing.assert_allclose(out.mean(axis=(0, 1, 2)), 0, atol=1e-4)
    np.testing.assert_allclose(out.std(axis=(0, 1, 2)), 1, atol=1e-4)
    out = Augmenter(AugmentConfig(samplewise_std_normalization=True)).standardize_batch(images.copy())
    np.testing.assert_allclose(out.mean(axis=(1, 2, 3)), 0, atol=1e-4)
    np.testing.assert_allclose(out.std(axis=(1, 2, 3)), 1, atol=1e-4)


def test_zca_matches_keras_on_natural_patches(patches):
    options = dict(featurewise_center=True, zca_whitening=True)
    gen = keras_fitted(options, patches)
    aug = Augmenter(AugmentConfig(**options))
    stats = aug.fit(patches)
    assert stats.zca_whitening_matrix.shape == (192, 192)
    assert_close(stats.mean, gen.mean)
    assert_close(stats.zca_whitening_matrix, gen.zca_whitening_matrix)
    got = aug.standardize_batch(patches.copy())
    assert_close(got, keras_standardize(gen, patches))
    # Whitening: the output's covariance is the identity (epsilon is negligible at these scales).
    flat = got.reshape(len(got), -1).astype(np.float64)
    cov = np.cov(flat, rowvar=False, bias=True)
    np.testing.assert_allclose(cov, np.eye(192), atol=1e-2)


def _batches(x: np.ndarray, sizes: list[int]):
    start = 0
    for size in sizes:
        yield x[start : start + size]
        start += size
    assert start == len(x)


@pytest.mark.parametrize(
    ("options", "rtol"),
    [
        (dict(featurewise_center=True), RTOL),
        (dict(featurewise_center=True, featurewise_std_normalization=True), RTOL),
        # Rescaled to [0, 1], Keras's float32 accumulation over 73,728 values per channel is only
        # good to about 1e-4 relative, and the in-memory fit reproduces it exactly (checked below).
        (dict(rescale=1 / 255, featurewise_center=True, featurewise_std_normalization=True), 3e-4),
    ],
    ids=["center", "std", "rescale_std"],
)
def test_streaming_fit_equals_in_memory_fit(options, rtol, images):
    in_memory = Augmenter(AugmentConfig(**options)).fit(images)
    streamed = Augmenter(AugmentConfig(**options)).fit(_batches(images, [5, 1, 10, 8]))
    np.testing.assert_allclose(streamed.mean, in_memory.mean, rtol=rtol)
    if in_memory.std is not None:
        np.testing.assert_allclose(streamed.std, in_memory.std, rtol=rtol)
    # The streamed statistics are float64 sums: exact to float32 precision.
    truth = images * np.float32(options.get("rescale") or 1.0)
    truth = truth.astype(np.float64)
    np.testing.assert_allclose(streamed.mean.ravel(), truth.mean(axis=(0, 1, 2)), rtol=1e-6)
    if in_memory.std is not None:
        np.testing.assert_allclose(streamed.std.ravel(), truth.std(axis=(0, 1, 2)), rtol=1e-6)
    # And the in-memory fit is Keras's, float32 rounding included.
    gen = keras_fitted(options, images)
    np.testing.assert_allclose(in_memory.mean, gen.mean, rtol=1e-6)


def test_streaming_zca_equals_in_memory_zca(patches):
    options = dict(featurewise_center=True, zca_whitening=True)
    in_memory = Augmenter(AugmentConfig(**options))
    in_memory.fit(patches)
    streamed = Augmenter(AugmentConfig(**options))
    streamed.fit(_batches(patches, [1000, 999, 1, 1000]))
    # Keras's in-memory mean accumulates 192,000 float32 values per channel, which is good to
    # about 3e-5 relative; the streamed sums are float64. Check each against the float64 truth.
    truth = patches.astype(np.float64).mean(axis=(0, 1, 2))
    np.testing.assert_allclose(streamed.stats.mean.ravel(), truth, rtol=1e-6)
    np.testing.assert_allclose(in_memory.stats.mean.ravel(), truth, rtol=1e-4)
    w_mem, w_str = in_memory.stats.zca_whitening_matrix, streamed.stats.zca_whitening_matrix
    assert_close(w_str, w_mem, rtol=1e-5)
    assert_close(streamed.standardize_batch(patches.copy()), in_memory.standardize_batch(patches.copy()))


def test_augmented_fit_runs_and_differs_from_plain_fit(images):
    cfg = AugmentConfig(
        featurewise_center=True, featurewise_std_normalization=True, rotation_range=40, zoom_range=0.3,
        fill_mode="constant", cval=0.0, brightness_range=(0.5, 1.0),
    )  # fmt: skip
    plain = Augmenter(cfg).fit(images)
    augmented = Augmenter(cfg).fit(images, augment=True, rounds=2, seed=3)
    again = Augmenter(cfg).fit(images, augment=True, rounds=2, seed=3)
    other_seed = Augmenter(cfg).fit(images, augment=True, rounds=2, seed=4)
    one_round = Augmenter(cfg).fit(images, augment=True, rounds=1, seed=3)
    for stats in augmented, other_seed, one_round:
        assert np.isfinite(stats.mean).all() and np.isfinite(stats.std).all()
    # Black fill and darkening lower the mean well below the photos' own.
    assert np.all(augmented.mean < plain.mean - 5)
    np.testing.assert_array_equal(augmented.mean, again.mean)
    np.testing.assert_array_equal(augmented.std, again.std)
    assert not np.array_equal(augmented.mean, other_seed.mean)
    assert not np.array_equal(augmented.mean, one_round.mean)


@pytest.mark.parametrize("streamed", [False, True], ids=["array", "batches"])
def test_zca_on_large_images_refuses_without_allocating(streamed):
    shape = (224, 224, 3)
    features = 224 * 224 * 3
    x = np.zeros((2, *shape), np.float32)
    data = iter([x[:1], x[1:]]) if streamed else x
    aug = Augmenter(AugmentConfig(zca_whitening=True))
    tracemalloc.start()
    try:
        # Our guard's message, not numpy's own "Unable to allocate ... GiB" from trying.
        with pytest.raises(ConfigError, match=r"zca_whitening on 224x224x3 images .* GiB") as info:
            aug.fit(data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 * 1024**2, f"allocated {peak / 1024**2:.0f} MiB before refusing"
    # The dense float64 covariance alone is features^2 * 8 bytes; the message must not claim less.
    needed = [float(v.replace(",", "")) for v in re.findall(r"([\d,.]+) GiB", str(info.value))]
    assert needed and needed[0] >= features**2 * 8 / 1024**3
    assert aug.stats is None


def test_zca_memory_limit_is_configurable(patches):
    """The guard is a limit, not a fixed size: 8x8x3 passes by default, and a tiny limit refuses it."""
    aug = Augmenter(AugmentConfig(zca_whitening=True), zca_memory_limit=1024)
    with pytest.raises(ConfigError, match="8x8x3"):
        aug.fit(patches[:10])


@pytest.mark.parametrize(
    "options",
    [
        dict(featurewise_center=True),
        dict(featurewise_std_normalization=True),
        dict(zca_whitening=True),
    ],
    ids=["center", "std", "zca"],
)
def test_standardize_before_fit_raises(options, images):
    aug = Augmenter(AugmentConfig(**options))
    with pytest.raises(RuntimeError, match=r"never fitted: call fit\(data\) first"):
        aug.standardize_batch(images.copy())
    with pytest.raises(RuntimeError, match=r"call fit\(data\) first"):
        aug.augment_batch(images[:2])


def test_fit_refuses_one_shot_iterator_for_several_augmented_rounds(photos_u8):
    aug = Augmenter(AugmentConfig(featurewise_center=True, rotation_range=10))
    batches = (photos_u8["rgb"][None] for _ in range(2))
    with pytest.raises(ValueError, match=r"rounds=2\) reads the data 2 times, but got a one-shot iterator"):
        aug.fit(batches, augment=True, rounds=2)
    stats = aug.fit([photos_u8["rgb"][None]] * 2, augment=True, rounds=2)
    assert stats.mean is not None


def test_standardize_converts_integer_input_before_rescale(photos_u8):
    from pipeline.functional.normalize import standardize

    x = photos_u8["rgb"][None].copy()
    out = standardize(
        x, None, rescale=1 / 255, samplewise_center=False, samplewise_std_normalization=False,
        featurewise_center=False, featurewise_std_normalization=False, zca_whitening=False,
    )  # fmt: skip
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, photos_u8["rgb"][None] / 255, rtol=1e-6)
    assert np.array_equal(x, photos_u8["rgb"][None])  # the uint8 input is left alone


STANDARDIZE_OPTIONS = {
    "rescale": dict(rescale=1 / 255),
    "samplewise": dict(samplewise_center=True, samplewise_std_normalization=True),
    "featurewise": dict(featurewise_center=True, featurewise_std_normalization=True),
    "zca": dict(zca_whitening=True),
    "all": dict(
        rescale=1 / 255, samplewise_center=True, featurewise_center=True, featurewise_std_normalization=True
    ),
}


@pytest.mark.parametrize("name", STANDARDIZE_OPTIONS)
def test_standardize_keeps_the_kernel_contract(name, photo_batch_u8):
    # The kernel contract on small crops (ZCA's matrix grows with the fourth power of the side):
    # no mutation without out=, floats keep their dtype (integers become float32), each image of a
    # batch is standardized as it is alone, and out= (Keras's in-place normalisation) gives the same.
    options = STANDARDIZE_OPTIONS[name]
    crops = np.ascontiguousarray(photo_batch_u8[:, 40:52, 50:62])
    flags = {k: bool(options.get(k)) for k in (
        "samplewise_center", "samplewise_std_normalization", "featurewise_center",
        "featurewise_std_normalization", "zca_whitening",
    )}  # fmt: skip
    for channels in (1, 3, 4, 5):
        images = np.stack([with_channels(c, channels) for c in crops]).astype(np.float64)
        featurewise = (flags["featurewise_center"], flags["featurewise_std_normalization"])
        stats = normalize.fit_array(images, *featurewise, flags["zca_whitening"], 1e-6)
        kernel = Kernel(
            f"standardize {name}",
            lambda x, out, stats=stats: normalize.standardize(
                x, stats, rescale=options.get("rescale"), out=out, **flags
            ),
            batched=True,
            takes_out=True,
            keeps_dtype=False,
            channels=(channels,),
            batch_rtol=1e-6 if flags["zca_whitening"] else 0.0,
        )
        check_kernel(kernel, crops)
        assert (
            normalize.standardize(images.astype(np.float32), stats, rescale=None, **flags).dtype == np.float32
        )
        assert normalize.standardize(images, stats, rescale=None, **flags).dtype == np.float64
        assert (
            normalize.standardize(images.astype(np.uint8), stats, rescale=None, **flags).dtype == np.float32
        )
