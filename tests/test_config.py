"""AugmentConfig: rejected values and their messages, Keras's normalisation rules, YAML round-trip."""

import re

import numpy as np
import pytest
from keras.src.legacy.preprocessing.image import ImageDataGenerator

from pipeline import AugmentConfig, Augmenter, ConfigError, PixelTransform
from pipeline.functional.pixel import EXTRA_TRANSFORMS

# (options, the field to name, the value as given, what is accepted)
BAD_VALUES = {
    "negative_rotation": (dict(rotation_range=-5), "rotation_range", "-5", ">= 0"),
    "negative_width_shift": (dict(width_shift_range=-0.1), "width_shift_range", "-0.1", ">= 0"),
    "negative_int_height_shift": (dict(height_shift_range=-3), "height_shift_range", "-3", ">= 0"),
    "negative_shear": (dict(shear_range=-1.5), "shear_range", "-1.5", ">= 0"),
    "negative_channel_shift": (dict(channel_shift_range=-3), "channel_shift_range", "-3", ">= 0"),
    "boolean_shift": (dict(width_shift_range=True), "width_shift_range", "True", "a float, an int or a list"),
    "empty_shift_list": (dict(height_shift_range=[]), "height_shift_range", "[]", "must not be an empty"),
    # A scalar z means [1 - z, 1 + z]: 1.5 gives a low of -0.5, not a zoom factor.
    "scalar_zoom_too_large": (dict(zoom_range=1.5), "zoom_range", "1.5", "> 0"),
    "zero_zoom_factor": (dict(zoom_range=(0, 1.2)), "zoom_range", "(0, 1.2)", "> 0"),
    "negative_zoom_factor": (dict(zoom_range=[-0.5, 1.0]), "zoom_range", "[-0.5, 1.0]", "> 0"),
    "zoom_reversed": (dict(zoom_range=(1.2, 0.8)), "zoom_range", "(1.2, 0.8)", "low <= high"),
    "brightness_scalar": (dict(brightness_range=0.5), "brightness_range", "0.5", "pair"),
    "brightness_triple": (dict(brightness_range=[0.5, 1, 2]), "brightness_range", "[0.5, 1, 2]", "pair"),
    "brightness_reversed": (
        dict(brightness_range=(1.5, 0.5)), "brightness_range", "(1.5, 0.5)", "low <= high",
    ),
    "unknown_fill_mode": (dict(fill_mode="mirror"), "fill_mode", "'mirror'", "'nearest', 'reflect', 'wrap'"),
    "validation_split_one": (dict(validation_split=1.0), "validation_split", "1.0", "between 0 and 1"),
    "validation_split_negative": (dict(validation_split=-0.2), "validation_split", "-0.2", "between 0 and 1"),
    "validation_split_large": (dict(validation_split=1.5), "validation_split", "1.5", "between 0 and 1"),
    "interpolation_order_7": (
        dict(interpolation_order=7), "interpolation_order", "7", "less than or equal to 5",
    ),
    "negative_interpolation_order": (dict(interpolation_order=-1), "interpolation_order", "-1", "0"),
    "zero_zca_epsilon": (dict(zca_epsilon=0), "zca_epsilon", "0", "greater than 0"),
    # An unknown option: its name is what is wrong, not its value, so the message gives the closest name.
    "unknown_option": (dict(rotation=10), "rotation", "unknown option", "did you mean 'rotation_range'?"),
    "unknown_extra": (dict(extras=[{"name": "sepia"}]), "extras.0", "'sepia'", "gaussian_blur"),
    "unknown_extra_param": (
        dict(extras=[{"name": "blur", "params": {"radius": 3}}]), "extras.0", "radius", "blur_limit",
    ),
    "unknown_extra_key": (
        dict(extras=[{"name": "blur", "prob": 0.5}]), "extras.0.prob", "unknown option", "name, params, p",
    ),
    "extra_p_above_one": (
        dict(extras=[{"name": "blur", "p": 1.5}]), "extras.0", "1.5", "less than or equal to 1",
    ),
    "crop_with_p_below_one": (
        dict(extras=[{"name": "random_crop", "params": {"height": 32, "width": 32}, "p": 0.5}]),
        "extras.0", "0.5", "p must be 1",
    ),
    "crop_without_size": (dict(extras=[{"name": "center_crop"}]), "extras.0", "center_crop", "height"),
    # Non-finite and absurd values (issue 12); tests/hostile/test_configs.py covers every option.
    "nan_rotation": (dict(rotation_range=float("nan")), "rotation_range", "nan", "finite number"),
    "huge_rotation": (dict(rotation_range=1e7), "rotation_range", "10000000.0", "at most 1,000,000 degrees"),
    "inf_in_shift_list": (
        dict(width_shift_range=[0.1, float("inf")]), "width_shift_range", "[0.1, inf]", "finite",
    ),
    "huge_shift": (dict(height_shift_range=1e30), "height_shift_range", "1e+30", "at most 10,000 pixels"),
    "string_shift": (dict(width_shift_range="0.2"), "width_shift_range", "'0.2'", "a float, an int or"),
    "nan_cval": (dict(cval=float("nan"), fill_mode="constant"), "cval", "nan", "finite number"),
    "huge_zoom": (dict(zoom_range=(1, 1e30)), "zoom_range", "(1, 1e+30)", "at most 1,000,000"),
    "inf_brightness": (dict(brightness_range=(0.5, float("inf"))), "brightness_range", "inf", "finite"),
    "inf_rescale": (dict(rescale=float("inf")), "rescale", "inf", "finite number"),
}  # fmt: skip


