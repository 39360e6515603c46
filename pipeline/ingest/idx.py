"""MNIST-style IDX files, gzip-compressed or raw (told apart by magic bytes, not by extension)."""

from __future__ import annotations

import gzip
import io
import math
import os
import struct
import zlib
from typing import Protocol

import numpy as np

from pipeline.errors import DataError
from pipeline.ingest.decode import open_regular

# IDX type codes; all multi-byte values are big-endian.
_IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_GZIP_MAGIC = b"\x1f\x8b"
# Deflate expands data at most 1032 times: a gzip stream of n bytes cannot hold more than this many
# times n, so a header declaring more is refused before anything is allocated or decompressed.
_DEFLATE_MOST_RATIO = 1032
_GZIP_ERRORS = (EOFError, gzip.BadGzipFile, zlib.error)


class _Stream(Protocol):
    """A file, BytesIO or GzipFile: what reading an IDX stream needs of it."""

    def read(self, size: int = -1, /) -> bytes: ...
    def readinto(self, buffer: memoryview, /) -> int: ...


def _read_stream(stream: _Stream, name: str, size: int, compressed: bool) -> np.ndarray:
    """The array an IDX stream holds. Its header is read first and checked against ``size``, the
    stream's length (compressed: the most it can expand to), before the data is read into an array
    of the declared shape; a stream longer than the header says is found by reading one byte more."""
    magic = stream.read(4)
    if len(magic) < 4:
        raise DataError(f"IDX file {name!r} is {len(magic)} bytes long, too short for the 4-byte magic")
    code, ndim = magic[2], magic[3]
    if magic[:2] != b"\x00\x00" or code not in _IDX_DTYPES:
        raise DataError(
            f"IDX file {name!r} does not start with an IDX magic number: expected 0000 then a type code "
            f"among {sorted(hex(c) for c in _IDX_DTYPES)} and the number of dimensions"
        )
    header_size = 4 + 4 * ndim
    dims = stream.read(4 * ndim)
    if len(dims) < 4 * ndim:
        raise DataError(
            f"IDX file {name!r} declares {ndim} dimensions ({header_size} header bytes) "
            f"but has {4 + len(dims)} bytes"
        )
    shape = struct.unpack(f">{ndim}I", dims)
    dtype = _IDX_DTYPES[code]
    expected = header_size + math.prod(shape) * dtype.itemsize  # Python ints: no overflow
    if compressed and expected > _DEFLATE_MOST_RATIO * size:
        raise DataError(
            f"IDX file {name!r} declares {shape} of {dtype.name} ({expected} bytes), more than its "
            f"{size}-byte gzip stream can hold (at most {_DEFLATE_MOST_RATIO} times its size)"
        )
    if not compressed and expected != size:
        state = "truncated" if size < expected else "longer than its header says"
        raise DataError(
            f"IDX file {name!r} is {state}: header {shape} of {dtype.name} needs {expected} bytes, got {size}"
        )
    array = np.empty(shape, dtype)
    view = array.reshape(-1).view(np.uint8).data
    got = 0
    while got < len(view) and (n := stream.readinto(view[got:])):
        got += n
    declared = f"header {shape} of {dtype.name} needs {expected} bytes"
    if got < len(view):
        raise DataError(f"IDX file {name!r} is truncated: {declared}, got {header_size + got}")
    if stream.read(1):  # one byte past the declared end: the rest is never decompressed
        raise DataError(f"IDX file {name!r} is longer than its header says: {declared}")
    if dtype.byteorder == ">" and np.little_endian:  # swapped in place: no second copy of the data
        array = array.byteswap(inplace=True).view(dtype.newbyteorder("="))
    return array


def parse_idx(data: bytes, name: str = "<bytes>") -> np.ndarray:
    """Parse the uncompressed bytes of an IDX file; `name` only appears in error messages."""
    return _read_stream(io.BytesIO(data), name, len(data), compressed=False)


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an IDX file into a native-endian array of its declared shape and type.

    A gzip file is decompressed as it is read, never beyond what its header declares; a FIFO or
    device raises ImageProblem (a ValueError) without being opened.
    """
    name = os.fspath(path)
    fd, size = open_regular(path)
    with os.fdopen(fd, "rb") as raw:
        if raw.read(2) != _GZIP_MAGIC:
            raw.seek(0)
            return _read_stream(raw, name, size, compressed=False)
        raw.seek(0)
        try:
            with gzip.GzipFile(fileobj=raw, mode="rb") as stream:
                return _read_stream(stream, name, size, compressed=True)
        except _GZIP_ERRORS as exc:
            raise DataError(f"IDX file {name!r} is a damaged gzip stream: {exc}") from exc


def load_idx_dataset(
    images_path: str | os.PathLike[str], labels_path: str | os.PathLike[str]
) -> tuple[np.ndarray, np.ndarray]:
    """Images as uint8 (N, H, W, 1) and labels as int64 (N,) from a pair of IDX files."""
    images = read_idx(images_path)
    labels = read_idx(labels_path)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise DataError(
            f"IDX images {os.fspath(images_path)!r} must be uint8 (N, H, W); "
            f"got {images.dtype} {images.shape}"
        )
    if labels.ndim != 1:
        raise DataError(f"IDX labels {os.fspath(labels_path)!r} must be 1-D; got shape {labels.shape}")
    if len(images) != len(labels):
        raise DataError(
            f"{len(images)} images in {os.fspath(images_path)!r} but {len(labels)} labels in "
            f"{os.fspath(labels_path)!r}"
        )
    return images[..., None], labels.astype(np.int64)
