"""Array sources give their splits as split folders do: an IDX folder's train- and t10k- files, a
Keras dataset's train and test, an .npz's x_train and x_test are kept, and only the missing splits
are cut from train. Real MNIST IDX files (../shared/data/mnist), real Keras reading its cache, .npz
archives and IDX files written here; and ``digits`` is the bundled dataset even beside a folder of
that name, which the summary then says."""

from __future__ import annotations

import gzip
import os
import shutil
import struct
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from sklearn.datasets import load_digits

from pipeline.config import PrepareConfig
from pipeline.dataset import PreparedDataset
from pipeline.errors import DataError
from pipeline.prepare import prepare, summary_markdown
from pipeline.prepare.sources import _load_arrays

REPO = Path(__file__).resolve().parents[1]
MNIST = REPO.parent / "shared" / "data" / "mnist"
needs_mnist = pytest.mark.skipif(not MNIST.is_dir(), reason=f"needs the MNIST IDX files in {MNIST}")
GIVEN_TRAIN_TEST = {"given": ["train", "test"], "carved": ["validation"], "carved_from": "train"}


def _idx(path: Path, array: np.ndarray) -> None:
    """``array`` (uint8) as a gzipped IDX file, the format MNIST ships in."""
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(gzip.compress(header + array.astype(np.uint8).tobytes()))


def _mnist_part(prefix: str) -> tuple[np.ndarray, np.ndarray]:
    """MNIST's images and labels of one file pair, read with gzip and struct, not with augpipe."""
    raw_images = gzip.decompress((MNIST / f"{prefix}-images-idx3-ubyte.gz").read_bytes())
    raw_labels = gzip.decompress((MNIST / f"{prefix}-labels-idx1-ubyte.gz").read_bytes())
    n, height, width = struct.unpack(">3I", raw_images[4:16])
    images = np.frombuffer(raw_images, np.uint8, offset=16).reshape(n, height, width)
    return images, np.frombuffer(raw_labels, np.uint8, offset=8).astype(np.int64)


def _digits() -> tuple[np.ndarray, np.ndarray]:
    digits = load_digits()
    return (digits.images * 255 / 16).round().astype(np.uint8), digits.target


def _by_split(out: Path) -> dict[str, list[dict]]:
    files: dict[str, list[dict]] = {}
    for entry in PreparedDataset(out).manifest["files"]:
        files.setdefault(entry["split"], []).append(entry)
    return files


@pytest.fixture
def fresh_arrays() -> Iterator[None]:
    """No array source kept in this process's cache by another test (the same path, other files)."""
    _load_arrays.cache_clear()
    yield
    _load_arrays.cache_clear()


@needs_mnist
def test_mnist_idx_files_give_train_and_test_and_validation_is_cut_from_train(tmp_path, fresh_arrays):
    out = tmp_path / "out"
    result = prepare(PrepareConfig(source=str(MNIST), out=str(out)))  # default: 0.8, 0.1, 0.1
    counts = result.report["split_counts"]
    assert counts["test"] == 10000 and counts["train"] + counts["validation"] == 60000
    # a ninth of train (0.1 / (0.8 + 0.1)) is validation: 6,667 expected, binomial sd 77
    assert 6200 < counts["validation"] < 7100
    assert result.report["split_plan"] == GIVEN_TRAIN_TEST
    ds = PreparedDataset(out)
    assert ds.splits == ["train", "validation", "test"] and ds.manifest["split_plan"] == GIVEN_TRAIN_TEST

    test_images, test_labels = _mnist_part("t10k")
    assert Counter(ds.labels("test").tolist()) == Counter(test_labels.tolist())
    assert np.array_equal(np.sort(ds.labels("test")), np.sort(test_labels))
    files = _by_split(out)
    assert sorted(f["key"] for f in files["test"]) == sorted(f"t10k:{i}" for i in range(10000))
    assert all(f["key"].startswith("train:") for f in files["validation"] + files["train"])
    for entry in files["test"][::997]:  # each test row holds the t10k image its key names
        pixels = np.load(ds.dir / entry["shard"], mmap_mode="r")[entry["row"]][..., 0]
        assert np.array_equal(pixels, test_images[int(entry["key"].split(":")[1])])
    train_labels = _mnist_part("train")[1]
    kept = np.concatenate([ds.labels("train"), ds.labels("validation")])
    assert Counter(kept.tolist()) == Counter(train_labels.tolist())
    text = summary_markdown(result)
    assert "| test | 10000 | given |" in text and "| validation | " in text
    assert "splits given by the source: train, test; validation cut from the given train split" in text

    only_given = prepare(PrepareConfig(source=str(MNIST), out=str(tmp_path / "t"), splits={"test": 1.0}))
    assert only_given.report["split_counts"] == {"train": 60000, "test": 10000}
    assert only_given.report["split_plan"] == {"given": ["train", "test"], "carved": [], "carved_from": None}


