"""Training options and the figures a run reports (issue 15): class-proportional max_train_samples,
the default rescale that an augmentation file cannot drop by omission, the best validation epoch's
weights, class weights, label smoothing, --distribute and --gpus."""

import json
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import yaml
from sklearn.utils.class_weight import compute_class_weight
from typer.testing import CliRunner

from flows.cli import app
from pipeline.config import AugmentConfig, ConfigError, PrepareConfig, TrainConfig
from pipeline.ingest import load_bundled_digits
from pipeline.prepare import prepare
from pipeline.training import Split, TrainData, train
from pipeline.training.describe import input_scale, summary_lines

REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()


@pytest.fixture(scope="module")
def digits_dataset(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("data") / "digits"
    prepare(PrepareConfig(source="digits", out=str(out)))
    return out


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray, list[str]]:
    images, labels, names = load_bundled_digits()
    return images, labels.astype(np.int64), [str(n) for n in names]


def _config(tmp: Path, dataset: Path | str, **overrides) -> TrainConfig:
    base = dict(
        dataset=str(dataset), model="shapes_net", epochs=1, batch_size=64, learning_rate=5e-3, workers=0,
        runs_dir=str(tmp / "runs"), run_name="run", mlflow=False, tensorboard=False,
    )  # fmt: skip
    return TrainConfig(**{**base, **overrides})


def _accuracy(model_path: Path, images: np.ndarray, labels: np.ndarray, scale: float) -> float:
    """The accuracy of the saved model on ``images`` scaled by ``scale``, computed here with Keras's
    predict (not with the run's evaluation)."""
    import keras

    model = keras.models.load_model(model_path)
    predicted = model.predict(images.astype(np.float32) * scale, verbose=0).argmax(axis=-1)
    return float(np.mean(predicted == labels))


# ---- max_train_samples ------------------------------------------------------------------------------
def test_max_train_samples_keeps_class_proportions_of_a_class_sorted_split(digits, tmp_path):
    images, labels, names = digits
    order = np.argsort(labels, kind="stable")  # class-sorted, as MNIST's IDX files are: a prefix is all 0s
    data = TrainData(
        Split(images[order], labels[order]), None, Split(images[:50], labels[:50]), names, "digits"
    )
    limited = data.limited(200, seed=3)
    counts = np.bincount(limited.train.labels, minlength=10)
    expected = 200 * np.bincount(labels, minlength=10) / len(labels)
    assert counts.sum() == 200 and np.all(np.abs(counts - expected) < 1)  # every class, in proportion
    assert limited.sampled_from == len(labels)
    again = data.limited(200, seed=3)
    np.testing.assert_array_equal(again.train.images, limited.train.images)  # a resume trains on the same
    other = data.limited(200, seed=4)
    assert not np.array_equal(other.train.images, limited.train.images)
    assert data.limited(None, seed=3) is data and data.limited(10_000, seed=3) is data

    result = train(_config(tmp_path, "digits", max_train_samples=200, seed=3), data=data)
    summary = result.summary()
    assert summary["train_class_counts"] == {n: int(c) for n, c in zip(names, counts, strict=True)}
    assert summary["train_images"] == 200 and summary["train_images_sampled_from"] == len(labels)
    assert "train images: 200, a class-proportional sample of 1,797 (seed 3)" in summary_lines(summary)


