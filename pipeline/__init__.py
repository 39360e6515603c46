"""augpipe's library: Keras ImageDataGenerator-faithful augmentation on OpenCV, reproducible per sample."""

from pipeline.augment import Augmenter
from pipeline.config import AugmentConfig, ConfigError, PixelTransform
from pipeline.functional.normalize import FitStats
from pipeline.params import BatchParams

__all__ = [
    "AugmentConfig",
    "Augmenter",
    "BatchParams",
    "ConfigError",
    "FitStats",
    "PixelTransform",
]
