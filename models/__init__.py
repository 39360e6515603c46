"""Keras convnets for augpipe's training runs: ``models.build("mnist_convnet", (28, 28, 1), 10)``.

``names()`` lists the registered models; ``summary_rows(model)`` gives a table for display;
``set_base_trainable`` switches the frozen/fine-tuned phases of ``xception_transfer``.
Names load on first use, so listing models does not import TensorFlow.
"""

from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from models.catalog import default_input_shape, names
    from models.registry import build
    from models.summary import summary_rows
    from models.xception import set_base_trainable

_WHERE = {
    "build": "models.registry",
    "default_input_shape": "models.catalog",
    "names": "models.catalog",
    "set_base_trainable": "models.xception",
    "summary_rows": "models.summary",
}
__all__ = ["build", "default_input_shape", "names", "set_base_trainable", "summary_rows"]


def __getattr__(name: str) -> object:
    if name in _WHERE:
        return getattr(import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'models' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_WHERE])
