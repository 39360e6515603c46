"""Model registry and architectures: parameter counts are checked against published figures or
counted here by formula, never read back from the model."""

import numpy as np
import pytest

import models

# Parameter counts by formula.


def conv(kernel: int, cin: int, cout: int, bias: bool = True) -> int:
    return (kernel * kernel * cin + bias) * cout


def dense(inputs: int, outputs: int) -> int:
    return (inputs + 1) * outputs


def bn(channels: int) -> int:
    return 4 * channels  # gamma, beta trainable; moving mean and variance not


def valid(size: int, kernel: int, stride: int = 1) -> int:
    return (size - kernel) // stride + 1


def trainable_count(model) -> int:
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


def test_public_api_is_pinned():
    assert sorted(models.__all__) == [
        "build",
        "default_input_shape",
        "names",
        "set_base_trainable",
        "summary_rows",
    ]
    for name in models.__all__:
        assert getattr(models, name).__module__.startswith("models.")


def test_names_lists_every_model():
    assert models.names() == [
        "shapes_net",
        "mnist_convnet",
        "fashion_convnet",
        "deep_convnet",
        "lenet5",
        "alexnet",
        "resnet34",
        "xception_transfer",
    ]


def test_unknown_name_lists_the_names():
    with pytest.raises(ValueError, match="Unknown model 'vgg16'.*mnist_convnet.*xception_transfer"):
        models.build("vgg16", (28, 28, 1), 10)


@pytest.mark.parametrize("num_classes", [0, 1, 2.0, True])
def test_bad_num_classes_is_refused(num_classes):
    with pytest.raises(ValueError, match="num_classes must be an int of at least 2"):
        models.build("shapes_net", (8, 8, 1), num_classes)


def test_unknown_option_is_refused():
    with pytest.raises(ValueError, match="mnist_convnet got unknown option.*dropout.*takes no options"):
        models.build("mnist_convnet", (28, 28, 1), 10, dropout=0.5)
    with pytest.raises(ValueError, match="unknown option.*wieghts.*options are weights"):
        models.build("xception_transfer", (71, 71, 3), 10, wieghts=None)


@pytest.mark.parametrize(
    ("name", "input_shape", "message"),
    [
        ("lenet5", (64, 64, 1), r"lenet5 needs 32x32 images .* but got \(64, 64, 1\)"),
        ("lenet5", (32, 28, 1), "lenet5 needs 32x32 images"),
        ("mnist_convnet", (28, 28), r"needs input_shape \(height, width, channels\)"),
        ("mnist_convnet", (28, 28, 0), "positive ints"),
        ("mnist_convnet", (12, 12, 1), "at least 18"),
        ("shapes_net", (3, 8, 1), "at least 4"),
        ("alexnet", (64, 64, 3), "at least 67"),
        ("xception_transfer", (71, 71, 1), "needs 3 channel"),
        ("xception_transfer", (32, 32, 3), "at least 71"),
    ],
)
def test_bad_input_shape_is_refused(name, input_shape, message):
    with pytest.raises(ValueError, match=message):
        models.build(name, input_shape, 10)


def test_shapes_net():
    model = models.build("shapes_net", (8, 8, 1), 4)
    # 8 -> pool 4 -> pool 2, 3 channels
    expected = conv(3, 1, 2) + conv(2, 2, 3) + dense(2 * 2 * 3, 8) + dense(8, 4)
    assert model.count_params() == expected
    assert model.predict(np.zeros((2, 8, 8, 1), "float32"), verbose=0).shape == (2, 4)


def test_mnist_convnet():
    model = models.build("mnist_convnet", (28, 28, 1), 10)
    rows = models.summary_rows(model)
    before_flatten = sum(row[3] for row in rows[: [row[0] for row in rows].index("flatten")])
    assert before_flatten == 55_744 == conv(3, 1, 32) + conv(3, 32, 64) + conv(3, 64, 64)
    assert model.count_params() == 93_322 == 55_744 + dense(3 * 3 * 64, 64) + dense(64, 10)
    out = model.predict(np.zeros((2, 28, 28, 1), "float32"), verbose=0)
    np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-5)


