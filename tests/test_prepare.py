"""Dataset preparation: sources, quarantine, duplicates and leakage, stable splits, atomic versions."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
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
# class_tree's 13 images cut at the default 0.8/0.1/0.1 leave validation empty, which is refused
SMALL_SPLITS = {"train": 0.5, "validation": 0.25, "test": 0.25}


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
    cfg = PrepareConfig(
        source=str(class_tree), out=str(tmp_path / "out"), target_size=(32, 40), splits=SMALL_SPLITS
    )
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
    # cut by their keys, the copies fall in two splits; identical images are kept in one, by their content
    by_key = {k: split_of(k, cfg.splits, cfg.split_salt) for k in report["duplicates"][0]}
    assert set(by_key.values()) == {"test", "validation"}
    files = {f["key"]: f for f in PreparedDataset(tmp_path / "out").manifest["files"]}
    (digest,) = {files[k]["hash"] for k in by_key}
    by_content = split_of(digest, cfg.splits, cfg.split_salt)
    assert {files[k]["split"] for k in by_key} == {by_content} and report["leakage"] == []
    moved = sum(split != by_content for split in by_key.values())
    assert report["duplicates_across_splits"] == {
        "dedupe_across_splits": True, "before": 1, "after": 0, "moved": moved
    }  # fmt: skip
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
    cfg = PrepareConfig(
        source=str(class_tree), out=str(tmp_path / "out"), target_size=(32, 40), splits=SMALL_SPLITS
    )
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
    cfg = PrepareConfig(source=str(root / "labels.csv"), out=str(tmp_path / "out"), splits={"train": 1.0})
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
    # 35 chunks are written, then CURRENT: the child SIGKILLs itself right after its n-th atomic write
    # (pipeline.io.write_atomic's test hook), before any chunk, between them, after the last, and
    # after the switch.
    for n, switched in ((1, False), (18, False), (35, False), (36, True)):
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "AUGPIPE_TEST_DIE_AFTER_WRITES": str(n)}
        proc = subprocess.run([sys.executable, "-c", code], env=env)
        assert proc.returncode == -signal.SIGKILL
        ds = PreparedDataset(out)
        if not switched:  # the previous version, whole
            assert ds.version == first.version_dir.name
            x, y = ds.arrays("train")
            assert x.shape[1:] == (8, 8, 1) and len(x) == len(y) > 1000
        else:  # killed after the switch: the new version, whole
            assert ds.version != first.version_dir.name
            assert sum(len(ds.images(s)) for s in ds.splits) == 70000
    final = prepare(PrepareConfig(source=str(MNIST), out=str(out), chunk_size=2000, shard_size=5000))
    ds = PreparedDataset(out)
    assert ds.version == final.version_dir.name and sum(len(ds.images(s)) for s in ds.splits) == 70000
    assert not list(out.glob(".staging-*")) and not list((out / "versions").glob(".tmp-*"))
    assert (first.version_dir / "manifest.json").exists()


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
        cfg = PrepareConfig(
            source=str(class_tree), out=out, target_size=(32, 40), chunk_size=3, splits=SMALL_SPLITS
        )
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


def test_overlapping_finalizes_each_publish_their_own_version(tmp_path):
    """Four runs into one folder finalize at once: each takes the next free version number (before,
    all but one failed with "Directory not empty" and lost their result)."""
    import threading

    from pipeline.prepare import chunked, decode_chunk, finalize, scan, start_run

    out = tmp_path / "out"
    runs = []
    for salt in "abcd":  # different splits, so that no run finds its dataset already written
        cfg = PrepareConfig(source="digits", out=str(out), color_mode="grayscale", split_salt=salt)
        run = start_run(cfg)
        chunks = chunked(scan(cfg), 600)
        records = [decode_chunk(cfg, chunk, run.staging, i) for i, chunk in enumerate(chunks)]
        runs.append((cfg, run, records))
    barrier = threading.Barrier(len(runs))
    results, errors = [], []

    def finish(cfg, run, records) -> None:
        barrier.wait()
        try:
            results.append(finalize(cfg, run, records))
        except Exception as err:  # noqa: BLE001  (collected, then asserted absent)
            errors.append(err)

    threads = [threading.Thread(target=finish, args=run) for run in runs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(r.version_dir.name for r in results) == ["v00001", "v00002", "v00003", "v00004"]
    salts = set()
    for result in results:
        manifest = json.loads((result.version_dir / "manifest.json").read_text())
        assert manifest["version"] == result.version_dir.name and len(manifest["files"]) == 1797
        salts.add(manifest["config"]["split_salt"])
    assert salts == set("abcd")
    assert (out / "CURRENT").read_text().strip() in {r.version_dir.name for r in results}
    assert not list((out / "versions").glob(".tmp-*")) and not list(out.glob(".staging-*"))


def _small_disk(folder: Path, size: str):
    """A tmpfs of ``size`` mounted on folder (root only; the test is skipped where mounting is not
    allowed): a real full disk, without filling the machine's."""
    import contextlib

    folder.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.strip()}")

    @contextlib.contextmanager
    def unmounting():
        try:
            yield folder
        finally:
            if subprocess.run(["umount", str(folder)], capture_output=True).returncode != 0:
                subprocess.run(["umount", "-l", str(folder)], capture_output=True)

    return unmounting()


