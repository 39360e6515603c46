"""Listing a source's samples, and cutting the list into the chunks that are decoded in parallel."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from pipeline.ingest.sources import read_manifest, scan_folders
from pipeline.prepare.records import Item, LeftOut, gc_paused
from pipeline.prepare.sizes import refuse_mixed_sizes
from pipeline.prepare.sources import load_arrays, resolve_kind

if TYPE_CHECKING:
    from pipeline.config import PrepareConfig


def scan(cfg: PrepareConfig) -> list[Item]:
    """List every sample of the source with its labels, and the split it gives it (split folders, a
    manifest's split column, IDX train- and t10k- files, a Keras dataset's train and test, an .npz's
    x_train and x_test). Without target_size, image files whose headers declare several sizes raise
    DataError here, before anything is written; nothing is decoded but a few of those files, to be
    sure that they would be kept."""
    with gc_paused():
        return _scan(cfg)


def _scan(cfg: PrepareConfig) -> list[Item]:
    kind = resolve_kind(cfg)
    if kind == "folders":
        cut = len(os.path.join(cfg.source, ""))
        items: list[Item] = []
        make = Item._make  # tuple.__new__: a third faster than calling Item for each of a million files
        found = scan_folders(cfg.source, follow_links=cfg.follow_links)
        split_of = found.split_of
        for name, paths in found.classes:
            labels = (name,)  # one tuple for the class: also pickled once per chunk, not once per item
            if found.split_folders:
                items += [make((key, labels, path, None, None, split_of(key))) for path in paths
                          for key in (path[cut:],)]  # fmt: skip
            else:
                items += [make((path[cut:], labels, path, None, None, None)) for path in paths]
        # Every file, folder and symlink left out is listed in the report with its reason.
        items += [Item(s.path, (), left_out=LeftOut(s.reason, s.message)) for s in found.skipped]
        refuse_mixed_sizes(cfg, items, checked=True)
        return items
    if kind == "manifest":
        manifest = read_manifest(cfg.source, allow_outside_root=cfg.allow_outside_root)
        key, make, given = manifest.key, Item._make, manifest.splits
        items = [
            make((key(path), labels, path, None, None, given.get(path)))
            for path, labels in manifest.labels.items()
        ]
        items += [
            Item(key(rows.path), (), rows.path, left_out=LeftOut(rows.reason, rows.message))
            for rows in manifest.left_out
        ]
        refuse_mixed_sizes(cfg, items, checked=False)
        return items
    arrays = load_arrays(kind, cfg.source, cfg.download)
    return [
        Item(key, (label,), row=i, split=split)
        for i, (key, label, split) in enumerate(zip(arrays.keys, arrays.labels, arrays.splits, strict=True))
    ]


def chunked(items: list[Item], size: int) -> list[list[Item]]:
    """``items`` in consecutive chunks of ``size`` (the last one shorter)."""
    return [items[i : i + size] for i in range(0, len(items), size)]