@needs_mnist
def test_a_single_idx_images_file_gives_no_split_and_is_cut_by_hash(tmp_path, fresh_arrays):
    source = tmp_path / "t10k"
    source.mkdir()
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        shutil.copy(MNIST / name, source / name)
    images = source / "t10k-images-idx3-ubyte.gz"
    result = prepare(PrepareConfig(source=str(images), out=str(tmp_path / "out")))
    assert result.report["split_plan"] == {"given": [], "carved": ["train", "validation", "test"],
                                           "carved_from": "source"}  # fmt: skip
    assert sum(result.report["split_counts"].values()) == 10000
    # the folder of that one file gives test and no train: refused, naming what to add
    with pytest.raises(DataError, match="gives the splits test but no train split.*a train- IDX images"):
        prepare(PrepareConfig(source=str(source), out=str(tmp_path / "out2")))
    assert not (tmp_path / "out2").exists()


def test_idx_folders_whose_names_give_splits_partly_or_twice_are_refused(tmp_path, fresh_arrays):
    images, labels = _digits()

    def pair(folder: Path, name: str, rows: slice) -> None:
        folder.mkdir(exist_ok=True)
        _idx(folder / f"{name}-images-idx3-ubyte.gz", images[rows])
        _idx(folder / f"{name}-labels-idx1-ubyte.gz", labels[rows])

    given = tmp_path / "given"
    pair(given, "emnist-digits-train", slice(0, 300))  # the last word before -images gives the split
    pair(given, "emnist-digits-test", slice(300, 400))
    pair(given, "emnist-digits-VAL", slice(400, 450))
    result = prepare(PrepareConfig(source=str(given), out=str(tmp_path / "out")))
    assert result.report["split_counts"] == {"train": 300, "validation": 50, "test": 100}
    assert result.report["split_plan"] == {"given": ["train", "validation", "test"], "carved": [],
                                           "carved_from": None}  # fmt: skip
    test_labels = PreparedDataset(tmp_path / "out").labels("test")
    assert Counter(test_labels.tolist()) == Counter(labels[300:400].tolist())

    mixed = tmp_path / "mixed"
    pair(mixed, "train", slice(0, 100))
    pair(mixed, "extra", slice(100, 200))
    partly = "holds train-images-idx3-ubyte.gz, whose names give splits, beside extra-images-idx3-ubyte.gz"
    with pytest.raises(DataError, match=f"{partly}, whose names give none"):
        prepare(PrepareConfig(source=str(mixed), out=str(tmp_path / "out2")))

    twice = tmp_path / "twice"
    pair(twice, "emnist-letters-train", slice(0, 100))
    pair(twice, "emnist-digits-train", slice(100, 200))
    both = "emnist-digits-train-images-idx3-ubyte.gz and emnist-letters-train-images-idx3-ubyte.gz"
    with pytest.raises(DataError, match=f"holds {both}, which all give the train split"):
        prepare(PrepareConfig(source=str(twice), out=str(tmp_path / "out3")))

    none_given = tmp_path / "none"  # no name gives a split: every row is cut by hash, as before
    pair(none_given, "part1", slice(0, 100))
    pair(none_given, "part2", slice(100, 200))
    cut = prepare(PrepareConfig(source=str(none_given), out=str(tmp_path / "out4")))
    assert cut.report["split_plan"]["given"] == [] and cut.report["images"] == 200


