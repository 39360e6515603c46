"""The main job (`augpipe run`) end to end on the embedded default data: prepare, preview, train."""

from __future__ import annotations

import csv
import json

import cv2
import pytest
from typer.testing import CliRunner

from flows.cli import app
from flows.run import run
from pipeline import AugmentConfig
from pipeline.dataset import PreparedDataset

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


def test_cli_run_prints_where_results_are(tmp_path):
    cfg = tmp_path / "aug.yaml"
    AugmentConfig(rotation_range=40, zoom_range=0.2).to_yaml(cfg)
    out = tmp_path / "out"
    result = runner.invoke(
        app, ["run", "--out", str(out), "--config", str(cfg), "--epochs", "1", "--workers", "0"]
    )
    assert result.exit_code == 0, result.output
    for name in ("digits preview", "confusion matrix", "metrics", "mlflow run", "test accuracy"):
        assert name in result.output
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
    assert model.exit_code == 2 and "Unknown model 'vgg'" in model.output
