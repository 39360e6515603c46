"""Training runs: a registered convnet trained on augmented batches, with every epoch recorded.

>>> result = train(TrainConfig(dataset="prepared/digits", model="shapes_net", epochs=5))
>>> result.test_accuracy, result.run_dir

A run lives in ``<runs_dir>/<run_name>/``: ``config.yaml``, ``checkpoints/`` (``state.json`` and
the last and the best epoch's ``epoch-NNNN.keras``), ``metrics.csv``, ``tensorboard/``, and at the end
``model.keras``, ``checkpoints/best.keras``, ``summary.json`` and ``confusion_matrix.png``. Started
again with the same ``run_name``, a run that was killed resumes after its last checkpoint, or only
finishes its reports when it was killed after its last epoch. With the same seed it then follows the
uninterrupted run: batch order and augmentation depend only on (seed, epoch, index), and each
checkpoint keeps the state of every random generator the model draws from (Dropout's).

Every file goes through :func:`~pipeline.io.write_atomic`, and ``state.json`` is written last at
each step: the checkpoint it names, the epochs it lists and the MLflow run it keys move together.
"""

from __future__ import annotations

import hashlib
import json
import math
import secrets
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from pipeline import tracking
from pipeline.augment import Augmenter
from pipeline.config import AugmentConfig, PrepareConfig, TrainConfig
from pipeline.errors import DataError, RunStateError
from pipeline.functional import normalize
from pipeline.io import png_bytes, write_atomic
from pipeline.store import current_version
from pipeline.workers import BatchFeeder

CHECKPOINTS = "checkpoints"  # the run's folder of epoch checkpoints and its state record
STATE = "state.json"

# Fields that may change between a killed run and its resumption without changing what is trained.
_RESUMABLE = {
    "epochs",
    "resume",
    "workers",
    "prefetch",
    "distribute",
    "tensorboard",
    "mlflow",
    "mlflow_tracking_uri",
}


@dataclass
class Split:
    images: Any  # (N, H, W, C) uint8, indexable by row arrays (ndarray, memmap or ShardedImages)
    labels: np.ndarray  # (N,) int class indices

    def __len__(self) -> int:
        return len(self.labels)


@dataclass
class TrainData:
    train: Split
    validation: Split | None
    test: Split | None
    classes: list[str]
    source: str

    @property
    def image_shape(self) -> tuple[int, ...]:
        return tuple(np.asarray(self.train.images[np.arange(1)]).shape[1:])


@dataclass
class TrainResult:
    run_dir: Path
    model_path: Path
    history: list[dict[str, Any]]
    test_loss: float | None
    test_accuracy: float | None
    confusion: list[list[int]] | None
    files: dict[str, Path] = field(default_factory=dict)
    resumed_after_epoch: int | None = None
    stopped_early: bool = False
    mlflow_run_id: str | None = None

    def summary(self) -> dict[str, Any]:
        return json.loads((self.run_dir / "summary.json").read_text())


@dataclass
class RunState:
    """A run's record, ``checkpoints/state.json``: written last at every step, so that a kill at any
    point leaves the previous record whole, with the checkpoint it names."""

    config_digest: str
    run_key: str  # the run's MLflow run carries it as a tag: a restart finds that run again
    epochs_done: int = 0
    checkpoint: str | None = None  # the file in checkpoints/ that holds epoch ``epochs_done``
    # What a .keras file leaves out: the states of the model's seed generators (Dropout's), in the
    # order of model.variables, and of Keras's global one once something has drawn from it.
    seed_states: list[list[int]] = field(default_factory=list)
    global_seed_state: list[int] | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    best: float | None = None
    best_epoch: int | None = None
    wait: int = 0
    stopped_early: bool = False
    finished: bool = False  # model, reports and MLflow written: nothing left to do


# ---- data -----------------------------------------------------------------------------------------
def dataset_folder(cfg: TrainConfig) -> Path:
    """Where ``cfg.dataset`` is prepared: the folder itself when it is a prepared dataset, else the
    folder under runs_dir that :func:`resolve_dataset` prepares the source into (nothing is read)."""
    path = Path(cfg.dataset)
    if current_version(path) is not None:
        return path
    slug = hashlib.blake2b(cfg.dataset.encode(), digest_size=4).hexdigest()
    name = "".join(c if c.isalnum() else "-" for c in path.name or cfg.dataset).strip("-")
    return Path(cfg.runs_dir) / "datasets" / f"{name}-{slug}"


