"""What a run trains on: the splits of a prepared dataset, preparing a source under runs_dir first."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.config import PrepareConfig, TrainConfig, did_you_mean
from pipeline.dataset import PreparedDataset
from pipeline.errors import ConfigError, DataError
from pipeline.sampling import class_proportional
from pipeline.store import current_version


@dataclass(frozen=True)
class Split:
    images: Any  # (N, H, W, C) uint8, indexable by row arrays (ndarray, memmap or ShardedImages)
    labels: np.ndarray  # (N,) int class indices

    def __len__(self) -> int:
        return len(self.labels)

    def sample(self, n: int, seed: int) -> Split:
        """A class-proportional sample of ``n`` (:func:`~pipeline.sampling.class_proportional`): the
        same rows for the same seed, so a resumed run trains on the same subset."""
        keep = class_proportional(self.labels, n, seed)
        return Split(self.images[keep], self.labels[keep])


@dataclass(frozen=True)
class TrainData:
    train: Split
    validation: Split | None
    test: Split | None
    classes: list[str]
    source: str
    sampled_from: int | None = None  # the training split's size before :meth:`limited` sampled it

    @property
    def image_shape(self) -> tuple[int, ...]:
        return tuple(np.asarray(self.train.images[np.arange(1)]).shape[1:])

    def limited(self, max_train_samples: int | None, seed: int) -> TrainData:
        """These splits with at most ``max_train_samples`` training samples, in the training split's
        class proportions (a prefix of a class-sorted split is one class)."""
        if max_train_samples is None or max_train_samples >= len(self.train):
            return self
        train = self.train.sample(max_train_samples, seed)
        return replace(self, train=train, sampled_from=len(self.train))

    def class_counts(self) -> dict[str, int]:
        """Training images per class name."""
        counts = np.bincount(self.train.labels, minlength=len(self.classes))
        return {name: int(c) for name, c in zip(self.classes, counts, strict=True)}

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


def dataset_preparation(cfg: TrainConfig) -> PrepareConfig | None:
    """How a run prepares ``cfg.dataset`` before training: a source into :func:`dataset_folder` with
    ``cfg.prepare_options``; None for a prepared dataset."""
    out = dataset_folder(cfg)
    if out == Path(cfg.dataset):
        return None
    return PrepareConfig(source=cfg.dataset, out=str(out), **cfg.prepare_options)


def resolve_dataset(cfg: TrainConfig) -> Path:
    """The prepared dataset folder of ``cfg.dataset``, preparing a source under runs_dir first."""
    preparation = dataset_preparation(cfg)
    if preparation is not None:
        # Imported here: preparing pulls in every decoder, which a run of a prepared dataset never needs.
        from pipeline.prepare import prepare

        prepare(preparation)
    return dataset_folder(cfg)


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


def fit_sample(train: Split, seed: int, limit: int = 10_000) -> np.ndarray:
    """Featurewise statistics' sample: up to ``limit`` training images, in the split's class
    proportions (Keras fits on what it is given)."""
    return np.asarray(train.images[class_proportional(train.labels, limit, seed)])


def class_weights(option: str | dict[str, float] | None, data: TrainData) -> np.ndarray | None:
    """The weight of each class index for TrainConfig.class_weight ``option``, or None without one.

    ``"balanced"``: n_samples / (n_classes * count) over the classes in ``data.train`` (scikit-learn's
    formula). A mapping names classes by name, or by index when no class has that name; the
    classes it leaves out weigh 1.
    """
    if option is None:
        return None
    weights = np.ones(len(data.classes))
    counts = np.bincount(data.train.labels, minlength=len(data.classes))
    if isinstance(option, str):  # "balanced", the one word TrainConfig accepts
        present = counts > 0
        weights[present] = len(data.train) / (int(present.sum()) * counts[present])
        return weights
    named: dict[int, str] = {}
    for key, weight in option.items():
        index = _class_index(key, data)
        if index in named:
            raise ConfigError(
                f"TrainConfig.class_weight: {named[index]!r} and {key!r} both name class "
                f"{data.classes[index]!r} (index {index}); give it one weight"
            )
        named[index] = key
        weights[index] = weight
    return weights


def _class_index(key: str, data: TrainData) -> int:
    """The class that ``key`` names: a class name, else a class index."""
    if key in data.classes:
        return data.classes.index(key)
    if key.isdecimal() and int(key) < len(data.classes):
        return int(key)
    shown = ", ".join(repr(c) for c in data.classes[:20]) + (", ..." if len(data.classes) > 20 else "")
    raise ConfigError(
        f"TrainConfig.class_weight: no class {key!r}{did_you_mean(key, data.classes)} in {data.source}; "
        f"name a class or give its index 0..{len(data.classes) - 1}; the classes are: {shown}"
    )
