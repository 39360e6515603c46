"""Keras's legacy ``ImageDataGenerator`` and its iterators, as a drop-in over the augpipe engine.

>>> datagen = ImageDataGenerator(rotation_range=20, horizontal_flip=True, rescale=1 / 255)
>>> train = datagen.flow_from_directory("data/train", target_size=(64, 64), seed=1)
>>> model.fit(train, epochs=5)

Same constructor, methods, parameters and defaults as Keras 2's class (Keras 3 no longer exports
it), with three differences in behaviour:

- Reproducible per sample: a sample's augmentation is keyed by (seed, epoch, index of the sample in
  the dataset) and epoch e's shuffle by ``np.random.default_rng([seed, e])``; the global numpy RNG is
  never read or reseeded. Batch ``i`` of epoch ``e`` is the same bytes whatever the order batches are
  asked for in, the worker count, or ``model.fit``'s batch-order shuffling. ``seed=None`` picks one
  random seed per iterator (kept on ``iterator.seed``). The epoch advances in ``on_epoch_end``
  (``model.fit`` calls it once before the first epoch too) and when ``next()`` wraps around.
- Images are decoded exactly as Keras decodes them (``keras.utils.load_img``), to uint8 when they
  are 8-bit, so the engine's uint8 path runs and the batch is converted to ``dtype`` once.
- Unreadable files never stop training: each file's header is checked at construction and bad files
  are left out with one warning; a file that still fails to decode is dropped from its batch (which
  comes out shorter), never read again, and reported in one warning. ``iterator.skipped`` lists
  ``(path, reason)`` for both.

The iterators are ``keras.utils.PyDataset`` objects: ``workers``, ``use_multiprocessing`` and
``max_queue_size`` can be passed to their constructors or set as attributes before ``model.fit``.
"""

from __future__ import annotations

import logging
import numbers
import os
import threading
import warnings
from abc import abstractmethod
from collections import OrderedDict
from collections.abc import Callable, Generator, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from pipeline.tf_import import import_tensorflow

import_tensorflow()  # TensorFlow's start-up lines dropped (see pipeline.tf_import), then Keras
import keras  # noqa: E402
from keras.utils import PyDataset  # noqa: E402

from pipeline.augment import Augmenter  # noqa: E402
from pipeline.config import AugmentConfig  # noqa: E402
from pipeline.functional.normalize import FitStats  # noqa: E402
from pipeline.ingest.decode import not_regular, open_regular  # noqa: E402
from pipeline.params import epoch_order  # noqa: E402

__all__ = ["DataFrameIterator", "DirectoryIterator", "ImageDataGenerator", "Iterator", "NumpyArrayIterator"]

WHITE_LIST_FORMATS = ("png", "jpg", "jpeg", "bmp", "ppm", "tif", "tiff")
INTERPOLATIONS = ("nearest", "bilinear", "bicubic", "hamming", "box", "lanczos")
COLOR_MODES = ("rgb", "rgba", "grayscale")
_CHANNELS = {"rgb": 3, "rgba": 4, "grayscale": 1}
_NOT_FITTED = (
    "This ImageDataGenerator specifies `{}`, but it hasn't been fit on any training data. "
    "Fit it first by calling `.fit(numpy_data)`."
)
_log = logging.getLogger(__name__)


# ---- pure helpers ----------------------------------------------------------------------------------
def resolve_seed(seed: int | None) -> int:
    """The iterator's seed: ``seed`` itself, or a fresh random one (OS entropy, not the global RNG)."""
    if seed is None:
        return int(np.random.SeedSequence().entropy) % 2**63
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer or None, but got {seed!r}")
    return int(seed)


def list_class_files(
    directory: str, subdir: str, split: tuple[float, float] | None, follow_links: bool
) -> list[str]:
    """Keras's listing of one class folder: paths relative to ``directory``, in Keras's order,
    restricted to the ``split`` fraction of the folder."""
    class_dir = os.path.join(directory, subdir)
    found = []
    for root, _, files in sorted(os.walk(class_dir, followlinks=follow_links), key=lambda w: w[0]):
        for fname in sorted(files):
            if fname.lower().endswith(".tiff"):
                warnings.warn(
                    'Using ".tiff" files with multiple bands will cause distortion. '
                    "Please verify your output.",
                    stacklevel=4,
                )
            if fname.lower().endswith(WHITE_LIST_FORMATS):
                found.append(os.path.join(subdir, os.path.relpath(os.path.join(root, fname), class_dir)))
    if split:
        found = found[int(split[0] * len(found)) : int(split[1] * len(found))]
    return found


