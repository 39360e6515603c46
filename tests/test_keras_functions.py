"""The drop-in's free functions against Keras's own (``keras.src.legacy.preprocessing.image`` and
``keras.utils``), on real photographs.

The affine ones warp on OpenCV where Keras calls scipy: they must agree within the tolerances of the
parity tests (0-255 scale: OpenCV's bilinear weights are quantised to 1/32 pixel and integer output is
rounded). Everything else must equal Keras's output exactly, dtype included.
"""

from __future__ import annotations

import inspect
import io
from pathlib import Path

import keras
import numpy as np
import pytest
from keras.src.legacy.preprocessing import image as keras_image
from PIL import Image

from pipeline.keras_compat import functions

MAX_MEAN_ABS_DIFF = 0.5  # as tests/test_parity.py
MAX_P99_ABS_DIFF = 4.0
AFFINE = dict(theta=23.0, tx=5.5, ty=-7.0, shear=12.0, zx=0.8, zy=1.15)
FILL_MODES = {"nearest": 0.0, "reflect": 0.0, "wrap": 0.0, "constant": 77.3}  # fill mode -> cval
# (row_axis, col_axis, channel_axis) and how a (rows, cols, channels) image is laid out for them.
LAYOUTS = {
    "channels_last": ((0, 1, 2), (0, 1, 2)),
    "channels_last_transposed": ((1, 0, 2), (1, 0, 2)),
    "channels_first": ((1, 2, 0), (2, 0, 1)),
    "channels_first_transposed": ((2, 1, 0), (2, 1, 0)),
}
RANDOM_AFFINE = {
    "random_rotation": (40,),
    "random_shift": (0.2, 0.3),
    "random_shear": (30,),
    "random_zoom": ((0.6, 1.4),),
}


def _assert_warp_close(ours: np.ndarray, theirs: np.ndarray) -> None:
    assert ours.dtype == theirs.dtype and ours.shape == theirs.shape
    diff = np.abs(ours.astype(np.float64) - theirs.astype(np.float64))
    assert diff.mean() <= MAX_MEAN_ABS_DIFF, diff.mean()
    assert np.percentile(diff, 99) <= MAX_P99_ABS_DIFF, np.percentile(diff, 99)


def _assert_equal(ours: np.ndarray, theirs: np.ndarray) -> None:
    assert ours.dtype == theirs.dtype and ours.shape == theirs.shape
    assert np.array_equal(ours, theirs)


def _params(fn) -> list[tuple[str, object, object]]:
    return [(p.name, p.default, p.kind) for p in inspect.signature(fn).parameters.values()]


def _laid_out(image: np.ndarray, layout: str) -> tuple[np.ndarray, dict[str, int]]:
    (row, col, channel), order = LAYOUTS[layout]
    return image.transpose(order), dict(row_axis=row, col_axis=col, channel_axis=channel)


# ---- API surface ---------------------------------------------------------------------------------------
def test_signatures_equal_keras():
    names = ["apply_affine_transform", "transform_matrix_offset_center", "flip_axis",
             "apply_channel_shift", "apply_brightness_shift", "random_channel_shift", "random_brightness",
             *RANDOM_AFFINE]  # fmt: skip
    for name in names:
        assert _params(getattr(functions, name)) == _params(getattr(keras_image, name)), name
    # Keras's own utilities, as they are.
    for name in ("img_to_array", "array_to_img", "save_img"):
        assert getattr(functions, name) is getattr(keras.utils, name)
    assert functions.smart_resize is keras.preprocessing.image.smart_resize
    # load_img: Keras's, with tf.keras's deprecated `grayscale` second.
    theirs = _params(keras.utils.load_img)
    assert _params(functions.load_img) == [theirs[0], ("grayscale", False, theirs[0][2]), *theirs[1:]]
    keyword = inspect.Parameter.POSITIONAL_OR_KEYWORD
    assert _params(functions.list_pictures) == [
        ("directory", inspect.Parameter.empty, keyword),
        ("ext", ("jpg", "jpeg", "bmp", "png", "ppm", "tif", "tiff"), keyword),
    ]


