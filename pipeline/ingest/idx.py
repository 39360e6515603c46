"""MNIST-style IDX files, gzip-compressed or raw (told apart by magic bytes, not by extension)."""

from __future__ import annotations

import gzip
import os
import struct

import numpy as np

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


def _read_bytes(path: str | os.PathLike[str]) -> bytes:
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] == _GZIP_MAGIC:
        try:
            return gzip.decompress(raw)
        except (EOFError, gzip.BadGzipFile, OSError) as exc:
            raise ValueError(f"IDX file {os.fspath(path)!r} is a damaged gzip stream: {exc}") from exc
    return raw


def parse_idx(data: bytes, name: str = "<bytes>") -> np.ndarray:
    """Parse the uncompressed bytes of an IDX file; `name` only appears in error messages."""
    if len(data) < 4:
        raise ValueError(f"IDX file {name!r} is {len(data)} bytes long, too short for the 4-byte magic")
    zero, code, ndim = data[:2], data[2], data[3]
    if zero != b"\x00\x00" or code not in _IDX_DTYPES:
        raise ValueError(
            f"IDX file {name!r} has magic {data[:4].hex()}; expected 0000 then a type code among "
            f"{sorted(hex(c) for c in _IDX_DTYPES)} and the number of dimensions"
        )
    header_size = 4 + 4 * ndim
    if len(data) < header_size:
        raise ValueError(
            f"IDX file {name!r} declares {ndim} dimensions ({header_size} header bytes) "
            f"but has {len(data)} bytes"
        )
    shape = struct.unpack(f">{ndim}I", data[4:header_size])
    dtype = _IDX_DTYPES[code]
    expected = header_size + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(data) != expected:
        state = "truncated" if len(data) < expected else "longer than its header says"
        raise ValueError(
            f"IDX file {name!r} is {state}: header {shape} of {dtype.name} needs {expected} bytes, "
            f"got {len(data)}"
        )
    array = np.frombuffer(data, dtype=dtype, offset=header_size).reshape(shape)
    return array.astype(dtype.newbyteorder("="))


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an IDX file into a native-endian array of its declared shape and type."""
    return parse_idx(_read_bytes(path), os.fspath(path))


def load_idx_dataset(
    images_path: str | os.PathLike[str], labels_path: str | os.PathLike[str]
) -> tuple[np.ndarray, np.ndarray]:
    """Images as uint8 (N, H, W, 1) and labels as int64 (N,) from a pair of IDX files."""
    images = read_idx(images_path)
    labels = read_idx(labels_path)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise ValueError(
            f"IDX images {os.fspath(images_path)!r} must be uint8 (N, H, W); "
            f"got {images.dtype} {images.shape}"
        )
    if labels.ndim != 1:
        raise ValueError(f"IDX labels {os.fspath(labels_path)!r} must be 1-D; got shape {labels.shape}")
    if len(images) != len(labels):
        raise ValueError(
            f"{len(images)} images in {os.fspath(images_path)!r} but {len(labels)} labels in "
            f"{os.fspath(labels_path)!r}"
        )
    return images[..., None], labels.astype(np.int64)
