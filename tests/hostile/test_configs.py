"""Hostile configs (issue 12, items 4 and 5): alias bombs, deep or huge YAML, NaN, infinities and absurd
values for every numeric option, and crops larger than the image. Each is refused at load time (or, for
the crop, where the image size is first known) with one bounded message naming the field and the value.
"""

import os
import threading
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from flows.cli import app
from pipeline import AugmentConfig, Augmenter
from pipeline.config import (
    MAX_CONFIG_BYTES,
    MAX_ERROR_CHARS,
    MAX_ERRORS_LISTED,
    MAX_GOT_CHARS,
    MAX_YAML_DEPTH,
    MAX_YAML_NODES,
    BoundedLoader,
    ConfigError,
    PrepareConfig,
    TrainConfig,
    YamlRefused,
)

runner = CliRunner()
NAN, INF = float("nan"), float("inf")
LOADERS = {
    "augment": AugmentConfig.from_yaml,
    "prepare": PrepareConfig.from_yaml,
    "train": TrainConfig.from_yaml,
}


def billion_laughs(levels: int = 9, width: int = 9) -> str:
    """The classic alias bomb: ``levels`` lists of ``width`` aliases to the list before, ``width**levels``
    strings once expanded (387,420,489 for the defaults) from about 300 bytes."""
    names = "abcdefghijklmnopqrstuvwxyz"[:levels]
    lines = [f"a: &a [{','.join(['x'] * width)}]"]
    lines += [f"{n}: &{n} [{','.join([f'*{p}'] * width)}]" for p, n in zip(names, names[1:], strict=False)]
    return "\n".join(lines) + "\n"


def _write(tmp_path: Path, text: str | bytes, name: str = "config.yaml") -> Path:
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


def _refusal(load, path: Path) -> str:
    with pytest.raises(ConfigError) as info:
        load(path)
    message = str(info.value)
    assert len(message) <= MAX_ERROR_CHARS and "\n" not in message, message[:300]
    return message


# ---- YAML: alias bombs, self-reference, depth, size --------------------------------------------------


@pytest.mark.parametrize("section", LOADERS)
def test_alias_bomb_is_refused_naming_the_file(tmp_path, section):
    text = billion_laughs()
    assert len(text) < 320
    path = _write(tmp_path, text)
    message = _refusal(LOADERS[section], path)
    assert message.startswith(f"{path}: refused: its aliases expand to more than {MAX_YAML_NODES:,} values")
    assert "alias bomb" in message


def test_alias_bomb_is_refused_before_any_value_is_constructed():
    loader = BoundedLoader(billion_laughs())
    try:
        with pytest.raises(YamlRefused, match="expand to more than"):
            loader.get_single_data()
        # PyYAML's own record of constructed values is empty: the refusal came from the node graph.
        assert loader.constructed_objects == {}
        # Composing cost what the text holds (9 keys, 9 lists, 9 strings, 72 aliases), not 9**9.
        assert loader.composed <= 1 + 9 * 3 + 8 * 9
    finally:
        loader.dispose()


def test_aliases_within_the_bound_still_load(tmp_path):
    text = billion_laughs(levels=3, width=9) + "augment: {rotation_range: 10}\n"  # 9**3 = 729 strings
    path = _write(tmp_path, text)
    assert AugmentConfig.from_yaml(path) == AugmentConfig(rotation_range=10)
    assert yaml.load(text, Loader=BoundedLoader) == yaml.safe_load(text)


def test_merge_keys_from_shared_anchors_still_load(tmp_path):
    path = _write(
        tmp_path, "base: &base {rotation_range: 10}\naugment:\n  <<: *base\n  horizontal_flip: true\n"
    )
    assert AugmentConfig.from_yaml(path) == AugmentConfig(rotation_range=10, horizontal_flip=True)


def test_self_referencing_alias_is_refused(tmp_path):
    path = _write(tmp_path, "rotation_range: &r [1, *r]\n")
    assert _refusal(AugmentConfig.from_yaml, path) == (
        f"{path}: refused: an alias refers to a node that contains it (line 1, column 17)"
    )


