"""The model registry: names map to builder functions, imported only when a model is built."""

import inspect
from importlib import import_module
from typing import TYPE_CHECKING, Any

from models.catalog import BUILDERS as _BUILDERS
from models.catalog import default_input_shape, names
from pipeline.errors import ConfigError
from pipeline.tf_import import import_tensorflow

__all__ = ["build", "default_input_shape", "names"]

if TYPE_CHECKING:
    import keras


def build(name: str, input_shape: tuple[int, ...], num_classes: int, **options: Any) -> "keras.Model":
    """Build the uncompiled model ``name`` for images of ``input_shape`` and a ``num_classes`` softmax.

    options: the builder's keyword options, e.g. ``weights`` for ``xception_transfer``.
    """
    if name not in _BUILDERS:
        raise ConfigError(f"Unknown model {name!r}; the models are: {', '.join(_BUILDERS)}.")
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise ConfigError(f"num_classes must be an int of at least 2, but got {num_classes!r} instead.")
    module, function, _ = _BUILDERS[name]
    import_tensorflow()  # its start-up lines dropped before the builder's module imports Keras
    builder = getattr(import_module(module), function)
    accepted = [
        p.name
        for p in inspect.signature(builder).parameters.values()
        if p.kind is inspect.Parameter.KEYWORD_ONLY
    ]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        takes = f"its options are {', '.join(accepted)}" if accepted else "it takes no options"
        raise ConfigError(f"{name} got unknown option(s) {', '.join(unknown)}; {takes}.")
    return builder(input_shape, num_classes, **options)
