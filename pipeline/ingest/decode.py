"""Decode image files to uint8 (H, W, C) arrays with OpenCV, and say precisely why a file is unusable."""

from __future__ import annotations

import io
import os
import re
import stat
import struct
import warnings
from dataclasses import dataclass
from typing import Literal, NamedTuple

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from pipeline.errors import DataError
from pipeline.ingest.formats import DEFAULT_MAX_PIXELS, MIN_FILE_BYTES_BOUND

ColorMode = Literal["grayscale", "rgb", "rgba"]
Interpolation = Literal["nearest", "bilinear", "bicubic", "area", "lanczos"]
Reason = Literal[
    "empty", "not_an_image", "truncated", "corrupt", "too_large", "too_small", "wrong_extension",
    "unsupported", "not_a_regular_file",
]  # fmt: skip


INTERPOLATIONS: dict[str, int] = {
    "nearest": cv2.INTER_NEAREST,
    "bilinear": cv2.INTER_LINEAR,
    "bicubic": cv2.INTER_CUBIC,
    "area": cv2.INTER_AREA,
    "lanczos": cv2.INTER_LANCZOS4,
}
COLOR_MODES = ("grayscale", "rgb", "rgba")

EXTENSION_FORMATS: dict[str, str] = {
    ".png": "png",
    ".jpg": "jpeg",
    ".jpeg": "jpeg",
    ".jpe": "jpeg",
    ".gif": "gif",
    ".bmp": "bmp",
    ".tif": "tiff",
    ".tiff": "tiff",
    ".webp": "webp",
    ".ppm": "pnm",
    ".pgm": "pnm",
    ".pbm": "pnm",
    ".pnm": "pnm",
}

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_IEND = b"\x00\x00\x00\x00IEND\xaeB`\x82"  # the whole IEND chunk: length 0, type, its fixed CRC
_PNG_CHUNK_HEAD = struct.Struct(">I4s")  # length, type
_PNG_SIZE = struct.Struct(">II")  # width, height: the first fields of IHDR, at byte 16
# The most pixels one byte of a format's data can hold, where the format's coding bounds it: a header
# declaring more is refused before anything is allocated for its pixels. Deflate expands data at most
# 1032 times and a 1-bit PNG holds 8 pixels a byte (8,256); a GIF's LZW code (9 to 12 bits) stands for
# at most 4096 pixels (2,731 a byte). Both bounds are set above those ceilings. JPEG, WebP and TIFF can
# code a flat image in next to nothing (arithmetic coding, zero-bit Huffman trees): only max_pixels
# bounds them.
_MOST_PIXELS_PER_BYTE = {"png": 1 << 14, "gif": 1 << 12}
# One read takes a whole image of up to 64 KiB: os.read allocates the size asked for first, and a
# megabyte at a time cost a microsecond a file. Larger files are read on in one read of the size fstat
# gives (a file that grows meanwhile, a megabyte at a time).
_READ_SIZE = 1 << 16
_READ_MORE = 1 << 20
# O_NONBLOCK: a FIFO put where a regular file was a moment ago cannot block the open (for regular files
# it changes nothing); O_NOCTTY: nor can a terminal become this process's. O_BINARY: Windows only.
_OPEN_FLAGS = (
    os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_BINARY", 0)
)
_FILE_TYPES = (
    (stat.S_ISDIR, "folder"),
    (stat.S_ISFIFO, "fifo"),
    (stat.S_ISSOCK, "socket"),
    (stat.S_ISCHR, "character device"),
    (stat.S_ISBLK, "block device"),
    (stat.S_ISLNK, "symlink"),
)
_BYTES_LITERAL = re.compile(r"""b(['"]).*?(?<!\\)\1""")  # b'...' in a library's message: file content
_EXIF_ORIENTATION = 274
_UINT8 = np.dtype(np.uint8)  # a dtype object: numpy converts np.uint8 on every use, which shows per file


