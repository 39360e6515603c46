"""The one order of a preparation's steps, whoever runs them: this process (:func:`prepare`), or the
``prepare-dataset`` Prefect flow, whose tasks wrap the same steps (flows/prepare.py).

>>> result = prepare(PrepareConfig(source="digits", out="prepared/digits"), workers=4)
>>> result.version_dir, result.report["split_counts"]
"""

from __future__ import annotations

from dataclasses import dataclass
from operator import attrgetter
from typing import TYPE_CHECKING, Protocol

from pipeline.prepare.chunks import ChunkOptions
from pipeline.prepare.decoding import ChunkCallback, decode_here, decode_on_dask, decode_on_processes
from pipeline.prepare.finalize import finalize
from pipeline.prepare.records import ChunkRecord, Item, PrepareResult, RunDirs
from pipeline.prepare.runs import discard_run, start_run
from pipeline.prepare.scan import chunked, scan
from pipeline.prepare.sources import FILE_KINDS, with_absolute_paths
from pipeline.prepare.splitting import SplitPlan, plan_splits

if TYPE_CHECKING:  # not imported at run time: decoding workers then start without pydantic
    from pipeline.config import PrepareConfig


class PrepareSteps(Protocol):
    """How each step of a preparation runs; each returns the library's own records."""

    def scan(self, cfg: PrepareConfig) -> list[Item]: ...

    def start_run(self, cfg: PrepareConfig) -> RunDirs: ...

    def decode(
        self, cfg: PrepareConfig, chunks: list[list[Item]], run: RunDirs, plan: SplitPlan
    ) -> list[ChunkRecord]: ...

    def finalize(
        self, cfg: PrepareConfig, run: RunDirs, records: list[ChunkRecord], plan: SplitPlan
    ) -> PrepareResult: ...


def run_preparation(cfg: PrepareConfig, steps: PrepareSteps) -> PrepareResult:
    """Scan, plan the splits, start a run, decode the chunks, finalize a new version; on any error or
    signal, the run's files are removed at once. A missing source, images of mixed sizes, or splits
    that cannot be planned fail before anything is written. Paths are made absolute first, so that
    workers started in another folder (a Dask cluster's) find the same files."""
    cfg = with_absolute_paths(cfg)
    items = steps.scan(cfg)
    plan = plan_splits(cfg.source, cfg.splits, set(map(attrgetter("split"), items)) - {None})
    chunks = chunked(items, cfg.chunk_size)
    run = steps.start_run(cfg)
    try:
        return steps.finalize(cfg, run, steps.decode(cfg, chunks, run, plan), plan)
    except BaseException:  # a failed chunk, SIGTERM, Ctrl-C: a chunk still decoding elsewhere then
        # fails on its missing staging folder
        discard_run(run)
        raise


@dataclass(frozen=True)
class InProcess:
    """The steps as plain calls, decoding chunks on ``workers`` worker processes and this one, or on
    the Dask cluster at ``dask_address``; ``on_chunk(done, total)`` as chunks finish."""

    workers: int = 1
    dask_address: str | None = None
    on_chunk: ChunkCallback | None = None

    def scan(self, cfg: PrepareConfig) -> list[Item]:
        return scan(cfg)

    def start_run(self, cfg: PrepareConfig) -> RunDirs:
        return start_run(cfg)

    def decode(
        self, cfg: PrepareConfig, chunks: list[list[Item]], run: RunDirs, plan: SplitPlan
    ) -> list[ChunkRecord]:
        options = ChunkOptions.of(cfg, plan)
        if self.dask_address:
            return decode_on_dask(options, chunks, run, self.dask_address, self.on_chunk)
        # Array sources (digits, IDX, npz, Keras) are copied and hashed, not decoded: worker processes,
        # each loading the arrays again, only add their start (MNIST: 1.45 s here, 1.80 s with two).
        if self.workers > 1 and len(chunks) > 1 and options.kind in FILE_KINDS:
            return decode_on_processes(options, chunks, run, self.workers, self.on_chunk)
        return decode_here(options, chunks, run, self.on_chunk)

    def finalize(
        self, cfg: PrepareConfig, run: RunDirs, records: list[ChunkRecord], plan: SplitPlan
    ) -> PrepareResult:
        return finalize(cfg, run, records, plan)


def prepare(
    cfg: PrepareConfig,
    workers: int = 1,
    *,
    dask_address: str | None = None,
    on_chunk: ChunkCallback | None = None,
) -> PrepareResult:
    """The whole preparation from this process, decoding chunks on ``workers`` worker processes and
    this one, or on the Dask cluster at ``dask_address`` (its workers must see the source and ``out``
    at the same paths).

    on_chunk: called as (chunks decoded, chunks in all) while chunks finish.
    """
    return run_preparation(cfg, InProcess(workers, dask_address, on_chunk))
