"""Identical images (one content hash): found once, and placed in one split so that none of a test or
validation image's copies is trained on."""

from __future__ import annotations

from typing import NamedTuple

from pipeline.ingest.formats import SPLIT_NAMES
from pipeline.prepare.records import Row
from pipeline.prepare.splitting import SplitPlan, splitter


class Placement(NamedTuple):
    """Rows after duplicates were placed: ``moved`` holds each moved row as it was before, with the
    split it went to; ``across_before`` counts the groups that spanned splits before."""

    rows: list[Row]
    moved: list[tuple[Row, str]]
    across_before: int


def duplicate_groups(rows: list[Row]) -> list[list[int]]:
    """The row indices of each group of identical images (two or more rows with one content hash),
    groups in the order of their first rows."""
    first: dict[str, int] = {}
    groups: dict[int, list[int]] = {}  # first row -> the group's rows
    for i, digest in enumerate(r.digest for r in rows):
        j = first.setdefault(digest, i)
        if j != i:
            groups.setdefault(j, [j]).append(i)
    return [groups[j] for j in sorted(groups)]


def spans_splits(rows: list[Row], group: list[int]) -> bool:
    return len({rows[i].split for i in group}) > 1


def place_duplicates(rows: list[Row], groups: list[list[int]], plan: SplitPlan, salt: str) -> Placement:
    """Each group of identical images in one split: each copy's split is drawn from a hash of its
    content instead of its key (so that copies cut from one source split agree), and the group goes
    to the most held-out of them (test, then validation, then train): a copy that the source gives to
    test keeps the group out of training."""
    cut = {name: splitter(cuts, salt) for name, cuts in plan.cuts.items()}
    rank = {name: i for i, name in enumerate(SPLIT_NAMES)}  # train, validation, test: more held out
    placed = list(rows)
    moved: list[tuple[Row, str]] = []
    across = 0
    for group in groups:
        across += spans_splits(rows, group)
        target = max((cut[rows[i].given](rows[i].digest) for i in group), key=rank.__getitem__)
        for i in group:
            if rows[i].split != target:
                moved.append((rows[i], target))
                placed[i] = rows[i]._replace(split=target)
    return Placement(placed, moved, across)
