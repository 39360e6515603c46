"""Ingest: IDX, class folders, manifests, npz, the Keras cache check, and decoding real and broken files."""

import csv
import gzip
import hashlib
import io
import os
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, ImageOps

from pipeline.ingest import (
    DecodeOptions,
    ImageProblem,
    Sample,
    check_and_decode,
    decode_image,
    load_idx_dataset,
    load_keras_dataset,
    load_npz,
    read_idx,
    read_manifest,
    scan_class_folders,
)
from pipeline.ingest.decode import center_crop_to_aspect, decode_checked, file_extension, read_file
from pipeline.ingest.sources import LeftOutRows

MNIST_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"
if not MNIST_DIR.is_dir():
    MNIST_DIR = Path("/work/shared/data/mnist")


def _encode(image: np.ndarray, fmt: str, **params) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image.squeeze(-1) if image.shape[-1] == 1 else image).save(buffer, fmt, **params)
    return buffer.getvalue()


def _mean_abs(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.float64) - b.astype(np.float64)).mean())


# ---------------------------------------------------------------- IDX


def _idx_bytes(array: np.ndarray, code: int) -> bytes:
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


@pytest.mark.parametrize(
    ("dtype", "code"),
    [
        (np.uint8, 0x08),
        (np.int8, 0x09),
        (np.int16, 0x0B),
        (np.int32, 0x0C),
        (np.float32, 0x0D),
        (np.float64, 0x0E),
    ],
)
@pytest.mark.parametrize("compress", [False, True])
def test_idx_round_trip(tmp_path, dtype, code, compress):
    array = (np.arange(2 * 3 * 5) - 7).astype(dtype).reshape(2, 3, 5)
    data = _idx_bytes(array, code)
    # The extension lies on purpose: compression is detected from the magic bytes.
    path = tmp_path / "data.idx"
    path.write_bytes(gzip.compress(data) if compress else data)
    out = read_idx(path)
    assert out.dtype == np.dtype(dtype) and out.dtype.isnative
    np.testing.assert_array_equal(out, array)


def test_idx_truncated_names_file_and_sizes(tmp_path):
    data = _idx_bytes(np.zeros((4, 28, 28), np.uint8), 0x08)
    path = tmp_path / "short-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(data[:-100]))
    with pytest.raises(ValueError, match=r"short-idx3-ubyte\.gz.*truncated.*3152 bytes, got 3052"):
        read_idx(path)


def test_idx_bad_magic(tmp_path):
    path = tmp_path / "x.idx"
    path.write_bytes(b"\x00\x00\x42\x01" + b"\x00" * 8)
    with pytest.raises(ValueError, match="does not start with an IDX magic number") as info:
        read_idx(path)
    assert "4201" not in str(info.value)  # the file's bytes are never quoted


def test_idx_dataset_counts_must_agree(tmp_path):
    images = np.arange(3 * 4 * 4, dtype=np.uint8).reshape(3, 4, 4)
    (tmp_path / "img").write_bytes(_idx_bytes(images, 0x08))
    (tmp_path / "lab").write_bytes(_idx_bytes(np.array([1, 2, 3], np.uint8), 0x08))
    (tmp_path / "lab2").write_bytes(_idx_bytes(np.array([1, 2], np.uint8), 0x08))
    x, y = load_idx_dataset(tmp_path / "img", tmp_path / "lab")
    assert x.shape == (3, 4, 4, 1) and x.dtype == np.uint8 and y.dtype == np.int64
    np.testing.assert_array_equal(x[..., 0], images)
    with pytest.raises(ValueError, match="3 images .* but 2 labels"):
        load_idx_dataset(tmp_path / "img", tmp_path / "lab2")


@pytest.mark.skipif(not MNIST_DIR.is_dir(), reason="canonical MNIST not present")
def test_canonical_mnist_md5_and_shapes():
    readme = (MNIST_DIR / "README.md").read_text()
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        md5 = next(line.split("|")[3].strip() for line in readme.splitlines() if line.startswith(f"| {name}"))
        assert hashlib.md5(gzip.decompress((MNIST_DIR / name).read_bytes())).hexdigest() == md5
    x, y = load_idx_dataset(MNIST_DIR / "t10k-images-idx3-ubyte.gz", MNIST_DIR / "t10k-labels-idx1-ubyte.gz")
    assert x.shape == (10000, 28, 28, 1) and y.shape == (10000,)
    assert sorted(np.unique(y)) == list(range(10))


# ---------------------------------------------------------------- class folders and manifests


def test_scan_class_folders_nested_and_mixed_case(tmp_path, photos_u8):
    png = _encode(photos_u8["rgb"], "PNG")
    for rel in ("cat/b.PNG", "cat/a.png", "cat/deep/er/c.Jpg", "dog/x.webp", "dog/readme.txt", "bird/n.TIFF"):
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(png)
    (tmp_path / "loose.png").write_bytes(png)  # not in a class folder
    samples = scan_class_folders(tmp_path)
    got = [(Path(s.path).relative_to(tmp_path).as_posix(), s.labels) for s in samples]
    assert got == [
        ("bird/n.TIFF", ("bird",)),
        ("cat/a.png", ("cat",)),
        ("cat/b.PNG", ("cat",)),
        ("cat/deep/er/c.Jpg", ("cat",)),
        ("dog/x.webp", ("dog",)),
    ]
    assert samples == scan_class_folders(str(tmp_path))


