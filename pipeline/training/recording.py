"""Where a run's epochs are recorded besides its state: metrics.csv, TensorBoard and MLflow."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipeline import tracking
from pipeline.config import TrainConfig
from pipeline.training.layout import METRICS, TENSORBOARD
from pipeline.training.state import RunState


class Recorders:
    """The run's TensorBoard writer and MLflow run, once :meth:`open` has opened those configured."""

    def __init__(self) -> None:
        self.board: tracking.TensorBoardWriter | None = None
        self.mlflow: tracking.MlflowRecorder | None = None

    def open(self, cfg: TrainConfig, run_dir: Path, state: RunState, abandoned: RunState | None) -> None:
        """Open the writers; MLflow continues the run keyed by ``state.run_key`` and ends
        ``abandoned``'s, a start killed before its first checkpoint and not continued."""
        if cfg.tensorboard:
            self.board = tracking.TensorBoardWriter(run_dir / TENSORBOARD)
        if cfg.mlflow and tracking.mlflow_available():
            default_uri = f"sqlite:///{(Path(cfg.runs_dir) / 'mlflow.db').resolve()}"
            tracking_uri = cfg.mlflow_tracking_uri or default_uri
            if abandoned is not None:
                tracking.end_abandoned_run(tracking_uri, abandoned.run_key)
            self.mlflow = tracking.MlflowRecorder(
                tracking_uri,
                Path(cfg.runs_dir) / "mlartifacts",
                run_dir.name,
                cfg.model_dump(mode="json"),
                run_key=state.run_key,
            )
            self.mlflow.log_epochs(state.history)  # epochs a kill kept from MLflow

    def log(self, history: list[dict[str, Any]], run_dir: Path) -> None:
        """Record the last epoch of ``history``, and any earlier one MLflow missed."""
        if self.board is not None:
            self.board.log_epoch(history[-1])
        if self.mlflow is not None:
            self.mlflow.log_epochs(history)
        tracking.write_csv(history, run_dir / METRICS)

    def fail(self) -> None:
        if self.mlflow is not None:
            self.mlflow.fail()

    def close(self) -> None:
        if self.board is not None:
            self.board.close()
