"""What the directory and dataframe iterators share (Keras's ``BatchFromFilesMixin``): decoding files
into batches, building labels, and leaving unreadable files out."""

from __future__ import annotations

import warnings
from abc import abstractmethod
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

import numpy as np

from pipeline.augment import Augmenter
from pipeline.config import AugmentConfig
from pipeline.errors import ConfigError
from pipeline.functional.normalize import FitStats
from pipeline.keras_compat.iterator import BatchAugmenter, Iterator
from pipeline.keras_compat.utils import (
    CHANNELS,
    COLOR_MODES,
    describe_error,
    header_problems,
    load_image,
)


class SkippedFile(NamedTuple):
    """A file an iterator left out, and why (``iterator.skipped`` lists them)."""

    path: str
    reason: str


class _Unaugmented:
    """The batch path of an iterator given no generator: Keras then neither augments nor normalises,
    so the engine's default options only convert the batch to ``dtype``."""

    def __init__(self, dtype: Any):
        self._augmenter = Augmenter(AugmentConfig(), output_dtype=dtype, stats=FitStats())

    def _augment_batch(
        self, images: np.ndarray, indices: np.ndarray, epoch: int, seed: int, rows: np.ndarray | None = None
    ) -> np.ndarray:
        batch, _ = self._augmenter.augment_batch(images, indices, epoch=epoch, seed=seed, rows=rows)
        return batch