def test_an_npz_with_train_and_test_arrays_gives_both_splits(tmp_path, fresh_arrays):
    images, labels = _digits()
    archive = tmp_path / "set.npz"
    np.savez(archive, x_train=images[:1000], y_train=labels[:1000], x_test=images[1000:1500],
             y_test=labels[1000:1500])  # fmt: skip
    out = tmp_path / "out"
    result = prepare(PrepareConfig(source=str(archive), out=str(out)))
    counts = result.report["split_counts"]
    assert counts["test"] == 500 and counts["train"] + counts["validation"] == 1000
    assert 70 < counts["validation"] < 160  # a ninth of 1000: 111 expected, sd 10
    assert result.report["split_plan"] == GIVEN_TRAIN_TEST
    ds = PreparedDataset(out)
    assert np.array_equal(np.sort(ds.labels("test")), np.sort(labels[1000:1500]))
    files = _by_split(out)
    assert sorted(f["key"] for f in files["test"]) == sorted(f"set.npz:test:{i}" for i in range(500))
    assert all(f["key"].startswith("set.npz:train:") for f in files["validation"])
    for entry in files["test"][::50]:
        pixels = np.load(ds.dir / entry["shard"])[entry["row"]][..., 0]
        assert np.array_equal(pixels, images[1000 + int(entry["key"].rsplit(":", 1)[1])])

    # Without a test array, test is cut from train too; with a val array, validation is given
    np.savez(archive, images_train=images[:400], labels_train=labels[:400], images_val=images[400:500],
             labels_val=labels[400:500])  # fmt: skip
    _load_arrays.cache_clear()
    two = prepare(PrepareConfig(source=str(archive), out=str(tmp_path / "two")))
    assert two.report["split_plan"] == {"given": ["train", "validation"], "carved": ["test"],
                                        "carved_from": "train"}  # fmt: skip
    assert two.report["split_counts"]["validation"] == 100
    assert two.report["split_counts"]["train"] + two.report["split_counts"]["test"] == 400


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"x_test": 10, "y_test": 10}, "gives the splits test but no train split.*an .npz's x_train"),
        ({"x_train": 10}, "holds the images 'x_train' but not their labels 'y_train'"),
        ({"x_train": 10, "y_train": 10, "x": 10, "y": 10}, "holds the images 'x' beside the split images"),
        ({"x_train": 10, "y_train": 10, "images_train": 10, "labels_train": 10},
         "holds 'x_train' and 'images_train', which both give the train split"),
        ({"x_train": 10, "y_train": 9}, r"has 10 images but 9 labels \('x_train', 'y_train'\)"),
    ],
)  # fmt: skip
def test_npz_split_arrays_that_cannot_be_read_as_splits_are_refused(tmp_path, fresh_arrays, arrays, message):
    images, labels = _digits()
    np.savez(
        tmp_path / "bad.npz",
        **{key: (images if key[0] in "xi" else labels)[:n] for key, n in arrays.items()},
    )
    with pytest.raises(DataError, match=message):
        prepare(PrepareConfig(source=str(tmp_path / "bad.npz"), out=str(tmp_path / "out")))
    assert not (tmp_path / "out").exists()


