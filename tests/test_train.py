"""Training runs: the batch feeder, the flow with its records (files, TensorBoard, Prefect artifacts,
MLflow), resume after SIGKILL, the on-device path, and the command line's expected mistakes."""

import csv
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from flows.cli import app
from pipeline import AugmentConfig, Augmenter
from pipeline.config import ConfigError, PrepareConfig, TrainConfig
from pipeline.errors import RunStateError
from pipeline.ingest import load_bundled_digits
from pipeline.prepare import prepare
from pipeline.tracking import EPOCH_COLUMNS, confusion_matrix
from pipeline.training import EarlyStopping, EpochMetrics, RunState, train
from pipeline.workers import BatchFeeder

REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()
DIGITS_AUG = AugmentConfig(rescale=1 / 255, rotation_range=10, width_shift_range=0.1, zoom_range=0.1)


@pytest.fixture(scope="module")
def digits_dataset(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("data") / "digits"
    prepare(PrepareConfig(source="digits", out=str(out)))
    return out


def _config(tmp: Path, dataset: Path, **overrides) -> TrainConfig:
    base = dict(
        dataset=str(dataset), model="shapes_net", epochs=1, batch_size=64, learning_rate=5e-3,
        augment=DIGITS_AUG, workers=0, runs_dir=str(tmp / "runs"), run_name="run", mlflow=False,
    )  # fmt: skip
    return TrainConfig(**{**base, **overrides})


# ---- the feeder ------------------------------------------------------------------------------------
def test_feeder_batches_are_the_same_bytes_with_worker_processes_and_cover_every_image():
    images, labels, _ = load_bundled_digits()
    augmenter = Augmenter(DIGITS_AUG, output_dtype=np.float32)
    with BatchFeeder(augmenter, images, labels, batch_size=100, workers=0) as inline:
        expected = list(inline.epoch(3, seed=7))
    with BatchFeeder(augmenter, images, labels, batch_size=100, workers=2, prefetch=3) as pool:
        got = list(pool.epoch(3, seed=7))
        again = list(pool.epoch(3, seed=7))
        other_epoch = next(pool.epoch(4, seed=7))
    assert len(got) == len(pool) == 18
    rows = np.concatenate([r for _, _, r in got])
    assert sorted(rows.tolist()) == list(range(len(images)))  # each image once per epoch
    for (xa, ya, ra), (xb, yb, rb), (xc, _, _) in zip(expected, got, again, strict=True):
        np.testing.assert_array_equal(ra, rb)
        np.testing.assert_array_equal(ya, labels[ra])
        np.testing.assert_array_equal(yb, ya)
        np.testing.assert_array_equal(xb, xa)
        np.testing.assert_array_equal(xc, xa)
    # Sample i is augmented by its key (seed, epoch, i), whichever batch it is in:
    first_x, _, first_rows = got[0]
    solo, _ = augmenter.augment_batch(images[first_rows[:5]], first_rows[:5], epoch=3, seed=7)
    np.testing.assert_array_equal(first_x[:5], solo)
    assert not np.array_equal(np.sort(other_epoch[2]), np.sort(first_rows))  # a new shuffle


def test_feeder_left_mid_epoch_serves_the_next_epoch_correctly():
    images, labels, _ = load_bundled_digits()
    augmenter = Augmenter(DIGITS_AUG, output_dtype=np.float32)
    with BatchFeeder(augmenter, images, labels, batch_size=50, workers=2, prefetch=4) as feeder:
        it = feeder.epoch(0, seed=1)
        next(it)
        it.close()  # waits for the batches still in flight
        x, _, rows = next(feeder.epoch(1, seed=1))
    np.testing.assert_array_equal(x, augmenter.augment_batch(images[rows], rows, epoch=1, seed=1)[0])


def test_feeder_rejects_mismatched_inputs():
    images, labels, _ = load_bundled_digits()
    with pytest.raises(ValueError, match="1797 images but 10 labels"):
        BatchFeeder(Augmenter(AugmentConfig()), images, labels[:10], batch_size=8, workers=0)


# ---- the flow and its records ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def flow_run(digits_dataset, tmp_path_factory, prefect_api):
    from flows.train import run_train

    tmp = tmp_path_factory.mktemp("flow")
    cfg = _config(tmp, digits_dataset, epochs=2, workers=2, max_train_samples=600, mlflow=True)
    epochs_seen: list[dict] = []
    result = run_train(cfg, on_epoch=epochs_seen.append)
    return cfg, result, epochs_seen


def test_flow_writes_metrics_files_and_the_test_report(flow_run):
    cfg, result, epochs_seen = flow_run
    assert result.run_dir == Path(cfg.runs_dir) / "run"
    with open(result.files["metrics"]) as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0]) == EPOCH_COLUMNS
    assert [int(r["epoch"]) for r in rows] == [1, 2] == [r["epoch"] for r in epochs_seen]
    for row in rows:
        assert 0 <= float(row["input_wait_fraction"]) < 1
        assert float(row["images_per_second"]) > 0
        assert 0 <= float(row["val_accuracy"]) <= 1
    summary = result.summary()
    assert summary["train_images"] == 600 and summary["epochs_run"] == 2
    assert summary["test_images"] > 100
    matrix = np.array(summary["confusion_matrix"])
    assert matrix.shape == (10, 10) and matrix.sum() == summary["test_images"]
    assert np.trace(matrix) / matrix.sum() == pytest.approx(summary["test_accuracy"], abs=1e-6)
    picture = cv2.imread(str(result.files["confusion_matrix"]))
    assert picture is not None and picture.shape[0] > 300
    import keras

    model = keras.models.load_model(result.model_path)
    assert model.count_params() == summary["parameters"]


