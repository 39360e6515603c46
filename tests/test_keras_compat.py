"""The ImageDataGenerator drop-in against Keras's own legacy implementation, on real photographs.

Every comparison runs Keras's reference (``keras.src.legacy.preprocessing.image``) on the same files
or arrays: without augmentation our batches must equal its batches exactly.
"""

from __future__ import annotations

import inspect
import os
import warnings
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import cv2  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import skimage.data  # noqa: E402
from keras.src.legacy.preprocessing import image as keras_image  # noqa: E402
from PIL import Image, ImageFile  # noqa: E402
from sklearn.datasets import load_sample_images  # noqa: E402

from pipeline import ConfigError  # noqa: E402
from pipeline.keras_compat import (  # noqa: E402
    DataFrameIterator,
    DirectoryIterator,
    ImageDataGenerator,
    Iterator,
    NumpyArrayIterator,
)

AUGMENT = dict(
    rotation_range=25, width_shift_range=0.1, height_shift_range=[-2, 3], shear_range=10, zoom_range=0.2,
    horizontal_flip=True, channel_shift_range=20, brightness_range=(0.7, 1.3), fill_mode="reflect",
)  # fmt: skip
TARGET = (32, 24)


def _small(image: np.ndarray, width: int, height: int) -> np.ndarray:
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)


@pytest.fixture(scope="module")
def photos() -> dict[str, np.ndarray]:
    china, flower = load_sample_images().images
    src = {
        "china": china, "flower": flower, "astronaut": skimage.data.astronaut(),
        "coffee": skimage.data.coffee(), "chelsea": skimage.data.chelsea(), "rocket": skimage.data.rocket(),
        "camera": skimage.data.camera(),
    }  # fmt: skip
    return {name: _small(im, 64, 48) for name, im in src.items()}


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory, photos: dict[str, np.ndarray]) -> Path:
    """Two class folders of real photos: PNG and JPEG, mixed-case extensions, a nested subfolder,
    an 8-bit grayscale, a 16-bit grayscale and an RGBA file, and a file Keras does not list."""
    root = tmp_path_factory.mktemp("tree")
    for d in ("cats/nested", "dogs/nested/deeper"):
        (root / d).mkdir(parents=True)
    p = photos
    rgba = np.dstack([p["astronaut"], np.linspace(40, 255, 64 * 48).reshape(48, 64).astype(np.uint8)])
    files = {
        "cats/chelsea.png": p["chelsea"], "cats/coffee.JPG": p["coffee"], "cats/china.jpeg": p["china"],
        "cats/nested/rocket.PNG": p["rocket"],
        "cats/nested/camera16.png": p["camera"].astype(np.uint16) * 257,  # 16-bit grayscale
        "dogs/astronaut.jpg": p["astronaut"], "dogs/flower.png": p["flower"], "dogs/camera.png": p["camera"],
        "dogs/nested/deeper/crop.JPEG": p["china"][8:40, 10:50], "dogs/nested/astro_rgba.png": rgba,
    }  # fmt: skip
    for name, image in files.items():
        Image.fromarray(image).save(root / name, format="PNG" if name.lower().endswith("png") else "JPEG")
    (root / "dogs" / "readme.txt").write_text("not listed: the extension is not an image one")
    return root


@pytest.fixture(scope="module")
def frame(tree: Path) -> pd.DataFrame:
    keras_it = keras_image.ImageDataGenerator().flow_from_directory(str(tree), target_size=TARGET)
    names = keras_it.filenames
    n = len(names)
    return pd.DataFrame({
        "filename": names,
        "class": [f.split(os.sep)[0] for f in names],
        "score": np.linspace(0.0, 1.0, n),
        "score2": np.arange(n, dtype=np.float64) ** 2,
        "weight": np.linspace(0.5, 2.0, n),
        "tags": [["outdoor", "photo"] if i % 3 else ["photo"] for i in range(n)],
    })  # fmt: skip


