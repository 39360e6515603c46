"""Dataset preparation: scan, decode and validate in chunks, split, write a new version atomically.

The steps are plain functions so that a Prefect flow (``flows/prepare.py``) can run the chunks in
parallel, on threads or on a Dask cluster; chunks pass file paths and small records, not arrays.

The layout of the folder written (versions, CURRENT) is :mod:`pipeline.store`'s.
"""

from __future__ import annotations

import errno
import functools
import gc
import hashlib
import itertools
import json
import multiprocessing as mp
import os
import re
import shutil
import socket
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from operator import itemgetter
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import cv2
import numpy as np

from pipeline.errors import ConfigError, DataError, SourceNotFoundError
from pipeline.ingest import (
    ImageProblem,
    load_bundled_digits,
    load_idx_dataset,
    load_keras_dataset,
    load_npz,
    read_manifest,
)
from pipeline.ingest.decode import decode_checked, read_file, resize, validate_options
from pipeline.ingest.headers import group_by_size
from pipeline.ingest.sources import fetch_keras_dataset, scan_folders
from pipeline.io import write_atomic
from pipeline.store import (
    UNFINISHED,
    current_version,
    next_version_name,
    switch_current,
    unfinished_dir,
    version_dir,
    versions_dir,
)

if TYPE_CHECKING:  # not imported at run time: decoding workers then start without pydantic
    from pipeline.config import PrepareConfig

_FILE_KINDS = ("folders", "manifest")  # sources of image files; the others are arrays
# The largest file read as one image: 16 bytes a pixel of max_pixels (16-bit RGBA takes 8), and never
# less than this, for the metadata and the frames after the first that a small image may carry.
_MIN_FILE_BOUND = 1 << 30
_DISCARDED = ".discarded-"  # a failed run's staging folder, renamed on its way out
# Files of several sizes are refused once one file of each of two sizes decodes: at most this many
# files are tried in each of at most this many sizes.
_PROOF_FILES, _PROOF_GROUPS = 4, 8
_SIZES_NAMED, _FILES_NAMED = 5, 3  # in a mixed-size error: sizes listed, and files named for each
_IDX_IMAGES = re.compile(r"images[-.]idx3[-.]ubyte")


class LeftOut(NamedTuple):
    """Why the scan left an item out: decoding quarantines it with this reason, without reading it."""

    reason: str
    message: str


class Item(NamedTuple):
    """One sample to prepare: a file (``path``) or a row of an array source (``index``); with
    ``left_out``, one that the scan refused (a FIFO, a symlink not followed, an unreadable folder, a
    manifest's conflicting labels), listed as quarantined without being read.

    A named tuple rather than a dataclass: a source can list a million of them, and a tuple is made
    and pickled to a worker in half the time.
    """

    key: str
    labels: tuple[str, ...]
    path: str | None = None
    index: int | None = None
    left_out: LeftOut | None = None


class ChunkOptions(NamedTuple):
    """What decoding a chunk needs of a PrepareConfig, as plain values: a worker process that is
    sent these starts without importing pydantic and the config models, which is most of its start."""

    out: str
    kind: str
    source: str
    color_mode: str
    target_size: tuple[int, int] | None
    interpolation: str
    keep_aspect_ratio: bool
    max_pixels: int
    splits: dict[str, float]
    split_salt: str
    decode_fingerprint: str

    @classmethod
    def of(cls, cfg: PrepareConfig) -> ChunkOptions:
        return cls(
            cfg.out, resolve_kind(cfg), cfg.source, cfg.color_mode,
            tuple(cfg.target_size) if cfg.target_size is not None else None, cfg.interpolation,
            cfg.keep_aspect_ratio, cfg.max_pixels, dict(cfg.splits), cfg.split_salt, cfg.decode_fingerprint(),
        )  # fmt: skip


@dataclass(frozen=True)
class RunDirs:
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
    quarantined: list[dict[str, str]] = field(default_factory=list)
    splits: list[str] = field(default_factory=list)
    decoded: int = 0
    reused: int = 0
    train_histogram: np.ndarray | None = None  # (channels, 256) pixel counts of the rows split to train
    listing: str = "[]"  # keys, hashes and labels as JSON: this chunk's part of the run's fingerprint


@dataclass
class PrepareResult:
    version_dir: Path
    report: dict[str, Any]
    unchanged: bool = False


# ---- sources ------------------------------------------------------------------------------------
def resolve_kind(cfg: PrepareConfig) -> str:
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
        parts, labels, keys = [], [], []
        for f in image_files:
            label_file = f.with_name(f.name.replace("images", "labels").replace("idx3", "idx1"))
            x, y = load_idx_dataset(f, label_file)
            stem = _IDX_IMAGES.split(f.name)[0].rstrip("-.") or f.name
            parts.append(x)
            labels += [str(v) for v in y]
            keys += [f"{stem}:{i}" for i in range(len(x))]
        return np.concatenate(parts), labels, keys
    raise ValueError(f"{kind} is not an array source")


