"""What every ``augpipe`` command shares: its output, its errors, its options and how it runs.

Heavy modules (Prefect, TensorFlow, the pipeline's engines) are imported inside the commands that
use them: ``augpipe models`` starts in a quarter of a second because nothing here imports them.
"""

from __future__ import annotations

import logging
import os
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text
from typer.core import TyperGroup

from flows import doctor

USAGE_ERROR = 2  # the exit status of every expected mistake, Typer's own checks included

# No emoji codes: ":x:" in a file name or message is text. Data (file names, classes, paths, messages)
# goes into tables and lines as Text or escaped, never as markup: a file named "[/red].png" crashed
# the summary after the version was written. Paths are printed on lines of their own with soft_wrap,
# never in table cells: a table cuts or folds them at the terminal's width, and at 80 columns when
# the output goes to a file or a pipe, which is how jobs are logged.
console = Console(emoji=False)
errors = Console(emoji=False, stderr=True)


# ---- output ----------------------------------------------------------------------------------------
def plain(value: object) -> Text:
    """``value`` as a table cell or line that rich prints as it is (no markup, no emoji)."""
    return Text(str(value))


def print_error(message: str) -> None:
    errors.print(Text.assemble(("error:", "bold red"), " ", " ".join(message.split())), soft_wrap=True)


def fail(message: str, traceback_of: BaseException | None = None) -> NoReturn:
    """Exit with one ``error:`` line; with ``traceback_of`` (--verbose), that error's traceback first."""
    if traceback_of is not None:
        traceback.print_exception(traceback_of, file=sys.stderr)
    print_error(message)
    raise typer.Exit(code=USAGE_ERROR)


def plural(count: int, noun: str, plural_noun: str | None = None) -> str:
    return f"{count:,} {noun if count == 1 else plural_noun or noun + 's'}"


def path_lines(paths: dict[str, object]) -> None:
    """``name: path`` lines, each path whole and absolute: no wrapping, no markup."""
    width = max((len(name) for name in paths), default=0) + 1
    for name, path in paths.items():
        shown = path.absolute() if isinstance(path, Path) else path
        console.print(Text(f"  {name + ':':<{width}} {shown}"), soft_wrap=True)


class Commands(TyperGroup):
    """Typer's group, with its usage errors (``--epochs 0``, an unknown option, a missing argument)
    printed as the commands print theirs: one ``error:`` line, exit status 2, instead of a box."""

    def main(self, *args: Any, standalone_mode: bool = True, **kwargs: Any) -> Any:
        try:
            status = super().main(*args, standalone_mode=False, **kwargs)
        except typer.Abort:
            sys.exit(1)
        except typer.TyperException as err:  # Click's exceptions, as Typer vendors them
            context = getattr(err, "ctx", None)
            where = f" (see `{context.command_path} --help`)" if context is not None else ""
            message = err.format_message() if hasattr(err, "format_message") else str(err)
            print_error(f"{message}{where}")
            sys.exit(getattr(err, "exit_code", USAGE_ERROR))
        if not standalone_mode:
            return status
        sys.exit(status if isinstance(status, int) else 0)


# ---- how a command runs: in-process, or as Prefect flows -------------------------------------------
PrefectOption = Annotated[
    bool,
    typer.Option(
        "--prefect",
        help="Run as Prefect flows: recorded on PREFECT_API_URL's server (without one, on a temporary "
        "local API that ends with the command). Default: only when PREFECT_API_URL is set.",
    ),
]
# Options of the commands that train (train, compare), spelled once.
DatasetArgument = Annotated[
    str | None,
    typer.Argument(
        help="A prepared dataset folder, or any source `augpipe prepare` accepts (default: digits)."
    ),
]
ModelOption = Annotated[str | None, typer.Option(help="A registered model (see `augpipe models`).")]
BatchSizeOption = Annotated[int | None, typer.Option(min=1, help="Images per batch.")]
OptimizerOption = Annotated[str | None, typer.Option(help="rmsprop, adam, adamw or sgd.")]
LearningRateOption = Annotated[float | None, typer.Option(help="Initial learning rate.")]
LrScheduleOption = Annotated[str | None, typer.Option(help="constant, cosine or exponential.")]
WorkersOption = Annotated[int | None, typer.Option(min=0, help="Augmentation processes (0: in-process).")]
RunsDirOption = Annotated[Path | None, typer.Option(help="Where runs (and MLflow's store) go.")]
NoMlflowOption = Annotated[bool, typer.Option("--no-mlflow", help="Do not record to MLflow.")]
VerboseOption = Annotated[
    bool,
    typer.Option(
        "--verbose",
        help="Show Prefect's flow and task logs, TensorFlow's start-up lines and an error's traceback.",
    ),
]


