"""Reproducibility across batch sizes, processing order and worker processes (1 against 2)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import cv2
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


# ---- scripts that start workers, with and without a main guard ------------------------------------
REPO = Path(__file__).resolve().parents[1]
_SCRIPT = """\
import sys
import cv2
import numpy as np
from pipeline import AugmentConfig, Augmenter
from pipeline.workers import AugmentPool, BatchFeeder

def work():
    images = np.random.default_rng(0).integers(0, 256, (16, 12, 12, 1), dtype=np.uint8)
    augmenter = Augmenter(AugmentConfig(rotation_range=20, horizontal_flip=True))
    if {feeder!r}:
        with BatchFeeder(augmenter, images, np.arange(16), batch_size=4, workers=2, shuffle=False,
                         start_method={method!r}) as feeder:
            out = np.concatenate([x for x, _, _ in feeder.epoch(1, seed=3)])
    else:
        with AugmentPool(augmenter, workers=2, start_method={method!r}) as pool:
            out = pool.map(images, epoch=1, seed=3)
    np.save(sys.argv[1], out)

print("script ran", flush=True)
"""
_GUARDED = 'if __name__ == "__main__":\n    work()\n'
_UNGUARDED = "work()\n"


def _run_script(path: Path, *args: str) -> tuple[int, str, str]:
    """Run ``path`` as a user would, stopping it and its children (one session) if it hangs."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3"}
    process = subprocess.Popen([sys.executable, str(path), *args], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=env, cwd=path.parent,
                               start_new_session=True)  # fmt: skip
    try:
        out, err = process.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        out, err = process.communicate()
        pytest.fail(f"{path.name} was still running after 300 s: {err[-3000:]}")
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    return process.returncode, out, err


def _expected() -> np.ndarray:
    images = np.random.default_rng(0).integers(0, 256, (16, 12, 12, 1), dtype=np.uint8)
    augmenter = Augmenter(AugmentConfig(rotation_range=20, horizontal_flip=True))
    return augmenter.augment_batch(images, np.arange(16), epoch=1, seed=3)[0]


@pytest.mark.slow
@pytest.mark.parametrize(("feeder", "method"), [(False, "forkserver"), (True, "spawn")])
def test_a_script_that_starts_workers_without_a_main_guard_fails_at_once_saying_how_to_fix_it(
    tmp_path, feeder, method
):
    """Each worker process runs the main script again first; one that starts workers as it runs used
    to have every worker start more, replaced forever by the pool (issue 15)."""
    script = tmp_path / "train.py"
    script.write_text(_SCRIPT.format(feeder=feeder, method=method) + _UNGUARDED)
    code, out, err = _run_script(script, str(tmp_path / "out.npy"))
    assert code == 1, err[-3000:]
    assert err.count("pipeline.errors.ConfigError: ") == 1
    assert err.count('under `if __name__ == "__main__":`') == 1
    assert str(script) in err and "workers=0" in err
    assert out.count("script ran") == 2  # this process, and the one that checked that workers start
    assert not (tmp_path / "out.npy").exists()


@pytest.mark.slow
def test_a_guarded_script_gets_the_same_bytes_from_two_workers(tmp_path):
    script = tmp_path / "train.py"
    script.write_text(_SCRIPT.format(feeder=True, method=None) + _GUARDED)
    code, out, err = _run_script(script, str(tmp_path / "out.npy"))
    assert code == 0, err[-3000:]
    assert out.count("script ran") == 4  # this process, the check, and each of the two workers
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), _expected())


@pytest.mark.slow
def test_a_script_that_fails_when_run_again_is_named_with_the_exit_status(tmp_path):
    """A script holding a lock fails in a worker that runs it again: the pool would start one after
    another forever; the parent names the script and the status instead."""
    script = tmp_path / "locked.py"
    lock = (
        "import fcntl\n"
        "lock = open(__file__ + '.lock', 'w')\n"
        "fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a second holder fails\n"
    )
    script.write_text(lock + _SCRIPT.format(feeder=False, method=None) + _GUARDED)
    code, out, err = _run_script(script, str(tmp_path / "out.npy"))
    assert code == 1, err[-3000:]
    assert err.count("BlockingIOError: ") == 1  # the worker's own error, once
    assert "ended with exit status 1" in err and str(script) in err
    assert out.count("script ran") == 1


@pytest.mark.slow
def test_preparing_with_workers_in_a_script_without_a_main_guard_fails_once_saying_how_to_fix_it(tmp_path):
    """Preparation's decoders start as the engine's workers do (pipeline.processes)."""
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        (tmp_path / "images" / name).mkdir(parents=True)
        for i in range(300):  # more than one chunk: one chunk is decoded in this process
            cv2.imwrite(str(tmp_path / "images" / name / f"{i}.png"), rng.integers(0, 256, (8, 8), np.uint8))
    script = tmp_path / "prep.py"
    script.write_text(
        "from pipeline.config import PrepareConfig\n"
        "from pipeline.prepare import prepare\n"
        "print('script ran', flush=True)\n"
        f"config = PrepareConfig(source={str(tmp_path / 'images')!r}, out={str(tmp_path / 'out')!r})\n"
        "prepare(config, workers=2)\n"
    )
    code, out, err = _run_script(script)
    assert code == 1, err[-3000:]
    assert err.count("pipeline.errors.ConfigError: ") == 1
    assert err.count('under `if __name__ == "__main__":`') == 1 and str(script) in err
    assert out.count("script ran") == 2  # the script, and the one check of a worker's start
    assert not (tmp_path / "out" / "CURRENT").exists()
