"""Serving the studio with uvicorn on one host and port (``augpipe studio`` binds 127.0.0.1 by default)."""

from __future__ import annotations

from pathlib import Path

import uvicorn

from flows.studio.app import StudioSettings, create_app

LOCAL_NAMES = ("127.0.0.1", "localhost", "[::1]")


def allowed_hosts(host: str) -> tuple[str, ...]:
    """The Host headers the studio answers: this machine's names, and ``host`` when bound to it
    (any name when bound to every address)."""
    if host in ("0.0.0.0", "::", ""):
        return ("*",)
    return LOCAL_NAMES if host in LOCAL_NAMES else (*LOCAL_NAMES, host)


def url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


def serve(source_root: Path | None, runs_dir: Path, host: str, port: int) -> None:
    """Serve until interrupted (Ctrl-C or SIGTERM); runs started locally are then ended."""
    settings = StudioSettings(source_root, runs_dir, hosts=allowed_hosts(host), warm_keras=True)
    config = uvicorn.Config(create_app(settings), host=host, port=port, log_level="warning", access_log=False)
    uvicorn.Server(config).run()
