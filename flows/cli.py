"""The ``augpipe`` command line.

Without PREFECT_API_URL (and without ``--prefect``), ``prepare``, ``preview``, ``train`` and ``run``
call the library in this process: no Prefect is imported and nothing is recorded but the results.
With a configured API, or ``--prefect``, they run as the service's flows and the server records them.
The work is the same code either way (pipeline/); only how it is started differs.
"""

from __future__ import annotations

import atexit
import logging
import os
import re
import signal
import sys
import threading
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text
from typer.core import TyperGroup

from pipeline.config import AugmentConfig, did_you_mean
from pipeline.errors import AugpipeError, ConfigError
from pipeline.store import current_version

if TYPE_CHECKING:
    from pipeline.prepare import PrepareResult
    from pipeline.training import TrainResult

USAGE_ERROR = 2  # the exit status of every expected mistake, Typer's own checks included


class _Commands(TyperGroup):
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
            _print_error(f"{message}{where}")
            sys.exit(getattr(err, "exit_code", USAGE_ERROR))
        if not standalone_mode:
            return status
        sys.exit(status if isinstance(status, int) else 0)


app = typer.Typer(
    help="augpipe: Keras ImageDataGenerator-faithful augmentation on OpenCV, reproducible per sample.",
    no_args_is_help=False,
    add_completion=False,
    pretty_exceptions_enable=False,
    cls=_Commands,
)
# No emoji codes: ":x:" in a file name or message is text. Data (file names, classes, paths, messages)
# goes into tables and lines as Text or escaped, never as markup: a file named "[/red].png" crashed
# the summary after the version was written. Paths are printed on lines of their own with soft_wrap,
# never in table cells: a table cuts or folds them at the terminal's width, and at 80 columns when
# the output goes to a file or a pipe, which is how jobs are logged.
console = Console(emoji=False)
errors = Console(emoji=False, stderr=True)


def _text(value: object) -> Text:
    """``value`` as a table cell or line that rich prints as it is (no markup, no emoji)."""
    return Text(str(value))


def _print_error(message: str) -> None:
    errors.print(Text.assemble(("error:", "bold red"), " ", " ".join(message.split())), soft_wrap=True)


def _fail(message: str, traceback_of: BaseException | None = None) -> None:
    """Exit with one ``error:`` line; with ``traceback_of`` (--verbose), that error's traceback first."""
    if traceback_of is not None:
        traceback.print_exception(traceback_of, file=sys.stderr)
    _print_error(message)
    raise typer.Exit(code=USAGE_ERROR)


def _plural(count: int, noun: str, plural: str | None = None) -> str:
    return f"{count:,} {noun if count == 1 else plural or noun + 's'}"


def _path_lines(paths: dict[str, object]) -> None:
    """``name: path`` lines, each path whole and absolute: no wrapping, no markup."""
    width = max((len(name) for name in paths), default=0) + 1
    for name, path in paths.items():
        shown = path.absolute() if isinstance(path, Path) else path
        console.print(Text(f"  {name + ':':<{width}} {shown}"), soft_wrap=True)


# ---- how a command runs: in-process, or as Prefect flows -------------------------------------------
PrefectOption = Annotated[
    bool,
    typer.Option(
        "--prefect",
        help="Run as Prefect flows: recorded on PREFECT_API_URL's server (without one, on a temporary "
        "local API that ends with the command). Default: only when PREFECT_API_URL is set.",
    ),
]
VerboseOption = Annotated[
    bool,
    typer.Option(
        "--verbose",
        help="Show Prefect's flow and task logs, TensorFlow's start-up lines and an error's traceback.",
    ),
]


def _as_flows(prefect: bool) -> bool:
    """Whether the command runs as Prefect flows: asked with --prefect, or a Prefect API configured."""
    if prefect:
        return True
    from flows.doctor import configured_api_url

    return configured_api_url() is not None