# ---- normalisation ----------------------------------------------------------------------------------
def test_an_augment_config_that_states_no_normalisation_keeps_the_default_rescale(tmp_path):
    assert TrainConfig(augment=AugmentConfig(rotation_range=10)).augment.rescale == pytest.approx(1 / 255)
    assert TrainConfig(augment={"featurewise_center": False}).augment.rescale == pytest.approx(1 / 255)
    # A stated scale wins: rescale given (None included), or a standardisation option on.
    assert TrainConfig(augment=AugmentConfig(rotation_range=10, rescale=None)).augment.rescale is None
    assert TrainConfig(augment=AugmentConfig(rescale=0.5)).augment.rescale == 0.5
    assert TrainConfig(augment={"featurewise_std_normalization": True}).augment.rescale is None
    assert TrainConfig(augment={"samplewise_center": True}).augment.rescale is None
    given = AugmentConfig(rotation_range=10)
    TrainConfig(augment=given)
    assert given.rescale is None  # the caller's config is not changed
    (tmp_path / "train.yaml").write_text("train:\n  augment:\n    rotation_range: 3\n")
    from_file = TrainConfig.from_yaml(tmp_path / "train.yaml")
    assert from_file.augment.rescale == pytest.approx(1 / 255)
    # The saved config reads back as the same config.
    assert TrainConfig(**yaml.safe_load(yaml.safe_dump(from_file.model_dump(mode="json")))) == from_file


def test_input_scale_says_what_the_model_sees():
    assert input_scale(AugmentConfig(rescale=1 / 255)) == "x * 1/255 (range 0..1)"
    assert input_scale(AugmentConfig(rescale=1 / 127.5)) == "x * 0.00784314 (range 0..2)"
    assert input_scale(AugmentConfig()) == "x, pixels as stored (range 0..255; no rescale)"
    assert input_scale(AugmentConfig(rescale=1 / 255, featurewise_std_normalization=True)) == (
        "x * 1/255 (range 0..1), then featurewise standardised (mean 0, std 1 per channel on the training "
        "sample)"
    )
    assert "samplewise centred" in input_scale(AugmentConfig(samplewise_center=True))


@pytest.mark.parametrize(
    ("augment_yaml", "rescale", "inputs"),
    [
        ("rotation_range: 5\n", 1 / 255, "x * 1/255 (range 0..1)"),
        ("rotation_range: 5\nrescale: null\n", None, "x, pixels as stored (range 0..255; no rescale)"),
    ],
)
def test_an_augment_file_trains_with_the_rescale_its_saved_config_shows(
    augment_yaml, rescale, inputs, digits_dataset, tmp_path
):
    (tmp_path / "aug.yaml").write_text(augment_yaml)
    args = ["train", str(digits_dataset), "--augment", str(tmp_path / "aug.yaml"), "--epochs", "1",
            "--max-train-samples", "128", "--workers", "0", "--no-mlflow",
            "--runs-dir", str(tmp_path / "runs"), "--run-name", "aug"]  # fmt: skip
    out = runner.invoke(app, args)
    assert out.exit_code == 0, out.output
    assert f"inputs: {inputs}" in out.output
    run = tmp_path / "runs" / "aug"
    saved = yaml.safe_load((run / "config.yaml").read_text())["augment"]["rescale"]
    assert saved == (None if rescale is None else pytest.approx(rescale))
    summary = json.loads((run / "summary.json").read_text())
    assert summary["inputs"] == inputs
    # The reported test accuracy is the model's on inputs of that scale, computed here independently.
    from pipeline.dataset import PreparedDataset

    ds = PreparedDataset(digits_dataset)
    images, labels = np.asarray(ds.images("test")), ds.labels("test")
    scale = 1.0 if rescale is None else rescale
    assert _accuracy(run / "model.keras", images, labels, scale) == pytest.approx(summary["test_accuracy"])


# ---- best weights -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def best_and_last(digits, tmp_path_factory):
    """A run whose best validation epoch is not its last, by construction: the validation labels are
    each image's class + 1, so the better the model learns the classes, the higher the validation
    loss. The test split keeps its true labels, so the last epoch scores better there."""
    images, labels, names = digits
    train_rows, val_rows, test_rows = np.arange(0, 1200), np.arange(1200, 1500), np.arange(1500, 1797)
    wrong = (labels[val_rows] + 1) % 10
    data = TrainData(
        Split(images[train_rows], labels[train_rows]),
        Split(images[val_rows], wrong),
        Split(images[test_rows], labels[test_rows]),
        names,
        "digits",
    )
    tmp = tmp_path_factory.mktemp("best")
    cfg = _config(tmp, "digits", epochs=3, optimizer="adam", learning_rate=5e-3, run_name="restored")
    restored = train(cfg, data=data)
    last = train(cfg.model_copy(update={"restore_best_weights": False, "run_name": "last"}), data=data)
    return data, restored, last


