"""The ``augpipe`` command line."""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from pipeline.config import AugmentConfig, ConfigError

if TYPE_CHECKING:
    from pipeline.prepare import PrepareResult

app = typer.Typer(
    help="augpipe: Keras ImageDataGenerator-faithful augmentation on OpenCV, reproducible per sample.",
    no_args_is_help=False,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()


def _fail(message: str) -> None:
    console.print(f"[bold red]error:[/] {message}", soft_wrap=True)
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


def _parse_target_size(text: str) -> tuple[int, int]:
    match = re.fullmatch(r"\s*(\d+)\s*(?:x|X|,|\s)\s*(\d+)\s*", text)
    if not match:
        raise ConfigError(
            f"--target-size must be HEIGHTxWIDTH or 'HEIGHT WIDTH', e.g. 224x224 (got {text!r})"
        )
    return int(match[1]), int(match[2])


def _parse_splits(text: str) -> dict[str, float]:
    splits: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, value = part.partition("=")
        try:
            splits[name.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep:
            raise ConfigError(
                f"--splits must be NAME=FRACTION pairs, e.g. train=0.8,validation=0.1,test=0.1 (got {text!r})"
            )
    return splits


def _print_prepare_summary(result: PrepareResult) -> None:
    from flows.prepare import count_rows

    report = result.report
    state = "unchanged, kept" if result.unchanged else "written"
    rows = count_rows(result)
    splits = [k for k in rows[0] if k not in ("class", "total")] if rows else []
    table = Table(
        title=f"{report['images']} images {state} in {result.version_dir} "
        f"({report['decoded']} decoded, {report['reused']} reused)"
    )
    table.add_column("class")
    for split in splits:
        table.add_column(split, justify="right")
    table.add_column("total", justify="right")
    for row in rows:
        table.add_row(str(row["class"]), *(str(row[s]) for s in splits), str(row["total"]))
    table.add_section()
    table.add_row("all", *(str(report["split_counts"].get(s, 0)) for s in splits), str(report["images"]))
    console.print(table)
    if report["quarantined"]:
        bad = Table(title=f"{len(report['quarantined'])} quarantined files")
        bad.add_column("file", overflow="fold")
        bad.add_column("reason")
        bad.add_column("detail", overflow="fold")
        for q in report["quarantined"]:
            bad.add_row(q["key"], q["reason"], q["message"])
        console.print(bad)
    if report["duplicates"]:
        console.print(
            f"{len(report['duplicates'])} groups of identical images, "
            f"{len(report['leakage'])} of them across splits (see report.json)"
        )


@app.command()
def prepare(
    source: Annotated[
        str,
        typer.Argument(help="digits, keras:<name>, a class-folder tree, a .csv manifest, .npz or IDX file."),
    ],
    out: Annotated[Path | None, typer.Option(help="Dataset folder: versions/ and CURRENT go here.")] = None,
    kind: Annotated[
        str | None, typer.Option(help="auto, folders, manifest, idx, npz, keras or digits.")
    ] = None,
    color_mode: Annotated[str | None, typer.Option(help="grayscale, rgb or rgba.")] = None,
    target_size: Annotated[
        str | None, typer.Option(help="Resize every image to HEIGHTxWIDTH (or 'HEIGHT WIDTH').")
    ] = None,
    interpolation: Annotated[
        str | None, typer.Option(help="nearest, bilinear, bicubic, area or lanczos.")
    ] = None,
    keep_aspect_ratio: Annotated[
        bool, typer.Option("--keep-aspect-ratio", help="Center-crop to the target aspect ratio first.")
    ] = False,
    splits: Annotated[
        str | None, typer.Option(help="Split fractions, e.g. train=0.8,validation=0.1,test=0.1.")
    ] = None,
    shard_size: Annotated[int | None, typer.Option(help="Images per shard file.")] = None,
    chunk_size: Annotated[int | None, typer.Option(help="Images per parallel decoding task.")] = None,
    allow_outside_root: Annotated[
        bool, typer.Option("--allow-outside-root", help="Accept manifest paths outside its folder.")
    ] = False,
    dask: Annotated[
        str | None,
        typer.Option(help="Dask scheduler address (default: $AUGPIPE_DASK_ADDRESS, else threads)."),
    ] = None,
    config: Annotated[
        Path | None, typer.Option(help="YAML file of prepare options; command-line options override it.")
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", help="Show Prefect's flow and task logs.")] = False,
) -> None:
    """Prepare a dataset: decode, validate and split SOURCE into a new version of OUT (a Prefect flow)."""
    # Prefect's embedded server would otherwise try to send usage telemetry over the network.
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    if not verbose:  # also keeps the embedded server's start and stop lines out of the summary
        os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    from flows.prepare import run_prepare
    from pipeline.config import PrepareConfig
    from pipeline.prepare import resolve_kind

    given: dict[str, Any] = {
        "source": source,
        "out": None if out is None else str(out),
        "kind": kind,
        "color_mode": color_mode,
        "interpolation": interpolation,
        "shard_size": shard_size,
        "chunk_size": chunk_size,
        "keep_aspect_ratio": keep_aspect_ratio or None,
        "allow_outside_root": allow_outside_root or None,
    }
    prefect_logger = logging.getLogger("prefect")
    level = prefect_logger.level
    try:
        if target_size is not None:
            given["target_size"] = _parse_target_size(target_size)
        if splits is not None:
            given["splits"] = _parse_splits(splits)
        overrides = {k: v for k, v in given.items() if v is not None}
        if config is not None:
            cfg = PrepareConfig.from_yaml(config, **overrides)
        elif out is None:
            raise ConfigError("--out is required (or give it in --config)")
        else:
            cfg = PrepareConfig(**overrides)
        source_kind = resolve_kind(cfg)  # a missing or unrecognised source fails here, before Prefect starts
        # Absolute paths, so that Dask workers with another working directory find the same files.
        absolute = {"out": os.path.abspath(cfg.out)}
        if source_kind not in ("digits", "keras"):
            absolute["source"] = os.path.abspath(cfg.source)
        cfg = cfg.model_copy(update=absolute)
        if not verbose:
            prefect_logger.setLevel(logging.CRITICAL)
        progress_columns = (
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
        )
        with Progress(
            *progress_columns,
            TimeElapsedColumn(),
            console=console,
            transient=True,
            disable=not console.is_terminal,
        ) as progress:
            bar = progress.add_task(f"preparing {cfg.source}", total=None)

            def on_chunk(done: int, total: int) -> None:
                progress.update(bar, description="decoding chunks", completed=done, total=total)

            result = run_prepare(cfg, dask_address=dask, on_chunk=on_chunk)
    except (ConfigError, OSError, ValueError) as err:
        _fail(str(err))
        return
    finally:
        prefect_logger.setLevel(level)
    _print_prepare_summary(result)


@app.command("models")
def models_command(
    name: Annotated[str | None, typer.Argument(help="A model to summarise; without it, list them.")] = None,
    input_shape: Annotated[
        str | None, typer.Option(help="Input HEIGHTxWIDTHxCHANNELS (default: the model's own).")
    ] = None,
    num_classes: Annotated[int, typer.Option(min=2, help="Output classes.")] = 10,
) -> None:
    """List the registered convnets, or print one's layers, output shapes and parameters."""
    import models

    if name is None:
        table = Table(title="augpipe models")
        table.add_column("name")
        table.add_column("default input")
        for model_name in models.names():
            table.add_row(model_name, "x".join(map(str, models.default_input_shape(model_name))))
        console.print(table)
        return
    try:
        shape = (
            tuple(int(v) for v in input_shape.lower().split("x"))
            if input_shape
            else models.default_input_shape(name)
        )
        model = models.build(name, shape, num_classes)
    except ValueError as err:
        _fail(str(err))
        return
    table = Table(title=f"{name}: input {'x'.join(map(str, shape))}, {num_classes} classes")
    for column in ("layer", "type", "output shape", "params"):
        table.add_column(column, justify="right" if column == "params" else "left")
    for layer, kind, out_shape, params in models.summary_rows(model):  # the last row is the total
        table.add_row(layer, kind, out_shape, f"{params:,}")
    console.print(table)


if __name__ == "__main__":
    app()
