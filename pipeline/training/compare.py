"""Does augmentation help? One model trained for the same epochs, with the same seed, on the same
prepared dataset, once per augmentation config (``none`` included), and the results side by side.

>>> result = compare(CompareConfig(train=TrainConfig(dataset="digits", epochs=5),
...                                augments={"shifts": AugmentConfig(width_shift_range=0.1)}))
>>> print(result.table())

Runs go to ``<runs_dir>/<name>/<variant>/`` (each an ordinary run, resumable and listed by the
studio); the table (``compare.json``) and the curves of every run (``curves.png``) to
``<runs_dir>/<name>/``. A variant whose run has already finished with the same configuration is read,
not trained again, so a comparison killed half-way continues where it stopped.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pipeline import tracking
from pipeline.config import TrainConfig
from pipeline.config.compare import CompareConfig
from pipeline.errors import RunStateError
from pipeline.io import png_bytes, write_atomic
from pipeline.training.data import TrainData, resolve_dataset
from pipeline.training.layout import COMPARE, CURVES, SUMMARY
from pipeline.training.state import digest, read_state, run_folder

CURVE_PANELS = (("val_accuracy", "accuracy", "accuracy"), ("val_loss", "loss", "loss"))


@dataclass(frozen=True)
class CompareRow:
    """One variant's run, as the table shows it."""

    variant: str
    run_dir: str
    epochs: int
    weights_epoch: int | None  # whose weights the run reports: the lowest validation loss's by default
    val_accuracy: float | None  # that epoch's
    test_accuracy: float | None  # with that epoch's weights
    train_accuracy: float | None  # the last epoch's, on augmented batches
    images_per_second: float


@dataclass(frozen=True)
class CompareResult:
    folder: Path
    rows: list[CompareRow]
    files: dict[str, Path]

    def table(self) -> str:
        """The rows as a plain-text table (what ``augpipe compare`` prints)."""
        head = ("augmentation", "val acc", "epoch", "test acc", "train acc", "img/s")
        body = [
            (
                r.variant,
                _percent(r.val_accuracy),
                "-" if r.weights_epoch is None else f"{r.weights_epoch}/{r.epochs}",
                _percent(r.test_accuracy),
                _percent(r.train_accuracy),
                f"{r.images_per_second:,.0f}",
            )
            for r in self.rows
        ]
        widths = [max(len(str(c)) for c in column) for column in zip(head, *body, strict=True)]
        return "\n".join(
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))
            )
            for row in (head, *body)
        )


VariantCallback = Callable[[str, TrainConfig, bool], None]  # (variant, its config, already finished)


def prepared(cfg: CompareConfig) -> dict[str, TrainConfig]:
    """The variants' configs on ``cfg.train.dataset`` prepared once (a source is prepared under
    ``runs_dir/datasets`` as ``augpipe train`` would), so every run reads the same images."""
    return cfg.variants(dataset=str(resolve_dataset(cfg.train)))


def is_finished(run: TrainConfig) -> bool:
    """Whether ``run``'s folder holds a finished run of this configuration, all its epochs done."""
    state = read_state(run_folder(run))
    return (
        state is not None
        and state.finished
        and state.config_digest == digest(run)
        and (state.epochs_done >= run.total_epochs or state.stopped_early)
        and (run_folder(run) / SUMMARY).is_file()
    )


def compare(
    cfg: CompareConfig,
    train: Callable[..., Any] | None = None,
    on_variant: VariantCallback | None = None,
    data: TrainData | None = None,
    **train_kwargs: Any,
) -> CompareResult:
    """Train each variant in turn in this process (``train``: :func:`pipeline.training.train`, or
    what wraps it), skipping finished ones, then write the table and the curves.

    ``data``: the splits every variant trains on, instead of ``cfg.train.dataset`` prepared (e.g. a
    dataset's official test split held in memory).
    """
    from pipeline.training.loop import train as train_here

    run_training = train if train is not None else train_here
    runs = prepared(cfg) if data is None else cfg.variants()
    kwargs: dict[str, Any] = {**train_kwargs, **({"data": data} if data is not None else {})}
    for name, run in runs.items():
        done = is_finished(run)
        if on_variant is not None:
            on_variant(name, run, done)
        if not done:
            run_training(run, **kwargs)
    return write_results(cfg, runs)


def read_row(variant: str, run_dir: Path) -> CompareRow:
    """The row of the finished run in ``run_dir``, from its summary.json."""
    path = run_dir / SUMMARY
    try:
        summary = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise RunStateError(f"{path}: the run of {variant!r} has no readable summary ({err})") from None
    history: list[dict[str, Any]] = summary.get("epochs") or []
    weights_epoch = summary.get("weights_epoch", summary.get("best_epoch"))
    best = next((r for r in history if r.get("epoch") == weights_epoch), history[-1] if history else {})
    return CompareRow(
        variant=variant,
        run_dir=str(run_dir),
        epochs=int(summary.get("epochs_run", len(history))),
        weights_epoch=weights_epoch,
        val_accuracy=best.get("val_accuracy"),
        test_accuracy=summary.get("test_accuracy"),
        train_accuracy=history[-1].get("accuracy") if history else None,
        images_per_second=float(summary.get("mean_images_per_second") or 0.0),
    )


def write_results(cfg: CompareConfig, runs: Mapping[str, TrainConfig]) -> CompareResult:
    """compare.json (the table, each run's folder and config) and curves.png, beside the runs."""
    folder = cfg.folder
    rows = [read_row(name, run_folder(run)) for name, run in runs.items()]
    curves = {row.variant: _history(Path(row.run_dir)) for row in rows}
    title = f"{cfg.name}: {cfg.train.model} on {Path(cfg.train.dataset).name or cfg.train.dataset}"
    picture = tracking.render_curves(curves, CURVE_PANELS, title)
    files = {"curves": write_atomic(folder / CURVES, png_bytes(picture))}
    record = {
        "name": cfg.name,
        "model": cfg.train.model,
        "dataset": next(iter(runs.values())).dataset if runs else cfg.train.dataset,
        "epochs": cfg.train.total_epochs,
        "seed": cfg.train.seed,
        "rows": [asdict(r) for r in rows],
        "augments": {
            name: run.augment.model_dump(mode="json", exclude_defaults=True) for name, run in runs.items()
        },
    }
    files["table"] = write_atomic(folder / COMPARE, json.dumps(record, indent=2).encode())
    return CompareResult(folder, rows, files)


def read_result(folder: Path) -> CompareResult:
    """The comparison written to ``folder`` by :func:`write_results`."""
    path = folder / COMPARE
    try:
        record = json.loads(path.read_text())
        rows = [CompareRow(**row) for row in record["rows"]]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise RunStateError(f"{path} is not a comparison this augpipe wrote ({err})") from None
    return CompareResult(folder, rows, {"table": path, "curves": folder / CURVES})


def _history(run_dir: Path) -> list[dict[str, Any]]:
    return list(json.loads((run_dir / SUMMARY).read_text()).get("epochs") or [])


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.2%}"
