"""The main job (`augpipe run`) end to end on the embedded default data: prepare, preview, train."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from flows.cli import app
from flows.run import run
from pipeline import AugmentConfig
from pipeline.dataset import PreparedDataset
from pipeline.job import run_job

runner = CliRunner()


@pytest.fixture(autouse=True)
def _on_prefect_api(prefect_api):
    """The job's flows run against the session's temporary API."""


def test_run_prepares_previews_trains_and_says_where_everything_is(tmp_path):
    result = run(tmp_path / "out", seed=3, epochs=2, workers=1)
    files = result.files
    dataset = PreparedDataset(tmp_path / "out" / "prepared" / "digits")
    assert dataset.dir == files["dataset"] and sum(dataset.manifest["splits"][s]["count"] for s in
                                                   dataset.splits) == 1797  # fmt: skip
    for name in ("digits preview", "photos preview"):
        picture = cv2.imread(str(files[name]))
        assert picture is not None and picture.shape[0] > 200
    assert "data:image/png;base64," in files["digits preview page"].read_text()
    with open(files["metrics"]) as f:
        assert [row["epoch"] for row in csv.DictReader(f)] == ["1", "2"]
    summary = json.loads(files["summary"].read_text())
    assert summary["model"] == "fashion_convnet" and summary["epochs_run"] == result.epochs == 2
    assert summary["test_accuracy"] == pytest.approx(result.test_accuracy)
    assert result.test_accuracy > 0.3  # two epochs on the digits already beat chance (0.1) by far
    assert files["model"].exists() and files["confusion matrix"].exists()
    assert result.mlflow_run and (tmp_path / "out" / "runs" / "mlflow.db").exists()
    assert AugmentConfig.from_yaml(files["augmentation config"]).rotation_range == 15


def test_in_process_and_as_flows_the_job_does_the_same_work(tmp_path):
    """One job, two ways to start it: the same seed gives the same data, previews and training."""
    here = run_job(tmp_path / "here", seed=5, epochs=1, workers=0)
    flows = run(tmp_path / "flows", seed=5, epochs=1, workers=0)
    assert here.files.keys() == flows.files.keys()
    for name in ("digits preview", "photos preview"):
        assert here.files[name].read_bytes() == flows.files[name].read_bytes()
    datasets = [PreparedDataset(r.files["dataset"].parents[1]) for r in (here, flows)]
    assert datasets[0].splits == datasets[1].splits
    for split in datasets[0].splits:
        (xa, ya), (xb, yb) = (d.arrays(split) for d in datasets)
        assert np.array_equal(np.asarray(xa), np.asarray(xb)) and np.array_equal(ya, yb)
    assert here.test_accuracy == pytest.approx(flows.test_accuracy, abs=1e-6)
    with open(here.files["metrics"]) as a, open(flows.files["metrics"]) as b:
        loss = [[float(row["loss"]) for row in csv.DictReader(f)] for f in (a, b)]
    assert loss[0] == pytest.approx(loss[1], rel=1e-5)


def test_cli_run_shows_its_stages_and_epochs_and_prints_every_path_whole(tmp_path, monkeypatch):
    monkeypatch.setenv("COLUMNS", "40")  # a narrow terminal, or a log: no path may be cut
    cfg = tmp_path / "aug.yaml"
    AugmentConfig(rotation_range=40, zoom_range=0.2).to_yaml(cfg)
    out = tmp_path / "a folder with a long name for its results" / "out"
    result = runner.invoke(
        app, ["run", "--out", str(out), "--config", str(cfg), "--epochs", "2", "--workers", "0"]
    )
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    stages = [line for line in lines if line.startswith("[")]
    assert stages == ["[1/4] preparing the digits", "[2/4] previewing the digits",
                      "[3/4] previewing the photos", "[4/4] training"]  # fmt: skip
    assert [line.split(":")[0] for line in lines if line.startswith("epoch ")] == [
        "epoch 1 of 2",
        "epoch 2 of 2",
    ]
    assert "trained 2 epochs, test accuracy" in result.output
    printed = {}
    for line in lines:
        if line.startswith("  ") and ": " in line:
            name, _, path = line.strip().partition(": ")
            printed[name.rstrip(":")] = path.strip()
    for name in ("dataset", "digits preview", "confusion matrix", "metrics", "model", "summary"):
        assert Path(printed[name]).exists(), (name, printed)
    assert printed["augmentation config"] == str(out.resolve() / "digits_augment.yaml")
    assert AugmentConfig.from_yaml(out / "digits_augment.yaml").rotation_range == 40


def test_cli_run_expected_mistakes_are_one_clear_line(tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("rotation_range: -5\nfill_mode: mirror\n")
    result = runner.invoke(app, ["run", "--out", str(tmp_path / "out"), "--config", str(cfg)])
    assert result.exit_code == 2
    assert "rotation_range" in result.output and "fill_mode" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "out").exists()
    missing = runner.invoke(app, ["run", "--config", str(tmp_path / "nope.yaml")])
    assert missing.exit_code == 2 and "config file not found" in missing.output
    model = runner.invoke(app, ["run", "--out", str(tmp_path / "out"), "--model", "vgg"])
    assert model.exit_code == 2 and "--model: unknown model 'vgg'; the models are: shapes_net" in model.output
