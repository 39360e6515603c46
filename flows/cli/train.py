"""``augpipe train``: train a model on augmented batches, in this process or as the train-model flow."""

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
    plural,
    prefect_defaults,
    progress_bar,
    quiet_prefect,
    quiet_tensorflow,
)
from pipeline.config import AugmentConfig, TrainConfig
from pipeline.errors import AugpipeError

if TYPE_CHECKING:
    from pipeline.training import TrainResult


def train_command(
    dataset: DatasetArgument = None,
    model: ModelOption = None,
    epochs: Annotated[int | None, typer.Option(min=1, help="Epochs.")] = None,
    batch_size: BatchSizeOption = None,
    optimizer: OptimizerOption = None,
    learning_rate: LearningRateOption = None,
    lr_schedule: LrScheduleOption = None,
    augment: Annotated[
        Path | None, typer.Option(help="YAML file of ImageDataGenerator options for training batches.")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of weights, batch order and augmentation.")] = None,
    workers: WorkersOption = None,
    run_name: Annotated[
        str | None, typer.Option(help="Run folder name; an unfinished run of this name is resumed.")
    ] = None,
    runs_dir: RunsDirOption = None,
    early_stopping: Annotated[
        int | None, typer.Option(min=1, help="Stop after this many epochs without improvement.")
    ] = None,
    max_train_samples: Annotated[
        int | None,
        typer.Option(
            min=1, help="Train on N training images: a class-proportional sample, drawn with --seed."
        ),
    ] = None,
    class_weight: Annotated[
        str | None,
        typer.Option(help="Loss weights: 'balanced', or by class name or index, e.g. 0=1.0,1=2.5."),
    ] = None,
    label_smoothing: Annotated[
        float | None, typer.Option(help="Label smoothing of the loss, in [0, 1) (default 0).")
    ] = None,
    no_restore_best_weights: Annotated[
        bool,
        typer.Option(
            "--no-restore-best-weights",
            help="Test and save the last epoch's weights, not the best validation epoch's.",
        ),
    ] = False,
    distribute: Annotated[
        str | None, typer.Option(help="auto (all local GPUs when there are several), none or mirrored.")
    ] = None,
    gpus: Annotated[
        str | None,
        typer.Option(help="GPU indices to use, e.g. 0,1 (sets CUDA_VISIBLE_DEVICES); none: the CPU only."),
    ] = None,
    mixed_precision: Annotated[
        bool, typer.Option("--mixed-precision", help="float16 compute (for GPUs with tensor cores).")
    ] = False,
    augment_on_device: Annotated[
        bool, typer.Option("--augment-on-device", help="Apply the affine augmentation in TensorFlow.")
    ] = False,
    mlflow_uri: Annotated[
        str | None, typer.Option(help="MLflow tracking URI (default: SQLite under the runs folder).")
    ] = None,
    no_mlflow: NoMlflowOption = False,
    config: Annotated[
        Path | None, typer.Option(help="YAML file of train options; command-line options override it.")
    ] = None,
    prefect: PrefectOption = False,
    verbose: VerboseOption = False,
) -> None:
    """Train a model on augmented batches; metrics go to the run's folder and MLflow."""
    quiet_tensorflow(verbose)
    given: dict[str, Any] = {
        "dataset": dataset, "model": model, "epochs": epochs, "batch_size": batch_size,
        "optimizer": optimizer, "learning_rate": learning_rate, "lr_schedule": lr_schedule, "seed": seed,
        "workers": workers,
        "run_name": run_name, "runs_dir": None if runs_dir is None else str(runs_dir),
        "early_stopping_patience": early_stopping, "max_train_samples": max_train_samples,
        "class_weight": class_weight, "label_smoothing": label_smoothing, "distribute": distribute,
        "gpus": gpus, "restore_best_weights": False if no_restore_best_weights else None,
        "mixed_precision": mixed_precision or None, "augment_on_device": augment_on_device or None,
        "mlflow_tracking_uri": mlflow_uri, "mlflow": False if no_mlflow else None,
    }  # fmt: skip
    try:
        if augment is not None:
            given["augment"] = AugmentConfig.from_yaml(augment)
        overrides = {k: v for k, v in given.items() if v is not None}
        cfg = TrainConfig.from_yaml(config, **overrides) if config is not None else TrainConfig(**overrides)
        with progress_bar(f"training {cfg.model} on {cfg.dataset}") as bar:
            display = Display(bar, total_epochs=cfg.total_epochs)
            if as_flows(prefect):
                prefect_defaults(verbose)  # before Prefect is imported: it reads them then
                from flows.train import run_train

                with quiet_prefect(verbose):
                    result = run_train(cfg, on_epoch=display.epoch, on_step=display.step)
            else:
                from pipeline.training import train

                result = train(cfg, on_epoch=display.epoch, on_step=display.step)
    except (AugpipeError, OSError) as err:  # ours and the system's: a bug elsewhere shows its traceback
        fail(str(err), err if verbose else None)
    print_summary(result)


def print_summary(result: TrainResult) -> None:
    """The run's epochs and test accuracy, what they were measured on, then where each file is."""
    from pipeline.training.describe import summary_lines

    summary = result.summary()
    title = f"run {summary['run']}: {plural(summary['epochs_run'], 'epoch')}"
    if summary["test_accuracy"] is not None:
        title += f", test accuracy {summary['test_accuracy']:.2%}"
    console.print(Text(title), soft_wrap=True)
    for line in summary_lines(summary):
        console.print(Text(f"  {line}"), soft_wrap=True)
    console.print(Text("results:"), soft_wrap=True)
    files: dict[str, object] = {name.replace("_", " "): path for name, path in result.files.items()}
    if summary["mlflow_run_id"]:
        files["mlflow run"] = f"{summary['mlflow_run_id']} ({summary['mlflow_tracking_uri']})"
    path_lines(files)
