"""Resume is the same run (issue 12): every random generator a model draws from is checkpointed, and a
training process killed at any of its atomic steps (AUGPIPE_TEST_DIE_AFTER_WRITES=N: the child
SIGKILLs itself right after its N-th write) resumes into the same losses, weights and MLflow run."""

import csv
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from pipeline import AugmentConfig
from pipeline.config import PrepareConfig, TrainConfig
from pipeline.errors import RunStateError
from pipeline.prepare import prepare
from pipeline.training import RunState, read_state, restore_seed_states, seed_states, train

REPO = Path(__file__).resolve().parents[2]
AUGMENT = AugmentConfig(rescale=1 / 255, rotation_range=10, width_shift_range=0.1)
# The smallest input each registered model accepts, so that building every one stays cheap.
SMALL_INPUTS = {
    "shapes_net": (8, 8, 1),
    "mnist_convnet": (18, 18, 1),
    "fashion_convnet": (8, 8, 1),
    "deep_convnet": (8, 8, 1),
    "lenet5": (28, 28, 1),
    "alexnet": (67, 67, 3),
    "resnet34": (16, 16, 3),
    "xception_transfer": (71, 71, 3),
}


@pytest.fixture(scope="module")
def digits(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("data") / "digits"
    prepare(PrepareConfig(source="digits", out=str(out)))
    return out


def _config(runs: Path, dataset: Path, **overrides) -> TrainConfig:
    """fashion_convnet (Dropout 0.4) on 512 digits, batch 16: a run of two epochs takes seconds."""
    base = dict(
        dataset=str(dataset), model="fashion_convnet", epochs=2, batch_size=16, seed=0, augment=AUGMENT,
        max_train_samples=512, workers=0, runs_dir=str(runs), run_name="run", mlflow=False,
    )  # fmt: skip
    return TrainConfig(**{**base, **overrides})


@pytest.fixture(scope="module")
def uninterrupted(digits, tmp_path_factory):
    """The two-epoch run every resumed run is compared with, and its final weights."""
    import keras

    result = train(_config(tmp_path_factory.mktemp("whole"), digits))
    weights = [np.asarray(w) for w in keras.models.load_model(result.model_path).weights]
    return result, weights


def _assert_same_run(result, uninterrupted) -> None:
    import keras

    reference, reference_weights = uninterrupted
    assert [r["epoch"] for r in result.history] == [r["epoch"] for r in reference.history]
    for got, expected in zip(result.history, reference.history, strict=True):
        assert got["loss"] == pytest.approx(expected["loss"], rel=1e-4, abs=1e-6)
        assert got["val_loss"] == pytest.approx(expected["val_loss"], rel=1e-4, abs=1e-6)
        assert got["accuracy"] == pytest.approx(expected["accuracy"], abs=1e-6)
    assert result.test_accuracy == pytest.approx(reference.test_accuracy, abs=1e-6)
    weights = keras.models.load_model(result.model_path).weights
    for got, expected in zip(weights, reference_weights, strict=True):
        np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-5, atol=1e-6)


# ---- what a checkpoint holds -----------------------------------------------------------------------
@pytest.mark.parametrize("name", list(SMALL_INPUTS))
def test_every_registered_model_checkpoints_every_random_generator(name):
    import keras

    import models

    assert set(SMALL_INPUTS) == set(models.names())
    keras.utils.set_random_seed(0)  # also clears Keras's global seed generator
    model = models.build(name, SMALL_INPUTS[name], 3)
    x = np.random.default_rng(0).random((2, *SMALL_INPUTS[name]), dtype=np.float32)
    model(x, training=True)  # every layer that draws draws once
    layers, global_state = seed_states(model)
    saved = {id(v) for v in model.weights}
    # Everything the model holds is in its .keras file (its weights) or in the recorded states.
    assert len(model.variables) == len(saved) + len(layers)
    dropouts = sum(isinstance(layer, keras.layers.Dropout) for layer in _all_layers(model))
    assert len(layers) == dropouts
    assert global_state is None  # no registered model draws from the unseeded global generator
    state = RunState(config_digest="", run_key="", seed_states=layers, global_seed_state=global_state)
    if layers:
        first = model(x, training=True)
        assert seed_states(model)[0] != layers  # each draw moves the generators on
        restore_seed_states(model, state)
        assert seed_states(model)[0] == layers
        np.testing.assert_array_equal(model(x, training=True), first)  # the same Dropout masks


