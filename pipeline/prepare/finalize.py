"""Finalizing a run: split the chunks' rows, write shards, labels, manifest and report into a new
version, and publish it (or find the current version already holds the same dataset)."""

from __future__ import annotations

import itertools
import json
import time
from collections import Counter
from operator import attrgetter
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from pipeline.errors import DataError
from pipeline.prepare.dedupe import duplicate_groups, place_duplicates, spans_splits
from pipeline.prepare.disk import naming_a_full_disk
from pipeline.prepare.hints import hints
from pipeline.prepare.publish import publish
from pipeline.prepare.records import ChunkRecord, PrepareResult, Row, RunDirs, content_hash, gc_paused
from pipeline.prepare.report import build_report
from pipeline.prepare.runs import discard_run, end_run
from pipeline.prepare.shards import open_shard, write_shard
from pipeline.prepare.sizes import mixed_sizes_message
from pipeline.prepare.sources import resolve_kind, shadowed_path_notice
from pipeline.prepare.splitting import SplitPlan, check_splits, plan_splits
from pipeline.prepare.stats import mean_std, pixel_histogram
from pipeline.store import current_version, unfinished_dir

if TYPE_CHECKING:
    from pipeline.config import PrepareConfig


def finalize(
    cfg: PrepareConfig, run: RunDirs, records: list[ChunkRecord], plan: SplitPlan | None = None
) -> PrepareResult:
    """Split, report, write shards and manifest into a new version, then switch CURRENT to it.

    ``plan``: the splits the source gives and those cut (default: a source that gives none); with
    ``cfg.dedupe_across_splits``, each group of identical images is moved into one split."""
    try:
        with gc_paused(), naming_a_full_disk(run.out):
            return _finalize(cfg, run, records, plan or plan_splits(cfg.source, cfg.splits, ()))
    except BaseException:
        discard_run(run)
        raise
    finally:
        end_run(run)  # the staging files' mappings are released before they are deleted


