"""Which split each sample goes to: a stable hash of its key, and a refusal of splits left empty."""

from __future__ import annotations

import functools
import hashlib
import itertools
from collections import Counter
from collections.abc import Callable

from pipeline.errors import DataError


def split_of(key: str, splits: dict[str, float], salt: str) -> str:
    """Stable split from a hash of the key: adding files never moves existing ones. Every class is
    cut at the same thresholds, so each split holds each class in the configured proportion."""
    return splitter(tuple(splits.items()), salt)(key)


@functools.lru_cache(maxsize=8)
def splitter(splits: tuple[tuple[str, float], ...], salt: str) -> Callable[[str], str]:
    """split_of for one configuration, with what does not depend on the key worked out once."""
    prefix = f"{salt}\0".encode()
    cuts = list(zip(itertools.accumulate(f for _, f in splits), (name for name, _ in splits), strict=True))
    last = splits[-1][0]
    sha256, from_bytes = hashlib.sha256, int.from_bytes

    def split(key: str) -> str:
        u = from_bytes(sha256(prefix + key.encode()).digest()[:8], "big") / 2**64
        for edge, name in cuts:
            if u < edge:
                return name
        return last

    return split


def check_splits(source: str, splits: dict[str, float], counts: Counter[str]) -> None:
    """Refuse a split that would be empty, before anything is written: training needs train, and a
    split asked for that gets no image (3 images cut at 0.8/0.1/0.1) is a mistake to fix, not to keep."""
    empty = [name for name in splits if not counts[name]]
    if empty:
        total = sum(counts.values())
        asked = ",".join(f"{name}={fraction:g}" for name, fraction in splits.items())
        raise DataError(
            f"{source}: {'split' if len(empty) == 1 else 'splits'} {' and '.join(empty)} would be empty: "
            f"{total} {'image' if total == 1 else 'images'} cut at {asked} by a hash of their keys give "
            f"{', '.join(f'{name} {counts[name]}' for name in splits)}; add images, or ask for fewer "
            "splits (e.g. --splits train=1.0, or splits: in a config file)"
        )
