"""Ingest: IDX, class folders, manifests, npz, the Keras cache check, and decoding real and broken files."""

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
from pipeline.ingest.decode import center_crop_to_aspect, file_extension, read_file

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
    with pytest.raises(ValueError, match="magic 00004201"):
        read_idx(path)


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
    (tmp_path / "m.csv").write_text("path,label\nimg/a.png,cat\nimg/b.png,cat dog\n./c.png,\n")
    samples = read_manifest(tmp_path / "m.csv")
    root = tmp_path.resolve()
    assert samples == [
        Sample(str(root / "img" / "a.png"), ("cat",)),
        Sample(str(root / "img" / "b.png"), ("cat", "dog")),
        Sample(str(root / "c.png"), ()),
    ]
    (tmp_path / "n.csv").write_text("file,tags\na.png,x|y\n")
    assert read_manifest(tmp_path / "n.csv", "file", "tags", "|")[0].labels == ("x", "y")


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
    samples = read_manifest(sub / "m.csv", allow_outside_root=True)
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
