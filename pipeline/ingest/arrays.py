"""Array sources (an .npz archive, IDX files, a Keras dataset) as parts: each part's images and labels,
and the split the source gives them, as a split folder gives its files'.

>>> [(part.name, part.split, len(part.images)) for part in idx_parts("mnist/")]
[('t10k', 'test', 10000), ('train', 'train', 60000)]
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import NamedTuple

import numpy as np

from pipeline.errors import DataError
from pipeline.ingest.formats import GIVEN_SPLIT_NAMES
from pipeline.ingest.idx import load_idx_dataset
from pipeline.ingest.sources import load_keras_dataset

# An IDX images file's name (train-images-idx3-ubyte.gz); its labels file replaces images by labels
# and idx3 by idx1.
IDX_IMAGES = re.compile(r"images[-.]idx3[-.]ubyte")
# MNIST, Fashion-MNIST and KMNIST name their test files t10k- (ten thousand test images).
_IDX_SPLIT_WORDS = {**GIVEN_SPLIT_NAMES, "t10k": "test"}

_X_KEYS = ("x", "images", "x_train", "X", "data")
_Y_KEYS = ("y", "labels", "y_train", "Y", "targets")
# The names an archive's images and labels of one split take, paired: x_train with y_train,
# images_test with labels_test (Keras's mnist.npz holds x_train, y_train, x_test, y_test).
_SPLIT_ARRAYS = (("x", "y"), ("images", "labels"), ("X", "Y"), ("data", "targets"))


class ArrayPart(NamedTuple):
    """One part of an array source: images (N, H, W, C), labels (N,), and the split the source gives
    them (None: none, the rows are cut by hash). ``name`` tells its rows from another part's
    (``train``, ``t10k``; empty for a source of one part)."""

    name: str
    images: np.ndarray
    labels: np.ndarray
    split: str | None = None


def _pick_key(
    keys: list[str], explicit: str | None, candidates: tuple[str, ...], what: str, path: str
) -> str:
    if explicit is not None:
        if explicit not in keys:
            raise KeyError(f"npz {path!r} has no {what} key {explicit!r}; keys present: {keys}")
        return explicit
    for key in candidates:
        if key in keys:
            return key
    raise KeyError(f"npz {path!r} has none of the {what} keys {list(candidates)}; keys present: {keys}")


def load_npz(
    path: str | os.PathLike[str], x_key: str | None = None, y_key: str | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, H, W, C) and labels from an .npz archive.

    Without explicit keys, images are looked up as x, images, x_train, X, data and labels as y, labels,
    y_train, Y, targets. Grayscale (N, H, W) images get a channel axis; uint8 and float images keep
    their dtype, other integer images become uint8 when they fit in 0-255. :func:`npz_parts` reads
    every split of an archive that holds several (x_train and x_test).
    """
    name = os.fspath(path)
    with np.load(path, allow_pickle=False) as archive:
        keys = list(archive.files)
        x_key = _pick_key(keys, x_key, _X_KEYS, "image", name)
        y_key = _pick_key(keys, y_key, _Y_KEYS, "label", name)
        return _checked(name, archive, x_key, y_key)


def _checked(
    name: str, archive: np.lib.npyio.NpzFile, x_key: str, y_key: str
) -> tuple[np.ndarray, np.ndarray]:
    """An archive's images with a channel axis, as uint8 or float, and their labels, as many."""
    images, labels = archive[x_key], archive[y_key]
    what = f"npz {name!r} images {x_key!r}"
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4:
        raise DataError(f"{what} must be (N, H, W) or (N, H, W, C); got shape {images.shape}")
    if np.issubdtype(images.dtype, np.integer) and images.dtype != np.uint8:
        if images.size and (images.min() < 0 or images.max() > 255):
            raise DataError(
                f"{what} are {images.dtype} with range [{images.min()}, {images.max()}]; "
                "expected uint8 values 0-255 or floats"
            )
        images = images.astype(np.uint8)
    elif not (images.dtype == np.uint8 or np.issubdtype(images.dtype, np.floating)):
        raise DataError(f"{what} have dtype {images.dtype}; expected uint8 or float")
    if len(images) != len(labels):
        raise DataError(
            f"npz {name!r} has {len(images)} images but {len(labels)} labels ({x_key!r}, {y_key!r})"
        )
    return images, labels


