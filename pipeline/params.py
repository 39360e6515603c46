"""Per-sample random parameters with Keras's distributions, keyed by (seed, epoch, sample index).

Every draw comes from a counter-based hash of (seed, epoch, index, slot), computed for a whole batch
at once. A sample's parameters therefore do not depend on the batch it is in, on the order samples
are processed in, on the number of worker processes, or on the global numpy RNG. Each option owns
its own slots, so switching one option on does not change what the others draw.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol, cast

import numpy as np

from pipeline.config import AugmentConfig

_M64 = (1 << 64) - 1
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_C1 = np.uint64(0xBF58476D1CE4E5B9)
_C2 = np.uint64(0x94D049BB133111EB)

# Fixed slots: one per independent draw, so options never shift each other's streams.
SLOT_THETA, SLOT_TX, SLOT_TX_SIGN, SLOT_TY, SLOT_TY_SIGN = 0, 1, 2, 3, 4
SLOT_SHEAR, SLOT_ZX, SLOT_ZY, SLOT_FLIP_H, SLOT_FLIP_V = 5, 6, 7, 8, 9
SLOT_CHANNEL_SHIFT, SLOT_BRIGHTNESS = 10, 11
SLOT_EXTRAS = 16  # extra k uses SLOT_EXTRAS + 2k (apply gate) and + 2k + 1 (its own generators)
_KERAS_SLOTS = 12  # slots 0-11, drawn together for a batch

KERAS_KEYS = (
    "theta",
    "tx",
    "ty",
    "shear",
    "zx",
    "zy",
    "flip_horizontal",
    "flip_vertical",
    "channel_shift_intensity",
    "brightness",
)


def _mix(z: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser: a bijective avalanche on uint64 (wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        z = z + _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * _C1
        z = (z ^ (z >> np.uint64(27))) * _C2
        return z ^ (z >> np.uint64(31))


def _mix_int(z: int) -> int:
    """:func:`_mix` of one value, on Python ints: the same bits, without numpy's per-call cost."""
    z = (z + int(_GOLDEN)) & _M64
    z = ((z ^ (z >> 30)) * int(_C1)) & _M64
    z = ((z ^ (z >> 27)) * int(_C2)) & _M64
    return z ^ (z >> 31)


def sample_keys(seed: int, epoch: int, indices: np.ndarray | Sequence[int]) -> np.ndarray:
    """One uint64 key per sample; equal (seed, epoch, index) give equal keys."""
    idx = np.asarray(indices, dtype=np.int64).astype(np.uint64)
    base = np.uint64(_mix_int(_mix_int(seed & _M64) ^ (epoch & _M64)))
    return _mix(base ^ _mix(idx))


def bits(keys: np.ndarray, slot: int | np.ndarray) -> np.ndarray:
    """64 random bits per key for one slot (or for each of an array of slots, broadcast with keys)."""
    with np.errstate(over="ignore"):
        return _mix(keys ^ ((np.asarray(slot, dtype=np.uint64) + np.uint64(1)) * _C2))


def uniform01(keys: np.ndarray, slot: int | np.ndarray) -> np.ndarray:
    """Uniform floats in [0, 1), 53 bits of precision, one per key (and slot)."""
    return (bits(keys, slot) >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))


def _uniform(u: np.ndarray, low: float, high: float) -> np.ndarray:
    return low + (high - low) * u


# ---- which keys each option draws ----------------------------------------------------------------
# A key whose option is off keeps Keras's identity value.
OPTION_KEYS: dict[str, tuple[str, ...]] = {
    "rotation_range": ("theta",),
    "height_shift_range": ("tx",),
    "width_shift_range": ("ty",),
    "shear_range": ("shear",),
    "zoom_range": ("zx", "zy"),
    "horizontal_flip": ("flip_horizontal",),
    "vertical_flip": ("flip_vertical",),
    "channel_shift_range": ("channel_shift_intensity",),
    "brightness_range": ("brightness",),
}


class Shift(NamedTuple):
    """How a shift option draws: the image axis a fractional range is of, and its two slots."""

    axis: int
    value_slot: int
    sign_slot: int


# Keras's naming: tx, a fraction of the rows, comes from height_shift_range; ty from width_shift_range.
SHIFTS: dict[str, Shift] = {
    "height_shift_range": Shift(0, SLOT_TX, SLOT_TX_SIGN),
    "width_shift_range": Shift(1, SLOT_TY, SLOT_TY_SIGN),
}
ShiftRange = float | int | list[float | int]


