"""Subsets that keep class proportions: the one way augpipe takes ``n`` of a labelled set.

A prefix of a class-sorted split is one class (2,000 of MNIST's first images are all zeros); a
uniform random draw is proportional only on average. :func:`class_proportional` gives each class its
share of ``n`` by largest remainder and takes that many of its samples in a fixed, seeded order, so
the same labels, ``n`` and seed give the same rows on every (re)start.
"""

from __future__ import annotations

import numpy as np


def class_shares(counts: np.ndarray, n: int) -> np.ndarray:
    """How many of each class a sample of ``n`` takes: ``n * count / total`` rounded by largest
    remainder (ties to the larger class, then the lower index), never more than the class holds.

    When ``n`` is at least the number of classes present, every one of them keeps at least one: a
    class whose share is under one gets one, and the rest of ``n`` is shared among the others in
    proportion (each then within one of ``rest * count / their total``).
    """
    counts = np.asarray(counts, dtype=np.int64)
    total = int(counts.sum())
    if n >= total:
        return counts.copy()
    present = counts > 0
    raised = np.zeros(len(counts), bool)  # classes given one because their share was under one
    if n >= int(present.sum()):
        while True:  # raising a class lowers the others' shares: repeat until none falls under one
            free = present & ~raised
            under = free & (counts * (n - int(raised.sum())) < counts[free].sum())
            if not under.any():
                break
            raised |= under
    free = present & ~raised
    rest = n - int(raised.sum())
    # rest * count / their total in integers, as a whole part and a remainder: exact, so that no
    # class rounds above what it holds.
    scaled = np.where(free, counts * rest, 0)
    whole, remainder = np.divmod(scaled, max(int(counts[free].sum()), 1))
    shares = whole + raised
    left = rest - int(whole.sum())
    # Largest remainder first; of equal remainders, the larger class, then the lower index.
    order = np.lexsort((np.arange(len(counts)), -counts, -remainder))
    shares[order[:left]] += 1
    return shares


def class_proportional(labels: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """Sorted row indices of a stable, class-proportional sample of ``n`` of ``labels``.

    ``labels`` is one class index per row (shape (N,)); all rows come back when ``n >= N``.
    """
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f"labels must have shape (N,), got {labels.shape}")
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if n >= len(labels):
        return np.arange(len(labels))
    _, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    shares = class_shares(counts, n)
    # One seeded order of the rows; each class takes its first ``share`` rows in that order.
    rank = np.random.default_rng(seed).permutation(len(labels))
    order = np.lexsort((rank, inverse))  # rows grouped by class, each group in rank order
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    position = np.arange(len(labels)) - np.repeat(starts, counts)
    keep = order[position < np.repeat(shares, counts)]
    return np.sort(keep)
