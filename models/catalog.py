"""The registered models' names, builders' homes and default inputs: data only, so that listing and
validating model names imports neither Keras nor TensorFlow (``pipeline.config`` checks names here)."""

from pipeline.errors import ConfigError

# name -> (module, builder function, the input its source material uses); names() keeps this order.
BUILDERS = {
    "shapes_net": ("models.convnets", "shapes_net", (8, 8, 1)),
    "mnist_convnet": ("models.convnets", "mnist_convnet", (28, 28, 1)),
    "fashion_convnet": ("models.convnets", "fashion_convnet", (28, 28, 1)),
    "deep_convnet": ("models.convnets", "deep_convnet", (28, 28, 1)),
    "lenet5": ("models.lenet", "lenet5", (32, 32, 1)),
    "alexnet": ("models.alexnet", "alexnet", (227, 227, 3)),
    "resnet34": ("models.resnet", "resnet34", (224, 224, 3)),
    "xception_transfer": ("models.xception", "xception_transfer", (299, 299, 3)),
}

# The convnet `augpipe run` trains: it learns the 8x8 digits in seconds (the source material's
# Fashion-MNIST network).
RUN_MODEL = "fashion_convnet"


def names() -> list[str]:
    """Registered model names, smallest family first."""
    return list(BUILDERS)


def default_input_shape(name: str) -> tuple[int, int, int]:
    """The input shape the model's source material uses."""
    if name not in BUILDERS:
        raise ConfigError(f"Unknown model {name!r}; the models are: {', '.join(BUILDERS)}.")
    return BUILDERS[name][2]
