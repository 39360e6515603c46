"""The .npy files that hold pixels: staging chunks, a version's shards, and the rows of either."""

from __future__ import annotations

import functools
import itertools
import json
from operator import attrgetter
from pathlib import Path
from typing import NamedTuple

import numpy as np

from pipeline.prepare.records import Row


class ShardRow(NamedTuple):
    """Where an image's pixels are: a shard (or staging chunk) file and the row in it."""

    shard: str
    row: int


@functools.lru_cache(maxsize=64)
def open_shard(path: str) -> np.ndarray:
    """The memory-mapped pixels of a shard; kept open for the next rows (release with cache_clear)."""
    pixels: np.ndarray = np.load(path, mmap_mode="r")
    return pixels


@functools.lru_cache(maxsize=4)
def previous_index(version_dir: str, fingerprint: str) -> dict[str, ShardRow]:
    """content hash -> where an earlier version holds its pixels, if they were decoded alike
    (``fingerprint``: PrepareConfig.decode_fingerprint)."""
    manifest = json.loads((Path(version_dir) / "manifest.json").read_text())
    if manifest.get("decode_fingerprint") != fingerprint:
        return {}
    return {f["hash"]: ShardRow(str(Path(version_dir) / f["shard"]), f["row"]) for f in manifest["files"]}


def write_shard(path: Path, rows: list[Row], image_shape: tuple[int, ...]) -> None:
    """The pixels of ``rows``, gathered from their staging chunks, as one uint8 (n, *image_shape) .npy."""
    header = {"descr": "|u1", "fortran_order": False, "shape": (len(rows), *image_shape)}
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, header)
        # Rows in key order come from one staging chunk after another: copy them a run at a time.
        for chunk, run in itertools.groupby(rows, key=attrgetter("chunk")):
            f.write(open_shard(chunk)[[r.chunk_row for r in run]].data)