def resolve_dataset(cfg: TrainConfig) -> Path:
    """The prepared dataset folder of ``cfg.dataset``, preparing a source under runs_dir first."""
    from pipeline.prepare import prepare

    out = dataset_folder(cfg)
    if out != Path(cfg.dataset):
        prepare(PrepareConfig(source=cfg.dataset, out=str(out), **cfg.prepare_options))
    return out


def load_data(cfg: TrainConfig) -> TrainData:
    """The splits of ``cfg.dataset``: a prepared dataset, or a source prepared first under runs_dir."""
    from pipeline.dataset import PreparedDataset

    path = resolve_dataset(cfg)
    ds = PreparedDataset(path)
    labels = {s: ds.labels(s) for s in ds.splits}
    if any(v.ndim != 1 for v in labels.values()):
        raise DataError(
            f"{cfg.dataset} has multi-label images; the models end in a softmax and train on one label "
            "per image"
        )
    splits = {s: Split(ds.images(s), labels[s].astype(np.int64)) for s in ds.splits}
    return TrainData(
        train=splits["train"],
        validation=splits.get("validation"),
        test=splits.get("test"),
        classes=list(ds.classes),
        source=str(ds.dir),
    )


# ---- the run --------------------------------------------------------------------------------------
def train(
    cfg: TrainConfig,
    data: TrainData | None = None,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
    on_step: Callable[[int, int], None] | None = None,
) -> TrainResult:
    """Train ``cfg.model`` on ``data`` (default: :func:`load_data`), checkpointing every epoch.

    on_epoch: called with each epoch's metrics row. on_step: called as (step, steps in the epoch).
    """
    from pipeline.tf_import import import_tensorflow

    tf = import_tensorflow()
    import keras

    run_dir = Path(cfg.runs_dir) / (cfg.run_name or _new_run_name(cfg))
    state = resume_state(cfg, run_dir)
    # A start killed before its first checkpoint, now started afresh with another configuration.
    abandoned = read_state(run_dir) if state is None else None
    data = data if data is not None else load_data(cfg)
    if cfg.max_train_samples is not None and cfg.max_train_samples < len(data.train):
        keep = np.arange(cfg.max_train_samples)  # a prefix: the same subset on every (re)start
        data = replace(data, train=Split(data.train.images[keep], data.train.labels[keep]))
    num_classes = len(data.classes)
    for name, split in (("train", data.train), ("validation", data.validation), ("test", data.test)):
        if split is not None and len(split) and (split.labels.min() < 0 or split.labels.max() >= num_classes):
            raise DataError(f"{name} labels must be class indices 0..{num_classes - 1}")

    for folder in (run_dir / CHECKPOINTS, run_dir / "tensorboard"):
        folder.mkdir(parents=True, exist_ok=True)
    config_yaml = yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)
    write_atomic(run_dir / "config.yaml", config_yaml.encode())
    if state is None:
        # Recorded before the MLflow run exists: a restart finds that run again by this key.
        state = RunState(config_digest=_digest(cfg), run_key=secrets.token_hex(8))
        _write_state(run_dir, state)

    keras.utils.set_random_seed(cfg.seed)
    if cfg.deterministic:
        tf.config.experimental.enable_op_determinism()
    previous_policy = keras.mixed_precision.global_policy()
    if cfg.mixed_precision:
        keras.mixed_precision.set_global_policy("mixed_float16")
    strategy = _strategy(tf, cfg.distribute)
    augmenter = Augmenter(cfg.augment, output_dtype=np.float32)
    if cfg.augment.needs_fit:
        augmenter.fit(_fit_sample(data.train.images, cfg.seed))
    device = _DeviceStep(augmenter, data.image_shape) if cfg.augment_on_device else None
    # On the device path the workers only gather uint8 batches; the warp and the normalisation
    # then run in TensorFlow, where the model is.
    feeder_augmenter = Augmenter(AugmentConfig(), output_dtype=np.uint8) if device else augmenter
    board = None
    mlflow_recorder = None
    steps = math.ceil(len(data.train) / cfg.batch_size)
    try:
        with strategy.scope():
            if state.checkpoint is None:
                model = _build(cfg, data.image_shape, num_classes)
                _compile(keras, model, cfg, steps, phase="train")
            else:
                model = keras.models.load_model(run_dir / CHECKPOINTS / state.checkpoint)
                restore_seed_states(model, state)
        if cfg.tensorboard:
            board = tracking.TensorBoardWriter(run_dir / "tensorboard")
        if cfg.mlflow and tracking.mlflow_available():
            default_uri = f"sqlite:///{(Path(cfg.runs_dir) / 'mlflow.db').resolve()}"
            tracking_uri = cfg.mlflow_tracking_uri or default_uri
            if abandoned is not None:
                tracking.end_abandoned_run(tracking_uri, abandoned.run_key)
            mlflow_recorder = tracking.MlflowRecorder(
                tracking_uri,
                Path(cfg.runs_dir) / "mlartifacts",
                run_dir.name,
                cfg.model_dump(mode="json"),
                run_key=state.run_key,
            )
            mlflow_recorder.log_epochs(state.history)  # epochs a kill kept from MLflow
        resumed_after = state.epochs_done or None
        if strategy.num_replicas_in_sync > 1:
            # Keras builds its loss and metrics from a plain batch on first use; the per-replica
            # batches of the loop cannot do it, so one evaluation (no weight changes) does.
            rows = np.arange(min(len(data.train), cfg.batch_size))
            x = augmenter.standardize_batch(np.asarray(data.train.images[rows]))
            model.evaluate(x, data.train.labels[rows], batch_size=len(rows), verbose=0)
        with BatchFeeder(
            feeder_augmenter, data.train.images, data.train.labels, cfg.batch_size, cfg.workers, cfg.prefetch
        ) as feeder:
            for epoch in range(state.epochs_done, cfg.total_epochs):
                if state.stopped_early:
                    break
                phase = "train" if epoch < cfg.epochs else "fine_tune"
                if phase == "fine_tune" and epoch == cfg.epochs:
                    with strategy.scope():
                        import models

                        models.set_base_trainable(model, True)
                        _compile(keras, model, cfg, steps, phase="fine_tune")
                row = _train_epoch(model, feeder, epoch, cfg, on_step, device)
                row["phase"] = phase
                if data.validation is not None and len(data.validation):
                    row["val_loss"], row["val_accuracy"] = evaluate(
                        model, data.validation, augmenter, cfg.batch_size
                    )
                state.history.append(row)
                _early_stopping(state, row, cfg)
                _checkpoint(model, state, run_dir)
                if board is not None:
                    board.log_epoch(row)
                if mlflow_recorder is not None:
                    mlflow_recorder.log_epochs(state.history)
                tracking.write_csv(state.history, run_dir / "metrics.csv")
                if on_epoch is not None:
                    on_epoch(row)
        return _finish(cfg, run_dir, model, data, augmenter, state, resumed_after, mlflow_recorder)
    except BaseException:
        if mlflow_recorder is not None:
            mlflow_recorder.fail()
        raise
    finally:
        if board is not None:
            board.close()
        keras.mixed_precision.set_global_policy(previous_policy)