@pytest.mark.parametrize("case", BAD_VALUES)
def test_bad_value_raises_config_error_naming_field_value_and_accepted(case):
    options, field, given, accepted = BAD_VALUES[case]
    for build in (lambda: AugmentConfig(**options), lambda: AugmentConfig.parse(options)):
        with pytest.raises(ConfigError) as info:
            build()
        message = str(info.value)
        assert f"AugmentConfig.{field}" in message
        assert given in message
        assert accepted in message
        assert message.count("AugmentConfig") == 1, f"formatted more than once: {message}"


def test_unknown_extra_lists_every_accepted_name():
    with pytest.raises(ConfigError) as info:
        PixelTransform(name="sepia")
    for name in EXTRA_TRANSFORMS:
        assert re.search(rf"\b{name}\b", str(info.value)), name


def test_every_bad_field_is_reported_at_once():
    with pytest.raises(ConfigError) as info:
        AugmentConfig.parse(rotation_range=-1, fill_mode="mirror", shear_range=-2)
    message = str(info.value)
    for field in ("rotation_range", "fill_mode", "shear_range"):
        assert f"AugmentConfig.{field}" in message


def test_assignment_is_validated():
    cfg = AugmentConfig(rotation_range=10)
    with pytest.raises(ConfigError, match=r"AugmentConfig\.rotation_range: .*>= 0 \(got -3\)"):
        cfg.rotation_range = -3
    assert cfg.rotation_range == 10
    with pytest.raises(ConfigError, match="frozen"):
        PixelTransform(name="blur").p = 0.5


def test_accepted_edge_values():
    assert AugmentConfig(validation_split=0.0).validation_split == 0.0
    assert AugmentConfig(zoom_range=0).zoom_range == (1.0, 1.0)
    assert AugmentConfig(height_shift_range=[-3, 2, 5]).height_shift_range == [-3, 2, 5]  # Keras's choices
    assert AugmentConfig(interpolation_order=5).interpolation_order == 5
    assert AugmentConfig(rescale=0).rescale is None  # Keras treats 0 and None alike
    assert AugmentConfig(extras=[{"name": "blur", "p": 0.0}]).extras[0].p == 0.0
    # The bounds themselves are accepted: only what cannot give a sensible image is refused.
    assert AugmentConfig(rotation_range=1_000_000).rotation_range == 1_000_000
    assert AugmentConfig(width_shift_range=[-10_000, 10_000]).width_shift_range == [-10_000, 10_000]
    assert AugmentConfig(zoom_range=["1e-1", 1.2]).zoom_range == (0.1, 1.2)  # PyYAML's 1e-1 is a string


# ---- Keras's normalisation rules, with Keras itself as the reference ----------------------------


@pytest.mark.parametrize("zoom_range", [0.2, 0.0, 0.75, (0.5, 1.5), [0.9, 1.1], (1, 2)])
def test_zoom_range_normalised_like_keras(zoom_range):
    cfg = AugmentConfig(zoom_range=zoom_range)
    gen = ImageDataGenerator(zoom_range=zoom_range)
    assert cfg.zoom_range == pytest.approx(tuple(gen.zoom_range))


FORCED = [
    (dict(zca_whitening=True), [r"`zca_whitening`, which overrides setting of `featurewise_center`"]),
    (
        dict(zca_whitening=True, featurewise_center=True, featurewise_std_normalization=True),
        [r"`zca_whitening` which overrides"],
    ),
    (dict(featurewise_std_normalization=True), [r"`featurewise_std_normalization`, which overrides"]),
    (dict(samplewise_std_normalization=True), [r"`samplewise_std_normalization`, which overrides"]),
]


