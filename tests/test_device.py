"""The on-device path (TensorFlow) against the CPU engine, on real images, on the CPU.

The same drawn parameters go through ``Augmenter.transform_batch`` and through ``DeviceAugment``, so
the comparison isolates the warp kernels; tolerances are the Keras parity tests' (0-255 scale). The
normalisation that follows the warp on the device is held to ``normalize.standardize`` for each
option, on its own and as the training step applies it.
"""

import cv2
import numpy as np
import pytest
import scipy.ndimage
import tensorflow as tf
from sklearn.datasets import load_digits

from pipeline import AugmentConfig, Augmenter
from pipeline.device import (
    IDENTITY_TRANSFORM,
    DeviceAugment,
    DeviceStep,
    apply_affine,
    device_params,
    inverse_matrices,
    projective_transforms,
    standardize,
)
from pipeline.functional import geometry, normalize

MAX_MEAN_ABS_DIFF = 0.5
MAX_P99_ABS_DIFF = 4.0
FILL_MODES = {"nearest": 0.0, "reflect": 0.0, "wrap": 0.0, "constant": 90.0}  # fill mode -> cval
GEOMETRY = dict(
    rotation_range=40, width_shift_range=0.2, height_shift_range=0.15, shear_range=20,
    zoom_range=(0.7, 1.3), horizontal_flip=True, vertical_flip=True,
)  # fmt: skip


@pytest.fixture(scope="module")
def digits_u8() -> np.ndarray:
    """Eight scikit-learn digits scaled to 0-255 and resized to MNIST's 28x28: (8, 28, 28, 1) uint8."""
    small = load_digits().images[:8].astype(np.float32) * (255.0 / 16.0)
    big = [cv2.resize(d, (28, 28), interpolation=cv2.INTER_LINEAR) for d in small]
    return np.clip(np.rint(np.stack(big)), 0, 255).astype(np.uint8)[..., None]


@pytest.fixture(scope="module")
def batches(photo_batch_u8, gray_batch_u8, digits_u8) -> dict[str, np.ndarray]:
    """Real images, downscaled: non-square RGB and grayscale photos, square digits."""
    shrink = [cv2.resize(im, (64, 48), interpolation=cv2.INTER_AREA) for im in photo_batch_u8[:4]]
    return {
        "rgb": np.stack(shrink),  # (4, 48, 64, 3)
        "gray": gray_batch_u8[:4, ::2, ::2],  # (4, 48, 64, 1)
        "digits": digits_u8,  # (8, 28, 28, 1)
    }


def _worst(got: np.ndarray, want: np.ndarray) -> tuple[float, float]:
    """The largest per-image mean and 99th percentile of the absolute difference."""
    diff = np.abs(np.asarray(got, np.float64) - np.asarray(want, np.float64)).reshape(len(got), -1)
    return float(diff.mean(axis=1).max()), float(np.percentile(diff, 99, axis=1).max())


# ---- parity with the OpenCV engine ----------------------------------------------------------------


@pytest.mark.parametrize("kind", ["rgb", "gray", "digits"])
@pytest.mark.parametrize("order", [0, 1])
@pytest.mark.parametrize("fill_mode", FILL_MODES)
def test_matches_the_opencv_engine(fill_mode, order, kind, batches):
    x = batches[kind]
    cfg = AugmentConfig(
        **GEOMETRY, fill_mode=fill_mode, cval=FILL_MODES[fill_mode], interpolation_order=order
    )
    engine, device = Augmenter(cfg), DeviceAugment(cfg)
    indices = np.arange(len(x)) + 1000
    for images in (x, x.astype(np.float32)):  # uint8 in: the engine warps in uint8, TF in float32
        params = engine.draw(x.shape[1:], indices, epoch=2, seed=17)
        mats = inverse_matrices(params, *x.shape[1:3])
        assert not np.any(np.all(mats == np.array([[1.0, 0, 0], [0, 1.0, 0]]), axis=(1, 2)))
        want = engine.transform_batch(images, params, dtype=np.float32)
        got = device(images, device.params_for(indices, 2, 17, x.shape[1:]))
        assert got.dtype == tf.float32 and tuple(got.shape) == x.shape
        mean, p99 = _worst(got.numpy(), want)
        assert mean <= MAX_MEAN_ABS_DIFF and p99 <= MAX_P99_ABS_DIFF, f"mean {mean:.3f}, p99 {p99:.2f}"