@pytest.mark.parametrize("depth", [MAX_YAML_DEPTH + 2, 200_000])
def test_deep_nesting_is_refused_at_the_bound(tmp_path, depth):
    # 200,000 levels fit in 400 kB; PyYAML composes recursively and would overflow the stack.
    path = _write(tmp_path, "rotation_range: " + "[" * depth + "]" * depth + "\n")
    message = _refusal(AugmentConfig.from_yaml, path)
    assert message.startswith(f"{path}: refused: nested deeper than {MAX_YAML_DEPTH} levels (line 1, column")


def test_dense_document_stops_composing_at_the_bound():
    text = "rotation_range: [" + ", ".join(["1"] * 300_000) + "]\n"  # under 1 MiB, 300,000 values
    loader = BoundedLoader(text)
    try:
        with pytest.raises(YamlRefused, match=f"more than {MAX_YAML_NODES:,} values"):
            loader.get_single_data()
        assert loader.composed == MAX_YAML_NODES + 1 and loader.constructed_objects == {}
    finally:
        loader.dispose()


def test_oversized_file_is_refused_naming_file_and_size(tmp_path):
    path = _write(tmp_path, "# " + "x" * MAX_CONFIG_BYTES + "\nrotation_range: 10\n")
    size = path.stat().st_size
    assert _refusal(AugmentConfig.from_yaml, path) == (
        f"{path}: {size} bytes is too large for a config file (at most {MAX_CONFIG_BYTES})"
    )


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_fifo_is_refused_without_opening_it(tmp_path):
    path = tmp_path / "config.yaml"
    os.mkfifo(path)
    outcome: list[BaseException] = []

    def load() -> None:
        try:
            AugmentConfig.from_yaml(path)
        except BaseException as err:  # noqa: BLE001 - handed to the test thread
            outcome.append(err)

    # Opening a FIFO blocks until a writer comes: run in a thread so that a regression fails
    # this test instead of hanging the suite, then release the reader if it did block.
    worker = threading.Thread(target=load, daemon=True)
    worker.start()
    worker.join(60)
    if worker.is_alive():
        os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
        worker.join()
    assert len(outcome) == 1 and isinstance(outcome[0], ConfigError)
    assert str(outcome[0]) == f"{path}: not a regular file, so not a config file"


def test_folder_is_refused(tmp_path):
    (tmp_path / "config.yaml").mkdir()
    assert _refusal(AugmentConfig.from_yaml, tmp_path / "config.yaml").endswith(
        "not a regular file, so not a config file"
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("augment: 5\n", "augment: expected a mapping of option names, got int"),
        ("augment: [rotation_range, 10]\n", "augment: expected a mapping of option names, got list"),
        ("1: 2\n", "option names must be strings, but got 1"),
        ("? [a, b]\n: 1\n", "not valid YAML"),  # an unhashable key: PyYAML refuses it
        ("rotation_range: [10, 20\nfill_mode: nearest\n", "not valid YAML: while parsing a flow sequence"),
        (b"\xff\xd8\xff\xe0 a JPEG, not YAML \x00\x01", "not valid YAML"),
    ],
)
def test_malformed_documents_are_one_line_naming_the_file(tmp_path, text, message):
    path = _write(tmp_path, text)
    got = _refusal(AugmentConfig.from_yaml, path)
    assert got.startswith(f"{path}: ") and message in got


def test_empty_section_is_the_defaults(tmp_path):
    assert AugmentConfig.from_yaml(_write(tmp_path, "augment:\n")) == AugmentConfig()


# ---- bounded messages --------------------------------------------------------------------------------


def test_a_megabyte_value_is_quoted_cut(tmp_path):
    path = _write(tmp_path, "fill_mode: " + "m" * (MAX_CONFIG_BYTES - 100) + "\n")
    message = _refusal(AugmentConfig.from_yaml, path)
    assert message.startswith(f"{path}: AugmentConfig.fill_mode: Input should be 'nearest'")
    got = message.split("(got ", 1)[1]
    assert len(got) <= MAX_GOT_CHARS + 1 and "..." in got


