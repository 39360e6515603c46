"""The ``train-model`` Prefect flow: prepare a source (as a ``prepare-dataset`` subflow), train, publish
the run's metrics.

Run it with :func:`run_train` (what ``augpipe train`` calls) on Prefect's embedded ephemeral API,
or as the ``train-model`` deployment of ``prefect.yaml`` on a ``gpu`` work pool. The training
itself lives in :mod:`pipeline.training`; the tasks only wrap it and pass paths and small records.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from flows.parameters import resolve_config
from flows.prepare import prepare_dataset
from pipeline import training
from pipeline.config import TrainConfig
from pipeline.tracking import epoch_line
from pipeline.training import TrainResult
from pipeline.training.describe import summary_lines

# Progress callbacks for the CLI (callbacks cannot be JSON flow parameters).
_on_epoch: ContextVar[Callable[[dict[str, Any]], None] | None] = ContextVar("augpipe_on_epoch", default=None)
_on_step: ContextVar[Callable[[int, int], None] | None] = ContextVar("augpipe_on_step", default=None)


@task(name="train", cache_policy=NO_CACHE)
def train_task(config: TrainConfig) -> TrainResult:
    logger = get_run_logger()
    on_epoch = _on_epoch.get()

    def log_epoch(row: dict[str, Any]) -> None:  # one line per epoch in the flow run's log
        logger.info(epoch_line(row, config.total_epochs))
        if on_epoch is not None:
            on_epoch(row)

    return training.train(config, on_epoch=log_epoch, on_step=_on_step.get())


@task(name="publish-metrics", cache_policy=NO_CACHE)
def publish_task(result: TrainResult) -> None:
    columns = ("epoch", "loss", "accuracy", "val_loss", "val_accuracy", "images_per_second",
               "input_wait_fraction")  # fmt: skip
    rows = [{k: _round(row.get(k)) for k in columns} for row in result.history]
    key = "".join(c if c.isalnum() else "-" for c in result.run_dir.name.lower())
    create_table_artifact(rows, key=f"train-{key}", description=f"Per-epoch metrics of {result.run_dir}")
    create_markdown_artifact(summary_markdown(result), key=f"train-{key}-summary")


@flow(
    name="train-model",
    log_prints=True,
    validate_parameters=False,  # resolve_config merges a deployment run's partial config, then validates
)
def train_model(config: TrainConfig) -> dict[str, Any]:
    """Train ``config.model`` on ``config.dataset`` with augmented batches; record every epoch."""
    config = resolve_config(TrainConfig, config)
    get_run_logger().info(
        "training %s on %s for %d epochs, runs in %s",
        config.model,
        config.dataset,
        config.total_epochs,
        Path(config.runs_dir).resolve(),
    )
    preparation = training.dataset_preparation(config)
    if preparation is not None:  # a source: prepared first by the prepare-dataset flow
        prepare_dataset(preparation)
    # Trained on the prepared folder: the run's fingerprint (state.digest) names that folder for a
    # source too, so a run started here or by `train(config)` resumes from either.
    result = train_task(config.model_copy(update={"dataset": str(training.dataset_folder(config))}))
    publish_task(result)
    return training.result_dict(result)


def run_train(
    config: TrainConfig,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
    on_step: Callable[[int, int], None] | None = None,
) -> TrainResult:
    """Run the flow in this process and return its result (``augpipe train --prefect``)."""
    with callbacks(on_epoch, on_step):
        return as_result(train_model(config, return_state=True).result())  # raises what failed the run


def as_result(out: dict[str, Any]) -> TrainResult:
    """The TrainResult that train_model returned as a (JSON) dict."""
    return TrainResult(
        **{
            **out,
            "run_dir": Path(out["run_dir"]),
            "model_path": Path(out["model_path"]),
            "files": {k: Path(v) for k, v in out["files"].items()},
        }
    )


@contextmanager
def callbacks(
    on_epoch: Callable[[dict[str, Any]], None] | None, on_step: Callable[[int, int], None] | None
) -> Iterator[None]:
    """Runs of train_model started in this context call ``on_epoch(row)`` and ``on_step(step, steps)``."""
    a, b = _on_epoch.set(on_epoch), _on_step.set(on_step)
    try:
        yield
    finally:
        _on_epoch.reset(a)
        _on_step.reset(b)


def summary_markdown(result: TrainResult) -> str:
    s = result.summary()
    lines = [
        f"# Training run `{s['run']}`",
        "",
        f"- model: `{s['model']}` ({s['parameters']:,} parameters), dataset: `{s['dataset']}`",
        f"- images: {s['train_images']} train, {s['validation_images']} validation, {s['test_images']} test",
        f"- epochs: {s['epochs_run']}" + (", stopped early" if s["stopped_early"] else "")
        + (f", resumed after epoch {s['resumed_after_epoch']}" if s["resumed_after_epoch"] else ""),
        f"- mean speed: {s['mean_images_per_second']:,.0f} images/s, "
        f"input wait {s['mean_input_wait_fraction']:.1%} of step time",
    ]  # fmt: skip
    if s["test_accuracy"] is not None:
        lines.append(f"- **test accuracy: {s['test_accuracy']:.2%}** (loss {s['test_loss']:.4f})")
    lines += [f"- {line}" for line in summary_lines(s)]  # inputs, sample, weights: what the figures are
    if s["mlflow_run_id"]:
        lines.append(f"- MLflow run `{s['mlflow_run_id']}` at `{s['mlflow_tracking_uri']}`")
    lines += ["", "| file | path |", "|---|---|"]
    lines += [f"| {name} | `{path}` |" for name, path in result.files.items()]
    return "\n".join(lines)


def _round(value: Any) -> Any:
    return round(value, 4) if isinstance(value, float) else value