# ---- geometry ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.uint8, np.float32, np.float64], ids=["uint8", "float32", "float64"])
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("fill_mode", FILL_MODES)
def test_affine_transform_matches_keras(fill_mode, layout, dtype, photos_u8):
    for kind in ("rgb", "gray"):  # 120x180: a non-square image catches a swapped axis
        x, axes = _laid_out(photos_u8[kind].astype(dtype), layout)
        for order in (0, 1):
            kw = dict(AFFINE, **axes, fill_mode=fill_mode, cval=FILL_MODES[fill_mode], order=order)
            _assert_warp_close(
                functions.apply_affine_transform(x, **kw), keras_image.apply_affine_transform(x, **kw)
            )


@pytest.mark.parametrize(
    ("fill_mode", "dtype", "order"),
    [("mirror", np.float32, 1), ("grid-wrap", np.uint8, 0), ("nearest", np.int32, 1),
     ("nearest", np.int8, 0), ("reflect", np.float32, 3), ("constant", np.uint8, 2)],
)  # fmt: skip
def test_what_opencv_cannot_do_runs_on_scipy_as_in_keras(fill_mode, dtype, order, photos_u8):
    """Other fill modes and dtypes, and spline orders above 1, take Keras's scipy path: Keras's
    values exactly."""
    x, axes = _laid_out(photos_u8["rgb"].astype(dtype), "channels_first")
    kw = dict(AFFINE, **axes, fill_mode=fill_mode, cval=12.0, order=order)
    _assert_equal(functions.apply_affine_transform(x, **kw), keras_image.apply_affine_transform(x, **kw))


def test_affine_transform_checks_like_keras(photos_u8):
    x = photos_u8["rgb"]
    assert functions.apply_affine_transform(x, row_axis=0, col_axis=1, channel_axis=2) is x  # nothing to do
    bad = [
        (x, dict(row_axis=0, col_axis=0, channel_axis=2)),
        (x, dict(row_axis=0, col_axis=1, channel_axis=3)),
        (x[..., 0], dict(row_axis=0, col_axis=1, channel_axis=2)),
        (x, dict(row_axis=0, col_axis=2, channel_axis=1)),
    ]
    for image, axes in bad:
        with pytest.raises(ValueError) as ours:
            functions.apply_affine_transform(image, theta=10, **axes)
        with pytest.raises(ValueError) as theirs:
            keras_image.apply_affine_transform(image, theta=10, **axes)
        assert str(ours.value) == str(theirs.value)
    with pytest.raises(RuntimeError, match="data type not supported"):  # float16: scipy's refusal, as Keras's
        functions.apply_affine_transform(
            x.astype(np.float16), theta=10, row_axis=0, col_axis=1, channel_axis=2
        )
    with pytest.raises(RuntimeError):  # scipy's own refusal, as Keras passes the mode through
        functions.apply_affine_transform(x.astype(np.float32), theta=10, row_axis=0, col_axis=1,
                                         channel_axis=2, fill_mode="sideways")  # fmt: skip


def test_matrix_offset_and_flip_equal_keras(photos_u8):
    rng = np.random.default_rng(0)
    matrix = rng.normal(size=(3, 3))
    np.testing.assert_array_equal(
        functions.transform_matrix_offset_center(matrix, 120, 180),
        keras_image.transform_matrix_offset_center(matrix, 120, 180),
    )
    x = photos_u8["rgb"]
    for axis in (0, 1, 2, -1):
        _assert_equal(functions.flip_axis(x, axis), keras_image.flip_axis(x, axis))


