"""Dataset preparation: scan, decode and validate in chunks, split, write a new version atomically.

>>> result = prepare(PrepareConfig(source="digits", out="prepared/digits"), workers=4)

The steps are plain functions, run in one order by :func:`run_preparation`: from this process
(:func:`prepare`), or by the Prefect flow (``flows/prepare.py``), whose tasks wrap the same steps and
decode chunks on threads or on a Dask cluster; chunks pass file paths and small records, not arrays.

The layout of the folder written (versions, CURRENT) is :mod:`pipeline.store`'s.
"""

from pipeline.prepare.chunks import ChunkOptions, decode_chunk
from pipeline.prepare.decoding import ChunkCallback, decoding_pool
from pipeline.prepare.disk import DiskFullError
from pipeline.prepare.finalize import finalize
from pipeline.prepare.orchestrate import InProcess, PrepareSteps, prepare, run_preparation
from pipeline.prepare.records import ChunkRecord, Item, LeftOut, PrepareResult, Quarantined, Row, RunDirs
from pipeline.prepare.report import count_rows, split_lines, summary_markdown
from pipeline.prepare.runs import discard_run, start_run
from pipeline.prepare.scan import chunked, scan
from pipeline.prepare.sizes import mixed_sizes_message
from pipeline.prepare.sources import ArraySource, load_arrays, resolve_kind, with_absolute_paths
from pipeline.prepare.splitting import SplitPlan, plan_splits, split_of
from pipeline.prepare.stats import mean_std, pixel_histogram

__all__ = [
    "ArraySource",
    "ChunkCallback",
    "ChunkOptions",
    "ChunkRecord",
    "DiskFullError",
    "InProcess",
    "Item",
    "LeftOut",
    "PrepareResult",
    "PrepareSteps",
    "Quarantined",
    "Row",
    "RunDirs",
    "SplitPlan",
    "chunked",
    "count_rows",
    "decode_chunk",
    "decoding_pool",
    "discard_run",
    "finalize",
    "load_arrays",
    "mean_std",
    "mixed_sizes_message",
    "pixel_histogram",
    "plan_splits",
    "prepare",
    "resolve_kind",
    "run_preparation",
    "scan",
    "split_lines",
    "split_of",
    "start_run",
    "summary_markdown",
    "with_absolute_paths",
]