@needs_mnist
def test_a_keras_dataset_in_the_cache_gives_train_and_test(tmp_path, monkeypatch, fresh_arrays):
    # Nothing is downloaded: Keras's cache is made here, with MNIST's IDX files under the names
    # keras.datasets.fashion_mnist.load_data() reads (Keras pins no hash for them), and Keras reads it.
    cache = tmp_path / "keras" / "datasets" / "fashion-mnist"
    cache.mkdir(parents=True)
    for name in ("train-labels-idx1-ubyte.gz", "train-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz",
                 "t10k-images-idx3-ubyte.gz"):  # fmt: skip
        shutil.copy(MNIST / name, cache / name)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    result = prepare(PrepareConfig(source="keras:fashion_mnist", out=str(tmp_path / "out")))
    counts = result.report["split_counts"]
    assert counts["test"] == 10000 and counts["train"] + counts["validation"] == 60000
    assert result.report["split_plan"] == GIVEN_TRAIN_TEST
    ds = PreparedDataset(tmp_path / "out")
    assert Counter(ds.labels("test").tolist()) == Counter(_mnist_part("t10k")[1].tolist())
    test_keys = sorted(f["key"] for f in _by_split(tmp_path / "out")["test"])
    assert test_keys == sorted(f"fashion_mnist:test:{i}" for i in range(10000))


def _digit_folder(root: Path) -> None:
    """A class-folder tree of 40 scikit-learn digits, 8x8 PNGs, at ``root``."""
    images, labels = _digits()
    for i in range(40):
        path = root / f"d{labels[i]}" / f"{i}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        assert cv2.imwrite(str(path), images[i])


def test_digits_is_the_bundled_dataset_beside_a_folder_of_that_name_and_says_so(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert prepare(PrepareConfig(source="digits", out="prepared")).report["hints"] == []
    folder = tmp_path / "digits"
    _digit_folder(folder)
    notice = (
        f"source 'digits' was read as scikit-learn's bundled digits, not as the folder {folder}: a "
        "source's name wins over a path; give ./digits (or its absolute path) to prepare that folder"
    )
    again = prepare(PrepareConfig(source="digits", out="prepared"))  # unchanged, and the folder is new
    assert again.unchanged and again.report["images"] == 1797 and again.report["hints"] == [notice]
    fresh = prepare(PrepareConfig(source="digits", out="fresh", color_mode="grayscale"))
    assert not fresh.unchanged and fresh.report["images"] == 1797 and fresh.report["hints"] == [notice]
    named = prepare(
        PrepareConfig(source="./digits", out="from_folder", splits={"train": 1.0}, color_mode="grayscale")
    )
    assert named.report["images"] == 40 and PreparedDataset(tmp_path / "from_folder").classes[0] == "d0"
    assert named.report["hints"] == []
    explicit = prepare(PrepareConfig(source="digits", kind="digits", out="explicit", color_mode="grayscale"))
    assert explicit.report["hints"] == []  # kind digits (--kind digits) says which
    shutil.rmtree(folder)
    prepare(PrepareConfig(source="digits", out="digits", color_mode="grayscale"))
    itself = prepare(PrepareConfig(source="digits", out="digits", color_mode="grayscale"))  # --out digits
    assert itself.unchanged and itself.report["hints"] == []


def _run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API_URL")}
    env["COLUMNS"] = "300"
    return subprocess.run(
        [sys.executable, "-m", "flows.cli", "prepare", *args],
        capture_output=True, text=True, cwd=cwd, env={**env, "PYTHONPATH": str(REPO)}, timeout=300,
    )  # fmt: skip


@needs_mnist
def test_the_command_says_which_splits_mnist_gives_and_which_digits_it_read(tmp_path):
    done = _run_cli(str(MNIST), "--out", "mnist", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    out = " ".join(done.stdout.split())  # the console wraps long lines
    assert "70,000 images written" in out
    assert "splits given by the source: train, test; validation cut from the given train split" in out
    assert PreparedDataset(tmp_path / "mnist").manifest["splits"]["test"]["count"] == 10000

    _digit_folder(tmp_path / "digits")
    bundled = _run_cli("digits", "--out", "prepared", cwd=tmp_path)
    assert bundled.returncode == 0, bundled.stdout + bundled.stderr
    out = " ".join(bundled.stdout.split())
    assert "1,797 images written" in out
    assert "hint: source 'digits' was read as scikit-learn's bundled digits, not as the folder " in out
    assert "give ./digits (or its absolute path) to prepare that folder" in out