@pytest.fixture(scope="module")
def array_data(photos: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """12 RGB uint8 images (24x32) and labels 0/1 interleaved."""
    names = ["china", "flower", "astronaut", "coffee", "chelsea", "rocket"]
    x = np.stack(
        [_small(photos[n], 32, 24) for n in names] + [_small(photos[n][::-1], 32, 24) for n in names]
    )
    return x, np.arange(12) % 2


def _all(it) -> list:
    return [it[i] for i in range(len(it))]


def _assert_same(ours, theirs) -> None:
    if isinstance(theirs, tuple | list):
        assert isinstance(ours, type(theirs)) and len(ours) == len(theirs)
        for a, b in zip(ours, theirs, strict=True):
            _assert_same(a, b)
        return
    ours, theirs = np.asarray(ours), np.asarray(theirs)
    assert ours.dtype == theirs.dtype and ours.shape == theirs.shape
    assert np.array_equal(ours, theirs)


def _params(fn) -> list[tuple[str, object, object]]:
    return [(p.name, p.default, p.kind) for p in inspect.signature(fn).parameters.values()]


# ---- API surface -------------------------------------------------------------------------------------
def test_signatures_equal_keras():
    ours, theirs = ImageDataGenerator, keras_image.ImageDataGenerator
    for name in ("__init__", "flow", "flow_from_directory", "flow_from_dataframe", "standardize",
                 "get_random_transform", "apply_transform", "random_transform", "fit"):  # fmt: skip
        assert _params(getattr(ours, name)) == _params(getattr(theirs, name)), name
    # The iterators take Keras's parameters, then PyDataset's options as **kwargs.
    for ours_it, theirs_it in ((NumpyArrayIterator, keras_image.NumpyArrayIterator),
                               (DirectoryIterator, keras_image.DirectoryIterator),
                               (DataFrameIterator, keras_image.DataFrameIterator)):  # fmt: skip
        params = _params(ours_it.__init__)
        assert params[:-1] == _params(theirs_it.__init__) and params[-1][0] == "kwargs"
        assert issubclass(ours_it, keras.utils.PyDataset)


def test_options_validate_warn_and_stay_readable():
    with pytest.raises(ConfigError, match="zoom_range"):
        ImageDataGenerator(zoom_range=-3)
    with pytest.raises(ConfigError, match="fill_mode"):
        ImageDataGenerator(fill_mode="mirror")
    with pytest.raises(ValueError, match="data_format"):
        ImageDataGenerator(data_format="channels_middle")
    kwargs = dict(zca_whitening=True, featurewise_std_normalization=True, samplewise_std_normalization=True)
    with pytest.warns(UserWarning) as ours:
        g = ImageDataGenerator(**kwargs, zoom_range=0.25, validation_split=0.2)
    with pytest.warns(UserWarning) as theirs:
        k = keras_image.ImageDataGenerator(**kwargs, zoom_range=0.25, validation_split=0.2)
    assert [str(w.message) for w in ours] == [str(w.message) for w in theirs]
    for name in ("featurewise_center", "featurewise_std_normalization", "samplewise_center", "zoom_range",
                 "rotation_range", "fill_mode", "_validation_split", "data_format", "dtype",
                 "channel_axis"):  # fmt: skip
        assert getattr(g, name) == getattr(k, name), name
    g.rotation_range = 15
    assert g.rotation_range == 15 and g.config.rotation_range == 15
    with pytest.raises(ConfigError, match="rotation_range"):
        g.rotation_range = -1


# ---- flow_from_directory ----------------------------------------------------------------------------
@pytest.mark.parametrize("subset", [None, "training", "validation"])
def test_directory_listing_equals_keras(tree, subset):
    kw = dict(target_size=TARGET, subset=subset)
    ours = ImageDataGenerator(validation_split=0.3).flow_from_directory(str(tree), **kw)
    theirs = keras_image.ImageDataGenerator(validation_split=0.3).flow_from_directory(str(tree), **kw)
    assert ours.class_indices == theirs.class_indices == {"cats": 0, "dogs": 1}
    assert ours.filenames == theirs.filenames and ours.filepaths == theirs.filepaths
    assert np.array_equal(ours.classes, theirs.classes) and ours.classes.dtype == theirs.classes.dtype
    assert (len(ours), ours.samples, ours.num_classes, ours.image_shape) == (
        len(theirs),
        theirs.samples,
        theirs.num_classes,
        theirs.image_shape,
    )
    assert ours.skipped == []


@pytest.mark.parametrize("color_mode", ["rgb", "grayscale", "rgba"])
@pytest.mark.parametrize(("interpolation", "keep_aspect_ratio"), [("nearest", False), ("bilinear", True),
                                                                   ("lanczos", False)])  # fmt: skip
def test_directory_batches_equal_keras(tree, color_mode, interpolation, keep_aspect_ratio):
    kw = dict(target_size=TARGET, color_mode=color_mode, interpolation=interpolation,
              keep_aspect_ratio=keep_aspect_ratio, batch_size=4, shuffle=False)  # fmt: skip
    ours = ImageDataGenerator(rescale=1 / 255).flow_from_directory(str(tree), **kw)
    theirs = keras_image.ImageDataGenerator(rescale=1 / 255).flow_from_directory(str(tree), **kw)
    _assert_same(_all(ours), _all(theirs))


@pytest.mark.parametrize("class_mode", ["categorical", "binary", "sparse", "input", None])
def test_directory_class_modes_equal_keras(tree, class_mode):
    kw = dict(
        target_size=(16, 16), class_mode=class_mode, batch_size=3, shuffle=False, classes=["dogs", "cats"]
    )
    ours = ImageDataGenerator().flow_from_directory(str(tree), **kw)
    theirs = keras_image.ImageDataGenerator().flow_from_directory(str(tree), **kw)
    assert ours.class_indices == theirs.class_indices == {"dogs": 0, "cats": 1}
    _assert_same(_all(ours), _all(theirs))


def test_missing_directory_is_named(tmp_path):
    missing = tmp_path / "no_such_folder"
    with pytest.raises(FileNotFoundError, match="no_such_folder"):
        ImageDataGenerator().flow_from_directory(str(missing))


# ---- flow_from_dataframe -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("class_mode", "y_col", "extra"),
    [
        ("categorical", "class", {"weight_col": "weight"}),
        ("categorical", "tags", {}),  # multi-label
        ("binary", "class", {"subset": "validation"}),
        ("sparse", "class", {"subset": "training", "classes": ["dogs", "cats"]}),
        ("raw", "score", {}),
        ("multi_output", ["score", "score2"], {}),
        ("input", "class", {}),
        (None, "class", {"color_mode": "grayscale", "interpolation": "bicubic"}),
    ],
)
def test_dataframe_equals_keras(tree, frame, class_mode, y_col, extra):
    kw = dict(directory=str(tree), y_col=y_col, class_mode=class_mode, target_size=TARGET, batch_size=4,
              shuffle=False, **extra)  # fmt: skip
    ours = ImageDataGenerator(validation_split=0.25).flow_from_dataframe(frame, **kw)
    theirs = keras_image.ImageDataGenerator(validation_split=0.25).flow_from_dataframe(frame, **kw)
    assert ours.filenames == theirs.filenames and len(ours) == len(theirs)
    if class_mode not in ("raw", "multi_output", "input", None):
        assert ours.class_indices == theirs.class_indices and ours.classes == theirs.classes
    _assert_same(_all(ours), _all(theirs))