def _all_layers(model):
    for layer in model.layers:
        yield layer
        yield from _all_layers(layer) if hasattr(layer, "layers") else ()


def test_the_global_seed_generator_is_recorded_once_something_draws_from_it():
    import keras

    keras.utils.set_random_seed(1)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2)])
    assert seed_states(model) == ([], None)
    keras.random.uniform((2,))  # no seed: Keras's global generator
    layers, global_state = seed_states(model)
    expected = np.asarray(keras.random.uniform((3,)))
    keras.random.uniform((5,))
    restore_seed_states(model, RunState("", "", seed_states=layers, global_seed_state=global_state))
    np.testing.assert_array_equal(np.asarray(keras.random.uniform((3,))), expected)


@pytest.mark.parametrize(
    ("optimizer", "mixed_precision"),
    [("rmsprop", False), ("adam", False), ("adamw", False), ("sgd", False), ("adam", True)],
)
def test_a_checkpoint_holds_the_whole_state_of_every_optimizer(optimizer, mixed_precision, tmp_path):
    """Keras's optimizers draw nothing: their state is their variables (slots, iteration count and,
    under mixed precision, the loss scale), and a .keras file holds all of them."""
    import keras

    from pipeline.training.build import build_model, compile_model

    x = np.random.default_rng(0).random((8, 8, 8, 1), dtype=np.float32)
    y = np.arange(8) % 3
    cfg = TrainConfig(model="fashion_convnet", optimizer=optimizer, mixed_precision=mixed_precision,
                      lr_schedule="cosine")  # fmt: skip
    try:
        keras.mixed_precision.set_global_policy("mixed_float16" if mixed_precision else "float32")
        model = build_model(cfg, (8, 8, 1), 3)
        compile_model(model, cfg, steps_per_epoch=4, phase="train")
        for _ in range(3):
            model.train_on_batch(x, y)
        model.save(tmp_path / "m.keras")
        loaded = keras.models.load_model(tmp_path / "m.keras")
    finally:
        keras.mixed_precision.set_global_policy("float32")
    before, after = model.optimizer.variables, loaded.optimizer.variables
    assert len(before) == len(after) > 0
    for a, b in zip(before, after, strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=a.path)


def test_a_dropout_model_continued_for_more_epochs_follows_the_uninterrupted_run(
    digits, tmp_path, uninterrupted
):
    """The issue's reproduction: one epoch, then the same run continued to two, in one MLflow run
    that holds both epochs and a test accuracy for each finish."""
    from mlflow.tracking import MlflowClient

    first = train(_config(tmp_path, digits, epochs=1, mlflow=True))
    assert len(first.history) == 1
    continued = train(_config(tmp_path, digits, mlflow=True))
    assert continued.resumed_after_epoch == 1
    _assert_same_run(continued, uninterrupted)
    [(run, steps)] = _mlflow_runs(tmp_path)
    assert run.info.run_id == first.mlflow_run_id == continued.mlflow_run_id
    assert run.info.status == "FINISHED" and steps == [1, 2]
    client = MlflowClient(continued.summary()["mlflow_tracking_uri"])
    tested = client.get_metric_history(run.info.run_id, "test_accuracy")
    expected = [(1, first.test_accuracy), (2, continued.test_accuracy)]
    assert sorted((m.step, m.value) for m in tested) == expected


# ---- kills at every kind of step -------------------------------------------------------------------
_TRAIN_SCRIPT = textwrap.dedent(
    """
    import json, sys
    from pipeline.config import TrainConfig
    from pipeline.training import train
    train(TrainConfig(**json.loads(sys.argv[1])))
    """
)


