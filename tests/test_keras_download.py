"""``keras:<name>`` downloads: through keras.utils.get_file, from a mirror, with Keras's pinned hashes.

No test reaches the internet: a local HTTP server plays the mirror (AUGPIPE_KERAS_DATASETS_URL),
serving an mnist.npz made from a subset of the canonical MNIST files in ../shared/data/mnist.
"""

from __future__ import annotations

import hashlib
import shutil
import threading
from collections import Counter
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest

from pipeline.config import PrepareConfig
from pipeline.ingest import load_keras_dataset, read_idx
from pipeline.ingest.sources import KERAS_DATASETS_URL_ENV, KERAS_FILES, keras_file_url
from pipeline.prepare import prepare
from pipeline.prepare.sources import _load_arrays

MNIST = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "mnist"
KERAS_MNIST_SHA256 = (
    "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"  # keras/src/datasets/mnist.py
)


class Mirror(NamedTuple):
    folder: Path  # what the server serves
    url: str
    requests: list[str]  # the paths asked for, in order


@pytest.fixture(scope="module")
def mnist_subset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An mnist.npz as Keras's (x_train, y_train, x_test, y_test, uint8), of 120 + 40 canonical digits."""
    if not MNIST.is_dir():
        pytest.skip(f"needs the canonical MNIST IDX files in {MNIST.resolve()} (../shared/data/mnist)")
    parts = {
        "x_train": read_idx(MNIST / "train-images-idx3-ubyte.gz")[:120],
        "y_train": read_idx(MNIST / "train-labels-idx1-ubyte.gz")[:120],
        "x_test": read_idx(MNIST / "t10k-images-idx3-ubyte.gz")[:40],
        "y_test": read_idx(MNIST / "t10k-labels-idx1-ubyte.gz")[:40],
    }
    path = tmp_path_factory.mktemp("subset") / "mnist.npz"
    np.savez(path, **parts)
    return path


