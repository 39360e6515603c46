"""A run's folder, ``<runs_dir>/<run_name>/``: where each of its files lives."""

from __future__ import annotations

CONFIG = "config.yaml"
CHECKPOINTS = "checkpoints"  # the run's folder of epoch checkpoints and its state record
STATE = "state.json"  # in CHECKPOINTS
BEST_MODEL = "best.keras"  # in CHECKPOINTS
METRICS = "metrics.csv"
TENSORBOARD = "tensorboard"
MODEL = "model.keras"
SUMMARY = "summary.json"
CONFUSION_MATRIX = "confusion_matrix.png"
# A comparison's folder, ``<runs_dir>/<name>/``, holds one run folder per variant and these two.
COMPARE = "compare.json"
CURVES = "curves.png"


def checkpoint_name(epoch: int | None) -> str:
    """The file in CHECKPOINTS that holds the model after ``epoch`` (counted from 1)."""
    return f"epoch-{epoch or 0:04d}.keras"
