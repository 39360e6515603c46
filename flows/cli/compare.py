"""``augpipe compare``: does augmentation help? Train one model once per augmentation config (and
without augmentation) on the same prepared dataset, then print the table and draw the curves."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.text import Text

from flows.cli.common import (
    BatchSizeOption,
    DatasetArgument,
    Display,
    LearningRateOption,
    LrScheduleOption,
    ModelOption,
    NoMlflowOption,
    OptimizerOption,
    PrefectOption,
    RunsDirOption,
    VerboseOption,
    WorkersOption,
    as_flows,
    console,
    fail,
    path_lines,
    prefect_defaults,
    progress_bar,
    quiet_prefect,
    quiet_tensorflow,
)
from pipeline.config import NO_AUGMENTATION, AugmentConfig, CompareConfig, ConfigError, TrainConfig
from pipeline.errors import AugpipeError

if TYPE_CHECKING:
    from pipeline.training.compare import CompareResult


def augment_files(given: list[str]) -> dict[str, AugmentConfig]:
    """``NAME=FILE`` or ``FILE`` (named by its stem) -> the variants' configs; ``none`` is implied."""
    variants: dict[str, AugmentConfig] = {}
    for item in given:
        name, sep, file = item.partition("=")
        path = Path(file if sep else item)
        name = name if sep else path.stem
        if name == NO_AUGMENTATION and not sep:
            raise ConfigError(
                f"--augment {item}: `{NO_AUGMENTATION}` is always trained (normalisation only); "
                "name the file's variant otherwise, e.g. --augment mine=none.yaml"
            )
        if name in variants:
            raise ConfigError(
                f"--augment {item}: the name {name!r} is given twice; use NAME=FILE to tell them apart"
            )
        variants[name] = AugmentConfig.from_yaml(path)
    return variants


def compare_command(
    dataset: DatasetArgument = None,
    augment: Annotated[
        list[str] | None,
        typer.Option(
            help="An augmentation to compare, as FILE.yaml (named by its stem) or NAME=FILE.yaml; repeat "
            "it. `none` (normalisation only) is always trained too."
        ),
    ] = None,
    name: Annotated[
        str | None, typer.Option(help="The comparison's folder under the runs folder (default: compare).")
    ] = None,
    model: ModelOption = None,
    epochs: Annotated[int | None, typer.Option(min=1, help="Epochs of every run.")] = None,
    batch_size: BatchSizeOption = None,
    optimizer: OptimizerOption = None,
    learning_rate: LearningRateOption = None,
    lr_schedule: LrScheduleOption = None,
    seed: Annotated[
        int | None, typer.Option(help="Seed of every run (weights, order, augmentation).")
    ] = None,
    workers: WorkersOption = None,
    max_train_samples: Annotated[
        int | None, typer.Option(min=1, help="Train on a class-proportional sample of N training images.")
    ] = None,
    runs_dir: RunsDirOption = None,
    no_mlflow: NoMlflowOption = False,
    local: Annotated[
        bool,
        typer.Option(
            "--local",
            help="With a Prefect server, train the runs in this process one after another instead of as "
            "train-model runs on the work pool.",
        ),
    ] = False,
    config: Annotated[
        Path | None,
        typer.Option(
            help="YAML file with a `compare:` section (name, train, augments); options override it."
        ),
    ] = None,
    prefect: PrefectOption = False,
    verbose: VerboseOption = False,
) -> None:
    """Train the same model once per augmentation (and without) on one dataset; print which helps."""
    quiet_tensorflow(verbose)
    train_given: dict[str, Any] = {
        "dataset": dataset, "model": model, "epochs": epochs, "batch_size": batch_size, "seed": seed,
        "optimizer": optimizer, "learning_rate": learning_rate, "lr_schedule": lr_schedule,
        "workers": workers, "max_train_samples": max_train_samples,
        "runs_dir": None if runs_dir is None else str(runs_dir), "mlflow": False if no_mlflow else None,
    }  # fmt: skip
    try:
        overrides: dict[str, Any] = {}
        if name is not None:
            overrides["name"] = name
        if augment:
            overrides["augments"] = augment_files(augment)
        train_overrides = {k: v for k, v in train_given.items() if v is not None}
        if config is not None:
            cfg = CompareConfig.from_yaml(config, **overrides)
            if train_overrides:
                merged = {**cfg.train.model_dump(mode="python", exclude_unset=True), **train_overrides}
                cfg = CompareConfig(**{**cfg.model_dump(mode="python", exclude={"train"}), **overrides},
                                    train=TrainConfig(**merged))  # fmt: skip
        else:
            cfg = CompareConfig(train=TrainConfig(**train_overrides), **overrides)
        runs = 1 + len([v for v in cfg.augments if v != NO_AUGMENTATION])
        with progress_bar(
            f"comparing {runs} augmentations of {cfg.train.model} on {cfg.train.dataset}"
        ) as bar:
            display = Display(bar, total_epochs=cfg.train.total_epochs)
            if as_flows(prefect):
                prefect_defaults(verbose)
                from flows.compare import run_compare

                with quiet_prefect(verbose):
                    result = run_compare(
                        cfg, on_pool=False if local else None, on_epoch=display.epoch, on_step=display.step
                    )
            else:
                from pipeline.training.compare import compare

                def announce(variant: str, run: TrainConfig, done: bool) -> None:
                    state = "finished already, read from its folder" if done else "training"
                    display.line(f"{variant}: {state} ({run.runs_dir}/{run.run_name})")

                result = compare(cfg, on_variant=announce, on_epoch=display.epoch, on_step=display.step)
    except (AugpipeError, OSError) as err:
        fail(str(err), err if verbose else None)
    print_table(result)


def print_table(result: CompareResult) -> None:
    """The comparison's table, then where its files are."""
    console.print(Text(result.table()), soft_wrap=True)
    console.print(
        Text(
            "val acc and test acc: with the weights each run reports (by default the epoch of lowest "
            "validation loss, shown as epoch/epochs); train acc: the last epoch's, on augmented batches."
        ),
        soft_wrap=True,
    )
    path_lines({"table": result.files["table"], "curves": result.files["curves"], "runs": result.folder})