def test_flow_writes_tensorboard_scalars(flow_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    _, result, _ = flow_run
    train_log = EventAccumulator(str(result.files["tensorboard"] / "train"), size_guidance={"tensors": 0})
    train_log.Reload()
    steps = [e.step for e in train_log.Tensors("epoch_loss")]
    assert steps == [1, 2]
    losses = [float(np.asarray(__import__("tensorflow").make_ndarray(e.tensor_proto))) for e in
              train_log.Tensors("epoch_loss")]  # fmt: skip
    assert losses == pytest.approx([r["loss"] for r in result.history], rel=1e-6)


def test_flow_publishes_prefect_artifacts(flow_run):
    cfg = flow_run[0]
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterKey,
        FlowRunFilter,
        TaskRunFilter,
    )
    from prefect.client.schemas.sorting import ArtifactSort

    with get_client(sync_client=True) as client:
        # Every field given: the embedded server rejects the client's explicit nulls for the others.
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["train-run", "train-run-summary"])),
            flow_run_filter=FlowRunFilter(),
            task_run_filter=TaskRunFilter(),
            limit=50,
            offset=0,
            sort=ArtifactSort.KEY_ASC,
        )
        # The session's API holds other tests' training runs too: keep this run's artifacts.
        ours = {
            run_id for run_id in {a.flow_run_id for a in found}
            if client.read_flow_run(run_id).parameters["config"]["runs_dir"] == cfg.runs_dir
        }  # fmt: skip
    artifacts = {a.key: a for a in found if a.flow_run_id in ours}
    assert set(artifacts) == {"train-run", "train-run-summary"}
    table = artifacts["train-run"].data
    table = json.loads(table) if isinstance(table, str) else table
    assert [row["epoch"] for row in table] == [1, 2]
    assert "test accuracy" in artifacts["train-run-summary"].data


