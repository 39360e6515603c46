"""Hostile CSV manifests, built here, each run through `augpipe prepare`: a manifest is either refused
with one `error:` line that names it and the row (and no version is written), or prepared with the
rows it cannot use quarantined by reason, and the dataset keeps its kind (an empty label once made a
whole dataset multi-label, and rows naming one file made a dataset of one split)."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

import flows.prepare  # noqa: F401  (see below)
from flows.cli import app
from pipeline.dataset import PreparedDataset

# flows.prepare is imported here because importing Prefect configures logging, which closes every
# handler there is: after a test that imported TensorFlow, absl's handler holds pytest's captured
# stderr, and closing it in the middle of a command broke that test's capture.
runner = CliRunner()
TRAIN_ONLY = ["--splits", "train=1.0"]  # tiny datasets: every other split would be empty, and refused
LONG = "x" * 131_073  # one character over csv's field size limit


@pytest.fixture(autouse=True)
def _on_prefect_api(prefect_api):
    """Every command runs against the session's temporary Prefect API."""


@pytest.fixture(autouse=True)
def _environment_kept() -> Iterator[None]:
    """The command sets Prefect's defaults (PREFECT_LOGGING_LEVEL=WARNING, ...) in os.environ: run in
    this process, they would outlive it and quiet the `augpipe` subprocesses of later tests."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """img/a.png ... img/e.png (8x8, all different), img/a,b.png, new<newline>line.png, link.png -> img/a.png,
    link_out.png -> ../outside.png, and a FIFO named fifo.csv; manifests are written beside them."""
    top = tmp_path_factory.mktemp("manifests")
    data = top / "data"
    (data / "img").mkdir(parents=True)
    for i, name in enumerate(["a", "b", "c", "d", "e", "a,b"]):
        assert cv2.imwrite(str(data / "img" / f"{name}.png"), np.full((8, 8), 40 * i, np.uint8))
    assert cv2.imwrite(str(data / "new\nline.png"), np.full((8, 8), 250, np.uint8))
    assert cv2.imwrite(str(top / "outside.png"), np.full((8, 8), 7, np.uint8))
    (data / "link.png").symlink_to("img/a.png")
    (data / "link_out.png").symlink_to(top / "outside.png")
    os.mkfifo(data / "fifo.csv")
    return data


class Prepared(NamedTuple):
    """The command succeeds: these images, the quarantined keys with their reasons, and a message
    detail per key."""

    images: int
    quarantined: dict[str, str]
    multi_label: bool = False
    details: dict[str, str] = {}


class Refused(NamedTuple):
    """The command fails with one `error:` line holding each of ``parts`` (and the manifest's path,
    unless ``names_file`` is False: the split check names the source), and writes no version."""

    parts: tuple[str, ...]
    names_file: bool = True


class Case(NamedTuple):
    text: str | bytes  # the manifest; "{data}" stands for the folder it is in
    outcome: Prepared | Refused
    args: list[str] = TRAIN_ONLY


CASES: dict[str, Case] = {
    # encodings and line endings that are fine
    "plain": Case("path,label\nimg/a.png,cat\nimg/b.png,dog\n", Prepared(2, {})),
    "bom": Case("\ufeffpath,label\nimg/a.png,cat\nimg/b.png,dog\n", Prepared(2, {})),
    "crlf": Case("path,label\r\nimg/a.png,cat\r\nimg/b.png,dog\r\n", Prepared(2, {})),
    "bom_crlf": Case("\ufeffpath,label\r\nimg/a.png,cat\r\nimg/b.png,dog\r\n", Prepared(2, {})),
    "padded_header_and_path": Case(" path , label \n img/a.png ,cat\n", Prepared(1, {})),
    "quoted_comma": Case('path,label\n"img/a,b.png",cat\nimg/a.png,dog\n', Prepared(2, {})),
    # a quoted newline is part of the file name, and rows are counted as records, not lines
    "quoted_newline": Case(
        'path,label\n"new\nline.png",cat\nimg/a.png,\nimg/b.png,dog\n',
        Prepared(2, {"img/a.png": "empty_label"}, details={"img/a.png": "row 3: the 'label' is empty"}),
    ),
    # labels: empty, conflicting, repeated; none of them changes the dataset's kind
    "empty_label": Case(
        "path,label\nimg/a.png,cat\nimg/b.png,\nimg/c.png,dog\n",
        Prepared(2, {"img/b.png": "empty_label"}, details={"img/b.png": "row 3: the 'label' is empty"}),
    ),
    "blank_label": Case(
        'path,label\nimg/a.png,cat\nimg/b.png,"  "\n', Prepared(1, {"img/b.png": "empty_label"})
    ),
    "duplicate_rows": Case(
        "path,label\nimg/a.png,cat\nimg/b.png,dog\nimg/a.png,cat\n",
        Prepared(2, {"img/a.png": "duplicate_rows"}, details={"img/a.png": "row 4 repeat row 2"}),
    ),
    "one_file_spelled_two_ways": Case(
        "path,label\nimg/a.png,cat\n./img/../img/a.png,cat\nimg/b.png,dog\n",
        Prepared(2, {"img/a.png": "duplicate_rows"}),
    ),
    "conflicting_labels": Case(
        "path,label\nimg/a.png,cat\nimg/b.png,dog\nimg/a.png,dog\n",
        Prepared(
            1,
            {"img/a.png": "conflicting_labels"},
            details={"img/a.png": "rows 2, 4 give it different labels: 'cat', 'dog'"},
        ),
    ),
    "conflicting_through_a_symlink": Case(
        "path,label\nlink.png,cat\nimg/a.png,dog\nimg/b.png,dog\n",
        Prepared(1, {"img/a.png": "conflicting_labels"}),
    ),
    "conflicting_with_an_empty_label": Case(
        "path,label\nimg/a.png,cat\nimg/a.png,\nimg/b.png,dog\n",
        Prepared(1, {"img/a.png": "conflicting_labels"}, details={"img/a.png": "labels: 'cat', ''"}),
    ),
    "conflicting_one_label_and_two": Case(
        "path,label\nimg/a.png,cat\nimg/a.png,cat dog\nimg/b.png,dog\n",
        Prepared(1, {"img/a.png": "conflicting_labels"}),
    ),
    "multi_label_in_any_order": Case(
        "path,label\nimg/a.png,cat dog\nimg/a.png,dog cat\nimg/b.png,cat\n",
        Prepared(2, {"img/a.png": "duplicate_rows"}, multi_label=True),
    ),
    # the probe's million rows naming one file: read once, decoded once, the repeats counted
    "one_file_in_every_row": Case(
        "path,label\n" + "img/a.png,cat\n" * 100_000,
        Prepared(
            1,
            {"img/a.png": "duplicate_rows"},
            details={"img/a.png": "rows 3, 4, 5, 6, 7, 8, 9, 10, 11, 12 and 99,989 more repeat row 2"},
        ),
    ),
    # splits that would be empty are refused before anything is written
    "one_file_in_every_row_default_splits": Case(
        "path,label\n" + "img/a.png,cat\n" * 1000,
        Refused(("splits validation and test would be empty: 1 image", "--splits train=1.0"), False),
        args=[],
    ),
    "three_images_default_splits": Case(
        "path,label\nimg/a.png,cat\nimg/b.png,dog\nimg/c.png,cat\n",
        Refused(("split test would be empty: 3 images", "train 2, validation 1, test 0"), False),
        args=[],
    ),
    # structure
    "empty_file": Case("", Refused(("is empty: expected a header row",))),
    "header_only": Case("path,label\n", Refused(("has no rows under its header",))),
    "blank_lines_only": Case("path,label\n\n\n", Refused(("has no rows under its header",))),
    "missing_column": Case("path\nimg/a.png\n", Refused(("lacks columns ['label']",))),
    "bom_and_missing_column": Case("\ufefffile,label\nimg/a.png,cat\n", Refused(("lacks columns ['path']",))),
    "unknown_column": Case("path,label,weight\nimg/a.png,cat,2\n", Refused(("unknown columns ['weight']",))),
    "column_twice": Case("path,label,label\nimg/a.png,cat,dog\n", Refused(("names ['label'] twice",))),
    "unquoted_comma": Case(
        "path,label\nimg/a.png,cat\nimg/a,b.png,cat\n",
        Refused(("row 3 has 3 fields but its header has 2: quote a path or label that holds a comma",)),
    ),
    "short_row": Case("path,label\nimg/a.png,cat\nimg/b.png\n", Refused(("row 3 has 1 field but",))),
    "unclosed_quote": Case(
        'path,label\nimg/a.png,cat\n"img/b.png,dog\nimg/c.png,dog\n', Refused(("row 3 has 1 field but",))
    ),
    "field_over_the_limit": Case(
        f"path,label\nimg/a.png,cat\nimg/b.png,{LONG}\n",
        Refused(("row 3 has a field over 131,072 characters",)),
    ),
    "unclosed_quote_to_the_end": Case(
        f'path,label\nimg/a.png,cat\n"img/b.png,{LONG}\n', Refused(("row 3 has a field over 131,072",))
    ),
    "latin1": Case(
        "path,label\nimg/a.png,cat\nimg/b.png,caf\xe9\n".encode("latin-1"),
        Refused(("is not UTF-8 at line 3 (byte 0xe9)",)),
    ),
    "nul": Case(b"path,label\nimg/a.png,c\x00at\n", Refused(("row 2 holds a NUL character",))),
    "empty_path": Case("path,label\nimg/a.png,cat\n ,dog\n", Refused(("row 3 has an empty 'path'",))),
    # a split column gives each file's split (any case; val is validation); the config cuts nothing more
    "split_column": Case(
        "split,path,label\ntrain,img/a.png,cat\nTEST,img/b.png,dog\nVal,img/c.png,cat\n", Prepared(3, {}), []
    ),
    "split_unknown": Case(
        "path,label,split\nimg/a.png,cat,train\nimg/b.png,dog,holdout\n",
        Refused(("row 3 has the 'split' 'holdout'; accepted: train, val, valid, validation, test",)),
    ),
    "split_empty": Case(
        "path,label,split\nimg/a.png,cat,train\nimg/b.png,dog, \n", Refused(("row 3 has an empty 'split'",))
    ),
    "conflicting_splits": Case(
        "path,label,split\nimg/a.png,cat,train\nimg/b.png,dog,train\nimg/a.png,cat,test\n",
        Prepared(
            1,
            {"img/a.png": "conflicting_splits"},
            details={"img/a.png": "rows 2, 4 put it in different splits: train, test"},
        ),
    ),
    "split_without_train": Case(
        "path,label,split\nimg/a.png,cat,test\nimg/b.png,dog,val\n",
        Refused(("gives the splits validation, test but no train split",)),
    ),
    # paths that leave the manifest's folder
    "escaping": Case(
        "path,label\nimg/a.png,cat\n../outside.png,dog\n",
        Refused(("has 1 path outside its folder", "row 3: ../outside.png")),
    ),
    "absolute": Case(
        "path,label\n{data}/img/a.png,cat\n", Refused(("has 1 path outside its folder", "row 2: /"))
    ),
    "symlink_out": Case(
        "path,label\nimg/a.png,cat\nlink_out.png,dog\n",
        Refused(("outside its folder", "row 3: link_out.png")),
    ),
}


@contextmanager
def _deadline(seconds: int) -> Iterator[None]:
    """Fail rather than hang (a FIFO opened for reading waits for a writer)."""

    def expire(signum: int, frame: object) -> None:
        raise TimeoutError(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def _assert_refused(output: str, out: Path, parts: tuple[str, ...], name: str | None) -> None:
    assert output.startswith("error:"), output
    assert len(output.strip().splitlines()) == 1 and "Traceback" not in output, output
    for part in (name, *parts) if name else parts:
        assert part in output, output
    assert not (out / "CURRENT").exists()
    assert not list(out.glob("versions/*")) and not list(out.glob(".staging-*"))


@pytest.mark.parametrize("case", list(CASES))
def test_a_hostile_manifest_is_prepared_or_refused_as_stated(data, tmp_path, case):
    text, outcome, args = CASES[case]
    manifest = data / f"{case}.csv"
    if isinstance(text, str):
        manifest.write_text(text.replace("{data}", str(data)), encoding="utf-8", newline="")
    else:
        manifest.write_bytes(text)
    out = tmp_path / "out"
    with _deadline(120):
        result = runner.invoke(app, ["prepare", str(manifest), "--out", str(out), *args])
    if isinstance(outcome, Refused):
        assert result.exit_code == 2, result.output
        _assert_refused(result.output, out, outcome.parts, str(manifest) if outcome.names_file else None)
        return
    assert result.exit_code == 0, result.output
    report = json.loads((PreparedDataset(out).dir / "report.json").read_text())
    assert report["images"] == outcome.images
    assert {q["key"]: q["reason"] for q in report["quarantined"]} == outcome.quarantined
    for q in report["quarantined"]:
        assert q["message"].startswith(str(manifest))
        assert outcome.details.get(q["key"], "") in q["message"]
    dataset = PreparedDataset(out)
    assert dataset.manifest["multi_label"] == outcome.multi_label
    assert np.load(dataset.dir / "train" / "labels.npy").ndim == (2 if outcome.multi_label else 1)
    assert report["decoded"] == outcome.images  # each file read once, however many rows name it


def test_a_fifo_named_csv_is_refused_without_waiting(data, tmp_path):
    out = tmp_path / "out"
    with _deadline(120):
        result = runner.invoke(app, ["prepare", str(data / "fifo.csv"), "--out", str(out)])
    assert result.exit_code == 2, result.output
    _assert_refused(result.output, out, ("is not a regular file",), str(data / "fifo.csv"))


def test_a_refused_manifest_leaves_the_current_version_as_it_was(data, tmp_path):
    out = tmp_path / "out"
    good, bad = data / "good.csv", data / "bad.csv"
    good.write_text("path,label\nimg/a.png,cat\nimg/b.png,dog\n")
    assert runner.invoke(app, ["prepare", str(good), "--out", str(out), *TRAIN_ONLY]).exit_code == 0
    before = (out / "CURRENT").read_text()
    bad.write_text("path,label\nimg/a.png,cat\nimg/b.png,dog\nimg/c.png,cat\n")  # empty splits
    result = runner.invoke(app, ["prepare", str(bad), "--out", str(out)])
    assert result.exit_code == 2 and "would be empty" in result.output, result.output
    assert (out / "CURRENT").read_text() == before
    assert [p.name for p in (out / "versions").iterdir()] == [before.strip()]
    assert not list(out.glob(".staging-*"))