@pytest.mark.parametrize(("size", "stage"), [("256k", "decoding"), ("700k", "finalize")])
def test_a_full_disk_says_so_names_the_folder_and_leaves_nothing_behind(tmp_path, size, stage):
    from pipeline.prepare import DiskFullError

    source = tmp_path / "photos"
    (source / "cls").mkdir(parents=True)
    for i, crop in enumerate(_photo_crops(12)):
        cv2.imwrite(str(source / "cls" / f"{i:02d}.png"), crop)
    # 12 images of 96x128x3: 442 KB of pixels, staged in three chunks, then written again as a shard.
    with _small_disk(tmp_path / "disk", size) as disk:
        out = disk / "out"
        cfg = PrepareConfig(
            source=str(source), out=str(out), target_size=(96, 128), chunk_size=4, splits={"train": 1.0}
        )
        with pytest.raises(DiskFullError) as info:
            prepare(cfg)
        if stage == "decoding":  # numpy's "1568000 requested and 614272 written", named
            assert str(info.value).startswith(f"disk full while writing {out / '.staging-'}")
        else:
            assert str(info.value) == f"disk full while writing {out}"
        assert "requested and" not in str(info.value) and "Errno" not in str(info.value)
        assert isinstance(info.value, OSError) and info.value.errno == 28
        leftovers = [p.name for p in out.iterdir() if p.name != "versions"] + os.listdir(out / "versions")
        assert leftovers == [] and not (out / "CURRENT").exists()


# ---------------------------------------------------------------- manifests and empty splits


def _small_pngs(folder: Path, names: list[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        cv2.imwrite(str(folder / name), np.full((8, 8, 3), 30 * i, np.uint8))


def test_a_manifest_row_without_a_label_is_quarantined_and_the_dataset_stays_single_label(tmp_path):
    _small_pngs(tmp_path / "data", ["a.png", "b.png", "c.png", "d.png"])
    rows = "a.png,cat\nb.png,\nc.png,dog\nd.png,cat\nd.png,dog\nmissing.png,cat\nmissing.png,dog\n"
    (tmp_path / "data" / "m.csv").write_text("path,label\n" + rows)
    cfg = PrepareConfig(
        source=str(tmp_path / "data" / "m.csv"), out=str(tmp_path / "out"), splits={"train": 1.0}
    )
    report = prepare(cfg).report
    # the conflicting rows of a file that does not exist are left out before any read: not "unreadable"
    assert {q["key"]: q["reason"] for q in report["quarantined"]} == {
        "b.png": "empty_label",
        "d.png": "conflicting_labels",
        "missing.png": "conflicting_labels",
    }
    ds = PreparedDataset(tmp_path / "out")
    assert not ds.manifest["multi_label"] and ds.classes == ["cat", "dog"]
    assert np.load(ds.dir / "train" / "labels.npy").tolist() == [0, 1]  # a.png, c.png
    # a new row that is left out shows in an unchanged rerun's report, though the dataset is the same
    (tmp_path / "data" / "m.csv").write_text("path,label\n" + rows + "e.png,\n")
    again = prepare(cfg)
    assert again.unchanged and again.report["quarantined"][-1]["key"] == "e.png"


@pytest.mark.parametrize("workers", [1, 2])
def test_a_split_that_would_be_empty_is_refused_before_anything_is_written(tmp_path, workers):
    _small_pngs(tmp_path / "data", ["a.png", "b.png", "c.png"])
    (tmp_path / "data" / "m.csv").write_text("path,label\na.png,cat\nb.png,dog\n")
    out = tmp_path / "out"
    first = prepare(
        PrepareConfig(source=str(tmp_path / "data" / "m.csv"), out=str(out), splits={"train": 1.0})
    )
    # every row naming one file made a dataset of one split (at exit 0, with 0 train images)
    (tmp_path / "data" / "m.csv").write_text("path,label\n" + "c.png,cat\n" * 1000)
    cfg = PrepareConfig(source=str(tmp_path / "data" / "m.csv"), out=str(out))
    assert split_of("c.png", cfg.splits, cfg.split_salt) == "train"
    with pytest.raises(ValueError) as info:
        prepare(cfg, workers=workers)
    assert str(info.value) == (
        f"{cfg.source}: splits validation and test would be empty: 1 image cut at "
        "train=0.8,validation=0.1,test=0.1 by a hash of their keys give train 1, validation 0, test 0; "
        "add images, or ask for fewer splits (e.g. --splits train=1.0, or splits: in a config file)"
    )
    assert (out / "CURRENT").read_text().strip() == first.version_dir.name
    assert sorted(os.listdir(out)) == ["CURRENT", "versions"]
    assert os.listdir(out / "versions") == [first.version_dir.name]