def _uint8(images: np.ndarray, source: str) -> np.ndarray:
    if images.ndim == 3:
        images = images[..., None]
    if images.dtype != np.uint8:
        raise DataError(f"{source}: images must be uint8 0-255, but got {images.dtype}")
    return images


@contextmanager
def _gc_paused() -> Iterator[None]:
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


def scan(cfg: PrepareConfig) -> list[Item]:
    """List every sample of the source with its labels. Without target_size, image files whose headers
    declare several sizes raise DataError here, before anything is written; nothing is decoded but
    a few of those files, to be sure that they would be kept."""
    with _gc_paused():
        return _scan(cfg)


def _scan(cfg: PrepareConfig) -> list[Item]:
    kind = resolve_kind(cfg)
    if kind == "folders":
        cut = len(os.path.join(cfg.source, ""))
        items: list[Item] = []
        make = Item._make  # tuple.__new__: a third faster than calling Item for each of a million files
        found = scan_folders(cfg.source, follow_links=cfg.follow_links)
        for name, paths in found.classes:
            labels = (name,)  # one tuple for the class: also pickled once per chunk, not once per item
            items += [make((path[cut:], labels, path, None, None)) for path in paths]
        # Every file, folder and symlink left out is listed in the report with its reason.
        items += [Item(s.path, (), left_out=LeftOut(s.reason, s.message)) for s in found.skipped]
        _refuse_mixed_sizes(cfg, items, checked=True)
        return items
    if kind == "manifest":
        manifest = read_manifest(cfg.source, allow_outside_root=cfg.allow_outside_root)
        key, make = manifest.key, Item._make
        items = [make((key(path), labels, path, None, None)) for path, labels in manifest.labels.items()]
        items += [
            Item(key(rows.path), (), rows.path, left_out=LeftOut(rows.reason, rows.message))
            for rows in manifest.left_out
        ]
        _refuse_mixed_sizes(cfg, items, checked=False)
        return items
    _, labels, keys = load_arrays(kind, cfg.source, cfg.download)
    return [Item(k, (lab,), index=i) for i, (k, lab) in enumerate(zip(keys, labels, strict=True))]


def _refuse_mixed_sizes(cfg: PrepareConfig, items: list[Item], checked: bool) -> None:
    """Without target_size every image must decode to one size: refuse files that do not from their
    headers (9 us a small JPEG), rather than after decoding them all. ``checked``: the scan saw that
    each file is a regular one."""
    if cfg.target_size is not None:
        return
    files = [item for item in items if item.left_out is None and item.path is not None]
    groups = group_by_size([item.path for item in files if item.path is not None], checked)
    if len(groups) > 1 and _decode_to_sizes(cfg, [[files[i] for i in g] for g in groups.values()], checked):
        keys = {size: [files[i].key for i in found] for size, found in groups.items()}
        raise DataError(mixed_sizes_message(keys, "by their headers"))


def _decode_to_sizes(cfg: PrepareConfig, groups: list[list[Item]], checked: bool) -> bool:
    """Whether the files of two groups decode to two sizes, decoding a few files of each of the
    largest groups: a file whose header reads may still be quarantined (truncated, too large), and
    only files that decoding keeps are worth refusing a source for."""
    decode = functools.partial(
        decode_checked, color_mode=cfg.color_mode, target_size=None, interpolation=cfg.interpolation,
        keep_aspect_ratio=False, max_pixels=cfg.max_pixels,
    )  # fmt: skip
    max_bytes = _max_file_bytes(cfg.max_pixels)
    sizes: set[tuple[int, ...]] = set()
    for group in sorted(groups, key=len, reverse=True)[:_PROOF_GROUPS]:
        for item in group[:_PROOF_FILES]:
            assert item.path is not None
            try:
                sizes.add(decode(read_file(item.path, checked, max_bytes), item.path).shape[:2])
                break
            except (ImageProblem, OSError):
                continue
        if len(sizes) > 1:
            return True
    return False


def mixed_sizes_message(keys_by_size: dict[tuple[int, int], list[str]], seen: str) -> str:
    """Why images of several sizes are refused without target_size: each size, its count and a few of
    its files (but for the most common size), and how to fix it. ``seen``: how the sizes were found."""
    ranked = sorted(keys_by_size.items(), key=lambda entry: (-len(entry[1]), entry[0]))
    parts = []
    for rank, ((height, width), keys) in enumerate(ranked[:_SIZES_NAMED]):
        part = f"{len(keys):,} {'is' if len(keys) == 1 else 'are'} {height}x{width}"
        if rank:
            more = f" and {len(keys) - _FILES_NAMED:,} more" if len(keys) > _FILES_NAMED else ""
            part += f" ({', '.join(keys[:_FILES_NAMED])}{more})"
        parts.append(part)
    if len(ranked) > _SIZES_NAMED:
        rest = sum(len(keys) for _, keys in ranked[_SIZES_NAMED:])
        parts.append(f"{rest:,} more in {len(ranked) - _SIZES_NAMED} other sizes")
    return (
        f"images differ in size ({seen}, height x width): {'; '.join(parts)}; set target_size "
        "(--target-size HEIGHTxWIDTH on the command line) to resize every image to one size"
    )