def test_fashion_convnet():
    model = models.build("fashion_convnet", (28, 28, 1), 10)
    expected = conv(3, 1, 32) + conv(3, 32, 64) + dense(7 * 7 * 64, 100) + dense(100, 10)
    assert model.count_params() == expected == 333_526
    assert model.predict(np.zeros((2, 28, 28, 1), "float32"), verbose=0).shape == (2, 10)


def test_deep_convnet():
    model = models.build("deep_convnet", (28, 28, 1), 10)
    convs = conv(7, 1, 64) + conv(3, 64, 128) + conv(3, 128, 128) + conv(3, 128, 256) + conv(3, 256, 256)
    # 28 -> 14 -> 7 -> 3 after the three poolings
    expected = convs + dense(3 * 3 * 256, 128) + dense(128, 64) + dense(64, 10)
    assert model.count_params() == expected
    assert model.predict(np.zeros((2, 28, 28, 1), "float32"), verbose=0).shape == (2, 10)


@pytest.mark.parametrize("side", [32, 28])
def test_lenet5(side):
    model = models.build("lenet5", (side, side, 1), 10)
    expected = conv(5, 1, 6) + conv(5, 6, 16) + conv(5, 16, 120) + dense(120, 84) + dense(84, 10)
    assert model.count_params() == expected == 61_706
    assert ("pad" in [layer.name for layer in model.layers]) == (side == 28)
    assert model.predict(np.zeros((2, side, side, 1), "float32"), verbose=0).shape == (2, 10)


def test_alexnet():
    model = models.build("alexnet", (227, 227, 3), 1000)
    side = valid(valid(227, 11, 4), 3, 2)  # conv1 55, pool1 27
    side = valid(valid(side, 3, 2), 3, 2)  # pool2 13, pool5 6
    assert side == 6
    convs = conv(11, 3, 96) + conv(5, 96, 256) + conv(3, 256, 384) + conv(3, 384, 384) + conv(3, 384, 256)
    expected = convs + dense(side * side * 256, 4096) + dense(4096, 4096) + dense(4096, 1000)
    assert model.count_params() == expected == 62_378_344


def test_alexnet_forward_on_smallest_input():
    model = models.build("alexnet", (67, 67, 3), 5)
    assert model.predict(np.zeros((1, 67, 67, 3), "float32"), verbose=0).shape == (1, 5)


def resnet34_counts(num_classes: int) -> tuple[int, int]:
    """(all params, non-trainable params) of ResNet-34 on 3-channel images."""
    total = conv(7, 3, 64, bias=False) + bn(64)
    moving = 2 * 64
    cin = 64
    for filters, units in ((64, 3), (128, 4), (256, 6), (512, 3)):
        for _ in range(units):
            total += (
                conv(3, cin, filters, bias=False) + conv(3, filters, filters, bias=False) + 2 * bn(filters)
            )
            moving += 2 * 2 * filters
            if cin != filters:
                total += conv(1, cin, filters, bias=False) + bn(filters)
                moving += 2 * filters
            cin = filters
    return total + dense(512, num_classes), moving


def test_resnet34():
    model = models.build("resnet34", (224, 224, 3), 1000)
    total, moving = resnet34_counts(1000)
    assert 21_800_000 <= total < 21_900_000
    assert model.count_params() == total
    assert trainable_count(model) == total - moving
    assert model.output_shape == (None, 1000)


def test_resnet34_forward_on_small_input():
    model = models.build("resnet34", (32, 32, 3), 10)
    assert model.count_params() == resnet34_counts(10)[0]
    assert model.predict(np.zeros((1, 32, 32, 3), "float32"), verbose=0).shape == (1, 10)