def test_scan_class_folders_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        scan_class_folders(tmp_path / "nowhere")
    (tmp_path / "cat").mkdir()
    (tmp_path / "cat" / "notes.txt").write_text("no images")
    with pytest.raises(ValueError, match="no images"):
        scan_class_folders(tmp_path)


def test_scan_class_folders_links(tmp_path, photos_u8):
    data = tmp_path / "data"
    (data / "cat").mkdir(parents=True)
    (data / "cat" / "a.png").write_bytes(_encode(photos_u8["rgb"], "PNG"))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "b.png").write_bytes(_encode(photos_u8["rgb"], "PNG"))
    (data / "cat" / "linked").symlink_to(elsewhere, target_is_directory=True)
    assert [Path(s.path).name for s in scan_class_folders(data)] == ["a.png"]
    assert [Path(s.path).name for s in scan_class_folders(data, follow_links=True)] == ["a.png", "b.png"]


def test_read_manifest_multilabel_and_relative(tmp_path):
    (tmp_path / "m.csv").write_text("path,label\nimg/a.png,cat\nimg/b.png,dog  cat\n./c.png,\n")
    manifest = read_manifest(tmp_path / "m.csv")
    root = tmp_path.resolve()
    assert manifest.samples == [
        Sample(str(root / "img" / "a.png"), ("cat",)),
        Sample(str(root / "img" / "b.png"), ("cat", "dog")),  # sorted
    ]
    # a row without a label is left out, not a file with no labels (that made the dataset multi-label)
    assert manifest.left_out == [
        LeftOutRows(str(root / "c.png"), "empty_label", f"{tmp_path / 'm.csv'} row 4: the 'label' is empty")
    ]
    (tmp_path / "n.csv").write_text("file,tags\na.png,x | y\n")
    assert read_manifest(tmp_path / "n.csv", "file", "tags", "|").samples[0].labels == ("x", "y")


def test_read_manifest_refuses_escaping_paths_unless_allowed(tmp_path):
    sub = tmp_path / "set"
    sub.mkdir()
    rows = [
        "path,label",
        "ok.png,a",
        "../outside.png,b",
        "deep/../../also.png,c",
        "/etc/passwd,d",
        "a/../fine.png,e",
    ]
    (sub / "m.csv").write_text("\n".join(rows) + "\n")
    with pytest.raises(
        ValueError, match=r"3 paths outside.*row 3: \.\./outside.*row 4: .*row 5: /etc/passwd"
    ):
        read_manifest(sub / "m.csv")
    samples = read_manifest(sub / "m.csv", allow_outside_root=True).samples
    assert [s.path for s in samples][1:4] == [
        str(tmp_path.resolve() / "outside.png"),
        str(tmp_path.resolve() / "also.png"),
        "/etc/passwd",
    ]


def test_read_manifest_missing_columns(tmp_path):
    (tmp_path / "m.csv").write_text("filename,class\na.png,x\n")
    with pytest.raises(
        ValueError, match=r"lacks columns \['path', 'label'\]; found columns \['filename', 'class'\]"
    ):
        read_manifest(tmp_path / "m.csv")


# ---------------------------------------------------------------- npz and keras.datasets


def test_load_npz_variants(tmp_path):
    gray = np.arange(5 * 6 * 7, dtype=np.uint8).reshape(5, 6, 7)
    np.savez(tmp_path / "a.npz", x_train=gray, y_train=np.arange(5))
    x, y = load_npz(tmp_path / "a.npz")
    assert x.shape == (5, 6, 7, 1) and x.dtype == np.uint8
    np.testing.assert_array_equal(y, np.arange(5))

    rgb = np.random.default_rng(0).random((4, 3, 3, 3), dtype=np.float32)
    np.savez(tmp_path / "b.npz", images=rgb, labels=np.zeros(4))
    x, _ = load_npz(tmp_path / "b.npz")
    assert x.dtype == np.float32 and x.shape == (4, 3, 3, 3)

    np.savez(tmp_path / "c.npz", pix=gray.astype(np.int64), cls=np.arange(5))
    x, _ = load_npz(tmp_path / "c.npz", x_key="pix", y_key="cls")
    assert x.dtype == np.uint8
    with pytest.raises(KeyError, match=r"keys present: \['pix', 'cls'\]"):
        load_npz(tmp_path / "c.npz")
    with pytest.raises(KeyError, match="no label key 'nope'"):
        load_npz(tmp_path / "c.npz", x_key="pix", y_key="nope")

    np.savez(tmp_path / "d.npz", x=gray, y=np.arange(4))
    with pytest.raises(ValueError, match="5 images but 4 labels"):
        load_npz(tmp_path / "d.npz")


