"""The prepare-dataset Prefect flow, on threads and on a Dask cluster, its CLI command and prefect.yaml."""

from __future__ import annotations

import dataclasses
import importlib
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from prefect import Flow
from prefect.client.schemas.schedules import CronSchedule
from sklearn.datasets import load_sample_images
from typer.testing import CliRunner

from flows.cli import app
from flows.prepare import Whole, count_rows, decode_chunk_task, prepare_dataset, run_prepare
from pipeline.config import PrepareConfig
from pipeline.prepare import Item, prepare, start_run
from pipeline.store import current_version

REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()


@pytest.fixture(autouse=True)
def _on_prefect_api(prefect_api):
    """Every test of this module runs against the session's temporary API, none against a profile's."""


@pytest.fixture(scope="module")
def class_tree(tmp_path_factory) -> Path:
    """china/ and flower/ with 8 real photo crops each (48x64 PNG), plus one corrupt PNG in flower/."""
    root = tmp_path_factory.mktemp("tree")
    for name, photo in zip(("china", "flower"), load_sample_images().images, strict=True):
        (root / name).mkdir()
        for i in range(8):
            y, x = 40 * i, 60 * i
            crop = np.ascontiguousarray(photo[y : y + 48, x : x + 64, ::-1])  # RGB -> BGR for OpenCV
            assert cv2.imwrite(str(root / name / f"{name}-{i}.png"), crop)
    (root / "flower" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00garbage" * 20)
    return root


def _tree_config(source: Path, out: Path) -> PrepareConfig:
    return PrepareConfig(source=str(source), out=str(out), target_size=(32, 32), chunk_size=3, shard_size=5)


@pytest.fixture(scope="module")
def tree_result(class_tree, tmp_path_factory):
    out = tmp_path_factory.mktemp("prepared") / "tree"
    seen: list[tuple[int, int]] = []
    result = run_prepare(
        _tree_config(class_tree, out), on_chunk=lambda done, total: seen.append((done, total))
    )
    return result, seen


def _manifest(version_dir: Path) -> dict:
    return json.loads((version_dir / "manifest.json").read_text())


def _content(version_dir: Path) -> dict:
    """What must not depend on where chunks ran: files with labels, splits, hashes; pixels per split."""
    manifest = _manifest(version_dir)
    pixels = {
        split: np.concatenate([np.load(version_dir / shard) for shard in info["shards"]])
        for split, info in manifest["splits"].items()
    }
    labels = {split: np.load(version_dir / split / "labels.npy") for split in manifest["splits"]}
    return {"files": manifest["files"], "classes": manifest["classes"], "pixels": pixels, "labels": labels}


def test_flow_prepares_a_class_folder_tree_and_quarantines_the_corrupt_file(tree_result):
    result, seen = tree_result
    out = result.version_dir.parents[1]
    assert result.version_dir.is_dir() and current_version(out) == result.version_dir
    assert not result.unchanged
    report = result.report
    assert report["images"] == 16 and report["class_counts"] == {"china": 8, "flower": 8}
    assert sum(report["split_counts"].values()) == 16
    assert [q["key"] for q in report["quarantined"]] == ["flower/broken.png"]
    assert report["quarantined"][0]["reason"] in {"truncated", "corrupt"}
    manifest = _manifest(result.version_dir)
    assert manifest["image_shape"] == [32, 32, 3] and manifest["classes"] == ["china", "flower"]
    shard = np.load(result.version_dir / manifest["splits"]["train"]["shards"][0])
    assert shard.dtype == np.uint8 and shard.shape[1:] == (32, 32, 3) and shard.std() > 10  # real photos
    assert seen[-1] == (6, 6) and [done for done, _ in seen] == list(range(1, 7))  # 17 files in chunks of 3
    rows = count_rows(result)
    assert [r["class"] for r in rows] == ["china", "flower"] and all(r["total"] == 8 for r in rows)
    for r in rows:
        assert {s: r[s] for s in manifest["splits"]} == {
            s: info["class_counts"][r["class"]] for s, info in manifest["splits"].items()
        }
    # a report written before reports held per-split counts: the rows come from the manifest instead
    older = dataclasses.replace(result, report={k: v for k, v in report.items() if k != "split_class_counts"})
    assert count_rows(older) == rows
    assert not list(out.glob(".staging-*"))


def test_flow_prepares_the_bundled_digits_and_a_rerun_is_unchanged(tmp_path):
    cfg = PrepareConfig(source="digits", out=str(tmp_path / "digits"), chunk_size=500)
    first = run_prepare(cfg)
    assert first.report["images"] == 1797 and first.report["quarantined"] == []
    assert set(first.report["split_counts"]) == {"train", "validation", "test"}
    assert _manifest(first.version_dir)["image_shape"] == [8, 8, 1]
    again = run_prepare(cfg)
    assert again.unchanged and again.version_dir == first.version_dir


def test_decode_chunk_task_logic_runs_without_the_engine(class_tree, tmp_path):
    cfg = _tree_config(class_tree, tmp_path / "out")
    run = start_run(cfg)
    items = [Item("china/china-0.png", ("china",), path=str(class_tree / "china" / "china-0.png"))]
    record = decode_chunk_task.fn(cfg, Whole(items), run.staging, 7)
    assert record.keys == ["china/china-0.png"] and record.decoded == 1
    assert np.load(record.pixels).shape == (1, 32, 32, 3)


def test_flow_refuses_a_dask_address_its_task_runner_does_not_use(tmp_path):
    cfg = PrepareConfig(source="digits", out=str(tmp_path / "out"))
    with pytest.raises(ValueError, match="run_prepare"):
        prepare_dataset(cfg, dask_address="tcp://127.0.0.1:1")
    assert not (tmp_path / "out").exists()


def test_flow_and_prepare_run_the_same_steps_in_the_same_order(class_tree, tmp_path, monkeypatch):
    """One orchestrator: the flow's tasks are the steps that prepare() calls, through run_preparation."""
    import flows.prepare as prepare_flow
    import pipeline.prepare.orchestrate as orchestrate

    calls: list[str] = []
    real = orchestrate.run_preparation

    def recording(cfg, steps):
        calls.append(type(steps).__name__)
        return real(cfg, steps)

    monkeypatch.setattr(orchestrate, "run_preparation", recording)
    monkeypatch.setattr(prepare_flow.prepare, "run_preparation", recording)
    here = prepare(_tree_config(class_tree, tmp_path / "here"))
    as_flow = run_prepare(_tree_config(class_tree, tmp_path / "flow"))
    assert calls == ["InProcess", "AsTasks"]
    assert _content(here.version_dir)["files"] == _content(as_flow.version_dir)["files"]
    assert here.report["quarantined"] == as_flow.report["quarantined"]


def test_the_training_flow_prepares_a_source_as_a_prepare_dataset_subflow(tmp_path):
    from prefect import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName

    from flows.train import as_result, train_model
    from pipeline.config import TrainConfig
    from pipeline.training import dataset_folder

    cfg = TrainConfig(
        dataset="digits", prepare_options={"color_mode": "grayscale"}, model="shapes_net", epochs=1,
        batch_size=64, workers=0, max_train_samples=128, runs_dir=str(tmp_path / "runs"), run_name="run",
        mlflow=False,
    )  # fmt: skip
    result = as_result(train_model(cfg))
    folder = dataset_folder(cfg)
    assert _manifest(current_version(folder))["image_shape"] == [8, 8, 1]
    assert result.summary()["train_images"] == 128
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=["prepare-dataset"])))
    (subflow,) = [run for run in runs if run.parameters["config"]["out"] == str(folder)]
    assert subflow.parent_task_run_id is not None and subflow.state.is_completed()


