"""Datasets that ship inside installed packages, so the main job needs no download."""

from __future__ import annotations

import numpy as np


def load_bundled_digits() -> tuple[np.ndarray, np.ndarray, list[str]]:
    """scikit-learn's 1,797 handwritten digits as uint8 (N, 8, 8, 1) images, labels and class names.

    The original pixels are 0-16; they are scaled to 0-255 so every option keeps Keras's meaning
    (brightness and channel shift assume 8-bit values).
    """
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = np.rint(digits.images * (255.0 / 16.0)).astype(np.uint8)[..., None]
    return images, digits.target.astype(np.int64), [str(c) for c in digits.target_names]


def load_bundled_photos() -> tuple[np.ndarray, list[str]]:
    """scikit-learn's two sample photographs (427x640 RGB, uint8) and their names."""
    from sklearn.datasets import load_sample_images

    bunch = load_sample_images()
    names = [f.rsplit("/", 1)[-1].rsplit(".", 1)[0] for f in bunch.filenames]
    return np.stack(bunch.images), names
