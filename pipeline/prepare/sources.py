"""What kind of source a PrepareConfig names, and the images of the array sources (digits, Keras, npz,
IDX), which are copied rather than decoded."""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from pipeline.errors import ConfigError, DataError, SourceNotFoundError
from pipeline.ingest.arrays import IDX_IMAGES, ArrayPart, idx_parts, keras_parts, npz_parts
from pipeline.ingest.bundled import load_bundled_digits
from pipeline.ingest.sources import fetch_keras_dataset

if TYPE_CHECKING:  # not imported at run time: decoding workers then start without pydantic
    from pipeline.config import PrepareConfig

FILE_KINDS = ("folders", "manifest")  # sources of image files; the others are arrays
NAMED_KINDS = ("digits", "keras")  # sources named (digits, keras:<name>), not found at a path


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
        return "idx" if any(IDX_IMAGES.search(p.name) for p in path.iterdir()) else "folders"
    if path.suffix.lower() == ".csv":
        return "manifest"
    if path.suffix.lower() == ".npz":
        return "npz"
    if IDX_IMAGES.search(path.name):
        return "idx"
    raise ConfigError(
        f"cannot tell what kind of source {cfg.source} is: expected a folder, a .csv manifest, an .npz "
        "file, an IDX images file, 'digits' or 'keras:<name>' (or set kind)"
    )


def with_absolute_paths(cfg: PrepareConfig) -> PrepareConfig:
    """``cfg`` with ``out`` and a path source made absolute, so that workers started in another
    folder (a Dask cluster's) find the same files; a missing source raises here."""
    update = {"out": os.path.abspath(cfg.out)}
    if resolve_kind(cfg) not in NAMED_KINDS:
        update["source"] = os.path.abspath(cfg.source)
    return cfg.model_copy(update=update)


def shadowed_path_notice(cfg: PrepareConfig) -> str | None:
    """What to tell when ``cfg.source`` is a name (``digits``, ``keras:<name>``) and also a path here:
    the name wins, as documented wherever the command runs, and the path is not read (``./digits``
    reads it); None when no such path exists, or when it is ``cfg.out`` (``--out digits``)."""
    if cfg.kind != "auto" or resolve_kind(cfg) not in NAMED_KINDS or not os.path.lexists(cfg.source):
        return None
    path = os.path.abspath(cfg.source)
    if path == os.path.abspath(cfg.out):
        return None
    name = cfg.source.split(":", 1)[-1]
    what = "scikit-learn's bundled digits" if cfg.source == "digits" else f"Keras's {name} from its cache"
    found = "folder" if os.path.isdir(path) else "file"
    return (
        f"source {cfg.source!r} was read as {what}, not as the {found} {path}: a source's name wins over "
        f"a path; give ./{cfg.source} (or its absolute path) to prepare that {found}"
    )


class ArraySource(NamedTuple):
    """An array source's rows: uint8 (N, H, W, C) images, and each row's label, key, and the split the
    source gives it (None: none; IDX train- and t10k- files, a Keras dataset's train and test, an
    .npz's x_train and x_test give them, as split folders give their files')."""

    images: np.ndarray
    labels: list[str]
    keys: list[str]
    splits: list[str | None]


def load_arrays(kind: str, source: str, download: bool = False) -> ArraySource:
    """An array source's rows. Cached per process.

    download: fetch a Keras dataset that Keras's cache lacks first (PrepareConfig.download).
    """
    if download and kind == "keras":
        fetch_keras_dataset(source.split(":", 1)[1])
    return _load_arrays(kind, source)


@functools.lru_cache(maxsize=2)  # keyed without ``download``: one copy whether it was fetched or not
def _load_arrays(kind: str, source: str) -> ArraySource:
    prefix, parts = _parts(kind, source)
    for part in parts:
        if part.images.dtype != np.uint8:
            which = f" ({part.name})" if part.name else ""
            raise DataError(f"{source}: images{which} must be uint8 0-255, but got {part.images.dtype}")
    sizes = {part.images.shape[1:] for part in parts}
    if len(sizes) > 1:
        shapes = ", ".join(f"{part.name} {part.images.shape[1:]}" for part in parts)
        raise DataError(f"{source}: its parts hold images of several shapes ({shapes}); expected one")
    # A key is (source, part, row): mnist:train:0, arr.npz:3, t10k:17, digits:5.
    keys = [
        ":".join(filter(None, (prefix, part.name, str(i)))) for part in parts for i in range(len(part.images))
    ]
    return ArraySource(
        parts[0].images if len(parts) == 1 else np.concatenate([part.images for part in parts]),
        [str(v) for part in parts for v in part.labels.tolist()],
        keys,
        [part.split for part in parts for _ in range(len(part.images))],
    )


def _parts(kind: str, source: str) -> tuple[str, list[ArrayPart]]:
    """The parts of an array source, and what its keys start with."""
    if kind == "digits":
        images, labels, _ = load_bundled_digits()
        return "digits", [ArrayPart("", images, labels)]
    if kind == "keras":
        name = source.split(":", 1)[1]
        return name, keras_parts(name)
    if kind == "npz":
        return Path(source).name, npz_parts(source)
    if kind == "idx":
        return "", idx_parts(source)
    raise ValueError(f"{kind} is not an array source")
