"""Decoding one chunk: read, hash, decode (or reuse) and stage its images, quarantining bad files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from pipeline.errors import DataError
from pipeline.ingest.decode import (
    DecodeOptions,
    ImageProblem,
    decode_sized,
    downscale_factor,
    read_file,
    resize,
)
from pipeline.io import write_atomic
from pipeline.prepare.disk import naming_a_full_disk
from pipeline.prepare.hints import DOWNSCALE_HINT, count_gray_in_color
from pipeline.prepare.records import ChunkRecord, Item, Quarantined, content_hash
from pipeline.prepare.shards import ShardRow, open_shard, previous_index
from pipeline.prepare.sizes import mixed_sizes_message
from pipeline.prepare.sources import FILE_KINDS, load_arrays, resolve_kind
from pipeline.prepare.splitting import SplitPlan, plan_splits, splitter
from pipeline.prepare.stats import pixel_histogram
from pipeline.store import current_version

if TYPE_CHECKING:  # not imported at run time: decoding workers then start without pydantic
    from pipeline.config import PrepareConfig


class ChunkOptions(NamedTuple):
    """What decoding a chunk needs of a PrepareConfig, as plain values: a worker process that is
    sent these starts without importing pydantic and the config models, which is most of its start."""

    out: str
    kind: str
    source: str
    decode: DecodeOptions
    plan: SplitPlan
    split_salt: str
    decode_fingerprint: str

    @classmethod
    def of(cls, cfg: PrepareConfig, plan: SplitPlan | None = None) -> ChunkOptions:
        """``plan``: how the source's splits are kept and cut (default: a source that gives none)."""
        decode = DecodeOptions(
            cfg.color_mode, cfg.target_size, cfg.interpolation, cfg.keep_aspect_ratio, cfg.max_pixels
        )
        plan = plan or plan_splits(cfg.source, cfg.splits, ())
        return cls(
            cfg.out, resolve_kind(cfg), cfg.source, decode, plan, cfg.split_salt, cfg.decode_fingerprint()
        )


def decode_chunk(
    cfg: PrepareConfig | ChunkOptions, items: list[Item], staging: Path, chunk_id: int
) -> ChunkRecord:
    """Decode (or reuse from the current version, by content hash) one chunk; bad files are
    quarantined with their reason, never raised. Give ChunkOptions when sending it to a process
    (and always for a source that gives splits: they carry its SplitPlan)."""
    options = cfg if isinstance(cfg, ChunkOptions) else ChunkOptions.of(cfg)
    decode = options.decode
    target = decode.target_size
    record = ChunkRecord(chunk_id, None)
    keys, hashes, labels, given = record.keys, record.hashes, record.labels, record.given
    previous = current_version(options.out)
    reuse: dict[str, ShardRow] = previous_index(str(previous), options.decode_fingerprint) if previous else {}
    arrays = None if options.kind in FILE_KINDS else load_arrays(options.kind, options.source).images
    checked = options.kind == "folders"  # the scan saw that each file is a regular one: no stat needed
    max_bytes = decode.max_file_bytes
    pixels: np.ndarray | None = None  # one row per kept item, allocated at the first one
    odd: dict[tuple[int, ...], list[str]] = {}  # keys of the images not of the first one's shape
    for item in items:
        if item.left_out is not None:
            record.quarantined.append(Quarantined(item.key, *item.left_out))
            continue
        try:
            if item.path is not None:
                data = read_file(item.path, checked, max_bytes)
                digest = content_hash(data)
                if digest in reuse:
                    shard, row = reuse[digest]
                    image = np.array(open_shard(shard)[row])
                    record.reused += 1
                else:
                    image, size = decode_sized(data, item.path, decode)
                    record.decoded += 1
                    if target is not None:
                        _note_downscale(record, downscale_factor(size, target, decode.keep_aspect_ratio))
            else:
                assert arrays is not None and item.row is not None
                image = arrays[item.row]
                if target is not None and image.shape[:2] != target:
                    size = (image.shape[0], image.shape[1])
                    image = resize(image, target, decode.interpolation, decode.keep_aspect_ratio, item.key)
                    image = image if image.ndim == 3 else image[..., None]
                    _note_downscale(record, downscale_factor(size, target, decode.keep_aspect_ratio))
                digest = content_hash(np.ascontiguousarray(image).tobytes())
                record.decoded += 1  # read from the array source
        except ImageProblem as err:
            record.quarantined.append(Quarantined(item.key, err.reason, str(err)))
            continue
        except OSError as err:
            record.quarantined.append(Quarantined(item.key, "unreadable", f"{item.path}: {err}"))
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
        given.append(item.split)
    cut = {name: splitter(cuts, options.split_salt) for name, cuts in options.plan.cuts.items()}
    record.splits = [cut[name](key) for key, name in zip(keys, given, strict=True)]
    listed = keys + hashes + ["\0".join(lab) for lab in labels]
    if options.plan.given:  # a manifest's split column can change while keys, bytes and labels do not
        listed += [name or "" for name in given]
    record.listing = json.dumps(listed)
    if odd:  # the scan refuses mixed sizes from the headers: this is for what they did not tell
        assert pixels is not None
        others = {key for group in odd.values() for key in group}
        odd[pixels.shape[1:]] = [key for key in keys if key not in others]
        by_size = {(shape[0], shape[1]): group for shape, group in odd.items()}
        raise DataError(mixed_sizes_message(by_size, "after decoding"))
    if pixels is not None:
        kept = pixels[: len(record.keys)]
        record.gray_in_color = count_gray_in_color(kept)
        # The train statistics are exact integer sums, so each chunk can count its own share here, in
        # parallel, rather than finalize reading every train pixel again.
        record.train_histogram = pixel_histogram(kept[[s == "train" for s in record.splits]])
        path = staging / f"chunk-{chunk_id:05d}.npy"
        with naming_a_full_disk(staging):
            # Not make_parent: a discarded run's staging folder is renamed away so that this write fails.
            write_atomic(path, lambda tmp: np.save(tmp, kept), make_parent=False)
        record.pixels = str(path)
    return record


def _note_downscale(record: ChunkRecord, factor: float) -> None:
    if factor >= DOWNSCALE_HINT:
        record.downscaled += 1
    record.largest_downscale = max(record.largest_downscale, factor)