@pytest.mark.parametrize("fill_mode", FILL_MODES)
def test_matches_the_opencv_engine_without_keras_axes(fill_mode, batches):
    x = batches["rgb"]
    cfg = AugmentConfig(**GEOMETRY, fill_mode=fill_mode, cval=FILL_MODES[fill_mode], keras_shift_axes=False)
    engine = Augmenter(cfg)
    want = engine.transform_batch(x, engine.draw(x.shape[1:], range(len(x)), seed=3), dtype=np.float32)
    got = DeviceAugment(cfg)(x, device_params(engine, x.shape[1:], range(len(x)), seed=3))
    mean, p99 = _worst(got.numpy(), want)
    assert mean <= MAX_MEAN_ABS_DIFF and p99 <= MAX_P99_ABS_DIFF, f"mean {mean:.3f}, p99 {p99:.2f}"


@pytest.mark.parametrize("order", [0, 1])
@pytest.mark.parametrize("fill_mode", FILL_MODES)
def test_matches_scipy_to_float_precision(fill_mode, order):
    # scipy is Keras's own kernel; unlike OpenCV, TF's bilinear weights are not quantised.
    rng = np.random.default_rng(8)
    x = rng.uniform(0, 255, (3, 23, 31, 2)).astype(np.float32)
    mats = geometry.keras_matrices(
        rng.uniform(-40, 40, 3), rng.uniform(-9, 9, 3), rng.uniform(-9, 9, 3), rng.uniform(-20, 20, 3),
        rng.uniform(0.7, 1.3, 3), rng.uniform(0.7, 1.3, 3), np.array([True, False, True]),
        np.array([False, True, True]), 23, 31,
    )  # fmt: skip
    cval = FILL_MODES[fill_mode]
    got = apply_affine(x, projective_transforms(mats), fill_mode, cval, order).numpy()
    for i, m in enumerate(mats):
        rc = m[::-1][:, [1, 0, 2]]  # scipy's (row, col) frame
        want = np.stack(
            [
                scipy.ndimage.affine_transform(
                    x[i, ..., k].astype(np.float64),
                    rc[:, :2],
                    rc[:, 2],
                    order=order,
                    mode=fill_mode,
                    cval=cval,
                )
                for k in range(x.shape[-1])
            ],
            axis=-1,
        )
        assert (np.abs(got[i] - want) > 1e-2).mean() <= 1e-3  # order 0 may round an exact tie apart


# ---- conventions ------------------------------------------------------------------------------------


def test_transform_rows_follow_tensorflows_convention():
    m = np.array([[[0.9, 0.2, -3.0], [-0.1, 1.1, 4.5]]])
    np.testing.assert_array_equal(
        projective_transforms(m), np.array([[0.9, 0.2, -3.0, -0.1, 1.1, 4.5, 0, 0]], np.float32)
    )
    with pytest.raises(ValueError, match=r"\(batch, 2, 3\), but got \(2, 3\)"):
        projective_transforms(m[0])


@pytest.mark.parametrize("fill_mode", FILL_MODES)
def test_pixel_centres_sit_on_integer_coordinates(fill_mode, batches):
    x = batches["rgb"][:1].astype(np.float32)
    h, w = x.shape[1:3]
    # Output (x, y) reads input (x + 5, y - 2): a whole-pixel shift is an exact slice.
    shifted = apply_affine(x, projective_transforms(np.array([[[1.0, 0, 5], [0, 1.0, -2]]])), fill_mode, 9.0)
    np.testing.assert_array_equal(shifted.numpy()[0, 2:, : w - 5], x[0, : h - 2, 5:])
    # Half a pixel to the right: the mean of horizontal neighbours.
    half = apply_affine(x, projective_transforms(np.array([[[1.0, 0, 0.5], [0, 1.0, 0]]])), fill_mode, 9.0)
    np.testing.assert_allclose(half.numpy()[0, :, :-1], (x[0, :, :-1] + x[0, :, 1:]) / 2, atol=1e-3)
    # A half turn about the true centre (keras_shift_axes=False) is both flips.
    mats = geometry.keras_matrices(
        *[np.array([v]) for v in (180.0, 0, 0, 0, 1, 1, False, False)], h, w, False
    )
    turned = apply_affine(x, projective_transforms(mats), fill_mode, 9.0)
    np.testing.assert_allclose(turned.numpy()[0], x[0, ::-1, ::-1], atol=1e-3)


def test_wrap_has_scipys_period_and_constant_does_not_blend():
    x = np.arange(5, dtype=np.float32)[None, None, :, None]  # one row: 0 1 2 3 4
    shift = projective_transforms(np.array([[[1.0, 0, 4.5], [0, 1.0, 0]]]))
    # scipy's wrap has period N-1 = 4: sources 4.5 and 8.5 both fold to 0.5. TF's WRAP (period 5)
    # would read 4.5 halfway between samples 4 and 0.
    np.testing.assert_allclose(apply_affine(x, shift, "wrap")[0, 0, :, 0], [0.5, 1.5, 2.5, 3.5, 0.5])
    # Sources 4.5 and -0.5 leave [0, 4]: cval itself, not TF's blend of an edge sample with cval.
    shift = projective_transforms(np.array([[[1.0, 0, 0.5], [0, 1.0, 0]]]))
    np.testing.assert_allclose(apply_affine(x, shift, "constant", 90.0)[0, 0, :, 0], [0.5, 1.5, 2.5, 3.5, 90])
    shift = projective_transforms(np.array([[[1.0, 0, -0.5], [0, 1.0, 0]]]))
    np.testing.assert_allclose(apply_affine(x, shift, "constant", 90.0)[0, 0, :, 0], [90, 0.5, 1.5, 2.5, 3.5])