def test_the_test_split_and_model_keras_get_the_best_validation_epochs_weights(best_and_last):
    data, result, _ = best_and_last
    summary = result.summary()
    val_losses = [r["val_loss"] for r in result.history]
    best = int(np.argmin(val_losses)) + 1
    assert best < 3, f"the construction failed: validation losses {val_losses}"
    assert summary["best_epoch"] == summary["weights_epoch"] == result.weights_epoch == best
    assert summary["weights"] == f"epoch {best} of 3: the lowest validation loss (restore_best_weights)"
    test = data.test
    assert _accuracy(result.model_path, test.images, test.labels, 1 / 255) == pytest.approx(
        result.test_accuracy
    )
    last_model = result.files["last_epoch_model"]
    assert last_model.name == "epoch-0003.keras"
    assert _accuracy(last_model, test.images, test.labels, 1 / 255) == pytest.approx(
        summary["last_epoch_test_accuracy"]
    )
    assert summary["last_epoch_test_accuracy"] > summary["test_accuracy"]  # true labels: the last learnt more
    matrix = np.array(summary["confusion_matrix"])
    assert np.trace(matrix) / matrix.sum() == pytest.approx(summary["test_accuracy"])
    lines = summary_lines(summary)
    val = [r["val_accuracy"] for r in result.history]
    assert (
        f"validation accuracy: {val[best - 1]:.2%} at epoch {best}, {val[2]:.2%} at epoch 3 (the last)"
        in lines
    )
    assert (
        f"test accuracy: {summary['test_accuracy']:.2%} with epoch {best}'s weights, "
        f"{summary['last_epoch_test_accuracy']:.2%} with epoch 3's (the last)"
    ) in lines


def test_without_restore_best_weights_the_last_epoch_is_reported_and_the_best_named(best_and_last):
    data, restored, result = best_and_last
    summary = result.summary()
    best = restored.weights_epoch
    assert summary["weights_epoch"] == 3 and summary["best_epoch"] == best
    assert summary["weights"] == (
        f"epoch 3, the last: restore_best_weights is off; epoch {best} has the lowest validation loss "
        "(checkpoints/best.keras)"
    )
    assert result.test_accuracy == summary["last_epoch_test_accuracy"] == restored.last_epoch_test_accuracy
    assert _accuracy(result.model_path, data.test.images, data.test.labels, 1 / 255) == pytest.approx(
        result.test_accuracy
    )
    assert _accuracy(
        result.files["best_model"], data.test.images, data.test.labels, 1 / 255
    ) == pytest.approx(restored.test_accuracy)


def test_without_a_validation_split_the_last_epochs_weights_are_used_and_the_summary_says_why(
    digits, tmp_path
):
    images, labels, names = digits
    data = TrainData(
        Split(images[:600], labels[:600]), None, Split(images[600:800], labels[600:800]), names, "d"
    )
    result = train(_config(tmp_path, "digits", epochs=2), data=data)
    summary = result.summary()
    assert summary["weights_epoch"] == 2
    assert summary["weights"] == (
        "epoch 2, the last: without a validation split no epoch can be chosen on held-out data"
    )
    assert summary["test_accuracy"] == summary["last_epoch_test_accuracy"]


# ---- class weights and label smoothing: what reaches Keras's loss -----------------------------------
def _tiny_model(logits: np.ndarray, image_shape: tuple[int, ...]):
    """Softmax of fixed ``logits`` whatever the image: a zero kernel and ``logits`` as the bias."""
    import keras

    inputs = keras.Input(image_shape)
    dense = keras.layers.Dense(
        len(logits), activation="softmax", kernel_initializer="zeros",
        bias_initializer=keras.initializers.Constant(logits),
    )  # fmt: skip
    return keras.Model(inputs, dense(keras.layers.Flatten()(inputs)))


