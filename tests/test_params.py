"""Our parameter draws against Keras's get_random_transform, and their reproducibility properties.

Keras draws from the global numpy RNG, seeded once per comparison (and restored afterwards); ours
are keyed by (seed, epoch, index). The distributions must match, the streams of course not.
"""

import copy
import random
import threading
from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from keras.src.legacy.preprocessing.image import ImageDataGenerator
from scipy import stats

from pipeline import AugmentConfig, Augmenter
from pipeline import params as P
from pipeline.config.augment import GEOMETRY_OPTIONS, PIXEL_OPTIONS
from pipeline.functional.pixel import build_extra
from pipeline.params import KERAS_KEYS, OPTION_KEYS, SHIFTS, keys_drawn, shift_extent

N = 4000
SHAPE = (120, 180, 3)  # non-square, so a shift scaled by the wrong side shows
KS_MIN_P = 1e-3


def keras_draws(options: dict, n: int = N, seed: int = 1234) -> dict[str, np.ndarray]:
    """``n`` draws of Keras's get_random_transform as columns; the global RNG is restored after."""
    gen = ImageDataGenerator(**options)
    state = np.random.get_state()  # noqa: NPY002 - Keras's reference draws use the global RNG
    try:
        np.random.seed(seed)  # noqa: NPY002
        records = [gen.get_random_transform(SHAPE) for _ in range(n)]
    finally:
        np.random.set_state(state)  # noqa: NPY002
    return {k: np.array([r[k] for r in records]) for k in records[0]}


def our_draws(options: dict, n: int = N, seed: int = 99, epoch: int = 0) -> dict[str, np.ndarray]:
    return Augmenter(AugmentConfig(**options)).draw(SHAPE, range(n), epoch=epoch, seed=seed).columns


CONTINUOUS = [
    pytest.param(dict(rotation_range=30), "theta", (-30, 30), id="rotation"),
    pytest.param(dict(height_shift_range=0.2), "tx", (-24, 24), id="height_shift_fraction"),
    pytest.param(dict(width_shift_range=0.2), "ty", (-36, 36), id="width_shift_fraction"),
    pytest.param(dict(height_shift_range=12.5), "tx", (-12.5, 12.5), id="height_shift_pixels"),
    pytest.param(dict(width_shift_range=3.0), "ty", (-3, 3), id="width_shift_pixels"),
    pytest.param(dict(shear_range=20), "shear", (-20, 20), id="shear"),
    pytest.param(dict(zoom_range=0.3), "zx", (0.7, 1.3), id="zoom_scalar_zx"),
    pytest.param(dict(zoom_range=0.3), "zy", (0.7, 1.3), id="zoom_scalar_zy"),
    pytest.param(dict(zoom_range=(0.5, 1.5)), "zx", (0.5, 1.5), id="zoom_pair_zx"),
    pytest.param(dict(zoom_range=(0.5, 1.5)), "zy", (0.5, 1.5), id="zoom_pair_zy"),
    pytest.param(dict(channel_shift_range=50.0), "channel_shift_intensity", (-50, 50), id="channel_shift"),
    pytest.param(dict(brightness_range=(0.3, 1.7)), "brightness", (0.3, 1.7), id="brightness"),
]


@pytest.mark.parametrize(("options", "key", "bounds"), CONTINUOUS)
def test_continuous_draws_match_keras(options, key, bounds):
    ours = our_draws(options)[key].astype(np.float64)
    theirs = keras_draws(options)[key].astype(np.float64)
    low, high = bounds
    assert low <= ours.min() and ours.max() <= high
    assert ours.min() < low + 0.02 * (high - low) and ours.max() > high - 0.02 * (high - low)
    result = stats.ks_2samp(ours, theirs)
    assert result.pvalue > KS_MIN_P, f"{key}: KS statistic {result.statistic:.4f}, p {result.pvalue:.2g}"


