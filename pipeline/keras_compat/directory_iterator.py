"""Batches from a folder with one subfolder per class, as ``ImageDataGenerator.flow_from_directory``
serves them."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import keras
import numpy as np

from pipeline.keras_compat.file_iterator import FileIterator
from pipeline.keras_compat.iterator import BatchAugmenter
from pipeline.keras_compat.utils import list_class_files, print_msg


class DirectoryIterator(FileIterator):
    """Batches from a folder with one subfolder per class (``ImageDataGenerator.flow_from_directory``)."""

    allowed_class_modes = {"categorical", "binary", "sparse", "input", None}

    def __init__(
        self,
        directory: str,
        image_data_generator: BatchAugmenter | None,
        target_size: Sequence[int] = (256, 256),
        color_mode: str = "rgb",
        classes: list[str] | None = None,
        class_mode: str | None = "categorical",
        batch_size: int = 32,
        shuffle: bool = True,
        seed: int | None = None,
        data_format: str | None = None,
        save_to_dir: str | None = None,
        save_prefix: str = "",
        save_format: str = "png",
        follow_links: bool = False,
        subset: str | None = None,
        interpolation: str = "nearest",
        keep_aspect_ratio: bool = False,
        dtype: Any = None,
        **kwargs: Any,
    ):
        if data_format is None:
            data_format = keras.config.image_data_format()
        self.dtype = keras.config.floatx() if dtype is None else dtype
        self._set_processing_attrs(
            image_data_generator,
            target_size,
            color_mode,
            data_format,
            save_to_dir,
            save_prefix,
            save_format,
            subset,
            interpolation,
            keep_aspect_ratio,
        )
        self.directory = directory
        if class_mode not in self.allowed_class_modes:
            raise ValueError(f"Invalid class_mode: {class_mode}; expected one of: {self.allowed_class_modes}")
        self.class_mode = class_mode
        if not os.path.isdir(directory):
            raise FileNotFoundError(
                f"DirectoryIterator: directory {str(directory)!r} does not exist or is not a directory"
            )
        if not classes:
            classes = [d for d in sorted(os.listdir(directory)) if os.path.isdir(os.path.join(directory, d))]
        self.num_classes = len(classes)
        self.class_indices = dict(zip(classes, range(len(classes)), strict=True))
        filenames: list[str] = []
        labels: list[int] = []
        for subdir in classes:
            found = list_class_files(directory, subdir, self.split, follow_links)
            filenames += found
            labels += [self.class_indices[subdir]] * len(found)
        keep = self._readable([os.path.join(directory, f) for f in filenames])
        self.filenames = [f for f, k in zip(filenames, keep, strict=True) if k]
        self.classes = np.asarray(labels, dtype="int32")[keep]
        self.samples = len(self.filenames)
        print_msg(f"Found {self.samples} images belonging to {self.num_classes} classes.")
        self._filepaths = [os.path.join(directory, fname) for fname in self.filenames]
        super().__init__(self.samples, batch_size, shuffle, seed, **kwargs)

    @property
    def labels(self) -> np.ndarray:
        return self.classes

    @property
    def sample_weight(self) -> None:
        return None
