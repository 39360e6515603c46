"""The on-device path (``augment_on_device``): Augmenter's affine options and normalisation, run by
TensorFlow where the model is.

>>> device = DeviceAugment(AugmentConfig(rotation_range=20, horizontal_flip=True, fill_mode="wrap"))
>>> transforms = device.params_for(indices, epoch, seed, image_shape)  # numpy (B, 8), on the CPU
>>> batch = device(images, transforms)  # tf ops: on a GPU when there is one

Call it in the training step (a ``tf.function``) to run it on the GPU, as :class:`DeviceStep` does;
a ``tf.data`` map also works but runs on the host's CPU.

What runs on the device: the warp of Keras's rotation, shifts, shear, zoom and flips (flips are folded
into the matrices by :func:`geometry.keras_matrices`), interpolation orders 0 and 1, and the four
fill modes with scipy's semantics, as :func:`geometry.warp` implements them; then :func:`standardize`,
in :func:`normalize.standardize`'s order. ``nearest`` and ``reflect`` are TF's own modes (numerically
scipy's); ``wrap`` folds coordinates with scipy's period N-1 (TF's WRAP has period N) and samples by
gathering; ``constant`` warps with TF's NEAREST mode and writes ``cval`` where the source coordinate
leaves [0, N-1], so cval is never blended in at the edge.

What stays on the CPU: the parameter draws (:func:`pipeline.params.draw`, keyed by (seed, epoch,
index), 8 floats per sample): the OpenCV engine's own draws. Not covered: ``channel_shift_range``,
``brightness_range`` (Keras's PIL quantisation), ``extras`` and ``interpolation_order`` > 1:
:class:`DeviceAugment` and :func:`device_params` raise ValueError naming the option; run such configs
through ``Augmenter``.

The warp's output is float32 on the 0-255 scale (uint8 input is cast first); it matches
``Augmenter.transform_batch`` within the Keras parity tolerances. TF's bilinear weights are exact
where OpenCV's are quantised to 1/32 pixel, so TF is the closer of the two to scipy.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from pipeline import params as P
from pipeline.augment import Augmenter
from pipeline.config import FILL_MODES, AugmentConfig
from pipeline.functional import geometry, normalize

# TF's mode for each of scipy's fill modes that has one; "wrap" (another period) is gathered here.
_TF_FILL = {"nearest": "NEAREST", "reflect": "REFLECT", "constant": "NEAREST"}
_TF_INTERP = {0: "NEAREST", 1: "BILINEAR"}
_PER_SAMPLE = [1, 2, 3]  # the axes of one image in an (N, H, W, C) batch
IDENTITY_TRANSFORM = np.array([1, 0, 0, 0, 1, 0, 0, 0], dtype=np.float32)


# ---- kernels: deterministic tf ops, explicit parameters -------------------------------------------
def projective_transforms(matrices: np.ndarray) -> np.ndarray:
    """(B, 2, 3) inverse maps in OpenCV's (x=column, y=row) frame to ImageProjectiveTransformV3 rows.

    Both map an output pixel to its source with pixel centres on integer coordinates, so a row is the
    matrix flattened, ``[a0, a1, a2, b0, b1, b2]``, followed by ``c0 = c1 = 0`` (no perspective).
    """
    m = np.asarray(matrices, dtype=np.float64)
    if m.ndim != 3 or m.shape[1:] != (2, 3):
        raise ValueError(f"matrices must have shape (batch, 2, 3), but got {m.shape}")
    rows = np.zeros((m.shape[0], 8), dtype=np.float32)
    rows[:, :6] = m.reshape(-1, 6)
    return rows


def apply_affine(
    images: Any,
    transforms: Any,
    fill_mode: str = "nearest",
    cval: float = 0.0,
    order: int = 1,
) -> tf.Tensor:
    """Warp (B, H, W, C) ``images`` by (B, 8) or (1, 8) ``transforms`` with scipy's fill modes.

    Pure tf ops: usable eagerly, in ``tf.function``, a Keras model or a ``tf.data`` map. Returns
    float32 of the input's shape. ``fill_mode`` and ``order`` are Python values (they pick the graph).
    """
    if fill_mode not in FILL_MODES:
        raise ValueError(f"fill_mode must be one of {', '.join(FILL_MODES)}, but got {fill_mode!r}")
    if order not in _TF_INTERP:
        raise ValueError(f"order must be 0 or 1 on the device, but got {order!r}")
    images = tf.convert_to_tensor(images)
    if images.shape.rank != 4:
        raise ValueError(f"images must have shape (batch, height, width, channels), but got {images.shape}")
    images = tf.cast(images, tf.float32)
    shape = tf.shape(images)
    size = shape[1:3]
    # A single (1, 8) row applies to every image, as in ImageProjectiveTransformV3.
    transforms = tf.broadcast_to(tf.cast(transforms, tf.float32), [shape[0], 8])
    if fill_mode == "wrap":
        sx, sy = _source_coords(transforms, size[0], size[1])
        return _sample_wrapped(images, sx, sy, order)
    warped = tf.raw_ops.ImageProjectiveTransformV3(
        images=images,
        transforms=transforms,
        output_shape=size,
        fill_value=tf.constant(0.0, tf.float32),
        interpolation=_TF_INTERP[order],
        fill_mode=_TF_FILL[fill_mode],
    )
    if fill_mode != "constant":
        return warped
    # TF's CONSTANT mode reads cval for each missing neighbour and blends it in; scipy writes cval
    # exactly where the source coordinate leaves [0, N-1] and interpolates normally elsewhere.
    sx, sy = _source_coords(transforms, size[0], size[1])
    h, w = tf.cast(size[0] - 1, tf.float32), tf.cast(size[1] - 1, tf.float32)
    outside = (sx < 0) | (sx > w) | (sy < 0) | (sy > h)
    return tf.where(outside[..., None], tf.constant(cval, tf.float32), warped)


def _source_coords(transforms: tf.Tensor, height: tf.Tensor, width: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Source (x, y) of every output pixel, each (B, H, W), as ImageProjectiveTransformV3 computes them."""
    ys, xs = tf.meshgrid(
        tf.range(tf.cast(height, tf.float32)), tf.range(tf.cast(width, tf.float32)), indexing="ij"
    )
    t = [transforms[:, k, None, None] for k in range(8)]
    k = t[6] * xs + t[7] * ys + 1.0
    return (t[0] * xs + t[1] * ys + t[2]) / k, (t[3] * xs + t[4] * ys + t[5]) / k


