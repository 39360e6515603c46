"""The ``augpipe`` command line: one module per command, what they share in :mod:`flows.cli.common`.

Without PREFECT_API_URL (and without ``--prefect``), ``prepare``, ``preview``, ``train`` and ``run``
call the library in this process: no Prefect is imported and nothing is recorded but the results.
With a configured API, or ``--prefect``, they run as the service's flows and the server records them.
The work is the same code either way (pipeline/); only how it is started differs.
"""

from __future__ import annotations

import typer

from flows.cli.common import Commands
from flows.cli.compare import compare_command
from flows.cli.doctor import doctor_command
from flows.cli.models import models_command
from flows.cli.prepare import prepare_command
from flows.cli.preview import preview_command
from flows.cli.run import run_command
from flows.cli.serve import serve_command
from flows.cli.signals import exit_on_signals
from flows.cli.studio import studio_command
from flows.cli.train import train_command

__all__ = ["app", "main"]

app = typer.Typer(
    help="augpipe: Keras ImageDataGenerator-faithful augmentation on OpenCV, reproducible per sample.",
    no_args_is_help=False,
    add_completion=False,
    pretty_exceptions_enable=False,
    cls=Commands,
)


@app.callback()
def main(ctx: typer.Context) -> None:
    """augpipe's commands."""
    exit_on_signals(ctx)


# In this order in `augpipe --help`.
app.command("run")(run_command)
app.command("prepare")(prepare_command)
app.command("models")(models_command)
app.command("train")(train_command)
app.command("compare")(compare_command)
app.command("preview")(preview_command)
app.command("serve")(serve_command)
app.command("doctor")(doctor_command)
app.command("studio")(studio_command)