def as_flows(prefect: bool) -> bool:
    """Whether the command runs as Prefect flows: asked with --prefect, or a Prefect API configured."""
    return prefect or doctor.configured_api_url() is not None


def quiet_tensorflow(verbose: bool) -> None:
    """TensorFlow's C++ start-up lines only with --verbose (pipeline.tf_import drops them otherwise);
    set before anything imports TensorFlow, and inherited by worker processes."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0" if verbose else "2")


def prefect_defaults(verbose: bool = True) -> None:
    """Defaults for flows on Prefect's embedded API; a user's own environment settings win."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")  # no telemetry over the network
    # The embedded server shares the machine with the work: on 2 busy cores it needs more than 20 s.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    if not verbose:  # also keeps the embedded server's start and stop lines out of the summary
        os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
        # The embedded server is stopped with events still queued about 1 run in 3, and its services
        # then print 150+ lines of "Error flushing 1 events" / CancelledError tracebacks after the
        # results; that server and its records end with this process, so nothing is lost.
        os.environ.setdefault("PREFECT_SERVER_LOGGING_LEVEL", "CRITICAL")


@contextmanager
def quiet_prefect(verbose: bool) -> Iterator[None]:
    """Prefect's own log lines (and tracebacks of failed runs, which we print as one line) only with
    --verbose."""
    prefect_logger = logging.getLogger("prefect")
    level = prefect_logger.level
    if not verbose:
        prefect_logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        prefect_logger.setLevel(level)


# ---- progress ---------------------------------------------------------------------------------------
@contextmanager
def progress_bar(description: str) -> Iterator[Progress]:
    """A bar in a terminal (gone when it ends: the lines printed meanwhile stay); nothing when piped."""
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    ) as progress:
        progress.add_task(description, total=None)
        yield progress


class Display:
    """What a long command shows while it works: a line per stage and per epoch (in a terminal and
    in a log alike), and in a terminal a bar for the chunks or batches under way."""

    def __init__(self, progress: Progress, total_epochs: int | None = None, stages: int | None = None):
        self.progress, self.total_epochs, self.stages = progress, total_epochs, stages
        self.bar = progress.task_ids[0]

    def stage(self, number: int, name: str) -> None:
        self.line(f"[{number}/{self.stages}] {name}")
        self.progress.update(self.bar, description=name, completed=0, total=None)

    def line(self, message: str) -> None:
        self.progress.console.print(Text(message), soft_wrap=True)

    def chunk(self, done: int, total: int) -> None:
        self.progress.update(self.bar, description="decoding chunks", completed=done, total=total)

    def step(self, step: int, steps: int) -> None:
        self.progress.update(self.bar, completed=step, total=steps)

    def epoch(self, row: dict[str, Any]) -> None:
        from pipeline.tracking import epoch_line  # numpy and OpenCV: only once an epoch has run

        self.line(epoch_line(row, self.total_epochs))
        if self.total_epochs is None or row["epoch"] < self.total_epochs:
            next_epoch = row["epoch"] + 1
            of = f" of {self.total_epochs}" if self.total_epochs else ""
            self.progress.update(self.bar, description=f"epoch {next_epoch}{of}", completed=0, total=None)
        else:
            self.progress.update(self.bar, description="evaluating", completed=0, total=None)
