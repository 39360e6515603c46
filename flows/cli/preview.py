"""``augpipe preview``: what a config does to a few images, as preview.png and preview.html."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.text import Text

from flows.cli.common import (
    PrefectOption,
    VerboseOption,
    as_flows,
    console,
    fail,
    path_lines,
    plural,
    prefect_defaults,
    quiet_prefect,
)
from pipeline.errors import AugpipeError


def preview_command(
    source: Annotated[
        str, typer.Argument(help="digits, photos, a prepared dataset folder (train split) or an .npz file.")
    ] = "digits",
    config: Annotated[
        Path | None,
        typer.Option(help="YAML file of ImageDataGenerator options (default: the config of `augpipe run`)."),
    ] = None,
    samples: Annotated[int, typer.Option(min=1, help="Images to preview, one row each.")] = 8,
    copies: Annotated[int, typer.Option(min=1, help="Augmented copies per image (with --sweep: steps).")] = 7,
    sweep: Annotated[
        str | None,
        typer.Option(
            help="Vary one option across its range, every other option off: rotation_range, "
            "width_shift_range, height_shift_range, shear_range, zoom_range, brightness_range, "
            "channel_shift_range or fill_mode (the _range suffix may be left out)."
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed: the same seed gives the same bytes.")] = 0,
    out: Annotated[Path, typer.Option(help="Folder for preview.png and preview.html.")] = Path("previews"),
    prefect: PrefectOption = False,
    verbose: VerboseOption = False,
) -> None:
    """Preview an augmentation: each image, then augmented copies captioned with their drawn parameters."""
    from pipeline.preview import sweep_option

    try:
        option = sweep_option(sweep) if sweep is not None else None
        with console.status(f"previewing {escape(source)}...", spinner="dots") as status:
            if as_flows(prefect):
                prefect_defaults(verbose)  # before Prefect is imported: it reads them then
                from flows.preview import run_preview

                with quiet_prefect(verbose):
                    result = run_preview(source, config, samples, copies, option, seed, out)
            else:
                from pipeline.preview import make_preview

                result = make_preview(source, config, samples, copies, option, seed, out)
            status.stop()
    except (AugpipeError, OSError) as err:  # ours and the system's: a bug elsewhere shows its traceback
        fail(str(err), err if verbose else None)
    what = (
        f"a sweep of {result.sweep}"
        if result.sweep
        else f"{plural(result.cols - 1, 'augmented copy', 'augmented copies')} each"
    )
    console.print(
        Text(f"preview of {plural(result.rows, 'image')} of {source}, {what} (seed {result.seed}):"),
        soft_wrap=True,
    )
    path_lines({"picture": result.png, "page": result.html})
