"""``augpipe models``: the registered convnets, or one's layers, output shapes and parameters."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

import models
from flows.cli.common import VerboseOption, console, fail, quiet_tensorflow
from pipeline.errors import AugpipeError, ConfigError


def parse_input_shape(value: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in value.lower().split("x"))
    except ValueError as err:  # int()'s own message, as before
        raise ConfigError(str(err)) from None


def models_command(
    name: Annotated[str | None, typer.Argument(help="A model to summarise; without it, list them.")] = None,
    input_shape: Annotated[
        str | None, typer.Option(help="Input HEIGHTxWIDTHxCHANNELS (default: the model's own).")
    ] = None,
    num_classes: Annotated[int, typer.Option(min=2, help="Output classes.")] = 10,
    verbose: VerboseOption = False,
) -> None:
    """List the registered convnets, or print one's layers, output shapes and parameters."""
    if name is None:
        table = Table(title="augpipe models")
        table.add_column("name")
        table.add_column("default input")
        for model_name in models.names():
            table.add_row(model_name, "x".join(map(str, models.default_input_shape(model_name))))
        console.print(table)
        return
    quiet_tensorflow(verbose)
    try:
        shape = parse_input_shape(input_shape) if input_shape else models.default_input_shape(name)
        model = models.build(name, shape, num_classes)
    except (AugpipeError, OSError) as err:
        fail(str(err), err if verbose else None)
    table = Table(title=f"{name}: input {'x'.join(map(str, shape))}, {num_classes} classes")
    for column in ("layer", "type", "output shape", "params"):
        table.add_column(column, justify="right" if column == "params" else "left")
    for layer, kind, out_shape, params in models.summary_rows(model):  # the last row is the total
        table.add_row(layer, kind, out_shape, f"{params:,}")
    console.print(table)
