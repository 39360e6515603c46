"""Per-sample random parameters with Keras's distributions, keyed by (seed, epoch, sample index).

Every draw comes from a counter-based hash of (seed, epoch, index, slot), computed for a whole batch
at once. A sample's parameters therefore do not depend on the batch it is in, on the order samples
are processed in, on the number of worker processes, or on the global numpy RNG. Each option owns
its own slots, so switching one option on does not change what the others draw.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

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
SLOT_EXTRAS = 16  # extra k uses SLOT_EXTRAS + 2k (apply gate) and + 2k + 1 (its own seed)

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


def sample_keys(seed: int, epoch: int, indices: np.ndarray | Sequence[int]) -> np.ndarray:
    """One uint64 key per sample; equal (seed, epoch, index) give equal keys."""
    idx = np.asarray(indices, dtype=np.int64).astype(np.uint64)
    base = _mix(_mix(np.uint64(seed & _M64)) ^ np.uint64(epoch & _M64))
    return _mix(base ^ _mix(idx))


def bits(keys: np.ndarray, slot: int) -> np.ndarray:
    """64 random bits per key for one slot."""
    with np.errstate(over="ignore"):
        return _mix(keys ^ (np.uint64(slot + 1) * _C2))


def uniform01(keys: np.ndarray, slot: int) -> np.ndarray:
    """Uniform floats in [0, 1), 53 bits of precision, one per key."""
    return (bits(keys, slot) >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))


def _uniform(keys: np.ndarray, slot: int, low: float, high: float) -> np.ndarray:
    return low + (high - low) * uniform01(keys, slot)


def _shift(keys: np.ndarray, value_slot: int, sign_slot: int, spec: Any, side: int) -> np.ndarray:
    """Keras's shift draw: a list picks a value, an int n picks from range(n), both times +-1;
    a float draws uniformly in [-spec, spec]. A spec whose maximum is < 1 is a fraction of ``side``.
    """
    n = keys.shape[0]
    if isinstance(spec, list) or (isinstance(spec, int) and not isinstance(spec, bool)):
        choices = np.asarray(spec if isinstance(spec, list) else np.arange(spec), dtype=np.float64)
        if choices.size == 0:
            return np.zeros(n)
        pick = np.minimum((uniform01(keys, value_slot) * choices.size).astype(np.int64), choices.size - 1)
        sign = np.where(uniform01(keys, sign_slot) < 0.5, -1.0, 1.0)
        value = choices[pick] * sign
    elif spec:
        value = _uniform(keys, value_slot, -float(spec), float(spec))
    else:
        return np.zeros(n)
    if np.max(spec) < 1:
        value = value * side
    return value


@dataclass
class BatchParams:
    """Drawn parameters of a batch: one array of shape (batch,) per Keras key, plus the extras'.

    ``params[i]`` is sample i's dict with Keras's keys, accepted by ``apply_transform``.
    """

    columns: dict[str, np.ndarray]
    extras: list[list[dict[str, Any]]] = field(default_factory=list)
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
            d["extras"] = self.extras[i]
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
    rows, cols = int(image_shape[0]), int(image_shape[1])
    nan = np.full(n, np.nan)

    r = config.rotation_range
    zlo, zhi = config.zoom_range
    zoom = (zlo, zhi) != (1.0, 1.0)
    cols_ = {
        "theta": _uniform(keys, SLOT_THETA, -r, r) if r else np.zeros(n),
        "tx": _shift(keys, SLOT_TX, SLOT_TX_SIGN, config.height_shift_range, rows),
        "ty": _shift(keys, SLOT_TY, SLOT_TY_SIGN, config.width_shift_range, cols),
        "shear": (
            _uniform(keys, SLOT_SHEAR, -config.shear_range, config.shear_range)
            if config.shear_range
            else np.zeros(n)
        ),
        "zx": _uniform(keys, SLOT_ZX, zlo, zhi) if zoom else np.ones(n),
        "zy": _uniform(keys, SLOT_ZY, zlo, zhi) if zoom else np.ones(n),
        "flip_horizontal": (uniform01(keys, SLOT_FLIP_H) < 0.5) & config.horizontal_flip,
        "flip_vertical": (uniform01(keys, SLOT_FLIP_V) < 0.5) & config.vertical_flip,
        "channel_shift_intensity": (
            _uniform(keys, SLOT_CHANNEL_SHIFT, -config.channel_shift_range, config.channel_shift_range)
            if config.channel_shift_range
            else nan
        ),
        "brightness": (
            _uniform(keys, SLOT_BRIGHTNESS, *config.brightness_range)
            if config.brightness_range is not None
            else nan.copy()
        ),
    }
    return BatchParams(columns=cols_, keys=keys)


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