@pytest.fixture
def keras_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An empty Keras cache (KERAS_HOME), no mirror set, and no arrays cached from another test."""
    home = tmp_path / "keras"
    home.mkdir()
    monkeypatch.setenv("KERAS_HOME", str(home))
    monkeypatch.delenv(KERAS_DATASETS_URL_ENV, raising=False)
    _load_arrays.cache_clear()
    yield home
    _load_arrays.cache_clear()


@pytest.fixture
def mirror(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Mirror]:
    """A local HTTP server named by AUGPIPE_KERAS_DATASETS_URL, serving the files put in its folder."""
    folder = tmp_path / "mirror"
    folder.mkdir()
    requests: list[str] = []

    class Handler(SimpleHTTPRequestHandler):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, directory=str(folder), **kwargs)  # type: ignore[arg-type]

        def log_message(self, format: str, *args: object) -> None:
            requests.append(self.path)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        for name in ("no_proxy", "NO_PROXY"):  # a proxy set for this machine must not get these requests
            monkeypatch.setenv(name, "127.0.0.1,localhost")
        url = f"http://127.0.0.1:{server.server_port}/datasets/"
        monkeypatch.setenv(KERAS_DATASETS_URL_ENV, url)
        (folder / "datasets").mkdir()
        yield Mirror(folder / "datasets", url, requests)
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _pin(monkeypatch: pytest.MonkeyPatch, path: Path) -> str:
    """Make ``path``'s sha256 the one pinned for mnist.npz (the served subset is not Keras's file)."""
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    monkeypatch.setitem(KERAS_FILES, "mnist", (KERAS_FILES["mnist"][0]._replace(sha256=digest),))
    return digest


def test_a_dataset_not_cached_names_the_cache_and_the_download_flag(keras_home, tmp_path):
    message = (
        f"Keras dataset 'mnist' is not cached in {keras_home / 'datasets'}; download it with --download "
        "on the command line (download=True in PrepareConfig, allow_download=True to load_keras_dataset), "
        "from AUGPIPE_KERAS_DATASETS_URL if set, else from Keras's servers (missing: mnist.npz)"
    )
    with pytest.raises(FileNotFoundError) as caught:
        load_keras_dataset("mnist")
    assert str(caught.value) == message
    with pytest.raises(FileNotFoundError) as caught:
        prepare(PrepareConfig(source="keras:mnist", out=str(tmp_path / "out")))
    assert str(caught.value) == message
    assert not (keras_home / "datasets" / "mnist.npz").exists()


def test_the_mirror_serves_each_file_under_the_name_its_origin_ends_with(monkeypatch):
    cifar = KERAS_FILES["cifar10"][0]
    assert KERAS_FILES["mnist"][0].sha256 == KERAS_MNIST_SHA256
    monkeypatch.delenv(KERAS_DATASETS_URL_ENV, raising=False)
    assert keras_file_url(cifar) == "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
    for base in ("https://mirror.example/keras", "https://mirror.example/keras/"):
        monkeypatch.setenv(KERAS_DATASETS_URL_ENV, base)
        assert keras_file_url(cifar) == "https://mirror.example/keras/cifar-10-python.tar.gz"


def test_a_download_from_the_mirror_is_checked_against_the_pinned_hash(
    keras_home, mirror, mnist_subset, monkeypatch
):
    shutil.copy(mnist_subset, mirror.folder / "mnist.npz")
    _pin(monkeypatch, mnist_subset)
    (x_train, y_train), (x_test, y_test) = load_keras_dataset("mnist", allow_download=True)
    assert mirror.requests == ["/datasets/mnist.npz"]
    assert (keras_home / "datasets" / "mnist.npz").read_bytes() == mnist_subset.read_bytes()
    with np.load(mnist_subset) as expected:
        assert np.array_equal(x_train[..., 0], expected["x_train"]) and x_train.shape == (120, 28, 28, 1)
        assert np.array_equal(y_test, expected["y_test"]) and y_test.dtype == np.int64
    assert len(x_test) == len(y_test) == 40 and len(y_train) == 120
    load_keras_dataset("mnist", allow_download=True)  # cached with the pinned hash: not fetched again
    assert mirror.requests == ["/datasets/mnist.npz"]


def test_a_file_that_is_not_the_pinned_one_is_refused_and_not_kept(keras_home, mirror, mnist_subset):
    shutil.copy(mnist_subset, mirror.folder / "mnist.npz")  # not Keras's mnist.npz: its hash differs
    actual = hashlib.sha256(mnist_subset.read_bytes()).hexdigest()
    with pytest.raises(ValueError) as caught:
        load_keras_dataset("mnist", allow_download=True)
    assert str(caught.value) == (
        f"{mirror.url}mnist.npz is not the mnist.npz Keras expects: its sha256 is {actual}, but Keras pins "
        f"{KERAS_MNIST_SHA256}; it was not kept in {keras_home / 'datasets'}. Check that the mirror "
        f"{KERAS_DATASETS_URL_ENV}={mirror.url!r} serves Keras's original files"
    )
    assert list((keras_home / "datasets").iterdir()) == []
    with pytest.raises(FileNotFoundError, match="not cached"):
        load_keras_dataset("mnist")


def test_a_damaged_cached_file_is_refused_and_downloaded_again(keras_home, mirror, mnist_subset, monkeypatch):
    shutil.copy(mnist_subset, mirror.folder / "mnist.npz")
    _pin(monkeypatch, mnist_subset)
    (keras_home / "datasets").mkdir()
    (keras_home / "datasets" / "mnist.npz").write_bytes(b"cut short")
    with pytest.raises(
        ValueError, match=r"mnist\.npz does not have the sha256 Keras pins; download it again"
    ):
        load_keras_dataset("mnist")
    assert mirror.requests == []
    (x_train, _), _ = load_keras_dataset("mnist", allow_download=True)
    assert len(x_train) == 120 and mirror.requests == ["/datasets/mnist.npz"]


def test_a_file_missing_from_the_mirror_is_a_connection_error(keras_home, mirror):
    with pytest.raises(ConnectionError, match=rf"downloading {mirror.url}mnist\.npz into .* failed: .*404"):
        load_keras_dataset("mnist", allow_download=True)
    assert list((keras_home / "datasets").iterdir()) == []


def test_prepare_downloads_keras_mnist_and_prepares_it(
    keras_home, mirror, mnist_subset, monkeypatch, tmp_path
):
    shutil.copy(mnist_subset, mirror.folder / "mnist.npz")
    _pin(monkeypatch, mnist_subset)
    result = prepare(PrepareConfig(source="keras:mnist", out=str(tmp_path / "out"), download=True))
    with np.load(mnist_subset) as subset:
        labels = np.concatenate([subset["y_train"], subset["y_test"]])
    assert result.report["images"] == 160 and not result.report["quarantined"]
    assert result.report["class_counts"] == Counter(str(label) for label in labels)
    assert mirror.requests == ["/datasets/mnist.npz"]
    assert (keras_home / "datasets" / "mnist.npz").is_file()
