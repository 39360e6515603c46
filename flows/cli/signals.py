"""How a command ends on SIGTERM and SIGINT: unwound, with exit status 128+signal, and promptly."""

from __future__ import annotations

import atexit
import os
import signal
import threading
from types import FrameType

import typer

# A command that SIGTERM or SIGINT has not ended after this long exits at once.
TERMINATE_GRACE_SECONDS = 5.0
EXIT_CLEANUP_SECONDS = 6.0  # Prefect's temporary server is given 5 s to stop


class _ExitOnSignal:
    """SIGTERM (docker stop, systemd, `timeout`) and SIGINT (Ctrl-C) unwind a command with exit
    status 128+signal: a flow run ends Crashed, a preparation removes its staging folder, and atexit
    stops Prefect's temporary server. Python's default SIGTERM handling (exit without cleanup) left
    that server running for minutes, holding this command's stdout open so that a pipe reading it
    blocked; Ctrl-C, which also reaches the server, left the command retrying a dead API for 70 s.
    A second signal, or a command still running TERMINATE_GRACE_SECONDS later (a thread stuck in a
    read, retries against a server that is gone), exits at once, after the atexit cleanups (which a
    normal shutdown runs only once every thread has ended)."""

    def __init__(self) -> None:
        self.fired = False

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        code = 128 + signum
        if self.fired:
            os._exit(code)
        self.fired = True

        def force() -> None:
            # The atexit cleanups stop Prefect's temporary server; others may retry a dead API: bound them.
            cleanup = threading.Thread(target=atexit._run_exitfuncs, daemon=True)
            cleanup.start()
            cleanup.join(EXIT_CLEANUP_SECONDS)
            os._exit(code)

        timer = threading.Timer(TERMINATE_GRACE_SECONDS, force)
        timer.daemon = True
        timer.start()
        raise SystemExit(code)


_exit_on_signal = _ExitOnSignal()  # one per process: a second signal to any command exits at once


def exit_on_signals(ctx: typer.Context) -> None:
    """Handle SIGTERM and SIGINT as above until the command ends (from the main thread only: a
    command invoked from another thread, as in tests, leaves signals alone)."""
    if threading.current_thread() is not threading.main_thread():
        return
    for signum in (signal.SIGTERM, signal.SIGINT):
        previous = signal.signal(signum, _exit_on_signal)
        ctx.call_on_close(lambda signum=signum, previous=previous: signal.signal(signum, previous))