@pytest.mark.slow
def test_dask_cluster_gives_the_same_dataset_as_threads(class_tree, tree_result, tmp_path):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(
        n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None
    ) as cluster:
        as_flow = run_prepare(
            _tree_config(class_tree, tmp_path / "dask"), dask_address=cluster.scheduler_address
        )
        chunks: list[tuple[int, int]] = []
        in_process = prepare(
            _tree_config(class_tree, tmp_path / "dask-here"),
            dask_address=cluster.scheduler_address,
            on_chunk=lambda done, total: chunks.append((done, total)),
        )
    on_threads, _ = tree_result
    a = _content(on_threads.version_dir)
    assert chunks[-1][0] == chunks[-1][1] == len(chunks)  # every chunk reported once
    for on_dask in (as_flow, in_process):
        b = _content(on_dask.version_dir)
        assert a["files"] == b["files"] and a["classes"] == b["classes"]
        for split in a["pixels"]:
            assert np.array_equal(a["pixels"][split], b["pixels"][split])
            assert np.array_equal(a["labels"][split], b["labels"][split])
        assert on_dask.report["quarantined"] == on_threads.report["quarantined"]


@pytest.mark.parametrize("mode", [[], ["--prefect"]], ids=["in-process", "as-flows"])
def test_cli_prepare_prints_counts_and_quarantined_files(class_tree, tmp_path, mode):
    out = tmp_path / "cli"
    result = runner.invoke(
        app,
        [
            "prepare", str(class_tree), "--out", str(out), "--target-size", "24x24", "--chunk-size", "4",
            "--splits", "train=0.5,validation=0.25,test=0.25", "--color-mode", "grayscale", *mode,
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "16 images written (16 decoded, 0 reused):\n" in result.output
    assert f"  version: {current_version(out)}\n" in result.output  # whole, on its own line
    assert "china" in result.output and "flower" in result.output
    assert "1 entry left out" in result.output and "broken.png" in result.output
    manifest = _manifest(current_version(out))
    assert manifest["image_shape"] == [24, 24, 1]
    assert manifest["config"]["splits"] == {"train": 0.5, "validation": 0.25, "test": 0.25}


def test_cli_prepare_reads_a_config_file_that_options_override(tmp_path):
    cfg = tmp_path / "prepare.yaml"
    cfg.write_text(yaml.safe_dump({"prepare": {"out": str(tmp_path / "from-yaml"), "chunk_size": 900}}))
    result = runner.invoke(app, ["prepare", "digits", "--config", str(cfg), "--shard-size", "1000"])
    assert result.exit_code == 0, result.output
    manifest = _manifest(current_version(tmp_path / "from-yaml"))
    assert manifest["config"]["chunk_size"] == 900 and manifest["config"]["shard_size"] == 1000
    assert "1,797 images written" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["{tmp}/no-such-folder"], "source not found"),
        (["digits", "--color-mode", "purple"], "color_mode"),
        (["digits", "--splits", "train=0.5,test=0.2"], "sum to 1"),
        (["digits", "--splits", "train:0.8"], "NAME=FRACTION"),
        (["digits", "--target-size", "32"], "HEIGHTxWIDTH"),
        (["digits", "--target-size", "0x8"], "target_size"),
        (["digits", "--config", "{tmp}/missing.yaml"], "config file not found"),
        (["{tmp}/empty"], "no images"),
    ],
)
def test_cli_prepare_expected_mistakes_are_one_clear_line(tmp_path, args, message):
    (tmp_path / "empty" / "cls").mkdir(parents=True)
    args = [a.format(tmp=tmp_path) for a in args]
    out = ["--out", str(tmp_path / "out")] if "--config" not in args else []
    result = runner.invoke(app, ["prepare", *args, *out])
    assert result.exit_code == 2, result.output
    assert result.output.startswith("error:") and message in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) <= 2


def test_prefect_yaml_deploys_the_prepare_flow():
    from prefect.cli.deploy._models import PrefectYamlModel

    data = yaml.safe_load((REPO / "prefect.yaml").read_text())
    project = PrefectYamlModel.model_validate(data)  # the model `prefect deploy` validates with
    assert set(data["definitions"]["work_pools"]) == {"cpu", "gpu"}
    (deployment,) = [d for d in data["deployments"] if d["name"] == "prepare-dataset"]
    assert project.deployments[0].name == "prepare-dataset"
    path, name = deployment["entrypoint"].split(":")
    assert (REPO / path).is_file()
    flow = getattr(importlib.import_module(path.removesuffix(".py").replace("/", ".")), name)
    assert isinstance(flow, Flow) and flow.name == "prepare-dataset"
    params = flow.validate_parameters(deployment["parameters"])
    assert params["config"] == PrepareConfig(source="digits", out="prepared/digits")
    assert deployment["work_pool"]["name"] == "cpu"
    (schedule,) = deployment["schedules"]
    assert CronSchedule(cron=schedule["cron"], timezone=schedule["timezone"]).cron == "0 2 * * *"
