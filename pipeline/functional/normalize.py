"""Keras's normalisation: rescale, samplewise and featurewise centring/scaling, ZCA whitening.

Statistics are fitted from an in-memory array (Keras's exact algorithm) or streamed from batches
(sums, and a dense covariance for ZCA), so data larger than memory can be fitted.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from numpy.typing import DTypeLike

from pipeline.errors import ConfigError

EPS = 1e-6  # Keras's epsilon for std division
DEFAULT_ZCA_MEMORY_LIMIT = 4 * 1024**3


@dataclass
class FitStats:
    """Fitted featurewise statistics: per-channel ``mean``/``std`` of shape (1, 1, C), ZCA matrix."""

    mean: np.ndarray | None = None
    std: np.ndarray | None = None
    zca_whitening_matrix: np.ndarray | None = None


def zca_memory_needed(features: int) -> int:
    """Bytes that fitting ZCA on ``features`` values per image needs: the float64 covariance and
    its eigenvectors, plus the float32 whitening matrix."""
    return features * features * (8 + 8 + 4)


def check_zca_memory(shape: tuple[int, ...], limit: int = DEFAULT_ZCA_MEMORY_LIMIT) -> None:
    """Raise ConfigError, before allocating, when ZCA on images of ``shape`` needs more than ``limit``
    bytes (zca_memory_limit): a configured limit, so not a MemoryError, which is left to allocations."""
    features = math.prod(shape)
    need = zca_memory_needed(features)
    if need > limit:
        dims = "x".join(str(s) for s in shape)
        raise ConfigError(
            f"zca_whitening on {dims} images needs a dense {features}x{features} covariance: "
            f"{need / 1024**3:,.1f} GiB, over the limit of {limit / 1024**3:,.1f} GiB "
            f"(zca_memory_limit). Resize the images (ZCA is practical up to about 64x64x3) or use "
            f"featurewise_std_normalization instead."
        )


def fit_array(
    x: np.ndarray,
    featurewise_center: bool,
    featurewise_std_normalization: bool,
    zca_whitening: bool,
    zca_epsilon: float,
    zca_memory_limit: int = DEFAULT_ZCA_MEMORY_LIMIT,
) -> FitStats:
    """Keras's ``ImageDataGenerator.fit`` on an in-memory float batch (N, H, W, C), after rescale.

    The statistics are computed in ``x``'s dtype, as Keras computes them in its generator's ``dtype``.
    ``x`` is modified in place, as Keras does on its own copy.
    """
    stats = FitStats()
    if zca_whitening:
        check_zca_memory(x.shape[1:], zca_memory_limit)
    if featurewise_center:
        stats.mean = np.mean(x, axis=(0, 1, 2)).reshape(1, 1, -1)
        x -= stats.mean
    if featurewise_std_normalization:
        stats.std = np.std(x, axis=(0, 1, 2)).reshape(1, 1, -1)
        x /= stats.std + EPS
    if zca_whitening:
        n = len(x)
        flat = np.reshape(x, (n, -1))
        u, s, _ = np.linalg.svd(flat.T, full_matrices=False)
        s_inv = np.sqrt(n) / (s + zca_epsilon)
        stats.zca_whitening_matrix = (u * s_inv).dot(u.T)
    return stats


class StreamingFit:
    """Accumulates featurewise statistics over batches, in float64, for data larger than memory;
    :meth:`finish` returns them in the ``dtype`` asked for (float32 by default).

    Two passes when both centring and ZCA or std are needed would cost a second read; instead the
    raw sums are kept and centred afterwards (``sum(x x^T) - n mu mu^T``), exact in float64.
    """

    def __init__(self, zca_whitening: bool, zca_memory_limit: int = DEFAULT_ZCA_MEMORY_LIMIT):
        self.zca_whitening = zca_whitening
        self.zca_memory_limit = zca_memory_limit
        self.count = 0  # pixels per channel seen
        self.images = 0
        self.shape: tuple[int, ...] | None = None
        self._sum: np.ndarray | None = None
        self._sumsq: np.ndarray | None = None
        self._flat_sum: np.ndarray | None = None
        self._gram: np.ndarray | None = None

    def update(self, batch: np.ndarray) -> None:
        if batch.ndim != 4:
            raise ValueError(f"fit expects batches of shape (N, H, W, C), but got {batch.shape}")
        if self.shape is None:
            self.shape = tuple(batch.shape[1:])
            c = batch.shape[-1]
            self._sum, self._sumsq = np.zeros(c), np.zeros(c)
            if self.zca_whitening:
                check_zca_memory(self.shape, self.zca_memory_limit)
                d = math.prod(self.shape)
                self._flat_sum, self._gram = np.zeros(d), np.zeros((d, d))
        elif tuple(batch.shape[1:]) != self.shape:
            raise ValueError(
                f"fit batches must share one image shape {self.shape}, but got {batch.shape[1:]}"
            )
        b = batch.astype(np.float64, copy=False)
        self._sum += b.sum(axis=(0, 1, 2))
        self._sumsq += np.einsum("nhwc,nhwc->c", b, b)
        self.count += b.shape[0] * b.shape[1] * b.shape[2]
        self.images += b.shape[0]
        if self.zca_whitening:
            flat = b.reshape(b.shape[0], -1)
            self._flat_sum += flat.sum(axis=0)
            assert self._gram is not None  # allocated with the first batch, above
            self._gram += flat.T @ flat

    def finish(
        self,
        featurewise_center: bool,
        featurewise_std_normalization: bool,
        zca_epsilon: float,
        dtype: DTypeLike = np.float32,
    ) -> FitStats:
        if self.shape is None or self._sum is None or self._sumsq is None:
            raise ValueError("fit received no data")
        mean = self._sum / self.count
        var = np.maximum(self._sumsq / self.count - mean**2, 0.0)
        stats = FitStats()
        if featurewise_center:
            stats.mean = mean.reshape(1, 1, -1).astype(dtype)
        if featurewise_std_normalization:
            stats.std = np.sqrt(var).reshape(1, 1, -1).astype(dtype)
        if self.zca_whitening and self._gram is not None and self._flat_sum is not None:
            n = self.images
            # Centred per channel (Keras subtracts the per-channel mean before ZCA).
            mu = np.broadcast_to(mean if featurewise_center else 0.0, self.shape).reshape(-1)
            cov = (
                self._gram
                - np.outer(self._flat_sum, mu)
                - np.outer(mu, self._flat_sum)
                + n * np.outer(mu, mu)
            ) / n
            evals, evecs = np.linalg.eigh(cov)
            # Keras: s_inv = sqrt(n) / (s + eps) with s the singular values of the data,
            # s = sqrt(n * eval); keep Keras's rank: at most n directions.
            order = np.argsort(evals)[::-1][: min(n, len(evals))]
            evals, evecs = np.clip(evals[order], 0, None), evecs[:, order]
            s_inv = np.sqrt(n) / (np.sqrt(n * evals) + zca_epsilon)
            stats.zca_whitening_matrix = ((evecs * s_inv) @ evecs.T).astype(dtype)
        return stats


def fit_batches(
    batches: Iterable[np.ndarray],
    featurewise_center: bool,
    featurewise_std_normalization: bool,
    zca_whitening: bool,
    zca_epsilon: float,
    zca_memory_limit: int = DEFAULT_ZCA_MEMORY_LIMIT,
    dtype: DTypeLike = np.float32,
) -> FitStats:
    """:class:`StreamingFit` over ``batches``: the statistics in ``dtype``."""
    acc = StreamingFit(zca_whitening, zca_memory_limit)
    for batch in batches:
        acc.update(np.asarray(batch))
    return acc.finish(featurewise_center, featurewise_std_normalization, zca_epsilon, dtype)


def standardize(
    x: np.ndarray,
    stats: FitStats | None,
    *,
    rescale: float | None,
    samplewise_center: bool,
    samplewise_std_normalization: bool,
    featurewise_center: bool,
    featurewise_std_normalization: bool,
    zca_whitening: bool,
    per_sample: bool = True,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Keras's ``standardize`` order after ``preprocessing_function``, into ``out`` or a new array.

    ``out`` is a float array of ``x``'s shape (``x`` itself for Keras's in-place normalisation);
    without it integer input becomes float32 and float input keeps its dtype. With ``per_sample``
    (the engine's batches, shape (N, H, W, C)) samplewise statistics are per image, as Keras's
    iterators compute them; without it they span the whole array, as Keras's ``standardize(x)``
    does when called directly.
    """
    if out is None:  # integer images cannot hold normalised values
        out = np.array(x, dtype=x.dtype if x.dtype.kind == "f" else np.float32)
    elif out is not x:
        if out.shape != x.shape or out.dtype.kind != "f":
            raise ValueError(
                f"out must be a float array of shape {x.shape}, but got {out.dtype} of shape {out.shape}"
            )
        np.copyto(out, x, casting="unsafe")
    x = out
    if rescale:
        x *= x.dtype.type(rescale)
    if samplewise_center or samplewise_std_normalization:
        axes = tuple(range(1, x.ndim)) if per_sample and x.ndim == 4 else None
        if samplewise_center:
            x -= np.mean(x, axis=axes, keepdims=True)
        if samplewise_std_normalization:
            x /= np.std(x, axis=axes, keepdims=True) + EPS
    if stats is None:
        return x
    if featurewise_center and stats.mean is not None:
        x -= stats.mean.astype(x.dtype, copy=False)
    if featurewise_std_normalization and stats.std is not None:
        x /= stats.std.astype(x.dtype, copy=False) + EPS
    if zca_whitening and stats.zca_whitening_matrix is not None:
        w = stats.zca_whitening_matrix
        flat = x.reshape(-1, w.shape[0])
        x[...] = (flat @ w).reshape(x.shape)
    return x
