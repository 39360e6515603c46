"""pipeline.dataset: a prepared version read back: sharded images, labels, versions, batches, tf.data."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pipeline import AugmentConfig
from pipeline.config import PrepareConfig
from pipeline.dataset import PreparedDataset, ShardedImages
from pipeline.prepare import prepare

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    out = tmp_path_factory.mktemp("dataset") / "out"
    prepare(PrepareConfig(source="digits", out=str(out), color_mode="grayscale"))
    return out


def test_sharded_images_index_like_one_array(photo_batch_u8):
    shards = [photo_batch_u8[:2], photo_batch_u8[2:3], photo_batch_u8[3:]]
    images = ShardedImages(shards)
    assert len(images) == 6 and images.shape == photo_batch_u8.shape and images.dtype == np.uint8
    for i in range(-6, 6):
        np.testing.assert_array_equal(images[i], photo_batch_u8[i])
    for index in ([5, 0, 2, 2], slice(1, 5), np.array([4, 1]), slice(None, None, -2)):
        np.testing.assert_array_equal(images[index], photo_batch_u8[index])
    np.testing.assert_array_equal(np.asarray(images), photo_batch_u8)
    assert np.asarray(images, dtype=np.float32).dtype == np.float32
    with pytest.raises(IndexError, match="index 6 is out of range for 6 images"):
        images[6]


def test_the_current_version_and_a_pinned_one(digits):
    ds = PreparedDataset(digits)
    assert ds.version == "v00001" and ds.classes == [str(d) for d in range(10)]
    assert ds.image_shape == (8, 8, 1) and set(ds.splits) == {"train", "validation", "test"}
    assert sum(len(ds.labels(s)) for s in ds.splits) == 1797
    assert PreparedDataset(digits, version="v00001").dir == ds.dir
    mean, std = ds.mean_std()
    train = np.asarray(ds.images("train"), dtype=np.float64)
    np.testing.assert_allclose(mean, train.mean(axis=(0, 1, 2)), rtol=1e-6)
    np.testing.assert_allclose(std, train.std(axis=(0, 1, 2)), rtol=1e-6)
    assert "PreparedDataset(" in repr(ds) and "10 classes" in repr(ds)


def test_missing_folder_and_split_are_named(digits, tmp_path):
    with pytest.raises(FileNotFoundError, match="holds no prepared dataset"):
        PreparedDataset(tmp_path / "nothing")
    with pytest.raises(KeyError, match="no split 'holdout'.*splits: train, validation, test"):
        PreparedDataset(digits).labels("holdout")


def test_batches_cover_the_split_once_per_epoch_and_are_keyed(digits):
    ds = PreparedDataset(digits)
    aug = AugmentConfig(rotation_range=20)
    epoch0 = list(ds.batches("train", 64, aug, epoch=0, seed=5))
    labels = np.concatenate([y for _, y in epoch0])
    assert len(labels) == len(ds.labels("train"))
    assert np.array_equal(np.sort(labels), np.sort(ds.labels("train")))
    again = list(ds.batches("train", 64, aug, epoch=0, seed=5, workers=2))
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(epoch0, again, strict=True))
    other = next(ds.batches("train", 64, aug, epoch=1, seed=5))
    assert not np.array_equal(other[0], epoch0[0][0])


def test_tf_dataset_yields_the_reproducible_augmented_batches(tmp_path):
    from pipeline import AugmentConfig

    prepare(PrepareConfig(source="digits", out=str(tmp_path / "out"), color_mode="grayscale"))
    ds = PreparedDataset(tmp_path / "out")
    aug = AugmentConfig(rotation_range=15, zoom_range=0.1)
    tf_data = ds.tf_dataset("validation", batch_size=50, augment=aug, seed=3, epochs=2, workers=2)
    tf_batches = list(tf_data.as_numpy_iterator())
    expected = list(ds.batches("validation", 50, aug, epoch=0, seed=3)) + list(
        ds.batches("validation", 50, aug, epoch=1, seed=3)
    )
    assert len(tf_batches) == len(expected)  # two worker processes, the same bytes as this process
    for (x, y), (ex, ey) in zip(tf_batches, expected, strict=True):
        assert x.dtype == np.float32 and np.array_equal(x, ex) and np.array_equal(y, ey)
    assert not np.array_equal(tf_batches[0][0], expected[len(expected) // 2][0])  # epochs differ


@pytest.mark.slow
def test_tf_dataset_with_workers_in_a_script_without_a_main_guard_fails_once_saying_how_to_fix_it(
    digits, tmp_path
):
    """The issue's script: every worker used to run it again and start workers of its own, forever."""
    script = tmp_path / "fit.py"
    script.write_text(
        "from pipeline import AugmentConfig\n"
        "from pipeline.dataset import PreparedDataset\n"
        "print('script ran', flush=True)\n"
        f"train = PreparedDataset({str(digits)!r}).tf_dataset(\n"
        "    'train', batch_size=32, augment=AugmentConfig(rotation_range=10), workers=2)\n"
        "for x, y in train.take(2):\n"
        "    print('batch', x.shape, flush=True)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3"}
    process = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env=env, cwd=tmp_path, start_new_session=True)  # fmt: skip
    try:
        out, err = process.communicate(timeout=300)
    finally:
        if process.poll() is None:  # still starting workers: stop it and whatever it started
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert process.returncode == 1, err[-3000:]
    assert err.count("pipeline.errors.ConfigError: ") == 1
    assert err.count('under `if __name__ == "__main__":`') == 1 and str(script) in err
    assert out.count("script ran") == 2 and "batch" not in out  # this process and one check, no more