def test_keras_dataset_not_cached_and_unknown(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    for name in ("mnist", "fashion_mnist", "cifar10", "cifar100"):
        with pytest.raises(FileNotFoundError, match=rf"{name}.*not cached.*allow_download=True"):
            load_keras_dataset(name)
    with pytest.raises(ValueError, match="unknown Keras dataset 'svhn'"):
        load_keras_dataset("svhn")


# ---------------------------------------------------------------- decoding real files


@pytest.mark.parametrize(
    ("fmt", "ext", "lossless"),
    [
        ("PNG", "png", True),
        ("BMP", "bmp", True),
        ("TIFF", "tiff", True),
        ("WEBP", "webp", False),
        ("JPEG", "jpg", False),
    ],
)
def test_decode_formats_rgb(tmp_path, photos_u8, fmt, ext, lossless):
    image = photos_u8["rgb"]
    path = tmp_path / f"photo.{ext}"
    path.write_bytes(_encode(image, fmt, **({} if lossless else {"quality": 95})))
    out = check_and_decode(path)
    assert out.shape == image.shape and out.dtype == np.uint8
    if lossless:
        np.testing.assert_array_equal(out, image)  # also proves BGR was turned into RGB
    else:
        assert _mean_abs(out, image) < 4
        assert _mean_abs(out, image[..., ::-1]) > 10


def test_decode_gif_first_frame(tmp_path, photos_u8):
    frames = [Image.fromarray(photos_u8["rgb"]), Image.fromarray(255 - photos_u8["rgb"])]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0)
    out = check_and_decode(path)
    with Image.open(path) as expected:
        first = np.asarray(expected.convert("RGB"))
    assert out.shape == first.shape
    assert _mean_abs(out, first) < 1


def test_color_modes(photos_u8):
    rgb = photos_u8["rgb"]
    data = _encode(rgb, "PNG")
    gray = decode_image(data, color_mode="grayscale")
    assert gray.shape == (*rgb.shape[:2], 1)
    np.testing.assert_allclose(gray[..., 0], cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), atol=1)
    rgba = decode_image(data, color_mode="rgba")
    assert rgba.shape == (*rgb.shape[:2], 4) and (rgba[..., 3] == 255).all()
    np.testing.assert_array_equal(rgba[..., :3], rgb)

    gray_png = _encode(photos_u8["gray"], "PNG")
    as_rgb = decode_image(gray_png)
    assert as_rgb.shape == (*photos_u8["gray"].shape[:2], 3)
    np.testing.assert_array_equal(as_rgb[..., 1], photos_u8["gray"][..., 0])

    with_alpha = np.dstack([rgb, np.full(rgb.shape[:2], 100, np.uint8)])
    out = decode_image(_encode(with_alpha, "PNG"), color_mode="rgba")
    np.testing.assert_array_equal(out, with_alpha)
    np.testing.assert_array_equal(decode_image(_encode(with_alpha, "PNG")), rgb)


def test_16bit_png_is_scaled_not_shifted(tmp_path):
    levels = np.arange(256, dtype=np.uint16).reshape(16, 16)
    image16 = levels * 257  # k * 257 is the 16-bit value of 8-bit k
    image16[0, 1] = 255  # x >> 8 would give 0 here; proper scaling rounds 255 / 257 to 1
    path = tmp_path / "deep.png"
    assert cv2.imwrite(str(path), image16)
    out = check_and_decode(path, color_mode="grayscale")
    assert out.dtype == np.uint8
    expected = levels.astype(np.uint8)
    expected[0, 1] = 1
    np.testing.assert_array_equal(out[..., 0], expected)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_matches_pillow(tmp_path, photos_u8, orientation):
    image = photos_u8["rgb"]  # 120x180: not square, so rotations change the shape
    exif = Image.Exif()
    exif[274] = orientation
    path = tmp_path / "rotated.jpg"
    Image.fromarray(image).save(path, "JPEG", quality=95, exif=exif.tobytes())
    with Image.open(path) as pil:
        expected = np.asarray(ImageOps.exif_transpose(pil).convert("RGB"))
    out = check_and_decode(path)
    assert out.shape == expected.shape
    assert _mean_abs(out, expected) < 2


@pytest.mark.parametrize("interpolation", ["nearest", "bilinear", "bicubic", "area", "lanczos"])
def test_resize_target_size(photos_u8, interpolation):
    data = _encode(photos_u8["rgb"], "PNG")
    out = decode_image(data, target_size=(60, 90), interpolation=interpolation)
    assert out.shape == (60, 90, 3) and out.dtype == np.uint8
    half = cv2.resize(photos_u8["rgb"], (90, 60), interpolation=cv2.INTER_AREA)
    assert _mean_abs(out, half) < 8
    gray = decode_image(data, color_mode="grayscale", target_size=(30, 30), interpolation=interpolation)
    assert gray.shape == (30, 30, 1)


def test_keep_aspect_ratio_crops_centre_like_keras(photos_u8):
    image = photos_u8["rgb"]  # 120x180
    crop = center_crop_to_aspect(image, (50, 50))
    np.testing.assert_array_equal(crop, image[:, 30:150])
    out = decode_image(
        _encode(image, "PNG"), target_size=(60, 60), keep_aspect_ratio=True, interpolation="area"
    )
    np.testing.assert_array_equal(out, cv2.resize(image[:, 30:150], (60, 60), interpolation=cv2.INTER_AREA))
    tall = center_crop_to_aspect(image, (100, 50))
    assert tall.shape[:2] == (120, 60)