# Keras's published figure for Xception without its top (22,910,480 with the 1000-class head).
XCEPTION_BASE_PARAMS = 22_910_480 - dense(2048, 1000)


def test_xception_transfer_builds_frozen_and_toggles():
    model = models.build("xception_transfer", (71, 71, 3), 5)
    head = dense(2048, 5)
    assert model.count_params() == XCEPTION_BASE_PARAMS + head
    assert trainable_count(model) == head
    models.set_base_trainable(model, True)
    unfrozen = trainable_count(model)
    assert head < unfrozen < XCEPTION_BASE_PARAMS + head  # batch norm moving statistics stay untrainable
    models.set_base_trainable(model, False)
    assert trainable_count(model) == head
    assert model.predict(np.zeros((1, 71, 71, 3), "float32"), verbose=0).shape == (1, 5)


def test_xception_transfer_loads_local_weights(tmp_path):
    first = models.build("xception_transfer", (71, 71, 3), 3)
    path = tmp_path / "base.weights.h5"
    first.get_layer("xception").save_weights(path)
    second = models.build("xception_transfer", (71, 71, 3), 3, weights=str(path))
    for a, b in zip(first.get_layer("xception").weights, second.get_layer("xception").weights, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


@pytest.mark.parametrize("weights", ["imagenet", "ImageNet"])
def test_xception_transfer_refuses_imagenet(weights):
    with pytest.raises(ValueError, match="never downloads weights.*local .h5 or .keras file"):
        models.build("xception_transfer", (71, 71, 3), 5, weights=weights)


def test_xception_transfer_refuses_bad_paths(tmp_path):
    with pytest.raises(ValueError, match="must be a local .h5 or .keras file"):
        models.build("xception_transfer", (71, 71, 3), 5, weights=str(tmp_path / "base.npz"))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        models.build("xception_transfer", (71, 71, 3), 5, weights=str(tmp_path / "missing.weights.h5"))


def test_set_base_trainable_needs_an_xception_model():
    with pytest.raises(ValueError, match="needs a model built by xception_transfer, but got 'shapes_net'"):
        models.set_base_trainable(models.build("shapes_net", (8, 8, 1), 2), True)


@pytest.mark.parametrize(
    ("name", "input_shape"),
    [
        ("shapes_net", (8, 8, 1)),
        ("mnist_convnet", (28, 28, 1)),
        ("fashion_convnet", (28, 28, 1)),
        ("deep_convnet", (28, 28, 1)),
        ("lenet5", (28, 28, 1)),
        ("resnet34", (32, 32, 3)),
        ("xception_transfer", (71, 71, 3)),
    ],
)
def test_summary_rows_total_the_params(name, input_shape):
    model = models.build(name, input_shape, 3)
    rows = models.summary_rows(model)
    assert rows[-1] == ("total", "", "", model.count_params())
    assert sum(row[3] for row in rows[:-1]) == model.count_params()
    assert [row[0] for row in rows[:-1]] == [layer.name for layer in model.layers]
    assert rows[0][:3] == ("image", "InputLayer", str((None, *input_shape)))
    assert rows[-2][:3] == ("predictions", "Dense", "(None, 3)")


def test_cli_lists_and_summarises_models():
    from typer.testing import CliRunner

    from flows.cli import app

    runner = CliRunner()
    listing = runner.invoke(app, ["models"])
    assert listing.exit_code == 0 and all(name in listing.output for name in models.names())
    summary = runner.invoke(app, ["models", "mnist_convnet"], terminal_width=200)
    assert summary.exit_code == 0, summary.output
    assert "93,322" in summary.output and "conv" in summary.output.lower()
    wrong = runner.invoke(app, ["models", "vgg99"])
    assert wrong.exit_code == 2 and "Unknown model 'vgg99'" in wrong.output
    small = runner.invoke(app, ["models", "mnist_convnet", "--input-shape", "8x8x1"], terminal_width=200)
    assert small.exit_code == 2 and "Traceback" not in small.output
