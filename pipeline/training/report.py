"""The end of a run: the model, the best checkpoint, the test report, summary.json and MLflow's
record, then the state says so. Killed before that, the next start does it all again (the same
files, MLflow's record kept once)."""

from __future__ import annotations

import shutil
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from pipeline import tracking
from pipeline.augment import Augmenter
from pipeline.config import TrainConfig
from pipeline.io import png_bytes, write_atomic
from pipeline.training.checkpoints import remove_stale_checkpoints
from pipeline.training.data import TrainData
from pipeline.training.layout import (
    BEST_MODEL,
    CHECKPOINTS,
    CONFUSION_MATRIX,
    METRICS,
    MODEL,
    SUMMARY,
    TENSORBOARD,
    checkpoint_name,
)
from pipeline.training.result import TrainResult
from pipeline.training.state import RunState, write_json, write_state
from pipeline.training.steps import evaluate


class Report(NamedTuple):
    """The test split's scores; all None without one."""

    loss: float | None
    accuracy: float | None
    confusion: list[list[int]] | None  # [true class][predicted class]


def finish(
    cfg: TrainConfig,
    run_dir: Path,
    model: Any,
    data: TrainData,
    augmenter: Augmenter,
    state: RunState,
    resumed_after: int | None,
    mlflow: tracking.MlflowRecorder | None,
) -> TrainResult:
    """Write the run's final files and MLflow's record, then mark the state finished."""
    files: dict[str, Path] = {"model": write_atomic(run_dir / MODEL, model.save)}
    best = run_dir / CHECKPOINTS / checkpoint_name(state.best_epoch)
    if state.best_epoch is not None and best.exists():
        files["best_model"] = write_atomic(
            run_dir / CHECKPOINTS / BEST_MODEL, lambda tmp: shutil.copyfile(best, tmp)
        )
    tracking.write_csv(state.history, run_dir / METRICS)  # a kill may have kept the last row out
    remove_stale_checkpoints(run_dir, state)
    test = _test_report(cfg, run_dir, model, data, augmenter, files)
    files["metrics"] = run_dir / METRICS
    files["tensorboard"] = run_dir / TENSORBOARD
    write_json(run_dir / SUMMARY, summary(cfg, run_dir, model, data, state, resumed_after, test, mlflow))
    files["summary"] = run_dir / SUMMARY
    if mlflow is not None:
        final = {
            k: v for k, v in (("test_loss", test.loss), ("test_accuracy", test.accuracy)) if v is not None
        }
        reports = [files[k] for k in ("metrics", "summary", "confusion_matrix") if k in files]
        mlflow.finish(final, reports, files["model"], step=state.epochs_done)
    state = replace(state, finished=True)
    write_state(run_dir, state)
    return TrainResult(
        run_dir=run_dir,
        model_path=files["model"],
        history=state.history,
        test_loss=test.loss,
        test_accuracy=test.accuracy,
        confusion=test.confusion,
        files=files,
        resumed_after_epoch=resumed_after,
        stopped_early=state.stopped_early,
        mlflow_run_id=mlflow.run_id if mlflow else None,
    )


def _test_report(
    cfg: TrainConfig, run_dir: Path, model: Any, data: TrainData, augmenter: Augmenter, files: dict[str, Path]
) -> Report:
    """Loss, accuracy and confusion matrix on the test split, whose picture goes into ``files``."""
    if data.test is None or not len(data.test):
        return Report(None, None, None)
    predicted: list[np.ndarray] = []
    loss, accuracy = evaluate(model, data.test, augmenter, cfg.batch_size, predicted)
    matrix = tracking.confusion_matrix(data.test.labels, np.concatenate(predicted), len(data.classes))
    title = f"{cfg.model} on {len(data.test)} test images: accuracy {accuracy:.2%}"
    picture = tracking.render_confusion(matrix, data.classes, title)
    files["confusion_matrix"] = write_atomic(run_dir / CONFUSION_MATRIX, png_bytes(picture))
    return Report(loss, accuracy, matrix.tolist())


def summary(
    cfg: TrainConfig,
    run_dir: Path,
    model: Any,
    data: TrainData,
    state: RunState,
    resumed_after: int | None,
    test: Report,
    mlflow: tracking.MlflowRecorder | None,
) -> dict[str, Any]:
    """summary.json's content."""
    history = state.history
    last = history[-1] if history else {}
    return {
        "run": run_dir.name,
        "model": cfg.model,
        "dataset": data.source,
        "classes": data.classes,
        "train_images": len(data.train),
        "validation_images": len(data.validation) if data.validation is not None else 0,
        "test_images": len(data.test) if data.test is not None else 0,
        "epochs_run": len(history),
        "stopped_early": state.stopped_early,
        "best_epoch": state.best_epoch,
        "resumed_after_epoch": resumed_after,
        "final": {k: last.get(k) for k in ("loss", "accuracy", "val_loss", "val_accuracy")},
        "epochs": history,
        "test_loss": test.loss,
        "test_accuracy": test.accuracy,
        "confusion_matrix": test.confusion,
        "mean_images_per_second": float(np.mean([r["images_per_second"] for r in history])) if history else 0,
        "mean_input_wait_fraction": (
            float(np.mean([r["input_wait_fraction"] for r in history])) if history else 0
        ),
        "parameters": int(model.count_params()),
        "mlflow_run_id": mlflow.run_id if mlflow else None,
        "mlflow_tracking_uri": mlflow.tracking_uri if mlflow else None,
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        "config": cfg.model_dump(mode="json"),
    }
