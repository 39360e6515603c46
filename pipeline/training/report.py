"""The end of a run: the model, the best checkpoint, the test report, summary.json and MLflow's
record, then the state says so. Killed before that, the next start does it all again (the same
files, MLflow's record kept once).

The weights reported (:func:`weights_choice`) are the best validation epoch's by default, as Keras's
``EarlyStopping(restore_best_weights=True)``: ``model.keras`` is that epoch's checkpoint and the test
split is scored with it, and with the last epoch's weights too, so the summary shows both."""

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
from pipeline.training.describe import input_scale
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


class Weights(NamedTuple):
    """The weights a run reports: ``model.keras`` holds them and the test split is scored with them."""

    epoch: int  # counted from 1
    restored: bool  # the best validation epoch's, restored instead of the last epoch's
    why: str  # one line, for the summary


class Scores(NamedTuple):
    """What a run reports on its test split, and with which weights."""

    weights: Weights
    test: Report  # with weights.epoch's weights
    last_test: Report  # with the last epoch's
    class_weights: np.ndarray | None  # by class index, as trained with


def weights_choice(cfg: TrainConfig, data: TrainData, state: RunState) -> Weights:
    """The best validation epoch's weights (lowest validation loss, the epoch early stopping keeps)
    when ``cfg.restore_best_weights`` and there is a validation split, else the last epoch's."""
    last, best = state.epochs_done, state.best_epoch
    if data.validation is None or not len(data.validation):
        why = "without a validation split no epoch can be chosen on held-out data"
        return Weights(last, False, f"epoch {last}, the last: {why}")
    if best is None or best == last:
        return Weights(last, False, f"epoch {last}, the last, which has the lowest validation loss")
    if not cfg.restore_best_weights:
        return Weights(
            last, False, f"epoch {last}, the last: restore_best_weights is off; epoch {best} has the "
            f"lowest validation loss (checkpoints/{BEST_MODEL})"
        )  # fmt: skip
    return Weights(best, True, f"epoch {best} of {last}: the lowest validation loss (restore_best_weights)")


def finish(
    cfg: TrainConfig,
    run_dir: Path,
    model: Any,
    data: TrainData,
    augmenter: Augmenter,
    state: RunState,
    resumed_after: int | None,
    mlflow: tracking.MlflowRecorder | None,
    class_weights: np.ndarray | None = None,
) -> TrainResult:
    """Write the run's final files and MLflow's record, then mark the state finished."""
    files: dict[str, Path] = {}
    best = run_dir / CHECKPOINTS / checkpoint_name(state.best_epoch)
    weights = weights_choice(cfg, data, state)
    if weights.restored:
        files["model"] = write_atomic(run_dir / MODEL, lambda tmp: shutil.copyfile(best, tmp))
    else:
        files["model"] = write_atomic(run_dir / MODEL, model.save)
    if state.best_epoch is not None and best.exists():
        files["best_model"] = write_atomic(
            run_dir / CHECKPOINTS / BEST_MODEL, lambda tmp: shutil.copyfile(best, tmp)
        )
    last_test = _score(cfg, model, data, augmenter)
    test = last_test
    if weights.restored:
        files["last_epoch_model"] = run_dir / CHECKPOINTS / checkpoint_name(state.epochs_done)
        test = _score(cfg, _load(model, best), data, augmenter)
    tracking.write_csv(state.history, run_dir / METRICS)  # a kill may have kept the last row out
    remove_stale_checkpoints(run_dir, state)
    if test.confusion is not None and test.accuracy is not None:
        tested = len(data.test or [])
        title = f"{cfg.model} (epoch {weights.epoch}) on {tested} test images: accuracy {test.accuracy:.2%}"
        picture = tracking.render_confusion(np.array(test.confusion), data.classes, title)
        files["confusion_matrix"] = write_atomic(run_dir / CONFUSION_MATRIX, png_bytes(picture))
    files["metrics"] = run_dir / METRICS
    files["tensorboard"] = run_dir / TENSORBOARD
    scores = Scores(weights, test, last_test, class_weights)
    write_json(run_dir / SUMMARY, summary(cfg, run_dir, model, data, state, resumed_after, scores, mlflow))
    files["summary"] = run_dir / SUMMARY
    if mlflow is not None:
        named = {"test_loss": test.loss, "test_accuracy": test.accuracy}
        if weights.restored:
            named.update(last_epoch_test_loss=last_test.loss, last_epoch_test_accuracy=last_test.accuracy)
        final = {k: v for k, v in named.items() if v is not None}
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
        weights_epoch=weights.epoch,
        last_epoch_test_accuracy=last_test.accuracy,
    )


def _load(model: Any, path: Path) -> Any:
    """The model saved at ``path``, on ``model``'s devices."""
    import keras

    with model.distribute_strategy.scope():
        return keras.models.load_model(path)


def _score(cfg: TrainConfig, model: Any, data: TrainData, augmenter: Augmenter) -> Report:
    """Loss, accuracy and confusion matrix of ``model`` on the test split."""
    if data.test is None or not len(data.test):
        return Report(None, None, None)
    predicted: list[np.ndarray] = []
    loss, accuracy = evaluate(model, data.test, augmenter, cfg.batch_size, predicted)
    matrix = tracking.confusion_matrix(data.test.labels, np.concatenate(predicted), len(data.classes))
    return Report(loss, accuracy, matrix.tolist())


def summary(
    cfg: TrainConfig,
    run_dir: Path,
    model: Any,
    data: TrainData,
    state: RunState,
    resumed_after: int | None,
    scores: Scores,
    mlflow: tracking.MlflowRecorder | None,
) -> dict[str, Any]:
    """summary.json's content."""
    history = state.history
    last = history[-1] if history else {}
    test, weights = scores.test, scores.weights
    weighed = scores.class_weights
    class_weights = None if weighed is None else dict(zip(data.classes, weighed.tolist(), strict=True))
    return {
        "run": run_dir.name,
        "model": cfg.model,
        "dataset": data.source,
        "classes": data.classes,
        "train_images": len(data.train),
        "train_images_sampled_from": data.sampled_from,  # None: the whole training split
        "train_class_counts": data.class_counts(),
        "inputs": input_scale(cfg.augment),
        "class_weights": class_weights,
        "validation_images": len(data.validation) if data.validation is not None else 0,
        "test_images": len(data.test) if data.test is not None else 0,
        "epochs_run": len(history),
        "stopped_early": state.stopped_early,
        "best_epoch": state.best_epoch,
        "resumed_after_epoch": resumed_after,
        "final": {k: last.get(k) for k in ("loss", "accuracy", "val_loss", "val_accuracy")},
        "epochs": history,
        "weights_epoch": weights.epoch,
        "weights": weights.why,
        "test_loss": test.loss,  # with weights_epoch's weights, as model.keras and the confusion matrix
        "test_accuracy": test.accuracy,
        "last_epoch_test_loss": scores.last_test.loss,
        "last_epoch_test_accuracy": scores.last_test.accuracy,
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
