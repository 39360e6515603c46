"""The model a run trains: built from the registry, compiled for its phase."""

from __future__ import annotations

from typing import Any

import numpy as np

from pipeline.config import TrainConfig
from pipeline.training.result import Phase


def build_model(cfg: TrainConfig, image_shape: tuple[int, ...], num_classes: int) -> Any:
    """``cfg.model`` for ``image_shape`` inputs, its base frozen when the run fine-tunes later."""
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


def compile_model(model: Any, cfg: TrainConfig, steps_per_epoch: int, phase: Phase) -> None:
    """A fresh optimizer with the phase's learning rate and schedule."""
    import keras

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
    # Keras 3's SparseCategoricalCrossentropy has no label_smoothing: smoothing takes the categorical
    # loss and one-hot targets (loss_targets), and "accuracy" then resolves to CategoricalAccuracy.
    # Without smoothing the loss stays sparse, so model.keras evaluates on class indices as usual.
    loss: Any = "sparse_categorical_crossentropy"
    if cfg.label_smoothing:
        loss = keras.losses.CategoricalCrossentropy(label_smoothing=cfg.label_smoothing)
    model.compile(optimizer=optimizer, loss=loss, metrics=["accuracy"])


def loss_targets(model: Any, labels: np.ndarray) -> np.ndarray:
    """Class indices ``labels`` as ``model``'s compiled loss takes them: one-hot rows for a
    categorical crossentropy (label smoothing), else as they are."""
    import keras

    if isinstance(model.loss, keras.losses.CategoricalCrossentropy):
        return np.eye(model.output_shape[-1], dtype=np.float32)[labels]
    return labels


def start_fine_tuning(model: Any, cfg: TrainConfig, steps_per_epoch: int) -> None:
    """Unfreeze the base model and compile for the fine_tune phase."""
    import models

    models.set_base_trainable(model, True)
    compile_model(model, cfg, steps_per_epoch, phase="fine_tune")
