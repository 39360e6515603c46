"""Hostile files and folders: FIFOs, sockets, devices, symlink loops, lying headers, thin images,
names with markup. Each is built from code, and every run asserts what happens to each file.

A FIFO opened for reading blocks until something writes to it, so every run that could block goes to
a subprocess with a timeout, or runs in this process under ``_fifo_guard``, which opens each FIFO for
writing (and closes it) if the run has not finished in time: a regression then fails, never hangs.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import socket
import stat
import struct
import subprocess
import sys
import threading
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np
import pytest
from sklearn.datasets import load_sample_images

from pipeline.config import PrepareConfig
from pipeline.prepare import prepare

AUGPIPE = Path(sys.executable).with_name("augpipe")
# A GIF of 29 bytes whose screen and only frame declare 9000x9000 (81 million pixels, under the
# default max_pixels): a clear code and an end code are all its pixel data.
GIF_BOMB = (
    b"GIF89a" + struct.pack("<HHBBB", 9000, 9000, 0, 0, 0)
    + b"\x2c" + struct.pack("<HHHHB", 0, 0, 9000, 9000, 0)
    + b"\x02\x02\x2c\x00\x00;"
)  # fmt: skip
PASSWD = b"root:x:0:0:root:/root:/bin/bash\n"


def _photo(height: int, width: int, i: int = 0) -> np.ndarray:
    photo = load_sample_images().images[i % 2]
    return np.ascontiguousarray(photo[40 * i : 40 * i + height, 60 * i : 60 * i + width, ::-1])


def _png(image: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".png", image)
    assert ok
    return data.tobytes()


@contextlib.contextmanager
def _fifo_guard(fifos: list[Path], seconds: float = 60) -> Iterator[None]:
    """If the body has not finished after ``seconds``, open every FIFO for writing and close it: a
    reader blocked in open() then reads an empty file, and the test fails on its outcome instead of
    hanging."""
    done = threading.Event()

    def release() -> None:
        if done.wait(seconds):
            return
        for fifo in fifos:
            with contextlib.suppress(OSError):  # ENXIO: nobody is reading it
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))

    watchdog = threading.Thread(target=release, daemon=True)
    watchdog.start()
    try:
        yield
    finally:
        done.set()
        watchdog.join()


def _special(path: Path, kind: str) -> bool:
    """Make a FIFO, a unix socket or a character device (/dev/null's numbers) at path; False when this
    system does not let this user make it."""
    try:
        if kind == "fifo":
            os.mkfifo(path)
        elif kind == "socket":
            # A socket's path has a length limit (108 bytes): bind a short relative one from its folder.
            here = os.getcwd()
            os.chdir(path.parent)
            try:
                with socket.socket(socket.AF_UNIX) as sock:
                    sock.bind(path.name)
            finally:
                os.chdir(here)
        else:
            os.mknod(path, stat.S_IFCHR | 0o600, os.makedev(1, 3))
    except (OSError, AttributeError):
        return False
    return True


class Hostile(NamedTuple):
    root: Path
    fifos: list[Path]
    expected: dict[str, tuple[str, str | None]]  # key -> (reason, part of the message) with links off
    kept: list[str]  # the keys of the images prepared
    made: dict[str, bool]  # which special files this system let this user make


@pytest.fixture
def hostile(tmp_path) -> Hostile:
    """A class-folder tree with one of each hostile kind of file, folder and symlink in it."""
    root = tmp_path / "hostile"
    cls, other, nothing = root / "cls", root / "other", root / "nothing"
    for folder in (cls, other, nothing, tmp_path / "elsewhere"):
        folder.mkdir(parents=True)
    for i in range(3):
        (cls / f"good{i}.png").write_bytes(_png(_photo(48, 64, i)))
        (other / f"good{i}.png").write_bytes(_png(_photo(48, 64, i + 3)))
    (tmp_path / "elsewhere" / "img.png").write_bytes(_png(_photo(48, 64, 7)))
    good = (cls / "good0.png").read_bytes()
    (cls / "wide.png").write_bytes(_png(_photo(1, 100)))  # 1x100: a 16x32 crop of it is 1x2
    (cls / "thin.png").write_bytes(_png(_photo(100, 1)))  # 100x1: no row left for a 16x32 crop
    (cls / "empty.png").write_bytes(b"")
    (cls / "truncated.png").write_bytes(good[: len(good) // 2])
    (cls / "passwd.png").write_bytes(PASSWD)
    (cls / "bomb.gif").write_bytes(GIF_BOMB)
    (cls / "[").mkdir()
    (cls / "[" / "red].png").write_bytes(b"")  # its key: cls/[/red].png, a closing tag with no opening one
    (cls / ":x:.png").write_bytes(b"[bold]not an image[/bold] :x:\n")
    (cls / "notes.txt").write_text("a note")
    (cls / "labels.csv").write_text("a,b\n")
    (root / "README.md").write_text("# data")
    (root / "loose.png").write_bytes(good)
    (cls / "loop").symlink_to("loop")
    (cls / "up").symlink_to("..", target_is_directory=True)
    (cls / "dangling.png").symlink_to(tmp_path / "missing.png")
    (cls / "linked.png").symlink_to(tmp_path / "elsewhere" / "img.png")
    made = {kind: _special(cls / f"{kind}.png", kind) for kind in ("fifo", "socket", "device")}
    assert made["fifo"] and made["socket"]
    not_followed = ("symlink_not_followed", "symlink not followed (follow_links is off)")
    expected = {
        "cls/fifo.png": ("not_a_regular_file", "not a regular file (fifo)"),
        "cls/socket.png": ("not_a_regular_file", "not a regular file (socket)"),
        "cls/empty.png": ("empty", None),
        "cls/[/red].png": ("empty", None),  # rich markup in keys
        "cls/truncated.png": ("truncated", None),
        "cls/passwd.png": ("not_an_image", f"not an image (unknown format, {len(PASSWD)} bytes)"),
        "cls/:x:.png": ("not_an_image", "not an image (unknown format, 30 bytes)"),
        "cls/thin.png": ("too_small", None),
        "cls/bomb.gif": ("too_large", "more than 29 bytes of gif can hold"),
        "cls/loop": not_followed,
        "cls/up": not_followed,
        "cls/dangling.png": not_followed,
        "cls/linked.png": not_followed,
        "nothing/": ("no_images", "class folder holds no image files"),
        "loose.png": ("not_in_a_class_folder", None),
        **{f"*{ext}": ("not_an_image_extension", f"1 file left out, {ext!r} is not an image extension: {f}")
           for ext, f in ((".csv", "cls/labels.csv"), (".md", "README.md"), (".txt", "cls/notes.txt"))},
    }  # fmt: skip
    if made["device"]:
        expected["cls/device.png"] = ("not_a_regular_file", "not a regular file (character device)")
    kept = sorted([f"{c}/good{i}.png" for c in ("cls", "other") for i in range(3)] + ["cls/wide.png"])
    return Hostile(root, [cls / "fifo.png"], expected, kept, made)


def _assert_outcome(quarantined: list[dict[str, str]], expected: dict[str, tuple[str, str | None]]) -> None:
    got = {q["key"]: q for q in quarantined}
    assert sorted(got) == sorted(expected)
    for key, (reason, message) in expected.items():
        assert got[key]["reason"] == reason, (key, got[key])
        if message is not None:
            assert message in got[key]["message"], (key, got[key])
    for q in quarantined:  # a file's content is never quoted
        assert "root:x" not in q["message"] and "[bold]" not in q["message"]


def test_augpipe_prepare_lists_every_hostile_file_and_finishes(hostile, tmp_path):
    out = tmp_path / "out"
    command = [
        str(AUGPIPE), "prepare", str(hostile.root), "--out", str(out), "--target-size", "16x32",
        "--keep-aspect-ratio", "--splits", "train=1.0",
    ]  # fmt: skip
    # A subprocess with a timeout: before the fix, the FIFO hung the command for good.
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    version = out / "versions" / (out / "CURRENT").read_text().strip()
    report = json.loads((version / "report.json").read_text())
    _assert_outcome(report["quarantined"], hostile.expected)
    manifest = json.loads((version / "manifest.json").read_text())
    assert sorted(f["key"] for f in manifest["files"]) == hostile.kept
    assert manifest["quarantined"] == report["quarantined"]
    n = len(hostile.expected)
    assert f"{n} entries left out" in done.stdout and "Traceback" not in done.stdout + done.stderr
    assert not list(out.glob(".staging-*")) and not list((out / "versions").glob(".tmp-*"))


def test_following_links_lists_loops_and_dangling_links_and_scans_on(hostile, tmp_path):
    cls = hostile.root / "cls"
    expected = {k: v for k, v in hostile.expected.items() if v[0] != "symlink_not_followed"}
    expected |= {
        "cls/loop": ("symlink_loop", "symlink loop: its target leads back to itself"),
        "cls/up": ("symlink_loop", "symlink loop: leads back to the root folder"),
        "cls/dangling.png": ("dangling_symlink", "dangling symlink: its target does not exist"),
    }
    cfg = PrepareConfig(
        source=str(hostile.root), out=str(tmp_path / "out"), target_size=(16, 32),
        keep_aspect_ratio=True, follow_links=True, splits={"train": 1.0},
    )  # fmt: skip
    with _fifo_guard(hostile.fifos):
        result = prepare(cfg)
    _assert_outcome(result.report["quarantined"], expected)
    keys = sorted(f["key"] for f in json.loads((result.version_dir / "manifest.json").read_text())["files"])
    assert keys == sorted([*hostile.kept, "cls/linked.png"])
    assert (cls / "fifo.png").exists() and stat.S_ISFIFO((cls / "fifo.png").lstat().st_mode)


def test_a_manifest_row_naming_a_fifo_is_quarantined_without_blocking(hostile, tmp_path):
    root = hostile.root
    (root / "rows.csv").write_text("path,label\ncls/good0.png,a\ncls/good1.png,b\ncls/fifo.png,a\n")
    cfg = PrepareConfig(source=str(root / "rows.csv"), out=str(tmp_path / "out"), splits={"train": 1.0})
    with _fifo_guard(hostile.fifos):
        result = prepare(cfg)
    (fifo,) = [q for q in result.report["quarantined"] if q["key"] == "cls/fifo.png"]
    assert fifo["reason"] == "not_a_regular_file" and fifo["message"].endswith("not a regular file (fifo)")
    assert result.report["images"] == 2


def test_the_drop_in_names_each_unreadable_file_and_trains_on(hostile):
    from pipeline.keras_compat import ImageDataGenerator

    root = hostile.root
    gen = ImageDataGenerator(rescale=1 / 255)
    with _fifo_guard(hostile.fifos), pytest.warns(UserWarning, match="left out") as warned:
        it = gen.flow_from_directory(
            str(root), target_size=(16, 32), keep_aspect_ratio=True, batch_size=4, shuffle=False
        )
    reasons = {os.path.relpath(path, root): reason for path, reason in it.skipped}
    expected = {
        "cls/fifo.png": "not a regular file (fifo)",
        "cls/socket.png": "not a regular file (socket)",
        "cls/empty.png": "empty file (0 bytes)",
        "cls/[/red].png": "empty file (0 bytes)",
        "cls/passwd.png": "not an image PIL can identify",
        "cls/:x:.png": "not an image PIL can identify",
    }
    if hostile.made["device"]:
        expected["cls/device.png"] = "not a regular file (character device)"
    assert reasons.pop("cls/dangling.png").startswith("FileNotFoundError")
    assert reasons == expected
    assert "root:x" not in str(warned[0].message)
    # The truncated PNG passes the header check and fails when its batch is decoded; the 100x1 one
    # decodes, as Keras's load_img decodes it (Pillow resizes an empty crop box).
    with pytest.warns(UserWarning, match="failed to decode"):
        batches = [it[i] for i in range(len(it))]
    dropped = {os.path.relpath(p, root) for p, _ in it.skipped} - set(expected) - {"cls/dangling.png"}
    assert dropped == {"cls/truncated.png"} and "cls/thin.png" in it.filenames
    assert sum(len(x) for x, _ in batches) == it.samples - 1


def _idx_gz(path: Path, shape: tuple[int, ...], body: bytes, copies: int = 1) -> None:
    """An IDX uint8 file declaring ``shape``, its data ``body`` repeated, as gzip members one after
    another (a valid gzip file: a few kilobytes can hold gigabytes)."""
    header = bytes([0, 0, 8, len(shape)]) + struct.pack(f">{len(shape)}I", *shape)
    member = gzip.compress(body)
    path.write_bytes(gzip.compress(header + body) + member * (copies - 1))


def test_an_idx_gz_is_never_decompressed_past_its_header(tmp_path):
    source = tmp_path / "idx"
    source.mkdir()
    labels = bytes([0, 0, 8, 1]) + struct.pack(">I", 10) + bytes(10)
    (source / "train-labels-idx1-ubyte").write_bytes(labels)
    images = source / "train-images-idx3-ubyte.gz"
    cfg = PrepareConfig(source=str(source), out=str(tmp_path / "out"), splits={"train": 1.0})
    # A header that declares 10 images, then 2 GB of zeros in 4 MB of gzip members.
    _idx_gz(images, (10, 28, 28), bytes(1 << 24), copies=128)
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match="longer than its header says"):
            prepare(cfg)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 << 20  # decompressing it all would take 2 GB
    # A header that declares 100,000 images of 1000x1000 (100 GB) in a file of a few hundred bytes.
    _idx_gz(images, (100_000, 1000, 1000), b"")
    with pytest.raises(ValueError, match=r"more than its \d+-byte gzip stream can hold"):
        prepare(cfg)