def keys_drawn(config: AugmentConfig) -> tuple[str, ...]:
    """The Keras keys ``config`` draws, in :data:`KERAS_KEYS` order; the others keep identity values."""
    on = {k for option, keys in OPTION_KEYS.items() if config.is_on(option) for k in keys}
    return tuple(k for k in KERAS_KEYS if k in on)


def shift_extent(option: str, spec: ShiftRange, image_shape: Sequence[int]) -> float:
    """The largest shift, in pixels, that shift option ``option`` set to ``spec`` draws on images of
    ``image_shape`` (rows, cols, ...); 0 for a spec that draws nothing."""
    choices = _shift_choices(spec)
    values = np.abs(np.asarray(spec if choices is None else choices, dtype=np.float64))
    if not values.size:
        return 0.0
    return float(values.max()) * _shift_scale(spec, image_shape[SHIFTS[option].axis])


def _shift_choices(spec: ShiftRange) -> np.ndarray | None:
    """Keras's shift choices: a list's values, or range(n) for an int n; None for a float (uniform)."""
    if isinstance(spec, list) or (isinstance(spec, int) and not isinstance(spec, bool)):
        return np.asarray(spec if isinstance(spec, list) else np.arange(spec), dtype=np.float64)
    return None


def _shift_scale(spec: ShiftRange, side: int) -> int:
    """Pixels per unit of a shift range: a spec whose maximum is < 1 is a fraction of ``side``."""
    return side if np.max(spec) < 1 else 1


def _shift(u: np.ndarray, shift: Shift, spec: ShiftRange, image_shape: Sequence[int]) -> np.ndarray:
    """Keras's shift draw: a list picks a value, an int n picks from range(n), both times +-1;
    a float draws uniformly in [-spec, spec]. A spec whose maximum is < 1 is a fraction of the side.
    ``u`` holds each sample's uniforms, one column per slot."""
    n = u.shape[0]
    choices = _shift_choices(spec)
    if choices is not None:
        if choices.size == 0:
            return np.zeros(n)
        pick = np.minimum((u[:, shift.value_slot] * choices.size).astype(np.int64), choices.size - 1)
        sign = np.where(u[:, shift.sign_slot] < 0.5, -1.0, 1.0)
        value = choices[pick] * sign
    elif spec:
        bound = float(cast(float, spec))  # not a list: those give choices
        value = _uniform(u[:, shift.value_slot], -bound, bound)
    else:
        return np.zeros(n)
    return value * _shift_scale(spec, image_shape[shift.axis])


class ExtraDraw(NamedTuple):
    """One pixel extra on one sample: whether its gate let it apply, and the parameters
    albumentations drew for it, kept as drawn (arrays stay arrays) so that replay is exact."""

    name: str
    applied: bool
    params: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        """The form a Keras params dict carries under ``"extras"``."""
        return {"name": self.name, "applied": self.applied, "params": self.params}

    @classmethod
    def from_record(cls, record: ExtraDraw | Mapping[str, Any]) -> ExtraDraw:
        """An :class:`ExtraDraw` from itself or from :meth:`as_dict`'s form."""
        if isinstance(record, ExtraDraw):
            return record
        return cls(str(record["name"]), bool(record["applied"]), dict(record.get("params") or {}))


@dataclass
class BatchParams:
    """Drawn parameters of a batch: one array of shape (batch,) per Keras key, plus the extras'.

    ``params[i]`` is sample i's dict with Keras's keys, accepted by ``apply_transform``; its
    ``"extras"`` entry lists :meth:`ExtraDraw.as_dict` records.
    """

    columns: dict[str, np.ndarray]
    extras: list[list[ExtraDraw]] = field(default_factory=list)
    keys: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.columns["theta"])

    def __getitem__(self, i: int) -> dict[str, Any]:
        d: dict[str, Any] = {}
        for k in KERAS_KEYS:
            v = self.columns[k][i]
            if k in ("channel_shift_intensity", "brightness"):
                d[k] = None if np.isnan(v) else float(v)
            elif k in ("flip_horizontal", "flip_vertical"):
                d[k] = bool(v)
            else:
                d[k] = float(v)
        if self.extras:
            d["extras"] = [e.as_dict() for e in self.extras[i]]
        return d

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return (self[i] for i in range(len(self)))