def _train_epoch(
    model: Any,
    feeder: BatchFeeder,
    epoch: int,
    cfg: TrainConfig,
    on_step: Callable[[int, int], None] | None,
    device: _DeviceStep | None = None,
) -> dict[str, Any]:
    """One pass over the training batches; the time blocked on the next batch is the input wait."""
    waited = busy = 0.0
    loss_sum = acc_sum = 0.0
    seen = 0
    batches: Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]] = feeder.epoch(epoch, cfg.seed)
    start = time.perf_counter()
    for step in range(len(feeder)):
        t0 = time.perf_counter()
        x, y, rows = next(batches)
        t1 = time.perf_counter()
        if device is not None:
            x = device(x, rows, epoch, cfg.seed)
        logs = model.train_on_batch(*_on_replicas(model.distribute_strategy, x, y), return_dict=True)
        t2 = time.perf_counter()
        waited += t1 - t0
        busy += t2 - t1
        loss_sum += float(logs["loss"]) * len(y)
        acc_sum += float(logs["accuracy"]) * len(y)
        seen += len(y)
        if on_step is not None:
            on_step(step + 1, len(feeder))
    seconds = time.perf_counter() - start
    return {
        "epoch": epoch + 1,
        "loss": loss_sum / seen,
        "accuracy": acc_sum / seen,
        "val_loss": None,
        "val_accuracy": None,
        "learning_rate": float(np.asarray(model.optimizer.learning_rate)),
        "images_per_second": seen / seconds,
        "epoch_seconds": seconds,
        "input_wait_fraction": waited / max(waited + busy, 1e-12),
    }


