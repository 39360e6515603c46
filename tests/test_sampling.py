"""pipeline.sampling: class-proportional subsets, checked as properties over random label sets and on
MNIST's class-sorted training labels."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.sampling import class_proportional, class_shares

# MNIST's training images per digit: a class-sorted copy of its labels is what a prefix gets wrong.
MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]

labels_and_n = st.lists(st.integers(0, 7), min_size=1, max_size=300).flatmap(
    lambda labels: st.tuples(
        st.just(np.array(labels)), st.integers(0, len(labels) + 5), st.integers(0, 2**32)
    )
)


@settings(max_examples=300, deadline=None)
@given(labels_and_n)
def test_a_sample_has_exactly_n_rows_of_the_labels_each_once(case):
    labels, n, seed = case
    rows = class_proportional(labels, n, seed)
    assert len(rows) == min(n, len(labels))
    assert np.array_equal(rows, np.unique(rows))
    assert rows.size == 0 or 0 <= rows.min() <= rows.max() < len(labels)


@settings(max_examples=300, deadline=None)
@given(labels_and_n)
def test_each_class_gets_its_share(case):
    labels, n, seed = case
    rows = class_proportional(labels, n, seed)
    classes, counts = np.unique(labels, return_counts=True)
    taken = np.array([(labels[rows] == c).sum() for c in classes])
    exact = n * counts / len(labels)
    if n >= len(labels):
        assert np.array_equal(taken, counts)
        return
    if n >= len(classes):  # every class that is there is kept
        assert taken.min() >= 1
    # never more than the share rounded up; keeping the small classes costs each other class at most
    # what they were raised by, in all
    assert all(t <= math.ceil(e - 1e-9) for t, e in zip(taken, exact, strict=True))
    raised_by = sum(1 - e for e in exact if e < 1) if n >= len(classes) else 0
    lowered = math.ceil(raised_by - 1e-9)
    assert all(t >= math.floor(e + 1e-9) - lowered for t, e in zip(taken, exact, strict=True))
    if exact.min() >= 1 or n < len(classes):  # nothing raised: every class within one of its share
        assert np.all(np.abs(taken - exact) < 1)


@settings(max_examples=100, deadline=None)
@given(labels_and_n)
def test_the_same_labels_n_and_seed_give_the_same_rows(case):
    labels, n, seed = case
    assert np.array_equal(class_proportional(labels, n, seed), class_proportional(labels.copy(), n, seed))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(0, 50), min_size=1, max_size=12), st.integers(0, 400))
def test_shares_sum_to_n_and_never_exceed_a_class(counts, n):
    counts = np.array(counts)
    shares = class_shares(counts, n)
    assert shares.sum() == min(n, counts.sum())
    assert np.all((shares >= 0) & (shares <= counts))


def test_mnist_class_sorted_labels_give_every_digit_its_share():
    labels = np.repeat(np.arange(10), MNIST_TRAIN_COUNTS)  # sorted by class: a prefix is all zeros
    assert set(labels[:2000].tolist()) == {0}
    rows = class_proportional(labels, 2000, seed=0)
    taken = np.bincount(labels[rows], minlength=10)
    assert taken.sum() == 2000
    assert np.all(np.abs(taken - 2000 * np.array(MNIST_TRAIN_COUNTS) / 60000) < 1)
    # another seed: other rows, the same shares
    other = class_proportional(labels, 2000, seed=1)
    assert not np.array_equal(rows, other)
    assert np.array_equal(np.bincount(labels[other], minlength=10), taken)
    # 10 of 60,000 still keeps every digit
    assert np.array_equal(np.bincount(labels[class_proportional(labels, 10)], minlength=10), np.ones(10))


def test_a_rare_class_is_kept_and_the_others_share_the_rest():
    labels = np.repeat([0, 1, 2], [900, 99, 1])
    taken = np.bincount(labels[class_proportional(labels, 10)], minlength=3)
    # shares 9, 0.99, 0.01: the 1 image of class 2 is kept, and the other 9 are shared 900 : 99
    assert taken.tolist() == [8, 1, 1]