def draw(
    config: AugmentConfig,
    image_shape: tuple[int, ...],
    indices: np.ndarray | Sequence[int],
    epoch: int = 0,
    seed: int = 0,
) -> BatchParams:
    """Draw every sample's geometric and Keras pixel parameters with Keras's distributions.

    ``image_shape`` is (rows, cols, channels) of one image.
    """
    keys = sample_keys(seed, epoch, indices)
    n = keys.shape[0]
    shape = (int(image_shape[0]), int(image_shape[1]))
    on = keys_drawn(config)
    r, s, c = config.rotation_range, config.shear_range, config.channel_shift_range
    zlo, zhi = cast(tuple[float, float], config.zoom_range)  # the config stores it as a pair
    blo, bhi = config.brightness_range or (1.0, 1.0)
    # Every Keras slot for the whole batch in one pass: the same numbers as one slot at a time.
    u = uniform01(keys[:, None], np.arange(_KERAS_SLOTS))
    columns = {
        "theta": _uniform(u[:, SLOT_THETA], -r, r) if "theta" in on else np.zeros(n),
        "tx": _shift(u, SHIFTS["height_shift_range"], config.height_shift_range, shape),
        "ty": _shift(u, SHIFTS["width_shift_range"], config.width_shift_range, shape),
        "shear": _uniform(u[:, SLOT_SHEAR], -s, s) if "shear" in on else np.zeros(n),
        "zx": _uniform(u[:, SLOT_ZX], zlo, zhi) if "zx" in on else np.ones(n),
        "zy": _uniform(u[:, SLOT_ZY], zlo, zhi) if "zy" in on else np.ones(n),
        "flip_horizontal": (u[:, SLOT_FLIP_H] < 0.5) & ("flip_horizontal" in on),
        "flip_vertical": (u[:, SLOT_FLIP_V] < 0.5) & ("flip_vertical" in on),
        "channel_shift_intensity": (
            _uniform(u[:, SLOT_CHANNEL_SHIFT], -c, c)
            if "channel_shift_intensity" in on
            else np.full(n, np.nan)
        ),
        "brightness": _uniform(u[:, SLOT_BRIGHTNESS], blo, bhi) if "brightness" in on else np.full(n, np.nan),
    }
    return BatchParams(columns=columns, keys=keys)


# ---- pixel extras: albumentations' own draws, from the sample's key --------------------------------
class RandomTransform(Protocol):
    """What drawing an extra's parameters asks of an albumentations transform."""

    def set_random_state(self, random_generator: np.random.Generator, py_random: random.Random) -> None: ...

    def get_params(self) -> dict[str, Any]: ...

    def update_transform_params(self, params: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]: ...

    def get_params_dependent_on_data(
        self, params: dict[str, Any], data: dict[str, Any]
    ) -> dict[str, Any]: ...


def extra_gates(keys: np.ndarray, probabilities: Sequence[float]) -> np.ndarray:
    """(batch, extras) bools: whether extra k, applied with probability ``probabilities[k]``,
    applies to each sample."""
    slots = SLOT_EXTRAS + 2 * np.arange(len(probabilities))
    return uniform01(keys[:, None], slots) < np.asarray(probabilities, dtype=np.float64)


def draw_extra(transform: RandomTransform, image: np.ndarray, key: np.ndarray, k: int) -> dict[str, Any]:
    """Extra ``k``'s parameters for one sample (``key``, shape (1,)) and the image it will apply to.

    albumentations draws them itself, as its ``__call__`` does (the parameters that need no data,
    then those that need the image), from a numpy and a Python generator seeded by the sample's key:
    the same key draws the same parameters in any thread, batch or process. ``transform`` is set to
    those generators, so it must not be shared between threads.
    """
    seed = int(bits(key, SLOT_EXTRAS + 2 * k + 1)[0] >> np.uint64(1))
    transform.set_random_state(np.random.default_rng(seed), random.Random(seed))
    data = {"image": image}
    params = transform.update_transform_params(params=transform.get_params(), data=data)
    params.update(transform.get_params_dependent_on_data(params=params, data=data))
    return params


def columns_from_dicts(records: Sequence[dict[str, Any]]) -> dict[str, np.ndarray]:
    """The inverse of ``BatchParams.__getitem__``: Keras dicts (missing keys take Keras's defaults)."""
    defaults = {"theta": 0.0, "tx": 0.0, "ty": 0.0, "shear": 0.0, "zx": 1.0, "zy": 1.0}
    out: dict[str, np.ndarray] = {}
    for k, d in defaults.items():
        out[k] = np.array([float(r.get(k, d)) for r in records], dtype=np.float64)
    for k in ("flip_horizontal", "flip_vertical"):
        out[k] = np.array([bool(r.get(k, False)) for r in records])
    for k in ("channel_shift_intensity", "brightness"):
        out[k] = np.array([np.nan if r.get(k) is None else float(r[k]) for r in records], dtype=np.float64)
    return out


def epoch_order(n: int, shuffle: bool, seed: int, epoch: int) -> np.ndarray:
    """Sample indices in the order epoch ``epoch`` serves them."""
    if not shuffle:
        return np.arange(n)
    return np.random.default_rng([seed, epoch]).permutation(n)