def evaluate(
    model: Any,
    split: Split,
    augmenter: Augmenter,
    batch_size: int,
    predictions: list[np.ndarray] | None = None,
) -> tuple[float, float]:
    """Loss and accuracy over ``split``, normalised as training batches are but not augmented."""
    loss_sum = acc_sum = 0.0
    for start in range(0, len(split), batch_size):
        rows = np.arange(start, min(start + batch_size, len(split)))
        x = augmenter.standardize_batch(np.asarray(split.images[rows]))
        y = split.labels[rows]
        x, y = _on_replicas(model.distribute_strategy, x, y)
        logs = model.test_on_batch(x, y, return_dict=True)
        loss_sum += float(logs["loss"]) * len(rows)
        acc_sum += float(logs["accuracy"]) * len(rows)
        if predictions is not None:
            predictions.append(np.asarray(model.predict_on_batch(x)).argmax(axis=-1))
    return loss_sum / len(split), acc_sum / len(split)


def _early_stopping(state: RunState, row: dict[str, Any], cfg: TrainConfig) -> None:
    monitored = row["val_loss"] if row["val_loss"] is not None else row["loss"]
    if state.best is None or monitored < state.best:
        state.best, state.best_epoch, state.wait = monitored, row["epoch"], 0
    else:
        state.wait += 1
    patience = cfg.early_stopping_patience
    state.stopped_early = patience is not None and state.wait >= patience


def _checkpoint(model: Any, state: RunState, run_dir: Path) -> None:
    """Save the epoch's model (with its optimizer's state) under a name of its own, then commit it by
    writing the run's state, which names it: a kill before that resumes from the previous epoch's
    checkpoint, which is still there. Only the last and the best epoch's files are kept."""
    folder = run_dir / CHECKPOINTS
    epoch = state.history[-1]["epoch"]
    write_atomic(folder / _checkpoint_name(epoch), model.save)
    state.epochs_done, state.checkpoint, state.finished = epoch, _checkpoint_name(epoch), False
    state.seed_states, state.global_seed_state = seed_states(model)
    _write_state(run_dir, state)
    _remove_stale_checkpoints(run_dir, state)


def _remove_stale_checkpoints(run_dir: Path, state: RunState) -> None:
    """Every epoch file but the last and the best epoch's: earlier ones, and one a kill left
    uncommitted."""
    keep = {state.checkpoint, _checkpoint_name(state.best_epoch)}
    for stale in (run_dir / CHECKPOINTS).glob("epoch-*.keras"):
        if stale.name not in keep:
            stale.unlink(missing_ok=True)


def _checkpoint_name(epoch: int | None) -> str:
    return f"epoch-{epoch or 0:04d}.keras"


def seed_states(model: Any) -> tuple[list[list[int]], list[int] | None]:
    """The states of the random generators ``model`` draws from, which its .keras file leaves out:
    every layer's ``SeedGenerator`` (Dropout's, the noise and random-augmentation layers'), in the
    order of ``model.variables``, and Keras's global one when something has drawn from it."""
    from keras.src.backend.common import global_state  # no public accessor for the global one
    from keras.src.random.seed_generator import GLOBAL_SEED_GENERATOR

    saved = {id(v) for v in model.weights}  # what model.save writes
    layers = [np.asarray(v).tolist() for v in model.variables if id(v) not in saved]
    generator = global_state.get_global_attribute(GLOBAL_SEED_GENERATOR)
    return layers, None if generator is None else np.asarray(generator.state).tolist()


