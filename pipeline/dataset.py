"""Reading a prepared dataset: memory-mapped shards per split, and a tf.data pipeline that augments.

>>> ds = PreparedDataset("prepared/digits")
>>> x, y = ds.arrays("train")                     # memmap-backed, nothing read yet
>>> train = ds.tf_dataset("train", batch_size=64, augment=AugmentConfig(rotation_range=10), seed=1, workers=2)
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.augment import Augmenter
from pipeline.config import AugmentConfig
from pipeline.processes import worker_context
from pipeline.store import CURRENT, current_version, version_dir
from pipeline.workers import BatchFeeder


class ShardedImages:
    """The images of one split across its shards, indexable like one (N, H, W, C) array."""

    def __init__(self, shards: list[np.ndarray]):
        self.shards = shards
        sizes = np.array([len(s) for s in shards], dtype=np.int64)
        self._starts = np.concatenate([[0], np.cumsum(sizes)])
        self.shape: tuple[int, ...] = (int(self._starts[-1]), *shards[0].shape[1:])
        self.dtype = shards[0].dtype

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index: Any) -> np.ndarray:
        if isinstance(index, int | np.integer):
            i = int(index) + (len(self) if index < 0 else 0)
            if not 0 <= i < len(self):
                raise IndexError(f"index {index} is out of range for {len(self)} images")
            s = int(np.searchsorted(self._starts, i, side="right") - 1)
            return np.asarray(self.shards[s][i - self._starts[s]])
        rows = np.arange(len(self))[index]
        out = np.empty((len(rows), *self.shape[1:]), self.dtype)
        shard_of = np.searchsorted(self._starts, rows, side="right") - 1
        for s in np.unique(shard_of):
            mask = shard_of == s
            out[mask] = self.shards[s][rows[mask] - self._starts[s]]
        return out

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        whole = (
            np.concatenate([np.asarray(s) for s in self.shards])
            if len(self.shards) > 1
            else np.asarray(self.shards[0])
        )
        return whole.astype(dtype, copy=False) if dtype is not None else whole


class PreparedDataset:
    """A prepared dataset folder (its CURRENT version, or ``version=`` to pin one)."""

    def __init__(self, path: str | Path, version: str | None = None):
        root = Path(path)
        if version is None:
            current = current_version(root)
            if current is None:
                where = "" if root.is_absolute() else f" (resolved as {root.resolve()})"
                raise FileNotFoundError(f"{root}{where} holds no prepared dataset (no {CURRENT} file)")
            version = current.name
        self.dir = version_dir(root, version)
        self.manifest: dict[str, Any] = json.loads((self.dir / "manifest.json").read_text())
        self.version = version
        self.classes: list[str] = self.manifest["classes"]
        self.image_shape = tuple(self.manifest["image_shape"])
        self.splits = [s for s, info in self.manifest["splits"].items() if info["count"]]

    def __repr__(self) -> str:
        counts = ", ".join(f"{s}={self.manifest['splits'][s]['count']}" for s in self.splits)
        return f"PreparedDataset({self.dir}, {counts}, {len(self.classes)} classes)"

    @property
    def report(self) -> dict[str, Any]:
        report: dict[str, Any] = json.loads((self.dir / "report.json").read_text())
        return report

    def images(self, split: str) -> ShardedImages:
        info = self._split(split)
        return ShardedImages([np.load(self.dir / name, mmap_mode="r") for name in info["shards"]])

    def labels(self, split: str) -> np.ndarray:
        self._split(split)
        labels: np.ndarray = np.load(self.dir / split / "labels.npy")
        return labels

    def arrays(self, split: str) -> tuple[ShardedImages, np.ndarray]:
        return self.images(split), self.labels(split)

    def mean_std(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-channel mean and std of the train split on the 0-255 scale (featurewise statistics)."""
        stats = self.manifest["stats"]
        return np.array(stats["train_mean"]), np.array(stats["train_std"])

    def batches(
        self,
        split: str,
        batch_size: int = 32,
        augment: AugmentConfig | Augmenter | None = None,
        epoch: int = 0,
        seed: int = 0,
        shuffle: bool = True,
        workers: int = 0,
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """One epoch of (images, labels) batches; sample i of epoch e is augmented with key (seed, e, i),
        by ``workers`` processes ahead of use (0: in this process), the same bytes either way."""
        yield from self._feed(split, batch_size, augment, seed, shuffle, workers, epoch, 1)

    def tf_dataset(
        self,
        split: str,
        batch_size: int = 32,
        augment: AugmentConfig | Augmenter | None = None,
        seed: int = 0,
        shuffle: bool = True,
        epochs: int | None = None,
        first_epoch: int = 0,
        workers: int = 0,
    ) -> Any:
        """A prefetched ``tf.data.Dataset`` of augmented batches, epoch after epoch (``epochs=None``:
        forever; give ``model.fit`` its ``steps_per_epoch``), made by ``workers`` processes."""
        from pipeline.tf_import import import_tensorflow

        tf = import_tensorflow()

        augmenter = _augmenter(augment)
        labels = self.labels(split)
        if workers:
            # Here, not first in the generator: TensorFlow runs that in a thread of its own and wraps
            # what it raises in an UnknownError of its traceback text.
            worker_context()

        def generate() -> Iterator[tuple[np.ndarray, np.ndarray]]:
            yield from self._feed(split, batch_size, augmenter, seed, shuffle, workers, first_epoch, epochs)

        spec = (
            tf.TensorSpec((None, *self.image_shape), tf.as_dtype(augmenter.output_dtype)),
            tf.TensorSpec((None, *labels.shape[1:]), tf.as_dtype(labels.dtype)),
        )
        return tf.data.Dataset.from_generator(generate, output_signature=spec).prefetch(tf.data.AUTOTUNE)

    def _feed(
        self,
        split: str,
        batch_size: int,
        augment: AugmentConfig | Augmenter | None,
        seed: int,
        shuffle: bool,
        workers: int,
        first_epoch: int,
        epochs: int | None,
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        images, labels = self.arrays(split)
        with BatchFeeder(_augmenter(augment), images, labels, batch_size, workers, shuffle=shuffle) as feeder:
            epoch = first_epoch
            while epochs is None or epoch < first_epoch + epochs:
                for x, y, _ in feeder.epoch(epoch, seed):
                    yield x, y
                epoch += 1

    def _split(self, split: str) -> dict[str, Any]:
        info: dict[str, Any] | None = self.manifest["splits"].get(split)
        if info is None:
            raise KeyError(f"no split {split!r} in {self.dir}; splits: {', '.join(self.manifest['splits'])}")
        return info


def _augmenter(augment: AugmentConfig | Augmenter | None) -> Augmenter:
    """An engine from a config (None: no augmentation, float32 output), or the one given."""
    return augment if isinstance(augment, Augmenter) else Augmenter(augment or AugmentConfig())
