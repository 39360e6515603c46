"""Does augmentation help? ``augpipe compare``: the variants' configs, local and flow runs on the
bundled digits, the table, the curves, and a comparison continued after its runs finished. The work
pool path (one train-model run per variant) is tested against a real server in test_service.py."""

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from pipeline.config import AugmentConfig, CompareConfig, ConfigError, PrepareConfig, TrainConfig
from pipeline.prepare import prepare
from pipeline.training.compare import COMPARE, CURVES, compare, read_result
from pipeline.training.state import read_state

REPO = Path(__file__).resolve().parents[1]
SHIFTS = {"width_shift_range": 0.1, "height_shift_range": 0.1}


@pytest.fixture(scope="module")
def digits_dataset(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("data") / "digits"
    prepare(PrepareConfig(source="digits", out=str(out)))
    return out


def _train(tmp: Path, dataset: Path | str, **overrides) -> TrainConfig:
    base = dict(
        dataset=str(dataset), model="shapes_net", epochs=2, batch_size=64, learning_rate=5e-3, workers=0,
        runs_dir=str(tmp / "runs"), mlflow=False, tensorboard=False,
    )  # fmt: skip
    return TrainConfig(**{**base, **overrides})


def test_variants_differ_in_their_augmentation_only(tmp_path):
    base = _train(tmp_path, "digits", augment=AugmentConfig(rescale=1 / 127.5, rotation_range=30))
    cfg = CompareConfig(
        name="c",
        train=base,
        augments={"shifts": AugmentConfig(**SHIFTS), "own-scale": AugmentConfig(rescale=0.5, zoom_range=0.2)},
    )
    runs = cfg.variants(dataset="/data/prepared")
    assert list(runs) == ["none", "shifts", "own-scale"]
    for name, run in runs.items():
        assert run.run_name == name and run.runs_dir == str(tmp_path / "runs" / "c")
        assert run.dataset == "/data/prepared"
        kept = run.model_dump(exclude={"augment", "run_name", "runs_dir", "dataset"})
        assert kept == base.model_dump(exclude={"augment", "run_name", "runs_dir", "dataset"})
    # `none` and a variant that names no normalisation take the base's (not its rotation).
    assert runs["none"].augment == AugmentConfig(rescale=1 / 127.5)
    assert runs["shifts"].augment == AugmentConfig(rescale=1 / 127.5, **SHIFTS)
    # A variant that names its normalisation keeps it.
    assert runs["own-scale"].augment == AugmentConfig(rescale=0.5, zoom_range=0.2)


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"name": "a/b"}, "name must be a plain folder name"),
        ({"augments": {"x y": {}}}, "got 'x y'"),
        ({"train": {"run_name": "r"}}, "train.run_name is set per variant"),
    ],
)
def test_config_mistakes_are_named(given, message):
    with pytest.raises(ConfigError, match=message):
        CompareConfig(**given)


def test_compare_trains_each_variant_once_and_draws_their_curves(digits_dataset, tmp_path):
    cfg = CompareConfig(name="digits", train=_train(tmp_path, digits_dataset), augments={"shifts": SHIFTS})
    seen: list[tuple[str, bool]] = []
    epochs: list[dict] = []
    result = compare(
        cfg, on_variant=lambda name, run, done: seen.append((name, done)), on_epoch=epochs.append
    )
    assert seen == [("none", False), ("shifts", False)]
    assert len(epochs) == 4
    assert [r.variant for r in result.rows] == ["none", "shifts"]
    folder = tmp_path / "runs" / "digits"
    for row in result.rows:
        summary = json.loads((folder / row.variant / "summary.json").read_text())
        assert row.test_accuracy == summary["test_accuracy"] and row.epochs == 2
        history = {r["epoch"]: r for r in summary["epochs"]}
        assert row.val_accuracy == history[row.weights_epoch]["val_accuracy"]
        assert row.train_accuracy == history[2]["accuracy"]
    # The same seed and data: the runs differ by their augmentation, so their training differs.
    assert result.rows[0].train_accuracy != result.rows[1].train_accuracy
    table = result.table().splitlines()
    assert table[0].split()[:3] == ["augmentation", "val", "acc"]
    assert table[1].startswith("none") and table[2].startswith("shifts")
    picture = cv2.imread(str(folder / CURVES))
    assert picture is not None and picture.shape[1] > 800
    # Each run draws in its own colour: the picture holds both palette colours (BGR here).
    for rgb in ((0, 114, 178), (230, 159, 0)):
        assert np.all(picture == rgb[::-1], axis=-1).sum() > 50
    assert read_result(folder).rows == result.rows
    assert json.loads((folder / COMPARE).read_text())["augments"]["shifts"]["width_shift_range"] == 0.1

    # Started again: both runs are finished with the same configuration, so nothing trains.
    before = {v: read_state(folder / v) for v in ("none", "shifts")}
    seen.clear()
    again = compare(cfg, on_variant=lambda name, run, done: seen.append((name, done)))
    assert seen == [("none", True), ("shifts", True)]
    assert again.rows == result.rows
    assert {v: read_state(folder / v) for v in ("none", "shifts")} == before


def test_the_flow_gives_the_local_result(digits_dataset, tmp_path, prefect_api):
    from flows.compare import run_compare

    local = compare(CompareConfig(name="a", train=_train(tmp_path, digits_dataset), augments={"s": SHIFTS}))
    flowed = run_compare(
        CompareConfig(name="b", train=_train(tmp_path, digits_dataset), augments={"s": SHIFTS}),
        on_pool=None,  # the test API has no train-model deployment: the variants train in the flow run
    )
    strip = lambda rows: [(r.variant, r.val_accuracy, r.test_accuracy, r.train_accuracy) for r in rows]  # noqa: E731
    assert strip(flowed.rows) == strip(local.rows)  # same seed, same data: the same runs


def test_cli_compares_augmentation_files_and_names_mistakes(digits_dataset, tmp_path):
    (tmp_path / "flip.yaml").write_text("horizontal_flip: true\n")
    (tmp_path / "bad.yaml").write_text("rotation_range: -5\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    augpipe = [sys.executable, "-m", "flows.cli"]
    common = ["--epochs", "1", "--workers", "0", "--runs-dir", str(tmp_path / "runs"), "--no-mlflow"]
    done = subprocess.run(
        [*augpipe, "compare", str(digits_dataset), "--augment", str(tmp_path / "flip.yaml"), *common],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert any(line.startswith("none ") for line in lines) and any(line.startswith("flip ") for line in lines)
    assert (tmp_path / "runs" / "compare" / "flip" / "summary.json").is_file()
    assert str(tmp_path / "runs" / "compare" / "curves.png") in done.stdout
    for args, message in (
        (["--augment", str(tmp_path / "bad.yaml")], "rotation_range"),
        (
            ["--augment", f"a={tmp_path / 'flip.yaml'}", "--augment", f"a={tmp_path / 'flip.yaml'}"],
            "given twice",
        ),
    ):
        bad = subprocess.run(
            [*augpipe, "compare", str(digits_dataset), *args, *common, "--name", "bad"],
            cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert bad.returncode != 0 and message in bad.stderr + bad.stdout
        assert not (tmp_path / "runs" / "bad").exists()
