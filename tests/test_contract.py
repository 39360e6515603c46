"""One contract, run over every transform: each Keras option alone and each pixel extra.

For uint8 and float32 batches of six different photographs: the input is not mutated; dtype and
shape are preserved (crops give their own size); batched equals unbatched; the same key gives the
same bytes and another seed other bytes; recorded parameters replay to the same bytes; the engine
and its config survive pickling; colour-only extras refuse grayscale clearly.
"""

import pickle

import numpy as np
import pytest

from pipeline import AugmentConfig, Augmenter, BatchParams
from pipeline.functional.pixel import EXTRA_TRANSFORMS

CROP = {"height": 64, "width": 80}
EXTRA_PARAMS = {"random_crop": CROP, "center_crop": CROP}
# Colour-space operations: undefined on one channel.
RGB_ONLY = {"saturation", "hue", "grayscale", "color_jitter", "rgb_shift"}
# Transforms without random parameters: another seed gives the same output.
DETERMINISTIC = {"extra:grayscale", "extra:equalize", "extra:center_crop"}

KERAS_OPTIONS = {
    "rotation": dict(rotation_range=30),
    "width_shift": dict(width_shift_range=0.2),
    "height_shift": dict(height_shift_range=[-7, 3, 11]),
    "shear": dict(shear_range=20),
    "zoom": dict(zoom_range=(0.7, 1.3)),
    "horizontal_flip": dict(horizontal_flip=True),
    "vertical_flip": dict(vertical_flip=True),
    "channel_shift": dict(channel_shift_range=40.0),
    "brightness": dict(brightness_range=(0.5, 1.5)),
}
TRANSFORMS = {
    **{f"keras:{k}": v for k, v in KERAS_OPTIONS.items()},
    **{f"extra:{n}": dict(extras=[{"name": n, "params": EXTRA_PARAMS.get(n, {})}]) for n in EXTRA_TRANSFORMS},
    # A gate that skips some samples must replay as skipped.
    "extra:gaussian_blur@p=0.5": dict(extras=[{"name": "gaussian_blur", "p": 0.5}]),
    # uint8 paths the OpenCV kernels do not cover: scipy's spline orders, a cval that is not a level.
    "keras:rotation@order=3": dict(rotation_range=30, interpolation_order=3),
    "keras:rotation@cval=127.5": dict(rotation_range=30, fill_mode="constant", cval=127.5),
    "everything": dict(
        rotation_range=15, width_shift_range=0.1, zoom_range=0.1, horizontal_flip=True, fill_mode="reflect",
        channel_shift_range=20.0, brightness_range=(0.8, 1.2),
        extras=[{"name": "noise", "p": 0.5}, {"name": "cutout"}, {"name": "random_crop", "params": CROP}],
    ),
}  # fmt: skip


CASES = [
    pytest.param(name, dtype, id=f"{name}-{dtype.__name__}")
    for name in TRANSFORMS
    for dtype in (np.uint8, np.float32)
]  # fmt: skip


def same_bytes(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


@pytest.mark.parametrize(("name", "dtype"), CASES)
def test_transform_contract(name, dtype, photo_batch_u8, gray_batch_u8):
    cfg = AugmentConfig(**TRANSFORMS[name])
    aug = Augmenter(cfg)
    x = photo_batch_u8.astype(dtype)  # a writable copy, so a mutation would go unnoticed otherwise
    pristine = x.copy()
    n = len(x)
    idx = np.arange(n)
    crops = any(e.name.endswith("crop") for e in cfg.extras)
    hw = (CROP["height"], CROP["width"]) if crops else x.shape[1:3]

    out, params = aug.augment_batch(x, idx, epoch=1, seed=0)
    assert out.dtype == np.float32 and out.shape == (n, *hw, 3)
    assert len(params) == n
    if not crops:  # the transform does something to at least one image
        assert not np.array_equal(out, x.astype(np.float32))

    # transform_batch keeps the input's dtype; with augment_batch's params and output dtype it
    # replays its bytes (uint8 -> float32 is fused into the pixel lookup, so it is not raw.astype).
    raw = aug.transform_batch(x, params)
    assert raw.dtype == x.dtype and raw.shape == (n, *hw, 3)
    assert same_bytes(aug.transform_batch(x, params, dtype=np.float32), out)
    assert np.abs(raw.astype(np.float32) - out).max() <= 0.5
    # Replay from the recorded parameters alone (no sample keys), and one Keras dict at a time.
    recorded = BatchParams(columns={k: v.copy() for k, v in params.columns.items()}, extras=params.extras)
    assert same_bytes(aug.transform_batch(x, recorded), raw)
    for i in range(n):
        assert same_bytes(aug.apply_transform(x[i], params[i]), raw[i])

    # Batched equals unbatched: each image alone, with its own index.
    alone = np.concatenate([aug.augment_batch(x[i : i + 1], [i], epoch=1, seed=0)[0] for i in range(n)])
    assert same_bytes(alone, out)

    # Same key, same bytes (also from a fresh engine); another seed, other bytes.
    assert same_bytes(aug.augment_batch(x, idx, epoch=1, seed=0)[0], out)
    assert same_bytes(
        Augmenter(AugmentConfig(**TRANSFORMS[name])).augment_batch(x, idx, epoch=1, seed=0)[0], out
    )
    other = aug.augment_batch(x, idx, epoch=1, seed=1)[0]
    if name in DETERMINISTIC:
        assert same_bytes(other, out)
    else:
        assert not np.array_equal(other, out)

    # Pickling the engine and the config changes nothing.
    cfg_back = pickle.loads(pickle.dumps(cfg))
    assert cfg_back == cfg
    aug_back = pickle.loads(pickle.dumps(aug))
    assert same_bytes(aug_back.augment_batch(x, idx, epoch=1, seed=0)[0], out)
    assert same_bytes(Augmenter(cfg_back).augment_batch(x, idx, epoch=1, seed=0)[0], out)

    # Grayscale: colour-only extras refuse it clearly; everything else keeps one channel.
    gray = gray_batch_u8.astype(dtype)
    if any(e.name in RGB_ONLY for e in cfg.extras):
        with pytest.raises(ValueError, match=r"needs RGB images \(3 channels\), but got 1 channel"):
            aug.augment_batch(gray, idx)
    else:
        g = aug.transform_batch(gray, aug.draw(gray.shape[1:], idx))
        assert g.dtype == gray.dtype and g.shape == (n, *hw, 1)

    np.testing.assert_array_equal(x, pristine)