def _first_epoch_loss(cfg: TrainConfig, images, labels, logits, class_weights=None):
    """The loss train_epoch reports for one batch of every image (before the update it makes)."""
    from pipeline import Augmenter
    from pipeline.training.build import compile_model
    from pipeline.training.steps import evaluate, train_epoch
    from pipeline.workers import BatchFeeder

    model = _tiny_model(logits, images.shape[1:])
    compile_model(model, cfg, steps_per_epoch=1, phase="train")
    augmenter = Augmenter(AugmentConfig(rescale=1 / 255), output_dtype=np.float32)
    validation = evaluate(model, Split(images, labels), augmenter, batch_size=len(labels))
    with BatchFeeder(augmenter, images, labels, batch_size=len(labels), workers=0) as feeder:
        metrics = train_epoch(model, feeder, 0, cfg.seed, "train", None, class_weights=class_weights)
    return metrics, validation


LOGITS = np.array([1.5, -0.5, 0.3, 0.0, 2.0, -1.0, 0.7, 0.1, -0.2, 0.4], dtype=np.float32)


def test_class_weights_weigh_each_samples_loss_as_kerass_class_weight_does(digits):
    images, labels, _ = digits
    p = np.exp(LOGITS) / np.exp(LOGITS).sum()
    weights = np.linspace(0.5, 3.0, 10)
    cfg = TrainConfig(optimizer="sgd", learning_rate=1e-3)
    metrics, _ = _first_epoch_loss(cfg, images, labels, LOGITS, class_weights=weights)
    # Keras's sum_over_batch_size: the weighted losses summed, over the number of samples.
    expected = np.mean(weights[labels] * -np.log(p[labels]))
    assert metrics.loss == pytest.approx(expected, rel=1e-5)
    plain, _ = _first_epoch_loss(cfg, images, labels, LOGITS)
    assert plain.loss == pytest.approx(np.mean(-np.log(p[labels])), rel=1e-5)


def test_label_smoothing_changes_the_loss_as_kerass_formula_says(digits):
    images, labels, _ = digits
    p = np.exp(LOGITS) / np.exp(LOGITS).sum()
    smoothing = 0.2
    # Keras: y_true * (1 - label_smoothing) + label_smoothing / num_classes, then crossentropy.
    targets = np.eye(10)[labels] * (1 - smoothing) + smoothing / 10
    expected = np.mean(-(targets * np.log(p)).sum(axis=1))
    cfg = TrainConfig(optimizer="sgd", learning_rate=1e-3, label_smoothing=smoothing)
    metrics, validation = _first_epoch_loss(cfg, images, labels, LOGITS)
    assert metrics.loss == pytest.approx(expected, rel=1e-5)
    assert validation.loss == pytest.approx(expected, rel=1e-5)
    # Accuracy stays accuracy on one-hot targets: the constant prediction is class argmax(LOGITS).
    assert metrics.accuracy == pytest.approx(np.mean(labels == LOGITS.argmax()))
    assert validation.accuracy == pytest.approx(np.mean(labels == LOGITS.argmax()))


