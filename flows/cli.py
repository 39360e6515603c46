"""The ``augpipe`` command line."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from pipeline.config import AugmentConfig, ConfigError

app = typer.Typer(
    help="augpipe: Keras ImageDataGenerator-faithful augmentation on OpenCV, reproducible per sample.",
    no_args_is_help=False,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()


def _fail(message: str) -> None:
    console.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code=2)


@app.callback()
def main() -> None:
    """augpipe's commands."""


@app.command()
def run(
    out: Annotated[
        Path, typer.Option(help="Folder for the results (replaced when the run completes).")
    ] = Path("augpipe-output"),
    config: Annotated[
        Path | None, typer.Option(help="YAML file of ImageDataGenerator options for the digits.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed: the same seed gives the same bytes.")] = 0,
    epochs: Annotated[int, typer.Option(min=1, help="Augmented epochs of the digits.")] = 1,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes.")] = 2,
) -> None:
    """Run the main job on the embedded default (scikit-learn's bundled digits and photos)."""
    from flows.run import run as run_job

    try:
        cfg = AugmentConfig.from_yaml(config) if config else None
        with console.status("augmenting the bundled digits..."):
            result = run_job(out, config=cfg, seed=seed, epochs=epochs, workers=workers)
    except ConfigError as err:
        _fail(str(err))
        return
    table = Table(title=f"augpipe run: {result.images} images in {result.seconds:.2f} s "
                        f"({result.images_per_second:,.0f} images/s, {workers} workers)")  # fmt: skip
    table.add_column("result")
    table.add_column("path")
    for name, path in result.files.items():
        table.add_row(name, str(path))
    console.print(table)


if __name__ == "__main__":
    app()
