"""The main job, ``augpipe run``: the whole service end to end on the embedded default data.

    result = run_job("augpipe-output", epochs=8)          # in this process
    result.files["model"], result.test_accuracy

It prepares scikit-learn's bundled digits into a dataset version, previews the augmentation on the
digits and on the bundled photos, trains a small convnet on augmented batches and records its
metrics. The job is written once, over its steps: :class:`InProcess` runs them here; the
``augpipe-run`` Prefect flow (flows/run.py) runs the same job with each step a flow of its own. Every
step writes its results atomically, so an interrupted run leaves the earlier results intact.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from models.catalog import RUN_MODEL
from pipeline.config import AugmentConfig, PrepareConfig, TrainConfig
from pipeline.defaults import DIGITS_CONFIG

if TYPE_CHECKING:  # without importing the steps' modules
    from pipeline.prepare import PrepareResult
    from pipeline.preview import PreviewResult
    from pipeline.training import TrainResult

ChunkCallback = Callable[[int, int], None]
EpochCallback = Callable[[dict[str, Any]], None]
STAGES = ("preparing the digits", "previewing the digits", "previewing the photos", "training")


class Steps(Protocol):
    """What the job needs done; each step returns the library's own result."""

    def prepare(self, cfg: PrepareConfig, on_chunk: ChunkCallback | None) -> PrepareResult: ...

    def preview(self, source: str, config_path: str | None, seed: int, out: str) -> PreviewResult: ...

    def train(
        self, cfg: TrainConfig, on_epoch: EpochCallback | None, on_step: ChunkCallback | None
    ) -> TrainResult: ...


class InProcess:
    """The steps as plain calls of the library, in this process."""

    def prepare(self, cfg: PrepareConfig, on_chunk: ChunkCallback | None) -> PrepareResult:
        from pipeline.prepare import prepare

        return prepare(cfg, on_chunk=on_chunk)  # 1,797 8x8 digits: worker processes would only slow it

    def preview(self, source: str, config_path: str | None, seed: int, out: str) -> PreviewResult:
        from pipeline.preview import make_preview

        return make_preview(source, config_path, seed=seed, out=out)

    def train(
        self, cfg: TrainConfig, on_epoch: EpochCallback | None, on_step: ChunkCallback | None
    ) -> TrainResult:
        from pipeline.training import train

        return train(cfg, on_epoch=on_epoch, on_step=on_step)


@dataclass(frozen=True)
class Progress:
    """Callbacks for a display: ``stage(number, name)`` as each of :data:`STAGES` starts (from 1),
    then the steps' own ``chunk(done, total)``, ``epoch(row)`` and ``step(step, steps)``."""

    stage: Callable[[int, str], None] | None = None
    chunk: ChunkCallback | None = None
    epoch: EpochCallback | None = None
    step: ChunkCallback | None = None


@dataclass
class RunResult:
    """Where everything the job wrote is, by name, and what training reached."""

    out_dir: Path
    files: dict[str, Path] = field(default_factory=dict)
    test_accuracy: float | None = None
    epochs: int = 0
    seconds: float = 0.0
    mlflow_run: str = ""  # "<run id> in <tracking store>", or "" without MLflow


def run_job(
    out: str | Path = "augpipe-output",
    config: AugmentConfig | None = None,
    seed: int = 0,
    epochs: int = 8,
    workers: int = 2,
    model: str = RUN_MODEL,
    steps: Steps | None = None,
    progress: Progress | None = None,
) -> RunResult:
    """Prepare the digits under ``out``, preview ``config`` (default: the digits' augmentation) on them
    and the photos, and train ``model`` for ``epochs`` on batches augmented by ``workers`` processes."""
    steps = steps or InProcess()
    progress = progress or Progress()
    start = time.perf_counter()
    root = Path(out).resolve()
    digits_config = config or DIGITS_CONFIG
    root.mkdir(parents=True, exist_ok=True)
    config_path = root / "digits_augment.yaml"
    digits_config.to_yaml(config_path)
    dataset = str(root / "prepared" / "digits")

    def stage(number: int) -> None:
        if progress.stage is not None:
            progress.stage(number, STAGES[number - 1])

    stage(1)
    prepared = steps.prepare(PrepareConfig(source="digits", out=dataset), progress.chunk)
    stage(2)
    digits = steps.preview(dataset, str(config_path), seed, str(root / "previews" / "digits"))
    stage(3)
    photos = steps.preview("photos", None, seed, str(root / "previews" / "photos"))
    stage(4)
    train_config = TrainConfig(
        dataset=dataset, model=model, epochs=epochs, batch_size=64, optimizer="adam", learning_rate=3e-3,
        augment=digits_config.model_copy(update={"rescale": 1 / 255}), seed=seed, workers=workers,
        runs_dir=str(root / "runs"), run_name=f"digits-{time.strftime('%Y%m%d-%H%M%S')}",
    )  # fmt: skip
    trained = steps.train(train_config, progress.epoch, progress.step)
    files = {
        "dataset": prepared.version_dir,
        "digits preview": digits.png,
        "digits preview page": digits.html,
        "photos preview": photos.png,
        "model": trained.model_path,
        **{name.replace("_", " "): path for name, path in trained.files.items() if name != "model"},
        "augmentation config": config_path,
    }
    mlflow_run = ""
    if trained.mlflow_run_id:
        mlflow_run = f"{trained.mlflow_run_id} in {root / 'runs' / 'mlflow.db'}"
    return RunResult(
        root, files, trained.test_accuracy, len(trained.history), time.perf_counter() - start, mlflow_run
    )