@pytest.mark.parametrize("name", RANDOM_AFFINE)
def test_random_affine_draws_as_keras(name, photos_u8):
    """After the same np.random.seed: Keras's draws (the global state ends the same) and its image."""
    fill = dict(fill_mode="reflect")
    for seed in (0, 1, 7):
        for dtype, layout in ((np.uint8, "channels_first"), (np.float32, "channels_last")):
            x, axes = _laid_out(photos_u8["rgb"].astype(dtype), layout)
            np.random.seed(seed)  # noqa: NPY002  (Keras's functions read the global generator)
            ours = getattr(functions, name)(x, *RANDOM_AFFINE[name], **axes, **fill)
            ours_state = np.random.get_state()  # noqa: NPY002
            np.random.seed(seed)  # noqa: NPY002
            theirs = getattr(keras_image, name)(x, *RANDOM_AFFINE[name], **axes, **fill)
            theirs_state = np.random.get_state()  # noqa: NPY002
            assert np.array_equal(ours_state[1], theirs_state[1]) and ours_state[2] == theirs_state[2]
            _assert_warp_close(ours, theirs)
    # Keras's default axes: a channels-first image, any number of channels.
    x = np.random.default_rng(3).random((2, 28, 28))
    assert getattr(functions, name)(x, *RANDOM_AFFINE[name]).shape == (2, 28, 28)


def test_random_zoom_of_one_draws_nothing(photos_u8):
    state = np.random.get_state()  # noqa: NPY002
    x = photos_u8["gray"]
    assert functions.random_zoom(x, (1, 1), row_axis=0, col_axis=1, channel_axis=2) is x
    assert all(np.array_equal(s, t) for s, t in zip(state, np.random.get_state(), strict=True))  # noqa: NPY002
    for bad in ((0.5,), (0.5, 1.0, 2.0)):
        with pytest.raises(ValueError) as ours:
            functions.random_zoom(x, bad)
        with pytest.raises(ValueError) as theirs:
            keras_image.random_zoom(x, bad)
        assert str(ours.value) == str(theirs.value)


# ---- pixels --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.uint8, np.float32, np.float64], ids=["uint8", "float32", "float64"])
def test_channel_shift_equals_keras(dtype, photos_u8):
    for kind, layout in (("rgb", "channels_last"), ("rgb", "channels_first"), ("gray", "channels_last")):
        x, axes = _laid_out(photos_u8[kind].astype(dtype), layout)
        for intensity in (30.5, -20.0, 7):  # an int shift keeps an integer image's dtype, as in Keras
            _assert_equal(
                functions.apply_channel_shift(x, intensity, axes["channel_axis"]),
                keras_image.apply_channel_shift(x, intensity, axes["channel_axis"]),
            )
        for seed in (0, 5):
            np.random.seed(seed)  # noqa: NPY002
            ours = functions.random_channel_shift(x, 60.0, axes["channel_axis"])
            np.random.seed(seed)  # noqa: NPY002
            _assert_equal(ours, keras_image.random_channel_shift(x, 60.0, axes["channel_axis"]))
    with pytest.raises(np.exceptions.AxisError):
        functions.apply_channel_shift(photos_u8["rgb"], 1.0, channel_axis=3)


@pytest.mark.parametrize("scale", [True, False])
def test_brightness_equals_keras(scale, photos_f32):
    for kind in ("rgb", "gray"):
        image = photos_f32[kind]
        # In range, beyond 0-255 (stretched there and back) and already in [0, 1] (turned dark).
        for x in (image, image * 1.5 - 60, image / 255, image.astype(np.uint8)):
            for factor in (0.3, 1.0, 1.7):
                _assert_equal(
                    functions.apply_brightness_shift(x, factor, scale),
                    keras_image.apply_brightness_shift(x, factor, scale),
                )
        for seed in (0, 5):
            np.random.seed(seed)  # noqa: NPY002
            ours = functions.random_brightness(image, (0.5, 1.5), scale)
            np.random.seed(seed)  # noqa: NPY002
            _assert_equal(ours, keras_image.random_brightness(image, (0.5, 1.5), scale))
    for bad in ((0.5,), [0.1, 0.2, 0.3]):
        with pytest.raises(ValueError) as ours:
            functions.random_brightness(photos_f32["rgb"], bad)
        with pytest.raises(ValueError) as theirs:
            keras_image.random_brightness(photos_f32["rgb"], bad)
        assert str(ours.value) == str(theirs.value)


