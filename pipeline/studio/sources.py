"""The images the studio shows: a few of a source's, spread over its classes, and what the source is.

Sources are the bundled ``digits`` and ``photos``, and what lies in the one folder the studio was
given: the folder itself or, below it, prepared datasets, class folders and ``.npz`` files. A path
source is named by its path relative to that folder (``.`` for the folder itself).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from pipeline.dataset import PreparedDataset
from pipeline.errors import ConfigError, DataError
from pipeline.ingest import (
    decode_image,
    load_bundled_digits,
    load_bundled_photos,
    load_npz,
    scan_class_folders,
)
from pipeline.ingest.formats import GIVEN_SPLIT_NAMES, IMAGE_EXTENSIONS
from pipeline.preview import spread_over_classes
from pipeline.store import current_version
from pipeline.studio.paths import inside

BUNDLED = ("digits", "photos")
MAX_CLASSES_SHOWN = 100
MAX_ENTRIES_SCANNED = 2_000  # discovery reads at most this many folder entries: a huge tree stays quick
DISCOVERY_DEPTH = 2
# Training keys a sample by its index in the prepared train split; a source that is not prepared is
# indexed by its own order, so "epoch k" is exact only for a prepared dataset.
UNPREPARED_NOTE = (
    "samples are numbered in the source's own order; training numbers them in its prepared train split, "
    "so epoch k is exact for a prepared dataset"
)


@dataclass(frozen=True)
class SourceInfo:
    """What a source is: ``kind`` (digits, photos, prepared, folder, npz), how many images, their
    shape (H, W, C) and its class names (at most :data:`MAX_CLASSES_SHOWN`)."""

    id: str
    kind: str
    count: int
    shape: tuple[int, ...]
    classes: list[str]
    note: str = ""


@dataclass(frozen=True)
class StudioSamples:
    """uint8 (N, H, W, C) images, their indices in the source (training's sample indices for a
    prepared dataset's train split), their labels, and the source's description."""

    images: np.ndarray
    indices: list[int]
    labels: list[str]
    info: SourceInfo


def source_kind(path: Path) -> str | None:
    """``prepared``, ``npz`` or ``folder`` (a class-folder tree) for a usable path, else None."""
    if path.is_file():
        return "npz" if path.suffix.lower() == ".npz" else None
    if not path.is_dir():
        return None
    if current_version(path) is not None:
        return "prepared"
    return "folder" if _holds_class_folders(path) else None


def _holds_class_folders(path: Path) -> bool:
    """Whether some first-level folder of ``path`` holds an image file directly, or, for a split
    folder (train/, val/, test/), some folder in it does (a quick look, not a scan)."""
    seen = 0

    def images_in(folder: str, depth: int) -> bool:
        nonlocal seen
        with os.scandir(folder) as entries:
            for entry in entries:
                seen += 1
                if seen > MAX_ENTRIES_SCANNED:
                    return False
                if depth == 0 and Path(entry.name).suffix.lower() in IMAGE_EXTENSIONS:
                    return True
                if depth > 0 and entry.is_dir(follow_symlinks=False) and not entry.name.startswith("."):
                    split = depth == 2 and entry.name.lower() in GIVEN_SPLIT_NAMES
                    if images_in(entry.path, 1 if split else 0):
                        return True
        return False

    try:
        return images_in(os.fspath(path), 2)
    except OSError:
        return False


def discover(root: Path | None) -> list[str]:
    """The source ids to offer: the bundled ones, then ``root`` itself and what lies below it (at most
    :data:`DISCOVERY_DEPTH` folders down; symlinks and hidden entries are not followed)."""
    found = list(BUNDLED)
    if root is None:
        return found
    base = root.resolve()
    if source_kind(base) is not None:
        found.append(".")
    if not base.is_dir() or source_kind(base) in ("prepared", "folder"):
        return found
    queue, scanned = [(base, 0)], 0
    while queue:
        folder, depth = queue.pop(0)
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError:
            continue
        for entry in entries:
            scanned += 1
            if scanned > MAX_ENTRIES_SCANNED:
                return found
            if entry.name.startswith(".") or entry.is_symlink():
                continue
            path = Path(entry.path)
            kind = source_kind(path)
            if kind is not None:
                found.append(path.relative_to(base).as_posix())
            elif entry.is_dir() and depth + 1 < DISCOVERY_DEPTH:
                queue.append((path, depth + 1))
    return found


def load(root: Path | None, source_id: str, samples: int = 8) -> StudioSamples:
    """``samples`` images of source ``source_id``, spread over its classes (deterministic)."""
    if not 1 <= samples <= 64:
        raise ConfigError(f"samples must be between 1 and 64, but got {samples}")
    if source_id == "digits":
        images, labels, classes = load_bundled_digits()
        return _chosen(source_id, "digits", images, labels, classes, samples)
    if source_id == "photos":
        photos, names = load_bundled_photos()
        n = min(samples, len(photos))
        info = SourceInfo(source_id, "photos", len(photos), tuple(photos.shape[1:]), list(names))
        return StudioSamples(np.ascontiguousarray(photos[:n]), list(range(n)), list(names[:n]), info)
    if root is None:
        raise ConfigError(
            f"unknown source {source_id[:200]!r}: the studio was started without a source folder"
        )
    path = inside(root, source_id)
    kind = source_kind(path)
    if kind == "prepared":
        dataset = PreparedDataset(path)
        if "train" not in dataset.splits:
            raise DataError(f"{source_id}: the prepared dataset has no train split")
        train, labels = dataset.arrays("train")
        chosen = spread_over_classes(labels, samples)
        if labels.ndim == 1:
            shown = [dataset.classes[int(v)] for v in labels[chosen]]
        else:  # multi-hot rows: the classes present
            shown = ["+".join(dataset.classes[j] for j in np.flatnonzero(row)) for row in labels[chosen]]
        info = SourceInfo(
            source_id, kind, len(labels), tuple(dataset.image_shape), dataset.classes[:MAX_CLASSES_SHOWN]
        )
        return StudioSamples(np.ascontiguousarray(train[chosen]), [int(i) for i in chosen], shown, info)
    if kind == "npz":
        try:
            images, labels = load_npz(path)
        except KeyError as err:  # a missing key: one line, without KeyError's quotes
            raise DataError(f"{source_id}: {err.args[0]}") from None
        classes = [str(c) for c in np.unique(labels)] if labels.ndim == 1 else []
        return _chosen(source_id, kind, _as_uint8(images, source_id), labels, classes, samples)
    if kind == "folder":
        return _from_folder(source_id, path, samples)
    raise ConfigError(
        f"cannot show source {source_id[:200]!r}: expected 'digits', 'photos', a prepared dataset, "
        "a class folder or an .npz file under the studio's source folder"
    )


def _chosen(
    source_id: str, kind: str, images: np.ndarray, labels: np.ndarray, classes: list[str], samples: int
) -> StudioSamples:
    if images.ndim == 3:
        images = images[..., None]
    chosen = spread_over_classes(labels, samples)
    names = [classes[int(v)] if kind == "digits" else str(v) for v in labels[chosen]]
    info = SourceInfo(
        source_id, kind, len(images), tuple(images.shape[1:]), classes[:MAX_CLASSES_SHOWN], UNPREPARED_NOTE
    )
    return StudioSamples(np.ascontiguousarray(images[chosen]), [int(i) for i in chosen], names, info)


def _as_uint8(images: np.ndarray, source_id: str) -> np.ndarray:
    """uint8 images as they are; floats within 0-1 scaled to 0-255, others clipped to it."""
    images = np.asarray(images)
    if images.dtype == np.uint8:
        return images
    if images.dtype.kind not in "fiu":
        raise DataError(f"{source_id}: images must be numbers, but are {images.dtype}")
    scale = 255.0 if images.dtype.kind == "f" and float(images.max(initial=0)) <= 1.0 else 1.0
    return np.clip(np.rint(images * scale), 0, 255).astype(np.uint8)


def _from_folder(source_id: str, path: Path, samples: int) -> StudioSamples:
    """Decode a few files of a class-folder tree; images of other sizes are resized to the first's."""
    files = scan_class_folders(path)  # symlinks are not followed
    if not files:
        raise DataError(f"{source_id}: no images in its class folders")
    labels = np.array([s.labels[0] for s in files])
    chosen = spread_over_classes(labels, samples)
    images = [decode_image(files[int(i)].path) for i in chosen]
    size = images[0].shape[:2]
    resized = [im.shape[:2] != size for im in images]
    if any(resized):
        images = [cv2.resize(im, (size[1], size[0]), interpolation=cv2.INTER_AREA) if r else im
                  for im, r in zip(images, resized, strict=True)]  # fmt: skip
    resize_note = f"images of other sizes shown resized to {size[0]}x{size[1]}; " if any(resized) else ""
    note = resize_note + UNPREPARED_NOTE
    classes = sorted(set(labels.tolist()))
    info = SourceInfo(
        source_id, "folder", len(files), tuple(images[0].shape), classes[:MAX_CLASSES_SHOWN], note
    )
    return StudioSamples(np.stack(images), [int(i) for i in chosen], [str(labels[i]) for i in chosen], info)
