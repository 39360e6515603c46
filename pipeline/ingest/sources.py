"""Where images come from: class folders, CSV manifests, npz archives and the Keras dataset cache."""

from __future__ import annotations

import csv
import importlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.ingest.decode import file_extension

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".tif", ".tiff", ".webp", ".gif"})

# Files that keras.datasets.<name>.load_data() (Keras 3) looks for under <keras home>/datasets before
# it downloads anything; all of them present means the call stays offline.
KERAS_CACHE_FILES: dict[str, tuple[str, ...]] = {
    "mnist": ("mnist.npz",),
    "fashion_mnist": tuple(
        f"fashion-mnist/{name}"
        for name in (
            "train-labels-idx1-ubyte.gz",
            "train-images-idx3-ubyte.gz",
            "t10k-labels-idx1-ubyte.gz",
            "t10k-images-idx3-ubyte.gz",
        )
    ),
    "cifar10": ("cifar-10-batches-py-target_archive",),
    "cifar100": ("cifar-100-python-target_archive",),
}

_X_KEYS = ("x", "images", "x_train", "X", "data")
_Y_KEYS = ("y", "labels", "y_train", "Y", "targets")


@dataclass(frozen=True)
class Sample:
    """One image file and its labels (one for single-label data, several for multi-label)."""

    path: str
    labels: tuple[str, ...]


def _image_files(folder: str, follow_links: bool) -> list[str]:
    """Paths of the image files at any depth under folder, unsorted; unreadable folders are skipped.

    os.scandir's entries know their type from the listing itself, so no file costs a stat call (an
    lstat per file to spot links was as costly as the rest of the scan).
    """
    found: list[str] = []
    pending = [folder]
    while pending:
        try:
            entries = os.scandir(pending.pop())
        except OSError:
            continue  # as os.walk does
        with entries:
            for entry in entries:
                if not follow_links and entry.is_symlink():
                    continue
                if entry.is_dir():
                    pending.append(entry.path)
                    continue
                if file_extension(entry.name) in IMAGE_EXTENSIONS:
                    found.append(entry.path)
    return found


def class_folder_files(
    root: str | os.PathLike[str], follow_links: bool = False
) -> list[tuple[str, list[str]]]:
    """(class, its image paths sorted) for each first-level folder of root that holds images, by class.

    Files in nested subfolders belong to their first-level folder; extensions are case-insensitive.
    """
    if not os.path.isdir(root):
        raise FileNotFoundError(f"class-folder root {os.fspath(root)!r} does not exist or is not a folder")
    with os.scandir(root) as entries:
        class_dirs = sorted(
            (e for e in entries if e.is_dir() and (follow_links or not e.is_symlink())), key=lambda e: e.name
        )
    found = [(d.name, sorted(_image_files(d.path, follow_links))) for d in class_dirs]
    found = [(name, paths) for name, paths in found if paths]
    if not found:
        raise ValueError(
            f"no images under {os.fspath(root)!r} in {len(class_dirs)} class folders; "
            f"looked for extensions {sorted(IMAGE_EXTENSIONS)}"
        )
    return found


def scan_class_folders(root: str | os.PathLike[str], follow_links: bool = False) -> list[Sample]:
    """One Sample per image under root/<class>/..., class = first-level folder, sorted by class then path.

    Files in nested subfolders belong to their first-level folder; extensions are case-insensitive.
    """
    return [Sample(path, (name,)) for name, paths in class_folder_files(root, follow_links) for path in paths]