def _max_file_bytes(max_pixels: int) -> int:
    return max(16 * max_pixels, _MIN_FILE_BOUND)


def chunked(items: list[Item], size: int) -> list[list[Item]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


# ---- runs and chunks ------------------------------------------------------------------------------
def start_run(cfg: PrepareConfig) -> RunDirs:
    """Create this run's staging folder; leftovers of killed runs (their owner process is gone) are
    removed first, while a run still going in the same folder is left alone."""
    out = Path(cfg.out)
    versions_dir(out).mkdir(parents=True, exist_ok=True)
    for staging in out.glob(".staging-*"):
        if not _owner_alive(staging):
            run_id = staging.name.removeprefix(".staging-")
            shutil.rmtree(unfinished_dir(out, run_id), ignore_errors=True)
            shutil.rmtree(staging, ignore_errors=True)
    for doomed in out.glob(f"{_DISCARDED}*"):  # a run stopped while it was removing its files
        shutil.rmtree(doomed, ignore_errors=True)
    live = {p.name.removeprefix(".staging-") for p in out.glob(".staging-*")}
    for tmp in versions_dir(out).glob(f"{UNFINISHED}*"):
        if tmp.name.removeprefix(UNFINISHED) not in live:
            shutil.rmtree(tmp, ignore_errors=True)
    run_id = f"{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}"
    staging = out / f".staging-{run_id}"
    staging.mkdir()
    (staging / "owner").write_text(f"{socket.gethostname()} {os.getpid()}\n")
    return RunDirs(out, staging, run_id)


def _owner_alive(staging: Path) -> bool:
    try:
        host, pid = (staging / "owner").read_text().split()
    except (OSError, ValueError):
        return False
    if host != socket.gethostname():
        return True  # another machine's run: cannot tell, so keep it
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@functools.lru_cache(maxsize=4)
def _previous_index(version_dir: str, fingerprint: str) -> dict[str, tuple[str, int]]:
    """content hash -> (shard file, row) of the pixels an earlier version holds, if decoded alike."""
    manifest = json.loads((Path(version_dir) / "manifest.json").read_text())
    if manifest.get("decode_fingerprint") != fingerprint:
        return {}
    return {f["hash"]: (str(Path(version_dir) / f["shard"]), f["row"]) for f in manifest["files"]}


def _hash(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def decode_chunk(
    cfg: PrepareConfig | ChunkOptions, items: list[Item], staging: Path, chunk_id: int
) -> ChunkRecord:
    """Decode (or reuse from the current version, by content hash) one chunk; bad files are
    quarantined with their reason, never raised. Give ChunkOptions when sending it to a process."""
    if not isinstance(cfg, ChunkOptions):
        cfg = ChunkOptions.of(cfg)
    validate_options(cfg.color_mode, cfg.target_size, cfg.interpolation, cfg.max_pixels)
    decode = functools.partial(
        decode_checked, color_mode=cfg.color_mode, target_size=cfg.target_size,
        interpolation=cfg.interpolation, keep_aspect_ratio=cfg.keep_aspect_ratio, max_pixels=cfg.max_pixels,
    )  # fmt: skip
    record = ChunkRecord(chunk_id, None)
    keys, hashes, labels = record.keys, record.hashes, record.labels
    previous = current_version(cfg.out)
    reuse = _previous_index(str(previous), cfg.decode_fingerprint) if previous else {}
    arrays = None if cfg.kind in _FILE_KINDS else load_arrays(cfg.kind, cfg.source)[0]
    checked = cfg.kind == "folders"  # the scan saw that each file is a regular one: no stat needed
    max_bytes = _max_file_bytes(cfg.max_pixels)
    pixels: np.ndarray | None = None  # one row per kept item, allocated at the first one
    odd: dict[tuple[int, ...], list[str]] = {}  # keys of the images not of the first one's shape
    for item in items:
        if item.left_out is not None:
            record.quarantined.append({"key": item.key, **item.left_out._asdict()})
            continue
        try:
            if item.path is not None:
                data = read_file(item.path, checked, max_bytes)
                digest = _hash(data)
                if digest in reuse:
                    shard, row = reuse[digest]
                    image = np.array(_open_shard(shard)[row])
                    record.reused += 1
                else:
                    image = decode(data, item.path)
                    record.decoded += 1
            else:
                assert arrays is not None and item.index is not None
                image = arrays[item.index]
                if cfg.target_size is not None and image.shape[:2] != tuple(cfg.target_size):
                    image = resize(image, cfg.target_size, cfg.interpolation, cfg.keep_aspect_ratio, item.key)
                    image = image if image.ndim == 3 else image[..., None]
                digest = _hash(np.ascontiguousarray(image).tobytes())
                record.decoded += 1  # read from the array source
        except ImageProblem as err:
            record.quarantined.append({"key": item.key, "reason": err.reason, "message": str(err)})
            continue
        except OSError as err:
            record.quarantined.append(
                {"key": item.key, "reason": "unreadable", "message": f"{item.path}: {err}"}
            )
            continue
        # Copied into the chunk's array at once, rather than stacked at the end: the decoder's memory
        # is then used again while it is in the CPU's cache.
        if pixels is None:
            pixels = np.empty((len(items), *image.shape), np.uint8)
        if image.shape == pixels.shape[1:]:
            pixels[len(keys)] = image
        else:
            odd.setdefault(image.shape, []).append(item.key)
        keys.append(item.key)
        hashes.append(digest)
        labels.append(item.labels)
    split = _splitter(tuple(cfg.splits.items()), cfg.split_salt)
    record.splits = [split(key) for key in keys]
    record.listing = json.dumps(keys + hashes + ["\0".join(lab) for lab in labels])
    if odd:  # the scan refuses mixed sizes from the headers: this is for what they did not tell
        assert pixels is not None
        others = {key for group in odd.values() for key in group}
        odd[pixels.shape[1:]] = [key for key in keys if key not in others]
        raise DataError(
            mixed_sizes_message({shape[:2]: group for shape, group in odd.items()}, "after decoding")
        )
    if pixels is not None:
        kept = pixels[: len(record.keys)]
        # The train statistics are exact integer sums, so each chunk can count its own share here, in
        # parallel, rather than finalize reading every train pixel again.
        record.train_histogram = pixel_histogram(kept[[s == "train" for s in record.splits]])
        path = staging / f"chunk-{chunk_id:05d}.npy"
        with _naming_a_full_disk(staging):
            # Not make_parent: a discarded run's staging folder is renamed away so that this write fails.
            write_atomic(path, lambda tmp: np.save(tmp, kept), make_parent=False)
        record.pixels = str(path)
    return record


def pixel_histogram(images: np.ndarray) -> np.ndarray:
    """How many pixels of uint8 (n, H, W, C) images take each value, per channel: (C, 256) int64."""
    n, height, width, channels = images.shape
    rows = images.reshape(n * height, width, channels)  # one tall image, as cv2.calcHist takes it
    step = max(1, (1 << 24) // width)  # calcHist counts in float32, exact up to 2**24 pixels a call
    counts = np.zeros((channels, 256), np.int64)
    for start in range(0, len(rows), step):
        block = rows[start : start + step]
        for c in range(channels):
            counts[c] += cv2.calcHist([block], [c], None, [256], [0, 256]).astype(np.int64).ravel()
    return counts


def mean_std(histogram: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and standard deviation (0-255 scale) of the pixels a histogram counts."""
    values = np.arange(256, dtype=np.float64)
    count = max(int(histogram[0].sum()), 1)
    mean = histogram @ values / count
    return mean, np.sqrt(np.maximum(histogram @ values**2 / count - mean**2, 0))


@functools.lru_cache(maxsize=64)
def _open_shard(path: str) -> np.ndarray:
    return np.load(path, mmap_mode="r")


# ---- splitting and writing ---------------------------------------------------------------------------
def split_of(key: str, splits: dict[str, float], salt: str) -> str:
    """Stable split from a hash of the key: adding files never moves existing ones. Every class is
    cut at the same thresholds, so each split holds each class in the configured proportion."""
    return _splitter(tuple(splits.items()), salt)(key)


@functools.lru_cache(maxsize=8)
def _splitter(splits: tuple[tuple[str, float], ...], salt: str) -> Callable[[str], str]:
    """split_of for one configuration, with what does not depend on the key worked out once."""
    prefix = f"{salt}\0".encode()
    cuts = list(zip(itertools.accumulate(f for _, f in splits), (name for name, _ in splits), strict=True))
    last = splits[-1][0]
    sha256, from_bytes = hashlib.sha256, int.from_bytes

    def split(key: str) -> str:
        u = from_bytes(sha256(prefix + key.encode()).digest()[:8], "big") / 2**64
        for edge, name in cuts:
            if u < edge:
                return name
        return last

    return split


def finalize(cfg: PrepareConfig, run: RunDirs, records: list[ChunkRecord]) -> PrepareResult:
    """Split, report, write shards and manifest into a new version, then switch CURRENT to it."""
    try:
        with _gc_paused(), _naming_a_full_disk(run.out):
            return _finalize(cfg, run, records)
    except BaseException:
        discard_run(run)
        raise
    finally:
        _open_shard.cache_clear()  # release the staging files' mappings before deleting them
        shutil.rmtree(run.staging, ignore_errors=True)


def discard_run(run: RunDirs) -> None:
    """Remove what a failed or stopped run wrote (its staging folder and its unfinished version) now,
    rather than at the next run into the same folder: on a full disk, they would keep it full.

    Chunks may still be decoding on other threads: the staging folder is renamed first, so that their
    writes fail instead of refilling it, and removed until it is gone."""
    _open_shard.cache_clear()
    shutil.rmtree(unfinished_dir(run.out, run.run_id), ignore_errors=True)
    doomed = run.out / f"{_DISCARDED}{run.run_id}"
    try:
        os.replace(run.staging, doomed)
    except OSError:
        doomed = run.staging
    for _ in range(100):  # a write already past the rename lands within milliseconds
        shutil.rmtree(doomed, ignore_errors=True)
        if not doomed.exists():
            return
        time.sleep(0.02)


def _finalize(cfg: PrepareConfig, run: RunDirs, records: list[ChunkRecord]) -> PrepareResult:
    records = sorted(records, key=lambda r: r.chunk_id)
    rows = [
        (key, digest, labels, rec.pixels, i, split)
        for rec in records
        for i, (key, digest, labels, split) in enumerate(
            zip(rec.keys, rec.hashes, rec.labels, rec.splits, strict=True)
        )
    ]
    quarantined = [q for rec in records for q in rec.quarantined]
    if not rows:
        raise DataError(f"no usable image in {cfg.source}: {len(quarantined)} quarantined")
    shape_of = {p: _open_shard(p).shape[1:] for p in {r[3] for r in rows}}
    image_shape = shape_of[rows[0][3]]
    if len(set(shape_of.values())) > 1:  # each chunk is of one size, but they differ
        keys_by_size: dict[tuple[int, int], list[str]] = {}
        for r in rows:
            keys_by_size.setdefault(shape_of[r[3]][:2], []).append(r[0])
        raise DataError(mixed_sizes_message(keys_by_size, "after decoding"))
    rows.sort(key=itemgetter(0))
    distinct_labels = {labels for rec in records for labels in set(rec.labels)}  # a few, not one a row
    classes = sorted({lab for labels in distinct_labels for lab in labels})
    multi_label = any(len(labels) != 1 for labels in distinct_labels)
    _check_splits(cfg.source, cfg.splits, Counter(map(itemgetter(5), rows)))
    # The same bytes as json.dumps of the list of the chunks' lists, from the parts that the chunks
    # dumped in parallel.
    fingerprint = _hash(
        f"[{', '.join(rec.listing for rec in records)}]".encode()
        + repr((cfg.splits, cfg.split_salt, cfg.shard_size, cfg.decode_fingerprint())).encode()
    )
    previous = current_version(cfg.out)
    if previous is not None and (previous / "manifest.json").exists():
        old = json.loads((previous / "manifest.json").read_text())
        if old.get("fingerprint") == fingerprint:
            report = json.loads((previous / "report.json").read_text())
            report["unchanged"] = True
            report["quarantined"] = quarantined  # this run's: a manifest row may be new, its files not
            report["decoded"] = sum(r.decoded for r in records)
            report["reused"] = sum(r.reused for r in records)
            return PrepareResult(previous, report, unchanged=True)

    split_rows: dict[str, list[tuple[Any, ...]]] = {name: [] for name in cfg.splits}
    for r in rows:
        split_rows[r[5]].append(r)

    tmp = unfinished_dir(run.out, run.run_id)
    tmp.mkdir()
    files: list[dict[str, Any]] = []
    split_info: dict[str, Any] = {}
    for split, srows in split_rows.items():
        (tmp / split).mkdir()
        shards = []
        for s, start in enumerate(range(0, max(len(srows), 1), cfg.shard_size)):
            part = srows[start : start + cfg.shard_size]
            shard_name = f"{split}/images-{s:05d}.npy"
            _write_shard(tmp / shard_name, part, image_shape)
            # labels stay tuples: JSON writes them as the same lists, without a list made a row
            files += [
                {"key": key, "hash": digest, "labels": labels, "split": split, "shard": shard_name,
                 "row": row}
                for row, (key, digest, labels, _, _, _) in enumerate(part)
            ]  # fmt: skip
            shards.append(shard_name)
        labels_array = _label_array([r[2] for r in srows], classes, multi_label)
        np.save(tmp / split / "labels.npy", labels_array)
        counted = Counter(itertools.chain.from_iterable(map(itemgetter(2), srows)))
        split_info[split] = {
            "count": len(srows), "shards": shards, "class_counts": {c: counted[c] for c in classes}
        }  # fmt: skip

    histogram = sum(
        (r.train_histogram for r in records if r.train_histogram is not None),
        np.zeros((image_shape[-1], 256), np.int64),
    )
    mean, std = mean_std(histogram)
    report = _report(cfg, records, rows, split_rows, quarantined, classes)
    report["split_class_counts"] = {split: info["class_counts"] for split, info in split_info.items()}
    manifest = {
        "version": None,  # the number is taken when the version is moved in place (_publish)
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "run_id": run.run_id,
        "source": {"kind": resolve_kind(cfg), "path": cfg.source},
        "config": cfg.model_dump(mode="json"),
        "image_shape": list(image_shape),
        "classes": classes,
        "multi_label": multi_label,
        "splits": split_info,
        "stats": {"train_mean": mean.tolist(), "train_std": std.tolist(), "scale": "0-255"},
        "fingerprint": fingerprint,
        "decode_fingerprint": cfg.decode_fingerprint(),
        "packages": _versions(),
        "files": files,
        "quarantined": quarantined,
    }
    (tmp / "report.json").write_text(json.dumps(report, indent=2))
    return PrepareResult(_publish(run, tmp, manifest), report)


def _publish(run: RunDirs, tmp: Path, manifest: dict[str, Any]) -> Path:
    """Move the finished version in ``tmp`` to the next free ``versions/vNNNNN``, then switch CURRENT.

    A finalize running beside this one may take that number first: the rename then fails (a version
    folder is never empty) and the next number is tried, so that neither run loses its version.
    """
    while True:
        name = next_version_name(run.out)
        if manifest["version"] != name:
            manifest["version"] = name
            (tmp / "manifest.json").write_bytes(_compact_json(manifest))
        try:
            os.rename(tmp, version_dir(run.out, name))
            break
        except OSError as err:
            if err.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
    return switch_current(run.out, name)  # readers see the old or the new version, whole


class DiskFullError(OSError):
    """Writing failed for want of space (errno ENOSPC) or quota (EDQUOT); the message names the folder
    being written, without the "[Errno 28]" prefix."""

    def __str__(self) -> str:
        return str(self.strerror)


# numpy's message for a short write (array.tofile), which carries no errno: a full disk, in practice.
_SHORT_WRITE = re.compile(r"\d+ requested and \d+ written")


@contextmanager
def _naming_a_full_disk(folder: Path) -> Iterator[None]:
    """Turn a full disk's errors ("[Errno 28] ...", numpy's "1572864 requested and 515968 written")
    into one DiskFullError that says so and names ``folder``."""
    try:
        yield
    except OSError as err:
        quota = err.errno == getattr(errno, "EDQUOT", None)
        if err.errno == errno.ENOSPC or quota or (err.errno is None and _SHORT_WRITE.search(str(err))):
            what = "disk quota exceeded" if quota else "disk full"
            code = errno.EDQUOT if quota else errno.ENOSPC
            raise DiskFullError(code, f"{what} while writing {folder}") from err
        raise


def _check_splits(source: str, splits: dict[str, float], counts: Counter[str]) -> None:
    """Refuse a split that would be empty, before anything is written: training needs train, and a
    split asked for that gets no image (3 images cut at 0.8/0.1/0.1) is a mistake to fix, not to keep."""
    empty = [name for name in splits if not counts[name]]
    if empty:
        total = sum(counts.values())
        asked = ",".join(f"{name}={fraction:g}" for name, fraction in splits.items())
        raise DataError(
            f"{source}: {'split' if len(empty) == 1 else 'splits'} {' and '.join(empty)} would be empty: "
            f"{total} {'image' if total == 1 else 'images'} cut at {asked} by a hash of their keys give "
            f"{', '.join(f'{name} {counts[name]}' for name in splits)}; add images, or ask for fewer "
            "splits (e.g. --splits train=1.0, or splits: in a config file)"
        )


def _write_shard(path: Path, rows: list[tuple[Any, ...]], image_shape: tuple[int, ...]) -> None:
    """The pixels of ``rows``, gathered from their staging chunks, as one uint8 (n, *image_shape) .npy."""
    header = {"descr": "|u1", "fortran_order": False, "shape": (len(rows), *image_shape)}
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, header)
        # Rows in key order come from one staging chunk after another: copy them a run at a time.
        for pixels, run in itertools.groupby(rows, key=lambda r: r[3]):
            f.write(_open_shard(pixels)[[r[4] for r in run]].data)


def _compact_json(value: Any) -> bytes:
    """``json.dumps(value, separators=(",", ":"))``, by orjson (installed with Prefect) where it can.

    orjson writes a 70,000-file manifest in a tenth of the time. It writes non-ASCII text as UTF-8
    where json escapes it; such text goes to json, so that manifests stay ASCII for every reader.
    """
    try:
        import orjson

        data: bytes | None = orjson.dumps(value)
    except (ImportError, TypeError):  # no orjson, or a value that only json takes
        data = None
    if data is None or not data.isascii():
        data = json.dumps(value, separators=(",", ":")).encode()
    return data


def _label_array(labels: list[tuple[str, ...]], classes: list[str], multi_label: bool) -> np.ndarray:
    index = {c: i for i, c in enumerate(classes)}
    if not multi_label:
        return np.array([index[lab[0]] for lab in labels], dtype=np.int64)
    out = np.zeros((len(labels), len(classes)), np.uint8)
    for r, labs in enumerate(labels):
        out[r, [index[lab] for lab in labs]] = 1
    return out


def _report(
    cfg: PrepareConfig,
    records: list[ChunkRecord],
    rows: list[tuple[Any, ...]],
    split_rows: dict[str, list[tuple[Any, ...]]],
    quarantined: list[dict[str, str]],
    classes: list[str],
) -> dict[str, Any]:
    repeated = {digest for digest, n in Counter(map(itemgetter(1), rows)).items() if n > 1}
    groups: dict[str, list[tuple[str, str]]] = {}  # content hash -> (key, split) of each copy
    for r in rows:
        if r[1] in repeated:
            groups.setdefault(r[1], []).append((r[0], r[5]))
    duplicates = [sorted(key for key, _ in group) for group in groups.values()]
    leakage = [
        {"keys": keys, "splits": sorted({split for _, split in group})}
        for keys, group in zip(duplicates, groups.values(), strict=True)
        if len({split for _, split in group}) > 1
    ]
    counted = Counter(itertools.chain.from_iterable(map(itemgetter(2), rows)))
    totals = {c: counted[c] for c in classes}
    nonzero = [v for v in totals.values() if v]
    return {
        "images": len(rows),
        "quarantined": quarantined,
        "duplicates": duplicates,
        "leakage": leakage,
        "class_counts": totals,
        "split_counts": {s: len(v) for s, v in split_rows.items()},
        "imbalance": (max(nonzero) / min(nonzero)) if nonzero else None,
        "decoded": sum(r.decoded for r in records),
        "reused": sum(r.reused for r in records),
        "unchanged": False,
    }


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version  # here: workers never need it

    out = {"opencv": cv2.__version__, "numpy": np.__version__}
    for dist in ("augpipe", "pillow"):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            out[dist] = "not installed"
    return out


def summary_markdown(result: PrepareResult) -> str:
    """Counts per split and class, quarantined files and why, duplicates and leakage."""
    r = result.report
    lines = [
        f"# Prepared dataset {result.version_dir.name}" + (" (unchanged)" if result.unchanged else ""),
        "",
    ]
    if result.unchanged:
        lines += [f"{r['images']} images; {len(r['quarantined'])} quarantined. The source is unchanged since "
                  f"this version: no new version was written (this run decoded {r['decoded']} and reused "
                  f"{r['reused']} to find that out).", ""]  # fmt: skip
    else:
        lines += [f"{r['images']} images; {len(r['quarantined'])} quarantined; "
                  f"{r['decoded']} decoded, {r['reused']} reused from the previous version", ""]  # fmt: skip
    lines += ["| split | images |", "|---|---:|"] + [f"| {s} | {n} |" for s, n in r["split_counts"].items()]
    lines += ["", "| class | images |", "|---|---:|"] + [
        f"| {c} | {n} |" for c, n in r["class_counts"].items()
    ]
    if r["imbalance"]:
        lines += ["", f"Imbalance (largest / smallest class): {r['imbalance']:.2f}"]
    if r["quarantined"]:
        lines += ["", "| quarantined | reason |", "|---|---|"]
        lines += [f"| {q['key']} | {q['reason']}: {q['message']} |" for q in r["quarantined"]]
    if r["duplicates"]:
        lines += [
            "",
            f"{len(r['duplicates'])} groups of identical images; {len(r['leakage'])} span splits (leakage)",
        ]
        lines += [f"- leakage: {', '.join(g['keys'])} in {', '.join(g['splits'])}" for g in r["leakage"]]
    return "\n".join(lines) + "\n"


@contextmanager
def decoding_pool(workers: int) -> Iterator[ProcessPoolExecutor]:
    """Processes for decode_chunk (give it ChunkOptions), forked by a fork server that has imported
    the decoders: forking this process could deadlock, as numpy and OpenCV start threads at import.
    On an error (a failed chunk, SIGTERM, Ctrl-C) the chunks not started are dropped, not decoded."""
    method = "forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn"
    ctx = mp.get_context(method)
    if method == "forkserver":
        ctx.set_forkserver_preload([__name__])
    pool = ProcessPoolExecutor(workers, mp_context=ctx)
    try:
        yield pool
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)  # a chunk being decoded takes under a second
        raise
    pool.shutdown(wait=True)


class _Progress:
    """Counts decoded chunks and passes (done, total) to ``on_chunk``, from whichever thread."""

    def __init__(self, total: int, on_chunk: Callable[[int, int], None] | None):
        self.total, self.done, self.on_chunk = total, 0, on_chunk
        self._lock = threading.Lock()

    def add(self, *_: object) -> None:
        with self._lock:
            self.done += 1
            if self.on_chunk is not None:
                self.on_chunk(self.done, self.total)


def prepare(
    cfg: PrepareConfig,
    workers: int = 1,
    *,
    dask_address: str | None = None,
    on_chunk: Callable[[int, int], None] | None = None,
) -> PrepareResult:
    """The whole preparation from this process, decoding chunks on ``workers`` worker processes and
    this one, or on the Dask cluster at ``dask_address`` (its workers must see the source and ``out``
    at the same paths). The Prefect flow runs the same steps as tasks.

    on_chunk: called as (chunks decoded, chunks in all) while chunks finish.
    """
    kind = resolve_kind(cfg)  # a missing source, or images of mixed sizes, fail before anything is written
    chunks = chunked(scan(cfg), cfg.chunk_size)
    run = start_run(cfg)
    # Array sources (digits, IDX, npz, Keras) are copied and hashed, not decoded: worker processes, each
    # loading the arrays again, only add their start (MNIST: 1.45 s in this process, 1.80 s with two).
    files = kind not in ("digits", "keras", "npz", "idx")
    try:
        if dask_address:
            records = _decode_on_dask(cfg, chunks, run, dask_address, on_chunk)
        elif workers > 1 and len(chunks) > 1 and files:
            records = _decode_on_processes(cfg, chunks, run, workers, on_chunk)
        else:
            progress = _Progress(len(chunks), on_chunk)
            records = []
            for i, chunk in enumerate(chunks):
                records.append(decode_chunk(cfg, chunk, run.staging, i))
                progress.add()
    except BaseException:
        discard_run(run)
        raise
    return finalize(cfg, run, records)


def _decode_on_processes(
    cfg: PrepareConfig,
    chunks: list[list[Item]],
    run: RunDirs,
    workers: int,
    on_chunk: Callable[[int, int], None] | None,
) -> list[ChunkRecord]:
    with decoding_pool(workers) as pool:
        # Starting a worker waits for the fork server to import the decoders: that wait goes to a
        # thread, so that this process starts decoding meanwhile.
        starter = threading.Thread(target=lambda: [pool.submit(int) for _ in range(workers)])
        starter.start()
        try:
            progress = _Progress(len(chunks), on_chunk)
            options = ChunkOptions.of(cfg)
            # This process decodes chunks from the back: while the workers start (up to its share of
            # them), and then those that no worker has taken yet, rather than only wait.
            done_here: dict[int, ChunkRecord] = {}
            queued = len(chunks)
            while len(done_here) < len(chunks) // (workers + 1) and starter.is_alive():
                queued -= 1
                done_here[queued] = decode_chunk(options, chunks[queued], run.staging, queued)
                progress.add()
        finally:
            starter.join()
        futures = {
            i: pool.submit(decode_chunk, options, chunk, run.staging, i)
            for i, chunk in enumerate(chunks[:queued])
        }
        for i in reversed(range(queued)):
            if futures[i].cancel():
                done_here[i] = decode_chunk(options, chunks[i], run.staging, i)
                progress.add()
            else:
                futures[i].add_done_callback(progress.add)
        return [done_here.get(i) or futures[i].result() for i in range(len(chunks))]


def _decode_on_dask(
    cfg: PrepareConfig,
    chunks: list[list[Item]],
    run: RunDirs,
    address: str,
    on_chunk: Callable[[int, int], None] | None,
) -> list[ChunkRecord]:
    from distributed import Client

    progress = _Progress(len(chunks), on_chunk)
    options = ChunkOptions.of(cfg)
    with Client(address, set_as_default=False) as client:
        futures = [
            client.submit(decode_chunk, options, chunk, run.staging, i, pure=False)
            for i, chunk in enumerate(chunks)
        ]
        for future in futures:
            future.add_done_callback(progress.add)  # called on the client's thread
        try:
            return client.gather(futures)
        except BaseException:
            client.cancel(futures)
            raise


def count_rows(result: PrepareResult) -> list[dict[str, Any]]:
    """One row per class: its images in each split and in all."""
    report = result.report
    per_split = report.get("split_class_counts")
    if per_split is None:  # a version written before reports held them: its manifest has them
        splits = json.loads((result.version_dir / "manifest.json").read_text())["splits"]
        per_split = {split: info["class_counts"] for split, info in splits.items()}
    return [
        {"class": c, **{split: counts.get(c, 0) for split, counts in per_split.items()}, "total": total}
        for c, total in report["class_counts"].items()
    ]