# ---- files -----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def picture_files(tmp_path_factory: pytest.TempPathFactory, photos_u8) -> dict[str, Path]:
    """A PNG, a JPEG, a grayscale PNG, an RGBA PNG and a 16-bit grayscale PNG of the photographs."""
    root = tmp_path_factory.mktemp("pictures")
    rgb, gray = photos_u8["rgb"], photos_u8["gray"][..., 0]
    images = {
        "rgb.png": Image.fromarray(rgb),
        "rgb.jpg": Image.fromarray(rgb),
        "gray.png": Image.fromarray(gray),
        "rgba.png": Image.fromarray(np.dstack([rgb, np.full(rgb.shape[:2], 180, np.uint8)])),
        "gray16.png": Image.fromarray(gray.astype(np.uint16) * 257),
    }
    paths = {}
    for name, image in images.items():
        paths[name] = root / name
        image.save(paths[name])
    return paths


def test_load_img_equals_keras(picture_files):
    for path in picture_files.values():
        for color_mode in ("rgb", "rgba", "grayscale"):
            for kw in (dict(), dict(target_size=(40, 30), interpolation="bilinear"),
                       dict(target_size=(50, 50), interpolation="lanczos", keep_aspect_ratio=True),
                       dict(target_size=(33, 70), keep_aspect_ratio=True)):  # fmt: skip
                ours = functions.load_img(path, color_mode=color_mode, **kw)
                theirs = keras.utils.load_img(path, color_mode=color_mode, **kw)
                assert ours.mode == theirs.mode and ours.size == theirs.size
                assert np.array_equal(np.asarray(ours), np.asarray(theirs))
    path = picture_files["rgb.jpg"]
    with pytest.warns(UserWarning, match="grayscale is deprecated"):
        gray = functions.load_img(str(path), True, target_size=(40, 30))
    assert np.array_equal(np.asarray(gray), np.asarray(keras.utils.load_img(path, "grayscale", (40, 30))))
    in_memory = functions.load_img(io.BytesIO(path.read_bytes()))
    assert np.array_equal(np.asarray(in_memory), np.asarray(keras.utils.load_img(path)))


def test_load_img_refuses_an_unknown_interpolation_only_to_resize(picture_files, photos_u8):
    path = picture_files["rgb.png"]
    for load in (functions.load_img, keras.utils.load_img):
        with pytest.raises(ValueError, match="Invalid interpolation method area"):
            load(path, target_size=(40, 30), interpolation="area")
    already = functions.load_img(path, target_size=photos_u8["rgb"].shape[:2], interpolation="area")
    assert np.array_equal(np.asarray(already), photos_u8["rgb"])


def test_image_arrays_round_trip(tmp_path, photos_u8):
    x = photos_u8["rgb"]
    array = functions.img_to_array(functions.array_to_img(x, scale=False))
    assert array.dtype == np.float32 and np.array_equal(array, x)
    functions.save_img(tmp_path / "saved.png", x, scale=False)
    assert np.array_equal(np.asarray(functions.load_img(tmp_path / "saved.png")), x)
    square = functions.smart_resize(x, (64, 64))  # numpy in, numpy out: a centre crop, resized
    assert isinstance(square, np.ndarray) and square.shape == (64, 64, 3)
    crop = functions.smart_resize(x[:, 30:150], (64, 64))
    np.testing.assert_allclose(square, crop, atol=1e-4)


def test_list_pictures(tmp_path):
    names = ["a.jpg", "b.PNG", "c.txt", "sub/d.tiff", "sub/deeper/e.bmp", "sub/deeper/f.webp", "g.jpeg"]
    for name in names:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")

    def found(*args: object) -> list[str]:
        return sorted(str(Path(p).relative_to(tmp_path)) for p in functions.list_pictures(tmp_path, *args))

    assert found() == ["a.jpg", "b.PNG", "g.jpeg", "sub/d.tiff", "sub/deeper/e.bmp"]
    assert found("png") == ["b.PNG"]
    assert found(("webp", "jpeg")) == ["g.jpeg", "sub/deeper/f.webp"]
    assert all(p.startswith(str(tmp_path)) for p in functions.list_pictures(str(tmp_path)))