def read_manifest(
    csv_path: str | os.PathLike[str],
    path_column: str = "path",
    label_column: str = "label",
    label_separator: str = " ",
    allow_outside_root: bool = False,
) -> list[Sample]:
    """Samples listed in a CSV manifest; relative paths are resolved against the manifest's folder.

    A label cell holding several labels separated by `label_separator` gives a multi-label Sample.
    Absolute paths and paths that leave the manifest's folder are refused unless allow_outside_root,
    so a shared manifest cannot make the pipeline read arbitrary files.
    """
    csv_file = Path(csv_path)
    root = csv_file.parent.resolve()
    with open(csv_file, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        columns = reader.fieldnames or []
        missing = [c for c in (path_column, label_column) if c not in columns]
        if missing:
            raise ValueError(
                f"manifest {os.fspath(csv_path)!r} lacks columns {missing}; found columns {columns}"
            )
        rows = list(reader)
    samples: list[Sample] = []
    outside: list[str] = []
    # Row numbers count the header as row 1, as a spreadsheet shows them.
    for row_number, row in enumerate(rows, start=2):
        raw_path = (row[path_column] or "").strip()
        if not raw_path:
            raise ValueError(
                f"manifest {os.fspath(csv_path)!r} row {row_number} has an empty {path_column!r}"
            )
        given = Path(raw_path)
        resolved = (root / given).resolve()
        if not allow_outside_root and (given.is_absolute() or not resolved.is_relative_to(root)):
            outside.append(f"row {row_number}: {raw_path}")
        labels = tuple(label for label in (row[label_column] or "").split(label_separator) if label)
        samples.append(Sample(os.fspath(resolved), labels))
    if outside:
        raise ValueError(
            f"manifest {os.fspath(csv_path)!r} has {len(outside)} paths outside its folder "
            f"{os.fspath(root)!r} "
            f"(pass allow_outside_root=True to accept them): {'; '.join(outside)}"
        )
    return samples


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
    their dtype, other integer images become uint8 when they fit in 0-255.
    """
    name = os.fspath(path)
    with np.load(path, allow_pickle=False) as archive:
        keys = list(archive.files)
        images = archive[_pick_key(keys, x_key, _X_KEYS, "image", name)]
        labels = archive[_pick_key(keys, y_key, _Y_KEYS, "label", name)]
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4:
        raise ValueError(f"npz {name!r} images must be (N, H, W) or (N, H, W, C); got shape {images.shape}")
    if np.issubdtype(images.dtype, np.integer) and images.dtype != np.uint8:
        if images.size and (images.min() < 0 or images.max() > 255):
            raise ValueError(
                f"npz {name!r} images are {images.dtype} with range [{images.min()}, {images.max()}]; "
                "expected uint8 values 0-255 or floats"
            )
        images = images.astype(np.uint8)
    elif not (images.dtype == np.uint8 or np.issubdtype(images.dtype, np.floating)):
        raise ValueError(f"npz {name!r} images have dtype {images.dtype}; expected uint8 or float")
    if len(images) != len(labels):
        raise ValueError(f"npz {name!r} has {len(images)} images but {len(labels)} labels")
    return images, labels


def keras_datasets_dir() -> Path:
    """The folder keras.datasets caches into, found the way Keras 3 finds it, without importing Keras."""
    if "KERAS_HOME" in os.environ:
        base = os.environ["KERAS_HOME"]
    else:
        home = os.path.expanduser("~")
        base = os.path.join(home if os.access(home, os.W_OK) else "/tmp", ".keras")
    base = os.path.expanduser(base)
    if not os.access(base, os.W_OK):
        # Keras's get_file falls back to /tmp/.keras when the base is not writable.
        base = os.path.join("/tmp", ".keras")
    return Path(base, "datasets")


def load_keras_dataset(
    name: str, allow_download: bool = False
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """keras.datasets.<name>.load_data() if its files are cached (or allow_download), images as (N, H, W, C).

    Labels are flattened to int64 (N,). Without allow_download a missing cache raises FileNotFoundError
    instead of silently fetching tens of megabytes.
    """
    if name not in KERAS_CACHE_FILES:
        raise ValueError(f"unknown Keras dataset {name!r}; expected one of {sorted(KERAS_CACHE_FILES)}")
    cache_dir = keras_datasets_dir()
    missing = [f for f in KERAS_CACHE_FILES[name] if not (cache_dir / f).exists()]
    if missing and not allow_download:
        raise FileNotFoundError(
            f"Keras dataset {name!r} is not cached: {[os.fspath(cache_dir / f) for f in missing]} missing. "
            f"Pass allow_download=True to let keras.datasets.{name}.load_data() download it."
        )
    module = importlib.import_module(f"keras.datasets.{name}")
    (x_train, y_train), (x_test, y_test) = module.load_data()

    def tidy(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return (x[..., None] if x.ndim == 3 else x), np.asarray(y).reshape(-1).astype(np.int64)

    return tidy(x_train, y_train), tidy(x_test, y_test)