def test_flow_records_the_run_in_mlflow(flow_run):
    from mlflow.tracking import MlflowClient

    cfg, result, _ = flow_run
    client = MlflowClient(f"sqlite:///{(Path(cfg.runs_dir) / 'mlflow.db').resolve()}")
    run = client.get_run(result.mlflow_run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["model"] == "shapes_net" and run.data.params["augment.rotation_range"] == "10.0"
    history = client.get_metric_history(run.info.run_id, "val_accuracy")
    assert [m.step for m in history] == [1, 2]
    assert run.data.metrics["test_accuracy"] == pytest.approx(result.test_accuracy)
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"metrics.csv", "summary.json", "confusion_matrix.png", "model"} <= artifacts
    assert [a.path for a in client.list_artifacts(run.info.run_id, "model")] == ["model/model.keras"]


# ---- resume -----------------------------------------------------------------------------------------
_TRAIN_SCRIPT = textwrap.dedent(
    """
    import json, sys
    from pipeline.config import TrainConfig
    from pipeline.training import train
    cfg = TrainConfig(**json.loads(sys.argv[1]))
    result = train(cfg)
    print(json.dumps({"resumed": result.resumed_after_epoch}))
    """
)


def _train_in_subprocess(cfg: TrainConfig, log: Path) -> subprocess.Popen:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(REPO)}
    with open(log, "w") as f:
        return subprocess.Popen(
            [sys.executable, "-c", _TRAIN_SCRIPT, cfg.model_dump_json()],
            env=env, stdout=subprocess.DEVNULL, stderr=f,
        )  # fmt: skip


def test_a_killed_run_resumes_from_its_checkpoint_and_follows_the_uninterrupted_run(digits_dataset, tmp_path):
    options = dict(epochs=4, max_train_samples=1000, run_name="killed")
    cfg = _config(tmp_path, digits_dataset, **options)
    proc = _train_in_subprocess(cfg, tmp_path / "killed.log")
    state = Path(cfg.runs_dir) / "killed" / "checkpoints" / "state.json"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        if state.exists() and json.loads(state.read_text())["epochs_done"] >= 2:
            break
        time.sleep(0.05)
    log = (tmp_path / "killed.log").read_text()
    assert proc.poll() is None, f"the run ended before it could be killed: {log[-2000:]}"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = json.loads(state.read_text())["epochs_done"]
    assert 2 <= done < 4
    assert not (Path(cfg.runs_dir) / "killed" / "summary.json").exists()

    resumed = train(cfg)
    assert resumed.resumed_after_epoch == done
    uninterrupted = train(_config(tmp_path, digits_dataset, **{**options, "run_name": "whole"}))
    assert [r["epoch"] for r in resumed.history] == [1, 2, 3, 4]
    for a, b in zip(resumed.history, uninterrupted.history, strict=True):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-4)
        assert a["val_loss"] == pytest.approx(b["val_loss"], rel=1e-4)
    assert resumed.test_accuracy == pytest.approx(uninterrupted.test_accuracy, abs=1e-6)
    with pytest.raises(RunStateError, match="has finished"):
        train(cfg)
    with pytest.raises(RunStateError, match="another configuration"):
        train(cfg.model_copy(update={"learning_rate": 1e-2, "epochs": 6}))


def test_a_run_of_a_source_resumes_whether_the_source_or_its_prepared_folder_is_named(tmp_path):
    """The command line checks a run under the source's name (``digits``); the flow trains on the
    folder the source was prepared into: both name the same run."""
    from pipeline.training import resolve_dataset, resume_state

    source = _config(tmp_path, "digits", max_train_samples=128, augment=AugmentConfig(rescale=1 / 255))
    folder = resolve_dataset(source)
    first = train(source.model_copy(update={"dataset": str(folder)}))
    more = source.model_copy(update={"epochs": 2})
    assert resume_state(more, first.run_dir).epochs_done == 1
    absolute = more.model_copy(update={"dataset": str(folder.resolve())})
    assert resume_state(absolute, first.run_dir).epochs_done == 1
    with pytest.raises(RunStateError, match="another configuration"):
        resume_state(more.model_copy(update={"dataset": "photos"}), first.run_dir)