def test_bad_options_raise():
    with pytest.raises(ValueError, match="color_mode .* but got 'cmyk'"):
        decode_image(b"x", color_mode="cmyk")
    with pytest.raises(ValueError, match="interpolation .* but got 'cubic'"):
        decode_image(b"x", interpolation="cubic")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"color_mode": "cmyk"}, "color_mode .* but got 'cmyk'"),
        ({"interpolation": "cubic"}, "interpolation .* but got 'cubic'"),
        ({"target_size": (0, 4)}, r"target_size .* but got \(0, 4\)"),
        ({"target_size": (4,)}, r"target_size .* but got \(4,\)"),
        ({"max_pixels": 0}, "max_pixels must be positive, but got 0"),
    ],
)
def test_decode_options_are_checked_once_when_made(options, message):
    with pytest.raises(ValueError, match=message):
        DecodeOptions(**options)


def test_decode_options_decode_as_the_keyword_arguments_do(tmp_path, photos_u8):
    path = tmp_path / "photo.png"
    path.write_bytes(_encode(photos_u8["rgb"], "PNG"))
    options = DecodeOptions("grayscale", [30, 40], "area", keep_aspect_ratio=True)  # a list, as from JSON
    assert options == DecodeOptions("grayscale", (30, 40), "area", True) and hash(options)
    expected = check_and_decode(path, "grayscale", (30, 40), "area", keep_aspect_ratio=True)
    np.testing.assert_array_equal(decode_checked(path.read_bytes(), str(path), options), expected)
    assert DecodeOptions(max_pixels=10).max_file_bytes == 1 << 30  # never below the bound for metadata
    assert DecodeOptions(max_pixels=1 << 28).max_file_bytes == 16 << 28


# ---------------------------------------------------------------- broken files