def test_a_long_unknown_option_name_is_cut():
    message = str(pytest.raises(ConfigError, AugmentConfig.parse, {"k" * 100_000: 1}).value)
    assert message.startswith("AugmentConfig.kkk") and "unknown option" in message
    assert len(message) <= MAX_ERROR_CHARS


def test_thousands_of_bad_options_list_the_first_few(tmp_path):
    path = _write(tmp_path, "".join(f"k{i}: 1\n" for i in range(3000)))
    message = _refusal(TrainConfig.from_yaml, path)
    assert message.count("unknown option") == MAX_ERRORS_LISTED and message.count("accepted:") == 1
    assert message.endswith(f"and {3000 - MAX_ERRORS_LISTED} more")


def test_nested_bad_values_stay_bounded():
    extras = [{"name": "blur", "p": NAN} for _ in range(500)]
    message = str(pytest.raises(ConfigError, AugmentConfig, extras=extras).value)
    assert message.startswith(
        "AugmentConfig.extras.0.p: Input should be a finite number (got nan); AugmentConfig.extras.1.p: "
    )
    assert len(message) <= MAX_ERROR_CHARS


# ---- non-finite and absurd values, for every numeric option -------------------------------------------

NON_FINITE = [NAN, INF, -INF]
# (option, value as given): non-finite values everywhere, including inside lists and pairs.
HOSTILE = [
    *[(field, v) for field in ("rotation_range", "shear_range", "channel_shift_range") for v in NON_FINITE],
    *[(field, v) for field in ("cval", "rescale", "zca_epsilon", "validation_split") for v in NON_FINITE],
    *[(field, v) for field in ("width_shift_range", "height_shift_range") for v in NON_FINITE],
    *[(field, [0.1, v]) for field in ("width_shift_range", "height_shift_range") for v in NON_FINITE],
    *[("zoom_range", v) for v in NON_FINITE],
    *[("zoom_range", [0.5, v]) for v in NON_FINITE],
    *[("brightness_range", [v, 1.0]) for v in NON_FINITE],
    # Finite but absurd: beyond the documented bounds (1,000,000; 10,000 pixels for shifts).
    ("rotation_range", 1e30), ("shear_range", 1e308), ("channel_shift_range", 1e9),
    ("cval", 1e30), ("cval", -1e30), ("rescale", 1e30), ("rescale", -1e300),
    ("width_shift_range", 1e30), ("height_shift_range", 10**30), ("width_shift_range", [1, -1e30]),
    ("height_shift_range", 10_001), ("zoom_range", [1.0, 1e30]), ("zoom_range", [1.0, 10**400]),
    ("brightness_range", [0.5, 1e308]),
]  # fmt: skip


def _case_id(case: tuple[str, object]) -> str:
    return f"{case[0]}={case[1]!r}"[:60]


@pytest.mark.parametrize("case", HOSTILE, ids=[_case_id(c) for c in HOSTILE])
def test_hostile_value_is_refused_in_python(case):
    field, value = case
    for build in (lambda: AugmentConfig(**{field: value}), lambda: AugmentConfig.parse({field: value})):
        message = str(pytest.raises(ConfigError, build).value)
        assert message.startswith(f"AugmentConfig.{field}: ") and field in message
        assert "finite" in message or "at most" in message, message
        _assert_got(message, value)


@pytest.mark.parametrize("case", HOSTILE, ids=[_case_id(c) for c in HOSTILE])
def test_hostile_value_is_refused_in_yaml(tmp_path, case):
    field, value = case
    text = yaml.safe_dump({"augment": {field: value}})  # .nan, .inf, -.inf, 1.0e+30 as YAML writes them
    path = _write(tmp_path, text)
    message = _refusal(AugmentConfig.from_yaml, path)
    assert message.startswith(f"{path}: AugmentConfig.{field}: ")
    assert "finite" in message or "at most" in message, message
    _assert_got(message, value)


