"""One contract, run over every transform: each Keras option alone and each pixel extra.

For uint8 and float32 batches of six different photographs: the input is not mutated; dtype and
shape are preserved (crops give their own size); batched equals unbatched, and equals the batch
read in place by rows; float64 input gives float32's bytes; the same key gives the same bytes and
another seed other bytes; recorded parameters replay to the same bytes; the engine and its config
survive pickling; colour-only extras refuse grayscale clearly. With every option
and extra on, threads sharing one engine give the bytes of a serial run, and replay applies the
recorded parameters, arrays included, without drawing.
"""

import pickle
import threading

import numpy as np
import pytest

from pipeline import AugmentConfig, Augmenter, BatchParams
from pipeline.errors import ConfigError
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

    # Read in place from a larger array by rows: the gathered batch's bytes. Float64 input is
    # warped in the float32 output's precision, as Keras's flow() converts it: float32's bytes.
    pool = np.concatenate([x[::-1], x])
    assert same_bytes(aug.augment_batch(pool, idx, epoch=1, seed=0, rows=idx + n)[0], out)
    if dtype == np.float32:
        assert same_bytes(aug.augment_batch(x.astype(np.float64), idx, epoch=1, seed=0)[0], out)

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
        with pytest.raises(ConfigError, match=r"needs RGB images \(3 channels\), but got 1 channel"):
            aug.augment_batch(gray, idx)
    else:
        g = aug.transform_batch(gray, aug.draw(gray.shape[1:], idx))
        assert g.dtype == gray.dtype and g.shape == (n, *hw, 1)

    np.testing.assert_array_equal(x, pristine)


# ---- threads, and replay from the recorded parameters ---------------------------------------------
# Gated at 0.7 so that some samples skip each extra; crops must apply to every sample.
EVERY_EXTRA = [
    {"name": n, "params": EXTRA_PARAMS.get(n, {}), "p": 1.0 if n in EXTRA_PARAMS else 0.7}
    for n in EXTRA_TRANSFORMS
]
EVERY_OPTION = {k: v for opts in KERAS_OPTIONS.values() for k, v in opts.items()}


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
@pytest.mark.parametrize("fill_mode", ["nearest", "reflect", "wrap", "constant"])
def test_threads_give_the_bytes_of_a_serial_run(fill_mode, dtype, photo_batch_u8):
    # Keras's PyDataset calls from several threads: one shared engine, every option and extra on,
    # eight threads augmenting overlapping sets of samples at once give what one thread gives.
    aug = Augmenter(AugmentConfig(**EVERY_OPTION, fill_mode=fill_mode, cval=60.0, extras=EVERY_EXTRA))
    x = np.concatenate([photo_batch_u8, photo_batch_u8[::-1]]).astype(dtype)
    n, threads, rounds = len(x), 8, 3
    sets = [np.arange(t, t + 5) % n for t in range(threads)]
    serial = [aug.augment_batch(x[s], s, epoch=2, seed=9)[0] for s in sets]
    barrier = threading.Barrier(threads)
    results: dict[int, list[np.ndarray]] = {t: [] for t in range(threads)}

    def work(t: int) -> None:
        barrier.wait()
        for _ in range(rounds):
            results[t].append(aug.augment_batch(x[sets[t]], sets[t], epoch=2, seed=9)[0])

    pool = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    for t in range(threads):
        assert len(results[t]) == rounds
        for got in results[t]:
            assert same_bytes(got, serial[t]), f"thread {t} differs from the serial run"


def test_replay_uses_the_recorded_parameters_losslessly(photo_batch_u8):
    aug = Augmenter(AugmentConfig(rotation_range=20, extras=EVERY_EXTRA))
    x = photo_batch_u8
    idx = np.arange(len(x))
    out, params = aug.augment_batch(x, idx, epoch=1, seed=4)
    drawn = [e for sample in params.extras for e in sample if e.applied]
    assert {e.name for e in drawn} == set(EXTRA_TRANSFORMS)
    # Arrays stay arrays (the noise's map, the cutout's holes): nothing is summarised.
    noise = next(e for e in drawn if e.name == "noise")
    assert isinstance(noise.params["noise_map"], np.ndarray) and noise.params["noise_map"].size > 16
    assert not any(isinstance(v, str) and v.startswith("array") for e in drawn for v in e.params.values())
    # Replay from the records alone, round-tripped through pickle, under other keys: the same bytes,
    # so replay applies what was recorded and draws nothing.
    columns = {k: v.copy() for k, v in params.columns.items()}
    recorded = pickle.loads(pickle.dumps(params.extras))
    other_keys = np.asarray(params.keys) + np.uint64(1)
    for replay in (BatchParams(columns, recorded), BatchParams(columns, recorded, keys=other_keys)):
        assert same_bytes(aug.transform_batch(x, replay, dtype=np.float32), out)
    # One sample's Keras dict carries its records as plain dicts, and replays alone.
    for i in range(len(x)):
        one = pickle.loads(pickle.dumps(params[i]))
        assert [e["name"] for e in one["extras"]] == list(EXTRA_TRANSFORMS)
        assert same_bytes(aug.apply_transform(x[i], one).astype(np.float32), out[i])