@pytest.mark.parametrize("zoom_range", [0.3, (0.5, 1.5)])
def test_zoom_axes_are_drawn_independently(zoom_range):
    cols = our_draws(dict(zoom_range=zoom_range))
    r = np.corrcoef(cols["zx"], cols["zy"])[0, 1]
    assert abs(r) < 0.06  # about 4 standard errors at N = 4000
    assert not np.array_equal(cols["zx"], cols["zy"])


DISCRETE_SHIFTS = [
    pytest.param(dict(height_shift_range=5), "tx", id="height_shift_int"),
    pytest.param(dict(width_shift_range=7), "ty", id="width_shift_int"),
    pytest.param(dict(width_shift_range=[2, 5, 11]), "ty", id="width_shift_list_pixels"),
    pytest.param(dict(height_shift_range=[-3, 2, 5]), "tx", id="height_shift_list_signed"),
    pytest.param(dict(height_shift_range=[0.05, 0.1]), "tx", id="height_shift_list_fractions"),
    pytest.param(dict(width_shift_range=(0.05, 0.25)), "ty", id="width_shift_tuple_fractions"),
]


@pytest.mark.parametrize(("options", "key"), DISCRETE_SHIFTS)
def test_discrete_shift_support_and_frequencies_match_keras(options, key):
    ours = Counter(our_draws(options)[key].tolist())
    theirs = Counter(keras_draws(options)[key].astype(np.float64).tolist())
    assert set(ours) == set(theirs)
    support = sorted(theirs)
    table = np.array([[ours[v] for v in support], [theirs[v] for v in support]])
    result = stats.chi2_contingency(table)
    assert result.pvalue > KS_MIN_P, f"{key}: {dict(zip(support, table.T.tolist(), strict=True))}"


@pytest.mark.parametrize("n", [1, 3, 6])
def test_int_shift_is_a_signed_choice_from_range(n):
    """Keras's int spec: ``choice(range(n)) * choice([-1, 1])``, so 0 is twice as likely."""
    draws = our_draws(dict(height_shift_range=n))["tx"]
    counts = Counter(draws.tolist())
    assert set(counts) == {float(v) for v in range(-(n - 1), n)}
    expected = {v: (1 / n if v == 0 else 1 / (2 * n)) for v in counts}
    for v, c in counts.items():
        assert abs(c / N - expected[v]) < 5 * np.sqrt(expected[v] * (1 - expected[v]) / N) + 1e-12


SHIFT_CASES = [p for p in CONTINUOUS if set(p.values[0]) & set(SHIFTS)] + DISCRETE_SHIFTS


@pytest.mark.parametrize(("options", "key"), [pytest.param(*p.values[:2], id=p.id) for p in SHIFT_CASES])
def test_shift_extent_is_the_largest_shift_keras_draws(options, key):
    (option,) = options
    assert option in SHIFTS and OPTION_KEYS[option] == (key,)
    extent = shift_extent(option, getattr(AugmentConfig(**options), option), SHAPE)
    theirs = np.abs(keras_draws(options)[key].astype(np.float64)).max()
    assert 0.99 * extent < theirs <= extent


@pytest.mark.parametrize("key", ["flip_horizontal", "flip_vertical"])
def test_flips_are_fair_coins_like_keras(key):
    options = dict(horizontal_flip=True, vertical_flip=True)
    ours = our_draws(options)[key].astype(bool)
    theirs = keras_draws(options)[key].astype(bool)
    for draws in ours, theirs:
        assert abs(draws.mean() - 0.5) < 0.04  # 5 standard errors at N = 4000
    table = np.array([[ours.sum(), N - ours.sum()], [theirs.sum(), N - theirs.sum()]])
    assert stats.chi2_contingency(table).pvalue > KS_MIN_P


def test_the_two_flips_are_independent():
    cols = our_draws(dict(horizontal_flip=True, vertical_flip=True))
    h, v = cols["flip_horizontal"].astype(bool), cols["flip_vertical"].astype(bool)
    table = np.array([[np.sum(h & v), np.sum(h & ~v)], [np.sum(~h & v), np.sum(~h & ~v)]])
    assert stats.chi2_contingency(table).pvalue > KS_MIN_P