def test_dataframe_keras_warnings_and_paths(tree, frame):
    df = frame.assign(filename=[str(tree / f) for f in frame["filename"]])  # absolute paths, no directory
    df = pd.concat([df, df.iloc[:1].assign(filename=str(tree / "cats" / "gone.png"))], ignore_index=True)
    with pytest.warns(UserWarning, match="1 invalid image filename"):
        ours = ImageDataGenerator().flow_from_dataframe(df, target_size=TARGET, shuffle=False)
    with pytest.warns(DeprecationWarning, match='class_mode="other"'):
        raw = ImageDataGenerator().flow_from_dataframe(
            frame, str(tree), y_col="score", class_mode="other", target_size=TARGET, shuffle=False
        )
    assert raw.class_mode == "raw" and np.array_equal(raw[0][1], frame["score"].to_numpy()[:32])
    assert ours.samples == len(frame)
    with pytest.raises(TypeError, match="not_an_option"):
        ImageDataGenerator().flow_from_dataframe(frame, str(tree), not_an_option=1)


# ---- flow ----------------------------------------------------------------------------------------------
def test_flow_equals_keras(array_data):
    x, y = array_data
    w = np.linspace(0.1, 1.2, len(x))
    misc = [np.arange(len(x)) * 10, np.eye(len(x))]
    cases = [
        dict(x=x, y=y, sample_weight=w),
        dict(x=(x, misc), y=y),
        dict(x=(x, misc[0]), y=None),
        dict(x=x, y=y, subset="validation"),
        dict(x=x, y=y, subset="training"),
    ]
    for case in cases:
        kw = dict(batch_size=5, shuffle=False, **case)
        ours = ImageDataGenerator(rescale=1 / 255, validation_split=0.25).flow(**kw)
        theirs = keras_image.ImageDataGenerator(rescale=1 / 255, validation_split=0.25).flow(**kw)
        assert len(ours) == len(theirs)
        _assert_same(_all(ours), _all(theirs))


