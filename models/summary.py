"""A model's layer table, as rows a CLI can print."""

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import keras


def summary_rows(model: "keras.Model") -> list[tuple[str, str, str, int]]:
    """Rows of (layer name, layer class, output shape, params), then a ("total", "", "", params) row.

    A nested model (the Xception base) is one row.
    """
    rows = [
        (layer.name, type(layer).__name__, str(tuple(layer.output.shape)), layer.count_params())
        for layer in model.layers
    ]
    rows.append(("total", "", "", model.count_params()))
    return rows