def npz_parts(path: str | os.PathLike[str]) -> list[ArrayPart]:
    """An .npz archive's splits, when it holds them as Keras's mnist.npz does (x_train, y_train,
    x_test, y_test; also images_/labels_, X_/Y_, data_/targets_, with the suffixes _train, _val,
    _valid, _validation, _test), one part each; else its one set of images and labels
    (:func:`load_npz`), a part without a split."""
    name = os.fspath(path)
    with np.load(path, allow_pickle=False) as archive:
        keys = list(archive.files)
        given = _split_keys(name, keys)
        if not given:
            return [ArrayPart("", *load_npz(path))]
        return [
            ArrayPart(word, *_checked(name, archive, x_key, y_key), split)
            for split, (word, x_key, y_key) in given.items()
        ]


def _split_keys(name: str, keys: list[str]) -> dict[str, tuple[str, str, str]]:
    """Each split an archive's keys give: (its suffix, the images key, the labels key)."""
    given: dict[str, tuple[str, str, str]] = {}
    for x, y in _SPLIT_ARRAYS:
        for word, split in GIVEN_SPLIT_NAMES.items():
            x_key, y_key = f"{x}_{word}", f"{y}_{word}"
            if x_key not in keys:
                continue
            if y_key not in keys:
                raise DataError(
                    f"npz {name!r} holds the images {x_key!r} but not their labels {y_key!r}; "
                    f"keys present: {keys}"
                )
            if split in given:
                raise DataError(
                    f"npz {name!r} holds {given[split][1]!r} and {x_key!r}, which both give the {split} "
                    "split: keep one of them"
                )
            given[split] = (word, x_key, y_key)
    whole = [key for key in _X_KEYS if key in keys and key not in {x for _, x, _ in given.values()}]
    if given and whole:
        raise DataError(
            f"npz {name!r} holds the images {whole[0]!r} beside the split images "
            f"{', '.join(repr(x) for _, x, _ in given.values())}: an archive holds either one set "
            "(x, y) or one per split (x_train, y_train, x_test, y_test), not both"
        )
    return given


def idx_parts(path: str | os.PathLike[str]) -> list[ArrayPart]:
    """IDX images files and their labels files, as parts named by what comes before ``-images``
    (train, t10k). In a folder, each file's name gives its split by its last word (train-, t10k-
    and test- give train, test and test; emnist-digits-train- gives train), when every file's does;
    some files giving splits beside others that do not, or two files for one split, are refused
    (DataError). A single images file gives no split: its rows are cut by hash."""
    source = Path(path)
    if not source.is_dir():
        return [_idx_part(source, None)]
    files = sorted(p for p in source.iterdir() if IDX_IMAGES.search(p.name))
    splits = {f: _IDX_SPLIT_WORDS.get(re.split(r"[-._]", _idx_name(f))[-1].lower()) for f in files}
    given = {f: split for f, split in splits.items() if split is not None}
    if given and len(given) < len(files):
        others = ", ".join(f.name for f in files if f not in given)
        raise DataError(
            f"IDX folder {os.fspath(path)!r} holds {', '.join(f.name for f in given)}, whose names give "
            f"splits, beside {others}, whose names give none: either the last word before -images of "
            f"every images file's name is a split ({', '.join(_IDX_SPLIT_WORDS)}, any case), or none is"
        )
    by_split: dict[str, list[str]] = {}
    for f, split in given.items():
        by_split.setdefault(split, []).append(f.name)
    twice = {split: names for split, names in by_split.items() if len(names) > 1}
    if twice:
        split, names = next(iter(twice.items()))
        raise DataError(
            f"IDX folder {os.fspath(path)!r} holds {' and '.join(names)}, which all give the {split} "
            "split: keep one dataset's files in the folder (or give one images file as the source)"
        )
    return [_idx_part(f, splits[f]) for f in files]


def _idx_name(images_file: Path) -> str:
    """What comes before ``images-idx3-ubyte`` in a file's name, or its name."""
    return IDX_IMAGES.split(images_file.name)[0].rstrip("-.") or images_file.name


def _idx_part(images_file: Path, split: str | None) -> ArrayPart:
    labels_file = images_file.with_name(images_file.name.replace("images", "labels").replace("idx3", "idx1"))
    return ArrayPart(_idx_name(images_file), *load_idx_dataset(images_file, labels_file), split)


def keras_parts(name: str) -> list[ArrayPart]:
    """keras.datasets.<name>.load_data()'s train and test parts, from Keras's cache (see
    :func:`pipeline.ingest.sources.load_keras_dataset`)."""
    (x_train, y_train), (x_test, y_test) = load_keras_dataset(name)
    return [ArrayPart("train", x_train, y_train, "train"), ArrayPart("test", x_test, y_test, "test")]