def _killed_at_write(cfg: TrainConfig, n: int, log: Path) -> None:
    """Train ``cfg`` in a child process that SIGKILLs itself right after its n-th atomic write."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(REPO),
           "AUGPIPE_TEST_DIE_AFTER_WRITES": str(n)}  # fmt: skip
    with open(log, "w") as err:
        proc = subprocess.run([sys.executable, "-c", _TRAIN_SCRIPT, cfg.model_dump_json()], env=env,
                              stdout=subprocess.DEVNULL, stderr=err, timeout=600)  # fmt: skip
    assert proc.returncode == -signal.SIGKILL, log.read_text()[-3000:]


def _mlflow_runs(runs: Path) -> list:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{(runs / 'mlflow.db').resolve()}")
    experiment = client.get_experiment_by_name("augpipe")
    found = client.search_runs([experiment.experiment_id]) if experiment else []
    return [(r, [m.step for m in client.get_metric_history(r.info.run_id, "loss")]) for r in found]


def _metrics_rows(run_dir: Path) -> int:
    with open(run_dir / "metrics.csv") as f:
        return len(list(csv.DictReader(f)))


@pytest.mark.slow
def test_a_run_killed_at_each_commit_step_resumes_as_the_same_run(digits, tmp_path, uninterrupted):
    """One run killed four times, each time in another window: the writes of a fresh start are
    config.yaml, state.json, then per epoch epoch-NNNN.keras, state.json, metrics.csv, and at the end
    model.keras, best.keras, metrics.csv, confusion_matrix.png, summary.json, state.json; a resumed
    start writes config.yaml first, then goes on where its state left off."""
    runs = tmp_path / "runs"
    cfg = _config(runs, digits, mlflow=True)
    run_dir = runs / "run"

    # 1. Epoch 1's checkpoint is written but not committed; the MLflow run exists.
    _killed_at_write(cfg, 3, tmp_path / "1.log")
    state = read_state(run_dir)
    assert state.epochs_done == 0 and state.checkpoint is None
    assert (run_dir / "checkpoints" / "epoch-0001.keras").exists()
    [(mlflow_run, steps)] = _mlflow_runs(runs)
    assert mlflow_run.info.status == "RUNNING" and steps == []

    # 2. Continued (same configuration, nothing committed yet): killed with epoch 2's checkpoint
    # written and not committed, the window that used to train an epoch twice.
    _killed_at_write(cfg, 5, tmp_path / "2.log")
    state = read_state(run_dir)
    assert state.epochs_done == 1 and state.checkpoint == "epoch-0001.keras"
    assert (run_dir / "checkpoints" / "epoch-0002.keras").exists()
    assert [(r.info.run_id, steps) for r, steps in _mlflow_runs(runs)] == [(mlflow_run.info.run_id, [1])]

    # 3. Resumed after epoch 1: killed right after the last epoch's commit, before MLflow and
    # metrics.csv heard of it and before any report.
    _killed_at_write(cfg, 3, tmp_path / "3.log")
    state = read_state(run_dir)
    assert state.epochs_done == 2 and not state.finished
    assert _metrics_rows(run_dir) == 1 and [steps for _, steps in _mlflow_runs(runs)] == [[1]]
    assert not (run_dir / "model.keras").exists() and not (run_dir / "summary.json").exists()

    # 4. Nothing left to train: the start only reports, and is killed after summary.json, before
    # MLflow's run is finished.
    _killed_at_write(cfg, 6, tmp_path / "4.log")
    assert (run_dir / "summary.json").exists() and not read_state(run_dir).finished
    [(r, steps)] = _mlflow_runs(runs)
    assert r.info.status == "RUNNING" and steps == [1, 2]

    # 5. The last start finishes: one MLflow run, each epoch and final metric recorded once.
    result = train(cfg)
    assert result.resumed_after_epoch == 2 and read_state(run_dir).finished
    _assert_same_run(result, uninterrupted)
    assert _metrics_rows(run_dir) == 2
    [(r, steps)] = _mlflow_runs(runs)
    assert r.info.run_id == result.mlflow_run_id == mlflow_run.info.run_id
    assert r.info.status == "FINISHED" and steps == [1, 2]
    from mlflow.tracking import MlflowClient

    client = MlflowClient(result.summary()["mlflow_tracking_uri"])
    assert len(client.get_metric_history(r.info.run_id, "test_accuracy")) == 1
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == sorted(
        {"best.keras", "state.json", "epoch-0002.keras", f"epoch-{result.summary()['best_epoch']:04d}.keras"}
    )
    assert not [p for p in run_dir.rglob(".*") if p.is_file()]  # no temporary file left
    with pytest.raises(RunStateError, match="has finished"):
        train(cfg)


@pytest.mark.slow
def test_a_run_killed_before_its_first_checkpoint_and_started_with_another_config_ends_its_mlflow_run(
    digits, tmp_path
):
    runs = tmp_path / "runs"
    cfg = _config(runs, digits, mlflow=True, epochs=1)
    _killed_at_write(cfg, 3, tmp_path / "killed.log")  # epoch 1 saved, not committed
    [(killed, _)] = _mlflow_runs(runs)
    result = train(cfg.model_copy(update={"learning_rate": 5e-4}))
    assert result.resumed_after_epoch is None
    statuses = {r.info.run_id: r.info.status for r, _ in _mlflow_runs(runs)}
    assert statuses == {killed.info.run_id: "KILLED", result.mlflow_run_id: "FINISHED"}
    assert "learning_rate: 0.0005" in (runs / "run" / "config.yaml").read_text()


# ---- a run of a source, killed and started again through each entry point ---------------------------
AUGPIPE = str(Path(sys.executable).parent / "augpipe")
EPOCHS = 6


@pytest.fixture(scope="module")
def digit_folders(tmp_path_factory) -> Path:
    """The 1,797 bundled digits as 28x28 PNGs in a folder per class: a source, not a prepared
    dataset, so each start prepares it into runs/datasets/ before training."""
    import cv2
    from sklearn.datasets import load_digits

    root = tmp_path_factory.mktemp("source") / "digits"
    digits = load_digits()
    for i, (image, label) in enumerate(zip(digits.images, digits.target, strict=True)):
        (root / str(label)).mkdir(parents=True, exist_ok=True)
        big = cv2.resize((image * 16).astype(np.uint8), (28, 28), interpolation=cv2.INTER_NEAREST)
        cv2.imwrite(str(root / str(label) / f"{i}.png"), big)
    return root


def _metrics_epochs(run_dir: Path) -> list[int]:
    if not (run_dir / "metrics.csv").exists():
        return []
    with open(run_dir / "metrics.csv") as f:
        return [int(row["epoch"]) for row in csv.DictReader(f)]


def _user_env(tmp_path: Path) -> dict[str, str]:
    """A user's shell: none of the Prefect or TensorFlow settings this test process holds, and a
    Prefect home of the test's own for a command that runs as flows."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "TF_CPP_"))}
    return {**env, "PYTHONPATH": str(REPO), "PREFECT_HOME": str(tmp_path / "prefect")}


