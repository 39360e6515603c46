"""A runs folder as the studio shows it: each run's status, its per-epoch curves from ``metrics.csv``,
its confusion matrix, and the runs the studio started (their launch records, kept in ``.studio/``).

A run is a folder holding ``config.yaml`` or ``metrics.csv``; a folder holding runs (what a
comparison of several configs writes) is listed as a group, its runs named ``group/run``. Nothing
here writes into a run's own folder: training owns it.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from pipeline.config import load_yaml
from pipeline.errors import AugpipeError
from pipeline.studio.paths import inside
from pipeline.tracking import EPOCH_COLUMNS
from pipeline.training import CHECKPOINTS, COMPARE, CONFIG, CONFUSION_MATRIX, CURVES, METRICS, SUMMARY
from pipeline.training import STATE as STATE_FILE

STATE = f"{CHECKPOINTS}/{STATE_FILE}"

LAUNCHES = ".studio"  # the studio's own folder under the runs folder: launch records, configs, logs
MAX_METRICS_BYTES = 4 << 20  # a metrics.csv of 4 MiB holds ~40,000 epochs: anything larger is not one
MAX_JSON_BYTES = 16 << 20
RECENT_SECONDS = 120.0  # a run without a launch record whose files changed this recently is running
MAX_RUNS = 500
# Exit statuses of a run ended by SIGINT or SIGTERM (augpipe exits with 128 + signal; Popen gives -signal
# when the process died of it): stopped, not failed, and resumable with the same run name.
STOPPED_CODES = frozenset({0, 130, 143, -2, -15})

Status = Literal["starting", "running", "finished", "failed", "stopped"]


class RunNotFound(AugpipeError, FileNotFoundError):
    """No run (or comparison) of that name under the runs folder."""


@dataclass(frozen=True)
class LaunchRecord:
    """A run the studio started: locally (``pid``, ``log``) or as a Prefect flow run (``flow_run_id``).
    ``exit_code`` is set once a local run's process has ended."""

    run: str
    mode: Literal["local", "prefect"]
    started: float
    pid: int | None = None
    flow_run_id: str | None = None
    exit_code: int | None = None
    log: str | None = None  # the log file's name in LAUNCHES
    config: str | None = None  # the train config's file name in LAUNCHES


@dataclass(frozen=True)
class RunSummary:
    """One run's line on the runs page."""

    name: str
    status: Status
    epochs_done: int
    epochs_total: int | None
    model: str | None
    dataset: str | None
    test_accuracy: float | None
    val_accuracy: float | None
    updated: float
    mode: str | None  # local or prefect when the studio started it
    has_confusion: bool
    group: str | None


@dataclass(frozen=True)
class Curves:
    """A run's per-epoch metrics, one list per metrics.csv column (None where a value is missing)."""

    name: str
    columns: dict[str, list[float | None]]


def launches_dir(runs_dir: Path) -> Path:
    return runs_dir / LAUNCHES


def write_launch(runs_dir: Path, record: LaunchRecord) -> None:
    """Save ``record`` (replacing an earlier one for the same run), atomically."""
    folder = launches_dir(runs_dir)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{record.run}.json"
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(asdict(record)))
    tmp.replace(path)


def read_launches(runs_dir: Path) -> dict[str, LaunchRecord]:
    """Every launch record, by run name; unreadable ones are left out."""
    records: dict[str, LaunchRecord] = {}
    folder = launches_dir(runs_dir)
    if not folder.is_dir():
        return records
    for path in sorted(folder.glob("*.json"))[:MAX_RUNS]:
        try:
            record = LaunchRecord(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError):
            continue
        records[record.run] = record
    return records


def _is_run(folder: Path) -> bool:
    return (folder / CONFIG).is_file() or (folder / METRICS).is_file()


def _subfolders(folder: Path) -> list[Path]:
    """The folders directly in ``folder``, by name: not hidden, symlinks not followed; [] when it
    cannot be read."""
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError:
        return []
    return [Path(e.path) for e in entries if not e.name.startswith(".") and e.is_dir(follow_symlinks=False)]