def header_problem(path: str) -> str | None:
    """Why ``path`` is not a readable image, judged from its header alone; None if it looks fine.

    A FIFO, socket or device is named from a stat ("not a regular file (fifo)"), never opened: reading
    a FIFO would block until something writes to it.
    """
    try:
        problem = not_regular(os.stat(path).st_mode)
        if problem is not None:
            return problem
        fd, size = open_regular(path, checked=True)  # O_NONBLOCK: a FIFO put there since cannot block
        with os.fdopen(fd, "rb") as file:
            if size == 0:
                return "empty file (0 bytes)"
            with Image.open(file) as img:
                img.size  # noqa: B018  (parsed from the header; decoding is left for batch time)
    except Exception as err:  # any header failure means the file cannot be used
        return _describe(err)
    return None


def header_problems(paths: Sequence[str]) -> dict[int, str]:
    """``{position: reason}`` for every path whose header check fails; files are read in threads."""
    if len(paths) < 64:
        reasons = [header_problem(p) for p in paths]
    else:
        with ThreadPoolExecutor(max_workers=min(16, (os.cpu_count() or 1) * 4)) as pool:
            reasons = list(pool.map(header_problem, paths, chunksize=64))
    return {i: r for i, r in enumerate(reasons) if r is not None}


def load_image(
    path: str, color_mode: str, target_size: tuple[int, int], interpolation: str, keep_aspect_ratio: bool
) -> np.ndarray:
    """One image as ``keras.utils.load_img`` decodes it, (H, W, C) in its own dtype (uint8 when 8-bit)."""
    img = keras.utils.load_img(
        path,
        color_mode=color_mode,
        target_size=target_size,
        interpolation=interpolation,
        keep_aspect_ratio=keep_aspect_ratio,
    )
    try:
        x = np.asarray(img)
    finally:
        img.close()
    return x[..., None] if x.ndim == 2 else x


def _describe(err: Exception) -> str:
    if isinstance(err, UnidentifiedImageError):
        return "not an image PIL can identify"
    return f"{type(err).__name__}: {err}"


def _reorder_features(matrix: np.ndarray, shape: tuple[int, ...], to_channels_last: bool) -> np.ndarray:
    """A ZCA matrix over flattened images, re-indexed between channels-first and channels-last
    flattening of (H, W, C) images of ``shape``."""
    h, w, c = shape
    ids = np.arange(h * w * c)
    perm = (
        ids.reshape(c, h, w).transpose(1, 2, 0)
        if to_channels_last
        else ids.reshape(h, w, c).transpose(2, 0, 1)
    )
    perm = perm.ravel()
    return matrix[np.ix_(perm, perm)]


def _print_msg(message: str) -> None:
    if keras.config.is_interactive_logging_enabled():
        print(message, flush=True)
    else:
        _log.info(message)


def _warn_overrides(o: dict[str, Any]) -> None:
    """Keras's constructor warnings for the options that other options override."""
    prefix = "This ImageDataGenerator specifies "
    if o["zca_whitening"]:
        if not o["featurewise_center"]:
            warnings.warn(
                prefix + "`zca_whitening`, which overrides setting of `featurewise_center`.", stacklevel=3
            )
        if o["featurewise_std_normalization"]:
            warnings.warn(
                prefix + "`zca_whitening` which overrides setting of`featurewise_std_normalization`.",
                stacklevel=3,
            )
    if o["featurewise_std_normalization"] and not o["featurewise_center"]:
        warnings.warn(
            prefix + "`featurewise_std_normalization`, which overrides setting of `featurewise_center`.",
            stacklevel=3,
        )
    if o["samplewise_std_normalization"] and not o["samplewise_center"]:
        warnings.warn(
            prefix + "`samplewise_std_normalization`, which overrides setting of `samplewise_center`.",
            stacklevel=3,
        )


class _ChannelsFirstHook:
    """Runs a channels-first ``preprocessing_function`` on the engine's channels-last images."""

    def __init__(self, function: Callable[[np.ndarray], np.ndarray]):
        self.function = function

    def __call__(self, image: np.ndarray) -> np.ndarray:
        return np.moveaxis(np.asarray(self.function(np.moveaxis(image, -1, 0))), 0, -1)


