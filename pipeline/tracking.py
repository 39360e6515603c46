"""Where a training run's metrics go: metrics.csv, TensorBoard event files, MLflow, and the
confusion matrix of the test set as numbers and as a PNG.

MLflow is optional: without it installed (or with ``mlflow: false``) the rest is still recorded.
Its default store is SQLite under the runs folder, so ``mlflow ui --backend-store-uri
sqlite:///runs/mlflow.db`` shows every run without a server.
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from pipeline.io import write_atomic

EPOCH_COLUMNS = (
    "epoch",
    "phase",
    "loss",
    "accuracy",
    "val_loss",
    "val_accuracy",
    "learning_rate",
    "images_per_second",
    "epoch_seconds",
    "input_wait_fraction",
)
EXPERIMENT = "augpipe"
RUN_KEY_TAG = "augpipe.run_key"  # the MLflow run of a training run, found again when it restarts


def epoch_line(row: dict[str, Any], total_epochs: int | None = None) -> str:
    """One epoch's metrics as the line ``augpipe train`` prints and a flow run logs, e.g.
    ``epoch 3 of 10: loss 0.4929, accuracy 0.8512, val_loss 0.3811, val_accuracy 0.8870,
    2,483 images/s, input wait 1.1%`` (one line)."""
    of = f" of {total_epochs}" if total_epochs else ""
    val = "".join(
        f", {name} {row[name]:.4f}" for name in ("val_loss", "val_accuracy") if row.get(name) is not None
    )
    return (
        f"epoch {row['epoch']}{of}: loss {row['loss']:.4f}, accuracy {row['accuracy']:.4f}{val}, "
        f"{row['images_per_second']:,.0f} images/s, input wait {row['input_wait_fraction']:.1%}"
    )


def write_csv(rows: Sequence[dict[str, Any]], path: Path) -> None:
    """All epochs so far, replaced atomically (a resumed run rewrites the rows it kept)."""
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=EPOCH_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if row.get(k) is None else row[k]) for k in EPOCH_COLUMNS})
    write_atomic(path, text.getvalue().encode())


class TensorBoardWriter:
    """Per-epoch scalars under ``<folder>/train`` and ``<folder>/validation``, as Keras's callback
    names them, so that ``tensorboard --logdir runs/`` overlays runs."""

    def __init__(self, folder: Path):
        from pipeline.tf_import import import_tensorflow

        tf = import_tensorflow()

        self._tf = tf
        self._train = tf.summary.create_file_writer(str(folder / "train"))
        self._validation = tf.summary.create_file_writer(str(folder / "validation"))

    def log_epoch(self, row: dict[str, Any]) -> None:
        step = int(row["epoch"])
        with self._train.as_default():
            for name in ("loss", "accuracy", "learning_rate", "images_per_second", "input_wait_fraction"):
                self._tf.summary.scalar(f"epoch_{name}", row[name], step=step)
        if row.get("val_loss") is not None:
            with self._validation.as_default():
                self._tf.summary.scalar("epoch_loss", row["val_loss"], step=step)
                self._tf.summary.scalar("epoch_accuracy", row["val_accuracy"], step=step)
        self._train.flush()
        self._validation.flush()

    def close(self) -> None:
        self._train.close()
        self._validation.close()


def mlflow_available() -> bool:
    try:
        import mlflow  # noqa: F401
    except ImportError:
        return False
    return True


class MlflowRecorder:
    """One MLflow run per training run: parameters, per-epoch metrics, and the model and reports
    as artifacts. The MLflow run carries the training run's ``run_key`` as a tag: a training run
    started again (resumed, or killed before it could finish) continues that MLflow run, so it is
    recorded once, and each epoch's metrics once, however often it was killed."""

    def __init__(
        self, tracking_uri: str, artifact_root: Path, run_name: str, params: dict[str, Any], run_key: str
    ):
        self.client = _client(tracking_uri)
        self.tracking_uri = tracking_uri
        experiment = self.client.get_experiment_by_name(EXPERIMENT)
        experiment_id = (
            experiment.experiment_id
            if experiment is not None
            else self.client.create_experiment(EXPERIMENT, artifact_location=artifact_root.resolve().as_uri())
        )
        run = _find_run(self.client, experiment_id, run_key)
        if run is None:
            tags = {"augpipe.run_dir": run_name, RUN_KEY_TAG: run_key}
            run = self.client.create_run(experiment_id, run_name=run_name, tags=tags)
        else:
            self.client.update_run(run.info.run_id, status="RUNNING")
        self.run_id = run.info.run_id
        if not run.data.params:  # a new run, or one killed before its parameters were logged
            flat = [_param(k, v) for k, v in sorted(flatten(params).items())]
            for start in range(0, len(flat), 100):  # MLflow takes at most 100 parameters a call
                self.client.log_batch(self.run_id, params=flat[start : start + 100])
        self._logged = {m.step for m in self.client.get_metric_history(self.run_id, "loss")}

    def log_epochs(self, rows: Sequence[dict[str, Any]]) -> None:
        """The metrics of each epoch in ``rows`` that the run has not recorded yet."""
        from mlflow.entities import Metric

        now = _now_ms()
        for row in rows:
            step = int(row["epoch"])
            if step in self._logged:
                continue
            metrics = [
                Metric(k, float(row[k]), now, step)
                for k in EPOCH_COLUMNS[2:]
                if isinstance(row.get(k), int | float)
            ]
            self.client.log_batch(self.run_id, metrics=metrics)  # one call: all of them or none
            self._logged.add(step)

    def finish(
        self, final: dict[str, float], artifacts: Sequence[Path], model_path: Path | None, step: int
    ) -> None:
        """Log the final metrics at ``step`` (the last epoch; unless a start killed while finishing
        logged them) and the files, then mark the run FINISHED."""
        from mlflow.entities import Metric

        now = _now_ms()
        metrics = [
            Metric(k, float(v), now, step)
            for k, v in final.items()
            if step not in {m.step for m in self.client.get_metric_history(self.run_id, k)}
        ]
        if metrics:
            self.client.log_batch(self.run_id, metrics=metrics)
        for path in artifacts:  # the same paths again replace what a killed start logged
            self.client.log_artifact(self.run_id, str(path))
        if model_path is not None:
            self.client.log_artifact(self.run_id, str(model_path), artifact_path="model")
        self.client.set_terminated(self.run_id, "FINISHED")

    def fail(self) -> None:
        self.client.set_terminated(self.run_id, "FAILED")