def test_balanced_class_weights_follow_scikit_learn_on_the_split_trained_on(digits, tmp_path):
    from pipeline.training.data import class_weights

    images, labels, names = digits
    # An imbalanced training split: 300 images of classes 0 and 1, 30 of each other class.
    rows = np.concatenate([np.flatnonzero(labels == c)[: 150 if c < 2 else 30] for c in range(10)])
    data = TrainData(Split(images[rows], labels[rows]), None, Split(images[:100], labels[:100]), names, "d")
    expected = compute_class_weight("balanced", classes=np.arange(10), y=labels[rows])
    np.testing.assert_allclose(class_weights("balanced", data), expected)
    named = class_weights({"0": 2.0, "9": 0.5}, data)  # these class names are also their indices
    np.testing.assert_allclose(named, [2.0] + [1.0] * 8 + [0.5])
    letters = TrainData(data.train, None, data.test, [f"c{i}" for i in range(10)], "d")
    np.testing.assert_allclose(class_weights({"c1": 3.0, "2": 4.0}, letters), [1, 3, 4] + [1] * 7)
    with pytest.raises(ConfigError, match=r"no class 'c11' \(did you mean 'c1'\?\) in d; .*0\.\.9"):
        class_weights({"c11": 2.0}, letters)
    with pytest.raises(ConfigError, match="'c1' and '1' both name class 'c1'"):
        class_weights({"c1": 2.0, "1": 3.0}, letters)

    cfg = _config(tmp_path, "digits", class_weight="balanced", label_smoothing=0.1)
    result = train(cfg, data=data)
    summary = result.summary()
    assert list(summary["class_weights"]) == names
    np.testing.assert_allclose(list(summary["class_weights"].values()), expected)
    assert (
        "class weights: 0=0.36, 1=0.36, 2=1.8, 3=1.8, 4=1.8, 5=1.8, 6=1.8, 7=1.8, 8=1.8, 9=1.8"
        in summary_lines(summary)
    )
    import keras

    model = keras.models.load_model(result.model_path)  # the smoothed loss is saved with the model
    assert model.loss.get_config()["label_smoothing"] == pytest.approx(0.1)


def test_class_weight_and_gpus_values_are_checked_at_the_config_edge():
    assert TrainConfig(class_weight="0=1,cat=2.5").class_weight == {"0": 1.0, "cat": 2.5}
    assert TrainConfig(class_weight={0: 1, "cat": 2}).class_weight == {"0": 1.0, "cat": 2.0}
    assert TrainConfig(gpus="0,1").gpus == [0, 1] and TrainConfig(gpus="none").gpus == []
    bad = [
        (
            dict(class_weight="0=abc"),
            "TrainConfig.class_weight: class_weight: 'abc' (in '0=abc') is not a number",
        ),
        (dict(class_weight="heavy"), "(got 'heavy')"),
        (dict(class_weight={"1": -2}), "class_weight['1'] must be a number > 0"),
        (dict(class_weight={"1": math.nan}), "class_weight['1'] must be a number > 0"),
        (dict(label_smoothing=1.0), "TrainConfig.label_smoothing"),
        (dict(gpus="0,x"), "TrainConfig.gpus: gpus must be GPU indices such as '0,1'"),
        (dict(gpus=[1, 1]), "must not name a GPU twice"),
        (dict(distribute="all"), "TrainConfig.distribute"),
    ]
    for options, message in bad:
        with pytest.raises(ConfigError) as err:
            TrainConfig(**options)
        assert message in str(err.value), str(err.value)


