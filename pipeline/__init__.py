"""augpipe's library: Keras ImageDataGenerator-faithful augmentation on OpenCV, reproducible per sample."""

from typing import TYPE_CHECKING

from pipeline.augment import Augmenter
from pipeline.config import AugmentConfig, ConfigError, PixelTransform
from pipeline.functional.normalize import FitStats
from pipeline.params import BatchParams
from pipeline.workers import AugmentPool

if TYPE_CHECKING:
    from pipeline.keras_compat import ImageDataGenerator

__all__ = [
    "AugmentConfig",
    "AugmentPool",
    "Augmenter",
    "BatchParams",
    "ConfigError",
    "FitStats",
    "ImageDataGenerator",
    "PixelTransform",
]


def __getattr__(name: str) -> object:
    # The Keras drop-in imports keras, and with it TensorFlow (seconds): load it on first use only.
    if name == "ImageDataGenerator":
        from pipeline.keras_compat import ImageDataGenerator

        return ImageDataGenerator
    raise AttributeError(f"module 'pipeline' has no attribute {name!r}")
