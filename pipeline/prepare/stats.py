"""The train split's pixel statistics, counted exactly as histograms that chunks sum in parallel."""

from __future__ import annotations

import cv2
import numpy as np


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
