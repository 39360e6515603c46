"""Splits the source gives (train/ val/ test/ folders, a manifest's split column) are kept, and only
the missing ones are cut; identical images land in one split; hints for grayscale stored as colour
and for large downscales. Real PNG files of scikit-learn's digits, prepared by the library and by
the `augpipe prepare` command in its own process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from sklearn.datasets import load_digits, load_sample_images

from pipeline.config import PrepareConfig
from pipeline.dataset import PreparedDataset
from pipeline.errors import ConfigError, DataError
from pipeline.ingest.sources import read_manifest, scan_class_folders, scan_folders
from pipeline.prepare import prepare
from pipeline.prepare.stats import mean_std, pixel_histogram

REPO = Path(__file__).resolve().parents[1]
N_TRAIN, N_TEST = 300, 100  # the first 300 digits in train/, the next 100 in test/ (without its nines)


def _digits() -> tuple[np.ndarray, np.ndarray]:
    digits = load_digits()
    return (digits.images * 255 / 16).round().astype(np.uint8), digits.target


def _write(root: Path, split: str, label: int, index: int, image: np.ndarray) -> Path:
    path = root / split / str(label) / f"{index:04d}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), image)
    return path


@pytest.fixture
def digit_splits(tmp_path: Path) -> Path:
    """train/<digit>/ with 300 digits and test/<digit>/ with 100, but no 9 in test/."""
    images, labels = _digits()
    root = tmp_path / "handwritten"  # not "digits": that source name is scikit-learn's bundled digits
    for i in range(N_TRAIN + N_TEST):
        split = "train" if i < N_TRAIN else "test"
        if split == "test" and labels[i] == 9:
            continue
        _write(root, split, int(labels[i]), i, images[i])
    return root


def _files(out: Path) -> dict[str, dict]:
    return {f["key"]: f for f in PreparedDataset(out).manifest["files"]}


def test_split_folders_are_kept_and_validation_is_cut_from_train(digit_splits, tmp_path):
    out = tmp_path / "out"
    result = prepare(PrepareConfig(source=str(digit_splits), out=str(out)))  # default: 0.8, 0.1, 0.1
    files = _files(out)
    on_disk = {p.relative_to(digit_splits).as_posix() for p in digit_splits.rglob("*.png")}
    assert set(files) == on_disk
    # test is the given test, whole; validation is cut from the given train only
    given_test = {k for k in on_disk if k.startswith("test/")}
    assert {k for k, f in files.items() if f["split"] == "test"} == given_test
    validation = [k for k, f in files.items() if f["split"] == "validation"]
    assert all(k.startswith("train/") for k in validation)
    # a ninth of train (0.1 / (0.8 + 0.1)): 33 expected of 300, binomial sd 5.4
    assert 15 <= len(validation) <= 55
    ds = PreparedDataset(out)
    assert ds.classes == [str(d) for d in range(10)]  # classes are the folders below the split folders
    assert ds.splits == ["train", "validation", "test"]
    plan = {"given": ["train", "test"], "carved": ["validation"], "carved_from": "train"}
    assert ds.manifest["split_plan"] == plan
    counts = result.report["split_class_counts"]
    assert counts["test"]["9"] == 0 and counts["train"]["9"] + counts["validation"]["9"] > 0
    labels = ds.labels("test")
    assert len(labels) == sum(1 for k in on_disk if k.startswith("test/"))
    # the pixels are the digits as written
    images, labels = _digits()
    entry = files[f"test/{labels[300]}/0300.png"]
    assert np.array_equal(np.load(ds.dir / entry["shard"])[entry["row"]][..., 0], images[300])
    # the same source again: nothing decoded, no new version
    again = prepare(PrepareConfig(source=str(digit_splits), out=str(out)))
    assert again.unchanged and again.version_dir == result.version_dir and again.report["decoded"] == 0


def test_a_config_that_names_only_test_keeps_the_given_splits(digit_splits, tmp_path):
    (digit_splits / "train").rename(digit_splits / "Train")  # any case
    images, labels = _digits()
    for i in range(400, 420):
        _write(digit_splits, "val", int(labels[i]), i, images[i])
    result = prepare(PrepareConfig(source=str(digit_splits), out=str(tmp_path / "out"), splits={"test": 1.0}))
    files = _files(tmp_path / "out")
    expected = {"Train": "train", "val": "validation", "test": "test"}
    assert all(f["split"] == expected[key.split("/")[0]] for key, f in files.items())
    n_test = int((labels[N_TRAIN : N_TRAIN + N_TEST] != 9).sum())
    assert result.report["split_counts"] == {"train": N_TRAIN, "validation": 20, "test": n_test}
    plan = {"given": ["train", "validation", "test"], "carved": [], "carved_from": None}
    assert result.report["split_plan"] == plan


def test_without_given_splits_a_config_without_train_is_refused_naming_it(tmp_path):
    images, labels = _digits()
    for i in range(20):
        path = tmp_path / "flat" / str(labels[i]) / f"{i}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(path), images[i])
    with pytest.raises(ConfigError, match=r"splits test=1 leave out train, and .* gives no splits of its"):
        prepare(PrepareConfig(source=str(tmp_path / "flat"), out=str(tmp_path / "out"), splits={"test": 1.0}))
    assert not (tmp_path / "out").exists()


def test_split_folders_beside_class_folders_are_refused_naming_both(digit_splits, tmp_path):
    (digit_splits / "cat").mkdir()
    with pytest.raises(DataError) as info:
        prepare(PrepareConfig(source=str(digit_splits), out=str(tmp_path / "out")))
    message = str(info.value)
    assert "split folders test/, train/ beside the folders cat/" in message and "move or rename" in message
    (digit_splits / "cat").rmdir()
    (digit_splits / "VAL").mkdir()
    (digit_splits / "validation").mkdir()
    with pytest.raises(DataError, match="holds VAL/ and validation/, which all give the validation split"):
        scan_folders(digit_splits)


def test_a_split_without_train_is_refused(tmp_path):
    images, _ = _digits()
    _write(tmp_path / "src", "test", 1, 0, images[0])
    _write(tmp_path / "src", "valid", 1, 1, images[1])
    with pytest.raises(DataError, match="gives the splits validation, test but no train split"):
        prepare(PrepareConfig(source=str(tmp_path / "src"), out=str(tmp_path / "out")))


def test_the_scan_lists_each_file_with_its_split_and_leaves_out_what_is_beside(tmp_path):
    images, _ = _digits()
    root = tmp_path / "src"
    _write(root, "train", 0, 0, images[0])
    _write(root, "train", 1, 1, images[1])
    _write(root, "Valid", 1, 2, images[2])
    cv2.imwrite(str(root / "train" / "loose.png"), images[3])  # beside the class folders of train/
    cv2.imwrite(str(root / "top.png"), images[4])  # beside the split folders
    (root / ".ipynb_checkpoints").mkdir()
    (root / "train" / "empty").mkdir()
    samples = scan_class_folders(root)
    got = [(Path(s.path).relative_to(root).as_posix(), s.labels, s.split) for s in samples]
    assert got == [
        ("train/0/0000.png", ("0",), "train"),
        ("Valid/1/0002.png", ("1",), "validation"),
        ("train/1/0001.png", ("1",), "train"),
    ]
    skipped = {s.path: s.reason for s in scan_folders(root).skipped}
    assert skipped == {
        ".ipynb_checkpoints/": "not_a_split_folder",
        "top.png": "not_in_a_class_folder",
        "train/loose.png": "not_in_a_class_folder",
        "train/empty/": "no_images",
    }


def test_a_manifest_split_column_gives_the_splits_and_a_change_to_it_is_a_new_version(tmp_path):
    images, labels = _digits()
    data = tmp_path / "data"
    data.mkdir()
    rows = []
    for i in range(60):
        cv2.imwrite(str(data / f"{i}.png"), images[i])
        rows.append(f"{i}.png,{labels[i]},{'train' if i < 40 else 'test'}")
    manifest = data / "m.csv"
    manifest.write_text("path,label,split\n" + "\n".join(rows) + "\n")
    assert read_manifest(manifest).samples[45].split == "test"
    cfg = PrepareConfig(source=str(manifest), out=str(tmp_path / "out"), splits={"train": 1.0})
    first = prepare(cfg)
    assert first.report["split_counts"] == {"train": 40, "test": 20}
    assert prepare(cfg).unchanged
    rows[0] = "0.png,0,test"
    manifest.write_text("path,label,split\n" + "\n".join(rows) + "\n")
    moved = prepare(cfg)
    assert not moved.unchanged and moved.report["decoded"] == 0  # pixels reused, splits changed
    assert moved.report["split_counts"] == {"train": 39, "test": 21}
    assert _files(tmp_path / "out")["0.png"]["split"] == "test"


def _copy_a_train_digit_into_test(root: Path) -> None:
    (root / "test" / "5" / "copy.png").write_bytes((root / "train" / "0" / "0000.png").read_bytes())


def test_copies_across_given_splits_go_to_the_most_held_out_with_exact_train_stats(digit_splits, tmp_path):
    _copy_a_train_digit_into_test(digit_splits)
    out = tmp_path / "out"
    placed = prepare(PrepareConfig(source=str(digit_splits), out=str(out)))
    files = _files(out)
    assert files["train/0/0000.png"]["split"] == files["test/5/copy.png"]["split"] == "test"
    assert placed.report["duplicates"] == [["test/5/copy.png", "train/0/0000.png"]]
    assert placed.report["leakage"] == []
    assert placed.report["duplicates_across_splits"] == {
        "dedupe_across_splits": True, "before": 1, "after": 0, "moved": 1
    }  # fmt: skip
    ds = PreparedDataset(out)
    train = np.asarray(ds.images("train"))
    mean, std = mean_std(pixel_histogram(train))
    assert np.array_equal(ds.mean_std()[0], mean) and np.array_equal(ds.mean_std()[1], std)

    kept = prepare(
        PrepareConfig(source=str(digit_splits), out=str(tmp_path / "kept"), dedupe_across_splits=False)
    )
    files = _files(tmp_path / "kept")
    assert files["train/0/0000.png"]["split"] == "train" and files["test/5/copy.png"]["split"] == "test"
    leaked = {"keys": ["test/5/copy.png", "train/0/0000.png"], "splits": ["test", "train"]}
    assert kept.report["leakage"] == [leaked]
    assert kept.report["duplicates_across_splits"]["after"] == 1


def test_copies_cut_from_one_source_land_together(tmp_path):
    images, labels = _digits()
    root = tmp_path / "flat"
    for i in range(200):
        path = root / str(labels[i]) / f"{i}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(path), images[i])
    for i in range(20):  # 20 copies, under other names, of the first 20 digits
        folder = root / str(labels[i])
        (folder / f"copy-{i}.png").write_bytes((folder / f"{i}.png").read_bytes())
    result = prepare(PrepareConfig(source=str(root), out=str(tmp_path / "out")))
    files = _files(tmp_path / "out")
    for i in range(20):
        assert files[f"{labels[i]}/{i}.png"]["split"] == files[f"{labels[i]}/copy-{i}.png"]["split"]
    assert len(result.report["duplicates"]) == 20 and result.report["leakage"] == []
    assert result.report["duplicates_across_splits"]["after"] == 0


def _run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API_URL")}
    env["COLUMNS"] = "200"
    return subprocess.run(
        [sys.executable, "-m", "flows.cli", "prepare", *args],
        capture_output=True, text=True, cwd=cwd, env={**env, "PYTHONPATH": str(REPO)}, timeout=300,
    )  # fmt: skip


def test_the_command_keeps_given_splits_says_where_they_came_from_with_relative_paths(digit_splits, tmp_path):
    _copy_a_train_digit_into_test(digit_splits)
    done = _run_cli(digit_splits.name, "--out", "prepared", cwd=digit_splits.parent)
    assert done.returncode == 0, done.stdout + done.stderr
    out = " ".join(done.stdout.split())  # the console wraps long lines
    images = N_TRAIN + int((_digits()[1][N_TRAIN : N_TRAIN + N_TEST] != 9).sum()) + 1
    assert f"{images} images written ({images} decoded, 0 reused):" in out
    assert "splits given by the source: train, test; validation cut from the given train split" in out
    assert "1 group of identical images, each kept in one split (1 of them spanned splits, 1 image" in out
    prepared = PreparedDataset(digit_splits.parent / "prepared")
    config = prepared.manifest["config"]
    assert config["source"] == str(digit_splits) and config["out"] == str(digit_splits.parent / "prepared")

    only_test = _run_cli(
        str(digit_splits), "--out", str(tmp_path / "t"), "--splits", "test=1.0", "--no-dedupe-across-splits",
        cwd=tmp_path,
    )  # fmt: skip
    assert only_test.returncode == 0, only_test.stdout + only_test.stderr
    out = " ".join(only_test.stdout.split())
    assert "splits given by the source: train, test; none cut" in out
    assert "1 group of identical images, 1 of them across splits (leakage: dedupe_across_splits is" in out
    assert PreparedDataset(tmp_path / "t").splits == ["train", "test"]


def test_grayscale_stored_as_rgb_gets_a_hint_and_grayscale_does_not(tmp_path):
    images, labels = _digits()
    root = tmp_path / "rgb"
    for i in range(40):
        path = root / str(labels[i]) / f"{i}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        stored = cv2.cvtColor(images[i], cv2.COLOR_GRAY2BGRA if i % 2 else cv2.COLOR_GRAY2BGR)
        assert cv2.imwrite(str(path), stored)
    assert cv2.imread(str(root / "0" / "0.png"), cv2.IMREAD_UNCHANGED).shape == (8, 8, 3)
    assert cv2.imread(str(root / "1" / "1.png"), cv2.IMREAD_UNCHANGED).shape == (8, 8, 4)
    splits = {"train": 0.5, "test": 0.5}
    hinted = prepare(PrepareConfig(source=str(root), out=str(tmp_path / "a"), splits=splits))
    (hint,) = hinted.report["hints"]
    assert hint.startswith("all 40 images are grayscale") and "--color-mode grayscale" in hint
    gray = prepare(
        PrepareConfig(source=str(root), out=str(tmp_path / "b"), splits=splits, color_mode="grayscale")
    )
    assert gray.report["hints"] == [] and PreparedDataset(tmp_path / "b").image_shape == (8, 8, 1)
    # one colour image among them: no hint (converting would lose its colour)
    colour = images[0].copy()
    colour_bgr = cv2.cvtColor(colour, cv2.COLOR_GRAY2BGR)
    colour_bgr[0, 0] = (0, 0, 255)
    cv2.imwrite(str(root / "0" / "red.png"), colour_bgr)
    with_colour = prepare(PrepareConfig(source=str(root), out=str(tmp_path / "c"), splits=splits))
    assert with_colour.report["hints"] == []


def test_a_large_downscale_with_bilinear_hints_at_area(tmp_path):
    photo = load_sample_images().images[0]  # 427x640
    root = tmp_path / "photos"
    for cls in ("a", "b"):
        (root / cls).mkdir(parents=True)
        for i in range(3):
            crop = np.ascontiguousarray(photo[40 * i : 40 * i + 320, 60 * i : 60 * i + 320, ::-1])
            assert cv2.imwrite(str(root / cls / f"{i}.png"), crop if cls == "a" else crop[::-1])

    def hints(out: str, **options: object) -> list[str]:
        splits = {"train": 0.5, "test": 0.5}
        cfg = PrepareConfig(source=str(root), out=str(tmp_path / out), splits=splits, **options)
        return prepare(cfg).report["hints"]

    (hint,) = hints("a", target_size=(32, 32))
    assert hint.startswith("6 images decoded in this run shrank 4x or more (up to 10.0x) to 32x32 with")
    assert "bilinear interpolation" in hint and "--interpolation area" in hint
    assert hints("b", target_size=(32, 32), interpolation="area") == []
    assert hints("c", target_size=(160, 160)) == []  # 2x


def test_the_report_says_where_splits_came_from(digit_splits, tmp_path):
    from pipeline.prepare import summary_markdown

    result = prepare(PrepareConfig(source=str(digit_splits), out=str(tmp_path / "out")))
    text = summary_markdown(result)
    assert "| train | " in text and "| given |" in text and "| validation | " in text and "| cut |" in text
    assert "splits given by the source: train, test; validation cut from the given train split" in text
    report = json.loads((result.version_dir / "report.json").read_text())
    assert report["split_plan"]["carved"] == ["validation"]


def test_the_studio_finds_a_split_folder_tree_and_shows_its_classes(digit_splits):
    from pipeline.studio.sources import load, source_kind

    assert source_kind(digit_splits) == "folder"
    shown = load(digit_splits, ".", 10)
    assert shown.info.classes == [str(d) for d in range(10)]
    assert sorted(shown.labels) == [str(d) for d in range(10)]  # spread over the classes, not the splits