class ImageProblem(DataError):
    """An image file that cannot be used; `reason` is one of the Reason codes, the message names the file.
    A DataError, so a ValueError too; preparation quarantines the file instead of failing.

    Messages never quote the file's content (a text file named .png may be a secret).
    """

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(message)
        self.reason: Reason = reason


def not_regular(mode: int) -> str | None:
    """Why a file of this ``st_mode`` cannot be read as an image ("not a regular file (fifo)"), or None
    for a regular file. Reading a FIFO blocks until something writes to it; a device may never end."""
    if stat.S_ISREG(mode):
        return None
    kind = next((name for test, name in _FILE_TYPES if test(mode)), "special file")
    return f"not a regular file ({kind})"


def _open_checked(path: str | os.PathLike[str], checked: bool) -> int:
    """A non-blocking read-only descriptor on ``path``, refusing a non-regular file from a stat first
    (left out when ``checked``: the caller has just seen a regular file)."""
    if not checked:
        _require_regular(os.stat(path).st_mode, path)
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except OSError:
        if checked:  # replaced since the caller looked (opening a socket fails): say what it is now
            _require_regular(os.stat(path).st_mode, path)
        raise
    return fd


def open_regular(path: str | os.PathLike[str], checked: bool = False) -> tuple[int, int]:
    """A read-only descriptor on a regular file, and the file's size.

    A FIFO, socket or device raises ImageProblem ("not_a_regular_file") from a stat, without being
    opened. ``checked``: the caller has just seen that the path is a regular file (os.scandir's listing
    tells for free), so that stat is left out; the descriptor's own fstat still checks.
    """
    fd = _open_checked(path, checked)
    try:
        info = os.fstat(fd)
        _require_regular(info.st_mode, path)
    except BaseException:
        os.close(fd)
        raise
    return fd, info.st_size


def _require_regular(mode: int, path: str | os.PathLike[str]) -> None:
    problem = not_regular(mode)
    if problem is not None:
        raise ImageProblem("not_a_regular_file", f"{os.fspath(path)}: {problem}")


def _quote_safely(exc: BaseException) -> str:
    """A library's error message without the bytes literals some of them quote from the file."""
    return _BYTES_LITERAL.sub("<bytes>", str(exc))


def file_extension(path: str) -> str:
    """``os.path.splitext(path)[1].lower()``: "" when the file name has no extension.

    A tenth of splitext's cost, which shows when every file of a large source is asked.
    """
    start = max(path.rfind("/"), path.rfind(os.sep)) + 1  # where the file name starts
    dot = path.rfind(".")
    if dot > start and path[start] != ".":  # the usual name: its last dot starts the extension
        return path[dot:].lower()
    _, sep, ext = path[start:].lstrip(".").rpartition(".")  # leading dots do not start an extension
    return f".{ext.lower()}" if sep else ""


def sniff_format(data: bytes) -> str | None:
    """The image format named by the leading magic bytes ("png", "jpeg", ...), or None."""
    if data.startswith(_PNG_SIGNATURE):
        return "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if data.startswith(b"BM"):
        return "bmp"
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return "tiff"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if len(data) >= 3 and data[0:1] == b"P" and data[1:2] in b"123456" and data[2:3].isspace():
        return "pnm"
    return None


def _png_is_complete(data: bytes) -> bool:
    """Walk the PNG chunk list; complete means an IEND chunk is reached within the data."""
    if data.endswith(_PNG_IEND):  # the common case, without the walk: nothing is cut off the end
        return True
    pos, size = len(_PNG_SIGNATURE), len(data)
    while pos + 8 <= size:
        length, chunk_type = _PNG_CHUNK_HEAD.unpack_from(data, pos)
        end = pos + 12 + length
        if end > size:
            return False
        if chunk_type == b"IEND":
            return True
        pos = end
    return False


