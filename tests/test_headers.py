"""Image sizes from file headers, and the mixed-size refusal that the scan makes from them."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image
from PIL.ExifTags import Base

import pipeline.prepare.decoding
from pipeline.config import PrepareConfig
from pipeline.errors import DataError
from pipeline.ingest import decode_image
from pipeline.ingest.headers import group_by_size, header_size
from pipeline.prepare import Item, decode_chunk, discard_run, finalize, prepare, scan, start_run

FIX = "set target_size (--target-size HEIGHTxWIDTH on the command line) to resize every image to one size"


def _pixels(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), np.uint8)


def _write(path: Path, height: int, width: int, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), _pixels(height, width, seed))
    return path


def _write_pillow(
    path: Path, height: int, width: int, orientation: int = 1, endian: str = "<", **options: object
) -> Path:
    """An image Pillow writes (cv2 writes no EXIF), with an EXIF orientation if not 1."""
    image = Image.fromarray(_pixels(height, width))
    if orientation != 1:
        exif = Image.Exif()
        exif.endian = endian
        exif[Base.Make] = "augpipe"  # a tag before the orientation
        exif[Base.Orientation] = orientation
        options["exif"] = exif.tobytes()
    image.save(path, **options)
    return path


_XMP_TURNED = (
    b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
    b'<rdf:Description xmlns:tiff="http://ns.adobe.com/tiff/1.0/" tiff:Orientation="6"/>'
    b"</rdf:RDF></x:xmpmeta>"
)


def _sizes_by_decoding(paths: list[Path]) -> list[tuple[int, ...]]:
    return [decode_image(p).shape[:2] for p in paths]


def test_header_sizes_are_the_decoded_sizes(tmp_path):
    files = [
        _write(tmp_path / "a.png", 20, 30),
        _write(tmp_path / "b.jpg", 21, 31),
        _write(tmp_path / "c.bmp", 22, 32),
        _write(tmp_path / "d.webp", 23, 33),
        _write(tmp_path / "e.tiff", 24, 34),
        _write(tmp_path / "f.ppm", 25, 35),
        _write_pillow(tmp_path / "g.gif", 26, 36),
        # orientations 5-8 turn the image a quarter: decoding swaps height and width
        _write_pillow(tmp_path / "h.jpg", 20, 30, orientation=6),
        _write_pillow(tmp_path / "i.jpg", 20, 30, orientation=3),
        _write_pillow(tmp_path / "j.png", 20, 30, orientation=8),
        _write_pillow(tmp_path / "j.jpg", 20, 30, orientation=5, endian=">"),
        _write_pillow(tmp_path / "x.jpg", 20, 30, xmp=_XMP_TURNED),  # XMP alone orients it too
        # metadata past the first 64 KiB: read by Pillow rather than the quick JPEG parser
        _write_pillow(tmp_path / "k.jpg", 27, 37, icc_profile=bytes(100_000)),
    ]
    sizes = [header_size(str(p)) for p in files]
    assert sizes == _sizes_by_decoding(files)
    assert sizes[7:12] == [(30, 20), (20, 30), (30, 20), (30, 20), (30, 20)]


def test_unreadable_headers_give_no_size(tmp_path):
    good = _write(tmp_path / "good.png", 20, 30).read_bytes()
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "notes.png").write_text("not an image")
    (tmp_path / "cut.png").write_bytes(good[:20])  # the signature and part of IHDR
    os.mkfifo(tmp_path / "fifo.png")  # read, it would block until something writes to it
    names = ["empty.png", "notes.png", "cut.png", "fifo.png", "missing.png"]
    assert [header_size(str(tmp_path / name)) for name in names] == [None] * 5
    paths = [str(tmp_path / name) for name in ["good.png", *names]]
    assert group_by_size(paths) == {(20, 30): [0]}


@pytest.fixture
def mixed_tree(tmp_path: Path) -> Path:
    """10 images of 20x30, 2 of 24x24 and 1 of 30x20 in two class folders."""
    root = tmp_path / "mixed"
    for i in range(6):
        _write(root / "cats" / f"cat{i}.png", 20, 30, seed=i)
    for i in range(4):
        _write(root / "dogs" / f"dog{i}.jpg", 20, 30, seed=10 + i)
    _write(root / "dogs" / "big0.jpg", 24, 24, seed=20)
    _write(root / "dogs" / "big1.jpg", 24, 24, seed=21)
    _write(root / "cats" / "tall.png", 30, 20, seed=22)
    return root


def _assert_nothing_written(out: Path) -> None:
    if out.exists():  # prepare() makes the folder before it scans; the Prefect flow does not
        assert not list(out.glob(".staging-*")) and not (out / "CURRENT").exists()
        assert not list((out / "versions").iterdir())


def test_mixed_sizes_are_refused_from_the_headers_before_anything_is_decoded(
    mixed_tree, tmp_path, monkeypatch
):
    out = tmp_path / "out"
    cfg = PrepareConfig(source=str(mixed_tree), out=str(out))
    with pytest.raises(DataError) as caught:
        scan(cfg)
    assert str(caught.value) == (
        "images differ in size (by their headers, height x width): 10 are 20x30; "
        "2 are 24x24 (dogs/big0.jpg, dogs/big1.jpg); 1 is 30x20 (cats/tall.png); " + FIX
    )
    assert not out.exists()

    def no_decoding(*args: object) -> None:
        raise AssertionError("a chunk was decoded")

    monkeypatch.setattr(pipeline.prepare.decoding, "decode_chunk", no_decoding)
    with pytest.raises(DataError, match="2 are 24x24 .*--target-size HEIGHTxWIDTH"):
        prepare(cfg)
    _assert_nothing_written(out)


def test_many_sizes_are_summed_up(tmp_path):
    for i in range(8):
        for j in range(i + 1):
            _write(tmp_path / "src" / "c" / f"s{i}-{j}.png", 10 + i, 10)
    with pytest.raises(DataError) as caught:
        scan(PrepareConfig(source=str(tmp_path / "src"), out=str(tmp_path / "out")))
    assert "8 are 17x10; 7 are 16x10 (c/s6-0.png, c/s6-1.png, c/s6-2.png and 4 more); " in str(caught.value)
    assert "; 6 more in 3 other sizes; set target_size" in str(caught.value)


def test_a_manifest_of_mixed_sizes_names_files_relative_to_it(tmp_path):
    data = tmp_path / "data"
    _write(data / "a" / "1.png", 16, 16)
    _write(data / "a" / "2.png", 16, 16, seed=1)
    _write(data / "b" / "3.png", 16, 24)
    (data / "labels.csv").write_text("path,label\na/1.png,x\na/2.png,y\nb/3.png,x\n")
    cfg = PrepareConfig(source=str(data / "labels.csv"), out=str(tmp_path / "out"))
    with pytest.raises(DataError, match=r": 2 are 16x16; 1 is 16x24 \(b/3\.png\); set target_size"):
        scan(cfg)
    assert not (tmp_path / "out").exists()


def test_one_size_and_unusable_files_pass(tmp_path):
    root = tmp_path / "src"
    for i in range(4):
        _write(root / ("a" if i % 2 else "b") / f"{i}.png", 20, 30, seed=i)
    (root / "a" / "notes.png").write_text("not an image")  # no header: decoding quarantines it
    # a header of another size, but the file is cut short: decoding quarantines it, so no refusal
    whole = _write(root / "b" / "cut.jpg", 40, 40).read_bytes()
    (root / "b" / "cut.jpg").write_bytes(whole[: len(whole) // 2])
    # 20x30 stored, or 30x20 stored and turned by its EXIF orientation: both decode to 20x30
    _write_pillow(root / "b" / "turned.jpg", 30, 20, orientation=6)
    result = prepare(PrepareConfig(source=str(root), out=str(tmp_path / "out"), splits={"train": 1.0}))
    assert result.report["images"] == 5
    assert {q["key"]: q["reason"] for q in result.report["quarantined"]} == {
        "a/notes.png": "not_an_image",
        "b/cut.jpg": "truncated",
    }


def test_target_size_makes_mixed_sizes_fine(mixed_tree, tmp_path):
    cfg = PrepareConfig(source=str(mixed_tree), out=str(tmp_path / "out"), target_size=(16, 16))
    assert len(scan(cfg)) == 13


def test_decoding_still_refuses_what_headers_did_not_tell(mixed_tree, tmp_path):
    """The same refusal after decoding, inside a chunk and across chunks, for files listed without
    the scan (or whose sizes only decoding tells)."""
    cfg = PrepareConfig(source=str(mixed_tree), out=str(tmp_path / "out"), splits={"train": 1.0})

    def item(key: str) -> Item:
        return Item(key, (key.split("/")[0],), str(mixed_tree / key))

    run = start_run(cfg)
    try:
        with pytest.raises(DataError) as caught:
            decode_chunk(
                cfg, [item("cats/cat0.png"), item("dogs/big0.jpg"), item("cats/cat1.png")], run.staging, 0
            )
        assert str(caught.value) == (
            "images differ in size (after decoding, height x width): 2 are 20x30; "
            "1 is 24x24 (dogs/big0.jpg); " + FIX
        )
    finally:
        discard_run(run)
    run = start_run(cfg)
    records = [
        decode_chunk(cfg, [item(key)], run.staging, i)
        for i, key in enumerate(["cats/cat0.png", "cats/tall.png"])
    ]
    with pytest.raises(
        DataError, match=r"after decoding.*: 1 is 20x30; 1 is 30x20 \(cats/tall\.png\); set target_size"
    ):
        finalize(cfg, run, records)
    _assert_nothing_written(tmp_path / "out")


def test_the_prepare_flow_refuses_mixed_sizes_before_making_the_output_folder(
    mixed_tree, tmp_path, prefect_api
):
    from flows.prepare import run_prepare

    out = tmp_path / "out"
    with pytest.raises(DataError, match="2 are 24x24 .*--target-size HEIGHTxWIDTH"):
        run_prepare(PrepareConfig(source=str(mixed_tree), out=str(out)))
    assert not out.exists()
