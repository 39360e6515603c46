"""``augpipe prepare``: decode, validate and split a source into a new version of a dataset folder."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from flows.cli.common import (
    Display,
    PrefectOption,
    VerboseOption,
    as_flows,
    console,
    fail,
    path_lines,
    plain,
    plural,
    prefect_defaults,
    progress_bar,
    quiet_prefect,
)
from pipeline.errors import AugpipeError, ConfigError

if TYPE_CHECKING:
    from pipeline.prepare import PrepareResult


def parse_target_size(text: str) -> tuple[int, int]:
    match = re.fullmatch(r"\s*(\d+)\s*(?:x|X|,|\s)\s*(\d+)\s*", text)
    if not match:
        raise ConfigError(
            f"--target-size must be HEIGHTxWIDTH or 'HEIGHT WIDTH', e.g. 224x224 (got {text!r})"
        )
    return int(match[1]), int(match[2])


def parse_splits(text: str) -> dict[str, float]:
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


def prepare_command(
    source: Annotated[
        str,
        typer.Argument(help="digits, keras:<name>, a class-folder tree, a .csv manifest, .npz or IDX file."),
    ],
    out: Annotated[
        Path | None,
        typer.Option(help="Dataset folder, where versions/ and CURRENT go. Required, here or in --config."),
    ] = None,
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
        str | None,
        typer.Option(
            help="Split fractions, e.g. train=0.8,validation=0.1,test=0.1. Splits the source gives "
            "(train/, val/, test/ folders; a manifest's split column; IDX train-/t10k- files; keras: "
            "train and test; an .npz's x_train/x_test) are kept; only the others are cut."
        ),
    ] = None,
    dedupe_across_splits: Annotated[
        bool | None,
        typer.Option(
            "--dedupe-across-splits/--no-dedupe-across-splits",
            help="Put identical images in one split, the most held-out of their copies' (default: on).",
        ),
    ] = None,
    shard_size: Annotated[int | None, typer.Option(help="Images per shard file.")] = None,
    chunk_size: Annotated[int | None, typer.Option(help="Images per parallel decoding task.")] = None,
    allow_outside_root: Annotated[
        bool, typer.Option("--allow-outside-root", help="Accept manifest paths outside its folder.")
    ] = False,
    download: Annotated[
        bool,
        typer.Option("--download", help="keras:<name>: download the dataset with Keras if it is not cached."),
    ] = False,
    workers: Annotated[
        int | None,
        typer.Option(min=1, help="Decoding processes (default: the CPUs this command may use)."),
    ] = None,
    dask: Annotated[
        str | None,
        typer.Option(help="Dask scheduler address (default: $AUGPIPE_DASK_ADDRESS, else this machine)."),
    ] = None,
    config: Annotated[
        Path | None, typer.Option(help="YAML file of prepare options; command-line options override it.")
    ] = None,
    prefect: PrefectOption = False,
    verbose: VerboseOption = False,
) -> None:
    """Prepare a dataset: decode, validate and split SOURCE into a new version of OUT."""
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
        "download": download or None,
        "dedupe_across_splits": dedupe_across_splits,
    }
    try:
        if target_size is not None:
            given["target_size"] = parse_target_size(target_size)
        if splits is not None:
            given["splits"] = parse_splits(splits)
        overrides = {k: v for k, v in given.items() if v is not None}
        if config is not None:
            cfg = PrepareConfig.from_yaml(config, **overrides)
        elif out is None:
            raise ConfigError("--out is required (or give it in --config)")
        else:
            cfg = PrepareConfig(**overrides)
        resolve_kind(cfg)  # a missing or unrecognised source fails here, before the progress bar
        address = dask or os.environ.get("AUGPIPE_DASK_ADDRESS") or None
        with progress_bar(f"preparing {cfg.source}") as bar:
            display = Display(bar)
            if as_flows(prefect):
                prefect_defaults(verbose)  # before Prefect is imported: it reads them then
                from flows.prepare import run_prepare

                with quiet_prefect(verbose):
                    result = run_prepare(cfg, dask_address=address, on_chunk=display.chunk, workers=workers)
            else:
                from pipeline.prepare import prepare as prepare_here

                result = prepare_here(
                    cfg, workers=workers or _cpus(), dask_address=address, on_chunk=display.chunk
                )
    except (AugpipeError, OSError) as err:  # ours and the system's: a bug elsewhere shows its traceback
        fail(str(err), err if verbose else None)
    print_summary(result)


def _cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def print_summary(result: PrepareResult) -> None:
    """The version written (or kept), its images per class and split, and what was left out."""
    from pipeline.prepare import count_rows, split_lines

    report = result.report
    state = "unchanged, kept" if result.unchanged else "written"
    rows = count_rows(result)
    splits = [k for k in rows[0] if k not in ("class", "total")] if rows else []
    console.print(
        Text(
            f"{plural(report['images'], 'image')} {state} "
            f"({report['decoded']:,} decoded, {report['reused']:,} reused):"
        ),
        soft_wrap=True,
    )
    path_lines({"version": result.version_dir})
    table = Table()
    table.add_column("class")
    for split in splits:
        table.add_column(split, justify="right")
    table.add_column("total", justify="right")
    for row in rows:
        table.add_row(plain(row["class"]), *(str(row[s]) for s in splits), str(row["total"]))
    table.add_section()
    table.add_row("all", *(str(report["split_counts"].get(s, 0)) for s in splits), str(report["images"]))
    console.print(table)
    if report["quarantined"]:
        left_out = report["quarantined"]
        console.print(Text(f"{plural(len(left_out), 'entry', 'entries')} left out (see report.json):"))
        for q in left_out:
            console.print(Text(f"  {q['key']}: {q['reason']}: {q['message']}"), soft_wrap=True)
    for line in split_lines(report):
        console.print(Text(line), soft_wrap=True)
    if report["duplicates"] and "duplicates_across_splits" not in report:  # a version of an older augpipe
        console.print(
            f"{plural(len(report['duplicates']), 'group')} of identical images, "
            f"{len(report['leakage']):,} of them across splits (see report.json)"
        )
    for hint in report.get("hints", []):
        console.print(Text(f"hint: {hint}"), soft_wrap=True)