class FileIterator(Iterator):
    """Keras's ``BatchFromFilesMixin``: decoding, label building and unreadable-file handling."""

    # Set by each file iterator's constructor; the batch path below reads them.
    class_mode: str | None
    class_indices: dict[Any, int]
    classes: Any
    _filepaths: list[str]

    def _set_processing_attrs(
        self,
        image_data_generator: BatchAugmenter | None,
        target_size: Sequence[int],
        color_mode: str,
        data_format: str,
        save_to_dir: str | None,
        save_prefix: str,
        save_format: str,
        subset: str | None,
        interpolation: str,
        keep_aspect_ratio: bool,
    ) -> None:
        self.image_data_generator = image_data_generator
        self.target_size = tuple(target_size)
        self.keep_aspect_ratio = keep_aspect_ratio
        if color_mode not in COLOR_MODES:
            raise ValueError(f'Invalid color mode: {color_mode}; expected "rgb", "rgba", or "grayscale".')
        # An interpolation PIL lacks ("area") is refused by the decoding, as in Keras: at the first
        # batch, and only for an image that needs resizing.
        self.color_mode = color_mode
        self.data_format = data_format
        channels = CHANNELS[color_mode]
        if data_format == "channels_last":
            self.image_shape = (*self.target_size, channels)
        else:
            self.image_shape = (channels, *self.target_size)
        self.save_to_dir = save_to_dir
        self.save_prefix = save_prefix
        self.save_format = save_format
        self.interpolation = interpolation
        split: tuple[float, float] | None
        if subset is not None:
            # Without a generator this fails as Keras's does: a subset needs its validation_split.
            validation_split = image_data_generator._validation_split  # type: ignore[union-attr]
            if subset == "validation":
                split = (0, validation_split)
            elif subset == "training":
                split = (validation_split, 1)
            else:
                raise ValueError(f'Invalid subset name: {subset};expected "training" or "validation"')
        else:
            split = None
        self.split = split
        self.subset = subset
        self.skipped: list[SkippedFile] = []
        self._bad: set[int] = set()
        self._plain: _Unaugmented | None = None

    def _readable(self, paths: Sequence[str]) -> np.ndarray:
        """Mask of the files whose header reads; the others are recorded and warned about once."""
        problems = header_problems(paths)
        if problems:
            found = [SkippedFile(paths[i], reason) for i, reason in problems.items()]
            self.skipped.extend(found)
            listing = "\n".join(f"  {p}: {r}" for p, r in found)
            warnings.warn(
                f"{type(self).__name__}: left out {len(found)} unreadable image file(s):\n{listing}",
                UserWarning,
                stacklevel=4,
            )
        keep = np.ones(len(paths), dtype=bool)
        keep[list(problems)] = False
        return keep

    @property
    def filepaths(self) -> list[str]:
        """Paths of the image files, in dataset order."""
        return self._filepaths

    def _decode(self, candidates: Iterable[int]) -> tuple[list[int], list[np.ndarray]]:
        kept: list[int] = []
        arrays: list[np.ndarray] = []
        dropped: list[int] = []
        failed: list[SkippedFile] = []
        for j in candidates:
            j = int(j)
            if j in self._bad:
                continue
            path = self._filepaths[j]
            try:
                arrays.append(
                    load_image(
                        path, self.color_mode, self.target_size, self.interpolation, self.keep_aspect_ratio
                    )
                )
            except ConfigError:  # a bad option, not a bad file: every file would fail alike
                raise
            except Exception as err:  # whatever a broken file raises, training goes on without it
                dropped.append(j)
                failed.append(SkippedFile(path, describe_error(err)))
                continue
            kept.append(j)
        if failed:
            with self.lock:
                self._bad.update(dropped)
                self.skipped.extend(failed)
            listing = "\n".join(f"  {p}: {r}" for p, r in failed)
            warnings.warn(
                f"{type(self).__name__}: dropped {len(failed)} image(s) that failed to decode from this "
                f"batch; they are left out of later epochs too:\n{listing}",
                UserWarning,
                stacklevel=5,
            )
        return kept, arrays

    def _read(self, index_array: np.ndarray, epoch: int) -> tuple[np.ndarray, list[np.ndarray]]:
        kept, arrays = self._decode(index_array)
        if not kept and len(index_array):
            # An empty batch would train on nothing: borrow the epoch's first readable sample.
            for j in self._order(epoch):
                kept, arrays = self._decode([j])
                if kept:
                    break
            else:
                raise RuntimeError(
                    f"{type(self).__name__}: none of the {self.n} images could be decoded; see .skipped"
                )
        return np.asarray(kept, dtype=np.int64), arrays

    def _augment(self, arrays: list[np.ndarray], indices: np.ndarray, epoch: int) -> np.ndarray:
        # 8-bit images go through the engine as uint8; 16/32-bit grayscale ones as float32.
        is_u8 = np.array([a.dtype == np.uint8 for a in arrays])
        out = None
        for group in (np.flatnonzero(is_u8), np.flatnonzero(~is_u8)):
            if not len(group):
                continue
            images = np.stack([arrays[i] for i in group])
            if not is_u8[group[0]]:
                images = images.astype(np.float32)
            part = self._generator._augment_batch(images, indices[group], epoch, self.seed)
            if len(group) == len(arrays):
                return part
            if out is None:
                out = np.empty((len(arrays), *part.shape[1:]), part.dtype)
            out[group] = part
        assert out is not None
        return out

    def _get_batches_of_transformed_samples(self, index_array: np.ndarray, epoch: int | None = None) -> Any:
        epoch = self.epoch if epoch is None else epoch
        index_array, arrays = self._read(np.asarray(index_array), epoch)
        if arrays:
            batch_x = self._finish(self._augment(arrays, index_array, epoch))
        else:  # an empty dataset's batch, as Keras serves it
            batch_x = np.zeros((0, *self.image_shape), dtype=self.dtype)
        if self.save_to_dir:
            self._save(batch_x, index_array, epoch, 10**7)
        batch_y: Any
        if self.class_mode == "input":
            batch_y = batch_x.copy()
        elif self.class_mode in {"binary", "sparse"}:
            batch_y = np.empty(len(batch_x), dtype=self.dtype)
            for i, n_observation in enumerate(index_array):
                batch_y[i] = self.classes[n_observation]
        elif self.class_mode == "categorical":
            batch_y = np.zeros((len(batch_x), len(self.class_indices)), dtype=self.dtype)
            for i, n_observation in enumerate(index_array):
                batch_y[i, self.classes[n_observation]] = 1.0
        elif self.class_mode == "multi_output":
            batch_y = [output[index_array] for output in self.labels]
        elif self.class_mode == "raw":
            batch_y = self.labels[index_array]
        else:
            return batch_x
        if self.sample_weight is None:
            return batch_x, batch_y
        return batch_x, batch_y, self.sample_weight[index_array]

    @property
    @abstractmethod
    def labels(self) -> Any:
        """Each sample's label(s), in dataset order."""

    @property
    @abstractmethod
    def sample_weight(self) -> np.ndarray | None:
        """Each sample's weight, or None."""

    @property
    def _generator(self) -> BatchAugmenter | _Unaugmented:
        if self.image_data_generator is not None:
            return self.image_data_generator
        if self._plain is None:
            self._plain = _Unaugmented(self.dtype)
        return self._plain
