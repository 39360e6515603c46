"""``augpipe run``: the main job (pipeline.job) on the bundled digits, in this process or as flows."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

import models
from flows.cli.common import (
    Display,
    PrefectOption,
    VerboseOption,
    as_flows,
    console,
    fail,
    path_lines,
    plural,
    prefect_defaults,
    progress_bar,
    quiet_prefect,
    quiet_tensorflow,
)
from models.catalog import RUN_MODEL
from pipeline.config import AugmentConfig, did_you_mean
from pipeline.errors import AugpipeError, ConfigError


def run_command(
    out: Annotated[Path, typer.Option(help="Folder for every result of the run.")] = Path("augpipe-output"),
    config: Annotated[
        Path | None, typer.Option(help="YAML file of ImageDataGenerator options for the digits.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed: the same seed gives the same previews and batches.")] = 0,
    epochs: Annotated[int, typer.Option(min=1, help="Training epochs.")] = 8,
    workers: Annotated[int, typer.Option(min=0, help="Augmentation worker processes.")] = 2,
    model: Annotated[str, typer.Option(help="The convnet to train (see `augpipe models`).")] = RUN_MODEL,
    prefect: PrefectOption = False,
    verbose: VerboseOption = False,
) -> None:
    """Run the whole service on the embedded default (scikit-learn's bundled digits): prepare,
    preview, train a small convnet, record its metrics, and print where each result is."""
    quiet_tensorflow(verbose)
    try:
        cfg = AugmentConfig.from_yaml(config) if config else None
        # The job builds its TrainConfig at its last stage: an unknown model is refused here, before
        # minutes of preparing and previewing, and named as the option it came from.
        if model not in models.names():
            raise ConfigError(
                f"--model: unknown model {model!r}{did_you_mean(model, models.names())}; "
                f"the models are: {', '.join(models.names())}"
            )
        from pipeline.job import STAGES, Progress  # the job's steps: numpy, OpenCV, albumentations

        with progress_bar("starting") as bar:
            display = Display(bar, total_epochs=epochs, stages=len(STAGES))
            progress = Progress(display.stage, display.chunk, display.epoch, display.step)
            if as_flows(prefect):
                prefect_defaults(verbose)  # before Prefect is imported: it reads them then
                from flows.run import run as run_flows

                with quiet_prefect(verbose):
                    result = run_flows(
                        out, cfg, seed=seed, epochs=epochs, workers=workers, model=model, progress=progress
                    )
            else:
                from pipeline.job import run_job

                result = run_job(
                    out, cfg, seed=seed, epochs=epochs, workers=workers, model=model, progress=progress
                )
    except (AugpipeError, OSError) as err:  # ours and the system's: a bug elsewhere shows its traceback
        fail(str(err), err if verbose else None)
    accuracy = "" if result.test_accuracy is None else f", test accuracy {result.test_accuracy:.2%}"
    console.print(
        Text(
            f"augpipe run: {model} trained {plural(result.epochs, 'epoch')}{accuracy}, "
            f"in {result.seconds:.0f} s; results:"
        ),
        soft_wrap=True,
    )
    files: dict[str, object] = dict(result.files)
    if result.mlflow_run:
        files["mlflow run"] = result.mlflow_run
    path_lines(files)
