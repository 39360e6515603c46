"""Plain convolution stacks: a toy net for 8x8 shapes, and the MNIST/Fashion-MNIST classics."""

import keras
from keras import layers

from models.shapes import image_shape


def shapes_net(input_shape: tuple[int, ...], num_classes: int) -> keras.Model:
    """A two-conv toy for 8x8x1 synthetic shapes; any image of at least 4x4 fits."""
    image_shape("shapes_net", input_shape, min_size=4)
    inputs = keras.Input(shape=input_shape, name="image")
    x = layers.Conv2D(2, 3, padding="same", activation="relu", name="conv1")(inputs)
    x = layers.MaxPooling2D(2, name="pool1")(x)
    x = layers.Conv2D(3, 2, padding="same", activation="relu", name="conv2")(x)
    x = layers.MaxPooling2D(2, name="pool2")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(8, activation="relu", name="dense")(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, outputs, name="shapes_net")


def mnist_convnet(input_shape: tuple[int, ...], num_classes: int) -> keras.Model:
    """The Keras/Chollet MNIST convnet: three valid 3x3 convs; 93,322 params for 28x28x1 and 10 classes."""
    # 18 is the smallest side the three valid convs and two poolings leave at least 1 pixel of.
    image_shape("mnist_convnet", input_shape, min_size=18)
    inputs = keras.Input(shape=input_shape, name="image")
    x = layers.Conv2D(32, 3, activation="relu", name="conv1")(inputs)
    x = layers.MaxPooling2D(2, name="pool1")(x)
    x = layers.Conv2D(64, 3, activation="relu", name="conv2")(x)
    x = layers.MaxPooling2D(2, name="pool2")(x)
    x = layers.Conv2D(64, 3, activation="relu", name="conv3")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(64, activation="relu", name="dense")(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, outputs, name="mnist_convnet")


def fashion_convnet(input_shape: tuple[int, ...], num_classes: int) -> keras.Model:
    """Two same-padded convs, a 100-unit dense layer and dropout 0.4, for Fashion-MNIST."""
    image_shape("fashion_convnet", input_shape, min_size=4)
    inputs = keras.Input(shape=input_shape, name="image")
    x = layers.Conv2D(32, 3, padding="same", activation="relu", name="conv1")(inputs)
    x = layers.MaxPooling2D(2, name="pool1")(x)
    x = layers.Conv2D(64, 3, padding="same", activation="relu", name="conv2")(x)
    x = layers.MaxPooling2D(2, name="pool2")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(100, activation="relu", name="dense")(x)
    x = layers.Dropout(0.4, name="dropout")(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, outputs, name="fashion_convnet")


def deep_convnet(input_shape: tuple[int, ...], num_classes: int) -> keras.Model:
    """Géron's Fashion-MNIST CNN: a 7x7 conv, then 128- and 256-filter pairs, two dropout-0.5 dense layers."""
    image_shape("deep_convnet", input_shape, min_size=8)
    inputs = keras.Input(shape=input_shape, name="image")
    x = layers.Conv2D(64, 7, padding="same", activation="relu", name="conv1")(inputs)
    x = layers.MaxPooling2D(2, name="pool1")(x)
    for block, filters in ((2, 128), (3, 256)):
        for i in (1, 2):
            x = layers.Conv2D(filters, 3, padding="same", activation="relu", name=f"conv{block}_{i}")(x)
        x = layers.MaxPooling2D(2, name=f"pool{block}")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(128, activation="relu", name="dense1")(x)
    x = layers.Dropout(0.5, name="dropout1")(x)
    x = layers.Dense(64, activation="relu", name="dense2")(x)
    x = layers.Dropout(0.5, name="dropout2")(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, outputs, name="deep_convnet")
