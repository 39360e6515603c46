"""One error format (issue 13): a config mistake is one line naming the file (when there is one), the
field as a dotted path, the value, and the closest valid name; it never quotes a whole config."""

from pathlib import Path

import pytest

import pipeline
from models.registry import names
from pipeline.config import AugmentConfig, ConfigError, PrepareConfig, TrainConfig
from pipeline.errors import AugpipeError, SourceNotFoundError

MODELS = ", ".join(names())


def _write(tmp_path: Path, text: str, name: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _message(build) -> str:
    with pytest.raises(ConfigError) as info:
        build()
    message = str(info.value)
    assert "\n" not in message, message
    return message


def test_a_typo_in_a_yaml_file_names_the_file_and_the_closest_option(tmp_path):
    path = _write(tmp_path, "rotaton_range: 10\nhorizontal_flip: true\n", "aug.yaml")
    assert _message(lambda: AugmentConfig.from_yaml(path)) == (
        f"{path}: AugmentConfig.rotaton_range: unknown option (did you mean 'rotation_range'?)"
    )


def test_the_file_is_named_as_given(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _write(tmp_path, "fill_mode: mirror\n", "aug.yaml")
    assert _message(lambda: AugmentConfig.from_yaml("aug.yaml")) == (
        "aug.yaml: AugmentConfig.fill_mode: Input should be 'nearest', 'reflect', 'wrap' or 'constant' "
        "(got 'mirror')"
    )


def test_an_option_like_no_other_lists_the_accepted_ones_once(tmp_path):
    path = _write(tmp_path, "prepare:\n  source: digits\n  out: x\n  zzz: 1\n  qqq: 2\n", "prepare.yaml")
    assert _message(lambda: PrepareConfig.from_yaml(path)) == (
        f"{path}: PrepareConfig.zzz: unknown option; accepted: {', '.join(PrepareConfig.model_fields)}; "
        f"{path}: PrepareConfig.qqq: unknown option"
    )


def test_nested_fields_are_named_by_their_dotted_path(tmp_path):
    text = "train:\n  augment:\n    rotaton_range: 5\n    extras:\n      - {name: blur, p: 2}\n"
    path = _write(tmp_path, text, "train.yaml")
    assert _message(lambda: TrainConfig.from_yaml(path)) == (
        f"{path}: TrainConfig.augment.extras.0.p: Input should be less than or equal to 1 (got 2); "
        f"{path}: TrainConfig.augment.rotaton_range: unknown option (did you mean 'rotation_range'?)"
    )


def test_prepare_options_are_named_from_the_train_config(tmp_path):
    path = _write(tmp_path, "train:\n  dataset: photos\n  prepare_options: {colour_mode: rgb}\n", "t.yaml")
    assert _message(lambda: TrainConfig.from_yaml(path)) == (
        f"{path}: TrainConfig.prepare_options.colour_mode: unknown option (did you mean 'color_mode'?)"
    )
    # The source and the output are the train config's own: setting them was a TypeError before.
    assert _message(lambda: TrainConfig(prepare_options={"source": "x"})).startswith(
        "TrainConfig.prepare_options: prepare_options cannot set source: the source is dataset"
    )


def test_a_model_level_error_says_what_is_wrong_without_the_config(tmp_path):
    text = "prepare:\n  source: digits\n  out: x\n  target_size: [10000, 10000]\n  split_salt: s\n"
    path = _write(tmp_path, text, "prepare.yaml")
    # Before: "PrepareConfig.(config): target_size ... (got {'source': 'digits', 'out': 'x', ...})".
    assert _message(lambda: PrepareConfig.from_yaml(path)) == (
        f"{path}: PrepareConfig: target_size 10000x10000 is 100,000,000 pixels, more than max_pixels "
        "(89,478,485): choose a smaller size or raise max_pixels"
    )
    assert _message(lambda: TrainConfig(model="lenet5", fine_tune_epochs=2, seed=7)) == (
        "TrainConfig: fine_tune_epochs is the second phase of xception_transfer (frozen base, then all "
        "layers); model 'lenet5' has no pretrained base to unfreeze"
    )


def test_an_unknown_model_names_the_closest_and_every_model(tmp_path):
    expected = (
        f"TrainConfig.model: unknown model 'resnet99' (did you mean 'resnet34'?); the models are: {MODELS}"
    )
    assert _message(lambda: TrainConfig(model="resnet99", epochs=3)) == expected
    path = _write(tmp_path, "train:\n  model: resnet99\n  epochs: 3\n", "train.yaml")
    assert _message(lambda: TrainConfig.from_yaml(path)) == f"{path}: {expected}"
    assert _message(lambda: TrainConfig(model="vgg")) == (
        f"TrainConfig.model: unknown model 'vgg'; the models are: {MODELS}"
    )


def test_several_wrong_fields_are_one_line_naming_each(tmp_path):
    text = (
        "augment:\n"
        "  rotation_range: -3\n"
        "  fill_mode: mirror\n"
        "  zoom_rnage: 0.2\n"
        "  extras:\n"
        "    - {name: blur, params: {blur_limit: x}}\n"  # albumentations's own error is several lines
    )
    path = _write(tmp_path, text, "aug.yaml")
    message = _message(lambda: AugmentConfig.from_yaml(path))
    assert message.startswith(f"{path}: ")
    problems = message.removeprefix(f"{path}: ").split(f"; {path}: ")
    assert [problem.split(": ", 1)[0] for problem in problems] == [
        "AugmentConfig.rotation_range",
        "AugmentConfig.fill_mode",
        "AugmentConfig.extras.0",
        "AugmentConfig.zoom_rnage",  # pydantic reports unknown options after the fields
    ]
    assert "rotation_range must be >= 0 (got -3)" in message
    assert "AugmentConfig.zoom_rnage: unknown option (did you mean 'zoom_range'?)" in message
    assert "extra 'blur' (Blur) rejected" in message and "errors.pydantic.dev" not in message


def test_keyword_arguments_name_the_field_and_the_closest_name():
    assert (
        _message(lambda: TrainConfig(epoch=3)) == "TrainConfig.epoch: unknown option (did you mean 'epochs'?)"
    )
    assert _message(lambda: AugmentConfig.parse({"horizontal_flp": True})) == (
        "AugmentConfig.horizontal_flp: unknown option (did you mean 'horizontal_flip'?)"
    )
    assert _message(lambda: TrainConfig(optimizer="adma")) == (
        "TrainConfig.optimizer: Input should be 'rmsprop', 'adam', 'adamw' or 'sgd' "
        "(got 'adma'; did you mean 'adam'?)"
    )
    assert _message(lambda: AugmentConfig(extras=[{"name": "gausian_blur"}])).startswith(
        "AugmentConfig.extras.0.name: unknown extra transform 'gausian_blur' "
        "(did you mean 'gaussian_blur'?); accepted: blur, "
    )


def test_options_given_over_a_file_are_not_blamed_on_it(tmp_path):
    path = _write(tmp_path, "train:\n  epochs: 0\n", "train.yaml")
    assert _message(lambda: TrainConfig.from_yaml(path, model="lenet")) == (
        f"TrainConfig.model: unknown model 'lenet' (did you mean 'lenet5'?); the models are: {MODELS}; "
        f"{path}: TrainConfig.epochs: Input should be greater than or equal to 1 (got 0)"
    )


def test_a_key_that_is_not_a_name_is_quoted_on_the_same_line():
    assert _message(lambda: AugmentConfig.parse({"rotation range": 1})) == (
        "AugmentConfig.'rotation range': unknown option (did you mean 'rotation_range'?)"
    )
    assert "AugmentConfig.'a\\nb': unknown option" in _message(lambda: AugmentConfig.parse({"a\nb": 1}))


def test_augpipe_errors_share_one_base_and_keep_their_builtin_bases():
    assert issubclass(ConfigError, AugpipeError) and issubclass(ConfigError, ValueError)
    assert issubclass(SourceNotFoundError, ConfigError) and issubclass(SourceNotFoundError, FileNotFoundError)
    assert pipeline.AugpipeError is AugpipeError and pipeline.ConfigError is ConfigError
    assert str(ConfigError("first line\nsecond line")) == "first line second line"