def _png_claiming(width: int, height: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    idat_data = zlib.compress(b"\x00" * 16)
    idat = (
        struct.pack(">I", len(idat_data))
        + b"IDAT"
        + idat_data
        + struct.pack(">I", zlib.crc32(b"IDAT" + idat_data))
    )
    iend = struct.pack(">I", 0) + b"IEND" + struct.pack(">I", zlib.crc32(b"IEND"))
    return b"\x89PNG\r\n\x1a\n" + chunk + idat + iend


@pytest.fixture
def bad_files(tmp_path, photos_u8) -> dict[str, Path]:
    jpeg = _encode(photos_u8["rgb"], "JPEG", quality=90)
    png = _encode(photos_u8["rgb"], "PNG")
    files = {
        "empty": ("empty.png", b""),
        "truncated_jpeg": ("cut.jpg", jpeg[: len(jpeg) * 2 // 3]),
        "truncated_png": ("cut.png", png[: len(png) // 2]),
        "text_as_png": ("notes.png", b"just some text, not pixels\n"),
        "png_as_jpg": ("photo.jpg", png),
        "huge": ("huge.png", _png_claiming(100_000, 100_000)),
        "garbage_jpeg": ("garbage.jpg", b"\xff\xd8\xff\xe0" + bytes(range(256)) * 4 + b"\xff\xd9"),
    }
    paths = {}
    for key, (name, data) in files.items():
        paths[key] = tmp_path / name
        paths[key].write_bytes(data)
    return paths


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        ("empty", "empty"),
        ("truncated_jpeg", "truncated"),
        ("truncated_png", "truncated"),
        ("text_as_png", "not_an_image"),
        ("png_as_jpg", "wrong_extension"),
        ("huge", "too_large"),
        ("garbage_jpeg", "corrupt"),
    ],
)
def test_bad_files_give_reasons(bad_files, key, reason):
    path = bad_files[key]
    with pytest.raises(ImageProblem) as info:
        check_and_decode(path)
    assert info.value.reason == reason
    assert str(path) in str(info.value)


def test_max_pixels_is_checked_before_decoding(photos_u8):
    data = _encode(photos_u8["rgb"], "PNG")  # 120 x 180 = 21,600 pixels
    with pytest.raises(ImageProblem, match="120.*21600 pixels, above max_pixels=20000") as info:
        decode_image(data, max_pixels=20_000)
    assert info.value.reason == "too_large"
    assert decode_image(data, max_pixels=21_600).shape == (120, 180, 3)
    # 10000 x 10000 is between Pillow's warning and error limits: its warning must not leak.
    with pytest.raises(ImageProblem, match="10000x10000 = 100000000 pixels") as info:
        decode_image(_png_claiming(10_000, 10_000))
    assert info.value.reason == "too_large"


def test_png_named_jpg_still_decodes_through_decode_image(bad_files, photos_u8):
    # decode_image trusts content; only check_and_decode polices the extension.
    np.testing.assert_array_equal(decode_image(bad_files["png_as_jpg"]), photos_u8["rgb"])


def test_float_tiff_is_unsupported(tmp_path):
    path = tmp_path / "float.tiff"
    assert cv2.imwrite(str(path), np.full((8, 8), 0.5, np.float32))
    with pytest.raises(ImageProblem, match="float32") as info:
        check_and_decode(path)
    assert info.value.reason == "unsupported"


def test_pillow_fallback_when_opencv_cannot_decode(monkeypatch, tmp_path, photos_u8):
    # Some OpenCV builds lack GIF (or other) decoders; Pillow must then give the same arrays.
    monkeypatch.setattr(cv2, "imdecode", lambda *args: None)
    rgb = photos_u8["rgb"]
    np.testing.assert_array_equal(decode_image(_encode(rgb, "PNG")), rgb)
    with_alpha = np.dstack([rgb, np.full(rgb.shape[:2], 7, np.uint8)])
    np.testing.assert_array_equal(decode_image(_encode(with_alpha, "PNG"), color_mode="rgba"), with_alpha)
    gray = photos_u8["gray"]
    np.testing.assert_array_equal(decode_image(_encode(gray, "PNG"), color_mode="grayscale"), gray)
    deep = tmp_path / "deep.png"
    Image.fromarray(np.full((4, 4), 65535, np.uint16)).save(deep)
    assert (decode_image(deep, color_mode="grayscale") == 255).all()
    gif = tmp_path / "a.gif"
    Image.fromarray(rgb).save(gif)
    with Image.open(gif) as expected:
        np.testing.assert_array_equal(decode_image(gif), np.asarray(expected.convert("RGB")))


def test_png_with_bytes_after_iend_is_complete_and_one_cut_inside_iend_is_truncated(tmp_path, photos_u8):
    png = _encode(photos_u8["rgb"], "PNG")
    expected = decode_image(png)
    (tmp_path / "padded.png").write_bytes(png + b"\x00" * 7)  # some writers pad; the chunks are whole
    np.testing.assert_array_equal(check_and_decode(tmp_path / "padded.png"), expected)
    (tmp_path / "cut.png").write_bytes(png[:-2])  # only the end of IEND's CRC is missing
    with pytest.raises(ImageProblem, match="before its IEND") as err:
        check_and_decode(tmp_path / "cut.png")
    assert err.value.reason == "truncated"


def test_read_file_reads_whole_files_of_any_size(tmp_path):
    rng = np.random.default_rng(0)
    sizes = {"empty": 0, "small": 331, "first_read": 1 << 16, "just_over": (1 << 16) + 1,
             "one_more_read": (1 << 20) + (1 << 16), "several_reads": 2_500_001}  # fmt: skip
    for name, size in sizes.items():
        data = rng.integers(0, 256, size, dtype=np.uint8).tobytes()
        (tmp_path / name).write_bytes(data)
        assert read_file(tmp_path / name) == data
    with pytest.raises(FileNotFoundError):
        read_file(tmp_path / "missing")


@pytest.mark.parametrize(
    "path",
    [
        "a.png",
        "A.PNG",
        "d/b.Jpeg",
        "d.d/noext",
        ".png",
        "..png",
        "d/.hidden.png",
        "a.",
        "a..b",
        "",
        "./x",
        "d/..x.PNG",
        "d.d/.hidden",
        "...",
        "d/",
        "/abs/3/train-00001.png",
    ],
)
def test_file_extension_is_splitexts_lower_cased(path):
    assert file_extension(path) == os.path.splitext(path)[1].lower()


# ---------------------------------------------------------------- hostile files (issue 12)


def _make_special(path: Path, kind: str) -> None:
    """A FIFO, a unix socket or a character device (/dev/null's numbers) at path, or skip the test."""
    import socket
    import stat

    try:
        if kind == "fifo":
            os.mkfifo(path)
        elif kind == "socket":
            with socket.socket(socket.AF_UNIX) as sock:
                sock.bind(str(path))
        else:  # a character device
            os.mknod(path, stat.S_IFCHR | 0o600, os.makedev(1, 3))
    except (OSError, AttributeError) as err:
        pytest.skip(f"cannot make a {kind} here: {err}")


@pytest.mark.parametrize("kind", ["fifo", "socket", "character device"])
def test_special_files_are_refused_from_stat_without_being_opened(tmp_path, kind):
    import threading

    path = tmp_path / "special.png"
    _make_special(path, kind)
    done = threading.Event()

    def unblock() -> None:  # were a FIFO opened for reading, this would end the wait: a failure, not a hang
        if not done.wait(30):
            try:
                os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
            except OSError:
                pass

    threading.Thread(target=unblock, daemon=True).start()
    try:
        calls = [
            lambda: read_file(path), lambda: read_file(path, checked=True), lambda: check_and_decode(path),
            lambda: decode_image(path), lambda: read_idx(path),
        ]  # fmt: skip
        for call in calls:  # checked=True: opened with O_NONBLOCK, then refused by fstat
            with pytest.raises(ImageProblem, match=rf"special\.png: not a regular file \({kind}\)$") as info:
                call()
            assert info.value.reason == "not_a_regular_file"
    finally:
        done.set()


def test_read_file_bounds_the_size_before_reading(tmp_path):
    for size in (5000, 3_000_000):  # read whole at once; refused after its first 64 KiB
        (tmp_path / "big.png").write_bytes(bytes(size))
        assert len(read_file(tmp_path / "big.png", max_bytes=size)) == size
        with pytest.raises(ImageProblem, match=f"file is {size} bytes, above {size - 1}") as info:
            read_file(tmp_path / "big.png", max_bytes=size - 1)
        assert info.value.reason == "too_large"


def test_a_non_image_is_described_never_quoted(tmp_path):
    secret = b"root:x:0:0:root:/root:/bin/bash\n"
    (tmp_path / "passwd.png").write_bytes(secret)
    with pytest.raises(ImageProblem) as info:
        check_and_decode(tmp_path / "passwd.png")
    assert info.value.reason == "not_an_image"
    assert str(info.value) == f"{tmp_path / 'passwd.png'}: not an image (unknown format, {len(secret)} bytes)"


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "GIF", "BMP", "WEBP", "TIFF", "PPM"])
def test_every_format_is_refused_from_its_header_above_max_pixels(photos_u8, fmt):
    data = _encode(photos_u8["rgb"], fmt)  # 120 x 180
    with pytest.raises(ImageProblem, match="declares 180x120 = 21600 pixels, above max_pixels") as info:
        decode_image(data, max_pixels=21_599)
    assert info.value.reason == "too_large"
    assert decode_image(data, max_pixels=21_600).shape == (120, 180, 3)


# 29 bytes: a GIF screen and frame of 9000x9000 (under the default max_pixels), a clear code and an end
# code for pixel data. Decoding it allocated about 620 MB before it was found wanting.
_GIF_9000 = (
    b"GIF89a" + struct.pack("<HHBBB", 9000, 9000, 0, 0, 0)
    + b"\x2c" + struct.pack("<HHHHB", 0, 0, 9000, 9000, 0)
    + b"\x02\x02\x2c\x00\x00;"
)  # fmt: skip


def test_a_header_declaring_more_pixels_than_the_data_can_hold_is_refused_before_decoding():
    assert len(_GIF_9000) == 29
    for data, fmt in ((_GIF_9000, "gif"), (_png_claiming(9000, 9000), "png")):
        with pytest.raises(ImageProblem, match=rf"9000x9000 = 81000000 pixels, more than \d+ bytes of {fmt}"):
            decode_image(data)
    # The bounds sit above what the formats can do: flat images, the most compressible, still decode.
    flat = np.full((1500, 2000), 255, np.uint8)
    for mode, fmt in (("1", "PNG"), ("L", "PNG"), ("L", "GIF")):
        buffer = io.BytesIO()
        Image.fromarray(flat).convert(mode).save(buffer, fmt, optimize=True)
        assert 1500 * 2000 / len(buffer.getvalue()) > 300  # a few hundred pixels a byte or more
        assert decode_image(buffer.getvalue(), color_mode="grayscale").shape == (1500, 2000, 1)


def test_keep_aspect_ratio_of_a_too_thin_image_is_too_small_not_a_crash(photos_u8):
    column = _encode(np.ascontiguousarray(photos_u8["rgb"][:100, :1]), "PNG")  # 100x1
    with pytest.raises(ImageProblem, match="a 100x1 image is too thin .* target_size 16x32") as info:
        decode_image(column, target_size=(16, 32), keep_aspect_ratio=True)
    assert info.value.reason == "too_small"
    row = _encode(np.ascontiguousarray(photos_u8["rgb"][:1, :100]), "PNG")  # 1x100: its 1x2 crop is kept
    assert decode_image(row, target_size=(16, 32), keep_aspect_ratio=True).shape == (16, 32, 3)
    assert decode_image(column, target_size=(16, 32)).shape == (16, 32, 3)  # no crop, no problem


def test_an_idx_header_is_checked_before_its_data_is_read(tmp_path):
    import tracemalloc

    header = bytes([0, 0, 8, 3]) + struct.pack(">3I", 10, 28, 28)
    # Declares 10 images, then holds 1 GB of zeros in a megabyte or two of gzip members.
    member = gzip.compress(bytes(1 << 24))
    (tmp_path / "long.gz").write_bytes(gzip.compress(header + bytes(7840)) + member * 64)
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match="long.gz' is longer than its header says"):
            read_idx(tmp_path / "long.gz")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 << 20  # not the gigabyte
    # Declares 4 GB, which 100 bytes of gzip cannot hold: refused before anything is decompressed.
    huge = bytes([0, 0, 8, 3]) + struct.pack(">3I", 4_000_000, 1000, 1000)
    (tmp_path / "huge.gz").write_bytes(gzip.compress(huge))
    with pytest.raises(ValueError, match=r"declares \(4000000, 1000, 1000\) of uint8 .* than its \d+-byte"):
        read_idx(tmp_path / "huge.gz")
    # Raw: the declared size is compared with the file's size, before any reading.
    (tmp_path / "raw").write_bytes(huge + bytes(100))
    with pytest.raises(ValueError, match=r"truncated: header .* needs 4000000000016 bytes, got 116"):
        read_idx(tmp_path / "raw")
    (tmp_path / "raw").write_bytes(header + bytes(7841))
    with pytest.raises(ValueError, match="longer than its header says"):
        read_idx(tmp_path / "raw")