class _Batches:
    """A re-iterable view of a batch source for ``fit``: channels-last image batches.

    Items may be image batches or ``(x, y[, w])`` tuples as Keras iterators yield; a PyDataset is
    read by index, once per pass.
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


def _is_batch_source(x: Any) -> bool:
    if isinstance(x, PyDataset):
        return True
    if isinstance(x, np.ndarray | list | tuple) or hasattr(x, "__array__"):
        return False
    return isinstance(x, Iterable)


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


# ---- the generator -----------------------------------------------------------------------------------
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
        featurewise_center=False,
        samplewise_center=False,
        featurewise_std_normalization=False,
        samplewise_std_normalization=False,
        zca_whitening=False,
        zca_epsilon=1e-6,
        rotation_range=0,
        width_shift_range=0.0,
        height_shift_range=0.0,
        brightness_range=None,
        shear_range=0.0,
        zoom_range=0.0,
        channel_shift_range=0.0,
        fill_mode="nearest",
        cval=0.0,
        horizontal_flip=False,
        vertical_flip=False,
        rescale=None,
        preprocessing_function=None,
        data_format=None,
        validation_split=0.0,
        interpolation_order=1,
        dtype=None,
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
        _warn_overrides(options)
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
            hook = _ChannelsFirstHook(hook)
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
            self._stats.zca_whitening_matrix = _reorder_features(self._zca_channels_first, shape, True)
            self._zca_shape = shape

    def _shape_channels_last(self, shape: Sequence[int]) -> tuple[int, ...]:
        shape = tuple(int(s) for s in shape)
        if len(shape) != 3:
            raise ValueError(f"expected the shape of one image (3 dimensions), but got {shape}")
        return (shape[1], shape[2], shape[0]) if self.data_format == "channels_first" else shape

    # ---- the batch path the iterators use --------------------------------------------------------------
    def _augment_batch(self, images: np.ndarray, indices: np.ndarray, epoch: int, seed: int) -> np.ndarray:
        """Augment and standardize channels-last ``images``, sample ``indices[i]`` of ``epoch``."""
        self._warn_unfitted()
        if self.data_format == "channels_first":
            self._sync_zca(tuple(images.shape[1:]))
        batch, _ = self._augmenter.augment_batch(images, indices, epoch=epoch, seed=seed)
        return batch

    # ---- Keras's methods ---------------------------------------------------------------------------------
    def flow(
        self,
        x,
        y=None,
        batch_size=32,
        shuffle=True,
        sample_weight=None,
        seed=None,
        save_to_dir=None,
        save_prefix="",
        save_format="png",
        ignore_class_split=False,
        subset=None,
    ):
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
        directory,
        target_size=(256, 256),
        color_mode="rgb",
        classes=None,
        class_mode="categorical",
        batch_size=32,
        shuffle=True,
        seed=None,
        save_to_dir=None,
        save_prefix="",
        save_format="png",
        follow_links=False,
        subset=None,
        interpolation="nearest",
        keep_aspect_ratio=False,
    ):
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
        dataframe,
        directory=None,
        x_col="filename",
        y_col="class",
        weight_col=None,
        target_size=(256, 256),
        color_mode="rgb",
        classes=None,
        class_mode="categorical",
        batch_size=32,
        shuffle=True,
        seed=None,
        save_to_dir=None,
        save_prefix="",
        save_format="png",
        subset=None,
        interpolation="nearest",
        validate_filenames=True,
        **kwargs,
    ):
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

    def standardize(self, x):
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

    def get_random_transform(self, img_shape, seed=None):
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

    def apply_transform(self, x, transform_parameters):
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

    def random_transform(self, x, seed=None):
        """One image, randomly transformed (see :meth:`get_random_transform` for ``seed``)."""
        return self.apply_transform(x, self.get_random_transform(np.shape(x), seed))

    def fit(self, x, augment=False, rounds=1, seed=None):
        """Fit the featurewise statistics, as Keras does, on a rank-4 array.

        ``x`` may also be an iterable of batches (a generator, a ``tf.data.Dataset``, a PyDataset such
        as a ``flow_from_directory`` iterator, yielding images or ``(x, y)`` tuples), fitted in one
        streaming pass for data larger than memory. ``augment`` with ``rounds > 1`` reads it ``rounds``
        times, so it must be re-iterable.
        """
        if seed is None:
            seed = int(np.random.default_rng(list(self._fresh_seed())).integers(2**63))
        seed = resolve_seed(seed)
        channels_first = self.data_format == "channels_first"
        if _is_batch_source(x):
            if augment and rounds > 1 and not isinstance(x, PyDataset) and iter(x) is x:
                raise ValueError(
                    f"fit(augment=True, rounds={rounds}) reads the data {rounds} times, but got a one-shot "
                    f"iterator ({type(x).__name__}); pass a re-iterable (a list of batches, a PyDataset, "
                    "a tf.data.Dataset) or rounds=1"
                )
            source = _Batches(x, channels_first)
            stats = self._augmenter.fit(source, augment=augment, rounds=rounds, seed=seed)
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
            stats = self._augmenter.fit(x, augment=augment, rounds=rounds, seed=seed)
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
                self._zca_channels_first = _reorder_features(stats.zca_whitening_matrix, shape, False)
                self._zca_shape = shape
        self._augmenter.stats = self._stats

    # ---- pickling (multiprocessing workers) -------------------------------------------------------
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        del state["_lock"], state["_augmenter"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()
        self._rebuild()


# ---- iterators ---------------------------------------------------------------------------------------------
class Iterator(PyDataset):
    """Keras's iterator contract with keyed randomness: batch ``idx`` of epoch ``e`` is always the same.

    ``it[idx]`` serves the current epoch (``on_epoch_end`` advances it); ``next(it)`` walks the batches
    forever, advancing the epoch as it wraps around.
    """

    white_list_formats = WHITE_LIST_FORMATS

    def __init__(self, n, batch_size, shuffle, seed, **kwargs):
        super().__init__(**kwargs)
        if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, but got {batch_size!r}")
        self.n = n
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.seed = resolve_seed(seed)
        self.epoch = 0
        self.batch_index = 0
        self.total_batches_seen = 0
        self.lock = threading.Lock()
        self._order_cache: tuple[tuple[int, bool, int], np.ndarray] | None = None

    @property
    def index_array(self) -> np.ndarray:
        """Sample indices in the order the current epoch serves them."""
        return self._order(self.epoch)

    def _order(self, epoch: int) -> np.ndarray:
        key = (epoch, bool(self.shuffle), self.n)
        cached = self._order_cache
        if cached is None or cached[0] != key:
            cached = (key, epoch_order(self.n, self.shuffle, self.seed, epoch))
            self._order_cache = cached
        return cached[1]

    def __len__(self):
        return (self.n + self.batch_size - 1) // self.batch_size

    def __getitem__(self, idx):
        if not 0 <= idx < len(self):
            raise ValueError(f"Asked to retrieve element {idx}, but the Sequence has length {len(self)}")
        self.total_batches_seen += 1
        return self._batch(idx, self.epoch)

    def _batch(self, idx: int, epoch: int) -> Any:
        index_array = self._order(epoch)[self.batch_size * idx : self.batch_size * (idx + 1)]
        return self._get_batches_of_transformed_samples(index_array, epoch)

    def on_epoch_end(self):
        self.epoch += 1

    def reset(self):
        self.batch_index = 0

    def __iter__(self):
        return self

    def __next__(self):
        with self.lock:
            if self.n == 0:
                raise ValueError(f"{type(self).__name__} has no samples to iterate over")
            idx, epoch = self.batch_index, self.epoch
            self.batch_index += 1
            self.total_batches_seen += 1
            if self.batch_index >= len(self):
                self.batch_index = 0
                self.on_epoch_end()
        return self._batch(idx, epoch)

    @abstractmethod
    def _get_batches_of_transformed_samples(self, index_array, epoch=None):
        """One batch for ``index_array`` (indices into the dataset) of ``epoch``: each iterator's own."""

    def _finish(self, batch: np.ndarray) -> np.ndarray:
        """The engine's channels-last batch in this iterator's data format and dtype."""
        if self.data_format == "channels_first":
            batch = np.ascontiguousarray(batch.transpose(0, 3, 1, 2))
        return batch.astype(self.dtype, copy=False)

    def _save(self, batch_x: np.ndarray, indices: np.ndarray, epoch: int, hash_range: int) -> None:
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


