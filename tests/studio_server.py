"""A real studio server for tests: uvicorn in a thread of the test process, on a free loopback port,
stopped (and the runs it started ended) when the context closes, whatever happened inside."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn

from flows.studio import StudioSettings, create_app


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def running_studio(settings: StudioSettings, timeout: float = 30.0) -> Iterator[str]:
    """The base URL (``http://127.0.0.1:PORT``) of a studio serving ``settings``."""
    port = free_port()
    config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError(f"the studio did not start on port {port}")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True  # the app's shutdown ends the runs its launcher started
        thread.join(timeout=60)