def test_scan_folders_lists_every_file_folder_and_symlink_it_leaves_out(tmp_path, photos_u8):
    from pipeline.ingest.sources import Skipped, scan_folders

    png = _encode(photos_u8["rgb"], "PNG")
    root = tmp_path / "data"
    for rel in ("data/cat/a.png", "data/cat/sub/b.png", "data/dog/d.jpg", "data/loose.png", "other/e.png"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(png)
    (root / "empty").mkdir()
    (root / "cat" / "n.txt").write_text("x")
    (root / "README").write_text("x")
    os.mkfifo(root / "cat" / "fifo.png")
    (root / "cat" / "dangling.png").symlink_to(tmp_path / "missing.png")
    (root / "cat" / "loop").symlink_to("loop")
    (root / "cat" / "sub" / "up").symlink_to("..")
    (root / "cat" / "elsewhere").symlink_to(tmp_path / "other")
    (root / "bird").symlink_to("cat")

    def skip(path: str, reason: str, message: str) -> Skipped:
        return Skipped(path.replace("/", os.sep), reason, message)

    def other_files(names: str) -> list[Skipped]:
        count = len(names.split())
        txt = f"{count} file{'s' if count > 1 else ''} left out, '.txt' is not an image extension"
        return [
            Skipped("*(no extension)", "not_an_image_extension", "1 file left out, no extension: README"),
            Skipped("*.txt", "not_an_image_extension", f"{txt}: {names.replace(' ', ', ')}"),
        ]

    common = [
        skip("cat/fifo.png", "not_a_regular_file", "not a regular file (fifo)"),
        skip("empty/", "no_images", "class folder holds no image files"),
        skip("loose.png", "not_in_a_class_folder", "image file beside the class folders, not in one"),
    ]
    found = scan_folders(root)
    assert [(c, [Path(p).relative_to(root).as_posix() for p in ps]) for c, ps in found.classes] == [
        ("cat", ["cat/a.png", "cat/sub/b.png"]),
        ("dog", ["dog/d.jpg"]),
    ]
    off = ("symlink_not_followed", "symlink not followed (follow_links is off)")
    links = ["bird", "cat/dangling.png", "cat/elsewhere", "cat/loop", "cat/sub/up"]
    assert found.skipped == sorted(common + [skip(p, *off) for p in links]) + other_files("cat/n.txt")

    followed = scan_folders(root, follow_links=True)
    assert [(c, [Path(p).relative_to(root).as_posix() for p in ps]) for c, ps in followed.classes] == [
        ("bird", ["bird/a.png", "bird/elsewhere/e.png", "bird/sub/b.png"]),
        ("cat", ["cat/a.png", "cat/elsewhere/e.png", "cat/sub/b.png"]),
        ("dog", ["dog/d.jpg"]),
    ]
    problems = [
        ("fifo.png", "not_a_regular_file", "not a regular file (fifo)"),
        ("dangling.png", "dangling_symlink", "dangling symlink: its target does not exist"),
        ("loop", "symlink_loop", "symlink loop: its target leads back to itself"),
        ("sub/up", "symlink_loop", "symlink loop: leads back to the folder {}/"),
    ]
    in_both = [
        skip(f"{c}/{p}", r, m.format(c).replace("/", os.sep)) for c in ("bird", "cat") for p, r, m in problems
    ]
    expected = sorted(common[1:] + in_both) + other_files("bird/n.txt cat/n.txt")
    assert followed.skipped == expected


def test_other_files_are_summed_up_per_extension_with_their_first_names(tmp_path, photos_u8):
    from pipeline.ingest.sources import scan_folders

    (tmp_path / "cat").mkdir()
    (tmp_path / "cat" / "a.png").write_bytes(_encode(photos_u8["rgb"], "PNG"))
    for name in ("e", "b", "d", "a", "c"):
        (tmp_path / "cat" / f"{name}.json").write_text("{}")
    (summary,) = scan_folders(tmp_path).skipped
    assert summary.path == "*.json" and summary.reason == "not_an_image_extension"
    names = ", ".join(f"cat{os.sep}{n}.json" for n in "abc")
    assert summary.message == f"5 files left out, '.json' is not an image extension: {names} and 2 more"


def test_an_unreadable_class_folder_is_listed_not_dropped_silently(photos_u8):
    """chmod 000 stops reads only for a user without CAP_DAC_OVERRIDE: as root, the scan runs in a
    forked child that has become ``nobody`` (65534), on a tree that user can walk to."""
    import json
    import shutil
    import tempfile

    from pipeline.ingest.sources import scan_folders

    root = Path(tempfile.mkdtemp(prefix="augpipe-unreadable-"))
    try:
        os.chmod(root, 0o755)
        for rel in ("cat/a.png", "dog/d.png", "dog/secret/s.png"):
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_bytes(_encode(photos_u8["rgb"], "PNG"))
        for folder in (root / "cat", root / "dog", root / "dog" / "secret"):
            os.chmod(folder, 0o755)
        os.chmod(root / "cat", 0o000)
        os.chmod(root / "dog" / "secret", 0o000)

        def scan() -> list[list[str]]:
            found = scan_folders(root)
            return [[c, str(len(p))] for c, p in found.classes] + [list(s) for s in found.skipped]

        if os.geteuid() != 0:
            got = scan()
        else:
            read, write = os.pipe()
            pid = os.fork()
            if pid == 0:  # the child: drop root, scan, send the result, leave without pytest's teardown
                try:
                    os.close(read)
                    os.setgid(65534)
                    os.setuid(65534)
                    os.write(write, json.dumps(scan()).encode())
                finally:
                    os._exit(0)
            os.close(write)
            with os.fdopen(read, "rb") as pipe:
                got = json.loads(pipe.read() or b"null")
            os.waitpid(pid, 0)
    finally:
        for folder in (root / "cat", root / "dog" / "secret"):
            os.chmod(folder, 0o755)
        shutil.rmtree(root)
    assert got == [
        ["dog", "1"],
        [f"cat{os.sep}", "unreadable_folder", "unreadable folder: Permission denied"],
        [f"dog{os.sep}secret{os.sep}", "unreadable_folder", "unreadable folder: Permission denied"],
    ]


# ---------------------------------------------------------------- manifests: rows grouped by file


def test_read_manifest_groups_rows_by_the_file_they_name(tmp_path):
    (tmp_path / "img").mkdir()
    for name in ("a", "b", "c", "d", "e"):
        (tmp_path / "img" / f"{name}.png").write_bytes(b"")  # only the names matter here
    (tmp_path / "alias.png").symlink_to("img/d.png")
    rows = [
        "img/a.png,cat",  # 2: kept, repeated by rows 3 and 4
        "./img/a.png,cat",
        "img/../img/a.png,cat",
        "img/b.png,cat dog",  # 5: kept, multi-label, repeated in another order by row 6
        "img/b.png,dog cat",
        "img/c.png,",  # 7: no label
        "img/d.png,cat",  # 8: conflicts with row 9, which names it through a symlink
        "alias.png,dog",
        "img/e.png,dog",
    ]
    (tmp_path / "m.csv").write_text("path,label\n" + "\n".join(rows) + "\n")
    manifest = read_manifest(tmp_path / "m.csv")
    img = tmp_path.resolve() / "img"
    assert manifest.labels == {
        str(img / "a.png"): ("cat",),
        str(img / "b.png"): ("cat", "dog"),
        str(img / "e.png"): ("dog",),
    }
    name = str(tmp_path / "m.csv")
    assert [(manifest.key(r.path), r.reason, r.message) for r in manifest.left_out] == [
        ("img/a.png", "duplicate_rows", f"{name} rows 3, 4 repeat row 2: the file is used once"),
        ("img/b.png", "duplicate_rows", f"{name} row 6 repeat row 5: the file is used once"),
        ("img/c.png", "empty_label", f"{name} row 7: the 'label' is empty"),
        ("img/d.png", "conflicting_labels", f"{name} rows 8, 9 give it different labels: 'cat', 'dog'"),
    ]


def test_read_manifest_messages_stay_short_however_many_rows(tmp_path):
    rows = ["a.png,cat"] * 100_000 + [f"b.png,c{i}" for i in range(30)]
    (tmp_path / "m.csv").write_text("path,label\n" + "\n".join(rows) + "\n")
    repeated, conflicting = read_manifest(tmp_path / "m.csv").left_out
    assert repeated.message.endswith(
        "rows 3, 4, 5, 6, 7, 8, 9, 10, 11, 12 and 99,989 more repeat row 2: the file is used once"
    )
    assert conflicting.message.endswith(
        "rows 100002, 100003, 100004, 100005, 100006, 100007, 100008, 100009, 100010, 100011, 100012 "
        "and 19 more give it different labels: "
        "'c0', 'c1', 'c2', 'c3', 'c4', 'c5', 'c6', 'c7', 'c8', 'c9' and others"
    )
    (tmp_path / "out.csv").write_text("path,label\n" + "".join(f"../{i}.png,cat\n" for i in range(30)))
    with pytest.raises(ValueError, match=r"has 30 paths outside .*row 11: \.\./9\.png; and 20 more$"):
        read_manifest(tmp_path / "out.csv")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (b"", r"is empty: expected a header row with the columns 'path' and 'label'"),
        (b"path,label\n\n", r"has no rows under its header"),
        (b"path,label,extra\na.png,cat,1\n", r"header row has the unknown columns \['extra'\]"),
        (b"path,label,path\na.png,cat,b.png\n", r"header row names \['path'\] twice"),
        (b"path,label\na.png,cat,dog\n", r"row 2 has 3 fields but its header has 2: quote a path"),
        (b"path,label\na.png\n", r"row 2 has 1 field but its header has 2$"),
        (b"path,label\na.png,c\x00t\n", r"row 2 holds a NUL character"),
        (b"path,label\n,cat\n", r"row 2 has an empty 'path'"),
        # the text is read 8 KB ahead of the csv reader: the line is found again from the bytes
        (
            b"path,label\n" + b"a.png,cat\n" * 2000 + b"b.png,\xff\n",
            r"is not UTF-8 at line 2002 \(byte 0xff\)",
        ),
        (b"path,label\na.png,caf\xc3", r"is not UTF-8 at its end \(a character cut short\)"),
        (
            b"path,label\na.png,cat\nb.png," + b"x" * 131_073 + b"\n",
            r"row 3 has a field over 131,072 characters",
        ),
    ],
)
def test_read_manifest_refusals_name_the_manifest_and_the_row(tmp_path, text, message):
    (tmp_path / "m.csv").write_bytes(text)
    with pytest.raises(ValueError, match=f"^manifest {str(tmp_path / 'm.csv')!r} .*{message}"):
        read_manifest(tmp_path / "m.csv")


def test_read_manifest_accepts_a_bom_crlf_and_quoted_newlines(tmp_path):
    text = '\ufeffpath,label\r\n"new\nline.png",cat\r\n"a,b.png","dog\r\ncat"\r\n'
    (tmp_path / "m.csv").write_bytes(text.encode())
    manifest = read_manifest(tmp_path / "m.csv")
    assert [(manifest.key(s.path), s.labels) for s in manifest.samples] == [
        ("new\nline.png", ("cat",)),
        ("a,b.png", ("cat", "dog")),
    ]
    assert csv.field_size_limit() == 131_072  # the process-wide limit is left alone


def test_read_manifest_refuses_a_fifo_without_opening_it_for_good(tmp_path):
    os.mkfifo(tmp_path / "m.csv")
    with pytest.raises(ValueError, match="is not a regular file"):
        read_manifest(tmp_path / "m.csv")  # a blocking open would wait here for a writer
