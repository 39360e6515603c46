"""Which split each sample goes to: the splits the source gives, the rest cut by a stable hash of each
sample's key, and a refusal of splits left empty."""

from __future__ import annotations

import functools
import hashlib
import itertools
from collections import Counter
from collections.abc import Callable, Collection
from typing import Any, NamedTuple

from pipeline.errors import ConfigError, DataError
from pipeline.ingest.formats import GIVEN_SPLIT_NAMES, SPLIT_NAMES

Cuts = tuple[tuple[str, float], ...]  # (split, fraction) pairs, in SPLIT_NAMES order, summing to 1


class SplitPlan(NamedTuple):
    """The splits a preparation writes: those the source gives (``given``: split folders, a
    manifest's split column, the parts of an array source: IDX train- and t10k- files, a Keras
    dataset's train and test, an .npz's x_train and x_test) and those cut by hash (``carved``), from
    the source's train split when it gives splits, else from the whole source.

    ``cuts``: for the samples given to a split (None: to none), the (split, fraction) pairs they are
    cut at; a given split that nothing is carved from has the one pair (split, 1.0).
    """

    given: tuple[str, ...]
    carved: tuple[str, ...]
    cuts: dict[str | None, Cuts]

    @property
    def splits(self) -> tuple[str, ...]:
        """Every split written, in SPLIT_NAMES order."""
        return tuple(name for name in SPLIT_NAMES if name in self.given or name in self.carved)

    def describe(self) -> dict[str, Any]:
        """What the manifest and the report record of it (JSON)."""
        return {
            "given": list(self.given),
            "carved": list(self.carved),
            "carved_from": ("train" if self.given else "source") if self.carved else None,
        }


def plan_splits(source: str, splits: dict[str, float], given: Collection[str]) -> SplitPlan:
    """The plan for a source that gives the splits ``given`` (none: every sample is cut at
    ``splits``): given splits are kept, and the splits of ``splits`` that the source lacks are cut
    from its train split, at their fractions renormalised over train and them (train 0.8, validation
    0.1 given train and test: a ninth of train goes to validation)."""
    asked = ",".join(f"{name}={fraction:g}" for name, fraction in splits.items())
    if not given:
        if "train" not in splits:
            raise ConfigError(
                f"splits {asked} leave out train, and {source} gives no splits of its own: add train "
                "(e.g. --splits train=0.8,validation=0.1,test=0.1), or give the splits in the source "
                f"(split folders {'/, '.join(GIVEN_SPLIT_NAMES)}/ holding the class folders, a "
                "manifest's split column, IDX train- and t10k- files, an .npz's x_train and x_test)"
            )
        return SplitPlan((), tuple(splits), {None: tuple(splits.items())})
    kept = tuple(name for name in SPLIT_NAMES if name in given)
    if "train" not in kept:
        raise DataError(
            f"{source} gives the splits {', '.join(kept)} but no train split, which training needs and "
            "the other splits are cut from: add a train/ split folder (train rows in a manifest's split "
            "column, a train- IDX images file and its labels, an .npz's x_train and y_train)"
        )
    missing = tuple(name for name in splits if name not in kept)
    cuts: dict[str | None, Cuts] = {name: ((name, 1.0),) for name in kept}
    if missing:
        pool = [name for name in SPLIT_NAMES if name == "train" or name in missing]
        total = sum(splits.get(name, 0.0) for name in pool)
        cuts["train"] = tuple((name, splits.get(name, 0.0) / total) for name in pool)
    return SplitPlan(kept, missing, cuts)


def split_of(key: str, splits: dict[str, float], salt: str) -> str:
    """Stable split from a hash of the key: adding files never moves existing ones. Every class is
    cut at the same thresholds, so each split holds each class in the configured proportion."""
    return splitter(tuple(splits.items()), salt)(key)


@functools.lru_cache(maxsize=8)
def splitter(splits: Cuts, salt: str) -> Callable[[str], str]:
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


def check_splits(source: str, plan: SplitPlan, splits: dict[str, float], counts: Counter[str]) -> None:
    """Refuse a split that would be empty, before anything is written: training needs train, and a
    split asked for that gets no image (3 images cut at 0.8/0.1/0.1) is a mistake to fix, not to keep."""
    empty = [name for name in plan.splits if not counts[name]]
    if not empty:
        return
    total = sum(counts.values())
    got = ", ".join(f"{name} {counts[name]}" for name in plan.splits)
    if plan.given:
        kept = f"{source} gives the splits {', '.join(plan.given)}"
        carved = f" and {', '.join(plan.carved)} cut from its train split" if plan.carved else ""
        how = f"{kept}{carved} at {','.join(f'{n}={f:g}' for n, f in plan.cuts['train'])}"
        fix = "add images, or leave the split out of --splits (splits: in a config file)"
    else:
        asked = ",".join(f"{name}={fraction:g}" for name, fraction in splits.items())
        how = f"{total} {'image' if total == 1 else 'images'} cut at {asked} by a hash of their keys"
        fix = "add images, or ask for fewer splits (e.g. --splits train=1.0, or splits: in a config file)"
    raise DataError(
        f"{source}: {'split' if len(empty) == 1 else 'splits'} {' and '.join(empty)} would be empty: "
        f"{how} give {got}; {fix}"
    )