def end_abandoned_run(tracking_uri: str, run_key: str) -> None:
    """Mark KILLED the MLflow run of a training run that was killed and is not continued (started
    afresh with another configuration before its first checkpoint), rather than leave it RUNNING."""
    client = _client(tracking_uri)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    run = _find_run(client, experiment.experiment_id, run_key) if experiment is not None else None
    if run is not None and run.info.status == "RUNNING":
        client.set_terminated(run.info.run_id, "KILLED")


def _client(tracking_uri: str) -> Any:
    from mlflow.tracking import MlflowClient

    # Creating the SQLite store logs every schema migration at INFO: not news for a training run.
    for name in ("mlflow.store.db.utils", "alembic"):
        if logging.getLogger(name).level == logging.NOTSET:
            logging.getLogger(name).setLevel(logging.WARNING)
    return MlflowClient(tracking_uri)


def _find_run(client: Any, experiment_id: str, run_key: str) -> Any:
    runs = client.search_runs(
        [experiment_id], filter_string=f"tags.`{RUN_KEY_TAG}` = '{run_key}'", max_results=1
    )
    return runs[0] if runs else None


def _param(key: str, value: Any) -> Any:
    from mlflow.entities import Param

    return Param(key, str(value)[:6000])


def _now_ms() -> int:
    import time

    return int(time.time() * 1000)


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"augment": {"rotation_range": 10}}`` -> ``{"augment.rotation_range": 10}``."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """(true class, predicted class) counts."""
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(y_true, np.int64), np.asarray(y_pred, np.int64)), 1)
    return matrix


def render_confusion(matrix: np.ndarray, classes: Sequence[str], title: str) -> np.ndarray:
    """The matrix as an RGB picture: rows are true classes, columns predictions, each cell shaded by
    its share of the row and labelled with its count."""
    n = len(classes)
    cell = int(np.clip(560 // max(n, 1), 28, 64))
    label_w = max(60, 9 * max(len(str(c)) for c in classes) + 16)
    top, bottom = 56, 40
    height, width = top + n * cell + bottom, label_w + n * cell + 16
    image = np.full((height, width, 3), 255, np.uint8)
    font, scale = cv2.FONT_HERSHEY_SIMPLEX, 0.45
    share = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    for r in range(n):
        for c in range(n):
            y, x = top + r * cell, label_w + c * cell
            # Blue for the diagonal (right), red elsewhere (confusions), deeper for a larger share.
            strength = float(share[r, c])
            tint = (60, 110, 200) if r == c else (200, 60, 60)
            colour = tuple(int(255 - strength * (255 - t)) for t in tint)
            cv2.rectangle(image, (x, y), (x + cell - 1, y + cell - 1), colour, -1)
            cv2.rectangle(image, (x, y), (x + cell - 1, y + cell - 1), (200, 200, 200), 1)
            text = str(int(matrix[r, c]))
            ink = (255, 255, 255) if strength > 0.6 else (0, 0, 0)
            (tw, th), _ = cv2.getTextSize(text, font, scale, 1)
            cv2.putText(image, text, (x + (cell - tw) // 2, y + (cell + th) // 2), font, scale, ink, 1,
                        cv2.LINE_AA)  # fmt: skip
        cv2.putText(image, str(classes[r]), (8, top + r * cell + cell // 2 + 5), font, scale, (0, 0, 0), 1,
                    cv2.LINE_AA)  # fmt: skip
        (tw, _), _ = cv2.getTextSize(str(classes[r]), font, scale, 1)
        cv2.putText(image, str(classes[r]), (label_w + r * cell + (cell - tw) // 2, top - 8), font, scale,
                    (0, 0, 0), 1, cv2.LINE_AA)  # fmt: skip
    cv2.putText(image, title, (8, 20), font, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(image, "rows: true class, columns: predicted", (8, height - 14), font, 0.4, (90, 90, 90), 1,
                cv2.LINE_AA)  # fmt: skip
    return image


# One colour per curve, distinguishable in print and for the common colour-vision deficiencies
# (Okabe and Ito's palette), as RGB.
CURVE_COLOURS = (
    (0, 114, 178), (230, 159, 0), (0, 158, 115), (204, 121, 167),
    (86, 180, 233), (213, 94, 0), (240, 228, 66), (0, 0, 0),
)  # fmt: skip


def render_curves(
    curves: dict[str, list[dict[str, Any]]], panels: Sequence[tuple[str, str, str]], title: str
) -> np.ndarray:
    """Several runs' per-epoch metrics as one RGB picture: one panel per ``(key, dashed_key, label)``
    in ``panels`` (``key`` drawn solid, ``dashed_key`` dashed, e.g. val_accuracy over accuracy), one
    colour per run of ``curves`` (run name -> its metrics rows), a legend below."""
    panel_w, panel_h, margin, top = 420, 280, 60, 64
    legend_h = 22 * ((len(curves) + 2) // 3) + 26
    width, height = margin + len(panels) * (panel_w + margin), top + panel_h + 40 + legend_h
    image = np.full((height, width, 3), 255, np.uint8)
    font = cv2.FONT_HERSHEY_SIMPLEX
    cv2.putText(image, title, (8, 22), font, 0.55, (0, 0, 0), 1, cv2.LINE_AA)
    epochs = max((len(rows) for rows in curves.values()), default=1)
    for p, (key, dashed_key, label) in enumerate(panels):
        x0, y0 = margin + p * (panel_w + margin), top
        values = [
            float(r[k]) for rows in curves.values() for r in rows for k in (key, dashed_key)
            if r.get(k) is not None and np.isfinite(float(r[k]))
        ]  # fmt: skip
        low, high = (min(values), max(values)) if values else (0.0, 1.0)
        if high - low < 1e-9:
            low, high = low - 0.5, high + 0.5
        pad = (high - low) * 0.05
        low, high = low - pad, high + pad

        def point(
            epoch: float, value: float, x0: int = x0, y0: int = y0, low: float = low, high: float = high
        ):
            x = x0 + (epoch - 1) / max(epochs - 1, 1) * panel_w
            y = y0 + (1 - (value - low) / (high - low)) * panel_h
            return int(round(x)), int(round(y))

        cv2.rectangle(image, (x0, y0), (x0 + panel_w, y0 + panel_h), (170, 170, 170), 1)
        decimals = max(0, 1 - int(np.floor(np.log10((high - low) / 4))))  # ticks that differ
        for t in range(5):  # value ticks
            v = low + (high - low) * t / 4
            _, y = point(1, v)
            cv2.line(image, (x0 - 4, y), (x0, y), (120, 120, 120), 1)
            text = f"{v:.{decimals}f}"
            (tw, _), _ = cv2.getTextSize(text, font, 0.32, 1)
            cv2.putText(image, text, (x0 - 7 - tw, y + 4), font, 0.32, (60, 60, 60), 1, cv2.LINE_AA)
        for e in sorted({1, epochs, *range(1, epochs + 1, max(1, epochs // 5))}):  # epoch ticks
            x, _ = point(e, low)
            cv2.line(image, (x, y0 + panel_h), (x, y0 + panel_h + 4), (120, 120, 120), 1)
            cv2.putText(image, str(e), (x - 4, y0 + panel_h + 16), font, 0.32, (60, 60, 60), 1, cv2.LINE_AA)
        cv2.putText(image, f"{label} by epoch", (x0, y0 - 8), font, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
        for i, rows in enumerate(curves.values()):
            colour = CURVE_COLOURS[i % len(CURVE_COLOURS)]
            for k, dashed in ((key, False), (dashed_key, True)):
                points = [
                    point(float(r["epoch"]), float(r[k])) for r in rows
                    if r.get(k) is not None and np.isfinite(float(r[k]))
                ]  # fmt: skip
                for a, b in zip(points, points[1:], strict=False):
                    _segment(image, a, b, colour, dashed)
                for q in points:
                    cv2.circle(image, q, 2 if dashed else 3, colour, -1, cv2.LINE_AA)
    y = top + panel_h + 40
    cv2.putText(image, "solid: validation, dashed: training", (8, y), font, 0.4, (90, 90, 90), 1, cv2.LINE_AA)
    for i, name in enumerate(curves):
        x, yy = 8 + (i % 3) * (width // 3), y + 22 + 22 * (i // 3)
        colour = CURVE_COLOURS[i % len(CURVE_COLOURS)]
        cv2.line(image, (x, yy - 4), (x + 24, yy - 4), colour, 3, cv2.LINE_AA)
        cv2.putText(image, name[:40], (x + 30, yy), font, 0.42, (0, 0, 0), 1, cv2.LINE_AA)
    return image


def _segment(
    image: np.ndarray, a: tuple[int, int], b: tuple[int, int], colour: tuple[int, ...], dashed: bool
) -> None:
    if not dashed:
        cv2.line(image, a, b, colour, 2, cv2.LINE_AA)
        return
    length = float(np.hypot(b[0] - a[0], b[1] - a[1]))
    steps = max(1, int(length // 6))
    for s in range(0, steps, 2):  # 6-pixel dashes with 6-pixel gaps
        t0, t1 = s / steps, min(1.0, (s + 1) / steps)
        p = (int(a[0] + (b[0] - a[0]) * t0), int(a[1] + (b[1] - a[1]) * t0))
        q = (int(a[0] + (b[0] - a[0]) * t1), int(a[1] + (b[1] - a[1]) * t1))
        cv2.line(image, p, q, colour, 1, cv2.LINE_AA)