@pytest.mark.parametrize("order", [0, 1])
@pytest.mark.parametrize("fill_mode", FILL_MODES)
def test_identity_returns_the_input_exactly(fill_mode, order, batches):
    for images in (batches["rgb"], batches["digits"].astype(np.float32)):
        got = apply_affine(images, IDENTITY_TRANSFORM[None], fill_mode, 90.0, order)
        assert got.dtype == tf.float32
        np.testing.assert_array_equal(got.numpy(), images.astype(np.float32))


# ---- parameters ------------------------------------------------------------------------------------


def test_transforms_are_keyed_by_seed_epoch_and_index():
    device = DeviceAugment(AugmentConfig(**GEOMETRY))
    shape = (48, 64, 3)
    a = device.params_for([3, 7, 11], epoch=1, seed=5, image_shape=shape)
    assert a.shape == (3, 8) and a.dtype == np.float32
    np.testing.assert_array_equal(a, device.params_for([3, 7, 11], 1, 5, shape))
    np.testing.assert_array_equal(a[[2, 0]], device.params_for([11, 3], 1, 5, shape))  # batch-free
    assert not np.array_equal(a, device.params_for([3, 7, 11], 2, 5, shape))
    assert not np.array_equal(a, device.params_for([3, 7, 11], 1, 6, shape))
    engine = Augmenter(AugmentConfig(**GEOMETRY))
    want = projective_transforms(inverse_matrices(engine.draw(shape, [3, 7, 11], 1, 5), 48, 64))
    np.testing.assert_array_equal(a, want)


@pytest.mark.parametrize(
    "options, named",
    [
        (dict(channel_shift_range=20.0), "channel_shift_range"),
        (dict(brightness_range=(0.5, 1.5)), "brightness_range"),
        (dict(extras=[{"name": "blur"}]), "extras"),
        (dict(interpolation_order=3), "interpolation_order=3"),
    ],
)
def test_non_affine_options_are_refused_by_name(options, named):
    cfg = AugmentConfig(rotation_range=10, **options)
    with pytest.raises(ValueError, match=named):
        DeviceAugment(cfg)
    with pytest.raises(ValueError, match=named):
        device_params(cfg, (8, 8, 3), [0])


def test_bad_arguments_say_what_they_got():
    x = np.zeros((1, 4, 4, 1), np.float32)
    with pytest.raises(ValueError, match="but got 'mirror'"):
        apply_affine(x, IDENTITY_TRANSFORM[None], "mirror")
    with pytest.raises(ValueError, match="but got 2"):
        apply_affine(x, IDENTITY_TRANSFORM[None], order=2)
    with pytest.raises(ValueError, match=r"but got \(4, 4, 1\)"):
        apply_affine(x[0], IDENTITY_TRANSFORM[None])


# ---- graphs ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fill_mode", FILL_MODES)
def test_runs_inside_tf_function_and_tf_data(fill_mode, batches):
    x = batches["rgb"]
    cfg = AugmentConfig(**GEOMETRY, fill_mode=fill_mode, cval=FILL_MODES[fill_mode])
    device = DeviceAugment(cfg)
    transforms = device.params_for(range(len(x)), 0, 1, x.shape[1:])
    eager = device(x, transforms).numpy()

    graph = tf.function(
        device,
        input_signature=[
            tf.TensorSpec((None, None, None, 3), tf.uint8),
            tf.TensorSpec((None, 8), tf.float32),
        ],
    )
    np.testing.assert_array_equal(graph(x, transforms).numpy(), eager)
    np.testing.assert_array_equal(graph(x[:2], transforms[:2]).numpy(), eager[:2])  # dynamic batch

    ds = tf.data.Dataset.from_tensor_slices((x, transforms)).batch(3).map(device)
    np.testing.assert_array_equal(np.concatenate([b.numpy() for b in ds]), eager)


