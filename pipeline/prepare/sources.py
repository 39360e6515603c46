"""What kind of source a PrepareConfig names, and the images of the array sources (digits, Keras, npz,
IDX), which are copied rather than decoded."""

from __future__ import annotations

import functools
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from pipeline.errors import ConfigError, DataError, SourceNotFoundError
from pipeline.ingest import load_bundled_digits, load_idx_dataset, load_keras_dataset, load_npz
from pipeline.ingest.sources import fetch_keras_dataset

if TYPE_CHECKING:  # not imported at run time: decoding workers then start without pydantic
    from pipeline.config import PrepareConfig

FILE_KINDS = ("folders", "manifest")  # sources of image files; the others are arrays
_IDX_IMAGES = re.compile(r"images[-.]idx3[-.]ubyte")


def resolve_kind(cfg: PrepareConfig) -> str:
    """``cfg.kind``, or the kind its source is when that is "auto"; a missing source raises here."""
    if cfg.kind != "auto":
        return cfg.kind
    if cfg.source == "digits":
        return "digits"
    if cfg.source.startswith("keras:"):
        return "keras"
    path = Path(cfg.source)
    if not path.exists():
        raise SourceNotFoundError(cfg.source)
    if path.is_dir():
        return "idx" if any(_IDX_IMAGES.search(p.name) for p in path.iterdir()) else "folders"
    if path.suffix.lower() == ".csv":
        return "manifest"
    if path.suffix.lower() == ".npz":
        return "npz"
    if _IDX_IMAGES.search(path.name):
        return "idx"
    raise ConfigError(
        f"cannot tell what kind of source {cfg.source} is: expected a folder, a .csv manifest, an .npz "
        "file, an IDX images file, 'digits' or 'keras:<name>' (or set kind)"
    )


def with_absolute_paths(cfg: PrepareConfig) -> PrepareConfig:
    """``cfg`` with ``out`` and a path source made absolute, so that workers started in another
    folder (a Dask cluster's) find the same files; a missing source raises here."""
    update = {"out": os.path.abspath(cfg.out)}
    if resolve_kind(cfg) not in ("digits", "keras"):
        update["source"] = os.path.abspath(cfg.source)
    return cfg.model_copy(update=update)


def load_arrays(kind: str, source: str, download: bool = False) -> tuple[np.ndarray, list[str], list[str]]:
    """An array source as uint8 (N, H, W, C) images, their labels and their keys. Cached per process.

    download: fetch a Keras dataset that Keras's cache lacks first (PrepareConfig.download).
    """
    if download and kind == "keras":
        fetch_keras_dataset(source.split(":", 1)[1])
    return _load_arrays(kind, source)


@functools.lru_cache(maxsize=2)  # keyed without ``download``: one copy whether it was fetched or not
def _load_arrays(kind: str, source: str) -> tuple[np.ndarray, list[str], list[str]]:
    if kind == "digits":
        images, labels, _ = load_bundled_digits()
        return images, [str(v) for v in labels], [f"digits:{i}" for i in range(len(images))]
    if kind == "keras":
        name = source.split(":", 1)[1]
        (xa, ya), (xb, yb) = load_keras_dataset(name)
        images = np.concatenate([xa, xb])
        keys = [f"{name}:train:{i}" for i in range(len(xa))] + [f"{name}:test:{i}" for i in range(len(xb))]
        return _uint8(images, source), [str(v) for v in np.concatenate([ya, yb])], keys
    if kind == "npz":
        images, labels = load_npz(source)
        return (
            _uint8(images, source),
            [str(v) for v in labels],
            [f"{Path(source).name}:{i}" for i in range(len(images))],
        )
    if kind == "idx":
        path = Path(source)
        image_files = (
            sorted(p for p in path.iterdir() if _IDX_IMAGES.search(p.name)) if path.is_dir() else [path]
        )
        parts: list[np.ndarray] = []
        texts: list[str] = []
        keys = []
        for f in image_files:
            label_file = f.with_name(f.name.replace("images", "labels").replace("idx3", "idx1"))
            x, y = load_idx_dataset(f, label_file)
            stem = _IDX_IMAGES.split(f.name)[0].rstrip("-.") or f.name
            parts.append(x)
            texts += [str(v) for v in y]
            keys += [f"{stem}:{i}" for i in range(len(x))]
        return np.concatenate(parts), texts, keys
    raise ValueError(f"{kind} is not an array source")


def _uint8(images: np.ndarray, source: str) -> np.ndarray:
    if images.ndim == 3:
        images = images[..., None]
    if images.dtype != np.uint8:
        raise DataError(f"{source}: images must be uint8 0-255, but got {images.dtype}")
    return images