def _fold(coord: tf.Tensor, size: tf.Tensor) -> tf.Tensor:
    """scipy's legacy 'wrap' (period size-1), as ``geometry._wrap`` implements it."""
    period = tf.cast(tf.maximum(size - 1, 1), tf.float32)
    out = tf.where(coord > period, coord - period * tf.floor(coord / period), coord)
    out = tf.where(coord < 0, coord + period * (tf.floor(-coord / period) + 1), out)
    return tf.where(size <= 1, tf.zeros_like(coord), out)


def _sample_wrapped(images: tf.Tensor, sx: tf.Tensor, sy: tf.Tensor, order: int) -> tf.Tensor:
    shape = tf.shape(images)
    b, h, w, ch = shape[0], shape[1], shape[2], shape[3]
    x, y = _fold(sx, w), _fold(sy, h)
    flat = tf.reshape(images, [b, h * w, ch])

    def gather(yi: tf.Tensor, xi: tf.Tensor) -> tf.Tensor:
        yi = tf.clip_by_value(yi, 0, h - 1)
        xi = tf.clip_by_value(xi, 0, w - 1)
        return tf.gather(flat, tf.reshape(yi * w + xi, [b, -1]), batch_dims=1)

    if order == 0:
        # floor(c + 0.5), not tf.round: ties go up, as in OpenCV, not to even.
        xi = tf.cast(tf.floor(x + 0.5), tf.int32)
        yi = tf.cast(tf.floor(y + 0.5), tf.int32)
        return tf.reshape(gather(yi, xi), shape)
    x0, y0 = tf.floor(x), tf.floor(y)
    fx = tf.reshape(x - x0, [b, -1, 1])
    fy = tf.reshape(y - y0, [b, -1, 1])
    xi, yi = tf.cast(x0, tf.int32), tf.cast(y0, tf.int32)
    top = (1.0 - fx) * gather(yi, xi) + fx * gather(yi, xi + 1)
    bottom = (1.0 - fx) * gather(yi + 1, xi) + fx * gather(yi + 1, xi + 1)
    return tf.reshape((1.0 - fy) * top + fy * bottom, shape)


