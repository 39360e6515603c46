"""``augpipe doctor``: versions, the GPUs TensorFlow sees, CPUs, and whether the Prefect API answers."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from flows import doctor
from flows.cli.common import console, errors, prefect_defaults, print_error, quiet_tensorflow


def doctor_command(
    timeout: Annotated[float, typer.Option(min=0.1, help="Seconds to wait for the Prefect API.")] = 3.0,
    check_ephemeral: Annotated[
        bool,
        typer.Option("--check-ephemeral", help="Without PREFECT_API_URL, start the embedded API to try it."),
    ] = False,
) -> None:
    """Print versions, the GPUs TensorFlow sees, CPUs, and whether the Prefect API answers."""
    prefect_defaults()
    quiet_tensorflow(verbose=False)
    with console.status("checking TensorFlow and the Prefect API..."):
        api_url = doctor.configured_api_url()
        report = doctor.diagnose(api_url, timeout=timeout, check_ephemeral=check_ephemeral)
    table = Table(title="augpipe doctor")
    table.add_column("check")
    table.add_column("result", overflow="fold")
    table.add_row("python", escape(report.python))
    for name, version in report.versions.items():
        table.add_row(name, escape(version) if version else "[dim]not installed[/]")
    table.add_section()
    table.add_row("tensorflow build", escape(report.tensorflow_build))
    table.add_row("GPUs", escape(", ".join(report.gpus)) or "none visible to TensorFlow")
    table.add_row("CPUs", f"{report.cpus_usable} usable of {report.cpu_count}")
    table.add_section()
    state = {True: "[green]answers[/]", False: "[red]does not answer[/]", None: "[dim]not checked[/]"}
    where = escape(report.api.url or "none configured")
    table.add_row("Prefect API", f"{where}: {state[report.api.answered]}, {escape(report.api.detail)}")
    console.print(table)
    for problem in report.problems:
        errors.print(Text.assemble(("warning:", "yellow"), " ", problem), soft_wrap=True)
    if not report.ok:
        where = report.api.url or "the embedded API"
        print_error(f"Prefect API {where} does not answer: {report.api.detail}")
        raise typer.Exit(code=1)