def run_folders(runs_dir: Path) -> list[tuple[str, Path, str | None]]:
    """(name, folder, group) of every run: children of ``runs_dir``, and children of a group folder.
    Symlinks are not followed, hidden folders are skipped."""
    found: list[tuple[str, Path, str | None]] = []
    for folder in _subfolders(runs_dir):
        if _is_run(folder):
            found.append((folder.name, folder, None))
            continue
        for child in _subfolders(folder):
            if _is_run(child):
                found.append((f"{folder.name}/{child.name}", child, folder.name))
        if len(found) >= MAX_RUNS:
            break
    return found[:MAX_RUNS]


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        if path.stat().st_size > MAX_JSON_BYTES:
            return None
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _train_config(folder: Path) -> dict[str, Any]:
    try:
        data = load_yaml(folder / CONFIG)
    except (AugpipeError, OSError):
        return {}
    if isinstance(data, dict) and isinstance(data.get("train"), dict):
        data = data["train"]
    return data if isinstance(data, dict) else {}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process of that id
        return True
    return True


def _status(
    folder: Path | None, launch: LaunchRecord | None, summary: dict[str, Any] | None, now: float
) -> Status:
    if summary is not None:
        return "finished"
    if launch is not None:
        if launch.mode == "local":
            if launch.exit_code is not None:
                return "stopped" if launch.exit_code in STOPPED_CODES else "failed"
            if launch.pid is not None and _alive(launch.pid):
                return "running" if folder is not None else "starting"
            return "stopped"
        if folder is None:
            return "starting"
    if folder is not None and now - _updated(folder) < RECENT_SECONDS:
        return "running"
    return "stopped"


def _updated(folder: Path) -> float:
    times = [folder.stat().st_mtime]
    for name in (METRICS, STATE, SUMMARY):
        try:
            times.append((folder / name).stat().st_mtime)
        except OSError:
            pass
    return max(times)


def list_runs(runs_dir: Path) -> list[RunSummary]:
    """Every run under ``runs_dir`` and every run the studio started there, newest first."""
    launches = read_launches(runs_dir)
    now = time.time()
    runs: list[RunSummary] = []
    seen: set[str] = set()
    for name, folder, group in run_folders(runs_dir):
        seen.add(name)
        runs.append(_summary(name, folder, group, launches.get(name), now))
    for name, launch in launches.items():
        if name not in seen:  # started, its folder not written yet (a source being prepared), or failed
            runs.append(_summary(name, None, None, launch, now))
    runs.sort(key=lambda r: r.updated, reverse=True)
    return runs


def _summary(
    name: str, folder: Path | None, group: str | None, launch: LaunchRecord | None, now: float
) -> RunSummary:
    summary = _read_json(folder / SUMMARY) if folder is not None else None
    config = _train_config(folder) if folder is not None else {}
    curves = read_curves_file(folder / METRICS) if folder is not None else {}
    epochs = [e for e in curves.get("epoch", []) if e is not None]
    val = [v for v in curves.get("val_accuracy", []) if v is not None]
    total = None
    if isinstance(config.get("epochs"), int):
        total = config["epochs"] + int(config.get("fine_tune_epochs") or 0)
    test = summary.get("test_accuracy") if summary else None
    return RunSummary(
        name=name,
        status=_status(folder, launch, summary, now),
        epochs_done=len(epochs),
        epochs_total=total,
        model=config.get("model") if isinstance(config.get("model"), str) else None,
        dataset=config.get("dataset") if isinstance(config.get("dataset"), str) else None,
        test_accuracy=float(test) if isinstance(test, int | float) else None,
        val_accuracy=val[-1] if val else None,
        updated=_updated(folder) if folder is not None else (launch.started if launch else now),
        mode=launch.mode if launch else None,
        has_confusion=folder is not None and (folder / CONFUSION_MATRIX).is_file(),
        group=group,
    )


