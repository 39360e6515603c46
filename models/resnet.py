"""ResNet-34 (He et al., 2015) as Géron writes it: basic residual units with batch normalization."""

import keras
from keras import layers

from models.shapes import image_shape

# (filters, residual units) per stage.
_STAGES = ((64, 3), (128, 4), (256, 6), (512, 3))


def _residual_unit(x: keras.KerasTensor, filters: int, strides: int, name: str) -> keras.KerasTensor:
    shortcut = x
    y = layers.Conv2D(filters, 3, strides=strides, padding="same", use_bias=False, name=f"{name}_conv1")(x)
    y = layers.BatchNormalization(name=f"{name}_bn1")(y)
    y = layers.ReLU(name=f"{name}_relu1")(y)
    y = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_conv2")(y)
    y = layers.BatchNormalization(name=f"{name}_bn2")(y)
    if strides != 1 or x.shape[-1] != filters:
        # The identity no longer matches the main path's shape: project it with a strided 1x1 conv.
        shortcut = layers.Conv2D(
            filters, 1, strides=strides, padding="same", use_bias=False, name=f"{name}_shortcut_conv"
        )(x)
        shortcut = layers.BatchNormalization(name=f"{name}_shortcut_bn")(shortcut)
    y = layers.Add(name=f"{name}_add")([y, shortcut])
    return layers.ReLU(name=f"{name}_relu2")(y)


def resnet34(input_shape: tuple[int, ...], num_classes: int) -> keras.Model:
    """ResNet-34 for 224x224x3 images; every layer is same-padded, so any image size fits."""
    image_shape("resnet34", input_shape)
    inputs = keras.Input(shape=input_shape, name="image")
    x = layers.Conv2D(64, 7, strides=2, padding="same", use_bias=False, name="conv1")(inputs)
    x = layers.BatchNormalization(name="bn1")(x)
    x = layers.ReLU(name="relu1")(x)
    x = layers.MaxPooling2D(3, strides=2, padding="same", name="pool1")(x)
    for stage, (filters, units) in enumerate(_STAGES, start=2):
        for unit in range(1, units + 1):
            strides = 2 if unit == 1 and stage > 2 else 1
            x = _residual_unit(x, filters, strides, name=f"stage{stage}_unit{unit}")
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, outputs, name="resnet34")
