"""Validated configuration: the ImageDataGenerator options under Keras's names, plus pixel extras, and
the options of ``augpipe prepare`` and ``augpipe train``.

Validation happens once, here; everything below trusts these values. Nothing heavy is imported
(no TensorFlow, Keras, OpenCV or SciPy): only a config that names pixel extras loads albumentations.
"""

from pipeline.config.augment import (
    FILL_MODES,
    MAX_MAGNITUDE,
    MAX_SHIFT_PIXELS,
    AugmentConfig,
    FillMode,
    shift_is_set,
)
from pipeline.config.compare import NO_AUGMENTATION, CompareConfig
from pipeline.config.extras import PixelTransform
from pipeline.config.messages import (
    MAX_ERROR_CHARS,
    MAX_ERROR_LINE_CHARS,
    MAX_ERRORS_LISTED,
    MAX_GOT_CHARS,
    closest,
    did_you_mean,
    short_repr,
)
from pipeline.config.prepare import SPLIT_NAMES, PrepareConfig
from pipeline.config.train import TrainConfig
from pipeline.config.yaml_loading import (
    MAX_CONFIG_BYTES,
    MAX_YAML_DEPTH,
    MAX_YAML_NODES,
    BoundedLoader,
    YamlRefused,
    load_yaml,
)
from pipeline.errors import ConfigError

__all__ = [
    "FILL_MODES",
    "MAX_CONFIG_BYTES",
    "MAX_ERRORS_LISTED",
    "MAX_ERROR_CHARS",
    "MAX_ERROR_LINE_CHARS",
    "MAX_GOT_CHARS",
    "MAX_MAGNITUDE",
    "MAX_SHIFT_PIXELS",
    "MAX_YAML_DEPTH",
    "MAX_YAML_NODES",
    "NO_AUGMENTATION",
    "SPLIT_NAMES",
    "AugmentConfig",
    "BoundedLoader",
    "CompareConfig",
    "ConfigError",
    "FillMode",
    "PixelTransform",
    "PrepareConfig",
    "TrainConfig",
    "YamlRefused",
    "closest",
    "did_you_mean",
    "load_yaml",
    "short_repr",
    "shift_is_set",
]