def restore_seed_states(model: Any, state: RunState) -> None:
    """Set the random generators of a model loaded from its checkpoint as :func:`seed_states` found
    them, so that Dropout draws the masks the uninterrupted run draws."""
    from keras.src.random.seed_generator import global_seed_generator

    saved = {id(v) for v in model.weights}
    variables = [v for v in model.variables if id(v) not in saved]
    if len(variables) != len(state.seed_states):
        raise RunStateError(
            f"the checkpoint {state.checkpoint} has {len(variables)} random generators but its state "
            f"records {len(state.seed_states)}; it cannot be resumed as the same run"
        )
    for variable, value in zip(variables, state.seed_states, strict=True):
        variable.assign(np.asarray(value, dtype=variable.dtype))
    if state.global_seed_state is not None:
        generator = global_seed_generator()
        generator.state.assign(np.asarray(state.global_seed_state, dtype=generator.state.dtype))


def _finish(
    cfg: TrainConfig,
    run_dir: Path,
    model: Any,
    data: TrainData,
    augmenter: Augmenter,
    state: RunState,
    resumed_after: int | None,
    mlflow_recorder: tracking.MlflowRecorder | None,
) -> TrainResult:
    """The model, the test report, summary.json and MLflow's record; then the state says so. Killed
    before that, the next start does it all again (the same files, MLflow's record kept once)."""
    files: dict[str, Path] = {}
    model_path = write_atomic(run_dir / "model.keras", model.save)
    files["model"] = model_path
    checkpoints = run_dir / CHECKPOINTS
    best = checkpoints / _checkpoint_name(state.best_epoch)
    if state.best_epoch is not None and best.exists():
        files["best_model"] = write_atomic(checkpoints / "best.keras", lambda tmp: shutil.copyfile(best, tmp))
    tracking.write_csv(state.history, run_dir / "metrics.csv")  # a kill may have kept the last row out
    _remove_stale_checkpoints(run_dir, state)
    test_loss = test_accuracy = None
    confusion = None
    if data.test is not None and len(data.test):
        predicted: list[np.ndarray] = []
        test_loss, test_accuracy = evaluate(model, data.test, augmenter, cfg.batch_size, predicted)
        matrix = tracking.confusion_matrix(data.test.labels, np.concatenate(predicted), len(data.classes))
        confusion = matrix.tolist()
        title = f"{cfg.model} on {len(data.test)} test images: accuracy {test_accuracy:.2%}"
        picture = tracking.render_confusion(matrix, data.classes, title)
        files["confusion_matrix"] = write_atomic(run_dir / "confusion_matrix.png", png_bytes(picture))
    files["metrics"] = run_dir / "metrics.csv"
    files["tensorboard"] = run_dir / "tensorboard"
    history = state.history
    last = history[-1] if history else {}
    summary = {
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
        "test_loss": test_loss,
        "test_accuracy": test_accuracy,
        "confusion_matrix": confusion,
        "mean_images_per_second": float(np.mean([r["images_per_second"] for r in history])) if history else 0,
        "mean_input_wait_fraction": (
            float(np.mean([r["input_wait_fraction"] for r in history])) if history else 0
        ),
        "parameters": int(model.count_params()),
        "mlflow_run_id": mlflow_recorder.run_id if mlflow_recorder else None,
        "mlflow_tracking_uri": mlflow_recorder.tracking_uri if mlflow_recorder else None,
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        "config": cfg.model_dump(mode="json"),
    }
    _write_json(run_dir / "summary.json", summary)
    files["summary"] = run_dir / "summary.json"
    if mlflow_recorder is not None:
        final = {
            k: v for k, v in (("test_loss", test_loss), ("test_accuracy", test_accuracy)) if v is not None
        }
        reports = [files[k] for k in ("metrics", "summary", "confusion_matrix") if k in files]
        mlflow_recorder.finish(final, reports, model_path, step=state.epochs_done)
    state.finished = True
    _write_state(run_dir, state)
    return TrainResult(
        run_dir=run_dir,
        model_path=model_path,
        history=history,
        test_loss=test_loss,
        test_accuracy=test_accuracy,
        confusion=confusion,
        files=files,
        resumed_after_epoch=resumed_after,
        stopped_early=state.stopped_early,
        mlflow_run_id=summary["mlflow_run_id"],
    )


