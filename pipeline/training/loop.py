"""The run: train a registered model epoch by epoch, checkpointing and recording each, then report."""

from __future__ import annotations

import math
import secrets
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from pipeline.augment import Augmenter
from pipeline.config import AugmentConfig, TrainConfig
from pipeline.io import write_atomic
from pipeline.tf_import import import_tensorflow
from pipeline.training.build import build_model, compile_model, loss_targets, start_fine_tuning
from pipeline.training.checkpoints import restore_seed_states, save_checkpoint
from pipeline.training.data import Split, TrainData, class_weights, fit_sample, load_data
from pipeline.training.distribute import check_gpus
from pipeline.training.distribute import strategy as make_strategy
from pipeline.training.layout import CHECKPOINTS, CONFIG, TENSORBOARD
from pipeline.training.recording import Recorders
from pipeline.training.report import finish
from pipeline.training.result import Phase, TrainResult
from pipeline.training.state import RunState, digest, read_state, resume_state, run_folder, write_state
from pipeline.training.steps import evaluate, train_epoch
from pipeline.workers import BatchFeeder

EpochCallback = Callable[[dict[str, Any]], None]
StepCallback = Callable[[int, int], None]


def train(
    cfg: TrainConfig,
    data: TrainData | None = None,
    on_epoch: EpochCallback | None = None,
    on_step: StepCallback | None = None,
) -> TrainResult:
    """Train ``cfg.model`` on ``data`` (default: :func:`load_data`), checkpointing every epoch.

    on_epoch: called with each epoch's metrics row. on_step: called as (step, steps in the epoch).
    """
    # Refusals first (a finished run, another run's folder, a missing dataset): before TensorFlow's
    # import, which takes seconds.
    run_dir = run_folder(cfg)
    state = resume_state(cfg, run_dir)
    # A start killed before its first checkpoint, now started afresh with another configuration.
    abandoned = read_state(run_dir) if state is None else None
    data = (data if data is not None else load_data(cfg)).limited(cfg.max_train_samples, cfg.seed)
    data.check_labels()
    weights = class_weights(cfg.class_weight, data)  # a class it names is checked here, before TensorFlow
    tf = import_tensorflow(cfg.gpus)
    check_gpus(tf, cfg.gpus)
    import keras

    state = _open_run_dir(cfg, run_dir, state)

    keras.utils.set_random_seed(cfg.seed)
    if cfg.deterministic:
        tf.config.experimental.enable_op_determinism()
    previous_policy = keras.mixed_precision.global_policy()
    if cfg.mixed_precision:
        keras.mixed_precision.set_global_policy("mixed_float16")
    strategy = make_strategy(tf, cfg.distribute)
    augmenter = Augmenter(cfg.augment, output_dtype=np.float32)
    if cfg.augment.needs_fit:
        augmenter.fit(fit_sample(data.train, cfg.seed))
    steps = math.ceil(len(data.train) / cfg.batch_size)
    recorders = Recorders()
    try:
        model = _model(cfg, run_dir, state, strategy, data, steps)
        recorders.open(cfg, run_dir, state, abandoned)
        resumed_after = state.epochs_done or None
        if strategy.num_replicas_in_sync > 1:
            _build_metrics(model, data.train, augmenter, cfg.batch_size)
        state = _run_epochs(
            cfg, run_dir, model, strategy, data, augmenter, weights, state, steps, recorders, on_epoch,
            on_step,
        )  # fmt: skip
        return finish(cfg, run_dir, model, data, augmenter, state, resumed_after, recorders.mlflow, weights)
    except BaseException:
        recorders.fail()
        raise
    finally:
        recorders.close()
        keras.mixed_precision.set_global_policy(previous_policy)


def _open_run_dir(cfg: TrainConfig, run_dir: Path, state: RunState | None) -> RunState:
    """The run's folders and config.yaml, and ``state``, or a fresh record written for this start."""
    for folder in (run_dir / CHECKPOINTS, run_dir / TENSORBOARD):
        folder.mkdir(parents=True, exist_ok=True)
    config_yaml = yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)
    write_atomic(run_dir / CONFIG, config_yaml.encode())
    if state is None:
        # Recorded before the MLflow run exists: a restart finds that run again by this key.
        state = RunState(config_digest=digest(cfg), run_key=secrets.token_hex(8))
        write_state(run_dir, state)
    return state


def _model(
    cfg: TrainConfig, run_dir: Path, state: RunState, strategy: Any, data: TrainData, steps: int
) -> Any:
    """A new compiled model, or the one of the state's checkpoint with its random generators."""
    import keras

    with strategy.scope():
        if state.checkpoint is None:
            model = build_model(cfg, data.image_shape, len(data.classes))
            compile_model(model, cfg, steps, phase="train")
        else:
            model = keras.models.load_model(run_dir / CHECKPOINTS / state.checkpoint)
            restore_seed_states(model, state)
    return model


def _build_metrics(model: Any, train: Split, augmenter: Augmenter, batch_size: int) -> None:
    """Keras builds its loss and metrics from a plain batch on first use; the per-replica batches of
    the loop cannot do it, so one evaluation (no weight changes) does."""
    rows = np.arange(min(len(train), batch_size))
    x = augmenter.standardize_batch(np.asarray(train.images[rows]))
    model.evaluate(x, loss_targets(model, train.labels[rows]), batch_size=len(rows), verbose=0)


def _run_epochs(
    cfg: TrainConfig,
    run_dir: Path,
    model: Any,
    strategy: Any,
    data: TrainData,
    augmenter: Augmenter,
    weights: np.ndarray | None,
    state: RunState,
    steps: int,
    recorders: Recorders,
    on_epoch: EpochCallback | None,
    on_step: StepCallback | None,
) -> RunState:
    """The epochs from the state's on, each committed by its checkpoint; returns the last state."""
    device = None
    if cfg.augment_on_device:
        from pipeline.device import DeviceStep  # imports TensorFlow, which train imported quietly

        device = DeviceStep(augmenter, data.image_shape)
    # On the device path the workers only gather uint8 batches; the warp and the normalisation
    # then run in TensorFlow, where the model is.
    feeder_augmenter = Augmenter(AugmentConfig(), output_dtype=np.uint8) if device else augmenter
    stopping = state.early_stopping(cfg.early_stopping_patience)
    train = data.train
    with BatchFeeder(
        feeder_augmenter, train.images, train.labels, cfg.batch_size, cfg.workers, cfg.prefetch
    ) as feeder:
        for epoch in range(state.epochs_done, cfg.total_epochs):
            if state.stopped_early:
                break
            phase: Phase = "train" if epoch < cfg.epochs else "fine_tune"
            if epoch == cfg.epochs:
                with strategy.scope():
                    start_fine_tuning(model, cfg, steps)
            metrics = train_epoch(model, feeder, epoch, cfg.seed, phase, on_step, device, weights)
            if data.validation is not None and len(data.validation):
                loss, accuracy = evaluate(model, data.validation, augmenter, cfg.batch_size)
                metrics = replace(metrics, val_loss=loss, val_accuracy=accuracy)
            stopping = stopping.update(metrics)
            row = metrics.row()
            state = save_checkpoint(model, state.after_epoch(row, stopping), run_dir, metrics.epoch)
            recorders.log(state.history, run_dir)
            if on_epoch is not None:
                on_epoch(row)
    return state
