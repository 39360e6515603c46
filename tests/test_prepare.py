"""Dataset preparation: sources, quarantine, duplicates and leakage, stable splits, atomic versions."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from sklearn.datasets import load_sample_images

from pipeline.config import ConfigError, PrepareConfig
from pipeline.dataset import PreparedDataset
from pipeline.errors import SourceNotFoundError
from pipeline.prepare import prepare, split_of, summary_markdown

MNIST = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "mnist"


def _photo_crops(n: int) -> list[np.ndarray]:
    photos = load_sample_images().images
    return [np.ascontiguousarray(photos[i % 2][15 * i : 15 * i + 48, 20 * i : 20 * i + 64]) for i in range(n)]


@pytest.fixture
def class_tree(tmp_path: Path) -> Path:
    root = tmp_path / "flowers"
    crops = _photo_crops(12)
    for i, img in enumerate(crops):
        cls = "temple" if i % 2 == 0 else "dahlia"
        sub = root / cls / ("nested" if i % 3 == 0 else "")
        sub.mkdir(parents=True, exist_ok=True)
        ext = ".PNG" if i % 4 == 0 else ".png"
        cv2.imwrite(str(sub / f"img{i:02d}{ext}"), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    # a byte-identical copy in the other class folder: a duplicate (and maybe leakage)
    original = (root / "temple" / "nested" / "img00.PNG").read_bytes()
    (root / "dahlia" / "copy_of_img00.png").write_bytes(original)
    (root / "dahlia" / "empty.png").write_bytes(b"")
    (root / "temple" / "notes.png").write_text("not an image")
    good = (root / "temple" / "img02.png").read_bytes()
    (root / "temple" / "cut.png").write_bytes(good[: len(good) // 2])
    return root


def test_folder_source_quarantines_bad_files_and_reports(class_tree, tmp_path):
    cfg = PrepareConfig(source=str(class_tree), out=str(tmp_path / "out"), target_size=(32, 40))
    result = prepare(cfg)
    report = result.report
    reasons = {q["key"]: q["reason"] for q in report["quarantined"]}
    assert reasons == {
        "dahlia/empty.png": "empty",
        "temple/notes.png": "not_an_image",
        "temple/cut.png": "truncated",
    }
    assert report["images"] == 13
    assert report["class_counts"] == {"dahlia": 7, "temple": 6}
    assert report["duplicates"] == [["dahlia/copy_of_img00.png", "temple/nested/img00.PNG"]]
    splits = {split_of(k, cfg.splits, cfg.split_salt) for k in report["duplicates"][0]}
    assert bool(report["leakage"]) == (len(splits) > 1)
    ds = PreparedDataset(tmp_path / "out")
    assert ds.classes == ["dahlia", "temple"] and ds.image_shape == (32, 40, 3)
    total = sum(len(ds.images(s)) for s in ds.splits)
    assert total == 13
    manifest = ds.manifest
    assert {f["key"] for f in manifest["files"]} >= {"temple/img02.png", "dahlia/copy_of_img00.png"}
    assert manifest["quarantined"] and manifest["packages"]["opencv"] == cv2.__version__
    # the pixels in the shards are the decoded images
    entry = next(f for f in manifest["files"] if f["key"] == "temple/img02.png")
    stored = np.load(ds.dir / entry["shard"], mmap_mode="r")[entry["row"]]
    expected = cv2.resize(_photo_crops(12)[2], (40, 32), interpolation=cv2.INTER_LINEAR)
    assert np.abs(stored.astype(int) - expected).max() <= 1
    text = summary_markdown(result)
    assert "temple/cut.png" in text and "truncated" in text


def test_different_sizes_without_target_size_is_a_clear_error(class_tree, tmp_path):
    extra = _photo_crops(1)[0][:20, :30]
    cv2.imwrite(str(class_tree / "temple" / "small.png"), extra)
    with pytest.raises(ValueError, match="images differ in size.*set target_size"):
        prepare(PrepareConfig(source=str(class_tree), out=str(tmp_path / "out")))
    assert not (tmp_path / "out" / "CURRENT").exists()
    assert not list((tmp_path / "out").glob(".staging-*"))


def test_rerun_skips_unchanged_and_adding_files_moves_nothing(class_tree, tmp_path):
    cfg = PrepareConfig(source=str(class_tree), out=str(tmp_path / "out"), target_size=(32, 40))
    first = prepare(cfg)
    again = prepare(cfg)
    assert again.unchanged and again.version_dir == first.version_dir and again.report["decoded"] == 0
    summary = summary_markdown(again)
    assert summary.startswith(f"# Prepared dataset {first.version_dir.name} (unchanged)")
    assert "no new version was written" in summary and "decoded, " not in summary
    new = _photo_crops(14)[13]
    cv2.imwrite(str(class_tree / "dahlia" / "new.png"), cv2.cvtColor(new, cv2.COLOR_RGB2BGR))
    third = prepare(cfg)
    assert not third.unchanged and third.version_dir.name == "v00002"
    assert third.report["decoded"] == 1 and third.report["reused"] == first.report["images"]
    before = {f["key"]: f["split"] for f in _manifest(first.version_dir)["files"]}
    after = {f["key"]: f["split"] for f in _manifest(third.version_dir)["files"]}
    assert all(after[k] == s for k, s in before.items())
    assert (first.version_dir / "manifest.json").exists()  # the old version stays readable
    assert PreparedDataset(tmp_path / "out").version == "v00002"


def _manifest(version_dir: Path) -> dict:
    return json.loads((version_dir / "manifest.json").read_text())


def test_stable_split_fractions_hold_per_class():
    keys = [f"class{c}/img{i}.png" for c in range(3) for i in range(3000)]
    splits = {"train": 0.7, "validation": 0.2, "test": 0.1}
    for c in range(3):
        got = [split_of(k, splits, "s") for k in keys if k.startswith(f"class{c}/")]
        for name, fraction in splits.items():
            assert abs(got.count(name) / len(got) - fraction) < 0.03
    assert split_of("a.png", splits, "s") == split_of("a.png", splits, "s")


def test_manifest_source_refuses_escaping_paths(tmp_path):
    root = tmp_path / "data"
    root.mkdir()
    img = _photo_crops(1)[0]
    cv2.imwrite(str(root / "a.png"), img)
    cv2.imwrite(str(tmp_path / "outside.png"), img)
    (root / "labels.csv").write_text("path,label\na.png,cat dog\n../outside.png,cat\n")
    cfg = PrepareConfig(source=str(root / "labels.csv"), out=str(tmp_path / "out"))
    with pytest.raises(ValueError, match="outside its folder"):
        prepare(cfg)
    result = prepare(cfg.model_copy(update={"allow_outside_root": True}))
    ds = PreparedDataset(tmp_path / "out")
    assert ds.manifest["multi_label"] and ds.classes == ["cat", "dog"]
    assert result.report["class_counts"] == {"cat": 2, "dog": 1}


def test_npz_source_and_batches(tmp_path):
    rng = np.random.default_rng(0)
    x = np.stack(_photo_crops(10))
    np.savez(tmp_path / "arr.npz", x=x, y=rng.integers(0, 3, 10))
    prepare(PrepareConfig(source=str(tmp_path / "arr.npz"), out=str(tmp_path / "out"), splits={"train": 1.0}))
    ds = PreparedDataset(tmp_path / "out")
    images, labels = ds.arrays("train")
    assert len(images) == 10 and labels.dtype == np.int64
    by_key = {f["key"]: f["row"] for f in ds.manifest["files"]}
    assert np.array_equal(images[by_key["arr.npz:3"]], x[3])
    batch, ys = next(ds.batches("train", batch_size=4, seed=1))
    assert batch.shape == (4, 48, 64, 3) and batch.dtype == np.float32 and ys.shape == (4,)


def test_bad_prepare_config_is_clear():
    with pytest.raises(ConfigError, match="split fractions"):
        PrepareConfig(source="digits", out="x", splits={"train": 0.5, "test": 0.1})
    with pytest.raises(ConfigError, match="unknown option"):
        PrepareConfig(source="digits", out="x", shards=3)


@pytest.mark.slow
@pytest.mark.skipif(not MNIST.exists(), reason="needs ../shared/data/mnist")
def test_killed_run_leaves_previous_version_readable(tmp_path):
    out = tmp_path / "out"
    first = prepare(PrepareConfig(source="digits", out=str(out), color_mode="grayscale"))
    code = (
        "from pipeline.config import PrepareConfig; from pipeline.prepare import prepare; "
        f"prepare(PrepareConfig(source={str(MNIST)!r}, out={str(out)!r}, chunk_size=2000, shard_size=5000))"
    )
    for delay in (0.8, 1.6, 2.4):
        proc = subprocess.Popen([sys.executable, "-c", code], env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        ds = PreparedDataset(out)
        if ds.version == first.version_dir.name:
            x, y = ds.arrays("train")
            assert x.shape[1:] == (8, 8, 1) and len(x) == len(y) > 1000
        else:  # the run got to the switch before the kill: then the new version is whole
            assert len(ds.images("train")) > 50000
    final = prepare(PrepareConfig(source=str(MNIST), out=str(out), chunk_size=2000, shard_size=5000))
    ds = PreparedDataset(out)
    assert ds.version == final.version_dir.name and sum(len(ds.images(s)) for s in ds.splits) == 70000
    assert not list(out.glob(".staging-*")) and not list((out / "versions").glob(".tmp-*"))
    assert (first.version_dir / "manifest.json").exists()


def test_tf_dataset_yields_the_reproducible_augmented_batches(tmp_path):
    from pipeline import AugmentConfig

    prepare(PrepareConfig(source="digits", out=str(tmp_path / "out"), color_mode="grayscale"))
    ds = PreparedDataset(tmp_path / "out")
    aug = AugmentConfig(rotation_range=15, zoom_range=0.1)
    tf_data = ds.tf_dataset("validation", batch_size=50, augment=aug, seed=3, epochs=2, workers=2)
    tf_batches = list(tf_data.as_numpy_iterator())
    expected = list(ds.batches("validation", 50, aug, epoch=0, seed=3)) + list(
        ds.batches("validation", 50, aug, epoch=1, seed=3)
    )
    assert len(tf_batches) == len(expected)  # two worker processes, the same bytes as this process
    for (x, y), (ex, ey) in zip(tf_batches, expected, strict=True):
        assert x.dtype == np.float32 and np.array_equal(x, ex) and np.array_equal(y, ey)
    assert not np.array_equal(tf_batches[0][0], expected[len(expected) // 2][0])  # epochs differ


def test_leftovers_of_dead_runs_are_removed_but_live_runs_kept(tmp_path):
    from pipeline.prepare import start_run

    cfg = PrepareConfig(source="digits", out=str(tmp_path / "out"), color_mode="grayscale")
    live = start_run(cfg)  # this process is alive: its staging must survive another run's start
    dead = tmp_path / "out" / ".staging-dead"
    dead.mkdir()
    (dead / "owner").write_text(f"{os.uname().nodename} 999999999\n")
    (tmp_path / "out" / "versions" / ".tmp-dead").mkdir()
    prepare(cfg)
    assert live.staging.exists() and not dead.exists()
    assert not (tmp_path / "out" / "versions" / ".tmp-dead").exists()


@pytest.mark.slow
def test_worker_processes_give_the_same_dataset_and_exact_train_stats(class_tree, tmp_path):
    def prepared(out: str, workers: int) -> tuple[dict, dict]:
        cfg = PrepareConfig(source=str(class_tree), out=out, target_size=(32, 40), chunk_size=3)
        result = prepare(cfg, workers=workers)
        manifest = PreparedDataset(out).manifest
        pixels = {s: np.concatenate([np.load(result.version_dir / p) for p in info["shards"]])
                  for s, info in manifest["splits"].items()}  # fmt: skip
        return manifest, pixels

    one, one_pixels = prepared(str(tmp_path / "one"), 1)
    two, two_pixels = prepared(str(tmp_path / "two"), 2)  # this process decodes chunks beside them
    for key in ("files", "splits", "stats", "quarantined", "fingerprint"):
        assert one[key] == two[key], key
    for split in one["splits"]:
        assert np.array_equal(one_pixels[split], two_pixels[split])
    train = one_pixels["train"].astype(np.float64)
    assert np.allclose(one["stats"]["train_mean"], train.mean(axis=(0, 1, 2)), rtol=1e-12)
    assert np.allclose(one["stats"]["train_std"], train.std(axis=(0, 1, 2)), rtol=1e-9)


def test_a_missing_source_names_the_resolved_path_and_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "datasets" / "missing"
    with pytest.raises(SourceNotFoundError) as caught:
        prepare(PrepareConfig(source="prepared/nowhere", out=str(out)), workers=2)
    resolved = tmp_path / "prepared" / "nowhere"
    assert str(caught.value) == f"source not found: prepared/nowhere (resolved as {resolved})"
    # a ConfigError (flows do not retry it) that callers catching FileNotFoundError still catch
    assert isinstance(caught.value, ConfigError) and isinstance(caught.value, FileNotFoundError)
    assert not (tmp_path / "datasets").exists()
