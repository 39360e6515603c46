"""Shared fixtures: real photographs, downscaled so the suite stays fast.

Sources are bundled with installed packages (scikit-learn's sample images, scikit-image's data), so
nothing is downloaded. Every image is (H, W, C): grayscale ones keep a channel axis of 1.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

from functools import cache  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import skimage.data  # noqa: E402
from sklearn.datasets import load_sample_images  # noqa: E402


def _resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
    out = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
    return out[..., None] if out.ndim == 2 else out


@cache
def _sources() -> dict[str, np.ndarray]:
    china, flower = load_sample_images().images
    return {
        "china": china,  # 427x640 RGB
        "flower": flower,  # 427x640 RGB
        "astronaut": skimage.data.astronaut(),  # 512x512 RGB
        "coffee": skimage.data.coffee(),  # 400x600 RGB
        "chelsea": skimage.data.chelsea(),  # 300x451 RGB
        "rocket": skimage.data.rocket(),  # 427x640 RGB
        "camera": skimage.data.camera(),  # 512x512 grayscale
    }


@cache
def _photos() -> dict[str, np.ndarray]:
    src = _sources()
    chelsea_gray = cv2.cvtColor(src["chelsea"], cv2.COLOR_RGB2GRAY)
    photos = {
        "rgb": _resize(src["china"], 120, 180),
        "rgb_square": _resize(src["astronaut"], 128, 128),
        "gray": _resize(chelsea_gray, 100, 150),
        "gray_square": _resize(src["camera"], 128, 128),
    }
    for image in photos.values():
        image.flags.writeable = False  # a test that mutates a shared fixture fails loudly
    return photos


@pytest.fixture(scope="session")
def photos_u8() -> dict[str, np.ndarray]:
    """uint8 photos by kind: ``rgb`` (120x180x3), ``rgb_square`` (128x128x3), ``gray`` (100x150x1),
    ``gray_square`` (128x128x1). Read-only: copy before modifying."""
    return _photos()


@pytest.fixture(scope="session")
def photos_f32(photos_u8: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The same photos as float32 on the 0-255 scale."""
    return {k: v.astype(np.float32) for k, v in photos_u8.items()}


@pytest.fixture(scope="session")
def photo_batch_u8() -> np.ndarray:
    """Six different RGB photos resized to one shape: (6, 96, 128, 3) uint8, read-only."""
    src = _sources()
    names = ("china", "flower", "astronaut", "coffee", "chelsea", "rocket")
    batch = np.stack([_resize(src[n], 96, 128) for n in names])
    batch.flags.writeable = False
    return batch


@pytest.fixture(scope="session")
def gray_batch_u8(photo_batch_u8: np.ndarray) -> np.ndarray:
    """The six photos of :func:`photo_batch_u8` in grayscale: (6, 96, 128, 1) uint8, read-only."""
    batch = np.stack([cv2.cvtColor(im, cv2.COLOR_RGB2GRAY)[..., None] for im in photo_batch_u8])
    batch.flags.writeable = False
    return batch


@pytest.fixture(scope="session")
def prefect_api():
    """One temporary Prefect API (SQLite) for the whole session, shared by every module that runs
    flows: it takes seconds to start."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=60):
        yield