def test_flow_subset_rules(array_data):
    x, y = array_data
    g = ImageDataGenerator(validation_split=0.5)
    sorted_y = np.sort(y)
    with pytest.raises(ValueError, match="different number of classes"):
        g.flow(x, sorted_y, subset="training")
    it = g.flow(x, sorted_y, subset="validation", ignore_class_split=True)
    assert it.n == 6 and set(it.y) == {0}
    # Keras forgot to split sample_weight with the subset; here the weights stay with their images.
    w = np.arange(len(x), dtype=np.float64)
    _, yb, wb = g.flow(x, y, sample_weight=w, subset="training", shuffle=False, batch_size=12)[0]
    assert np.array_equal(wb, w[6:]) and np.array_equal(yb, y[6:])


def test_save_to_dir_writes_files(tree, array_data, tmp_path):
    x, y = array_data
    g = ImageDataGenerator(**AUGMENT)
    flow_dir, dir_dir = tmp_path / "flow", tmp_path / "dir"
    flow_dir.mkdir(), dir_dir.mkdir()
    g.flow(x, y, batch_size=5, seed=1, save_to_dir=str(flow_dir), save_prefix="aug", save_format="jpeg")[0]
    it = g.flow_from_directory(str(tree), target_size=TARGET, batch_size=4, seed=1, save_to_dir=str(dir_dir))
    it[0]
    assert len(list(flow_dir.glob("aug_*.jpeg"))) == 5
    saved = sorted(dir_dir.glob("_*.png"))
    assert len(saved) == 4
    with Image.open(saved[0]) as image:
        assert image.size == (TARGET[1], TARGET[0])


# ---- reproducibility -------------------------------------------------------------------------------------
def test_same_seed_same_batches_whatever_the_order(tree, array_data):
    x, y = array_data
    g = ImageDataGenerator(**AUGMENT, rescale=1 / 255)
    state = np.random.get_state()  # noqa: NPY002  (the global generator is what must stay untouched)
    makers = {
        "flow": lambda seed: g.flow(x, y, batch_size=5, seed=seed),
        "directory": lambda seed: g.flow_from_directory(
            str(tree), target_size=TARGET, batch_size=4, seed=seed
        ),
    }
    for make in makers.values():
        a, b, c = make(7), make(7), make(8)
        first = _all(a)
        backwards = [b[i] for i in reversed(range(len(b)))][::-1]
        _assert_same(backwards, first)
        assert not np.array_equal(c[0][0], first[0][0])
        # Epoch e is shuffled by default_rng([seed, e]) and augmented afresh.
        a.on_epoch_end()
        assert np.array_equal(a.index_array, np.random.default_rng([7, 1]).permutation(a.n))
        assert not np.array_equal(a[0][0], first[0][0])
        unseeded = make(None)
        assert unseeded.seed != make(None).seed
        _assert_same(unseeded[1], unseeded[1])
    # Nothing above drew from, or reseeded, numpy's global generator.
    assert all(np.array_equal(s, t) for s, t in zip(state, np.random.get_state(), strict=True))  # noqa: NPY002


def test_next_walks_epochs(array_data):
    x, y = array_data
    it = ImageDataGenerator(**AUGMENT).flow(x, y, batch_size=5, seed=3, shuffle=True)
    epoch0 = [next(it) for _ in range(3)]
    assert [len(b[0]) for b in epoch0] == [5, 5, 2] and it.epoch == 1 and it.batch_index == 0
    _assert_same(next(it), it[0])
    it.reset()
    assert it.batch_index == 0
    assert iter(it) is it


def test_random_transform_draws(photos):
    g = ImageDataGenerator(**AUGMENT)
    image = photos["coffee"]
    assert g.get_random_transform(image.shape, seed=5) == g.get_random_transform(image.shape, seed=5)
    assert g.get_random_transform(image.shape) != g.get_random_transform(image.shape)
    assert np.array_equal(g.random_transform(image, seed=5), g.random_transform(image, seed=5))
    params = g.get_random_transform(image.shape, seed=5)
    assert set(params) == set(keras_image.ImageDataGenerator().get_random_transform(image.shape))
    identity = {"theta": 0, "tx": 0, "ty": 0, "zx": 1, "zy": 1}
    assert np.array_equal(g.apply_transform(image, identity), image)
    flipped = g.apply_transform(image, {"flip_horizontal": True})
    assert np.array_equal(flipped, image[:, ::-1])