def _finalize(cfg: PrepareConfig, run: RunDirs, records: list[ChunkRecord], plan: SplitPlan) -> PrepareResult:
    records = sorted(records, key=lambda r: r.chunk_id)
    make = Row._make  # tuple.__new__: a row for each of a million images
    rows = [
        make((key, digest, labels, rec.pixels, i, split, given))
        for rec in records
        if rec.pixels is not None
        for i, (key, digest, labels, split, given) in enumerate(
            zip(rec.keys, rec.hashes, rec.labels, rec.splits, rec.given, strict=True)
        )
    ]
    quarantined = [q for rec in records for q in rec.quarantined]
    if not rows:
        raise DataError(f"no usable image in {cfg.source}: {len(quarantined)} quarantined")
    shape_of = {p: open_shard(p).shape[1:] for p in {r.chunk for r in rows}}
    image_shape = shape_of[rows[0].chunk]
    if len(set(shape_of.values())) > 1:  # each chunk is of one size, but they differ
        keys_by_size: dict[tuple[int, int], list[str]] = {}
        for r in rows:
            shape = shape_of[r.chunk]
            keys_by_size.setdefault((shape[0], shape[1]), []).append(r.key)
        raise DataError(mixed_sizes_message(keys_by_size, "after decoding"))
    rows.sort(key=attrgetter("key"))
    distinct_labels = {labels for rec in records for labels in set(rec.labels)}  # a few, not one a row
    classes = sorted({lab for labels in distinct_labels for lab in labels})
    multi_label = any(len(labels) != 1 for labels in distinct_labels)
    groups = duplicate_groups(rows)
    across_before = sum(spans_splits(rows, group) for group in groups)
    moved: list[tuple[Row, str]] = []
    if cfg.dedupe_across_splits and groups:
        rows, moved, across_before = place_duplicates(rows, groups, plan, cfg.split_salt)
    check_splits(cfg.source, plan, cfg.splits, Counter(map(attrgetter("split"), rows)))
    # The same bytes as json.dumps of the list of the chunks' lists, from the parts that the chunks
    # dumped in parallel.
    placing = (cfg.splits, cfg.split_salt, plan.cuts, cfg.dedupe_across_splits)
    fingerprint = content_hash(
        f"[{', '.join(rec.listing for rec in records)}]".encode()
        + repr((*placing, cfg.shard_size, cfg.decode_fingerprint())).encode()
    )
    previous = current_version(cfg.out)
    if previous is not None and (previous / "manifest.json").exists():
        old = json.loads((previous / "manifest.json").read_text())
        if old.get("fingerprint") == fingerprint:
            report = json.loads((previous / "report.json").read_text())
            report["unchanged"] = True
            notice = shadowed_path_notice(cfg)  # that path may have been made since that version
            if notice and notice not in report.get("hints", []):
                report["hints"] = [notice, *report.get("hints", [])]
            # this run's quarantined items: a manifest row may be new, its files not
            report["quarantined"] = [q._asdict() for q in quarantined]
            report["decoded"] = sum(r.decoded for r in records)
            report["reused"] = sum(r.reused for r in records)
            return PrepareResult(previous, report, unchanged=True)

    split_rows: dict[str, list[Row]] = {name: [] for name in plan.splits}
    for r in rows:
        split_rows[r.split].append(r)

    tmp = unfinished_dir(run.out, run.run_id)
    tmp.mkdir()
    files: list[dict[str, Any]] = []
    split_info: dict[str, Any] = {}
    for split, srows in split_rows.items():
        (tmp / split).mkdir()
        shards = []
        for s, start in enumerate(range(0, max(len(srows), 1), cfg.shard_size)):
            part = srows[start : start + cfg.shard_size]
            shard_name = f"{split}/images-{s:05d}.npy"
            write_shard(tmp / shard_name, part, image_shape)
            # labels stay tuples: JSON writes them as the same lists, without a list made a row
            files += [
                {"key": r.key, "hash": r.digest, "labels": r.labels, "split": split, "shard": shard_name,
                 "row": row}
                for row, r in enumerate(part)
            ]  # fmt: skip
            shards.append(shard_name)
        labels_array = _label_array([r.labels for r in srows], classes, multi_label)
        np.save(tmp / split / "labels.npy", labels_array)
        counted = Counter(itertools.chain.from_iterable(map(attrgetter("labels"), srows)))
        split_info[split] = {
            "count": len(srows), "shards": shards, "class_counts": {c: counted[c] for c in classes}
        }  # fmt: skip

    histogram = sum(
        (r.train_histogram for r in records if r.train_histogram is not None),
        np.zeros((image_shape[-1], 256), np.int64),
    )
    for row, split in moved:  # the chunks counted each row in the split it was cut to
        if (row.split == "train") != (split == "train"):
            counted_pixels = pixel_histogram(open_shard(row.chunk)[[row.chunk_row]])
            histogram += counted_pixels if split == "train" else -counted_pixels
    mean, std = mean_std(histogram)
    report = build_report(records, rows, split_rows, quarantined, classes, groups)
    report["split_class_counts"] = {split: info["class_counts"] for split, info in split_info.items()}
    report["split_plan"] = plan.describe()
    report["duplicates_across_splits"] = {
        "dedupe_across_splits": cfg.dedupe_across_splits,
        "before": across_before,
        "after": len(report["leakage"]),
        "moved": len(moved),
    }
    report["hints"] = hints(cfg, records, len(rows))
    manifest = {
        "version": None,  # the number is taken when the version is moved in place (publish)
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "run_id": run.run_id,
        "source": {"kind": resolve_kind(cfg), "path": cfg.source},
        "config": cfg.model_dump(mode="json"),
        "image_shape": list(image_shape),
        "classes": classes,
        "multi_label": multi_label,
        "splits": split_info,
        "split_plan": plan.describe(),
        "stats": {"train_mean": mean.tolist(), "train_std": std.tolist(), "scale": "0-255"},
        "fingerprint": fingerprint,
        "decode_fingerprint": cfg.decode_fingerprint(),
        "packages": _versions(),
        "files": files,
        "quarantined": report["quarantined"],
    }
    (tmp / "report.json").write_text(json.dumps(report, indent=2))
    return PrepareResult(publish(run, tmp, manifest), report)


def _label_array(labels: list[tuple[str, ...]], classes: list[str], multi_label: bool) -> np.ndarray:
    index = {c: i for i, c in enumerate(classes)}
    if not multi_label:
        return np.array([index[lab[0]] for lab in labels], dtype=np.int64)
    out = np.zeros((len(labels), len(classes)), np.uint8)
    for r, labs in enumerate(labels):
        out[r, [index[lab] for lab in labs]] = 1
    return out


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version  # here: workers never need it

    out = {"opencv": cv2.__version__, "numpy": np.__version__}
    for dist in ("augpipe", "pillow"):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            out[dist] = "not installed"
    return out