def test_options_off_give_keras_identity_values():
    cols = our_draws({}, n=50)
    want = keras_draws({}, n=1)
    for key, value in want.items():
        if value[0] is None:
            assert np.isnan(cols[key]).all(), key
        else:
            assert np.all(cols[key] == value[0]), key


# ---- reproducibility ----------------------------------------------------------------------------

ALL_OPTIONS = dict(
    rotation_range=25, width_shift_range=0.15, height_shift_range=[-3, 2, 5], shear_range=12,
    zoom_range=(0.8, 1.2), horizontal_flip=True, vertical_flip=True, channel_shift_range=25,
    brightness_range=(0.6, 1.4),
)  # fmt: skip


def _records(aug: Augmenter, indices, epoch=0, seed=0) -> dict[int, dict]:
    params = aug.draw(SHAPE, indices, epoch=epoch, seed=seed)
    return {int(i): params[k] for k, i in enumerate(indices)}


def test_a_sample_draws_the_same_whatever_its_batch():
    aug = Augmenter(AugmentConfig(**ALL_OPTIONS))
    a = _records(aug, [5, 3, 9], epoch=2, seed=17)
    b = _records(aug, [9], epoch=2, seed=17)
    c = _records(aug, [3, 5, 9, 100], epoch=2, seed=17)
    assert a[9] == b[9] == c[9]
    assert a[3] == c[3] and a[5] == c[5]
    assert a[3] != a[5] != a[9]


def test_epoch_and_seed_change_every_sample():
    aug = Augmenter(AugmentConfig(**ALL_OPTIONS))
    idx = range(64)
    base = aug.draw(SHAPE, idx, epoch=0, seed=1).columns
    for other in (
        aug.draw(SHAPE, idx, epoch=1, seed=1).columns,
        aug.draw(SHAPE, idx, epoch=0, seed=2).columns,
    ):
        for key in ("theta", "ty", "shear", "zx", "zy", "channel_shift_intensity", "brightness"):
            assert np.all(base[key] != other[key]), key


def test_draws_never_touch_the_global_rng():
    np.random.seed(321)  # noqa: NPY002 - the global RNG is what this test watches
    before = np.random.get_state()  # noqa: NPY002
    Augmenter(AugmentConfig(**ALL_OPTIONS)).draw(SHAPE, range(500), epoch=3, seed=8)
    after = np.random.get_state()  # noqa: NPY002
    assert before[0] == after[0] and before[2:] == after[2:]
    np.testing.assert_array_equal(before[1], after[1])


SLOTTED = {
    "theta": dict(rotation_range=25),
    "tx": dict(height_shift_range=0.2),
    "ty": dict(width_shift_range=0.15),
    "shear": dict(shear_range=12),
    "zx": dict(zoom_range=(0.8, 1.2)),
    "zy": dict(zoom_range=(0.8, 1.2)),
    "flip_horizontal": dict(horizontal_flip=True),
    "flip_vertical": dict(vertical_flip=True),
    "channel_shift_intensity": dict(channel_shift_range=25),
    "brightness": dict(brightness_range=(0.6, 1.4)),
}


@pytest.mark.parametrize("key", SLOTTED)
def test_switching_other_options_on_does_not_change_a_draw(key):
    alone = our_draws(SLOTTED[key], n=200, seed=4)[key]
    together = our_draws({k: v for opts in SLOTTED.values() for k, v in opts.items()}, n=200, seed=4)[key]
    np.testing.assert_array_equal(alone, together)


@pytest.mark.parametrize("option", OPTION_KEYS)
def test_an_option_draws_exactly_its_keys(option):
    options = next(opts for opts in SLOTTED.values() if option in opts)
    assert keys_drawn(AugmentConfig(**options)) == OPTION_KEYS[option]
    identity, ours = our_draws({}, n=200), our_draws(options, n=200)
    for key in KERAS_KEYS:
        unchanged = np.array_equal(ours[key], identity[key], equal_nan=True)
        assert unchanged != (key in OPTION_KEYS[option]), key