# ---- pieces ---------------------------------------------------------------------------------------
class _DeviceStep:
    """Warp (the affine options, on the accelerator) then normalise a uint8 batch in TensorFlow,
    with the same per-sample parameters as the OpenCV engine (pipeline.functional.tf_geometry)."""

    def __init__(self, augmenter: Augmenter, image_shape: tuple[int, ...]):
        import tensorflow as tf

        from pipeline.functional.tf_geometry import DeviceAugment

        config, stats = augmenter.config, augmenter.stats
        self.warp = DeviceAugment(config)
        self.image_shape = image_shape
        rescale = float(config.rescale or 0.0)
        mean = std = zca = None
        if stats is not None:
            mean = None if stats.mean is None or not config.featurewise_center else stats.mean
            std = None if stats.std is None or not config.featurewise_std_normalization else stats.std
            zca = (
                None
                if stats.zca_whitening_matrix is None or not config.zca_whitening
                else stats.zca_whitening_matrix
            )

        def normalise(x: Any) -> Any:  # normalize.standardize's order, on per-sample batches
            if rescale:
                x = x * rescale
            if config.samplewise_center:
                x = x - tf.reduce_mean(x, axis=[1, 2, 3], keepdims=True)
            if config.samplewise_std_normalization:
                x = x / (tf.math.reduce_std(x, axis=[1, 2, 3], keepdims=True) + normalize.EPS)
            if mean is not None:
                x = x - tf.constant(mean, tf.float32)
            if std is not None:
                x = x / (tf.constant(std, tf.float32) + normalize.EPS)
            if zca is not None:
                flat = tf.reshape(x, [tf.shape(x)[0], -1]) @ tf.constant(zca, tf.float32)
                x = tf.reshape(flat, tf.shape(x))
            return x

        self._step = tf.function(lambda x, t: normalise(self.warp(x, t)), reduce_retracing=True)

    def __call__(self, images: np.ndarray, rows: np.ndarray, epoch: int, seed: int) -> Any:
        transforms = self.warp.params_for(rows, epoch, seed, self.image_shape)
        return self._step(images, transforms)


def _build(cfg: TrainConfig, image_shape: tuple[int, ...], num_classes: int) -> Any:
    import keras

    import models

    model = models.build(cfg.model, image_shape, num_classes, **cfg.model_options)
    if cfg.fine_tune_epochs:
        models.set_base_trainable(model, False)
    if cfg.mixed_precision:
        # Softmax and loss in float32: in float16 they under- and overflow.
        outputs = keras.layers.Activation("linear", dtype="float32", name="float32_output")(model.output)
        model = keras.Model(model.inputs, outputs, name=model.name)
    return model


def _compile(keras: Any, model: Any, cfg: TrainConfig, steps_per_epoch: int, phase: str) -> None:
    lr: Any = cfg.learning_rate if phase == "train" else cfg.fine_tune_learning_rate
    epochs = cfg.epochs if phase == "train" else cfg.fine_tune_epochs
    if cfg.lr_schedule == "cosine":
        lr = keras.optimizers.schedules.CosineDecay(lr, decay_steps=max(1, epochs * steps_per_epoch))
    elif cfg.lr_schedule == "exponential":
        lr = keras.optimizers.schedules.ExponentialDecay(lr, steps_per_epoch, cfg.lr_decay_rate)
    optimizer = {
        "rmsprop": lambda: keras.optimizers.RMSprop(lr),
        "adam": lambda: keras.optimizers.Adam(lr),
        "adamw": lambda: keras.optimizers.AdamW(lr),
        "sgd": lambda: keras.optimizers.SGD(lr, momentum=0.9),
    }[cfg.optimizer]()
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", metrics=["accuracy"])


def _strategy(tf: Any, distribute: str) -> Any:
    """``auto``: every local GPU through MirroredStrategy when there are several, else the default
    device. ``mirrored``: MirroredStrategy even so (over the logical CPUs when there is no GPU)."""
    gpus = tf.config.list_physical_devices("GPU")
    if distribute == "mirrored" or (distribute == "auto" and len(gpus) > 1):
        devices = None if gpus else [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices=devices)
    return tf.distribute.get_strategy()