def _quiet_tensorflow(verbose: bool) -> None:
    """TensorFlow's C++ start-up lines only with --verbose (pipeline.tf_import drops them otherwise);
    set before anything imports TensorFlow, and inherited by worker processes."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0" if verbose else "2")


def _prefect_defaults(verbose: bool = True) -> None:
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
def _quiet_prefect(verbose: bool) -> Iterator[None]:
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


@contextmanager
def _progress_bar(description: str) -> Iterator[Progress]:
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


class _Display:
    """What a long command shows while it works: a line per stage and per epoch (in a terminal and
    in a log alike), and in a terminal a bar for the chunks or batches under way."""

    def __init__(self, progress: Progress, total_epochs: int | None = None):
        self.progress, self.total_epochs = progress, total_epochs
        self.bar = progress.task_ids[0]

    def stage(self, number: int, name: str) -> None:
        from pipeline.job import STAGES

        self.line(f"[{number}/{len(STAGES)}] {name}")
        self.progress.update(self.bar, description=name, completed=0, total=None)

    def line(self, text: str) -> None:
        self.progress.console.print(Text(text), soft_wrap=True)

    def chunk(self, done: int, total: int) -> None:
        self.progress.update(self.bar, description="decoding chunks", completed=done, total=total)

    def step(self, step: int, steps: int) -> None:
        self.progress.update(self.bar, completed=step, total=steps)

    def epoch(self, row: dict[str, Any]) -> None:
        from pipeline.tracking import epoch_line

        self.line(epoch_line(row, self.total_epochs))
        if self.total_epochs is None or row["epoch"] < self.total_epochs:
            next_epoch = row["epoch"] + 1
            of = f" of {self.total_epochs}" if self.total_epochs else ""
            self.progress.update(self.bar, description=f"epoch {next_epoch}{of}", completed=0, total=None)
        else:
            self.progress.update(self.bar, description="evaluating", completed=0, total=None)


# A command that SIGTERM or SIGINT has not ended after this long exits at once.
TERMINATE_GRACE_SECONDS = 5.0
EXIT_CLEANUP_SECONDS = 6.0  # Prefect's temporary server is given 5 s to stop


def _exit_on_signal(signum: int, frame: object) -> None:
    """SIGTERM (docker stop, systemd, `timeout`) and SIGINT (Ctrl-C) unwind a command with exit
    status 128+signal: a flow run ends Crashed, a preparation removes its staging folder, and atexit
    stops Prefect's temporary server. Python's default SIGTERM handling (exit without cleanup) left
    that server running for minutes, holding this command's stdout open so that a pipe reading it
    blocked; Ctrl-C, which also reaches the server, left the command retrying a dead API for 70 s.
    A second signal, or a command still running TERMINATE_GRACE_SECONDS later (a thread stuck in a
    read, retries against a server that is gone), exits at once, after the atexit cleanups (which a
    normal shutdown runs only once every thread has ended)."""
    code = 128 + signum
    if getattr(_exit_on_signal, "fired", False):
        os._exit(code)
    _exit_on_signal.fired = True  # type: ignore[attr-defined]

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


@app.callback()
def main(ctx: typer.Context) -> None:
    """augpipe's commands."""
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGINT):
            previous = signal.signal(signum, _exit_on_signal)
            ctx.call_on_close(lambda signum=signum, previous=previous: signal.signal(signum, previous))


