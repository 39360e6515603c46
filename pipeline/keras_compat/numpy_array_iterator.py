"""Batches from in-memory arrays, as ``ImageDataGenerator.flow`` serves them."""

from __future__ import annotations

import warnings
from typing import Any

import keras
import numpy as np

from pipeline.keras_compat.iterator import BatchAugmenter, Iterator


class NumpyArrayIterator(Iterator):
    """Batches from in-memory arrays (``ImageDataGenerator.flow``). uint8 images are kept as uint8."""

    def __init__(
        self,
        x: Any,
        y: Any,
        image_data_generator: BatchAugmenter,
        batch_size: int = 32,
        shuffle: bool = False,
        sample_weight: Any = None,
        seed: int | None = None,
        data_format: str | None = None,
        save_to_dir: str | None = None,
        save_prefix: str = "",
        save_format: str = "png",
        subset: str | None = None,
        ignore_class_split: bool = False,
        dtype: Any = None,
        **kwargs: Any,
    ):
        if data_format is None:
            data_format = keras.config.image_data_format()
        self.dtype = keras.config.floatx() if dtype is None else dtype
        if isinstance(x, tuple | list):
            x_misc = [np.asarray(x[1])] if not isinstance(x[1], list) else [np.asarray(xx) for xx in x[1]]
            x = x[0]
            for xx in x_misc:
                if len(x) != len(xx):
                    raise ValueError(
                        "All of the arrays in `x` should have the same length. Found a pair with: "
                        f"len(x[0]) = {len(x)}, len(x[?]) = {len(xx)}"
                    )
        else:
            x_misc = []
        if y is not None and len(x) != len(y):
            raise ValueError(
                "`x` (images tensor) and `y` (labels) should have the same length. "
                f"Found: x.shape = {np.asarray(x).shape}, y.shape = {np.asarray(y).shape}"
            )
        if sample_weight is not None and len(x) != len(sample_weight):
            raise ValueError(
                "`x` (images tensor) and `sample_weight` should have the same length. "
                f"Found: x.shape = {np.asarray(x).shape}, "
                f"sample_weight.shape = {np.asarray(sample_weight).shape}"
            )
        if subset is not None:
            if subset not in {"training", "validation"}:
                raise ValueError(f'Invalid subset name: {subset}; expected "training" or "validation".')
            split_idx = int(len(x) * image_data_generator._validation_split)
            if (
                y is not None
                and not ignore_class_split
                and not np.array_equal(np.unique(y[:split_idx]), np.unique(y[split_idx:]))
            ):
                raise ValueError(
                    "Training and validation subsets have different number of classes after the split. "
                    "If your numpy arrays are sorted by the label, you might want to shuffle them."
                )
            part = slice(None, split_idx) if subset == "validation" else slice(split_idx, None)
            x = x[part]
            x_misc = [np.asarray(xx[part]) for xx in x_misc]
            if y is not None:
                y = y[part]
            if sample_weight is not None:  # Keras forgot to split the weights and misaligned them
                sample_weight = sample_weight[part]
        x = np.asarray(x)
        # C order once here: batches are then read from it in place (see the batch path below).
        self.x = np.ascontiguousarray(x if x.dtype == np.uint8 else np.asarray(x, dtype=self.dtype))
        self.x_misc = x_misc
        if self.x.ndim != 4:
            raise ValueError(
                "Input data in `NumpyArrayIterator` should have rank 4. "
                f"You passed an array with shape {self.x.shape}"
            )
        channels_axis = 3 if data_format == "channels_last" else 1
        if self.x.shape[channels_axis] not in {1, 3, 4}:
            warnings.warn(
                f'NumpyArrayIterator is set to use the data format convention "{data_format}" (channels on '
                f"axis {channels_axis}), i.e. expected either 1, 3, or 4 channels on axis {channels_axis}. "
                f"However, it was passed an array with shape {self.x.shape} ({self.x.shape[channels_axis]} "
                "channels).",
                stacklevel=3,
            )
        self.y = None if y is None else np.asarray(y)
        self.sample_weight = None if sample_weight is None else np.asarray(sample_weight)
        self.image_data_generator = image_data_generator
        self.data_format = data_format
        self.save_to_dir = save_to_dir
        self.save_prefix = save_prefix
        self.save_format = save_format
        super().__init__(self.x.shape[0], batch_size, shuffle, seed, **kwargs)

    def _get_batches_of_transformed_samples(self, index_array: np.ndarray, epoch: int | None = None) -> Any:
        epoch = self.epoch if epoch is None else epoch
        if not len(index_array):  # an empty dataset's batch, as Keras serves it
            batch_x = np.zeros((0, *self.x.shape[1:]), dtype=self.dtype)
        elif self.data_format == "channels_first":
            images = self.x[index_array].transpose(0, 2, 3, 1)
            batch_x = self._finish(
                self.image_data_generator._augment_batch(images, index_array, epoch, self.seed)
            )
        else:
            # The engine reads the batch's images from the array in place: a copy of each batch costs
            # a tenth of the augmentation of float32 images at 224x224.
            batch_x = self._finish(
                self.image_data_generator._augment_batch(
                    self.x, index_array, epoch, self.seed, rows=index_array
                )
            )
        if self.save_to_dir:
            self._save(batch_x, index_array, epoch, 10**4)
        batch_x_miscs = [xx[index_array] for xx in self.x_misc]
        inputs = batch_x if not batch_x_miscs else [batch_x, *batch_x_miscs]
        if self.y is None:
            return inputs
        if self.sample_weight is None:
            return inputs, self.y[index_array]
        return inputs, self.y[index_array], self.sample_weight[index_array]