# ---- normalisation -----------------------------------------------------------------------------------------
def test_fit_and_standardize_equal_keras(array_data):
    x, _ = array_data
    opts = dict(featurewise_center=True, featurewise_std_normalization=True, rescale=1 / 255)
    ours, theirs = ImageDataGenerator(**opts), keras_image.ImageDataGenerator(**opts)
    ours.fit(x)
    theirs.fit(x)
    np.testing.assert_allclose(ours.mean, theirs.mean, rtol=1e-6)
    np.testing.assert_allclose(ours.std, theirs.std, rtol=1e-6)
    image = x[0].astype(np.float32)
    np.testing.assert_allclose(ours.standardize(image.copy()), theirs.standardize(image.copy()), rtol=1e-6)
    buffer = image.copy()
    assert ours.standardize(buffer) is buffer  # in place, as Keras
    # Samplewise statistics span whatever array standardize is given.
    opts = dict(samplewise_center=True, samplewise_std_normalization=True)
    ours = ImageDataGenerator(**opts)
    with pytest.warns(UserWarning, match="samplewise_std_normalization"):
        theirs = keras_image.ImageDataGenerator(samplewise_std_normalization=True)
    batch = x[:4].astype(np.float32)
    np.testing.assert_allclose(
        ours.standardize(batch.copy()), theirs.standardize(batch.copy()), rtol=1e-5, atol=1e-6
    )


def test_zca_equals_keras_in_both_data_formats(photos):
    crops = np.stack([im[r : r + 8, c : c + 8] for im in list(photos.values())[:6]
                      for r in (0, 20, 40) for c in (0, 28, 56)])  # fmt: skip
    for data_format in ("channels_last", "channels_first"):
        x = crops if data_format == "channels_last" else crops.transpose(0, 3, 1, 2)
        with pytest.warns(UserWarning, match="zca_whitening"):
            ours = ImageDataGenerator(zca_whitening=True, rescale=1 / 255, data_format=data_format)
        with pytest.warns(UserWarning, match="zca_whitening"):
            theirs = keras_image.ImageDataGenerator(
                zca_whitening=True, rescale=1 / 255, data_format=data_format
            )
        ours.fit(x)
        theirs.fit(x)
        assert ours.mean.shape == theirs.mean.shape
        np.testing.assert_allclose(ours.zca_whitening_matrix, theirs.zca_whitening_matrix, atol=2e-4)
        image = x[3].astype(np.float32)
        np.testing.assert_allclose(
            ours.standardize(image.copy()), theirs.standardize(image.copy()), atol=2e-3
        )
        batch = ours.flow(x, batch_size=len(x), shuffle=False)[0]
        expected = np.stack([theirs.standardize(im.astype(np.float32)) for im in x])
        np.testing.assert_allclose(batch, expected, atol=2e-3)


def test_statistics_can_be_set_and_unfitted_ones_warn(array_data):
    x, y = array_data
    g = ImageDataGenerator(featurewise_center=True)
    with pytest.warns(UserWarning, match="featurewise_center`, but it hasn't been fit"):
        unfitted = g.flow(x, y, batch_size=4, shuffle=False)[0][0]
    assert np.array_equal(unfitted, x[:4].astype(np.float32))
    g.mean = np.array([10.0, 20.0, 30.0], dtype=np.float32).reshape(1, 1, 3)
    batch = g.flow(x, y, batch_size=4, shuffle=False)[0][0]
    assert np.array_equal(batch, x[:4].astype(np.float32) - g.mean)


def test_fit_streams_batches(array_data):
    x, y = array_data
    opts = dict(featurewise_center=True, featurewise_std_normalization=True)
    whole, streamed, from_iterator = (ImageDataGenerator(**opts) for _ in range(3))
    whole.fit(x)
    streamed.fit(x[i : i + 5] for i in range(0, len(x), 5))
    from_iterator.fit(ImageDataGenerator().flow(x, y, batch_size=5))  # (x, y) batches of a PyDataset
    for g in (streamed, from_iterator):
        np.testing.assert_allclose(g.mean, whole.mean, rtol=1e-5)
        np.testing.assert_allclose(g.std, whole.std, rtol=1e-5)
    with pytest.raises(ValueError, match="one-shot iterator"):
        streamed.fit((b for b in [x]), augment=True, rounds=2)


