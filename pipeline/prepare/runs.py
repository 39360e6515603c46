"""A run's staging folder: made at its start, removed at its end, and cleared after runs that died."""

from __future__ import annotations

import os
import shutil
import socket
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.prepare.records import RunDirs
from pipeline.prepare.shards import open_shard
from pipeline.store import UNFINISHED, unfinished_dir, versions_dir

if TYPE_CHECKING:
    from pipeline.config import PrepareConfig

_STAGING = ".staging-"  # + run id: a run's decoded chunks, and the "owner" file naming its process
_DISCARDED = ".discarded-"  # a failed run's staging folder, renamed on its way out


def start_run(cfg: PrepareConfig) -> RunDirs:
    """Create this run's staging folder; leftovers of killed runs (their owner process is gone) are
    removed first, while a run still going in the same folder is left alone."""
    out = Path(cfg.out)
    versions_dir(out).mkdir(parents=True, exist_ok=True)
    for staging in out.glob(f"{_STAGING}*"):
        if not _owner_alive(staging):
            run_id = staging.name.removeprefix(_STAGING)
            shutil.rmtree(unfinished_dir(out, run_id), ignore_errors=True)
            shutil.rmtree(staging, ignore_errors=True)
    for doomed in out.glob(f"{_DISCARDED}*"):  # a run stopped while it was removing its files
        shutil.rmtree(doomed, ignore_errors=True)
    live = {p.name.removeprefix(_STAGING) for p in out.glob(f"{_STAGING}*")}
    for tmp in versions_dir(out).glob(f"{UNFINISHED}*"):
        if tmp.name.removeprefix(UNFINISHED) not in live:
            shutil.rmtree(tmp, ignore_errors=True)
    run_id = f"{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}"
    staging = out / f"{_STAGING}{run_id}"
    staging.mkdir()
    (staging / "owner").write_text(f"{socket.gethostname()} {os.getpid()}\n")
    return RunDirs(out, staging, run_id)


def _owner_alive(staging: Path) -> bool:
    try:
        host, pid = (staging / "owner").read_text().split()
    except (OSError, ValueError):
        return False
    if host != socket.gethostname():
        return True  # another machine's run: cannot tell, so keep it
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def discard_run(run: RunDirs) -> None:
    """Remove what a failed or stopped run wrote (its staging folder and its unfinished version) now,
    rather than at the next run into the same folder: on a full disk, they would keep it full.

    Chunks may still be decoding on other threads: the staging folder is renamed first, so that their
    writes fail instead of refilling it, and removed until it is gone."""
    open_shard.cache_clear()
    shutil.rmtree(unfinished_dir(run.out, run.run_id), ignore_errors=True)
    doomed = run.out / f"{_DISCARDED}{run.run_id}"
    try:
        os.replace(run.staging, doomed)
    except OSError:
        doomed = run.staging
    for _ in range(100):  # a write already past the rename lands within milliseconds
        shutil.rmtree(doomed, ignore_errors=True)
        if not doomed.exists():
            return
        time.sleep(0.02)


def end_run(run: RunDirs) -> None:
    """Remove a finished run's staging folder, releasing the mappings of its chunks first."""
    open_shard.cache_clear()
    shutil.rmtree(run.staging, ignore_errors=True)
