"""What ``ImageDataGenerator.fit`` accepts besides an array: a stream of batches, read as channels-last
image batches."""

from __future__ import annotations

from collections.abc import Generator, Iterable
from typing import Any

import numpy as np
from keras.utils import PyDataset


def is_batch_source(x: Any) -> bool:
    """Whether ``fit`` streams ``x`` as batches (an iterable, a PyDataset) rather than one array."""
    if isinstance(x, PyDataset):
        return True
    if isinstance(x, np.ndarray | list | tuple) or hasattr(x, "__array__"):
        return False
    return isinstance(x, Iterable)


class FitBatches:
    """A re-iterable view of a batch source for ``fit``: channels-last image batches.

    Items may be image batches or ``(x, y[, w])`` tuples as Keras iterators yield; a PyDataset is
    read by index, once per pass. ``shape`` is the last image shape seen.
    """

    def __init__(self, source: Any, channels_first: bool):
        self.source = source
        self.channels_first = channels_first
        self.shape: tuple[int, ...] | None = None

    def __iter__(self) -> Generator[np.ndarray, None, None]:
        if isinstance(self.source, PyDataset):
            items: Iterable[Any] = (self.source[i] for i in range(len(self.source)))
        else:
            items = self.source
        for item in items:
            if isinstance(item, tuple):
                item = item[0]
            if isinstance(item, list):  # [images, misc inputs], as flow((images, misc)) yields
                item = item[0]
            x = np.asarray(item)
            if x.ndim != 4:
                raise ValueError(f"fit expects batches of rank 4 (N, H, W, C), but got shape {x.shape}")
            if self.channels_first:
                x = np.moveaxis(x, 1, -1)
            self.shape = tuple(x.shape[1:])
            yield x