def _assert_got(message: str, value: object) -> None:
    """The message ends with the value as given; a 400-digit int is shown cut, with "..."."""
    given = repr(value)
    if len(given) <= 40:
        assert message.endswith(f"(got {given})"), message
    else:
        assert f"(got {given[:20]}" in message and "..." in message and len(message) < 400, message


@pytest.mark.parametrize("value", NON_FINITE)
def test_cval_nan_with_constant_fill_is_refused(value):
    with pytest.raises(
        ConfigError, match=rf"AugmentConfig\.cval: Input should be a finite number \(got {value}\)"
    ):
        AugmentConfig(cval=value, fill_mode="constant", rotation_range=30)


@pytest.mark.parametrize("value", NON_FINITE)
def test_extras_refuse_non_finite_probability_and_params(value):
    with pytest.raises(ConfigError, match=r"AugmentConfig\.extras\.0\.p: Input should be a finite number"):
        AugmentConfig(extras=[{"name": "blur", "p": value}])
    with pytest.raises(
        ConfigError, match=rf"extras\.0\.params: params must hold finite numbers only, but holds {value}"
    ):
        AugmentConfig(extras=[{"name": "gaussian_blur", "params": {"sigma_limit": [0.5, value]}}])


TRAIN_HOSTILE = [
    ("learning_rate", NAN), ("learning_rate", INF), ("lr_decay_rate", NAN), ("fine_tune_learning_rate", INF),
    ("model_options", {"dropout": NAN}), ("model_options", {"layers": [{"rate": -INF}]}),
    ("prepare_options", {"splits": {"train": NAN, "test": 0.5}}),
]  # fmt: skip


@pytest.mark.parametrize("case", TRAIN_HOSTILE, ids=[_case_id(c) for c in TRAIN_HOSTILE])
def test_train_numbers_must_be_finite(tmp_path, case):
    field, value = case
    path = _write(tmp_path, yaml.safe_dump({"train": {field: value}}))
    for build, where in (
        (lambda: TrainConfig(**{field: value}), ""),
        (lambda: TrainConfig.from_yaml(path), f"{path}: "),
    ):
        message = str(pytest.raises(ConfigError, build).value)
        assert message.startswith(f"{where}TrainConfig.{field}: ") and "finite" in message, message


@pytest.mark.parametrize(
    "splits", [{"train": NAN}, {"train": 0.5, "test": INF}, {"train": 1.0, "validation": -INF}]
)
def test_prepare_splits_must_be_finite(tmp_path, splits):
    path = _write(tmp_path, yaml.safe_dump({"prepare": {"source": "digits", "out": "x", "splits": splits}}))
    for build, where in (
        (lambda: PrepareConfig(source="digits", out="x", splits=splits), ""),
        (lambda: PrepareConfig.from_yaml(path), f"{path}: "),
    ):
        message = str(pytest.raises(ConfigError, build).value)
        assert message.startswith(f"{where}PrepareConfig.splits.") and "finite number" in message, message


def test_prepare_target_size_beyond_max_pixels_is_refused():
    with pytest.raises(
        ConfigError, match=r"target_size 100000x100000 is 10,000,000,000 pixels, more than max_pixels"
    ):
        PrepareConfig(source="digits", out="x", target_size=(100_000, 100_000))
    assert PrepareConfig(source="digits", out="x", target_size=(100, 100), max_pixels=10_000).target_size == (
        100,
        100,
    )


def test_values_at_the_bounds_keep_keras_meaning():
    cfg = AugmentConfig(
        rotation_range=1_000_000, shear_range=360, channel_shift_range=1_000_000, cval=-1_000_000,
        width_shift_range=10_000, height_shift_range=[-10_000, 0.5, 10_000], zoom_range=[1e-6, 1_000_000],
        brightness_range=[0, 1_000_000], rescale=-1 / 255, zca_epsilon=1e300,
    )  # fmt: skip
    assert cfg.height_shift_range == [-10_000, 0.5, 10_000] and type(cfg.width_shift_range) is int
    assert AugmentConfig(rescale=0).rescale is None  # Keras: `if self.rescale:`, so 0 is no rescaling
    images = np.full((2, 16, 20, 3), 100, np.uint8)
    batch, _ = Augmenter(cfg).augment_batch(images, seed=1)
    assert np.isfinite(batch).all()


