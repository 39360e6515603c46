"""What the generator and the iterators share: seeds, Keras's file listing, header checks, decoding, and
conversions between channels-first and the engine's channels-last arrays."""

from __future__ import annotations

import logging
import numbers
import os
import secrets
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import keras
import numpy as np
from PIL import Image, UnidentifiedImageError

from pipeline.errors import ConfigError
from pipeline.ingest.decode import not_regular, open_regular

WHITE_LIST_FORMATS = ("png", "jpg", "jpeg", "bmp", "ppm", "tif", "tiff")
INTERPOLATIONS = ("nearest", "bilinear", "bicubic", "hamming", "box", "lanczos")
COLOR_MODES = ("rgb", "rgba", "grayscale")
CHANNELS = {"rgb": 3, "rgba": 4, "grayscale": 1}
_log = logging.getLogger(__name__)


def resolve_seed(seed: int | None) -> int:
    """The iterator's seed: ``seed`` itself, or a fresh random one (OS entropy, not the global RNG)."""
    if seed is None:
        return secrets.randbits(63)
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer or None, but got {seed!r}")
    return int(seed)


def print_msg(message: str) -> None:
    """Keras's "Found N images" line: printed when Keras logs interactively, else logged."""
    if keras.config.is_interactive_logging_enabled():
        print(message, flush=True)
    else:
        _log.info(message)


# ---- files -----------------------------------------------------------------------------------------
def list_class_files(
    directory: str, subdir: str, split: tuple[float, float] | None, follow_links: bool
) -> list[str]:
    """Keras's listing of one class folder: paths relative to ``directory``, in Keras's order,
    restricted to the ``split`` fraction of the folder."""
    class_dir = os.path.join(directory, subdir)
    found = []
    for root, _, files in sorted(os.walk(class_dir, followlinks=follow_links), key=lambda w: w[0]):
        for fname in sorted(files):
            if fname.lower().endswith(".tiff"):
                warnings.warn(
                    'Using ".tiff" files with multiple bands will cause distortion. '
                    "Please verify your output.",
                    stacklevel=4,
                )
            if fname.lower().endswith(WHITE_LIST_FORMATS):
                found.append(os.path.join(subdir, os.path.relpath(os.path.join(root, fname), class_dir)))
    if split:
        found = found[int(split[0] * len(found)) : int(split[1] * len(found))]
    return found


def describe_error(err: Exception) -> str:
    """Why a file could not be read, in words."""
    if isinstance(err, UnidentifiedImageError):
        return "not an image PIL can identify"
    return f"{type(err).__name__}: {err}"


def header_problem(path: str) -> str | None:
    """Why ``path`` is not a readable image, judged from its header alone; None if it looks fine.

    A FIFO, socket or device is named from a stat ("not a regular file (fifo)"), never opened: reading
    a FIFO would block until something writes to it.
    """
    try:
        problem = not_regular(os.stat(path).st_mode)
        if problem is not None:
            return problem
        fd, size = open_regular(path, checked=True)  # O_NONBLOCK: a FIFO put there since cannot block
        with os.fdopen(fd, "rb") as file:
            if size == 0:
                return "empty file (0 bytes)"
            with Image.open(file) as img:
                img.size  # noqa: B018  (parsed from the header; decoding is left for batch time)
    except Exception as err:  # any header failure means the file cannot be used
        return describe_error(err)
    return None


def header_problems(paths: Sequence[str]) -> dict[int, str]:
    """``{position: reason}`` for every path whose header check fails; files are read in threads."""
    if len(paths) < 64:
        reasons = [header_problem(p) for p in paths]
    else:
        with ThreadPoolExecutor(max_workers=min(16, (os.cpu_count() or 1) * 4)) as pool:
            reasons = list(pool.map(header_problem, paths, chunksize=64))
    return {i: r for i, r in enumerate(reasons) if r is not None}


def load_image(
    path: str, color_mode: str, target_size: Sequence[int], interpolation: str, keep_aspect_ratio: bool
) -> np.ndarray:
    """One image as ``keras.utils.load_img`` decodes it, (H, W, C) in its own dtype (uint8 when 8-bit).

    An ``interpolation`` PIL lacks raises ConfigError, with Keras's message, only when the image
    needs resizing: Keras accepts one (``"area"``, say) for images already of ``target_size``.
    """
    known = interpolation in INTERPOLATIONS
    img = keras.utils.load_img(
        path,
        color_mode=color_mode,
        target_size=target_size if known else None,
        interpolation=interpolation,
        keep_aspect_ratio=keep_aspect_ratio,
    )
    try:
        if not known and img.size != (target_size[1], target_size[0]):
            raise ConfigError(
                f"Invalid interpolation method {interpolation} specified. Supported methods are "
                f"{', '.join(INTERPOLATIONS)}"
            )
        x = np.asarray(img)
    finally:
        img.close()
    return x[..., None] if x.ndim == 2 else x


# ---- data formats ----------------------------------------------------------------------------------
def reorder_features(matrix: np.ndarray, shape: tuple[int, ...], to_channels_last: bool) -> np.ndarray:
    """A ZCA matrix over flattened images, re-indexed between channels-first and channels-last
    flattening of (H, W, C) images of ``shape``."""
    h, w, c = shape
    ids = np.arange(h * w * c)
    order = (
        ids.reshape(c, h, w).transpose(1, 2, 0)
        if to_channels_last
        else ids.reshape(h, w, c).transpose(2, 0, 1)
    )
    perm = order.ravel()
    return matrix[np.ix_(perm, perm)]


class ChannelsFirstHook:
    """Runs a channels-first ``preprocessing_function`` on the engine's channels-last images."""

    def __init__(self, function: Callable[[np.ndarray], np.ndarray]):
        self.function = function

    def __call__(self, image: np.ndarray) -> np.ndarray:
        return np.moveaxis(np.asarray(self.function(np.moveaxis(image, -1, 0))), 0, -1)
