"""Batches from a dataframe of file paths and labels, as ``ImageDataGenerator.flow_from_dataframe``
serves them."""

from __future__ import annotations

import os
import warnings
from collections import OrderedDict
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline.keras_compat.file_iterator import FileIterator
from pipeline.keras_compat.iterator import BatchAugmenter
from pipeline.keras_compat.utils import WHITE_LIST_FORMATS, print_msg

if TYPE_CHECKING:  # a dataframe is only passed in: pandas is the caller's import
    import pandas as pd

# The class modes whose labels come straight from the dataframe, without a class index.
_UNINDEXED_MODES = ("input", "multi_output", "raw", None)


class DataFrameIterator(FileIterator):
    """Batches from a dataframe of file paths and labels (``ImageDataGenerator.flow_from_dataframe``)."""

    allowed_class_modes = {"binary", "categorical", "input", "multi_output", "raw", "sparse", None}

    def __init__(
        self,
        dataframe: pd.DataFrame,
        directory: str | None = None,
        image_data_generator: BatchAugmenter | None = None,
        x_col: str = "filename",
        y_col: Any = "class",
        weight_col: str | None = None,
        target_size: Sequence[int] = (256, 256),
        color_mode: str = "rgb",
        classes: list[Any] | None = None,
        class_mode: str | None = "categorical",
        batch_size: int = 32,
        shuffle: bool = True,
        seed: int | None = None,
        data_format: str = "channels_last",
        save_to_dir: str | None = None,
        save_prefix: str = "",
        save_format: str = "png",
        subset: str | None = None,
        interpolation: str = "nearest",
        keep_aspect_ratio: bool = False,
        dtype: Any = "float32",
        validate_filenames: bool = True,
        **kwargs: Any,
    ):
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
        df = dataframe.copy()
        self.directory = directory or ""
        self.class_mode = class_mode
        self.dtype = dtype
        self._check_params(df, x_col, y_col, weight_col, classes)
        if validate_filenames:
            df = self._filter_valid_filepaths(df, x_col)
        if class_mode not in _UNINDEXED_MODES:
            df, classes = self._filter_classes(df, y_col, classes)
            num_classes = len(classes)
            self.class_indices = dict(zip(classes, range(len(classes)), strict=True))
        if self.split:
            num_files = len(df)
            df = df.iloc[int(self.split[0] * num_files) : int(self.split[1] * num_files), :]
        if validate_filenames:
            df = df.loc[self._readable([os.path.join(self.directory, f) for f in df[x_col]])]
        if class_mode not in _UNINDEXED_MODES:
            self.classes = self.get_classes(df, y_col)
        self.filenames = df[x_col].tolist()
        self._sample_weight = df[weight_col].values if weight_col else None
        if class_mode == "multi_output":
            self._targets = [np.array(df[col].tolist()) for col in y_col]
        if class_mode == "raw":
            self._targets = df[y_col].values
        self.samples = len(self.filenames)
        validated = "validated" if validate_filenames else "non-validated"
        if class_mode in _UNINDEXED_MODES:
            print_msg(f"Found {self.samples} {validated} image filenames.")
        else:
            print_msg(f"Found {self.samples} {validated} image filenames belonging to {num_classes} classes.")
        self._filepaths = [os.path.join(self.directory, fname) for fname in self.filenames]
        super().__init__(self.samples, batch_size, shuffle, seed, **kwargs)

    def _check_params(
        self, df: pd.DataFrame, x_col: str, y_col: Any, weight_col: str | None, classes: list[Any] | None
    ) -> None:
        if self.class_mode not in self.allowed_class_modes:
            raise ValueError(
                f"Invalid class_mode: {self.class_mode}; expected one of: {self.allowed_class_modes}"
            )
        if self.class_mode == "multi_output" and not isinstance(y_col, list):
            raise TypeError(
                f'If class_mode="{self.class_mode}", y_col must be a list. Received {type(y_col).__name__}.'
            )
        if not all(df[x_col].apply(lambda x: isinstance(x, str))):
            raise TypeError(f"All values in column x_col={x_col} must be strings.")
        if self.class_mode in {"binary", "sparse"} and not all(df[y_col].apply(lambda x: isinstance(x, str))):
            raise TypeError(
                f'If class_mode="{self.class_mode}", y_col="{y_col}" column values must be strings.'
            )
        if self.class_mode == "binary":
            if classes:
                if len(set(classes)) != 2:
                    raise ValueError(
                        'If class_mode="binary" there must be 2 classes. '
                        f"{len(set(classes))} class/es were given."
                    )
            elif df[y_col].nunique() != 2:
                raise ValueError(
                    f'If class_mode="binary" there must be 2 classes. Found {df[y_col].nunique()} classes.'
                )
        if self.class_mode == "categorical" and not all(
            df[y_col].apply(lambda x: isinstance(x, str | list | tuple))
        ):
            raise TypeError(
                f'If class_mode="{self.class_mode}", y_col="{y_col}" column values must be type string, '
                "list or tuple."
            )
        if classes and self.class_mode in _UNINDEXED_MODES:
            warnings.warn(f'`classes` will be ignored given the class_mode="{self.class_mode}"', stacklevel=4)
        if weight_col and not issubclass(df[weight_col].dtype.type, np.number):
            raise TypeError(f"Column weight_col={weight_col} must be numeric.")

    def get_classes(self, df: pd.DataFrame, y_col: str) -> list[int | list[int]]:
        labels: list[int | list[int]] = []
        for label in df[y_col]:
            if isinstance(label, list | tuple):
                labels.append([self.class_indices[lbl] for lbl in label])
            else:
                labels.append(self.class_indices[label])
        return labels

    @staticmethod
    def _filter_classes(
        df: pd.DataFrame, y_col: str, classes: list[Any] | None
    ) -> tuple[pd.DataFrame, list[Any]]:
        df = df.copy()

        def remove_classes(labels: Any, classes: list[Any]) -> Any:
            if isinstance(labels, list | tuple):
                labels = [cls for cls in labels if cls in classes]
                return labels or None
            if isinstance(labels, str):
                return labels if labels in classes else None
            raise TypeError(f"Expect string, list or tuple but found {type(labels)} in {y_col} column ")

        if classes:
            kept = list(OrderedDict.fromkeys(classes).keys())
            df[y_col] = df[y_col].apply(lambda x: remove_classes(x, kept))
            return df.dropna(subset=[y_col]), kept
        found: set[Any] = set()
        for v in df[y_col]:
            if isinstance(v, list | tuple):
                found.update(v)
            else:
                found.add(v)
        return df.dropna(subset=[y_col]), sorted(found)

    def _filter_valid_filepaths(self, df: pd.DataFrame, x_col: str) -> pd.DataFrame:
        """Keep the rows whose file exists with an allowed extension (Keras's check and warning)."""
        paths = df[x_col].map(lambda fname: os.path.join(self.directory, fname))
        mask = paths.apply(lambda p: p.lower().endswith(WHITE_LIST_FORMATS) and os.path.isfile(p))
        n_invalid = (~mask).sum()
        if n_invalid:
            warnings.warn(
                f'Found {n_invalid} invalid image filename(s) in x_col="{x_col}". '
                "These filename(s) will be ignored.",
                stacklevel=4,
            )
        return df.loc[mask.to_numpy(dtype=bool)]  # an empty mask has dtype object: force rows

    @property
    def labels(self) -> Any:
        if self.class_mode in {"multi_output", "raw"}:
            return self._targets
        return self.classes

    @property
    def sample_weight(self) -> np.ndarray | None:
        return self._sample_weight
