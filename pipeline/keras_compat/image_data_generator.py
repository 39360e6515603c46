"""Keras's ``ImageDataGenerator``: its options validated by :class:`pipeline.AugmentConfig`, its batches
made by the engine, served by the iterators it builds."""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

import keras
import numpy as np
from keras.utils import PyDataset

from pipeline.augment import Augmenter
from pipeline.config import AugmentConfig
from pipeline.functional import normalize
from pipeline.functional.normalize import FitStats
from pipeline.keras_compat.dataframe_iterator import DataFrameIterator
from pipeline.keras_compat.directory_iterator import DirectoryIterator
from pipeline.keras_compat.fit_batches import FitBatches, is_batch_source
from pipeline.keras_compat.numpy_array_iterator import NumpyArrayIterator
from pipeline.keras_compat.utils import ChannelsFirstHook, reorder_features, resolve_seed

if TYPE_CHECKING:  # a dataframe is only passed in: pandas is the caller's import
    import pandas as pd

_NOT_FITTED = (
    "This ImageDataGenerator specifies `{}`, but it hasn't been fit on any training data. "
    "Fit it first by calling `.fit(numpy_data)`."
)


def _warn_overrides(
    *,
    featurewise_center: Any,
    samplewise_center: Any,
    featurewise_std_normalization: Any,
    samplewise_std_normalization: Any,
    zca_whitening: Any,
) -> None:
    """Keras's constructor warnings for the options that other options override.

    Given the values as passed: the validated config has already switched the overridden ones on.
    """
    prefix = "This ImageDataGenerator specifies "
    if zca_whitening:
        if not featurewise_center:
            warnings.warn(
                prefix + "`zca_whitening`, which overrides setting of `featurewise_center`.", stacklevel=3
            )
        if featurewise_std_normalization:
            warnings.warn(
                prefix + "`zca_whitening` which overrides setting of`featurewise_std_normalization`.",
                stacklevel=3,
            )
    if featurewise_std_normalization and not featurewise_center:
        warnings.warn(
            prefix + "`featurewise_std_normalization`, which overrides setting of `featurewise_center`.",
            stacklevel=3,
        )
    if samplewise_std_normalization and not samplewise_center:
        warnings.warn(
            prefix + "`samplewise_std_normalization`, which overrides setting of `samplewise_center`.",
            stacklevel=3,
        )