def _start(command: list[str], cwd: Path, log: Path, env: dict[str, str]) -> subprocess.Popen:
    with open(log, "w") as out:  # the child keeps its own descriptor
        return subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=cwd, env=env,
                                start_new_session=True)  # fmt: skip


def _killed_after_an_epoch(
    command: list[str], run_dir: Path, cwd: Path, log: Path, env: dict[str, str]
) -> int:
    """Start ``command``, SIGKILL it (and the processes it started, in its session) once its
    metrics.csv shows a finished epoch; returns the epochs its checkpoint holds."""
    process = _start(command, cwd, log, env)
    try:
        deadline = time.monotonic() + 600  # a bound on a hang, not a measurement
        while not _metrics_epochs(run_dir):
            assert process.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, "no epoch finished in 600 s"
            time.sleep(0.02)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    state = read_state(run_dir)
    assert state is not None and not state.finished
    assert 1 <= state.epochs_done < EPOCHS, "the run ended before it was killed"
    return state.epochs_done


def _finished(command: list[str], cwd: Path, log: Path, env: dict[str, str]) -> str:
    """Run ``command`` to its end; its output."""
    process = _start(command, cwd, log, env)
    try:
        process.wait(timeout=600)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    output = log.read_text()
    assert process.returncode == 0, output[-3000:]
    return output


def _assert_resumed(run_dir: Path, killed_after: int) -> None:
    """One run of EPOCHS epochs: each recorded once, the epochs after the checkpoint trained again."""
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["resumed_after_epoch"] == killed_after
    assert summary["epochs_run"] == EPOCHS
    assert _metrics_epochs(run_dir) == list(range(1, EPOCHS + 1))
    assert read_state(run_dir).finished and (run_dir / "model.keras").exists()