# ---- channels_first -------------------------------------------------------------------------------------
def test_channels_first(tree, array_data):
    x, y = array_data
    kw = dict(target_size=TARGET, batch_size=4, shuffle=False)
    ours = ImageDataGenerator(data_format="channels_first").flow_from_directory(str(tree), **kw)
    theirs = keras_image.ImageDataGenerator(data_format="channels_first").flow_from_directory(str(tree), **kw)
    assert ours.image_shape == theirs.image_shape == (3, *TARGET)
    _assert_same(_all(ours), _all(theirs))
    # Augmented channels-first batches are the channels-last ones, transposed.
    last = ImageDataGenerator(**AUGMENT).flow(x, y, batch_size=5, seed=2)
    first = ImageDataGenerator(**AUGMENT, data_format="channels_first").flow(
        x.transpose(0, 3, 1, 2), y, batch_size=5, seed=2
    )
    assert np.array_equal(first[1][0], last[1][0].transpose(0, 3, 1, 2))

    def per_channel(image: np.ndarray) -> np.ndarray:  # broadcasts only over a (3, H, W) image
        return image * np.array([1.0, 0.5, 0.25], np.float32).reshape(3, 1, 1)

    # preprocessing_function sees images in the generator's own layout, as in Keras.
    opts = dict(data_format="channels_first", preprocessing_function=per_channel)
    ours = ImageDataGenerator(**opts).flow_from_directory(str(tree), **kw)
    theirs = keras_image.ImageDataGenerator(**opts).flow_from_directory(str(tree), **kw)
    _assert_same(_all(ours), _all(theirs))
    params = {"theta": 30.0, "flip_vertical": True}
    image = x[0].astype(np.float32)
    cf = ImageDataGenerator(data_format="channels_first").apply_transform(image.transpose(2, 0, 1), params)
    assert np.array_equal(cf, ImageDataGenerator().apply_transform(image, params).transpose(2, 0, 1))


# ---- training ------------------------------------------------------------------------------------------
def _tiny_model(input_shape: tuple[int, ...], outputs: int, loss: str) -> keras.Model:
    model = keras.Sequential([
        keras.Input(input_shape), keras.layers.Conv2D(4, 3, activation="relu"),
        keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(outputs, activation="softmax"),
    ])  # fmt: skip
    model.compile(optimizer="sgd", loss=loss)
    return model


def test_model_fit_on_every_iterator(tree, frame, array_data):
    x, y = array_data
    g = ImageDataGenerator(**AUGMENT, rescale=1 / 255)
    directory = DirectoryIterator(str(tree), g, target_size=TARGET, batch_size=4, seed=1, workers=2)
    dataframe = g.flow_from_dataframe(frame, str(tree), weight_col="weight", class_mode="sparse",
                                      target_size=TARGET, batch_size=4, seed=1)  # fmt: skip
    flow = g.flow(x, keras.utils.to_categorical(y, 2), batch_size=4, seed=1)
    runs = [(directory, "categorical_crossentropy"), (dataframe, "sparse_categorical_crossentropy"),
            (flow, "categorical_crossentropy")]  # fmt: skip
    for it, loss in runs:
        shape = it.image_shape if hasattr(it, "image_shape") else it.x.shape[1:]
        history = _tiny_model(shape, 2, loss).fit(it, epochs=1, verbose=0)
        assert np.isfinite(history.history["loss"][0])