# ---- options ---------------------------------------------------------------------------------------
def test_on_device_augmentation_trains_and_reports(digits_dataset, tmp_path):
    augment = AugmentConfig(rescale=1 / 255, rotation_range=15, featurewise_center=True)
    cfg = _config(tmp_path, digits_dataset, augment_on_device=True, max_train_samples=300, augment=augment)
    result = train(cfg)
    assert np.isfinite(result.history[0]["loss"]) and result.test_accuracy is not None


def test_device_path_refuses_options_it_cannot_apply():
    with pytest.raises(ConfigError, match="brightness_range"):
        TrainConfig(augment_on_device=True, augment=AugmentConfig(brightness_range=(0.5, 1.5)))


def test_config_mistakes_are_named():
    with pytest.raises(ConfigError, match="unknown model 'lenet'"):
        TrainConfig(model="lenet")
    with pytest.raises(ConfigError, match="fine_tune_epochs"):
        TrainConfig(model="mnist_convnet", fine_tune_epochs=2)
    with pytest.raises(ConfigError, match="run_name"):
        TrainConfig(run_name="../x")
    with pytest.raises(ConfigError, match="color_mode"):
        TrainConfig(dataset="photos/", prepare_options={"color_mode": "cmyk"})


def _epoch(epoch: int, loss: float, val_loss: float | None) -> EpochMetrics:
    val_accuracy = None if val_loss is None else 0.5
    return EpochMetrics(
        epoch=epoch,
        loss=loss,
        accuracy=0.5,
        val_loss=val_loss,
        val_accuracy=val_accuracy,
        learning_rate=1e-3,
        images_per_second=100.0,
        epoch_seconds=1.0,
        input_wait_fraction=0.1,
        phase="train",
    )


def test_early_stopping_counts_epochs_without_improvement():
    stopping = EarlyStopping(patience=2)
    for epoch, val in enumerate([1.0, 0.8, 0.9, 0.85], start=1):
        assert not stopping.stop
        stopping = stopping.update(_epoch(epoch, 0.0, val))
    assert (stopping.best, stopping.best_epoch, stopping.wait) == (0.8, 2, 2) and stopping.stop
    # Without validation the training loss is monitored; without patience a run never stops.
    stopping = EarlyStopping(patience=None)
    for epoch, loss in enumerate([1.0, 0.5, 0.7, 0.9, 1.1], start=1):
        stopping = stopping.update(_epoch(epoch, loss, None))
    assert (stopping.best_epoch, stopping.wait, stopping.stop) == (2, 3, False)


def test_the_run_state_records_early_stopping_and_resumes_it():
    state = RunState(config_digest="", run_key="")
    stopping = state.early_stopping(patience=1)
    for epoch, val in enumerate([0.5, 0.6], start=1):
        stopping = stopping.update(_epoch(epoch, 0.0, val))
        state = state.after_epoch(_epoch(epoch, 0.0, val).row(), stopping)
    assert [r["epoch"] for r in state.history] == [1, 2] and state.stopped_early
    assert (state.best, state.best_epoch, state.wait) == (0.5, 1, 1)
    assert state.early_stopping(patience=1) == stopping


def test_confusion_matrix_counts_pairs():
    matrix = confusion_matrix(np.array([0, 0, 1, 2, 2, 2]), np.array([0, 1, 1, 2, 0, 2]), 3)
    np.testing.assert_array_equal(matrix, [[1, 1, 0], [0, 1, 0], [1, 0, 2]])


# ---- the command line ----------------------------------------------------------------------------------
def test_cli_train_help_lists_the_options():
    out = runner.invoke(app, ["train", "--help"])
    assert out.exit_code == 0
    for option in ("--model", "--epochs", "--augment", "--run-name", "--augment-on-device", "--mlflow-uri"):
        assert option in out.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["no/such/folder"], "source not found: no/such/folder"),
        (["digits", "--model", "nope"], "unknown model 'nope'"),
        (["digits", "--augment", "missing.yaml"], "config file not found: missing.yaml"),
    ],
)
def test_cli_train_expected_mistakes_are_one_clear_line(args, message, tmp_path):
    out = runner.invoke(app, ["train", *args, "--runs-dir", str(tmp_path)])
    assert out.exit_code == 2
    assert message in out.output and "Traceback" not in out.output