@pytest.mark.slow
@pytest.mark.parametrize("flags", [[], ["--prefect"]], ids=["in-process", "as-flows"])
def test_the_same_command_resumes_a_run_of_a_source_killed_mid_training(digit_folders, tmp_path, flags):
    """The issue's case: `augpipe train SOURCE --run-name X`, SIGKILLed after an epoch and given again,
    continues from its checkpoint (it used to be refused as "started with another configuration")."""
    command = [AUGPIPE, "train", str(digit_folders), "--run-name", "run", "--runs-dir", "runs",
               "--model", "mnist_convnet", "--epochs", str(EPOCHS), "--batch-size", "16", "--no-mlflow",
               *flags]  # fmt: skip
    env = _user_env(tmp_path)
    run_dir = tmp_path / "runs" / "run"
    killed_after = _killed_after_an_epoch(command, run_dir, tmp_path, tmp_path / "killed.log", env)
    output = _finished(command, tmp_path, tmp_path / "resumed.log", env)
    assert f"run run: {EPOCHS} epochs" in output and "another configuration" not in output
    _assert_resumed(run_dir, killed_after)


@pytest.mark.slow
def test_a_run_of_a_source_killed_in_python_resumes_as_the_flow(digit_folders, tmp_path, prefect_api):
    """Started with pipeline.training.train, continued by the train-model flow (which prepares the
    source as a subflow and trains on the prepared folder): the same run."""
    from flows.train import as_result, train_model

    cfg = TrainConfig(dataset=str(digit_folders), model="mnist_convnet", epochs=EPOCHS, batch_size=16,
                      runs_dir=str(tmp_path / "runs"), run_name="run", mlflow=False)  # fmt: skip
    command = [sys.executable, "-c", _TRAIN_SCRIPT, cfg.model_dump_json()]
    run_dir = tmp_path / "runs" / "run"
    killed_after = _killed_after_an_epoch(
        command, run_dir, tmp_path, tmp_path / "killed.log", _user_env(tmp_path)
    )
    result = as_result(train_model(cfg))
    assert result.resumed_after_epoch == killed_after
    assert [row["epoch"] for row in result.history] == list(range(1, EPOCHS + 1))
    _assert_resumed(run_dir, killed_after)


@pytest.mark.slow
def test_a_run_of_a_source_killed_as_the_flow_resumes_in_python(digit_folders, tmp_path):
    """The other way round: started by `augpipe train --prefect`, continued by train(config)."""
    command = [AUGPIPE, "train", str(digit_folders), "--run-name", "run", "--runs-dir", "runs",
               "--model", "mnist_convnet", "--epochs", str(EPOCHS), "--batch-size", "16", "--no-mlflow",
               "--prefect"]  # fmt: skip
    run_dir = tmp_path / "runs" / "run"
    killed_after = _killed_after_an_epoch(
        command, run_dir, tmp_path, tmp_path / "killed.log", _user_env(tmp_path)
    )
    cfg = TrainConfig(dataset=str(digit_folders), model="mnist_convnet", epochs=EPOCHS, batch_size=16,
                      runs_dir=str(tmp_path / "runs"), run_name="run", mlflow=False)  # fmt: skip
    result = train(cfg)
    assert result.resumed_after_epoch == killed_after
    _assert_resumed(run_dir, killed_after)


def test_one_fingerprint_for_a_source_its_prepared_folder_and_any_spelling_of_their_paths(
    tmp_path, monkeypatch
):
    from pipeline.training import dataset_folder, resolve_dataset
    from pipeline.training.state import digest

    monkeypatch.chdir(tmp_path)
    source = TrainConfig(dataset="digits", prepare_options={"color_mode": "grayscale"}, runs_dir="runs",
                         run_name="run")  # fmt: skip
    resolve_dataset(source)
    folder = dataset_folder(source)
    assert folder.parent == Path("runs") / "datasets"
    same = [
        source.model_copy(update={"dataset": str(folder)}),  # what the flow trains on
        source.model_copy(update={"dataset": str(folder.resolve())}),
        source.model_copy(update={"runs_dir": str(tmp_path / "runs")}),
        source.model_copy(update={"epochs": 9, "workers": 0}),  # RESUMABLE
    ]
    assert [digest(cfg) for cfg in same] == [digest(source)] * len(same)
    other = [
        source.model_copy(update={"dataset": "photos"}),
        source.model_copy(update={"runs_dir": "elsewhere"}),
        source.model_copy(update={"learning_rate": 0.01}),
    ]
    assert digest(source) not in [digest(cfg) for cfg in other]
