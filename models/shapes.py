"""Input-shape checks shared by the model builders; they raise ConfigError (a ValueError) saying what
they got."""

from pipeline.errors import ConfigError


def image_shape(
    model: str, input_shape: tuple[int, ...], *, min_size: int = 1, channels: int | None = None
) -> tuple[int, int, int]:
    """Return ``input_shape`` as (height, width, channels) after checking it suits ``model``.

    min_size: smallest height and width the model's valid convolutions and poolings can reduce.
    channels: the channel count the model requires, if it requires one.
    """
    shape = tuple(input_shape)
    if len(shape) != 3 or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in shape):
        raise ConfigError(
            f"{model} needs input_shape (height, width, channels) of positive ints, "
            f"but got {input_shape!r} instead."
        )
    height, width, depth = shape
    if height < min_size or width < min_size:
        raise ConfigError(
            f"{model} needs height and width of at least {min_size}, but got {input_shape!r} instead."
        )
    if channels is not None and depth != channels:
        raise ConfigError(f"{model} needs {channels} channel(s), but got {input_shape!r} instead.")
    return height, width, depth