class NumpyArrayIterator(Iterator):
    """Batches from in-memory arrays (``ImageDataGenerator.flow``). uint8 images are kept as uint8."""

    def __init__(
        self,
        x,
        y,
        image_data_generator,
        batch_size=32,
        shuffle=False,
        sample_weight=None,
        seed=None,
        data_format=None,
        save_to_dir=None,
        save_prefix="",
        save_format="png",
        subset=None,
        ignore_class_split=False,
        dtype=None,
        **kwargs,
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
        self.x = x if x.dtype == np.uint8 else np.asarray(x, dtype=self.dtype)
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

    def _get_batches_of_transformed_samples(self, index_array, epoch=None):
        epoch = self.epoch if epoch is None else epoch
        images = self.x[index_array]
        if self.data_format == "channels_first":
            images = images.transpose(0, 2, 3, 1)
        batch_x = self._finish(
            self.image_data_generator._augment_batch(images, index_array, epoch, self.seed)
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


class _FileIterator(Iterator):
    """Keras's ``BatchFromFilesMixin``: decoding, label building and unreadable-file handling."""

    def _set_processing_attrs(
        self,
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
    ) -> None:
        self.image_data_generator = image_data_generator
        self.target_size = tuple(target_size)
        self.keep_aspect_ratio = keep_aspect_ratio
        if color_mode not in COLOR_MODES:
            raise ValueError(f'Invalid color mode: {color_mode}; expected "rgb", "rgba", or "grayscale".')
        if interpolation not in INTERPOLATIONS:
            raise ValueError(
                f"Invalid interpolation method {interpolation} specified. Supported methods are "
                f"{', '.join(INTERPOLATIONS)}"
            )
        self.color_mode = color_mode
        self.data_format = data_format
        channels = _CHANNELS[color_mode]
        if data_format == "channels_last":
            self.image_shape = (*self.target_size, channels)
        else:
            self.image_shape = (channels, *self.target_size)
        self.save_to_dir = save_to_dir
        self.save_prefix = save_prefix
        self.save_format = save_format
        self.interpolation = interpolation
        if subset is not None:
            validation_split = image_data_generator._validation_split
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
        self.skipped: list[tuple[str, str]] = []
        self._bad: set[int] = set()
        self._plain: ImageDataGenerator | None = None

    def _readable(self, paths: Sequence[str]) -> np.ndarray:
        """Mask of the files whose header reads; the others are recorded and warned about once."""
        problems = header_problems(paths)
        if problems:
            found = [(paths[i], reason) for i, reason in problems.items()]
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
    def filepaths(self):
        """Paths of the image files, in dataset order."""
        return self._filepaths

    def _decode(self, candidates: Iterable[int]) -> tuple[list[int], list[np.ndarray]]:
        kept, arrays, failed = [], [], []
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
            except Exception as err:  # whatever a broken file raises, training goes on without it
                failed.append((j, path, _describe(err)))
                continue
            kept.append(j)
        if failed:
            with self.lock:
                self._bad.update(j for j, _, _ in failed)
                self.skipped.extend((p, r) for _, p, r in failed)
            listing = "\n".join(f"  {p}: {r}" for _, p, r in failed)
            warnings.warn(
                f"{type(self).__name__}: dropped {len(failed)} image(s) that failed to decode from this "
                f"batch; they are left out of later epochs too:\n{listing}",
                UserWarning,
                stacklevel=5,
            )
        return kept, arrays

    def _read(self, index_array: np.ndarray, epoch: int) -> tuple[np.ndarray, list[np.ndarray]]:
        kept, arrays = self._decode(index_array)
        if not kept:
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

    def _get_batches_of_transformed_samples(self, index_array, epoch=None):
        epoch = self.epoch if epoch is None else epoch
        index_array, arrays = self._read(np.asarray(index_array), epoch)
        batch_x = self._finish(self._augment(arrays, index_array, epoch))
        if self.save_to_dir:
            self._save(batch_x, index_array, epoch, 10**7)
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
    def _generator(self) -> ImageDataGenerator:
        if self.image_data_generator is not None:
            return self.image_data_generator
        if self._plain is None:  # no generator: Keras then neither augments nor normalises
            self._plain = ImageDataGenerator(data_format=self.data_format, dtype=self.dtype)
        return self._plain


class DirectoryIterator(_FileIterator):
    """Batches from a folder with one subfolder per class (``ImageDataGenerator.flow_from_directory``)."""

    allowed_class_modes = {"categorical", "binary", "sparse", "input", None}

    def __init__(
        self,
        directory,
        image_data_generator,
        target_size=(256, 256),
        color_mode="rgb",
        classes=None,
        class_mode="categorical",
        batch_size=32,
        shuffle=True,
        seed=None,
        data_format=None,
        save_to_dir=None,
        save_prefix="",
        save_format="png",
        follow_links=False,
        subset=None,
        interpolation="nearest",
        keep_aspect_ratio=False,
        dtype=None,
        **kwargs,
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
        _print_msg(f"Found {self.samples} images belonging to {self.num_classes} classes.")
        self._filepaths = [os.path.join(directory, fname) for fname in self.filenames]
        super().__init__(self.samples, batch_size, shuffle, seed, **kwargs)

    @property
    def labels(self):
        return self.classes

    @property
    def sample_weight(self):
        return None


class DataFrameIterator(_FileIterator):
    """Batches from a dataframe of file paths and labels (``ImageDataGenerator.flow_from_dataframe``)."""

    allowed_class_modes = {"binary", "categorical", "input", "multi_output", "raw", "sparse", None}

    def __init__(
        self,
        dataframe,
        directory=None,
        image_data_generator=None,
        x_col="filename",
        y_col="class",
        weight_col=None,
        target_size=(256, 256),
        color_mode="rgb",
        classes=None,
        class_mode="categorical",
        batch_size=32,
        shuffle=True,
        seed=None,
        data_format="channels_last",
        save_to_dir=None,
        save_prefix="",
        save_format="png",
        subset=None,
        interpolation="nearest",
        keep_aspect_ratio=False,
        dtype="float32",
        validate_filenames=True,
        **kwargs,
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
        if class_mode not in ["input", "multi_output", "raw", None]:
            df, classes = self._filter_classes(df, y_col, classes)
            num_classes = len(classes)
            self.class_indices = dict(zip(classes, range(len(classes)), strict=True))
        if self.split:
            num_files = len(df)
            df = df.iloc[int(self.split[0] * num_files) : int(self.split[1] * num_files), :]
        if validate_filenames:
            df = df.loc[self._readable([os.path.join(self.directory, f) for f in df[x_col]])]
        if class_mode not in ["input", "multi_output", "raw", None]:
            self.classes = self.get_classes(df, y_col)
        self.filenames = df[x_col].tolist()
        self._sample_weight = df[weight_col].values if weight_col else None
        if class_mode == "multi_output":
            self._targets = [np.array(df[col].tolist()) for col in y_col]
        if class_mode == "raw":
            self._targets = df[y_col].values
        self.samples = len(self.filenames)
        validated = "validated" if validate_filenames else "non-validated"
        if class_mode in ["input", "multi_output", "raw", None]:
            _print_msg(f"Found {self.samples} {validated} image filenames.")
        else:
            _print_msg(
                f"Found {self.samples} {validated} image filenames belonging to {num_classes} classes."
            )
        self._filepaths = [os.path.join(self.directory, fname) for fname in self.filenames]
        super().__init__(self.samples, batch_size, shuffle, seed, **kwargs)

    def _check_params(self, df, x_col, y_col, weight_col, classes):
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
        if classes and self.class_mode in {"input", "multi_output", "raw", None}:
            warnings.warn(f'`classes` will be ignored given the class_mode="{self.class_mode}"', stacklevel=4)
        if weight_col and not issubclass(df[weight_col].dtype.type, np.number):
            raise TypeError(f"Column weight_col={weight_col} must be numeric.")

    def get_classes(self, df, y_col):
        labels = []
        for label in df[y_col]:
            if isinstance(label, list | tuple):
                labels.append([self.class_indices[lbl] for lbl in label])
            else:
                labels.append(self.class_indices[label])
        return labels

    @staticmethod
    def _filter_classes(df, y_col, classes):
        df = df.copy()

        def remove_classes(labels, classes):
            if isinstance(labels, list | tuple):
                labels = [cls for cls in labels if cls in classes]
                return labels or None
            if isinstance(labels, str):
                return labels if labels in classes else None
            raise TypeError(f"Expect string, list or tuple but found {type(labels)} in {y_col} column ")

        if classes:
            classes = list(OrderedDict.fromkeys(classes).keys())
            df[y_col] = df[y_col].apply(lambda x: remove_classes(x, classes))
        else:
            found: set[Any] = set()
            for v in df[y_col]:
                if isinstance(v, list | tuple):
                    found.update(v)
                else:
                    found.add(v)
            classes = sorted(found)
        return df.dropna(subset=[y_col]), classes

    def _filter_valid_filepaths(self, df, x_col):
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
    def labels(self):
        if self.class_mode in {"multi_output", "raw"}:
            return self._targets
        return self.classes

    @property
    def sample_weight(self):
        return self._sample_weight