@app.command()
def run(
    out: Annotated[Path, typer.Option(help="Folder for every result of the run.")] = Path("augpipe-output"),
    config: Annotated[
        Path | None, typer.Option(help="YAML file of ImageDataGenerator options for the digits.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed: the same seed gives the same previews and batches.")] = 0,
    epochs: Annotated[int, typer.Option(min=1, help="Training epochs.")] = 8,
    workers: Annotated[int, typer.Option(min=0, help="Augmentation worker processes.")] = 2,
    model: Annotated[
        str, typer.Option(help="The convnet to train (see `augpipe models`).")
    ] = "fashion_convnet",
    prefect: PrefectOption = False,
    verbose: VerboseOption = False,
) -> None:
    """Run the whole service on the embedded default (scikit-learn's bundled digits): prepare,
    preview, train a small convnet, record its metrics, and print where each result is."""
    _quiet_tensorflow(verbose)
    try:
        cfg = AugmentConfig.from_yaml(config) if config else None
        import models

        if model not in models.names():  # an unknown model fails here, before any work
            raise ConfigError(
                f"--model: unknown model {model!r}{did_you_mean(model, models.names())}; "
                f"the models are: {', '.join(models.names())}"
            )
        from pipeline.job import Progress as JobProgress

        with _progress_bar("starting") as bar:
            display = _Display(bar, total_epochs=epochs)
            progress = JobProgress(display.stage, display.chunk, display.epoch, display.step)
            options = {"config": cfg, "seed": seed, "epochs": epochs, "workers": workers, "model": model}
            if _as_flows(prefect):
                _prefect_defaults(verbose)
                from flows.run import run as run_flows

                with _quiet_prefect(verbose):
                    result = run_flows(out, progress=progress, **options)
            else:
                from pipeline.job import run_job

                result = run_job(out, progress=progress, **options)
    except (AugpipeError, OSError) as err:  # ours and the system's: a bug elsewhere shows its traceback
        _fail(str(err), err if verbose else None)
        return
    accuracy = "" if result.test_accuracy is None else f", test accuracy {result.test_accuracy:.2%}"
    console.print(
        Text(
            f"augpipe run: {model} trained {_plural(result.epochs, 'epoch')}{accuracy}, "
            f"in {result.seconds:.0f} s; results:"
        ),
        soft_wrap=True,
    )
    files: dict[str, object] = dict(result.files)
    if result.mlflow_run:
        files["mlflow run"] = result.mlflow_run
    _path_lines(files)


def _parse_target_size(text: str) -> tuple[int, int]:
    match = re.fullmatch(r"\s*(\d+)\s*(?:x|X|,|\s)\s*(\d+)\s*", text)
    if not match:
        raise ConfigError(
            f"--target-size must be HEIGHTxWIDTH or 'HEIGHT WIDTH', e.g. 224x224 (got {text!r})"
        )
    return int(match[1]), int(match[2])