@pytest.mark.parametrize(("options", "keras_warnings"), FORCED)
def test_option_overrides_match_keras(options, keras_warnings):
    with pytest.warns(UserWarning) as record:
        gen = ImageDataGenerator(**options)
    for pattern in keras_warnings:
        assert any(re.search(pattern, str(w.message)) for w in record), pattern
    cfg = AugmentConfig(**options)
    for flag in (
        "featurewise_center",
        "featurewise_std_normalization",
        "samplewise_center",
        "samplewise_std_normalization",
        "zca_whitening",
    ):
        assert getattr(cfg, flag) == bool(getattr(gen, flag)), flag


def test_zca_forces_center_and_drops_std():
    cfg = AugmentConfig(zca_whitening=True, featurewise_std_normalization=True)
    assert cfg.featurewise_center and not cfg.featurewise_std_normalization
    assert AugmentConfig(featurewise_std_normalization=True).featurewise_center
    assert AugmentConfig(samplewise_std_normalization=True).samplewise_center


# ---- YAML ------------------------------------------------------------------------------------------

FULL = dict(
    featurewise_center=True, featurewise_std_normalization=True, samplewise_center=True,
    rotation_range=25.5, width_shift_range=15, height_shift_range=[-3, 2, 5], shear_range=12.0,
    zoom_range=0.2, channel_shift_range=25.0, brightness_range=[0.6, 1.4], fill_mode="constant",
    cval=127.5, horizontal_flip=True, vertical_flip=True, rescale=1 / 255, validation_split=0.25,
    interpolation_order=0, keras_shift_axes=False,
    extras=[
        {"name": "gaussian_blur", "params": {"blur_limit": [3, 5], "sigma_limit": [0.2, 1.0]}, "p": 0.5},
        {"name": "cutout", "p": 0.3},
        {"name": "center_crop", "params": {"height": 64, "width": 80}},
    ],
)  # fmt: skip


def test_yaml_round_trip_equals_the_original(tmp_path):
    cfg = AugmentConfig(**FULL)
    path = tmp_path / "augment.yaml"
    text = cfg.to_yaml(path)
    assert path.read_text() == text
    back = AugmentConfig.from_yaml(path)
    assert back == cfg
    assert back.extras == cfg.extras and len(back.extras) == 3
    # Keras's shift semantics hang on the type: an int spec is a choice from range(n).
    assert type(back.width_shift_range) is int and type(back.rotation_range) is float
    x = np.zeros((1, 96, 128, 3), np.uint8)
    a = Augmenter(cfg).draw(x.shape[1:], range(20), seed=3)
    b = Augmenter(back).draw(x.shape[1:], range(20), seed=3)
    assert list(a) == list(b)


def test_yaml_round_trip_keeps_float_shift_float(tmp_path):
    cfg = AugmentConfig(width_shift_range=15.0, height_shift_range=0.1)
    path = tmp_path / "a.yaml"
    cfg.to_yaml(path)
    back = AugmentConfig.from_yaml(path)
    assert type(back.width_shift_range) is float and back == cfg


def test_from_yaml_accepts_an_augment_section(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("augment:\n  rotation_range: 20\n  horizontal_flip: true\nother: 1\n")
    assert AugmentConfig.from_yaml(path) == AugmentConfig(rotation_range=20, horizontal_flip=True)


def test_from_yaml_missing_file(tmp_path):
    path = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError, match=rf"config file not found: .*{re.escape(path.name)}"):
        AugmentConfig.from_yaml(path)


def test_from_yaml_invalid_yaml(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("rotation_range: [10, 20\nfill_mode: nearest\n")
    with pytest.raises(ConfigError, match="broken.yaml: not valid YAML"):
        AugmentConfig.from_yaml(path)


def test_from_yaml_not_a_mapping(tmp_path):
    path = tmp_path / "list.yaml"
    path.write_text("- rotation_range\n- 10\n")
    with pytest.raises(ConfigError, match="expected a mapping of option names, got list"):
        AugmentConfig.from_yaml(path)


def test_from_yaml_bad_value_names_the_field(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("rotation_range: 10\nfill_mode: mirror\n")
    with pytest.raises(ConfigError, match=r"AugmentConfig\.fill_mode: .*'nearest'.*\(got 'mirror'\)"):
        AugmentConfig.from_yaml(path)
