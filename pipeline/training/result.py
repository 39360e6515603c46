"""What a run reports: a metrics record per epoch, and the run's result."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

Phase = Literal["train", "fine_tune"]  # fine_tune: the epochs after the base model is unfrozen


@dataclass(frozen=True)
class EpochMetrics:
    """One epoch's metrics; :meth:`row` is the form recorded in state.json, metrics.csv,
    summary.json and passed to ``on_epoch``."""

    epoch: int  # counted from 1
    loss: float
    accuracy: float
    val_loss: float | None
    val_accuracy: float | None
    learning_rate: float
    images_per_second: float
    epoch_seconds: float
    input_wait_fraction: float  # of the epoch's time, spent waiting for the next batch
    phase: Phase

    def row(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class TrainResult:
    run_dir: Path
    model_path: Path
    history: list[dict[str, Any]]  # each epoch's EpochMetrics.row()
    test_loss: float | None
    test_accuracy: float | None
    confusion: list[list[int]] | None
    files: dict[str, Path] = field(default_factory=dict)
    resumed_after_epoch: int | None = None
    stopped_early: bool = False
    mlflow_run_id: str | None = None
    weights_epoch: int | None = None  # whose weights model.keras holds and test_* measure
    last_epoch_test_accuracy: float | None = None  # the last epoch's weights on the test split

    def summary(self) -> dict[str, Any]:
        """The run's summary.json."""
        return json.loads((self.run_dir / "summary.json").read_text())


def result_dict(result: TrainResult) -> dict[str, Any]:
    """``result`` as JSON values (what the train-model flow returns)."""
    return {
        **asdict(result),
        "run_dir": str(result.run_dir),
        "model_path": str(result.model_path),
        "files": {k: str(v) for k, v in result.files.items()},
    }