# ---- the command line ----------------------------------------------------------------------------------
def test_cli_options_reach_the_config_and_the_summary_says_what_was_measured(digits_dataset, tmp_path):
    args = ["train", str(digits_dataset), "--epochs", "2", "--max-train-samples", "300", "--workers", "0",
            "--no-mlflow", "--runs-dir", str(tmp_path / "runs"), "--run-name", "opts",
            "--class-weight", "1=2.5,9=0.5", "--label-smoothing", "0.05", "--distribute", "none",
            "--gpus", "none", "--no-restore-best-weights"]  # fmt: skip
    out = runner.invoke(app, args)
    assert out.exit_code == 0, out.output
    saved = yaml.safe_load((tmp_path / "runs" / "opts" / "config.yaml").read_text())
    assert saved["class_weight"] == {"1": 2.5, "9": 0.5} and saved["label_smoothing"] == 0.05
    assert saved["distribute"] == "none" and saved["gpus"] == [] and saved["restore_best_weights"] is False
    assert saved["augment"]["rescale"] == pytest.approx(1 / 255)
    for line in ("inputs: x * 1/255 (range 0..1)", "train images: 300, a class-proportional sample of 1,408",
                 "class weights: 0=1, 1=2.5, 2=1", "weights: epoch 2, the last"):  # fmt: skip
        assert line in out.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--class-weight", "0=abc"], "'abc' (in '0=abc') is not a number"),
        (["--class-weight", "seven=2"], "no class 'seven'"),
        (["--label-smoothing", "1.5"], "TrainConfig.label_smoothing"),
        (["--distribute", "all"], "(got 'all'"),
        (["--gpus", "first"], "(got 'first')"),
    ],
)
def test_cli_option_mistakes_are_one_line_naming_the_value(args, message, digits_dataset, tmp_path):
    out = runner.invoke(
        app, ["train", str(digits_dataset), "--runs-dir", str(tmp_path), "--no-mlflow", *args]
    )
    assert out.exit_code == 2
    assert message in out.output and "Traceback" not in out.output


def test_cli_train_help_lists_the_new_options():
    out = runner.invoke(app, ["train", "--help"], env={"COLUMNS": "200"})
    for option in (
        "--class-weight",
        "--label-smoothing",
        "--distribute",
        "--gpus",
        "--no-restore-best-weights",
    ):
        assert option in out.output


# ---- --gpus: CUDA_VISIBLE_DEVICES before TensorFlow's import --------------------------------------------
_GPUS_SCRIPT = textwrap.dedent(
    """
    import json, os, sys

    seen = {}

    class Watch:  # records CUDA_VISIBLE_DEVICES when TensorFlow's import begins
        def find_spec(self, name, path=None, target=None):
            if name == "tensorflow" and "at_import" not in seen:
                seen["at_import"] = os.environ.get("CUDA_VISIBLE_DEVICES")
            return None

    sys.meta_path.insert(0, Watch())
    from pipeline.config import TrainConfig
    from pipeline.errors import ConfigError
    from pipeline.training import train

    try:
        result = train(TrainConfig(**json.loads(sys.argv[1])))
        seen["epochs"] = len(result.history)
    except ConfigError as err:
        seen["error"] = str(err)
    import tensorflow as tf

    seen["gpus_seen"] = len(tf.config.list_physical_devices("GPU"))
    print(json.dumps(seen))
    """
)


@pytest.mark.parametrize(("gpus", "visible"), [([], ""), ([0], "0")])
def test_gpus_sets_the_visible_devices_before_tensorflow_is_imported(gpus, visible, digits_dataset, tmp_path):
    cfg = _config(tmp_path, digits_dataset, max_train_samples=64, gpus=gpus)
    env = {k: v for k, v in os.environ.items() if k != "CUDA_VISIBLE_DEVICES"}
    env.update(TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-c", _GPUS_SCRIPT, cfg.model_dump_json()], env=env,
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    assert seen["at_import"] == visible
    if gpus and seen["gpus_seen"] == 0:  # asked for a GPU that is not there: refused, not run on the CPU
        assert seen["error"].startswith("TrainConfig.gpus: [0] asked for, but TensorFlow sees no GPU")
        assert "leave gpus out (or give 'none') to train on the CPU" in seen["error"]
        assert not (Path(cfg.runs_dir) / "run").exists()
    else:
        assert seen["epochs"] == 1


def test_gpus_cannot_change_after_tensorflow_was_imported():
    from pipeline.tf_import import import_tensorflow

    tf = import_tensorflow()
    assert import_tensorflow() is tf
    wanted = "7,8" if os.environ.get("CUDA_VISIBLE_DEVICES") != "7,8" else "6"
    with pytest.raises(ConfigError, match=f"set CUDA_VISIBLE_DEVICES={wanted} before importing TensorFlow"):
        import_tensorflow([int(i) for i in wanted.split(",")])