def test_unreadable_files_never_stop_training(tree, monkeypatch, tmp_path):
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", False)
    root = tmp_path / "dirty"
    for cls in ("cats", "dogs"):
        (root / cls).mkdir(parents=True)
        for f in sorted((tree / cls).glob("*.*"))[:3]:
            (root / cls / f.name).write_bytes(f.read_bytes())
    jpeg = (tree / "cats" / "coffee.JPG").read_bytes()
    (root / "cats" / "a_truncated.jpg").write_bytes(jpeg[: len(jpeg) // 2])  # header intact, data cut
    (root / "cats" / "empty.png").write_bytes(b"")
    (root / "dogs" / "notes.png").write_text("a text file with an image extension")

    g = ImageDataGenerator(rescale=1 / 255)
    with pytest.warns(UserWarning, match="left out 2 unreadable") as record:
        it = g.flow_from_directory(str(root), target_size=TARGET, batch_size=4, shuffle=False)
    assert (
        len(record) == 1 and "empty.png" in str(record[0].message) and "notes.png" in str(record[0].message)
    )
    assert it.samples == 7 and "cats/a_truncated.jpg" in it.filenames

    with pytest.warns(UserWarning, match="failed to decode") as record:
        history = _tiny_model((*TARGET, 3), 2, "categorical_crossentropy").fit(it, epochs=2, verbose=0)
    assert len(record) == 1 and "a_truncated.jpg" in str(record[0].message)
    assert len(history.history["loss"]) == 2 and np.isfinite(history.history["loss"]).all()
    assert sorted(Path(p).name for p, _ in it.skipped) == ["a_truncated.jpg", "empty.png", "notes.png"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # excluded for good: no second warning, one sample short
        assert sum(len(b[0]) for b in _all(it)) == it.samples - 1 and len(it[0][0]) == 3

    # A batch whose every file fails is never empty: it takes the epoch's first readable sample.
    with pytest.warns(UserWarning, match="left out 2 unreadable"):
        single = g.flow_from_directory(str(root), target_size=TARGET, batch_size=1, shuffle=False)
    with pytest.warns(UserWarning, match="a_truncated.jpg"):
        first = single[0]
    _assert_same(first, single[1])

    names = ["cats/empty.png", *it.filenames]
    frame = pd.DataFrame({"filename": names, "class": [f.split("/")[0] for f in names]})
    with pytest.warns(UserWarning, match="left out 1 unreadable"):
        df_it = g.flow_from_dataframe(frame, str(root), target_size=TARGET)
    assert df_it.samples == 7


# ---- Keras's iterator protocol: next(), index_generator, empty datasets -----------------------------
def test_next_method_serves_what_next_serves(tree, frame, array_data):
    x, y = array_data
    g = ImageDataGenerator(**AUGMENT)
    makers = [
        lambda: g.flow(x, y, batch_size=5, seed=4),
        lambda: g.flow_from_directory(str(tree), target_size=TARGET, batch_size=4, seed=4),
        lambda: g.flow_from_dataframe(frame, str(tree), target_size=TARGET, batch_size=4, seed=4),
    ]
    for make in makers:
        a, b = make(), make()
        for _ in range(len(a) + 1):  # across the epoch's end
            _assert_same(a.next(), next(b))
    # Without augmentation, the walk is Keras's, wrap-around included.
    ours = ImageDataGenerator(rescale=1 / 255).flow(x, y, batch_size=5, shuffle=False)
    theirs = keras_image.ImageDataGenerator(rescale=1 / 255).flow(x, y, batch_size=5, shuffle=False)
    for _ in range(4):
        _assert_same(ours.next(), next(theirs))


def test_index_generator_moves_the_cursor_next_reads(array_data):
    x, y = array_data
    ours = ImageDataGenerator().flow(x, y, batch_size=5, shuffle=False)
    theirs = keras_image.ImageDataGenerator().flow(x, y, batch_size=5, shuffle=False)
    for _ in range(4):  # 5, 5, 2, then the next epoch
        assert np.array_equal(next(ours.index_generator), next(theirs.index_generator))
    assert (ours.batch_index, ours.total_batches_seen) == (theirs.batch_index, theirs.total_batches_seen)
    _assert_same(next(ours), next(theirs))  # both serve batch 1 now
    shuffled = ImageDataGenerator().flow(x, y, batch_size=5, seed=9)
    indices = shuffled.index_generator
    epoch0 = np.concatenate([next(indices) for _ in range(3)])
    assert np.array_equal(epoch0, np.random.default_rng([9, 0]).permutation(len(x))) and shuffled.epoch == 1
    assert np.array_equal(next(indices), np.random.default_rng([9, 1]).permutation(len(x))[:5])


def test_empty_datasets_behave_like_keras(tmp_path):
    for batch_size in (0, 32):
        it = Iterator(0, batch_size, False, 0)
        assert len(it) == 0 and next(it.index_generator).size == 0
    with pytest.raises(ValueError, match="batch_size"):  # Keras would serve empty batches forever
        Iterator(5, 0, False, 0)
    empty = tmp_path / "empty"
    empty.mkdir()
    for class_mode in ("categorical", "binary", None):
        kw = dict(batch_size=32, class_mode=class_mode, target_size=TARGET)
        ours = ImageDataGenerator().flow_from_directory(str(empty), **kw)
        theirs = keras_image.ImageDataGenerator().flow_from_directory(str(empty), **kw)
        assert len(ours) == len(theirs) == 0
        _assert_same(next(ours), next(theirs))
        _assert_same(ours.next(), next(theirs))
        for it in (ours, theirs):
            with pytest.raises(ValueError, match="has length 0"):
                it[0]
    x = np.zeros((0, 8, 8, 3), np.uint8)
    ours = ImageDataGenerator(**AUGMENT).flow(x, np.zeros(0), batch_size=4)
    theirs = keras_image.ImageDataGenerator(**AUGMENT).flow(x, np.zeros(0), batch_size=4)
    _assert_same(next(ours), next(theirs))


# ---- fit in the generator's dtype ---------------------------------------------------------------------
def test_fit_computes_in_the_generator_dtype(array_data):
    x, y = array_data
    opts = dict(featurewise_center=True, featurewise_std_normalization=True, rescale=1 / 255)
    ours = ImageDataGenerator(**opts, dtype="float64")
    theirs = keras_image.ImageDataGenerator(**opts, dtype="float64")
    ours.fit(x)
    theirs.fit(x)
    assert ours.mean.dtype == ours.std.dtype == theirs.mean.dtype == np.float64
    np.testing.assert_allclose(ours.mean, theirs.mean, rtol=1e-12)
    np.testing.assert_allclose(ours.std, theirs.std, rtol=1e-12)
    batch = ours.flow(x, batch_size=len(x), shuffle=False)[0]
    expected = theirs.flow(x, batch_size=len(x), shuffle=False)[0]
    assert batch.dtype == np.float64
    np.testing.assert_allclose(batch, expected, rtol=0, atol=1e-12)
    assert np.abs(batch.mean(axis=(0, 1, 2))).max() < 1e-12  # float32 statistics leave about 1e-6
    streamed = ImageDataGenerator(**opts, dtype="float64")
    streamed.fit(ImageDataGenerator().flow(x, y, batch_size=5))
    assert streamed.mean.dtype == np.float64
    np.testing.assert_allclose(streamed.mean, ours.mean, rtol=1e-12)
    np.testing.assert_allclose(streamed.std, ours.std, rtol=1e-9)
    augmented = ImageDataGenerator(**opts, rotation_range=10, dtype="float64")
    augmented.fit(x, augment=True, rounds=2, seed=1)
    assert augmented.mean.dtype == augmented.std.dtype == np.float64
    default = ImageDataGenerator(**opts)  # Keras's floatx: float32, as before
    default.fit(x)
    assert default.mean.dtype == default.std.dtype == np.float32


# ---- interpolation="area" -------------------------------------------------------------------------------
def test_unknown_interpolation_fails_at_the_first_batch_like_keras(tree, frame, tmp_path, photos):
    kw = dict(target_size=TARGET, batch_size=4, shuffle=False, interpolation="area")
    ours = ImageDataGenerator().flow_from_directory(str(tree), **kw)  # built, as Keras builds it
    theirs = keras_image.ImageDataGenerator().flow_from_directory(str(tree), **kw)
    frame_it = ImageDataGenerator().flow_from_dataframe(frame, str(tree), **kw)
    with pytest.raises(ValueError) as keras_error:
        theirs[0]
    for it in (ours, frame_it):
        with pytest.raises(ConfigError) as error:  # a ValueError too, with Keras's message
            it[0]
        assert str(error.value) == str(keras_error.value)
        assert it.skipped == []  # a bad option, not bad files
    # Images already of target_size are never resized, so Keras accepts "area" for them.
    sized = tmp_path / "sized"
    (sized / "only").mkdir(parents=True)
    for name in ("coffee", "rocket"):
        Image.fromarray(_small(photos[name], TARGET[1], TARGET[0])).save(sized / "only" / f"{name}.png")
    ours = ImageDataGenerator().flow_from_directory(str(sized), **kw)
    theirs = keras_image.ImageDataGenerator().flow_from_directory(str(sized), **kw)
    _assert_same(_all(ours), _all(theirs))
