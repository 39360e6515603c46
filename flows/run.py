"""The ``augpipe-run`` Prefect flow: the main job (:mod:`pipeline.job`) with each step a flow of its own.

``augpipe run --prefect`` (or ``augpipe run`` with PREFECT_API_URL set) calls :func:`run`; the job,
its stages and its results are the same as in-process, and the server records every subflow.
"""

from __future__ import annotations

from contextvars import ContextVar
from pathlib import Path

from prefect import flow

from flows.prepare import prepare_dataset, progress_to
from flows.preview import preview_augmentations
from flows.train import as_result, callbacks, train_model
from models.catalog import RUN_MODEL
from pipeline.config import AugmentConfig, PrepareConfig, TrainConfig
from pipeline.job import ChunkCallback, EpochCallback, Progress, RunResult, run_job
from pipeline.prepare import PrepareResult
from pipeline.preview import PreviewResult
from pipeline.training import TrainResult

__all__ = ["AsFlows", "main_job", "run"]
# The display's callbacks reach the flow through a context variable: they cannot be flow parameters.
_progress: ContextVar[Progress | None] = ContextVar("augpipe_run_progress", default=None)


class AsFlows:
    """The job's steps as the service's own flows, run as subflows of the calling flow."""

    def prepare(self, cfg: PrepareConfig, on_chunk: ChunkCallback | None) -> PrepareResult:
        with progress_to(on_chunk):
            return prepare_dataset(cfg)

    def preview(self, source: str, config_path: str | None, seed: int, out: str) -> PreviewResult:
        return preview_augmentations(source=source, config_path=config_path, seed=seed, out=out)

    def train(
        self, cfg: TrainConfig, on_epoch: EpochCallback | None, on_step: ChunkCallback | None
    ) -> TrainResult:
        with callbacks(on_epoch, on_step):
            return as_result(train_model(cfg))


@flow(name="augpipe-run", log_prints=True)
def main_job(
    out: str = "augpipe-output",
    config: AugmentConfig | None = None,
    seed: int = 0,
    epochs: int = 8,
    workers: int = 2,
    model: str = RUN_MODEL,
) -> RunResult:
    """Prepare the digits, preview the augmentation, train ``model`` on augmented batches."""
    return run_job(out, config, seed, epochs, workers, model, steps=AsFlows(), progress=_progress.get())


def run(
    out_dir: str | Path = "augpipe-output",
    config: AugmentConfig | None = None,
    seed: int = 0,
    epochs: int = 8,
    workers: int = 2,
    model: str = RUN_MODEL,
    progress: Progress | None = None,
) -> RunResult:
    """Run the job as the ``augpipe-run`` flow in this process (on PREFECT_API_URL's server, or on
    Prefect's temporary local API without one); ``progress`` is called as in :func:`run_job`."""
    token = _progress.set(progress)
    try:
        return main_job(
            out=str(out_dir), config=config, seed=seed, epochs=epochs, workers=workers, model=model,
            return_state=True,
        ).result()  # fmt: skip
    finally:
        _progress.reset(token)
