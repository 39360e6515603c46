"""The records a preparation passes between its steps: small, typed, and cheap to pickle to a worker."""

from __future__ import annotations

import gc
import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np


class LeftOut(NamedTuple):
    """Why the scan left an item out: decoding quarantines it with this reason, without reading it."""

    reason: str
    message: str


class Item(NamedTuple):
    """One sample to prepare: a file (``path``) or a row of an array source (``row``); with
    ``left_out``, one that the scan refused (a FIFO, a symlink not followed, an unreadable folder, a
    manifest's conflicting labels), listed as quarantined without being read. ``split``: the split
    the source gives it (a split folder, a manifest's split column, the part of an array source),
    None when it gives none.

    A named tuple rather than a dataclass: a source can list a million of them, and a tuple is made
    and pickled to a worker in half the time.
    """

    key: str
    labels: tuple[str, ...]
    path: str | None = None
    row: int | None = None
    left_out: LeftOut | None = None
    split: str | None = None


class Quarantined(NamedTuple):
    """An item left out of the version, and why; the report lists it as a JSON object of these fields."""

    key: str
    reason: str
    message: str


class Row(NamedTuple):
    """One kept image on its way into a version: where its pixels are staged and the split it goes to."""

    key: str
    digest: str  # content_hash of the file (or of the array row)
    labels: tuple[str, ...]
    chunk: str  # the staging chunk .npy that holds its pixels
    chunk_row: int  # its row in that chunk
    split: str
    given: str | None  # the split the source gives it, if any


@dataclass(frozen=True)
class RunDirs:
    """Where one preparation run writes: the dataset folder, and this run's staging folder in it."""

    out: Path
    staging: Path
    run_id: str


@dataclass
class ChunkRecord:
    """What decoding one chunk produced: small enough to travel between processes."""

    chunk_id: int
    pixels: str | None  # staging .npy with one row per kept item, in ``keys`` order
    keys: list[str] = field(default_factory=list)
    hashes: list[str] = field(default_factory=list)
    labels: list[tuple[str, ...]] = field(default_factory=list)
    quarantined: list[Quarantined] = field(default_factory=list)
    splits: list[str] = field(default_factory=list)
    given: list[str | None] = field(default_factory=list)  # the split the source gives each key, if any
    decoded: int = 0
    reused: int = 0
    train_histogram: np.ndarray | None = None  # (channels, 256) pixel counts of the rows split to train
    listing: str = "[]"  # keys, hashes, labels, given splits as JSON: its part of the run's fingerprint
    gray_in_color: int = 0  # kept images of 3 or 4 channels whose colours are equal (any alpha opaque)
    downscaled: int = 0  # images decoded here that shrank hints.DOWNSCALE_HINT times or more
    largest_downscale: float = 0.0  # the most any image decoded here shrank


@dataclass
class PrepareResult:
    """The version a preparation wrote (or found unchanged), and its report (report.json's content)."""

    version_dir: Path
    report: dict[str, Any]
    unchanged: bool = False


def content_hash(data: bytes) -> str:
    """What identifies an image's bytes (and a run's listing) across runs."""
    return hashlib.blake2b(data, digest_size=16).hexdigest()


@contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic garbage collection inside. Making a few hundred thousand small records otherwise
    sets off collections that walk every live object, which doubles the time it takes; the records
    made here hold no reference cycles."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