def test_mixed_precision_keeps_the_softmax_in_float32(digits_dataset, tmp_path):
    import keras

    cfg = _config(tmp_path, digits_dataset, mixed_precision=True, max_train_samples=256)
    result = train(cfg)
    model = keras.models.load_model(result.model_path, compile=False)  # its optimizer scales the loss
    assert model.layers[1].dtype_policy.name == "mixed_float16"
    assert model.output.dtype == "float32" and np.isfinite(result.history[0]["loss"])
    assert keras.mixed_precision.global_policy().name == "float32"  # restored after the run


def test_xception_trains_frozen_then_fine_tunes_everything(photo_batch_u8, tmp_path):
    import keras

    from pipeline.training import Split, TrainData

    images = np.stack([cv2.resize(im, (71, 71), interpolation=cv2.INTER_AREA) for im in photo_batch_u8])
    images = np.concatenate([images, images[:, ::-1]])  # 12 photos, 2 classes
    labels = np.array([0, 1] * 6)
    data = TrainData(Split(images, labels), None, Split(images[:4], labels[:4]), ["a", "b"], "photos")
    cfg = _config(tmp_path, "photos", model="xception_transfer", epochs=1, fine_tune_epochs=1,
                  batch_size=6, augment=AugmentConfig(rescale=1 / 255))  # fmt: skip
    result = train(cfg, data=data)
    assert [r["phase"] for r in result.history] == ["train", "fine_tune"]
    assert result.history[1]["learning_rate"] == pytest.approx(cfg.fine_tune_learning_rate)
    model = keras.models.load_model(result.model_path)
    assert model.get_layer("xception").trainable


_MIRRORED_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from pipeline.config import TrainConfig
    from pipeline.training import train
    out = {}
    for distribute in ("mirrored", "none"):
        cfg = TrainConfig(**{**json.loads(sys.argv[1]), "distribute": distribute, "run_name": distribute})
        result = train(cfg)
        out[distribute] = {"losses": [r["loss"] for r in result.history], "test": result.test_accuracy,
                           "confusion": sum(map(sum, result.confusion))}
    print(json.dumps(out))
    """
)


def test_mirrored_strategy_splits_each_batch_across_replicas_and_matches_one_device(digits_dataset, tmp_path):
    cfg = _config(tmp_path, digits_dataset, epochs=2, max_train_samples=512, workers=0)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", _MIRRORED_SCRIPT, cfg.model_dump_json()], env=env,
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    mirrored, single = out["mirrored"], out["none"]
    assert mirrored["losses"] == pytest.approx(single["losses"], rel=1e-3)
    assert mirrored["test"] == pytest.approx(single["test"], abs=0.02)
    assert mirrored["confusion"] == single["confusion"]  # predictions concatenate back, one per image


def test_cli_train_reads_a_config_file_that_options_override(digits_dataset, tmp_path):
    config = tmp_path / "train.yaml"
    config.write_text(
        f"train:\n  dataset: {digits_dataset}\n  model: shapes_net\n  epochs: 3\n  workers: 0\n"
        f"  max_train_samples: 128\n  mlflow: false\n  runs_dir: {tmp_path / 'runs'}\n  run_name: from-yaml\n"
    )
    out = runner.invoke(app, ["train", "--config", str(config), "--epochs", "1"])
    assert out.exit_code == 0, out.output
    summary = json.loads((tmp_path / "runs" / "from-yaml" / "summary.json").read_text())
    assert summary["epochs_run"] == 1 and summary["train_images"] == 128  # the option beat the file
    assert summary["dataset"].startswith(str(digits_dataset))
