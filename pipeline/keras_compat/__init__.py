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

The module's free functions (``random_rotation``, ``apply_affine_transform``, ``load_img``, ...) come
with Keras's signatures and semantics: see :mod:`pipeline.keras_compat.functions`.

The iterators are ``keras.utils.PyDataset`` objects: ``workers``, ``use_multiprocessing`` and
``max_queue_size`` can be passed to their constructors or set as attributes before ``model.fit``.
"""

from pipeline.tf_import import import_tensorflow

# Before any submodule imports Keras: a package's __init__ runs first, so TensorFlow's start-up lines
# are dropped (see pipeline.tf_import) whichever submodule is imported.
import_tensorflow()

from pipeline.keras_compat.dataframe_iterator import DataFrameIterator  # noqa: E402
from pipeline.keras_compat.directory_iterator import DirectoryIterator  # noqa: E402
from pipeline.keras_compat.functions import (  # noqa: E402
    apply_affine_transform,
    apply_brightness_shift,
    apply_channel_shift,
    array_to_img,
    flip_axis,
    img_to_array,
    list_pictures,
    load_img,
    random_brightness,
    random_channel_shift,
    random_rotation,
    random_shear,
    random_shift,
    random_zoom,
    save_img,
    smart_resize,
    transform_matrix_offset_center,
)
from pipeline.keras_compat.image_data_generator import ImageDataGenerator  # noqa: E402
from pipeline.keras_compat.iterator import Iterator  # noqa: E402
from pipeline.keras_compat.numpy_array_iterator import NumpyArrayIterator  # noqa: E402

__all__ = [
    "DataFrameIterator",
    "DirectoryIterator",
    "ImageDataGenerator",
    "Iterator",
    "NumpyArrayIterator",
    "apply_affine_transform",
    "apply_brightness_shift",
    "apply_channel_shift",
    "array_to_img",
    "flip_axis",
    "img_to_array",
    "list_pictures",
    "load_img",
    "random_brightness",
    "random_channel_shift",
    "random_rotation",
    "random_shear",
    "random_shift",
    "random_zoom",
    "save_img",
    "smart_resize",
    "transform_matrix_offset_center",
]
