"""pipeline.tracking: metrics.csv, TensorBoard events, MLflow runs kept once per training run, and the
confusion matrix."""

import csv
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import confusion_matrix as sklearn_confusion

from pipeline import tracking

ROWS = [
    dict(epoch=1, phase="train", loss=0.9, accuracy=0.7, val_loss=0.8, val_accuracy=0.75, learning_rate=1e-3,
         images_per_second=2500.0, epoch_seconds=3.2, input_wait_fraction=0.011, _internal="not a column"),
    dict(epoch=2, phase="train", loss=0.5, accuracy=0.85, val_loss=None, val_accuracy=None,
         learning_rate=1e-4,
         images_per_second=2600.0, epoch_seconds=3.1, input_wait_fraction=0.02),
]  # fmt: skip


def test_csv_has_every_column_in_order_and_blanks_for_missing_values(tmp_path):
    path = tmp_path / "metrics.csv"
    tracking.write_csv(ROWS, path)
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0]) == tracking.EPOCH_COLUMNS
    assert rows[0]["val_accuracy"] == "0.75" and rows[1]["val_accuracy"] == ""
    tracking.write_csv(ROWS[:1], path)  # a resumed run rewrites the rows it kept
    with path.open(newline="") as f:
        assert [r["epoch"] for r in csv.DictReader(f)] == ["1"]
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.csv"]  # no temporary file left


def test_epoch_line_is_one_line_with_validation_only_when_measured():
    assert tracking.epoch_line(ROWS[0], 10) == (
        "epoch 1 of 10: loss 0.9000, accuracy 0.7000, val_loss 0.8000, val_accuracy 0.7500, "
        "2,500 images/s, input wait 1.1%"
    )
    assert "val_" not in tracking.epoch_line(ROWS[1])


def test_tensorboard_events_hold_each_epoch(tmp_path):
    from pipeline.tf_import import import_tensorflow

    tf = import_tensorflow()
    writer = tracking.TensorBoardWriter(tmp_path)
    for row in ROWS:
        writer.log_epoch(row)
    writer.close()

    def scalars(folder: Path) -> dict[tuple[str, int], float]:
        found = {}
        for events in folder.glob("events.out.tfevents.*"):
            for event in tf.compat.v1.train.summary_iterator(str(events)):
                for value in event.summary.value:
                    found[(value.tag, event.step)] = float(tf.make_ndarray(value.tensor))
        return found

    train, validation = scalars(tmp_path / "train"), scalars(tmp_path / "validation")
    assert train[("epoch_loss", 2)] == pytest.approx(0.5)
    assert train[("epoch_images_per_second", 1)] == pytest.approx(2500.0)
    assert validation == {("epoch_loss", 1): pytest.approx(0.8), ("epoch_accuracy", 1): pytest.approx(0.75)}


def test_mlflow_run_is_recorded_once_across_restarts(tmp_path):
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    params = {"model": "lenet", "augment": {"rotation_range": 10, "extras": []}}
    first = tracking.MlflowRecorder(uri, tmp_path / "artifacts", "run-a", params, run_key="key-a")
    first.log_epochs(ROWS[:1])
    # Killed, started again: the same MLflow run continues, and epoch 1 is not logged twice.
    again = tracking.MlflowRecorder(uri, tmp_path / "artifacts", "run-a", params, run_key="key-a")
    assert again.run_id == first.run_id
    again.log_epochs(ROWS)
    report = tmp_path / "summary.json"
    report.write_text("{}")
    again.finish({"test_accuracy": 0.91}, [report], None, step=2)

    client = MlflowClient(uri)
    run = client.get_run(first.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["augment.rotation_range"] == "10" and run.data.params["model"] == "lenet"
    losses = client.get_metric_history(first.run_id, "loss")
    assert [(m.step, m.value) for m in losses] == [(1, 0.9), (2, 0.5)]
    assert [m.step for m in client.get_metric_history(first.run_id, "val_loss")] == [1]
    assert client.get_metric_history(first.run_id, "test_accuracy")[0].value == 0.91
    assert [a.path for a in client.list_artifacts(first.run_id)] == ["summary.json"]

    other = tracking.MlflowRecorder(uri, tmp_path / "artifacts", "run-b", params, run_key="key-b")
    assert other.run_id != first.run_id
    tracking.end_abandoned_run(uri, "key-b")
    assert client.get_run(other.run_id).info.status == "KILLED"
    tracking.end_abandoned_run(uri, "key-a")  # a finished run stays finished
    assert client.get_run(first.run_id).info.status == "FINISHED"
    failed = tracking.MlflowRecorder(uri, tmp_path / "artifacts", "run-c", params, run_key="key-c")
    failed.fail()
    assert client.get_run(failed.run_id).info.status == "FAILED"


def test_confusion_matrix_counts_like_scikit_learn():
    rng = np.random.default_rng(3)
    y_true, y_pred = rng.integers(0, 7, 500), rng.integers(0, 7, 500)
    y_pred[:300] = y_true[:300]
    np.testing.assert_array_equal(
        tracking.confusion_matrix(y_true, y_pred, 7), sklearn_confusion(y_true, y_pred, labels=range(7))
    )


def test_confusion_picture_shades_the_diagonal_blue_and_confusions_red():
    matrix = np.array([[50, 0, 0], [0, 40, 10], [0, 0, 50]])
    image = tracking.render_confusion(matrix, ["cat", "dog", "horse"], "test set")
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
    assert 100 < image.shape[0] < 600 and 100 < image.shape[1] < 600
    # Sample each cell near its corner (away from the count's text).
    cell = int(np.clip(560 // 3, 28, 64))
    label_w, top = max(60, 9 * len("horse") + 16), 56

    def colour(r: int, c: int) -> np.ndarray:
        return image[top + r * cell + 3, label_w + c * cell + 3].astype(int)

    assert colour(0, 0)[2] > colour(0, 0)[0]  # a full diagonal cell: blue
    assert colour(1, 2)[0] > colour(1, 2)[2]  # a confusion: red
    assert (colour(0, 1) == 255).all()  # an empty cell: white


def test_flatten_names_nested_keys_with_dots():
    assert tracking.flatten({"a": {"b": 1, "c": {"d": 2}}, "e": {}, "f": [1]}) == {
        "a.b": 1, "a.c.d": 2, "e": {}, "f": [1],
    }  # fmt: skip
