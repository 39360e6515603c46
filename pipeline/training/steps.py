"""Passes over a split: one training epoch, and an evaluation."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from pipeline.augment import Augmenter
from pipeline.training.build import loss_targets
from pipeline.training.data import Split
from pipeline.training.distribute import on_replicas
from pipeline.training.result import EpochMetrics, Phase
from pipeline.workers import BatchFeeder

if TYPE_CHECKING:  # importing it imports TensorFlow, which the run imports first, quietly
    from pipeline.device import DeviceStep


class Evaluation(NamedTuple):
    loss: float
    accuracy: float


def train_epoch(
    model: Any,
    feeder: BatchFeeder,
    epoch: int,
    seed: int,
    phase: Phase,
    on_step: Callable[[int, int], None] | None,
    device: DeviceStep | None = None,
    class_weights: np.ndarray | None = None,
) -> EpochMetrics:
    """One pass over the training batches (epoch counted from 0), without validation; the time
    blocked on the next batch is the input wait.

    class_weights: a weight per class index, given to Keras as each sample's weight (what
    ``fit(class_weight=...)`` does): the loss and accuracy reported are weighted too, as in fit.
    """
    waited = busy = 0.0
    loss_sum = acc_sum = 0.0
    seen = 0
    batches = feeder.epoch(epoch, seed)
    start = time.perf_counter()
    for step in range(len(feeder)):
        t0 = time.perf_counter()
        x, y, rows = next(batches)
        t1 = time.perf_counter()
        if device is not None:
            x = device(x, rows, epoch, seed)
        targets = loss_targets(model, y)
        arrays = (x, targets) if class_weights is None else (x, targets, class_weights[y])
        logs = model.train_on_batch(*on_replicas(model.distribute_strategy, *arrays), return_dict=True)
        t2 = time.perf_counter()
        waited += t1 - t0
        busy += t2 - t1
        loss_sum += float(logs["loss"]) * len(y)
        acc_sum += float(logs["accuracy"]) * len(y)
        seen += len(y)
        if on_step is not None:
            on_step(step + 1, len(feeder))
    seconds = time.perf_counter() - start
    return EpochMetrics(
        epoch=epoch + 1,
        loss=loss_sum / seen,
        accuracy=acc_sum / seen,
        val_loss=None,
        val_accuracy=None,
        learning_rate=float(np.asarray(model.optimizer.learning_rate)),
        images_per_second=seen / seconds,
        epoch_seconds=seconds,
        input_wait_fraction=waited / max(waited + busy, 1e-12),
        phase=phase,
    )


def evaluate(
    model: Any,
    split: Split,
    augmenter: Augmenter,
    batch_size: int,
    predictions: list[np.ndarray] | None = None,
) -> Evaluation:
    """Loss and accuracy over ``split``, normalised as training batches are but not augmented;
    each batch's predicted classes are appended to ``predictions`` when it is given."""
    loss_sum = acc_sum = 0.0
    for start in range(0, len(split), batch_size):
        rows = np.arange(start, min(start + batch_size, len(split)))
        x = augmenter.standardize_batch(np.asarray(split.images[rows]))
        y = loss_targets(model, split.labels[rows])
        x, y = on_replicas(model.distribute_strategy, x, y)
        logs = model.test_on_batch(x, y, return_dict=True)
        loss_sum += float(logs["loss"]) * len(rows)
        acc_sum += float(logs["accuracy"]) * len(rows)
        if predictions is not None:
            predictions.append(np.asarray(model.predict_on_batch(x)).argmax(axis=-1))
    return Evaluation(loss_sum / len(split), acc_sum / len(split))
