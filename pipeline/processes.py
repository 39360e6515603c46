"""Starting worker processes: from a fork server (spawn where there is none), and never in a loop.

A new process first runs the caller's main script again; a script that starts workers outside
``if __name__ == "__main__":`` would have each of them start more, and a pool replaces its failed
workers forever. :func:`worker_context` names that script once, from the parent, instead. The
engine's pools (pipeline.workers) and preparation's decoders (pipeline.prepare.decoding) both start
their processes here.
"""

from __future__ import annotations

import functools
import multiprocessing as mp
import multiprocessing.context
import os
import sys
from collections.abc import Sequence

from pipeline.errors import ConfigError

# The exit status of a process that was re-running the main script to become a worker when that
# script started workers of its own (a number no interpreter error exits with).
_STARTS_WORKERS_AT_IMPORT = 86


def worker_context(
    start_method: str | None = None, preload: Sequence[str] = ("pipeline.workers",)
) -> mp.context.BaseContext:
    """The context worker processes start from, once they are known to start.

    Default: a fork server (forking a process whose libraries already run threads, as TensorFlow's,
    OpenCV's and BLAS's do, can deadlock the child; the server forks from a clean process that has
    imported only ``preload``, the modules its workers run), else spawn. With either, a new process
    first runs the caller's main script again, so a script that starts workers outside
    ``if __name__ == "__main__":`` would have each worker start more: multiprocessing.Pool then
    replaces its failed workers forever. Such a script gets a ConfigError here instead, from the
    parent, once.
    """
    method = start_method or ("forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn")
    if getattr(mp.current_process(), "_inheriting", False):
        # This process is re-running the main script to become a worker (CPython's own check reads
        # the same flag): leave quietly, the parent names the problem.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(_STARTS_WORKERS_AT_IMPORT)
    ctx = mp.get_context(method)
    if method == "forkserver":
        ctx.set_forkserver_preload(list(preload))  # what every worker imports, imported once
    if method != "fork":  # a forked child does not run the main script again
        _check_workers_start(method)
    return ctx


def _started() -> None:
    """The whole work of the process _check_workers_start starts: getting through the main script."""


@functools.cache
def _check_workers_start(method: str) -> None:
    """Start one process as a worker starts, once per start method, and raise ConfigError unless it
    gets through the main script: a pool would replace failing workers forever. It delays the first
    batch of ``augpipe train`` by 0.05 s (0.46 s without, measured on 2 cores); a script's own
    imports cost it what they cost each worker."""
    # Every concrete context has Process; typeshed's BaseContext, which get_context(str) returns, omits it.
    process = mp.get_context(method).Process(target=_started, name="augpipe-worker-check")  # type: ignore[attr-defined]
    process.start()
    process.join()
    if process.exitcode == 0:
        return
    main = sys.modules["__main__"]
    script = getattr(main, "__file__", None) or getattr(main.__spec__, "name", None) or "the main module"
    fix = 'put the script\'s code under `if __name__ == "__main__":`, or use workers=0'
    start = (
        f"worker processes (workers > 0) cannot start: each first runs {script} again ({method} start method)"
    )
    if process.exitcode == _STARTS_WORKERS_AT_IMPORT:
        raise ConfigError(f"{start}, and that script starts workers as it runs; {fix}")
    raise ConfigError(
        f"{start}, and that ended with exit status {process.exitcode} (its output is above); {fix}"
    )
