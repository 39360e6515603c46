"""``augpipe serve``: prefect.yaml's deployments served from this process, or a worker for a pool."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from flows import doctor
from flows import serve as serving
from flows.cli.common import console, fail, prefect_defaults
from flows.home import HomeError


def serve_command(
    names: Annotated[
        list[str] | None, typer.Argument(help="Deployments to serve (default: all of prefect.yaml's).")
    ] = None,
    pool: Annotated[
        str | None,
        typer.Option(help="Start a Prefect worker for this work pool instead (cpu, gpu): see prefect.yaml."),
    ] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Flow runs at once, at most.")] = None,
    file: Annotated[Path, typer.Option(help="The Prefect project file.")] = Path("prefect.yaml"),
) -> None:
    """Serve prefect.yaml's deployments from this process, or with --pool start a worker for a work pool."""
    prefect_defaults()
    api_url = doctor.configured_api_url()
    if pool is not None:
        try:
            worker = serving.pool_worker(file, pool, names, limit, api_url)
        except (serving.ServeError, HomeError) as err:
            fail(str(err))
        console.print(
            f"worker for work pool {escape(pool)!r} on {escape(api_url or '')}, "
            f"running flows from {worker.home}",
            soft_wrap=True,
        )
        sys.stdout.flush()
        os.execv(worker.command[0], worker.command)  # the worker replaces this process: signals reach it
        return
    try:
        deployments = serving.served_deployments(file, names, api_url)
    except (serving.ServeError, HomeError) as err:
        fail(str(err))
    if not api_url:
        console.print(
            "[yellow]note:[/] PREFECT_API_URL is not set: serving on Prefect's embedded API, which lives "
            "only as long as this process (see the README's Team setup for a shared server)",
            soft_wrap=True,
        )
    serving.serve(deployments, limit=limit)
