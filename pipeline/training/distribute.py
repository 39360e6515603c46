"""Where a run's steps execute: the default device, or every local GPU through MirroredStrategy."""

from __future__ import annotations

from typing import Any

import numpy as np

from pipeline.errors import ConfigError
from pipeline.tf_import import VISIBLE_GPUS_ENV


def strategy(tf: Any, distribute: str) -> Any:
    """``auto``: every local GPU through MirroredStrategy when there are several, else the default
    device. ``mirrored``: MirroredStrategy even so (over the logical CPUs when there is no GPU)."""
    gpus = tf.config.list_physical_devices("GPU")
    if distribute == "mirrored" or (distribute == "auto" and len(gpus) > 1):
        devices = None if gpus else [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices=devices)
    return tf.distribute.get_strategy()


def check_gpus(tf: Any, gpus: list[int] | None) -> None:
    """Raise ConfigError unless TensorFlow sees every GPU of ``gpus`` (TrainConfig.gpus): a run that
    asked for GPUs is refused rather than trained on the CPU for hours."""
    if not gpus:
        return
    seen = len(tf.config.list_physical_devices("GPU"))
    if seen == len(gpus):
        return
    build = "" if tf.test.is_built_with_cuda() else "; this TensorFlow is built without CUDA"
    visible = ",".join(map(str, gpus))
    raise ConfigError(
        f"TrainConfig.gpus: {gpus} asked for, but TensorFlow sees {seen or 'no'} "
        f"GPU{'' if seen == 1 else 's'} with {VISIBLE_GPUS_ENV}={visible}{build}; `augpipe doctor` "
        "lists the GPUs it sees; leave gpus out (or give 'none') to train on the CPU"
    )


def on_replicas(strategy: Any, *arrays: Any) -> tuple[Any, ...]:
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