def _parse_splits(text: str) -> dict[str, float]:
    splits: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, value = part.partition("=")
        try:
            splits[name.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep:
            raise ConfigError(
                f"--splits must be NAME=FRACTION pairs, e.g. train=0.8,validation=0.1,test=0.1 (got {text!r})"
            )
    return splits


def _print_prepare_summary(result: PrepareResult) -> None:
    report = result.report
    state = "unchanged, kept" if result.unchanged else "written"
    from pipeline.prepare import count_rows

    rows = count_rows(result)
    splits = [k for k in rows[0] if k not in ("class", "total")] if rows else []
    console.print(
        Text(
            f"{_plural(report['images'], 'image')} {state} "
            f"({report['decoded']:,} decoded, {report['reused']:,} reused):"
        ),
        soft_wrap=True,
    )
    _path_lines({"version": result.version_dir})
    table = Table()
    table.add_column("class")
    for split in splits:
        table.add_column(split, justify="right")
    table.add_column("total", justify="right")
    for row in rows:
        table.add_row(_text(row["class"]), *(str(row[s]) for s in splits), str(row["total"]))
    table.add_section()
    table.add_row("all", *(str(report["split_counts"].get(s, 0)) for s in splits), str(report["images"]))
    console.print(table)
    if report["quarantined"]:
        left_out = report["quarantined"]
        console.print(Text(f"{_plural(len(left_out), 'entry', 'entries')} left out (see report.json):"))
        for q in left_out:
            console.print(Text(f"  {q['key']}: {q['reason']}: {q['message']}"), soft_wrap=True)
    if report["duplicates"]:
        console.print(
            f"{_plural(len(report['duplicates']), 'group')} of identical images, "
            f"{len(report['leakage']):,} of them across splits (see report.json)"
        )


def _cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@app.command()
def prepare(
    source: Annotated[
        str,
        typer.Argument(help="digits, keras:<name>, a class-folder tree, a .csv manifest, .npz or IDX file."),
    ],
    out: Annotated[
        Path | None,
        typer.Option(help="Dataset folder, where versions/ and CURRENT go. Required, here or in --config."),
    ] = None,
    kind: Annotated[
        str | None, typer.Option(help="auto, folders, manifest, idx, npz, keras or digits.")
    ] = None,
    color_mode: Annotated[str | None, typer.Option(help="grayscale, rgb or rgba.")] = None,
    target_size: Annotated[
        str | None, typer.Option(help="Resize every image to HEIGHTxWIDTH (or 'HEIGHT WIDTH').")
    ] = None,
    interpolation: Annotated[
        str | None, typer.Option(help="nearest, bilinear, bicubic, area or lanczos.")
    ] = None,
    keep_aspect_ratio: Annotated[
        bool, typer.Option("--keep-aspect-ratio", help="Center-crop to the target aspect ratio first.")
    ] = False,
    splits: Annotated[
        str | None, typer.Option(help="Split fractions, e.g. train=0.8,validation=0.1,test=0.1.")
    ] = None,
    shard_size: Annotated[int | None, typer.Option(help="Images per shard file.")] = None,
    chunk_size: Annotated[int | None, typer.Option(help="Images per parallel decoding task.")] = None,
    allow_outside_root: Annotated[
        bool, typer.Option("--allow-outside-root", help="Accept manifest paths outside its folder.")
    ] = False,
    download: Annotated[
        bool,
        typer.Option("--download", help="keras:<name>: download the dataset with Keras if it is not cached."),
    ] = False,
    workers: Annotated[
        int | None,
        typer.Option(min=1, help="Decoding processes (default: the CPUs this command may use)."),
    ] = None,
    dask: Annotated[
        str | None,
        typer.Option(help="Dask scheduler address (default: $AUGPIPE_DASK_ADDRESS, else this machine)."),
    ] = None,
    config: Annotated[
        Path | None, typer.Option(help="YAML file of prepare options; command-line options override it.")
    ] = None,
    prefect: PrefectOption = False,
    verbose: VerboseOption = False,
) -> None:
    """Prepare a dataset: decode, validate and split SOURCE into a new version of OUT."""
    from pipeline.config import PrepareConfig
    from pipeline.prepare import resolve_kind

    given: dict[str, Any] = {
        "source": source,
        "out": None if out is None else str(out),
        "kind": kind,
        "color_mode": color_mode,
        "interpolation": interpolation,
        "shard_size": shard_size,
        "chunk_size": chunk_size,
        "keep_aspect_ratio": keep_aspect_ratio or None,
        "allow_outside_root": allow_outside_root or None,
        "download": download or None,
    }
    try:
        if target_size is not None:
            given["target_size"] = _parse_target_size(target_size)
        if splits is not None:
            given["splits"] = _parse_splits(splits)
        overrides = {k: v for k, v in given.items() if v is not None}
        if config is not None:
            cfg = PrepareConfig.from_yaml(config, **overrides)
        elif out is None:
            raise ConfigError("--out is required (or give it in --config)")
        else:
            cfg = PrepareConfig(**overrides)
        source_kind = resolve_kind(cfg)  # a missing or unrecognised source fails here, before any work
        # Absolute paths, so that Dask workers with another working directory find the same files.
        absolute = {"out": os.path.abspath(cfg.out)}
        if source_kind not in ("digits", "keras"):
            absolute["source"] = os.path.abspath(cfg.source)
        cfg = cfg.model_copy(update=absolute)
        address = dask or os.environ.get("AUGPIPE_DASK_ADDRESS") or None
        with _progress_bar(f"preparing {cfg.source}") as bar:
            display = _Display(bar)
            if _as_flows(prefect):
                _prefect_defaults(verbose)
                from flows.prepare import run_prepare

                with _quiet_prefect(verbose):
                    result = run_prepare(cfg, dask_address=address, on_chunk=display.chunk, workers=workers)
            else:
                from pipeline.prepare import prepare as prepare_here

                result = prepare_here(
                    cfg, workers=workers or _cpus(), dask_address=address, on_chunk=display.chunk
                )
    except (AugpipeError, OSError) as err:  # ours and the system's: a bug elsewhere shows its traceback
        _fail(str(err), err if verbose else None)
        return
    _print_prepare_summary(result)


def _parse_input_shape(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.lower().split("x"))
    except ValueError as err:  # int()'s own message, as before
        raise ConfigError(str(err)) from None


@app.command("models")
def models_command(
    name: Annotated[str | None, typer.Argument(help="A model to summarise; without it, list them.")] = None,
    input_shape: Annotated[
        str | None, typer.Option(help="Input HEIGHTxWIDTHxCHANNELS (default: the model's own).")
    ] = None,
    num_classes: Annotated[int, typer.Option(min=2, help="Output classes.")] = 10,
    verbose: VerboseOption = False,
) -> None:
    """List the registered convnets, or print one's layers, output shapes and parameters."""
    import models

    if name is None:
        table = Table(title="augpipe models")
        table.add_column("name")
        table.add_column("default input")
        for model_name in models.names():
            table.add_row(model_name, "x".join(map(str, models.default_input_shape(model_name))))
        console.print(table)
        return
    _quiet_tensorflow(verbose)
    try:
        shape = _parse_input_shape(input_shape) if input_shape else models.default_input_shape(name)
        model = models.build(name, shape, num_classes)
    except (AugpipeError, OSError) as err:
        _fail(str(err), err if verbose else None)
        return
    table = Table(title=f"{name}: input {'x'.join(map(str, shape))}, {num_classes} classes")
    for column in ("layer", "type", "output shape", "params"):
        table.add_column(column, justify="right" if column == "params" else "left")
    for layer, kind, out_shape, params in models.summary_rows(model):  # the last row is the total
        table.add_row(layer, kind, out_shape, f"{params:,}")
    console.print(table)


@app.command("train")
def train_command(
    dataset: Annotated[
        str | None,
        typer.Argument(
            help="A prepared dataset folder, or any source `augpipe prepare` accepts (default: digits)."
        ),
    ] = None,
    model: Annotated[str | None, typer.Option(help="A registered model (see `augpipe models`).")] = None,
    epochs: Annotated[int | None, typer.Option(min=1, help="Epochs.")] = None,
    batch_size: Annotated[int | None, typer.Option(min=1, help="Images per batch.")] = None,
    optimizer: Annotated[str | None, typer.Option(help="rmsprop, adam, adamw or sgd.")] = None,
    learning_rate: Annotated[float | None, typer.Option(help="Initial learning rate.")] = None,
    lr_schedule: Annotated[str | None, typer.Option(help="constant, cosine or exponential.")] = None,
    augment: Annotated[
        Path | None, typer.Option(help="YAML file of ImageDataGenerator options for training batches.")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of weights, batch order and augmentation.")] = None,
    workers: Annotated[
        int | None, typer.Option(min=0, help="Augmentation processes (0: in-process).")
    ] = None,
    run_name: Annotated[
        str | None, typer.Option(help="Run folder name; an unfinished run of this name is resumed.")
    ] = None,
    runs_dir: Annotated[Path | None, typer.Option(help="Where runs (and MLflow's store) go.")] = None,
    early_stopping: Annotated[
        int | None, typer.Option(min=1, help="Stop after this many epochs without improvement.")
    ] = None,
    max_train_samples: Annotated[
        int | None, typer.Option(min=1, help="Train on the first N training images only.")
    ] = None,
    mixed_precision: Annotated[
        bool, typer.Option("--mixed-precision", help="float16 compute (for GPUs with tensor cores).")
    ] = False,
    augment_on_device: Annotated[
        bool, typer.Option("--augment-on-device", help="Apply the affine augmentation in TensorFlow.")
    ] = False,
    mlflow_uri: Annotated[
        str | None, typer.Option(help="MLflow tracking URI (default: SQLite under the runs folder).")
    ] = None,
    no_mlflow: Annotated[bool, typer.Option("--no-mlflow", help="Do not record to MLflow.")] = False,
    config: Annotated[
        Path | None, typer.Option(help="YAML file of train options; command-line options override it.")
    ] = None,
    prefect: PrefectOption = False,
    verbose: VerboseOption = False,
) -> None:
    """Train a model on augmented batches; metrics go to the run's folder and MLflow."""
    _quiet_tensorflow(verbose)
    from pipeline.config import TrainConfig

    given: dict[str, Any] = {
        "dataset": dataset, "model": model, "epochs": epochs, "batch_size": batch_size,
        "optimizer": optimizer, "learning_rate": learning_rate, "lr_schedule": lr_schedule, "seed": seed,
        "workers": workers,
        "run_name": run_name, "runs_dir": None if runs_dir is None else str(runs_dir),
        "early_stopping_patience": early_stopping, "max_train_samples": max_train_samples,
        "mixed_precision": mixed_precision or None, "augment_on_device": augment_on_device or None,
        "mlflow_tracking_uri": mlflow_uri, "mlflow": False if no_mlflow else None,
    }  # fmt: skip
    try:
        if augment is not None:
            given["augment"] = AugmentConfig.from_yaml(augment)
        overrides = {k: v for k, v in given.items() if v is not None}
        if config is not None:
            cfg = TrainConfig.from_yaml(config, **overrides)
        else:
            cfg = TrainConfig(**overrides)
        if current_version(cfg.dataset) is None:  # not prepared: fail now if it cannot be
            from pipeline.config import PrepareConfig
            from pipeline.prepare import resolve_kind

            resolve_kind(PrepareConfig(source=cfg.dataset, out=cfg.runs_dir, **cfg.prepare_options))
        if cfg.run_name:  # a finished run, or one started with another config: say so before starting
            from pipeline.training import resume_state

            resume_state(cfg, Path(cfg.runs_dir) / cfg.run_name)
        with _progress_bar(f"training {cfg.model} on {cfg.dataset}") as bar:
            display = _Display(bar, total_epochs=cfg.total_epochs)
            if _as_flows(prefect):
                _prefect_defaults(verbose)
                from flows.train import run_train

                with _quiet_prefect(verbose):
                    result = run_train(cfg, on_epoch=display.epoch, on_step=display.step)
            else:
                from pipeline.training import train

                result = train(cfg, on_epoch=display.epoch, on_step=display.step)
    except (AugpipeError, OSError) as err:  # ours and the system's: a bug elsewhere shows its traceback
        _fail(str(err), err if verbose else None)
        return
    _print_train_summary(result)


def _print_train_summary(result: TrainResult) -> None:
    summary = result.summary()
    title = f"run {summary['run']}: {_plural(summary['epochs_run'], 'epoch')}"
    if summary["test_accuracy"] is not None:
        title += f", test accuracy {summary['test_accuracy']:.2%}"
    console.print(Text(f"{title}; results:"), soft_wrap=True)
    files: dict[str, object] = {name.replace("_", " "): path for name, path in result.files.items()}
    if summary["mlflow_run_id"]:
        files["mlflow run"] = f"{summary['mlflow_run_id']} ({summary['mlflow_tracking_uri']})"
    _path_lines(files)


@app.command("preview")
def preview_command(
    source: Annotated[
        str, typer.Argument(help="digits, photos, a prepared dataset folder (train split) or an .npz file.")
    ] = "digits",
    config: Annotated[
        Path | None,
        typer.Option(help="YAML file of ImageDataGenerator options (default: the config of `augpipe run`)."),
    ] = None,
    samples: Annotated[int, typer.Option(min=1, help="Images to preview, one row each.")] = 8,
    copies: Annotated[int, typer.Option(min=1, help="Augmented copies per image (with --sweep: steps).")] = 7,
    sweep: Annotated[
        str | None,
        typer.Option(
            help="Vary one option across its range, every other option off: rotation_range, "
            "width_shift_range, height_shift_range, shear_range, zoom_range, brightness_range, "
            "channel_shift_range or fill_mode (the _range suffix may be left out)."
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed: the same seed gives the same bytes.")] = 0,
    out: Annotated[Path, typer.Option(help="Folder for preview.png and preview.html.")] = Path("previews"),
    prefect: PrefectOption = False,
    verbose: VerboseOption = False,
) -> None:
    """Preview an augmentation: each image, then augmented copies captioned with their drawn parameters."""
    from pipeline.preview import source_kind, sweep_option

    try:
        # Expected mistakes fail here, in one line, before any work.
        if config is not None:
            AugmentConfig.from_yaml(config)
        option = sweep_option(sweep) if sweep is not None else None
        source_kind(source)
        config_path = None if config is None else os.path.abspath(config)
        with console.status(f"previewing {escape(source)}...", spinner="dots") as status:
            if _as_flows(prefect):
                _prefect_defaults(verbose)
                from flows.preview import run_preview

                with _quiet_prefect(verbose):
                    result = run_preview(source, config_path, samples, copies, option, seed, out)
            else:
                from pipeline.preview import make_preview

                result = make_preview(source, config_path, samples, copies, option, seed, out)
            status.stop()
    except (AugpipeError, OSError) as err:  # ours and the system's: a bug elsewhere shows its traceback
        _fail(str(err), err if verbose else None)
        return
    what = (
        f"a sweep of {result.sweep}"
        if result.sweep
        else f"{_plural(result.cols - 1, 'augmented copy', 'augmented copies')} each"
    )
    console.print(
        Text(f"preview of {_plural(result.rows, 'image')} of {source}, {what} (seed {result.seed}):"),
        soft_wrap=True,
    )
    _path_lines({"picture": result.png, "page": result.html})


@app.command("serve")
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
    import sys

    from flows import serve as serving
    from flows.doctor import configured_api_url
    from flows.home import HomeError, augpipe_home

    _prefect_defaults()
    api_url = configured_api_url()
    try:
        specs = serving.load_deployments(file)
        if pool is not None:
            if names:
                raise serving.ServeError("give deployment names or --pool, not both: a worker serves a pool")
            if not api_url:
                raise serving.ServeError(
                    "--pool needs PREFECT_API_URL: a worker takes its runs from a Prefect server's work pool"
                )
            command = serving.worker_command(pool, specs, limit=limit)
            home = augpipe_home()  # the pull step of every run needs it: refuse now, not at each run
        else:
            deployments = serving.runner_deployments(serving.select(specs, names), file.resolve().parent)
            if api_url:
                serving.check_not_on_a_pool(deployments)
    except (serving.ServeError, HomeError) as err:
        _fail(str(err))
        return
    if pool is not None:
        console.print(
            f"worker for work pool {escape(pool)!r} on {escape(api_url or '')}, running flows from {home}",
            soft_wrap=True,
        )
        sys.stdout.flush()
        os.execv(command[0], command)  # the worker replaces this process: signals reach it directly
        return
    if not api_url:
        console.print(
            "[yellow]note:[/] PREFECT_API_URL is not set: serving on Prefect's embedded API, which lives "
            "only as long as this process (see the README's Team setup for a shared server)",
            soft_wrap=True,
        )
    serving.serve(deployments, limit=limit)


@app.command("doctor")
def doctor_command(
    timeout: Annotated[float, typer.Option(min=0.1, help="Seconds to wait for the Prefect API.")] = 3.0,
    check_ephemeral: Annotated[
        bool,
        typer.Option("--check-ephemeral", help="Without PREFECT_API_URL, start the embedded API to try it."),
    ] = False,
) -> None:
    """Print versions, the GPUs TensorFlow sees, CPUs, and whether the Prefect API answers."""
    from flows.doctor import configured_api_url, diagnose

    _prefect_defaults()
    _quiet_tensorflow(verbose=False)
    with console.status("checking TensorFlow and the Prefect API..."):
        report = diagnose(configured_api_url(), timeout=timeout, check_ephemeral=check_ephemeral)
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
        _print_error(f"Prefect API {where} does not answer: {report.api.detail}")
        raise typer.Exit(code=1)


if __name__ == "__main__":
    app()
