"""LeNet-5 (LeCun et al., 1998): tanh units and average pooling on 32x32 images."""

import keras
from keras import layers

from models.shapes import image_shape
from pipeline.errors import ConfigError


def lenet5(input_shape: tuple[int, ...], num_classes: int) -> keras.Model:
    """LeNet-5 for 32x32 images; 28x28 (MNIST) images are zero-padded to 32x32 inside the model.

    61,706 params for 32x32x1 and 10 classes.
    """
    height, width, _ = image_shape("lenet5", input_shape)
    if (height, width) not in ((32, 32), (28, 28)):
        raise ConfigError(
            f"lenet5 needs 32x32 images (28x28 ones are padded to 32x32), but got {input_shape!r} instead."
        )
    inputs = keras.Input(shape=input_shape, name="image")
    x = inputs
    if height == 28:
        x = layers.ZeroPadding2D(2, name="pad")(x)
    x = layers.Conv2D(6, 5, activation="tanh", name="c1")(x)
    x = layers.AveragePooling2D(2, name="s2")(x)
    x = layers.Conv2D(16, 5, activation="tanh", name="c3")(x)
    x = layers.AveragePooling2D(2, name="s4")(x)
    x = layers.Conv2D(120, 5, activation="tanh", name="c5")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(84, activation="tanh", name="f6")(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, outputs, name="lenet5")
