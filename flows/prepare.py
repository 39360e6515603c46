"""The ``prepare-dataset`` Prefect flow: scan a source, decode chunks in parallel, write a new version.

Run it with :func:`run_prepare` (what ``augpipe prepare`` calls): on Prefect's embedded ephemeral API
by default, with chunks decoded on threads (OpenCV releases the GIL), or on a Dask cluster when given
its scheduler address (or ``AUGPIPE_DASK_ADDRESS``). The steps live in :mod:`pipeline.prepare`; the
tasks here only wrap them, and :func:`pipeline.prepare.run_preparation` runs them, in the order it
also runs them in for the in-process :func:`pipeline.prepare.prepare`. Tasks pass file paths and small
records, never pixel arrays.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Generic, TypeVar

from prefect import flow, get_run_logger, task, unmapped
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.context import FlowRunContext
from prefect.futures import PrefectFuture, as_completed
from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner

from flows.parameters import resolve_config
from pipeline import prepare
from pipeline.config import PrepareConfig
from pipeline.errors import AugpipeError
from pipeline.prepare import ChunkOptions, ChunkRecord, Item, PrepareResult, RunDirs, SplitPlan, count_rows

DASK_ADDRESS_ENV = "AUGPIPE_DASK_ADDRESS"
T = TypeVar("T")

# Called as (chunks done, chunks in all) while chunks finish; set by run_prepare for the CLI's bar.
# A context variable rather than a flow parameter: a callback cannot be a (JSON) flow parameter.
_on_chunk: ContextVar[Callable[[int, int], None] | None] = ContextVar("augpipe_on_chunk", default=None)


def task_runner_for(dask_address: str | None, workers: int | None = None) -> TaskRunner[Any]:
    """A Dask task runner connected to ``dask_address``, or ``workers`` threads (default: one per
    CPU) without one."""
    if dask_address:
        from prefect_dask import DaskTaskRunner

        return DaskTaskRunner(address=dask_address)
    return ThreadPoolTaskRunner(max_workers=workers or os.cpu_count() or 1)


class Whole(Generic[T]):
    """A task argument that task runners pass as one value. Prefect would otherwise walk every item
    of a chunk and every key of a record looking for futures (longer than decoding MNIST's files),
    and Dask would rebuild the items, tuples, as plain tuples."""

    __slots__ = ("value",)

    def __init__(self, value: T):
        self.value = value

    def __getstate__(self) -> T:
        return self.value

    def __setstate__(self, value: T) -> None:
        self.value = value


def is_transient(task: Any, task_run: Any, state: Any) -> bool:
    """A task's retry condition: only I/O errors (writing a staging file, a flaky network mount) are
    worth another try. A bad config, a missing source or mixed image sizes fail the same way every time
    (AugpipeError: SourceNotFoundError is also a FileNotFoundError, but no retry makes it appear)."""
    try:
        state.result()
    except AugpipeError:
        return False
    except OSError:
        return True
    except BaseException:
        return False
    return False


@task(name="scan", cache_policy=NO_CACHE)
def scan_task(config: PrepareConfig) -> Whole[list[Item]]:
    return Whole(prepare.scan(config))  # Prefect would otherwise walk every item of the result


@task(name="start-run", cache_policy=NO_CACHE)
def start_run_task(config: PrepareConfig) -> RunDirs:
    return prepare.start_run(config)


@task(
    name="decode-chunk",
    cache_policy=NO_CACHE,
    retries=2,
    retry_delay_seconds=1,
    retry_condition_fn=is_transient,
)
def decode_chunk_task(
    config: PrepareConfig,
    items: Whole[list[Item]],
    staging: Path,
    chunk_id: int,
    plan: SplitPlan | None = None,
) -> ChunkRecord:
    return prepare.decode_chunk(ChunkOptions.of(config, plan), items.value, staging, chunk_id)


@task(name="finalize", cache_policy=NO_CACHE)
def finalize_task(
    config: PrepareConfig, run: RunDirs, records: Whole[list[ChunkRecord]], plan: SplitPlan
) -> PrepareResult:
    return prepare.finalize(config, run, records.value, plan)


@task(name="report", cache_policy=NO_CACHE)
def report_task(result: PrepareResult) -> None:
    """The summary as a markdown artifact and the per-split, per-class counts as a table artifact."""
    create_markdown_artifact(
        prepare.summary_markdown(result), key="prepare-summary", description="augpipe prepare"
    )
    create_table_artifact(count_rows(result), key="prepare-counts", description="images per class and split")


def _check_runner(dask_address: str | None) -> None:
    # The task runner is fixed when a flow run starts, so the address cannot switch it afterwards:
    # refuse rather than silently decode on threads.
    runner = FlowRunContext.get().task_runner  # type: ignore[union-attr]
    if dask_address and getattr(runner, "address", None) != dask_address:
        raise ValueError(
            f"dask_address={dask_address!r} but this flow run uses {type(runner).__name__}: start it with "
            f"flows.prepare.run_prepare, or set {DASK_ADDRESS_ENV} where the flow is imported"
        )


def _gather(futures: list[PrefectFuture[ChunkRecord]], items: int) -> list[ChunkRecord]:
    """The chunks' records, in order, logging progress to the run's log about every tenth of them."""
    on_chunk = _on_chunk.get()
    logger = get_run_logger()
    total = len(futures)
    step = max(1, total // 10)
    start = time.perf_counter()
    for done, _ in enumerate(as_completed(futures), start=1):
        if on_chunk is not None:
            on_chunk(done, total)
        if done % step == 0 or done == total:
            rate = done * items / total / max(time.perf_counter() - start, 1e-9)  # chunks are even
            logger.info("decoded %d of %d chunks (%.0f files/s)", done, total, rate)
    return [f.result() for f in futures]


class AsTasks:
    """A preparation's steps as this module's tasks, on the running flow's task runner."""

    def scan(self, cfg: PrepareConfig) -> list[Item]:
        return scan_task(cfg).value

    def start_run(self, cfg: PrepareConfig) -> RunDirs:
        return start_run_task(cfg)

    def decode(
        self, cfg: PrepareConfig, chunks: list[list[Item]], run: RunDirs, plan: SplitPlan
    ) -> list[ChunkRecord]:
        items = sum(map(len, chunks))
        get_run_logger().info("%d files in %d chunks of up to %d", items, len(chunks), cfg.chunk_size)
        futures = decode_chunk_task.map(
            unmapped(cfg), [Whole(c) for c in chunks], unmapped(run.staging), range(len(chunks)),
            unmapped(plan),
        )  # fmt: skip
        # A failure or a signal while waiting reaches run_preparation, which removes the run's files;
        # the task runner then cancels the chunks not started.
        return _gather(futures, items)

    def finalize(
        self, cfg: PrepareConfig, run: RunDirs, records: list[ChunkRecord], plan: SplitPlan
    ) -> PrepareResult:
        return finalize_task(cfg, run, Whole(records), plan)


@flow(
    name="prepare-dataset",
    task_runner=task_runner_for(os.environ.get(DASK_ADDRESS_ENV)),
    log_prints=False,
    validate_parameters=False,  # resolve_config merges a deployment run's partial config, then validates
)
def prepare_dataset(config: PrepareConfig, dask_address: str | None = None) -> PrepareResult:
    """Prepare ``config.source`` into a new version under ``config.out`` and report what it holds.

    ``dask_address``: the Dask scheduler this run's task runner is connected to (see run_prepare).
    """
    config = resolve_config(PrepareConfig, config)
    _check_runner(dask_address)
    logger = get_run_logger()
    logger.info("preparing %s into %s", config.source, Path(config.out).resolve())
    result = prepare.run_preparation(config, AsTasks())
    report = result.report
    logger.info(
        "%s: %d images (%s), %d quarantined%s",
        result.version_dir,
        report["images"],
        ", ".join(f"{split} {n}" for split, n in report["split_counts"].items()),
        len(report["quarantined"]),
        ", unchanged since that version" if result.unchanged else "",
    )
    report_task(result)
    return result


@contextmanager
def progress_to(on_chunk: Callable[[int, int], None] | None) -> Iterator[None]:
    """Runs of prepare_dataset started in this context call ``on_chunk(done, total)`` in this process."""
    token = _on_chunk.set(on_chunk)
    try:
        yield
    finally:
        _on_chunk.reset(token)


def run_prepare(
    config: PrepareConfig,
    dask_address: str | None = None,
    on_chunk: Callable[[int, int], None] | None = None,
    workers: int | None = None,
) -> PrepareResult:
    """Run the flow, on the Dask cluster at ``dask_address`` (or ``AUGPIPE_DASK_ADDRESS``) if any, else
    on ``workers`` threads (default: one per CPU).

    ``on_chunk(done, total)`` is called in this process as decoded chunks come back. Relative paths
    are this process's: they are made absolute here, so that the flow run records where it read and
    wrote (a deployment's run makes its own absolute on its worker).
    """
    address = dask_address or os.environ.get(DASK_ADDRESS_ENV) or None
    runner = task_runner_for(address, workers)
    with progress_to(on_chunk):
        return prepare_dataset.with_options(task_runner=runner)(
            prepare.with_absolute_paths(config), dask_address=address
        )
