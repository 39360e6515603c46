"""Image sizes read from file headers, without decoding a pixel: ``group_by_size(paths)``.

Sizes are those decoding gives (pipeline.ingest.decode): (height, width), after EXIF orientation,
which for orientations 5 to 8 swaps them. A header that cannot be read gives no size; decoding the
file later says why.
"""

from __future__ import annotations

import struct
import warnings
from collections.abc import Sequence

from PIL import Image
from PIL.ExifTags import Base

from pipeline.ingest.decode import ImageProblem, open_regular, sniff_format

# The formats decode.sniff_format accepts, as Pillow names them: Pillow then tries only these.
_FORMATS = ("PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP", "PPM")
_TRANSPOSING = frozenset({5, 6, 7, 8})  # EXIF orientations that turn the image a quarter
# Read first, in one read: a small image whole, or the part of a larger one where a PNG or JPEG declares
# its size, unless large metadata (an ICC profile, a thumbnail) comes first: Pillow then reads on.
_HEAD_SIZE = 1 << 16
_PNG_CHUNK = struct.Struct(">I4s")  # length, type
_U16_PAIR = struct.Struct(">HH")
# Start-of-frame markers, which hold a JPEG's size (C4 is DHT, C8 is reserved, CC is DAC).
_JPEG_SOF = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})
_JPEG_APP1 = 0xE1  # Exif or XMP: where a JPEG's orientation is
_JPEG_SOS = 0xDA


def header_size(path: str, checked: bool = False) -> tuple[int, int] | None:
    """(height, width) that decoding ``path`` gives, from its header; None if the header cannot be read.

    ``checked``: the caller has just seen that ``path`` is a regular file (see decode.open_regular).
    A FIFO or device is never read: it gives None.
    """
    try:
        fd, _ = open_regular(path, checked)
    except (ImageProblem, OSError):
        return None
    with open(fd, "rb") as f:
        try:
            head = f.read(_HEAD_SIZE)
            # PNGs and JPEGs are read here, in 9 us; others by Pillow, in 30 us (100 us for a JPEG
            # with Exif), measured on 64x64 files in the page cache.
            fmt = sniff_format(head)
            size = _png_size(head) if fmt == "png" else _jpeg_size(head) if fmt == "jpeg" else None
            if size is not None:
                return size
            f.seek(0)
            with Image.open(f, formats=_FORMATS) as image:
                width, height = image.size
                orientation = _orientation(image)
        except Exception:  # whatever Pillow (or the file) raises, the header cannot be read
            return None
    return (width, height) if orientation in _TRANSPOSING else (height, width)


def _png_size(head: bytes) -> tuple[int, int] | None:
    """A PNG's (height, width) from IHDR if no eXIf chunk comes before its pixels; None to ask Pillow.

    Decoding orients a PNG by its eXIf chunk. Pillow looks for one before the first IDAT only (after
    it, it would decode the whole file): so does this, and the rare eXIf after the pixels is missed.
    """
    if len(head) < 24 or head[12:16] != b"IHDR":
        return None
    pos = 8
    while pos + 8 <= len(head):
        length, kind = _PNG_CHUNK.unpack_from(head, pos)
        if kind == b"IDAT":
            width, height = struct.unpack_from(">II", head, 16)
            return (height, width)
        if kind == b"eXIf":
            return None
        pos += 12 + length
    return None


def _jpeg_size(head: bytes) -> tuple[int, int] | None:
    """A JPEG's (height, width) as decoded, from its frame header and the orientation in its first Exif
    segment (Pillow's choice); None to ask Pillow, for an orientation this does not read (XMP)."""
    pos, end = 2, len(head)
    orientation: int | None = None
    while pos + 4 <= end:
        if head[pos] != 0xFF:
            return None
        marker = head[pos + 1]
        if marker == 0xFF:  # a fill byte
            pos += 1
            continue
        if marker in _JPEG_SOF:
            if pos + 9 > end:
                return None
            height, width = _U16_PAIR.unpack_from(head, pos + 5)
            if not (height and width):
                return None  # height 0: set after the first scan
            return (width, height) if orientation in _TRANSPOSING else (height, width)
        if marker == _JPEG_SOS or 0xD0 <= marker <= 0xD9 or marker == 0x01:
            return None  # no frame header where one belongs
        length = _U16_PAIR.unpack_from(head, pos)[1]  # after the marker, counting itself
        if marker == _JPEG_APP1 and orientation is None:
            if head[pos + 4 : pos + 10] != b"Exif\0\0":
                return None  # XMP, which may orient the image when no Exif before it does
            orientation = _exif_orientation(head, pos + 10, min(pos + 2 + length, end))
            if orientation is None:
                return None
        pos += 2 + length
    return None


def _exif_orientation(head: bytes, start: int, end: int) -> int | None:
    """The orientation tag of the Exif (TIFF) data in ``head[start:end]``, from its first IFD; None if
    it has none (XMP may then give one) or cannot be read here."""
    tiff = memoryview(head)[start:end]
    order = {b"II": "<", b"MM": ">"}.get(bytes(tiff[:2]))
    try:
        if order is None or struct.unpack_from(f"{order}H", tiff, 2)[0] != 42:
            return None
        ifd = struct.unpack_from(f"{order}I", tiff, 4)[0]
        (count,) = struct.unpack_from(f"{order}H", tiff, ifd)
        for entry in range(ifd + 2, ifd + 2 + 12 * count, 12):
            tag, kind, n = struct.unpack_from(f"{order}HHI", tiff, entry)
            if tag == Base.Orientation:
                return struct.unpack_from(f"{order}H", tiff, entry + 8)[0] if kind == 3 and n else None
    except struct.error:  # an offset past the data
        return None
    return None


def _orientation(image: Image.Image) -> int:
    """The EXIF orientation decoding applies, read as decode._header reads it."""
    if image.format == "PNG" and "exif" not in image.info:
        return 1  # see _png_size
    try:
        return int(image.getexif().get(Base.Orientation, 1))
    except Exception:  # unreadable EXIF: decoding ignores it too
        return 1


def group_by_size(paths: Sequence[str], checked: bool = False) -> dict[tuple[int, int], list[int]]:
    """Indices of ``paths`` by the (height, width) their headers declare; unreadable headers are left out.

    ``checked``: as for header_size, true of every path.
    """
    groups: dict[tuple[int, int], list[int]] = {}
    with warnings.catch_warnings():
        # Pillow warns of a large image; decoding's max_pixels decides about it, not a header scan.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        for i, path in enumerate(paths):
            size = header_size(path, checked)
            if size is not None:
                groups.setdefault(size, []).append(i)
    return groups