def _truncation(fmt: str, data: bytes) -> str | None:
    """Why the data is cut short, for formats whose end is marked; OpenCV decodes such files silently."""
    if fmt == "png":
        return None if _png_is_complete(data) else "PNG ends before its IEND chunk"
    if fmt == "jpeg" and not data.rstrip(b"\x00").endswith(b"\xff\xd9"):
        # some writers pad files with zeros after the end marker
        return "JPEG has no end-of-image marker (FFD9)"
    if fmt == "gif" and not data.rstrip(b"\x00").endswith(b";"):
        return "GIF has no trailer byte (3B)"
    return None


def _orient(image: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation (1-8), matching PIL.ImageOps.exif_transpose."""
    if orientation == 2:
        return image[:, ::-1]
    if orientation == 3:
        return image[::-1, ::-1]
    if orientation == 4:
        return image[::-1]
    if orientation == 5:
        return image.swapaxes(0, 1)
    if orientation == 6:
        return np.rot90(image, k=-1)
    if orientation == 7:
        return image.swapaxes(0, 1)[::-1, ::-1]
    if orientation == 8:
        return np.rot90(image, k=1)
    return image


def _decode_with_pillow(image: Image.Image) -> np.ndarray:
    """First frame as an OpenCV-ordered array (gray, BGR or BGRA), for what this OpenCV build cannot read."""
    image.seek(0)
    has_alpha = "A" in image.getbands() or "transparency" in image.info
    mode = "RGBA" if has_alpha else ("L" if image.mode in ("1", "L") else "RGB")
    if image.mode.startswith("I;16"):
        return np.asarray(image, dtype=np.uint16)
    array = np.asarray(image.convert(mode))
    if array.ndim == 3:
        array = cv2.cvtColor(array, cv2.COLOR_RGBA2BGRA if has_alpha else cv2.COLOR_RGB2BGR)
    return array


def _to_uint8(image: np.ndarray, name: str) -> np.ndarray:
    if image.dtype == _UINT8:
        return image
    if image.dtype == np.uint16:
        # Proper scaling, x * 255 / 65535 rounded (not >> 8), so 65535 -> 255 and k * 257 -> k exactly.
        return ((image.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    raise ImageProblem("unsupported", f"{name}: pixel type {image.dtype} is not supported (uint8 or uint16)")


# OpenCV's conversion from (decoded channels, wanted color mode); None: the pixels are already right.
# Alpha is dropped, not composited, as PIL's convert("RGB") and Keras's load_img do.
_COLOR_CODES: dict[tuple[int, str], int | None] = {
    (1, "grayscale"): None,
    (1, "rgb"): cv2.COLOR_GRAY2RGB,
    (1, "rgba"): cv2.COLOR_GRAY2RGBA,
    (3, "grayscale"): cv2.COLOR_BGR2GRAY,
    (3, "rgb"): cv2.COLOR_BGR2RGB,
    (3, "rgba"): cv2.COLOR_BGR2RGBA,
    (4, "grayscale"): cv2.COLOR_BGRA2GRAY,
    (4, "rgb"): cv2.COLOR_BGRA2RGB,
    (4, "rgba"): cv2.COLOR_BGRA2RGBA,
}


def _convert_color(image: np.ndarray, color_mode: str, name: str) -> np.ndarray:
    channels = 1 if image.ndim == 2 else image.shape[2]
    if channels not in (1, 3, 4):
        raise ImageProblem("unsupported", f"{name}: {channels} channels are not supported (1, 3 or 4)")
    if image.ndim == 3 and channels == 1:
        image = image.reshape(image.shape[:2])
    code = _COLOR_CODES[channels, color_mode]
    out = image if code is None else cv2.cvtColor(np.ascontiguousarray(image), code)
    return out[..., None] if out.ndim == 2 else out


def _crop_size(height: int, width: int, target_size: tuple[int, int]) -> tuple[int, int]:
    """The size of the largest crop of a height x width image with the aspect of target_size."""
    target_height, target_width = target_size
    crop_height = min(height, (width * target_height) // target_width)
    return crop_height, min(width, (height * target_width) // target_height)


def center_crop_to_aspect(image: np.ndarray, target_size: tuple[int, int]) -> np.ndarray:
    """The largest centred crop with the aspect of target_size (height, width), as Keras's load_img."""
    height, width = image.shape[:2]
    crop_height, crop_width = _crop_size(height, width, target_size)
    top = (height - crop_height) // 2
    left = (width - crop_width) // 2
    return image[top : top + crop_height, left : left + crop_width]


def resize(
    image: np.ndarray,
    target_size: tuple[int, int],
    interpolation: Interpolation = "bilinear",
    keep_aspect_ratio: bool = False,
    name: str = "<array>",
) -> np.ndarray:
    """Resize an (H, W, C) image to target_size (height, width); keep_aspect_ratio centre-crops first.

    An image too thin to hold a crop of that aspect (1x100 for a 2:1 target: the crop would be 0 rows)
    raises ImageProblem ("too_small"); ``name`` says which file in its message.
    """
    if keep_aspect_ratio:
        cropped = center_crop_to_aspect(image, target_size)
        if cropped.shape[0] == 0 or cropped.shape[1] == 0:
            raise ImageProblem(
                "too_small",
                f"{name}: a {image.shape[0]}x{image.shape[1]} image is too thin for a centred crop with "
                f"the aspect of target_size {target_size[0]}x{target_size[1]} (keep_aspect_ratio)",
            )
        image = cropped
    height, width = target_size
    if image.shape[:2] == (height, width):
        return image
    out = cv2.resize(
        np.ascontiguousarray(image), (width, height), interpolation=INTERPOLATIONS[interpolation]
    )
    return out[..., None] if out.ndim == 2 else out


def downscale_factor(size: tuple[int, int], target_size: tuple[int, int], keep_aspect_ratio: bool) -> float:
    """How many times an image of ``size`` (height, width) shrinks along the side it shrinks most when
    resized to target_size (after the centre crop of keep_aspect_ratio); below 1 when it is enlarged."""
    height, width = _crop_size(*size, target_size) if keep_aspect_ratio else size
    return max(height / target_size[0], width / target_size[1])


class Decoded(NamedTuple):
    """A decoded image, and its size (height, width) before it was resized to the target size."""

    image: np.ndarray
    size: tuple[int, int]


@dataclass(frozen=True)
class DecodeOptions:
    """How to decode an image, with Keras's ``load_img`` names; checked once, when made: a preparation
    decodes a million files with the same options.

    max_pixels: a header declaring more pixels is refused before any pixel is decoded.
    """

    color_mode: ColorMode = "rgb"
    target_size: tuple[int, int] | None = None
    interpolation: Interpolation = "bilinear"
    keep_aspect_ratio: bool = False
    max_pixels: int = DEFAULT_MAX_PIXELS

    def __post_init__(self) -> None:
        if self.color_mode not in COLOR_MODES:
            raise ValueError(f"color_mode must be one of {COLOR_MODES}, but got {self.color_mode!r}")
        if self.interpolation not in INTERPOLATIONS:
            raise ValueError(
                f"interpolation must be one of {sorted(INTERPOLATIONS)}, but got {self.interpolation!r}"
            )
        size = self.target_size
        if size is not None and (len(size) != 2 or min(size) < 1):
            raise ValueError(f"target_size must be (height, width) of positive ints, but got {size!r}")
        if self.max_pixels < 1:
            raise ValueError(f"max_pixels must be positive, but got {self.max_pixels}")
        if size is not None and not isinstance(size, tuple):  # a list, from JSON: kept hashable
            object.__setattr__(self, "target_size", (size[0], size[1]))

    @property
    def max_file_bytes(self) -> int:
        """The largest file read for these options: a larger one is too_large, unread."""
        return max(16 * self.max_pixels, MIN_FILE_BYTES_BOUND)


def _pil_open(data: bytes, fmt: str, name: str) -> Image.Image:
    try:
        with warnings.catch_warnings():
            # Pillow warns between its limit and twice it; max_pixels makes the decision instead.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return Image.open(io.BytesIO(data))  # lazy: reads the header only
    except Image.DecompressionBombError as exc:
        raise ImageProblem("too_large", f"{name}: {exc}") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ImageProblem("corrupt", f"{name}: {fmt} header cannot be read: {_quote_safely(exc)}") from exc


def _header(data: bytes, fmt: str, name: str) -> tuple[int, int, int]:
    """Declared width, height and EXIF orientation, read without decoding any pixel."""
    if fmt == "png" and len(data) >= 24 and b"eXIf" not in data:
        # The common case, without Pillow: IHDR's size, and no EXIF chunk to orient by (Pillow would
        # decode the whole PNG to look for one).
        width, height = _PNG_SIZE.unpack_from(data, 16)
        limit = Image.MAX_IMAGE_PIXELS  # None: Pillow's limit is switched off, and so is this one
        if limit is not None and width * height > 2 * limit:
            raise ImageProblem("too_large", f"{name}: header declares {width}x{height} pixels")
        return width, height, 1
    with _pil_open(data, fmt, name) as pil_image:
        width, height = pil_image.size
        try:
            orientation = int(pil_image.getexif().get(_EXIF_ORIENTATION, 1))
        except (OSError, SyntaxError, ValueError, struct.error):
            orientation = 1  # unreadable EXIF is not worth refusing the pixels for
    return width, height, orientation


def read_file(path: str | os.PathLike[str], checked: bool = False, max_bytes: int | None = None) -> bytes:
    """The whole content of a regular file; a FIFO, socket or device raises ImageProblem
    ("not_a_regular_file") from a stat, without being opened.

    ``checked``: the caller has just seen that path is a regular file (os.scandir's listing tells for
    free), so that stat is left out. ``max_bytes``: a larger file raises ImageProblem ("too_large")
    before more than its first 64 KiB are read. Plain os.open/os.read: a buffered file object costs
    several microseconds more per file, which is as much as the read itself for small images.
    """
    fd = _open_checked(path, checked)
    try:
        data = os.read(fd, _READ_SIZE)
        if 0 < len(data) < _READ_SIZE:
            more = os.read(fd, _READ_SIZE)
            if not more and (max_bytes is None or len(data) <= max_bytes):
                return data  # the common case: a small file, read whole without a stat
            data += more
        # Empty, large, or grown since its first read: fstat says whether it is a regular file (a FIFO
        # put in its place since the caller looked reads as empty) and how much is left to read.
        info = os.fstat(fd)
        _require_regular(info.st_mode, path)
        if max_bytes is not None and info.st_size > max_bytes:
            raise ImageProblem(
                "too_large", f"{os.fspath(path)}: file is {info.st_size} bytes, above {max_bytes}"
            )
        parts, total = [data], len(data)
        while data and (more := os.read(fd, max(info.st_size + 1 - total, _READ_MORE))):
            parts.append(more)
            total += len(more)
            if max_bytes is not None and total > max_bytes:
                raise ImageProblem("too_large", f"{os.fspath(path)}: file grew above {max_bytes} bytes")
    finally:
        os.close(fd)
    return b"".join(parts) if len(parts) > 1 else data


def decode_image(
    data: bytes | str | os.PathLike[str],
    color_mode: ColorMode = "rgb",
    target_size: tuple[int, int] | None = None,
    interpolation: Interpolation = "bilinear",
    keep_aspect_ratio: bool = False,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> np.ndarray:
    """Decode encoded bytes or a file to uint8 (H, W, C): C is 1, 3 or 4 for grayscale, rgb, rgba.

    EXIF orientation is applied; 16-bit images are scaled to 8 bits (x * 255 / 65535, rounded);
    animated images give their first frame. Images whose header declares more than max_pixels are
    refused before any pixel is decoded (Pillow's own hard limit, twice its MAX_IMAGE_PIXELS, still
    applies when max_pixels is set above it). Raises ImageProblem with a reason code.
    """
    options = DecodeOptions(color_mode, target_size, interpolation, keep_aspect_ratio, max_pixels)
    if isinstance(data, bytes):
        name = "<bytes>"
    else:
        name = os.fspath(data)
        data = read_file(data)
    return _decode(data, name, sniff_format(data) if data else None, options).image


def _decode(data: bytes, name: str, fmt: str | None, options: DecodeOptions) -> Decoded:
    """decode_image's work; ``name`` says which file the messages are about and ``fmt`` is
    sniff_format(data)."""
    if not data:
        raise ImageProblem("empty", f"{name}: file is empty (0 bytes)")
    if fmt is None:
        raise ImageProblem("not_an_image", f"{name}: not an image (unknown format, {len(data)} bytes)")
    cut = _truncation(fmt, data)
    if cut is not None:
        raise ImageProblem("truncated", f"{name}: {cut} ({len(data)} bytes)")

    width, height, orientation = _header(data, fmt, name)
    if width * height > options.max_pixels:
        raise ImageProblem(
            "too_large",
            f"{name}: header declares {width}x{height} = {width * height} pixels, "
            f"above max_pixels={options.max_pixels}",
        )
    most = _MOST_PIXELS_PER_BYTE.get(fmt)
    if most is not None and width * height > most * len(data):
        raise ImageProblem(
            "too_large",
            f"{name}: header declares {width}x{height} = {width * height} pixels, more than "
            f"{len(data)} bytes of {fmt} can hold (at most {most} pixels a byte)",
        )
    # IMREAD_UNCHANGED keeps 16 bits and alpha but ignores EXIF, which _orient applies below.
    image = cv2.imdecode(np.frombuffer(data, _UINT8), cv2.IMREAD_UNCHANGED)
    if image is None:
        with _pil_open(data, fmt, name) as pil_image:
            try:
                image = _decode_with_pillow(pil_image)
            except (OSError, SyntaxError, ValueError) as exc:
                reason: Reason = "truncated" if "truncated" in str(exc).lower() else "corrupt"
                message = f"{name}: {fmt} data cannot be decoded: {_quote_safely(exc)}"
                raise ImageProblem(reason, message) from exc
    if image.size == 0:
        raise ImageProblem("corrupt", f"{name}: decoded to an empty array of shape {image.shape}")
    image = _to_uint8(image, name)
    if orientation != 1:
        image = _orient(image, orientation)
    image = _convert_color(image, options.color_mode, name)
    size = (image.shape[0], image.shape[1])
    if options.target_size is not None:
        image = resize(image, options.target_size, options.interpolation, options.keep_aspect_ratio, name)
    return Decoded(image if image.flags.c_contiguous else np.ascontiguousarray(image), size)


def check_and_decode(
    path: str | os.PathLike[str],
    color_mode: ColorMode = "rgb",
    target_size: tuple[int, int] | None = None,
    interpolation: Interpolation = "bilinear",
    keep_aspect_ratio: bool = False,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    data: bytes | None = None,
) -> np.ndarray:
    """decode_image for a file, also refusing content whose format differs from its extension.

    ``data``: the file's bytes when the caller has read them already (to hash them, say).
    """
    options = DecodeOptions(color_mode, target_size, interpolation, keep_aspect_ratio, max_pixels)
    return decode_checked(read_file(path) if data is None else data, os.fspath(path), options)


def decode_checked(data: bytes, name: str, options: DecodeOptions) -> np.ndarray:
    """check_and_decode on a file's bytes (``name``: its path)."""
    return decode_sized(data, name, options).image


def decode_sized(data: bytes, name: str, options: DecodeOptions) -> Decoded:
    """decode_checked, also giving the image's size before it was resized."""
    expected = EXTENSION_FORMATS.get(file_extension(name))
    actual = sniff_format(data) if data else None
    if expected is not None and actual is not None and actual != expected:
        raise ImageProblem(
            "wrong_extension", f"{name}: content is {actual} but the extension says {expected}"
        )
    return _decode(data, name, actual, options)