def standardize(
    x: Any,
    stats: normalize.FitStats | None,
    *,
    rescale: float | None,
    samplewise_center: bool,
    samplewise_std_normalization: bool,
    featurewise_center: bool,
    featurewise_std_normalization: bool,
    zca_whitening: bool,
) -> tf.Tensor:
    """:func:`normalize.standardize` on an (N, H, W, C) batch in TensorFlow, per sample; float32 out.

    The options are Python values: they pick the graph, and ``stats`` become its constants.
    """
    x = tf.cast(x, tf.float32)
    if rescale:
        x = x * rescale
    if samplewise_center:
        x = x - tf.reduce_mean(x, axis=_PER_SAMPLE, keepdims=True)
    if samplewise_std_normalization:
        x = x / (tf.math.reduce_std(x, axis=_PER_SAMPLE, keepdims=True) + normalize.EPS)
    if stats is None:
        return x
    if featurewise_center and stats.mean is not None:
        x = x - tf.constant(stats.mean, tf.float32)
    if featurewise_std_normalization and stats.std is not None:
        x = x / (tf.constant(stats.std, tf.float32) + normalize.EPS)
    if zca_whitening and stats.zca_whitening_matrix is not None:
        flat = tf.reshape(x, [tf.shape(x)[0], -1]) @ tf.constant(stats.zca_whitening_matrix, tf.float32)
        x = tf.reshape(flat, tf.shape(x))
    return x


# ---- the path: parameters drawn on the CPU, the kernels run in a training step ------------------
def check_supported(config: AugmentConfig) -> None:
    """Raise ValueError naming every option the device path cannot apply."""
    names = config.options_off_device()
    if names:
        raise ValueError(
            f"the on-device path applies affine geometry only, but got {', '.join(names)}; "
            "drop these options or augment on the CPU with Augmenter"
        )


def inverse_matrices(
    params: P.BatchParams, height: int, width: int, keras_shift_axes: bool = True
) -> np.ndarray:
    """The (B, 2, 3) inverse maps of drawn ``params``, as ``Augmenter.transform_batch`` builds them."""
    c = params.columns
    return geometry.keras_matrices(
        c["theta"], c["tx"], c["ty"], c["shear"], c["zx"], c["zy"],
        c["flip_horizontal"], c["flip_vertical"], height, width, keras_shift_axes,
    )  # fmt: skip


def device_params(
    source: Augmenter | AugmentConfig,
    image_shape: tuple[int, ...],
    indices: Sequence[int] | np.ndarray,
    epoch: int = 0,
    seed: int = 0,
) -> np.ndarray:
    """(B, 8) float32 transforms of samples ``indices`` from the CPU engine's own draws.

    ``source`` is an Augmenter or its config; ``image_shape`` is (rows, cols, channels) of one image.
    """
    config = source if isinstance(source, AugmentConfig) else source.config
    check_supported(config)
    params = P.draw(config, image_shape, indices, epoch=epoch, seed=seed)  # what Augmenter.draw returns
    h, w = int(image_shape[0]), int(image_shape[1])
    return projective_transforms(inverse_matrices(params, h, w, config.keras_shift_axes))


class DeviceAugment:
    """The affine part of :class:`Augmenter`, run by TensorFlow; see the module docstring.

    Raises ValueError at construction for options the device path does not implement.
    """

    def __init__(self, config: AugmentConfig):
        check_supported(config)
        self.config = config

    def params_for(
        self,
        indices: Sequence[int] | np.ndarray,
        epoch: int,
        seed: int,
        image_shape: tuple[int, ...],
    ) -> np.ndarray:
        """(B, 8) float32 transforms for samples ``indices``: the CPU engine's draws for the same keys."""
        return device_params(self.config, image_shape, indices, epoch, seed)

    def __call__(self, images: Any, transforms: Any) -> tf.Tensor:
        """Warp a (B, H, W, C) batch by ``transforms`` from :meth:`params_for`; float32 out."""
        c = self.config
        return apply_affine(images, transforms, c.fill_mode, c.cval, c.interpolation_order)


class DeviceStep:
    """Warp a uint8 batch by the affine options, then normalise it as ``augmenter`` does, in one
    ``tf.function``, with the per-sample parameters the OpenCV engine draws."""

    def __init__(self, augmenter: Augmenter, image_shape: tuple[int, ...]):
        c, stats = augmenter.config, augmenter.stats
        self.warp = DeviceAugment(c)
        self.image_shape = image_shape

        def step(images: Any, transforms: Any) -> tf.Tensor:
            return standardize(
                self.warp(images, transforms),
                stats,
                rescale=c.rescale,
                samplewise_center=c.samplewise_center,
                samplewise_std_normalization=c.samplewise_std_normalization,
                featurewise_center=c.featurewise_center,
                featurewise_std_normalization=c.featurewise_std_normalization,
                zca_whitening=c.zca_whitening,
            )

        self._step = tf.function(step, reduce_retracing=True)

    def __call__(self, images: np.ndarray, rows: np.ndarray, epoch: int, seed: int) -> tf.Tensor:
        """The batch of samples ``rows`` in ``epoch``, ready for the model."""
        transforms = self.warp.params_for(rows, epoch, seed, self.image_shape)
        return self._step(images, transforms)
