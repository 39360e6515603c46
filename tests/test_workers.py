"""Reproducibility across batch sizes, processing order and worker processes (1 against 2)."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline import AugmentConfig, Augmenter, PixelTransform
from pipeline.ingest import load_bundled_digits, load_bundled_photos
from pipeline.workers import AugmentPool

ALL_OPTIONS = dict(
    rotation_range=25, width_shift_range=0.15, height_shift_range=[-3, 2, 5], shear_range=12,
    zoom_range=(0.8, 1.2), horizontal_flip=True, vertical_flip=True, channel_shift_range=25,
    brightness_range=(0.6, 1.4), fill_mode="reflect",
)  # fmt: skip


@pytest.fixture(scope="module")
def photos() -> np.ndarray:
    images, _ = load_bundled_photos()
    # 12 distinct non-square crops of the two photographs
    return np.stack([images[i % 2, 25 * i : 25 * i + 90, 30 * i : 30 * i + 130] for i in range(12)])


@pytest.fixture(scope="module")
def augmenter() -> Augmenter:
    cfg = AugmentConfig(**ALL_OPTIONS, extras=[PixelTransform(name="gaussian_blur", p=0.5),
                                               PixelTransform(name="cutout", p=0.5)])  # fmt: skip
    return Augmenter(cfg)


def test_batch_size_and_order_do_not_change_bytes(photos, augmenter):
    idx = np.arange(100, 112)
    whole, _ = augmenter.augment_batch(photos, idx, epoch=3, seed=11)
    pieces = np.concatenate(
        [augmenter.augment_batch(photos[s : s + k], idx[s : s + k], epoch=3, seed=11)[0]
         for s, k in ((0, 5), (5, 1), (6, 6))]
    )  # fmt: skip
    assert np.array_equal(whole, pieces)
    perm = np.random.default_rng(0).permutation(12)
    shuffled, _ = augmenter.augment_batch(photos[perm], idx[perm], epoch=3, seed=11)
    assert np.array_equal(shuffled, whole[perm])


def test_epoch_and_seed_change_the_draw(photos, augmenter):
    idx = np.arange(12)
    a, _ = augmenter.augment_batch(photos, idx, epoch=0, seed=1)
    b, _ = augmenter.augment_batch(photos, idx, epoch=1, seed=1)
    c, _ = augmenter.augment_batch(photos, idx, epoch=0, seed=2)
    assert not np.array_equal(a, b) and not np.array_equal(a, c)
    for i in range(12):  # every sample moves, not just some
        assert not np.array_equal(a[i], b[i])


@pytest.mark.slow
def test_one_and_two_worker_processes_give_the_same_bytes(photos, augmenter):
    idx = np.arange(500, 512)
    with AugmentPool(augmenter, workers=1) as one:
        r1 = one.map(photos, idx, epoch=2, seed=7, chunk_size=5)
    with AugmentPool(augmenter, workers=2) as two:
        r2 = two.map(photos, idx, epoch=2, seed=7, chunk_size=3)
        r2_again = two.map(photos, idx, epoch=2, seed=7, chunk_size=12)
        other_epoch = two.map(photos, idx, epoch=3, seed=7)
    direct, _ = augmenter.augment_batch(photos, idx, epoch=2, seed=7)
    assert r1.dtype == np.float32 and r1.shape == direct.shape
    assert np.array_equal(r1, direct)
    assert np.array_equal(r2, direct)
    assert np.array_equal(r2_again, direct)
    assert not np.array_equal(other_epoch, direct)


@pytest.mark.slow
def test_pool_on_digits_matches_in_process_uint8():
    images, _, _ = load_bundled_digits()
    aug = Augmenter(AugmentConfig(**ALL_OPTIONS), output_dtype=np.uint8)
    with AugmentPool(aug, workers=2) as pool:
        pooled = pool.map(images, epoch=0, seed=3, chunk_size=256)
    direct, _ = aug.augment_batch(images, epoch=0, seed=3)
    assert pooled.dtype == np.uint8 and np.array_equal(pooled, direct)


def test_pool_rejects_bad_arguments(photos, augmenter):
    with pytest.raises(ValueError, match="workers must be >= 1, but got 0"):
        AugmentPool(augmenter, workers=0)
    with AugmentPool(augmenter, workers=1) as pool:
        with pytest.raises(ValueError, match=r"one index per image \(12\), but got shape \(3,\)"):
            pool.map(photos, indices=[1, 2, 3])


@pytest.mark.slow
def test_pool_reads_memmapped_images_in_place(tmp_path, photos, augmenter):
    # Prepared datasets are memory-mapped shards: workers open the file instead of a copy.
    header = 128
    mm = np.memmap(tmp_path / "shard.bin", dtype=np.uint8, mode="w+", offset=header, shape=photos.shape)
    mm[:] = photos
    mm.flush()
    view = np.memmap(tmp_path / "shard.bin", dtype=np.uint8, mode="r", offset=header, shape=photos.shape)[
        4:10
    ]
    with AugmentPool(augmenter, workers=2) as pool:
        pooled = pool.map(view, np.arange(4, 10), epoch=1, seed=9, chunk_size=2)
    direct, _ = augmenter.augment_batch(photos[4:10], np.arange(4, 10), epoch=1, seed=9)
    assert np.array_equal(pooled, direct)


@pytest.mark.slow
def test_pool_results_stay_valid_while_held_and_buffers_are_recycled(photos, augmenter):
    with AugmentPool(augmenter, workers=2) as pool:
        first = pool.map(photos, epoch=0, seed=1)
        kept = first.copy()
        second = pool.map(photos, epoch=1, seed=1)  # must not write into `first`, still held
        assert np.array_equal(first, kept)
        del first, kept
        third = pool.map(photos, epoch=2, seed=1)  # may reuse the dropped buffer
        expected = [augmenter.augment_batch(photos, epoch=e, seed=1)[0] for e in (1, 2)]
        assert np.array_equal(second, expected[0]) and np.array_equal(third, expected[1])
