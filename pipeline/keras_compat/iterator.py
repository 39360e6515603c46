"""The iterator base: Keras's ``Iterator`` contract with keyed randomness, and the little an iterator
asks of its ``ImageDataGenerator`` (the generator's module imports the iterators, never the reverse)."""

from __future__ import annotations

import numbers
import os
import threading
from abc import abstractmethod
from collections.abc import Generator
from typing import Any, NamedTuple, Protocol

import keras
import numpy as np
from keras.utils import PyDataset

from pipeline.keras_compat.utils import WHITE_LIST_FORMATS, resolve_seed
from pipeline.params import epoch_order


class BatchAugmenter(Protocol):
    """What an iterator calls on its ``ImageDataGenerator`` (Keras's iterators read the same
    ``_validation_split``)."""

    @property
    def _validation_split(self) -> float: ...

    def _augment_batch(
        self, images: np.ndarray, indices: np.ndarray, epoch: int, seed: int, rows: np.ndarray | None = None
    ) -> np.ndarray:
        """Augment and standardize channels-last ``images``, sample ``indices[i]`` of ``epoch``; with
        ``rows``, sample i is ``images[rows[i]]``."""
        ...


class _EpochOrder(NamedTuple):
    """The sample order of one epoch, cached with what it was computed for."""

    epoch: int
    shuffle: bool
    n: int
    order: np.ndarray


class _Step(NamedTuple):
    """One batch of the ``next()`` walk: its sample indices and the epoch it belongs to."""

    indices: np.ndarray
    epoch: int


class Iterator(PyDataset):
    """Keras's iterator contract with keyed randomness: batch ``idx`` of epoch ``e`` is always the same.

    ``it[idx]`` serves the current epoch (``on_epoch_end`` advances it); ``next(it)`` (or ``it.next()``)
    walks the batches forever, advancing the epoch as it wraps around, and ``index_generator`` yields
    the sample indices of that walk. An empty dataset has length 0 and serves empty batches, as in Keras.
    """

    white_list_formats = WHITE_LIST_FORMATS
    # Set by each iterator's constructor; the batch finishing and saving below read them.
    data_format: str
    dtype: Any
    save_to_dir: str | None
    save_prefix: str
    save_format: str

    def __init__(self, n: int, batch_size: int, shuffle: bool, seed: int | None, **kwargs: Any):
        super().__init__(**kwargs)
        # Keras accepts batch_size 0 for an empty dataset; with samples it would serve empty batches
        # forever, so it is refused.
        is_integer = isinstance(batch_size, numbers.Integral) and not isinstance(batch_size, bool)
        if not is_integer or batch_size < (0 if n == 0 else 1):
            raise ValueError(
                f"batch_size must be a positive integer (0 only for an empty dataset), but got {batch_size!r}"
            )
        self.n: int = n
        self.batch_size: int = int(batch_size)
        self.shuffle: bool = shuffle
        self.seed: int = resolve_seed(seed)
        self.epoch: int = 0
        self.batch_index: int = 0
        self.total_batches_seen: int = 0
        self.lock: threading.Lock = threading.Lock()
        self._order_cache: _EpochOrder | None = None

    @property
    def index_array(self) -> np.ndarray:
        """Sample indices in the order the current epoch serves them."""
        return self._order(self.epoch)

    def _order(self, epoch: int) -> np.ndarray:
        shuffle = bool(self.shuffle)
        cached = self._order_cache
        if cached is None or (cached.epoch, cached.shuffle, cached.n) != (epoch, shuffle, self.n):
            cached = _EpochOrder(epoch, shuffle, self.n, epoch_order(self.n, self.shuffle, self.seed, epoch))
            self._order_cache = cached
        return cached.order

    def __len__(self) -> int:
        if self.batch_size == 0:  # only an empty dataset has one (Keras divides by zero here)
            return 0
        return (self.n + self.batch_size - 1) // self.batch_size

    def __getitem__(self, idx: int) -> Any:
        if not 0 <= idx < len(self):
            raise ValueError(f"Asked to retrieve element {idx}, but the Sequence has length {len(self)}")
        self.total_batches_seen += 1
        return self._get_batches_of_transformed_samples(self._indices(idx, self.epoch), self.epoch)

    def _indices(self, idx: int, epoch: int) -> np.ndarray:
        return self._order(epoch)[self.batch_size * idx : self.batch_size * (idx + 1)]

    def on_epoch_end(self) -> None:
        self.epoch += 1

    def reset(self) -> None:
        self.batch_index = 0

    def __iter__(self) -> Iterator:
        return self

    def __next__(self) -> Any:
        with self.lock:
            step = self._step()
        # Outside the lock, as in Keras: threads calling next() build their batches in parallel.
        return self._get_batches_of_transformed_samples(step.indices, step.epoch)

    def next(self) -> Any:
        """The next batch, as ``next(iterator)`` gives it (keras-preprocessing's and tf.keras's name)."""
        return self.__next__()

    @property
    def index_generator(self) -> Generator[np.ndarray, None, None]:
        """Keras's generator of the sample indices of the batches ``next()`` serves, forever.

        It moves the same cursor as ``next()``: reading one index array skips that batch there. An
        empty dataset gives empty index arrays, as in Keras.
        """
        while True:
            with self.lock:
                step = self._step()
            yield step.indices

    def _step(self) -> _Step:
        """Move the cursor one batch on (under ``lock``): that batch's indices and epoch."""
        idx, epoch = self.batch_index, self.epoch
        self.batch_index += 1
        self.total_batches_seen += 1
        if self.batch_index >= len(self):
            self.batch_index = 0
            self.on_epoch_end()
        return _Step(self._indices(idx, epoch), epoch)

    @abstractmethod
    def _get_batches_of_transformed_samples(self, index_array: np.ndarray, epoch: int | None = None) -> Any:
        """One batch for ``index_array`` (indices into the dataset) of ``epoch``: each iterator's own."""

    def _finish(self, batch: np.ndarray) -> np.ndarray:
        """The engine's channels-last batch in this iterator's data format and dtype."""
        if self.data_format == "channels_first":
            batch = np.ascontiguousarray(batch.transpose(0, 3, 1, 2))
        return batch.astype(self.dtype, copy=False)

    def _save(self, batch_x: np.ndarray, indices: np.ndarray, epoch: int, hash_range: int) -> None:
        assert self.save_to_dir is not None  # called only when saving was asked for
        for x, j in zip(batch_x, indices, strict=True):
            # Keras names files with a random number; a keyed one keeps the global RNG untouched.
            tag = np.random.default_rng([self.seed, epoch, int(j)]).integers(hash_range)
            img = keras.utils.array_to_img(x, self.data_format, scale=True)
            img.save(os.path.join(self.save_to_dir, f"{self.save_prefix}_{j}_{tag}.{self.save_format}"))

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        del state["lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.lock = threading.Lock()