# ---- normalisation ---------------------------------------------------------------------------------
# zca_epsilon 0.1: the digits' blank border pixels give singular values of 0, which Keras's 1e-6 turns
# into whitening factors of 1e7 on float32 rounding noise, on the CPU as much as on the device.
NORMALISATIONS = {
    "rescale": dict(rescale=1 / 255),
    "samplewise_center": dict(samplewise_center=True),
    "samplewise_std_normalization": dict(samplewise_std_normalization=True),  # centres too (Keras)
    "featurewise_center": dict(featurewise_center=True),
    "featurewise_std_normalization": dict(featurewise_std_normalization=True),  # centres too
    "zca_whitening": dict(zca_whitening=True, zca_epsilon=0.1),  # centres too
    "all": dict(
        rescale=1 / 255, samplewise_center=True, samplewise_std_normalization=True,
        featurewise_center=True, featurewise_std_normalization=True, zca_whitening=True, zca_epsilon=0.1,
    ),
}  # fmt: skip


@pytest.fixture(scope="module")
def normalisation_batches(photo_batch_u8) -> dict[str, np.ndarray]:
    """Real images small enough for a dense ZCA: 200 scikit-learn digits (8x8, 0-255) and the six
    photos at 24x32 RGB."""
    digits = np.rint(load_digits().images[:200] * (255.0 / 16.0)).astype(np.uint8)[..., None]
    photos = np.stack([cv2.resize(im, (32, 24), interpolation=cv2.INTER_AREA) for im in photo_batch_u8])
    return {"digits": digits, "photos": photos}


def _fitted(options: dict, x: np.ndarray) -> Augmenter:
    augmenter = Augmenter(AugmentConfig(**options), output_dtype=np.float32)
    if augmenter.config.needs_fit:
        augmenter.fit(x)
    return augmenter


def _normalisation(config: AugmentConfig) -> dict:
    return dict(
        rescale=config.rescale,
        samplewise_center=config.samplewise_center,
        samplewise_std_normalization=config.samplewise_std_normalization,
        featurewise_center=config.featurewise_center,
        featurewise_std_normalization=config.featurewise_std_normalization,
        zca_whitening=config.zca_whitening,
    )


def _assert_close(got: np.ndarray, want: np.ndarray, x: np.ndarray, augmenter: Augmenter) -> None:
    """``got`` equals ``want`` within float32 rounding of the largest magnitude the normalisation of
    ``x`` sums: the values themselves, or for ZCA the sum of |value x weight| products, which cancel
    (the engine multiplies by the float64 whitening matrix, the device by its float32 copy)."""
    options, stats = _normalisation(augmenter.config), augmenter.stats
    scale = np.abs(want).max()
    if options["zca_whitening"]:
        before = normalize.standardize(x, stats, **{**options, "zca_whitening": False})
        products = np.abs(before.reshape(len(x), -1)) @ np.abs(stats.zca_whitening_matrix)
        scale = max(scale, products.max())
    np.testing.assert_allclose(got, want, rtol=0, atol=8 * np.finfo(np.float32).eps * scale)


@pytest.mark.parametrize("kind", ["digits", "photos"])
@pytest.mark.parametrize("option", NORMALISATIONS)
def test_standardize_matches_the_numpy_kernel(option, kind, normalisation_batches):
    x = normalisation_batches[kind]
    augmenter = _fitted(NORMALISATIONS[option], x)
    options = _normalisation(augmenter.config)
    want = normalize.standardize(x, augmenter.stats, **options, per_sample=True)
    got = standardize(x, augmenter.stats, **options)
    assert got.dtype == tf.float32 and tuple(got.shape) == x.shape
    assert not np.allclose(want, x)  # the option did something
    _assert_close(got.numpy(), want, x, augmenter)


@pytest.mark.parametrize("option", NORMALISATIONS)
def test_the_training_step_normalises_as_the_engine_does(option, normalisation_batches):
    # No geometry: the warp is the identity, so the step's output is the engine's, batch for batch.
    x = normalisation_batches["digits"]
    augmenter = _fitted(NORMALISATIONS[option], x)
    step = DeviceStep(augmenter, x.shape[1:])
    rows = np.arange(len(x)) + 7
    for batch in (slice(0, 64), slice(64, 200)):  # two batch sizes through one tf.function
        want, _ = augmenter.augment_batch(x[batch], rows[batch], epoch=1, seed=4)
        _assert_close(step(x[batch], rows[batch], 1, 4).numpy(), want, x[batch], augmenter)


def test_the_training_step_warps_then_normalises(batches):
    x = batches["rgb"]
    augmenter = _fitted(dict(**GEOMETRY, featurewise_std_normalization=True), x)
    rows = np.arange(len(x))
    want, _ = augmenter.augment_batch(x, rows, epoch=2, seed=9)
    got = DeviceStep(augmenter, x.shape[1:])(x, rows, 2, 9).numpy()
    # Back on the 0-255 scale, where the warp's tolerances apply.
    std = augmenter.stats.std + normalize.EPS
    mean, p99 = _worst(got * std, want * std)
    assert mean <= MAX_MEAN_ABS_DIFF and p99 <= MAX_P99_ABS_DIFF, f"mean {mean:.3f}, p99 {p99:.2f}"
