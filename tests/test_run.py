"""The main job (`augpipe run`) end to end on the embedded default data."""

from __future__ import annotations

import json

import cv2
import numpy as np
from typer.testing import CliRunner

from flows.cli import app
from flows.run import run
from pipeline import AugmentConfig
from pipeline.ingest import load_bundled_digits

runner = CliRunner()


def test_run_writes_complete_reproducible_results(tmp_path):
    first = run(tmp_path / "a", seed=5, epochs=2, workers=1)
    second = run(tmp_path / "b", seed=5, epochs=2, workers=2)
    images, labels, _ = load_bundled_digits()
    a = np.load(first.out_dir / "digits_augmented.npz")
    b = np.load(second.out_dir / "digits_augmented.npz")
    assert a["images"].shape == (2, *images.shape) and a["images"].dtype == np.uint8
    assert np.array_equal(a["labels"], labels)
    assert np.array_equal(a["images"], b["images"])  # 1 worker == 2 workers
    assert not np.array_equal(a["images"][0], a["images"][1])  # epochs differ
    assert not np.array_equal(a["images"][0], images)  # it did augment
    lines = (first.out_dir / "digits_params_epoch0.jsonl").read_text().splitlines()
    assert len(lines) == len(images) and set(json.loads(lines[0])) >= {"index", "theta", "tx", "zx"}
    preview = cv2.imread(str(first.out_dir / "digits_preview.png"))
    assert preview is not None and preview.shape[0] > 8 * 8 and preview.shape[1] > 7 * 8
    cfg = AugmentConfig.from_yaml(first.out_dir / "digits_config.yaml")
    assert cfg.rotation_range == 15
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())  # no temporary folder left


def test_cli_run_prints_where_results_are(tmp_path):
    cfg = tmp_path / "aug.yaml"
    AugmentConfig(rotation_range=40, zoom_range=0.2).to_yaml(cfg)
    result = runner.invoke(
        app, ["run", "--out", str(tmp_path / "out"), "--config", str(cfg), "--workers", "1"]
    )
    assert result.exit_code == 0, result.output
    assert "digits_augmented.npz" in result.output and "photos_preview.png" in result.output
    assert AugmentConfig.from_yaml(tmp_path / "out" / "digits_config.yaml").rotation_range == 40


def test_cli_bad_config_is_one_clear_line(tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("rotation_range: -5\nfill_mode: mirror\n")
    result = runner.invoke(app, ["run", "--out", str(tmp_path / "out"), "--config", str(cfg)])
    assert result.exit_code == 2
    assert "rotation_range" in result.output and "fill_mode" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "out").exists()
    missing = runner.invoke(app, ["run", "--config", str(tmp_path / "nope.yaml")])
    assert missing.exit_code == 2 and "config file not found" in missing.output
