"""augpipe's library: Keras ImageDataGenerator-faithful augmentation on OpenCV, reproducible per sample.

Names load on first use: worker processes that only decode or prepare data do not pay for the
engine's imports (albumentations, scipy), nor for Keras's (TensorFlow) unless ImageDataGenerator is used.
"""

from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pipeline.augment import Augmenter
    from pipeline.config import AugmentConfig, PixelTransform
    from pipeline.errors import AugpipeError, ConfigError, DataError, RunStateError
    from pipeline.functional.normalize import FitStats
    from pipeline.keras_compat import ImageDataGenerator
    from pipeline.params import BatchParams
    from pipeline.workers import AugmentPool

_WHERE = {
    "AugmentConfig": "pipeline.config",
    "AugmentPool": "pipeline.workers",
    "Augmenter": "pipeline.augment",
    "AugpipeError": "pipeline.errors",
    "BatchParams": "pipeline.params",
    "ConfigError": "pipeline.errors",
    "DataError": "pipeline.errors",
    "FitStats": "pipeline.functional.normalize",
    "ImageDataGenerator": "pipeline.keras_compat",
    "PixelTransform": "pipeline.config",
    "RunStateError": "pipeline.errors",
}
__all__ = [
    "AugmentConfig",
    "AugmentPool",
    "Augmenter",
    "AugpipeError",
    "BatchParams",
    "ConfigError",
    "DataError",
    "FitStats",
    "ImageDataGenerator",
    "PixelTransform",
    "RunStateError",
]


def __getattr__(name: str) -> object:
    if name in _WHERE:
        return getattr(import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'pipeline' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_WHERE])