def _on_replicas(strategy: Any, *arrays: Any) -> tuple[Any, ...]:
    """Each replica its own consecutive slice of the batch (a plain array would be copied whole to
    every replica); predictions then concatenate back in the batch's order."""
    replicas = strategy.num_replicas_in_sync
    if replicas == 1:
        return arrays
    bounds = np.linspace(0, int(arrays[0].shape[0]), replicas + 1).astype(int)

    def shard(array: Any) -> Any:
        return strategy.experimental_distribute_values_from_function(
            lambda ctx: array[bounds[ctx.replica_id_in_sync_group] : bounds[ctx.replica_id_in_sync_group + 1]]
        )

    return tuple(shard(a) for a in arrays)


def _fit_sample(images: Any, seed: int, limit: int = 10_000) -> np.ndarray:
    """Featurewise statistics from up to ``limit`` training images (Keras fits on what it is given)."""
    n = len(images)
    rows = (
        np.arange(n) if n <= limit else np.sort(np.random.default_rng(seed).choice(n, limit, replace=False))
    )
    return np.asarray(images[rows])


def _digest(cfg: TrainConfig) -> str:
    kept = cfg.model_dump(mode="json", exclude=_RESUMABLE)
    # The folder trained on, however it was named: a source, or the folder it was prepared into
    # (the flow passes the latter), relative or absolute.
    kept["dataset"] = str(dataset_folder(cfg).resolve())
    return hashlib.sha256(json.dumps(kept, sort_keys=True).encode()).hexdigest()[:16]


def _new_run_name(cfg: TrainConfig) -> str:
    return f"{cfg.model}-{datetime.now(UTC).strftime('%Y%m%d-%H%M%S')}"


def resume_state(cfg: TrainConfig, run_dir: Path) -> RunState | None:
    """The record of an earlier start of the run in ``run_dir`` to continue, or None to start afresh.

    A start killed before its first checkpoint is continued, in its MLflow run, when its
    configuration was the same (and started afresh otherwise); one killed after its last epoch
    only finishes its reports.
    """
    state = read_state(run_dir)
    if state is None:
        if run_dir.exists() and any(run_dir.iterdir()) and (run_dir / "summary.json").exists():
            raise RunStateError(f"{run_dir} holds another run; choose another run_name")
        return None
    if state.checkpoint is None:  # nothing trained yet
        return state if cfg.resume and state.config_digest == _digest(cfg) else None
    if not cfg.resume:
        raise RunStateError(f"{run_dir} holds a run already; choose another run_name, or resume it")
    if state.config_digest != _digest(cfg):
        raise RunStateError(
            f"{run_dir} was started with another configuration (see its config.yaml); only "
            f"{', '.join(sorted(_RESUMABLE))} may change when a run is resumed"
        )
    if state.finished and (state.epochs_done >= cfg.total_epochs or state.stopped_early):
        raise RunStateError(
            f"{run_dir} has finished ({state.epochs_done} epochs"
            f"{', stopped early' if state.stopped_early else ''}); choose another run_name, or "
            "more epochs to continue it"
        )
    return state


def read_state(run_dir: Path) -> RunState | None:
    """The record in ``run_dir/checkpoints/state.json``, or None when there is none."""
    path = run_dir / CHECKPOINTS / STATE
    if not path.exists():
        return None
    try:
        return RunState(**json.loads(path.read_text()))
    except (TypeError, ValueError) as err:
        raise RunStateError(f"{path} is not a run record this augpipe can resume ({err})") from None


def _write_state(run_dir: Path, state: RunState) -> None:
    _write_json(run_dir / CHECKPOINTS / STATE, asdict(state))


def _write_json(path: Path, data: dict[str, Any]) -> None:
    write_atomic(path, json.dumps(data, indent=2, default=_jsonable).encode())


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def result_dict(result: TrainResult) -> dict[str, Any]:
    return {
        **asdict(result),
        "run_dir": str(result.run_dir),
        "model_path": str(result.model_path),
        "files": {k: str(v) for k, v in result.files.items()},
    }
