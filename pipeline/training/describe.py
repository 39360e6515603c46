"""A run's summary in words: the scale of the inputs the model saw, the sample it trained on, and
which epoch's weights its figures are, next to the other epoch's where they differ.

>>> for line in summary_lines(result.summary()):
...     print(line)
inputs: x * 1/255 (range 0..1)
weights: epoch 3 of 5: the lowest validation loss (restore_best_weights)
validation accuracy: 97.10% at epoch 3, 96.40% at epoch 5 (the last)
"""

from __future__ import annotations

from typing import Any

from pipeline.config import AugmentConfig

PIXEL_MAX = 255  # prepared datasets store uint8 pixels


def input_scale(augment: AugmentConfig) -> str:
    """What the model's inputs are, from uint8 pixels: ``x * 1/255 (range 0..1)``, then any
    standardisation, which ``augment`` applies to every split."""
    if augment.rescale:
        low, high = sorted((0.0, PIXEL_MAX * augment.rescale))
        steps = [f"x * {_factor(augment.rescale)} (range {low:g}..{high:g})"]
    else:
        steps = [f"x, pixels as stored (range 0..{PIXEL_MAX}; no rescale)"]
    if augment.zca_whitening:
        steps.append("featurewise centred and ZCA-whitened on the training sample")
    elif augment.featurewise_std_normalization:
        steps.append("featurewise standardised (mean 0, std 1 per channel on the training sample)")
    elif augment.featurewise_center:
        steps.append("featurewise centred (mean 0 per channel on the training sample)")
    if augment.samplewise_std_normalization:
        steps.append("samplewise standardised (each image mean 0, std 1)")
    elif augment.samplewise_center:
        steps.append("samplewise centred (each image mean 0)")
    return ", then ".join(steps)


def _factor(rescale: float) -> str:
    """``1/255`` for 1/255, else the number as it is."""
    inverse = 1 / rescale
    if abs(inverse) >= 2 and abs(inverse - round(inverse)) < 1e-6:
        return f"1/{round(inverse)}" if inverse > 0 else f"-1/{-round(inverse)}"
    return f"{rescale:g}"


def summary_lines(summary: dict[str, Any]) -> list[str]:
    """The lines that say what summary.json's figures are: inputs, training sample, class weights,
    the weights reported and, where the last epoch differs, its figures beside them."""
    lines = [f"inputs: {summary['inputs']}"]
    if summary.get("train_images_sampled_from"):
        lines.append(
            f"train images: {summary['train_images']:,}, a class-proportional sample of "
            f"{summary['train_images_sampled_from']:,} (seed {summary['config']['seed']})"
        )
    if summary.get("class_weights"):
        shown = ", ".join(f"{name}={w:.3g}" for name, w in list(summary["class_weights"].items())[:12])
        more = len(summary["class_weights"]) - 12
        lines.append(f"class weights: {shown}{f', ... ({more} more)' if more > 0 else ''}")
    lines.append(f"weights: {summary['weights']}")
    history = {row["epoch"]: row for row in summary["epochs"]}
    epoch, last = summary["weights_epoch"], max(history, default=None)
    if epoch != last and epoch in history and last is not None:
        val = (history[epoch].get("val_accuracy"), history[last].get("val_accuracy"))
        if None not in val:
            lines.append(
                f"validation accuracy: {val[0]:.2%} at epoch {epoch}, {val[1]:.2%} at epoch {last} (the last)"
            )
        test = (summary["test_accuracy"], summary["last_epoch_test_accuracy"])
        if None not in test:
            lines.append(
                f"test accuracy: {test[0]:.2%} with epoch {epoch}'s weights, {test[1]:.2%} with epoch "
                f"{last}'s (the last)"
            )
    return lines