def _number(text: str | None) -> float | None:
    if text is None or text == "":
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def read_curves_file(path: Path) -> dict[str, list[float | None]]:
    """metrics.csv's numeric columns (``phase`` left out); empty when missing or too large."""
    try:
        if path.stat().st_size > MAX_METRICS_BYTES:
            return {}
        text = path.read_text()
    except OSError:
        return {}
    columns: dict[str, list[float | None]] = {c: [] for c in EPOCH_COLUMNS if c != "phase"}
    for row in csv.DictReader(io.StringIO(text)):
        for name, values in columns.items():
            values.append(_number(row.get(name)))
    return columns


def run_folder(runs_dir: Path, name: str) -> Path:
    """The folder of run ``name`` (``run`` or ``group/run``), inside ``runs_dir`` whatever the name says."""
    folder = inside(runs_dir, name)
    if folder == runs_dir.resolve() or not folder.is_dir() or not _is_run(folder):
        raise RunNotFound(f"no run {name[:200]!r} under {runs_dir}")
    return folder


def read_curves(runs_dir: Path, name: str) -> Curves:
    return Curves(name, read_curves_file(run_folder(runs_dir, name) / METRICS))


@dataclass(frozen=True)
class Confusion:
    """The test split's confusion matrix ([true][predicted]) and its class names."""

    classes: list[str]
    matrix: list[list[int]]


def read_confusion(runs_dir: Path, name: str) -> Confusion | None:
    """From summary.json; None before the run has finished or without a test split."""
    summary = _read_json(run_folder(runs_dir, name) / SUMMARY)
    if not summary or not isinstance(summary.get("confusion_matrix"), list):
        return None
    return Confusion([str(c) for c in summary.get("classes") or []], summary["confusion_matrix"])


def confusion_picture(runs_dir: Path, name: str) -> Path:
    """The run's confusion_matrix.png."""
    path = run_folder(runs_dir, name) / CONFUSION_MATRIX
    if not path.is_file():
        raise RunNotFound(f"run {name[:200]!r} has no {CONFUSION_MATRIX} (yet)")
    return path


def read_log(runs_dir: Path, name: str, max_bytes: int = 16_384) -> str:
    """The end of the log of a run the studio started locally ("" for others)."""
    record = read_launches(runs_dir).get(name)
    if record is None or not record.log:
        return ""
    path = inside(launches_dir(runs_dir), record.log)
    try:
        with path.open("rb") as f:
            f.seek(max(0, path.stat().st_size - max_bytes))
            return f.read().decode(errors="replace")
    except OSError:
        return ""


@dataclass(frozen=True)
class Comparison:
    """What ``augpipe compare`` wrote in a group folder: its table (one row per augmentation, each
    naming its run ``group/variant``) and whether its curves picture is there."""

    name: str
    model: str | None
    dataset: str | None
    epochs: int | None
    rows: list[dict[str, Any]]
    has_curves: bool


def list_comparisons(runs_dir: Path) -> list[Comparison]:
    """Every comparison directly under ``runs_dir`` (a folder holding ``compare.json``), by name."""
    found: list[Comparison] = []
    for folder in _subfolders(runs_dir):
        record = _read_json(folder / COMPARE) if (folder / COMPARE).is_file() else None
        rows = record.get("rows") if record else None
        if record is None or not isinstance(rows, list):
            continue
        kept = [
            {**row, "run": f"{folder.name}/{row['variant']}"}
            for row in rows
            if isinstance(row, dict) and isinstance(row.get("variant"), str)
        ]
        epochs = record.get("epochs")
        found.append(
            Comparison(
                name=folder.name,
                model=record.get("model") if isinstance(record.get("model"), str) else None,
                dataset=record.get("dataset") if isinstance(record.get("dataset"), str) else None,
                epochs=epochs if isinstance(epochs, int) else None,
                rows=kept,
                has_curves=(folder / CURVES).is_file(),
            )
        )
        if len(found) >= MAX_RUNS:
            break
    return found


def comparison_picture(runs_dir: Path, name: str) -> Path:
    """The comparison ``name``'s curves.png, inside ``runs_dir`` whatever the name says."""
    folder = inside(runs_dir, name)
    path = folder / CURVES
    if folder == runs_dir.resolve() or not (folder / COMPARE).is_file() or not path.is_file():
        raise RunNotFound(f"no comparison {name[:200]!r} with curves under {runs_dir}")
    return path
