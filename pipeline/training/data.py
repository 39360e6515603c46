"""What a run trains on: the splits of a prepared dataset, preparing a source under runs_dir first."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.config import PrepareConfig, TrainConfig
from pipeline.dataset import PreparedDataset
from pipeline.errors import DataError
from pipeline.store import current_version


@dataclass(frozen=True)
class Split:
    images: Any  # (N, H, W, C) uint8, indexable by row arrays (ndarray, memmap or ShardedImages)
    labels: np.ndarray  # (N,) int class indices

    def __len__(self) -> int:
        return len(self.labels)

    def first(self, n: int) -> Split:
        """The first ``n`` samples: the same subset on every (re)start."""
        keep = np.arange(n)
        return Split(self.images[keep], self.labels[keep])


@dataclass(frozen=True)
class TrainData:
    train: Split
    validation: Split | None
    test: Split | None
    classes: list[str]
    source: str

    @property
    def image_shape(self) -> tuple[int, ...]:
        return tuple(np.asarray(self.train.images[np.arange(1)]).shape[1:])

    def limited(self, max_train_samples: int | None) -> TrainData:
        """These splits with at most ``max_train_samples`` training samples, the first ones."""
        if max_train_samples is None or max_train_samples >= len(self.train):
            return self
        return TrainData(
            self.train.first(max_train_samples), self.validation, self.test, self.classes, self.source
        )

    def check_labels(self) -> None:
        """Raise DataError unless every label is a class index."""
        top = len(self.classes) - 1
        for name, split in (("train", self.train), ("validation", self.validation), ("test", self.test)):
            if split is not None and len(split) and (split.labels.min() < 0 or split.labels.max() > top):
                raise DataError(f"{name} labels must be class indices 0..{top}")


def dataset_folder(cfg: TrainConfig) -> Path:
    """Where ``cfg.dataset`` is prepared: the folder itself when it is a prepared dataset, else the
    folder under runs_dir that :func:`resolve_dataset` prepares the source into (nothing is read)."""
    path = Path(cfg.dataset)
    if current_version(path) is not None:
        return path
    slug = hashlib.blake2b(cfg.dataset.encode(), digest_size=4).hexdigest()
    name = "".join(c if c.isalnum() else "-" for c in path.name or cfg.dataset).strip("-")
    return Path(cfg.runs_dir) / "datasets" / f"{name}-{slug}"


def resolve_dataset(cfg: TrainConfig) -> Path:
    """The prepared dataset folder of ``cfg.dataset``, preparing a source under runs_dir first."""
    # Imported here: preparing pulls in every decoder, which a run of a prepared dataset never needs.
    from pipeline.prepare import prepare

    out = dataset_folder(cfg)
    if out != Path(cfg.dataset):
        prepare(PrepareConfig(source=cfg.dataset, out=str(out), **cfg.prepare_options))
    return out


def load_data(cfg: TrainConfig) -> TrainData:
    """The splits of ``cfg.dataset``: a prepared dataset, or a source prepared first under runs_dir."""
    ds = PreparedDataset(resolve_dataset(cfg))
    labels = {s: ds.labels(s) for s in ds.splits}
    if any(v.ndim != 1 for v in labels.values()):
        raise DataError(
            f"{cfg.dataset} has multi-label images; the models end in a softmax and train on one label "
            "per image"
        )
    splits = {s: Split(ds.images(s), labels[s].astype(np.int64)) for s in ds.splits}
    return TrainData(
        train=splits["train"],
        validation=splits.get("validation"),
        test=splits.get("test"),
        classes=list(ds.classes),
        source=str(ds.dir),
    )


def fit_sample(images: Any, seed: int, limit: int = 10_000) -> np.ndarray:
    """Featurewise statistics' sample: up to ``limit`` training images (Keras fits on what it is given)."""
    n = len(images)
    rows = (
        np.arange(n) if n <= limit else np.sort(np.random.default_rng(seed).choice(n, limit, replace=False))
    )
    return np.asarray(images[rows])