class _Option:
    """A Keras constructor option, read from the validated config; assigning it re-validates."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, obj: ImageDataGenerator | None, owner: type | None = None) -> Any:
        if obj is None:
            return self
        value = getattr(obj.config, self.name)
        return list(value) if self.name == "zoom_range" else value  # Keras keeps [low, high]

    def __set__(self, obj: ImageDataGenerator, value: Any) -> None:
        obj._reconfigure({self.name: value})


class ImageDataGenerator:
    """Keras's ``ImageDataGenerator``, running on the engine; options are validated by
    :class:`pipeline.AugmentConfig` (bad values raise :class:`pipeline.ConfigError`).

    ``mean``, ``std`` and ``zca_whitening_matrix`` can be read and set as in Keras; ``config`` and
    ``augmenter`` expose the validated options and the engine.
    """

    featurewise_center = _Option()
    samplewise_center = _Option()
    featurewise_std_normalization = _Option()
    samplewise_std_normalization = _Option()
    zca_whitening = _Option()
    zca_epsilon = _Option()
    rotation_range = _Option()
    width_shift_range = _Option()
    height_shift_range = _Option()
    brightness_range = _Option()
    shear_range = _Option()
    zoom_range = _Option()
    channel_shift_range = _Option()
    fill_mode = _Option()
    cval = _Option()
    horizontal_flip = _Option()
    vertical_flip = _Option()
    rescale = _Option()
    interpolation_order = _Option()

    def __init__(
        self,
        featurewise_center: bool = False,
        samplewise_center: bool = False,
        featurewise_std_normalization: bool = False,
        samplewise_std_normalization: bool = False,
        zca_whitening: bool = False,
        zca_epsilon: float = 1e-6,
        rotation_range: float = 0,
        width_shift_range: float | Sequence[float] = 0.0,
        height_shift_range: float | Sequence[float] = 0.0,
        brightness_range: Sequence[float] | None = None,
        shear_range: float = 0.0,
        zoom_range: float | Sequence[float] = 0.0,
        channel_shift_range: float = 0.0,
        fill_mode: str = "nearest",
        cval: float = 0.0,
        horizontal_flip: bool = False,
        vertical_flip: bool = False,
        rescale: float | None = None,
        preprocessing_function: Callable[[np.ndarray], np.ndarray] | None = None,
        data_format: str | None = None,
        validation_split: float = 0.0,
        interpolation_order: int = 1,
        dtype: Any = None,
    ):
        if data_format is None:
            data_format = keras.config.image_data_format()
        if data_format not in ("channels_last", "channels_first"):
            raise ValueError(
                '`data_format` should be `"channels_last"` (channel after row and column) or '
                f'`"channels_first"` (channel before row and column). Received: {data_format}'
            )
        options = dict(
            featurewise_center=featurewise_center,
            samplewise_center=samplewise_center,
            featurewise_std_normalization=featurewise_std_normalization,
            samplewise_std_normalization=samplewise_std_normalization,
            zca_whitening=zca_whitening,
            zca_epsilon=zca_epsilon,
            rotation_range=rotation_range,
            width_shift_range=width_shift_range,
            height_shift_range=height_shift_range,
            brightness_range=brightness_range,
            shear_range=shear_range,
            zoom_range=zoom_range,
            channel_shift_range=channel_shift_range,
            fill_mode=fill_mode,
            cval=cval,
            horizontal_flip=horizontal_flip,
            vertical_flip=vertical_flip,
            rescale=rescale,
            validation_split=validation_split,
            interpolation_order=interpolation_order,
        )
        self._config = AugmentConfig.parse(options)
        _warn_overrides(
            featurewise_center=featurewise_center,
            samplewise_center=samplewise_center,
            featurewise_std_normalization=featurewise_std_normalization,
            samplewise_std_normalization=samplewise_std_normalization,
            zca_whitening=zca_whitening,
        )
        self.data_format = data_format
        channels_first = data_format == "channels_first"
        self.channel_axis, self.row_axis, self.col_axis = (1, 2, 3) if channels_first else (3, 1, 2)
        self._dtype = keras.config.floatx() if dtype is None else dtype
        self._preprocessing_function = preprocessing_function
        self._stats = FitStats()
        # channels_first only: the ZCA matrix in Keras's (C, H, W) feature order, and the image
        # shape the engine's channels-last copy was last made for.
        self._zca_channels_first: np.ndarray | None = None
        self._zca_shape: tuple[int, ...] | None = None
        self._seed = resolve_seed(None)
        self._draws = 0
        self._lock = threading.Lock()
        self._rebuild()

    # ---- options and statistics --------------------------------------------------------------------
    @property
    def config(self) -> AugmentConfig:
        """The validated options (Keras's names); assign attributes to change them."""
        return self._config

    @property
    def augmenter(self) -> Augmenter:
        return self._augmenter

    @property
    def dtype(self) -> Any:
        return self._dtype

    @dtype.setter
    def dtype(self, value: Any) -> None:
        self._dtype = value
        self._rebuild()

    @property
    def preprocessing_function(self) -> Callable[[np.ndarray], np.ndarray] | None:
        return self._preprocessing_function

    @preprocessing_function.setter
    def preprocessing_function(self, value: Callable[[np.ndarray], np.ndarray] | None) -> None:
        self._preprocessing_function = value
        self._rebuild()

    @property
    def _validation_split(self) -> float:
        return self._config.validation_split

    @property
    def mean(self) -> np.ndarray | None:
        return self._to_format(self._stats.mean)

    @mean.setter
    def mean(self, value: Any) -> None:
        self._stats.mean = self._from_format(value)

    @property
    def std(self) -> np.ndarray | None:
        return self._to_format(self._stats.std)

    @std.setter
    def std(self, value: Any) -> None:
        self._stats.std = self._from_format(value)

    @property
    def zca_whitening_matrix(self) -> np.ndarray | None:
        if self.data_format == "channels_first":
            return self._zca_channels_first
        return self._stats.zca_whitening_matrix

    @zca_whitening_matrix.setter
    def zca_whitening_matrix(self, value: Any) -> None:
        value = None if value is None else np.asarray(value)
        if self.data_format == "channels_first":
            # The engine's channels-last copy needs the image shape: made when the first batch comes.
            self._zca_channels_first, self._zca_shape = value, None
            self._stats.zca_whitening_matrix = None
        else:
            self._stats.zca_whitening_matrix = value

    def _to_format(self, stat: np.ndarray | None) -> np.ndarray | None:
        if stat is None or self.data_format == "channels_last" or np.ndim(stat) != 3:
            return stat
        return np.moveaxis(stat, -1, 0)

    def _from_format(self, value: Any) -> np.ndarray | None:
        if value is None:
            return None
        value = np.asarray(value)
        if self.data_format == "channels_first" and value.ndim == 3:
            return np.moveaxis(value, 0, -1)
        return value

    def _reconfigure(self, changes: dict[str, Any]) -> None:
        self._config = AugmentConfig.parse({**self._config.model_dump(), **changes})
        self._rebuild()

    def _rebuild(self) -> None:
        hook = self._preprocessing_function
        if hook is not None and self.data_format == "channels_first":
            hook = ChannelsFirstHook(hook)
        self._augmenter = Augmenter(
            self._config, output_dtype=self._dtype, preprocessing_function=hook, stats=self._stats
        )

    def _fresh_seed(self) -> tuple[int, int]:
        """(instance seed, a new draw number): keys for draws the caller did not seed."""
        with self._lock:
            self._draws += 1
            return self._seed, self._draws

    def _warn_unfitted(self) -> None:
        c = self._config
        if c.featurewise_center and self.mean is None:
            warnings.warn(_NOT_FITTED.format("featurewise_center"), stacklevel=3)
        if c.featurewise_std_normalization and self.std is None:
            warnings.warn(_NOT_FITTED.format("featurewise_std_normalization"), stacklevel=3)
        if c.zca_whitening and self.zca_whitening_matrix is None:
            warnings.warn(_NOT_FITTED.format("zca_whitening"), stacklevel=3)

    def _sync_zca(self, shape: tuple[int, ...]) -> None:
        if self._zca_channels_first is not None and self._zca_shape != shape:
            self._stats.zca_whitening_matrix = reorder_features(self._zca_channels_first, shape, True)
            self._zca_shape = shape

    def _shape_channels_last(self, shape: Sequence[int]) -> tuple[int, ...]:
        shape = tuple(int(s) for s in shape)
        if len(shape) != 3:
            raise ValueError(f"expected the shape of one image (3 dimensions), but got {shape}")
        return (shape[1], shape[2], shape[0]) if self.data_format == "channels_first" else shape

    # ---- the batch path the iterators use --------------------------------------------------------------
    def _augment_batch(
        self, images: np.ndarray, indices: np.ndarray, epoch: int, seed: int, rows: np.ndarray | None = None
    ) -> np.ndarray:
        """Augment and standardize channels-last ``images``, sample ``indices[i]`` of ``epoch``; with
        ``rows``, sample i is ``images[rows[i]]``."""
        self._warn_unfitted()
        if self.data_format == "channels_first":
            self._sync_zca(tuple(images.shape[1:]))
        batch, _ = self._augmenter.augment_batch(images, indices, epoch=epoch, seed=seed, rows=rows)
        return batch

    # ---- Keras's methods ---------------------------------------------------------------------------------
    def flow(
        self,
        x: Any,
        y: Any = None,
        batch_size: int = 32,
        shuffle: bool = True,
        sample_weight: Any = None,
        seed: int | None = None,
        save_to_dir: str | None = None,
        save_prefix: str = "",
        save_format: str = "png",
        ignore_class_split: bool = False,
        subset: str | None = None,
    ) -> NumpyArrayIterator:
        """Batches from arrays: ``x`` images (N, H, W, C), or a tuple ``(images, misc array or list)``."""
        return NumpyArrayIterator(
            x,
            y,
            self,
            batch_size=batch_size,
            shuffle=shuffle,
            sample_weight=sample_weight,
            seed=seed,
            data_format=self.data_format,
            save_to_dir=save_to_dir,
            save_prefix=save_prefix,
            save_format=save_format,
            ignore_class_split=ignore_class_split,
            subset=subset,
            dtype=self.dtype,
        )

    def flow_from_directory(
        self,
        directory: str,
        target_size: Sequence[int] = (256, 256),
        color_mode: str = "rgb",
        classes: list[str] | None = None,
        class_mode: str | None = "categorical",
        batch_size: int = 32,
        shuffle: bool = True,
        seed: int | None = None,
        save_to_dir: str | None = None,
        save_prefix: str = "",
        save_format: str = "png",
        follow_links: bool = False,
        subset: str | None = None,
        interpolation: str = "nearest",
        keep_aspect_ratio: bool = False,
    ) -> DirectoryIterator:
        """Batches from a folder with one subfolder per class."""
        return DirectoryIterator(
            directory,
            self,
            target_size=target_size,
            color_mode=color_mode,
            keep_aspect_ratio=keep_aspect_ratio,
            classes=classes,
            class_mode=class_mode,
            data_format=self.data_format,
            batch_size=batch_size,
            shuffle=shuffle,
            seed=seed,
            save_to_dir=save_to_dir,
            save_prefix=save_prefix,
            save_format=save_format,
            follow_links=follow_links,
            subset=subset,
            interpolation=interpolation,
            dtype=self.dtype,
        )

    def flow_from_dataframe(
        self,
        dataframe: pd.DataFrame,
        directory: str | None = None,
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
        save_to_dir: str | None = None,
        save_prefix: str = "",
        save_format: str = "png",
        subset: str | None = None,
        interpolation: str = "nearest",
        validate_filenames: bool = True,
        **kwargs: Any,
    ) -> DataFrameIterator:
        """Batches from a dataframe of file paths and labels.

        ``kwargs`` may also carry ``keep_aspect_ratio`` and the PyDataset options ``workers``,
        ``use_multiprocessing`` and ``max_queue_size`` (Keras ignored every extra silently; here an
        unknown one raises ``TypeError``).
        """
        deprecated = {
            "has_ext": "has_ext is deprecated, filenames in the dataframe have to match the exact "
            "filenames in disk.",
            "sort": "sort is deprecated, batches will be created in thesame order than the filenames "
            "provided if `shuffle`is set to `False`.",
            "drop_duplicates": "drop_duplicates is deprecated, you can drop duplicates by using the "
            "pandas.DataFrame.drop_duplicates method.",
        }
        for name, message in deprecated.items():
            if name in kwargs:
                del kwargs[name]
                warnings.warn(message, DeprecationWarning, stacklevel=2)
        if class_mode == "other":
            warnings.warn(
                '`class_mode="other"` is deprecated, please use `class_mode="raw"`.',
                DeprecationWarning,
                stacklevel=2,
            )
            class_mode = "raw"
        passed = {
            k: kwargs.pop(k)
            for k in ("keep_aspect_ratio", "workers", "use_multiprocessing", "max_queue_size")
            if k in kwargs
        }
        if kwargs:
            raise TypeError(
                f"flow_from_dataframe() got unexpected keyword argument(s) {sorted(kwargs)}; beyond its own "
                "parameters it accepts keep_aspect_ratio, workers, use_multiprocessing and max_queue_size"
            )
        return DataFrameIterator(
            dataframe,
            directory,
            self,
            x_col=x_col,
            y_col=y_col,
            weight_col=weight_col,
            target_size=target_size,
            color_mode=color_mode,
            classes=classes,
            class_mode=class_mode,
            data_format=self.data_format,
            batch_size=batch_size,
            shuffle=shuffle,
            seed=seed,
            save_to_dir=save_to_dir,
            save_prefix=save_prefix,
            save_format=save_format,
            subset=subset,
            interpolation=interpolation,
            validate_filenames=validate_filenames,
            dtype=self.dtype,
            **passed,
        )

    def standardize(self, x: Any) -> np.ndarray:
        """Keras's normalisation of ``x``, whatever its shape, in place when ``x`` is a float array.

        Samplewise statistics span the whole array, as in Keras; other input gets a float copy.
        """
        if not (isinstance(x, np.ndarray) and x.dtype.kind == "f"):
            x = np.array(x, dtype=self.dtype)
        if self._preprocessing_function is not None:
            x = self._preprocessing_function(x)
        self._warn_unfitted()
        stats = FitStats(self.mean, self.std, self.zca_whitening_matrix)  # in this data format
        return self._augmenter._standardize(x, per_sample=False, stats=stats)

    def get_random_transform(self, img_shape: Sequence[int], seed: int | None = None) -> dict[str, Any]:
        """Keras's parameter dict for one image of ``img_shape``.

        With ``seed`` the draw is keyed by it (the same seed gives the same dict); without, each call
        draws afresh from this generator's own stream.
        """
        shape = self._shape_channels_last(img_shape)
        if seed is None:
            seed, index = self._fresh_seed()
        else:
            seed, index = resolve_seed(seed), 0
        return self._augmenter.draw(shape, [index], epoch=0, seed=seed)[0]

    def apply_transform(self, x: Any, transform_parameters: dict[str, Any]) -> np.ndarray:
        """Apply a Keras parameter dict to one image (missing keys take Keras's defaults)."""
        x = np.asarray(x)
        if x.ndim != 3:
            raise ValueError(f"apply_transform expects one image of rank 3, but got shape {x.shape}")
        if self.data_format == "channels_first":
            out = self._augmenter.apply_transform(
                np.ascontiguousarray(np.moveaxis(x, 0, -1)), transform_parameters
            )
            return np.ascontiguousarray(np.moveaxis(out, -1, 0))
        return self._augmenter.apply_transform(x, transform_parameters)

    def random_transform(self, x: Any, seed: int | None = None) -> np.ndarray:
        """One image, randomly transformed (see :meth:`get_random_transform` for ``seed``)."""
        return self.apply_transform(x, self.get_random_transform(np.shape(x), seed))

    def fit(self, x: Any, augment: bool = False, rounds: int = 1, seed: int | None = None) -> None:
        """Fit the featurewise statistics, as Keras does, on a rank-4 array, in this generator's float
        ``dtype`` (float64 statistics for ``dtype="float64"``).

        ``x`` may also be an iterable of batches (a generator, a ``tf.data.Dataset``, a PyDataset such
        as a ``flow_from_directory`` iterator, yielding images or ``(x, y)`` tuples), fitted in one
        streaming pass for data larger than memory. ``augment`` with ``rounds > 1`` reads it ``rounds``
        times, so it must be re-iterable.
        """
        if seed is None:
            seed = int(np.random.default_rng(list(self._fresh_seed())).integers(2**63))
        seed = resolve_seed(seed)
        channels_first = self.data_format == "channels_first"
        if is_batch_source(x):
            if augment and rounds > 1 and not isinstance(x, PyDataset) and iter(x) is x:
                raise ValueError(
                    f"fit(augment=True, rounds={rounds}) reads the data {rounds} times, but got a one-shot "
                    f"iterator ({type(x).__name__}); pass a re-iterable (a list of batches, a PyDataset, "
                    "a tf.data.Dataset) or rounds=1"
                )
            source = FitBatches(x, channels_first)
            stats = self._fit_stats(source, augment, rounds, seed, in_memory=False)
            shape = source.shape
        else:
            x = np.asarray(x)
            if x.dtype != np.uint8:  # uint8 stays uint8 so augmentation takes the engine's fast path
                x = x.astype(self.dtype)
            if x.ndim != 4:
                raise ValueError(f"Input to `.fit()` should have rank 4. Got array with shape: {x.shape}")
            if x.shape[self.channel_axis] not in {1, 3, 4}:
                warnings.warn(
                    "Expected input to be images (as Numpy array) following the data format convention "
                    f'"{self.data_format}" (channels on axis {self.channel_axis}), i.e. expected either 1, 3 '
                    f"or 4 channels on axis {self.channel_axis}. However, it was passed an array with shape "
                    f"{x.shape} ({x.shape[self.channel_axis]} channels).",
                    stacklevel=2,
                )
            if channels_first:
                x = np.moveaxis(x, 1, -1)
            stats = self._fit_stats([x], augment, rounds, seed, in_memory=True)
            shape = tuple(x.shape[1:])
        # Like Keras, only the statistics this configuration computes are replaced.
        c = self._config
        if c.featurewise_center:
            self._stats.mean = stats.mean
        if c.featurewise_std_normalization:
            self._stats.std = stats.std
        if c.zca_whitening:
            self._stats.zca_whitening_matrix = stats.zca_whitening_matrix
            if channels_first and shape is not None and stats.zca_whitening_matrix is not None:
                self._zca_channels_first = reorder_features(stats.zca_whitening_matrix, shape, False)
                self._zca_shape = shape
        self._augmenter.stats = self._stats

    def _fit_stats(
        self, batches: Iterable[np.ndarray], augment: bool, rounds: int, seed: int, in_memory: bool
    ) -> FitStats:
        """The statistics of channels-last ``batches``, augmented ``rounds`` times if asked, then
        rescaled, all in the float dtype the batches are served in.

        The engine's own ``Augmenter.fit`` works in float32; Keras computes in its ``dtype``, so a
        float64 generator would otherwise centre its batches only to about 1e-6. One in-memory array
        without augmentation gets Keras's exact algorithm; anything else is streamed.
        """
        c = self._config
        dtype = np.dtype(self._dtype)
        if dtype.kind != "f":  # an integer dtype cannot hold the statistics: the engine's float32
            dtype = np.dtype(np.float32)

        def prepared() -> Iterable[np.ndarray]:
            for r in range(rounds if augment else 1):
                offset = 0  # each round draws afresh for the same sample indices, in epoch r
                for batch in batches:
                    if augment:
                        indices = np.arange(offset, offset + len(batch))
                        batch, _ = self._augmenter.augment_batch(
                            batch, indices, epoch=r, seed=seed, standardize=False
                        )
                        offset += len(batch)
                    x = batch.astype(dtype)  # a copy: fit_array centres it in place
                    if c.rescale:
                        x *= dtype.type(c.rescale)
                    yield x

        if in_memory and not augment:
            (x,) = prepared()
            return normalize.fit_array(
                x, c.featurewise_center, c.featurewise_std_normalization, c.zca_whitening,
                c.zca_epsilon, self._augmenter.zca_memory_limit,
            )  # fmt: skip
        return normalize.fit_batches(
            prepared(), c.featurewise_center, c.featurewise_std_normalization, c.zca_whitening,
            c.zca_epsilon, self._augmenter.zca_memory_limit, dtype,
        )  # fmt: skip

    # ---- pickling (multiprocessing workers) -------------------------------------------------------
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        del state["_lock"], state["_augmenter"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()
        self._rebuild()
