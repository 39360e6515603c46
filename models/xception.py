"""Transfer learning on Keras's Xception base, from local weights only: augpipe never downloads."""

from pathlib import Path

import keras
from keras import layers

from models.shapes import image_shape
from pipeline.errors import ConfigError

BASE_NAME = "xception"
_WEIGHT_SUFFIXES = (".h5", ".keras")


def xception_transfer(
    input_shape: tuple[int, ...], num_classes: int, *, weights: str | Path | None = None
) -> keras.Model:
    """Xception base (no top), global average pooling and a ``num_classes`` softmax; the base starts frozen.

    Feed images scaled to [-1, 1] (``keras.applications.xception.preprocess_input``).
    weights: path to a local .h5 or .keras weights file for the base, or None for random weights.
    """
    image_shape("xception_transfer", input_shape, min_size=71, channels=3)
    if weights is not None:
        if str(weights).lower() == "imagenet":
            raise ConfigError(
                "xception_transfer never downloads weights: weights must be the path of a local .h5 or "
                ".keras file, or None, but got 'imagenet' instead."
            )
        path = Path(weights)
        if not path.name.endswith(_WEIGHT_SUFFIXES):
            raise ConfigError(
                "xception_transfer weights must be a local .h5 or .keras file, "
                f"but got {str(weights)!r} instead."
            )
        if not path.is_file():
            raise FileNotFoundError(f"xception_transfer weights file {str(path)!r} does not exist.")
        weights = str(path)
    base = keras.applications.Xception(
        include_top=False, weights=weights, input_shape=input_shape, name=BASE_NAME
    )
    base.trainable = False
    inputs = keras.Input(shape=input_shape, name="image")
    # training=False keeps the base's batch normalization in inference mode even once it is unfrozen,
    # so fine-tuning does not wreck its pretrained statistics.
    x = base(inputs, training=False)
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, outputs, name="xception_transfer")


def set_base_trainable(model: keras.Model, trainable: bool) -> None:
    """Freeze (phase one) or unfreeze (phase two, at a smaller learning rate) the Xception base.

    Compile the model again afterwards: Keras fixes the trainable weights at compile time.
    """
    try:
        base = model.get_layer(BASE_NAME)
    except ValueError:
        raise ValueError(
            f"set_base_trainable needs a model built by xception_transfer, but got {model.name!r} instead."
        ) from None
    base.trainable = trainable