def test_options_set_to_draw_nothing_draw_no_keys():
    off = AugmentConfig(width_shift_range=0, height_shift_range=0.0, zoom_range=(1.0, 1.0), rotation_range=0)
    assert keys_drawn(off) == () == keys_drawn(AugmentConfig())
    assert keys_drawn(AugmentConfig(**ALL_OPTIONS)) == KERAS_KEYS
    assert shift_extent("width_shift_range", 0, SHAPE) == 0.0


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**64 - 1),
    epoch=st.integers(0, 10_000),
    indices=st.lists(st.integers(0, 2**40), min_size=1, max_size=12),
    perm_seed=st.integers(0, 2**32 - 1),
)
def test_property_draws_are_per_sample_functions_of_the_key(seed, epoch, indices, perm_seed):
    aug = Augmenter(AugmentConfig(**ALL_OPTIONS))
    whole = aug.draw(SHAPE, indices, epoch=epoch, seed=seed)
    order = np.random.default_rng(perm_seed).permutation(len(indices))
    shuffled = aug.draw(SHAPE, [indices[k] for k in order], epoch=epoch, seed=seed)
    for pos, k in enumerate(order):
        assert shuffled[pos] == whole[int(k)]
        assert aug.draw(SHAPE, [indices[k]], epoch=epoch, seed=seed)[0] == whole[int(k)]
    p = whole[0]
    assert -25 <= p["theta"] <= 25 and 0.8 <= p["zx"] <= 1.2 and 0.6 <= p["brightness"] <= 1.4


def test_every_keras_option_has_its_keys():
    # config names the options (GEOMETRY_OPTIONS, PIXEL_OPTIONS); params says what each draws.
    assert set(OPTION_KEYS) == {*GEOMETRY_OPTIONS, *PIXEL_OPTIONS}


# ---- the extras' draws ------------------------------------------------------------------------------
def test_slots_drawn_together_equal_one_at_a_time():
    keys = P.sample_keys(5, 2, np.arange(300))
    together = P.uniform01(keys[:, None], np.arange(12))
    for slot in range(12):
        np.testing.assert_array_equal(together[:, slot], P.uniform01(keys, slot))


def test_extra_gates_are_per_sample_and_per_extra():
    keys = P.sample_keys(1, 0, np.arange(4000))
    gates = P.extra_gates(keys, [0.25, 0.5, 1.0, 0.0])
    assert gates.shape == (4000, 4)
    np.testing.assert_allclose(gates.mean(axis=0), [0.25, 0.5, 1.0, 0.0], atol=0.03)
    assert abs(np.corrcoef(gates[:, 0], gates[:, 1])[0, 1]) < 0.05  # each extra has its own slot
    np.testing.assert_array_equal(P.extra_gates(keys[7:9], [0.25, 0.5, 1.0, 0.0]), gates[7:9])


def _same_params(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("name", ["noise", "cutout", "hue", "random_crop"])
def test_an_extra_draws_from_the_samples_key_alone(name):
    # The same key draws the same parameters from any copy of the transform, in any thread, and
    # leaves the global generators alone; another key or another extra slot draws others.
    transform = build_extra(name, {"height": 32, "width": 40} if name == "random_crop" else {})
    image = np.zeros((48, 64, 3), np.uint8)
    key = P.sample_keys(3, 1, [17])
    np.random.seed(5)  # noqa: NPY002 - the global RNG is what this test watches
    random.seed(5)
    before = (np.random.get_state()[1].copy(), random.getstate())  # noqa: NPY002
    first = P.draw_extra(transform, image, key, 2)
    assert np.array_equal(np.random.get_state()[1], before[0]) and random.getstate() == before[1]  # noqa: NPY002
    drawn: list[dict] = []
    thread = threading.Thread(
        target=lambda: drawn.append(P.draw_extra(copy.deepcopy(transform), image, key, 2))
    )
    thread.start()
    thread.join()
    assert _same_params(drawn[0], first)
    assert not _same_params(P.draw_extra(transform, image, P.sample_keys(3, 1, [18]), 2), first)
    assert not _same_params(P.draw_extra(transform, image, key, 3), first)
