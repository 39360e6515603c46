"""The images a preview shows: a few of a source's, chosen deterministically and spread over classes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.dataset import PreparedDataset
from pipeline.errors import ConfigError, DataError, SourceNotFoundError
from pipeline.ingest import load_bundled_digits, load_bundled_photos, load_npz

SOURCES = "'digits', 'photos', a prepared dataset folder or an .npz file"


@dataclass(frozen=True)
class PreviewSamples:
    """Images to preview, their indices in their source and their labels (None when unlabelled)."""

    images: np.ndarray
    indices: list[int]
    labels: list[str] | None
    source: str


def spread_over_classes(labels: np.ndarray, n: int) -> np.ndarray:
    """``n`` indices taking each class's first image in turn (classes sorted), then each one's second,
    and so on; in index order."""
    labels = np.asarray(labels)
    if labels.ndim != 1:  # multi-label or one-hot: no single class to spread over
        return np.arange(min(n, len(labels)))
    _, inverse = np.unique(labels, return_inverse=True)
    rank = np.empty(len(labels), np.int64)  # how many earlier images share the class
    for cls in range(inverse.max() + 1 if len(labels) else 0):
        members = np.flatnonzero(inverse == cls)
        rank[members] = np.arange(len(members))
    order = np.lexsort((inverse, rank))  # by rank, then class
    return np.sort(order[:n])


def source_kind(source: str) -> str:
    """What ``source`` is, ``digits``, ``photos``, ``prepared`` or ``npz``, without loading it;
    SourceNotFoundError, ConfigError or DataError with one clear line otherwise."""
    if source in ("digits", "photos"):
        return source
    path = Path(source)
    if not path.exists():
        raise SourceNotFoundError(source, expected=SOURCES)
    if path.is_dir():
        if "train" not in PreparedDataset(path).splits:  # raises if the folder holds no prepared dataset
            raise DataError(f"{source}: the prepared dataset has no train split")
        return "prepared"
    if path.suffix.lower() == ".npz":
        return "npz"
    raise ConfigError(f"cannot preview source {source}: expected {SOURCES}")


def load_samples(source: str, samples: int = 8) -> PreviewSamples:
    """``samples`` images of ``source``, chosen deterministically and spread over classes: ``digits``
    (scikit-learn's 8x8 digits, 0-255), ``photos`` (scikit-learn's sample photographs), a prepared
    dataset folder (its train split) or an .npz file (image and label keys as for ``augpipe prepare``)."""
    if samples < 1:
        raise ConfigError(f"samples must be >= 1, but got {samples}")
    kind = source_kind(source)
    if kind == "digits":
        images, labels, _ = load_bundled_digits()
        return _chosen(images, labels, samples, source)
    if kind == "photos":
        photos, names = load_bundled_photos()
        n = min(samples, len(photos))
        return PreviewSamples(photos[:n], list(range(n)), names[:n], source)
    if kind == "prepared":
        dataset = PreparedDataset(source)
        shards, labels = dataset.arrays("train")
        chosen = spread_over_classes(labels, samples)
        if labels.ndim == 1:
            shown = [dataset.classes[int(v)] for v in labels[chosen]]
        else:  # multi-hot rows: the names of the classes present
            shown = ["+".join(dataset.classes[j] for j in np.flatnonzero(row)) for row in labels[chosen]]
        return PreviewSamples(shards[chosen], [int(i) for i in chosen], shown, source)
    try:
        images, labels = load_npz(source)
    except KeyError as err:  # a missing key: say so in one line, without KeyError's quotes
        raise DataError(err.args[0]) from None
    return _chosen(images, labels, samples, source)


def _chosen(images: np.ndarray, labels: np.ndarray, samples: int, source: str) -> PreviewSamples:
    chosen = spread_over_classes(labels, samples)
    return PreviewSamples(
        np.ascontiguousarray(images[chosen]),
        [int(i) for i in chosen],
        [str(v) for v in labels[chosen]],
        source,
    )
