"""``augpipe studio``: the augmentation studio, a local web application (flows.studio)."""

from __future__ import annotations

import errno
import socket
from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from flows.cli.common import console, fail, quiet_tensorflow

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


def _check_port(host: str, port: int) -> None:
    """Fail in one line when the address cannot be bound, before anything is imported or served."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as err:
            why = (
                "is in use (choose another with --port)"
                if err.errno == errno.EADDRINUSE
                else f"failed: {err}"
            )
            fail(f"--host {host} --port {port}: binding the address {why}")


def studio_command(
    source: Annotated[
        Path | None,
        typer.Argument(
            help="A folder (or .npz file) whose prepared datasets, class folders and .npz files the studio "
            "may show; the bundled digits and photos are always there."
        ),
    ] = None,
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to serve on.")] = 8765,
    host: Annotated[
        str, typer.Option(help="Address to bind; the default serves this machine only.")
    ] = "127.0.0.1",
    runs: Annotated[
        Path, typer.Option(help="Runs folder: where runs started here go, and what the runs page lists.")
    ] = Path("runs"),
    verbose: Annotated[bool, typer.Option("--verbose", help="Show TensorFlow's start-up lines.")] = False,
) -> None:
    """Tune augmentation in the browser on your images, see Keras's result beside augpipe's, start a
    training run and watch its curves."""
    quiet_tensorflow(verbose)
    if source is not None and not source.exists():
        fail(f"source not found: {source} (resolved as {source.resolve()})")
    if runs.exists() and not runs.is_dir():
        fail(f"--runs {runs}: not a folder")
    _check_port(host, port)
    runs.mkdir(parents=True, exist_ok=True)
    from flows.studio import serve, url  # FastAPI, uvicorn and the engine: only once the checks pass

    console.print(Text(f"augpipe studio on {url(host, port)} (Ctrl-C stops it, and the runs it started)"))
    console.print(
        Text(f"  source folder: {source.resolve() if source else '(the bundled digits and photos only)'}"),
        soft_wrap=True,
    )
    console.print(Text(f"  runs folder:   {runs.resolve()}"), soft_wrap=True)
    if host not in LOCAL_HOSTS:
        console.print(
            Text(f"  bound to {host}: whoever reaches it can see these folders' images and start runs"),
            soft_wrap=True,
        )
    serve(source.resolve() if source else None, runs.resolve(), host, port)