# ---- the CLI: one line, exit 2 -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("option", "text", "expected"),
    [
        (
            "--augment",
            "rotation_range: .nan\n",
            "AugmentConfig.rotation_range: Input should be a finite number (got nan)",
        ),
        ("--augment", "augment:\n  width_shift_range: [0.1, .inf]\n", "AugmentConfig.width_shift_range"),
        ("--augment", "zoom_range: 1.0e+30\n", "AugmentConfig.zoom_range"),
        ("--augment", billion_laughs(), "refused: its aliases expand to more than"),
        (
            "--config",
            "train:\n  learning_rate: .nan\n",
            "TrainConfig.learning_rate: Input should be a finite number",
        ),
        ("--config", billion_laughs(), "refused: its aliases expand to more than"),
    ],
)
def test_cli_train_refuses_hostile_config_in_one_line(tmp_path, option, text, expected):
    path = _write(tmp_path, text)
    result = runner.invoke(app, ["train", "digits", option, str(path), "--runs-dir", str(tmp_path / "runs")])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], result.output
    assert len(lines[0]) <= MAX_ERROR_CHARS + len("error: ")
    assert not (tmp_path / "runs").exists()


# ---- crops larger than the image: refused where the image size is first known -------------------------


def _crop(name: str, height: int, width: int, **params: object) -> dict[str, object]:
    return {"name": name, "params": {"height": height, "width": width, **params}}


@pytest.mark.parametrize("name", ["random_crop", "center_crop"])
def test_crop_larger_than_the_image_is_refused_at_the_draw(name):
    augmenter = Augmenter(AugmentConfig(extras=[_crop(name, 40, 24)]))
    expected = (
        f"extra '{name}' crops 40x24 (height x width), but the images are 32x48: "
        "choose a crop that fits, or set pad_if_needed: true"
    )
    with pytest.raises(ConfigError) as info:
        augmenter.draw((32, 48, 3), range(4))  # the first step that knows the size: no image touched
    assert str(info.value) == expected
    images = np.zeros((4, 32, 48, 3), np.uint8)
    with pytest.raises(ConfigError) as info:
        augmenter.augment_batch(images, seed=0)
    assert str(info.value) == expected


def test_crop_check_follows_the_chain_of_crops():
    augmenter = Augmenter(AugmentConfig(extras=[_crop("random_crop", 20, 20), _crop("center_crop", 24, 16)]))
    with pytest.raises(
        ConfigError, match=r"'center_crop' crops 24x16 .* images are 20x20 after extra 'random_crop'"
    ):
        augmenter.draw((32, 48, 3), range(2))


def test_crop_replayed_on_a_smaller_image_is_refused_before_the_warp():
    augmenter = Augmenter(AugmentConfig(rotation_range=10, extras=[_crop("random_crop", 24, 24)]))
    _, drawn = augmenter.augment_batch(np.zeros((1, 32, 32, 3), np.uint8))
    params = drawn[0]  # a replayable record: Keras's keys plus the extras' draws
    with pytest.raises(ConfigError, match=r"crops 24x24 .* images are 16x16"):
        augmenter.apply_transform(np.zeros((16, 16, 3), np.uint8), params)


def test_crop_that_fits_or_pads_is_accepted():
    images = np.full((3, 32, 48, 3), 7, np.uint8)
    fits, _ = Augmenter(AugmentConfig(extras=[_crop("random_crop", 32, 48)])).augment_batch(images)
    assert fits.shape == (3, 32, 48, 3)
    padded, _ = Augmenter(
        AugmentConfig(extras=[_crop("random_crop", 40, 64, pad_if_needed=True)])
    ).augment_batch(images)
    assert padded.shape == (3, 40, 64, 3)
