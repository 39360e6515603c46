"""pipeline/augment.py: the Augmenter itself. Its randomness and every option's contract are in
test_contract.py, its parity with Keras in test_parity.py; here: what the engine promises as an
object (shapes and dtypes at the edges, output dtypes, normalisation order, fit, refusals)."""

import numpy as np
import pytest
from keras.src.legacy.preprocessing.image import ImageDataGenerator as KerasGenerator

from pipeline import AugmentConfig, Augmenter
from pipeline.errors import ConfigError

GEOMETRY = AugmentConfig(rotation_range=30, width_shift_range=0.2, zoom_range=0.2, horizontal_flip=True)


@pytest.mark.parametrize("dtype", [np.uint8, np.float32, np.float64])
@pytest.mark.parametrize(
    "config",
    [
        GEOMETRY,
        AugmentConfig(
            rotation_range=10, extras=[{"name": "center_crop", "params": {"height": 20, "width": 24}}]
        ),
    ],
    ids=["geometry", "crop-extra"],
)
def test_an_empty_batch_has_the_shape_and_dtype_a_full_one_would(config, dtype, photo_batch_u8):
    aug = Augmenter(config)
    full, _ = aug.augment_batch(photo_batch_u8[:2].astype(dtype), np.arange(2))
    empty, params = aug.augment_batch(photo_batch_u8[:0].astype(dtype), np.arange(0))
    assert empty.shape == (0, *full.shape[1:]) and empty.dtype == full.dtype
    assert aug.transform_batch(photo_batch_u8[:0].astype(dtype), params).shape[1:] == empty.shape[1:]


def test_colour_only_extras_refuse_grayscale_with_a_config_error(gray_batch_u8):
    aug = Augmenter(AugmentConfig(extras=[{"name": "hue"}]))
    with pytest.raises(ConfigError, match=r"extra 'hue' needs RGB images \(3 channels\), but got 1 channel"):
        aug.augment_batch(gray_batch_u8[:2], np.arange(2))


def test_output_dtypes_and_the_uint8_path(photo_batch_u8):
    x = photo_batch_u8[:4]
    assert Augmenter(GEOMETRY).augment_batch(x, np.arange(4))[0].dtype == np.float32  # Keras's floatx
    as_u8 = Augmenter(GEOMETRY, output_dtype=np.uint8).augment_batch(x, np.arange(4))[0]
    as_f32 = Augmenter(GEOMETRY).augment_batch(x, np.arange(4))[0]
    assert as_u8.dtype == np.uint8
    np.testing.assert_array_equal(as_u8.astype(np.float32), as_f32)  # the same warp, kept in uint8
    with pytest.raises(ConfigError, match="output_dtype uint8 cannot hold normalised values"):
        Augmenter(AugmentConfig(rescale=1 / 255), output_dtype=np.uint8)


def test_the_draw_is_the_replay(photo_batch_u8):
    aug = Augmenter(GEOMETRY)
    x = photo_batch_u8[:6]
    out, params = aug.augment_batch(x, np.arange(10, 16), epoch=3, seed=7)
    np.testing.assert_array_equal(aug.transform_batch(x, aug.draw(x.shape[1:], np.arange(10, 16), 3, 7)), out)
    for i in range(6):  # one image at a time from Keras's per-image parameter dicts
        np.testing.assert_array_equal(aug.apply_transform(x[i], params[i]), out[i])


def test_normalisation_follows_kerass_order_after_augmentation(photo_batch_u8):
    # preprocessing_function, then rescale, then samplewise centring: Keras's standardize order.
    x = photo_batch_u8[:3].astype(np.float32)
    cfg = AugmentConfig(rescale=0.5, samplewise_center=True)
    ours = Augmenter(cfg, preprocessing_function=lambda im: im + 10).standardize_batch(x.copy())
    keras = KerasGenerator(rescale=0.5, samplewise_center=True, preprocessing_function=lambda im: im + 10)
    expected = np.stack([keras.standardize(im.copy()) for im in x])
    np.testing.assert_allclose(ours, expected, rtol=1e-6, atol=1e-5)


def test_fit_gives_featurewise_statistics_that_standardise_to_zero_mean_unit_std(photo_batch_u8):
    aug = Augmenter(AugmentConfig(featurewise_center=True, featurewise_std_normalization=True))
    x = photo_batch_u8.astype(np.float32)
    stats = aug.fit(x)
    np.testing.assert_allclose(stats.mean.reshape(-1), x.mean(axis=(0, 1, 2)), rtol=1e-5)
    out = aug.standardize_batch(x.copy())
    np.testing.assert_allclose(out.mean(axis=(0, 1, 2)), 0, atol=1e-4)
    np.testing.assert_allclose(out.std(axis=(0, 1, 2)), 1, atol=1e-3)


def test_apply_transform_takes_one_image():
    with pytest.raises(ValueError, match=r"expects one \(H, W, C\) image, but got shape \(2, 4, 4, 1\)"):
        Augmenter(GEOMETRY).apply_transform(np.zeros((2, 4, 4, 1), np.uint8), {})
