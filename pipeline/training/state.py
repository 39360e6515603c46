"""A run's record, ``checkpoints/state.json``: what a restart resumes from, and whether it may."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.config import TrainConfig
from pipeline.errors import RunStateError
from pipeline.io import write_atomic
from pipeline.training.data import dataset_folder
from pipeline.training.early_stopping import EarlyStopping
from pipeline.training.layout import CHECKPOINTS, STATE, SUMMARY

# Fields that may change between a killed run and its resumption without changing what is trained.
RESUMABLE = frozenset(
    {"epochs", "resume", "workers", "prefetch", "distribute", "gpus", "restore_best_weights", "tensorboard",
     "mlflow", "mlflow_tracking_uri"}
)  # fmt: skip


@dataclass(frozen=True)
class RunState:
    """Written last at every step, so that a kill at any point leaves the previous record whole, with
    the checkpoint it names."""

    config_digest: str
    run_key: str  # the run's MLflow run carries it as a tag: a restart finds that run again
    epochs_done: int = 0
    checkpoint: str | None = None  # the file in checkpoints/ that holds epoch ``epochs_done``
    # What a .keras file leaves out: the states of the model's seed generators (Dropout's), in the
    # order of model.variables, and of Keras's global one once something has drawn from it.
    seed_states: list[list[int]] = field(default_factory=list)
    global_seed_state: list[int] | None = None
    history: list[dict[str, Any]] = field(default_factory=list)  # each epoch's EpochMetrics.row()
    # EarlyStopping's record, and whether it stopped the run.
    best: float | None = None
    best_epoch: int | None = None
    wait: int = 0
    stopped_early: bool = False
    finished: bool = False  # model, reports and MLflow written: nothing left to do

    def early_stopping(self, patience: int | None) -> EarlyStopping:
        """Early stopping where this record left it."""
        return EarlyStopping(patience, self.best, self.best_epoch, self.wait)

    def after_epoch(self, row: dict[str, Any], stopping: EarlyStopping) -> RunState:
        """This record with one more epoch's metrics ``row`` and early stopping after it."""
        return replace(
            self,
            history=[*self.history, row],
            best=stopping.best,
            best_epoch=stopping.best_epoch,
            wait=stopping.wait,
            stopped_early=stopping.stop,
        )


def digest(cfg: TrainConfig) -> str:
    """What a resumed run must share with the run it resumes: every field but the RESUMABLE ones.

    The one fingerprint of a run, for every way of starting it (``augpipe train``, with or without
    ``--prefect``, ``train(config)``, the train-model flow and its deployment): paths count as the
    folders they name, so a source and the folder it is prepared into (what the flow trains on), or a
    relative and an absolute ``runs_dir``, give the same run.
    """
    kept = cfg.model_dump(mode="json", exclude=set(RESUMABLE))
    kept["dataset"] = str(dataset_folder(cfg).resolve())
    kept["runs_dir"] = str(Path(cfg.runs_dir).resolve())
    return hashlib.sha256(json.dumps(kept, sort_keys=True).encode()).hexdigest()[:16]


def new_run_name(cfg: TrainConfig) -> str:
    return f"{cfg.model}-{datetime.now(UTC).strftime('%Y%m%d-%H%M%S')}"


def run_folder(cfg: TrainConfig) -> Path:
    """The run's folder: ``runs_dir/run_name``, a new timestamped name when the config has none."""
    return Path(cfg.runs_dir) / (cfg.run_name or new_run_name(cfg))


def resume_state(cfg: TrainConfig, run_dir: Path) -> RunState | None:
    """The record of an earlier start of the run in ``run_dir`` to continue, or None to start afresh.

    A start killed before its first checkpoint is continued, in its MLflow run, when its
    configuration was the same (and started afresh otherwise); one killed after its last epoch
    only finishes its reports.
    """
    state = read_state(run_dir)
    if state is None:
        if run_dir.exists() and any(run_dir.iterdir()) and (run_dir / SUMMARY).exists():
            raise RunStateError(f"{run_dir} holds another run; choose another run_name")
        return None
    if state.checkpoint is None:  # nothing trained yet
        return state if cfg.resume and state.config_digest == digest(cfg) else None
    if not cfg.resume:
        raise RunStateError(f"{run_dir} holds a run already; choose another run_name, or resume it")
    if state.config_digest != digest(cfg):
        raise RunStateError(
            f"{run_dir} was started with another configuration (see its config.yaml); only "
            f"{', '.join(sorted(RESUMABLE))} may change when a run is resumed"
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


def write_state(run_dir: Path, state: RunState) -> None:
    write_json(run_dir / CHECKPOINTS / STATE, asdict(state))


def write_json(path: Path, data: dict[str, Any]) -> None:
    write_atomic(path, json.dumps(data, indent=2, default=_jsonable).encode())


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
